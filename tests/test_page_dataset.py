"""AppTest for pages/dataset.py: a zip of an nnU-Net-style validation set and the CLI's CSV give the
numbers of segloss_core.analyses.dataset; a bad upload is one message; a case opens on every page."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from segloss_core.analyses import dataset as ds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_dataset import nnunet_members  # noqa: E402

torch.set_num_threads(1)
LOSSES = ["dice", "ce", "boundary"]
PAGE = "pages/dataset.py"


@pytest.fixture(scope="module")
def zip_bytes(tmp_path_factory) -> bytes:
    """Six small 3-D cases (NIfTI labels, nnU-Net probabilities in (z, y, x)), one label without a
    prediction, a .pkl and a dataset.json, zipped under one wrapper folder."""
    members = nnunet_members(tmp_path_factory.mktemp("zipset"), 6, (12, 10, 8), 20, (1.0, 1.0, 2.0))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"set/{name}", data)
        zf.writestr("set/labels/case_9.nii.gz", members["labels/case_5.nii.gz"])
        zf.writestr("set/predictions/case_0.pkl", b"\x80\x04never unpickled")
        zf.writestr("set/predictions/dataset.json", json.dumps({"labels": {"bg": 0, "a": 1, "b": 2}}))
    return buf.getvalue()


@pytest.fixture(scope="module")
def expected(zip_bytes):
    return ds.ZipDataset(zip_bytes).evaluate(LOSSES)


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _open(app_test):
    at = app_test(timeout=300)
    at.run()
    at.switch_page(PAGE).run()
    _ok(at)
    return at


def _bars(at) -> dict[str, float]:
    chart = next(c for c in at.get("plotly_chart") if "ds_bars" in c.proto.id)
    bars = json.loads(chart.proto.spec)["data"][0]
    return dict(zip(bars["y"], bars["x"], strict=True))


def _upload_zip(at, data: bytes):
    at.radio(key="ds_source").set_value("Validation set (.zip)").run()
    at.multiselect(key="ds_losses").set_value(LOSSES).run()
    at.file_uploader(key="ds_zip").set_value(("set.zip", data, "application/zip")).run()
    return at


def test_page_loads_with_a_hint(app_test):
    at = _open(app_test)
    assert at.title[0].value == "Dataset"
    assert "Upload the CSV" in at.info[0].value


def test_zip_evaluates_and_matches_the_core(app_test, zip_bytes, expected):
    rows, skipped = expected
    assert [r["case"] for r in rows] == [f"case_{i}" for i in range(6)] and skipped[0][0] == "case_9"
    at = _upload_zip(_open(app_test), zip_bytes)
    _ok(at)
    assert any("6 pairs found" in c.value and "3 classes from dataset.json" in c.value for c in at.caption)
    at.button(key="ds_run").click().run()
    assert not at.exception
    assert [w.value for w in at.warning] == [f"skipped case_9: {skipped[0][1]}"]
    want = ds.agreement_with(rows, "metric_dice")
    shown = _bars(at)
    assert set(shown) == set(LOSSES)
    for loss in LOSSES:
        assert shown[loss] == pytest.approx(want[loss]["spearman"], abs=1e-9)
    at.selectbox(key="ds_metric").set_value("metric_hd95").run()
    at.segmented_control(key="ds_method").set_value("kendall").run()
    want = ds.agreement_with(rows, "metric_hd95")
    shown = _bars(at)
    for loss in LOSSES:
        if want[loss]["kendall"] is not None:
            assert shown[loss] == pytest.approx(want[loss]["kendall"], abs=1e-9)
    scatter = next(c for c in at.get("plotly_chart") if "ds_scatter" in c.proto.id)
    assert sorted(json.loads(scatter.proto.spec)["data"][0]["text"]) == [r["case"] for r in rows
                                                                          if r["metric_hd95"] is not None]
    worst = next(d.value for d in at.dataframe if "metric_hd95 (metric)" in d.value.columns)
    top = ds.worst_cases(rows, "boundary", 5)[0]
    assert worst["boundary"].iloc[0] == f"{top[0]} ({top[1]:.3g})"

    # one click makes a case the current case of every page (3-D: the sidebar's slice picker)
    at.selectbox(key="ds_case").set_value("case_3").run()
    at.button(key="ds_open").click().run()
    assert not at.exception
    zset = ds.ZipDataset(zip_bytes)
    case = zset.case(next(p for p in zset.pairs if p.case == "case_3"))
    assert at.session_state["segloss_volume"].digest() == case.digest()
    assert at.radio(key="case_mode").value == "Upload"
    assert at.slider(key="slice_index") is not None


def test_csv_gives_the_same_numbers_instantly(app_test, expected):
    rows, _ = expected
    at = _open(app_test)
    at.file_uploader(key="ds_csv").set_value(("results.csv", ds.to_csv(rows).encode(), "text/csv")).run()
    _ok(at)
    want = ds.agreement_with(rows, "metric_dice")
    for loss, value in _bars(at).items():
        assert value == pytest.approx(want[loss]["spearman"], abs=1e-9)
    assert any("upload the validation set as a zip" in c.value for c in at.caption)


@pytest.mark.parametrize("name, data, expect", [
    ("results.csv", b"\x89PNG\r\n\x1a\n\0\0", "not a UTF-8 text file"),
    ("results.csv", b"case,dice,metric_dice\nc1,abc,0.5\n", "line 2, column 'dice': 'abc' is not a number"),
    ("results.csv", b"name,value\nx,1\n", "no 'case' column"),
])
def test_bad_csv_is_one_message(app_test, name, data, expect):
    at = _open(app_test)
    at.file_uploader(key="ds_csv").set_value((name, data, "text/csv")).run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("Could not use this file: ")
    assert expect in at.error[0].value, at.error[0].value


def test_bad_zip_is_one_message(app_test):
    at = _open(app_test)
    at.radio(key="ds_source").set_value("Validation set (.zip)").run()
    at.file_uploader(key="ds_zip").set_value(("set.zip", b"PK\x03\x04 not really", "application/zip")).run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("Upload rejected: not a readable zip archive")
