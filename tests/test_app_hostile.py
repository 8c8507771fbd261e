"""Hostile uploads and the error boundary, through the running app (AppTest of app.py).

Every hostile input of ``tests/test_io.py``'s ``HOSTILE`` table (the same table the CLI tests run)
is uploaded through the sidebar's real upload widgets, after a good case was loaded. For each the
page must show exactly one ``st.error`` of one line that carries the reader's message, no
exception element, the previous case must stay current, and the loss table must still render.
The same files go through the "Load a saved case (.npz)" uploader too. Peak memory stays bounded
(the table holds 2 GiB gzip bombs and a 30000 x 30000 PNG).

Error boundary: a core function used by one panel is made to raise; that panel shows one short
line, the rest of the page renders, nothing is shown as an exception. The shipped
``.streamlit/config.toml`` hides error details and caps uploads.
"""

from __future__ import annotations

import re
import resource
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_io import GOOD_GT, GOOD_PRED, HOSTILE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASE_KEY = "segloss_case"  # ui.session.CASE_KEY
GT_KEY, PRED_KEY, NPZ_KEY = "upload_gt", "upload_pred", "upload_npz"  # ui.case_builder's uploaders
#: Growth of the process's peak RSS allowed over the whole hostile table.
RSS_SLACK_MB = 300


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def _case(at):
    return at.session_state[CASE_KEY]


def _loss_table(at):
    frames = [d for d in at.dataframe if "family" in d.value.columns]
    assert len(frames) == 1, "the loss table is missing"
    return frames[0].value


def _good_upload(app_test):
    """App in Upload mode with the good pair of test_io loaded: returns (AppTest, its digest)."""
    import numpy as np

    import segloss_core as sc
    from segloss_core.data import files as sio

    at = app_test()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.radio(key="case_mode").set_value("Upload").run()
    at.file_uploader(key=GT_KEY).set_value(("gt.png", GOOD_GT, "image/png"))
    at.file_uploader(key=PRED_KEY).set_value(("pred.npy", GOOD_PRED, "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    ref = sio.read_case(GOOD_GT, GOOD_PRED)
    case = _case(at)
    np.testing.assert_array_equal(case.gt, ref.gt)
    np.testing.assert_allclose(case.probs, ref.probs)
    assert isinstance(case, sc.Case)
    return at, case.digest()


def _check_rejected(at, digest: str, expect: str, prefix: str, label: str) -> str:
    assert not at.exception, f"{label}: exception element {[e.value for e in at.exception]}"
    errors = [e.value for e in at.error]
    assert len(errors) == 1, f"{label}: expected one st.error, got {errors}"
    msg = errors[0]
    assert "\n" not in msg and len(msg) < 500, f"{label}: {msg!r}"
    assert msg.startswith(prefix) and "previous case is kept" in msg, f"{label}: {msg!r}"
    said = msg[len(prefix): msg.rindex(". The previous case is kept")]  # the reader's own line
    assert re.search(expect, said), f"{label}: {msg!r} does not say {expect!r}"
    assert "Traceback" not in msg and 'File "' not in msg, f"{label}: {msg!r}"
    assert _case(at).digest() == digest, f"{label}: the previous case was replaced"
    _loss_table(at)  # the page still renders
    return msg


def test_every_hostile_file_through_the_upload_widgets(app_test):
    at, digest = _good_upload(app_test)
    before = _peak_rss_mb()
    seen = {}
    for h in HOSTILE:
        gt, pred = h.gt(), h.pred()
        # names deliberately lie about the content: files are identified by their bytes
        at.file_uploader(key=GT_KEY).set_value((f"{h.id}_gt.png", gt, "image/png"))
        at.file_uploader(key=PRED_KEY).set_value((f"{h.id}_pred.npy", pred, "application/octet-stream"))
        at.run()
        seen[h.id] = _check_rejected(at, digest, h.expect, "Upload rejected: ", h.id)
    grown = _peak_rss_mb() - before
    assert grown < RSS_SLACK_MB, f"peak memory grew by {grown:.0f} MB over the hostile table"
    # each message names the file at fault (the reader prefixes its name) when one file is to blame
    assert "empty_gt.png: empty file" in seen["empty"]
    # and a good pair afterwards is accepted again (the rejection left no stale state behind)
    at.file_uploader(key=GT_KEY).set_value(("gt.png", GOOD_GT, "image/png"))
    at.file_uploader(key=PRED_KEY).set_value(("pred.npy", GOOD_PRED, "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error
    assert _case(at).digest() == digest


def test_every_hostile_file_through_the_npz_loader(app_test):
    """The saved-case loader takes one file: each hostile file of the table (the one at fault)."""
    at, digest = _good_upload(app_test)
    for h in HOSTILE:
        gt, pred = h.gt(), h.pred()
        bad = gt if gt != GOOD_GT else pred
        if bad == GOOD_PRED:  # a mismatch of two good files: not a bad file on its own
            continue
        at.file_uploader(key=NPZ_KEY).set_value((f"{h.id}.npz", bad, "application/zip"))
        at.run()
        # the upload widgets still hold the good pair: only the loader's error may show
        _check_rejected(at, digest, r".", "Could not load the case: ", h.id)


def test_ground_truth_alone_hostile_is_rejected(app_test):
    """Without a prediction the app makes one from the ground truth: every ground truth of the table
    that the reader refuses on its own is refused by the app with the reader's exact line."""
    from segloss_core.data import files as sio

    at, digest = _good_upload(app_test)
    at.file_uploader(key=PRED_KEY).set_value(None)
    at.run()
    tried = 0
    for h in HOSTILE:
        gt, name = h.gt(), f"{h.id}.nii.gz"
        try:
            sio.read_label_map(gt, name)
        except ValueError as err:
            reader_says = str(err).rstrip(". ")
        else:
            continue  # a valid label map on its own (the table's fault is the pair)
        at.file_uploader(key=GT_KEY).set_value((name, gt, "application/gzip"))
        at.run()
        _check_rejected(at, digest, "^" + re.escape(reader_says) + "$", "Upload rejected: ", h.id)
        tried += 1
    assert tried >= 20


# ---------------------------------------------------------------------------------------- error boundary


def test_failing_metrics_panel_leaves_the_rest_of_the_page(app_test, monkeypatch):
    from segloss_core.analyses import playground as pg

    def out_of_memory(*args, **kwargs):
        raise MemoryError("cannot allocate 3 GiB\n  File \"secret.py\", line 1")

    monkeypatch.setattr(pg, "confusion_counts", out_of_memory)
    at = app_test()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == ["Something went wrong in the metrics: cannot allocate 3 GiB"]
    _loss_table(at)  # the loss table, the images and the sidebar still render
    assert len(at.get("image")) == 3 and all(c.proto.imgs[0].url for c in at.get("image"))
    assert at.selectbox(key="preset").value == "disk"


def test_failing_case_builder_falls_back_and_the_page_renders(app_test, monkeypatch):
    import streamlit as st

    from segloss_core.data import presets

    def broken(*args, **kwargs):
        raise KeyError("preset table corrupted")

    st.cache_data.clear()  # ui.cache.preset_case would otherwise serve an earlier result
    monkeypatch.setattr(presets, "make_case", broken)
    at = app_test(query_params={"preset": "ring", "size": "64"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert errors == ["Something went wrong in the case builder: 'preset table corrupted'"], errors
    _loss_table(at)
    assert _case(at) is not None  # the fallback case: the page still has something to show
    st.cache_data.clear()


# ---------------------------------------------------------------------------------------- shipped config


def test_shipped_config_hides_error_details_and_caps_uploads():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["showErrorDetails"] == "none"
    assert 0 < cfg["server"]["maxUploadSize"] <= 50


def test_every_upload_widget_is_capped_at_50_mb(app_test):
    at = app_test()
    at.run()
    at.radio(key="case_mode").set_value("Upload").run()
    assert not at.exception
    uploaders = {u.key: u.proto.max_upload_size_mb for u in at.get("file_uploader")}
    assert {GT_KEY, PRED_KEY, NPZ_KEY} <= set(uploaders), uploaders
    assert all(0 < mb <= 50 for mb in uploaders.values()), uploaders


def test_streamlit_hides_everything_with_the_shipped_setting():
    """With the shipped value Streamlit 1.67 shows neither message, trace nor type of an uncaught
    exception (the legacy ``false`` would still show the stack trace)."""
    from streamlit import config
    from streamlit.elements.exception import _error_detail_visibility

    shipped = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["client"]["showErrorDetails"]
    old = config.get_option("client.showErrorDetails")
    try:
        config.set_option("client.showErrorDetails", shipped)
        shown = _error_detail_visibility(True)
        assert not (shown.show_message or shown.show_trace or shown.show_type), shown
        config.set_option("client.showErrorDetails", False)
        assert _error_detail_visibility(True).show_trace  # why "none" and not false
    finally:
        config.set_option("client.showErrorDetails", old)
