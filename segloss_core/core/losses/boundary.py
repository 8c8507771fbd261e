r"""Boundary-based losses (Ma 2020, section 5): the boundary (surface) loss and the Hausdorff-DT loss.

Both weight a pixel-wise term by a distance map of the ground truth (and, for Hausdorff-DT, of the
thresholded prediction) computed by :mod:`segloss_core.core.distance`: on the CPU with scipy's exact EDT,
under ``no_grad``, cached per ground-truth image, moved once to the input's device and dtype. The maps
are constants for autograd, so the gradients are closed forms (docs/theory.md, G10).

Convention (segloss's choice where the papers differ):
    - ``probs`` and ``target`` are ``(B, C, *spatial)``, 2-D or 3-D, ``C >= 2``; prediction first.
    - ``include_background=False`` (default) uses the foreground channels ``1..C-1`` only; ``True``
      adds channel 0.
    - Per sample: the mean over the selected classes and the pixels; then ``reduction`` over samples
      (``"mean"`` | ``"sum"`` | ``"none"`` -> ``(B,)``). This equals MONAI's mean over ``(B, C)``.
    - ``spacing``: voxel size per spatial axis; distances are physical (``None`` = 1 per axis).
    - Empty or full masks give all-zero distance maps (MONAI's guard): such a channel contributes 0
      to the boundary loss, and only its ``d_S`` / ``d_G`` partner weights the Hausdorff-DT loss.
      Every value and gradient is finite for hard 0/1 predictions, empty classes and single pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._tensors import call_scope, reduce_samples, spatial_dims, tensor_memo, validated
from ..distance import signed_distance_map, unsigned_distance_map
from ..spec import LossSpec, ParamSpec
from . import formulas

_HELP_BG = "also use channel 0 (background); by default only the foreground classes are used"


def _hausdorff_params() -> dict[str, ParamSpec]:
    """The parameters of the Hausdorff-DT loss and of its log form (same defaults)."""
    return {
        "alpha": ParamSpec(2.0, "float", "Exponent of the distances: larger values punish errors far from the "
                           "boundaries more.", range=(0.0, 4.0), step=0.5),
        "include_background": ParamSpec(False, "bool", _HELP_BG),
    }


def _select(probs: torch.Tensor, target: torch.Tensor, include_background: bool):
    if include_background:
        return probs, target
    return probs[:, 1:], target[:, 1:]


@validated
def boundary_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    include_background: bool = False,
    spacing: Sequence[float] | float | None = None,
) -> torch.Tensor:
    r"""Boundary (surface) loss of Kervadec et al.: probabilities weighted by the GT's signed distance.

    .. math::
        L_{BD} = \frac{1}{|K|\,N} \sum_{c \in K} \sum_{i=1}^{N} \phi_G^c(i)\, s_i^c,
        \qquad \frac{\partial L_{BD}}{\partial s_i^c} = \frac{\phi_G^c(i)}{|K|\,N}

    where :math:`\phi_G^c` is :func:`segloss_core.core.distance.signed_distance_map` of class ``c`` (positive
    outside the object, 0 on its inner boundary ring, negative deeper inside as :math:`-(d - 1)`),
    :math:`K` the selected classes and :math:`N` the number of pixels.

    Convention:
        Per sample, then ``reduction`` over the batch (``"mean"`` divides the gradient by ``B`` too).
        **The value can be negative**: it is minimised by :math:`s^c = 1` exactly where
        :math:`\phi_G^c < 0` (the interior of the object without its boundary ring), and a perfect
        prediction scores :math:`\frac{1}{|K|N}\sum_c \sum_{i \in G_c} \phi_G^c(i) \le 0`; only
        differences matter. Kervadec uses it together with a region loss (GDL, with a weight on the
        boundary term that grows from 0.01). An empty or full class has a zero map and contributes 0
        (MONAI 1.6.1 ``BoundaryLoss``). The map is a constant (no gradient through it), computed on
        the CPU and cached per ground-truth image.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-sample values ``(B,)``).
        include_background: also use channel 0 (default ``False``: foreground classes).
        spacing: voxel size per spatial axis (``None`` = 1).

    Reference: Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019; section 5
    of Ma, "Segmentation Loss Odyssey", arXiv 2020; equals MONAI 1.6.1 ``BoundaryLoss``.
    """
    p, g = _select(probs, target, include_background)
    phi = signed_distance_map(g, spacing, dtype=p.dtype)
    per_sample = (p * phi).mean(dim=spatial_dims(p)).mean(dim=1)
    return reduce_samples(per_sample, reduction)


@validated
def hausdorff_dt_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    alpha: float = 2.0,
    include_background: bool = False,
    spacing: Sequence[float] | float | None = None,
) -> torch.Tensor:
    r"""Hausdorff distance-transform loss of Karimi & Salcudean (squared error weighted by distances).

    .. math::
        L_{HD} = \frac{1}{|K|\,N} \sum_{c \in K} \sum_{i=1}^{N} (s_i^c - g_i^c)^2
            \left( d_G^c(i)^{\alpha} + d_S^c(i)^{\alpha} \right)

    where :math:`d_G^c` and :math:`d_S^c` are :func:`segloss_core.core.distance.unsigned_distance_map` of the
    ground truth and of the thresholded prediction :math:`s^c > 0.5`, :math:`K` the selected classes.

    Convention:
        Per (sample, class) the mean over pixels, then the mean over the classes and ``reduction``
        over the samples: equals MONAI ``HausdorffDTLoss(alpha, include_background=False)`` on
        probabilities. The squared error follows MONAI (Karimi's eq. uses the same
        square). Both maps are constants (no gradient through the thresholding), so
        :math:`\partial L / \partial s_i^c = 2 (s_i^c - g_i^c)(d_G^\alpha + d_S^\alpha) / (|K| N)`.
        Empty or full masks have zero maps (MONAI): when both the GT and the thresholded prediction
        of a class are empty or full, both maps vanish and the class contributes 0 however wrong the
        soft prediction is (e.g. a full GT predicted empty). The value is >= 0 and 0 at a perfect
        prediction.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-sample values ``(B,)``).
        alpha: exponent of the distances (default 2).
        include_background: also use channel 0 (default ``False``: foreground classes).
        spacing: voxel size per spatial axis (``None`` = 1).

    Reference: Karimi & Salcudean, "Reducing the Hausdorff distance in medical image segmentation with
    convolutional neural networks", IEEE TMI 39(2), 2020; section 5 of Ma, "Segmentation Loss Odyssey",
    arXiv 2020; equals MONAI ``HausdorffDTLoss``.
    """
    if torch.is_grad_enabled() and probs.requires_grad:
        per_sample = _hausdorff_per_sample(probs, target, alpha, include_background, spacing)
    else:  # no graph: shared with log_hausdorff_dt within one engine call
        scope = call_scope()
        key = ("hausdorff_dt.per_sample", scope, id(target), float(alpha), bool(include_background),
               None if spacing is None else tuple(float(v) for v in np.ravel(spacing)))

        def compute(p: torch.Tensor) -> torch.Tensor:
            return _hausdorff_per_sample(p, target, alpha, include_background, spacing)

        per_sample = compute(probs) if scope is None else tensor_memo(probs, key, compute).clone()
    return reduce_samples(per_sample, reduction)


def _hausdorff_per_sample(probs, target, alpha, include_background, spacing) -> torch.Tensor:
    """:func:`hausdorff_dt_loss` per sample ``(B,)``."""
    p, g = _select(probs, target, include_background)
    with torch.no_grad():
        d_gt = unsigned_distance_map(g, spacing, dtype=p.dtype)
        d_pred = unsigned_distance_map(p.detach() > 0.5, spacing, dtype=p.dtype)
        weight = d_gt.pow_(alpha).add_(d_pred.pow_(alpha))
        del d_pred
    if torch.is_grad_enabled() and p.requires_grad:
        per_pixel = (p - g).square() * weight
    else:  # the same operations in place: two fewer volumes held at once
        per_pixel = (p - g).square_().mul_(weight)
    return per_pixel.mean(dim=spatial_dims(p)).mean(dim=1)


def boundary_pixel_mean(px, *, include_background: bool = False,
                        spacing: Sequence[float] | float | None = None) -> torch.Tensor:
    r"""``boundary`` per sample from a :class:`~segloss_core.core.engine.PixelView`: one dot product
    per selected class with the (cached) signed distance map, :math:`\frac{1}{|K|N}\sum_c \phi^c\cdot s^c`."""
    first = 0 if include_background else 1
    phi = px.signed_distance(first, spacing)
    m = px.probs.shape[0]
    flat = px.probs[:, first:].reshape(m, phi.shape[1], -1)
    if phi.shape[0] == 1:  # one map for the batch: one BLAS dot per sample and class (a broadcast
        # vecdot would materialise the (m, K, N) product first; a matrix-vector product would round
        # differently for different m, so a chunked landscape would change in the last bits)
        K = phi.shape[1]
        dots = torch.stack([torch.dot(flat[i, k], phi[0, k]) for i in range(m) for k in range(K)]).view(m, K)
    else:
        dots = torch.linalg.vecdot(flat, phi)
    return dots.div_(px.n_pixels).mean(1)


@validated
def log_hausdorff_dt_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    reduction: str = "mean",
    alpha: float = 2.0,
    include_background: bool = False,
    spacing: Sequence[float] | float | None = None,
) -> torch.Tensor:
    r"""Log Hausdorff distance-transform loss: :math:`\log(1 + L_{HD})` per sample.

    .. math::
        L_{logHD} = \log\Big(1 + \frac{1}{|K|\,N} \sum_{c \in K} \sum_{i=1}^{N} (s_i^c - g_i^c)^2
            \left( d_G^c(i)^{\alpha} + d_S^c(i)^{\alpha} \right)\Big)

    Convention:
        :math:`L_{HD}` is :func:`hausdorff_dt_loss` of each sample (same maps, classes and spacing);
        the log is taken per sample, then ``reduction`` over samples, so ``"none"`` is each sample's
        value alone. MONAI's ``LogHausdorffDTLoss`` takes the log after its batch mean,
        :math:`\log(1 + \bar L_{HD})`: equal for ``B = 1``, and for ``B > 1`` segloss's mean of logs is
        at most MONAI's (Jensen). The log compresses the large values of badly placed predictions, so
        the gradient is :math:`\nabla L_{HD} / (1 + L_{HD})`.

    Args:
        probs: class probabilities ``(B, C, *spatial)``.
        target: one-hot target, same shape.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-sample values ``(B,)``).
        alpha: exponent of the distances (default 2).
        include_background: also use channel 0 (default ``False``: foreground classes).
        spacing: voxel size per spatial axis (``None`` = 1).

    Reference: Karimi & Salcudean, IEEE TMI 39(2), 2020; MONAI 1.6.1 ``LogHausdorffDTLoss`` (equal for B = 1).
    """
    per_sample = hausdorff_dt_loss(probs, target, reduction="none", alpha=alpha,
                                   include_background=include_background, spacing=spacing)
    return reduce_samples(torch.log1p(per_sample), reduction)


SPECS = [
    LossSpec(
        name="boundary",
        title="Boundary loss",
        category="boundary",
        fn=boundary_loss,
        pixel_mean=boundary_pixel_mean,
        formula="",
        formula_for=formulas.boundary,
        reference="Kervadec et al., MIDL 2019; section 5 of Ma 2020",
        params={"include_background": ParamSpec(False, "bool", _HELP_BG)},
        uses_spacing=True,
        summary="Integrates the prediction against the ground truth's signed distance map, so mass far "
        "outside the object costs more; can be negative; pair it with a region loss for tiny objects.",
    ),
    LossSpec(
        name="hausdorff_dt",
        title="Hausdorff distance-transform loss",
        category="boundary",
        fn=hausdorff_dt_loss,
        slow=True,
        formula="",
        formula_for=formulas.hausdorff_dt,
        reference="Karimi & Salcudean, IEEE TMI 2020; section 5 of Ma 2020",
        params=_hausdorff_params(),
        uses_spacing=True,
        summary="Squared error weighted by the squared distances to the ground-truth and predicted "
        "boundaries: targets large boundary errors, a differentiable stand-in for the Hausdorff distance.",
    ),
    LossSpec(
        name="log_hausdorff_dt",
        title="Log Hausdorff distance-transform loss",
        category="boundary",
        fn=log_hausdorff_dt_loss,
        formula="",
        formula_for=formulas.log_hausdorff_dt,
        reference="Karimi & Salcudean, IEEE TMI 2020 (MONAI LogHausdorffDTLoss)",
        params=_hausdorff_params(),
        uses_spacing=True,
        slow=True,
        summary="log(1 + Hausdorff-DT loss) per sample: the same distance-weighted errors with large values "
        "compressed, so one badly placed object does not dominate a batch.",
    ),
]
