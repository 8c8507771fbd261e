"""Shared AppTest helpers for the page tests: a small disk case, running one page with a case
injected into session state, and the no-exception / no-error check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

import segloss_core as sc
from ui.session import CASE_KEY

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"


def disk_case(size=48, radius=8, shift=(0, 3), num_classes=2, confidence=0.8, second_at=8):
    """A disk GT and a shifted, uniformly confident disk prediction; with ``num_classes=3`` a small
    second object of class 2 sits at (``second_at``, ``second_at``)."""
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    gt = ((yy - c) ** 2 + (xx - c) ** 2 <= radius**2).astype(np.int64)
    if num_classes == 3:
        gt[(yy - second_at) ** 2 + (xx - second_at) ** 2 <= 9] = 2
    pred = (yy - c - shift[0]) ** 2 + (xx - c - shift[1]) ** 2 <= radius**2
    probs = np.full((num_classes, size, size), 0.05)
    probs[1] = np.where(pred, confidence, 0.05)
    probs[0] = 1 - probs[1:].sum(0)
    return sc.Case(gt, probs.astype(np.float32), name="test disk")


def assert_clean(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def run_page(page: str, case=None, *, timeout=300, state=None) -> AppTest:
    """Run ``pages/<page>.py`` once (with ``case`` and extra ``state`` in session state), checked clean."""
    at = AppTest.from_file(str(PAGES_DIR / f"{page}.py"), default_timeout=timeout)
    if case is not None:
        at.session_state[CASE_KEY] = case
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    assert_clean(at)
    return at
