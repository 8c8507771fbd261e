"""Streamlit's legacy ``pages/`` mode, and the one patch that keeps the app in ``st.navigation`` mode.

These tests fail when Streamlit changes the private behaviour ``ui/pages_mode.py`` relies on: the
class attribute ``PagesManager.uses_pages_directory`` and AppTest re-entering the legacy mode on
every run. If the second test starts failing because Streamlit no longer needs the patch, the
patch (and ``ui/pages_mode.py``) can go.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from ui.pages_mode import navigation_mode

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _sidebar_after_rerun(at: AppTest) -> list[str]:
    """The sidebar captions (the case fingerprint among them) of a page's second run."""
    at.switch_page("pages/gradients.py")
    at.run()
    at.run()  # the second run is where the legacy mode drops the entry point
    return [c.value for c in at.sidebar.caption]


def test_the_private_flag_still_exists():
    assert hasattr(PagesManager, "uses_pages_directory")


def test_without_the_patch_a_pages_folder_means_legacy_mode():
    """A fresh PagesManager next to ``pages/`` enters the legacy mode (the page script alone); this is
    what the patch and ``leave_legacy_mode`` undo."""
    saved = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = None  # as a fresh process / every AppTest run starts
        PagesManager(APP)
        assert PagesManager.uses_pages_directory is True
        with navigation_mode():
            PagesManager(APP)
            assert PagesManager.uses_pages_directory is False
    finally:
        PagesManager.uses_pages_directory = saved


def test_with_the_patch_every_run_goes_through_app_py():
    with navigation_mode():
        at = AppTest.from_file(APP, default_timeout=120)
        captions = _sidebar_after_rerun(at)
    assert any(c.startswith("case ") for c in captions), captions
    assert PagesManager.__init__.__name__ == "__init__"  # restored on exit
