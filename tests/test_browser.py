"""Real-browser tests: ``streamlit run app.py`` on a free loopback port, driven by Playwright in
Debian's Chromium (/usr/bin/chromium). They load every page and fail on any exception text, draw a
stroke on the canvas, upload a file, move a slider and check that the loss table (downloaded as
CSV) changes, and open a share link. Screenshots go to $SHOTS (default: a temporary folder;
``make screenshots`` sets docs/screenshots).

Skipped, with the reason, only when /usr/bin/chromium is missing (playwright is a dev requirement).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect, sync_playwright

from benchmarks.browser_harness import (
    CHROMIUM,
    RUN_TIMEOUT_MS,
    launch_browser,
    open_page,
    wait_for_app,
)

#: (screenshot name, url path) of every page in app.py's st.navigation.
PAGES = [("playground", ""), ("gradients", "gradients"), ("landscape", "landscape"), ("bias", "bias"),
         ("agreement", "agreement"), ("optimise", "optimise"), ("dataset", "dataset")]
BAD_TEXT = ("Traceback", "Error:", "Exception")

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]
if not os.path.exists(CHROMIUM):
    pytestmark.append(pytest.mark.skip(reason=f"{CHROMIUM} is missing (Debian package 'chromium')"))


@pytest.fixture(scope="module")
def server(served_app) -> str:
    """The served app's URL (conftest's ``served_app``)."""
    return served_app.url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("SHOTS") or tempfile.mkdtemp(prefix="segloss-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_clean(page, where: str) -> None:
    text = page.inner_text("body")
    bad = [w for w in BAD_TEXT if w in text]
    assert not bad, f"{where}: exception text {bad} on the page"
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where}: st.exception element"


def shoot(page, path: Path) -> None:
    """Screenshot of the page scrolled to the top (Streamlit scrolls inside its own containers)."""
    page.evaluate("() => { for (const el of document.querySelectorAll('*')) { if (el.scrollTop) el.scrollTop = 0; } }")
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))


def metric_values(page) -> list[str]:
    return page.locator('[data-testid="stMetricValue"]').all_inner_texts()


def table_csv(page) -> dict[str, str]:
    """The loss table as downloaded with the 'Table (CSV)' button: {loss name: value}."""
    # A rerun that is still settling can replace the button under the click: try again, bounded.
    for attempt in range(3):
        try:
            with page.expect_download(timeout=RUN_TIMEOUT_MS // 3) as dl:
                page.get_by_role("button", name="Table (CSV)").click()
            break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
            wait_for_app(page)
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert rows, "empty CSV"
    return {r["loss"]: r["value"] for r in rows}


def sidebar_choice(page, label: str) -> None:
    page.locator('[data-testid="stSidebar"] [data-testid="stRadio"] label').filter(has_text=label).first.click()
    wait_for_app(page)


def test_every_page_loads_without_exception(page, server, shots):
    # The server's very first request goes to a page other than the entry point: Streamlit's
    # legacy pages/ mode must not bypass app.py (ui.session routes it back).
    open_page(page, server, "gradients")
    nav = page.locator('[data-testid="stSidebarNav"] a')
    # the rerun through app.py replaces the legacy page list; give it time on a loaded machine
    expect(nav).to_have_count(len(PAGES), timeout=RUN_TIMEOUT_MS)
    assert any("Gradient maps" in t for t in nav.all_inner_texts()), "app.py's navigation, not the pages/ folder's"
    for name, path in PAGES:
        open_page(page, server, path)
        assert_clean(page, name)
        assert page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').count() >= 1, \
            f"{name}: the case builder is in the sidebar"
        shoot(page, shots / f"{name}.png")


def test_slider_updates_the_loss_table_and_pinned_deltas(page, server, shots):
    open_page(page, server)
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    page.get_by_role("button", name="Pin this prediction").click()
    wait_for_app(page)
    before = table_csv(page)
    thumb = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"]').filter(
        has_text="shift x").locator('input[type="range"]')
    thumb.focus()
    for _ in range(8):  # step 0.5 px: 4 px further right
        page.keyboard.press("ArrowRight")
    wait_for_app(page)
    assert_clean(page, "after a slider move")
    after = table_csv(page)
    assert set(after) == set(before)
    assert float(after["dice"]) > float(before["dice"]), "moving the prediction further off raises the Dice loss"
    assert page.locator('[data-testid="stImage"]').count() >= 3, "ground truth, prediction and error images"
    # the case shows as images until 'Linked zoom'; the figures are the profile and the pinned deltas
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 2
    profile = page.locator('.st-key-pg_profile [data-testid="stPlotlyChart"]')
    expect(profile.locator(".main-svg").first).to_be_attached()
    assert profile.locator(".scatterlayer .trace").count() == 1, "one line: p(foreground)"
    deltas = page.locator('.st-key-delta_figure [data-testid="stPlotlyChart"]')
    deltas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    deltas.screenshot(path=str(shots / "pin_deltas.png"))


def test_draw_a_stroke_on_the_canvas(page, server, shots):
    open_page(page, server)
    dice_before = metric_values(page)[0]
    sidebar_choice(page, "Draw")
    canvas = page.locator('[data-testid="stBidiComponentIsolated"] canvas.upper-canvas').first
    canvas.wait_for(timeout=RUN_TIMEOUT_MS)
    box = canvas.bounding_box()
    assert box and box["width"] > 100
    y = box["y"] + 0.1 * box["height"]  # the top band: outside the disk
    page.mouse.move(box["x"] + 0.15 * box["width"], y)
    canvas.hover()  # the canvas only registers a drag after a hover
    page.mouse.move(box["x"] + 0.15 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.85 * box["width"], y + 4, steps=25)
    page.mouse.up()
    wait_for_app(page)
    assert_clean(page, "after drawing")
    dice_after = metric_values(page)[0]
    assert dice_after != dice_before, "painting ground truth outside the disk adds false negatives"
    shoot(page, shots / "draw.png")


def _png_bytes(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_a_file(page, server, shots, tmp_path):
    gt = np.zeros((96, 96), np.uint8)
    gt[30:70, 20:60] = 255
    pred = np.zeros((96, 96), np.uint8)
    pred[34:74, 24:64] = 255
    (tmp_path / "upload_gt.png").write_bytes(_png_bytes(gt))
    (tmp_path / "upload_pred.png").write_bytes(_png_bytes(pred))
    open_page(page, server)
    before = table_csv(page)
    sidebar_choice(page, "Upload")
    inputs = page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]')
    inputs.nth(0).set_input_files(str(tmp_path / "upload_gt.png"))
    wait_for_app(page)
    inputs.nth(1).set_input_files(str(tmp_path / "upload_pred.png"))
    wait_for_app(page)
    assert_clean(page, "after the upload")
    assert page.get_by_text("upload_gt.png").count() >= 1
    # a 40 x 40 square shifted by (4, 4): hard Dice = 2 * 36^2 / (2 * 40^2) = 0.81
    assert metric_values(page)[0] == "0.8100"
    after = table_csv(page)
    assert after["dice"] != before["dice"]
    shoot(page, shots / "upload.png")
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"this is not an image")
    inputs.nth(1).set_input_files(str(bad))
    wait_for_app(page)
    assert page.get_by_text("Upload rejected").count() == 1
    assert metric_values(page)[0] == "0.8100", "the previous case stays"


def test_share_link_reproduces_a_preset(page, server, shots):
    open_page(page, server, "?preset=ring&dilate=3")
    assert_clean(page, "share link")
    assert page.get_by_text("Ring:", exact=False).count() >= 1
    thumb = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"]').filter(
        has_text="dilate").locator('input[type="range"]')
    assert float(thumb.input_value()) == 3.0
    open_page(page, server, "?preset=phantom")
    assert_clean(page, "multi-class preset")
    shoot(page, shots / "multiclass.png")
