"""`make bench`: speed of segloss_core against MONAI and naive loops, measured in one run.

Prints the machine, versions and torch thread count with every figure. Timings are medians of
interleaved repeats (ours, reference, ours, reference, ...), forward + backward unless stated.
Runs with plain torch too (e.g. on a GPU machine without MONAI/Streamlit): missing columns are
skipped. Usage: python benchmarks/run.py [--device cpu|cuda|auto] [--threads N [N ...]] [--repeats R]
[--quick] [--no-browser] [--no-dataset] [--no-volume]. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# OpenMP worker threads spin while waiting by default; on a machine shared with other processes the
# spinning competes for the cores being measured. Must be set before torch starts OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import segloss_core as sc  # noqa: E402

SHAPE = (4, 4, 256, 256)
#: slow losses get a quarter of the repeats (at least 3)
SLOW = ("lovasz_softmax", "hausdorff_dt", "boundary", "dpce")
#: a ratio at or under this counts as "at MONAI's time" (timing noise on a shared machine)
NOISE = 1.1


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _cpu_clock():
    """CPU seconds of this thread with one torch thread (all the work runs in it), else of the process.

    Unlike wall time it does not count the time other processes hold the cores, so on a shared
    machine its ratios are the steadier figure (page faults and cache misses still count)."""
    return time.thread_time() if torch.get_num_threads() == 1 else time.process_time()


def interleaved(fns: dict, device, repeats: int, cpu: dict | None = None) -> dict[str, float]:
    """Median wall seconds per callable, calling them round-robin so drift hits all equally.

    ``cpu``, if given, receives the median CPU seconds (see :func:`_cpu_clock`) per callable."""
    for f in fns.values():  # warm-up
        f()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    busy: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            _sync(device)
            t0, c0 = time.perf_counter(), _cpu_clock()
            f()
            _sync(device)
            wall[k].append(time.perf_counter() - t0)
            busy[k].append(_cpu_clock() - c0)
    if cpu is not None:
        cpu.update({k: statistics.median(v) for k, v in busy.items()})
    return {k: statistics.median(v) for k, v in wall.items()}


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


def _inputs(device, shape=SHAPE):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=g).to(device)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    target = sc.one_hot(labels, shape[1]).to(device)
    return logits, torch.softmax(logits, 1), target


def bench_losses(device, repeats, shape=SHAPE):
    """``[(name, ours s, MONAI s or None, ours CPU s, MONAI CPU s or None)]`` for every non-binary loss."""
    logits, probs, target = _inputs(device, shape)
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
        reps = max(3, repeats // 4) if name in SLOW else repeats
        cpu: dict[str, float] = {}
        t = interleaved(fns, device, reps, cpu)
        rows.append((name, t["ours"], t.get("monai"), cpu["ours"], cpu.get("monai")))
    if "dice" in refs:
        # the target-only sums and checks are remembered per unmodified target tensor (segloss_core
        # ._tensors.tensor_memo); in training every step brings a new target: a new tensor each call
        fresh = {k: [target.clone() for _ in range(repeats + 1)] for k in ("ours", "monai")}
        loss_mod = refs["dice"][0]()

        def ours_fresh():
            p = probs.detach().requires_grad_(True)
            sc.compute("dice", p, fresh["ours"].pop()).backward()

        def theirs_fresh():
            p = probs.detach().requires_grad_(True)
            loss_mod(p, fresh["monai"].pop()).backward()

        cpu = {}
        t = interleaved({"ours": ours_fresh, "monai": theirs_fresh}, device, repeats, cpu)
        rows.append(("dice, new target tensor", t["ours"], t["monai"], cpu["ours"], cpu["monai"]))
    return rows


def print_losses(device, repeats) -> list[tuple[str, float]]:
    """The loss table at the current thread count; returns ``[(name, wall ratio)]`` of the MONAI rows."""
    print(f"Losses, forward+backward, shape {SHAPE} float32, {torch.get_num_threads()} torch thread(s), "
          f"median of interleaved repeats ({repeats}; {max(3, repeats // 4)} for {', '.join(SLOW)})")
    print(f"{'loss':<24}{'ours ms':>10}{'MONAI ms':>10}{'ours/MONAI':>12}{'CPU-time ratio':>16}")
    ratios = []
    for name, ours, theirs, ours_cpu, theirs_cpu in bench_losses(device, repeats):
        tm = f"{theirs * 1e3:.1f}" if theirs else "-"
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        cpu_ratio = f"{ours_cpu / theirs_cpu:.2f}x" if theirs and theirs_cpu else "-"
        print(f"{name:<24}{ours * 1e3:>10.1f}{tm:>10}{ratio:>12}{cpu_ratio:>16}", flush=True)
        if theirs:
            ratios.append((name, ours / theirs))
    if ratios:
        at = sum(r <= 1.0 for _, r in ratios)
        within = sum(r <= NOISE for _, r in ratios)
        worst = max(ratios, key=lambda x: x[1])
        print(f"MONAI-comparable rows: {at}/{len(ratios)} at or under 1.0x, {within}/{len(ratios)} within "
              f"{NOISE:.1f}x (noise); slowest relative: {worst[0]} {worst[1]:.2f}x")
    return ratios


def bench_distance(device, repeats, shape=SHAPE):
    """Boundary / Hausdorff-DT against MONAI with the distance-map cache cold, warm, and new predictions.

    ``cold``: the cache is emptied before every call (every map computed: the first call on a new
    case); ``warm``: the same ground truth and prediction again (the app re-evaluating one case);
    ``new pred``: the same ground truth, a different prediction every call (a training step: the
    GT maps come from the cache, the Hausdorff-DT prediction map is computed). MONAI recomputes
    every map in a per-image Python loop on every call."""
    from segloss_core.core.distance import clear_cache

    _, probs, target = _inputs(device, shape)
    preds = [torch.softmax(3 * target.roll(k, dims=-1) + torch.randn(target.shape, device=device), 1)
             for k in range(1, 8)]
    counter = [0]

    def run(fn, new_pred=False):
        p = probs
        if new_pred:
            counter[0] += 1
            p = preds[counter[0] % len(preds)]
        leaf = p.detach().requires_grad_(True)
        fn(leaf, target).backward()

    def ours(name):
        return lambda p, t: sc.compute(name, p, t)

    cases = {
        "boundary cold": lambda: (clear_cache(), run(ours("boundary"))),
        "boundary warm": lambda: run(ours("boundary")),
        "hausdorff_dt cold": lambda: (clear_cache(), run(ours("hausdorff_dt"))),
        "hausdorff_dt warm": lambda: run(ours("hausdorff_dt")),
        "hausdorff_dt new pred": lambda: run(ours("hausdorff_dt"), new_pred=True),
    }
    refs = monai_equivalents()
    if refs:
        mb, mh = refs["boundary"][0](), refs["hausdorff_dt"][0]()
        cases.update({
            "boundary MONAI": lambda: run(mb),
            "hausdorff_dt MONAI": lambda: run(mh),
            "hausdorff_dt MONAI new pred": lambda: run(mh, new_pred=True),
        })
    t = interleaved(cases, device, repeats)
    print(f"Distance-map losses, forward+backward, shape {shape} float32, {torch.get_num_threads()} torch "
          f"thread(s), median of {repeats} interleaved repeats")
    for k, v in t.items():
        base = None
        if refs and "MONAI" not in k:
            base = t[k.split()[0] + (" MONAI new pred" if "new pred" in k else " MONAI")]
        rel = f"   {v / base:.3f}x MONAI" if base else ""
        print(f"  {k:<30}{v * 1e3:9.1f} ms{rel}")


def bench_table(device, repeats) -> tuple[float, float]:
    """``compute_all`` on the 256 x 256 binary disk preset: (first call with empty caches, median warm call)."""
    from segloss_core.core.distance import clear_cache
    from segloss_core.data import presets

    case = presets.make_case("disk", size=256)
    probs, target = case.tensors(device=device)

    def table():
        sc.compute_all(probs, target, spacing=case.spacing)

    clear_cache()
    _sync(device)
    t0 = time.perf_counter()
    table()
    _sync(device)
    cold = time.perf_counter() - t0
    return cold, interleaved({"table": table}, device, repeats)["table"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="torch thread counts; the loss table is printed for each (default: 1 2)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--browser", action=argparse.BooleanOptionalAction, default=True,
                    help="latency budgets in Chromium (bench_browser.py; its --quick subset with --quick)")
    ap.add_argument("--dataset", action=argparse.BooleanOptionalAction, default=True,
                    help="validation-set CLI: 50 cases of 128^3 with --jobs 1, --jobs 2, --dask local "
                         "(bench_dataset.py; 6 cases with --quick)")
    ap.add_argument("--volume", action=argparse.BooleanOptionalAction, default=True,
                    help="3-D budget: segloss evaluate on a ~200^3 .nii.gz pair (wall, peak RSS, per loss) and "
                         "its upload in the app (bench_volume.py; binary pair, CLI only, with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="5 repeats, one thread count, small landscape run, no page timings")
    args = ap.parse_args(argv)
    device = sc.resolve_device(args.device)
    repeats = 5 if args.quick else args.repeats
    threads = args.threads[:1] if args.quick else args.threads
    print(f"segloss benchmark  {time.strftime('%Y-%m-%d %H:%M')}")
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()} {cpu} {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}; "
          f"device: {device}" + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    try:
        import monai
        mv = monai.__version__
    except ImportError:
        mv = "absent (MONAI columns skipped)"
    print(f"python {platform.python_version()}, torch {torch.__version__}, monai {mv}; "
          f"thread counts {', '.join(map(str, threads))}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    for n in threads:
        torch.set_num_threads(n)
        print()
        print_losses(device, repeats)
    torch.set_num_threads(threads[0])
    print()
    bench_distance(device, max(3, repeats // 3))
    print()
    cold, warm = bench_table(device, repeats)
    print(f"All-losses table (compute_all, {len(sc.list_losses())} losses), 256x256 binary disk case, "
          f"{torch.get_num_threads()} thread(s): {warm * 1e3:.1f} ms (median); first call with empty "
          f"distance-map cache {cold * 1e3:.1f} ms")
    print()
    try:
        import bench_landscape

        land = ["--device", str(device), "--threads", *map(str, threads)]
        if args.quick:
            land += ["--sizes", "256", "--loop-points", "10", "--repeats", "1"]
        bench_landscape.main(land)
    except ImportError as err:
        print(f"(landscape benchmark unavailable: {err})")
    for extra in ("bench_pages", "bench_optimise", "bench_bias"):
        if args.quick and extra == "bench_pages":
            continue
        try:
            mod = __import__(extra)
        except ImportError:
            continue
        print(flush=True)
        torch.set_num_threads(threads[0])
        mod.main([])
    if args.volume:
        import bench_volume

        print(flush=True)
        torch.set_num_threads(threads[0])
        vol = ["--device", str(device)] + ([] if device.type == "cpu" else ["--no-app"])
        bench_volume.main(vol + (["--classes", "2", "--no-stages", "--no-app"] if args.quick else []))
    if args.dataset:
        import bench_dataset

        print(flush=True)
        bench_dataset.main(["--cases", "6"] if args.quick else [])
    if args.browser and device.type == "cpu":
        import bench_browser

        print(flush=True)
        bench_browser.main(["--quick"] if args.quick else [])


if __name__ == "__main__":
    main()
