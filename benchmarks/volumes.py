"""Synthetic 3-D test volumes for the benchmarks: a smooth brain-sized phantom with soft predictions.

:func:`phantom` builds a ground-truth label map and a soft prediction of about 200^3 voxels
(197 x 233 x 189, the size of an MNI brain tissue map at 1 mm) from ellipsoids:

- binary: one ellipsoid with a low-frequency wobble on its surface;
- 3-class: an outer shell (label 1) around an inner ellipsoid (label 2), like grey / white matter.

The prediction is a softmax (binary: a sigmoid) of smooth implicit functions of a slightly shifted,
scaled and differently wobbled copy, so it disagrees with the ground truth near the surfaces and
saturates to exactly 0 / 1 a few voxels away (as a trained network's output does, which also keeps
the ``.nii.gz`` files far under the upload cap). :func:`write_pair` saves both as NIfTI with nibabel
(label map: uint8 ``(X, Y, Z)``; prediction: float32 ``(X, Y, Z)`` foreground map for binary,
``(X, Y, Z, C)`` class maps otherwise), the layout :mod:`segloss_core.data.files` reads.

Usage: ``python benchmarks/volumes.py OUTDIR [--classes 2|3]`` writes ``gt.nii.gz``, ``pred.nii.gz``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

SHAPE = (197, 233, 189)
SPACING = (1.0, 1.0, 1.0)
#: probabilities closer than this to 0 or 1 are set to exactly 0 or 1
SATURATE = 1e-4


def _grid(shape):
    """Normalised coordinates in [-1, 1] per axis, as broadcastable float32 arrays."""
    return [np.linspace(-1, 1, n, dtype=np.float32).reshape([-1 if i == a else 1 for i in range(3)])
            for a, n in enumerate(shape)]


def _ellipsoid(grid, centre, radii, wobble, phase):
    """Implicit function ``|x - c|_r - 1`` (negative inside) with a smooth surface wobble."""
    x, y, z = (g - c for g, c in zip(grid, centre, strict=True))
    r = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    bumps = wobble * (np.sin(3 * x + phase) * np.cos(2 * y - phase) + np.sin(4 * z + 2 * phase))
    return r - 1 + bumps


def _voxels(f, shape):
    """Implicit function in normalised units -> roughly voxel units (for the soft band's width)."""
    return f * (min(shape) / 2)


def phantom(num_classes: int = 2, shape=SHAPE, *, softness: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """``(gt, probs)``: uint8 labels ``shape`` and float32 probabilities ``(C, *shape)`` summing to 1.

    ``softness``: width (voxels) of the prediction's soft band around its surfaces.
    """
    if num_classes not in (2, 3):
        raise ValueError("num_classes must be 2 or 3")
    grid = _grid(shape)
    outer = _ellipsoid(grid, (0, 0, 0), (0.8, 0.85, 0.75), 0.03, 0.0)
    gt = (outer < 0).astype(np.uint8)
    # the prediction: shifted by a few voxels, a little larger, another wobble
    p_outer = _voxels(_ellipsoid(grid, (0.03, -0.02, 0.01), (0.82, 0.84, 0.77), 0.035, 0.7), shape)
    if num_classes == 2:
        del outer
        p = 1 / (1 + np.exp(np.clip(p_outer / softness, -60, 60)))
        p = p.astype(np.float32)
        probs = np.stack([1 - p, p])
    else:
        inner = _ellipsoid(grid, (0, 0.02, 0), (0.55, 0.6, 0.5), 0.04, 1.3)
        gt[inner < 0] = 2
        del outer, inner
        p_inner = _voxels(_ellipsoid(grid, (0.02, 0.0, -0.01), (0.57, 0.58, 0.52), 0.05, 2.1), shape)
        # logits: background outside the outer surface, class 2 inside the inner one, class 1 between
        logits = np.stack([p_outer, np.minimum(-p_outer, p_inner), -p_inner]) / np.float32(softness)
        del p_outer, p_inner
        logits -= logits.max(0, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(0, keepdims=True)
        probs = logits.astype(np.float32, copy=False)
    probs[probs < SATURATE] = 0
    probs[probs > 1 - SATURATE] = 1
    probs /= probs.sum(0, keepdims=True)
    return gt, probs


def write_pair(outdir, num_classes: int = 2, shape=SHAPE, spacing=SPACING) -> tuple[Path, Path]:
    """Write ``gt.nii.gz`` and ``pred.nii.gz`` of :func:`phantom` into ``outdir``; their paths."""
    import nibabel as nib

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    gt, probs = phantom(num_classes, shape)
    affine = np.diag([*spacing, 1.0])
    pred = probs[1] if num_classes == 2 else np.ascontiguousarray(np.moveaxis(probs, 0, -1))
    gt_path, pred_path = out / "gt.nii.gz", out / "pred.nii.gz"
    nib.save(nib.Nifti1Image(gt, affine), gt_path)
    nib.save(nib.Nifti1Image(pred.astype(np.float32), affine), pred_path)
    return gt_path, pred_path


def cached_pair(num_classes: int = 2, root=None) -> tuple[Path, Path]:
    """:func:`write_pair` into ``root`` (default: ``$TMPDIR/segloss-volumes/<C>class``), reused when present."""
    import tempfile

    base = Path(root or os.path.join(tempfile.gettempdir(), "segloss-volumes")) / f"{num_classes}class"
    gt, pred = base / "gt.nii.gz", base / "pred.nii.gz"
    if gt.exists() and pred.exists():
        return gt, pred
    return write_pair(base, num_classes)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--classes", type=int, default=2, choices=(2, 3))
    args = ap.parse_args(argv)
    for path in write_pair(args.outdir, args.classes):
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
