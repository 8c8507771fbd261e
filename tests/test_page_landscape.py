"""AppTest for pages/landscape.py: it loads, every control reruns without an exception, and the minima
table reports what segloss_core.analyses.landscape computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.analyses.landscape import landscape
from segloss_core.data.presets import make_case
from tests.page_helpers import assert_clean, run_page

torch.set_num_threads(1)

CASE_KEY = "segloss_case"  # ui.session.CASE_KEY


def _app(case=None):
    case = case if case is not None else make_case("disk", 64, radius=48)
    return run_page("landscape", case, timeout=240, state={"land_n": 11})  # the coarsest grid: fast


_ok = assert_clean


def _minima(at):
    frames = [d.value for d in at.dataframe if "loss / metric" in d.value.columns]
    assert len(frames) == 1
    return frames[0]


def test_page_loads_with_the_default_losses_and_the_minima_table():
    case = make_case("disk", 64, radius=48)
    at = _app(case)
    assert at.title[0].value == "Loss landscapes"
    assert at.multiselect(key="land_losses").value == ["ce", "dice", "iou", "tversky", "focal", "boundary"]
    assert len(at.get("plotly_chart")) == 2  # small multiples + the 1-D slice
    table = _minima(at)
    ref = landscape(case, x=("shift_x", -10, 10), y=("dilate", -8, 8), n=11)
    titles = {n: sc.get_loss(n).title for n in sc.list_losses()}
    for name in ref.losses:
        row = table[table["loss / metric"] == titles[name]].iloc[0]
        assert (row["shift x (px)"], row["dilate / erode (px)"]) == ref.argmin[name]
        assert row["minimum value"] == pytest.approx(float(np.min(ref.losses[name])), rel=1e-5)


def test_controls_rerun_and_change_the_view():
    at = _app()
    at.selectbox(key="land_x_name").set_value("fp_area").run()
    _ok(at)
    assert "false-positive blob (px^2)" in _minima(at).columns
    at.selectbox(key="land_y_name").set_value("logit_scale").run()
    _ok(at)
    at.slider(key="land_y_range_logit_scale").set_value((0.5, 2.0)).run()
    _ok(at)
    at.multiselect(key="land_losses").set_value(["dice", "ce", "hausdorff_dt"]).run()
    _ok(at)
    assert len(_minima(at)) == 3 + 2  # three losses and the two metrics
    for metric in ("jaccard", "hd95", "none", "dice"):
        at.segmented_control(key="land_metric").set_value(metric).run()
        _ok(at)
    assert "HD95 (coarse grid)" not in set(_minima(at)["loss / metric"])
    at.toggle(key="land_norm").set_value(False).run()
    _ok(at)
    at.segmented_control(key="land_view").set_value("3-D surface").run()
    _ok(at)
    at.selectbox(key="land_surface").set_value("1 - dice").run()
    _ok(at)
    at.radio(key="land_slice_axis").set_value("logit_scale").run()
    _ok(at)
    at.multiselect(key="land_losses").set_value([]).run()
    _ok(at)
    assert any("at least one loss" in i.value for i in at.info)


def test_hd95_overlay_adds_its_row():
    at = _app(make_case("vessel", 64))
    at.segmented_control(key="land_metric").set_value("hd95").run()
    _ok(at)
    assert "HD95 (coarse grid)" in set(_minima(at)["loss / metric"])


def test_multiclass_case_with_a_binary_only_loss_warns():
    at = _app(make_case("phantom", 64))
    at.multiselect(key="land_losses").set_value(["dice", "lovasz_hinge"]).run()
    _ok(at)
    assert any("binary" in w.value for w in at.warning)


def test_whole_app_switches_to_the_landscape_page(app_test):
    at = app_test(query_params={"preset": "vessel", "size": "64"})
    at.run()
    _ok(at)
    at.switch_page("pages/landscape.py").run()
    _ok(at)
    assert at.title[0].value == "Loss landscapes"
    assert at.session_state[CASE_KEY].digest() == make_case("vessel", 64).digest()
