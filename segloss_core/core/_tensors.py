"""Tensor conventions shared by every module: EPS, devices, validation, one-hot, softmax.

Shapes: predictions are class probabilities ``(B, C, *spatial)`` with ``C >= 2`` summing to 1
over the channel axis; targets have the same shape and are one-hot (soft labels where a loss
allows them). 2-D (``*spatial = H, W``) and 3-D (``D, H, W``) are both accepted.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .limits import check_count, check_elements

#: Clamp applied to probabilities inside logs and fractional powers (any dtype).
EPS = 1e-7


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_tensor(x, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Numpy arrays, lists and tensors -> tensor; float dtypes are kept unless ``dtype`` is given."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if device is not None:
        t = t.to(resolve_device(device))
    return t


def check_pair(probs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (prediction, target) pair and return them as float tensors of one dtype.

    Raises ``ValueError`` with a one-line message for the mistakes users make most: label maps
    instead of one-hot targets, mismatched shapes, a single channel, NaN/Inf, values outside [0, 1].
    Cost: one integer min/max pass per tensor; a target that passed is remembered while unmodified
    (:func:`tensor_memo`), so scoring many predictions against one ground truth checks it once.
    """
    probs = as_tensor(probs)
    target = as_tensor(target)
    if probs.ndim not in (4, 5):
        raise ValueError(
            f"prediction must be (B, C, H, W) or (B, C, D, H, W) probabilities, got shape {tuple(probs.shape)}"
        )
    if probs.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(probs.shape)} and target shape {tuple(target.shape)} differ; "
            "the target must be one-hot with the same shape (use segloss_core.one_hot for label maps)"
        )
    if probs.shape[1] < 2:
        raise ValueError(
            "need C >= 2 channels (background + foreground); for a binary probability map p use "
            "torch.cat([1 - p, p], dim=1)"
        )
    check_count(probs.numel(), lambda n, limit: f"{n:,} voxels x classes exceed the limit of {limit:,}; crop or downsample")
    if not probs.is_floating_point():
        probs = probs.to(torch.get_default_dtype())
    if target.dtype != probs.dtype:
        target = target.to(probs.dtype)
    if target.device != probs.device:
        target = target.to(probs.device)
    if not _in_unit_range(probs):
        if not _all_finite(probs):
            raise ValueError("prediction contains NaN or Inf")
        raise ValueError("prediction must hold probabilities in [0, 1] (apply softmax to logits first)")
    if not tensor_memo(target, "in_unit_range", _in_unit_range, keep=bool):
        if not _all_finite(target):
            raise ValueError("target contains NaN or Inf")
        raise ValueError("target must be one-hot or soft labels in [0, 1]")
    return probs, target


#: True while the caller has validated the (prediction, target) pair (the engine, or a validated loss
#: calling another): public loss functions then skip :func:`check_pair`.
_TRUSTED = contextvars.ContextVar("segloss_validated_pair", default=False)


@contextlib.contextmanager
def trusted():
    """Within this block, public loss functions do not re-validate their inputs (the caller has)."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def validated(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator of the public loss functions ``fn(probs, target, *, reduction, **params)``: the pair
    goes through :func:`check_pair` first (one-line ``ValueError`` for logits, label maps, shape
    mismatches, ...), unless the caller already validated it (:func:`trusted`: the engine, or an
    outer loss); nested calls inside ``fn`` are trusted."""

    @functools.wraps(fn)
    def wrapper(probs, target, *args, **kwargs):
        if _TRUSTED.get():
            return fn(probs, target, *args, **kwargs)
        probs, target = check_pair(probs, target)
        with trusted():
            return fn(probs, target, *args, **kwargs)

    return wrapper


#: Float dtype -> (same-size integer dtype, bit pattern of 1.0). Non-negative floats order like their
#: bit patterns read as integers, so "every value in [+0, 1], no NaN" is one integer min/max pass,
#: which is faster than a float aminmax (no NaN handling).
_UNIT_BITS = {
    torch.float64: (torch.int64, 0x3FF0000000000000),
    torch.float32: (torch.int32, 0x3F800000),
    torch.float16: (torch.int16, 0x3C00),
    torch.bfloat16: (torch.int16, 0x3F80),
}


def _in_unit_range(t: torch.Tensor) -> bool:
    """All values in [0, 1] (NaN fails both comparisons, +-Inf the range): one pass, one sync."""
    t = t.detach()
    bits = _UNIT_BITS.get(t.dtype)
    if bits is not None:
        lo, hi = _extremes(t.view(bits[0]))
        if lo >= 0 and hi <= bits[1]:
            return True
        # else: a value out of range, NaN, or only a -0.0 (valid): decide on the float values
    lo, hi = _extremes(t)
    return lo >= 0 and hi <= 1


def _extremes(t: torch.Tensor) -> tuple:
    lo, hi = torch.aminmax(t)
    if t.device.type == "cpu":  # .item()s: ~10 us less than tensor comparisons
        return lo.item(), hi.item()
    lo, hi = torch.stack((lo, hi)).tolist()  # one device sync
    return lo, hi


def _all_finite(t: torch.Tensor) -> bool:
    with torch.no_grad():
        return bool(torch.isfinite(t.detach()).all())


# ----------------------------------------------------------------------------------------------
# per-tensor memo of target-only quantities (the same ground truth is scored against many predictions)
# ----------------------------------------------------------------------------------------------

#: Tensors whose derived values are remembered at once (oldest forgotten first).
MEMO_MAX_TENSORS = 64

_memo: OrderedDict[int, tuple[weakref.ref, tuple, dict[Any, Any]]] = OrderedDict()
_memo_lock = threading.RLock()  # re-entrant: dropping a value may free a memoised tensor, whose callback locks


#: The current :func:`call_memo` scope (an object), or ``None`` outside one.
_SCOPE: contextvars.ContextVar[object | None] = contextvars.ContextVar("segloss_call_memo", default=None)


@contextlib.contextmanager
def call_memo():
    """Within this block (one engine call) values derived from tensors whose memory torch does not
    own (``torch.from_numpy``) are remembered too, and forgotten when the block ends: the caller
    does not modify its inputs while it runs. Nested blocks share the outermost scope."""
    if _SCOPE.get() is not None:
        yield
        return
    scope = object()
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)
        with _memo_lock:
            for key in [k for k, e in _memo.items() if e[1][0] is scope]:
                _memo.pop(key, None)


def call_scope() -> object | None:
    """The current :func:`call_memo` scope (an object to key per-call values by), ``None`` outside."""
    return _SCOPE.get()


def _memo_stamp(t: torch.Tensor) -> tuple | None:
    """What identifies ``t``'s current contents, or ``None`` when they could change unseen."""
    try:
        if t.requires_grad:
            return None
        stamp = (t._version, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t.device)
        if t.untyped_storage().resizable():
            return stamp
        # not resizable: memory torch does not own (torch.from_numpy, DLPack), which can be written
        # without bumping the version counter: remembered within a call_memo block only
        scope = _SCOPE.get()
        return None if scope is None else (scope, *stamp)
    except (RuntimeError, NotImplementedError, TypeError):  # inference tensors, tensor subclasses, ...
        return None


def _memo_forget(key: int) -> None:
    with _memo_lock:
        _memo.pop(key, None)


def memo_lookup(t: torch.Tensor, key: Any) -> Any:
    """The value stored by :func:`memo_store` for ``(t, key)`` while ``t`` is unmodified, else ``None``."""
    stamp = _memo_stamp(t)
    if stamp is None:
        return None
    with _memo_lock:
        entry = _memo.get(id(t))
        if entry is not None and entry[0]() is t and entry[1] == stamp:
            _memo.move_to_end(id(t))
            return entry[2].get(key)
    return None


def memo_store(t: torch.Tensor, key: Any, value: Any) -> None:
    """Remember ``value`` for ``(t, key)`` (see :func:`tensor_memo`); a no-op for tensors not memoised."""
    stamp = _memo_stamp(t)
    if stamp is None:
        return
    ident = id(t)
    with _memo_lock:
        entry = _memo.get(ident)
        if entry is None or entry[0]() is not t or entry[1] != stamp:
            entry = (weakref.ref(t, lambda _ref, k=ident: _memo_forget(k)), stamp, {})
            _memo[ident] = entry
        entry[2][key] = value
        _memo.move_to_end(ident)
        while len(_memo) > MEMO_MAX_TENSORS:
            _memo.popitem(last=False)


def tensor_memo(t: torch.Tensor, key: Any, compute: Callable[[torch.Tensor], Any],
                keep: Callable[[Any], bool] | None = None) -> Any:
    """``compute(t)``, remembered while ``t`` is alive and unmodified (e.g. a target's sums).

    "Unmodified" is torch's own notion, the one autograd uses for saved tensors: same version counter
    (bumped by every in-place operation on ``t`` or a view of it), data pointer, shape, strides, dtype
    and device. Only tensors whose memory torch owns are memoised (not ``torch.from_numpy`` ones,
    which numpy could change unseen), nor tensors that require grad; writes through ``.data`` or
    ``.numpy()`` views bypass the version counter and must not be made to a memoised tensor.
    ``keep(value)`` decides whether a value may be stored (default: always); ``None`` is never
    stored. Callers that hand out a memoised tensor must return a copy if the receiver could modify
    it in place.
    """
    value = memo_lookup(t, key)
    if value is not None:
        return value
    value = compute(t)
    if value is not None and (keep is None or keep(value)):
        memo_store(t, key, value)
    return value


def one_hot(labels, num_classes: int | None = None, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Integer label map ``(B, *spatial)`` -> one-hot ``(B, C, *spatial)`` float tensor.

    ``num_classes`` defaults to ``max(label) + 1`` (at least 2). Negative labels or labels
    ``>= num_classes`` raise ``ValueError``.
    """
    lab = as_tensor(labels)
    if lab.ndim >= 1:  # before any scan or allocation (the count is re-checked once C is known)
        check_elements(lab.shape[1:], max(2, num_classes or 2), what="one_hot", batch=lab.shape[0])
    if lab.is_floating_point():
        if not torch.equal(lab, lab.round()):
            raise ValueError("label map must hold integers, got fractional values")
    lab = lab.long()
    if lab.numel() and lab.min() < 0:
        raise ValueError("label map holds negative labels")
    top = int(lab.max()) + 1 if lab.numel() else 1
    if num_classes is None:
        num_classes = max(2, top)
    if top > num_classes:
        raise ValueError(f"label {top - 1} does not fit num_classes={num_classes}")
    if lab.ndim >= 1:
        check_elements(lab.shape[1:], num_classes, what="one_hot", batch=lab.shape[0])
    out = torch.zeros((lab.shape[0], num_classes, *lab.shape[1:]), dtype=dtype, device=lab.device)
    out.scatter_(1, lab.unsqueeze(1), 1)
    return out


def to_probs(logits) -> torch.Tensor:
    """Softmax over the channel axis (dim 1): logits ``(B, C, *spatial)`` -> probabilities."""
    return torch.softmax(as_tensor(logits), dim=1)


def binary_probs(foreground) -> torch.Tensor:
    """Foreground probability map ``(B, *spatial)`` -> two-channel probabilities ``(B, 2, *spatial)``."""
    p = as_tensor(foreground)
    if not p.is_floating_point():
        p = p.to(torch.get_default_dtype())
    return torch.stack([1 - p, p], dim=1)


def safe_log(p: torch.Tensor) -> torch.Tensor:
    """``log(clamp(p, EPS))``: finite for hard 0/1 predictions."""
    return torch.log(p.clamp_min(EPS))


def clamped_log(p: torch.Tensor) -> torch.Tensor:
    r"""``log(max(p, EPS))`` whose gradient is ``1 / max(p, EPS)`` everywhere (the clamp passes gradients).

    The value is ``safe_log``'s. A plain clamp has zero gradient below ``EPS``, so a hard *wrong*
    pixel (true-class probability 0, or ``softmax(log(clamp(p)))`` just below ``EPS``) would get no
    CE gradient at all; here it keeps CE's push, finite (at most ``1/EPS``), and the logit gradient
    of CE stays :math:`(s - g)/N` (up to a relative ``(C-1)\,EPS``). First-order only (the second
    derivative is not that of the log).
    """
    clamped = p.detach().clamp_min(EPS)
    if not (p.requires_grad and torch.is_grad_enabled()):  # same value, 3 fewer passes (no graph needed)
        return torch.log(clamped)
    return torch.log(clamped) + (p - p.detach()) / clamped


def spatial_dims(t: torch.Tensor) -> tuple[int, ...]:
    """Axes after (B, C)."""
    return tuple(range(2, t.ndim))


def reduce_samples(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a ``(B,)`` vector of per-sample losses: ``"mean"`` | ``"sum"`` | ``"none"``."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
