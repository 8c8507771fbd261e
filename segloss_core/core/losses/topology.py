r"""Topology-aware losses: clDice (Shit et al., CVPR 2021) on soft skeletons.

A soft skeleton is built from iterated soft morphology on probabilities (min / max pooling, so it is
differentiable almost everywhere and runs on any device): 2-D and 3-D, as in the authors' code and
MONAI 1.6.1 ``monai.losses.cldice``.

Convention:
    - ``probs`` and ``target`` are ``(B, C, *spatial)``, 2-D or 3-D, ``C >= 2``; prediction first.
    - clDice pools the selected channels of one sample into one ratio (MONAI sums over channels and
      pixels, then takes the precision / sensitivity ratios): the per-sample value, then
      ``reduction`` over samples (``"mean"`` = MONAI's mean).
    - ``include_background=True`` (MONAI's default) keeps channel 0; a full channel has an empty soft
      skeleton (erosion of a full image is full, its opening too), so on a binary case the
      background contributes the skeleton of the background's thin parts only.
    - Smoothing is clDice's own (MONAI defaults): ``smooth_nr = smooth_dr = 1`` on the topological
      precision and sensitivity, ``smooth_hm = 1e-4`` in the harmonic mean, not segloss's ``1e-5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._tensors import call_scope, reduce_samples, tensor_memo, validated
from ..spec import LossSpec, ParamSpec
from . import formulas
from .region import _safe_ratio

__all__ = ["soft_erode", "soft_dilate", "soft_skeleton", "cldice_loss", "cldice_params", "SPECS"]


def _pool(x: torch.Tensor):
    if x.ndim not in (4, 5):
        raise ValueError(f"soft morphology needs (B, C, H, W) or (B, C, D, H, W), got shape {tuple(x.shape)}")
    return F.max_pool2d if x.ndim == 4 else F.max_pool3d


def _no_graph(x: torch.Tensor) -> bool:
    return not (torch.is_grad_enabled() and x.requires_grad)


def _neighbours(x: torch.Tensor, op, separable: bool) -> torch.Tensor:
    """``op`` (``torch.minimum`` / ``torch.maximum``) of every pixel and its two neighbours along each
    spatial axis, pixels outside the image taking no part. ``separable=False``: the neighbours of
    the input only (a cross, 2d + 1 pixels); ``True``: axis after axis on the running result (the
    3 x 3 (x 3) box). Shifted slices instead of pooling: min / max are exact, so the values equal
    the pooling's; 2 elementwise passes per axis and no index tensor (pooling on the CPU keeps one)."""
    out = torch.empty_like(x)
    if separable:
        _box_into(x, op, out, torch.empty_like(x))
    else:
        _cross_into(x, op, out)
    return out


def _line_into(src: torch.Tensor, op, axis: int, out: torch.Tensor) -> None:
    """``out = op(src, src shifted by +-1 along axis)`` (neighbours beyond the edge take no part);
    ``out`` must not overlap ``src``. Two elementwise passes."""
    n = src.shape[axis]
    if n == 1:
        out.copy_(src)
        return
    op(src.narrow(axis, 0, n - 1), src.narrow(axis, 1, n - 1), out=out.narrow(axis, 0, n - 1))
    out.narrow(axis, n - 1, 1).copy_(src.narrow(axis, n - 1, 1))
    upper = out.narrow(axis, 1, n - 1)
    op(upper, src.narrow(axis, 0, n - 1), out=upper)


def _cross_into(x: torch.Tensor, op, out: torch.Tensor) -> None:
    """``out`` = ``op`` over each pixel of ``x`` and its 2d axis neighbours (the erosion's cross)."""
    _line_into(x, op, 2, out)
    for axis in range(3, x.ndim):
        n = x.shape[axis]
        if n > 1:
            lower, upper = out.narrow(axis, 0, n - 1), out.narrow(axis, 1, n - 1)
            op(lower, x.narrow(axis, 1, n - 1), out=lower)
            op(upper, x.narrow(axis, 0, n - 1), out=upper)


def _box_into(x: torch.Tensor, op, out: torch.Tensor, tmp: torch.Tensor) -> None:
    """``out`` = ``op`` over the 3 x 3 (x 3) box of each pixel of ``x``: axis by axis (separable),
    alternating between ``out`` and ``tmp`` so the last axis lands in ``out``."""
    axes = list(range(2, x.ndim))
    src = x
    for i, axis in enumerate(axes):
        dst = out if (len(axes) - 1 - i) % 2 == 0 else tmp
        _line_into(src, op, axis, dst)
        src = dst


def _skeleton_no_graph(x: torch.Tensor, iterations: int) -> torch.Tensor:
    """:func:`soft_skeleton` without a graph: the same operations in the same order (so the same
    numbers), written into five reused buffers instead of fresh tensors per step (on a 3-D volume
    the allocations' page faults cost as much as the arithmetic)."""
    ero, nxt, opened, tmp, skel = (torch.empty_like(x) for _ in range(5))
    _cross_into(x, torch.minimum, ero)
    _box_into(ero, torch.maximum, opened, tmp)
    torch.sub(x, opened, out=skel).relu_()
    for _ in range(iterations):
        _cross_into(ero, torch.minimum, nxt)
        _box_into(nxt, torch.maximum, opened, tmp)
        delta = torch.sub(ero, opened, out=opened).relu_()
        torch.mul(skel, delta, out=tmp)
        skel.add_(torch.sub(delta, tmp, out=tmp).relu_())
        ero, nxt = nxt, ero
    return skel


def _active_box(x: torch.Tensor, margin: int) -> tuple[slice, ...] | None:
    """Slices ``(:, :, *spatial box)`` of ``x`` outside which every sample equals its first pixel's
    value and lies more than ``margin`` pixels from any other value; ``None`` when ``x`` is constant
    per sample (its skeleton is then 0)."""
    flat = x.reshape(x.shape[0], -1)
    differs = (flat != flat[:, :1]).reshape(x.shape).any(1).any(0)  # spatial
    if not bool(differs.any()):
        return None
    box = [slice(None), slice(None)]
    for axis in range(differs.ndim):
        other = tuple(a for a in range(differs.ndim) if a != axis)
        idx = torch.nonzero(differs.any(other) if other else differs).flatten()
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        box.append(slice(max(lo - margin, 0), min(hi + margin, differs.shape[axis])))
    return tuple(box)


def _skeleton_cropped(x: torch.Tensor, iterations: int) -> tuple[tuple[slice, ...], torch.Tensor | None]:
    """``(box, skeleton of x[box])`` without a graph (docs/theory.md, M6); the skeleton is exactly 0 outside ``box``
    (``None``: 0 everywhere).

    Exact: where a sample is constant (value ``v``) within ``iterations + 2`` pixels of a pixel,
    every erosion and opening there is ``v`` and the skeleton 0. The box is grown by
    ``2 (iterations + 2)`` beyond the non-constant pixels, so each pixel on its rim, and each of
    its neighbours cut off by the crop, holds ``v`` at every step: a min / max over a
    neighbourhood that contains the pixel itself does not change when equal values leave it, so
    every value inside the box equals the full image's.
    """
    box = _active_box(x, 2 * (iterations + 2))
    if box is None:
        return tuple(slice(None) for _ in x.shape), None
    return box, _skeleton_no_graph(x[box], iterations)


def _skeleton_channels(x: torch.Tensor, iterations: int):
    """``(c, box, skeleton of channel c within box)`` (:func:`_skeleton_cropped`) for each channel
    of ``x`` without a graph, one at a time (a volume's temporaries then hold one channel, not all)."""
    for c in range(x.shape[1]):
        box, skel = _skeleton_cropped(x[:, c : c + 1], iterations)
        yield c, box, skel


def soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Soft erosion: the minimum over the 3-pixel line along each spatial axis (a cross), min over axes.

    Pixels outside the image do not take part (max pooling pads with ``-inf``), so a full image
    stays full. Without a graph to record (no gradient wanted) the same minima come from shifted
    slices (:func:`_neighbours`), several times faster on 3-D volumes.
    """
    pool = _pool(x)
    if _no_graph(x):
        return _neighbours(x, torch.minimum, separable=False)
    nd = x.ndim - 2
    out = None
    for axis in range(nd):
        kernel = tuple(3 if a == axis else 1 for a in range(nd))
        pad = tuple(1 if a == axis else 0 for a in range(nd))
        eroded = -pool(-x, kernel, 1, pad)
        out = eroded if out is None else torch.minimum(out, eroded)
    return out


def soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Soft dilation: the maximum over the 3 x 3 (x 3) neighbourhood (separable: axis by axis, exact,
    when no gradient is wanted)."""
    pool = _pool(x)
    if _no_graph(x):
        return _neighbours(x, torch.maximum, separable=True)
    return pool(x, 3, 1, 1)


def soft_skeleton(x: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    r"""Soft skeleton of a probability map ``(B, C, *spatial)`` (Shit et al., Algorithm 1).

    .. math::
        S_0 = \mathrm{relu}(x - \mathrm{open}(x)),\qquad
        S_{k} = S_{k-1} + \mathrm{relu}\big(\delta_k - S_{k-1}\,\delta_k\big),\quad
        \delta_k = \mathrm{relu}\big(e^k(x) - \mathrm{open}(e^k(x))\big)

    with :math:`e` = :func:`soft_erode`, :math:`\mathrm{open} = ` :func:`soft_dilate` after
    :func:`soft_erode`, ``k = 1..iterations``. Each erosion is computed once (the opening of
    :math:`e^k(x)` dilates :math:`e^{k+1}(x)`, the next step's image). Values stay in [0, 1] for
    inputs in [0, 1]; the skeleton of a full or empty map is 0.
    """
    if int(iterations) < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if _no_graph(x):
        out = torch.zeros_like(x)
        for c, box, skel in _skeleton_channels(x, int(iterations)):
            if skel is not None:
                out[:, c : c + 1][box] = skel
        return out
    nxt = soft_erode(x)
    skel = F.relu(x - soft_dilate(nxt))
    for _ in range(int(iterations)):
        x, nxt = nxt, soft_erode(nxt)
        delta = F.relu(x - soft_dilate(nxt))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def _target_skeleton(target: torch.Tensor, start: int, iterations: int) -> torch.Tensor:
    """:func:`soft_skeleton` of ``target[:, start:]`` (a constant), remembered per target tensor."""
    def compute(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            skel = soft_skeleton(t.detach()[:, start:], iterations)
        # a 0/1 target has a 0/1 skeleton (min, max, differences and relu keep {0, 1}): kept as
        # bool, a quarter of the memory, read back exactly
        return skel.bool() if bool(((skel == 0) | (skel == 1)).all()) else skel

    return tensor_memo(target, ("cldice.skeleton", start, int(iterations)), compute)


def _prediction_sums(probs, target, start, iterations) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum S_P, sum S_P * G)`` per sample ``(B,)`` over channels ``start..`` of ``probs`` and
    ``target`` without a graph, channel by channel on the skeleton's box. Within one engine call
    (:func:`~segloss_core.core._tensors.call_memo`) they are remembered per prediction and target:
    clDice and Dice + clDice share one skeleton of the prediction."""
    def compute(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        hit = size.clone()
        for c, box, skel in _skeleton_channels(p[:, start:], int(iterations)):
            if skel is None:
                continue
            dims = tuple(range(1, skel.ndim))
            size += skel.sum(dims)
            hit += skel.mul_(target[:, start + c : start + c + 1][box]).sum(dims)
        return size, hit

    scope = call_scope()
    if scope is None:
        return compute(probs)
    key = ("cldice.prediction_sums", scope, id(target), start, int(iterations))
    size, hit = tensor_memo(probs, key, compute)
    return size.clone(), hit.clone()


def _cldice_per_sample(probs, target, start, iterations, smooth_nr, smooth_dr, smooth_hm) -> torch.Tensor:
    """``1 - clDice`` per sample ``(B,)`` on channels ``start..C-1``."""
    skel_true = _target_skeleton(target, start, iterations)
    if _no_graph(probs):
        size, hit = _prediction_sums(probs, target, start, iterations)
    probs, target = probs[:, start:], target[:, start:]
    dims = tuple(range(1, probs.ndim))
    true_size = skel_true.sum(dims, dtype=probs.dtype)
    if _no_graph(probs):  # channel by channel (same sums, added per channel)
        covered = torch.zeros_like(size)
        for c in range(probs.shape[1]):
            covered += (skel_true[:, c : c + 1].to(probs.dtype) * probs[:, c : c + 1]).sum(dims)
        t_prec = _safe_ratio(hit + smooth_nr, size + smooth_dr)
        t_sens = _safe_ratio(covered + smooth_nr, true_size + smooth_dr)
        return 1 - _safe_ratio(2 * t_prec * t_sens, t_prec + t_sens + smooth_hm, empty=0.0)
    skel_pred = soft_skeleton(probs, iterations)
    # ratios with a zero denominator (only with zero smoothing): no skeleton -> 1, both ratios 0 -> clDice 0
    t_prec = _safe_ratio((skel_pred * target).sum(dims) + smooth_nr, skel_pred.sum(dims) + smooth_dr)
    t_sens = _safe_ratio((skel_true.to(probs.dtype) * probs).sum(dims) + smooth_nr, true_size + smooth_dr)
    return 1 - _safe_ratio(2 * t_prec * t_sens, t_prec + t_sens + smooth_hm, empty=0.0)


@validated
def cldice_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    iterations: int = 3,
    smooth_nr: float = 1.0,
    smooth_dr: float = 1.0,
    smooth_hm: float = 1e-4,
    include_background: bool = True,
) -> torch.Tensor:
    r"""Soft clDice loss: harmonic mean of topological precision and sensitivity on soft skeletons.

    .. math::
        T_{prec} = \frac{\sum S_P \odot G + s_{nr}}{\sum S_P + s_{dr}},\quad
        T_{sens} = \frac{\sum S_G \odot P + s_{nr}}{\sum S_G + s_{dr}},\quad
        L_{clDice} = 1 - \frac{2\, T_{prec}\, T_{sens}}{T_{prec} + T_{sens} + s_{hm}}

    where :math:`S_P`, :math:`S_G` are :func:`soft_skeleton` of the prediction and of the target
    and the sums run over the selected channels and all pixels of one sample.

    Convention:
        Per sample (channels pooled, see the module docstring), then ``reduction``; equals MONAI
        1.6.1 ``SoftclDiceLoss(iter_=iterations, smooth_nr, smooth_dr, smooth=smooth_hm,
        include_background)`` on probabilities. The target's skeleton is a constant (no gradient);
        the prediction's is differentiated through the min / max pooling (gradients go to the
        arg-min / arg-max pixels). The loss only sees the centre-lines: a thin vessel broken by a
        one-pixel gap loses a little Dice but a whole skeleton segment. A perfect hard prediction
        has :math:`T_{prec} = T_{sens} = 1` and scores :math:`s_{hm} / (2 + s_{hm}) \approx 5 \cdot 10^{-5}`,
        not 0. With zero smoothing a ratio whose denominator vanishes counts as 1 (no skeleton:
        nothing to miss) and a vanishing harmonic mean as clDice 0 (MONAI: NaN or Inf). Costs
        ``(d + 1) (iterations + 1)`` pooling passes over the prediction in ``d``-D (without a graph
        only over the box where a channel is not constant, see :func:`_skeleton_cropped`; the
        target's skeleton is remembered per target tensor): far more than Dice, so the spec is ``slow``.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-sample ``(B,)``).
        iterations: soft-skeleton iterations (roughly the largest radius in pixels that is thinned).
        smooth_nr: added to the numerators of precision and sensitivity.
        smooth_dr: added to their denominators.
        smooth_hm: added to the harmonic mean's denominator.
        include_background: keep channel 0.

    Reference: Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular Structure
    Segmentation", CVPR 2021; equals MONAI 1.6.1 ``SoftclDiceLoss``.
    """
    start = 0 if include_background else 1
    per_sample = _cldice_per_sample(probs, target, start, iterations, smooth_nr, smooth_dr, smooth_hm)
    return reduce_samples(per_sample, reduction)


def cldice_params() -> dict[str, ParamSpec]:
    """clDice's parameters with MONAI 1.6.1's defaults (shared with the Dice + clDice compound)."""
    return {
        "iterations": ParamSpec(3, "int", "Soft-skeleton iterations: about the largest half-width (pixels) "
                                "thinned to a centre-line; MONAI iter_.", range=(0, 20), step=1),
        "smooth_nr": ParamSpec(1.0, "float", "Added to the numerators of topological precision and "
                               "sensitivity (clDice default 1, not segloss's 1e-5).", range=(0.0, 10.0), step=0.1),
        "smooth_dr": ParamSpec(1.0, "float", "Added to their denominators (clDice default 1).",
                               range=(0.0, 10.0), step=0.1),
        "smooth_hm": ParamSpec(1e-4, "float", "Added to the harmonic mean's denominator (MONAI smooth).",
                               range=(0.0, 1.0), step=1e-4),
        "include_background": ParamSpec(True, "bool", "Keep channel 0 (background) in the pooled skeleton sums."),
    }


SPECS = [
    LossSpec(
        name="cldice",
        title="clDice (soft skeleton)",
        category="topology",
        fn=cldice_loss,
        formula="",
        formula_for=formulas.cldice,
        reference="Shit et al., CVPR 2021 (MONAI SoftclDiceLoss); not in Ma 2020",
        params=cldice_params(),
        slow=True,
        summary="Dice between soft skeletons and masks: counts how much of the true centre-lines the "
        "prediction covers and vice versa, so a gap that cuts a thin vessel costs a whole segment.",
    ),
]
