"""Validation-set evaluation at scale: ``segloss evaluate --gt-dir --pred-dir`` serial, on a process pool
and on a local Dask cluster.

A synthetic nnU-Net-style data set is written to a temporary folder (not timed): ``--cases`` label
maps of ``--size``\\ :sup:`3` voxels (spacing 1 x 1 x 1.5 mm) with ``--classes`` classes (a large
ellipsoid "organ" and a small one "lesion" at random positions, so the phantom is smooth), and for
each an nnU-Net ``--save_probabilities`` export: float32 probabilities ``(C, z, y, x)`` from a
softmax of a shifted, blurred one-hot plus smooth noise. Then the real CLI runs in a subprocess
(start-up, imports, worker start-up and file reading included) with ``--jobs 1``, ``--jobs N`` and
``--dask local --jobs N``; the CSVs must agree to 1e-6 relative.

Figures: wall seconds, seconds per case, speed-up over ``--jobs 1`` and the scaling efficiency
``T(jobs 1) / (N x T)``. ``--jobs 1`` runs torch with its default thread count (printed), the
workers with one thread each, so the efficiency is what a user gains over the plain command.

Run: ``.venv/bin/python benchmarks/bench_dataset.py [--cases 50] [--size 128] [--workers 2]
[--losses fast|all|dice,ce]`` (also called by ``benchmarks/run.py --dataset``; with ``--quick``: 6 cases).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SPACING = (1.0, 1.0, 1.5)


def phantom(size: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(label map (x, y, z) uint8, probabilities (C, x, y, z) float32) of one synthetic case."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    grid = np.ogrid[:size, :size, :size]
    lab = np.zeros((size,) * 3, dtype=np.uint8)
    for label, scale in zip(range(1, classes), np.geomspace(0.3, 0.08, max(classes - 1, 1)), strict=False):
        centre = rng.uniform(0.35, 0.65, 3) * size
        radii = scale * size * rng.uniform(0.8, 1.2, 3)
        lab[sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1] = label
    shifted = np.roll(lab, tuple(int(s) for s in rng.integers(-3, 4, 3)), axis=(0, 1, 2))
    logits = np.empty((classes, *lab.shape), dtype=np.float32)
    for c in range(classes):
        noise = ndimage.gaussian_filter(rng.normal(0, 1, lab.shape).astype(np.float32), 4) * 6
        logits[c] = ndimage.gaussian_filter((shifted == c).astype(np.float32), 1.5) * 5 + noise
    logits -= logits.max(0)
    np.exp(logits, out=logits)
    logits /= logits.sum(0)
    return lab, logits


def write_dataset(folder: Path, cases: int, size: int, classes: int) -> float:
    """labels/*.nii.gz and predictions/*.npz (nnU-Net order) under ``folder``; returns seconds."""
    import nibabel as nib

    t0 = time.perf_counter()
    (folder / "labels").mkdir()
    (folder / "predictions").mkdir()
    for i in range(cases):
        lab, probs = phantom(size, classes, i)
        img = nib.Nifti1Image(lab, np.diag([*SPACING, 1.0]))
        img.header.set_zooms(SPACING)
        nib.save(img, str(folder / "labels" / f"case_{i:03d}.nii.gz"))
        np.savez_compressed(folder / "predictions" / f"case_{i:03d}.npz", probabilities=probs.transpose(0, 3, 2, 1))
    return time.perf_counter() - t0


def run_cli(folder: Path, out: Path, extra: list[str], losses: str) -> tuple[float, int, str]:
    cmd = [sys.executable, "-m", "segloss_core", "evaluate", "--gt-dir", str(folder / "labels"),
           "--pred-dir", str(folder / "predictions"), "--out", str(out), "--json", "--losses", losses, *extra]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - t0, res.returncode, res.stderr


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def max_rel_diff(a: list[dict], b: list[dict]) -> float:
    worst = 0.0
    for ra, rb in zip(a, b, strict=True):
        for k, va in ra.items():
            vb = rb[k]
            if k == "case" or (va == "" and vb == ""):
                continue
            if (va == "") != (vb == ""):
                return math.inf
            x, y = float(va), float(vb)
            worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-12))
    return worst


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--losses", default="fast",
                    help="comma-separated names, 'all', or 'fast' (default: every loss not flagged slow; "
                         "clDice's skeletons alone take ~20 s per 128^3 case)")
    args = ap.parse_args(argv)
    import torch

    import segloss_core as sc

    n = args.workers
    losses = args.losses
    if losses in ("fast", "all"):
        names = [k for k in sc.list_losses() if losses == "all" or not getattr(sc.get_loss(k), "slow", False)]
        losses = ",".join(names)
    print(f"Validation set: {args.cases} cases of {args.size}^3, {args.classes} classes, nnU-Net probabilities; "
          f"{len(losses.split(','))} losses ({args.losses}): {losses}; float64")
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__} with {torch.get_num_threads()} thread(s) for --jobs 1, 1 per worker")
    with tempfile.TemporaryDirectory(prefix="segloss-bench-") as tmp:
        folder = Path(tmp)
        print(f"writing the data set: {write_dataset(folder, args.cases, args.size, args.classes):.1f} s (not timed)",
              flush=True)
        modes = [("--jobs 1", []), (f"--jobs {n}", ["--jobs", str(n)]),
                 (f"--dask local ({n} workers)", ["--dask", "local", "--jobs", str(n)])]
        results = []
        for label, extra in modes:
            out = folder / f"out{len(results)}.csv"
            wall, rc, err = run_cli(folder, out, extra, losses)
            if rc != 0:
                print(f"{label}: exit {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")
                return
            results.append((label, wall, read_rows(out), 1 if not results else n))
    base = results[0][1]
    print(f"{'run':<26} {'wall s':>8} {'s/case':>8} {'speed-up':>9} {'efficiency':>10} {'max rel diff':>13}")
    for label, wall, rows, workers in results:
        diff = max_rel_diff(results[0][2], rows)
        print(f"{label:<26} {wall:8.1f} {wall / args.cases:8.2f} {base / wall:8.2f}x {base / (workers * wall):10.0%} "
              f"{diff:13.1e}")


if __name__ == "__main__":
    main()
