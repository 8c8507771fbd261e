"""The current case and loss parameters, kept in ``st.session_state`` so every page shares them.

Interface used by every page (keep it stable):
- ``current_case() -> segloss_core.Case``: the case built by the sidebar case builder.
- ``current_params() -> dict[str, dict]``: per-loss parameter overrides chosen on the Playground.
- ``panel(title)``: context manager, an error boundary for one panel.
"""

from __future__ import annotations

import contextlib

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import RerunException, StopException

from segloss_core import Case

CASE_KEY = "segloss_case"
PARAMS_KEY = "segloss_loss_params"


def _fallback_case() -> Case:
    yy, xx = np.mgrid[:128, :128]
    gt = ((yy - 64) ** 2 + (xx - 64) ** 2 <= 30**2).astype(np.int64)
    fg = np.clip(gt * 0.9 + 0.05, 0, 1).astype(np.float32)
    return Case(gt, np.stack([1 - fg, fg]), name="disk")


def current_case() -> Case:
    if CASE_KEY not in st.session_state:
        st.session_state[CASE_KEY] = _fallback_case()
    return st.session_state[CASE_KEY]


def set_case(case: Case) -> None:
    st.session_state[CASE_KEY] = case


def current_params() -> dict[str, dict]:
    return st.session_state.setdefault(PARAMS_KEY, {})


@contextlib.contextmanager
def panel(title: str | None = None):
    """Run one panel; an unexpected exception becomes a short message in that panel only."""
    box = st.container()
    with box:
        try:
            yield box
        except (RerunException, StopException):
            raise
        except Exception as err:  # noqa: BLE001 - the error boundary is the point
            where = f" in {title}" if title else ""
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            st.error(f"Something went wrong{where}: {first}")
