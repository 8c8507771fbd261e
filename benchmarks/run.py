"""`make bench`: speed of segloss_core against MONAI and naive loops, measured in one run.

Prints the machine, versions and torch thread count with every figure. Timings are medians of
interleaved repeats (ours, reference, ours, reference, ...), forward + backward unless stated.
Runs with plain torch too (e.g. on a GPU machine without MONAI/Streamlit): missing columns are
skipped. Usage: python benchmarks/run.py [--device cpu|cuda|auto] [--threads N] [--repeats R] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import segloss_core as sc  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def interleaved(fns: dict, device, repeats: int) -> dict[str, float]:
    """Median seconds per callable, calling them round-robin so drift hits all equally."""
    for f in fns.values():  # warm-up
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k].append(_time(f, device))
    return {k: statistics.median(v) for k, v in times.items()}


def monai_equivalents():
    """name -> (factory of a MONAI loss module, input kind 'probs' | 'logits'), settings matched."""
    try:
        import monai.losses as ml
    except ImportError:
        return {}
    s = dict(smooth_nr=1e-5, smooth_dr=1e-5)
    return {
        "dice": (lambda: ml.DiceLoss(**s), "probs"),
        "iou": (lambda: ml.DiceLoss(jaccard=True, **s), "probs"),
        "tversky": (lambda: ml.TverskyLoss(alpha=0.3, beta=0.7, **s), "probs"),
        "generalized_dice": (lambda: ml.GeneralizedDiceLoss(w_type="square", **s), "probs"),
        "focal": (lambda: ml.FocalLoss(use_softmax=True, gamma=2.0), "logits"),
        "dice_ce": (lambda: ml.DiceCELoss(softmax=True, **s), "logits"),
        "boundary": (lambda: ml.BoundaryLoss(include_background=False), "probs"),
        "hausdorff_dt": (lambda: ml.HausdorffDTLoss(include_background=False), "probs"),
    }


def bench_losses(device, repeats, shape=(4, 4, 256, 256)):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=g).to(device)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    target = sc.one_hot(labels, shape[1]).to(device)
    probs = torch.softmax(logits, 1)
    refs = monai_equivalents()
    rows = []
    for name in sc.list_losses():
        spec = sc.get_loss(name)
        if spec.binary_only:
            continue

        def ours(name=name):
            p = probs.detach().requires_grad_(True)
            sc.compute(name, p, target).backward()

        fns = {"ours": ours}
        if name in refs:
            factory, kind = refs[name]
            loss_mod = factory()

            def theirs(loss_mod=loss_mod, kind=kind):
                x = (probs if kind == "probs" else logits).detach().requires_grad_(True)
                loss_mod(x, target).backward()

            fns["monai"] = theirs
        reps = max(3, repeats // 4) if name in ("lovasz_softmax", "hausdorff_dt", "boundary", "dpce") else repeats
        t = interleaved(fns, device, reps)
        rows.append((name, t["ours"], t.get("monai")))
    return rows


def bench_table(device, repeats):
    from segloss_core import presets

    case = presets.make_case("disk", size=256)
    probs, target = case.tensors(device=device)

    def table():
        sc.compute_all(probs, target, spacing=case.spacing)

    return interleaved({"table": table}, device, repeats)["table"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip page timings")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = sc.resolve_device(args.device)
    repeats = 5 if args.quick else args.repeats
    print(f"segloss benchmark  {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus; device: {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    try:
        import monai
        mv = monai.__version__
    except ImportError:
        mv = "absent"
    print(f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"monai {mv}")
    print()
    print(f"Losses, forward+backward, shape (4, 4, 256, 256) float32, median of interleaved repeats ({repeats})")
    print(f"{'loss':<24}{'ours ms':>10}{'MONAI ms':>10}{'ours/MONAI':>12}")
    for name, ours, theirs in bench_losses(device, repeats):
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        tm = f"{theirs * 1e3:.1f}" if theirs else "-"
        print(f"{name:<24}{ours * 1e3:>10.1f}{tm:>10}{ratio:>12}")
    print()
    t = bench_table(device, repeats)
    print(f"All-losses table, 256x256 binary disk case: {t * 1e3:.1f} ms")
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_landscape

        print()
        bench_landscape.main(["--device", str(device)] + (["--quick"] if args.quick else []))
    except ImportError as err:
        print(f"(landscape benchmark unavailable: {err})")
    for extra in ("bench_pages", "bench_optimise", "bench_bias"):
        if args.quick and extra == "bench_pages":
            continue
        try:
            mod = __import__(extra)
        except ImportError:
            continue
        print()
        mod.main([])


if __name__ == "__main__":
    main()
