"""Benchmark: a 41 x 41 loss landscape vs the Python loop a user would write.

Case: the ``disk`` preset (binary) at 256 x 256 and 512 x 512, axes shift_x in [-10, 10] px x
dilate in [-8, 8] px, the six default losses (ce, dice, iou, tversky, focal, boundary) plus the
1 - Dice / 1 - Jaccard metric grids.

Baseline ("naive loop"): for every grid point, ``perturb.apply`` for that point, then
``segloss_core.compute`` once per loss and the hard Dice / Jaccard from
``segloss_core.core.metrics.confusion_counts`` on the arg-max (not ``sc.metrics``, whose surface
distances would make the baseline slower than what the landscape computes). It is timed on an
evenly spaced subsample of the grid points and extrapolated to the whole grid (printed as such).

Run: ``.venv/bin/python benchmarks/bench_landscape.py [--sizes 256 512] [--threads 1 2]
[--loop-points 60] [--device cpu]``. Prints seconds and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import segloss_core as sc  # noqa: E402
from segloss_core.analyses.landscape import DEFAULT_LOSSES, landscape  # noqa: E402
from segloss_core.core.metrics import confusion_counts  # noqa: E402
from segloss_core.data import perturb  # noqa: E402
from segloss_core.data.presets import make_case  # noqa: E402

N = 41
X = ("shift_x", -10.0, 10.0)
Y = ("dilate", -8.0, 8.0)


def naive_loop(case, points: int, device: str) -> tuple[float, float, int]:
    """Wall and CPU seconds per grid point of the per-point loop, measured on ``points`` grid points."""
    xs, ys = np.linspace(X[1], X[2], N), np.linspace(Y[1], Y[2], N)
    grid = [(x, y) for y in ys for x in xs]
    pick = np.linspace(0, len(grid) - 1, points).round().astype(int)
    _, target = case.tensors(device=device)
    t0, c0 = time.perf_counter(), time.process_time()
    for k in pick:
        x, y = grid[k]
        probs = perturb.apply(case.probs, case.gt, {X[0]: x, Y[0]: y}, device=device)
        for name in DEFAULT_LOSSES:
            float(sc.compute(name, probs, target))
        counts = confusion_counts(probs[0].argmax(0).cpu().numpy(), case.gt)
        _ = (2 * counts.tp / (2 * counts.tp + counts.fp + counts.fn), counts.tp / (counts.tp + counts.fp + counts.fn))
    return (time.perf_counter() - t0) / len(pick), (time.process_time() - c0) / len(pick), len(pick)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--loop-points", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, device {args.device}, grid {N}x{N}, axes {X[0]} x {Y[0]}, "
          f"losses {', '.join(DEFAULT_LOSSES)} + 1-Dice/1-Jaccard; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (wall times on a shared machine: CPU times are the steadier figure)",
          flush=True)
    for size in args.sizes:
        case = make_case("disk", size)
        for threads in args.threads:
            torch.set_num_threads(threads)
            landscape(case, x=X, y=Y, n=5, device=args.device)  # warm-up (distance-map cache, imports)
            best, best_cpu = np.inf, np.inf
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                res = landscape(case, x=X, y=Y, n=N, device=args.device)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
                best_cpu = min(best_cpu, time.process_time() - c0)
            per_point, per_point_cpu, measured = naive_loop(case, args.loop_points, args.device)
            loop_total, loop_cpu = per_point * N * N, per_point_cpu * N * N
            print(f"{size}x{size}  threads={threads}  landscape {best:6.2f} s wall ({best_cpu:.2f} s CPU)   "
                  f"naive loop {loop_total:7.1f} s wall ({loop_cpu:.1f} s CPU; extrapolated from {measured} of "
                  f"{N * N} points, {per_point * 1e3:.1f} ms/point)   speed-up {loop_total / best:5.1f}x wall, "
                  f"{loop_cpu / best_cpu:5.1f}x CPU   [{len(res.losses)} losses, metrics {sorted(res.metrics)}]",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
