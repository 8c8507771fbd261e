"""The current case and loss parameters, kept in ``st.session_state`` so every page shares them.

Interface used by every page (keep it stable):
- ``current_case() -> segloss_core.Case``: the 2-D case built by the sidebar case builder (for an
  uploaded 3-D volume: the slice picked in the sidebar).
- ``set_case(case)``: replace it (the case builder does this).
- ``current_volume() -> Case | None``: the whole 3-D volume when one was uploaded, else ``None``.
- ``current_params() -> dict[str, dict]``: per-loss parameter overrides chosen on the Playground
  (``{loss: {param: value}}``, only values that differ from the registry defaults).
- ``panel(title)``: context manager, an error boundary for one panel.

Pages must call ``current_case()`` or ``panel()``: they also route a page that Streamlit ran
outside ``app.py`` back through it (see ``_leave_legacy_multipage_mode``).
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import RerunException, StopException

from segloss_core import Case
from ui.pages_mode import leave_legacy_mode

CASE_KEY = "segloss_case"
VOLUME_KEY = "segloss_volume"
PARAMS_KEY = "segloss_loss_params"
SOURCE_KEY = "segloss_case_source"

log = logging.getLogger("segloss.ui")


def _fallback_case() -> Case:
    yy, xx = np.mgrid[:128, :128]
    gt = ((yy - 64) ** 2 + (xx - 64) ** 2 <= 30**2).astype(np.int64)
    fg = np.clip(gt * 0.9 + 0.05, 0, 1).astype(np.float32)
    return Case(gt, np.stack([1 - fg, fg]), name="disk")


def current_case() -> Case:
    leave_legacy_mode()  # a bookmarked page on a fresh server: see ui/pages_mode.py
    if CASE_KEY not in st.session_state:
        st.session_state[CASE_KEY] = _fallback_case()
    return st.session_state[CASE_KEY]


def set_case(case: Case, *, volume: Case | None = None, source: dict | None = None) -> None:
    """Make ``case`` (2-D) current. ``volume``: the 3-D case it was sliced from, if any.
    ``source``: how to rebuild it (for the Python snippet), default "saved .npz"."""
    st.session_state[CASE_KEY] = case
    st.session_state[VOLUME_KEY] = volume
    st.session_state[SOURCE_KEY] = source or {"kind": "npz", "path": "case.npz"}


def current_volume() -> Case | None:
    return st.session_state.get(VOLUME_KEY)


def case_source() -> dict:
    """How the current case was made: ``{"kind": "preset", ...}`` or ``{"kind": "npz", ...}``."""
    return st.session_state.get(SOURCE_KEY) or {"kind": "npz", "path": "case.npz"}


def current_params() -> dict[str, dict]:
    return st.session_state.setdefault(PARAMS_KEY, {})


def set_params(params: dict[str, dict]) -> None:
    st.session_state[PARAMS_KEY] = {k: dict(v) for k, v in params.items() if v}


@contextlib.contextmanager
def panel(title: str | None = None):
    """Run one panel; an unexpected exception becomes a short message in that panel only."""
    leave_legacy_mode()  # a bookmarked page on a fresh server: see ui/pages_mode.py
    box = st.container()
    with box:
        try:
            yield box
        except (RerunException, StopException):
            raise
        except Exception as err:  # noqa: BLE001 - the error boundary is the point
            where = f" in {title}" if title else ""
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.exception("panel %s failed", title)
            st.error(f"Something went wrong{where}: {first}")
