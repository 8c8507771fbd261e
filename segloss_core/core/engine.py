r"""The one evaluation engine: a set of registered losses on one batch of predictions.

Every caller that scores several losses goes through here: ``compute_all`` / ``losses_and_grads``
(the Playground, the CLI, the gradients page), the landscapes, the bias and agreement sweeps and
the what-if training page. What a caller needs to know about a loss is in its
:class:`~segloss_core.core.spec.LossSpec`; nothing here names a loss.

How the work is shared (same numbers as each loss's own function, in float64 to round-off):

- **Region losses** (``LossSpec.from_stats``) read one
  :class:`~segloss_core.core.stats.SoftConfusion` per ``soft_label`` setting. When one target serves a
  whole batch (a ``(1, C, ...)`` target), ``TP`` and ``sum p`` are one matrix product with the
  target's weights, which are computed once per target tensor.
- **Pixel-mean losses** (``LossSpec.pixel_mean``) read a :class:`PixelView`: the true-class
  probability and its clamped log are computed once per batch for every loss that reads them, and
  ground-truth distance maps once per target tensor. Used for hard one-hot targets without
  gradients (float32 / float64).
- Every other loss runs its function with ``reduction="none"`` (or the requested reduction).

Conventions:
    - ``reduction="none"``: ``(B,)``, each sample's loss as if it were evaluated alone (a
      ``batch=True`` parameter then changes nothing); ``"mean"`` / ``"sum"``: the loss's own
      reduced value (batch pooling applies).
    - A loss that is undefined here (``ValueError`` from its function, or ``binary_only`` with
      C > 2) maps to ``"n/a: reason"``; ``on_error="raise"`` re-raises instead.
    - ``target`` may be ``(1, C, ...)`` for a batch ``(B, C, ...)`` of predictions: it is
      broadcast.

>>> import torch, segloss_core as sc
>>> from segloss_core.core.engine import evaluate
>>> lab = torch.zeros(3, 8, 8, dtype=torch.long); lab[:, 2:6, 2:6] = 1
>>> target = sc.one_hot(lab, 2, dtype=torch.float64)
>>> probs = 0.8 * target + 0.1
>>> out = evaluate(["ce", "dice", "lovasz_hinge"], probs, target)
>>> tuple(out["dice"].shape), out["ce"].dtype
((3,), torch.float64)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ._tensors import EPS, call_memo, check_pair, reduce_samples, safe_log, tensor_memo, trusted
from .registry import LossSpec, get_loss, list_losses
from .spec import BoundLoss
from .stats import SoftConfusion, soft_confusion

Value = torch.Tensor | str
Progress = Callable[[float, str], None]

#: Floats per chunk when a long family of predictions is evaluated (:func:`evaluate_batches`): 2 MB
#: of float32, so a loss's temporaries stay in cache and are recycled by the allocator.
CHUNK_ELEMENTS = 1 << 19


def binary_only_reason(name: str) -> str:
    """The one-line reason a ``binary_only`` loss gives for C > 2."""
    return f"{name} is defined for binary segmentation only (C = 2)"


def target_reason(spec, target: torch.Tensor) -> str | None:
    """Why ``spec`` cannot be evaluated against ``target`` (a ``hard_targets_only`` loss and a target
    that is not one-hot: :data:`~segloss_core.core.spec.HARD_TARGETS_ONLY`), or ``None``. The one check
    shared by the registry's ``compute`` and every :class:`Plan`."""
    from .spec import HARD_TARGETS_ONLY

    if spec.hard_targets_only and not is_one_hot(target):
        return HARD_TARGETS_ONLY
    return None


class Extend(Protocol):
    """What lies outside the evaluated crop (see :mod:`segloss_core.analyses.landscape`): a caller that
    evaluates a crop adds the unchanged rest of the image back in."""

    def conf(self, soft_label: bool, conf: SoftConfusion) -> SoftConfusion: ...

    def pixel(self, name: str, value: torch.Tensor) -> torch.Tensor: ...


# ----------------------------------------------------------------------------------------------
# shared statistics
# ----------------------------------------------------------------------------------------------


def _weights(target_one: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W^T (C + 1, N) = [g; 1], sum g (1, C), sum g^2 (1, C))`` of a ``(1, C, ...)`` target.

    Stored row-major as ``(C + 1, N)`` and used as ``flat @ W^T.t()``: that "NT" product is about
    4x faster on the CPU than the same product with a contiguous ``(N, C + 1)`` matrix."""
    C = target_one.shape[1]
    flat = target_one.reshape(C, -1)
    ones = torch.ones(1, flat.shape[1], dtype=flat.dtype, device=flat.device)
    return torch.cat([flat, ones], 0).contiguous(), flat.sum(1), (flat * flat).sum(1)


#: Largest image (pixels) whose confusion sums go through the matrix product: a float32 GEMM adds
#: its blocks' partial sums one after another, so its error grows with the image: TP off by 5e-7
#: (relative) at 256^2, 2e-6 at 512^2, 2.5e-4 on a 200^3 volume (Dice losses off by 0.4 %),
#: where :func:`~segloss_core.core.stats.soft_confusion`'s (pairwise) sums stay within 1e-7. Larger
#: images take the sums, and so does a single float32 prediction (the Playground's table then
#: equals ``segloss_core.compute``; a small Dice loss amplifies a 5e-7 TP error to 4e-5).
MATMUL_MAX_PIXELS = 1 << 17


def shared_confusion(probs: torch.Tensor, target: torch.Tensor, soft_label: bool) -> SoftConfusion:
    """:func:`~segloss_core.core.stats.soft_confusion` of ``probs`` against ``target``; with one
    ``(1, C, ...)`` target for a batch of ``m`` predictions (no gradient, hard-label TP; the same
    path for every ``m``, so chunking does not change a result),
    ``TP`` and ``sum p`` are one matrix product ``(mC, N) @ (N, C + 1)`` with the target's
    weights, remembered per target tensor. Same sums, same ``SoftConfusion``."""
    m, C = probs.shape[:2]
    if (target.shape[0] != 1 or soft_label or torch.is_grad_enabled() and probs.requires_grad
            or probs[0, 0].numel() > MATMUL_MAX_PIXELS or m == 1 and probs.dtype != torch.float64):
        return soft_confusion(probs, _batch_target(target, m), soft_label=soft_label)
    weights_t, target_sum, target_sq = tensor_memo(target, "engine.weights_t", _weights)
    flat = probs.reshape(m * C, -1)
    prod = (flat @ weights_t.t()).view(m, C, C + 1)
    classes = torch.arange(C, device=probs.device)
    pred_sq = lambda: torch.linalg.vecdot(flat, flat).view(m, C)  # noqa: E731 (lazy: rarely read)
    return SoftConfusion(prod[:, classes, classes], prod[:, :, C], target_sum.expand(m, C), pred_sq,
                         target_sq.expand(m, C), flat.shape[1])


def _is_one_hot(target: torch.Tensor) -> bool:
    if not target.is_floating_point():
        return False
    zero_one = bool(((target == 0) | (target == 1)).all())
    return zero_one and bool((target.sum(1) == 1).all())


def is_one_hot(target: torch.Tensor) -> bool:
    """Every pixel's target is exactly one class (0/1 values summing to 1); remembered per tensor."""
    return bool(tensor_memo(target, "engine.one_hot", _is_one_hot))


class PixelView:
    r"""Per-pixel quantities of predictions ``(m, C, *spatial)`` against HARD one-hot targets
    ``(1 or m, C, *spatial)``, computed on first use and shared by every ``pixel_mean`` form.

    With a one-hot target, :math:`-\sum_c w_c f(s_c) g_c \log\max(s_c,\epsilon)` is the true
    class's term (the other classes' terms are exact zeros), so the true-class probability
    :math:`s_t` and its clamped log are computed once (one log per pixel instead of one per pixel
    and class, in each loss). Target-only quantities (labels, distance maps) are remembered per
    target tensor (:func:`~segloss_core.core._tensors.tensor_memo`).
    """

    def __init__(self, probs: torch.Tensor, target: torch.Tensor):
        self.probs, self.target = probs, target
        self.num_classes = probs.shape[1]
        self.n_pixels = probs[0, 0].numel()
        self._true: tuple[torch.Tensor, torch.Tensor] | None = None

    def labels(self) -> torch.Tensor:
        """The target's class per pixel ``(1 or m, N)``."""
        t = self.target
        return tensor_memo(t, "engine.labels", lambda x: x.argmax(1).reshape(x.shape[0], -1))

    def true_class(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s_t, log max(s_t, EPS))``, each ``(m, N)``."""
        if self._true is None:
            m, C = self.probs.shape[:2]
            flat = self.probs.reshape(m, C, -1)
            if C == 2:
                # lerp with 0/1 weights returns either end exactly; ~10x faster than torch.where here
                g1 = self.target.reshape(self.target.shape[0], C, -1)[:, 1]
                p_true = torch.lerp(flat[:, 0], flat[:, 1], g1)
            else:
                p_true = (flat * self.target.reshape(self.target.shape[0], C, -1)).sum(1)
            self._true = (p_true, p_true.clamp_min(EPS).log_())
        return self._true

    def class_weight(self, values, what: str) -> torch.Tensor | None:
        """Per-class numbers (validated as the losses do) -> the true class's number per pixel."""
        from .losses.distribution import class_vector

        vec = class_vector(values, self.num_classes, what, self.probs)
        return None if vec is None else vec.reshape(self.num_classes)[self.labels()]

    def signed_distance(self, first: int, spacing=None) -> torch.Tensor:
        """:func:`segloss_core.core.distance.signed_distance_map` of target channels ``first..C-1``,
        flattened to ``(1 or m, C - first, N)`` in the predictions' dtype and device."""
        from .distance import signed_distance_map

        def compute(t: torch.Tensor) -> torch.Tensor:
            g = t[:, first:]
            phi = signed_distance_map(g, spacing, dtype=self.probs.dtype).to(self.probs.device)
            return phi.reshape(g.shape[0], g.shape[1], -1)

        key = ("engine.sdf", first, _spacing_key(spacing), self.probs.dtype, str(self.probs.device))
        return tensor_memo(self.target, key, compute)


def _spacing_key(spacing) -> Any:
    if spacing is None or isinstance(spacing, (int, float)):
        return spacing
    return tuple(float(s) for s in np.ravel(spacing))


# ----------------------------------------------------------------------------------------------
# the plan: resolved losses, evaluated on batches
# ----------------------------------------------------------------------------------------------


class Plan:
    """Losses resolved once (parameters validated, bad ones become reasons) and evaluated on any
    number of batches with :meth:`evaluate`.

    ``params``: ``{loss: {param: value}}``; ``spacing`` is passed to losses with ``uses_spacing``;
    ``num_classes``, when known, marks ``binary_only`` losses unavailable up front.
    """

    def __init__(self, names: Sequence[str], params: dict[str, dict[str, Any]] | None = None, *,
                 spacing=None, num_classes: int | None = None, on_error: str = "reason"):
        if on_error not in ("reason", "raise"):
            raise ValueError(f"on_error must be 'reason' or 'raise', got {on_error!r}")
        params = params or {}
        self.names = list(names)
        self.spacing, self.on_error = spacing, on_error
        self.specs = {name: get_loss(name) for name in self.names}
        self.bound: dict[str, BoundLoss] = {}
        self.unavailable: dict[str, str] = {}
        for name, spec in self.specs.items():
            try:
                self.bound[name] = spec.bind(params.get(name), spacing=spacing)
            except ValueError as err:
                self._fail(name, err)
        if num_classes is not None:
            self.check_classes(num_classes)

    def _fail(self, name: str, err: Exception | str) -> None:
        if self.on_error == "raise":
            raise err if isinstance(err, Exception) else ValueError(err)
        self.unavailable[name] = f"n/a: {err}"

    def check_classes(self, num_classes: int) -> None:
        """Mark ``binary_only`` losses unavailable (with the reason) when ``num_classes > 2``."""
        for name, spec in self.specs.items():
            if spec.binary_only and num_classes > 2 and name not in self.unavailable:
                self._fail(name, binary_only_reason(name))

    def check_targets(self, target: torch.Tensor) -> None:
        """Mark losses undefined for ``target`` (soft targets for ``hard_targets_only``) unavailable."""
        for name in self.available:
            reason = target_reason(self.specs[name], target)
            if reason is not None:
                self._fail(name, reason)

    @property
    def resolved(self) -> dict[str, dict[str, Any]]:
        """``{name: parameters in force}`` of the losses whose parameters are valid."""
        return {name: bound.params for name, bound in self.bound.items()}

    @property
    def available(self) -> list[str]:
        """The requested loss names not (yet) marked unavailable, in request order."""
        return [n for n in self.names if n not in self.unavailable]

    def kwargs(self, name: str) -> dict[str, Any]:
        """The bound keyword arguments of ``name``'s function (parameters, plus spacing if used)."""
        return self.bound[name].kwargs

    def call(self, name: str, probs: torch.Tensor, target: torch.Tensor, reduction: str = "none") -> torch.Tensor:
        """``name``'s own function with its bound arguments, differentiable (nothing shared, the
        graph kept: for training loops); an unavailable loss raises ``ValueError`` with its reason."""
        if name not in self.unavailable and self.specs[name].binary_only and probs.shape[1] > 2:
            raise ValueError(binary_only_reason(name))
        reason = self.unavailable.get(name) or target_reason(self.specs[name], target)
        if reason is not None:
            raise ValueError(reason.removeprefix("n/a: "))
        with trusted():  # tensors built valid by the training loop
            return self.bound[name](probs, _batch_target(target, probs.shape[0]), reduction=reduction)

    def pixel_form(self, name: str) -> bool:
        """Whether ``name`` is a pixel mean (``LossSpec.pixel_mean``): crop-separable."""
        return self.specs[name].pixel_mean is not None

    def evaluate(self, probs: torch.Tensor, target: torch.Tensor, *, reduction: str = "none",
                 names: Sequence[str] | None = None, extend: Extend | None = None) -> dict[str, Value]:
        """``{name: value}`` on one validated batch (values detached): ``(B,)`` for
        ``reduction="none"``, 0-dim otherwise; unavailable losses map to their reason. Losses that
        fail here are remembered as unavailable for later batches."""
        reduce_samples(torch.zeros(1), reduction)  # checks the name
        self.check_classes(probs.shape[1])
        self.check_targets(target)
        confs: dict[bool, SoftConfusion] = {}
        pixels: PixelView | None = None
        out: dict[str, Value] = {}
        with torch.no_grad(), trusted(), call_memo():  # the prediction's shared terms, for this call only
            for name in self.names if names is None else names:
                if name in self.unavailable:
                    out[name] = self.unavailable[name]
                    continue
                spec, kw = self.specs[name], self.bound[name].kwargs
                try:
                    if spec.from_stats is not None:
                        value = self._from_stats(spec, kw, probs, target, reduction, confs, extend)
                    else:
                        if spec.pixel_mean is not None and pixels is None and _pixel_ready(probs, target):
                            pixels = PixelView(probs, target)
                        value = self._direct(name, kw, probs, target, reduction, pixels, extend)
                except ValueError as err:
                    self._fail(name, err)
                    out[name] = self.unavailable[name]
                    continue
                out[name] = value.detach()
        return out

    def _from_stats(self, spec, kw, probs, target, reduction, confs, extend) -> torch.Tensor:
        soft_label = bool(kw.get("soft_label", False))
        if soft_label not in confs:
            conf = shared_confusion(probs, target, soft_label)
            confs[soft_label] = conf if extend is None else extend.conf(soft_label, conf)
        if "batch" in kw:  # reduction="none" is always per sample (as the functions do)
            kw["batch"] = kw["batch"] and reduction != "none"
        return reduce_samples(spec.from_stats(confs[soft_label], **kw), reduction)

    def _direct(self, name, kw, probs, target, reduction, pixels, extend) -> torch.Tensor:
        spec = self.specs[name]
        if extend is not None and spec.pixel_mean is not None:  # the crop's share, then the rest added
            return reduce_samples(extend.pixel(name, self._per_sample(name, kw, probs, target, pixels)), reduction)
        if reduction == "none":
            return self._per_sample(name, kw, probs, target, pixels)
        return spec.fn(probs, _batch_target(target, probs.shape[0]), reduction=reduction, **kw)

    def _per_sample(self, name, kw, probs, target, pixels) -> torch.Tensor:
        spec = self.specs[name]
        if pixels is not None and spec.pixel_mean is not None:
            return spec.pixel_mean(pixels, **kw)
        return spec.fn(probs, _batch_target(target, probs.shape[0]), reduction="none", **kw)


def _pixel_ready(probs: torch.Tensor, target: torch.Tensor) -> bool:
    return probs.dtype in (torch.float32, torch.float64) and target.dtype == probs.dtype and is_one_hot(target)


def _batch_target(target: torch.Tensor, m: int) -> torch.Tensor:
    """``target`` with batch ``m`` (a ``(1, C, ...)`` target broadcast; a contiguous copy is kept
    per target tensor and batch size, so losses that reshape it do not copy it every time)."""
    if target.shape[0] == m:
        return target
    return tensor_memo(target, ("engine.expand", m),
                       lambda t: t.expand(m, *t.shape[1:]).contiguous())


# ----------------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------------


def evaluate(
    names: Sequence[str],
    probs,
    target,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    spacing=None,
    reduction: str = "none",
    grad: str | None = None,
    on_error: str = "reason",
    validate: bool = True,
) -> dict[str, Any]:
    """Several registered losses on one batch: ``{name: value}``.

    Args:
        names: registry names (unknown names raise ``ValueError``).
        probs: ``(B, C, *spatial)`` probabilities.
        target: one-hot (or soft) target of the same shape, or ``(1, C, *spatial)`` for all samples.
        params: ``{loss: {param: value}}`` overrides.
        spacing: voxel size, for losses with ``uses_spacing``.
        reduction: ``"none"`` (per-sample ``(B,)``), ``"mean"`` or ``"sum"``.
        grad: ``None``; or ``"probs"`` / ``"logits"``: each value is then ``(value, gradient)``
            with the gradient shaped like ``probs`` (see :func:`segloss_core.loss_and_grad`).
        on_error: ``"reason"`` (an undefined loss maps to ``"n/a: reason"``) or ``"raise"``.
        validate: check the pair (:func:`segloss_core.core._tensors.check_pair`); ``False`` for
            tensors built valid by the caller.
    """
    if grad not in (None, "probs", "logits"):
        raise ValueError(f"wrt must be 'probs' or 'logits', got {grad!r}")
    reduce_samples(torch.zeros(1), reduction)
    if validate:
        probs, target = _validated(probs, target)
    plan = Plan(names, params, spacing=spacing, num_classes=probs.shape[1], on_error=on_error)
    if grad is None:
        return plan.evaluate(probs, target, reduction=reduction)
    return _with_grads(plan, probs, _batch_target(target, probs.shape[0]), reduction, grad)


def _validated(probs, target) -> tuple[torch.Tensor, torch.Tensor]:
    from ._tensors import as_tensor

    probs, target = as_tensor(probs), as_tensor(target)
    if target.ndim == probs.ndim and target.shape[0] == 1 and probs.shape[0] > 1:
        probs, _ = check_pair(probs, target.expand(probs.shape[0], *target.shape[1:]))
        return probs, target.to(device=probs.device, dtype=probs.dtype)
    return check_pair(probs, target)


def _with_grads(plan: Plan, probs: torch.Tensor, target: torch.Tensor, reduction: str, wrt: str) -> dict[str, Any]:
    """One leaf, one graph per loss (each loss's own function, so its own backward)."""
    plan.check_targets(target)
    if wrt == "probs":
        leaf = probs.detach().clone().requires_grad_(True)
        x = leaf
    else:
        leaf = safe_log(probs.detach()).requires_grad_(True)
        x = torch.softmax(leaf, dim=1)
    out: dict[str, Any] = {}
    for name in plan.names:
        if name in plan.unavailable:
            out[name] = plan.unavailable[name]
            continue
        try:
            with trusted():
                value = plan.bound[name](x, target, reduction)
            total = value.sum() if reduction == "none" else value
            (g,) = torch.autograd.grad(total, leaf, retain_graph=True, allow_unused=True)
        except ValueError as err:
            plan._fail(name, err)
            out[name] = plan.unavailable[name]
            continue
        out[name] = (value.detach(), torch.zeros_like(leaf) if g is None else g.detach())
    return out


def evaluate_batches(
    batch: int,
    make_chunk: Callable[[int, int], torch.Tensor],
    target: torch.Tensor | Callable[[int, int], torch.Tensor],
    names: Sequence[str],
    *,
    params: dict[str, dict[str, Any]] | None = None,
    spacing=None,
    progress: Progress | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> dict[str, np.ndarray | str]:
    """Per-sample values (float64 numpy ``(batch,)``) of several losses on a family of
    ``batch`` predictions made chunk by chunk: ``make_chunk(lo, hi)`` returns predictions
    ``lo..hi-1`` (so the family never has to exist in memory at once), at most
    ``chunk_elements`` floats each. ``target``: one ``(1, C, ...)`` target for all, a full
    batch, or a callable like ``make_chunk``. Undefined losses map to ``"n/a: reason"``."""
    plan = Plan(names, params, spacing=spacing)
    step = max(1, chunk_elements // max(1, make_chunk(0, 1)[0].numel()))
    chunks = [(i, min(i + step, batch)) for i in range(0, batch, step)]
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in plan.names}
    for done, (lo, hi) in enumerate(chunks, start=1):
        p = make_chunk(lo, hi)
        if callable(target):
            g = target(lo, hi)
        else:
            g = target if target.shape[0] == 1 else target[lo:hi]
        for name, value in plan.evaluate(p, g, names=plan.available).items():
            if not isinstance(value, str):
                parts[name].append(value.reshape(-1).double().cpu())
        if progress is not None:
            progress(done / len(chunks), f"{hi} of {batch} predictions")
    return {name: plan.unavailable[name] if name in plan.unavailable else torch.cat(parts[name]).numpy()
            for name in plan.names}


# ----------------------------------------------------------------------------------------------
# the public API (``segloss_core.compute`` ...)
# ----------------------------------------------------------------------------------------------


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        reduce_samples(torch.zeros(1), reduction)  # raises reduce_samples' own message


def _call(spec: LossSpec, probs, target, reduction, params, spacing):
    bound = spec.bind(params, spacing=spacing)
    reason = target_reason(spec, target)
    if reason is not None:
        raise ValueError(reason)
    return bound(probs, target, reduction)


def compute(name: str, probs, target, reduction: str = "mean", *, spacing=None, **params) -> torch.Tensor:
    """Value of loss ``name`` at ``probs`` (B, C, *spatial) against one-hot ``target``.

    ``reduction="mean"`` (0-dim), ``"sum"``, or ``"none"``: shape ``(B,)``, each sample's loss as
    if it were evaluated alone (for batch-pooled settings such as ``batch=True``, ``topk`` or
    ``lovasz_softmax(per_image=False)`` the mean of these differs from the pooled value).
    """
    spec = get_loss(name)
    probs, target = check_pair(probs, target)
    _check_reduction(reduction)
    with trusted():
        return _call(spec, probs, target, reduction, params, spacing)


def loss_and_grad(
    name: str, probs, target, wrt: str = "probs", reduction: str = "mean", *, spacing=None, **params
) -> tuple[float, torch.Tensor]:
    """Loss value and its gradient, same shape as ``probs``.

    ``wrt="probs"``: d loss / d probs at the given probabilities.
    ``wrt="logits"``: d loss / d z with ``z = log(clamp(probs, EPS))``, the loss evaluated at
    ``softmax(z)`` (equal to ``probs`` except where probs < EPS), so hard 0/1 predictions have
    finite logit gradients; CE's is ``(softmax(z) - g) / N``.
    """
    out = losses_and_grads([name], probs, target, wrt=wrt, reduction=reduction, spacing=spacing,
                           params={name: params}, raise_errors=True)
    return out[name]


def losses_and_grads(
    names: Sequence[str],
    probs,
    target,
    wrt: str = "probs",
    reduction: str = "mean",
    *,
    spacing=None,
    params: dict[str, dict[str, Any]] | None = None,
    raise_errors: bool = False,
) -> dict[str, tuple[float, torch.Tensor] | str]:
    """``loss_and_grad`` for several losses on one validated input (one leaf, one graph per loss).

    With ``raise_errors=False`` a loss that is undefined here (e.g. ``lovasz_hinge`` for C > 2)
    maps to a one-line reason string instead of a ``(value, grad)`` pair.
    """
    if wrt not in ("probs", "logits"):
        raise ValueError(f"wrt must be 'probs' or 'logits', got {wrt!r}")
    probs, target = check_pair(probs, target)
    _check_reduction(reduction)
    out = evaluate(names, probs, target, params=params, spacing=spacing, reduction=reduction, grad=wrt,
                   on_error="raise" if raise_errors else "reason", validate=False)
    return {name: v.removeprefix("n/a: ") if isinstance(v, str) else (float(v[0].sum()), v[1])
            for name, v in out.items()}


def compute_all(
    probs,
    target,
    names: Sequence[str] | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    spacing=None,
    reduction: str = "mean",
) -> dict[str, float | list[float] | str]:
    """Every registered loss (or ``names``) at once: ``{name: value}`` or ``{name: "n/a: reason"}``.

    ``reduction="none"`` gives each loss's per-sample values as a list of ``B`` floats. Shared work
    (one soft TP/FP/FN table per ``soft_label`` setting, per-pixel terms) is done once:
    :mod:`segloss_core.core.engine`.
    """
    probs, target = check_pair(probs, target)
    _check_reduction(reduction)
    out = evaluate(names or list_losses(), probs, target, params=params, spacing=spacing, reduction=reduction,
                   validate=False)
    return {name: v if isinstance(v, str) else (v.tolist() if reduction == "none" else float(v))
            for name, v in out.items()}


__all__ = ["CHUNK_ELEMENTS", "Plan", "PixelView", "binary_only_reason", "compute", "compute_all", "evaluate",
           "evaluate_batches", "loss_and_grad", "losses_and_grads",
           "is_one_hot", "shared_confusion", "target_reason"]
