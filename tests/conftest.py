"""Shared test helpers.

``app_test`` (fixture): an ``AppTest`` factory for the whole app (``app.py`` with ``st.navigation``).

Why it is needed: ``AppTest`` resets ``PagesManager.uses_pages_directory`` before every run, and
because a ``pages/`` folder sits next to ``app.py`` Streamlit then takes its legacy (v1) multipage
path, which on every rerun after the first executes the *page* script alone: the entry point (and
so the sidebar case builder) never runs again. ``streamlit run`` leaves that mode for good at the
first ``st.navigation`` call of the process; the fixture does the same for every AppTest run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
if str(ROOT) not in sys.path:  # `pytest` (not only `python -m pytest`) finds segloss_core and ui
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def app_test(monkeypatch):
    """``app_test(timeout=120, query_params=None) -> AppTest`` of ``app.py`` (not yet run)."""
    from streamlit import config
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    original_init = PagesManager.__init__

    def init_without_legacy_pages(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False  # what st.navigation does in a served app

    monkeypatch.setattr(PagesManager, "__init__", init_without_legacy_pages)
    shipped = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "full")  # tests see the real message

    def make(timeout: float = 120, query_params: dict | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=timeout)
        for k, v in (query_params or {}).items():
            at.query_params[k] = v
        return at

    yield make
    config.set_option("client.showErrorDetails", shipped)
