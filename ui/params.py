"""The loss parameter editor, generated from the registry's ParamSpecs (no per-loss UI code), and
the one-click convention sets of :mod:`segloss_core.core.conventions`."""

from __future__ import annotations

import streamlit as st

from segloss_core import get_loss, list_losses
from segloss_core.core.conventions import CONVENTIONS, convention_params

from .session import current_params, set_params
from .widgets import TEXT_KINDS, param_text, parse_param_text, spec_widget

CONV_KEY = "segloss_convention"
SKIPPED_KEY = "segloss_convention_skipped"
WIDGET_PREFIX = "lp__"


def widget_key(loss: str, param: str) -> str:
    return f"{WIDGET_PREFIX}{loss}__{param}"


def _forget_widgets() -> None:
    for k in [k for k in st.session_state if str(k).startswith(WIDGET_PREFIX)]:
        del st.session_state[k]


def apply_convention(name: str) -> None:
    """Replace every loss's parameters by convention set ``name`` (a button callback)."""
    params, skipped = convention_params(name)
    set_params(params)
    st.session_state[CONV_KEY] = name
    st.session_state[SKIPPED_KEY] = skipped
    _forget_widgets()


def _reset_loss(loss: str) -> None:
    params = dict(current_params())
    params.pop(loss, None)
    set_params(params)
    st.session_state[CONV_KEY] = "custom"
    _forget_widgets()


def _slider_ok(spec) -> bool:
    if spec.kind not in ("float", "int") or not spec.range:
        return False
    step = spec.step or (1 if spec.kind == "int" else None)
    return bool(step) and (spec.range[1] - spec.range[0]) / step <= 1000


def _on_edit(loss: str, param: str) -> None:
    """Store an edited value in the shared parameters (only values that differ from defaults)."""
    spec = get_loss(loss)
    value = st.session_state.get(widget_key(loss, param))
    if spec.params[param].kind in TEXT_KINDS:
        try:
            value = parse_param_text(spec.params[param], value, param)
        except ValueError:
            return  # shown next to the widget
    params = {k: dict(v) for k, v in current_params().items()}
    mine = params.setdefault(loss, {})
    if value == spec.params[param].default:
        mine.pop(param, None)
    else:
        mine[param] = value
    set_params(params)
    st.session_state[CONV_KEY] = "custom"


def convention_buttons() -> None:
    st.markdown("**Convention sets**: one click sets every loss's parameters to a library's defaults.")
    active = st.session_state.get(CONV_KEY, "segloss")
    cols = st.columns(len(CONVENTIONS))
    for col, (name, conv) in zip(cols, CONVENTIONS.items(), strict=True):
        col.button(conv.label, key=f"conv_{name}", on_click=apply_convention, args=(name,), help=conv.source,
                   type="primary" if active == name else "secondary", width="stretch")
    label = CONVENTIONS[active].label if active in CONVENTIONS else "custom parameters"
    st.caption(f"In force: **{label}**.")
    if active in CONVENTIONS and (CONVENTIONS[active].caveats or st.session_state.get(SKIPPED_KEY)):
        with st.expander(f"What {label} cannot reproduce here"):
            for line in CONVENTIONS[active].caveats:
                st.markdown(f"- {line}")
            for line in st.session_state.get(SKIPPED_KEY) or []:
                st.markdown(f"- not applied: {line}")


def editor() -> None:
    """Pick a loss, edit its parameters; the table above follows."""
    convention_buttons()
    names = [n for n in list_losses() if get_loss(n).params]
    if not names:
        st.info("No loss has parameters yet.")
        return
    params = current_params()
    edited = [n for n in names if params.get(n)]
    loss = st.selectbox("Loss to edit", names, key="param_loss",
                        format_func=lambda n: f"{get_loss(n).title}{'  (edited)' if n in edited else ''}")
    spec = get_loss(loss)
    st.caption(spec.summary)
    mine = params.get(loss, {})
    cols = st.columns(2)
    for i, (pname, pspec) in enumerate(spec.params.items()):
        key = widget_key(loss, pname)
        if key not in st.session_state:
            value = mine.get(pname, pspec.default)
            if pspec.kind in TEXT_KINDS:
                value = param_text(pspec, value)
            st.session_state[key] = value
        box = cols[i % 2]
        spec_widget(pspec, key, name=pname, slider=_slider_ok(pspec), container=box,
                    on_change=_on_edit, args=(loss, pname))
        if pspec.kind in TEXT_KINDS:
            try:
                parse_param_text(pspec, st.session_state.get(key), pname)
            except ValueError as err:
                box.error(str(err))
    c1, c2 = st.columns([1, 3])
    c1.button("Reset this loss", key="reset_loss", on_click=_reset_loss, args=(loss,),
              disabled=not mine)
    if edited:
        c2.caption("Edited: " + "; ".join(
            f"{n}: " + ", ".join(f"{k}={v}" for k, v in params[n].items()) for n in edited))
