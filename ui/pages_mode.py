"""The one place that touches Streamlit's private ``PagesManager``: keep the app in ``st.navigation`` mode.

Why: segloss's layout has a ``pages/`` folder next to ``app.py``. When Streamlit finds such a folder
it starts in its legacy (v1) multipage mode, in which a request for ``/gradients`` runs
``pages/gradients.py`` *alone*: the entry point ``app.py`` (and with it the sidebar case builder)
never runs. ``streamlit run`` leaves that mode for good at the first ``st.navigation`` call of the
process, but

- a fresh server whose first request is a bookmarked page runs that page before ``app.py`` ever
  called ``st.navigation`` (:func:`leave_legacy_mode` reroutes it through ``app.py``), and
- ``AppTest`` resets the flag before every run, so every rerun after the first would execute the
  page script alone (:func:`navigation_mode` keeps it off, for tests and the warm-up).

Both rely on the private class attribute ``PagesManager.uses_pages_directory`` (Streamlit 1.67).
``tests/test_pages_mode.py`` fails when Streamlit changes that behaviour: then this module, and
only this module, needs a look.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def leave_legacy_mode() -> None:
    """In a page script: if this process is still in legacy ``pages/`` mode, leave it and rerun
    (the rerun goes through ``app.py`` to the same page: same url paths)."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


@contextmanager
def navigation_mode() -> Iterator[None]:
    """While inside, every new ``PagesManager`` (one per ``AppTest`` run) starts in navigation mode,
    as ``st.navigation`` leaves a served app; restored on exit."""
    from streamlit.runtime.pages_manager import PagesManager

    original_init = PagesManager.__init__

    def init_in_navigation_mode(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init_in_navigation_mode
    try:
        yield
    finally:
        PagesManager.__init__ = original_init
        PagesManager.uses_pages_directory = None
