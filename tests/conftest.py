"""Shared test helpers.

``app_test`` (fixture): an ``AppTest`` factory for the whole app (``app.py`` with ``st.navigation``).

Why it is needed: ``AppTest`` resets ``PagesManager.uses_pages_directory`` before every run, and
because a ``pages/`` folder sits next to ``app.py`` Streamlit then takes its legacy (v1) multipage
path, which on every rerun after the first executes the *page* script alone: the entry point (and
so the sidebar case builder) never runs again. The fixture routes that legacy path back to the
entry point, which is what ``streamlit run`` does after its first run (``st.navigation`` turns the
legacy mode off for the process).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
if str(ROOT) not in sys.path:  # `pytest` (not only `python -m pytest`) finds segloss_core and ui
    sys.path.insert(0, str(ROOT))


def _run_entry_point(main_script_path: str) -> None:
    code = compile(Path(main_script_path).read_text(), main_script_path, "exec")
    exec(code, {"__name__": "__main__", "__file__": main_script_path})  # noqa: S102 - the app itself


@pytest.fixture
def app_test(monkeypatch):
    """``app_test(timeout=120, query_params=None) -> AppTest`` of ``app.py`` (not yet run)."""
    import streamlit.runtime.scriptrunner.script_runner as script_runner
    from streamlit.testing.v1 import AppTest

    from streamlit import config

    monkeypatch.setattr(script_runner, "_mpa_v1", _run_entry_point)
    shipped = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "full")  # tests see the real message

    def make(timeout: float = 120, query_params: dict | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=timeout)
        for k, v in (query_params or {}).items():
            at.query_params[k] = v
        return at

    yield make
    config.set_option("client.showErrorDetails", shipped)
