"""Concurrent users: one ``streamlit run app.py`` server (as ``make run`` serves it) on a free loopback port, 8 browser
contexts (separate sessions, no shared cookies) opened at the same time, each on a different preset
through the URL (``?preset=<name>``, the case builder's bound selectbox). Every session must show
its own case (its preset's caption, its own Dice in the metrics) and no error text, also after all
8 switch presets at once (no shared mutable state or cache between sessions).

Skipped, with the reason, only when /usr/bin/chromium (or the playwright package) is missing.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from benchmarks.browser_harness import CHROMIUM, launch_browser

SIZE = 64  # px: the smallest preset size keeps 8 sessions cheap on a shared CPU
RUN_TIMEOUT_MS = 240_000
BAD_TEXT = re.compile(r"Traceback|Exception|\bError\b")

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]
if not os.path.exists(CHROMIUM):
    pytestmark.append(pytest.mark.skip(reason=f"{CHROMIUM} is missing (Debian package 'chromium')"))

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def _settled(page) -> None:
    """Wait until the session's script run has finished and the page has settled."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(500)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stSkeleton"]', state="detached", timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(500)


def _expected_dice(name: str) -> str | None:
    """The Dice the metrics panel must show for the preset (binary presets), as the app formats it."""
    import segloss_core as sc
    from segloss_core.data.presets import make_case

    case = make_case(name, size=SIZE)
    if not case.is_binary:
        return None
    d = sc.metrics(case.hard_prediction, case.gt, num_classes=2)[1]["dice"]
    return "n/a" if d is None else f"{d:.4f}"


def _check_session(page, name: str, others: list[str]) -> None:
    from segloss_core.data.presets import PRESETS

    preset = PRESETS[name]
    text = page.locator('[data-testid="stApp"]').inner_text(timeout=RUN_TIMEOUT_MS)
    bad = BAD_TEXT.search(text)
    assert bad is None, f"session {name}: error text {text[max(0, bad.start() - 200): bad.end() + 200]!r}"
    assert page.locator('[data-testid="stException"]').count() == 0, f"session {name}: exception element"
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text(timeout=RUN_TIMEOUT_MS)
    assert preset.caption in sidebar, f"session {name} does not show its preset's caption"
    for other in others:
        assert PRESETS[other].caption not in sidebar, f"session {name} shows preset {other}"
    dice = _expected_dice(name)
    if dice is not None:
        metric = page.locator('[data-testid="stMetric"]').filter(has_text=re.compile(r"^\s*Dice"))
        assert metric.count() >= 1, f"session {name}: no Dice metric"
        shown = metric.first.locator('[data-testid="stMetricValue"]').inner_text()
        assert shown.strip() == dice, f"session {name}: Dice {shown!r}, expected {dice!r} (another session's?)"


def _choose_preset(page, name: str) -> None:
    """Pick ``name`` in the sidebar's "Preset" selectbox (a rerun of this session only)."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text="Preset").first
    box.locator("input").click(timeout=RUN_TIMEOUT_MS)
    page.get_by_role("option", name=name, exact=True).click(timeout=RUN_TIMEOUT_MS)


def test_eight_sessions_on_one_server_each_see_their_own_preset(served_app):
    from segloss_core.data.presets import PRESETS

    names = list(PRESETS)[:8]
    assert len(names) == 8, f"need 8 presets for 8 sessions, have {names}"
    url = served_app.url
    with sync_api.sync_playwright() as p:
        browser = launch_browser(p)
        try:
            contexts = [browser.new_context(viewport={"width": 1400, "height": 1600}) for _ in names]
            pages = [c.new_page() for c in contexts]
            # round 1: all 8 sessions start at once (navigation returns at commit; the runs overlap)
            for page, name in zip(pages, names, strict=True):
                page.goto(f"{url}/?preset={name}&size={SIZE}", wait_until="commit", timeout=RUN_TIMEOUT_MS)
            t0 = time.time()
            for page in pages:
                _settled(page)
            print(f"round 1 settled in {time.time() - t0:.1f} s")
            for page, name in zip(pages, names, strict=True):
                try:
                    _check_session(page, name, [n for n in names if n != name])
                except AssertionError as err:
                    raise AssertionError(f"{err}\nserver log:\n{served_app.log_tail(3000)}") from None
            # round 2: every session switches to the next preset in its own sidebar, all at once
            rotated = names[1:] + names[:1]
            t0 = time.time()
            for page, name in zip(pages, rotated, strict=True):
                _choose_preset(page, name)
            for page in pages:
                _settled(page)
            print(f"round 2 settled in {time.time() - t0:.1f} s")
            for page, name in zip(pages, rotated, strict=True):
                _check_session(page, name, [n for n in names if n != name])
            for c in contexts:
                c.close()
        finally:
            browser.close()
