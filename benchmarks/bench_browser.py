"""Latency of the served app in a real browser (Playwright in Debian's /usr/bin/chromium), against
the latency budgets, plus the CLI and ``sc.landscape`` rows of the same budget table.

Each browser figure is the time a user waits: from the action (page load, sidebar click, one
arrow-key step on a slider, a file upload) until the page has *settled*: Streamlit's script state
is ``notRunning`` again after a run the action started, no skeleton, spinner, progress bar or
stale element is left, and every visible Plotly chart has drawn (see ``browser_harness``). The
server is ``streamlit run app.py`` with the app's own ``.streamlit/config.toml`` and thread
settings, started fresh by this script.

Row groups (``--only`` takes one or more, comma-separated; default all):

=========  =========================================================================================
start      server start until ``/_stcore/health`` answers; the first visit (load until settled)
pages      opening each page from the sidebar (disk preset), in navigation order, then Playground
nudge      one ArrowRight step of the sidebar ``shift x`` slider on each page (disk preset)
controls   Playground parameter slider (focal gamma), gradient inspector and profile sliders, and one
           step up from the default of the larger computations: landscape grid size (21 -> 31),
           training steps (200 -> 210), population size (Predictions 100 -> 200)
phantom    the 5-class phantom preset on the Playground, then a ``shift x`` nudge there
upload3d   a 197 x 233 x 189 ``.nii.gz`` label map + probability map (smooth phantom, binary and
           3-class): from the ground truth's upload until the first view settles, then every page
evaluate   ``segloss evaluate`` on the 3-D pairs: wall (interpreter start included) and peak RSS
landscape  ``sc.landscape`` 41 x 41 at 256^2, six default losses, first call in a fresh process,
           float32 and float64 input
sessions   20 sessions arriving over 10 s on a fresh server, each opening every page; one shared
           case, then each its own case (preset + slider values). By default the 20 are protocol
           clients (``ws_client.py``: what the server gives a browser, from the request until the
           script finished) plus one real Chromium session among them (until settled, drawing
           included); ``--sessions-browser chromium``: 20 Chromium sessions on this machine. p50 /
           p95 page time, server and client CPU-seconds per page open; every page must show its
           own case fingerprint
=========  =========================================================================================

``--quick``: start, pages, nudge, controls and landscape. Output: a markdown table (row, budget,
measured, pass/fail, note); ``--json PATH`` also writes the rows as JSON. Timings on a shared
machine swing by +-50 %: compare before/after from one run.

Run: ``.venv/bin/python benchmarks/bench_browser.py [--quick] [--only pages,nudge] [--json out.json]
[--sessions-browser protocol|chromium]``
(``make bench`` runs it through ``benchmarks/run.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_harness import (  # noqa: E402
    CHROMIUM,
    LAUNCH_ARGS,
    ROOT,
    SETTLE_INIT_JS,
    SETTLED_JS,
    js_now,
    launch_browser,
    script_done_seconds,
    settle_seconds,
    start_server,
    stop_server,
)

GROUPS = ("start", "pages", "nudge", "controls", "phantom", "upload3d", "evaluate", "landscape", "sessions")
QUICK = ("start", "pages", "nudge", "controls", "landscape")
#: navigation labels in app.py's order (its st.Page titles)
PAGES = tuple(re.findall(r"""st\.Page\(\s*["'][^"']+["']\s*,\s*title=["']([^"']+)["']""",
                         (ROOT / "app.py").read_text()))
VIEWPORT = {"width": 1400, "height": 1000}
VOLUME_SHAPE = (197, 233, 189)
PAGE_TIMEOUT_S = 300.0


@dataclass
class Row:
    group: str
    name: str
    budget: float | None  # seconds (MB for memory rows); None: reported only
    measured: float | None
    unit: str = "s"
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "error"
        if self.budget is None:
            return "-"
        return "pass" if self.measured <= self.budget else "FAIL"


ROWS: list[Row] = []


def report(group: str, name: str, budget: float | None, measured: float | None, unit: str = "s",
           note: str = "") -> None:
    if unit == "s" and group not in ("evaluate", "landscape", "sessions") and LAST_SPLIT[0]:
        note = "; ".join(x for x in (LAST_SPLIT[0], note) if x)
    LAST_SPLIT[0] = ""
    row = Row(group, name, budget, None if measured is None or measured == float("inf") else measured, unit,
              note if measured != float("inf") else (note + "; did not settle").strip("; "))
    ROWS.append(row)
    shown = "-" if row.measured is None else f"{row.measured:.2f} {unit}"
    print(f"  {name:<52} {shown:>11}  (budget {'-' if budget is None else f'{budget:g} {unit}'}) "
          f"{row.verdict} {row.note}", flush=True)


# ----------------------------------------------------------------------------- browser actions


def new_page(browser):
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    ctx.add_init_script(SETTLE_INIT_JS)
    return ctx, ctx.new_page()


def progress_seen(page, mark: float) -> bool:
    return page.evaluate("(m) => (window.__segloss.progress || []).some(t => t >= m)", mark)


#: "script done at X s" of the last :func:`timed` action (the rest of its figure is drawing)
LAST_SPLIT: list[str] = [""]


def timed(page, action, **kw) -> float:
    """Seconds from just before ``action()`` until the page settled."""
    mark = js_now(page)
    action()
    secs = settle_seconds(page, mark, timeout_s=PAGE_TIMEOUT_S, **kw)
    done = script_done_seconds(page, mark)
    LAST_SPLIT[0] = "" if done is None or secs == float("inf") else f"script done at {min(done, secs):.2f} s"
    if page_error(page):
        LAST_SPLIT[0] = "; ".join(x for x in (LAST_SPLIT[0], "THE PAGE SHOWS AN ERROR") if x)
    return secs


def page_error(page) -> bool:
    """An exception element or the app's panel error message ("Something went wrong ...") on the page."""
    return page.evaluate("() => !!document.querySelector('[data-testid=\"stException\"]')"
                         " || /Something went wrong|Traceback/.test(document.body.innerText)")


def click_nav(page, label: str) -> float:
    link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=label).first
    return timed(page, link.click)


def slider_thumb(page, label: str, where: str = ""):
    slider = page.locator(f'{where} [data-testid="stSlider"]'.strip()).filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile(label)))
    return slider.first.locator('input[type="range"]')


def nudge(page, label: str, where: str = "", key: str = "ArrowRight") -> float:
    thumb = slider_thumb(page, label, where)
    thumb.scroll_into_view_if_needed()
    thumb.focus()
    return timed(page, lambda: page.keyboard.press(key))


def pick(page, label: str, option: str, where: str = "") -> float:
    box = page.locator(f'{where} [data-testid="stSelectbox"]'.strip()).filter(has_text=label).first
    box.scroll_into_view_if_needed()
    box.click()
    opt = page.get_by_role("option", name=option, exact=True).first
    return timed(page, opt.click)


# ----------------------------------------------------------------------------- single-user rows


def single_user(browser, server, groups) -> None:
    ctx, page = new_page(browser)
    try:
        page.goto(server.url + "/", timeout=PAGE_TIMEOUT_S * 1000)
        first = settle_seconds(page, 0.0, timeout_s=PAGE_TIMEOUT_S)
        done = script_done_seconds(page, 0.0)
        LAST_SPLIT[0] = "" if done is None else f"script done at {min(done, first):.2f} s"
        if "start" in groups:
            report("start", "first visit (load until settled)", 4.0, first)
        for label in PAGES[1:] + PAGES[:1]:
            secs = click_nav(page, label)
            if "pages" in groups:
                report("pages", f"open {label}", 1.5, secs)
            if "nudge" in groups:
                budget = 0.5 if label == "Playground" else 1.0
                report("nudge", f"shift-x nudge on {label}", budget, nudge(page, "^shift x", '[data-testid="stSidebar"]'))
            if "controls" in groups:
                controls(page, label)
        if "phantom" in groups:
            secs = pick(page, "Preset", "phantom", '[data-testid="stSidebar"]')
            report("phantom", "Playground: switch to the 5-class phantom", None, secs)
            report("phantom", "shift-x nudge on Playground (phantom)", 0.5,
                   nudge(page, "^shift x", '[data-testid="stSidebar"]'))
    finally:
        ctx.close()


def controls(page, label: str) -> None:
    main = '[data-testid="stMain"]'
    if label == "Playground":
        pick(page, "Loss to edit", "Focal loss", main)
        report("controls", "Playground parameter slider (focal gamma)", 0.5, nudge(page, "^gamma", main))
    elif label == "Gradient maps":
        report("controls", "Gradient inspector slider (y row)", 0.5, nudge(page, r"^y \(row\)", main))
        report("controls", "Gradient profile slider (position)", 0.5, nudge(page, r"^Position", main))
    elif label == "Loss landscapes":
        mark = js_now(page)
        secs = nudge(page, "^Grid points per axis", main)
        report("controls", "Landscape grid size 21 -> 31", 3.0, secs,
               note="progress shown" if progress_seen(page, mark) else "no progress element seen")
    elif label == "Metric agreement":
        mark = js_now(page)
        secs = nudge(page, "^Predictions", main)
        report("controls", "Agreement population 100 -> 200 predictions", 3.0, secs,
               note="progress shown" if progress_seen(page, mark) else "no progress element seen")
    elif label == "What-if training":
        mark = js_now(page)
        secs = nudge(page, "^Steps$", main)
        report("controls", "Training steps 200 -> 210", 3.0, secs,
               note="progress shown" if progress_seen(page, mark) else "no progress element seen")


# ----------------------------------------------------------------------------- 3-D volumes


def make_volumes(folder: Path, shape=VOLUME_SHAPE) -> dict[str, tuple[Path, Path]]:
    """Smooth 3-D phantoms (ellipsoids) with soft probabilities: ``{"binary"|"3-class": (gt, pred)}``.

    Probabilities are sigmoids / softmaxes of smooth implicit functions of a shifted, slightly
    larger copy, rounded to 1/255 so the .nii.gz stays under the upload cap."""
    import nibabel as nib
    import numpy as np

    zz, yy, xx = np.meshgrid(*(np.linspace(-1, 1, s, dtype=np.float32) for s in shape), indexing="ij")

    def blob(cz, cy, cx, rz, ry, rx):
        return 1.0 - ((zz - cz) / rz) ** 2 - ((yy - cy) / ry) ** 2 - ((xx - cx) / rx) ** 2

    outer = blob(0, 0, 0, 0.7, 0.75, 0.65)
    inner = blob(0.1, -0.05, 0.05, 0.3, 0.28, 0.32)
    outer_p = blob(0.03, 0.02, 0, 0.72, 0.74, 0.66)
    inner_p = blob(0.13, -0.02, 0.05, 0.28, 0.3, 0.3)
    affine = np.diag([1.0, 1.0, 1.2, 1.0])
    out = {}
    q = lambda a: (np.round(a * 255) / 255).astype(np.float32)  # noqa: E731
    gt_bin = (outer > 0).astype(np.uint8)
    p_bin = q(1 / (1 + np.exp(-8 * outer_p)))
    gt3 = gt_bin + (inner > 0).astype(np.uint8)
    logits = np.stack([np.zeros_like(outer), 8 * outer_p, 8 * outer_p + 12 * inner_p - 2], -1)
    logits -= logits.max(-1, keepdims=True)
    e = np.exp(logits)
    p3 = q(e / e.sum(-1, keepdims=True))
    p3[..., 0] = 1 - p3[..., 1] - p3[..., 2]
    for name, gt, pred in (("binary", gt_bin, p_bin), ("3-class", gt3, np.clip(p3, 0, 1))):
        g, p = folder / f"{name}_gt.nii.gz", folder / f"{name}_pred.nii.gz"
        nib.save(nib.Nifti1Image(gt, affine), g)
        nib.save(nib.Nifti1Image(pred, affine), p)
        out[name] = (g, p)
    return out


def upload_3d(browser, server, volumes) -> None:
    for kind, (gt, pred) in volumes.items():
        ctx, page = new_page(browser)
        try:
            page.goto(server.url + "/", timeout=PAGE_TIMEOUT_S * 1000)
            settle_seconds(page, 0.0, timeout_s=PAGE_TIMEOUT_S)
            radio = page.locator('[data-testid="stSidebar"] [data-testid="stRadio"] label').filter(has_text="Upload")
            timed(page, radio.first.click)
            inputs = page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]')
            # the prediction first (alone it computes nothing); the clock runs from the ground truth
            timed(page, lambda inputs=inputs, pred=pred: inputs.nth(1).set_input_files(str(pred)))
            mark = js_now(page)
            inputs.nth(0).set_input_files(str(gt))
            secs = settle_seconds(page, mark, timeout_s=PAGE_TIMEOUT_S)
            done = script_done_seconds(page, mark)
            LAST_SPLIT[0] = "" if done is None else f"script done at {min(done, secs):.2f} s"
            mb = (gt.stat().st_size + pred.stat().st_size) / 2**20
            bad = page.get_by_text("Upload rejected").count()
            report("upload3d", f"3-D {kind}: upload until the first view settles", 5.0, secs,
                   note=("REJECTED; " if bad else "") + f"{mb:.0f} MB of .nii.gz"
                   + ("; progress shown" if progress_seen(page, mark) else "; no progress element seen"))
            for label in PAGES[1:] + PAGES[:1]:
                report("upload3d", f"3-D {kind}: open {label}", 3.0, click_nav(page, label))
        finally:
            ctx.close()


def evaluate_3d(volumes) -> None:
    exe = Path(sys.executable).with_name("segloss")
    for kind, (gt, pred) in volumes.items():
        cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "segloss_core"]),
               "evaluate", "--gt", str(gt), "--pred", str(pred)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        ok = os.waitstatus_to_exitcode(status) == 0
        note = "" if ok else "exit status != 0: " + out.decode(errors="replace").strip().splitlines()[-1][:80]
        report("evaluate", f"segloss evaluate, 3-D {kind}: wall", 10.0, wall if ok else None, note=note)
        report("evaluate", f"segloss evaluate, 3-D {kind}: peak RSS", 1024.0, usage.ru_maxrss / 1024, "MB", note)


# ----------------------------------------------------------------------------- landscape


LANDSCAPE_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import segloss_core as sc
from segloss_core.data.presets import make_case
case = make_case("disk", size=256)
probs = case.probs.astype(np.{dtype})
t1 = time.perf_counter()
res = sc.landscape(probs, case.gt, n=41, device="cpu")
t2 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "first": t2 - t1, "losses": list(res.losses)}}))
"""


def landscape_rows() -> None:
    for dtype, budget in (("float32", 1.0), ("float64", 2.0)):
        out = subprocess.run([sys.executable, "-c", LANDSCAPE_SNIPPET.format(dtype=dtype)], cwd=ROOT,
                             capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        try:
            res = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            report("landscape", f"sc.landscape 41x41 256^2 first call, {dtype}", budget, None,
                   note=(out.stderr.strip().splitlines() or ["no output"])[-1][:80])
            continue
        report("landscape", f"sc.landscape 41x41 256^2 first call, {dtype}", budget, res["first"],
               note=f"fresh process, imports + case {res['imports']:.1f} s before it; {len(res['losses'])} losses")


# ----------------------------------------------------------------------------- 20 sessions


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its threads and its waited-for children (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _descendants_cpu(root: int, exclude) -> float:
    """CPU seconds of every process below ``root`` except the subtrees of ``exclude`` (the servers)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    total = 0.0
    for pid in parent:
        p = pid
        while p in parent and p not in (root, *exclude, 0, 1):
            p = parent[p]
        if p == root and pid != root:
            try:
                total += _cpu_seconds(pid)
            except OSError:
                pass
    return total


SERVER_PIDS: list[int] = []
#: how the sessions group drives its sessions: "protocol" (websocket clients + one Chromium) or "chromium"
SESSIONS_BROWSER = ["protocol"]
FINGERPRINT_RE = re.compile(r"\bcase ([0-9a-f]{8})\b")


#: The first load's static files (HTML, JS, CSS, fonts from the server): when the entry script had
#: arrived, and the slowest file (request until response end), from the Resource Timing API
STATIC_TIMING_JS = """
() => {
  const files = performance.getEntriesByType('resource').filter(e => e.name.includes('/static/'));
  if (!files.length) return '';
  const nav = performance.getEntriesByType('navigation')[0];
  const entry = files.find(e => /\\/index\\.[^/]*\\.js$/.test(e.name));
  const slow = files.reduce((a, b) => (b.responseEnd - b.startTime > a.responseEnd - a.startTime ? b : a));
  const s = (ms) => (ms / 1000).toFixed(2) + ' s';
  return `document ${s(nav ? nav.responseEnd : 0)}, entry script ${entry ? s(entry.responseEnd) : '?'}, `
    + `${files.length} static files, the slowest ${s(slow.responseEnd - slow.startTime)} `
    + `(${slow.name.split('/').pop()}, ${Math.round(slow.encodedBodySize / 1024)} kB)`;
}
"""


def query_fingerprint(query: str) -> str:
    """The fingerprint the sidebar must show for a preset URL: the first 8 hex digits of the digest of
    the case that ``query`` describes, built here from ``segloss_core`` alone (the preset, its own
    default prediction and parameter defaults, then the query's values)."""
    from urllib.parse import parse_qs

    from segloss_core.data.perturb import PERTURBATIONS
    from segloss_core.data.presets import DEFAULT_PRESET, PRESETS, make_case

    q = {k: v[-1] for k, v in parse_qs(query.lstrip("?")).items()}
    name = q.get("preset", DEFAULT_PRESET)
    preset = PRESETS[name]
    amounts = {k: float(q.get(k, preset.prediction.get(k, p.default))) for k, p in PERTURBATIONS.items()}
    params = {k: type(s.default)(q.get(f"{name}_{k}", s.default)) for k, s in preset.params.items()}
    case = make_case(name, size=int(q.get("size", 256)), prediction=amounts, seed=int(q.get("seed", 0)), **params)
    return case.digest()[:8]


@dataclass
class Opened:
    """One page open of one session in the sessions group."""

    session: str
    page: str
    seconds: float  # protocol: request until script_finished; Chromium: until settled
    script_s: float | None = None  # Chromium: until the script run ended (the rest is drawing)
    fingerprint: str | None = None
    error: str = ""
    static: str = ""  # Chromium's first load: how long the app's static files took to arrive


async def _session(browser, url: str, delay: float, opened: list, errors: list, ident: str) -> None:
    """One Chromium session: load ``url``, then click every other page in the sidebar; each page
    open until settled, with its script-done split and the sidebar's case fingerprint."""
    await asyncio.sleep(delay)
    ctx = await browser.new_context(viewport=VIEWPORT)
    await ctx.add_init_script(SETTLE_INIT_JS)
    page = await ctx.new_page()

    async def settle(mark: float) -> float:
        from playwright.async_api import TimeoutError as PlaywrightTimeoutError

        args = {"mark": mark, "quiet": 300, "needRun": True}
        try:
            try:
                await page.wait_for_function(
                    "({mark}) => window.__segloss.events.some(e => e.t >= mark && e.s === 'running')"
                    " || window.__segloss.messages.some(t => t >= mark)",
                    arg=args, timeout=10_000, polling=50)
            except PlaywrightTimeoutError:
                args["needRun"] = False
            await page.wait_for_function(SETTLED_JS, arg=args, timeout=PAGE_TIMEOUT_S * 2000, polling=50)
        except PlaywrightTimeoutError:
            errors.append(f"{ident}: a page did not settle")
            return float("inf")
        return (await page.evaluate("() => window.__segloss.since") - mark) / 1000

    async def record(label: str, mark: float) -> None:
        secs = await settle(mark)
        done = await page.evaluate(
            "(m) => { const S = window.__segloss; const e = S.events.filter(x => x.t >= m && x.s === 'notRunning');"
            " const msg = S.messages.filter(x => x >= m);"
            " return e.length ? e[e.length - 1].t : (msg.length ? msg[msg.length - 1] : null); }", mark)
        sidebar = await page.locator('[data-testid="stSidebar"]').inner_text()
        found = FINGERPRINT_RE.findall(sidebar)
        text = await page.inner_text("body")
        bad = next((w for w in ("Traceback", "Something went wrong", "Exception") if w in text), "")
        static = "" if mark else await page.evaluate(STATIC_TIMING_JS)
        opened.append(Opened(ident, label, secs, None if done is None else min(secs, max(0.0, (done - mark) / 1000)),
                             found[0] if len(found) == 1 else None, f"error text '{bad}' on {label}" if bad else "",
                             static))

    try:
        await page.goto(url, timeout=PAGE_TIMEOUT_S * 2000)
        await record(PAGES[0], 0.0)
        for label in PAGES[1:]:
            mark = await page.evaluate("() => { window.__segloss.since = null; return performance.now(); }")
            await page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=label).first.click()
            await record(label, mark)
    except Exception as err:  # noqa: BLE001 - reported as a row note
        errors.append(f"{ident}: {type(err).__name__}: {str(err).splitlines()[0][:80]}")
    finally:
        await ctx.close()


async def _protocol_session(url: str, query: str, delay: float, opened: list, errors: list, ident: str) -> None:
    """One protocol session (``ws_client``): the first load of ``url + query``, then every other page
    as a sidebar click would open it; each page open from the request until script_finished."""
    from ws_client import StreamlitClient

    await asyncio.sleep(delay)
    try:
        async with StreamlitClient(url, timeout_s=PAGE_TIMEOUT_S * 2) as client:
            runs = [await client.open(query=query)]
            home = client.current_hash
            for target in client.pages:
                if target.script_hash != home:
                    runs.append(await client.open(target))
    except Exception as err:  # noqa: BLE001 - reported as a row note
        errors.append(f"{ident}: {type(err).__name__}: {str(err).splitlines()[0][:80] if str(err) else ''}")
        return
    for run in runs:
        problem = "; ".join(run.errors) or ("" if run.status == "FINISHED_SUCCESSFULLY" else run.status)
        opened.append(Opened(ident, run.page, run.seconds, run.seconds,
                             run.fingerprints[0] if len(run.fingerprints) == 1 else None,
                             f"{query or 'default case'} {run.page}: {problem}"[:160] if problem else ""))


async def _sessions(urls: list[str], queries: list[str], spread_s: float, mode: str, chromium_query: str):
    """Run the sessions, session ``i`` on server ``urls[i % len(urls)]`` (replicas behind a sticky
    balancer); returns (protocol opens, Chromium opens, errors, this process's CPU-s, the browsers' CPU-s)."""
    from playwright.async_api import async_playwright

    proto: list[Opened] = []
    chrome: list[Opened] = []
    errors: list[str] = []
    n = len(queries)
    delays = [spread_s * i / max(1, n - 1) for i in range(n)]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        before, own0 = _descendants_cpu(os.getpid(), SERVER_PIDS), time.process_time()
        if mode == "chromium":
            jobs = [_session(browser, f"{urls[i % len(urls)]}/{q}", d, chrome, errors, f"#{i}")
                    for i, (q, d) in enumerate(zip(queries, delays, strict=True))]
        else:
            jobs = [_protocol_session(urls[i % len(urls)], q, d, proto, errors, f"#{i}")
                    for i, (q, d) in enumerate(zip(queries, delays, strict=True))]
            jobs.append(_session(browser, f"{urls[n // 2 % len(urls)]}/{chromium_query}", spread_s / 2, chrome,
                                 errors, "chromium"))
        await asyncio.gather(*jobs)
        client = _descendants_cpu(os.getpid(), SERVER_PIDS) - before
        own = time.process_time() - own0
        await browser.close()
    return proto, chrome, errors, own, client


def _quantile(values: list[float], q: float) -> float | None:
    done = sorted(v for v in values if v != float("inf"))
    return done[min(len(done) - 1, int(round(q * (len(done) - 1))))] if done else None


def _check_fingerprints(opens: list[Opened], expected: dict[str, str], label: str) -> tuple[list[str], str]:
    """Every page open showed exactly one fingerprint, its own query's; returns (problems, summary)."""
    problems = []
    for o in opens:
        if o.fingerprint is None:
            problems.append(f"{o.session} {o.page}: no single case fingerprint")
        elif o.fingerprint != expected[o.session]:
            problems.append(f"{o.session} {o.page}: case {o.fingerprint}, expected {expected[o.session]}")
    seen = {o.fingerprint for o in opens if o.fingerprint}
    want = set(expected[s] for s in {o.session for o in opens})
    return problems, f"{len(seen)} distinct case fingerprint(s), {len(want)} expected" + (
        "" if problems else ", every page matched its query")


def _per_page(opens: list[Opened]) -> str:
    pages = list(dict.fromkeys(o.page for o in opens))
    parts = []
    for page in pages:
        secs = [o.seconds for o in opens if o.page == page]
        parts.append(f"{page} {statistics.median(secs):.2f}/{_quantile(secs, 0.95):.2f}")
    return "p50/p95 per page (s): " + ", ".join(parts)


def sessions_rows(n: int = 20, spread_s: float = 10.0, mode: str | None = None, replicas: int = 1) -> None:
    """``n`` sessions arriving over ``spread_s`` on a fresh server, each opening every page; one shared
    case, then each its own case. ``mode`` "protocol" (default): ``n`` websocket clients
    (``ws_client``) plus one Chromium session arriving mid-way; "chromium": ``n`` Chromium sessions.
    ``replicas`` > 1: that many servers, sessions dealt round-robin (rows reported, no budget: the
    budget is for one server)."""
    from segloss_core.data.presets import PRESETS

    mode = mode or SESSIONS_BROWSER[0]
    names = list(PRESETS)
    own = [f"?preset={names[i % len(names)]}&shift_x={1 + i * 0.5:g}" for i in range(n + 1)]
    variants = {"shared case": [""] * (n + 1), "each its own case": own}
    for label, queries in variants.items():
        expected = {f"#{i}": query_fingerprint(q) for i, q in enumerate(queries[:n])}
        expected["chromium"] = query_fingerprint(queries[n])
        servers = []
        try:
            for _ in range(replicas):
                servers.append(start_server())
            SERVER_PIDS[:] = [s.proc.pid for s in servers]
            cpu0, t0, load0 = sum(map(_cpu_seconds, SERVER_PIDS)), time.perf_counter(), os.getloadavg()[0]
            proto, chrome, errors, own_cpu, browser_cpu = asyncio.run(
                _sessions([s.url for s in servers], queries[:n], spread_s, mode, queries[n]))
            wall, cpu = time.perf_counter() - t0, sum(map(_cpu_seconds, SERVER_PIDS)) - cpu0
            load1 = os.getloadavg()[0]
        finally:
            for server in servers:
                stop_server(server)
        errors += [o.error for o in proto + chrome if o.error]
        bad_fp, fp_note = _check_fingerprints(proto + chrome, expected, label)
        errors += bad_fp
        opens = len(proto) + len(chrome)
        main, name = (proto, "protocol clients") if mode == "protocol" else (chrome, "Chromium sessions")
        note = (f"{opens} page opens, {len(errors)} errors" + (f" ({errors[0]})" if errors else "")
                + f"; {fp_note}; all done after {wall:.0f} s; server {cpu / max(1, opens):.2f} CPU-s per page open"
                + (f"; protocol clients {own_cpu / max(1, len(proto)):.3f} CPU-s per page open"
                   f" (this process), Chromium {browser_cpu / max(1, len(chrome)):.2f} CPU-s per page open"
                   if mode == "protocol" else f"; browsers {browser_cpu / max(1, opens):.2f} CPU-s per page open")
                + f"; load average {load0:.1f} -> {load1:.1f}")
        budget = (5.0 if label == "shared case" else 15.0) if replicas == 1 else None
        if replicas > 1:
            label = f"{label}, {replicas} replicas"
        secs = [o.seconds for o in main]
        p95 = _quantile(secs, 0.95)
        report("sessions", f"{n} sessions, {label}: page p50 ({name})", None, _quantile(secs, 0.5), note=note)
        report("sessions", f"{n} sessions, {label}: page p95 ({name})", budget, p95 if not errors else None,
               note=note if not errors or p95 is None else f"p95 {p95:.2f} s, but {note}")
        print(f"    {name}: {_per_page(main)}", flush=True)
        for err in dict.fromkeys(errors):
            print(f"    error: {err}", flush=True)
        if mode == "protocol":
            csecs = [o.seconds for o in chrome]
            split = [o.script_s for o in chrome if o.script_s is not None]
            cnote = (f"one real browser among the {n} clients, arriving after {spread_s / 2:g} s; {len(chrome)} page "
                     "opens until settled (drawing included, on the server's 2 cores: reported, the budget is the "
                     "protocol clients' row)"
                     + (f"; script done p50 / p95 {_quantile(split, 0.5):.2f} / {_quantile(split, 0.95):.2f} s"
                        if split else "")
                     + "; " + ", ".join(f"{o.page} {o.seconds:.2f}" for o in chrome)
                     + "".join(f"; first load: {o.static}" for o in chrome[:1] if o.static))
            report("sessions", f"{n} sessions, {label}: Chromium session page p50", None, _quantile(csecs, 0.5),
                   note=cnote)
            report("sessions", f"{n} sessions, {label}: Chromium session page p95", None, _quantile(csecs, 0.95),
                   note=cnote)


# ----------------------------------------------------------------------------- main


def markdown_table(rows: list[Row]) -> str:
    lines = ["| row | budget | measured | verdict | note |", "|---|---|---|---|---|"]
    for r in rows:
        budget = "-" if r.budget is None else f"≤ {r.budget:g} {r.unit}"
        measured = "-" if r.measured is None else f"{r.measured:.2f} {r.unit}"
        lines.append(f"| {r.name} | {budget} | {measured} | {r.verdict} | {r.note} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--only", default="", help=f"comma-separated groups of {', '.join(GROUPS)}")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    ap.add_argument("--sessions", type=int, default=20, help="concurrent sessions in the sessions group")
    ap.add_argument("--sessions-browser", choices=("protocol", "chromium"), default="protocol",
                    help="sessions group: websocket protocol clients plus one Chromium session (default), "
                         "or every session in Chromium on this machine (the browsers then share the server's cores)")
    ap.add_argument("--replicas", type=int, default=1,
                    help="sessions group: serve from this many server processes, sessions dealt round-robin "
                         "(as a sticky load balancer would); rows with more than 1 are reported, not budgeted")
    ap.add_argument("--no-warm", action="store_true",
                    help="serve without the warm-up of ui.warm (SEGLOSS_NO_WARM=1), to compare")
    args = ap.parse_args(argv)
    if args.no_warm:
        os.environ["SEGLOSS_NO_WARM"] = "1"
    groups = set(QUICK if args.quick else GROUPS)
    if args.only:
        groups = {g.strip() for g in args.only.split(",") if g.strip()}
        unknown = groups - set(GROUPS)
        if unknown:
            ap.error(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    if not os.path.exists(CHROMIUM):
        print(f"(browser benchmark unavailable: {CHROMIUM} is missing)")
        return 0
    try:
        import streamlit
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        print(f"(browser benchmark unavailable: {err})")
        return 0
    print(f"Browser latency (Chromium via Playwright), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.node()} {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}, "
          f"streamlit {streamlit.__version__}{', no warm-up' if args.no_warm else ''}; groups: {', '.join(g for g in GROUPS if g in groups)}", flush=True)
    browser_groups = groups & {"start", "pages", "nudge", "controls", "phantom", "upload3d"}
    with tempfile.TemporaryDirectory(prefix="segloss-bench-") as tmp:
        volumes = make_volumes(Path(tmp)) if groups & {"upload3d", "evaluate"} else {}
        if browser_groups:
            server = start_server()
            try:
                if "start" in groups:
                    report("start", "server start until it accepts connections", 20.0, server.started_s)
                with sync_playwright() as p:
                    browser = launch_browser(p)
                    if browser_groups - {"upload3d"}:
                        single_user(browser, server, groups)
                    if "upload3d" in groups:
                        upload_3d(browser, server, volumes)
                    browser.close()
            finally:
                stop_server(server)
        if "evaluate" in groups:
            evaluate_3d(volumes)
    if "landscape" in groups:
        landscape_rows()
    if "sessions" in groups:
        sessions_rows(args.sessions, mode=args.sessions_browser, replicas=args.replicas)
    print()
    print(markdown_table(ROWS))
    failed = [r for r in ROWS if r.verdict in ("FAIL", "error")]
    print(f"\n{len(ROWS) - len(failed)}/{len(ROWS)} rows within budget (or reported only).")
    if args.json:
        Path(args.json).write_text(json.dumps([{**asdict(r), "verdict": r.verdict} for r in ROWS], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
