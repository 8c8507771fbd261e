"""Page render times of the Streamlit app, measured headless with ``streamlit.testing.v1.AppTest``.

For every page of ``app.py`` (read from its ``st.Page("pages/...")`` entries): the first run in a
fresh session with empty ``st.cache_data`` (what a visitor waits for when opening the page; the
process's imports are paid once beforehand by an untimed warm-up session), then a
rerun after moving the sidebar's first prediction slider (``shift_x``, which changes the prediction
and so everything the page computes from it). Times are wall-clock seconds of ``AppTest.run()``:
the whole script run (sidebar case builder + page), without the browser's drawing of the figures.
Medians over ``--repeats`` runs, each in a fresh session.

Run: ``.venv/bin/python benchmarks/bench_pages.py [--repeats 1] [--pages playground landscape]``
(also called by ``benchmarks/run.py`` unless ``--quick``). Needs Streamlit; prints a note without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
SLIDER_KEY = "shift_x"  # first prediction slider of the sidebar case builder (ui.case_builder)
SLIDER_VALUE = 3.0


def app_pages() -> list[str]:
    """Page scripts of ``app.py``, in navigation order (``pages/playground.py``, ...)."""
    return re.findall(r"""st\.Page\(\s*["']([^"']+\.py)["']""", APP.read_text())


def _page_title(page: str) -> str:
    match = re.search(rf"""st\.Page\(\s*["']{re.escape(page)}["']\s*,\s*title=["']([^"']+)["']""", APP.read_text())
    return match.group(1) if match else Path(page).stem


def _problem(at) -> str | None:
    if at.exception:
        return "exception: " + str(at.exception[0].value).splitlines()[0][:120]
    if at.error:
        return "error: " + str(at.error[0].value).splitlines()[0][:120]
    return None


def time_page(page: str, timeout: float) -> tuple[float, float | None, str | None]:
    """``(first run s, slider rerun s or None, problem or None)`` for one page in a fresh session."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.switch_page(page)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    problem = _problem(at)
    if problem:
        return first, None, problem
    if not at.title or at.title[0].value.lower() != _page_title(page).lower():
        return first, None, f"page title {at.title[0].value if at.title else None!r}: page not reached"
    try:
        slider = at.slider(key=SLIDER_KEY)
    except KeyError:
        return first, None, f"no slider {SLIDER_KEY!r}"
    slider.set_value(SLIDER_VALUE)
    t0 = time.perf_counter()
    at.run()
    rerun = time.perf_counter() - t0
    return first, rerun, _problem(at)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="fresh sessions per page (median)")
    parser.add_argument("--pages", nargs="*", help="page names (e.g. playground landscape); default: all")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per script run")
    args = parser.parse_args(argv)
    try:
        import streamlit
        import torch
    except ImportError as err:
        print(f"(page benchmark unavailable: {err})")
        return 0
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    pages = app_pages()
    if args.pages:
        pages = [p for p in pages if Path(p).stem in args.pages]
    print(f"Page render times (AppTest, headless), streamlit {streamlit.__version__}, torch "
          f"{torch.__version__}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"median of {args.repeats} fresh session(s), empty st.cache_data")
    print(f"{'page':<28}{'first run s':>12}{'slider rerun s':>16}  ({SLIDER_KEY} -> {SLIDER_VALUE:g})")
    from ui.pages_mode import navigation_mode

    mode = navigation_mode()
    mode.__enter__()
    threads = torch.get_num_threads()
    # "No runtime found" / "missing ScriptRunContext" warnings are expected outside a served app;
    # the app's own failures are reported from AppTest's exception / error elements
    logging.disable(logging.WARNING)
    try:
        t0 = time.perf_counter()
        time_page(pages[0], args.timeout)  # imports (torch, plotly, scipy, segloss_core, ...) paid once
        print(f"(process warm-up, one untimed session of {pages[0]}: {time.perf_counter() - t0:.2f} s)")
        for page in pages:
            firsts, reruns, problem = [], [], None
            for _ in range(max(1, args.repeats)):
                first, rerun, problem = time_page(page, args.timeout)
                firsts.append(first)
                if rerun is not None:
                    reruns.append(rerun)
            rerun_text = f"{statistics.median(reruns):>16.2f}" if reruns else f"{'-':>16}"
            print(f"{page:<28}{statistics.median(firsts):>12.2f}{rerun_text}" + (f"  [{problem}]" if problem else ""),
                  flush=True)
    finally:
        logging.disable(logging.NOTSET)
        mode.__exit__(None, None, None)
        torch.set_num_threads(threads)  # app.py sets 1 thread for its process
    return 0


if __name__ == "__main__":
    sys.exit(main())
