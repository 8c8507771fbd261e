r"""Loss landscapes: every loss (and the metrics) over a grid of perturbations of one prediction.

A landscape evaluates losses at the predictions :func:`segloss_core.data.perturb.apply` makes from the
given one along two named perturbation axes (``x``, ``y``), e.g. shift x by -10..10 px and dilate by
-8..8 px, on an ``n x n`` grid, and marks where each loss has its minimum, next to where the metrics
(1 - Dice, 1 - Jaccard of the arg-max prediction, optionally HD95) have theirs.

Convention:
    - ``losses[name][i, j]`` is the loss at ``y = y_values[i]``, ``x = x_values[j]`` (rows = y);
      each value is the loss of that single prediction, exactly ``segloss_core.compute(name, p, g,
      **params)`` for a batch of one (``reduction="none"`` on the grid; ``batch=True`` therefore
      changes nothing).
    - The *current point* is the given prediction itself: each axis at its perturbation's
      ``identity`` (0 for shifts, dilation, areas, noise; 1 for ``logit_scale``). Its loss values
      are in ``current_values`` even when it lies outside the ranges.
    - Metrics are computed from the arg-max prediction, per foreground class, as
      :mod:`segloss_core.core.metrics` defines them, averaged over the classes where they are defined
      (a class with an empty ground truth is skipped; NaN when no class is defined, e.g. an empty
      ground truth). Grids hold ``1 - Dice`` and ``1 - Jaccard`` (lower is better, like a loss).
      HD95 (``hd95=True`` or a coarse size ``m``) is computed on an ``m x m`` sub-grid of the same
      ranges (one distance computation per point, ~3 ms at 256 x 256), NaN where undefined.
    - Speed: the ``n x n`` perturbed predictions are built by one batched ``perturb.apply`` per
      chunk (at most ``chunk_bytes`` of probabilities at a time, so 41 x 41 x 512 x 512 never sits
      in memory at once); region losses with a ``from_stats`` form share **one**
      :func:`segloss_core.core.stats.soft_confusion` per chunk (one per distinct ``soft_label``
      setting); the other losses run their function on the chunk with ``reduction="none"``
      (boundary losses take the ground-truth distance map from :mod:`segloss_core.core.distance`'s cache).
    - ``device="auto"``: CUDA when available. Float64 inputs are computed in float64, anything
      else in float32.

>>> from segloss_core.analyses.landscape import landscape
>>> from segloss_core.data.presets import make_case
>>> case = make_case("disk", 128)
>>> res = landscape(case.probs, case.gt, x=("shift_x", -10, 10), y=("dilate", -8, 8), n=21)
>>> res.losses["dice"].shape
(21, 21)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core._tensors import one_hot, resolve_device
from ..core.engine import Plan, shared_confusion
from ..core.registry import get_loss, list_losses
from ..core.stats import SoftConfusion, hard_counts
from ..data import perturb as P
from ..data.perturb import channel_argmax

#: The page's and the CLI's default losses.
DEFAULT_LOSSES = ("ce", "dice", "iou", "tversky", "focal", "boundary")
#: Metric grids available (values are 1 - metric).
METRICS = ("dice", "jaccard")
#: Default range of each axis when only its name is given.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "shift_x": (-10.0, 10.0),
    "shift_y": (-10.0, 10.0),
    "dilate": (-8.0, 8.0),
    "softness": (0.0, 4.0),
    "logit_scale": (0.1, 4.0),
    "fp_area": (0.0, 1000.0),
    "fn_fraction": (0.0, 1.0),
    "noise": (0.0, 2.0),
}
#: Default bound on the probabilities held at once per chunk (the peak is a few times this).
CHUNK_BYTES = 4 * 1024 * 1024
#: Largest n per axis.
MAX_N = 201

Progress = Callable[[float], None]


@dataclass
class LandscapeResult:
    """A 2-D landscape. Arrays are numpy float64; grids are ``(len(y_values), len(x_values))``."""

    x_name: str
    y_name: str
    x_values: np.ndarray
    y_values: np.ndarray
    losses: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    current: tuple[float, float]
    current_values: dict[str, float]
    argmin: dict[str, tuple[float, float]]
    unavailable: dict[str, str] = field(default_factory=dict)
    hd95: np.ndarray | None = None
    hd95_x: np.ndarray | None = None
    hd95_y: np.ndarray | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    device: str = "cpu"

    @property
    def grids(self) -> dict[str, np.ndarray]:
        """Every loss grid, then ``"1 - dice"``, ``"1 - jaccard"`` (and ``"hd95"`` on its coarse grid)."""
        out = dict(self.losses)
        out.update({f"1 - {k}": v for k, v in self.metrics.items()})
        return out

    def minima(self) -> list[dict[str, Any]]:
        """One row per loss / metric: where its minimum is, its distance (in grid steps) from the
        minimum of ``1 - dice`` (the disagreement), and whether the minimum is flat (ties)."""
        return minima_table(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists; NaN stays NaN, the caller decides how to print it)."""
        out: dict[str, Any] = {
            "x_name": self.x_name, "y_name": self.y_name,
            "x_values": self.x_values.tolist(), "y_values": self.y_values.tolist(),
            "losses": {k: v.tolist() for k, v in self.losses.items()},
            "metrics": {f"1 - {k}": v.tolist() for k, v in self.metrics.items()},
            "current": list(self.current), "current_values": dict(self.current_values),
            "argmin": {k: list(v) for k, v in self.argmin.items()},
            "unavailable": dict(self.unavailable), "seconds": self.seconds, "device": self.device,
        }
        if self.hd95 is not None:
            out["hd95"] = {"x_values": self.hd95_x.tolist(), "y_values": self.hd95_y.tolist(),
                           "values": self.hd95.tolist()}
        return out


@dataclass
class Landscape1DResult:
    """A 1-D slice: ``losses[name][k]`` at ``values[k]`` of perturbation ``name``."""

    name: str
    values: np.ndarray
    losses: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    current: float
    current_values: dict[str, float]
    argmin: dict[str, float]
    unavailable: dict[str, str] = field(default_factory=dict)
    hd95: np.ndarray | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "values": self.values.tolist(),
            "losses": {k: v.tolist() for k, v in self.losses.items()},
            "metrics": {f"1 - {k}": v.tolist() for k, v in self.metrics.items()},
            "current": self.current, "current_values": dict(self.current_values),
            "argmin": dict(self.argmin), "unavailable": dict(self.unavailable),
            "hd95": None if self.hd95 is None else self.hd95.tolist(), "fixed": dict(self.fixed),
            "seconds": self.seconds, "device": self.device,
        }


# ---------------------------------------------------------------- argument handling


def parse_axis(axis, n: int) -> tuple[str, np.ndarray]:
    """``"dilate"`` | ``("dilate", lo, hi)`` | ``("dilate", [v0, v1, ...])`` -> (name, values)."""
    if isinstance(axis, str):
        name, lo, hi, values = axis, *DEFAULT_RANGES.get(axis, (0.0, 1.0)), None
    else:
        try:
            items = list(axis)
        except TypeError:
            raise ValueError(f"an axis is a name or (name, low, high), got {axis!r}") from None
        if len(items) == 2 and not isinstance(items[1], (int, float)):
            name, values, lo, hi = items[0], np.asarray(items[1], dtype=np.float64).ravel(), 0.0, 0.0
        elif len(items) == 3:
            name, lo, hi, values = items[0], items[1], items[2], None
        else:
            raise ValueError(f"an axis is a name or (name, low, high), got {axis!r}")
    if name not in P.PERTURBATIONS:
        raise ValueError(f"unknown axis {name!r}; available: {', '.join(P.PERTURBATIONS)}")
    spec = P.PERTURBATIONS[name]
    if values is None:
        try:
            lo, hi = float(lo), float(hi)
        except (TypeError, ValueError):
            raise ValueError(f"axis {name!r}: low and high must be numbers, got {lo!r}, {hi!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            raise ValueError(f"axis {name!r}: need low < high, got {lo:g}, {hi:g}")
        values = np.linspace(lo, hi, n)
    if values.size < 1 or not np.isfinite(values).all():
        raise ValueError(f"axis {name!r}: values must be finite numbers")
    if values.min() < spec.range[0] or values.max() > spec.range[1]:
        raise ValueError(f"axis {name!r} ranges over [{spec.range[0]:g}, {spec.range[1]:g}] {spec.unit}, "
                         f"got {values.min():g}..{values.max():g}")
    return name, values


def _check_n(n) -> int:
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise ValueError(f"n must be an integer, got {n!r}") from None
    if not 2 <= n <= MAX_N:
        raise ValueError(f"n must lie in 2..{MAX_N}, got {n}")
    return n


def _inputs(pred, gt, spacing, device):
    from ..data.case import Case

    if isinstance(pred, Case):
        case = pred
        pred, gt = case.probs, case.gt if gt is None else gt
        spacing = case.spacing if spacing is None else spacing
    if gt is None:
        raise ValueError("landscape needs the ground-truth label map (or pass a Case)")
    dev = resolve_device(device)
    prep = P.prepare(pred, gt, device=dev)
    if prep.probs.dtype != torch.float64 and prep.probs.dtype != torch.float32:
        prep = P.Prepared(prep.probs.to(torch.float32), prep.gt)
    return prep, spacing, dev


#: Losses with a per-pixel mean form (``LossSpec.pixel_mean``): the value on the full image follows
#: from the value on the active crop (checked against ``segloss_core.compute`` in tests/test_landscape.py).
CROP_SEPARABLE = frozenset(n for n in list_losses() if get_loss(n).pixel_mean is not None)

#: A pixel is "settled background" when its foreground mass is at most this (per dtype); the
#: perturbations leave such pixels (farther from the object than their reach) unchanged.
SETTLED = {torch.float64: 1e-13, torch.float32: 1e-8}


def _plan(losses: Sequence[str] | None, params: dict[str, dict] | None, num_classes: int, spacing) -> Plan:
    """The engine's plan for ``losses``; bad names or parameters raise ``ValueError`` (one line)."""
    names = list(DEFAULT_LOSSES if losses is None else losses)
    if len(set(names)) != len(names):
        raise ValueError(f"loss names repeat: {names}")
    params = dict(params or {})
    for k in params:
        if k not in names:
            get_loss(k)  # unknown name -> ValueError; a known but unused loss is ignored
    for name in names:
        get_loss(name).resolve_params(params.get(name))  # raises on a bad parameter
    return Plan(names, params, spacing=spacing, num_classes=num_classes)


def _on_crop(plan: Plan) -> list[str]:
    """Losses that can be evaluated on the active crop: sums (``from_stats``) and pixel means."""
    return [n for n in plan.names if plan.specs[n].from_stats is not None or plan.specs[n].pixel_mean is not None]


def _add_conf(a: SoftConfusion, b: SoftConfusion, n_pixels: int) -> SoftConfusion:
    """Sums of two SoftConfusions over disjoint pixel sets (``b`` broadcast over the batch); the
    squared sums stay lazy (computed only if a loss reads them)."""
    inner = None if a.inner is None else a.inner + b.product_tp
    return SoftConfusion(a.tp + b.tp, a.pred_sum + b.pred_sum, a.target_sum + b.target_sum,
                         lambda: a.pred_sq + b.pred_sq, lambda: a.target_sq + b.target_sq, n_pixels, inner)


def _sub_conf(a: SoftConfusion, b: SoftConfusion) -> SoftConfusion:
    inner = None if a.inner is None else a.product_tp - b.product_tp
    return SoftConfusion(a.tp - b.tp, a.pred_sum - b.pred_sum, a.target_sum - b.target_sum,
                         a.pred_sq - b.pred_sq, a.target_sq - b.target_sq, a.n_pixels - b.n_pixels, inner)


class _Outside:
    """What lies outside the active crop is the base prediction's: its share of the sums and of
    the pixel means, computed once, added to every crop's (an :class:`segloss_core.core.engine.Extend`)."""

    def __init__(self, plan: Plan, base_full, target_full, base_crop, target_crop):
        self.n_full = target_full[0, 0].numel()
        self.scale = target_crop[0, 0].numel() / self.n_full
        soft_labels = {bool(plan.resolved[n].get("soft_label", False)) for n in plan.available
                       if plan.specs[n].from_stats is not None}
        pixel_names = [n for n in plan.available if plan.specs[n].pixel_mean is not None]
        with torch.no_grad():
            self.sums = {sl: _sub_conf(shared_confusion(base_full, target_full, sl),
                                       shared_confusion(base_crop, target_crop, sl)) for sl in soft_labels}
            whole = plan.evaluate(base_full, target_full, names=pixel_names)
            part = plan.evaluate(base_crop, target_crop, names=pixel_names)
        self.means = {n: (whole[n], part[n]) for n in pixel_names if n not in plan.unavailable}

    def conf(self, soft_label: bool, conf: SoftConfusion) -> SoftConfusion:
        return _add_conf(conf, self.sums[soft_label], self.n_full)

    def pixel(self, name: str, value: torch.Tensor) -> torch.Tensor:
        whole, part = self.means[name]
        return whole + self.scale * (value - part)


def _hard_counts(probs: torch.Tensor, gt_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tp, n_pred)`` per sample and foreground class ``(n, C - 1)`` of the arg-max prediction.

    ``gt_masks``: ``(C - 1, N)`` boolean masks of the foreground classes (flattened)."""
    n = probs.shape[0]
    if probs.shape[1] == 2:  # binary: foreground wins only when strictly more probable (argmax ties -> 0)
        return hard_counts((probs[:, 1] > probs[:, 0]).reshape(n, -1), gt_masks)
    return hard_counts(channel_argmax(probs).reshape(n, -1), gt_masks)


def _hard_metrics(tp: torch.Tensor, n_pred: torch.Tensor, n_gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """1 - Dice and 1 - Jaccard, mean over the foreground classes with a non-empty GT (NaN if none)."""
    defined = (n_gt > 0).expand_as(tp)
    dice = torch.where(defined, 2 * tp / (n_pred + n_gt).clamp_min(1), 0.0)
    jac = torch.where(defined, tp / (n_pred + n_gt - tp).clamp_min(1), 0.0)
    k = defined.sum(1).to(torch.float64)
    nan = torch.full_like(k, math.nan)
    return {
        "dice": torch.where(k > 0, 1 - dice.sum(1) / k.clamp_min(1), nan),
        "jaccard": torch.where(k > 0, 1 - jac.sum(1) / k.clamp_min(1), nan),
    }


def active_box(prep: P.Prepared, amounts: dict[str, np.ndarray]) -> tuple[slice, ...] | None:
    """The box outside which no perturbation in ``amounts`` changes the prediction (to within
    ``SETTLED``), or ``None`` when it is (nearly) the whole image.

    Seeds: pixels with foreground mass above ``SETTLED`` and the ground-truth foreground (so that
    ground-truth distance maps are the same on the crop), plus the reach of the false-positive
    blob; grown by the reach of the shifts (``max |s| + 1``), the dilation (``max |d| + k + 1``)
    and the blur (``3 sigma + 1``). ``logit_scale`` and ``noise`` change every pixel: no box.
    """
    active = {k: np.asarray(v, dtype=np.float64) for k, v in amounts.items()
              if not np.all(np.asarray(v) == P.PERTURBATIONS[k].identity)}
    if "logit_scale" in active or "noise" in active:
        return None
    tau = SETTLED.get(prep.probs.dtype, 1e-8)
    seed = (prep.probs[1:].sum(0) > tau).cpu().numpy() | (prep.gt > 0)
    spatial = prep.spatial
    lo = np.full(len(spatial), np.inf)
    hi = np.full(len(spatial), -np.inf)
    if seed.any():
        idx = np.argwhere(seed)
        lo, hi = idx.min(0).astype(float), idx.max(0).astype(float)
    if "fp_area" in active:
        mu = float(P.blob_level([active["fp_area"].max()], P.APPLY_WIDTH, len(spatial))[0])
        reach = max(mu, 0.0) * P.APPLY_WIDTH + 32 * P.APPLY_WIDTH
        c = np.asarray(prep.centre(), dtype=float)
        lo, hi = np.minimum(lo, c - reach), np.maximum(hi, c + reach)
    if not np.isfinite(lo).all():
        return None
    margin = 1.0
    for k in ("shift_x", "shift_y"):
        if k in active:
            margin += math.ceil(np.abs(active[k]).max()) + 1
    if "dilate" in active:
        margin += math.ceil(np.abs(active["dilate"]).max() + P.RAMP_K) + 1
    if "softness" in active:
        margin += math.ceil(3 * active["softness"].max()) + 1
    box = tuple(slice(int(max(0, math.floor(a - margin))), int(min(n, math.ceil(b + margin) + 1)))
                for a, b, n in zip(lo, hi, spatial, strict=True))
    if np.prod([b.stop - b.start for b in box]) > 0.9 * np.prod(spatial):
        return None
    return box


def _hd95(prep: P.Prepared, amounts: dict[str, np.ndarray], spacing, seed: int) -> np.ndarray:
    from ..core.metrics import mean_over_classes, segmentation_metrics

    m = len(next(iter(amounts.values())))
    out = np.full(m, np.nan)
    gt = prep.gt
    for k in range(m):
        probs = P.apply(prep, gt, {name: float(v[k]) for name, v in amounts.items()}, seed=seed)[0]
        hard = channel_argmax(probs.unsqueeze(0))[0].cpu().numpy()
        per = segmentation_metrics(hard, gt, spacing=spacing, num_classes=prep.num_classes)
        value = mean_over_classes(per)["hd95"]
        out[k] = np.nan if value is None else value
    return out


@dataclass
class _Frame:
    """The fixed parts of one landscape evaluation: full / cropped prediction and target."""

    prep: P.Prepared
    cprep: P.Prepared
    box: tuple[slice, ...] | None
    target: torch.Tensor  # (1, C, ...) one-hot, full image
    ctarget: torch.Tensor  # the same on the crop
    gt_masks: torch.Tensor  # (C - 1, N_crop) foreground masks on the crop
    n_gt: torch.Tensor  # (1, C - 1) ground-truth sizes

    @staticmethod
    def make(prep: P.Prepared, box) -> _Frame:
        C = prep.num_classes
        gt_t = torch.from_numpy(prep.gt).to(prep.probs.device)
        target = one_hot(gt_t.unsqueeze(0), C, dtype=prep.probs.dtype)
        sel = (slice(None), slice(None)) + (box or ())
        ctarget = target[sel].contiguous() if box else target
        gt_masks = torch.stack([gt_t[box or ()].reshape(-1) == c for c in range(1, C)])
        n_gt = torch.stack([(gt_t == c).sum() for c in range(1, C)]).to(torch.float64).unsqueeze(0)
        return _Frame(prep, prep.crop(box) if box else prep, box, target, ctarget, gt_masks, n_gt)

    def outside_counts(self) -> tuple:
        """Hard ``(tp, n_pred)`` of the base prediction outside the crop (zeros without a crop)."""
        if not self.box:
            return (0.0, 0.0)
        gt_t = torch.from_numpy(self.prep.gt).to(self.prep.probs.device)
        full_masks = torch.stack([gt_t.reshape(-1) == c for c in range(1, self.prep.num_classes)])
        tp_f, np_f = _hard_counts(self.prep.probs.unsqueeze(0), full_masks)
        tp_c, np_c = _hard_counts(self.cprep.probs.unsqueeze(0), self.gt_masks)
        return (tp_f - tp_c, np_f - np_c)

    def full(self, probs: torch.Tensor) -> torch.Tensor:
        """Crop predictions pasted into the base prediction."""
        base = self.prep.probs.unsqueeze(0)
        out = base.expand(probs.shape[0], *base.shape[1:]).clone()
        out[(slice(None), slice(None)) + self.box] = probs
        return out


def _chunk_losses(plan: Plan, frame: _Frame, probs: torch.Tensor, outside: _Outside | None) -> dict:
    """Loss values ``(m,)`` of one chunk of crop predictions (full images for the losses that need them)."""
    if outside is None:
        return plan.evaluate(probs, frame.ctarget)
    crop_names = _on_crop(plan)
    out = plan.evaluate(probs, frame.ctarget, names=crop_names, extend=outside)
    rest = [n for n in plan.names if n not in crop_names]
    if rest:
        out.update(plan.evaluate(frame.full(probs), frame.target, names=rest))
    return out


def _evaluate(prep: P.Prepared, amounts: dict[str, np.ndarray], plan: Plan, metrics: Sequence[str],
              seed: int, chunk_bytes: int, progress: Progress | None,
              crop: bool = True) -> tuple[dict, dict]:
    """Losses and metrics at every point of ``amounts`` (each ``(N,)``), in chunks, on the active crop."""
    total = len(next(iter(amounts.values())))
    frame = _Frame.make(prep, active_box(prep, amounts) if crop else None)
    outside = (_Outside(plan, prep.probs.unsqueeze(0), frame.target, frame.cprep.probs.unsqueeze(0),
                        frame.ctarget) if frame.box else None)
    count_out = frame.outside_counts() if metrics else (0.0, 0.0)
    needs_full = frame.box and any(n not in _on_crop(plan) for n in plan.available)
    per_sample = (prep.gt.size if needs_full else frame.cprep.gt.size) * prep.num_classes
    chunk = int(max(1, min(total, chunk_bytes // max(per_sample * prep.probs.element_size(), 1))))
    loss_out: dict[str, list] = {name: [] for name in plan.names}
    metric_out: dict[str, list] = {name: [] for name in metrics}
    tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in amounts.items()}
    stage_cache: dict = {}  # the first perturbation's rows, shared by consecutive chunks
    with torch.no_grad():
        for start in range(0, total, chunk):
            stop = min(total, start + chunk)
            probs = P.apply(frame.cprep, frame.cprep.gt, {k: v[start:stop] for k, v in tensors.items()},
                            seed=seed, cache=stage_cache)
            for name, value in _chunk_losses(plan, frame, probs, outside).items():
                if not isinstance(value, str):
                    loss_out[name].append(value)
            if metric_out:
                tp, n_pred = _hard_counts(probs, frame.gt_masks)
                hard = _hard_metrics(tp + count_out[0], n_pred + count_out[1], frame.n_gt)
                for name in metric_out:
                    metric_out[name].append(hard[name])
            del probs
            if progress is not None:
                progress(stop / total)
    losses = {k: torch.cat(v).double().cpu().numpy() for k, v in loss_out.items() if k not in plan.unavailable}
    mets = {k: torch.cat(v).double().cpu().numpy() for k, v in metric_out.items()}
    return losses, mets


def _check_metrics(metrics) -> tuple[str, ...]:
    metrics = tuple(metrics or ())
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r}; available: {', '.join(METRICS)}")
    return metrics


def grid_argmin(grid: np.ndarray) -> tuple[int, ...] | None:
    """Index of the smallest finite value of a 1-D or 2-D grid (NaN ignored; the first on ties), or
    ``None`` when no value is finite. The one arg-min of the landscapes, their tables and plots.

    >>> grid_argmin(np.array([[3.0, np.nan], [1.0, 1.0]]))
    (1, 0)
    """
    grid = np.asarray(grid, dtype=np.float64)
    if not np.isfinite(grid).any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.nanargmin(grid)), grid.shape))


def _argmin2(grid: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    at = grid_argmin(grid)
    return (math.nan, math.nan) if at is None else (float(xs[at[1]]), float(ys[at[0]]))


# ---------------------------------------------------------------- public API


def landscape(
    pred,
    gt=None,
    x=("shift_x", -10.0, 10.0),
    y=("dilate", -8.0, 8.0),
    n: int = 41,
    losses: Sequence[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    metrics: Sequence[str] = METRICS,
    hd95: bool | int = False,
    device="auto",
    chunk_bytes: int = CHUNK_BYTES,
    *,
    spacing=None,
    seed: int = 0,
    fixed: dict[str, float] | None = None,
    progress: Progress | None = None,
    crop: bool = True,
) -> LandscapeResult:
    """Every loss over an ``n x n`` grid of two perturbations of ``pred``.

    Args:
        pred: the prediction: ``(C, *spatial)`` probabilities, a binary foreground map
            ``(*spatial)``, or a :class:`segloss_core.Case` (then ``gt`` and ``spacing`` default to
            the case's).
        gt: integer label map ``(*spatial)``.
        x, y: axes, each a perturbation name (default range ``DEFAULT_RANGES[name]``),
            ``(name, low, high)`` (``n`` evenly spaced values), or ``(name, values)``.
        n: points per axis (2..201).
        losses: registry names (default ``DEFAULT_LOSSES``: ce, dice, iou, tversky, focal, boundary).
        params: ``{loss: {param: value}}`` overrides.
        metrics: any of ``("dice", "jaccard")``; grids of 1 - metric on every point.
        hd95: ``True`` (an ``min(n, 11)``-point sub-grid) or the sub-grid size; ``False`` skips it.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
        chunk_bytes: probabilities held per chunk (bounds the memory; the result does not depend on it).
        spacing: voxel size, for boundary losses and HD95.
        seed: seed of the ``noise`` perturbation.
        fixed: other perturbation amounts applied at every grid point (e.g. ``{"noise": 0.5}``).
        progress: called with the fraction done (0..1] after each chunk.
        crop: evaluate the perturbed predictions on the active box only (:func:`active_box`) and
            add the unchanged rest once: exact for region losses (sums) and ``CROP_SEPARABLE``
            losses (pixel means), to within ``SETTLED`` per pixel; other losses see full images.

    Returns:
        :class:`LandscapeResult`. Losses undefined for this case (e.g. ``lovasz_hinge`` with C > 2)
        are listed in ``unavailable`` with the reason, not in ``losses``.
    """
    t0 = time.perf_counter()
    n = _check_n(n)
    prep, spacing, dev = _inputs(pred, gt, spacing, device)
    x_name, xs = parse_axis(x, n)
    y_name, ys = parse_axis(y, n)
    if x_name == y_name:
        raise ValueError(f"the two axes must differ, both are {x_name!r}")
    metrics = _check_metrics(metrics)
    P._check_amounts(fixed or {})
    fixed = {k: P.PERTURBATIONS[k].validate(v) for k, v in (fixed or {}).items()}
    if x_name in fixed or y_name in fixed:
        raise ValueError("a fixed perturbation cannot also be an axis")
    plan = _plan(losses, params, prep.num_classes, spacing)
    gx, gy = np.meshgrid(xs, ys)  # rows = y
    ident = P.identity()
    cur = (ident[x_name], ident[y_name])
    amounts = {x_name: np.append(gx.ravel(), cur[0]), y_name: np.append(gy.ravel(), cur[1])}
    amounts.update({k: np.full(gx.size + 1, v) for k, v in fixed.items()})
    loss_vals, met_vals = _evaluate(prep, amounts, plan, metrics, seed, chunk_bytes, progress, crop)
    shape = (len(ys), len(xs))
    grids = {k: v[:-1].reshape(shape) for k, v in loss_vals.items()}
    met_grids = {k: v[:-1].reshape(shape) for k, v in met_vals.items()}
    current_values = {k: float(v[-1]) for k, v in loss_vals.items()}
    current_values.update({f"1 - {k}": float(v[-1]) for k, v in met_vals.items()})
    argmin = {k: _argmin2(g, xs, ys) for k, g in grids.items()}
    argmin.update({f"1 - {k}": _argmin2(g, xs, ys) for k, g in met_grids.items()})
    hd = hx = hy = None
    if hd95:
        m = min(n, 11) if hd95 is True else _check_n(hd95)
        hx, hy = np.linspace(xs[0], xs[-1], m), np.linspace(ys[0], ys[-1], m)
        hgx, hgy = np.meshgrid(hx, hy)
        hamounts = {x_name: hgx.ravel(), y_name: hgy.ravel()}
        hamounts.update({k: np.full(hgx.size, v) for k, v in fixed.items()})
        hd = _hd95(prep, hamounts, spacing, seed).reshape(m, m)
        argmin["hd95"] = _argmin2(hd, hx, hy)
    ordered = [k for k in plan.names if k in grids]
    return LandscapeResult(
        x_name, y_name, xs, ys, {k: grids[k] for k in ordered}, met_grids, cur, current_values, argmin,
        dict(plan.unavailable), hd, hx, hy, plan.resolved, time.perf_counter() - t0, str(dev),
    )


def landscape_1d(
    pred,
    gt=None,
    axis=("dilate", -8.0, 8.0),
    n: int = 81,
    losses: Sequence[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    metrics: Sequence[str] = METRICS,
    hd95: bool = False,
    device="auto",
    chunk_bytes: int = CHUNK_BYTES,
    *,
    spacing=None,
    seed: int = 0,
    fixed: dict[str, float] | None = None,
    progress: Progress | None = None,
    crop: bool = True,
) -> Landscape1DResult:
    """Every loss along one perturbation axis (a slice through the current point, or through
    ``fixed``, e.g. ``fixed={"shift_x": 3}`` for the slice at x = 3). Arguments as :func:`landscape`;
    ``hd95=True`` computes HD95 at every point of the slice."""
    t0 = time.perf_counter()
    n = _check_n(n)
    prep, spacing, dev = _inputs(pred, gt, spacing, device)
    name, values = parse_axis(axis, n)
    metrics = _check_metrics(metrics)
    P._check_amounts(fixed or {})
    fixed = {k: P.PERTURBATIONS[k].validate(v) for k, v in (fixed or {}).items()}
    if name in fixed:
        raise ValueError("a fixed perturbation cannot also be the axis")
    plan = _plan(losses, params, prep.num_classes, spacing)
    cur = P.identity()[name]
    amounts = {name: np.append(values, cur)}
    amounts.update({k: np.full(len(values) + 1, v) for k, v in fixed.items()})
    loss_vals, met_vals = _evaluate(prep, amounts, plan, metrics, seed, chunk_bytes, progress, crop)
    curves = {k: v[:-1] for k, v in loss_vals.items()}
    mcurves = {k: v[:-1] for k, v in met_vals.items()}
    current_values = {k: float(v[-1]) for k, v in loss_vals.items()}
    current_values.update({f"1 - {k}": float(v[-1]) for k, v in met_vals.items()})

    def arg(v):
        at = grid_argmin(v)
        return math.nan if at is None else float(values[at[0]])

    argmin = {k: arg(v) for k, v in curves.items()}
    argmin.update({f"1 - {k}": arg(v) for k, v in mcurves.items()})
    hd = None
    if hd95:
        hamounts = {name: values, **{k: np.full(len(values), v) for k, v in fixed.items()}}
        hd = _hd95(prep, hamounts, spacing, seed)
        argmin["hd95"] = arg(hd)
    ordered = [k for k in plan.names if k in curves]
    return Landscape1DResult(
        name, values, {k: curves[k] for k in ordered}, mcurves, cur, current_values, argmin,
        dict(plan.unavailable), hd, plan.resolved, fixed, time.perf_counter() - t0, str(dev),
    )


def minima_table(result: LandscapeResult) -> list[dict[str, Any]]:
    """Rows ``{"name", "kind", "x", "y", "value", "steps_from_metric", "flat"}`` for each loss and
    metric of a 2-D landscape: where its minimum is and how many grid steps (Chebyshev distance)
    it lies from the minimum of ``1 - dice`` (or the first metric present). ``flat`` counts the
    grid points within 1e-9 (relative) of the minimum."""
    xs, ys = result.x_values, result.y_values
    ref_name = next((f"1 - {m}" for m in METRICS if m in result.metrics), None)

    loc = grid_argmin
    ref = loc(result.metrics[ref_name.removeprefix("1 - ")]) if ref_name else None
    rows = []
    entries = [(k, "loss", g) for k, g in result.losses.items()]
    entries += [(f"1 - {k}", "metric", g) for k, g in result.metrics.items()]
    for name, kind, grid in entries:
        where = loc(grid)
        if where is None:
            rows.append({"name": name, "kind": kind, "x": None, "y": None, "value": None,
                         "steps_from_metric": None, "flat": 0})
            continue
        i, j = where
        value = float(grid[i, j])
        flat = int(np.sum(np.abs(grid - value) <= 1e-9 * max(1.0, abs(value))))
        steps = None if ref is None else int(max(abs(i - ref[0]), abs(j - ref[1])))
        rows.append({"name": name, "kind": kind, "x": float(xs[j]), "y": float(ys[i]), "value": value,
                     "steps_from_metric": steps, "flat": flat})
    return rows


__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_LOSSES",
    "DEFAULT_RANGES",
    "METRICS",
    "Landscape1DResult",
    "LandscapeResult",
    "landscape",
    "landscape_1d",
    "grid_argmin",
    "minima_table",
    "parse_axis",
]
