"""Convention sets: the loss parameters that reproduce another library's defaults, and a summary of
the conventions in force for a given parameter choice.

Libraries disagree on exactly the knobs segloss exposes (``smooth``, ``include_background``,
``batch``, ``soft_label``, Tversky's ``alpha``/``beta``, Lovasz's ``per_image``, ...). A
:class:`ConventionSet` names one library's defaults; :func:`convention_params` turns it into the
per-loss parameter overrides that ``segloss_core.compute_all(..., params=...)`` takes, applying
each value only to the losses that have that parameter (and that accept the value).

Sets (each library's documented defaults; ``tests/test_app.py`` checks the MONAI and nnU-Net sets against MONAI):

* ``segloss``: the registry defaults: ``smooth=1e-5`` in numerator and denominator,
  background included in region losses, per-sample ratios, hard-label intersection.
* ``MONAI`` (1.6.1 ``DiceLoss``/``TverskyLoss``/``GeneralizedDiceLoss``/``FocalLoss``/
  ``DiceCELoss``/``HausdorffDTLoss``): ``smooth_nr = smooth_dr = 1e-5``, ``include_background=True``,
  ``batch=False``, ``squared_pred=False``, ``soft_label=False``, Tversky ``alpha = beta = 0.5``,
  focal ``gamma=2``, Hausdorff ``alpha=2`` without background, Dice+CE weights 1 and 1.
* ``SMP`` (0.6.0 ``DiceLoss``/``JaccardLoss``/``TverskyLoss``/``LovaszLoss`` in multiclass mode):
  always pooled over the batch (``batch=True``), ``smooth=0`` (SMP clamps the denominator with
  ``eps=1e-7`` instead), soft-label-correct intersection, background included, Tversky
  ``alpha = beta = 0.5`` with ``gamma=1``, Lovasz ``per_image=False``.
* ``kornia`` (0.9.0 ``dice_loss``/``tversky_loss``/``focal_loss``/``lovasz_*``): per sample,
  background included, ``eps=1e-8`` (kornia puts it in the denominator only; segloss's ``smooth``
  enters both, a difference of order 1e-8), Lovasz ``per_image=True``, focal ``gamma=2``.
* ``nnU-Net`` (v2 ``DC_and_CE_loss`` with ``MemoryEfficientSoftDiceLoss``): ``smooth=1e-5``,
  background excluded (``do_bg=False``), batch Dice (``batch_dice=True``, the usual 2-D plan
  setting), Dice + CE with weights 1 and 1, ``TopK`` at k = 10 %.

What a set cannot express is listed in its ``caveats`` (for example kornia's default "micro"
Dice pooling all classes, or SMP zeroing the loss of classes absent from the batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._tensors import EPS


@dataclass(frozen=True)
class ConventionSet:
    """One library's defaults, as segloss parameter values.

    ``common``: values applied to every loss of a family in ``families`` that has a parameter
    of that name. ``per_loss``: values for one loss only (any family; win over ``common``).
    ``caveats``: one-line differences the parameters cannot express.
    """

    name: str
    label: str
    source: str
    common: dict[str, Any] = field(default_factory=dict)
    per_loss: dict[str, dict[str, Any]] = field(default_factory=dict)
    caveats: tuple[str, ...] = ()
    families: tuple[str, ...] = ("region", "compound")


CONVENTIONS: dict[str, ConventionSet] = {
    "segloss": ConventionSet(
        name="segloss",
        label="segloss defaults",
        source="the registry's ParamSpec defaults",
    ),
    "MONAI": ConventionSet(
        name="MONAI",
        label="MONAI defaults",
        source="MONAI 1.6.1 monai/losses (DiceLoss, TverskyLoss, GeneralizedDiceLoss, FocalLoss, DiceCELoss)",
        common={"smooth": 1e-5, "include_background": True, "batch": False, "squared": False,
                "soft_label": False},
        per_loss={
            "tversky": {"alpha": 0.5, "beta": 0.5},
            "focal_tversky": {"alpha": 0.5, "beta": 0.5},
            "focal": {"gamma": 2.0},
            "hausdorff_dt": {"alpha": 2.0, "include_background": False},
            "boundary": {"include_background": True},
            "dice_ce": {"lambda_dice": 1.0, "lambda_ce": 1.0},
        },
        caveats=(
            "MONAI FocalLoss defaults to a sigmoid; with use_softmax=True its 'mean' is segloss focal / C.",
            "MONAI GeneralizedDiceLoss gives an empty class the largest finite weight of the sample.",
        ),
    ),
    "SMP": ConventionSet(
        name="SMP",
        label="SMP defaults",
        source="segmentation_models_pytorch 0.6.0 losses, mode='multiclass'",
        common={"smooth": 0.0, "include_background": True, "batch": True, "soft_label": True},
        per_loss={
            "tversky": {"alpha": 0.5, "beta": 0.5},
            "focal_tversky": {"alpha": 0.5, "beta": 0.5, "gamma": 1.0},
            "focal": {"gamma": 2.0},
            "lovasz_softmax": {"per_image": False},
            "lovasz_hinge": {"per_image": False},
        },
        caveats=(
            "SMP clamps the Dice denominator at eps=1e-7 instead of smoothing.",
            "SMP sets the loss of a class absent from the whole batch to 0 (it still counts in the mean).",
            "SMP multiclass focal is a one-vs-rest sigmoid focal, not a softmax focal.",
        ),
    ),
    "kornia": ConventionSet(
        name="kornia",
        label="kornia defaults",
        source="kornia 0.9.0 kornia.losses (dice_loss, tversky_loss, focal_loss, lovasz_*)",
        common={"smooth": 1e-8, "include_background": True, "batch": False, "soft_label": False,
                "squared": False},
        per_loss={
            "focal": {"gamma": 2.0},
            "lovasz_softmax": {"per_image": True},
            "lovasz_hinge": {"per_image": True},
        },
        caveats=(
            "kornia dice_loss defaults to average='micro' (all classes pooled); segloss averages per class.",
            "kornia puts eps=1e-8 in the denominator only; segloss's smooth enters both.",
            "kornia tversky and macro dice average over the classes present in each sample only.",
        ),
    ),
    "nnU-Net": ConventionSet(
        name="nnU-Net",
        label="nnU-Net defaults",
        source="nnU-Net v2 nnUNetTrainer: DC_and_CE_loss(MemoryEfficientSoftDiceLoss, batch_dice, do_bg=False)",
        common={"smooth": 1e-5, "include_background": False, "batch": True, "squared": False,
                "soft_label": False},
        per_loss={
            "dice_ce": {"lambda_dice": 1.0, "lambda_ce": 1.0},
            "topk": {"k": 10.0},
        },
        caveats=(
            "nnU-Net picks batch_dice per configuration (plans file); True is the usual 2-D setting.",
            "nnU-Net clips the Dice denominator at 1e-8 after adding smooth.",
        ),
    ),
}


def _specs(specs=None) -> dict:
    if specs is not None:
        return dict(specs)
    from .registry import get_loss, list_losses

    return {n: get_loss(n) for n in list_losses()}


def convention_params(name: str, specs=None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per-loss parameter overrides for convention set ``name``, and what could not be applied.

    Returns ``(params, skipped)``: ``params`` maps loss name -> {parameter: value} holding only
    values that differ from the registry defaults (so ``params`` for ``"segloss"`` is empty);
    ``skipped`` lists ``"loss.param=value: reason"`` lines for values a loss rejects.
    ``specs`` (``{name: LossSpec}``) defaults to the whole registry.
    """
    if name not in CONVENTIONS:
        raise ValueError(f"unknown convention set {name!r}; available: {', '.join(CONVENTIONS)}")
    conv = CONVENTIONS[name]
    out: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for loss, spec in _specs(specs).items():
        common = conv.common if spec.category in conv.families else {}
        wanted = {k: v for k, v in common.items() if k in spec.params}
        wanted.update(conv.per_loss.get(loss, {}))
        chosen: dict[str, Any] = {}
        for key, value in wanted.items():
            if key not in spec.params:
                continue
            try:
                value = spec.params[key].validate(key, value)
            except ValueError as err:
                skipped.append(f"{loss}.{key}={value!r}: {err}")
                continue
            if value != spec.params[key].default:
                chosen[key] = value
        if chosen:
            out[loss] = chosen
    return out, skipped


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _group(values: dict[str, Any]) -> str:
    """``{"dice": 1e-5, "iou": 1e-5, "tversky": 0}`` -> ``"1e-05: dice, iou; 0: tversky"``."""
    by_value: dict[str, list[str]] = {}
    for loss, v in values.items():
        by_value.setdefault(_fmt(v), []).append(loss)
    return "; ".join(f"{v}: {', '.join(names)}" for v, names in by_value.items())


def empty_class_policy() -> str:
    """The region losses' empty-class policy (``segloss_core.core.losses.region.EMPTY_CLASS_POLICY``)."""
    try:
        from .losses import region
    except ImportError:  # pragma: no cover - the package always has it
        return "not documented"
    policy = getattr(region, "EMPTY_CLASS_POLICY", None)
    if policy is None:
        return "not documented yet (segloss_core.core.losses.region.EMPTY_CLASS_POLICY)"
    if isinstance(policy, dict):
        return "; ".join(f"{k}: {v}" for k, v in policy.items())
    return str(policy)


def conventions_in_force(params: dict[str, dict[str, Any]] | None = None, specs=None) -> list[dict[str, str]]:
    """What the table's numbers assume, as ``[{"aspect", "value"}]`` rows for display.

    Covers EPS, smoothing, background, reduction / batch pooling, soft-label intersection and the
    empty-class policy, reading the values in force (defaults updated with ``params``).
    """
    params = params or {}
    specs = _specs(specs)
    in_force = {}
    for loss, spec in specs.items():
        values = spec.defaults
        for k, v in params.get(loss, {}).items():
            if k in values:
                values[k] = v
        in_force[loss] = values

    def collect(key: str) -> dict[str, Any]:
        return {loss: vals[key] for loss, vals in in_force.items() if key in vals}

    rows = [{"aspect": "EPS", "value": f"{EPS:g}: clamps probabilities inside logs and fractional powers"}]
    smooth = collect("smooth")
    rows.append({"aspect": "smoothing", "value": (
        f"(2 TP + s) / (denominator + s) with s = {_group(smooth)}" if smooth else "none of the losses smooths")})
    bg = collect("include_background")
    if bg:
        incl = [k for k, v in bg.items() if v]
        excl = [k for k, v in bg.items() if not v]
        parts = []
        if incl:
            parts.append(f"included in {', '.join(incl)}")
        if excl:
            parts.append(f"excluded in {', '.join(excl)}")
        rows.append({"aspect": "background", "value": "; ".join(parts)})
    batch = collect("batch")
    pooled = [k for k, v in batch.items() if v]
    rows.append({"aspect": "reduction", "value": (
        "mean over samples; region ratios per sample and class, then the class mean"
        + (f"; batch-pooled (nnU-Net batch Dice) in {', '.join(pooled)}" if pooled else "")
        + " (one sample here, so batch pooling changes nothing)")})
    soft = collect("soft_label")
    if soft:
        on = [k for k, v in soft.items() if v]
        rows.append({"aspect": "intersection", "value": (
            f"soft-label form (|p|+|g|-|p-g|)/2 in {', '.join(on)}; sum p*g elsewhere" if on
            else "TP = sum p*g (hard-label form)")})
    per_image = collect("per_image")
    if per_image:
        rows.append({"aspect": "Lovasz per_image", "value": _group(per_image)})
    rows.append({"aspect": "empty class", "value": empty_class_policy()})
    return rows


__all__ = ["CONVENTIONS", "ConventionSet", "convention_params", "conventions_in_force", "empty_class_policy"]
