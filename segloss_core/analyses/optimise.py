r"""What-if training: gradient descent on the prediction itself, several losses from one start.

Each selected loss trains its own copy of the prediction, all copies starting from the same point:

- ``model="logits"``: a free logit field ``z`` of shape ``(C, H, W)``, ``s = softmax(z)``. Every
  pixel is its own parameter, so the result is the loss's optimum for the target itself.
- ``model="cnn"``: a tiny CNN (3x3 convolutions of dilation 1, 2, 4 with ReLU, then a 1x1 head; one
  seeded initialisation shared by every loss) fed with a blurred, noisy image of the case. It cannot
  tell pixels with the same input apart, which is where losses really disagree.

The copies are **batched**: the logit fields are one ``(L, C, H, W)`` leaf (the CNNs one set of
grouped convolutions, ``groups = L``), each loss is evaluated on its own slice, and one backward of
the sum updates them all. Loss ``i`` depends only on slice ``i``, so the gradient of the sum on slice
``i`` is exactly loss ``i``'s own gradient, and SGD / Adam act element-wise: the result is bit-for-bit
that of ``L`` separate runs.

Targets (``target=``) where the losses disagree (docs/theory.md, B1-B3):

- ``"clean"``: the case's ground truth (every loss converges to it; a sanity check);
- ``"soft_band"``: the pixels within ``band_width / 2`` px of the object's boundary (both sides)
  get the soft label ``pi`` for their object's class, ``1 - pi`` for the background;
- ``"random_band"``: the same band labelled at random, each pixel foreground with probability
  ``pi``, independently for each of ``annotators`` annotators (the loss is the mean over them);
- ``"label_noise"``: every pixel's label flipped with probability ``flip`` (to a random other
  class), independently per annotator;
- ``"soft_labels"``: the one-hot ground truth blurred by a Gaussian of ``soft_sigma`` px.

With free logits a single noisy annotation is simply memorised; averaging the loss over several
annotators (the same image labelled several times, as in a training set) is what makes a pixel's
label uncertain. On the band, CE's optimum is ``q = pi`` (B1), linear Dice's is 0 or 1 (B2), squared
Dice's is interior (B3): :func:`band_model` evaluates every selected loss, with its parameters,
on the case with the whole band set to one probability ``q`` and finds the minimiser (the "band
model" of the papers, on the actual image), and :func:`closed_forms` gives the papers' formulas.

Convention: free logits: each loss is multiplied by the pixel count ``N`` before the gradient, so
SGD's learning rate is per pixel (CE moves a logit by ``lr (s - g)`` per step); Adam does not
depend on that scale. CNN: the losses as they are (means). Everything is seeded (one
``torch.Generator`` per random stream, drawn on the CPU, so CPU and CUDA start identically) and runs
under ``torch.use_deterministic_algorithms``. Metrics compare the arg-max prediction with the
case's own (clean) ground truth.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage, optimize

from ..core._tensors import EPS, one_hot, resolve_device
from ..core.distance import signed_distance
from ..core.engine import Plan
from ..core.registry import get_loss
from ..core.stats import hard_counts
from ..data.case import Case
from ..data.perturb import channel_argmax

DEFAULT_LOSSES = ("ce", "dice", "dice_ce", "region_size")
MODELS = {"logits": "free logit field", "cnn": "tiny CNN on a noisy image"}
OPTIMISERS = {"adam": "Adam", "sgd": "SGD"}
STARTS = {"uniform": "uniform (1/C everywhere)", "prediction": "the case's prediction", "noise": "random logits"}
TARGETS = {
    "clean": "clean ground truth",
    "soft_band": "ambiguous band, soft labels",
    "random_band": "ambiguous band, random labels",
    "label_noise": "label noise",
    "soft_labels": "soft (blurred) labels",
}
BAND_TARGETS = ("soft_band", "random_band")
#: Learning rates that converge in a few hundred steps, per (model, optimiser).
DEFAULT_LR = {("logits", "adam"): 0.1, ("logits", "sgd"): 1.0, ("cnn", "adam"): 0.01, ("cnn", "sgd"): 0.5}
MAX_LOSSES = 8
#: A band pixel counts as "undecided" while its foreground probability lies in this open interval.
UNDECIDED = (0.1, 0.9)
#: Floats per chunk when the band model evaluates many predictions at once.
CHUNK_ELEMENTS = 1 << 21

ProgressFn = Callable[[float, str], None]

_STREAM = {"start": 1, "target": 2, "cnn": 3, "image": 4}


# ----------------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Everything that defines one what-if training run (see the module docstring).

    ``lr=None`` takes :data:`DEFAULT_LR` for the model and optimiser. ``record_every=0`` records a
    frame every ``max(1, steps // 40)`` steps; ``metric_every=0`` computes HD95 on every
    ``max(1, frames // 10)``-th frame (and always on the last). ``max_side``: the case is reduced (area averaging) so that its
    longer side is at most this many pixels. ``params``: per-loss parameter overrides
    ``{loss: {param: value}}`` (registry defaults otherwise).
    """

    losses: tuple[str, ...] = DEFAULT_LOSSES
    model: str = "logits"
    optimiser: str = "adam"
    lr: float | None = None
    momentum: float = 0.0
    steps: int = 200
    start: str = "uniform"
    start_noise: float = 1.0
    target: str = "clean"
    pi: float = 0.3
    band_width: float = 6.0
    annotators: int = 4
    flip: float = 0.1
    soft_sigma: float = 2.0
    image_noise: float = 0.5
    image_blur: float = 1.0
    cnn_width: int = 8
    seed: int = 0
    record_every: int = 0
    metric_every: int = 0
    max_side: int = 128
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def learning_rate(self) -> float:
        return float(DEFAULT_LR[(self.model, self.optimiser)] if self.lr is None else self.lr)

    @property
    def n_annotators(self) -> int:
        """Label realisations the loss is averaged over (1 for the deterministic targets)."""
        return int(self.annotators) if self.target in ("random_band", "label_noise") else 1

    def key(self) -> str:
        """Canonical JSON of every setting: a cache key (with ``Case.digest()``)."""
        d = asdict(self)
        d["params"] = {k: dict(v) for k, v in sorted(self.params.items()) if v}
        return json.dumps(d, sort_keys=True, default=str)

    def frames(self) -> list[int]:
        """The recorded steps: ``0, k, 2k, ...`` and always the last step."""
        k = int(self.record_every) or max(1, int(self.steps) // 40)
        out = list(range(0, int(self.steps) + 1, k))
        if out[-1] != int(self.steps):
            out.append(int(self.steps))
        return out

    def validate(self) -> Settings:
        """Return ``self`` or raise ``ValueError`` with a one-line message."""
        if not self.losses:
            raise ValueError("choose at least one loss")
        if len(set(self.losses)) != len(self.losses):
            raise ValueError(f"each loss can be chosen once, got {list(self.losses)}")
        if len(self.losses) > MAX_LOSSES:
            raise ValueError(f"at most {MAX_LOSSES} losses at once, got {len(self.losses)}")
        for name in self.losses:
            get_loss(name)
        for name in self.params:
            if name in self.losses:
                get_loss(name).resolve_params(self.params[name])
        _choice("model", self.model, MODELS)
        _choice("optimiser", self.optimiser, OPTIMISERS)
        _choice("start", self.start, STARTS)
        _choice("target", self.target, TARGETS)
        _number("steps", self.steps, 1, 5000, integer=True)
        if self.lr is not None:
            _number("learning rate", self.lr, 1e-6, 1e4)
            if not self.lr > 0:
                raise ValueError(f"learning rate must be > 0, got {self.lr}")
        _number("momentum", self.momentum, 0.0, 0.99)
        _number("start noise", self.start_noise, 0.0, 20.0)
        _number("pi", self.pi, 0.0, 1.0)
        _number("band width", self.band_width, 1.0, 64.0)
        _number("annotators", self.annotators, 1, 64, integer=True)
        _number("flip rate", self.flip, 0.0, 0.5)
        _number("soft-label sigma", self.soft_sigma, 0.1, 32.0)
        _number("image noise", self.image_noise, 0.0, 10.0)
        _number("image blur", self.image_blur, 0.0, 16.0)
        _number("CNN width", self.cnn_width, 2, 64, integer=True)
        _number("seed", self.seed, 0, 2**31 - 1, integer=True)
        _number("record every", self.record_every, 0, 5000, integer=True)
        _number("metric every", self.metric_every, 0, 5000, integer=True)
        _number("max side", self.max_side, 8, 1024, integer=True)
        return self


def _choice(what: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"{what} must be one of {list(options)}, got {value!r}")


def _number(what: str, value, lo: float, hi: float, *, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not (lo <= value <= hi):
        raise ValueError(f"{what} must lie in [{lo:g}, {hi:g}], got {value!r}")


def _generator(seed: int, stream: str) -> torch.Generator:
    """An independent CPU generator per random stream (changing the target does not move the start)."""
    return torch.Generator().manual_seed(int(seed) * 16 + _STREAM[stream])


def _set_deterministic(mode: bool, *, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms`` without its first-call import of ``torch._inductor``
    (seconds here) when inductor is not loaded: its flag only concerns ``torch.compile``, which
    nothing here uses; the eager kernels read the ``torch._C`` flag set either way."""
    import sys

    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


@contextlib.contextmanager
def deterministic():
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` and deterministic cuDNN, restored
    on exit (cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG``, set here if absent)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    _set_deterministic(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        _set_deterministic(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]


# ----------------------------------------------------------------------------------------------
# the working case and the targets
# ----------------------------------------------------------------------------------------------


def training_case(case: Case, settings: Settings) -> Case:
    """What a run with ``settings`` reads of ``case``: the case itself when free logits start from
    its prediction, else :func:`~segloss_core.analyses.bias.ground_truth_case` (same GT, the prediction
    replaced by the GT), so that a cache keyed on it survives a change of the prediction alone.
    ``optimise`` gives the same trajectory on either."""
    from .bias import ground_truth_case

    if settings.model == "logits" and settings.start == "prediction":
        return case
    return ground_truth_case(case)


def working_sides(shape: Sequence[int], choices: Sequence[int], preferred: int) -> tuple[tuple[int, ...], int]:
    """The working resolutions (longer side, px) offered for a case of ``shape``: the ``choices``
    below its longer side, then the longer side itself (full resolution); and the default, the
    largest offered side not above ``preferred`` (the smallest offered side when all are above)."""
    side = int(max(shape))
    sides = tuple(int(s) for s in choices if s < side) + (side,)
    fitting = [s for s in sides if s <= preferred]
    return sides, (max(fitting) if fitting else sides[0])


def working_case(case: Case, max_side: int = 128) -> Case:
    """The 2-D case reduced so that its longer side is at most ``max_side`` px.

    Probabilities and the one-hot ground truth are area-averaged (``F.interpolate(mode="area")``);
    the reduced ground truth is the arg-max of the averaged one-hot (ties go to the lower class);
    the spacing grows by the reduction factor. A case already small enough is returned as is.
    """
    if case.ndim != 2:
        raise ValueError("what-if training works on 2-D cases: pick a slice of the volume first")
    h, w = case.gt.shape
    factor = max(h, w) / float(max_side)
    if factor <= 1:
        return case
    nh, nw = max(1, round(h / factor)), max(1, round(w / factor))
    c = case.num_classes
    onehot = one_hot(torch.from_numpy(case.gt)[None], c, dtype=torch.float32)
    gt = F.interpolate(onehot, size=(nh, nw), mode="area").argmax(1)[0].numpy()
    probs = F.interpolate(torch.from_numpy(case.probs)[None], size=(nh, nw), mode="area")[0]
    probs = (probs / probs.sum(0, keepdim=True)).numpy()
    spacing = (case.spacing[0] * h / nh, case.spacing[1] * w / nw)
    meta = dict(case.meta, reduced_from=(h, w))
    return Case(gt, probs, spacing, f"{case.name} ({nh}x{nw})", case.class_names, meta)


@dataclass(frozen=True)
class Targets:
    """The training targets: ``target`` ``(R, C, H, W)`` float32 (``R`` annotators), ``expected`` its
    mean over annotators ``(C, H, W)``, ``band`` the ambiguous band ``(H, W)`` (band targets only),
    ``band_class`` each band pixel's object class, ``disputed`` where the expected foreground
    probability is strictly between 0 and 1, and ``pi`` the band's effective foreground rate."""

    target: np.ndarray
    expected: np.ndarray
    band: np.ndarray | None
    band_class: np.ndarray | None
    disputed: np.ndarray
    pi: float | None
    note: str


def band_mask(gt: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels within ``width / 2`` px of the foreground / background boundary, both sides, and the
    object class each belongs to (its own inside, the nearest object pixel's outside).

    Distances are :func:`segloss_core.core.distance.signed_distance` with ``boundary="between"`` (half-way between pixel
    centres): a band pixel has :math:`|\\phi| < w/2`, so ``width=6`` is 3 px inside and 3 px outside.
    """
    fg = np.asarray(gt) > 0
    if not fg.any() or fg.all():
        raise ValueError("the ambiguous band needs an object and some background (this ground truth has "
                         + ("no object)" if not fg.any() else "no background)"))
    phi = signed_distance(fg, boundary="between")
    idx = ndimage.distance_transform_edt(~fg, return_distances=False, return_indices=True)
    band = np.abs(phi) < width / 2.0
    nearest = np.asarray(gt)[idx[0], idx[1]]
    cls = np.where(fg, gt, nearest).astype(np.int64)
    return band, cls


def make_targets(gt: np.ndarray, num_classes: int, settings: Settings) -> Targets:
    """The target of ``settings.target`` for the label map ``gt`` (seeded; see the module docstring)."""
    gt = np.asarray(gt, dtype=np.int64)
    c = int(num_classes)
    clean = one_hot(torch.from_numpy(gt)[None], c, dtype=torch.float32)[0].numpy()
    band = band_class = None
    pi = None
    kind = settings.target
    gen = _generator(settings.seed, "target")
    if kind == "clean":
        target = clean[None]
        note = "the case's ground truth"
    elif kind in BAND_TARGETS:
        band, band_class = band_mask(gt, settings.band_width)
        target = np.repeat(clean[None], settings.n_annotators, 0)
        bc = band_class[band]
        rows, cols = np.nonzero(band)
        if kind == "soft_band":
            target[:, :, rows, cols] = 0.0
            target[:, 0, rows, cols] = 1.0 - settings.pi
            target[:, bc, rows, cols] += settings.pi
            note = f"soft label {settings.pi:g} in the band"
        else:
            u = torch.rand((settings.n_annotators, band.sum()), generator=gen, dtype=torch.float64).numpy()
            is_fg = u < settings.pi
            target[:, :, rows, cols] = 0.0
            for r in range(settings.n_annotators):
                target[r, np.where(is_fg[r], bc, 0), rows, cols] = 1.0
            note = (f"band labelled foreground with probability {settings.pi:g} by each of "
                    f"{settings.n_annotators} annotator(s)")
        exp_fg = 1.0 - target[:, 0, rows, cols].mean(0)
        pi = float(exp_fg.mean())
    elif kind == "label_noise":
        r_ = settings.n_annotators
        flip = torch.rand((r_, *gt.shape), generator=gen, dtype=torch.float64).numpy() < settings.flip
        other = torch.randint(1, c, (r_, *gt.shape), generator=gen).numpy()
        labels = np.where(flip, (gt[None] + other) % c, gt[None])
        target = one_hot(torch.from_numpy(labels), c, dtype=torch.float32).numpy()
        note = f"each label flipped with probability {settings.flip:g}, {r_} annotator(s)"
    else:
        target = np.stack([ndimage.gaussian_filter(clean[k], settings.soft_sigma, mode="nearest")
                           for k in range(c)])
        target = np.clip(target, 0.0, 1.0)
        target = (target / target.sum(0, keepdims=True))[None]
        note = f"one-hot ground truth blurred by a Gaussian of sigma {settings.soft_sigma:g} px"
    target = np.ascontiguousarray(target, dtype=np.float32)
    expected = target.mean(0)
    efg = 1.0 - expected[0]
    disputed = (efg > 1e-3) & (efg < 1 - 1e-3)
    return Targets(target, expected, band, band_class, disputed, pi, note)


def cnn_input(gt: np.ndarray, num_classes: int, settings: Settings) -> np.ndarray:
    """The image the CNN sees: class ``k`` has intensity ``k / (C - 1)``, blurred by a Gaussian of
    ``image_blur`` px, plus seeded Gaussian noise of standard deviation ``image_noise``."""
    img = np.asarray(gt, dtype=np.float64) / max(1, int(num_classes) - 1)
    if settings.image_blur > 0:
        img = ndimage.gaussian_filter(img, settings.image_blur, mode="nearest")
    noise = torch.randn(img.shape, generator=_generator(settings.seed, "image"), dtype=torch.float64).numpy()
    return (img + settings.image_noise * noise).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------

#: Dilations of the CNN's 3x3 layers (receptive field 15 px), then a 1x1 head.
CNN_DILATIONS = (1, 2, 4)


def _cnn_init(n_copies: int, num_classes: int, width: int, gen: torch.Generator) -> list[torch.Tensor]:
    """He-uniform weights and zero biases of ONE network, tiled ``n_copies`` times for grouped convs."""
    shapes = [(width, 1, 3, 3)] + [(width, width, 3, 3)] * (len(CNN_DILATIONS) - 1) + [(num_classes, width, 1, 1)]
    params = []
    for i, shape in enumerate(shapes):
        fan_in = shape[1] * shape[2] * shape[3]
        bound = math.sqrt(6.0 / fan_in) if i < len(shapes) - 1 else math.sqrt(1.0 / fan_in)
        w = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        params.append(w.to(torch.float32).repeat(n_copies, 1, 1, 1))
        params.append(torch.zeros(shape[0] * n_copies))
    return params


def _cnn_forward(x: torch.Tensor, params: Sequence[torch.Tensor], n_copies: int, num_classes: int) -> torch.Tensor:
    """``x`` ``(1, 1, H, W)`` -> logits ``(L, C, H, W)``: every copy on its own group."""
    h = x.expand(1, n_copies, *x.shape[2:])
    for layer, d in enumerate(CNN_DILATIONS):
        h = torch.relu(F.conv2d(h, params[2 * layer], params[2 * layer + 1], padding=d, dilation=d,
                                groups=n_copies))
    out = F.conv2d(h, params[-2], params[-1], groups=n_copies)
    return out.view(n_copies, num_classes, *x.shape[2:])


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """What a run recorded. ``L`` losses (``names``), ``T`` frames at ``frame_steps``.

    - ``foreground`` ``(T, L, H, W)`` uint8: foreground probability ``1 - s_0`` times 255, rounded;
      ``labels`` ``(T, L, H, W)`` uint8: the arg-max.
    - ``loss`` ``(steps + 1, L)``: each loss's value at every step (before that step's update).
    - per frame ``(T, L)``: ``dice`` (mean over the ground truth's classes), ``size_ratio`` (arg-max
      foreground pixels / ground-truth foreground pixels), ``soft_ratio`` (sum of the foreground
      probability / ground-truth foreground pixels), ``band_q`` (mean foreground probability over
      the band; band targets), ``disputed_q`` / ``calibration`` / ``undecided`` (mean foreground
      probability and mean ``|q - g|`` against the expected target over the disputed pixels; with
      none disputed, ``calibration`` is over every pixel and ``disputed_q`` NaN), ``undecided``
      (share of foreground probabilities within :data:`UNDECIDED`, over the band for band targets,
      else over the disputed pixels, else NaN).
    - ``hd95`` ``(M, L)`` at the frames ``metric_frames`` (indices into ``frame_steps``), NaN where
      undefined (an empty prediction).
    - ``rows``: the final table; ``band``: the :class:`BandModel` (band targets), ``closed``: the
      papers' closed forms; ``unavailable``: losses undefined here, with the reason.
    """

    names: list[str]
    titles: dict[str, str]
    settings: Settings
    gt: np.ndarray
    class_names: tuple[str, ...]
    spacing: tuple[float, ...]
    targets: Targets
    image: np.ndarray | None
    frame_steps: np.ndarray
    foreground: np.ndarray
    labels: np.ndarray
    loss: np.ndarray
    dice: np.ndarray
    size_ratio: np.ndarray
    soft_ratio: np.ndarray
    band_q: np.ndarray | None
    disputed_q: np.ndarray
    calibration: np.ndarray
    undecided: np.ndarray
    metric_frames: np.ndarray
    hd95: np.ndarray
    rows: list[dict[str, Any]]
    band: BandModel | None
    closed: dict[str, float]
    unavailable: dict[str, str]
    device: str
    seconds: float
    reduced_from: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return int(len(self.frame_steps))

    def frame_of(self, step: int) -> int:
        """Index of the recorded frame at (or just before) ``step``."""
        return int(np.clip(np.searchsorted(self.frame_steps, step, side="right") - 1, 0, self.num_frames - 1))

    def frame_rows(self, frame: int) -> list[dict[str, Any]]:
        """One row per loss at recorded frame ``frame``: ``title``, ``loss`` (its value at that
        frame's step), ``dice``, ``size_ratio``, and ``band_q`` (band targets) or else, when some
        pixels are disputed, ``calibration`` (mean ``|q - g|`` over them)."""
        step = int(self.frame_steps[frame])
        rows = []
        for i, name in enumerate(self.names):
            row = {"title": self.titles[name], "loss": float(self.loss[step, i]),
                   "dice": float(self.dice[frame, i]), "size_ratio": float(self.size_ratio[frame, i])}
            if self.band_q is not None:
                row["band_q"] = float(self.band_q[frame, i])
            elif self.targets.disputed.any():
                row["calibration"] = float(self.calibration[frame, i])
            rows.append(row)
        return rows


@dataclass(frozen=True)
class _Evaluator:
    plan: Plan
    name: str

    def __call__(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over the annotators of the per-sample loss of ``probs`` ``(1, C, ...)`` or ``(Q, C, ...)``
        (each prediction is scored against every annotator's target) -> ``(Q,)``; differentiable."""
        q, r = probs.shape[0], target.shape[0]
        if r == 1:
            return self.plan.call(self.name, probs, target)
        p = probs.unsqueeze(1).expand(q, r, *probs.shape[1:]).reshape(q * r, *probs.shape[1:])
        t = target.unsqueeze(0).expand(q, r, *target.shape[1:]).reshape(q * r, *target.shape[1:])
        return self.plan.call(self.name, p, t).view(q, r).mean(1)


def _evaluators(names, params, spacing) -> dict[str, _Evaluator]:
    """One engine plan for the losses (bad parameters raise ``ValueError``)."""
    plan = Plan(names, params, spacing=spacing, on_error="raise")
    return {name: _Evaluator(plan, name) for name in plan.names}


def _frame_stats(probs: torch.Tensor, gt_onehot: torch.Tensor, gt_fg: torch.Tensor, present: torch.Tensor,
                 band: torch.Tensor | None, disputed: torch.Tensor, expected_fg: torch.Tensor) -> dict:
    """Per-loss numbers of one frame, all losses at once (``probs`` ``(L, C, H, W)``)."""
    labels = channel_argmax(probs)  # (L, H, W)
    gt_masks = gt_onehot[0, 1:].flatten(1) > 0.5  # (C - 1, N): the one-hot ground truth's classes
    inter, n_pred = (x.to(probs.dtype) for x in hard_counts(labels.flatten(1), gt_masks))
    sizes = n_pred + gt_masks.sum(1).to(probs.dtype)
    dice_c = torch.where(sizes > 0, 2 * inter / sizes.clamp_min(1), torch.zeros_like(sizes))
    n_present = present.sum()
    dice = (dice_c * present).sum(1) / n_present if n_present > 0 else torch.full_like(dice_c[:, 0], float("nan"))
    fg = 1.0 - probs[:, 0]
    g = gt_fg.sum()
    nan = torch.full_like(dice, float("nan"))
    size_ratio = (labels > 0).flatten(1).sum(1).to(probs.dtype) / g if g > 0 else nan
    soft_ratio = fg.flatten(1).sum(1) / g if g > 0 else nan
    out = {"fg": fg, "labels": labels, "dice": dice, "size_ratio": size_ratio, "soft_ratio": soft_ratio}
    lo, hi = UNDECIDED
    if disputed.any():
        q = fg[:, disputed]
        out["disputed_q"] = q.mean(1)
        out["calibration"] = (q - expected_fg[disputed]).abs().mean(1)
        out["undecided"] = ((q > lo) & (q < hi)).to(probs.dtype).mean(1)
    else:  # nothing disputed (clean target, one annotator): the calibration over every pixel
        out["calibration"] = (fg - expected_fg).abs().flatten(1).mean(1)
        out["disputed_q"] = out["undecided"] = nan
    if band is not None:  # on the band the share of undecided pixels is over the whole band
        qb = fg[:, band]
        out["band_q"] = qb.mean(1)
        out["undecided"] = ((qb > lo) & (qb < hi)).to(probs.dtype).mean(1)
    return out


def optimise(
    case: Case,
    settings: Settings | None = None,
    *,
    device: str | torch.device = "auto",
    progress: ProgressFn | None = None,
    band_model_points: int = 41,
) -> Trajectory:
    """Train one prediction per loss from the same start and record the trajectories.

    Args:
        case: a 2-D :class:`~segloss_core.Case` (reduced to ``settings.max_side``).
        settings: a :class:`Settings` (defaults: the four default losses, free logits, Adam,
            200 steps, uniform start, clean target).
        device: ``"auto"`` = CUDA when available.
        progress: ``progress(fraction, message)`` called during the run.
        band_model_points: grid size of the band model's scan over ``q`` (band targets; 0 = skip).

    Returns:
        a :class:`Trajectory`. Losses undefined on this case (e.g. binary-only ones on a
        multi-class case) are listed in ``unavailable`` and left out.
    """
    settings = (settings or Settings()).validate()
    t_start = time.perf_counter()
    dev = resolve_device(device)
    report = progress or (lambda frac, msg: None)
    work = working_case(case, settings.max_side)
    reduced = work.meta.get("reduced_from")
    tg = make_targets(work.gt, work.num_classes, settings)
    target = torch.from_numpy(tg.target).to(dev)
    evaluators = _evaluators(settings.losses, settings.params, work.spacing)
    with deterministic():  # the same start for every loss; drop losses undefined here
        z0, image, x, probe = _start(work, settings, dev)
        unavailable = _drop_undefined(evaluators, probe, target)
        names = list(evaluators)
        params, forward, scale = _model(settings, z0, x, len(names), work.num_classes, dev)
        run = _train(work, settings, tg, target, [evaluators[n] for n in names], params, forward, scale, dev,
                     report)
    report(0.87, "surface distances")  # HD95 on the metric frames, from the recorded arg-max maps
    metric_frames, hd95, finals = _surface_metrics(work, settings, names, run["labels"])
    band = None
    if tg.band is not None and band_model_points > 0:
        report(0.92, "band model")
        band = _remembered_band_model(tg, evaluators, names, settings.params, work.spacing, band_model_points, dev)
    closed = closed_forms(tg, work.gt) if tg.band is not None else {}
    arrays = run["frames"]
    traj = Trajectory(
        names=names, titles={n: get_loss(n).title for n in names}, settings=settings, gt=work.gt,
        class_names=work.class_names, spacing=work.spacing, targets=tg, image=image,
        frame_steps=np.asarray(settings.frames()), foreground=run["fg"], labels=run["labels"], loss=run["loss"],
        dice=arrays["dice"], size_ratio=arrays["size_ratio"], soft_ratio=arrays["soft_ratio"],
        band_q=arrays.get("band_q"), disputed_q=arrays["disputed_q"], calibration=arrays["calibration"],
        undecided=arrays["undecided"], metric_frames=np.asarray(metric_frames), hd95=hd95, rows=[],
        band=band, closed=closed, unavailable=unavailable, device=str(dev), seconds=0.0,
        reduced_from=tuple(reduced) if reduced else None)
    traj.rows = final_rows(traj, finals)
    traj.seconds = time.perf_counter() - t_start
    report(1.0, "done")
    return traj


def _start(work: Case, settings: Settings, dev) -> tuple:
    """``(z0, image, x, probe)``: the start logits (free-logit model) or the CNN input image and
    tensor, and the start prediction ``(1, C, H, W)`` every loss is first evaluated at."""
    c = work.num_classes
    h, w = work.gt.shape
    if settings.model == "logits":
        if settings.start == "uniform":
            z0 = torch.zeros((c, h, w))
        elif settings.start == "prediction":
            z0 = torch.log(torch.from_numpy(work.probs).clamp_min(EPS))
        else:
            z0 = settings.start_noise * torch.randn((c, h, w), generator=_generator(settings.seed, "start"))
        return z0, None, None, torch.softmax(z0, 0)[None].to(dev)
    image = cnn_input(work.gt, c, settings)
    cnn0 = _cnn_init(1, c, settings.cnn_width, _generator(settings.seed, "cnn"))
    x = torch.from_numpy(image)[None, None].to(dev)
    with torch.no_grad():
        probe = torch.softmax(_cnn_forward(x, [p.to(dev) for p in cnn0], 1, c), 1)
    return None, image, x, probe


def _drop_undefined(evaluators: dict[str, _Evaluator], probe: torch.Tensor, target: torch.Tensor) -> dict[str, str]:
    """Remove (and return with their one-line reasons) the losses undefined or not finite at the start."""
    unavailable: dict[str, str] = {}
    for name, ev in list(evaluators.items()):
        try:
            with torch.no_grad():
                v = ev(probe, target)
            if not torch.isfinite(v).all():
                raise ValueError("not finite at the start")
        except ValueError as err:
            unavailable[name] = str(err).splitlines()[0]
            del evaluators[name]
    if not evaluators:
        raise ValueError("no chosen loss is defined on this case: " + "; ".join(
            f"{k}: {v}" for k, v in unavailable.items()))
    return unavailable


def _model(settings: Settings, z0, x, n_l: int, c: int, dev) -> tuple[list[torch.Tensor], Callable, float]:
    """``(parameters, forward, scale)``: one free logit field or one tiny CNN per loss; ``forward()``
    gives the ``(L, C, H, W)`` logits; ``scale`` multiplies the losses before the backward pass."""
    if settings.model == "logits":
        leaf = z0.to(dev).unsqueeze(0).repeat(n_l, 1, 1, 1).contiguous().requires_grad_(True)
        return [leaf], lambda: leaf, float(z0.shape[-2] * z0.shape[-1])
    params = [p.to(dev).requires_grad_(True) for p in _cnn_init(n_l, c, settings.cnn_width,
                                                                 _generator(settings.seed, "cnn"))]
    return params, lambda: _cnn_forward(x, params, n_l, c), 1.0


def _train(work: Case, settings: Settings, tg: Targets, target: torch.Tensor, fns: list[_Evaluator],
           params: list[torch.Tensor], forward: Callable, scale: float, dev, report) -> dict[str, Any]:
    """The optimisation loop: loss history ``(steps + 1, L)`` and the recorded frames."""
    c, n_l = work.num_classes, len(fns)
    h, w = work.gt.shape
    opt = _optimiser(settings, params, settings.learning_rate)
    gt_onehot = one_hot(torch.from_numpy(work.gt)[None], c, dtype=torch.float32).to(dev)
    gt_fg = torch.from_numpy(work.gt > 0).to(dev)
    present = (gt_onehot.flatten(2).sum(2)[0, 1:] > 0).to(torch.float32)
    band_t = None if tg.band is None else torch.from_numpy(tg.band).to(dev)
    disputed_t = torch.from_numpy(tg.disputed).to(dev)
    expected_fg = torch.from_numpy(1.0 - tg.expected[0]).to(dev)
    frames = settings.frames()
    frame_set = {s: i for i, s in enumerate(frames)}
    fg_frames = np.empty((len(frames), n_l, h, w), np.uint8)
    label_frames = np.empty((len(frames), n_l, h, w), np.uint8)
    per_frame: dict[str, list[np.ndarray]] = {}
    loss_hist = torch.empty((settings.steps + 1, n_l), dtype=torch.float64, device=dev)
    report(0.0, "training")
    tick = max(1, settings.steps // 50)
    for step in range(settings.steps + 1):
        probs = torch.softmax(forward(), 1)
        values = torch.cat([fn(probs[i:i + 1], target) for i, fn in enumerate(fns)])
        loss_hist[step] = values.detach().to(torch.float64)
        if step in frame_set:
            with torch.no_grad():
                st_ = _frame_stats(probs.detach(), gt_onehot, gt_fg, present, band_t, disputed_t, expected_fg)
            k = frame_set[step]
            fg_frames[k] = (st_["fg"].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            label_frames[k] = st_["labels"].to(torch.uint8).cpu().numpy()
            for key in ("dice", "size_ratio", "soft_ratio", "band_q", "disputed_q", "calibration", "undecided"):
                if key in st_:
                    per_frame.setdefault(key, []).append(st_[key].detach().to(torch.float64).cpu().numpy())
        if step == settings.steps:
            break
        opt.zero_grad(set_to_none=True)
        (values * scale).sum().backward()
        opt.step()
        if step % tick == 0:
            report(0.85 * (step + 1) / settings.steps, f"step {step + 1} / {settings.steps}")
    return {"loss": loss_hist.cpu().numpy(), "fg": fg_frames, "labels": label_frames,
            "frames": {k: np.stack(v) for k, v in per_frame.items()}}


def _surface_metrics(work: Case, settings: Settings, names: list[str], label_frames: np.ndarray) -> tuple:
    """``(metric_frames, hd95 (frames, L), finals)``: HD95 every ``metric_every`` frames (and the
    last), and every metric of the final frame per loss."""
    n_f = label_frames.shape[0]
    m_every = int(settings.metric_every) or max(1, n_f // 10)
    metric_frames = sorted(set(range(0, n_f, m_every)) | {n_f - 1})
    hd95 = np.full((len(metric_frames), len(names)), np.nan)
    finals: dict[str, dict] = {}
    for j, k in enumerate(metric_frames):
        for i, name in enumerate(names):
            m = _mean_metrics(label_frames[k, i], work.gt, work.spacing, work.num_classes)
            hd95[j, i] = np.nan if m["hd95"] is None else m["hd95"]
            if k == n_f - 1:
                finals[name] = m
    return metric_frames, hd95, finals


def _optimiser(settings: Settings, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam / SGD, the fused (one-kernel, element-wise, deterministic) form where torch has it."""
    kind = torch.optim.Adam if settings.optimiser == "adam" else torch.optim.SGD
    kw: dict[str, Any] = {"lr": lr} if settings.optimiser == "adam" else {"lr": lr, "momentum": settings.momentum}
    try:
        return kind(params, fused=True, **kw)
    except (RuntimeError, ValueError):
        return kind(params, foreach=False, **kw)


def _mean_metrics(labels: np.ndarray, gt: np.ndarray, spacing, num_classes: int) -> dict[str, float | None]:
    from ..core.metrics import mean_over_classes, segmentation_metrics

    per = segmentation_metrics(labels.astype(np.int64), gt, spacing=spacing, num_classes=num_classes)
    present = {k: v for k, v in per.items() if (gt == k).any()}
    return mean_over_classes(present or per)


# ----------------------------------------------------------------------------------------------
# the band model and the papers' closed forms
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandModel:
    """Each loss on the case with every band pixel predicted ``q`` for its object class (``1 - q``
    background) and every other pixel predicted its expected target: ``values[name]`` over the
    grid ``q``, and the minimiser ``q_star[name]`` (the grid argmin, refined by a bounded scalar search
    between the best point's neighbours to :data:`REFINE_XTOL`; kept at the grid point when the search
    finds nothing lower, e.g. at an end of ``[0, 1]``)."""

    q: np.ndarray
    values: dict[str, np.ndarray]
    q_star: dict[str, float]


def _band_probs(tg: Targets, q: torch.Tensor, device) -> torch.Tensor:
    """``(Q, C, H, W)`` predictions: the expected target off the band, ``q`` on it."""
    base = torch.from_numpy(tg.expected).to(device=device, dtype=torch.float64)
    band = torch.from_numpy(tg.band).to(device)
    cls = torch.from_numpy(tg.band_class).to(device)
    on = F.one_hot(cls, base.shape[0]).permute(2, 0, 1).to(torch.float64)  # (C, H, W)
    bg = torch.zeros_like(on)
    bg[0] = 1.0
    qb = q.to(device=device, dtype=torch.float64).view(-1, 1, 1, 1)
    band_probs = qb * on + (1 - qb) * bg
    return torch.where(band, band_probs, base.unsqueeze(0))


def _band_values(tg: Targets, ev: _Evaluator, q: np.ndarray, device) -> np.ndarray:
    target = torch.from_numpy(tg.target).to(device=device, dtype=torch.float64)
    per = target[0].numel() * target.shape[0]
    chunk = max(1, CHUNK_ELEMENTS // per)
    out = []
    with torch.no_grad():
        for lo in range(0, len(q), chunk):
            qs = torch.as_tensor(q[lo:lo + chunk])
            out.append(ev(_band_probs(tg, qs, device), target).cpu().numpy())
    return np.concatenate(out)


#: Resolution of the band model's minimiser ``q*`` (the bounded search after the grid).
REFINE_XTOL = 1e-5


def band_model(tg: Targets, evaluators: Mapping[str, _Evaluator], names: Sequence[str], *, n_q: int = 41,
               refine: bool = True, device="cpu") -> BandModel:
    """The band model on the actual image (float64): see :class:`BandModel`."""
    if tg.band is None:
        raise ValueError("the band model needs a band target")
    q = np.linspace(0.0, 1.0, int(n_q))
    values, q_star = {}, {}
    for name in names:
        ev = evaluators[name]
        v = _band_values(tg, ev, q, device)
        values[name] = v
        j = int(np.argmin(v))
        best_q, best_v = q[j], v[j]
        lo, hi = q[max(j - 1, 0)], q[min(j + 1, len(q) - 1)]
        if refine:  # bounded Brent between the best grid point's neighbours (about 15 evaluations)
            res = optimize.minimize_scalar(lambda x, ev=ev: float(_band_values(tg, ev, np.array([x]), device)[0]),
                                           bounds=(lo, hi), method="bounded", options={"xatol": REFINE_XTOL})
            if res.fun < best_v:
                best_q = float(res.x)
        q_star[name] = float(best_q)
    return BandModel(q, values, q_star)


_BAND_MEMO: OrderedDict[str, BandModel] = OrderedDict()
_BAND_MEMO_LOCK = threading.Lock()
BAND_MEMO_SIZE = 16
"""How many band models :func:`optimise` remembers per process (the last ones used)."""


def _remembered_band_model(tg: Targets, evaluators: Mapping[str, _Evaluator], names: Sequence[str],
                           params: Mapping[str, Mapping[str, Any]], spacing, n_q: int, device) -> BandModel:
    """:func:`band_model`, remembered for the last :data:`BAND_MEMO_SIZE` inputs: it reads the targets,
    the losses with their parameters and the spacing only, so a run that changes the steps, the rate,
    the optimiser or the start reuses it (a copy)."""
    h = hashlib.sha256()
    for a in (tg.target, tg.expected, tg.band, tg.band_class):
        h.update(f"{a.dtype.str}{a.shape}".encode() + np.ascontiguousarray(a).tobytes())
    chosen = {n: dict(params.get(n, {})) for n in names}
    h.update(json.dumps([list(names), chosen, list(spacing), int(n_q), str(device)], sort_keys=True,
                        default=repr).encode())
    key = h.hexdigest()
    with _BAND_MEMO_LOCK:
        found = _BAND_MEMO.get(key)
        if found is not None:
            _BAND_MEMO.move_to_end(key)
            return copy.deepcopy(found)
    band = band_model(tg, evaluators, names, n_q=n_q, device=device)
    with _BAND_MEMO_LOCK:
        _BAND_MEMO[key] = copy.deepcopy(band)
        while len(_BAND_MEMO) > BAND_MEMO_SIZE:
            _BAND_MEMO.popitem(last=False)
    return band


def band_counts(tg: Targets, gt: np.ndarray) -> tuple[int, int, float]:
    """``(F, U, pi)`` of the band model: certain foreground pixels (object minus band), band pixels,
    the band's effective foreground rate."""
    if tg.band is None:
        raise ValueError("no band in this target")
    f = int(((np.asarray(gt) > 0) & ~tg.band).sum())
    return f, int(tg.band.sum()), float(tg.pi)


def squared_dice_band_optimum(f: float, u: float, pi: float, g2: float) -> float:
    r"""Band confidence ``q*`` minimising foreground-only squared Dice without smoothing when ``F``
    certain foreground pixels are predicted 1 and the ``U`` band pixels ``q``, the band's target
    having sum :math:`\pi U` and squared sum ``g2`` (:math:`\pi U` for hard labels, :math:`\pi^2 U`
    for the soft label ``pi``).

    The loss is :math:`1 - 2(F + q\pi U)/(2F + q^2 U + G_2)`; its derivative vanishes at the positive
    root of :math:`\pi U q^2 + 2Fq - \pi(2F + G_2) = 0`:
    :math:`q^* = \min(1, [-F + \sqrt{F^2 + \pi^2 U(2F + G_2)}]/(\pi U))`. Hard labels give the
    papers' B3; soft labels give :math:`q^* = \pi` (the radicand is :math:`(F + \pi^2 U)^2`), since
    squared Dice :math:`\|s - g\|^2/(\|s\|^2 + \|g\|^2)` vanishes only at the target itself.
    """
    if pi <= 0:
        return 0.0
    return float(min(1.0, (-f + math.sqrt(f * f + pi * pi * u * (2 * f + g2))) / (pi * u)))


def closed_forms(tg: Targets, gt: np.ndarray) -> dict[str, float]:
    """The band optima for this band (foreground-only Dice without smoothing): ``{"ce": pi,
    "dice_linear": 0 or 1, "dice_squared": interior}`` (B1-B3). Squared Dice uses the target's own
    squared sum over the band (mean over annotators): for the soft band its optimum is ``q = pi``,
    not the hard-label B3 value (see :func:`squared_dice_band_optimum`)."""
    from .bias import q_star_closed_form

    f, u, pi = band_counts(tg, gt)
    out = {kind: q_star_closed_form(kind, f, u, pi) for kind in ("ce", "dice_linear")}
    g_band = 1.0 - tg.target[:, 0][:, tg.band].astype(np.float64)  # (R, U) foreground targets
    out["dice_squared"] = squared_dice_band_optimum(f, u, pi, float((g_band**2).sum(1).mean()))
    return out


# ----------------------------------------------------------------------------------------------
# the final table and the explanation
# ----------------------------------------------------------------------------------------------


def _f(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def status(traj: Trajectory, i: int) -> str:
    """``"diverged"`` (a non-finite loss), ``"converged"`` (the loss moved less than 1 % of its total
    change over the last 10 % of the steps) or ``"still moving"``."""
    curve = traj.loss[:, i]
    if not np.isfinite(curve).all():
        return "diverged"
    n = len(curve) - 1
    tail = curve[max(0, n - max(1, n // 10))]
    total = abs(curve[0] - curve[-1])
    return "converged" if abs(tail - curve[-1]) <= 0.01 * total + 1e-12 else "still moving"


def final_rows(traj: Trajectory, finals: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per loss: final loss, Dice / HD95 / precision / recall of the arg-max, predicted
    size vs ground-truth size, and (band targets) the band probability and the band model's ``q*``."""
    gt_size = int((traj.gt > 0).sum())
    target_size = float((1.0 - traj.targets.expected[0]).sum())
    rows = []
    for i, name in enumerate(traj.names):
        m = finals.get(name, {})
        pred = int((traj.labels[-1, i] > 0).sum())
        soft = float(traj.foreground[-1, i].astype(np.float64).sum() / 255.0)
        row = {
            "loss": name, "title": traj.titles[name], "final_loss": _f(traj.loss[-1, i]),
            "dice": _f(m.get("dice")), "hd95": _f(m.get("hd95")), "precision": _f(m.get("precision")),
            "recall": _f(m.get("recall")), "pred_size": pred, "soft_size": soft, "gt_size": gt_size,
            "target_size": target_size, "size_ratio": pred / gt_size if gt_size else None,
            "status": status(traj, i),
        }
        if traj.band_q is not None:
            row["band_q"] = _f(traj.band_q[-1, i])
            row["band_q_star"] = traj.band.q_star.get(name) if traj.band else None
        if traj.targets.disputed.any():
            row["calibration"] = _f(traj.calibration[-1, i])
        if traj.targets.disputed.any() or traj.band_q is not None:
            row["undecided"] = _f(traj.undecided[-1, i])
        rows.append(row)
    return rows


def _where(q: float, pi: float, undecided: float | None) -> str:
    if undecided is not None and undecided < 0.05 and 0.05 <= q <= 0.95:
        return (f"split the band into hard pixels, {100 * q:.0f} % of it foreground: each pixel is decided "
                "by its own annotators' votes, none is left uncertain")
    if q < 0.05:
        return "pushed the band to background (q → 0): the ambiguous pixels are dropped"
    if q > 0.95:
        return "claimed the whole band (q → 1): the ambiguous pixels are all foreground"
    if abs(q - pi) <= 0.05:
        return "kept the annotators' rate (q ≈ π): a calibrated probability"
    return f"settled in between (q = {q:.2f}, π = {pi:.2f})"


def explain(traj: Trajectory) -> list[str]:
    """A few computed sentences (markdown) saying what converged where, and why."""
    s = traj.settings
    lines: list[str] = []
    tg = traj.targets
    g = int((traj.gt > 0).sum())
    if tg.band is not None:
        f, u, pi = band_counts(tg, traj.gt)
        lines.append(
            f"The ambiguous band: U = {u} px within {s.band_width / 2:g} px of the boundary, foreground "
            f"rate π = {pi:.3f} ({tg.note}); F = {f} px of certain foreground.")
        cf = traj.closed
        slope = f * (2 * pi - 1) + pi * pi * u
        lines.append(
            f"Papers' optima for this band (docs/theory.md, B1-B3; foreground-only Dice without smoothing): CE q* = π = "
            f"{cf['ce']:.3f}; linear Dice q* = {cf['dice_linear']:g} (F(2π−1) + π²U = {slope:.0f} "
            f"{'>' if slope > 0 else '<'} 0); squared Dice q* = {cf['dice_squared']:.3f}"
            + (" (soft labels: squared Dice is minimised by the target itself, q* = π)."
               if s.target == "soft_band" else "."))
    for i, name in enumerate(traj.names):
        row = traj.rows[i]
        title = traj.titles[name]
        parts = []
        if tg.band is not None and row.get("band_q") is not None:
            q = row["band_q"]
            star = row.get("band_q_star")
            parts.append(f"band probability {q:.3f}" + (f" (band-model optimum {star:.3f})" if star is not None
                                                        else "") + f": {_where(q, tg.pi, row.get('undecided'))}.")
            if star is not None and abs(q - star) > 0.05 and row.get("undecided", 1.0) >= 0.05:
                why = ("still moving: more steps or a larger learning rate" if row["status"] == "still moving"
                       else "the CNN cannot set every band pixel freely" if s.model == "cnn" else "")
                parts.append("Away from the band-model optimum" + (f" ({why})." if why else "."))
        elif tg.disputed.any() and row.get("calibration") is not None:
            parts.append(f"on the {int(tg.disputed.sum())} disputed pixels, mean |q − g| = "
                         f"{row['calibration']:.3f} and {100 * row['undecided']:.0f} % keep an intermediate "
                         f"probability ({UNDECIDED[0]:g} < q < {UNDECIDED[1]:g}): "
                         + ("calibrated (CE-like)." if row["calibration"] < 0.05 else
                            "hardened towards 0/1 (Dice-like)." if row["undecided"] < 0.2 else "in between."))
        if row["size_ratio"] is not None:
            parts.append(f"Predicted region {row['size_ratio']:.2f} × the ground truth ({row['pred_size']} vs "
                         f"{g} px), Dice {row['dice']:.3f}." if row["dice"] is not None else
                         f"Predicted region {row['size_ratio']:.2f} × the ground truth.")
        if tg.band is None and not tg.disputed.any():
            hit = np.nonzero(np.nan_to_num(traj.dice[:, i]) >= 0.95)[0]
            parts.append(f"Dice ≥ 0.95 from step {int(traj.frame_steps[hit[0]])}." if hit.size else
                         "Dice stays below 0.95.")
        if row["status"] == "diverged":
            parts.append("The loss became NaN/Inf (lower the learning rate).")
        lines.append(f"**{title}**: " + " ".join(parts))
    if s.model == "logits" and s.target in ("random_band", "label_noise") and s.n_annotators == 1:
        lines.append("With one annotator and free logits every pixel simply memorises its own label; "
                     "raise the number of annotators (or use the CNN) to make the labels uncertain.")
    return lines


__all__ = [
    "BAND_TARGETS",
    "BandModel",
    "DEFAULT_LOSSES",
    "DEFAULT_LR",
    "MODELS",
    "OPTIMISERS",
    "STARTS",
    "Settings",
    "TARGETS",
    "Targets",
    "Trajectory",
    "band_counts",
    "band_mask",
    "band_model",
    "closed_forms",
    "cnn_input",
    "deterministic",
    "explain",
    "final_rows",
    "make_targets",
    "optimise",
    "squared_dice_band_optimum",
    "status",
    "training_case",
    "working_case",
    "working_sides",
]
