"""The one soft TP/FP/FN primitive every region loss is built on.

For probabilities ``p`` and (one-hot or soft) targets ``g`` summed over a reduction set
(spatial axes per sample, or batch + spatial when ``batch=True``):

.. math::
    TP = \\sum p g,\\quad FP = \\sum p - TP,\\quad FN = \\sum g - TP

With ``soft_label=True`` the intersection is MONAI's / Wang et al.'s soft-label-correct form
:math:`TP = (\\|p\\|_1 + \\|g\\|_1 - \\|p - g\\|_1) / 2`, equal to :math:`\\sum p g` for hard labels,
which makes ``p = g`` a minimiser for soft targets too. The squared sums
:math:`\\sum p^2, \\sum g^2` serve the V-Net (``squared=True``) denominator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._tensors import spatial_dims


@dataclass(frozen=True)
class SoftConfusion:
    """Per-(sample, class) soft sums, each of shape ``(B, C)`` (``(1, C)`` when batch-pooled)."""

    tp: torch.Tensor
    pred_sum: torch.Tensor
    target_sum: torch.Tensor
    pred_sq: torch.Tensor
    target_sq: torch.Tensor
    n_pixels: int
    #: plain product intersection ``sum p g`` when it differs from ``tp`` (``soft_label=True``);
    #: ``None`` means "equal to ``tp``". The squared (V-Net) forms use it: MONAI's ord-2 soft-label
    #: TP, ``(|p|_2^2 + |g|_2^2 - |p - g|_2^2) / 2``, is exactly ``sum p g``.
    inner: torch.Tensor | None = None

    @property
    def product_tp(self) -> torch.Tensor:
        """``sum p g`` (the TP of the squared / V-Net forms, whatever ``soft_label`` was)."""
        return self.tp if self.inner is None else self.inner

    @property
    def fp(self) -> torch.Tensor:
        return self.pred_sum - self.tp

    @property
    def fn(self) -> torch.Tensor:
        return self.target_sum - self.tp

    def classes(self, include_background: bool) -> SoftConfusion:
        """Drop channel 0 unless ``include_background``."""
        if include_background:
            return self
        return SoftConfusion(*(t[:, 1:] for t in (self.tp, self.pred_sum, self.target_sum,
                                                  self.pred_sq, self.target_sq)), self.n_pixels,
                             None if self.inner is None else self.inner[:, 1:])

    def pooled(self) -> SoftConfusion:
        """Sum over the batch axis (nnU-Net's "batch dice"): shapes become ``(1, C)``."""
        return SoftConfusion(*(t.sum(0, keepdim=True) for t in (self.tp, self.pred_sum, self.target_sum,
                                                               self.pred_sq, self.target_sq)),
                             self.n_pixels * self.tp.shape[0],
                             None if self.inner is None else self.inner.sum(0, keepdim=True))


def soft_confusion(probs: torch.Tensor, target: torch.Tensor, *, soft_label: bool = False) -> SoftConfusion:
    """Soft sums per sample and class over the spatial axes of ``(B, C, *spatial)`` tensors."""
    dims = spatial_dims(probs)
    pred_sum = probs.sum(dims)
    target_sum = target.sum(dims)
    product = (probs * target).sum(dims)
    inner = None
    tp = product
    if soft_label:
        tp = 0.5 * (pred_sum + target_sum - (probs - target).abs().sum(dims))
        inner = product
    n = 1
    for d in probs.shape[2:]:
        n *= d
    return SoftConfusion(tp, pred_sum, target_sum, (probs * probs).sum(dims), (target * target).sum(dims), n,
                         inner)


def per_sample_mean(values: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean over classes of a ``(B, C)`` or pooled ``(1, C)`` table -> ``(B,)`` per-sample values.

    A pooled table gives one value shared by every sample (so that ``mean`` over samples is the
    pooled loss itself).
    """
    per = values.mean(1)
    if per.shape[0] != batch_size:
        per = per.expand(batch_size)
    return per
