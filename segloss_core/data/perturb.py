"""Named perturbations of a segmentation prediction: one path for the sidebar and the landscapes.

Two entry points share the same primitives:

- :func:`prediction_from_gt` makes a soft prediction ``(C, *spatial)`` from a label map by
  building level-set logits from each class's signed distance map (the case builder's sliders).
- :func:`apply` perturbs an arbitrary given prediction (drawn, uploaded, or made as above),
  **batched**: every amount may be a length-``n`` tensor and one call returns the ``n``
  perturbed predictions ``(n, C, *spatial)`` as one tensor (torch ops, on the input's device).
  ``perturb_prediction`` is the one-prediction convenience form.

Perturbations (``PERTURBATIONS``; unit, range, default of the case builder, identity of ``apply``):

============  ==========  ==============  =======  ========  ===========================================
name          unit        range           default  identity  what it does
============  ==========  ==============  =======  ========  ===========================================
shift_x       px          [-64, 64]       0        0         move right (+) / left (-), sub-pixel, linear
shift_y       px          [-64, 64]       0        0         move down (+) / up (-), sub-pixel, linear
dilate        px          [-32, 32]       0        0         grow (+) / shrink (-) along the distance map
softness      px          [0, 10]         1        0         boundary width (from GT) / Gaussian blur sigma
logit_scale   x           [0, 10]         1        1         multiply the logits: < 1 softer, > 1 sharper
fp_area       px^2        [0, 20000]      0        0         add a false-positive blob of that area, far away
fn_fraction   fraction    [0, 1]          0        0         drop that fraction of each object (left part)
noise         logit std   [0, 5]          0        0         add seeded Gaussian noise to the logits
============  ==========  ==============  =======  ========  ===========================================

Convention (signed distance map): for a mask ``M`` with Euclidean distance transforms
``e_in`` (inside pixels: distance to the nearest outside pixel) and ``e_out``,
``sdf = e_out - 1/2`` outside and ``-(e_in - 1/2)`` inside, so the zero level runs half-way
between boundary pixel centres; an empty mask has ``sdf = +BIG``, a full one ``-BIG``. Distances
are in pixels (spacing is ignored by the perturbations). Shifts act on the last two axes (in-plane
for 3-D volumes), as does the blur; the false-negative cut runs along the last axis (x).

The false-positive blob goes to class 1, centred at the pixel that maximises
``min(distance to any foreground of the GT or of the prediction, distance to the image border)``
(the image centre when both are empty). Its profile is ``sigmoid(mu - rho / w)`` (``rho`` = distance
to the centre) with ``mu`` solved so that the continuous mass equals ``fp_area``; so the added area
is smooth in ``fp_area``, ``fp_area = 0`` adds nothing, and on the pixel grid the area is exact up
to raster error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core._tensors import EPS, as_tensor, resolve_device
from ..core.limits import check_elements


@dataclass(frozen=True)
class Perturbation:
    """One named perturbation: ``range`` is ``(low, high)`` in ``unit``; ``default`` is the case
    builder's slider default, ``identity`` the amount at which :func:`apply` changes nothing."""

    name: str
    label: str
    unit: str
    range: tuple[float, float]
    default: float
    identity: float
    help: str
    step: float = 0.5

    def validate(self, value) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"perturbation {self.name!r} must be a number, got {value!r}") from None
        if not (self.range[0] <= v <= self.range[1]):
            raise ValueError(
                f"perturbation {self.name!r}={v:g} is outside [{self.range[0]:g}, {self.range[1]:g}] {self.unit}"
            )
        return v


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("shift_x", "shift x", "px", (-64.0, 64.0), 0.0, 0.0,
                     "moves the prediction right (+) or left (-); sub-pixel amounts interpolate linearly"),
        Perturbation("shift_y", "shift y", "px", (-64.0, 64.0), 0.0, 0.0,
                     "moves the prediction down (+) or up (-); sub-pixel amounts interpolate linearly"),
        Perturbation("dilate", "dilate / erode", "px", (-32.0, 32.0), 0.0, 0.0,
                     "grows (+) or shrinks (-) each object along its signed distance map"),
        Perturbation("softness", "boundary softness", "px", (0.0, 10.0), 1.0, 0.0,
                     "from the GT: width of the soft boundary (logit slope 1/softness); on a given "
                     "prediction: sigma of a Gaussian blur", step=0.25),
        Perturbation("logit_scale", "confidence (logit scale)", "x", (0.0, 10.0), 1.0, 1.0,
                     "multiplies the logits (inverse temperature): < 1 softens towards uniform, > 1 sharpens",
                     step=0.05),
        Perturbation("fp_area", "false-positive blob", "px^2", (0.0, 20000.0), 0.0, 0.0,
                     "adds a soft disk of this area to class 1, placed far from every object", step=10.0),
        Perturbation("fn_fraction", "drop object part", "fraction", (0.0, 1.0), 0.0, 0.0,
                     "removes this fraction of each foreground class's mass, cutting from the left (soft cut)",
                     step=0.01),
        Perturbation("noise", "logit noise", "logit std", (0.0, 5.0), 0.0, 0.0,
                     "adds seeded Gaussian noise of this standard deviation to the logits", step=0.05),
    )
}

#: Width (px) of the soft ramps used by ``apply`` for dilation, the FN cut and the FP blob.
APPLY_WIDTH = 1.0
#: Smallest boundary width used anywhere (softness 0 means "as hard as this").
MIN_WIDTH = 0.05


def defaults() -> dict[str, float]:
    """The case builder's default amounts."""
    return {k: p.default for k, p in PERTURBATIONS.items()}


def identity() -> dict[str, float]:
    """Amounts at which :func:`apply` returns the prediction unchanged."""
    return {k: p.identity for k, p in PERTURBATIONS.items()}


# ---------------------------------------------------------------- numpy helpers (distance maps)


def _big(shape) -> float:
    return float(4 * sum(shape) + 16)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance map of a boolean mask (px): ``e_out - 1/2`` outside, ``-(e_in - 1/2)`` inside
    (:func:`segloss_core.core.distance.signed_distance` with ``boundary="between"``); ``+BIG`` for an
    empty mask, ``-BIG`` for a full one (BIG = 4 * sum(shape) + 16)."""
    from ..core.distance import signed_distance as signed

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.full(mask.shape, _big(mask.shape))
    if mask.all():
        return np.full(mask.shape, -_big(mask.shape))
    return signed(mask, boundary="between")


def far_point(occupied: np.ndarray) -> tuple[int, ...]:
    """Pixel maximising ``min(distance to the occupied pixels, distance to the border)``."""
    from scipy.ndimage import distance_transform_edt

    occupied = np.asarray(occupied, dtype=bool)
    border = np.full(occupied.shape, np.inf)
    for ax, n in enumerate(occupied.shape):
        idx = np.arange(n)
        d = np.minimum(idx, n - 1 - idx) + 1.0
        border = np.minimum(border, d.reshape([-1 if a == ax else 1 for a in range(occupied.ndim)]))
    if occupied.any():
        score = np.minimum(distance_transform_edt(~occupied), border)
    else:
        score = border
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), occupied.shape))


def _blob_mass(mu: np.ndarray, ndim: int) -> np.ndarray:
    """Continuous mass ``S_d * int_0^inf t^(d-1) sigmoid(mu - t) dt`` (unit width) for each ``mu``
    (midpoint rule on ``[0, max(mu, 0) + 40]`` with 4000 nodes per element, so each value depends
    on its own ``mu`` only)."""
    from scipy.special import expit

    surface = 2 * math.pi if ndim == 2 else 4 * math.pi
    top = np.maximum(mu, 0.0) + 40.0
    m = 4000
    t = (np.arange(m) + 0.5)[None, :] * (top[:, None] / m)
    integrand = t ** (ndim - 1) * expit(mu[:, None] - t)
    return surface * integrand.sum(1) * (top / m)


def blob_level(areas, width: float, ndim: int = 2) -> np.ndarray:
    """``mu`` such that the soft ball ``sigmoid(mu - rho / width)`` has mass ``area``; ``-inf`` for 0."""
    areas = np.atleast_1d(np.asarray(areas, dtype=np.float64))
    out = np.full(areas.shape, -np.inf)
    pos = areas > 0
    if not pos.any():
        return out
    target = areas[pos] / width**ndim
    surface = 2 * math.pi if ndim == 2 else 4 * math.pi
    lo = np.full(target.shape, -60.0)
    hi = (ndim * target / surface) ** (1.0 / ndim) + 5.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        big = _blob_mass(mid, ndim) > target
        hi = np.where(big, mid, hi)
        lo = np.where(big, lo, mid)
    out[pos] = 0.5 * (lo + hi)
    return out


# ---------------------------------------------------------------- torch primitives (batched)


def _shift_axis(x: torch.Tensor, shifts: torch.Tensor, dim: int, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``out[i](pos) = x[i](pos - shifts[i])`` along ``dim`` with linear interpolation and
    border replication. Exact for integer shifts.

    Per sample, with ``f = floor(shift)``: the interior is one ``lerp`` of two slices of ``x``
    (views, no index tensors) and the two border runs are copies of the edge values (where both
    interpolation sources clamp to the same edge pixel, ``lerp(e, e, w) = e``). Same values as
    two batched ``gather`` calls and a ``lerp``, several times faster on the CPU. ``rows``: sample
    ``i`` shifts ``x[rows[i]]`` (saves an ``index_select`` copy); default ``x[i]``."""
    length = x.shape[dim]
    dim = dim % x.ndim - 1  # the axis within one sample
    fl = torch.floor(shifts)
    frac = (shifts - fl).to(torch.float64).cpu().tolist()
    fl_list = [int(v) for v in fl.clamp(-length, length).cpu().tolist()]  # beyond: all border
    sources = range(len(fl_list)) if rows is None else rows.cpu().tolist()
    out = torch.empty((len(fl_list), *x.shape[1:]), dtype=x.dtype, device=x.device)
    for i, (k, f, w) in enumerate(zip(sources, fl_list, frac, strict=True)):
        xi, oi = x[k], out[i]
        lo = min(length, max(0, f + 1 if w else f))  # interior: both sources inside the image
        hi = max(0, min(length, length + f))
        if hi > lo:
            a = xi.narrow(dim, lo - f, hi - lo)
            if w:
                torch.lerp(a, xi.narrow(dim, lo - f - 1, hi - lo), w, out=oi.narrow(dim, lo, hi - lo))
            else:
                oi.narrow(dim, lo, hi - lo).copy_(a)
        if lo > 0:
            oi.narrow(dim, 0, lo).copy_(xi.narrow(dim, 0, 1).expand_as(oi.narrow(dim, 0, lo)))
        if hi < length:
            tail = oi.narrow(dim, hi, length - hi)
            tail.copy_(xi.narrow(dim, length - 1, 1).expand_as(tail))
    return out


def _gauss_blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur over the last two axes with per-sample sigma (0 = identity)."""
    values, inverse = torch.unique(sigmas, return_inverse=True)
    out = torch.empty_like(x)
    for k, s in enumerate(values.tolist()):
        sel = inverse == k
        y = x[sel]
        if s > 0:
            radius = max(1, int(math.ceil(3 * s)))
            t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
            kern = torch.exp(-0.5 * (t / s) ** 2)
            kern = (kern / kern.sum()).view(1, 1, -1)
            for dim in (-1, -2):
                length = y.shape[dim]
                yt = y.movedim(dim, -1)
                shape = yt.shape
                flat = yt.reshape(-1, 1, length)
                mode = "reflect" if radius < length else "replicate"
                flat = F.pad(flat, (radius, radius), mode=mode)
                y = F.conv1d(flat, kern).reshape(shape).movedim(-1, dim)
        out[sel] = y
    return out


def _quantile_cut(mass: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """x position ``x_f`` (px, pixel centres at 0..W-1) below which a fraction ``f`` of each row's
    mass lies, treating each column's mass as spread uniformly over ``[j - 1/2, j + 1/2]``.

    ``mass``: ``(n, W)`` column masses; ``fractions``: ``(n,)``. ``f = 0`` -> ``-inf``,
    ``f = 1`` -> ``+inf``; an all-zero row -> ``-inf`` (nothing to cut).
    """
    n, width = mass.shape
    edges = torch.cat([torch.zeros(n, 1, dtype=mass.dtype, device=mass.device), mass.cumsum(1)], 1)
    total = edges[:, -1]
    target = (fractions * total).unsqueeze(1)
    j = (torch.searchsorted(edges.contiguous(), target.contiguous(), right=True) - 1).clamp(0, width - 1)
    lower = edges.gather(1, j)
    col = mass.gather(1, j).clamp_min(torch.finfo(mass.dtype).tiny)
    x_f = (j.to(mass.dtype) - 0.5 + ((target - lower) / col).clamp(0, 1)).squeeze(1)
    x_f = torch.where(fractions <= 0, torch.full_like(x_f, -math.inf), x_f)
    x_f = torch.where(fractions >= 1, torch.full_like(x_f, math.inf), x_f)
    return torch.where(total > 0, x_f, torch.full_like(x_f, -math.inf))


def _bcast(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """``(n,)`` -> ``(n, 1, ..., 1)`` with ``ndim`` trailing singleton axes."""
    return v.view(-1, *([1] * ndim))


def _noise_field(shape, seed: int, dtype, device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def _radius_field(spatial, centre, dtype, device) -> torch.Tensor:
    axes = [torch.arange(n, dtype=dtype, device=device) - c for n, c in zip(spatial, centre, strict=True)]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.sqrt(sum(g * g for g in grids))


def channel_argmax(probs: torch.Tensor) -> torch.Tensor:
    """``probs.argmax(1)`` (ties -> the first class), as C - 1 elementwise comparisons: torch's
    ``argmax`` over a short non-last axis is ~50x slower on the CPU."""
    best = probs[:, 0]
    idx = torch.zeros(best.shape, dtype=torch.int64, device=probs.device)
    for c in range(1, probs.shape[1]):
        better = probs[:, c] > best
        idx.masked_fill_(better, c)
        if c < probs.shape[1] - 1:
            best = torch.where(better, probs[:, c], best)
    return idx


# ---------------------------------------------------------------- prediction from the ground truth


def _as_label_map(gt) -> np.ndarray:
    arr = np.asarray(gt.detach().cpu().numpy() if isinstance(gt, torch.Tensor) else gt)
    if arr.ndim not in (2, 3):
        raise ValueError(f"ground truth must be a 2-D or 3-D label map, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError("ground truth must hold integer labels")
    elif arr.dtype.kind not in "biu":
        raise ValueError(f"ground truth must hold integer labels, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError("ground truth holds negative labels")
    return arr


def _check_amounts(amounts: dict[str, Any]) -> None:
    for k in amounts:
        if k not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {k!r}; available: {', '.join(PERTURBATIONS)}")


def prediction_from_gt(gt, num_classes: int | None = None, *, seed: int = 0, **amounts) -> np.ndarray:
    """A soft prediction ``(C, *spatial)`` (float32, sums to 1 over C) made from a label map.

    .. math::
        a_c = \\frac{\\text{dilate} - \\text{sdf}_c(x - \\text{shift})}{w},\\quad
        z_0 = \\epsilon_0 \\sigma_n,\\quad z_c = s\\,\\tilde a_c + \\epsilon_c \\sigma_n,\\quad
        p = \\operatorname{softmax}(z)

    Convention: ``w = max(softness, 0.05)`` px; ``sdf_c`` is the signed distance map of
    ``gt == c`` (module docstring), shifted with linear interpolation and border replication;
    ``tilde a_c`` is ``a_c`` after the false-negative cut (soft minimum with ``(x - x_f) / w``
    where ``x_f`` is the ``fn_fraction``-quantile of the class's soft mass along x) and, for class
    1, the false-positive blob (``logaddexp`` with ``mu - rho / w``, mass ``fp_area``);
    ``s = logit_scale``; ``epsilon ~ N(0, 1)`` seeded by ``seed``, ``sigma_n = noise``. Areas are
    exact at ``logit_scale = 1``. Background logit 0: far from class ``c``, ``p_c = sigmoid(a_c)``.

    Args:
        gt: integer label map ``(H, W)`` or ``(D, H, W)``.
        num_classes: C (default ``max(gt) + 1``, at least 2).
        seed: seed of the noise.
        **amounts: perturbation amounts (``PERTURBATIONS``); missing ones take their ``default``.
    """
    if num_classes is not None:  # before the label copy (segloss_core.core.limits)
        check_elements(np.shape(gt), max(2, int(num_classes)), what="prediction_from_gt")
    labels = _as_label_map(gt)
    _check_amounts(amounts)
    a = defaults()
    a.update({k: PERTURBATIONS[k].validate(v) for k, v in amounts.items()})
    top = int(labels.max()) + 1 if labels.size else 1
    num_classes = max(2, top) if num_classes is None else int(num_classes)
    if num_classes < max(2, top):
        raise ValueError(f"num_classes={num_classes} is too small for labels up to {top - 1}")
    check_elements(labels.shape, num_classes, what="prediction_from_gt")
    spatial = labels.shape
    dt = torch.float64
    w = max(a["softness"], MIN_WIDTH)
    sdf = torch.from_numpy(np.stack([signed_distance(labels == c) for c in range(1, num_classes)]))
    x = sdf.unsqueeze(0)  # (1, C-1, *spatial)
    if a["shift_x"]:
        x = _shift_axis(x, torch.tensor([a["shift_x"]], dtype=dt), -1)
    if a["shift_y"]:
        x = _shift_axis(x, torch.tensor([a["shift_y"]], dtype=dt), -2)
    logits_fg = (a["dilate"] - x[0]) / w  # (C-1, *spatial)
    if a["fn_fraction"] > 0:
        mass = torch.sigmoid(logits_fg)
        cols = mass.sum(dim=tuple(range(1, mass.ndim - 1)))  # (C-1, W)
        x_f = _quantile_cut(cols, torch.full((num_classes - 1,), a["fn_fraction"], dtype=dt))
        xs = torch.arange(spatial[-1], dtype=dt)
        cut = (xs.view(1, *([1] * (len(spatial) - 1)), -1) - _bcast(x_f, len(spatial))) / w
        logits_fg = -torch.logaddexp(-logits_fg, -cut)
    if a["fp_area"] > 0:
        centre = far_point(labels > 0)
        mu = float(blob_level([a["fp_area"]], w, len(spatial))[0])
        blob = mu - _radius_field(spatial, centre, dt, "cpu") / w
        logits_fg[0] = torch.logaddexp(logits_fg[0], blob)
    logits = torch.cat([torch.zeros((1, *spatial), dtype=dt), a["logit_scale"] * logits_fg])
    if a["noise"] > 0:
        logits = logits + a["noise"] * _noise_field(logits.shape, seed, dt, "cpu")
    return torch.softmax(logits, 0).to(torch.float32).numpy()


# ---------------------------------------------------------------- perturbing a given prediction


@dataclass
class Prepared:
    """A prediction made ready for repeated batched perturbation (``prepare``): the base
    probabilities on the device, and lazily the per-class signed distance maps of its arg-max,
    the blob centre and the noise field (computed once, reused by every ``apply`` call)."""

    probs: torch.Tensor  # (C, *spatial)
    gt: np.ndarray
    _sdf: torch.Tensor | None = None
    _centre: tuple[int, ...] | None = None
    _noise: dict[int, torch.Tensor] = field(default_factory=dict)
    _radius: torch.Tensor | None = None
    _parent: tuple | None = None

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[0])

    @property
    def spatial(self) -> tuple[int, ...]:
        return tuple(self.probs.shape[1:])

    def sdf(self) -> torch.Tensor:
        """``(C-1, *spatial)`` signed distance maps of the prediction's arg-max, classes 1..C-1."""
        if self._sdf is None:
            hard = channel_argmax(self.probs.unsqueeze(0))[0].cpu().numpy()
            maps = np.stack([signed_distance(hard == c) for c in range(1, self.num_classes)])
            self._sdf = torch.from_numpy(maps).to(device=self.probs.device, dtype=self.probs.dtype)
        return self._sdf

    def radius(self) -> torch.Tensor:
        """Distance (px) of every pixel to the false-positive blob's centre."""
        if self._radius is None:
            if self._centre is None:
                occupied = (self.gt > 0) | (channel_argmax(self.probs.unsqueeze(0))[0].cpu().numpy() > 0)
                self._centre = far_point(occupied)
            self._radius = _radius_field(self.spatial, self._centre, self.probs.dtype, self.probs.device)
        return self._radius

    def noise(self, seed: int) -> torch.Tensor:
        if seed not in self._noise and self._parent is not None:
            parent, full = self._parent
            self._noise[seed] = parent.noise(seed)[full].contiguous()
        if seed not in self._noise:
            self._noise[seed] = _noise_field(self.probs.shape, seed, self.probs.dtype, self.probs.device)
        return self._noise[seed]

    def centre(self) -> tuple[int, ...]:
        """The false-positive blob's centre (pixel indices)."""
        self.radius()
        return tuple(self._centre or ())

    def crop(self, box: tuple[slice, ...]) -> Prepared:
        """The same prediction restricted to ``box`` (one slice per spatial axis), keeping the maps
        of the full image (distance maps, blob position, noise): perturbing the crop equals
        cropping the perturbed image wherever the perturbation does not reach across the box edge."""
        full = (slice(None),) + tuple(box)
        sub = Prepared(self.probs[full].contiguous(), self.gt[tuple(box)])
        sub._sdf = self.sdf()[full].contiguous()
        sub._radius = self.radius()[tuple(box)].contiguous()
        sub._centre = self._centre
        sub._noise = {k: v[full].contiguous() for k, v in self._noise.items()}
        sub._parent = (self, full)
        return sub


def prepare(probs, gt, *, device=None) -> Prepared:
    """Validate ``probs`` ``(C, *spatial)`` (or ``(1, C, *spatial)``, or a binary foreground map
    ``(*spatial)``) against the label map ``gt`` and move it to ``device`` (default: where it is;
    ``"auto"`` = CUDA when available). Float dtypes are kept; others become float32."""
    shape, nd = tuple(np.shape(probs)), np.ndim(gt)  # voxels x classes before any copy (limits.py)
    lead = shape[: max(0, len(shape) - nd)]
    check_elements(shape[len(lead):], math.prod(lead) if lead else 2, what="prediction")
    labels = _as_label_map(gt)
    p = as_tensor(probs)
    if p.ndim == labels.ndim:  # a foreground probability map
        p = p.to(torch.get_default_dtype()) if not p.is_floating_point() else p
        p = torch.stack([1 - p, p])
    if p.ndim == labels.ndim + 2 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != labels.ndim + 1 or tuple(p.shape[1:]) != labels.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} does not match ground truth {labels.shape} "
                         "(expected (C, *spatial) probabilities)")
    if p.shape[0] < 2:
        raise ValueError("prediction needs at least 2 classes (background + foreground)")
    if labels.size and labels.max() >= p.shape[0]:
        raise ValueError(f"ground-truth label {labels.max()} does not fit {p.shape[0]} classes")
    if not p.is_floating_point():
        p = p.to(torch.float32)
    if device is not None:
        p = p.to(resolve_device(device))
    if not torch.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("prediction must hold finite probabilities in [0, 1]")
    return Prepared(p.contiguous(), labels)


def _batch_amounts(amounts: dict[str, Any], dtype, device) -> tuple[dict[str, torch.Tensor], int]:
    _check_amounts(amounts)
    out: dict[str, torch.Tensor] = {}
    n = 1
    for k, v in amounts.items():
        spec = PERTURBATIONS[k]
        t = torch.as_tensor(v.detach().cpu() if isinstance(v, torch.Tensor) else np.asarray(v, dtype=np.float64),
                            dtype=torch.float64)
        if t.ndim > 1:
            raise ValueError(f"perturbation {k!r} must be a number or a 1-D sequence, got shape {tuple(t.shape)}")
        t = t.reshape(-1)
        if t.numel() == 0 or not torch.isfinite(t).all():
            raise ValueError(f"perturbation {k!r} must hold finite numbers")
        lo, hi = spec.range
        if t.min() < lo or t.max() > hi:
            raise ValueError(f"perturbation {k!r} takes values in [{lo:g}, {hi:g}] {spec.unit}, "
                             f"got {t.min().item():g}..{t.max().item():g}")
        if t.numel() > 1:
            if n > 1 and t.numel() != n:
                raise ValueError(f"perturbation {k!r} has {t.numel()} values but another has {n}")
            n = t.numel()
        out[k] = t
    return {k: (t.expand(n) if t.numel() == 1 else t).to(device=device, dtype=dtype) for k, t in out.items()}, n


def _active(v: dict[str, torch.Tensor], name: str) -> torch.Tensor | None:
    t = v.get(name)
    if t is None or bool((t == PERTURBATIONS[name].identity).all()):
        return None
    return t


#: Half-width of the compact ramp ``F`` (``4 ln 2``, so that ``F(0) = ln 2 = softplus(0)``).
RAMP_K = 4 * math.log(2)


def _ramp(t: torch.Tensor) -> torch.Tensor:
    """C^1 "compact softplus": 0 for t <= -k, (t + k)^2 / (4k) on (-k, k), t for t >= k (k = 4 ln 2)."""
    k = RAMP_K
    return torch.where(t >= k, t, torch.where(t <= -k, torch.zeros_like(t), (t + k) ** 2 / (4 * k)))


def _stage_dilate(p: torch.Tensor, d: torch.Tensor, prep: Prepared) -> torch.Tensor:
    nd = p.ndim - 2
    a = prep.sdf() / APPLY_WIDTH  # (C-1, *spatial)
    db = _bcast(d / APPLY_WIDTH, nd)
    p = p.clone()
    for c in range(1, p.shape[1]):
        ac = a[c - 1].unsqueeze(0)
        # growth: a share h of the other classes' mass moves to c (h = 0 where d <= 0)
        h = -torch.expm1(-(_ramp(db.clamp_min(0) - ac) - _ramp(-ac)))
        # shrinkage: class c keeps a share r (r = 1 where d >= 0), the rest goes to the background
        r = torch.exp(-(_ramp(ac - db.clamp_max(0)) - _ramp(ac)))
        pc = p[:, c]
        removed = pc * (1 - r)
        p = p * (1 - h).unsqueeze(1)
        p[:, c] = pc * r * (1 - h) + h
        p[:, 0] += removed
    return p.clamp_(0, 1)


def _stage_blur(p: torch.Tensor, s: torch.Tensor, prep: Prepared) -> torch.Tensor:
    return _gauss_blur(p.contiguous(), s).clamp_(0, 1)


def _stage_cut(p: torch.Tensor, f: torch.Tensor, prep: Prepared) -> torch.Tensor:
    nd = p.ndim - 2
    p = p.clone()
    xs = torch.arange(p.shape[-1], dtype=p.dtype, device=p.device)
    for c in range(1, p.shape[1]):
        cols = p[:, c].sum(dim=tuple(range(1, nd))) if nd > 1 else p[:, c]
        x_f = _quantile_cut(cols, f)
        keep = torch.sigmoid((xs.view(1, *([1] * (nd - 1)), -1) - _bcast(x_f, nd)) / APPLY_WIDTH)
        removed = p[:, c] * (1 - keep)
        p[:, c] -= removed
        p[:, 0] += removed
    return p.clamp_(0, 1)


def _stage_blob(p: torch.Tensor, area: torch.Tensor, prep: Prepared) -> torch.Tensor:
    nd = p.ndim - 2
    mu = torch.from_numpy(blob_level(area.detach().cpu().numpy(), APPLY_WIDTH, nd)).to(p.device, p.dtype)
    q = torch.sigmoid(_bcast(mu, nd) - prep.radius().unsqueeze(0) / APPLY_WIDTH)
    p = p * (1 - q).unsqueeze(1)
    p[:, 1] += q
    return p.clamp_(0, 1)


def _stage_shift_x(p: torch.Tensor, s: torch.Tensor, prep: Prepared) -> torch.Tensor:
    return _shift_axis(p, s, -1)


def _stage_shift_y(p: torch.Tensor, s: torch.Tensor, prep: Prepared) -> torch.Tensor:
    return _shift_axis(p, s, -2)


def _stage_scale(p: torch.Tensor, t: torch.Tensor, prep: Prepared) -> torch.Tensor:
    tb = _bcast(t, p.ndim - 1)
    scaled = torch.softmax(tb * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny)), dim=1)
    return torch.where(tb == 1, p, scaled)


def _stage_noise(p: torch.Tensor, sigma: torch.Tensor, seed: int, prep: Prepared) -> torch.Tensor:
    sb = _bcast(sigma, p.ndim - 1)
    noisy = torch.softmax(torch.log(p.clamp_min(EPS)) + sb * prep.noise(seed), dim=1)
    return torch.where(sb == 0, p, noisy)


#: The order in which ``apply`` runs the perturbations.
STAGES = ("dilate", "softness", "fn_fraction", "fp_area", "shift_x", "shift_y", "logit_scale", "noise")


def _cached_first_stage(stage, base_row: torch.Tensor, amounts: torch.Tensor, prep: Prepared, name: str,
                        cache: dict) -> torch.Tensor:
    """``stage`` applied to the unperturbed prediction at each of ``amounts`` (distinct), reusing the
    rows ``cache`` holds from the previous call; afterwards ``cache`` holds just this call's rows."""
    values = amounts.tolist()
    missing = [k for k, a in enumerate(values) if (name, a) not in cache]
    if missing:
        src = base_row.index_select(0, torch.zeros(len(missing), dtype=torch.int64, device=base_row.device))
        made = stage(src, amounts[missing], prep)
        for j, k in enumerate(missing):
            cache[(name, values[k])] = made[j]
    rows = [cache[(name, a)] for a in values]
    cache.clear()
    cache.update({(name, a): row for a, row in zip(values, rows, strict=True)})
    return torch.stack(rows)


def apply(probs, gt, amounts: dict[str, Any], seed: int = 0, *, device=None,
          cache: dict | None = None) -> torch.Tensor:
    """Perturb a given prediction; every amount may be a number or a length-``n`` 1-D tensor.

    Returns ``(n, C, *spatial)`` probabilities (same dtype and device as the prepared prediction).
    Amounts left out, or equal to ``PERTURBATIONS[k].identity``, change nothing; with every amount
    at its identity the output equals the input exactly.

    Order and rules (``p`` the probabilities, ``w = APPLY_WIDTH = 1`` px):

    1. ``dilate`` ``d`` per foreground class ``c``, with ``a = sdf_c / w`` the signed distance map
       of the prediction's own arg-max (module docstring) and the C^1 ramp ``F(t) = 0`` for
       ``t <= -k``, ``(t + k)^2 / (4k)`` on ``(-k, k)``, ``t`` for ``t >= k``, ``k = 4 ln 2`` (a
       softplus of compact support with ``F(0) = ln 2``, so the half-level moves by ``d``): for ``d > 0`` a share ``h = 1 - exp(-(F(d - a) - F(-a)))`` of the other classes'
       mass moves to ``c`` (``p_c' = p_c + (1 - p_c) h``, ``p_k' = p_k (1 - h)``); for ``d < 0``
       class ``c`` keeps ``r = exp(-(F(a - d) - F(a)))`` of its mass and the rest goes to the
       background. ``d = 0`` is the identity, the mass of ``c`` is monotone in ``d``, deep inside
       ``h = 1 - e^{-d}``, and nothing changes farther than ``|d| + k w`` outside (growth) or
       inside (shrinkage) the arg-max boundary. (With ``F = softplus`` this would be
       ``h = (g(d) - g(0)) / (1 - g(0))``, ``r = g(d) / g(0)`` for the soft mask
       ``g(d) = sigmoid(d / w - a)``.)
    2. ``softness`` ``s``: Gaussian blur of sigma ``s`` px over the last two axes (kernel radius
       ``ceil(3 s)``, reflect padding; sums to 1 are kept).
    3. ``fn_fraction`` ``f``: per foreground class, mass left of ``x_f`` (the ``f``-quantile of the
       class's mass along x) is moved to the background with a soft cut ``sigmoid((x - x_f) / w)``.
    4. ``fp_area`` ``A``: the soft ball ``q = sigmoid(mu - rho / w)`` of mass ``A`` is added to
       class 1 (``p_1' = p_1 + (1 - p_1) q``, ``p_k' = p_k (1 - q)``), far from every object.
    5. ``shift_x``, ``shift_y``: translation with linear interpolation, border replicated.
    6. ``logit_scale`` ``t``: ``softmax(t log p)`` (``p^t`` renormalised; ``t = 0`` is uniform).
    7. ``noise`` ``sigma``: ``softmax(log(max(p, EPS)) + sigma * epsilon)`` with one seeded field
       ``epsilon ~ N(0, 1)`` of shape ``(C, *spatial)`` shared by all ``n`` outputs (common random
       numbers: the outputs differ only by ``sigma``, so a landscape along ``noise`` is smooth).

    Each stage is computed once per distinct combination of the amounts so far (a 41 x 41 grid of
    dilate x shift runs 41 dilations and 1681 shifts).

    Args:
        probs: ``(C, *spatial)`` probabilities, a binary foreground map, or a ``Prepared``.
        gt: the label map (places the false-positive blob away from every object).
        amounts: ``{name: number or 1-D tensor}``.
        seed: seed of the noise field.
        device: where to compute (default: where ``probs`` is; ``"auto"``: CUDA when available).
        cache: optional dict the caller keeps across calls on the same ``Prepared`` and ``seed``
            (e.g. the chunks of a landscape): the first active stage's rows are remembered per
            amount between two consecutive calls (only those the current call uses are kept).
    """
    prep = probs if isinstance(probs, Prepared) else prepare(probs, gt, device=device)
    base = prep.probs
    v, n = _batch_amounts(amounts, base.dtype, base.device)
    check_elements(prep.spatial, prep.num_classes, what="perturb.apply", batch=n)
    rows = base.unsqueeze(0)  # distinct intermediate results
    inverse = torch.zeros(n, dtype=torch.int64, device=base.device)  # sample -> row
    stage_fns = {"dilate": _stage_dilate, "softness": _stage_blur, "fn_fraction": _stage_cut,
                 "fp_area": _stage_blob, "shift_x": _stage_shift_x, "shift_y": _stage_shift_y,
                 "logit_scale": _stage_scale}
    for name in STAGES:
        amount = _active(v, name)
        if amount is None:
            continue
        _, value_idx = torch.unique(amount, return_inverse=True)
        keys, new_inverse = torch.unique(inverse * n + value_idx, return_inverse=True)
        first = torch.full((len(keys),), n, dtype=torch.int64, device=base.device)
        first.scatter_reduce_(0, new_inverse, torch.arange(n, device=base.device), reduce="amin")
        if name in ("shift_x", "shift_y"):  # the shift reads its source rows itself (no copy)
            rows = _shift_axis(rows, amount[first], -1 if name == "shift_x" else -2, inverse[first])
            inverse = new_inverse
            continue
        if cache is not None and name != "noise" and rows.data_ptr() == base.data_ptr():
            rows = _cached_first_stage(stage_fns[name], rows, amount[first], prep, name, cache)
            inverse = new_inverse
            continue
        src = rows.index_select(0, inverse[first]) if rows.shape[0] > 1 or len(keys) > 1 else rows
        if name == "noise":
            rows = _stage_noise(src, amount[first], seed, prep)
        else:
            rows = stage_fns[name](src, amount[first], prep)
        inverse = new_inverse
    if rows.shape[0] == n and torch.equal(inverse, torch.arange(n, device=base.device)):
        out = rows
    else:
        out = rows.index_select(0, inverse)
    return out if out.data_ptr() != base.data_ptr() else out.clone()


def perturb_prediction(probs, gt, seed: int = 0, **amounts) -> np.ndarray:
    """One perturbed prediction ``(C, *spatial)`` as a float32 numpy array (``apply`` with n = 1)."""
    out = apply(probs, gt, amounts, seed=seed, device="cpu")[0]
    return out.to(torch.float32).numpy()


__all__ = [
    "PERTURBATIONS",
    "Perturbation",
    "Prepared",
    "APPLY_WIDTH",
    "apply",
    "STAGES",
    "blob_level",
    "channel_argmax",
    "defaults",
    "far_point",
    "identity",
    "perturb_prediction",
    "prediction_from_gt",
    "prepare",
    "signed_distance",
]
