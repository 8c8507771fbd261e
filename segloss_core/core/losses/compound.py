r"""Compound losses (Ma 2020, section 5): Combo, exponential-logarithmic, Dice + CE, and Liu et al.'s
CE + region-size penalty.

Same tensor conventions as the other families: class probabilities ``probs`` ``(B, C, *spatial)``,
one-hot ``target`` of the same shape, per-sample values ``(B,)`` reduced by ``reduce_samples``.
Logs and fractional powers are clamped at ``EPS = 1e-7`` so that hard 0/1 predictions, empty
classes and perfect predictions keep finite values and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .._tensors import EPS, reduce_samples, spatial_dims, tensor_memo, validated
from ..spec import LossSpec, ParamSpec
from ..stats import soft_confusion
from . import formulas
from .distribution import ce_loss, clamped_log, class_vector, pixel_ce
from .region import _safe_ratio
from .topology import cldice_params

__all__ = ["combo_loss", "exp_log_loss", "dice_ce_loss", "region_size_loss", "dice_focal_loss",
           "generalized_dice_focal_loss", "unified_focal_loss", "dice_cldice_loss", "nacl_loss", "neighbour_mean",
           "SPECS"]


def _soft_dice(probs: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
    """Linear soft Dice ``(2I + s) / (S + G + s)`` per sample and channel -> ``(B, C)``; 1 where the
    denominator is 0 (``smooth = 0``, class empty and predicted empty: the ``s / s`` limit, as region.py)."""
    conf = soft_confusion(probs, target)
    return _safe_ratio(2 * conf.tp + smooth, conf.pred_sum + conf.target_sum + smooth)


@validated
def combo_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth: float = 1e-5,
) -> torch.Tensor:
    r"""Combo loss: weighted binary CE plus Dice loss, per foreground class (eq. 15 of Ma 2020).

    .. math::
        L_{Combo} = \alpha \Big(-\frac{1}{N}\sum_{i=1}^{N} \big[\beta\, g_i \log s_i
        + (1-\beta)(1-g_i)\log(1-s_i)\big]\Big)
        + (1-\alpha)\Big(1 - \frac{2\sum_i s_i g_i + \epsilon_s}{\sum_i s_i + \sum_i g_i + \epsilon_s}\Big)

    Convention:
        Taghanaki et al. write the loss for one foreground class; here it is computed one-vs-rest
        on each foreground channel ``c = 1..C-1`` (``s_i = s_i^c``, ``g_i = g_i^c``; for a binary
        case that is channel 1) and averaged over those classes, then ``reduction`` over samples.
        ``beta`` weights the foreground term of the BCE (``beta > 0.5`` penalises false negatives
        more). The Dice term is written ``1 - Dice`` (not ``-Dice`` as printed) so the loss is
        ``>= 0`` and 0 at a perfect prediction; the gradient is the printed form's. ``smooth``
        (``epsilon_s``) enters as in MONAI, so an empty class predicted empty has Dice 1; the
        BCE logs are clamped at ``EPS``.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        alpha: weight of the BCE term (``1 - alpha`` on the Dice term), in [0, 1].
        beta: weight of the foreground BCE term, in [0, 1].
        smooth: Dice smoothing, numerator and denominator.

    Reference: Taghanaki et al., "Combo loss", Computerized Medical Imaging and Graphics 75, 2019;
    eq. 15 of Ma, "Segmentation Loss Odyssey", arXiv 2020.
    """
    fg_probs, fg_target = probs[:, 1:], target[:, 1:]
    dims = spatial_dims(probs)

    def wbce_of(s, g):  # one class at a time: a volume's temporaries hold one channel
        return -(beta * g * clamped_log(s) + (1 - beta) * (1 - g) * clamped_log(1 - s)).mean(dims)

    wbce = torch.cat([wbce_of(fg_probs[:, c : c + 1], fg_target[:, c : c + 1]) for c in range(fg_probs.shape[1])], 1)
    dice = _soft_dice(fg_probs, fg_target, smooth)
    per_class = alpha * wbce + (1 - alpha) * (1 - dice)
    return reduce_samples(per_class.mean(1), reduction)


def _clamped_power(neg_log: torch.Tensor, gamma: float) -> torch.Tensor:
    """``max(x, EPS) ** gamma``: finite value and gradient at ``x = 0`` (perfect prediction)."""
    return neg_log.clamp_min(EPS).pow(gamma)


@validated
def exp_log_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    w_dice: float = 0.8,
    w_ce: float = 0.2,
    gamma: float = 0.3,
    smooth: float = 1e-5,
    class_weights: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Exponential-logarithmic loss (eq. 16 of Ma 2020, Wong et al.).

    .. math::
        L_{ELL} = w_{Dice}\, \frac{1}{C-1}\sum_{c=1}^{C-1} \big(-\log Dice_c\big)^{\gamma}
        + w_{CE}\, \frac{1}{N}\sum_{i=1}^{N} \sum_{c} w_c\, g_i^c \big(-\log s_i^c\big)^{\gamma},
        \qquad Dice_c = \frac{2\sum_i g_i^c s_i^c + \epsilon_s}{\sum_i (g_i^c + s_i^c) + \epsilon_s}

    Convention:
        The Dice part is computed per sample for each foreground class (channel 0 dropped) and
        averaged over them; the CE part runs over all pixels and classes, with optional
        ``class_weights`` ``w_c`` (length ``C``, ``None`` = 1). One exponent ``gamma`` serves both
        terms (``gamma_Dice = gamma_CE``, 0.3 by default as in Wong et al.). Logs are clamped at
        ``EPS`` and every ``-log`` is clamped at ``>= EPS`` before the fractional power, so a
        perfect prediction has finite gradients; its value is the floor
        :math:`(w_{Dice} + w_{CE}\,\bar w)\,\epsilon^{\gamma}` (0.0079 at the defaults), not 0.
        An empty class predicted empty has Dice ~1 thanks to ``smooth``.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        w_dice: weight of the Dice part.
        w_ce: weight of the CE part.
        gamma: exponent of both parts, > 0.
        smooth: Dice smoothing (numerator and denominator).
        class_weights: per-class weights of the CE part, length ``C``.

    Reference: Wong et al., "3D segmentation with exponential logarithmic loss", MICCAI 2018;
    eq. 16 of Ma, "Segmentation Loss Odyssey", arXiv 2020.
    """
    if float(gamma) <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    weights = class_vector(class_weights, probs.shape[1], "class_weights", probs)
    dice = _soft_dice(probs[:, 1:], target[:, 1:], smooth)
    dice_part = _clamped_power(-clamped_log(dice), gamma).mean(1)
    ce_sum = None  # sum over the classes, one class at a time (a volume's temporaries hold one channel)
    for c in range(probs.shape[1]):
        term = target[:, c] * _clamped_power(-clamped_log(probs[:, c]), gamma)
        if weights is not None:
            term = term * weights[:, c]
        ce_sum = term if ce_sum is None else ce_sum + term
    ce_part = ce_sum.flatten(1).mean(1)
    return reduce_samples(w_dice * dice_part + w_ce * ce_part, reduction)


@validated
def dice_ce_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    smooth: float = 1e-5,
    include_background: bool = True,
    batch: bool = False,
    squared: bool = False,
) -> torch.Tensor:
    r"""Dice + cross-entropy, the nnU-Net default loss.

    .. math::
        L = \lambda_{Dice}\, L_{Dice} + \lambda_{CE}\, L_{CE}

    Convention:
        ``L_Dice`` is :func:`segloss_core.core.losses.region.dice_loss` with ``smooth``,
        ``include_background``, ``batch`` and ``squared`` (per sample and class, then the mean;
        ``batch=True`` pools the batch first); ``L_CE`` is :func:`ce_loss` over all classes. With
        ``reduction="none"`` both terms are per sample, unpooled. Equal to MONAI's
        ``DiceCELoss(softmax=True, lambda_dice, lambda_ce)`` fed the logits ``log(probs)``.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the CE term.
        smooth: Dice smoothing, ``(2I + smooth) / (S + G + smooth)``.
        include_background: keep channel 0 in the Dice mean.
        batch: pool the batch before the Dice ratio (nnU-Net's batch Dice).
        squared: V-Net squared denominator.

    Reference: Isensee et al., nnU-Net, Nature Methods 2021; Taghanaki et al. 2019 (Ma 2020, section 5
    and the recommendation of section 6; no equation number).
    """
    from .region import dice_loss

    dice = dice_loss(probs, target, reduction=reduction, smooth=smooth, squared=squared,
                     include_background=include_background, batch=batch)
    return lambda_dice * dice + lambda_ce * ce_loss(probs, target, reduction=reduction)


def _target_proportions(target: torch.Tensor, target_proportion: Sequence[float] | None) -> torch.Tensor:
    """``tau``: the ground truth's class proportions per sample ``(B, C)``, or the given ones broadcast."""
    batch, num_classes = target.shape[:2]
    if target_proportion is None:
        return target.flatten(2).mean(2)
    if isinstance(target_proportion, (int, float)):
        target_proportion = [target_proportion]
    vals = [float(v) for v in target_proportion]
    if any(not math.isfinite(v) or v < 0 or v > 1 for v in vals):
        raise ValueError(f"target_proportion must hold numbers in [0, 1], got {vals}")
    if len(vals) == 1:
        if num_classes != 2:
            raise ValueError(
                f"a single target_proportion (foreground fraction) needs a binary case; give {num_classes} "
                "per-class proportions summing to 1"
            )
        vals = [1.0 - vals[0], vals[0]]
    if len(vals) != num_classes:
        raise ValueError(f"target_proportion must hold 1 (binary) or C={num_classes} numbers, got {len(vals)}")
    if abs(sum(vals) - 1.0) > 1e-6:
        raise ValueError(f"target_proportion must sum to 1 over the classes, got {sum(vals):.6g}")
    tau = torch.tensor(vals, dtype=target.dtype, device=target.device)
    return tau.expand(batch, num_classes)


@validated
def region_size_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    alpha: float = 1.0,
    temperature: float = 1.0,
    penalty: str = "l1",
    target_proportion: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Cross-entropy plus a region-size (class-proportion) penalty (Liu et al., "CE + L1" / "CE + KL").

    .. math::
        L = L_{CE} + \alpha\, R(\hat\tau, \tau), \qquad
        \hat\tau_{c} = \frac{1}{N}\sum_{i=1}^{N} \mathrm{softmax}\big(T \log \max(s_i, \epsilon)\big)_c

    .. math::
        R_{L1} = \frac{1}{C}\sum_{c=1}^{C} |\hat\tau_c - \tau_c|, \qquad
        R_{KL} = \sum_{c=1}^{C} \tau_c \log\frac{\max(\tau_c, \epsilon)}{\max(\hat\tau_c, \epsilon)}

    Convention:
        Per sample, all classes (background included). ``tau`` is the ground truth's region
        proportion of the same sample, unless ``target_proportion`` is given: one number = the
        foreground fraction ``f`` of a binary case (``tau = [1 - f, f]``), or ``C`` proportions
        summing to 1, used for every sample. The predicted proportion uses logits
        ``log(clamp(s, EPS))`` sharpened by the temperature ``T``: ``T = 1`` gives ``s`` itself
        (hence CE + L1 keeps the CE optimum ``q* = pi`` on an ambiguous band), while the authors'
        configs use ``T = 10``, which matches the proportion of sharpened probabilities. ``"l1"``
        averages over classes (so the batch mean is the mean over ``(b, c)`` as in their code);
        ``"kl"`` sums over classes, then the batch mean. ``alpha = 0`` is :func:`ce_loss`. The
        penalty pushes every pixel of a class in the same direction (a global grow/shrink force).

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        alpha: weight of the penalty (Liu et al.'s lambda).
        temperature: ``T`` applied to the log-probabilities before the softmax, > 0.
        penalty: ``"l1"`` | ``"kl"``.
        target_proportion: fixed target proportions (see above); ``None`` = the ground truth's.

    Reference: Liu et al., "Do we really need Dice? The hidden region-size biases of segmentation
    losses", Medical Image Analysis 2023 (code: by-liu/SegLossBias); not in Ma 2020.
    """
    if penalty not in ("l1", "kl"):
        raise ValueError(f"penalty must be 'l1' or 'kl', got {penalty!r}")
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    tau = _target_proportions(target, target_proportion)
    ce = pixel_ce(probs, target).flatten(1).mean(1)
    if alpha == 0:
        return reduce_samples(ce, reduction)
    sharpened = torch.softmax(float(temperature) * clamped_log(probs), dim=1)
    tau_hat = sharpened.flatten(2).mean(2)
    if penalty == "l1":
        region = (tau_hat - tau).abs().mean(1)
    else:
        region = (tau * (clamped_log(tau) - clamped_log(tau_hat))).sum(1)
    return reduce_samples(ce + alpha * region, reduction)


@validated
def dice_focal_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    lambda_dice: float = 1.0,
    lambda_focal: float = 1.0,
    gamma: float = 2.0,
    smooth: float = 1e-5,
    include_background: bool = True,
) -> torch.Tensor:
    r"""Dice + softmax focal loss.

    .. math::
        L = \lambda_{Dice}\Big(1 - \frac{1}{|C|}\sum_c \frac{2\,TP_c + s}{\sum_i s_i^c + \sum_i g_i^c + s}\Big)
        - \lambda_{FL}\,\frac{1}{N}\sum_{i=1}^{N}\sum_{c} (1 - s_i^c)^{\gamma}\, g_i^c \log s_i^c

    Convention:
        The Dice term is :func:`segloss_core.core.losses.region.dice_loss` (MONAI ``DiceLoss()``: per
        sample and class, ``smooth`` in numerator and denominator); the focal term is segloss's
        softmax :func:`segloss_core.core.losses.distribution.focal_loss` (summed over classes, averaged
        over pixels: ``C`` times MONAI's ``FocalLoss(use_softmax=True)``). ``include_background=False``
        drops channel 0 from both terms. **Differs from MONAI's** ``DiceFocalLoss``: MONAI's own
        combination applies a *sigmoid* focal term to the raw input even with ``softmax=True``
        (one-vs-rest on logits, averaged over ``B x C x N``), which has no meaning on probabilities.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        lambda_dice: weight of the Dice term.
        lambda_focal: weight of the focal term.
        gamma: focusing exponent of the focal term.
        smooth: Dice smoothing.
        include_background: keep channel 0 in both terms.

    Reference: Zhu et al., "AnatomyNet", Medical Physics 2019 (Dice + focal); Lin et al., ICCV 2017;
    MONAI 1.6.1 ``DiceLoss`` + ``FocalLoss(use_softmax=True)``.
    """
    from .distribution import focal_loss
    from .region import dice_loss

    dice = dice_loss(probs, target, reduction=reduction, smooth=smooth, include_background=include_background)
    start = 0 if include_background else 1
    focal = focal_loss(probs[:, start:], target[:, start:], reduction=reduction, gamma=gamma)
    return lambda_dice * dice + lambda_focal * focal


@validated
def generalized_dice_focal_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    lambda_gdl: float = 1.0,
    lambda_focal: float = 1.0,
    gamma: float = 2.0,
    smooth: float = 1e-5,
    include_background: bool = True,
) -> torch.Tensor:
    r"""Generalised Dice + softmax focal loss.

    .. math::
        L = \lambda_{GDL}\Big(1 - \frac{2\sum_c w_c TP_c + s}{\sum_c w_c(\sum_i s_i^c + \sum_i g_i^c) + s}\Big)
        - \lambda_{FL}\,\frac{1}{N}\sum_{i=1}^{N}\sum_{c} (1 - s_i^c)^{\gamma}\, g_i^c \log s_i^c,
        \qquad w_c = \frac{1}{(\sum_i g_i^c)^2}

    Convention:
        The GDL term is :func:`segloss_core.core.losses.region.generalized_dice_loss` (MONAI
        ``GeneralizedDiceLoss()``, ``w_type="square"``, per sample); the focal term is segloss's
        softmax :func:`segloss_core.core.losses.distribution.focal_loss`. ``include_background=False``
        drops channel 0 from both terms. **Differs from MONAI's** ``GeneralizedDiceFocalLoss``,
        which applies a *sigmoid* focal term to the raw input even with ``softmax=True``.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        lambda_gdl: weight of the generalised Dice term.
        lambda_focal: weight of the focal term.
        gamma: focusing exponent of the focal term.
        smooth: GDL smoothing.
        include_background: keep channel 0 in both terms.

    Reference: Sudre et al., DLMIA 2017; Lin et al., ICCV 2017; MONAI 1.6.1 ``GeneralizedDiceLoss`` +
    ``FocalLoss(use_softmax=True)``.
    """
    from .distribution import focal_loss
    from .region import generalized_dice_loss

    gdl = generalized_dice_loss(probs, target, reduction=reduction, smooth=smooth,
                                include_background=include_background)
    start = 0 if include_background else 1
    focal = focal_loss(probs[:, start:], target[:, start:], reduction=reduction, gamma=gamma)
    return lambda_gdl * gdl + lambda_focal * focal


def _clip(probs: torch.Tensor) -> torch.Tensor:
    """``clamp(p, EPS, 1 - EPS)`` in value; the gradient passes as if unclamped (finite at 0 and 1)."""
    return probs + (probs.detach().clamp(EPS, 1 - EPS) - probs.detach())


@validated
def unified_focal_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    weight: float = 0.5,
    gamma: float = 0.5,
    delta: float = 0.7,
) -> torch.Tensor:
    r"""Asymmetric unified focal loss (Yeung et al.): asymmetric focal + asymmetric focal Tversky, binary.

    .. math::
        L_{aF} = \frac{1}{2N}\sum_{i=1}^{N} -(1-\delta)(1 - s_i^0)^{\gamma} g_i^0 \log s_i^0 - \delta\, g_i^1 \log s_i^1

    .. math::
        L_{aFT} = \tfrac12\big(1 - T_0\big) + \tfrac12\big(1 - T_1\big)^{1-\gamma},\qquad
        T_c = \frac{TP_c + \epsilon}{TP_c + \delta\, FN_c + (1-\delta)\, FP_c + \epsilon}

    .. math::
        L_{aUF} = w\, L_{aF} + (1 - w)\, L_{aFT}

    Convention:
        Binary only (``C = 2``, channel 1 the foreground; ``C > 2`` raises ``ValueError``). The
        probabilities are clamped to :math:`[\epsilon, 1 - \epsilon]`, ``EPS = 1e-7``, as MONAI does
        (here the clamp passes the gradient, so hard predictions keep a push), and the focal Tversky
        base is clamped at ``EPS`` before the fractional power. The background keeps the focal
        modulation and the foreground does not (the "asymmetric" part: rare foreground pixels are
        never down-weighted). Per sample, then ``reduction``; equals MONAI 1.6.1
        ``AsymmetricUnifiedFocalLoss(weight, gamma, delta)`` fed the probabilities (MONAI's
        docstring says logits, but its code clamps and logs its input as probabilities).

    Args:
        probs: class probabilities ``(B, 2, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        weight: ``w``, the weight of the focal part (``1 - w`` on the focal Tversky part).
        gamma: focal exponent of the background CE term; ``1 - gamma`` is the foreground Tversky power.
        delta: weight of false negatives (``1 - delta`` on false positives), and of the foreground CE.

    Reference: Yeung et al., "Unified Focal loss: Generalising Dice and cross entropy-based losses to
    handle class imbalanced medical image segmentation", Computerized Medical Imaging and Graphics 95,
    2022; MONAI 1.6.1 ``AsymmetricUnifiedFocalLoss``.
    """
    from .region import _focal_power, _tversky_scores

    if probs.shape[1] != 2:
        raise ValueError(f"unified_focal is defined for binary segmentation only (C = 2), got C={probs.shape[1]}")
    p = _clip(probs)
    log_p = torch.log(p)
    back = (1 - delta) * (1 - p[:, 0]).pow(gamma) * target[:, 0] * log_p[:, 0]
    focal = -(back + delta * target[:, 1] * log_p[:, 1]).flatten(1).mean(1) / 2
    tversky = _tversky_scores(soft_confusion(p, target), 1 - delta, delta, EPS)  # (B, 2)
    focal_tversky = ((1 - tversky[:, 0]) + _focal_power(1 - tversky[:, 1], 1 - gamma)) / 2
    return reduce_samples(weight * focal + (1 - weight) * focal_tversky, reduction)


@validated
def dice_cldice_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    alpha: float = 0.5,
    iterations: int = 3,
    smooth_nr: float = 1.0,
    smooth_dr: float = 1.0,
    smooth_hm: float = 1e-4,
    include_background: bool = True,
) -> torch.Tensor:
    r"""Soft Dice + soft clDice (Shit et al.): :math:`(1 - \alpha) L_{Dice} + \alpha L_{clDice}`.

    .. math::
        L = (1-\alpha)\Big(1 - \frac{1}{|C|}\sum_c \frac{2\,TP_c + s_{nr}}{\sum_i s_i^c + \sum_i g_i^c + s_{dr}}\Big)
        + \alpha\, L_{clDice}

    Convention:
        The Dice term is per sample and class with clDice's smoothing (``smooth_nr = smooth_dr = 1``,
        not segloss's ``1e-5``), averaged over the selected classes; :math:`L_{clDice}` is
        :func:`segloss_core.core.losses.topology.cldice_loss` with the same ``iterations``, smoothing and
        ``include_background``. Per sample, then ``reduction``; equals MONAI 1.6.1
        ``SoftDiceclDiceLoss(iter_=iterations, alpha, smooth_nr, smooth_dr, smooth=smooth_hm,
        include_background)`` on probabilities.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot (or soft) target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        alpha: weight of the clDice term, in [0, 1].
        iterations: soft-skeleton iterations.
        smooth_nr: added to the Dice numerator and to clDice's precision / sensitivity numerators.
        smooth_dr: added to the matching denominators.
        smooth_hm: added to clDice's harmonic-mean denominator.
        include_background: keep channel 0 in both terms.

    Reference: Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular Structure
    Segmentation", CVPR 2021; MONAI 1.6.1 ``SoftDiceclDiceLoss``.
    """
    from .topology import cldice_loss

    start = 0 if include_background else 1
    conf = soft_confusion(probs[:, start:], target[:, start:])
    dice = 1 - _safe_ratio(2 * conf.tp + smooth_nr, conf.pred_sum + conf.target_sum + smooth_dr)
    cl = cldice_loss(probs, target, reduction="none", iterations=iterations, smooth_nr=smooth_nr,
                     smooth_dr=smooth_dr, smooth_hm=smooth_hm, include_background=include_background)
    return reduce_samples((1 - alpha) * dice.mean(1) + alpha * cl, reduction)


def _nacl_kernel(kernel_ops: str, kernel_size: int, sigma: float) -> list[float]:
    """The taps of NACL's 1-D smoothing kernel: a box of ``kernel_size`` taps summing to 1, or the
    discrete Gaussian of MONAI's ``GaussianFilter`` (each tap the Gaussian's mass over its unit
    interval, on ``±floor(4 sigma + 1/2)`` taps, not renormalised)."""
    if kernel_ops == "mean":
        return [1.0 / int(kernel_size)] * int(kernel_size)
    tail = int(max(4.0 * float(sigma), 0.5) + 0.5)
    scale = 1.0 / (math.sqrt(2.0) * float(sigma))
    return [0.5 * (math.erf(scale * (x + 0.5)) - math.erf(scale * (x - 0.5))) for x in range(-tail, tail + 1)]


def neighbour_mean(target: torch.Tensor, kernel_ops: str = "mean", kernel_size: int = 3,
                   sigma: float = 1.0) -> torch.Tensor:
    r"""NACL's smoothed target :math:`u = K * g`, per sample and class, shape of ``target``.

    ``K`` is separable (one 1-D factor per spatial axis, :func:`_nacl_kernel`), zero-padded like
    PyTorch's ``padding="same"`` (an even box puts its extra tap on the far side), so near the image
    border :math:`\sum_c u_c < 1`. Each axis is a weighted sum of shifted slices (cheaper on the
    CPU than a one-channel convolution). Remembered per target tensor (:func:`tensor_memo`):
    scoring many predictions against one ground truth smooths it once.
    """
    taps = _nacl_kernel(kernel_ops, kernel_size, sigma)

    def smooth(channel: torch.Tensor) -> torch.Tensor:
        k, out = len(taps), channel
        for axis in range(2, channel.ndim):
            pad = [0, 0] * (channel.ndim - 2)  # F.pad lists the last axis first
            pad[2 * (channel.ndim - 1 - axis): 2 * (channel.ndim - axis)] = [(k - 1) // 2, k - 1 - (k - 1) // 2]
            padded, n = F.pad(out, pad), out.shape[axis]
            out = padded.narrow(axis, 0, n) * taps[0]
            for j in range(1, k):
                out.add_(padded.narrow(axis, j, n), alpha=taps[j])
        return out

    def compute(t: torch.Tensor) -> torch.Tensor:  # one class at a time: temporaries of one channel
        return torch.cat([smooth(t[:, c : c + 1]) for c in range(t.shape[1])], dim=1)

    size = int(kernel_size) if kernel_ops == "mean" else float(sigma)
    return tensor_memo(target, ("nacl.neighbour_mean", kernel_ops, size), compute)


@validated
def nacl_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    kernel_size: int = 3,
    kernel_ops: str = "mean",
    distance_type: str = "l1",
    alpha: float = 0.1,
    sigma: float = 1.0,
) -> torch.Tensor:
    r"""Neighbour-aware calibration loss: CE plus a penalty pulling the logits towards the target's
    class proportions around each pixel (Murugesan et al. 2023; MONAI ``NACLLoss``).

    .. math::
        L_{NACL} = -\frac{1}{N}\sum_{i=1}^{N}\sum_{c=1}^{C} g_i^c \log \max(s_i^c, \epsilon)
        + \frac{\alpha}{CN}\sum_{i=1}^{N}\sum_{c=1}^{C} d\big(u_i^c - z_i^c\big),
        \qquad z_i^c = \log\max(s_i^c, \epsilon),\quad u^c = K * g^c,\quad d(x) = |x| \text{ or } x^2

    Convention:
        ``probs`` and ``target`` are ``(B, C, *spatial)``, 2-D or 3-D, all classes. MONAI's
        ``NACLLoss(classes=C, dim=d)`` takes logits :math:`x` and a label map: its CE applies
        log-softmax, but its penalty compares the raw :math:`x` with :math:`u`, so it changes when a
        pixel's logits are all shifted by the same amount (the probabilities do not). segloss fixes
        that shift: :math:`z = \log s`, the logits whose log-sum-exp is 0 (clamped at
        ``EPS = 1e-7`` as in :func:`ce_loss`), so this loss equals ``NACLLoss()(log(probs), labels)``.
        Since :math:`u \ge 0 \ge z`, the L1 penalty is :math:`\mathrm{mean}\,u - \mathrm{mean}\,z`:
        with this shift its gradient does not depend on the target (it raises every class's
        log-probability, a push towards the uniform prediction); the L2 penalty does
        (``docs/theory.md``, M7). ``u`` is :func:`neighbour_mean` of the target: a ``kernel_size``
        box (``kernel_ops="mean"``) or MONAI's discrete Gaussian of width ``sigma``
        (``"gaussian"``, which ignores ``kernel_size``), in pixels (no spacing, as MONAI), zero
        padding at the image border. Per sample: the CE mean over the ``N`` pixels plus ``alpha``
        times the penalty mean over the ``C x N`` values; MONAI averages both over the whole batch,
        which is the mean of these (every sample has ``N`` pixels), and smoothing never mixes
        samples, so ``reduction="mean"`` is MONAI's value and ``"none"`` (``(B,)``) gives each
        sample's value as MONAI computes it for that sample alone. Soft targets are allowed (soft
        CE, smoothed soft labels); MONAI takes labels, so the parity is for one-hot targets.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot or soft target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        kernel_size: box edge in pixels (``kernel_ops="mean"``).
        kernel_ops: ``"mean"`` | ``"gaussian"``.
        distance_type: ``"l1"`` | ``"l2"``: the penalty :math:`d`.
        alpha: weight of the penalty (>= 0).
        sigma: Gaussian width in pixels (``kernel_ops="gaussian"``).

    Reference: Murugesan et al., "Trust your neighbours: Penalty-based constraints for model
    calibration", MICCAI 2023 (arXiv 2303.06268); MONAI 1.6 ``monai.losses.NACLLoss``.
    """
    if kernel_ops not in ("mean", "gaussian") or distance_type not in ("l1", "l2"):
        raise ValueError(f"kernel_ops must be mean or gaussian and distance_type l1 or l2, got {kernel_ops!r}, "
                         f"{distance_type!r}")
    if int(kernel_size) < 1 or float(sigma) <= 0 or float(alpha) < 0:
        raise ValueError(f"need kernel_size >= 1, sigma > 0 and alpha >= 0, got {kernel_size}, {sigma}, {alpha}")
    u = neighbour_mean(target, kernel_ops, kernel_size, sigma)
    ce = penalty = 0.0
    for c in range(probs.shape[1]):  # one class at a time: a 3-D volume's temporaries stay one channel
        z = clamped_log(probs[:, c])  # log p: CE's term and the logits the penalty compares
        gap = u[:, c] - z
        ce = ce - (target[:, c] * z).flatten(1).mean(1)
        penalty = penalty + (gap.abs_() if distance_type == "l1" else gap.square_()).flatten(1).mean(1)
    per_sample = ce + float(alpha) * penalty / probs.shape[1]
    return reduce_samples(per_sample, reduction)


def _nacl_formula(p) -> str:
    if p["kernel_ops"] == "mean":
        k = p["kernel_size"]
        smooth = rf"u_{{ic}}=\text{{mean of }}g_c\text{{ over the }}{k}^d\text{{-pixel box at }}i"
    else:
        smooth = rf"u_c=G_\sigma*g_c\ \text{{(discrete Gaussian, }}\sigma={p['sigma']:g}\text{{ pixels)}}"
    d = r"|u_{ic}-z_{ic}|" if p["distance_type"] == "l1" else r"(u_{ic}-z_{ic})^2"
    return formulas.where(r"L_{NACL}=" + formulas.ce_body() + rf"+\frac{{{p['alpha']:g}}}{{CN}}\sum_{{i=1}}^{{N}}"
                          r"\sum_{c=0}^{C-1}" + d, r"z_{ic}=\log s_{ic}", smooth,
                          r"\text{with }g_c=0\text{ outside the image}")


SPECS = [
    LossSpec(
        name="combo",
        title="Combo loss",
        category="compound",
        fn=combo_loss,
        formula=formulas.COMBO,
        reference="Taghanaki et al., Computerized Medical Imaging and Graphics 2019; eq. 15 of Ma 2020",
        params={
            "alpha": ParamSpec(0.5, "float", "Weight of the weighted BCE term; 1 - alpha goes to the Dice term.",
                               range=(0.0, 1.0), step=0.05),
            "beta": ParamSpec(0.5, "float", "Weight of the foreground (false-negative) BCE term; "
                              "1 - beta weights the background term.", range=(0.0, 1.0), step=0.05),
            "smooth": ParamSpec(1e-5, "float", "Dice smoothing in numerator and denominator.",
                                range=(0.0, 10.0), step=1e-5),
        },
        summary="Weighted BCE plus Dice loss per foreground class: BCE's smooth pixel-wise gradients with "
        "Dice's robustness to class imbalance, and beta to trade false negatives against false positives.",
    ),
    LossSpec(
        name="exp_log",
        title="Exponential-logarithmic loss",
        category="compound",
        fn=exp_log_loss,
        formula="",
        formula_for=formulas.exp_log,
        reference="Wong et al., MICCAI 2018; eq. 16 of Ma 2020",
        params={
            "w_dice": ParamSpec(0.8, "float", "Weight of the log-Dice part.", range=(0.0, 1.0), step=0.05),
            "w_ce": ParamSpec(0.2, "float", "Weight of the log-CE part.", range=(0.0, 1.0), step=0.05),
            "gamma": ParamSpec(0.3, "float", "Exponent of both parts; < 1 boosts poorly segmented classes "
                               "and pixels.", range=(0.1, 3.0), step=0.05),
            "smooth": ParamSpec(1e-5, "float", "Dice smoothing in numerator and denominator.",
                                range=(0.0, 10.0), step=1e-5),
            "class_weights": ParamSpec(None, "floats", "Optional per-class weights of the CE part "
                                       "(background first); empty = all 1."),
        },
        summary="Fractional powers of -log Dice and -log CE: focuses on classes and pixels that are still "
        "poorly predicted; for many structures of very different sizes.",
    ),
    LossSpec(
        name="dice_ce",
        title="Dice + cross-entropy",
        category="compound",
        fn=dice_ce_loss,
        formula="",
        formula_for=formulas.dice_ce,
        reference="Isensee et al., nnU-Net, Nature Methods 2021; section 5 of Ma 2020 (no equation number)",
        params={
            "lambda_dice": ParamSpec(1.0, "float", "Weight of the Dice term.", range=(0.0, 10.0), step=0.1),
            "lambda_ce": ParamSpec(1.0, "float", "Weight of the cross-entropy term.", range=(0.0, 10.0), step=0.1),
            "smooth": ParamSpec(1e-5, "float", "Dice smoothing in numerator and denominator.",
                                range=(0.0, 10.0), step=1e-5),
            "include_background": ParamSpec(True, "bool", "Keep the background channel in the Dice mean."),
            "batch": ParamSpec(False, "bool", "Pool the batch before the Dice ratio (nnU-Net batch Dice)."),
            "squared": ParamSpec(False, "bool", "V-Net squared denominator sum s^2 + sum g^2 for Dice."),
        },
        summary="The nnU-Net default: Dice's region overlap plus CE's stable per-pixel gradients; a robust "
        "first choice for most medical segmentation tasks.",
    ),
    LossSpec(
        name="region_size",
        title="CE + region-size penalty",
        category="compound",
        fn=region_size_loss,
        formula="",
        formula_for=formulas.region_size,
        reference="Liu et al., Medical Image Analysis 2023 (by-liu/SegLossBias); not in Ma 2020",
        params={
            "alpha": ParamSpec(1.0, "float", "Weight of the region-proportion penalty; 0 = plain CE.",
                               range=(0.0, 100.0), step=0.1),
            "temperature": ParamSpec(1.0, "float", "Temperature T on the log-probabilities before the "
                                     "proportions; 1 = the probabilities (authors' configs: 10).",
                                     range=(0.1, 50.0), step=0.1),
            "penalty": ParamSpec("l1", "choice", "L1: mean |tau_hat - tau| over classes; KL: "
                                 "sum tau log(tau / tau_hat).", choices=("l1", "kl")),
            "target_proportion": ParamSpec(None, "floats", "Fixed target proportions: one foreground "
                                           "fraction (binary) or one per class summing to 1; empty = "
                                           "the ground truth's."),
        },
        summary="CE plus an explicit penalty matching predicted and target class proportions, to control "
        "the region-size bias that Dice and CE carry implicitly.",
    ),
    LossSpec(
        name="dice_focal",
        title="Dice + focal",
        category="compound",
        fn=dice_focal_loss,
        formula="",
        formula_for=formulas.dice_focal,
        reference="Zhu et al., AnatomyNet, Medical Physics 2019; MONAI DiceLoss + softmax FocalLoss",
        params={
            "lambda_dice": ParamSpec(1.0, "float", "Weight of the Dice term.", range=(0.0, 10.0), step=0.1),
            "lambda_focal": ParamSpec(1.0, "float", "Weight of the focal term.", range=(0.0, 10.0), step=0.1),
            "gamma": ParamSpec(2.0, "float", "Focusing exponent of the focal term; 0 = Dice + CE.",
                               range=(0.0, 5.0), step=0.1),
            "smooth": ParamSpec(1e-5, "float", "Dice smoothing in numerator and denominator.",
                                range=(0.0, 10.0), step=1e-5),
            "include_background": ParamSpec(True, "bool", "Keep channel 0 in both terms."),
        },
        summary="Dice's overlap plus a focal term that down-weights easy pixels: for small structures "
        "in large, mostly easy backgrounds.",
    ),
    LossSpec(
        name="generalized_dice_focal",
        title="Generalised Dice + focal",
        category="compound",
        fn=generalized_dice_focal_loss,
        formula="",
        formula_for=formulas.generalized_dice_focal,
        reference="Sudre et al., DLMIA 2017; Lin et al., ICCV 2017; MONAI GeneralizedDiceLoss + softmax FocalLoss",
        params={
            "lambda_gdl": ParamSpec(1.0, "float", "Weight of the generalised Dice term.", range=(0.0, 10.0),
                                    step=0.1),
            "lambda_focal": ParamSpec(1.0, "float", "Weight of the focal term.", range=(0.0, 10.0), step=0.1),
            "gamma": ParamSpec(2.0, "float", "Focusing exponent of the focal term; 0 = GDL + CE.",
                               range=(0.0, 5.0), step=0.1),
            "smooth": ParamSpec(1e-5, "float", "GDL smoothing in numerator and denominator.",
                                range=(0.0, 10.0), step=1e-5),
            "include_background": ParamSpec(True, "bool", "Keep channel 0 in both terms."),
        },
        summary="Generalised Dice (classes weighted by 1 / volume^2) plus a focal term: for many classes "
        "of very different sizes.",
    ),
    LossSpec(
        name="unified_focal",
        title="Asymmetric unified focal",
        category="compound",
        fn=unified_focal_loss,
        formula=r"L=w\,L_{aF}+(1-w)\,L_{aFT},\quad L_{aF}=\frac{1}{2N}\sum_{i=1}^{N}\big(-(1-\delta)(1-s_{i0})^{\gamma}"
        r"g_{i0}\log s_{i0}-\delta\,g_{i1}\log s_{i1}\big),\quad L_{aFT}=\tfrac12(1-T_0)+\tfrac12(1-T_1)^{1-\gamma},"
        r"\quad T_c=\frac{TP_c}{TP_c+\delta\,FN_c+(1-\delta)\,FP_c},\ TP_c=\sum_i s_{ic}g_{ic}",
        reference="Yeung et al., Computerized Medical Imaging and Graphics 2022 (MONAI AsymmetricUnifiedFocalLoss)",
        params={
            "weight": ParamSpec(0.5, "float", "Weight of the asymmetric focal (CE) part; 1 - weight goes to the "
                                "focal Tversky part.", range=(0.0, 1.0), step=0.05),
            "gamma": ParamSpec(0.5, "float", "Focal exponent of the background CE term; the foreground "
                               "Tversky term is raised to 1 - gamma.", range=(0.0, 1.0), step=0.05),
            "delta": ParamSpec(0.7, "float", "Weight of false negatives and of the foreground CE; 1 - delta "
                               "weights false positives and the background.", range=(0.0, 1.0), step=0.05),
        },
        binary_only=True,
        summary="Focal CE and focal Tversky combined so that only the background is down-weighted: the rare "
        "foreground keeps full weight; binary segmentation only.",
    ),
    LossSpec(
        name="dice_cldice",
        title="Dice + clDice",
        category="compound",
        fn=dice_cldice_loss,
        formula="",
        formula_for=formulas.dice_cldice,
        reference="Shit et al., CVPR 2021 (MONAI SoftDiceclDiceLoss)",
        params={"alpha": ParamSpec(0.5, "float", "Weight of the clDice term; 1 - alpha goes to the Dice term.",
                                   range=(0.0, 1.0), step=0.05), **cldice_params()},
        slow=True,
        summary="Soft Dice for the volume plus clDice for the centre-lines: the authors' recipe for vessels, "
        "airways and neurons, where a small gap can break a whole branch.",
    ),
    LossSpec(
        name="nacl",
        title="Neighbour-aware calibration (NACL)",
        category="compound",
        fn=nacl_loss,
        formula="",
        formula_for=_nacl_formula,
        reference="Murugesan et al., MICCAI 2023 (MONAI NACLLoss)",
        params={
            "kernel_size": ParamSpec(3, "int", "Edge of the box that averages the target's classes around each "
                                     "pixel (kernel_ops mean).", range=(1, 15), step=1),
            "kernel_ops": ParamSpec("mean", "choice", "mean: a box of kernel_size pixels; gaussian: a Gaussian "
                                    "of width sigma (kernel_size unused).", choices=("mean", "gaussian")),
            "distance_type": ParamSpec("l1", "choice", "Penalty on u - log s: l1 = |.|, l2 = (.)^2.",
                                       choices=("l1", "l2")),
            "alpha": ParamSpec(0.1, "float", "Weight of the penalty against CE; 0 = CE.", range=(0.0, 5.0),
                               step=0.01),
            "sigma": ParamSpec(1.0, "float", "Gaussian width in pixels (kernel_ops gaussian).", range=(0.1, 5.0),
                               step=0.1),
        },
        summary="CE plus a penalty pulling the log-probabilities towards the target's class proportions "
        "around each pixel, to make the confidences better calibrated.",
    ),
]
