"""Warm start: ``python -m ui.warm run app.py [streamlit flags]`` is ``streamlit run app.py`` in a
process that has already paid its one-off costs before the server accepts connections.

Without it the first visitor of a fresh server waits for every import the app and its pages make
(torch, scipy, plotly, segloss_core: about 3 s here) and for the first computations
(plotly's lazily loaded trace validators, torch's first kernels, the live numbers quoted in the
Playground's text). Here they happen first, in this process, so every later session finds them in
``sys.modules`` and in the process-wide caches. Then, for up to ``PAGES_BUDGET_S`` seconds, each
page runs once at its defaults (``AppTest``, in this process): ``st.cache_data`` is shared by all
sessions of a server, so a visitor opening a page on the default case finds it computed. Any
other case (a moved slider, an upload) is computed when asked, as before.

Every step is best effort: a failure is logged in one line and the server starts anyway.
``SEGLOSS_NO_WARM=1`` skips the warm-up (to compare).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: seconds of warm-up after which no further page is started (:func:`warm_pages`), counted from the
#: start of the warm-up; ``SEGLOSS_WARM_PAGES_S`` overrides, 0 skips the pages
PAGES_BUDGET_S = 15.0


def _say(message: str) -> None:
    print(f"segloss warm-up: {message}", file=sys.stderr, flush=True)


def script_imports(paths) -> list[str]:
    """Absolute module names imported at the top level of the given scripts (app.py, pages/*.py)."""
    names: list[str] = []
    for path in paths:
        try:
            tree = ast.parse(Path(path).read_text(), filename=str(path))
        except (OSError, SyntaxError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
                # "from pkg import sub" may name a submodule
                names += [f"{node.module}.{a.name}" for a in node.names]
    return list(dict.fromkeys(names))


def warm_imports() -> int:
    """Import what app.py and every page import; returns how many modules imported."""
    import logging

    # decorating an st.cache_data function outside a server logs "No runtime found" once per function
    quiet = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _import_all()
    finally:
        quiet.setLevel(level)


def _import_all() -> int:
    done = 0
    for name in script_imports([ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]):
        try:
            importlib.import_module(name)
            done += 1
        except ImportError:
            pass  # "from pkg import function": not a module
        except Exception as err:  # noqa: BLE001 - best effort, the app reports its own failures
            _say(f"import {name} failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    return done


def _plotly() -> None:
    """Plotly loads each trace type's validators on first use; build one of each the app draws."""
    import plotly.graph_objects as go

    go.Figure([go.Heatmap(z=[[0.0, 1.0]]), go.Contour(z=[[0.0, 1.0], [1.0, 0.0]]), go.Scatter(x=[0], y=[0]),
               go.Bar(x=[0], y=[0]), go.Image(z=[[[0, 0, 0]]]), go.Surface(z=[[0.0, 1.0], [1.0, 0.0]])]).to_json()


def _default_case() -> None:
    """The numbers and figures of the first page a visitor sees (default preset, Playground)."""
    import torch

    torch.set_num_threads(1)  # as app.py: one thread per server process
    from segloss_core.analyses import playground as pg
    from segloss_core.core import metrics
    from segloss_core.data.presets import make_case
    from segloss_core.plots.masks import case_figure

    case = make_case()
    pg.loss_values(case, {})
    metrics(case.hard_prediction, case.gt, spacing=case.spacing)
    imgs = pg.case_images(case)
    case_figure(imgs["gt"], imgs["prediction"], imgs["overlay"], case.class_names, binary=case.is_binary).to_json()


def _texts() -> None:
    """Live numbers quoted in page texts (cached per process by segloss_core.analyses.claims)."""
    from segloss_core.analyses import claims

    if hasattr(claims, "what_if_text"):
        claims.what_if_text()


#: pages warmed first (the first visit, then the pages whose defaults cost most), the rest follow
#: in navigation order
WARM_FIRST = ("pages/playground.py", "pages/optimise.py", "pages/bias.py", "pages/agreement.py")


def warm_order(pages: list[str]) -> list[str]:
    """``pages`` with :data:`WARM_FIRST` moved to the front (those present), otherwise in order."""
    first = [p for p in WARM_FIRST if p in pages]
    return first + [p for p in pages if p not in first]


def app_pages() -> list[str]:
    """Page scripts of app.py's ``st.navigation``, in its order (``pages/playground.py``, ...)."""
    return re.findall(r"""st\.Page\(\s*["']([^"']+\.py)["']""", (ROOT / "app.py").read_text())


def warm_pages(budget_s: float) -> list[str]:
    """Run each page once at its defaults (``AppTest``, in this process) while the time lasts.

    ``st.cache_data`` is shared by every session of a server process, so what a page computes for
    the default case (and its case-independent figures) is then ready for the first visitors. A
    page is started only while ``budget_s`` is not used up; returns the pages run."""
    import logging

    from streamlit.testing.v1 import AppTest

    from ui.pages_mode import navigation_mode

    done: list[str] = []
    t0 = time.perf_counter()
    logging.disable(logging.WARNING)  # "No runtime found" / "missing ScriptRunContext" outside a server
    try:
        with navigation_mode():  # as st.navigation leaves a served app
            for page in warm_order(app_pages()):
                if time.perf_counter() - t0 >= budget_s:
                    break
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=max(30.0, budget_s))
                at.switch_page(page)
                at.run()
                done.append(Path(page).stem + ("" if not at.exception else " (failed)"))
    finally:
        logging.disable(logging.NOTSET)
    return done


def warm(pages_budget_s: float = 0.0) -> float:
    """Run every warm-up step; returns the seconds it took."""
    t0 = time.perf_counter()
    steps = [("imports", warm_imports), ("plotly", _plotly), ("default case", _default_case), ("texts", _texts)]
    if pages_budget_s > 0:  # the budget counts the whole warm-up, so slow imports leave less for pages
        steps.append(("pages", lambda: _say("pages at their defaults: " + ", ".join(
            warm_pages(pages_budget_s - (time.perf_counter() - t0))))))
    for name, step in steps:
        try:
            step()
        except Exception as err:  # noqa: BLE001 - best effort
            _say(f"{name} skipped: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    return time.perf_counter() - t0


def freeze_heap() -> int:
    """Move every object alive now out of the garbage collector's reach; returns how many.

    Streamlit runs a full ``gc.collect()`` after every script run (``runner.postScriptGC``) and the
    browser only hears that the run ended once it is over: it holds the GIL, so the server cannot
    send meanwhile. A full collection walks every tracked object, and the modules imported here
    (torch, scipy, plotly's validators, ...) are hundreds of thousands of them: 0.4 s per rerun on
    this machine, more than a slider's whole budget. They live as long as the process, so after
    one last collection they are frozen (``gc.freeze``) and later collections walk only what the
    sessions create.
    """
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def main() -> None:
    if os.environ.get("SEGLOSS_NO_WARM") != "1":
        from ui.cache import env_number

        budget = env_number("SEGLOSS_WARM_PAGES_S", PAGES_BUDGET_S)
        _say(f"{warm(budget):.1f} s before serving")
    freeze_heap()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
