"""Parameterised ground-truth presets: the cases the app opens with, each teaching one thing.

``PRESETS[name].build(size=256, **params) -> (gt, class_names)`` returns an ``int64`` label map
``(size, size)`` (0 = background) and the class names (background first, at least two classes
even when a class is absent, so every loss is defined). ``make_case(name, ...)`` adds a soft
prediction made from the ground truth by :func:`segloss_core.data.perturb.prediction_from_gt`.

Geometry: the sizes of the disk, ring and two-blob presets are given in pixels of a 256 x 256 image
and scale with ``size`` (64..512), so those presets look the same at every resolution; thin and
tiny structures (vessel width, lesion radii) are in pixels of the output image. Shapes are drawn on
the pixel-centre grid ``(row, col)``; a disk of radius ``r`` centred at ``c`` is every pixel with
``(row - c_r)^2 + (col - c_c)^2 <= r^2``. Objects larger than the image are cropped by it.

>>> from segloss_core.data.presets import PRESETS, make_case
>>> gt, names = PRESETS["disk"].build(size=128, radius=20)
>>> case = make_case("ring", size=128, prediction={"shift_x": 2.0})
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.spec import ParamSpec, resolve_params
from .case import Case

SIZE_RANGE = (64, 512)
DEFAULT_SIZE = 256

#: Largest foreground fraction of the ``tiny_lesion`` preset (the radius is capped to keep it below).
TINY_FRACTION = 0.005


@dataclass(frozen=True)
class Preset:
    """One ground-truth generator.

    ``params`` describe the keyword arguments of ``build`` (beyond ``size``) with the registry's
    ``ParamSpec`` so the UI can build the widgets; ``prediction`` holds the perturbation amounts
    of the default prediction (see ``segloss_core.data.perturb.PERTURBATIONS``) chosen so that the
    first view already shows a mistake worth discussing.
    """

    name: str
    title: str
    caption: str
    generator: Callable[..., tuple[np.ndarray, tuple[str, ...]]]
    params: dict[str, ParamSpec] = field(default_factory=dict)
    prediction: dict[str, float] = field(default_factory=dict)
    image: Callable[[int], np.ndarray] | None = None
    #: name of a :mod:`segloss_core.analyses.claims` function giving the numbers behind the caption, computed
    #: live from the preset (no literal numbers in captions): :func:`segloss_core.analyses.claims.describe`.
    fact: str | None = None

    @property
    def doc(self) -> str:
        """How the ground truth is made (the generator's docstring)."""
        return (self.generator.__doc__ or "").strip()

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.params.items()}

    def resolve_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults updated with ``params`` (the losses' rules: :func:`segloss_core.core.spec.resolve_params`)."""
        return resolve_params(self.params, params, f"preset {self.name!r}")

    def build(self, size: int = DEFAULT_SIZE, **params) -> tuple[np.ndarray, tuple[str, ...]]:
        """``(gt, class_names)``: int64 label map ``(size, size)`` and the class names."""
        size = _check_size(size)
        gt, names = self.generator(size, **self.resolve_params(params))
        return np.ascontiguousarray(gt, dtype=np.int64), tuple(names)


def _check_size(size) -> int:
    try:
        s = int(size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be an integer, got {size!r}") from None
    if not SIZE_RANGE[0] <= s <= SIZE_RANGE[1]:
        raise ValueError(f"size must lie in {SIZE_RANGE[0]}..{SIZE_RANGE[1]} px, got {s}")
    return s


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    return yy.astype(np.float64), xx.astype(np.float64)


def _centre(size: int) -> float:
    return (size - 1) / 2.0


def _disk(size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = _grid(size)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# ---------------------------------------------------------------- generators


def _scale(size: int) -> float:
    return size / DEFAULT_SIZE


def _disk_gt(size: int, radius: float):
    """A disk of radius ``radius * size / 256`` px centred on the image centre
    ``((size-1)/2, (size-1)/2)``: label 1 = every pixel centre within that radius of the centre.
    """
    c = _centre(size)
    return _disk(size, c, c, radius * _scale(size)).astype(np.int64), ("background", "disk")


def _ring_gt(size: int, radius: float, thickness: float):
    """An annulus centred on the image centre: pixels whose distance ``r`` to the centre satisfies
    ``|r - radius| <= thickness / 2`` (``radius`` is the mid-line radius; both lengths are scaled by
    ``size / 256``)."""
    c = _centre(size)
    yy, xx = _grid(size)
    r = np.hypot(yy - c, xx - c)
    ring = np.abs(r - radius * _scale(size)) <= thickness * _scale(size) / 2.0
    return ring.astype(np.int64), ("background", "ring")


def _two_blobs_gt(size: int, big_radius: float, small_radius: float):
    """Two disks of very different size, one class: a big disk centred at ``(0.5, 0.35) * size``
    (row, col) and a small one at ``(0.5, 0.78) * size`` (radii scaled by ``size / 256``). Region
    losses averaged over one class weigh the small blob by its (tiny) share of the pixels."""
    k = _scale(size)
    gt = _disk(size, 0.5 * size, 0.35 * size, big_radius * k) | _disk(size, 0.5 * size, 0.78 * size, small_radius * k)
    return gt.astype(np.int64), ("background", "blobs")


def _vessel_points(size: int, amplitude: float, waves: float) -> np.ndarray:
    t = np.linspace(0.0, 1.0, 8 * size)
    cols = 0.08 * size + t * 0.84 * size
    rows = 0.5 * size + amplitude * size * np.sin(2 * np.pi * waves * t) + 0.1 * size * (t - 0.5)
    main = np.stack([rows, cols], 1)
    # a side branch leaving the main curve at 40 % of its length, bending upwards
    k = int(0.4 * len(t))
    s = np.linspace(0.0, 1.0, 3 * size)
    b_rows = main[k, 0] - s * 0.3 * size
    b_cols = main[k, 1] + 0.25 * size * np.sin(0.5 * np.pi * s)
    return np.concatenate([main, np.stack([b_rows, b_cols], 1)])


def _vessel_gt(size: int, thickness: float, amplitude: float, waves: float):
    """A thin curved vessel: every pixel within ``thickness / 2`` px of a polyline (sampled
    densely) made of a sine-like main curve ``row = 0.5 size + amplitude * size * sin(2 pi waves t)
    + 0.1 size (t - 1/2)``, ``col = (0.08 + 0.84 t) size`` for ``t`` in [0, 1], plus one side branch
    leaving it at ``t = 0.4`` and bending up by 0.3 size. What a 1-px shift costs in hard Dice,
    next to HD95, is computed live for the caption (:func:`segloss_core.analyses.claims.vessel_fact`)."""
    from scipy.spatial import cKDTree

    pts = _vessel_points(size, amplitude, waves)
    yy, xx = _grid(size)
    dist, _ = cKDTree(pts).query(np.stack([yy.ravel(), xx.ravel()], 1), distance_upper_bound=thickness / 2.0 + 1.0)
    gt = (dist.reshape(size, size) <= thickness / 2.0).astype(np.int64)
    return gt, ("background", "vessel")


def _tiny_lesion_gt(size: int, radius: float):
    """One small disk at ``(0.4, 0.6) * size`` (row, col). Its radius is capped at
    ``sqrt(0.005 size^2 / pi)`` so that the lesion stays below 0.5 % of the image at every size
    (and at least one pixel)."""
    r = min(float(radius), np.sqrt(TINY_FRACTION * size * size / np.pi) * 0.98)
    gt = _disk(size, 0.4 * size, 0.6 * size, r)
    if not gt.any():
        gt[int(0.4 * size), int(0.6 * size)] = True
    return gt.astype(np.int64), ("background", "lesion")


def _empty_gt(size: int):
    """No foreground at all: the label map is all zeros (two classes, the second absent).
    Region losses with smoothing, CE and the metrics each treat this case differently."""
    return np.zeros((size, size), np.int64), ("background", "foreground")


@functools.lru_cache(maxsize=4)
def _phantom_labels(size: int) -> np.ndarray:
    from scipy import ndimage
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    ph = np.round(shepp_logan_phantom(), 3)  # 400 x 400, intensities 0, 0.1, 0.2, 0.3, 0.4, 1
    labels = np.zeros(ph.shape, np.int64)
    labels[ph >= 0.95] = 1  # skull
    labels[np.isclose(ph, 0.2)] = 2  # brain tissue
    zero_parts, _ = ndimage.label(ph == 0)
    outside = np.unique(np.concatenate([zero_parts[0], zero_parts[-1], zero_parts[:, 0], zero_parts[:, -1]]))
    labels[(ph == 0) & ~np.isin(zero_parts, outside)] = 3  # ventricles: zero-intensity inside the head
    labels[(ph > 0.05) & (ph < 0.95) & ~np.isclose(ph, 0.2)] = 4  # small ellipses (0.1, 0.3, 0.4)
    out = resize(labels, (size, size), order=0, preserve_range=True, anti_aliasing=False)
    return out.astype(np.int64)


def _phantom_gt(size: int):
    """The Shepp-Logan phantom (``skimage.data.shepp_logan_phantom()``, 400 x 400) with its
    intensity regions as classes, then resized to ``size`` by nearest neighbour:
    0 background (zero intensity connected to the image border), 1 skull (intensity 1.0),
    2 brain tissue (0.2), 3 ventricles (zero intensity enclosed by the head),
    4 small structures (the ellipses of intensity 0.1, 0.3 and 0.4)."""
    names = ("background", "skull", "brain", "ventricles", "small structures")
    return _phantom_labels(size).copy(), names


def _phantom_image(size: int) -> np.ndarray:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return resize(shepp_logan_phantom(), (size, size), anti_aliasing=True).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _retina_gray(size: int) -> np.ndarray:
    from skimage.data import retina
    from skimage.transform import resize

    rgb = retina().astype(np.float64) / 255.0  # 1411 x 1411 x 3
    return resize(rgb.mean(-1), (size, size), anti_aliasing=True)


def _retina_gt(size: int, n_lesions: int, lesion_radius: float, lesion_seed: int):
    """Built from ``skimage.data.retina()`` (1411 x 1411 RGB fundus photograph), converted to grey
    (mean of R, G, B in [0, 1]) and resized to ``size`` with anti-aliasing. Classes:
    1 retina = the field of view, grey > 0.1, largest connected component, holes filled;
    2 optic disc = inside the field of view, the grey image smoothed by a Gaussian of sigma
    0.01 size, thresholded at its 99.3rd percentile within the field of view, largest component,
    then dilated by a disk of 0.01 size; 3 lesions = ``n_lesions`` disks of radius
    ``lesion_radius`` px at positions drawn with ``numpy.random.default_rng(lesion_seed)`` uniformly
    inside the field of view eroded by 0.08 size and at least 0.12 size away from the disc
    centre and 4 radii from each other; 0 background = outside the field of view."""
    from scipy import ndimage

    gray = _retina_gray(size)
    fov = gray > 0.1
    parts, n = ndimage.label(fov)
    if n > 1:
        fov = parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1)
    fov = ndimage.binary_fill_holes(fov)
    labels = fov.astype(np.int64)

    smooth = ndimage.gaussian_filter(gray, 0.01 * size)
    disc = fov & (smooth >= np.percentile(smooth[fov], 99.3))
    parts, n = ndimage.label(disc)
    if n > 1:
        disc = parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1)
    rd = max(1, round(0.01 * size))
    disc = ndimage.binary_dilation(disc, structure=_disk(2 * rd + 1, rd, rd, rd)) & fov
    labels[disc] = 2
    cy, cx = ndimage.center_of_mass(disc)

    inner = ndimage.binary_erosion(fov, iterations=max(1, round(0.08 * size)))
    yy, xx = _grid(size)
    allowed = inner & (np.hypot(yy - cy, xx - cx) > 0.12 * size)
    cand = np.flatnonzero(allowed)
    rng = np.random.default_rng(lesion_seed)
    centres: list[tuple[float, float]] = []
    for _ in range(200 * max(1, n_lesions)):
        if len(centres) >= n_lesions or cand.size == 0:
            break
        k = cand[rng.integers(cand.size)]
        y, x = divmod(int(k), size)
        if all(np.hypot(y - a, x - b) >= 4 * lesion_radius for a, b in centres):
            centres.append((float(y), float(x)))
    for y, x in centres:
        labels[_disk(size, y, x, lesion_radius)] = 3
    return labels, ("background", "retina", "optic disc", "lesions")


def _retina_image(size: int) -> np.ndarray:
    return _retina_gray(size).astype(np.float32)


# ---------------------------------------------------------------- the table

_R = ParamSpec


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "disk", "Disk",
            "One round object: the textbook case; shift or dilate the prediction and watch each loss react.",
            _disk_gt,
            {"radius": _R(64.0, "float", "disk radius (px at 256 x 256)", (1.0, 256.0), step=1.0)},
            prediction={"shift_x": 4.0, "dilate": 2.0},
        ),
        Preset(
            "ring", "Ring",
            "A hollow annulus: boundary errors dominate; a filled disk prediction is a big false positive.",
            _ring_gt,
            {"radius": _R(64.0, "float", "mid-line radius (px at 256 x 256)", (2.0, 256.0), step=1.0),
             "thickness": _R(12.0, "float", "ring width (px at 256 x 256)", (1.0, 128.0), step=1.0)},
            prediction={"dilate": 2.0},
        ),
        Preset(
            "two_blobs", "Two blobs (big and small)",
            "One class, two objects of very different size: Dice hardly notices the small one.",
            _two_blobs_gt,
            {"big_radius": _R(56.0, "float", "radius of the big disk (px at 256 x 256)", (2.0, 128.0), step=1.0),
             "small_radius": _R(6.0, "float", "radius of the small disk (px at 256 x 256)", (1.0, 64.0),
                                step=1.0)},
            prediction={"shift_x": 3.0},
            fact="two_blobs_fact",
        ),
        Preset(
            "vessel", "Thin vessel",
            "A thin curved structure: overlap metrics punish a shift that surface distances call small.",
            _vessel_gt,
            {"thickness": _R(3.0, "float", "vessel width (px)", (1.0, 20.0), step=0.5),
             "amplitude": _R(0.15, "float", "curve amplitude (fraction of the size)", (0.0, 0.3), step=0.01),
             "waves": _R(1.5, "float", "number of sine periods", (0.0, 4.0), step=0.25)},
            prediction={"shift_y": 1.0},
            fact="vessel_fact",
        ),
        Preset(
            "tiny_lesion", "Tiny lesion (< 0.5 %)",
            "A lesion under 0.5 % of the image: pixel-averaged losses hardly see it; foreground Dice sees nothing else.",
            _tiny_lesion_gt,
            {"radius": _R(5.0, "float", "lesion radius (px), capped to stay below 0.5 % of the image",
                          (1.0, 25.0), step=0.5)},
            prediction={"shift_x": 2.0},
            fact="tiny_lesion_fact",
        ),
        Preset(
            "empty", "Empty ground truth",
            "Nothing to find: each loss and metric handles an empty class differently (add a false positive).",
            _empty_gt,
            {},
            prediction={"fp_area": 50.0},
        ),
        Preset(
            "phantom", "Shepp-Logan phantom (5 classes)",
            "A multi-class head phantom: per-class averaging weights the small structures like the skull.",
            _phantom_gt,
            {},
            prediction={"dilate": 1.0},
            image=_phantom_image,
        ),
        Preset(
            "retina", "Retina with tiny lesions (4 classes)",
            "Real fundus geometry with a few tiny lesions: the big field of view dominates unweighted losses.",
            _retina_gt,
            {"n_lesions": _R(4, "int", "number of lesions", (1, 12)),
             "lesion_radius": _R(3.0, "float", "lesion radius (px)", (1.0, 10.0), step=0.5),
             "lesion_seed": _R(0, "int", "random seed of the lesion positions", (0, 10_000))},
            prediction={"shift_x": 1.0},
            image=_retina_image,
        ),
    )
}

DEFAULT_PRESET = "disk"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}") from None


def make_case(name: str = DEFAULT_PRESET, size: int = DEFAULT_SIZE, prediction: dict[str, float] | None = None,
              *, seed: int = 0, **params) -> Case:
    """The preset's ground truth with a soft prediction made from it.

    Args:
        name: a key of ``PRESETS``.
        size: image side in px (64..512).
        prediction: perturbation amounts for :func:`segloss_core.data.perturb.prediction_from_gt`
            (missing ones take ``PERTURBATIONS[k].default``); ``None`` uses the preset's own
            default prediction (``PRESETS[name].prediction``).
        seed: seed of the ``noise`` perturbation.
        **params: the preset's parameters (``PRESETS[name].params``).

    Returns:
        ``Case(gt, probs, name=..., class_names=...)`` with ``meta = {"preset", "size",
        "params", "prediction"}`` recording how it was made.
    """
    from .perturb import prediction_from_gt

    preset = get_preset(name)
    resolved = preset.resolve_params(params)
    gt, names = preset.build(size, **resolved)
    amounts = dict(preset.prediction if prediction is None else prediction)
    probs = prediction_from_gt(gt, len(names), seed=seed, **amounts)
    meta = {"preset": name, "size": int(size), "params": resolved, "prediction": amounts, "seed": seed}
    return Case(gt, probs, name=name, class_names=names, meta=meta)


__all__ = ["PRESETS", "Preset", "DEFAULT_PRESET", "SIZE_RANGE", "TINY_FRACTION", "get_preset", "make_case"]
