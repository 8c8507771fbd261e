"""Per-pixel gradients of segmentation losses: where each loss pushes the prediction.

Everything the "Gradient maps" page shows is computed here (no Streamlit):

- :func:`gradient_maps`: the value and the gradient map ``(C, *spatial)`` of several losses in one
  :func:`segloss_core.losses_and_grads` call, w.r.t. probabilities or logits;
- :func:`pixel_groups`: inside / outside / boundary-band masks; :func:`group_histograms`: gradient
  magnitudes per group, with each group's share of the total;
- :func:`profile`: values along one line; :func:`pixel_report`: one pixel under every registered loss
  (its maps from :func:`all_gradient_maps`, or one loss at a time merged by :func:`merge_maps`;
  :func:`inspector_losses` leaves out the slow ones);
- :func:`normalised_difference` / :func:`log_ratio`: compare two maps of different scales;
- :func:`closed_form_gradient` and :func:`explain`: the closed forms of docs/theory.md
  (G1, G2, G6, G7) evaluated for the parameters actually in force, with numbers and a check
  against autograd;
- :func:`dice_vs_ce_scaling`: how the gradients change with the size of the object (disks).

Convention: gradients are those of the loss with ``reduction="mean"`` over a batch of one image, so
CE's carry the ``1/N`` of its mean over the ``N`` pixels and a region loss's the ``1/K`` of its mean over
the ``K`` classes it includes. ``wrt="logits"`` is the registry's: ``z = log(clamp(probs, EPS))`` and
the loss evaluated at ``softmax(z)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..core._tensors import EPS
from ..core.engine import evaluate, losses_and_grads
from ..core.registry import get_loss, list_losses
from ..data.case import Case

GROUPS = ("inside", "outside", "boundary")
#: dtype of the pixel inspector's maps (every loss at once: half the memory and time of float64)
INSPECTOR_DTYPE = torch.float32
DEFAULT_BOUNDARY_PX = 2
_WRT = ("probs", "logits")


# ----------------------------------------------------------------------------------------------
# gradient maps
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossGradient:
    """One loss on one case: its value, its gradient ``(C, *spatial)`` and the parameters in force."""

    name: str
    value: float
    grad: np.ndarray
    params: dict[str, Any]

    def channel(self, channel: int | None) -> np.ndarray:
        """Signed gradient of one class channel, or (``None``) the L2 norm over the channels."""
        if channel is None:
            return np.sqrt((self.grad**2).sum(0))
        return self.grad[channel]


@dataclass(frozen=True)
class GradientMaps:
    """The result of :func:`gradient_maps`: ``results[name]`` or ``unavailable[name]`` (a reason)."""

    wrt: str
    shape: tuple[int, ...]
    results: dict[str, LossGradient]
    unavailable: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> LossGradient:
        if name not in self.results:
            reason = self.unavailable.get(name, "not computed")
            raise KeyError(f"no gradient for {name!r}: {reason}")
        return self.results[name]

    def __contains__(self, name: str) -> bool:
        return name in self.results

    def channel_maps(self, channel: int | None) -> dict[str, np.ndarray]:
        """``{name: map}`` of one channel (signed) or of the L2 norm over channels (``None``)."""
        return {n: r.channel(channel) for n, r in self.results.items()}

    def magnitudes(self, channel: int | None) -> dict[str, np.ndarray]:
        """``{name: |gradient|}`` of one channel, or the L2 norm over channels (``None``)."""
        return {n: np.abs(r.channel(channel)) for n, r in self.results.items()}


def _check_wrt(wrt: str) -> None:
    if wrt not in _WRT:
        raise ValueError(f"wrt must be 'probs' or 'logits', got {wrt!r}")


def gradient_maps(
    case: Case,
    losses: Sequence[str] = ("dice", "ce"),
    wrt: str = "probs",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "auto",
    dtype: torch.dtype = torch.float64,
) -> GradientMaps:
    """Value and per-pixel gradient of each loss in ``losses`` on ``case``, in one batched call.

    .. math::
        G^{(\\ell)}_{k}(x) = \\frac{\\partial \\mathcal{L}_\\ell}{\\partial s_k(x)}
        \\quad\\text{or}\\quad \\frac{\\partial \\mathcal{L}_\\ell}{\\partial z_k(x)}

    Convention: the case is one image (batch of one), ``reduction="mean"``; the gradient has the
    case's shape ``(C, *spatial)`` and is returned as a numpy array of ``dtype`` on the CPU. A loss that is
    undefined here (e.g. ``lovasz_hinge`` for C > 2, or a bad parameter) goes to ``unavailable`` with
    its one-line reason instead of raising.

    Args:
        case: the ground truth and prediction.
        losses: registry names (unknown names raise ``ValueError``).
        wrt: ``"probs"`` or ``"logits"``.
        params: per-loss parameter overrides ``{name: {param: value}}``; others keep their defaults.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
        dtype: computation dtype (float64 by default; the maps are small).
    """
    _check_wrt(wrt)
    names = list(dict.fromkeys(losses))
    for name in names:
        get_loss(name)
    params = {k: dict(v or {}) for k, v in (params or {}).items()}
    probs, target = case.tensors(device=device, dtype=dtype)
    out = losses_and_grads(names, probs, target, wrt=wrt, spacing=case.spacing,
                           params={n: params.get(n, {}) for n in names})
    results: dict[str, LossGradient] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        item = out[name]
        if isinstance(item, str):
            unavailable[name] = item if item.startswith("n/a") else f"n/a: {item}"
            continue
        value, grad = item
        resolved = get_loss(name).resolve_params(params.get(name))
        results[name] = LossGradient(name, float(value), grad[0].to("cpu").numpy(), resolved)
    return GradientMaps(wrt, tuple(case.gt.shape), results, unavailable)


# ----------------------------------------------------------------------------------------------
# pixel groups, histograms, profiles, comparisons
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PixelGroups:
    """Boolean masks that partition the image: ``inside`` the objects, ``outside``, and the
    ``boundary`` band (pixels within ``boundary_px`` of a pixel with another label)."""

    inside: np.ndarray
    outside: np.ndarray
    boundary: np.ndarray
    boundary_px: float

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"inside": self.inside, "outside": self.outside, "boundary": self.boundary}

    def counts(self) -> dict[str, int]:
        return {k: int(v.sum()) for k, v in self.as_dict().items()}


def pixel_groups(gt: np.ndarray, boundary_px: float = DEFAULT_BOUNDARY_PX) -> PixelGroups:
    """Split the image into pixels inside the objects, outside them, and near a boundary.

    A pixel is in the ``boundary`` band when, for some foreground class k, its Euclidean distance
    (in pixels, pixel centres) to the nearest pixel on the other side of class k's boundary is at
    most ``boundary_px``: with ``boundary_px=2`` the band is the 2 pixels on each side. The rest of
    the foreground (``gt > 0``) is ``inside``, the rest of the background ``outside``. The three masks
    partition the image. 2-D or 3-D; a class that fills the whole image has no boundary.
    """
    gt = np.asarray(gt)
    if gt.ndim not in (2, 3):
        raise ValueError(f"ground truth must be 2-D or 3-D, got shape {gt.shape}")
    if not boundary_px >= 0:
        raise ValueError(f"boundary_px must be >= 0, got {boundary_px}")
    band = np.zeros(gt.shape, dtype=bool)
    if boundary_px > 0:
        for label in np.unique(gt):
            if label == 0:
                continue
            mask = gt == label
            if mask.all():
                continue
            band |= mask & (ndimage.distance_transform_edt(mask) <= boundary_px)
            band |= ~mask & (ndimage.distance_transform_edt(~mask) <= boundary_px)
    fg = gt > 0
    return PixelGroups(fg & ~band, ~fg & ~band, band, float(boundary_px))


@dataclass(frozen=True)
class GroupHistogram:
    """Histogram of one loss's gradient magnitudes per pixel group (shared bin ``edges``).

    ``counts[group]``: pixels per bin; ``zeros[group]``: pixels with exactly zero gradient (not in any
    bin on a log scale); ``stats[group]``: ``n``, ``mean``, ``median``, ``max`` of |grad| and
    ``share``, the group's fraction of the loss's total |grad| (sums to 1 over the groups).
    """

    edges: np.ndarray
    counts: dict[str, np.ndarray]
    zeros: dict[str, int]
    stats: dict[str, dict[str, float]]
    scale: str


def group_histograms(
    magnitudes: Mapping[str, np.ndarray],
    groups: PixelGroups | Mapping[str, np.ndarray],
    bins: int = 40,
    scale: str = "log",
) -> dict[str, GroupHistogram]:
    """Histograms of |gradient| per pixel group, one per loss.

    Args:
        magnitudes: ``{loss: |grad| map}`` (e.g. ``GradientMaps.magnitudes(channel)``).
        groups: :class:`PixelGroups` or ``{group: mask}``.
        bins: number of bins (shared by the groups of one loss).
        scale: ``"log"`` (log-spaced bins over the positive values: magnitudes span decades) or
            ``"linear"``.
    """
    if scale not in ("log", "linear"):
        raise ValueError(f"scale must be 'log' or 'linear', got {scale!r}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    masks = groups.as_dict() if isinstance(groups, PixelGroups) else dict(groups)
    out: dict[str, GroupHistogram] = {}
    for name, mag in magnitudes.items():
        mag = np.abs(np.asarray(mag, dtype=np.float64))
        total = float(mag.sum())
        positive = mag[mag > 0]
        if scale == "log":
            if positive.size:
                lo, hi = float(positive.min()), float(positive.max())
                if hi <= lo * (1 + 1e-9):
                    lo, hi = lo / 1.25, hi * 1.25
                edges = np.geomspace(lo, hi, bins + 1)
            else:
                edges = np.geomspace(1e-12, 1e-11, bins + 1)
        else:
            hi = float(mag.max()) if mag.size else 0.0
            edges = np.linspace(0.0, hi if hi > 0 else 1.0, bins + 1)
        counts, zeros, stats = {}, {}, {}
        for group, mask in masks.items():
            vals = mag[np.asarray(mask, dtype=bool)]
            inbin = vals[vals > 0] if scale == "log" else vals
            counts[group] = np.histogram(inbin, bins=edges)[0]
            zeros[group] = int((vals == 0).sum())
            stats[group] = {
                "n": int(vals.size),
                "mean": float(vals.mean()) if vals.size else float("nan"),
                "median": float(np.median(vals)) if vals.size else float("nan"),
                "max": float(vals.max()) if vals.size else float("nan"),
                "share": float(vals.sum() / total) if total > 0 else float("nan"),
            }
        out[name] = GroupHistogram(edges, counts, zeros, stats, scale)
    return out


@dataclass(frozen=True)
class Profile:
    """Values of several maps along one image line.

    ``axis`` is the array axis held fixed at ``position`` (0: row ``position``, a horizontal line;
    1: column ``position``, a vertical line); ``coords`` are the pixel indices along the line.
    """

    axis: int
    position: int
    coords: np.ndarray
    values: dict[str, np.ndarray]
    gt: np.ndarray | None = None


def profile(
    grad_maps: Mapping[str, np.ndarray], axis: int, position: int, gt: np.ndarray | None = None
) -> Profile:
    """Values of each 2-D map along row ``position`` (``axis=0``) or column ``position`` (``axis=1``).

    ``gt`` (optional label map of the same shape) is sampled along the same line, to shade the object.
    """
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (a row) or 1 (a column), got {axis!r}")
    maps = {k: np.asarray(v) for k, v in grad_maps.items()}
    shapes = {m.shape for m in maps.values()} | ({np.shape(gt)} if gt is not None else set())
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"profile needs 2-D maps of one shape, got shapes {sorted(shapes)}")
    shape = next(iter(shapes))
    if not 0 <= int(position) < shape[axis]:
        raise ValueError(f"position {position} is outside 0..{shape[axis] - 1}")
    position = int(position)
    values = {k: np.take(m, position, axis=axis) for k, m in maps.items()}
    line_gt = np.take(np.asarray(gt), position, axis=axis) if gt is not None else None
    return Profile(axis, position, np.arange(shape[1 - axis]), values, line_gt)


def normalised_difference(a: np.ndarray, b: np.ndarray, norm: str = "max") -> np.ndarray:
    """``a/||a|| - b/||b||``: the two maps on a common scale, then their difference.

    ``norm="max"`` divides each by its largest magnitude (each map then lies in [-1, 1] and the
    difference in [-2, 2]); ``"l2"`` by its Euclidean norm. An all-zero map stays zero.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps have different shapes {a.shape} and {b.shape}")
    if norm not in ("max", "l2"):
        raise ValueError(f"norm must be 'max' or 'l2', got {norm!r}")

    def scaled(m):
        n = float(np.abs(m).max()) if norm == "max" else float(np.sqrt((m**2).sum()))
        return m / n if n > 0 else np.zeros_like(m)

    return scaled(a) - scaled(b)


def log_ratio(a: np.ndarray, b: np.ndarray, rel_floor: float = 1e-12) -> np.ndarray:
    """``log10(|a| / |b|)`` per pixel; NaN where either magnitude is below ``rel_floor`` times its
    map's maximum (a ratio with a zero is not informative). +1 = ``a`` ten times stronger there."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    b = np.abs(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"maps have different shapes {a.shape} and {b.shape}")
    ok = (a > rel_floor * (a.max() if a.size else 0)) & (b > rel_floor * (b.max() if b.size else 0))
    ok &= (a > 0) & (b > 0)
    out = np.full(a.shape, np.nan)
    out[ok] = np.log10(a[ok] / b[ok])
    return out


def same_sign_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the pixels where both maps are nonzero that they push in the same direction."""
    a = np.asarray(a)
    b = np.asarray(b)
    both = (a != 0) & (b != 0)
    if not both.any():
        return float("nan")
    return float((np.sign(a[both]) == np.sign(b[both])).mean())


# ----------------------------------------------------------------------------------------------
# one pixel under every loss
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PixelReport:
    """The gradient at one pixel under each loss.

    ``rows``: one dict per loss with ``loss``, ``title``, ``category``, ``value`` (the loss), ``grad``
    (one number per class channel) and, for binary cases, ``foreground`` = grad[1] - grad[0], the
    derivative along "more foreground" (probabilities sum to one); or ``unavailable`` (a reason).
    """

    index: tuple[int, ...]
    label: int
    probs: tuple[float, ...]
    wrt: str
    rows: list[dict[str, Any]]


def all_gradient_maps(
    case: Case,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    wrt: str = "probs",
    device: str = "auto",
    dtype: torch.dtype = INSPECTOR_DTYPE,
) -> GradientMaps:
    """:func:`gradient_maps` for every registered loss (float32 by default: one map per loss)."""
    return gradient_maps(case, list_losses(), wrt=wrt, params=params, device=device, dtype=dtype)


def inspector_losses(slow: bool = True) -> list[str]:
    """Registered losses in registry order: all of them, or (``slow=False``) those without
    ``LossSpec.slow`` (sorting, distance transforms, soft skeletons: most of the time of all of them)."""
    return [n for n in list_losses() if slow or not get_loss(n).slow]


def merge_maps(parts: Sequence[GradientMaps]) -> GradientMaps:
    """One :class:`GradientMaps` from several computed on the same case and ``wrt`` (e.g. one loss
    each, cached separately); a later part's entry for a loss replaces an earlier one's."""
    if not parts:
        raise ValueError("no gradient maps to merge")
    first = parts[0]
    if any(p.wrt != first.wrt or p.shape != first.shape for p in parts):
        raise ValueError("gradient maps of different cases or wrt cannot be merged")
    results: dict[str, LossGradient] = {}
    unavailable: dict[str, str] = {}
    for p in parts:
        for name in [*p.results, *p.unavailable]:
            results.pop(name, None)
            unavailable.pop(name, None)
        results.update(p.results)
        unavailable.update(p.unavailable)
    return GradientMaps(first.wrt, first.shape, results, unavailable)


def pixel_report(
    case: Case,
    y: int,
    x: int,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    wrt: str = "probs",
    *,
    z: int | None = None,
    maps: GradientMaps | None = None,
    device: str = "auto",
) -> PixelReport:
    """The gradient at pixel ``(y, x)`` (``(z, y, x)`` for 3-D) under every registered loss.

    Pass ``maps`` (from :func:`all_gradient_maps` or :func:`merge_maps`, same case, params and wrt) to
    reuse computed maps: moving the pixel then costs nothing. A loss missing from ``maps`` gets a row
    with its ``unavailable`` reason (``"n/a: not computed"`` when it was not asked for).
    """
    index = (int(y), int(x)) if case.ndim == 2 else (int(z if z is not None else 0), int(y), int(x))
    if case.ndim == 3 and z is None:
        raise ValueError("a 3-D case needs z as well as y and x")
    for i, (c, n) in enumerate(zip(index, case.gt.shape, strict=True)):
        if not 0 <= c < n:
            raise ValueError(f"pixel index {index} is outside the image {case.gt.shape} (axis {i})")
    if maps is None:
        maps = all_gradient_maps(case, params, wrt=wrt, device=device)
    elif maps.wrt != wrt or maps.shape != tuple(case.gt.shape):
        raise ValueError("the given maps were computed for another case or wrt")
    rows: list[dict[str, Any]] = []
    for name in list_losses():
        spec = get_loss(name)
        row: dict[str, Any] = {"loss": name, "title": spec.title, "category": spec.category}
        if name in maps.results:
            r = maps.results[name]
            g = tuple(float(v) for v in r.grad[(slice(None),) + index])
            row.update(value=r.value, grad=g)
            if case.num_classes == 2:
                row["foreground"] = g[1] - g[0]
        else:
            row["unavailable"] = maps.unavailable.get(name, "n/a: not computed")
        rows.append(row)
    label = int(case.gt[index])
    probs = tuple(float(v) for v in case.probs[(slice(None),) + index])
    return PixelReport(index, label, probs, wrt, rows)


# ----------------------------------------------------------------------------------------------
# closed forms (docs/theory.md, G1-G7)
# ----------------------------------------------------------------------------------------------


def effective_probs(probs: np.ndarray, wrt: str) -> np.ndarray:
    """The probabilities the loss is evaluated at: ``probs`` itself for ``wrt="probs"``,
    ``softmax(log(clamp(probs, EPS)))`` for ``wrt="logits"`` (``probs`` except where < EPS)."""
    _check_wrt(wrt)
    p = np.asarray(probs, dtype=np.float64)
    if wrt == "probs":
        return p
    z = np.log(np.maximum(p, EPS))
    e = np.exp(z - z.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


def softmax_chain(probs: np.ndarray, grad_probs: np.ndarray) -> np.ndarray:
    """G7: d/dz_k = s_k (d/ds_k - sum_m s_m d/ds_m), over the channel axis 0."""
    s = np.asarray(probs, dtype=np.float64)
    return s * (grad_probs - (s * grad_probs).sum(0, keepdims=True))


@dataclass(frozen=True)
class DiceTerms:
    """Per-class soft sums and the closed-form Dice pieces (G1 / G2) for the classes in use."""

    classes: tuple[int, ...]
    intersection: np.ndarray
    pred_sum: np.ndarray
    target_sum: np.ndarray
    denominator: np.ndarray
    smooth: float
    squared: bool
    value: float
    off_class: np.ndarray
    on_class: np.ndarray | None


def dice_terms(probs: np.ndarray, gt: np.ndarray, params: Mapping[str, Any] | None = None) -> DiceTerms:
    """Soft sums I_k, |S_k|, |G_k| and the G1/G2 pieces of the registry's ``dice`` at ``probs``.

    With K included classes (``include_background`` decides whether channel 0 is one), the loss is
    ``mean_k [1 - (2 I_k + eps) / (D_k + eps)]``, D_k = S_k + G_k (or S2_k + G2_k when ``squared``).
    ``off_class[k]`` is the gradient on channel k of every pixel *not* of class k for the linear form,
    ``(2 I_k + eps) / (K (D_k + eps)^2)`` (the same for all of them); ``on_class[k]`` that of every
    pixel of class k, ``-(2 (S_k + G_k - I_k) + eps) / (K (D_k + eps)^2)`` (``None`` when squared: it
    then depends on the pixel, see G2).
    """
    spec = get_loss("dice")
    kw = spec.resolve_params(params)
    s = np.asarray(probs, dtype=np.float64)
    num_classes = s.shape[0]
    classes = tuple(range(0 if kw["include_background"] else 1, num_classes))
    g = np.stack([(np.asarray(gt) == k) for k in range(num_classes)]).astype(np.float64)
    axes = tuple(range(1, s.ndim))
    inter = (s * g).sum(axes)[list(classes)]
    pred = s.sum(axes)[list(classes)]
    tsum = g.sum(axes)[list(classes)]
    eps = float(kw["smooth"])
    denom = ((s**2).sum(axes)[list(classes)] + tsum) if kw["squared"] else (pred + tsum)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(np.mean(1 - (2 * inter + eps) / (denom + eps)))
        k_used = len(classes)
        off = (2 * inter + eps) / (k_used * (denom + eps) ** 2)
        on = None if kw["squared"] else -(2 * (pred + tsum - inter) + eps) / (k_used * (denom + eps) ** 2)
    return DiceTerms(classes, inter, pred, tsum, denom, eps, bool(kw["squared"]), value, off, on)


def closed_form_gradient(
    name: str, case: Case, wrt: str = "probs", params: Mapping[str, Any] | None = None
) -> tuple[float, np.ndarray] | None:
    """Closed-form value and gradient ``(C, *spatial)`` of ``dice`` (G1/G2) or ``ce`` (G6), w.r.t.
    probabilities or (through the softmax chain rule G7) logits; ``None`` for other losses.

    Dice: per included class k, ``d/ds_jk = [c_jk (2 I_k + eps) - 2 g_jk (D_k + eps)] / (K (D_k + eps)^2)``
    with ``c_jk = 1`` (linear) or ``2 s_jk`` (squared); 0 on excluded channels. CE:
    ``-g_jk / (N max(s_jk, EPS))`` w.r.t. probabilities (the loss's clamped log, which passes the
    gradient below EPS: a missed pixel gets ``-1 / (N EPS)``), and its softmax chain rule (G7) w.r.t.
    logits, ``(s_jk - g_jk) / N`` wherever the true class has ``s >= EPS``. Hard labels, one image;
    ``soft_label`` only changes the
    gradient where a probability equals its 0/1 label exactly.
    """
    _check_wrt(wrt)
    s = effective_probs(case.probs, wrt)
    num_classes = s.shape[0]
    g = np.stack([(case.gt == k) for k in range(num_classes)]).astype(np.float64)
    n_pixels = case.gt.size
    if name == "dice":
        t = dice_terms(s, case.gt, params)
        grad = np.zeros_like(s)
        k_used = len(t.classes)
        for i, k in enumerate(t.classes):
            d = t.denominator[i] + t.smooth
            c = 2 * s[k] if t.squared else 1.0
            grad[k] = (c * (2 * t.intersection[i] + t.smooth) - 2 * g[k] * d) / (k_used * d**2)
        value = t.value
    elif name == "ce":
        get_loss("ce").resolve_params(params)
        value = float(-(g * np.log(np.maximum(s, EPS))).sum() / n_pixels)
        # the clamped log passes the gradient (segloss_core.core._tensors.clamped_log): -g / (N max(s, EPS))
        # everywhere, 1 / (N EPS) on a missed pixel; w.r.t. logits the chain rule below gives
        # (s - g) / N wherever the true class has s >= EPS
        grad = -g / (n_pixels * np.maximum(s, EPS))
    else:
        return None
    if wrt == "logits":
        grad = softmax_chain(s, grad)
    return value, grad


# ----------------------------------------------------------------------------------------------
# the explanation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplanationItem:
    """One computed statement: ``text`` (a short sentence with the numbers), the ``numbers`` at full
    precision, and an optional LaTeX ``formula``. ``loss`` is a registry name or ``"both"``."""

    loss: str
    topic: str
    text: str
    numbers: dict[str, float]
    formula: str = ""


@dataclass(frozen=True)
class Explanation:
    settings: dict[str, Any]
    items: list[ExplanationItem]

    def find(self, loss: str, topic: str) -> ExplanationItem | None:
        return next((i for i in self.items if i.loss == loss and i.topic == topic), None)


def _g(x: float) -> str:
    """Three significant digits."""
    if x != x:
        return "n/a"
    return f"{x:.3g}"


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def _dice_items(case, r: LossGradient, wrt, channel, groups, check) -> list[ExplanationItem]:
    s = effective_probs(case.probs, wrt)
    t = dice_terms(s, case.gt, r.params)
    k_used = len(t.classes)
    items: list[ExplanationItem] = []
    settings = (f"squared={t.squared}, smooth={t.smooth:g}, include_background={r.params['include_background']}"
                f" (K={k_used} class{'es' if k_used != 1 else ''} averaged)")
    simple = (not t.squared and t.smooth == 0 and k_used == 1)
    note = ("this is exactly the foreground-only, unsmoothed soft Dice of the closed form" if simple else
            "the textbook form 2I/(|S|+|G|)^2 is the case include_background=False, smooth=0, squared=False "
            "of a binary case; the numbers below are for the settings in force")
    items.append(ExplanationItem("dice", "settings", f"Dice settings in force: {settings}; {note}.",
                                 {"K": k_used, "smooth": t.smooth, "value": r.value},
                                 get_loss("dice").formula_text(r.params)))
    if channel not in t.classes:
        items.append(ExplanationItem(
            "dice", "channel",
            f"Channel {channel} is not among the classes Dice uses here, so its Dice gradient is 0 "
            f"(w.r.t. probabilities); pick another channel or set include_background=True.", {}))
        return items
    i = t.classes.index(channel)
    inter, pred, tsum = float(t.intersection[i]), float(t.pred_sum[i]), float(t.target_sum[i])
    d = float(t.denominator[i]) + t.smooth
    nums = {"I": inter, "S": pred, "G": tsum, "eps": t.smooth, "K": k_used, "value": r.value}
    cname = case.class_names[channel]
    lead = "W.r.t. probabilities, " if wrt == "probs" else "In probability space (before the softmax), "
    lead = lead[0].upper() + lead[1:]
    if d == 0:
        items.append(ExplanationItem("dice", "undefined", f"Class '{cname}' is absent from both maps and "
                                     "smooth=0: Dice is 0/0 here.", nums))
        return items
    if t.squared:
        nums["S2"] = float(t.denominator[i] - tsum)
        items.append(ExplanationItem(
            "dice", "off_class",
            f"Squared (V-Net) Dice: a pixel not of class '{cname}' gets 2 s (2I+eps)/(K (S2+G2+eps)^2) = "
            f"{_g(2 * (2 * inter + t.smooth) / (k_used * d**2))} x s on channel {channel}: proportional to its "
            f"own probability, so it vanishes where s = 0 (not flat, unlike the linear form).",
            nums, r"\frac{\partial L}{\partial s_j} = \frac{2 s_j (2I+\epsilon)}{K(S_2+G_2+\epsilon)^2}"))
    else:
        items.extend(_dice_linear_items(case, t, i, channel, s, lead, nums))
    items.extend(_dice_spread_items(case, r, wrt, channel, nums))
    items.extend(check)
    return items


def _dice_linear_items(case, t, i: int, channel: int, s, lead: str, nums: dict) -> list[ExplanationItem]:
    """Linear-denominator Dice: the off-class and on-class gradients, and the half-size counterfactual."""
    items: list[ExplanationItem] = []
    k_used, cname = len(t.classes), case.class_names[channel]
    inter, pred, tsum = float(t.intersection[i]), float(t.pred_sum[i]), float(t.target_sum[i])
    off, on = float(t.off_class[i]), float(t.on_class[i])
    nums.update(off_class=off, on_class=on, ratio=abs(on) / off if off > 0 else float("nan"))
    if tsum == 0:
        items.append(ExplanationItem(
            "dice", "empty",
            f"Class '{cname}' is absent (|G| = 0): every pixel gets eps/(K (|S|+eps)^2) = {_g(off)}; with "
            "smooth=0 the loss is constant 1 and the gradient 0.", nums))
    else:
        items.append(ExplanationItem(
            "dice", "off_class",
            f"{lead}every pixel not of class '{cname}' gets the same gradient (2I+eps)/(K (|S|+|G|+eps)^2) = "
            f"{_g(off)} on channel {channel}, however confident or far from the object it is "
            f"(I = {_g(inter)}, |S| = {_g(pred)}, |G| = {_g(tsum)}: soft sums).",
            nums, r"\frac{\partial L}{\partial s_j}\Big|_{g_j=0} = \frac{2I+\epsilon}{K(|S|+|G|+\epsilon)^2}"))
        items.append(ExplanationItem(
            "dice", "on_class",
            f"{lead}every pixel of class '{cname}' gets -(2(|S|+|G|-I)+eps)/(K (|S|+|G|+eps)^2) = {_g(on)}: "
            f"{_g(nums['ratio'])} times the background value and of opposite sign.",
            nums, r"\frac{\partial L}{\partial s_j}\Big|_{g_j=1} = "
                  r"-\frac{2(|S|+|G|-I)+\epsilon}{K(|S|+|G|+\epsilon)^2}"))
        # counterfactual: the object at half its size, same per-pixel probabilities
        inside = float((s[channel] * (case.gt == channel)).sum())
        i2, g2, s2 = inter / 2, tsum / 2, pred - inside / 2
        off2 = (2 * i2 + t.smooth) / (k_used * (s2 + g2 + t.smooth) ** 2)
        on2 = -(2 * (s2 + g2 - i2) + t.smooth) / (k_used * (s2 + g2 + t.smooth) ** 2)
        nums.update(off_class_half=off2, on_class_half=on2)
        r_off = off2 / off if off else float("nan")
        r_on = on2 / on if on else float("nan")
        nums.update(off_class_half_ratio=r_off, on_class_half_ratio=r_on)
        fp = pred - inter
        if r_off > 1 and r_on > 1:
            why = ("Dice normalises by |S|+|G|, so a smaller object gets larger per-pixel gradients "
                   "everywhere; CE's per-pixel gradient would not change.")
        else:
            why = (f"The soft false positives |S|-I = {_g(fp)} dominate |S|+|G| here, so shrinking the object "
                   "does not raise the background value; CE's per-pixel gradient would not change.")
        items.append(ExplanationItem(
            "dice", "half_size",
            f"If the object had half as many pixels (same probabilities), these would become "
            f"{_g(off2)} and {_g(on2)} (x{_g(r_off)} and x{_g(r_on)}). " + why,
            nums))
    return items


def _dice_spread_items(case, r: LossGradient, wrt, channel: int, nums: dict) -> list[ExplanationItem]:
    """Where Dice's gradient lies: its share off the class, and its logit-space shape."""
    items: list[ExplanationItem] = []
    cname = case.class_names[channel]
    mag_c = np.abs(r.grad[channel])
    total_c = float(mag_c.sum())
    outside_obj = case.gt != channel
    if total_c > 0 and outside_obj.any():
        share_out = float(mag_c[outside_obj].sum() / total_c)
        nums["share_off_class"] = share_out
        items.append(ExplanationItem(
            "dice", "global",
            f"Pixels not of class '{cname}' ({_pct(float(outside_obj.mean()))} of the image) carry "
            f"{_pct(share_out)} of Dice's |gradient| on channel {channel}: the gradient is global, not "
            "limited to the errors.", nums))
    if wrt == "logits":
        mag = np.abs(r.grad[channel])
        off_mask = case.gt != channel
        lo = float(mag[off_mask].min()) if off_mask.any() else float("nan")
        hi = float(mag[off_mask].max()) if off_mask.any() else float("nan")
        items.append(ExplanationItem(
            "dice", "logits",
            "W.r.t. logits the map passes through the softmax (G7; binary: s(1-s) times the "
            "probability-space difference), so it concentrates on uncertain pixels and vanishes where "
            f"the prediction is saturated: here off-class pixels range from {_g(lo)} to {_g(hi)} in |gradient|.",
            {"off_class_min": lo, "off_class_max": hi}, r"\frac{\partial L}{\partial z_{jk}} = s_{jk}\Big("
            r"\frac{\partial L}{\partial s_{jk}} - \sum_m s_{jm}\frac{\partial L}{\partial s_{jm}}\Big)"))
    return items


#: A correctly classified pixel counts as uncertain below this probability of its own class.
UNCERTAIN_BELOW = 0.9


def _ce_items(case, r: LossGradient, wrt, channel, check) -> list[ExplanationItem]:
    n = case.gt.size
    s = effective_probs(case.probs, wrt)
    g = case.gt == channel
    wrong = case.hard_prediction != case.gt
    frac_wrong = float(wrong.mean())
    cname = case.class_names[channel]

    def share_on_wrong(grad, where=wrong):
        mag = np.sqrt((grad**2).sum(0))
        total = float(mag.sum())
        return float(mag[where].sum() / total) if total > 0 else float("nan")

    share_wrong = share_on_wrong(r.grad)
    # correctly classified but uncertain pixels: (s - g)/N is not limited to the errors (docs/theory.md, G6)
    s_logit = effective_probs(case.probs, "logits")
    onehot = np.stack([case.gt == k for k in range(case.num_classes)]).astype(np.float64)
    s_true = (s_logit * onehot).sum(0)
    uncertain = ~wrong & (s_true < UNCERTAIN_BELOW)
    nums = {"N": n, "value": r.value, "misclassified_fraction": frac_wrong, "misclassified_share": share_wrong,
            "uncertain_fraction": float(uncertain.mean()),
            "uncertain_share_logits": share_on_wrong(s_logit - onehot, uncertain)}
    items = []
    if wrt == "probs":
        sc = s[channel][g]
        worst = float(1 / (n * max(sc.min(), EPS))) if sc.size else float("nan")
        share_logits = share_on_wrong(s_logit - onehot)
        nums.update(max_abs=worst, one_over_n=1 / n, misclassified_share_logits=share_logits)
        items.append(ExplanationItem(
            "ce", "probs",
            f"CE's gradient is -g/(N max(s, ε)), ε = {EPS:g} (the clamped log): on channel {channel} only the "
            f"{int(g.sum())} pixels of class '{cname}' get one, -1/(N max(s, ε)), largest where s is small "
            f"(up to {_g(worst)} here, N = {n}); "
            "all other pixels get 0 on this channel (they get theirs on their own class's channel). It "
            "depends only on the pixel itself, not on the object's size.",
            nums, r"\frac{\partial L}{\partial s_{jk}} = -\frac{g_{jk}}{N \max(s_{jk}, \epsilon)}"))
    else:
        nums.update(bound=1 / n)
        items.append(ExplanationItem(
            "ce", "logits",
            f"CE's gradient w.r.t. logits is (s-g)/N: bounded by 1/N = {_g(1 / n)}, near 0 on pixels "
            "predicted right with confidence, near +-1/N on pixels predicted wrong with confidence, and in "
            "between on uncertain pixels, right or wrong.", nums,
            r"\frac{\partial L}{\partial z_{jk}} = \frac{s_{jk} - g_{jk}}{N}"))
    if wrong.any():
        text = (f"Misclassified pixels (arg-max) are {_pct(frac_wrong)} of the image and carry "
                f"{_pct(share_wrong)} of CE's gradient (norm over all channels)")
        if wrt == "probs":
            text += f"; w.r.t. logits, (s-g)/N, they would carry {_pct(nums['misclassified_share_logits'])}"
        text += (f". W.r.t. logits, correctly classified pixels whose own class has probability below "
                 f"{UNCERTAIN_BELOW:g} ({_pct(nums['uncertain_fraction'])} of the image) carry "
                 f"{_pct(nums['uncertain_share_logits'])}: (s-g)/N pushes every pixel that is not certain, "
                 "not only the errors.")
    else:
        text = ("No pixel is misclassified (arg-max); CE's gradient then sits on the pixels whose own "
                "class has the lowest probability.")
    items.append(ExplanationItem("ce", "misclassified", text, nums))
    items.extend(check)
    return items


def _generic_items(case, r: LossGradient, channel, groups, check) -> list[ExplanationItem]:
    mag = np.abs(r.grad[channel])
    bg = case.gt != channel
    vals = mag[bg]
    spread = float(vals.std() / vals.mean()) if vals.size and vals.mean() > 0 else float("nan")
    total = float(mag.sum())
    shares = {k: float(mag[m].sum() / total) if total > 0 else float("nan") for k, m in groups.as_dict().items()}
    title = get_loss(r.name).title
    kind = ("uniform" if spread == spread and spread < 1e-6 else
            "zero" if spread != spread else "spatially varying")
    nums = {"value": r.value, "background_spread": spread, **{f"share_{k}": v for k, v in shares.items()}}
    text = (f"{title}: on channel {channel} the gradient of pixels not of that class is {kind}"
            + (f" (relative spread {_g(spread)})" if kind == "spatially varying" else "")
            + f"; inside / boundary band / outside hold {_pct(shares['inside'])} / {_pct(shares['boundary'])}"
            f" / {_pct(shares['outside'])} of its |gradient|.")
    return [ExplanationItem(r.name, "summary", text, nums), *check]


def _check_item(name: str, case: Case, r: LossGradient, wrt: str) -> list[ExplanationItem]:
    cf = closed_form_gradient(name, case, wrt, r.params)
    if cf is None:
        return []
    value, grad = cf
    err = float(np.abs(grad - r.grad).max())
    scale = float(np.abs(r.grad).max()) or 1.0
    agree = err <= 1e-6 * scale + 1e-15
    text = (f"Check: the closed form matches autograd on every pixel to {_g(err)} (largest |gradient| "
            f"{_g(scale)}); value {_g(value)} vs {_g(r.value)}." if agree else
            f"Check: the closed form differs from autograd by up to {_g(err)} (largest |gradient| {_g(scale)}): "
            "the loss applies a rule the closed form leaves out here (e.g. its empty-class policy or clamping).")
    return [ExplanationItem(name, "check", text, {"max_abs_error": err, "max_abs_grad": scale,
                                                  "closed_form_value": value, "agrees": float(agree)})]


def explain(
    case: Case,
    maps: GradientMaps | None = None,
    losses: Sequence[str] = ("dice", "ce"),
    wrt: str = "probs",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    channel: int | None = None,
    boundary_px: float = DEFAULT_BOUNDARY_PX,
) -> Explanation:
    """A computed explanation of the gradient maps of ``losses`` on ``case`` (numbers, not prose).

    For ``dice`` and ``ce`` the closed forms (docs/theory.md, G1/G2, G6, G7) are evaluated for the
    parameters in force, checked against autograd, and turned into sentences; other losses get
    measured statements (is the off-class gradient uniform; which pixel group holds the gradient).
    Two losses are then compared: mean |grad| on object vs background pixels and their ratio.

    Args:
        maps: :func:`gradient_maps` output for the same case, losses, wrt and params (computed if None).
        channel: the class channel explained (default 1, the first foreground class).
    """
    _check_wrt(wrt)
    if maps is None:
        maps = gradient_maps(case, losses, wrt=wrt, params=params)
    elif maps.wrt != wrt:
        raise ValueError(f"maps were computed w.r.t. {maps.wrt}, not {wrt}")
    channel = 1 if channel is None else int(channel)
    if not 0 <= channel < case.num_classes:
        raise ValueError(f"channel {channel} is outside 0..{case.num_classes - 1}")
    groups = pixel_groups(case.gt, boundary_px)
    items: list[ExplanationItem] = []
    for name in losses:
        if name not in maps.results:
            items.append(ExplanationItem(name, "unavailable", f"{name}: {maps.unavailable.get(name, 'n/a')}", {}))
            continue
        r = maps.results[name]
        check = _check_item(name, case, r, wrt)
        if name == "dice":
            items += _dice_items(case, r, wrt, channel, groups, check)
        elif name == "ce":
            items += _ce_items(case, r, wrt, channel, check)
        else:
            items += _generic_items(case, r, channel, groups, check)
    avail = [n for n in losses if n in maps.results]
    obj = case.gt == channel
    if len(avail) >= 2 and obj.any() and (~obj).any():
        a, b = avail[:2]
        nums: dict[str, float] = {}
        parts = []
        for n in (a, b):
            mag = np.abs(maps.results[n].grad[channel])
            fg_mean, bg_mean = float(mag[obj].mean()), float(mag[~obj].mean())
            ratio = fg_mean / bg_mean if bg_mean > 0 else float("inf")
            nums.update({f"{n}_object_mean": fg_mean, f"{n}_background_mean": bg_mean, f"{n}_ratio": ratio})
            parts.append(f"{n}: {_g(fg_mean)} on the object vs {_g(bg_mean)} elsewhere"
                         + (f" (x{_g(ratio)})" if ratio != float("inf") else " (background gets none)"))
        items.append(ExplanationItem("both", "object_vs_background",
                                     f"Mean |gradient| on channel {channel}: " + "; ".join(parts) + ".", nums))
    settings = {"wrt": wrt, "channel": channel, "class_name": case.class_names[channel], "N": int(case.gt.size),
                "boundary_px": boundary_px,
                "params": {n: maps.results[n].params for n in losses if n in maps.results}}
    return Explanation(settings, items)


# ----------------------------------------------------------------------------------------------
# size sweep
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingTable:
    """Gradient magnitudes on channel 1 of disk cases of growing radius (one row per radius).

    ``areas``: |G| in pixels. Per loss: ``object_mean`` / ``background_mean`` = mean |grad| over the
    disk's / the other pixels, ``object_share`` = the disk's fraction of the total |grad|, ``value`` =
    the loss. ``dice_off_class`` = the closed-form Dice value of every background pixel (G1; only
    w.r.t. probabilities, where it is one number per case; ``None`` otherwise).
    """

    radii: np.ndarray
    areas: np.ndarray
    size: int
    p_in: float
    p_out: float
    wrt: str
    per_loss: dict[str, dict[str, np.ndarray]]
    unavailable: dict[str, str]
    dice_off_class: np.ndarray | None


def disk_case(radius: float, size: int = 256, p_in: float = 0.7, p_out: float = 0.0) -> Case:
    """A binary case: GT disk of ``radius`` at the centre; prediction ``p_in`` inside it, ``p_out`` outside."""
    if not 0 < radius < size / 2:
        raise ValueError(f"radius must lie in (0, {size / 2}), got {radius}")
    if not (0 <= p_in <= 1 and 0 <= p_out <= 1):
        raise ValueError("p_in and p_out must be probabilities in [0, 1]")
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    gt = ((yy - c) ** 2 + (xx - c) ** 2 <= radius**2).astype(np.int64)
    fg = np.where(gt == 1, p_in, p_out)
    return Case(gt, np.stack([1 - fg, fg]), name=f"disk r={radius:g}")


def dice_vs_ce_scaling(
    radii: Sequence[float] = (2, 4, 8, 16, 32, 64),
    size: int = 256,
    p_in: float = 0.7,
    p_out: float = 0.0,
    losses: Sequence[str] = ("dice", "ce"),
    wrt: str = "probs",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "auto",
) -> ScalingTable:
    """Mean |gradient| vs object size: disks of each radius in a ``size`` x ``size`` image, predicted
    with probability ``p_in`` inside and ``p_out`` outside (all cases in one batched call).

    With ``p_out = 0`` Dice's per-pixel gradient falls as 1/|G| (off-class 2 p_in / ((1+p_in)^2 |G|) for
    foreground-only unsmoothed Dice) while CE's per-object-pixel gradient -1/(N p_in) does not depend
    on the size. With ``p_out > 0`` the false-positive mass p_out (N - |G|) enters |S| and Dice's
    off-class value first grows with |G| (up to |G| ~ p_out N / (1 + p_in - p_out)), then falls.
    """
    _check_wrt(wrt)
    radii = np.asarray(list(radii), dtype=np.float64)
    if radii.ndim != 1 or radii.size == 0:
        raise ValueError("radii must be a non-empty sequence")
    cases = [disk_case(r, size, p_in, p_out) for r in radii]
    names = list(dict.fromkeys(losses))
    for name in names:
        get_loss(name)
    params = {k: dict(v or {}) for k, v in (params or {}).items()}
    tensors = [c.tensors(device=device, dtype=torch.float64) for c in cases]
    probs = torch.cat([p for p, _ in tensors])
    target = torch.cat([t for _, t in tensors])
    out = evaluate(names, probs, target, grad=wrt, reduction="none", params={n: params.get(n, {}) for n in names})
    obj = np.stack([c.gt == 1 for c in cases])
    per_loss: dict[str, dict[str, np.ndarray]] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        item = out[name]
        if isinstance(item, str):
            unavailable[name] = item.removeprefix("n/a: ")
            continue
        values, grad = item  # per-sample values (B,) and their summed gradient
        mag = grad[:, 1].abs().to("cpu", torch.float64).numpy()
        flat, flat_obj = mag.reshape(len(cases), -1), obj.reshape(len(cases), -1)
        total = flat.sum(1)
        obj_sum = (flat * flat_obj).sum(1)
        n_obj = flat_obj.sum(1)
        per_loss[name] = {
            "object_mean": obj_sum / n_obj,
            "background_mean": (total - obj_sum) / (flat.shape[1] - n_obj),
            "object_share": np.where(total > 0, obj_sum / np.where(total > 0, total, 1), np.nan),
            "value": values.to("cpu", torch.float64).numpy(),
        }
    dice_off = None
    if "dice" in names and wrt == "probs":
        dice_off = np.array([
            float(dice_terms(effective_probs(c.probs, wrt), c.gt, params.get("dice")).off_class[-1])
            for c in cases
        ])
    areas = obj.reshape(len(cases), -1).sum(1)
    return ScalingTable(radii, areas, size, float(p_in), float(p_out), wrt, per_loss, unavailable, dice_off)


__all__ = [
    "GROUPS",
    "INSPECTOR_DTYPE",
    "DiceTerms",
    "Explanation",
    "ExplanationItem",
    "GradientMaps",
    "GroupHistogram",
    "LossGradient",
    "PixelGroups",
    "PixelReport",
    "Profile",
    "ScalingTable",
    "all_gradient_maps",
    "closed_form_gradient",
    "dice_terms",
    "dice_vs_ce_scaling",
    "disk_case",
    "effective_probs",
    "explain",
    "gradient_maps",
    "group_histograms",
    "inspector_losses",
    "log_ratio",
    "merge_maps",
    "normalised_difference",
    "pixel_groups",
    "pixel_report",
    "profile",
    "same_sign_fraction",
    "softmax_chain",
]
