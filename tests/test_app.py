"""AppTest of the whole app (app.py + the sidebar case builder + the Playground page) and unit tests of
the Playground's helpers in segloss_core (playground.py, conventions.py).

Every value the app shows is checked against an independent computation (segloss_core.compute_all /
compute on the same arrays, closed forms, MONAI). The drawable canvas is driven by injecting its
session-state value (a PNG data URL), the shape streamlit-drawable-canvas 0.13 uses.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import segloss_core as sc
from segloss_core.analyses import playground as pg
from segloss_core.core.conventions import CONVENTIONS, convention_params, conventions_in_force
from segloss_core.data.files import save_case_npz
from segloss_core.data.presets import PRESETS, make_case
from ui.cores import all_cores

torch.set_num_threads(1)

CASE_KEY = "segloss_case"  # ui.session.CASE_KEY
PARAMS_KEY = "segloss_loss_params"  # ui.session.PARAMS_KEY
PAGES = ["pages/playground.py", "pages/gradients.py", "pages/landscape.py", "pages/bias.py",
         "pages/agreement.py", "pages/optimise.py", "pages/dataset.py"]
TITLES = {sc.get_loss(n).title: n for n in sc.list_losses()}


# ---------------------------------------------------------------------------------------- helpers


def _ok(at, errors: bool = True):
    assert not at.exception, [e.value for e in at.exception]
    if errors:
        assert not at.error, [e.value for e in at.error]


def _start(app_test, **query):
    at = app_test(query_params=query or None)
    at.run()
    _ok(at)
    return at


def _loss_frame(at):
    frames = [d for d in at.dataframe if "family" in d.value.columns]
    assert len(frames) == 1
    return frames[0].value


def _table(at, column: str = "value") -> dict[str, float]:
    df = _loss_frame(at)
    return {TITLES[t]: v for t, v in zip(df["loss"], df[column], strict=True)}


def _expected(case, params=None) -> dict:
    probs, target = case.tensors()
    return sc.compute_all(probs, target, params=params or {}, spacing=case.spacing)


def _assert_table_matches(at, case, params=None, column="value"):
    table = _table(at, column)
    if column == "whole volume":  # the page scores a whole volume with every core (ui.cores):
        with all_cores():  # float32 sums in the same order
            expected = _expected(case, params)
    else:
        expected = _expected(case, params)
    assert set(table) == set(expected) == set(sc.list_losses())
    for name, want in expected.items():
        got = table[name]
        if isinstance(want, str):
            assert got is None or (isinstance(got, float) and math.isnan(got)), name
        else:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-9), name


def _case(at):
    return at.session_state[CASE_KEY]


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def canvas_value(rgba: np.ndarray) -> dict:
    """The session-state value of an st_canvas (0.13) holding the drawing ``rgba``: its 'drawing'
    carries the Fabric JSON and the PNG data URL that ``image_data`` decodes."""
    url = "data:image/png;base64," + base64.b64encode(_png(rgba)).decode()
    return {"drawing": {"raw": {"objects": [{"type": "Path"}]}, "data": url}, "backgroundFit": None}


def _draw(at, rgba):
    key = f"draw_canvas_{at.session_state['segloss_draw']['counter']}"  # ui.case_builder._canvas_key
    at.session_state[key] = canvas_value(rgba)
    at.run()
    _ok(at)


def _stroke(rows, cols, colour, size=240):
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[rows, cols, :3] = colour
    rgba[rows, cols, 3] = 255
    return rgba


# ---------------------------------------------------------------------------------------- app start


def test_starts_on_the_playground_with_the_disk_preset_and_every_loss(app_test):
    at = _start(app_test)
    assert at.title[0].value == "Playground"
    assert at.selectbox(key="preset").value == "disk"
    ref = make_case("disk")
    assert _case(at).digest() == ref.digest()
    _assert_table_matches(at, ref)
    # the metrics panel shows segloss_core.core.metrics of the arg-max prediction
    m = sc.metrics(ref.hard_prediction, ref.gt, num_classes=2)[1]
    shown = {x.label: x.value for x in at.metric}
    assert shown["Dice"] == f"{m['dice']:.4f}" and shown["HD95"] == f"{m['hd95']:.2f} px"
    # the Dice formula holds the live hard counts
    gt, pred = ref.gt == 1, ref.hard_prediction == 1
    tp, fp, fn = int((gt & pred).sum()), int((~gt & pred).sum()), int((gt & ~pred).sum())
    latex = " ".join(x.value for x in at.latex)
    assert f"{tp:,}".replace(",", "{,}") in latex and f"{fp:,}".replace(",", "{,}") in latex
    assert f"{2 * tp / (2 * tp + fp + fn):.4f}" in latex
    # conventions in force are shown beside the table
    assert any("EPS" in x.value for x in at.markdown)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_through_the_url(app_test, name):
    at = _start(app_test, preset=name, size="64")
    ref = make_case(name, size=64)
    assert _case(at).digest() == ref.digest()
    _assert_table_matches(at, ref)
    if ref.num_classes > 2:  # per-class values and the class legend
        at.toggle(key="per_class").set_value(True).run()
        _ok(at)
        per = [d.value for d in at.dataframe if "loss" in d.value.columns and "family" not in d.value.columns]
        assert per and set(ref.class_names) <= set(per[0].columns)
        c = 1
        pc = ref.probs[c]
        binary = sc.Case((ref.gt == c).astype(np.int64), np.stack([1 - pc, pc]))
        want = _expected(binary)["dice"]
        row = per[0][per[0]["loss"] == sc.get_loss("dice").title].iloc[0]
        assert row[ref.class_names[c]] == pytest.approx(want, rel=1e-6)


def test_choosing_a_preset_resets_its_prediction_and_sliders_change_the_table(app_test):
    at = _start(app_test)
    before = _table(at)
    at.selectbox(key="preset").set_value("ring").run()
    _ok(at)
    assert at.slider(key="dilate").value == PRESETS["ring"].prediction["dilate"]
    assert at.slider(key="shift_x").value == 0.0
    assert _case(at).digest() == make_case("ring").digest()
    at.slider(key="shift_x").set_value(6.0).run()
    _ok(at)
    ref = make_case("ring", prediction={"dilate": 2.0, "shift_x": 6.0})
    assert _case(at).digest() == ref.digest()
    _assert_table_matches(at, ref)
    assert _table(at)["dice"] > before["dice"]
    at.slider(key="ring_thickness").set_value(20.0).run()
    _ok(at)
    assert _case(at).digest() == make_case("ring", prediction={"dilate": 2.0, "shift_x": 6.0},
                                           thickness=20.0).digest()
    at.button(key="reset_prediction").click().run()
    assert at.slider(key="shift_x").value == 0.0


def test_share_link_reproduces_the_view(app_test):
    from ui.case_builder import share_query

    query = {"preset": "ring", "dilate": "3", "ring_thickness": "20", "noise": "0.5", "seed": "7"}
    at = _start(app_test, **query)
    ref = make_case("ring", prediction={"dilate": 3.0, "noise": 0.5}, seed=7, thickness=20.0)
    assert _case(at).digest() == ref.digest()
    source = at.session_state["segloss_case_source"]
    again = _start(app_test, **share_query(source))
    assert _case(again).digest() == ref.digest()
    assert any("cannot live in a URL" in c.value for c in at.caption)
    # a slider moved back to 0 from its preset's non-zero default must be in the link too
    at = _start(app_test, preset="disk", shift_x="0")
    ref = make_case("disk", prediction={"dilate": 2.0, "shift_x": 0.0})
    assert _case(at).digest() == ref.digest()
    query = share_query(at.session_state["segloss_case_source"])
    assert query["shift_x"] == "0" and "dilate" not in query
    assert _case(_start(app_test, **query)).digest() == ref.digest()


# ---------------------------------------------------------------------------------------- uploads


def _upload_mode(app_test):
    at = _start(app_test)
    at.radio(key="case_mode").set_value("Upload").run()
    _ok(at)
    assert any("memory only" in c.value for c in at.caption)
    return at


def test_upload_good_files_then_bad_files_keep_the_previous_case(app_test):
    at = _upload_mode(app_test)
    gt = np.zeros((48, 64), np.uint8)
    gt[10:30, 12:40] = 255
    fg = np.clip(np.roll(gt, 3, axis=1) / 255 * 0.8 + 0.1, 0, 1).astype(np.float32)
    at.file_uploader(key="upload_gt").set_value(("gt.png", _png(gt), "image/png")).run()
    at.file_uploader(key="upload_pred").set_value(("pred.npy", _npy(fg), "application/octet-stream")).run()
    _ok(at)
    case = _case(at)
    np.testing.assert_array_equal(case.gt, gt // 255)
    np.testing.assert_allclose(case.probs[1], fg, rtol=1e-6)
    _assert_table_matches(at, sc.Case(gt // 255, np.stack([1 - fg, fg])))

    jpeg = io.BytesIO()
    Image.fromarray(gt).save(jpeg, format="JPEG")
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad_pred = {
        "garbage.png": b"this is not an image",
        "pickle.npy": pickled.getvalue(),
        "raw_pickle.npy": pickle.dumps({"a": 1}),
        "nan.npy": _npy(np.full((48, 64), np.nan, np.float32)),
        "range.npy": _npy(np.full((48, 64), 1.5, np.float32)),
        "shape.npy": _npy(np.zeros((32, 32), np.float32)),
        "empty.npy": b"",
    }
    digest = case.digest()
    for name, data in bad_pred.items():
        at.file_uploader(key="upload_pred").set_value((name, data, "application/octet-stream")).run()
        _ok(at, errors=False)
        assert len(at.error) == 1 and at.error[0].value.startswith("Upload rejected"), name
        assert "previous case is kept" in at.error[0].value and "\n" not in at.error[0].value
        assert _case(at).digest() == digest, name
        assert _loss_frame(at) is not None
    at.file_uploader(key="upload_gt").set_value(("looks_like.png", jpeg.getvalue(), "image/png")).run()
    assert "JPEG" in at.error[0].value and _case(at).digest() == digest


def test_ground_truth_alone_gets_a_prediction_made_from_it(app_test):
    from segloss_core.data.perturb import prediction_from_gt

    at = _upload_mode(app_test)
    gt = np.zeros((40, 40), np.uint8)
    gt[5:25, 5:25] = 1
    at.file_uploader(key="upload_gt").set_value(("labels.png", _png(gt), "image/png")).run()
    _ok(at)
    np.testing.assert_allclose(_case(at).probs, prediction_from_gt(gt.astype(np.int64), 2), rtol=1e-6)


def test_nifti_volume_slice_picker_and_whole_volume_losses(app_test):
    import nibabel as nib

    gt = np.zeros((8, 32, 24), np.uint8)
    gt[2:6, 8:20, 6:18] = 1
    gt[3, 10:14, 8:12] = 2
    probs = np.stack([gt == 0, gt == 1, gt == 2]).astype(np.float32) * 0.8 + 0.2 / 3
    probs = np.roll(probs, 1, axis=2)
    probs[:, 5] = np.roll(probs[:, 5], 3, axis=1)  # one slice off by 4 px: the volume differs from slice 2
    zooms = (3.0, 0.8, 0.8)
    img = nib.Nifti1Image(gt, np.diag([*zooms, 1.0]))
    pimg = nib.Nifti1Image(np.moveaxis(probs, 0, -1), np.diag([*zooms, 1.0]))
    at = _upload_mode(app_test)
    at.file_uploader(key="upload_gt").set_value(("vol.nii.gz", gzip.compress(img.to_bytes()), "application/gzip"))
    at.file_uploader(key="upload_pred").set_value(("prob.nii", pimg.to_bytes(), "application/octet-stream")).run()
    _ok(at)
    volume = at.session_state["segloss_volume"]
    assert volume.gt.shape == gt.shape and volume.spacing == pytest.approx(zooms)
    index = at.slider(key="slice_index").value
    assert index == int(np.argmax((gt > 0).sum(axis=(1, 2))))
    sl = _case(at)
    assert sl.gt.shape == gt.shape[1:] and sl.spacing == pytest.approx(zooms[1:])
    _assert_table_matches(at, volume.slice(index))
    slow = [n for n in sc.list_losses() if sc.get_loss(n).slow]
    table = _table(at, "whole volume")
    assert slow and all(table[n] is None or math.isnan(table[n]) for n in slow)  # deferred to the button
    at.button(key="pg_volume_slow").click().run()
    _ok(at)
    _assert_table_matches(at, volume, column="whole volume")
    metric_tables = [d.value for d in at.dataframe if "HD95" in d.value.columns]
    assert len(metric_tables) == 2  # the slice's, then the whole volume's
    vm = metric_tables[1]
    slice_metrics = sc.metrics(volume.slice(index).hard_prediction, volume.slice(index).gt,
                               spacing=volume.slice(index).spacing, num_classes=3)
    want = sc.metrics(volume.hard_prediction, volume.gt, spacing=volume.spacing, num_classes=3)
    assert list(vm["Dice"]) == pytest.approx([want[1]["dice"], want[2]["dice"]])
    assert list(vm["HD95"]) == pytest.approx([want[1]["hd95"], want[2]["hd95"]])
    assert want[1]["hd95"] > slice_metrics[1]["hd95"] + 0.5  # the volume is not the slice
    at.slider(key="slice_index").set_value(2).run()
    _ok(at)
    np.testing.assert_array_equal(_case(at).gt, gt[2])
    at.radio(key="slice_axis").set_value(2).run()
    _ok(at)
    assert _case(at).gt.shape == gt.shape[:2] and _case(at).spacing == pytest.approx(zooms[:2])


def test_save_and_load_a_case_npz(app_test):
    at = _start(app_test)
    assert at.get("download_button") and "save_npz" in [b.key for b in at.get("download_button")]
    gt = np.zeros((32, 32), np.int64)
    gt[4:20, 4:20] = 1
    fg = np.where(gt == 1, 0.7, 0.2).astype(np.float32)
    saved = sc.Case(gt, np.stack([1 - fg, fg]), (1.0, 2.0), "saved")
    at.file_uploader(key="upload_npz").set_value(("saved.npz", save_case_npz(saved), "application/zip")).run()
    _ok(at)
    assert _case(at).digest() == saved.digest() and at.radio(key="case_mode").value == "Upload"
    at.file_uploader(key="upload_npz").set_value(("broken.npz", b"PK\x03\x04 broken", "application/zip")).run()
    assert any("Could not load the case" in e.value for e in at.error)
    assert _case(at).digest() == saved.digest()


# ---------------------------------------------------------------------------------------- drawing


def test_injected_canvas_drawing_edits_ground_truth_and_prediction(app_test):
    at = _start(app_test)
    at.radio(key="case_mode").set_value("Draw").run()
    _ok(at)
    origin = _case(at)
    assert origin.digest() == make_case("disk").digest()  # drawing starts from the case on screen
    scale = 256 / 240  # canvas px -> image px
    # paint a band at the top (outside the disk) on the ground truth
    _draw(at, _stroke(slice(24, 48), slice(30, 210), (0, 200, 0)))
    gt1 = _case(at).gt
    added = (gt1 == 1) & (origin.gt == 0)
    assert added[int(30 * scale):int(44 * scale), int(36 * scale):int(200 * scale)].all()
    assert not added[int(60 * scale):].any()
    assert added.sum() == pytest.approx(24 * 180 * scale**2, rel=0.08)
    np.testing.assert_array_equal(_case(at).probs, origin.probs)  # the prediction is untouched
    # erase (red) through the middle of the disk
    _draw(at, _stroke(slice(110, 130), slice(0, 240), (220, 0, 0)))
    gt2 = _case(at).gt
    assert not gt2[int(112 * scale):int(128 * scale)].any()
    assert (gt2[:int(100 * scale)] == gt1[:int(100 * scale)]).all()
    # undo, redo, clear, reset
    at.button(key="draw_undo").click().run()
    np.testing.assert_array_equal(_case(at).gt, gt1)
    at.button(key="draw_redo").click().run()
    np.testing.assert_array_equal(_case(at).gt, gt2)
    at.button(key="draw_clear").click().run()
    assert not _case(at).gt.any()
    at.button(key="draw_reset").click().run()
    np.testing.assert_array_equal(_case(at).gt, origin.gt)
    # paint on the prediction with confidence 0.75
    at.radio(key="draw_target").set_value("prediction").run()
    at.slider(key="draw_confidence").set_value(0.75).run()
    _draw(at, _stroke(slice(0, 30), slice(0, 30), (0, 200, 0)))
    probs = _case(at).probs
    assert probs[1, :int(28 * scale), :int(28 * scale)] == pytest.approx(0.75)
    np.testing.assert_array_equal(probs[:, 100:], origin.probs[:, 100:])
    _assert_table_matches(at, _case(at))


# ---------------------------------------------------------------------------------------- table tools


def test_pin_then_move_a_slider_shows_normalised_deltas(app_test):
    at = _start(app_test)
    pinned = _expected(make_case("disk"))
    at.button(key="pin").click().run()
    _ok(at)
    assert _table(at, "Δ vs pinned")["dice"] == 0.0
    at.slider(key="shift_x").set_value(12.0).run()
    _ok(at)
    now = _expected(make_case("disk", prediction={"shift_x": 12.0, "dilate": 2.0}))
    deltas = _table(at, "Δ vs pinned")
    for name, v in now.items():
        if isinstance(v, float) and isinstance(pinned[name], float):
            want = (v - pinned[name]) / max(abs(v), abs(pinned[name]))
            assert deltas[name] == pytest.approx(want, rel=1e-6, abs=1e-12), name
    assert "delta_figure" in [c.key for c in at.get("plotly_chart")]
    at.button(key="unpin").click().run()
    assert "Δ vs pinned" not in _loss_frame(at).columns


def test_downloads_and_python_snippet_recompute_the_table(app_test, capsys):
    at = _start(app_test, preset="ring", softness="0", logit_scale="2", ring_radius="40")
    keys = {b.key for b in at.get("download_button")}
    assert {"dl_png", "dl_csv", "dl_json", "dl_py", "save_npz"} <= keys
    snippet = next(c.value for c in at.code if "compute_all" in c.value)
    namespace: dict = {}
    exec(compile(snippet, "snippet.py", "exec"), namespace)  # noqa: S102 - our own snippet
    shown = _table(at)
    for name, v in namespace["table"].items():
        assert shown[name] == pytest.approx(v, rel=1e-6), name
    capsys.readouterr()


def test_convention_sets_and_the_parameter_editor(app_test):
    at = _start(app_test)
    case = make_case("disk")
    probs, target = case.tensors()
    at.button(key="conv_nnU-Net").click().run()
    _ok(at)
    assert at.session_state[PARAMS_KEY] == convention_params("nnU-Net")[0]
    table = _table(at)
    assert table["dice"] == pytest.approx(
        float(sc.compute("dice", probs, target, include_background=False, batch=True)), rel=1e-6)
    assert table["ce"] == pytest.approx(float(sc.compute("ce", probs, target)), rel=1e-6)
    background = next(m.value for m in at.markdown if m.value.startswith("**background**"))
    assert "dice" in background.split("excluded in")[1].split(", ")
    # the editor: one widget per ParamSpec of the chosen loss
    at.selectbox(key="param_loss").set_value("tversky").run()
    spec = sc.get_loss("tversky")
    for p in spec.params:
        assert at.session_state[f"lp__tversky__{p}"] is not None
    at.slider(key="lp__tversky__alpha").set_value(0.9).run()
    _ok(at)
    params = at.session_state[PARAMS_KEY]["tversky"]
    assert params["alpha"] == 0.9 and params["include_background"] is False
    assert _table(at)["tversky"] == pytest.approx(float(sc.compute("tversky", probs, target, **params)), rel=1e-6)
    # bad per-class weights: an inline error, the parameters stay as they were
    at.selectbox(key="param_loss").set_value("wce").run()
    at.text_input(key="lp__wce__weights").input("1, two").run()
    _ok(at, errors=False)
    assert any("comma-separated" in e.value for e in at.error)
    assert "wce" not in at.session_state[PARAMS_KEY]
    at.text_input(key="lp__wce__weights").input("1, 3").run()
    assert at.session_state[PARAMS_KEY]["wce"]["weights"] == (1.0, 3.0)
    assert _table(at)["wce"] == pytest.approx(float(sc.compute("wce", probs, target, weights=(1.0, 3.0))), rel=1e-6)
    at.button(key="reset_loss").click().run()
    assert "wce" not in at.session_state[PARAMS_KEY]
    at.button(key="conv_segloss").click().run()
    assert at.session_state[PARAMS_KEY] == {}


def test_empty_ground_truth_reports_undefined_metrics(app_test):
    at = _start(app_test, preset="empty", size="64")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Dice"] == "n/a" and shown["HD95"] == "n/a" and shown["Precision"] == "0.0000"


def test_an_exception_in_one_panel_leaves_the_rest_of_the_page(app_test, monkeypatch):
    def boom(case):
        raise RuntimeError("boom\nsecond line")

    import streamlit as st

    st.cache_data.clear()  # st.cache_data outlives one AppTest
    monkeypatch.setattr(pg, "case_images", boom)
    at = app_test()
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Something went wrong in the images: boom"]
    assert _loss_frame(at) is not None and at.metric


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_without_exception(app_test, path):
    at = _start(app_test, preset="disk", size="64")
    at.switch_page(path).run()
    _ok(at)
    assert at.radio(key="case_mode").value == "Preset"  # the shared case builder is there
    assert _case(at).digest() == make_case("disk", size=64).digest()


# ---------------------------------------------------------------------------------------- core helpers


def test_normalised_deltas_closed_form():
    got = pg.normalised_deltas({"a": 2.0, "b": 0.0, "c": 1.0, "d": 0.0, "e": -1.0},
                               {"a": 1.0, "b": 4.0, "c": "n/a: x", "d": 0.0, "e": 1.0})
    assert got == {"a": 0.5, "b": -1.0, "c": None, "d": 0.0, "e": -2.0}


def test_overlay_codes_and_counts_by_hand():
    gt = np.array([[0, 1, 1, 2], [0, 0, 2, 2]])
    pred = np.array([[1, 1, 0, 1], [0, 0, 2, 0]])
    codes = pg.overlay_codes(gt, pred)
    np.testing.assert_array_equal(codes, [[pg.FP, pg.TP, pg.FN, pg.WRONG], [pg.TN, pg.TN, pg.TP, pg.FN]])
    probs = np.stack([pred == k for k in range(3)]).astype(np.float32)
    rows = pg.confusion_counts(sc.Case(gt, probs))
    assert [(r["tp"], r["fp"], r["fn"]) for r in rows] == [(1, 2, 1), (1, 0, 2)]
    assert pg.dice_latex(1, 2, 1).endswith("= 0.4000")
    assert "n/a" in pg.dice_latex(0, 0, 0)


def test_case_images_plain_by_default_and_linked_zoom_on_request(app_test):
    at = _start(app_test)
    ref = make_case("disk")
    imgs = pg.case_images(ref)
    assert len(at.get("image")) == 3  # the case as plain images; the only figure is the small profile
    assert [c.key for c in at.get("plotly_chart")] == ["pg_profile"]
    legend = next(m.value for m in at.markdown if "overlay:" in m.value)
    assert all(c in legend for c in (pg.OVERLAY_COLOURS[pg.TP], pg.OVERLAY_COLOURS[pg.FP], pg.OVERLAY_COLOURS[pg.FN]))
    at.toggle(key="pg_linked_zoom").set_value(True).run()
    _ok(at)
    assert not at.get("image") and "case_figure" in [c.key for c in at.get("plotly_chart")]
    big = pg.upscale_nearest(imgs["overlay"], 512)  # nearest neighbour: each pixel a 2 x 2 block
    assert big.shape == (512, 512, 3)
    np.testing.assert_array_equal(big[::2, ::2], imgs["overlay"])
    np.testing.assert_array_equal(big[1::2, 1::2], imgs["overlay"])
    assert pg.upscale_nearest(imgs["gt"], 200) is imgs["gt"]
    assert "wrong class" in pg.legend_html(["bg", "a", "b"], binary=False)
    assert "wrong class" not in pg.legend_html(["bg", "<a>"], binary=True) and "&lt;a&gt;" in pg.legend_html(
        ["bg", "<a>"], binary=True)


def _figure(at, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.key == key]
    assert len(charts) == 1, key
    return json.loads(charts[0].proto.spec)


def _trace_array(v) -> np.ndarray:
    """A trace's array as plotly serialises it: a list, or {"dtype", "bdata"} (base64 typed array)."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), np.dtype(v["dtype"]))
    return np.asarray(v, np.float64)


def test_prediction_profile_through_the_object_moves_with_shift_x(app_test):
    at = _start(app_test)
    case = _case(at)
    row = int(round(np.nonzero(case.gt)[0].mean()))  # the row through the object's centre
    (trace,) = _figure(at, "pg_profile")["data"]
    np.testing.assert_array_equal(_trace_array(trace["x"]), np.arange(case.gt.shape[1]))
    before = _trace_array(trace["y"])
    np.testing.assert_array_equal(before, case.probs[1][row])
    assert any(f"row y = {row}" in c.value for c in at.caption)
    shift = at.slider(key="shift_x").value  # the preset's own shift
    at.slider(key="shift_x").set_value(shift + 6.0).run()
    _ok(at)
    (trace,) = _figure(at, "pg_profile")["data"]
    after = _trace_array(trace["y"])
    np.testing.assert_array_equal(after, _case(at).probs[1][row])
    # 6 px more shift moves the whole line 6 px to the right (away from the replicated borders)
    np.testing.assert_allclose(after[6 + 20:-20], before[20:-26], atol=1e-6)
    assert not np.allclose(after, before)


def test_probability_profile_and_its_figure_by_hand():
    from segloss_core.plots.masks import profile_figure

    gt = np.zeros((5, 7), np.int64)
    gt[1:4, 2:4] = 1
    gt[2, 4] = 2  # foreground rows 1,1,2,2,2,3,3: centre row 2; row 2 reads 0 0 1 1 2 0 0
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=gt.shape).transpose(2, 0, 1).astype(np.float32)
    case = sc.Case(gt, probs, class_names=("background", "a", "b"))
    prof = pg.probability_profile(case)
    assert (prof.axis, prof.position) == (0, 2) and list(prof.values) == ["a", "b"]
    np.testing.assert_array_equal(prof.values["b"], probs[2, 2])
    np.testing.assert_array_equal(prof.coords, np.arange(7))
    column = pg.probability_profile(case, axis=1)  # foreground columns 2,2,2,3,3,3,4: centre 19/7 -> 3
    assert column.position == 3 and column.values["a"].shape == (5,)
    fig = profile_figure(prof, case.class_names, binary=False).to_dict()
    assert [t["name"] for t in fig["data"]] == ["p(a)", "p(b)"]
    rects = [(s["x0"], s["x1"], s["fillcolor"]) for s in fig["layout"]["shapes"] if s["type"] == "rect"]
    palette = pg.class_palette(3)
    assert rects == [(1.5, 3.5, palette[1]), (3.5, 4.5, palette[2])]  # each class's run, in its colour
    assert not [s for s in fig["layout"]["shapes"] if s["type"] == "line"]  # the 0.5 line: binary only
    soft = rng.dirichlet(np.ones(2), size=(6, 4)).transpose(2, 0, 1).astype(np.float32)
    empty = pg.probability_profile(sc.Case(np.zeros((6, 4), np.int64), soft))
    assert empty.position == 3  # no object: the middle row
    binary = profile_figure(empty, ("background", "foreground"), binary=True).to_dict()
    assert [s["y0"] for s in binary["layout"]["shapes"] if s["type"] == "line"] == [0.5]
    with pytest.raises(ValueError, match="2-D"):
        pg.probability_profile(sc.Case(np.zeros((2, 3, 3), np.int64), np.full((2, 2, 3, 3), 0.5, np.float32)))


def test_strokes_paint_and_erase_with_the_later_stroke_winning():
    base = np.zeros((4, 4), np.int64)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, :] = (0, 200, 0, 255)  # paint the top half
    rgba[2:4, 4:, :] = (220, 0, 0, 255)  # erase drawn over it, later
    out = pg.apply_strokes(base, rgba, label=2)
    np.testing.assert_array_equal(out, [[2, 2, 2, 2], [2, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    probs = pg.apply_strokes_to_probs(np.full((3, 4, 4), 1 / 3, np.float32), rgba, label=1, confidence=0.8)
    assert probs[:, 0, 0] == pytest.approx([0.1, 0.8, 0.1])
    assert probs[:, 1, 3] == pytest.approx([0.8, 0.1, 0.1])
    assert probs[:, 3, 3] == pytest.approx([1 / 3] * 3)
    assert not pg.has_strokes(np.zeros((3, 3, 4), np.uint8)) and pg.has_strokes(rgba)
    with pytest.raises(ValueError, match="RGBA"):
        pg.apply_strokes(base, np.zeros((4, 4)))


def test_exports_round_trip():
    case = make_case("disk", size=64)
    values = pg.loss_values(case)
    rows = pg.loss_rows(values)
    parsed = list(csv.DictReader(io.StringIO(pg.rows_csv(rows))))
    assert [r["loss"] for r in parsed] == sc.list_losses()
    assert float(parsed[0]["value"]) == pytest.approx(values[parsed[0]["loss"]])
    doc = json.loads(pg.table_json(rows, case, {"dice": {"smooth": 0.0}}, {"disk": {"dice": 0.9}}))
    assert doc["case"]["digest"] == case.digest() and doc["eps"] == sc.EPS
    assert doc["losses"][0]["loss"] == "ce" and doc["params"] == {"dice": {"smooth": 0.0}}
    img = np.asarray(Image.open(io.BytesIO(pg.masks_png(case))))
    assert img.shape == (256, 3 * 256 + 12, 3)
    centre = tuple(int(pg.CLASS_COLOURS[1][i:i + 2], 16) for i in (1, 3, 5))
    assert tuple(img[128, 128]) == centre  # the disk in the ground-truth panel


def test_conventions_reproduce_monai_and_nnunet():
    from monai.losses import DiceLoss, TverskyLoss

    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(2, 3, 16, 16, generator=gen, dtype=torch.float64), 1)
    labels = torch.randint(0, 3, (2, 16, 16), generator=gen)
    target = sc.one_hot(labels, 3, dtype=torch.float64)
    monai_params, skipped = convention_params("MONAI")
    assert not skipped
    for name, oracle in (("dice", DiceLoss()), ("tversky", TverskyLoss())):
        ours = sc.compute(name, probs, target, **monai_params.get(name, {}))
        assert float(ours) == pytest.approx(float(oracle(probs, target)), rel=1e-6), name
    # nnU-Net: batch Dice over foreground classes, (2 TP + s) / (2 TP + FP + FN + s), s = 1e-5
    nn = convention_params("nnU-Net")[0]["dice"]
    p, g = probs.numpy()[:, 1:], target.numpy()[:, 1:]
    tp = (p * g).sum((0, 2, 3))
    ref = 1 - np.mean((2 * tp + 1e-5) / (p.sum((0, 2, 3)) + g.sum((0, 2, 3)) + 1e-5))
    assert float(sc.compute("dice", probs, target, **nn)) == pytest.approx(ref, rel=1e-9)
    # every set validates against the registry; in-force summary reflects the parameters
    for name in CONVENTIONS:
        assert convention_params(name)[1] == [], name
    rows = {r["aspect"]: r["value"] for r in conventions_in_force(convention_params("nnU-Net")[0])}
    assert "dice" in rows["background"].split("excluded in")[1].split(", ")
    assert "batch-pooled" in rows["reduction"]
    with pytest.raises(ValueError, match="unknown convention"):
        convention_params("caffe")
