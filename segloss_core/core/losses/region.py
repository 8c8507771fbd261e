r"""Region-based losses: overlap ratios of soft TP / FP / FN (Ma 2020, eqs. 7-14) and the Lovász losses.

Every overlap loss here is built on one primitive, :func:`segloss_core.core.stats.soft_confusion`, and
also exposes ``<name>_from_stats(conf, **params) -> (B,)`` so several region losses can share one
pass over the data (the landscape pages do this).

Convention (segloss's choice where the papers differ):
    - ``probs`` and ``target`` are ``(B, C, *spatial)``, 2-D or 3-D, ``C >= 2``; prediction first.
    - The ratio is computed **per sample and per class** over the spatial axes, then averaged over
      the classes (the per-sample value) and over the samples (``reduction="mean"``).
      ``batch=True`` sums TP / FP / FN over the batch first (nnU-Net's "batch dice"): one ratio
      per class for the whole batch. ``reduction="none"`` always returns ``(B,)``, each sample's
      own value as if evaluated alone (so with ``batch=True`` its mean differs from the pooled
      value); ``"sum"`` of a pooled loss is ``B`` times the pooled value.
    - ``include_background=False`` drops channel 0 (default ``True``).
    - ``smooth`` (default ``1e-5``) enters numerator and denominator exactly as MONAI's
      ``smooth_nr = smooth_dr``: Dice :math:`(2TP + s) / (2TP + FP + FN + s)`, IoU (MONAI
      ``jaccard=True``) :math:`(2TP + s) / (2(TP + FP + FN) + s)`, Tversky
      :math:`(TP + s) / (TP + \alpha FP + \beta FN + s)`.
    - ``squared=True`` (Dice, IoU): the V-Net denominator :math:`\sum p^2 + \sum g^2`.
    - ``soft_label=True``: MONAI's soft-label-correct :math:`TP = (|p|_1 + |g|_1 - |p - g|_1)/2`
      (equal to :math:`\sum pg` for hard labels), so that ``p = g`` minimises the loss for soft
      targets too.
    - A ratio whose numerator and denominator are both 0 (only possible with ``smooth=0``) counts as
      a perfect score, so no loss ever returns NaN.

Empty-class policy (a class with no ground-truth pixel in the reduction set):
    - Dice, IoU, Tversky, focal Tversky, asymmetric (MONAI smoothing): an empty class predicted
      empty scores loss :math:`1 - s/s = 0`; an empty class with false-positive mass ``FP`` scores
      :math:`1 - s/(FP + s) \approx 1` (saturated), with a tiny gradient :math:`s/(FP + s)^2`.
      The class still counts in the mean over classes.
    - Generalised Dice (MONAI ``GeneralizedDiceLoss(w_type="square")``): weights
      :math:`1/(\sum g)^2`; the infinite weight of an empty class is replaced by the largest finite
      weight of the sample (of the batch when ``batch=True``), so its false positives cost like
      those of the smallest present class; all classes empty -> all weights 0 and the loss is 0
      (no gradient). No NaN / Inf anywhere. ``penalty_gdl`` inherits this.
    - Sensitivity-specificity: an empty class contributes 0 to its sensitivity term.
    - Lovász-Softmax: classes absent from the ground truth are dropped (Berman's ``classes="present"``);
      a sample with no present class scores 0. Lovász hinge (binary) keeps Berman's behaviour: an
      image with empty foreground scores its largest hinge error.
"""

from __future__ import annotations

import numpy as np
import torch

from .._tensors import EPS, clamped_log, reduce_samples, spatial_dims, validated
from ..spec import LossSpec, ParamSpec
from ..stats import SoftConfusion, per_sample_mean, soft_confusion
from . import formulas

#: Default smoothing (MONAI's ``smooth_nr = smooth_dr``).
SMOOTH = 1e-5

#: Human-readable empty-class policy, displayed by the app.
EMPTY_CLASS_POLICY = (
    "Empty class (no ground-truth pixel): Dice/IoU/Tversky-type losses use MONAI smoothing, so an empty "
    "class predicted empty scores 0 and one with false positives scores about 1 (saturated, gradient "
    "~ smooth/FP^2); it still counts in the class mean. Generalised Dice (and penalty GD) gives an empty "
    "class the largest finite weight of the sample (of the batch with batch=True); all classes empty "
    "-> loss 0. Lovász-Softmax drops absent classes (a sample with none present scores 0)."
)

_HELP_SMOOTH = "added to numerator and denominator (MONAI smooth_nr = smooth_dr); 0 disables it"
_HELP_BG = "include channel 0 (background) in the mean over classes"
_HELP_BATCH = "pool TP/FP/FN over the batch before the ratio (nnU-Net batch dice)"
_HELP_SOFT = "soft-label-correct TP = (|p|+|g|-|p-g|)/2 (MONAI soft_label): p = g minimises it for soft targets"


def _smooth_param() -> ParamSpec:
    return ParamSpec(SMOOTH, "float", _HELP_SMOOTH, range=(0.0, 1.0), step=1e-5)


def _common_params() -> dict[str, ParamSpec]:
    return {
        "smooth": _smooth_param(),
        "include_background": ParamSpec(True, "bool", _HELP_BG),
        "batch": ParamSpec(False, "bool", _HELP_BATCH),
        "soft_label": ParamSpec(False, "bool", _HELP_SOFT),
    }


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _safe_ratio(num: torch.Tensor, den: torch.Tensor, empty: float = 1.0) -> torch.Tensor:
    """``num / den``, and ``empty`` where ``den == 0`` (gradient-safe: no 0/0 in either branch)."""
    zero = den == 0
    if den.device.type == "cpu" and not zero.any():  # the usual case; checking costs no device sync on CPU
        return num / den
    return torch.where(zero, torch.full_like(num, empty), num / torch.where(zero, torch.ones_like(den), den))


def _select(conf: SoftConfusion, include_background: bool, batch: bool) -> SoftConfusion:
    conf = conf.classes(include_background)
    return conf.pooled() if batch else conf


def _per_sample(values: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``(B', C')`` table -> ``(B,)``; a pooled table ``(1, C')`` is shared by every sample."""
    return per_sample_mean(values, batch_size)


def _region(from_stats, probs, target, reduction: str, soft_label: bool, batch: bool, **params):
    conf = soft_confusion(probs, target, soft_label=soft_label)
    per = from_stats(conf, batch=batch and reduction != "none", **params)
    return reduce_samples(per, reduction)


def _tversky_scores(conf: SoftConfusion, alpha: float, beta: float, smooth: float) -> torch.Tensor:
    return _safe_ratio(conf.tp + smooth, conf.tp + alpha * conf.fp + beta * conf.fn + smooth)


def _asymmetric_weights(beta: float) -> tuple[float, float]:
    b2 = beta * beta
    return 1.0 / (1.0 + b2), b2 / (1.0 + b2)


# ----------------------------------------------------------------------------------------------
# from_stats forms: SoftConfusion (B, C) -> per-sample losses (B,)
# ----------------------------------------------------------------------------------------------


def dice_from_stats(conf: SoftConfusion, *, smooth: float = SMOOTH, squared: bool = False,
                    include_background: bool = True, batch: bool = False,
                    soft_label: bool = False) -> torch.Tensor:
    """Per-sample soft Dice loss ``(B,)`` from a :class:`SoftConfusion` (see :func:`dice_loss`).

    ``soft_label`` is accepted for symmetry with :func:`dice_loss`; it acts when ``conf`` is built.
    """
    bsz = conf.tp.shape[0]
    c = _select(conf, include_background, batch)
    if squared:
        num, den = 2 * c.product_tp, c.pred_sq + c.target_sq
    else:
        num, den = 2 * c.tp, c.pred_sum + c.target_sum
    return _per_sample(1 - _safe_ratio(num + smooth, den + smooth), bsz)


def iou_from_stats(conf: SoftConfusion, *, smooth: float = SMOOTH, squared: bool = False,
                   include_background: bool = True, batch: bool = False,
                   soft_label: bool = False) -> torch.Tensor:
    """Per-sample soft Jaccard loss ``(B,)`` from a :class:`SoftConfusion` (see :func:`iou_loss`)."""
    bsz = conf.tp.shape[0]
    c = _select(conf, include_background, batch)
    if squared:
        tp = c.product_tp
        union = c.pred_sq + c.target_sq - tp
    else:
        tp = c.tp
        union = c.pred_sum + c.target_sum - tp
    return _per_sample(1 - _safe_ratio(2 * tp + smooth, 2 * union + smooth), bsz)


def tversky_from_stats(conf: SoftConfusion, *, alpha: float = 0.3, beta: float = 0.7, smooth: float = SMOOTH,
                       include_background: bool = True, batch: bool = False,
                       soft_label: bool = False) -> torch.Tensor:
    """Per-sample Tversky loss ``(B,)`` from a :class:`SoftConfusion` (see :func:`tversky_loss`)."""
    bsz = conf.tp.shape[0]
    c = _select(conf, include_background, batch)
    return _per_sample(1 - _tversky_scores(c, alpha, beta, smooth), bsz)


def _focal_power(base: torch.Tensor, exponent: float) -> torch.Tensor:
    if exponent == 1:
        return base
    if exponent < 1:
        # fractional power: clamp so the gradient stays finite at a perfect prediction
        return base.clamp_min(EPS) ** exponent
    return base.clamp_min(0) ** exponent


def focal_tversky_from_stats(conf: SoftConfusion, *, gamma: float = 4 / 3, alpha: float = 0.3,
                             beta: float = 0.7, smooth: float = SMOOTH, include_background: bool = True,
                             batch: bool = False, soft_label: bool = False) -> torch.Tensor:
    """Per-sample focal Tversky loss ``(B,)`` from a :class:`SoftConfusion` (see :func:`focal_tversky_loss`)."""
    bsz = conf.tp.shape[0]
    c = _select(conf, include_background, batch)
    base = 1 - _tversky_scores(c, alpha, beta, smooth)
    return _per_sample(_focal_power(base, 1.0 / gamma), bsz)


def asymmetric_from_stats(conf: SoftConfusion, *, beta: float = 1.5, smooth: float = SMOOTH,
                          include_background: bool = True, batch: bool = False,
                          soft_label: bool = False) -> torch.Tensor:
    """Per-sample asymmetric similarity loss ``(B,)`` (see :func:`asymmetric_loss`)."""
    a, b = _asymmetric_weights(beta)
    return tversky_from_stats(conf, alpha=a, beta=b, smooth=smooth, include_background=include_background,
                              batch=batch)


def _gdl_values(conf: SoftConfusion, smooth: float, include_background: bool, batch: bool) -> torch.Tensor:
    """Generalised Dice loss per row of the (possibly pooled) table: ``(B',)``."""
    c = _select(conf, include_background, batch)
    with torch.no_grad():
        w = torch.reciprocal(c.target_sum * c.target_sum)
        infinite = torch.isinf(w)
        w = torch.where(infinite, torch.zeros_like(w), w)
        # MONAI: an empty class takes the largest finite weight of its sample (of the batch when pooled)
        w = torch.where(infinite, w.amax(dim=1, keepdim=True), w)
    num = 2 * (w * c.tp).sum(1) + smooth
    den = (w * (c.pred_sum + c.target_sum)).sum(1) + smooth
    return 1 - _safe_ratio(num, den)


def generalized_dice_from_stats(conf: SoftConfusion, *, smooth: float = SMOOTH, include_background: bool = True,
                                batch: bool = False, soft_label: bool = False) -> torch.Tensor:
    """Per-sample generalised Dice loss ``(B,)`` (see :func:`generalized_dice_loss`)."""
    bsz = conf.tp.shape[0]
    return _per_sample(_gdl_values(conf, smooth, include_background, batch)[:, None], bsz)


def penalty_gdl_from_stats(conf: SoftConfusion, *, k: float = 2.5, smooth: float = SMOOTH,
                           include_background: bool = True, batch: bool = False,
                           soft_label: bool = False) -> torch.Tensor:
    """Per-sample penalty generalised Dice loss ``(B,)`` (see :func:`penalty_gdl_loss`)."""
    bsz = conf.tp.shape[0]
    gdl = _gdl_values(conf, smooth, include_background, batch)
    return _per_sample((gdl / (1 + k * (1 - gdl)))[:, None], bsz)


# ----------------------------------------------------------------------------------------------
# functional losses
# ----------------------------------------------------------------------------------------------


@validated
def dice_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", smooth: float = SMOOTH,
              squared: bool = False, include_background: bool = True, batch: bool = False,
              soft_label: bool = False) -> torch.Tensor:
    r"""Soft Dice loss (Milletari et al.; eq. 8 of Ma 2020).

    .. math::
        \mathcal{L}_{Dice} = 1 - \frac{1}{|C|}\sum_{c} \frac{2\,TP_c + s}{\sum_i p_{ic} + \sum_i g_{ic} + s},
        \qquad TP_c = \sum_i p_{ic} g_{ic}

    With ``squared=True`` the denominator is V-Net's :math:`\sum_i p_{ic}^2 + \sum_i g_{ic}^2` (Ma's
    printed eq. 8, which also pools the classes; here classes are averaged).

    Convention:
        Per sample and class over the spatial axes, mean over classes then samples; ``batch=True``
        pools the batch first; ``reduction="none"`` gives ``(B,)`` unpooled per-sample values;
        ``include_background=False`` drops channel 0. Equals MONAI ``DiceLoss(smooth_nr=smooth,
        smooth_dr=smooth, squared_pred=squared, batch=batch, soft_label=soft_label)`` on
        probabilities. Empty class: 0 if predicted empty, about 1 with false positives (see
        ``EMPTY_CLASS_POLICY``).

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        smooth: added to numerator and denominator.
        squared: V-Net squared denominator.
        include_background: keep channel 0.
        batch: pool TP / FP / FN over the batch.
        soft_label: soft-label-correct TP :math:`(|p| + |g| - |p - g|)/2`.

    Reference:
        Milletari, Navab, Ahmadi, "V-Net", 3DV 2016; Ma, "Segmentation Loss Odyssey", arXiv 2020, eq. 8.
    """
    return _region(dice_from_stats, probs, target, reduction, soft_label, batch, smooth=smooth,
                   squared=squared, include_background=include_background)


@validated
def iou_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", smooth: float = SMOOTH,
             squared: bool = False, include_background: bool = True, batch: bool = False,
             soft_label: bool = False) -> torch.Tensor:
    r"""Soft IoU (Jaccard) loss (Rahman & Wang; eq. 9 of Ma 2020).

    .. math::
        \mathcal{L}_{IoU} = 1 - \frac{1}{|C|}\sum_{c} \frac{2\,TP_c + s}{2\,(TP_c + FP_c + FN_c) + s},
        \qquad TP + FP + FN = \sum p + \sum g - \sum pg

    The smoothing follows MONAI ``DiceLoss(jaccard=True)`` (with ``s = 0`` this is
    :math:`1 - TP/(TP + FP + FN)`, eq. 9). ``squared=True`` uses
    :math:`\sum p^2 + \sum g^2 - \sum pg` as the union.

    Convention:
        As :func:`dice_loss` (per sample and class, ``batch``, ``include_background``,
        ``reduction="none"`` unpooled). With ``smooth=0``, :math:`\Delta_J = 2\Delta_D/(1 + \Delta_D)`
        per class. Empty class: as Dice (see ``EMPTY_CLASS_POLICY``).

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        smooth: added to numerator and denominator.
        squared: squared (V-Net-style) sums in the union.
        include_background: keep channel 0.
        batch: pool TP / FP / FN over the batch.
        soft_label: soft-label-correct TP.

    Reference:
        Rahman & Wang, "Optimizing intersection-over-union in deep neural networks", ISVC 2016;
        Ma 2020, eq. 9.
    """
    return _region(iou_from_stats, probs, target, reduction, soft_label, batch, smooth=smooth,
                   squared=squared, include_background=include_background)


@validated
def tversky_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", alpha: float = 0.3,
                 beta: float = 0.7, smooth: float = SMOOTH, include_background: bool = True,
                 batch: bool = False, soft_label: bool = False) -> torch.Tensor:
    r"""Tversky loss (Salehi et al.; eq. 10 of Ma 2020, as ``1 - index``).

    .. math::
        \mathcal{L}_{T} = 1 - \frac{1}{|C|}\sum_c
        \frac{TP_c + s}{TP_c + \alpha\,FP_c + \beta\,FN_c + s}

    ``alpha`` weights false positives, ``beta`` false negatives; ``(0.5, 0.5)`` is Dice and
    ``(1, 1)`` is IoU (with ``s = 0``).

    Convention:
        As :func:`dice_loss`. Equals MONAI ``TverskyLoss(alpha, beta, smooth_nr=smooth,
        smooth_dr=smooth)`` on probabilities. Empty class: see ``EMPTY_CLASS_POLICY``.

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        alpha: weight of false positives.
        beta: weight of false negatives.
        smooth: added to numerator and denominator.
        include_background: keep channel 0.
        batch: pool TP / FP / FN over the batch.
        soft_label: soft-label-correct TP.

    Reference:
        Salehi, Erdogmus, Gholipour, "Tversky loss function for image segmentation", MLMI 2017;
        Ma 2020, eq. 10.
    """
    return _region(tversky_from_stats, probs, target, reduction, soft_label, batch, alpha=alpha, beta=beta,
                   smooth=smooth, include_background=include_background)


@validated
def generalized_dice_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                          smooth: float = SMOOTH, include_background: bool = True, batch: bool = False,
                          soft_label: bool = False) -> torch.Tensor:
    r"""Generalised Dice loss (Sudre et al.; eq. 11 of Ma 2020).

    .. math::
        \mathcal{L}_{GD} = 1 - \frac{2\sum_c w_c\,TP_c + s}{\sum_c w_c \left(\sum_i p_{ic} + \sum_i g_{ic}\right)
        + s}, \qquad w_c = \frac{1}{\left(\sum_i g_{ic}\right)^2}

    Convention:
        One ratio per sample (classes summed with weights inside it), then the mean over samples;
        ``batch=True`` pools the batch (one weight per class for the batch). Empty classes follow
        MONAI: the infinite weight is replaced by the largest finite weight of the sample (of the
        batch when ``batch=True``); all classes empty -> weights 0 and loss 0. Never NaN / Inf.
        Equals MONAI ``GeneralizedDiceLoss(w_type="square", smooth_nr=smooth, smooth_dr=smooth)``
        on probabilities. With one class the weight cancels (``smooth=0``): the Dice loss.

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        smooth: added to numerator and denominator.
        include_background: keep channel 0 (weights are computed after dropping it).
        batch: pool over the batch.
        soft_label: soft-label-correct TP.

    Reference:
        Sudre et al., "Generalised Dice overlap as a deep learning loss function for highly
        unbalanced segmentations", DLMIA 2017; Ma 2020, eq. 11.
    """
    return _region(generalized_dice_from_stats, probs, target, reduction, soft_label, batch, smooth=smooth,
                   include_background=include_background)


@validated
def focal_tversky_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                       gamma: float = 4 / 3, alpha: float = 0.3, beta: float = 0.7, smooth: float = SMOOTH,
                       include_background: bool = True, batch: bool = False,
                       soft_label: bool = False) -> torch.Tensor:
    r"""Focal Tversky loss (Abraham & Khan; eq. 12 of Ma 2020).

    .. math::
        \mathcal{L}_{FT} = \frac{1}{|C|}\sum_c \left(1 - T_c(\alpha, \beta)\right)^{1/\gamma}

    with :math:`T_c` the smoothed Tversky index of :func:`tversky_loss`. ``gamma=4/3`` (exponent
    0.75, the paper's value); ``gamma=1`` is the Tversky loss.

    Convention:
        The power is applied per class, then the mean over classes and samples (SegLoss applies it
        to the class mean instead). For a fractional exponent the base is clamped at ``EPS`` so the
        value and gradient stay finite at a perfect prediction (the loss there is ``EPS**(1/gamma)``,
        not 0). Batch / background / empty classes as :func:`tversky_loss`.

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        gamma: focal parameter; the exponent is ``1/gamma``.
        alpha: weight of false positives.
        beta: weight of false negatives.
        smooth: added to numerator and denominator.
        include_background: keep channel 0.
        batch: pool TP / FP / FN over the batch.
        soft_label: soft-label-correct TP.

    Reference:
        Abraham & Khan, "A novel focal Tversky loss function with improved attention U-Net for lesion
        segmentation", ISBI 2019; Ma 2020, eq. 12.
    """
    return _region(focal_tversky_from_stats, probs, target, reduction, soft_label, batch, gamma=gamma,
                   alpha=alpha, beta=beta, smooth=smooth, include_background=include_background)


@validated
def asymmetric_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", beta: float = 1.5,
                    smooth: float = SMOOTH, include_background: bool = True, batch: bool = False,
                    soft_label: bool = False) -> torch.Tensor:
    r"""Asymmetric similarity loss (Hashemi et al.; eq. 13 of Ma 2020, as ``1 - index``).

    .. math::
        \mathcal{L}_{Asym} = 1 - \frac{1}{|C|}\sum_c \frac{TP_c + s}
        {TP_c + \frac{1}{1+\beta^2} FP_c + \frac{\beta^2}{1+\beta^2} FN_c + s}

    i.e. the Tversky loss with :math:`\alpha = 1/(1+\beta^2)`, :math:`\beta' = \beta^2/(1+\beta^2)`
    (the F-beta score); ``beta=1.5`` weights false negatives 0.692, false positives 0.308.

    Convention:
        As :func:`tversky_loss`.

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        beta: F-beta parameter (> 1 favours recall).
        smooth: added to numerator and denominator.
        include_background: keep channel 0.
        batch: pool TP / FP / FN over the batch.
        soft_label: soft-label-correct TP.

    Reference:
        Hashemi et al., "Asymmetric loss functions and deep densely-connected networks for
        highly-imbalanced medical image segmentation", IEEE Access 2019; Ma 2020, eq. 13.
    """
    return _region(asymmetric_from_stats, probs, target, reduction, soft_label, batch, beta=beta, smooth=smooth,
                   include_background=include_background)


@validated
def penalty_gdl_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", k: float = 2.5,
                     smooth: float = SMOOTH, include_background: bool = True, batch: bool = False,
                     soft_label: bool = False) -> torch.Tensor:
    r"""Penalty generalised Dice loss (Su et al.; eq. 14 of Ma 2020).

    .. math::
        \mathcal{L}_{pGD} = \frac{\mathcal{L}_{GD}}{1 + k\,(1 - \mathcal{L}_{GD})}

    with :math:`\mathcal{L}_{GD}` the per-sample :func:`generalized_dice_loss`; ``k=0`` is the
    generalised Dice loss. Applied as eq. 14 prints it, to the loss, the factor
    :math:`1/(1 + k(1 - \mathcal{L}_{GD}))` is at most 1 for ``k > 0`` and smallest for a good
    prediction: the loss is never above the GDL and shrinks a good prediction's loss further
    (k = 2.5: L_GD 0.02 → 0.0058, but L_GD 0.98 → 0.93). Its slope in the GDL,
    :math:`(1 + k)/(1 + k(1 - \mathcal{L}_{GD}))^2`, is :math:`1/(1 + k)` near a perfect
    prediction and :math:`1 + k` near a total miss, so it does not push harder on the last
    false positives and negatives (the aim Su et al. state); it stresses the badly segmented samples.

    Convention:
        Applied per sample (to the pooled GDL when ``batch=True``), then the mean over samples; the
        paper's form on ``1 - GDC`` (SegLoss applies it to ``-GDC``). Empty classes as GDL.

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        k: non-negative penalty coefficient.
        smooth: added to numerator and denominator.
        include_background: keep channel 0.
        batch: pool over the batch.
        soft_label: soft-label-correct TP.

    Reference:
        Su, Jihoon, Young-Hak, "Major vessel segmentation on X-ray coronary angiography using deep
        networks with a novel penalty loss function", MIDL 2019; Ma 2020, eq. 14.
    """
    return _region(penalty_gdl_from_stats, probs, target, reduction, soft_label, batch, k=k, smooth=smooth,
                   include_background=include_background)


@validated
def sensitivity_specificity_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                                 w: float = 0.1, smooth: float = SMOOTH, batch: bool = False) -> torch.Tensor:
    r"""Sensitivity-specificity loss (Brosch et al.; eq. 7 of Ma 2020).

    .. math::
        \mathcal{L}_{SS} = \frac{1}{C-1}\sum_{c \ge 1}\left[
        w\,\frac{\sum_i (g_{ic} - p_{ic})^2 g_{ic}}{\sum_i g_{ic} + s}
        + (1 - w)\,\frac{\sum_i (g_{ic} - p_{ic})^2 (1 - g_{ic})}{\sum_i (1 - g_{ic}) + s}\right]

    ``w`` (0.1) weights the sensitivity (foreground) term, ``1 - w`` the specificity term.

    Convention:
        The paper writes it for one foreground class: it is computed per foreground class
        (channels ``1..C-1``) and averaged; for a binary case that is the foreground channel.
        Per sample over the spatial axes; ``batch=True`` pools the batch (``reduction="none"``
        stays per sample). ``smooth`` only enters the denominators; an empty class contributes 0 to
        its sensitivity term. No ``from_stats`` form (needs :math:`\sum p^2 g`).

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        w: weight of the sensitivity term.
        smooth: added to both denominators.
        batch: pool over the batch.

    Reference:
        Brosch et al., "Deep convolutional encoder networks for multiple sclerosis lesion
        segmentation", MICCAI 2015; Ma 2020, eq. 7.
    """
    bsz = probs.shape[0]
    p, g = probs[:, 1:], target[:, 1:]
    dims = spatial_dims(p)
    err = (g - p) ** 2
    sums = torch.stack([(err * g).sum(dims), (err * (1 - g)).sum(dims), g.sum(dims), (1 - g).sum(dims)])
    if batch and reduction != "none":
        sums = sums.sum(1, keepdim=True)  # (4, 1, C-1)
    sens_num, spec_num, fg, bg = sums
    # with smooth = 0 an empty denominator has an empty (zero) numerator: count it as no error
    values = w * _safe_ratio(sens_num, fg + smooth, 0.0) + (1 - w) * _safe_ratio(spec_num, bg + smooth, 0.0)
    return reduce_samples(_per_sample(values, bsz), reduction)


# ----------------------------------------------------------------------------------------------
# Lovász losses (Berman et al. 2018), vectorised over rows of an (n, P) error table
# ----------------------------------------------------------------------------------------------


#: Values sorted at once by the Lovász losses: the rows of the error table go through the sort in
#: groups of about this many values (one row at a time for a 3-D volume), so the sort's int64
#: index and the cumulative sums below hold one group, not the whole table. Same numbers.
LOVASZ_CHUNK = 1 << 22


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss for rows of sorted ground truth ``(n, P)``:
    :math:`J_r - J_{r-1}` with :math:`J_r = 1 - I_r / U_r` (the Jaccard loss when the first ``r``
    pixels are wrong). Computed in place (no graph), the same operations as the plain formula."""
    gts = gt_sorted.sum(-1, keepdim=True)
    union = (1 - gt_sorted).cumsum(-1).add_(gts)  # > 0 everywhere for labels in [0, 1]
    cum = gt_sorted.cumsum(-1)
    jaccard = torch.sub(gts, cum, out=cum).div_(union).neg_().add_(1)  # 1 - intersection / union
    grad = union  # reused: grad[0] = J[0], grad[r] = J[r] - J[r - 1]
    grad[..., :1] = jaccard[..., :1]
    torch.sub(jaccard[..., 1:], jaccard[..., :-1], out=grad[..., 1:])
    return grad


def _tie_ordered(errors: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
    """Permutation of each row sorting ``errors`` decreasingly, ties broken by ``fg`` decreasingly
    (foreground first, as :func:`_lovasz_split`), then by position: the same on every device."""
    by_label = torch.argsort(fg, dim=-1, descending=True, stable=True)
    return by_label.gather(-1, torch.argsort(errors.gather(-1, by_label), dim=-1, descending=True, stable=True))


def _tie_mean(grad: torch.Tensor, errors_sorted: torch.Tensor, fg_sorted: torch.Tensor) -> torch.Tensor:
    r"""``grad`` with each run of equal (error, label) replaced by its mean (rows ``(n, P)``, sorted).

    Where errors tie, every order of the tied pixels is a valid sort and gives a valid subgradient;
    the pixels of one run carry the same error and label, so any permutation of them leaves the
    increments :math:`h_r` in place and only moves them between pixels. Averaging over those
    permutations (a convex combination of subgradients) gives each pixel of the run the run's mean
    :math:`h`: a subgradient that treats equal pixels equally (a symmetric case keeps a symmetric
    gradient) and does not depend on the sort's algorithm or device. The loss value is unchanged."""
    new = torch.ones_like(errors_sorted, dtype=torch.bool)
    new[..., 1:] = (errors_sorted[..., 1:] != errors_sorted[..., :-1]) | (fg_sorted[..., 1:] != fg_sorted[..., :-1])
    if bool(new.all()):
        return grad
    runs = new.sum(-1)
    ids = (new.cumsum(-1) - 1 + (runs.cumsum(0) - runs).unsqueeze(-1)).reshape(-1)
    total = int(runs.sum())
    sums = torch.zeros(total, dtype=grad.dtype, device=grad.device).index_add_(0, ids, grad.reshape(-1))
    counts = torch.bincount(ids, minlength=total).to(grad.dtype)
    return (sums / counts)[ids].reshape(grad.shape)


#: Rows at least this long are scored by :func:`_lovasz_split` when no gradient is wanted (the
#: evaluation of a 3-D volume), CPU tensors and hard 0/1 labels.
LOVASZ_SPLIT_MIN = 1 << 16


def _lovasz_split(errors: np.ndarray, fg: np.ndarray, relu: bool) -> float:
    r"""One row of the Lovász extension without the joint sort: the foreground's and the
    background's errors sorted apart (values only), merged by counting.

    In the decreasing order (ties: foreground first; the value does not depend on the order of
    ties) the :math:`i`-th foreground error, with :math:`m_i` background errors before it, raises
    :math:`J = 1 - (F - k)/(F + m)` (``F`` foreground pixels, ``k`` / ``m`` wrong so far) by
    :math:`1 / (F + m_i)`; the :math:`j`-th background error, with :math:`k_j` foreground errors
    before it, by :math:`(F - k_j) / ((F + j)(F + j + 1))`. The loss is the sum of each error times
    its increment, in float64 (the joint sort's cumulative sums give the same increments).
    Without foreground, the largest error (``J`` jumps from 0 to 1 at the first pixel)."""
    e_fg, e_bg = np.sort(errors[fg]), np.sort(errors[~fg])  # ascending
    if relu:
        np.maximum(e_fg, 0, out=e_fg)
        np.maximum(e_bg, 0, out=e_bg)
    f, nb = e_fg.size, e_bg.size
    if f == 0:
        return float(e_bg[-1]) if nb else 0.0
    total, step = 0.0, 1 << 16  # chunks of temporaries that stay in cache; zero errors add nothing
    for lo in range(int(np.searchsorted(e_fg, 0.0, side="right")), f, step):
        e = e_fg[lo : lo + step]
        bg_above = nb - np.searchsorted(e_bg, e, side="right")  # m_i: background errors > e
        total += float(np.sum(e / (f + bg_above).astype(np.float64)))
    for lo in range(int(np.searchsorted(e_bg, 0.0, side="right")), nb, step):
        e = e_bg[lo : lo + step]
        fg_left = np.searchsorted(e_fg, e, side="left")  # F - k_j: foreground errors < e
        j = np.arange(nb - 1 - lo, nb - 1 - lo - e.size, -1, dtype=np.float64) + f  # F + j
        total += float(np.sum(e * fg_left / (j * (j + 1))))
    return total


def _split_ok(errors: torch.Tensor, fg: torch.Tensor) -> bool:
    if errors.shape[-1] < LOVASZ_SPLIT_MIN or errors.device.type != "cpu":
        return False
    if torch.is_grad_enabled() and errors.requires_grad:
        return False
    return bool(((fg == 0) | (fg == 1)).all())


def _lovasz_rows(errors: torch.Tensor, fg: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """Lovász extension of the Jaccard loss per row: ``errors`` and ``fg`` are ``(n, P)`` -> ``(n,)``."""
    if _split_ok(errors, fg):
        # (fg > 0.5) is a new tensor, one row at a time: a .numpy() view of the target itself would make
        # its storage non-resizable, and target-keyed memos (tensor_memo) would then last one call only
        e, fg = errors.detach().numpy(), fg.detach()
        return torch.tensor([_lovasz_split(e[i], (fg[i] > 0.5).numpy(), relu) for i in range(e.shape[0])],
                            dtype=errors.dtype)
    step = max(1, LOVASZ_CHUNK // max(1, errors.shape[-1]))
    if errors.shape[0] > step:
        return torch.cat([_lovasz_rows(errors[i : i + step], fg[i : i + step], relu)
                          for i in range(0, errors.shape[0], step)])
    if torch.is_grad_enabled() and errors.requires_grad:
        perm = _tie_ordered(errors.detach(), fg.detach())
        errors_sorted = errors.gather(-1, perm)
        with torch.no_grad():
            fg_sorted = fg.detach().gather(-1, perm)
            grad = _tie_mean(_lovasz_grad(fg_sorted), errors_sorted.detach(), fg_sorted)
    else:  # the value does not depend on the order of ties: one plain sort
        errors_sorted, perm = torch.sort(errors, dim=-1, descending=True)
        with torch.no_grad():
            grad = _lovasz_grad(fg.detach().gather(-1, perm))
    del perm
    if relu:
        errors_sorted = torch.relu(errors_sorted)
    return (errors_sorted * grad).sum(-1)


def _lovasz_softmax_table(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``p``, ``g``: ``(n, C, P)`` -> per-row loss ``(n,)``, mean over present classes (0 if none)."""
    n, c, npix = p.shape
    losses = _lovasz_rows((g - p).abs().reshape(n * c, npix), g.reshape(n * c, npix)).reshape(n, c)
    present = g.sum(-1) > 0
    count = present.sum(1)
    total = torch.where(present, losses, torch.zeros_like(losses)).sum(1)
    return total / count.clamp_min(1).to(total.dtype)


@validated
def lovasz_softmax_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                        per_image: bool = False) -> torch.Tensor:
    r"""Lovász-Softmax loss (Berman et al.), the convex surrogate of the Jaccard loss.

    .. math::
        \mathcal{L} = \frac{1}{|C_{present}|}\sum_{c \in C_{present}} \overline{\Delta_J}\!\left(m(c)\right),
        \qquad m_i(c) = |g_{ic} - p_{ic}|,\quad
        \overline{\Delta_J}(m) = \sum_{r} m_{\pi(r)}\, h_r

    where :math:`\pi` sorts the errors in decreasing order and :math:`h_r` is the increment of the
    Jaccard loss when the first :math:`r` pixels of that order are wrong (Lovász extension
    gradient; :math:`h_r \in [0, 1]`, :math:`\sum_r h_r = 1`).

    Convention:
        Takes probabilities (Berman's ``lovasz_softmax``; SMP / kornia take logits). Only classes
        present in the ground truth count (``classes="present"``); a sample with no present class
        scores 0. ``per_image=False`` (default) pools all pixels of the batch (one value, shared by
        every sample); ``per_image=True`` averages per-image values; ``reduction="none"`` always
        gives ``(B,)`` per-image values. On hard predictions it equals the mean over present classes
        of :math:`1 - J`. 2-D and 3-D (spatial axes flattened); vectorised with one ``torch.sort``
        over all (image, class) rows.

    Args:
        probs: probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        per_image: compute per image then average (else pool the batch).

    Reference:
        Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: a tractable surrogate for the
        optimization of the intersection-over-union measure in neural networks", CVPR 2018.
    """
    bsz, c = probs.shape[:2]
    p = probs.reshape(bsz, c, -1)
    g = target.reshape(bsz, c, -1)
    if per_image or reduction == "none":
        per = _lovasz_softmax_table(p, g)
    else:
        pooled = _lovasz_softmax_table(p.transpose(0, 1).reshape(1, c, -1), g.transpose(0, 1).reshape(1, c, -1))
        per = pooled.expand(bsz)
    return reduce_samples(per, reduction)


_BINARY_ONLY = "lovasz_hinge is defined for binary segmentation only (C = 2)"


@validated
def lovasz_hinge_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                      per_image: bool = True) -> torch.Tensor:
    r"""Lovász hinge loss (Berman et al.), binary segmentation on the logit margin.

    .. math::
        \mathcal{L} = \overline{\Delta_J}\!\left(\max(0,\ 1 - m_i\,(2 g_i - 1))\right),
        \qquad m_i = \log p_{i1} - \log p_{i0}

    with :math:`\overline{\Delta_J}` the Lovász extension of the foreground Jaccard loss (see
    :func:`lovasz_softmax_loss`); the hinge errors are sorted in decreasing order.

    Convention:
        Binary only: ``C > 2`` raises ``ValueError``. The margin uses ``safe_log`` (probabilities
        clamped at ``EPS``), so hard 0/1 predictions give a finite margin of about ±16.1.
        ``per_image=True`` (default, as Berman's ``lovasz_hinge``) averages per-image values;
        ``False`` pools the batch; ``reduction="none"`` gives ``(B,)`` per-image values. An image
        without foreground is kept (Berman): its loss is its largest hinge error.

    Args:
        probs: probabilities ``(B, 2, *spatial)``.
        target: one-hot target, same shape (channel 1 is the foreground).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        per_image: compute per image then average (else pool the batch).

    Reference:
        Berman, Rannen Triki, Blaschko, CVPR 2018 (``lovasz_hinge``).
    """
    if probs.shape[1] != 2:
        raise ValueError(_BINARY_ONLY)
    bsz = probs.shape[0]
    margin = (clamped_log(probs[:, 1]) - clamped_log(probs[:, 0])).reshape(bsz, -1)
    fg = target[:, 1].reshape(bsz, -1)
    errors = 1 - margin * (2 * fg - 1)
    if per_image or reduction == "none":
        per = _lovasz_rows(errors, fg, relu=True)
    else:
        per = _lovasz_rows(errors.reshape(1, -1), fg.reshape(1, -1), relu=True).expand(bsz)
    return reduce_samples(per, reduction)


# ----------------------------------------------------------------------------------------------
# registry entries
# ----------------------------------------------------------------------------------------------

def mcc_from_stats(conf: SoftConfusion, *, smooth_nr: float = 0.0, smooth_dr: float = 1e-5,
                   include_background: bool = True, batch: bool = False) -> torch.Tensor:
    """Per-sample Matthews-correlation loss ``(B,)`` from a :class:`SoftConfusion` (see :func:`mcc_loss`)."""
    bsz = conf.tp.shape[0]
    c = _select(conf, include_background, batch)
    tp, fp, fn = c.tp, c.fp, c.fn
    tn = c.n_pixels - tp - fp - fn  # = sum (1 - p)(1 - g), for soft targets too
    den2 = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) + smooth_dr
    undefined = den2 == 0  # only with smooth_dr = 0: MCC 0 (no sqrt(0) in the graph)
    mcc = (tp * tn - fp * fn + smooth_nr) / torch.sqrt(torch.where(undefined, torch.ones_like(den2), den2))
    mcc = torch.where(undefined, torch.zeros_like(mcc), mcc)
    perfect = (fp == 0) & (fn == 0)
    return _per_sample(torch.where(perfect, torch.zeros_like(mcc), 1 - mcc), bsz)


@validated
def mcc_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", smooth_nr: float = 0.0,
             smooth_dr: float = 1e-5, include_background: bool = True, batch: bool = False) -> torch.Tensor:
    r"""Matthews-correlation-coefficient loss on the soft confusion matrix (Abhishek & Hamarneh).

    .. math::
        \mathcal{L}_{MCC} = 1 - \frac{1}{|C|}\sum_c \frac{TP_c\,TN_c - FP_c\,FN_c + s_{nr}}
        {\sqrt{(TP_c + FP_c)(TP_c + FN_c)(TN_c + FP_c)(TN_c + FN_c) + s_{dr}}},
        \qquad TN_c = N - TP_c - FP_c - FN_c

    Convention:
        Per sample and class (region-loss convention, :func:`segloss_core.core.stats.soft_confusion`),
        then the mean over classes and ``reduction``; ``batch=True`` pools the batch. Both
        smoothing terms are MONAI's (``smooth_nr = 0`` in the numerator, ``smooth_dr = 1e-5`` under
        the square root). A class predicted exactly (``FP = FN = 0``) scores 0, as MONAI does (the
        ratio would tend to 0, not 1, when ``TP = 0`` or ``TN = 0``); with ``smooth_dr = 0`` a ratio
        whose denominator vanishes (a class empty or never predicted) counts as MCC 0 (MONAI: NaN). Range [0, 2]: 1 is a
        prediction uncorrelated with the target, 2 the complement. Unlike Dice, ``TN`` enters, so
        the background of a large image dilutes nothing: MCC is symmetric in the two classes of a
        binary case. Soft targets are allowed (``TN = \sum (1 - p)(1 - g)`` holds for them).
        Equals MONAI 1.6.1 ``MCCLoss(include_background, batch)`` on probabilities.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        smooth_nr: added to the numerator.
        smooth_dr: added under the square root of the denominator.
        include_background: keep channel 0.
        batch: pool TP / FP / FN / TN over the batch.

    Reference: Abhishek & Hamarneh, "Matthews correlation coefficient loss for deep convolutional
    networks: application to skin lesion segmentation", ISBI 2021; MONAI 1.6.1 ``MCCLoss``.
    """
    return _region(mcc_from_stats, probs, target, reduction, False, batch, smooth_nr=smooth_nr,
                   smooth_dr=smooth_dr, include_background=include_background)


def _distance_matrix(dist_matrix, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """``M`` as a ``(C, C)`` tensor scaled to a largest entry of 1 (MONAI); ``None`` = ``1 - I``."""
    if dist_matrix is None:
        m = 1 - torch.eye(num_classes, dtype=like.dtype, device=like.device)
    else:
        m = torch.as_tensor(dist_matrix, dtype=like.dtype).to(like.device)
        if m.shape != (num_classes, num_classes):
            raise ValueError(f"dist_matrix is {m.shape[0]}x{m.shape[-1]} but the prediction has C={num_classes} "
                             "classes")
    return m / m.max()


@validated
def wasserstein_dice_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                          dist_matrix=None, weighting_mode: str = "default", smooth: float = SMOOTH) -> torch.Tensor:
    r"""Generalised Wasserstein Dice loss (Fidon et al.): Dice whose errors are class distances.

    .. math::
        W_i = \sum_{c} M_{l_i c}\, s_{ic},\qquad
        TP = \sum_i \alpha_{l_i} (1 - W_i),\qquad
        \mathcal{L}_{GWD} = 1 - \frac{2\,TP + s}{2\,TP + \sum_i W_i + s}

    where :math:`l_i` is pixel ``i``'s label, :math:`M` the ``C x C`` distance matrix between classes
    and :math:`W_i` the Wasserstein distance between the prediction and the label's one-hot
    distribution. ``weighting_mode="default"``: :math:`\alpha = (0, 1, \dots, 1)` (background
    weight 0, Fidon et al.); ``"GDL"`` (Tilborghs et al.): :math:`\alpha_c = 1 / (\sum_i g_{ic} + 1)`
    and the denominator is :math:`\sum_i \alpha_{l_i} (2 - W_i) + s`.

    Convention:
        Per sample, then ``reduction``. ``dist_matrix`` ``None`` = :math:`1 - I` (every confusion
        costs 1); a given matrix must be ``C x C``, non-negative with a zero diagonal, and is
        divided by its largest entry (as MONAI does). With :math:`M = 1 - I`,
        :math:`W_i = 1 - s_{i l_i}`. **Hard targets only**: ``target`` must be one-hot (the
        registry reports "n/a" for soft targets). Equals MONAI 1.6.1
        ``GeneralizedWassersteinDiceLoss(dist_matrix=M, weighting_mode, smooth_nr=s, smooth_dr=s)``
        fed the logits :math:`\log s` and the label map (MONAI applies the softmax itself).

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        dist_matrix: ``C x C`` distances between classes (``None`` = ``1 - I``).
        weighting_mode: ``"default"`` | ``"GDL"``.
        smooth: added to numerator and denominator.

    Reference: Fidon et al., "Generalised Wasserstein Dice score for imbalanced multi-class segmentation
    using holistic convolutional networks", BrainLes (MICCAI) 2017; Tilborghs et al., arXiv 2007.15546
    (GDL weighting); MONAI 1.6.1 ``GeneralizedWassersteinDiceLoss``.
    """
    if weighting_mode not in ("default", "GDL"):
        raise ValueError(f"weighting_mode must be 'default' or 'GDL', got {weighting_mode!r}")
    m = _distance_matrix(dist_matrix, probs.shape[1], probs)
    p, g = probs.flatten(2), target.flatten(2)  # (B, C, N)
    wass = (g * torch.einsum("kc,bcn->bkn", m, p)).sum(1)  # (B, N): sum_c M[l_i, c] p_ic
    if weighting_mode == "GDL":
        alpha = 1 / (g.sum(2) + 1)
    else:
        alpha = torch.ones(g.shape[:2], dtype=g.dtype, device=g.device)
        alpha[:, 0] = 0
    alpha_px = (g * alpha[..., None]).sum(1)  # (B, N): alpha of each pixel's label
    true_pos = (alpha_px * (1 - wass)).sum(1)
    if weighting_mode == "GDL":
        denom = (alpha_px * (2 - wass)).sum(1)
    else:
        denom = 2 * true_pos + wass.sum(1)
    return reduce_samples(1 - _safe_ratio(2 * true_pos + smooth, denom + smooth), reduction)


_TVERSKY_PARAMS = {
    "alpha": ParamSpec(0.3, "float", "weight of false positives", range=(0.0, 1.0), step=0.05),
    "beta": ParamSpec(0.7, "float", "weight of false negatives", range=(0.0, 1.0), step=0.05),
}

SPECS = [
    LossSpec(
        name="sensitivity_specificity",
        title="Sensitivity-specificity",
        category="region",
        fn=sensitivity_specificity_loss,
        formula="",
        formula_for=formulas.sensitivity_specificity,
        reference="Brosch et al., MICCAI 2015; eq. 7 of Ma 2020",
        params={
            "w": ParamSpec(0.1, "float", "weight of the sensitivity (foreground) term", range=(0.0, 1.0),
                           step=0.05),
            "smooth": ParamSpec(SMOOTH, "float", "added to both denominators", range=(0.0, 1.0), step=1e-5),
            "batch": ParamSpec(False, "bool", _HELP_BATCH),
        },
        summary="Mean squared error on the foreground and background regions, each normalised by its size; "
        "w trades sensitivity against specificity.",
    ),
    LossSpec(
        name="dice",
        title="Dice",
        category="region",
        fn=dice_loss,
        formula="",
        formula_for=formulas.dice,
        reference="Milletari et al., 3DV 2016; eq. 8 of Ma 2020",
        params={**_common_params(),
                "squared": ParamSpec(False, "bool", "V-Net squared denominator sum p^2 + sum g^2")},
        from_stats=dice_from_stats,
        summary="One minus the soft Dice overlap per class; insensitive to class imbalance, "
        "the default region loss.",
    ),
    LossSpec(
        name="iou",
        title="IoU (soft Jaccard)",
        category="region",
        fn=iou_loss,
        formula="",
        formula_for=formulas.iou,
        reference="Rahman & Wang, ISVC 2016; eq. 9 of Ma 2020",
        params={**_common_params(),
                "squared": ParamSpec(False, "bool", "squared sums sum p^2 + sum g^2 in the union")},
        from_stats=iou_from_stats,
        summary="One minus the soft intersection over union; a monotone function of the Dice loss "
        "(same minimisers).",
    ),
    LossSpec(
        name="tversky",
        title="Tversky",
        category="region",
        fn=tversky_loss,
        formula="",
        formula_for=formulas.tversky,
        reference="Salehi et al., MLMI 2017; eq. 10 of Ma 2020",
        params={**_TVERSKY_PARAMS, **_common_params()},
        from_stats=tversky_from_stats,
        summary="Dice with separate weights on false positives (alpha) and false negatives (beta); "
        "beta > alpha favours recall.",
    ),
    LossSpec(
        name="generalized_dice",
        title="Generalised Dice",
        category="region",
        fn=generalized_dice_loss,
        formula="",
        formula_for=formulas.generalized_dice,
        reference="Sudre et al., DLMIA 2017; eq. 11 of Ma 2020",
        params=_common_params(),
        from_stats=generalized_dice_from_stats,
        summary="Dice with classes weighted by inverse squared volume, so small structures count as much "
        "as large ones; empty classes take the largest finite weight.",
    ),
    LossSpec(
        name="focal_tversky",
        title="Focal Tversky",
        category="region",
        fn=focal_tversky_loss,
        formula="",
        formula_for=formulas.focal_tversky,
        reference="Abraham & Khan, ISBI 2019; eq. 12 of Ma 2020",
        params={
            "gamma": ParamSpec(4 / 3, "float", "focal parameter; the exponent is 1/gamma", range=(0.5, 3.0),
                               step=0.05),
            **_TVERSKY_PARAMS,
            **_common_params(),
        },
        from_stats=focal_tversky_from_stats,
        summary="Tversky loss raised to 1/gamma per class: with gamma > 1 poorly segmented classes "
        "keep a larger share of the gradient.",
    ),
    LossSpec(
        name="asymmetric",
        title="Asymmetric similarity",
        category="region",
        fn=asymmetric_loss,
        formula="",
        formula_for=formulas.asymmetric,
        reference="Hashemi et al., IEEE Access 2019; eq. 13 of Ma 2020",
        params={
            "beta": ParamSpec(1.5, "float", "F-beta parameter: beta > 1 weighs false negatives more",
                              range=(0.0, 5.0), step=0.1),
            **_common_params(),
        },
        from_stats=asymmetric_from_stats,
        summary="One minus the soft F-beta score: a Tversky loss with alpha + beta = 1, for highly "
        "imbalanced lesions.",
    ),
    LossSpec(
        name="penalty_gdl",
        title="Penalty generalised Dice",
        category="region",
        fn=penalty_gdl_loss,
        formula="",
        formula_for=formulas.penalty_gdl,
        reference="Su et al., MIDL 2019; eq. 14 of Ma 2020",
        params={
            "k": ParamSpec(2.5, "float", "penalty coefficient (0 = generalised Dice)", range=(0.0, 10.0),
                           step=0.1),
            **_common_params(),
        },
        from_stats=penalty_gdl_from_stats,
        summary="Generalised Dice divided by 1 + k(1 − L_GD) (eq. 14 as printed): never above the GDL for "
        "k > 0, and it shrinks a good prediction's loss further (k = 2.5: L_GD 0.02 → 0.0058, L_GD 0.98 → "
        "0.93).",
    ),
    LossSpec(
        name="lovasz_softmax",
        title="Lovász-Softmax",
        category="region",
        fn=lovasz_softmax_loss,
        slow=True,
        formula="",
        formula_for=formulas.lovasz_softmax,
        reference="Berman et al., CVPR 2018 (Lovász-Softmax); Eelbode et al., TMI 2020",
        params={"per_image": ParamSpec(False, "bool", "average per-image losses instead of pooling the batch")},
        summary="Convex Lovász extension of the Jaccard loss on sorted per-pixel errors, over the classes "
        "present; a direct IoU surrogate.",
    ),
    LossSpec(
        name="lovasz_hinge",
        title="Lovász hinge",
        category="region",
        fn=lovasz_hinge_loss,
        slow=True,
        formula="",
        formula_for=formulas.lovasz_hinge,
        reference="Berman et al., CVPR 2018 (Lovász hinge); Eelbode et al., TMI 2020",
        params={"per_image": ParamSpec(True, "bool", "average per-image losses instead of pooling the batch")},
        binary_only=True,
        summary="Lovász extension of the foreground Jaccard loss on hinge errors of the logit margin; "
        "binary segmentation only.",
    ),
    LossSpec(
        name="mcc",
        title="Matthews correlation (MCC)",
        category="region",
        fn=mcc_loss,
        formula="",
        formula_for=formulas.mcc,
        reference="Abhishek & Hamarneh, ISBI 2021 (MONAI MCCLoss); not in Ma 2020",
        params={
            "smooth_nr": ParamSpec(0.0, "float", "added to the numerator (MONAI default 0)", range=(0.0, 1.0),
                                   step=1e-5),
            "smooth_dr": ParamSpec(1e-5, "float", "added under the square root of the denominator (MONAI default "
                                   "1e-5)", range=(0.0, 1.0), step=1e-5),
            "include_background": ParamSpec(True, "bool", _HELP_BG),
            "batch": ParamSpec(False, "bool", _HELP_BATCH),
        },
        from_stats=mcc_from_stats,
        summary="One minus the soft Matthews correlation between prediction and target: unlike Dice it "
        "counts true negatives, so it rewards getting the background right as much as the object.",
    ),
    LossSpec(
        name="wasserstein_dice",
        title="Generalised Wasserstein Dice",
        category="region",
        fn=wasserstein_dice_loss,
        formula="",
        formula_for=formulas.wasserstein_dice,
        reference="Fidon et al., BrainLes 2017 (MONAI GeneralizedWassersteinDiceLoss); not in Ma 2020",
        params={
            "dist_matrix": ParamSpec(None, "matrix", "C x C distances between classes, rows separated by ';' "
                                     "(e.g. 0,1,1;1,0,0.5;1,0.5,0); empty = 1 - I (every confusion costs 1). "
                                     "Scaled to a largest entry of 1."),
            "weighting_mode": ParamSpec("default", "choice", "default: background weight 0, others 1 (Fidon); "
                                        "GDL: 1 / (class volume + 1) (Tilborghs)", choices=("default", "GDL")),
            "smooth": _smooth_param(),
        },
        hard_targets_only=True,
        summary="Dice in which a wrong class costs its distance to the true class (matrix M): confusing two "
        "tumour sub-regions can cost less than calling tumour background.",
    ),
]
