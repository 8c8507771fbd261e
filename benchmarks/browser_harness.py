"""Serving the app and driving it in Debian's Chromium: shared by ``tests/test_browser.py`` and
``benchmarks/bench_browser.py``.

- :func:`start_server` runs ``streamlit run app.py`` (the app's own ``.streamlit/config.toml``) on a
  free loopback port and waits until ``/_stcore/health`` answers; :func:`stop_server` ends it.
- :func:`wait_for_app` waits until the script has finished and no skeleton is left (the tests' wait).
- :data:`SETTLE_INIT_JS` + :func:`settle_seconds`: the benchmark's stricter "settled" clock. The init
  script records every change of Streamlit's script state (``stApp[data-test-script-state]``) with
  ``performance.now()``, and the arrival of every message from the server; a page counts as
  settled once, after the action, the script has run (the page showed ``running``, or, for a run
  too fast for the page to show it, messages arrived) and is ``notRunning`` again, no skeleton, spinner, progress bar or stale element is left, and every
  visible Plotly chart has drawn its SVG, and that has held for ``quiet_ms``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
#: Flags for a test / benchmark server; the rest comes from the app's .streamlit/config.toml.
SERVER_FLAGS = ("--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats",
                "false", "--server.fileWatcherType", "none", "--global.developmentMode", "false")
RUN_TIMEOUT_MS = 180_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: object
    started_s: float = 0.0  #: seconds from the process start until the health check answered
    extra: dict = field(default_factory=dict)

    def log_tail(self, chars: int = 2000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]


def server_command(port: int) -> list[str]:
    """The app as ``make run`` starts it (``streamlit run app.py`` after the warm-up of ``ui.warm``;
    ``SEGLOSS_NO_WARM=1`` skips it), on ``port``, headless, loopback only."""
    return [sys.executable, "-m", "ui.warm", "run", "app.py", "--server.port", str(port), *SERVER_FLAGS]


def start_server(env: dict | None = None, timeout_s: float = 180.0, prefix: tuple[str, ...] = ()) -> Server:
    """Start the app and wait until it accepts connections; ``RuntimeError`` with the log tail if not.

    ``prefix``: a command to run the server under (e.g. a profiler: ``("py-spy", "record", ..., "--")``)."""
    port = free_port()
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    log = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen([*prefix, *server_command(port)], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.time() + timeout_s
    while True:
        try:
            if urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            tail = server.log_tail()
            stop_server(server)
            raise RuntimeError(f"streamlit did not start: {tail}")
        time.sleep(0.05)
    server.started_s = time.perf_counter() - t0
    return server


def stop_server(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    server.log.close()


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


# ------------------------------------------------------------------------------------ waiting


def wait_for_app(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the script has finished its run and the page has settled (tests: not a clock)."""
    page.wait_for_timeout(400)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stSkeleton"]', state="detached", timeout=timeout_ms)
    page.wait_for_timeout(600)


def open_page(page, server_url: str, path: str = "", timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    page.goto(f"{server_url}/{path}", timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout_ms)
    wait_for_app(page, timeout_ms)


#: Installed with ``context.add_init_script``: records the script-state changes of every document.
SETTLE_INIT_JS = """
(() => {
  const S = window.__segloss = {events: [], since: null, progress: [], messages: []};
  // every message the server sends (a rerun sends at least its deltas and scriptFinished)
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new NativeWebSocket(...args);
    ws.addEventListener('message', () => S.messages.push(performance.now()));
    return ws;
  };
  window.WebSocket.prototype = NativeWebSocket.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  // A fast rerun can go notRunning -> running -> notRunning within one task: the observer then
  // sees only the final value, so the states in between are read from the records' oldValue.
  const record = (mutations) => {
    const app = document.querySelector('[data-testid="stApp"]');
    const ev = S.events;
    const now = performance.now();
    const push = (s) => { if (!ev.length || ev[ev.length - 1].s !== s) ev.push({s, t: now}); };
    const changes = (mutations || []).filter(m => m.type === 'attributes' && m.target === app);
    changes.slice(1).forEach(m => push(m.oldValue));
    push(app ? app.getAttribute('data-test-script-state') : null);
    if (document.querySelector('[data-testid="stProgress"], [data-testid="stSpinner"]')) S.progress.push(now);
  };
  new MutationObserver(record).observe(document, {subtree: true, childList: true, attributes: true,
                                                  attributeOldValue: true,
                                                  attributeFilter: ['data-test-script-state']});
})();
"""

#: True once the page has been settled for ``quiet`` ms after ``mark`` (performance.now() clock).
SETTLED_JS = """
({mark, quiet, needRun}) => {
  const S = window.__segloss;
  if (!S) return false;
  const now = performance.now();
  const app = document.querySelector('[data-testid="stApp"]');
  const state = app && app.getAttribute('data-test-script-state');
  const ran = !needRun || S.events.some(e => e.t >= mark && e.s === 'running')
    || S.messages.some(t => t >= mark);
  const busy = !app || state !== 'notRunning' || !ran
    || document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"], '
                              + '[data-testid="stProgress"], [data-stale="true"]')
    || [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
         .some(c => c.getClientRects().length && !c.querySelector('.main-svg'));
  if (busy) { S.since = null; return false; }
  if (S.since === null) S.since = now;
  return now - S.since >= quiet;
}
"""


def js_now(page) -> float:
    """The page's ``performance.now()`` (ms), the clock :func:`settle_seconds` reads."""
    return page.evaluate("() => { if (window.__segloss) window.__segloss.since = null; return performance.now(); }")


def settle_seconds(page, mark_ms: float, *, timeout_s: float = 180.0, quiet_ms: int = 300,
                   need_run: bool = True, run_grace_s: float = 5.0) -> float:
    """Seconds from ``mark_ms`` (:func:`js_now`, taken just before the action; 0 for a page load,
    whose clock starts at navigation) until the page settled (see the module docstring).

    ``need_run``: the action must start a script run first; if none starts within ``run_grace_s``
    the page is accepted as it is (the action caused no rerun). ``inf`` on timeout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    args = {"mark": mark_ms, "quiet": quiet_ms, "needRun": need_run}
    try:
        if need_run:
            try:
                page.wait_for_function(
                    "({mark}) => window.__segloss && (window.__segloss.events.some(e => e.t >= mark && e.s === 'running')"
                    " || window.__segloss.messages.some(t => t >= mark))",
                    arg=args, timeout=run_grace_s * 1000, polling=20)
            except PlaywrightTimeoutError:
                args["needRun"] = False
        page.wait_for_function(SETTLED_JS, arg=args, timeout=timeout_s * 1000, polling=20)
    except PlaywrightTimeoutError:
        return float("inf")
    since = page.evaluate("() => window.__segloss.since")
    return max(0.0, (since - mark_ms) / 1000.0)


def script_done_seconds(page, mark_ms: float) -> float | None:
    """Seconds from ``mark_ms`` until the last script run after it ended (``notRunning``): the rest of
    :func:`settle_seconds` is the browser drawing what arrived. ``None`` if no run ended.

    A run fast enough that the page never showed ``running`` (its messages arrived within one
    frame) ends with its last message from the server."""
    t = page.evaluate("(m) => { const S = window.__segloss; const e = S.events.filter(x => x.t >= m && x.s === 'notRunning');"
                      " const msg = S.messages.filter(x => x >= m);"
                      " return e.length ? e[e.length - 1].t : (msg.length ? msg[msg.length - 1] : null); }", mark_ms)
    return None if t is None else max(0.0, (t - mark_ms) / 1000.0)
