"""The one soft TP/FP/FN primitive every region loss is built on.

For probabilities ``p`` and (one-hot or soft) targets ``g`` summed over a reduction set
(spatial axes per sample, or batch + spatial when ``batch=True``):

.. math::
    TP = \\sum p g,\\quad FP = \\sum p - TP,\\quad FN = \\sum g - TP

With ``soft_label=True`` the intersection is MONAI's / Wang et al.'s soft-label-correct form
:math:`TP = (\\|p\\|_1 + \\|g\\|_1 - \\|p - g\\|_1) / 2`, equal to :math:`\\sum p g` for hard labels,
which makes ``p = g`` a minimiser for soft targets too. The squared sums
:math:`\\sum p^2, \\sum g^2` serve the V-Net (``squared=True``) denominator.

Speed: :func:`soft_confusion` reads each input once per sum and never materialises a
``(B, C, *spatial)`` product in the forward pass (``TP`` is a dot product per row, :func:`rowwise_dot`);
``TP`` and ``sum p`` share one fused backward (``grad_p = dL/dsum_p + dL/dTP * g``, one output
tensor instead of two plus their sum); the squared sums (and the plain product of the
``soft_label`` form) are computed only when a loss reads them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._tensors import memo_lookup, memo_store

#: A ``(B, C)`` table, or a zero-argument callable producing it on first use (lazy sums).
_Table = torch.Tensor | Callable[[], torch.Tensor]


class SoftConfusion:
    """Per-(sample, class) soft sums, each of shape ``(B, C)`` (``(1, C)`` when batch-pooled).

    ``SoftConfusion(tp, pred_sum, target_sum, pred_sq, target_sq, n_pixels, inner=None)``.
    ``pred_sq``, ``target_sq`` and ``inner`` may be given as zero-argument callables: they are
    evaluated on first access (once), so losses that never read them cost nothing.
    """

    __slots__ = ("tp", "pred_sum", "target_sum", "n_pixels", "_pred_sq", "_target_sq", "_inner")

    def __init__(self, tp: torch.Tensor, pred_sum: torch.Tensor, target_sum: torch.Tensor, pred_sq: _Table,
                 target_sq: _Table, n_pixels: int, inner: _Table | None = None):
        self.tp = tp
        self.pred_sum = pred_sum
        self.target_sum = target_sum
        self.n_pixels = n_pixels
        self._pred_sq = pred_sq
        self._target_sq = target_sq
        #: plain product intersection ``sum p g`` when it differs from ``tp`` (``soft_label=True``);
        #: ``None`` means "equal to ``tp``". The squared (V-Net) forms use it: MONAI's ord-2 soft-label
        #: TP, ``(|p|_2^2 + |g|_2^2 - |p - g|_2^2) / 2``, is exactly ``sum p g``.
        self._inner = inner

    @property
    def pred_sq(self) -> torch.Tensor:
        """``sum p^2``."""
        if callable(self._pred_sq):
            self._pred_sq = self._pred_sq()
        return self._pred_sq

    @property
    def target_sq(self) -> torch.Tensor:
        """``sum g^2``."""
        if callable(self._target_sq):
            self._target_sq = self._target_sq()
        return self._target_sq

    @property
    def inner(self) -> torch.Tensor | None:
        """``sum p g`` when it differs from ``tp`` (``soft_label=True``), else ``None``."""
        if callable(self._inner):
            self._inner = self._inner()
        return self._inner

    @property
    def product_tp(self) -> torch.Tensor:
        """``sum p g`` (the TP of the squared / V-Net forms, whatever ``soft_label`` was)."""
        inner = self.inner
        return self.tp if inner is None else inner

    @property
    def fp(self) -> torch.Tensor:
        return self.pred_sum - self.tp

    @property
    def fn(self) -> torch.Tensor:
        return self.target_sum - self.tp

    def _derive(self, op: Callable[[torch.Tensor], torch.Tensor], n_pixels: int) -> SoftConfusion:
        """Apply ``op`` to every table; lazy tables stay lazy (and share this one's evaluation)."""
        return SoftConfusion(op(self.tp), op(self.pred_sum), op(self.target_sum),
                             _lazy(lambda: op(self.pred_sq)), _lazy(lambda: op(self.target_sq)), n_pixels,
                             None if self._inner is None else _lazy(lambda: op(self.inner)))

    def classes(self, include_background: bool) -> SoftConfusion:
        """Drop channel 0 unless ``include_background``."""
        if include_background:
            return self
        return self._derive(lambda t: t[:, 1:], self.n_pixels)

    def pooled(self) -> SoftConfusion:
        """Sum over the batch axis (nnU-Net's "batch dice"): shapes become ``(1, C)``."""
        return self._derive(lambda t: t.sum(0, keepdim=True), self.n_pixels * self.tp.shape[0])

    def __repr__(self) -> str:
        return (f"SoftConfusion(shape={tuple(self.tp.shape)}, n_pixels={self.n_pixels}, "
                f"soft_label={self._inner is not None})")


#: On the CPU, up to this many (sample, class) rows of at least ``_ROW_LOOP_MIN_LENGTH`` values are
#: processed one row at a time (a chunked ``dot``, a row sum, a fused ``add``): no ``(B, C, N)``
#: temporary, and each row is re-read from cache rather than memory. With one torch thread always;
#: with several only for rows longer than :data:`DOT_BLOCK` (volumes), where each op is long enough
#: to use the threads and the float32 dot products then accumulate alike whatever the thread count
#: (:func:`dot`); shorter rows on several threads, many rows, or a GPU: one vectorised call.
_ROW_LOOP_MAX_ROWS = 64
_ROW_LOOP_MIN_LENGTH = 4096


def _row_loop(a: torch.Tensor, b: torch.Tensor | None = None) -> bool:
    return (a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64)
            and (torch.get_num_threads() == 1 or a.shape[-1] > DOT_BLOCK)
            and a.shape[:-1].numel() <= _ROW_LOOP_MAX_ROWS and a.shape[-1] >= _ROW_LOOP_MIN_LENGTH
            and (b is None or (b.shape == a.shape and b.dtype == a.dtype and b.device == a.device)))


def _vecdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum(-1)`` (``vecdot`` needs one dtype; mixed dtypes promote as the product does)."""
    if a.dtype == b.dtype and not a.is_complex():
        return torch.linalg.vecdot(a, b)
    return (a * b).sum(-1)


#: float32 dot products longer than this are summed in chunks of this length (see :func:`dot`)
DOT_BLOCK = 1 << 18


def dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``torch.dot`` of two 1-D tensors, accurate for long float32 vectors.

    A BLAS float32 dot on one thread accumulates in float32 (relative error 1.6e-5 on a 72^3
    volume, more on larger ones). Long float32 vectors are multiplied chunk by chunk
    (:data:`DOT_BLOCK` elements, a cache-sized temporary) and each chunk's products are added by
    ``torch.sum``, whose cascade summation keeps float32 sums accurate; the chunk sums are added
    in float64. Other dtypes and short vectors: plain ``torch.dot``.
    """
    n = x.numel()
    if x.dtype != torch.float32 or n <= DOT_BLOCK:
        return torch.dot(x, y)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, n, DOT_BLOCK):
        stop = min(start + DOT_BLOCK, n)
        total += torch.mul(x[start:stop], y[start:stop]).sum(dtype=torch.float64)
    return total.to(x.dtype)


def rowwise_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum(-1)`` for ``(..., N)`` tensors; no ``(..., N)`` temporary on the CPU for few rows."""
    if not _row_loop(a, b) or (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
        return _vecdot(a, b)
    n = a.shape[-1]
    rows = zip(a.reshape(-1, n).unbind(0), b.reshape(-1, n).unbind(0), strict=True)
    return torch.stack([dot(x, y) for x, y in rows]).view(a.shape[:-1])


def _dot_and_sums(p: torch.Tensor, g: torch.Tensor, with_target_sum: bool):
    """``((p * g).sum(-1), p.sum(-1), g.sum(-1) or None)`` without autograd.

    On the CPU, row by row: the row sums then read rows the dot product has just brought into
    cache, instead of whole tensors from memory."""
    if not _row_loop(p, g):
        return _vecdot(p, g), p.sum(-1), g.sum(-1) if with_target_sum else None
    n = p.shape[-1]
    dots, pred_sums, target_sums = [], [], []
    for x, y in zip(p.reshape(-1, n).unbind(0), g.reshape(-1, n).unbind(0), strict=True):
        dots.append(dot(x, y))
        pred_sums.append(x.sum())
        if with_target_sum:
            target_sums.append(y.sum())
    shape = p.shape[:-1]
    return (torch.stack(dots).view(shape), torch.stack(pred_sums).view(shape),
            torch.stack(target_sums).view(shape) if with_target_sum else None)


def _affine_rows(g: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``offset[..., None] + scale[..., None] * g`` for ``(..., N)`` ``g``: one fused pass per row on the CPU."""
    out = torch.empty(g.shape, dtype=g.dtype, device=g.device)
    if torch.is_grad_enabled() or not _row_loop(g) or scale.dtype != g.dtype or offset.dtype != g.dtype:
        # differentiable form (double backward), or many rows / GPU / threads. A broadcast copy then an
        # in-place addcmul_ beats an out-of-place addcmul whose first operand is broadcast along N.
        out.copy_(offset.unsqueeze(-1).expand(g.shape))
        return out.addcmul_(g, scale.unsqueeze(-1))
    n = g.shape[-1]
    rows = zip(out.view(-1, n).unbind(0), g.reshape(-1, n).unbind(0), offset.reshape(-1).unbind(0),
               scale.reshape(-1).tolist(), strict=True)
    for out_row, g_row, shift, factor in rows:
        torch.add(shift, g_row, alpha=factor, out=out_row)
    return out


class _ProductAndSum(torch.autograd.Function):
    """``(sum p g, sum p)`` over the last axis, with one fused backward ``dL/dS + dL/dTP * g``.

    A third output, ``sum g`` (no gradient), is computed on the way when ``with_target_sum``."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, g: torch.Tensor, with_target_sum: bool):
        ctx.save_for_backward(g)
        tp, pred_sum, target_sum = _dot_and_sums(p, g, with_target_sum)
        if target_sum is None:
            return tp, pred_sum
        ctx.mark_non_differentiable(target_sum)
        return tp, pred_sum, target_sum

    @staticmethod
    def backward(ctx, grad_tp: torch.Tensor, grad_sum: torch.Tensor, *_):
        (g,) = ctx.saved_tensors
        return _affine_rows(g, grad_tp, grad_sum), None, None


def _lazy(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``fn`` to be run later under the grad mode of now (so a lazy sum tracks gradients iff it would have)."""
    grad_enabled = torch.is_grad_enabled()

    def run() -> torch.Tensor:
        with torch.set_grad_enabled(grad_enabled):
            return fn()

    return run


def _confusion_sums(p: torch.Tensor, g: torch.Tensor, target_sum: torch.Tensor | None):
    """``(sum p g, sum p, sum g)``; ``sum g`` computed (without gradient) only when ``target_sum`` is None."""
    need = target_sum is None
    if not torch.is_grad_enabled() or not (p.requires_grad or g.requires_grad):
        tp, pred_sum, computed = _dot_and_sums(p, g, need)
    elif g.requires_grad or p.dtype != g.dtype:
        tp, pred_sum, computed = _vecdot(p, g), p.sum(-1), g.sum(-1) if need else None
    else:
        out = _ProductAndSum.apply(p, g, need)
        tp, pred_sum, computed = out if need else (*out, None)
    return tp, pred_sum, target_sum if target_sum is not None else computed


_TARGET_SUM = "sum_over_spatial"


def soft_confusion(probs: torch.Tensor, target: torch.Tensor, *, soft_label: bool = False) -> SoftConfusion:
    """Soft sums per sample and class over the spatial axes of ``(B, C, *spatial)`` tensors.

    ``pred_sq``, ``target_sq`` (and, with ``soft_label``, the plain product ``inner``) are computed
    on first access only. ``sum g`` is remembered per unmodified target tensor
    (:func:`segloss_core.core._tensors.tensor_memo`): the same ground truth scored again costs no pass.
    """
    bsz, num_classes = probs.shape[:2]
    p = probs.reshape(bsz, num_classes, -1)
    g = target.reshape(bsz, num_classes, -1)
    target_sum = None
    if not g.requires_grad:
        target_sum = memo_lookup(target, _TARGET_SUM)
        if target_sum is not None:
            target_sum = target_sum.clone()  # callers may edit their table in place
    inner = None
    if soft_label:
        if target_sum is None:
            target_sum = g.sum(-1) if g.requires_grad else _no_grad_sum(g)
            _remember_target_sum(target, target_sum)
        pred_sum = p.sum(-1)
        tp = 0.5 * (pred_sum + target_sum - (p - g).abs().sum(-1))
        inner = _lazy(lambda: rowwise_dot(p, g))
    else:
        known = target_sum is not None
        tp, pred_sum, target_sum = _confusion_sums(p, g, target_sum)
        if not known:
            _remember_target_sum(target, target_sum)
    return SoftConfusion(tp, pred_sum, target_sum, _lazy(lambda: rowwise_dot(p, p)),
                         _lazy(lambda: rowwise_dot(g, g)), p.shape[-1], inner)


def _no_grad_sum(g: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return g.sum(-1)


def _remember_target_sum(target: torch.Tensor, target_sum: torch.Tensor) -> None:
    if not target.requires_grad and not target_sum.requires_grad:
        memo_store(target, _TARGET_SUM, target_sum.clone())


def per_sample_mean(values: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean over classes of a ``(B, C)`` or pooled ``(1, C)`` table -> ``(B,)`` per-sample values.

    A pooled table gives one value shared by every sample (so that ``mean`` over samples is the
    pooled loss itself).
    """
    per = values.mean(1)
    if per.shape[0] != batch_size:
        per = per.expand(batch_size)
    return per


def hard_counts(pred: torch.Tensor, gt_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The one hard TP counter: ``(tp, n_pred)``, each ``(n, K)`` float64 (exact integer counts), of
    ``n`` hard predictions against ``K`` flattened ground-truth masks ``(K, N)`` (bool).

    ``pred``: ``(n, N)`` bool (one foreground mask per prediction, ``K = 1``) or integer labels
    (class ``k + 1`` against ``gt_masks[k]``, the foreground classes of an arg-max map).

    >>> tp, n_pred = hard_counts(torch.tensor([[True, True, False]]), torch.tensor([[True, False, False]]))
    >>> tp.tolist(), n_pred.tolist()
    ([[1.0]], [[2.0]])
    """
    if pred.dtype == torch.bool:
        # a bytes sum into int32 is several times faster than a bool or float sum
        n_pred = pred.view(torch.uint8).sum(1, dtype=torch.int32).to(torch.float64).unsqueeze(1)
        tp = (pred & gt_masks[0]).view(torch.uint8).sum(1, dtype=torch.int32).to(torch.float64).unsqueeze(1)
        return tp, n_pred
    tps, preds = [], []
    for k in range(gt_masks.shape[0]):
        pm = pred == k + 1
        preds.append(pm.sum(1))
        tps.append((pm & gt_masks[k]).sum(1))
    return torch.stack(tps, 1).to(torch.float64), torch.stack(preds, 1).to(torch.float64)
