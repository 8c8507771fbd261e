"""One widget per parameter description (``ParamSpec`` of the registry and presets, or a
``Perturbation``), so no page writes per-loss or per-preset UI code."""

from __future__ import annotations

from typing import Any

import streamlit as st


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def _float_step(spec, lo: float, hi: float) -> float:
    step = getattr(spec, "step", None)
    if step:
        return float(step)
    span = hi - lo
    return float(f"{span / 100:.1g}") if span > 0 else 0.01


def spec_widget(spec, key: str, *, label: str | None = None, name: str = "", bind: str | None = None,
                slider: bool = True, container=None, default: Any = None, on_change=None, args=None) -> Any:
    """Render the widget for ``spec`` under ``key`` and return its value.

    ``spec`` needs ``default`` and ``help``; optional ``kind`` (float|int|bool|choice|floats, default
    float), ``range``, ``choices``, ``step``. ``default`` overrides ``spec.default`` (e.g. a preset's
    own prediction). ``bind="query-params"`` puts the value in the URL. ``slider=False`` uses number
    inputs for numbers (better for values spanning decades, like a smoothing constant).
    """
    box = container or st
    kind = getattr(spec, "kind", "float")
    label = label or _pretty(name or key)
    value = spec.default if default is None else default
    common: dict[str, Any] = {"key": key, "help": spec.help, "on_change": on_change, "args": args}
    if bind:
        common["bind"] = bind
    if key in st.session_state:  # seeded elsewhere (or already rendered): no value= (Streamlit warns)
        init: dict[str, Any] = {}
    else:
        init = {"value": value}
    if kind == "bool":
        return box.toggle(label, **init, **common)
    if kind == "choice":
        options = list(spec.choices)
        idx = {"index": options.index(value) if value in options else 0} if init else {}
        return box.selectbox(label, options, **idx, **common)
    if kind == "floats":
        text = box.text_input(label, **({"value": _floats_text(value)} if init else {}),
                              placeholder="empty = none; e.g. 1, 2.5", **common)
        return parse_floats(text)
    if kind == "matrix":
        from segloss_core.core.spec import matrix_text

        text = box.text_input(label, **({"value": matrix_text(value)} if init else {}),
                              placeholder="empty = default; rows separated by ';', e.g. 0,1;1,0", **common)
        try:
            return parse_param_text(spec, text, name or key)
        except ValueError:
            return None  # callers show the message next to the widget (ui.params.editor)
    rng = getattr(spec, "range", None)
    if kind == "int":
        lo, hi = (int(rng[0]), int(rng[1])) if rng else (None, None)
        if init:
            init = {"value": int(value)}
        if slider and rng:
            return box.slider(label, lo, hi, step=int(getattr(spec, "step", None) or 1), **init, **common)
        return box.number_input(label, min_value=lo, max_value=hi, step=1, **init, **common)
    lo, hi = (float(rng[0]), float(rng[1])) if rng else (None, None)
    if init:
        init = {"value": float(value)}
    if slider and rng:
        return box.slider(label, lo, hi, step=_float_step(spec, lo, hi), **init, **common)
    step = getattr(spec, "step", None)
    return box.number_input(label, min_value=lo, max_value=hi, step=float(step) if step else None,
                            format="%g", **init, **common)


def _floats_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return f"{value:g}"
    return ", ".join(f"{float(v):g}" for v in value)


TEXT_KINDS = ("floats", "matrix")


def param_text(spec, value) -> str:
    """A text-input kind's value as the text its widget shows (``None`` -> ``""``)."""
    if spec.kind == "matrix":
        from segloss_core.core.spec import matrix_text

        return matrix_text(value)
    return _floats_text(value)


def parse_param_text(spec, text: str | None, name: str = "value"):
    """The text of a ``"floats"`` or ``"matrix"`` widget -> its value; bad text -> ``ValueError`` (one line)."""
    if spec.kind == "matrix":
        return spec.validate(name, text)
    return parse_floats(text)


def parse_floats(text: str | None):
    """``"1, 2.5"`` -> ``(1.0, 2.5)``; empty -> ``None``; bad text -> ``ValueError`` (one line)."""
    if text is None or not str(text).strip():
        return None
    parts = [p for p in str(text).replace(";", ",").split(",") if p.strip()]
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


ALL_FOREGROUND = "all foreground classes (merged)"


def binary_view_picker(case, key: str, lead: str):
    """Slice slider (3-D) + foreground-class picker (multi-class) for pages whose maths is binary.

    Shows an info line starting with ``lead`` that says which view is used. Returns the 2-D case and
    the chosen foreground class (``None`` = all foreground classes merged)."""
    sliced = case.ndim == 3
    if sliced:
        z = st.slider("Slice", 0, case.gt.shape[0] - 1, case.gt.shape[0] // 2, key=key + "slice")
        case = case.slice(z)
    fg_class = None
    if not case.is_binary:
        options = [ALL_FOREGROUND] + list(range(1, case.num_classes))
        pick = st.selectbox("Foreground", options, key=key + "fg_class",
                            format_func=lambda k: k if k == ALL_FOREGROUND else f"{k}: {case.class_names[k]}")
        fg_class = None if pick == ALL_FOREGROUND else int(pick)
    st.info(lead + " the **foreground-vs-background view** of the current "
            + ("2-D slice" if sliced else "2-D case")
            + (" (all foreground classes merged into one)" if not case.is_binary and fg_class is None else "")
            + ". Loss parameters are the Playground's.", icon=":material/info:")
    return case, fg_class
