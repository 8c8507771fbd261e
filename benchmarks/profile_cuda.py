"""Where a region loss's time goes on a GPU: segloss against MONAI, forward + backward.

For each loss and each way of calling it (``sc.compute``; the loss function itself, which validates
its inputs; the loss function with validation skipped, as inside the engine; MONAI's module with the
same settings) it prints the median wall time of ``--repeats`` calls (each synchronised), and from
one profiled call the number of operators, CUDA kernel launches and host-device synchronisations
(``cudaStreamSynchronize``, ``cudaDeviceSynchronize``, device-to-host copies). On a GPU a small loss is
bound by the host: every operator costs a launch, every synchronisation a round trip.

Usage: ``python benchmarks/profile_cuda.py [--shape 4 4 256 256] [--repeats 50] [--losses dice,iou]``.
Runs on the CPU too (no kernel counts there).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import monai_equivalents  # noqa: E402

import segloss_core as sc  # noqa: E402
from segloss_core.core._tensors import trusted  # noqa: E402

SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def _inputs(device, shape):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=g).to(device)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    return logits, torch.softmax(logits, 1), sc.one_hot(labels, shape[1]).to(device)


def _callers(name: str, logits, probs, target) -> dict:
    spec = sc.get_loss(name)
    kw = spec.resolve_params({})

    def compute():
        sc.compute(name, probs.detach().requires_grad_(True), target).backward()

    def validated():
        spec.fn(probs.detach().requires_grad_(True), target, **kw).backward()

    def unchecked():
        with trusted():
            spec.fn(probs.detach().requires_grad_(True), target, **kw).backward()

    out = {"sc.compute": compute, "loss fn": validated, "loss fn, no validation": unchecked}
    ref = monai_equivalents().get(name)
    if ref is not None:
        module, kind = ref[0](), ref[1]

        def monai():
            module((probs if kind == "probs" else logits).detach().requires_grad_(True), target).backward()

        out["MONAI"] = monai
    return out


def _median_ms(fn, device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _counts(fn, device) -> tuple[int, int, int]:
    """(operators, kernel launches, synchronisations) of one call."""
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    ops = launches = syncs = 0
    for e in prof.key_averages():
        if e.key.startswith("aten::"):
            ops += e.count
        elif "LaunchKernel" in e.key:
            launches += e.count
        elif e.key in SYNCS or e.key.startswith("cudaMemcpy"):
            syncs += e.count
    return ops, launches, syncs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--shape", type=int, nargs="+", default=[4, 4, 256, 256])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--losses", default="dice,iou,tversky,generalized_dice,focal,dice_ce,ce")
    args = ap.parse_args(argv)
    device = sc.resolve_device(args.device)
    logits, probs, target = _inputs(device, tuple(args.shape))
    name_dev = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"shape {tuple(args.shape)} float32 on {device} ({name_dev}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median of {args.repeats} synchronised calls; counts from one call")
    print(f"{'loss':<18}{'caller':<24}{'ms':>8}{'ops':>6}{'kernels':>9}{'syncs':>7}")
    for name in args.losses.split(","):
        for label, fn in _callers(name, logits, probs, target).items():
            for _ in range(5):
                fn()
            ms = _median_ms(fn, device, args.repeats)
            ops, launches, syncs = _counts(fn, device)
            print(f"{name:<18}{label:<24}{ms:8.3f}{ops:6d}{launches:9d}{syncs:7d}", flush=True)


if __name__ == "__main__":
    main()
