r"""Distribution-based losses (Ma 2020, section 2): CE, weighted CE, TopK, focal, distance-penalised CE.

Every function takes class probabilities ``probs`` ``(B, C, *spatial)`` and a one-hot (or soft)
``target`` of the same shape, works per pixel on :math:`-\sum_c g_c \log s_c` (logs clamped at
``EPS``), averages over the ``N`` pixels of each sample and returns per-sample values reduced by
``reduce_samples``. Since every sample has the same number of pixels, ``reduction="mean"`` is the
mean over all ``B x N`` pixels, as in the papers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._tensors import EPS, clamped_log, reduce_samples, validated
from ..spec import LossSpec, ParamSpec
from . import formulas

__all__ = [
    "ce_loss",
    "wce_loss",
    "topk_loss",
    "focal_loss",
    "dpce_loss",
    "pixel_ce",
    "clamped_log",
    "class_vector",
    "SPECS",
]


class _ClampedCrossEntropy(torch.autograd.Function):
    r"""Per-pixel :math:`-\sum_c w_c g_c \log \max(s_c, \epsilon)` with :func:`clamped_log`'s gradient.

    Same value and gradient (:math:`-w g / \max(s, \epsilon)`) as the autograd composition, with one
    ``(B, C, *spatial)`` buffer in the forward pass and one (the gradient) in the backward pass
    instead of about six.
    """

    @staticmethod
    def forward(ctx, probs, target, weight):
        ctx.save_for_backward(probs, target, weight)
        terms = probs.clamp_min(EPS).log_().mul_(target)
        if weight is not None:
            terms.mul_(weight)
        return terms.sum(1).neg_()

    @staticmethod
    def backward(ctx, grad_map):
        probs, target, weight = ctx.saved_tensors
        grad = probs.clamp_min(EPS)
        torch.div(target, grad, out=grad)
        if weight is not None:
            grad.mul_(weight)
        return grad.mul_(grad_map.neg().unsqueeze(1)), None, None


def _fused(probs: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """Whether a fused Function applies: gradients (if any) flow to ``probs`` only, and every tensor has
    ``probs``' float dtype and device (mixed dtypes take the autograd path, which promotes)."""
    return probs.dtype in (torch.float32, torch.float64) and all(
        t is None or (not t.requires_grad and t.dtype == probs.dtype and t.device == probs.device) for t in others)


def pixel_ce(probs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    r"""Per-pixel cross-entropy :math:`-\sum_c w_c g_c \log \max(s_c, \epsilon)`, shape ``(B, *spatial)``.

    ``weight``: optional per-class weights broadcastable to ``probs`` (``(1, C, 1, ...)``).
    """
    if _fused(probs, target, weight):
        return _ClampedCrossEntropy.apply(probs, target, weight)
    weighted = target if weight is None else target * weight
    return -(weighted * clamped_log(probs)).sum(1)


def _pixel_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over the spatial axes of a ``(B, *spatial)`` map -> ``(B,)``."""
    return values.flatten(1).mean(1)


def class_vector(values: Sequence[float] | None, num_classes: int, name: str, like: torch.Tensor) -> torch.Tensor | None:
    """Per-class numbers -> a ``(1, C, 1, ...)`` tensor broadcastable against ``like`` (None stays None).

    Raises ``ValueError`` when the length is not ``num_classes``.
    """
    if values is None:
        return None
    if isinstance(values, (int, float)):
        values = [values]
    try:
        vals = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if len(vals) != num_classes:
        raise ValueError(f"{name} must hold one number per class: got {len(vals)} for C={num_classes}")
    if any(not math.isfinite(v) or v < 0 for v in vals):
        raise ValueError(f"{name} must hold finite non-negative numbers, got {vals}")
    vec = torch.tensor(vals, dtype=like.dtype, device=like.device)
    return vec.view(1, num_classes, *([1] * (like.ndim - 2)))


@validated
def ce_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Cross-entropy on probabilities (eq. 2 of Ma 2020).

    .. math::
        L_{CE} = -\frac{1}{N} \sum_{i=1}^{N} \sum_{c=1}^{C} g_i^c \log \max(s_i^c, \epsilon)

    Convention:
        ``probs`` and ``target`` are ``(B, C, *spatial)``; all classes, background included. The mean
        runs over the ``N`` pixels of each sample, then ``reduction`` over samples ("mean" = mean
        over ``B x N`` pixels, equal to ``torch.nn.functional.nll_loss(log(probs), labels)``).
        Soft targets are allowed (any ``g`` summing to 1 per pixel; then it is the soft-target
        ``torch.nn.functional.cross_entropy``). ``epsilon = EPS = 1e-7`` clamps the log, so hard 0/1
        predictions give finite values and gradients; the clamp passes the gradient
        (:math:`-g/\max(s, \epsilon)`, see :func:`clamped_log`), so a hard wrong pixel is still pushed
        towards its label. An empty class contributes nothing. The gradient w.r.t. logits ``z``
        (``s = softmax(z)``) is :math:`(s - g)/(BN)`.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot or soft target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-sample ``(B,)``).

    Reference: eq. 2 of Ma, "Segmentation Loss Odyssey", arXiv 2020.
    """
    return reduce_samples(_pixel_mean(pixel_ce(probs, target)), reduction)


@validated
def wce_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    weights: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Weighted cross-entropy with the paper's 1/N normalisation (eq. 3 of Ma 2020).

    .. math::
        L_{WCE} = -\frac{1}{N} \sum_{i=1}^{N} \sum_{c=1}^{C} w_c\, g_i^c \log \max(s_i^c, \epsilon)

    Convention:
        Same shapes, reduction and ``EPS`` clamp as :func:`ce_loss`; ``weights`` holds one
        non-negative number per class (background included; ``None`` = all ones = ``ce``) and is
        not normalised. **Normalisation differs from PyTorch:** ``nll_loss(..., weight=w)`` with
        ``reduction="mean"`` divides by :math:`\sum_i w_{y_i}`; this loss divides by the pixel
        count ``N``, so ``wce = torch_weighted_nll * sum_i w_{y_i} / N``. Scaling every weight by
        ``a`` scales this loss by ``a`` (PyTorch's is scale-invariant).

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot or soft target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        weights: per-class weights, length ``C`` (``ValueError`` otherwise).

    Reference: Ronneberger et al., U-Net, MICCAI 2015; eq. 3 of Ma, "Segmentation Loss Odyssey", arXiv 2020.
    """
    w = class_vector(weights, probs.shape[1], "weights", probs)
    return reduce_samples(_pixel_mean(pixel_ce(probs, target, w)), reduction)


def _keep_count(n_pixels: int, k: float) -> int:
    """floor(k % of ``n_pixels``), at least 1 (tolerant to float round-off such as 28.999999)."""
    return max(1, min(n_pixels, int(math.floor(n_pixels * float(k) / 100.0 + 1e-9))))


@validated
def topk_loss(probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", k: float = 10.0) -> torch.Tensor:
    r"""TopK cross-entropy: the mean CE of the hardest ``k`` % of pixels (nnU-Net's ``TopKLoss``).

    .. math::
        L_{TopK} = \frac{1}{|K|} \sum_{i \in K} -\sum_c g_i^c \log \max(s_i^c, \epsilon),
        \quad K = \text{the } \max(1, \lfloor k\,M/100 \rfloor) \text{ pixels of largest CE}

    Convention:
        Ma's eq. 4 selects pixels by a probability threshold ``t``; segloss follows nnU-Net
        (``TopK10`` of the MedIA benchmark) and keeps a fixed percentage ``k`` instead.
        ``reduction="mean"`` pools the whole batch (``M = B x N`` pixels, one selection);
        ``"sum"`` is that pooled value times ``B``; ``"none"`` gives each sample's own top-k
        (``M = N``) as if evaluated alone, so ``mean(none)`` differs from ``mean`` in general.
        At least one pixel is always kept; ``k = 100`` equals :func:`ce_loss`. Ties are broken
        arbitrarily (same value; the gradient may go to either pixel).

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot or soft target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        k: percentage of pixels kept, in (0, 100].

    Reference: Wu et al., arXiv 1605.06885 (2016); nnU-Net ``TopKLoss``; eq. 4 of Ma, "Segmentation Loss Odyssey", arXiv 2020.
    """
    if not 0 < float(k) <= 100:
        raise ValueError(f"k must be a percentage in (0, 100], got {k}")
    per_pixel = pixel_ce(probs, target).flatten(1)  # (B, N)
    batch, n_pixels = per_pixel.shape
    if reduction == "none":
        keep = _keep_count(n_pixels, k)
        return per_pixel.topk(keep, dim=1, sorted=False).values.mean(1)
    flat = per_pixel.reshape(-1)
    pooled = flat.topk(_keep_count(flat.numel(), k), sorted=False).values.mean()
    return reduce_samples(pooled.expand(batch), reduction)


class _ClampedFocal(torch.autograd.Function):
    r"""Per-pixel focal map :math:`-\sum_c \alpha_c \max(1 - s_c, \epsilon)^\gamma g_c \log\max(s_c, \epsilon)`.

    The gradient is that of the autograd composition (``clamp_min`` passes the gradient where
    :math:`1 - s \ge \epsilon`, ``pow``'s is 0 for :math:`\gamma = 0`, the log is :func:`clamped_log`),
    with two ``(B, C, *spatial)`` buffers forward and four backward instead of about twelve.
    """

    @staticmethod
    def forward(ctx, probs, target, weight, gamma):
        ctx.save_for_backward(probs, target, weight)
        ctx.gamma = gamma
        terms = torch.rsub(probs, 1).clamp_min_(EPS).pow_(gamma)
        terms.mul_(target).mul_(probs.clamp_min(EPS).log_())
        if weight is not None:
            terms.mul_(weight)
        return terms.sum(1).neg_()

    @staticmethod
    def backward(ctx, grad_map):
        probs, target, weight = ctx.saved_tensors
        gamma = ctx.gamma
        clamped = probs.clamp_min(EPS)
        one_minus = torch.rsub(probs, 1)
        if gamma == 0:  # modulating factor 1, no gradient through it
            coeff = clamped.reciprocal_()
        else:
            passes = one_minus >= EPS  # clamp_min's gradient mask
            base = one_minus.clamp_min_(EPS)
            coeff = base.pow(gamma).div_(clamped)  # m / max(s, EPS)
            slope = base.pow_(gamma - 1).mul_(gamma).mul_(passes)  # -dm/ds
            coeff.sub_(slope.mul_(clamped.log_()))
        coeff.mul_(target)
        if weight is not None:
            coeff.mul_(weight)
        return coeff.mul_(grad_map.neg().unsqueeze(1)), None, None, None


@validated
def focal_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    gamma: float = 2.0,
    alpha: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Softmax focal loss summed over classes (eq. 5 of Ma 2020, Lin et al.).

    .. math::
        L_{FL} = -\frac{1}{N} \sum_{i=1}^{N} \sum_{c=1}^{C} \alpha_c\, \max(1 - s_i^c, \epsilon)^{\gamma}\,
        g_i^c \log \max(s_i^c, \epsilon)

    Convention:
        All classes, background included; the class sum is averaged over the ``N`` pixels of each
        sample, so ``reduction="mean"`` is ``C`` times MONAI's
        ``FocalLoss(use_softmax=True, reduction="mean")`` (MONAI and kornia average over
        ``B x C x N`` elements). ``alpha`` holds optional unnormalised per-class weights
        (``None`` = all 1; unlike SegLoss it is not rescaled to sum 1, unlike MONAI/kornia a scalar
        is not accepted). ``gamma = 0`` equals :func:`ce_loss`. ``1 - s`` is clamped at
        ``EPS = 1e-7`` before the power, so fractional ``gamma`` keeps finite gradients at
        ``s = 1``; the log is clamped as in CE. Soft targets are allowed.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot or soft target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        gamma: focusing exponent >= 0.
        alpha: per-class weights, length ``C``.

    Reference: Lin et al., ICCV 2017; eq. 5 of Ma, "Segmentation Loss Odyssey", arXiv 2020.
    """
    if float(gamma) < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    weights = class_vector(alpha, probs.shape[1], "alpha", probs)
    if _fused(probs, target, weights):
        return reduce_samples(_pixel_mean(_ClampedFocal.apply(probs, target, weights, float(gamma))), reduction)
    modulating = (1 - probs).clamp_min(EPS).pow(float(gamma))
    terms = modulating * target * clamped_log(probs)
    if weights is not None:
        terms = terms * weights
    return reduce_samples(_pixel_mean(-terms.sum(1)), reduction)


@validated
def dpce_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    include_background: bool = False,
    spacing: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Distance-map-penalised cross-entropy (eq. 6 of Ma 2020, Caliva et al.).

    .. math::
        L_{DPCE} = -\frac{1}{N} \sum_{i=1}^{N} (1 + D_i) \sum_{c=1}^{C} g_i^c \log \max(s_i^c, \epsilon),
        \qquad D_i = 1 - \frac{d_i}{\max_j d_j}

    Convention:
        ``D`` is ``segloss_core.core.distance.boundary_weight_map(target, spacing, include_background)``,
        shape ``(B, 1, *spatial)``, computed per sample from the target only (no gradient):
        ``d_i`` is the Euclidean distance (in physical units when ``spacing`` is given) from pixel
        ``i`` to the nearest ground-truth boundary pixel of the selected classes (foreground classes
        by default; channel 0 too with ``include_background=True``). So ``D = 1`` on the boundary,
        decays linearly with distance to 0 at the farthest pixel, and ``D = 0`` everywhere (plain
        CE) for a sample without any boundary (e.g. an empty foreground). The CE term itself runs
        over all classes, background included, with the ``EPS`` clamp of :func:`ce_loss`. The
        weight lies in ``[1, 2]``, so ``ce <= dpce <= 2 ce``.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        include_background: also use channel 0's boundary to build ``D``.
        spacing: voxel size per spatial axis (``None`` = isotropic 1).

    Reference: Caliva et al., "Distance map loss penalty term for semantic segmentation", MIDL 2019;
    eq. 6 of Ma, "Segmentation Loss Odyssey", arXiv 2020.
    """
    from ..distance import boundary_weight_map

    with torch.no_grad():
        dist_weight = boundary_weight_map(target.detach(), spacing=spacing, include_background=include_background)
    dist_weight = dist_weight.to(dtype=probs.dtype, device=probs.device)
    weighted = (1 + dist_weight[:, 0]) * pixel_ce(probs, target)
    return reduce_samples(_pixel_mean(weighted), reduction)


def ce_pixel_mean(px) -> torch.Tensor:
    r"""``ce`` per sample from a :class:`~segloss_core.core.engine.PixelView` (hard one-hot targets):
    :math:`-\frac1N\sum_i \log\max(s_{t_i}, \epsilon)`, :math:`t_i` the pixel's class."""
    return px.true_class()[1].mean(1).neg()


def wce_pixel_mean(px, *, weights: Sequence[float] | None = None) -> torch.Tensor:
    r"""``wce`` per sample from a :class:`~segloss_core.core.engine.PixelView`:
    :math:`-\frac1N\sum_i w_{t_i} \log\max(s_{t_i}, \epsilon)`."""
    log_true = px.true_class()[1]
    weight = px.class_weight(weights, "weights")
    return (log_true if weight is None else log_true * weight).mean(1).neg()


def focal_pixel_mean(px, *, gamma: float = 2.0, alpha: Sequence[float] | None = None) -> torch.Tensor:
    r"""``focal`` per sample from a :class:`~segloss_core.core.engine.PixelView`:
    :math:`-\frac1N\sum_i \alpha_{t_i}\max(1 - s_{t_i}, \epsilon)^\gamma \log\max(s_{t_i}, \epsilon)`."""
    if float(gamma) < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    p_true, log_true = px.true_class()
    weight = px.class_weight(alpha, "alpha")
    terms = torch.rsub(p_true, 1).clamp_min_(EPS).pow_(float(gamma)).mul_(log_true)
    if weight is not None:
        terms.mul_(weight)
    return terms.mean(1).neg_()


SPECS = [
    LossSpec(
        name="ce",
        title="Cross-entropy",
        category="distribution",
        fn=ce_loss,
        pixel_mean=ce_pixel_mean,
        formula=r"L_{CE}=-\frac{1}{N}\sum_{i=1}^{N}\sum_{c=0}^{C-1}g_{ic}\log s_{ic}",
        reference="Ma, Segmentation Loss Odyssey, arXiv 2020; eq. 2 of Ma 2020",
        params={},
        summary="Per-pixel log-loss averaged over all pixels: the default distribution loss, pulls every "
        "pixel towards its label and the predicted region proportions towards the ground truth's.",
    ),
    LossSpec(
        name="wce",
        title="Weighted cross-entropy",
        category="distribution",
        fn=wce_loss,
        pixel_mean=wce_pixel_mean,
        formula="",
        formula_for=formulas.wce,
        reference="Ronneberger et al., MICCAI 2015; eq. 3 of Ma 2020",
        params={
            "weights": ParamSpec(
                None,
                "floats",
                "One weight per class (background first); empty = all 1. Divided by the pixel count N, "
                "not by the summed weights as PyTorch's weighted CE does.",
            ),
        },
        summary="CE with per-class weights (e.g. inverse class frequency) to up-weight rare structures.",
    ),
    LossSpec(
        name="topk",
        title="TopK cross-entropy",
        category="distribution",
        fn=topk_loss,
        slow=True,
        formula=r"L_{TopK}=\frac{1}{|K|}\sum_{i\in K}\Big(-\sum_{c=0}^{C-1}g_{ic}\log s_{ic}\Big),\quad "
        r"K=\text{the }\max(1,\lfloor kM/100\rfloor)\text{ pixels of largest CE among the batch's }M=BN",
        reference="Wu et al., arXiv 2016 (nnU-Net TopK10); eq. 4 of Ma 2020",
        params={
            "k": ParamSpec(
                10.0,
                "float",
                "Percentage of pixels (largest CE, pooled over the batch) that are kept; 100 = plain CE.",
                range=(0.1, 100.0),
                step=0.1,
            ),
        },
        summary="CE restricted to the hardest k% of pixels: ignores easy pixels and focuses on errors "
        "and boundaries.",
    ),
    LossSpec(
        name="focal",
        title="Focal loss",
        category="distribution",
        fn=focal_loss,
        pixel_mean=focal_pixel_mean,
        formula="",
        formula_for=formulas.focal,
        reference="Lin et al., ICCV 2017; eq. 5 of Ma 2020",
        params={
            "gamma": ParamSpec(
                2.0, "float", "Focusing exponent: down-weights well-classified pixels; 0 = CE.",
                range=(0.0, 5.0), step=0.1,
            ),
            "alpha": ParamSpec(
                None, "floats", "Optional per-class weights (background first), not normalised; empty = all 1."
            ),
        },
        summary="CE scaled by (1 - s)^gamma so confident, correct pixels count little and hard pixels "
        "dominate; for extreme foreground/background imbalance.",
    ),
    LossSpec(
        name="dpce",
        title="Distance-penalised cross-entropy",
        category="distribution",
        fn=dpce_loss,
        formula="",
        formula_for=formulas.dpce,
        reference="Caliva et al., MIDL 2019; eq. 6 of Ma 2020",
        params={
            "include_background": ParamSpec(
                False, "bool", "Let the background channel's boundary also define the distance map D."
            ),
        },
        uses_spacing=True,
        summary="CE weighted by 1 + D, where D is 1 on the ground-truth boundary and falls linearly to 0 "
        "at the farthest pixel: focuses training on hard-to-segment borders.",
    ),
]
