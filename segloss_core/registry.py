"""The loss registry: one ``LossSpec`` per loss, and the public ``compute`` / ``loss_and_grad`` API.

Each family module in ``segloss_core.losses`` defines its loss functions and a module-level
``SPECS`` list; this module gathers them. Adding a loss = one function + one ``LossSpec`` entry
in its family's ``SPECS``; it then appears in every page, table, CLI listing and test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._tensors import EPS, check_pair, reduce_samples
from .spec import CATEGORIES, GROUPS, LossSpec, ParamSpec


def _collect() -> dict[str, LossSpec]:
    from .losses import boundary, compound, distribution, region, topology

    specs: dict[str, LossSpec] = {}
    for module in (distribution, region, boundary, compound, topology):
        for spec in module.SPECS:
            if spec.name in specs:
                raise RuntimeError(f"loss {spec.name!r} registered twice")
            if spec.category not in CATEGORIES:
                raise RuntimeError(f"loss {spec.name!r} has unknown category {spec.category!r}")
            specs[spec.name] = spec
    return specs


_REGISTRY: dict[str, LossSpec] | None = None


def _registry() -> dict[str, LossSpec]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _collect()
    return _REGISTRY


def list_losses(category: str | None = None) -> list[str]:
    """Registry names, in taxonomy order (distribution, region, boundary, compound, topology)."""
    return [n for n, s in _registry().items() if category is None or s.category == category]


def get_loss(name: str) -> LossSpec:
    """The ``LossSpec`` registered under ``name``; unknown names raise a one-line ``ValueError``."""
    try:
        return _registry()[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(_registry())}") from None


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        reduce_samples(torch.zeros(1), reduction)  # raises reduce_samples' own message


def _call(spec: LossSpec, probs, target, reduction, params, spacing):
    from .engine import target_reason

    kw = spec.resolve_params(params)
    reason = target_reason(spec, target)
    if reason is not None:
        raise ValueError(reason)
    if spec.uses_spacing:
        kw["spacing"] = spacing
    return spec.fn(probs, target, reduction=reduction, **kw)


def compute(name: str, probs, target, reduction: str = "mean", *, spacing=None, **params) -> torch.Tensor:
    """Value of loss ``name`` at ``probs`` (B, C, *spatial) against one-hot ``target``.

    ``reduction="mean"`` (0-dim), ``"sum"``, or ``"none"``: shape ``(B,)``, each sample's loss as
    if it were evaluated alone (for batch-pooled settings such as ``batch=True``, ``topk`` or
    ``lovasz_softmax(per_image=False)`` the mean of these differs from the pooled value).
    """
    spec = get_loss(name)
    probs, target = check_pair(probs, target)
    _check_reduction(reduction)
    return _call(spec, probs, target, reduction, params, spacing)


def loss_and_grad(
    name: str, probs, target, wrt: str = "probs", reduction: str = "mean", *, spacing=None, **params
) -> tuple[float, torch.Tensor]:
    """Loss value and its gradient, same shape as ``probs``.

    ``wrt="probs"``: d loss / d probs at the given probabilities.
    ``wrt="logits"``: d loss / d z with ``z = log(clamp(probs, EPS))``, the loss evaluated at
    ``softmax(z)`` (equal to ``probs`` except where probs < EPS), so hard 0/1 predictions have
    finite logit gradients; CE's is ``(softmax(z) - g) / N``.
    """
    out = losses_and_grads([name], probs, target, wrt=wrt, reduction=reduction, spacing=spacing,
                           params={name: params}, raise_errors=True)
    return out[name]


def losses_and_grads(
    names: Sequence[str],
    probs,
    target,
    wrt: str = "probs",
    reduction: str = "mean",
    *,
    spacing=None,
    params: dict[str, dict[str, Any]] | None = None,
    raise_errors: bool = False,
) -> dict[str, tuple[float, torch.Tensor] | str]:
    """``loss_and_grad`` for several losses on one validated input (one leaf, one graph per loss).

    With ``raise_errors=False`` a loss that is undefined here (e.g. ``lovasz_hinge`` for C > 2)
    maps to a one-line reason string instead of a ``(value, grad)`` pair.
    """
    from .engine import evaluate

    if wrt not in ("probs", "logits"):
        raise ValueError(f"wrt must be 'probs' or 'logits', got {wrt!r}")
    probs, target = check_pair(probs, target)
    _check_reduction(reduction)
    out = evaluate(names, probs, target, params=params, spacing=spacing, reduction=reduction, grad=wrt,
                   on_error="raise" if raise_errors else "reason", validate=False)
    return {name: v.removeprefix("n/a: ") if isinstance(v, str) else (float(v[0].sum()), v[1])
            for name, v in out.items()}


def compute_all(
    probs,
    target,
    names: Sequence[str] | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    spacing=None,
    reduction: str = "mean",
) -> dict[str, float | list[float] | str]:
    """Every registered loss (or ``names``) at once: ``{name: value}`` or ``{name: "n/a: reason"}``.

    ``reduction="none"`` gives each loss's per-sample values as a list of ``B`` floats. Shared work
    (one soft TP/FP/FN table per ``soft_label`` setting, per-pixel terms) is done once:
    :mod:`segloss_core.engine`.
    """
    from .engine import evaluate

    probs, target = check_pair(probs, target)
    _check_reduction(reduction)
    out = evaluate(names or list_losses(), probs, target, params=params, spacing=spacing, reduction=reduction,
                   validate=False)
    return {name: v if isinstance(v, str) else (v.tolist() if reduction == "none" else float(v))
            for name, v in out.items()}


__all__ = [
    "EPS",
    "CATEGORIES",
    "GROUPS",
    "ParamSpec",
    "LossSpec",
    "list_losses",
    "get_loss",
    "compute",
    "loss_and_grad",
    "losses_and_grads",
    "compute_all",
]
