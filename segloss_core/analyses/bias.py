r"""Region-size bias (Liu et al.): the numbers behind the "Region-size bias" page.

Every function here works on the **binary foreground-vs-background view** of a case (the maths of
Liu et al. and of the band model is binary): a 2-D mask ``G`` (one slice of a 3-D case, all
foreground classes merged unless ``foreground_class`` picks one) and, where needed, the
foreground probability of the prediction. Losses are the REAL registered ones, evaluated batched
(one tensor holds every prediction of a curve) through the registry's functions with
``reduction="none"``; region losses with a ``from_stats`` form share one
:func:`segloss_core.core.stats.soft_confusion` pass.

Contents
    - :func:`size_curve`: every loss vs predicted size / GT size for predictions grown from nothing
      to twice the object by moving the boundary along the GT's signed distance map.
    - :func:`decomposition`, :func:`ce_decomposition`, :func:`dice_log_decomposition`,
      :func:`penalty_curves`: Liu et al.'s "GT-matching term + region-size penalty" split of CE
      and (log-)Dice (docs/theory.md, B5, B6).
    - :func:`band_optimum`, :func:`band_sweep`, :func:`band_closed_form`, :func:`q_star_closed_form`:
      the uncertain-band model (B1-B3, B9).
    - :func:`size_sweep`: objects of every size with the same 1 px boundary error (B8).
    - :func:`region_size_control`, :func:`band_region_size`: the ``region_size`` loss moving the
      optimum to a chosen proportion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.special import expit, logit, xlogy

from ..core import distance
from ..core._tensors import EPS, check_pair, safe_log, spatial_dims
from ..core.engine import CHUNK_ELEMENTS, evaluate, evaluate_batches
from ..core.registry import get_loss, list_losses
from ..data.case import Case, busiest_slice

#: The six losses the bias curves show by default.
DEFAULT_LOSSES = ("ce", "dice", "iou", "tversky", "focal", "boundary")

#: Losses that cost far more than the rest (``LossSpec.slow``: sorting, distance transforms or soft
#: skeletons per sample): pages compute them one by one behind a progress bar.
SLOW_LOSSES = tuple(n for n in list_losses() if get_loss(n).slow)

ProgressFn = Callable[[float, str], None]

# ----------------------------------------------------------------------------------------------
# the binary view of a case
# ----------------------------------------------------------------------------------------------


def binary_view(
    case_or_gt: Case | np.ndarray,
    *,
    foreground_class: int | None = None,
    slice_index: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The foreground-vs-background view used by every function of this module.

    Args:
        case_or_gt: a :class:`~segloss_core.Case` or an integer / boolean label map (2-D or 3-D).
        foreground_class: ``None`` merges every class ``> 0`` into the foreground; ``k`` keeps
            class ``k`` only (its prediction channel is then the foreground probability).
        slice_index: for 3-D input, the index along axis 0; ``None`` picks the slice with the most
            foreground (:func:`segloss_core.data.case.busiest_slice`).

    Returns:
        ``(mask, foreground_probability)``: a boolean ``(H, W)`` mask and, for a case, its
        ``(H, W)`` float64 foreground probability (``None`` for a bare label map).
    """
    if isinstance(case_or_gt, Case):
        gt = case_or_gt.gt
        probs = case_or_gt.probs.astype(np.float64)
    else:
        gt = np.asarray(case_or_gt)
        probs = None
    if gt.ndim not in (2, 3):
        raise ValueError(f"ground truth must be 2-D or 3-D, got shape {gt.shape}")
    if foreground_class is None:
        mask = gt > 0
        fg = None if probs is None else 1.0 - probs[0]
    else:
        k = int(foreground_class)
        if k < 1 or (probs is not None and k >= probs.shape[0]):
            raise ValueError(f"foreground_class must be a class index >= 1, got {foreground_class}")
        mask = gt == k
        fg = None if probs is None else probs[k]
    if mask.ndim == 3:
        if slice_index is None:
            slice_index = busiest_slice(mask)
        if not 0 <= slice_index < mask.shape[0]:
            raise ValueError(f"slice_index {slice_index} outside 0..{mask.shape[0] - 1}")
        mask = mask[slice_index]
        fg = None if fg is None else fg[slice_index]
    return mask.astype(bool), (None if fg is None else np.clip(fg, 0.0, 1.0))


def view_problem(mask: np.ndarray) -> str | None:
    """Why a binary view cannot be analysed for region size: ``"empty"`` (no foreground pixel),
    ``"full"`` (no background pixel), or ``None`` when it holds both (the size curves, the
    decomposition and the ``region_size`` control need an object and some background)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return "empty"
    if mask.all():
        return "full"
    return None


def ground_truth_case(case: Case) -> Case:
    """``case`` with its prediction replaced by the one-hot ground truth (same GT, spacing, name,
    class names and meta).

    What a computation that reads only the ground truth is keyed on (the size curves, the
    region-size control, a training run that does not start from the prediction): a cache keyed on
    it is not invalidated when only the prediction moves.
    """
    classes = np.arange(case.num_classes).reshape(-1, *([1] * case.gt.ndim))
    probs = (case.gt[None] == classes).astype(np.float32)
    return Case(case.gt, probs, case.spacing, case.name, case.class_names, dict(case.meta))


def signed_distance(mask: np.ndarray) -> np.ndarray:
    r"""Signed distance (px) of every pixel centre to the object's boundary, negative inside.

    .. math::
        \phi_i = \begin{cases} -(d_{in}(i) - \tfrac12) & i \in G \\ d_{out}(i) - \tfrac12 & i \notin G
        \end{cases}

    where :math:`d_{in}` is the Euclidean distance to the nearest background pixel and
    :math:`d_{out}` to the nearest object pixel, so the boundary sits half-way between pixel
    centres: ``phi < 0`` exactly on ``G`` and ``{phi < t}`` grows concentrically with ``t``.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the ground truth has no foreground pixel; this view needs an object")
    if mask.all():
        raise ValueError("the ground truth covers the whole image; there is no room to grow it")
    return distance.signed_distance(mask, boundary="between")


def _ramp_sizes(phi_sorted: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``sum_i clip(t - phi_i + 1/2, 0, 1)`` for every ``t`` (exact, via prefix sums)."""
    a = phi_sorted - 0.5
    prefix = np.concatenate([[0.0], np.cumsum(a)])
    lo = np.searchsorted(a, t - 1.0, side="right")
    hi = np.searchsorted(a, t, side="left")
    return lo + (hi - lo) * t - (prefix[hi] - prefix[lo])


def boundary_offsets(phi: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Boundary offsets ``t`` (px) at which the ramp prediction ``clip(t - phi + 1/2, 0, 1)`` has
    the requested soft sizes (``sum``); exact, since the size is piecewise linear in ``t``."""
    a = np.sort(phi.ravel()) - 0.5
    knots = np.unique(np.concatenate([a, a + 1.0]))
    at_knots = _ramp_sizes(a + 0.5, knots)
    keep = np.concatenate([[True], np.diff(at_knots) > 0])
    return np.interp(sizes, at_knots[keep], knots[keep])


# ----------------------------------------------------------------------------------------------
# batched evaluation of registered losses
# ----------------------------------------------------------------------------------------------


def loss_label(name: str, params: dict[str, Any] | None = None) -> str:
    """A short label that always says which Dice denominator a Dice-type loss uses."""
    spec = get_loss(name)
    try:
        kw = spec.resolve_params(params)
    except ValueError:
        return spec.title
    bits = []
    if "squared" in kw:
        bits.append("squared denom." if kw["squared"] else "linear denom.")
    if "include_background" in kw and name not in ("boundary", "hausdorff_dt", "dpce"):
        bits.append("fg + bg" if kw["include_background"] else "fg only")
    if kw.get("smooth") == 0 and "smooth" in kw:
        bits.append("no smoothing")
    if name == "region_size":
        bits.append(f"{kw['penalty'].upper()}, α={kw['alpha']:g}, T={kw['temperature']:g}")
    return spec.title + (f" ({', '.join(bits)})" if bits else "")


def evaluate_losses(
    probs: torch.Tensor,
    target: torch.Tensor,
    losses: Sequence[str],
    *,
    params: dict[str, dict[str, Any]] | None = None,
    spacing=None,
    progress: ProgressFn | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    validate: bool = True,
) -> dict[str, np.ndarray | str]:
    """Per-sample values ``(B,)`` of several registered losses on one batch of predictions.

    Same numbers as ``segloss_core.compute(name, probs, target, reduction="none", **params)``
    (the input is validated once, not once per loss; ``validate=False`` skips that for tensors
    built valid by this module), evaluated in chunks of at most ``chunk_elements`` floats so
    every intermediate stays in cache. Region losses with a ``from_stats`` form share one
    :func:`~segloss_core.core.stats.soft_confusion` per chunk. A loss that is undefined here maps to
    ``"n/a: reason"``. ``target`` may be ``(1, C, ...)``: it is broadcast to the batch.
    """
    if validate:
        probs, _ = check_pair(probs, target.expand(probs.shape[0], *target.shape[1:]))
        target = target.to(probs.dtype)
    return evaluate_batches(probs.shape[0], lambda lo, hi: probs[lo:hi], target, losses, params=params,
                            spacing=spacing, progress=progress, chunk_elements=chunk_elements)


def _two_channel(fg: torch.Tensor) -> torch.Tensor:
    """``(B, *spatial)`` foreground probabilities -> ``(B, 2, *spatial)``."""
    return torch.stack([1 - fg, fg], dim=1)


# ----------------------------------------------------------------------------------------------
# loss vs predicted size (concentric dilation / erosion)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeCurve:
    """Loss values along a family of predictions of growing size.

    ``ratio[j]`` = predicted size / GT size of prediction ``j`` (the soft size of the predicted
    region, ``sum`` of the ramp); ``values[name]`` the loss at each ratio (or ``"n/a: ..."``);
    ``argmin[name]`` the ratio at the curve's minimum; ``labels[name]`` a label that names the
    Dice denominator.
    """

    ratio: np.ndarray
    values: dict[str, np.ndarray | str]
    argmin: dict[str, float]
    labels: dict[str, str]
    gt_size: int
    n_pixels: int
    confidence: float
    outside: float
    offsets: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def tau(self) -> float:
        """GT foreground proportion."""
        return self.gt_size / self.n_pixels

    @property
    def minima(self) -> dict[str, float | None]:
        """Each loss's smallest value along the family (``None`` where it is n/a)."""
        return {k: None if isinstance(v, str) else float(np.min(v)) for k, v in self.values.items()}

    def off_true_size(self, tolerance: float = 0.02) -> dict[str, float]:
        """``{loss: size ratio of its minimum}`` for the losses whose minimum lies more than
        ``tolerance`` from the true size (ratio 1), in :attr:`argmin`'s order."""
        return {k: r for k, r in self.argmin.items() if abs(r - 1.0) > tolerance}

    @staticmethod
    def merge(curves: Sequence[SizeCurve]) -> SizeCurve:
        """One curve holding the losses of several curves of the same family (same ratios)."""
        first = curves[0]
        for c in curves[1:]:
            if not np.array_equal(c.ratio, first.ratio):
                raise ValueError("size curves of different families cannot be merged")
        values, argmin, labels = {}, {}, {}
        for c in curves:
            values.update(c.values)
            argmin.update(c.argmin)
            labels.update(c.labels)
        return SizeCurve(first.ratio, values, argmin, labels, first.gt_size, first.n_pixels, first.confidence,
                         first.outside, first.offsets)


class _Family:
    """Lazily built predictions of :func:`size_family` (chunks on demand)."""

    def __init__(self, mask, ratios, confidence, outside, dtype, device):
        q = 1.0 if confidence is None else float(confidence)
        if not 0.5 < q <= 1.0:
            raise ValueError(f"confidence must lie in (0.5, 1], got {confidence}")
        o = 1.0 - q if outside is None else float(outside)
        if not 0.0 <= o < q:
            raise ValueError(f"outside probability must lie in [0, confidence), got {outside}")
        phi = signed_distance(mask)
        gt_size = int(mask.sum())
        sizes = np.clip(np.asarray(ratios, dtype=np.float64), 0.0, None) * gt_size
        if sizes.max() > mask.size:
            raise ValueError(f"cannot grow the object to {sizes.max() / gt_size:.2f}x: the image holds "
                             f"{mask.size / gt_size:.2f}x its size")
        self.q, self.o = q, o
        self.offsets = boundary_offsets(phi, sizes)
        self.realised = _ramp_sizes(np.sort(phi.ravel()), self.offsets) / gt_size
        self.phi = torch.as_tensor(phi, dtype=dtype, device=device)
        self.t = torch.as_tensor(self.offsets, dtype=dtype, device=device)

    def __len__(self) -> int:
        return len(self.offsets)

    def foreground(self, lo: int, hi: int) -> torch.Tensor:
        ramp = (self.t[lo:hi].view(-1, 1, 1) - self.phi + 0.5).clamp_(0.0, 1.0)
        return ramp.mul_(self.q - self.o).add_(self.o)

    def probs(self, lo: int, hi: int) -> torch.Tensor:
        return _two_channel(self.foreground(lo, hi))


def size_family(
    mask: np.ndarray,
    ratios: np.ndarray,
    *,
    confidence: float | None = None,
    outside: float | None = None,
    dtype: torch.dtype = torch.float32,
    device="cpu",
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    r"""Foreground probabilities ``(n, H, W)`` of the predictions of :func:`size_curve`.

    .. math::
        r_i(t) = \mathrm{clip}(t - \phi_i + \tfrac12, 0, 1), \qquad
        s_i(t) = o + (q - o)\, r_i(t)

    with :math:`\phi` the GT's :func:`signed_distance`, ``q = confidence`` (1 = hard) and
    ``o = outside`` (default ``1 - q``: every pixel's top-class probability is ``q``). The ramp
    ``r`` is the predicted region with a partial-volume boundary, so its size varies continuously;
    ``t`` is chosen so that ``sum_i r_i(t) = ratio * |G|`` (exactly: the size is piecewise linear
    in ``t``). ``t = 0`` gives the GT itself.

    Returns:
        ``(fg_probs, ratio_realised, offsets)``.
    """
    fam = _Family(np.asarray(mask, dtype=bool), ratios, confidence, outside, dtype, device)
    return fam.foreground(0, len(fam)), fam.realised, fam.offsets


def size_curve(
    case_or_gt: Case | np.ndarray,
    losses: Sequence[str] = DEFAULT_LOSSES,
    n: int = 200,
    confidence: float | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    *,
    max_ratio: float | None = None,
    outside: float | None = None,
    foreground_class: int | None = None,
    slice_index: int | None = None,
    dtype: torch.dtype = torch.float32,
    device="cpu",
    progress: ProgressFn | None = None,
) -> SizeCurve:
    r"""Every selected loss vs predicted size / GT size, each curve's minimum located.

    The predictions grow from nothing (ratio 0) to ``max_ratio`` times the object by concentric
    dilation / erosion of the GT along its signed distance map (:func:`size_family`): hard when
    ``confidence`` is ``None``, otherwise with probability ``confidence`` inside the predicted
    region and ``outside`` (default ``1 - confidence``) elsewhere. The ``n`` ratios are evenly
    spaced in ``[0, max_ratio]`` and include exactly 1 (the GT itself).

    Convention:
        Binary foreground-vs-background view (:func:`binary_view`: a 2-D slice for 3-D cases);
        the target is the GT's two-channel one-hot map; each loss uses its registry defaults
        updated with ``params[name]``; ``spacing`` of the case is passed to distance-based losses.
        All ``n`` predictions are one batch (chunked for memory).

    Args:
        case_or_gt: a :class:`~segloss_core.Case` or a label map.
        losses: registry names.
        n: number of predictions (>= 3).
        confidence: top-class probability in (0.5, 1], or ``None`` for hard predictions.
        params: per-loss parameter overrides ``{name: {param: value}}``.
        max_ratio: largest predicted size / GT size (more than the image holds raises
            ``ValueError``); ``None``: 2, or less where the image holds less (:func:`room_to_grow`:
            an object that already fills most of the image cannot double).
        progress: optional ``callback(fraction_done, loss_name)``.
    """
    if n < 3:
        raise ValueError(f"n must be >= 3, got {n}")
    mask, _ = binary_view(case_or_gt, foreground_class=foreground_class, slice_index=slice_index)
    spacing = _spacing2d(case_or_gt)
    top = min(DEFAULT_MAX_RATIO, _room(mask)) if max_ratio is None else float(max_ratio)
    ratios = np.linspace(0.0, top, int(n))
    ratios[np.argmin(np.abs(ratios - 1.0))] = 1.0
    fam = _Family(mask, ratios, confidence, outside, dtype, device)
    realised, offsets = fam.realised, fam.offsets
    target = _two_channel(torch.as_tensor(mask, dtype=dtype, device=fam.phi.device)[None])
    values = evaluate_batches(len(fam), fam.probs, target, list(losses), params=params, spacing=spacing,
                              progress=progress)
    q = 1.0 if confidence is None else float(confidence)
    return SizeCurve(
        ratio=realised,
        values=values,
        argmin={k: float(realised[int(np.argmin(v))]) for k, v in values.items() if not isinstance(v, str)},
        labels={k: loss_label(k, (params or {}).get(k)) for k in losses},
        gt_size=int(mask.sum()),
        n_pixels=int(mask.size),
        confidence=q,
        outside=1.0 - q if outside is None else float(outside),
        offsets=offsets,
    )


def _spacing2d(case_or_gt) -> tuple[float, float] | None:
    if isinstance(case_or_gt, Case):
        return tuple(case_or_gt.spacing[-2:])
    return None


# ----------------------------------------------------------------------------------------------
# Liu et al.'s decompositions
# ----------------------------------------------------------------------------------------------


def penalty_curves(tau: float, u: np.ndarray) -> dict[str, np.ndarray]:
    r"""Region-size penalties of CE and log-Dice as functions of the predicted proportion ``u``.

    For a binary case with GT foreground proportion :math:`\tau` (docs/theory.md, B5, B6):

    .. math::
        \text{CE size term} = -[\tau\log u + (1-\tau)\log(1-u)] = H(\tau) + KL(\tau\|u),\qquad
        \text{Dice}_{fg} = \log(\tau + u),\qquad
        \text{Dice}_{fg+bg} = \log(\tau + u) + \log(2 - \tau - u)

    Returns ``{"ce_size", "entropy", "kl", "dice_fg", "dice_fgbg"}`` arrays (``entropy`` constant).
    The CE term is minimal at ``u = tau``; the fg+bg Dice penalty is maximal at ``u = 1 - tau``
    and minimal at ``u = 0`` (``tau < 1/2``) or ``u = 1``; the fg-only one grows with ``u``.
    """
    tau = float(tau)
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau must lie in (0, 1), got {tau}")
    u = np.asarray(u, dtype=np.float64)
    ce_size = -(xlogy(tau, u) + xlogy(1 - tau, 1 - u))
    entropy = -(xlogy(tau, tau) + xlogy(1 - tau, 1 - tau))
    with np.errstate(divide="ignore"):  # u = 0 or 1: infinite, as it should be
        kl = xlogy(tau, tau / u) + xlogy(1 - tau, (1 - tau) / (1 - u))
    return {
        "ce_size": ce_size,
        "entropy": np.full_like(u, entropy),
        "kl": kl,
        "dice_fg": np.log(tau + u),
        "dice_fgbg": np.log(tau + u) + np.log(2 - tau - u),
    }


def _pixel_sum(x: torch.Tensor, dims: tuple[int, ...], weights: torch.Tensor | None) -> torch.Tensor:
    """Sum over the pixel axes ``dims``, each pixel counted ``weights`` times (default once)."""
    return x.sum(dims) if weights is None else (x * weights).sum(dims)


def ce_decomposition(probs: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
                     ) -> dict[str, torch.Tensor]:
    r"""Liu et al.'s split of mean cross-entropy into a size term and a GT-matching term (B5).

    .. math::
        \frac{1}{N}CE = \underbrace{-\sum_k \tau_k \log u_k}_{H(\tau) + KL(\tau\|u)}
        \;\underbrace{-\frac1N\sum_i \log\frac{s_{i,y_i}}{u_{y_i}}}_{M}

    with :math:`\tau_k` the GT proportion and :math:`u_k = \frac1N\sum_i s_{ik}` the predicted
    proportion of class ``k``. Convention: per sample ``(B,)``, hard one-hot targets, any number of
    classes, logs clamped at ``EPS`` in every term alike (so the identity is exact). ``weights``
    (spatial shape): how many pixels each entry stands for (the mean is then over
    ``N = weights.sum()`` pixels), so an image with repeated ``(s_i, y_i)`` pairs can be passed once
    per distinct pair.

    Returns ``{"ce", "size", "entropy", "kl", "matching", "tau", "u"}`` (``tau``, ``u``: ``(B, C)``).
    """
    dims = spatial_dims(probs)
    n = probs[0, 0].numel() if weights is None else weights.sum()
    log_s = safe_log(probs)
    tau = _pixel_sum(target, dims, weights) / n
    u = _pixel_sum(probs, dims, weights) / n
    log_u = safe_log(u)
    pixel_dims = tuple(d - 1 for d in dims)
    ce = -_pixel_sum((target * log_s).sum(1), pixel_dims, weights) / n
    size = -(tau * log_u).sum(1)
    entropy = -torch.special.xlogy(tau, tau).sum(1)
    kl = (torch.special.xlogy(tau, tau) - tau * log_u).sum(1)
    shape = (*u.shape, *([1] * len(dims)))
    matching = -_pixel_sum((target * (log_s - log_u.view(shape))).sum(1), pixel_dims, weights) / n
    return {"ce": ce, "size": size, "entropy": entropy, "kl": kl, "matching": matching, "tau": tau, "u": u}


def dice_log_decomposition(
    probs: torch.Tensor, target: torch.Tensor, *, include_background: bool = True,
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    r"""Liu et al.'s split of the log of the linear, unsmoothed soft Dice, per class.

    .. math::
        -\log D_k = \underbrace{-\log\Big(\frac1N\sum_{i\in\Omega_k} s_{ik}\Big) - \log 2}_{\text{matching}}
        + \underbrace{\log(\tau_k + u_k)}_{\text{size penalty}}

    Convention: per sample and class ``(B, C')`` (``C' = C - 1`` without background), hard
    targets, linear denominator, no smoothing, logs clamped at ``EPS``. ``total`` is
    :math:`-\log D_k` computed directly from :math:`D_k = 2I/(S+G)`. ``weights``: pixel
    multiplicities, as in :func:`ce_decomposition`.
    """
    dims = spatial_dims(probs)
    if not include_background:
        probs, target = probs[:, 1:], target[:, 1:]
    n = probs[0, 0].numel() if weights is None else weights.sum()
    inter = _pixel_sum(probs * target, dims, weights)
    p_sum, g_sum = _pixel_sum(probs, dims, weights), _pixel_sum(target, dims, weights)
    tau = g_sum / n
    u = p_sum / n
    dice = 2 * inter / (p_sum + g_sum)
    return {
        "total": -safe_log(dice),
        "matching": -safe_log(inter / n) - math.log(2.0),
        "penalty": safe_log(tau + u),
        "dice": dice,
        "tau": tau,
        "u": u,
    }


@dataclass(frozen=True)
class Decomposition:
    """CE and log-Dice terms along a family of predictions, against the predicted proportion.

    ``u``: predicted foreground proportion of each prediction (sorted). ``terms``: per-prediction
    arrays ``ce``, ``ce_size``, ``ce_entropy``, ``ce_kl``, ``ce_matching`` (CE / N = size +
    matching), ``dice_fg_total`` / ``dice_fg_matching`` / ``dice_fg_penalty`` (fg only) and
    ``dice_fgbg_*`` (sum over both classes). ``curves``: :func:`penalty_curves` on ``u_grid``.
    ``shift``: the logit offsets ``b`` that made each prediction.
    """

    tau: float
    u: np.ndarray
    terms: dict[str, np.ndarray]
    u_grid: np.ndarray
    curves: dict[str, np.ndarray]
    shift: np.ndarray
    family: str

    @property
    def argmin(self) -> dict[str, float]:
        """Predicted proportion at the minimum of each term along the family."""
        return {k: float(self.u[int(np.argmin(v))]) for k, v in self.terms.items()}


def decomposition(
    case_or_gt: Case | np.ndarray,
    n: int = 200,
    *,
    u_range: tuple[float, float] = (1e-4, 1 - 1e-4),
    foreground_class: int | None = None,
    slice_index: int | None = None,
    base_confidence: float = 0.9,
) -> Decomposition:
    r"""CE and Dice decomposed (Liu et al.) along a global logit shift of the current prediction.

    The family is :math:`s_i(b) = \sigma(z_i + b)` with :math:`z_i` the logit of the case's
    foreground probability (of a ``base_confidence`` / ``1 - base_confidence`` map of the GT for
    a bare label map): a global shift ``b`` grows or shrinks the predicted proportion ``u`` without
    changing the ranking of pixels, which is exactly the direction the region-size terms act on
    (B10). The ``n`` shifts are chosen so that ``u`` is evenly spaced in logit between
    ``u_range`` (and includes ``u = tau``). Terms: :func:`ce_decomposition` and
    :func:`dice_log_decomposition` (binary, float64).
    """
    mask, fg = binary_view(case_or_gt, foreground_class=foreground_class, slice_index=slice_index)
    tau = float(mask.mean())
    if not 0.0 < tau < 1.0:
        raise ValueError("the decomposition needs both foreground and background pixels")
    if fg is None:
        fg = np.where(mask, base_confidence, 1.0 - base_confidence)
    z = logit(np.clip(fg, EPS, 1 - EPS)).ravel()
    lo, hi = (float(logit(u_range[0])), float(logit(u_range[1])))
    targets = np.sort(np.append(expit(np.linspace(lo, hi, max(3, n - 1))), tau))
    # u(b) is increasing in b: tabulate it on a histogram of z, then invert by interpolation.
    hist, edges = np.histogram(z, bins=min(1024, max(16, z.size)))
    centres = 0.5 * (edges[1:] + edges[:-1])
    b_grid = np.linspace(-z.max() - 25.0, -z.min() + 25.0, 1201)
    u_grid = (expit(centres[None, :] + b_grid[:, None]) * hist[None, :]).sum(1) / z.size
    keep = np.concatenate([[True], np.diff(u_grid) > 0])
    shift = np.interp(targets, u_grid[keep], b_grid[keep])
    # every term is a sum over pixels of a function of (z_i, y_i): each distinct pair is evaluated
    # once, weighted by its pixel count (the same sums; a preset's prediction has a few hundred)
    flat = mask.ravel()
    uniq = [np.unique(z[flat == y], return_counts=True) for y in (False, True)]
    zu = np.concatenate([uniq[0][0], uniq[1][0]])
    counts = np.concatenate([uniq[0][1], uniq[1][1]]).astype(np.float64)
    yu = np.concatenate([np.zeros(len(uniq[0][0])), np.ones(len(uniq[1][0]))])
    # the tabulation is approximate: put the point u = tau exactly in place (Newton on the exact u(b))
    j = int(np.searchsorted(targets, tau))
    for _ in range(50):
        sig = expit(zu + shift[j])
        err = (sig * counts).sum() / z.size - tau
        if abs(err) < 1e-15:
            break
        shift[j] -= err / max((sig * (1 - sig) * counts).sum() / z.size, 1e-300)
    z_t = torch.as_tensor(zu, dtype=torch.float64)
    w_t = torch.as_tensor(counts, dtype=torch.float64)
    b_t = torch.as_tensor(shift, dtype=torch.float64).view(-1, 1)
    target1 = _two_channel(torch.as_tensor(yu, dtype=torch.float64)[None])
    step = max(1, CHUNK_ELEMENTS // (4 * zu.size))  # float64, two channels: stay in cache
    parts_ce, parts_dice = [], []
    with torch.inference_mode():
        for lo in range(0, len(shift), step):
            probs = _two_channel(torch.sigmoid(z_t[None] + b_t[lo: lo + step]))
            target = target1.expand_as(probs)
            parts_ce.append(ce_decomposition(probs, target, w_t))
            parts_dice.append(dice_log_decomposition(probs, target, include_background=True, weights=w_t))
    ce = {k: torch.cat([p[k] for p in parts_ce]) for k in parts_ce[0]}
    dice = {k: torch.cat([p[k] for p in parts_dice]) for k in parts_dice[0]}
    u = ce["u"][:, 1].numpy()
    terms = {
        "ce": ce["ce"].numpy(),
        "ce_size": ce["size"].numpy(),
        "ce_entropy": ce["entropy"].numpy(),
        "ce_kl": ce["kl"].numpy(),
        "ce_matching": ce["matching"].numpy(),
        "dice_fg_total": dice["total"][:, 1].numpy(),
        "dice_fg_matching": dice["matching"][:, 1].numpy(),
        "dice_fg_penalty": dice["penalty"][:, 1].numpy(),
        "dice_fgbg_total": dice["total"].sum(1).numpy(),
        "dice_fgbg_matching": dice["matching"].sum(1).numpy(),
        "dice_fgbg_penalty": dice["penalty"].sum(1).numpy(),
    }
    grid = expit(np.linspace(lo, hi, 400))
    grid = np.sort(np.concatenate([grid, [tau, 1 - tau]]))
    family = "logit shift of the current prediction" if isinstance(case_or_gt, Case) else (
        f"logit shift of a {base_confidence:g}-confidence copy of the GT")
    return Decomposition(tau, u, terms, grid, penalty_curves(tau, grid), shift, family)


# ----------------------------------------------------------------------------------------------
# the uncertain-band model
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """A one-row synthetic image: ``F`` confident foreground pixels (s = g = 1), a band of ``U``
    pixels of which ``k`` are foreground, all predicted ``q``, and ``background`` confident
    background pixels (s = g = 0). ``pi = k / U``; ``N = F + U + background``."""

    F: int
    U: int
    k: int
    background: int

    @property
    def N(self) -> int:
        return self.F + self.U + self.background

    @property
    def pi(self) -> float:
        return self.k / self.U

    @property
    def tau(self) -> float:
        return (self.F + self.k) / self.N

    def tensors(self, q, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probs, target)``: ``(len(q), 2, 1, N)`` predictions and the ``(1, 2, 1, N)`` target."""
        q = torch.as_tensor(np.atleast_1d(np.asarray(q, dtype=np.float64)), dtype=dtype)
        row = torch.zeros(q.shape[0], self.N, dtype=dtype)
        row[:, : self.F] = 1.0
        row[:, self.F: self.F + self.U] = q[:, None]
        g = torch.zeros(1, self.N, dtype=dtype)
        g[:, : self.F + self.k] = 1.0
        return _two_channel(row)[:, :, None, :], _two_channel(g)[:, :, None, :]


def make_band(F: int, U: int, pi: float, background: int | None = None) -> Band:
    """A :class:`Band` with ``k = round(pi * U)`` foreground band pixels (``background`` default:
    enough to make ``N = 4096``, at least 0)."""
    F, U = int(F), int(U)
    if F < 0 or U < 1:
        raise ValueError(f"need F >= 0 and U >= 1, got F={F}, U={U}")
    if not 0.0 <= pi <= 1.0:
        raise ValueError(f"pi must lie in [0, 1], got {pi}")
    bg = max(0, 4096 - F - U) if background is None else int(background)
    if bg < 0:
        raise ValueError(f"background must be >= 0, got {background}")
    return Band(F, U, int(round(pi * U)), bg)


def band_closed_form(kind: str, F: float, U: float, pi: float, q, background: float = 0.0) -> np.ndarray:
    r"""Closed-form band losses (docs/theory.md, B1-B3), for checking the brute force.

    ``kind``: ``"ce"`` (mean over N, unclamped logs:
    :math:`-\frac{U}{N}[\pi\log q + (1-\pi)\log(1-q)]`), ``"dice_linear"`` (fg only, no smoothing:
    :math:`1 - 2(F + q\pi U)/(2F + \pi U + qU)`), ``"dice_squared"``
    (:math:`1 - 2(F + q\pi U)/(2F + \pi U + q^2 U)`), ``"jaccard_linear"``.
    """
    q = np.asarray(q, dtype=np.float64)
    n = F + U + background
    if kind == "ce":
        return -(U / n) * (xlogy(pi, q) + xlogy(1 - pi, 1 - q))
    inter = F + q * pi * U
    if kind == "dice_linear":
        return 1 - 2 * inter / (2 * F + pi * U + q * U)
    if kind == "dice_squared":
        return 1 - 2 * inter / (2 * F + pi * U + q * q * U)
    if kind == "jaccard_linear":
        return 1 - inter / (2 * F + pi * U + q * U - inter)
    raise ValueError(f"unknown closed form {kind!r}")


def linear_dice_slope(F: float, U: float, pi: float) -> float:
    r"""The sign that decides linear Dice's band optimum (B2): :math:`F(2\pi - 1) + \pi^2 U`
    (``F`` confident foreground pixels, ``U`` band pixels, ``pi`` the band's foreground fraction);
    positive: ``q* = 1``, negative: ``q* = 0``, zero: the loss does not depend on ``q``."""
    return F * (2 * pi - 1) + pi * pi * U


def q_star_closed_form(kind: str, F: float, U: float, pi: float, *, temperature: float = 1.0) -> float:
    r"""The band confidence ``q*`` that minimises a loss, in closed form.

    - ``"ce"``: :math:`q^* = \pi` (B1).
    - ``"dice_linear"``: 1 if :math:`F(2\pi - 1) + \pi^2 U > 0`, else 0 (B2; ``nan`` on the tie,
      where the loss does not depend on ``q``).
    - ``"dice_squared"``: :math:`\min(1, [-F + \sqrt{F^2 + \pi^2 U(2F + \pi U)}]/(\pi U))` (B3).
    - ``"region_size_zero"``: where the region-size penalty at temperature ``T`` vanishes with the
      GT as target, :math:`\sigma(\mathrm{logit}(\pi)/T)` (B9).
    """
    if kind == "ce":
        return float(pi)
    if kind == "dice_linear":
        slope = linear_dice_slope(F, U, pi)
        return 1.0 if slope > 0 else (0.0 if slope < 0 else float("nan"))
    if kind == "dice_squared":
        if pi == 0:
            return 0.0
        return float(min(1.0, (-F + math.sqrt(F * F + pi * pi * U * (2 * F + pi * U))) / (pi * U)))
    if kind == "region_size_zero":
        if pi in (0.0, 1.0):
            return float(pi)
        return float(expit(logit(pi) / temperature))
    raise ValueError(f"unknown closed form {kind!r}")


#: The :data:`BAND_LOSSES` that have a closed-form band optimum, and its :func:`q_star_closed_form` kind.
CLOSED_FORM_KINDS = {"CE": "ce", "Dice, linear denominator (fg only, no smoothing)": "dice_linear",
                     "Dice, squared denominator (fg only, no smoothing)": "dice_squared"}


def band_closed_forms(F: float, U: float, pi: float) -> dict[str, float]:
    """``{label: q*}`` in closed form (B1-B3) for the :data:`BAND_LOSSES` that have one, under the
    same labels, so that a table of brute-force optima can be matched to them by name."""
    return {label: q_star_closed_form(kind, F, U, pi) for label, kind in CLOSED_FORM_KINDS.items()}


def penalty_zero_q(band: Band, target_proportion: float, temperature: float = 1.0) -> float:
    r"""Band confidence at which the region-size penalty vanishes for a target proportion ``rho``:
    :math:`F + U\sigma(T\,\mathrm{logit}\,q) = \rho N`, i.e.
    :math:`q = \sigma(\mathrm{logit}((\rho N - F)/U)/T)`, clipped to [0, 1]."""
    frac = (target_proportion * band.N - band.F) / band.U
    if frac <= 0:
        return 0.0
    if frac >= 1:
        return 1.0
    return float(expit(logit(frac) / temperature))


@dataclass(frozen=True)
class BandOptimum:
    """Loss vs band confidence ``q`` and its minimiser ``q_star`` (grid search refined twice)."""

    q: np.ndarray
    values: np.ndarray
    q_star: float
    value_star: float
    label: str
    band: Band


LossLike = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _band_values(F: int, U: int, background: int, ks: np.ndarray, q: np.ndarray, loss: LossLike,
                 params: dict | None) -> np.ndarray:
    """Loss of band ``b`` (``ks[b]`` foreground band pixels) at confidence ``q[b, j]`` -> ``(B, Q)``;
    every (band, q) pair is one sample of one chunked batch."""
    ks = np.asarray(ks, dtype=np.int64)
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    n_bands, n_q = q.shape
    n = F + U + background
    flat_q = torch.as_tensor(q.ravel(), dtype=torch.float64)
    flat_k = torch.as_tensor(np.repeat(ks, n_q), dtype=torch.float64)
    pos = torch.arange(n, dtype=torch.float64)
    in_band = ((pos >= F) & (pos < F + U)).to(torch.float64)
    certain = (pos < F).to(torch.float64)

    def probs(lo: int, hi: int) -> torch.Tensor:
        row = certain + in_band * flat_q[lo:hi, None]
        return _two_channel(row)[:, :, None, :]

    def target(lo: int, hi: int) -> torch.Tensor:
        g = (pos[None, :] < F + flat_k[lo:hi, None]).to(torch.float64)
        return _two_channel(g)[:, :, None, :]

    total = n_bands * n_q
    if callable(loss):
        with torch.no_grad():
            values = loss(probs(0, total), target(0, total)).double().numpy()
    else:
        values = evaluate_batches(total, probs, target, [loss], params={loss: params or {}})[loss]
        if isinstance(values, str):
            raise ValueError(f"{loss}: {values}")
    return np.asarray(values).reshape(n_bands, n_q)


def _band_search(F: int, U: int, background: int, ks: np.ndarray, loss: LossLike, params: dict | None,
                 n_q: int, refine: int, points: int = 41) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid argmin over ``q`` in [0, 1] for every band at once, refined ``refine`` times on a
    ``points``-point grid between the neighbours of the current best. Returns
    ``(q_grid, values (B, n_q), q_star (B,), value_star (B,))``."""
    ks = np.atleast_1d(np.asarray(ks, dtype=np.int64))
    q = np.linspace(0.0, 1.0, int(n_q))
    values = _band_values(F, U, background, ks, np.tile(q, (len(ks), 1)), loss, params)
    j = values.argmin(1)
    rows = np.arange(len(ks))
    best_q, best_v = q[j], values[rows, j]
    lo_q, hi_q = q[np.maximum(j - 1, 0)], q[np.minimum(j + 1, len(q) - 1)]
    for _ in range(int(refine)):
        fine = lo_q[:, None] + (hi_q - lo_q)[:, None] * np.linspace(0.0, 1.0, int(points))[None, :]
        fv = _band_values(F, U, background, ks, fine, loss, params)
        j = fv.argmin(1)
        better = fv[rows, j] <= best_v
        best_q = np.where(better, fine[rows, j], best_q)
        best_v = np.where(better, fv[rows, j], best_v)
        lo_q, hi_q = fine[rows, np.maximum(j - 1, 0)], fine[rows, np.minimum(j + 1, int(points) - 1)]
    return q, values, best_q, best_v


def band_optimum(
    F: int,
    U: int,
    pi: float,
    loss: LossLike,
    params: dict[str, Any] | None = None,
    *,
    background: int | None = None,
    n_q: int = 201,
    refine: int = 3,
) -> BandOptimum:
    r"""The loss as a function of the band confidence ``q`` and the ``q`` that minimises it.

    The loss is the REAL registered loss (or any ``callable(probs, target) -> (B,)``) evaluated
    on the one-row image of :func:`make_band`, all ``q`` values in one batch (float64). ``q*`` is
    the grid argmin over ``n_q`` points of [0, 1], refined ``refine`` times on a 41-point grid
    between the neighbours of the current best (resolution ~ ``6e-7`` with the defaults).

    Args:
        F: confident, correct foreground pixels.
        U: band pixels, all predicted with probability ``q``.
        pi: fraction of the band that is foreground (rounded to ``k / U``).
        loss: registry name (``params`` its parameters) or a callable.
        background: confident, correct background pixels (default: ``N = 4096``).
    """
    band = make_band(F, U, pi, background)
    q, values, q_star, v_star = _band_search(band.F, band.U, band.background, [band.k], loss, params, n_q, refine)
    label = loss_label(loss, params) if isinstance(loss, str) else getattr(loss, "__name__", "loss")
    return BandOptimum(q, values[0], float(q_star[0]), float(v_star[0]), label, band)


#: The losses of the "q* vs pi" figure: label -> (registry name, params). Always says which Dice.
BAND_LOSSES: dict[str, tuple[str, dict[str, Any]]] = {
    "CE": ("ce", {}),
    "Dice, linear denominator (fg only, no smoothing)": (
        "dice", {"squared": False, "include_background": False, "smooth": 0.0}),
    "Dice, squared denominator (fg only, no smoothing)": (
        "dice", {"squared": True, "include_background": False, "smooth": 0.0}),
    "CE + L1 region size (α=1, T=10)": ("region_size", {"alpha": 1.0, "temperature": 10.0, "penalty": "l1"}),
}


@dataclass(frozen=True)
class BandSweep:
    """``q_star[label]`` for each ``pi`` (the effective ``k / U``), with closed forms alongside."""

    pi: np.ndarray
    q_star: dict[str, np.ndarray]
    closed_form: dict[str, np.ndarray]
    F: int
    U: int
    background: int


def band_sweep(
    F: int,
    U: int,
    pis: Sequence[float] | None = None,
    losses: dict[str, tuple[str, dict[str, Any]]] | None = None,
    *,
    background: int | None = None,
    n_q: int = 51,
    refine: int = 4,
    points: int = 21,
) -> BandSweep:
    """``q*`` vs ``pi`` for several losses (default :data:`BAND_LOSSES`) on the band model, plus
    the closed forms of CE (``q* = pi``), linear and squared Dice (B1-B3) for comparison. Every
    ``(pi, q)`` pair of a loss is one sample of one batch; the search is :func:`band_optimum`'s
    with ``n_q`` points refined ``refine`` times on ``points`` (resolution ~2e-6 by default).
    ``background`` (confident background pixels) moves no optimum of CE, foreground-only Dice or
    the region-size loss (every term scales with 1/N), so ``background=0`` is a fast exact
    choice for these."""
    losses = BAND_LOSSES if losses is None else losses
    if pis is None:
        pis = np.arange(1, 20) / 20
    band0 = make_band(F, U, 0.5, background)
    ks = np.unique(np.clip(np.round(np.asarray(pis, dtype=np.float64) * band0.U), 0, band0.U).astype(int))
    pi_eff = ks / band0.U
    q_star = {label: _band_search(band0.F, band0.U, band0.background, ks, name, params, n_q, refine, points)[2]
              for label, (name, params) in losses.items()}
    closed = {kind: np.array([q_star_closed_form(kind, band0.F, band0.U, p) for p in pi_eff])
              for kind in ("ce", "dice_linear", "dice_squared")}
    return BandSweep(pi_eff, q_star, closed, band0.F, band0.U, band0.background)


# ----------------------------------------------------------------------------------------------
# object-size sweep with a fixed boundary error
# ----------------------------------------------------------------------------------------------


def disk_mask(size: int, radius: float) -> np.ndarray:
    """Pixels with ``(row - c)^2 + (col - c)^2 <= radius^2``, ``c = (size - 1) / 2`` (B8's raster)."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[:size, :size]
    return (yy - c) ** 2 + (xx - c) ** 2 <= radius * radius


@dataclass(frozen=True)
class SizeSweep:
    """Loss value and mean gradient magnitude vs object size, same boundary error for every size.

    ``fraction`` = |G| / N; ``values[name]`` and ``grad_mean[name]`` per size (or ``"n/a: ..."``);
    ``grad_mean`` is the mean over pixels of :math:`|\\partial L/\\partial s_{fg}|`, the derivative
    along the binary direction (background probability = 1 - foreground). Hard counts
    ``gt_size``, ``pred_size``, ``mismatch`` (|G Δ P|) and the hard Dice / Jaccard losses come
    from the raster masks.
    """

    radius: np.ndarray
    fraction: np.ndarray
    gt_size: np.ndarray
    pred_size: np.ndarray
    mismatch: np.ndarray
    hard_dice_loss: np.ndarray
    hard_jaccard_loss: np.ndarray
    values: dict[str, np.ndarray | str]
    grad_mean: dict[str, np.ndarray | str]
    labels: dict[str, str]
    boundary_error_px: float
    confidence: float
    image_size: int

    @property
    def confidence_floor(self) -> float:
        """Mean CE every pixel pays for predicting its true class with ``confidence``: ``-log(confidence)``."""
        return float(-np.log(self.confidence))

    @property
    def percent(self) -> np.ndarray:
        """Each object's share of the image in percent: ``100 |G| / N``."""
        return self.fraction * 100

    def gradient_shrink(self, name: str) -> float | None:
        """How many times larger ``name``'s mean gradient is on the smallest object than on the
        largest (``grad_mean[0] / grad_mean[-1]``); ``None`` where the loss is n/a or absent."""
        g = self.grad_mean.get(name)
        if g is None or isinstance(g, str):
            return None
        return float(g[0] / g[-1])


def size_sweep(
    radii: Sequence[float] | None = None,
    fractions: Sequence[float] | None = None,
    boundary_error_px: float = 1.0,
    losses: Sequence[str] = DEFAULT_LOSSES,
    *,
    image_size: int = 256,
    confidence: float = 1 - 1e-3,
    params: dict[str, dict[str, Any]] | None = None,
    n: int = 20,
) -> SizeSweep:
    r"""Objects from ~0.05 % to 50 % of the image, each predicted with the same boundary error.

    GT: the disk of radius ``R`` centred in an ``image_size`` square (:func:`disk_mask`);
    prediction: the disk of radius ``R + boundary_error_px`` (negative = eroded), foreground
    probability ``confidence`` inside and ``1 - confidence`` outside (1 = hard). ``radii`` or
    ``fractions`` (of the image area, ``R = sqrt(f N / pi)``) give the sizes; default ``n``
    fractions log-spaced in [5e-4, 0.5]. Values and gradients come from
    :func:`segloss_core.core.engine.evaluate` (``grad="probs"``, ``reduction="none"``), all sizes in one
    batch. docs/theory.md, B8: Dice loss ~ 1/R falls with size while mean CE ~ R/N rises.
    """
    if radii is None:
        if fractions is None:
            fractions = np.geomspace(5e-4, 0.5, int(n))
        radii = np.sqrt(np.asarray(fractions, dtype=np.float64) * image_size**2 / math.pi)
    radii = np.asarray(radii, dtype=np.float64)
    if (radii <= 0).any() or (radii + boundary_error_px <= 0).any():
        raise ValueError("every radius (and radius + boundary error) must be positive")
    if not 0.5 < confidence <= 1.0:
        raise ValueError(f"confidence must lie in (0.5, 1], got {confidence}")
    gts = np.stack([disk_mask(image_size, r) for r in radii])
    preds = np.stack([disk_mask(image_size, r + boundary_error_px) for r in radii])
    if not gts.reshape(len(radii), -1).any(1).all():
        raise ValueError("a radius is too small: its disk holds no pixel")
    fg = torch.as_tensor(np.where(preds, confidence, 1 - confidence), dtype=torch.float64)
    probs = _two_channel(fg)
    target = _two_channel(torch.as_tensor(gts, dtype=torch.float64))
    # per-sample values and their gradients in one pass (one graph per loss)
    res = evaluate(list(losses), probs, target, params=params, reduction="none", grad="probs")
    values: dict[str, np.ndarray | str] = {}
    grads: dict[str, np.ndarray | str] = {}
    for name in losses:
        r = res[name]
        if isinstance(r, str):
            grads[name] = values[name] = r
        else:  # derivative along the binary direction: d/ds_fg with s_bg = 1 - s_fg
            values[name] = r[0].detach().numpy()
            grads[name] = (r[1][:, 1] - r[1][:, 0]).abs().flatten(1).mean(1).numpy()
    g_size = gts.reshape(len(radii), -1).sum(1)
    p_size = preds.reshape(len(radii), -1).sum(1)
    mismatch = (gts ^ preds).reshape(len(radii), -1).sum(1)
    union = (gts | preds).reshape(len(radii), -1).sum(1)
    return SizeSweep(
        radius=radii,
        fraction=g_size / image_size**2,
        gt_size=g_size,
        pred_size=p_size,
        mismatch=mismatch,
        hard_dice_loss=mismatch / (g_size + p_size),
        hard_jaccard_loss=mismatch / union,
        values=values,
        grad_mean=grads,
        labels={k: loss_label(k, (params or {}).get(k)) for k in losses},
        boundary_error_px=float(boundary_error_px),
        confidence=float(confidence),
        image_size=int(image_size),
    )


# ----------------------------------------------------------------------------------------------
# explicit control: the region_size loss
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandRegionSize:
    """CE and ``region_size`` on the band model: curves over ``q``, minimisers, and where the
    penalty alone would put ``q`` (``q_zero``) for the target proportion."""

    ce: BandOptimum
    region_size: BandOptimum
    q_zero: float
    target_proportion: float
    predicted_proportion: float


def band_region_size(
    F: int,
    U: int,
    pi: float,
    *,
    alpha: float = 1.0,
    temperature: float = 1.0,
    penalty: str = "l1",
    target_proportion: float | None = None,
    background: int | None = None,
) -> BandRegionSize:
    """The ``region_size`` loss on the band model vs plain CE (B9).

    With the GT proportion as target and ``T = 1`` the minimiser stays at ``q* = pi``; at
    ``T = 10`` and ``alpha >= 1`` it moves to :math:`\\sigma(\\mathrm{logit}(\\pi)/T)`: the penalty
    matches the proportion of *sharpened* probabilities. A ``target_proportion`` (foreground
    fraction of the band image) moves the optimum toward :func:`penalty_zero_q`.
    """
    band = make_band(F, U, pi, background)
    rho = band.tau if target_proportion is None else float(target_proportion)
    params = {"alpha": alpha, "temperature": temperature, "penalty": penalty,
              "target_proportion": None if target_proportion is None else rho}
    ce = band_optimum(band.F, band.U, band.pi, "ce", background=band.background)
    rs = band_optimum(band.F, band.U, band.pi, "region_size", params, background=band.background)
    predicted = (band.F + rs.q_star * band.U) / band.N
    return BandRegionSize(ce, rs, penalty_zero_q(band, rho, temperature), rho, predicted)


@dataclass(frozen=True)
class RegionSizeControl:
    """Size curves of CE and ``region_size`` on the case, and the band-model view.

    ``target_ratio``: the predicted size / GT size at which the penalty is zero, i.e. where the
    predicted proportion at temperature ``T`` of the family's predictions equals the target (for
    hard predictions: target proportion x N / |G|).
    """

    curve: SizeCurve
    target_proportion: float
    target_ratio: float
    band: BandRegionSize | None


#: Largest predicted size / GT size of a size curve, where the image holds it.
DEFAULT_MAX_RATIO = 2.0


def _room(mask: np.ndarray) -> float:
    size = int(np.count_nonzero(mask))
    return math.inf if size == 0 else mask.size / size


def room_to_grow(case_or_gt: Case | np.ndarray, *, foreground_class: int | None = None,
                 slice_index: int | None = None) -> float:
    """Image size / object size in the binary view (:func:`binary_view`): the largest predicted size
    / GT size an image can show (``inf`` for an empty ground truth).

    >>> gt = np.zeros((10, 10), int); gt[:5] = 1
    >>> room_to_grow(gt)
    2.0
    """
    return _room(binary_view(case_or_gt, foreground_class=foreground_class, slice_index=slice_index)[0])


def target_ratio_range(case_or_gt: Case | np.ndarray, *, foreground_class: int | None = None,
                       low: float = 0.25, high: float = 1.9, step: float = 0.05) -> tuple[float, float]:
    """``(low, top)``: the target size / GT size a user may ask :func:`region_size_control` for, on a
    grid of ``step``: ``high`` cut to stay below :func:`room_to_grow` (a target proportion must be
    under 1), never below ``low``.

    >>> gt = np.zeros((10, 10), int); gt[:, :8] = 1  # room 1.25
    >>> target_ratio_range(gt)
    (0.25, 1.2)
    """
    room = room_to_grow(case_or_gt, foreground_class=foreground_class)
    top = min(high, math.ceil(room / step - 1) * step) if math.isfinite(room) else high
    return low, max(low, round(top, 10))


def region_size_control(
    case_or_gt: Case | np.ndarray,
    *,
    target_proportion: float | None = None,
    target_size_ratio: float | None = None,
    alpha: float = 1.0,
    temperature: float = 1.0,
    penalty: str = "l1",
    n: int = 200,
    confidence: float | None = None,
    max_ratio: float | None = None,
    band: tuple[int, int, float] | None = (300, 400, 0.2),
    foreground_class: int | None = None,
    slice_index: int | None = None,
) -> RegionSizeControl:
    """``region_size`` (CE + alpha x penalty(tau_hat, tau)) vs CE along the size curve of the case.

    ``target_proportion`` is the foreground fraction of the image the user asks for (``None`` =
    the GT's); ``target_size_ratio`` asks for it relative to the GT instead: target proportion =
    ratio x the GT's foreground proportion (give one of the two at most). With a large enough ``alpha`` the curve's minimum moves to ``target_ratio``
    (predicted size / GT size where the predicted proportion equals the target). ``band``:
    ``(F, U, pi)`` of a band model evaluated with the same settings, its target scaled by the
    same factor (target / GT proportion), or ``None``.
    """
    mask, _ = binary_view(case_or_gt, foreground_class=foreground_class, slice_index=slice_index)
    tau = float(mask.mean())
    if target_size_ratio is not None:
        if target_proportion is not None:
            raise ValueError("give target_proportion or target_size_ratio, not both")
        target_proportion = target_size_ratio * tau
    rho = tau if target_proportion is None else float(target_proportion)
    if not 0.0 < rho < 1.0:
        raise ValueError(f"target proportion must lie in (0, 1), got {target_proportion}")
    params = {"region_size": {"alpha": alpha, "temperature": temperature, "penalty": penalty,
                              "target_proportion": None if target_proportion is None else rho}}
    curve = size_curve(case_or_gt, ["ce", "region_size"], n=n, confidence=confidence, params=params,
                       max_ratio=max_ratio, foreground_class=foreground_class, slice_index=slice_index)
    band_res = None
    if band is not None:
        F, U, pi = band
        b = make_band(F, U, pi)
        band_rho = None if target_proportion is None else float(np.clip(rho / tau * b.tau, 1e-6, 1 - 1e-6))
        band_res = band_region_size(F, U, pi, alpha=alpha, temperature=temperature, penalty=penalty,
                                    target_proportion=band_rho)
    # predicted proportion at temperature T of a prediction with confidence q inside P pixels and
    # o outside: u_T = (P a_q + (N - P) a_o) / N, a_x = softmax(T log x) (the loss's own definition)
    a_q, a_o = (_sharpened(x, temperature) for x in (curve.confidence, curve.outside))
    ratio = (rho - a_o) / (a_q - a_o) * mask.size / mask.sum()
    return RegionSizeControl(curve, rho, float(ratio), band_res)


def _sharpened(p: float, temperature: float) -> float:
    """Foreground entry of ``softmax(T log(clamp([1 - p, p], EPS)))``."""
    lf, lb = math.log(max(p, EPS)), math.log(max(1.0 - p, EPS))
    return float(expit(temperature * (lf - lb)))


__all__ = [
    "BAND_LOSSES",
    "DEFAULT_LOSSES",
    "SLOW_LOSSES",
    "Band",
    "BandOptimum",
    "BandRegionSize",
    "BandSweep",
    "Decomposition",
    "RegionSizeControl",
    "SizeCurve",
    "SizeSweep",
    "CLOSED_FORM_KINDS",
    "band_closed_form",
    "band_closed_forms",
    "band_optimum",
    "band_region_size",
    "band_sweep",
    "binary_view",
    "boundary_offsets",
    "ce_decomposition",
    "decomposition",
    "dice_log_decomposition",
    "disk_mask",
    "evaluate_losses",
    "ground_truth_case",
    "loss_label",
    "make_band",
    "penalty_curves",
    "penalty_zero_q",
    "q_star_closed_form",
    "region_size_control",
    "signed_distance",
    "size_curve",
    "size_family",
    "size_sweep",
    "view_problem",
]
