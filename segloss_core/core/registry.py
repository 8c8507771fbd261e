"""The loss registry: one ``LossSpec`` per loss, by name.

Each family module in ``segloss_core.core.losses`` defines its loss functions and a module-level
``SPECS`` list; this module gathers them. Adding a loss = one function + one ``LossSpec`` entry
in its family's ``SPECS``; it then appears in every page, table, CLI listing and test. The public
``compute`` / ``compute_all`` / ``loss_and_grad`` API evaluates them: :mod:`segloss_core.core.engine`.
"""

from __future__ import annotations

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


__all__ = [
    "CATEGORIES",
    "GROUPS",
    "ParamSpec",
    "LossSpec",
    "list_losses",
    "get_loss",
]
