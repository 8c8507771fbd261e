"""What a loss is, as data: ``ParamSpec`` (one parameter) and ``LossSpec`` (one loss).

This module imports nothing from the loss families or the registry, so ``losses/*`` can build
their ``SPECS`` lists from it and :mod:`segloss_core.core.registry` can gather them without an import
cycle. ``segloss_core.core.registry`` re-exports both classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

CATEGORIES = ("distribution", "region", "boundary", "compound", "topology")

#: Display groups (the agreement page's family means), each loss's ``LossSpec.group``; a loss
#: that names none gets its category's group.
GROUPS = {
    "metric-sensitive": "metric-sensitive (Dice, IoU, Tversky, Lovász …)",
    "pixel-wise": "pixel-wise (CE, WCE, focal, TopK …)",
    "distance-based": "distance-based (boundary, Hausdorff DT)",
    "compound": "compound (Dice + CE, Combo, exp-log, region size)",
    "topology": "topology (clDice)",
}
_CATEGORY_GROUP = {"distribution": "pixel-wise", "region": "metric-sensitive", "boundary": "distance-based",
                   "compound": "compound", "topology": "topology"}

#: The reason a ``hard_targets_only`` loss gives for soft targets (shown as "n/a: ...").
HARD_TARGETS_ONLY = "hard (one-hot) targets only"


def parse_matrix(text: str) -> tuple[tuple[float, ...], ...] | None:
    """``"0,1;1,0"`` (rows separated by ``;``, entries by ``,`` or spaces) -> nested tuples; blank -> ``None``.

    The text syntax of ``"matrix"`` parameters, shared by the CLI (``--param l.m=0,1;1,0``) and the UI.
    """
    if text is None or not str(text).strip() or str(text).strip().lower() in ("none", "null"):
        return None
    rows = [r for r in str(text).split(";") if r.strip()]
    try:
        return tuple(tuple(float(v) for v in r.replace(",", " ").split()) for r in rows)
    except ValueError:
        raise ValueError(f"expected a matrix like 0,1;1,0 (rows separated by ';'), got {text!r}") from None


def matrix_text(value) -> str:
    """The inverse of :func:`parse_matrix`: ``((0, 1), (1, 0))`` -> ``"0,1;1,0"`` (``None`` -> ``""``)."""
    if value is None:
        return ""
    return ";".join(",".join(f"{float(v):g}" for v in row) for row in value)


def _validate_matrix(name: str, value: Any) -> tuple[tuple[float, ...], ...] | None:
    """A square, finite, non-negative matrix with a zero diagonal and a positive entry (a distance
    matrix between classes), as nested tuples (hashable, JSON-able); text goes through
    :func:`parse_matrix`; ``None`` stays ``None``."""
    if isinstance(value, str):
        value = parse_matrix(value)
    if value is None:
        return None
    try:
        rows = tuple(tuple(float(v) for v in row) for row in (value.tolist() if hasattr(value, "tolist") else value))
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r} must be a matrix of numbers (e.g. 0,1;1,0), got {value!r}") from None
    n = len(rows)
    if n < 2 or any(len(r) != n for r in rows):
        raise ValueError(f"parameter {name!r} must be a square matrix of at least 2 x 2, got row lengths "
                         f"{[len(r) for r in rows]}")
    flat = [v for r in rows for v in r]
    if any(not math.isfinite(v) or v < 0 for v in flat):
        raise ValueError(f"parameter {name!r} must hold finite non-negative numbers")
    if any(rows[i][i] != 0 for i in range(n)):
        raise ValueError(f"parameter {name!r} must have a zero diagonal (a class is at distance 0 from itself)")
    if max(flat) <= 0:
        raise ValueError(f"parameter {name!r} needs a positive entry")
    return rows


@dataclass(frozen=True)
class ParamSpec:
    """One loss parameter, described well enough for a UI to build its widget.

    kind: ``"float"`` | ``"int"`` | ``"bool"`` | ``"choice"`` | ``"floats"`` (optional sequence,
    e.g. per-class weights; default ``None``) | ``"matrix"`` (optional square matrix, e.g. distances
    between classes; default ``None``; validated square, non-negative, zero diagonal; written
    ``0,1;1,0`` in text, see :func:`parse_matrix`). ``range`` is ``(low, high)`` for numbers,
    ``choices`` the allowed values for ``"choice"``.
    """

    default: Any
    kind: str
    help: str
    range: tuple[float, float] | None = None
    choices: tuple[Any, ...] | None = None
    step: float | None = None

    def validate(self, name: str, value: Any) -> Any:
        """Return ``value`` coerced to this kind, or raise ``ValueError`` with a one-line message."""
        if self.kind == "bool":
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise ValueError(f"parameter {name!r} must be true or false, got {value!r}")
            return bool(value)
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"parameter {name!r} must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.kind == "floats":
            if value is None:
                return None
            if isinstance(value, (int, float)):
                value = [value]
            try:
                vals = [float(v) for v in value]
            except (TypeError, ValueError):
                raise ValueError(f"parameter {name!r} must be a sequence of numbers, got {value!r}") from None
            if any(v != v or v < 0 for v in vals):
                raise ValueError(f"parameter {name!r} must hold non-negative numbers, got {vals}")
            return tuple(vals)
        if self.kind == "matrix":
            return _validate_matrix(name, value)
        try:
            num = int(value) if self.kind == "int" else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name!r} must be a number, got {value!r}") from None
        if num != num:
            raise ValueError(f"parameter {name!r} is NaN")
        if self.range is not None and not (self.range[0] <= num <= self.range[1]):
            raise ValueError(f"parameter {name!r}={num} is outside [{self.range[0]}, {self.range[1]}]")
        return num


@dataclass(frozen=True)
class LossSpec:
    """Everything the app, CLI and tests need to know about one loss.

    ``fn(probs, target, *, reduction="mean", **params)`` is the functional form.
    ``from_stats(conf, **params) -> (B,)``, where present, derives per-sample values from a
    ``SoftConfusion`` (region losses), so several region losses can share one pass over the data.
    ``pixel_mean(px, **params) -> (B,)``, where present: the loss is a per-sample mean over
    pixels of a term that depends only on the pixel's probabilities, its (hard, one-hot) target
    and ground-truth maps that do not change when the image is cropped around the object; ``px``
    is a :class:`segloss_core.core.engine.PixelView`, which computes the shared per-pixel quantities
    (true-class probability and its log, distance maps) once for every loss that reads them. The
    engine uses it for hard targets without gradients; the landscape evaluates such losses on a
    crop and adds the unchanged rest.
    ``uses_spacing``: the function takes ``spacing`` (voxel size) for its distance maps.
    ``binary_only``: raises ``ValueError`` for C > 2 (shown as "n/a: binary only").
    ``hard_targets_only``: defined for one-hot targets only; the registry and the engine report
    :data:`HARD_TARGETS_ONLY` for soft targets instead of calling the function.
    ``formula_for(resolved_params) -> str``, where present, builds the LaTeX for the parameters in
    force (see :meth:`formula_text`); ``formula`` may then be ``""`` and is filled with the
    formula at the defaults.
    ``slow``: costs far more than the rest (per-sample sorting or distance transforms); pages
    compute such losses one by one behind a progress bar.
    ``group``: display group, a key of :data:`GROUPS` (default: the category's group).
    """

    name: str
    title: str
    category: str
    fn: Callable[..., torch.Tensor]
    formula: str
    reference: str
    params: dict[str, ParamSpec] = field(default_factory=dict)
    from_stats: Callable[..., torch.Tensor] | None = None
    uses_spacing: bool = False
    binary_only: bool = False
    summary: str = ""
    pixel_mean: Callable[..., torch.Tensor] | None = None
    slow: bool = False
    group: str = ""
    hard_targets_only: bool = False
    formula_for: Callable[[dict[str, Any]], str] | None = None

    def __post_init__(self) -> None:
        if self.formula_for is not None and not self.formula:  # the formula at the default parameters
            object.__setattr__(self, "formula", self.formula_for(self.defaults))
        if not self.group:
            object.__setattr__(self, "group", _CATEGORY_GROUP.get(self.category, ""))
        if self.group not in GROUPS:
            raise ValueError(f"loss {self.name!r}: unknown group {self.group!r}; known: {', '.join(GROUPS)}")

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.params.items()}

    def formula_text(self, params: dict[str, Any] | None = None) -> str:
        """LaTeX of the loss for ``params`` (resolved against the defaults, bad values raise
        ``ValueError``): ``formula_for(resolved)``, or the fixed ``formula`` for a loss without one."""
        if self.formula_for is None:
            return self.formula
        return self.formula_for(self.resolve_params(params))

    def resolve_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults updated with ``params``; unknown names and bad values raise ``ValueError``."""
        return resolve_params(self.params, params, f"loss {self.name!r}")

    def bind(self, params: dict[str, Any] | None = None, *, spacing=None) -> BoundLoss:
        """This loss with its parameters resolved (bad ones raise ``ValueError``) and, if it uses
        one, the voxel spacing: everything a caller needs to evaluate it.

        >>> from segloss_core import get_loss
        >>> get_loss("tversky").bind({"alpha": 0.7}).params["alpha"]
        0.7
        """
        return BoundLoss(self, self.resolve_params(params), spacing if self.uses_spacing else None)


@dataclass(frozen=True)
class BoundLoss:
    """A :class:`LossSpec` with its parameters resolved and its spacing bound (:meth:`LossSpec.bind`).

    ``kwargs``: the keyword arguments of ``spec.fn`` beyond ``reduction``. Calling it evaluates the
    loss: ``bound(probs, target, reduction="mean")`` (validated like the loss's own function)."""

    spec: LossSpec
    params: dict[str, Any]
    spacing: Any = None

    @property
    def kwargs(self) -> dict[str, Any]:
        kw = dict(self.params)
        if self.spec.uses_spacing:
            kw["spacing"] = self.spacing
        return kw

    def __call__(self, probs, target, reduction: str = "mean") -> torch.Tensor:
        return self.spec.fn(probs, target, reduction=reduction, **self.kwargs)


def resolve_params(specs: dict[str, ParamSpec], params: dict[str, Any] | None, owner: str) -> dict[str, Any]:
    """Defaults of ``specs`` updated with ``params`` (each validated by its ``ParamSpec``); an unknown
    name or a bad value raises a one-line ``ValueError`` naming ``owner`` (``"loss 'dice'"``).

    >>> resolve_params({"k": ParamSpec(2.0, "float", "k", range=(0, 5))}, {"k": 3}, "loss 'x'")
    {'k': 3.0}
    """
    out = {k: p.default for k, p in specs.items()}
    for k, v in (params or {}).items():
        if k not in specs:
            known = ", ".join(specs) or "none"
            raise ValueError(f"{owner} has no parameter {k!r} (known: {known})")
        out[k] = specs[k].validate(k, v)
    return out
