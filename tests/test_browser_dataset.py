"""The Dataset page in Debian's Chromium (Playwright): upload a zip of an nnU-Net-style validation set,
evaluate it, see the rank-agreement bars, open a case on every page; upload the CLI's CSV. A
screenshots ``dataset_results.png``, ``dataset_cases.png`` go to $SHOTS (``make screenshots``: docs/screenshots).

Skipped, with the reason, only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from benchmarks.browser_harness import (
    CHROMIUM,
    RUN_TIMEOUT_MS,
    launch_browser,
    open_page,
    wait_for_app,
)
from segloss_core.analyses import dataset as ds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_dataset import nnunet_members  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]
if not os.path.exists(CHROMIUM):
    pytestmark.append(pytest.mark.skip(reason=f"{CHROMIUM} is missing (Debian package 'chromium')"))
BAD_TEXT = ("Traceback", "Error:", "Exception")


@pytest.fixture(scope="module")
def server(served_app) -> str:
    """The served app's URL (conftest's ``served_app``)."""
    return served_app.url


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p:
        browser = launch_browser(p)
        context = browser.new_context(viewport={"width": 1400, "height": 2000})
        yield context.new_page()
        browser.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """(set.zip, results.csv): eight small 3-D cases; the CSV is the core's own for that zip."""
    root = tmp_path_factory.mktemp("browser_set")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in nnunet_members(root, 8, (16, 14, 10), 40, (1.0, 1.0, 1.5), "case_{i:02d}").items():
            zf.writestr(name, data)
        zf.writestr("predictions/dataset.json", json.dumps({"labels": {"bg": 0, "a": 1, "b": 2}}))
    (root / "set.zip").write_bytes(buf.getvalue())
    rows, _ = ds.ZipDataset(buf.getvalue()).evaluate(["dice", "ce", "boundary"])
    (root / "results.csv").write_text(ds.to_csv(rows))
    return root / "set.zip", root / "results.csv"


def assert_clean(page, where: str) -> None:
    text = page.inner_text("body")
    assert not [w for w in BAD_TEXT if w in text], f"{where}: exception text on the page"
    assert page.locator('[data-testid="stException"]').count() == 0, where


def main_uploader(page):
    return page.locator('[data-testid="stMain"] [data-testid="stFileUploaderDropzoneInput"]').first


def test_zip_upload_evaluate_and_open_a_case(page, server, files):
    zip_path, _ = files
    open_page(page, server, "dataset")
    assert_clean(page, "the empty page")
    page.locator('[data-testid="stMain"] [data-testid="stRadio"] label').filter(has_text="Validation set").click()
    wait_for_app(page)
    main_uploader(page).set_input_files(str(zip_path))
    wait_for_app(page)
    expect(page.get_by_text("8 pairs found")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    page.get_by_role("button", name="Evaluate 8 cases").click()
    wait_for_app(page)
    assert_clean(page, "after evaluating")
    expect(page.get_by_text("8 cases", exact=True)).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(2, timeout=RUN_TIMEOUT_MS)
    shots = Path(os.environ.get("SHOTS") or tempfile.mkdtemp(prefix="segloss-shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "dataset_results.png"))
    page.locator('[data-testid="stPlotlyChart"]').nth(1).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "dataset_cases.png"))
    # clicking a point of the scatter picks its case
    point = page.locator('[data-testid="stPlotlyChart"]').nth(1).locator(".scatterlayer .trace").first.locator(
        "path.point").nth(3)
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # plotly's drag layer is on top
    wait_for_app(page)
    button = page.get_by_role("button", name="the current case of every page")
    expect(button).to_contain_text("case_03", timeout=RUN_TIMEOUT_MS)  # the 4th point: the 4th case
    page.get_by_role("button", name="the current case of every page").click()
    wait_for_app(page)
    assert_clean(page, "after opening a case")
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text("3-D volume 16 x 14 x 10")).to_be_visible(timeout=RUN_TIMEOUT_MS)


def test_csv_upload_shows_the_bars(page, server, files):
    _, csv_path = files
    open_page(page, server, "dataset")
    main_uploader(page).set_input_files(str(csv_path))
    wait_for_app(page)
    assert_clean(page, "after the CSV upload")
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(2, timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_text("To open a case on the other pages")).to_be_visible(timeout=RUN_TIMEOUT_MS)
