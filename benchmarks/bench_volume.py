"""3-D volume budget: ``segloss evaluate`` on a ~200^3 NIfTI pair, wall time, peak RSS, per-loss timings.

The pairs are :mod:`volumes` phantoms (197 x 233 x 189, soft probabilities; binary and 3-class),
written once as ``.nii.gz`` into the temporary folder. For each pair:

- the CLI as a user runs it (a fresh interpreter: ``python -m segloss_core evaluate --gt --pred``),
  wall seconds and peak RSS from ``/usr/bin/time -v`` (``resource.getrusage`` of the child when
  that is missing), median of ``--repeats`` runs; budget 10 s and 1 GB;
- in this process, the stages of that command: reading both files, building the tensors, every
  loss alone (a fresh target tensor each, so nothing is shared with the previous loss: the cost a
  loss adds on its own), all losses in one ``compute_all`` call (shared work done once), and the
  metrics; wall and CPU seconds.

Every line carries the 1-minute load average (this machine is shared; CPU seconds are steadier than
wall seconds under load). Usage: ``python benchmarks/bench_volume.py [--classes 2 3] [--repeats 1]
[--no-stages] [--losses a,b]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import volumes  # noqa: E402

WALL_BUDGET_S = 10.0
RSS_BUDGET_MB = 1024.0


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def run_cli(gt: Path, pred: Path, extra=()) -> tuple[float, float, float, int]:
    """``(wall s, peak RSS MiB, CPU s, exit status)`` of one fresh ``segloss evaluate``."""
    cmd = [sys.executable, "-m", "segloss_core", "evaluate", "--gt", str(gt), "--pred", str(pred), *extra]
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    if timer:
        t0 = time.perf_counter()
        proc = subprocess.run([timer, "-v", *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - t0
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        user = re.search(r"User time \(seconds\): ([\d.]+)", proc.stderr)
        system = re.search(r"System time \(seconds\): ([\d.]+)", proc.stderr)
        cpu = float(user.group(1)) + float(system.group(1)) if user and system else float("nan")
        return wall, int(rss.group(1)) / 1024 if rss else float("nan"), cpu, proc.returncode
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, after.ru_maxrss / 1024, cpu, proc.returncode


def _timed(fn):
    import torch

    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0, time.process_time() - c0


def stages(gt: Path, pred: Path, names=None, device: str = "cpu") -> list[tuple[str, float, float]]:
    """``[(stage, wall s, CPU s)]`` of the evaluate command's stages, in this process, on ``device``."""
    import segloss_core as sc
    from segloss_core import cli
    from segloss_core.core.distance import clear_cache
    from segloss_core.data import files as sio

    rows = []
    data = (sio.read_path(gt), sio.read_path(pred))
    case, w, c = _timed(lambda: sio.read_case(*data, gt_name=gt.name, pred_name=pred.name))
    rows.append(("read both files (.nii.gz)", w, c))
    (probs, target), w, c = _timed(lambda: case.tensors(device=device))
    rows.append((f"tensors (on {device})", w, c))
    names = names or sc.list_losses()
    for name in names:
        clear_cache()
        fresh = target.clone()  # no per-target memo shared with the previous loss
        _, w, c = _timed(lambda name=name, fresh=fresh: sc.compute_all(probs, fresh, [name], spacing=case.spacing))
        rows.append((f"  {name} alone", w, c))
    clear_cache()
    fresh = target.clone()
    _, w, c = _timed(lambda: sc.compute_all(probs, fresh, names, spacing=case.spacing))
    rows.append((f"all {len(names)} losses (compute_all)", w, c))
    _, w, c = _timed(lambda: cli._metrics(case))
    rows.append(("metrics", w, c))
    return rows


PAGES = ("playground", "gradients", "landscape", "bias", "agreement", "optimise", "dataset")


def app_upload(gt: Path, pred: Path, pages=PAGES) -> list[tuple[str, float, float]]:
    """``[(step, wall s, CPU s)]`` of the app (Streamlit's AppTest, in this process, caches cold):
    the upload of the pair in the sidebar until the first page (the Playground) has run, then
    every page opened once. AppTest leaves out the websocket and the browser's rendering
    (``bench_browser.py`` measures those)."""
    from streamlit.testing.v1 import AppTest

    from ui.pages_mode import navigation_mode

    rows = []
    with navigation_mode():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.run()
        at.radio(key="case_mode").set_value("Upload").run()
        at.file_uploader(key="upload_gt").set_value((gt.name, gt.read_bytes(), "application/gzip"))
        at.file_uploader(key="upload_pred").set_value((pred.name, pred.read_bytes(), "application/gzip"))
        _, w, c = _timed(at.run)
        errors = [e.value for e in [*at.exception, *at.error]]
        rows.append(("upload -> Playground settled" + (f" (ERROR: {errors[0][:60]})" if errors else ""), w, c))
        for page in pages[1:]:
            at.switch_page(f"pages/{page}.py")
            _, w, c = _timed(at.run)
            errors = [e.value for e in [*at.exception, *at.error]]
            rows.append((f"open {page}" + (f" (ERROR: {errors[0][:60]})" if errors else ""), w, c))
        at.switch_page("pages/playground.py")
        _, w, c = _timed(at.run)
        rows.append(("open playground again", w, c))
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, nargs="+", default=[2, 3], choices=(2, 3))
    ap.add_argument("--repeats", type=int, default=1, help="CLI runs per pair (median reported)")
    ap.add_argument("--stages", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the stages and every loss in this process")
    ap.add_argument("--losses", help="comma-separated losses for the stage timings (default: all)")
    ap.add_argument("--device", default="cpu", help="device of the CLI runs (--device) and the stage timings")
    ap.add_argument("--app", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the app: upload in the sidebar, then every page (AppTest)")
    args = ap.parse_args(argv)
    print(f"3-D volume: segloss evaluate on a {'x'.join(map(str, volumes.SHAPE))} phantom pair "
          f"(.nii.gz), {os.cpu_count()} cpus; budget {WALL_BUDGET_S:g} s wall, {RSS_BUDGET_MB:g} MiB peak RSS")
    results = {}
    for c in args.classes:
        gt, pred = volumes.cached_pair(c)
        size = (gt.stat().st_size + pred.stat().st_size) / 2**20
        runs = [run_cli(gt, pred, ("--device", args.device)) for _ in range(max(1, args.repeats))]
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        ok = all(r[3] == 0 for r in runs)
        verdict = "within budget" if ok and wall <= WALL_BUDGET_S and rss <= RSS_BUDGET_MB else "OVER BUDGET"
        print(f"\n{c}-class pair ({size:.1f} MB on disk): CLI {wall:.1f} s wall, {cpu:.1f} s CPU, "
              f"peak RSS {rss:.0f} MiB ({_load()}, {len(runs)} run(s)){'' if ok else ', FAILED'}: {verdict}")
        results[c] = {"wall_s": wall, "rss_mb": rss, "cpu_s": cpu, "ok": ok}
        if args.stages:
            names = args.losses.split(",") if args.losses else None
            print(f"  {'stage (in process)':<40} {'wall s':>7} {'CPU s':>7}")
            for stage, w, cs in stages(gt, pred, names, args.device):
                print(f"  {stage:<40} {w:7.2f} {cs:7.2f}")
            print(f"  ({_load()})")
        if args.app:
            print(f"  {'app (AppTest, budget 5 s upload, 3 s per page)':<40} {'wall s':>7} {'CPU s':>7}")
            for step, w, cs in app_upload(gt, pred):
                print(f"  {step:<40} {w:7.2f} {cs:7.2f}", flush=True)
            print(f"  ({_load()})")
    return results


if __name__ == "__main__":
    main()
