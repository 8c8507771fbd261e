"""Shared test helpers.

``app_test`` (fixture): an ``AppTest`` factory for the whole app (``app.py`` with ``st.navigation``).
``served_app`` (fixture, one per test module): the app served as ``make run`` serves it, for the
browser tests.

It runs every AppTest in ``st.navigation`` mode (``ui.pages_mode.navigation_mode``: why, and the
one place that touches Streamlit's private ``PagesManager``).
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
    from streamlit.testing.v1 import AppTest

    from ui.pages_mode import navigation_mode

    shipped = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "full")  # tests see the real message

    def make(timeout: float = 120, query_params: dict | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=timeout)
        for k, v in (query_params or {}).items():
            at.query_params[k] = v
        return at

    with navigation_mode():
        yield make
    config.set_option("client.showErrorDetails", shipped)


@pytest.fixture(scope="module")
def served_app():
    """A :class:`benchmarks.browser_harness.Server` running the app as ``make run`` does, with error
    details on (a traceback would be visible); the module's tests share it. Startup failure: the
    test fails with the server's log tail."""
    from benchmarks.browser_harness import start_server, stop_server

    try:
        srv = start_server(env={"STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "full"}, timeout_s=180)
    except RuntimeError as err:
        pytest.fail(str(err))
    try:
        yield srv
    finally:
        stop_server(srv)
