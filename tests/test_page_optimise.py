"""AppTest for pages/optimise.py: it loads, trains, the step slider and Play move the frame, every
target and model reruns without an exception, results are cached per settings, and a bad case gets
a clear message instead of a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import streamlit as st
import torch

import segloss_core as sc
from segloss_core.analyses import optimise as opt
from tests.page_helpers import assert_clean, run_page

torch.set_num_threads(1)

CASE_KEY = "segloss_case"  # ui.session.CASE_KEY


def _disk_case(size=40, radius=11):
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    gt = ((yy - c) ** 2 + (xx - c) ** 2 <= radius**2).astype(np.int64)
    fg = np.where(gt > 0, 0.8, 0.1)
    return sc.Case(gt, np.stack([1 - fg, fg]).astype(np.float32), name="test disk")


@pytest.fixture(autouse=True)
def _fresh_cache():
    st.cache_data.clear()
    yield


def _app(case=None, steps=60):
    case = case if case is not None else _disk_case()
    return run_page("optimise", case, timeout=120, state={"opt_steps": steps})


_ok = assert_clean


def _text(at):
    return "\n".join(m.value for m in at.markdown)


def _frame_spec(at) -> dict:
    charts = at.get("plotly_chart")
    return json.loads(charts[0].proto.spec)


def _heatmaps(spec: dict) -> list:
    return [t["z"] for t in spec["data"] if t["type"] == "heatmap"]


def test_page_loads_trains_and_explains():
    at = _app()
    assert at.title[0].value == "What-if training"
    assert at.multiselect(key="opt_losses").value == list(opt.DEFAULT_LOSSES)
    assert at.selectbox(key="opt_target").value == "soft_band"
    assert len(at.get("plotly_chart")) == 3  # frames, curves, band model
    table = at.dataframe[-1].value
    assert list(table["loss"]) == [sc.get_loss(n).title for n in opt.DEFAULT_LOSSES]
    text = _text(at)
    assert "band probability" in text and "q ≈ π" in text and "q → 0" in text
    slider = at.select_slider(key="opt_frame")
    assert slider.value == 60 and slider.options[0] == "0"


def test_step_slider_and_play_move_the_frame():
    at = _app()
    last = _frame_spec(at)
    at.select_slider(key="opt_frame").set_value(10).run()
    _ok(at)
    early = _frame_spec(at)
    assert "step 10 of 60" in json.dumps(early["layout"]["title"])
    assert _heatmaps(early)[1] != _heatmaps(last)[1]  # the first loss's map changed
    assert _heatmaps(early)[0] == _heatmaps(last)[0]  # the target did not
    at.toggle(key="opt_play").set_value(True).run()
    _ok(at)
    assert at.select_slider(key="opt_frame").value > 10  # advanced by one recorded step
    # Play at the last step starts again from the beginning
    at.toggle(key="opt_play").set_value(False).run()
    at.select_slider(key="opt_frame").set_value(60).run()
    at.toggle(key="opt_play").set_value(True).run()
    _ok(at)
    assert at.select_slider(key="opt_frame").value < 60
    at.segmented_control(key="opt_view").set_value("mask").run()
    _ok(at)


def test_every_target_model_and_optimiser_reruns(monkeypatch):
    at = _app(steps=20)
    for target in opt.TARGETS:
        at.selectbox(key="opt_target").set_value(target).run()
        _ok(at)
        if target == "clean":
            assert "Dice ≥ 0.95" in _text(at) or "Dice stays below" in _text(at)
    at.selectbox(key="opt_target").set_value("random_band").run()
    at.slider(key="opt_annotators").set_value(2).run()
    _ok(at)
    at.segmented_control(key="opt_model").set_value("cnn").run()
    _ok(at)
    assert len(at.get("plotly_chart")) == 3
    at.segmented_control(key="opt_optimiser").set_value("sgd").run()
    _ok(at)
    at.multiselect(key="opt_losses").set_value(["ce", "dice"]).run()
    _ok(at)
    assert len(at.dataframe[-1].value) == 2


def test_results_are_cached_per_settings(monkeypatch):
    calls = []
    real = opt.optimise

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(opt, "optimise", counting)
    at = _app(steps=20)
    assert len(calls) == 1
    at.select_slider(key="opt_frame").set_value(5).run()
    at.segmented_control(key="opt_view").set_value("mask").run()
    assert len(calls) == 1  # moving through the steps never retrains
    at.slider(key="opt_pi").set_value(0.6).run()
    _ok(at)
    assert len(calls) == 2
    at.slider(key="opt_pi").set_value(0.3).run()
    assert len(calls) == 2  # back to cached settings


def test_an_empty_ground_truth_gets_a_message_not_a_traceback():
    empty = sc.Case(np.zeros((24, 24), np.int64), np.full((2, 24, 24), 0.5, np.float32), name="empty")
    at = _app(empty)
    assert any("needs an object" in w.value for w in at.warning)
    at.selectbox(key="opt_target").set_value("clean").run()
    _ok(at)
    assert not at.warning


def test_page_in_the_whole_app(app_test):
    at = app_test()
    at.run()
    at.switch_page("pages/optimise.py").run()
    _ok(at)
    assert at.title[-1].value == "What-if training"
    assert "reduced from 256×256" in "\n".join(c.value for c in at.caption)


def test_the_frame_table_shows_the_chosen_frames_numbers():
    case = _disk_case()
    at = _app(case, steps=20)
    at.select_slider(key="opt_frame").set_value(10).run()
    _ok(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["loss", "loss value", "Dice", "|P| / |G|", "band q"]
    traj = opt.optimise(opt.training_case(case, opt.Settings(steps=20, target="soft_band")),
                        opt.Settings(steps=20, target="soft_band"))
    frame = traj.frame_of(10)
    for i, name in enumerate(traj.names):
        row = table[table["loss"] == sc.get_loss(name).title].iloc[0]
        labels = traj.labels[frame, i].astype(np.int64)
        assert row["Dice"] == pytest.approx(sc.metrics(labels, case.gt)[1]["dice"], abs=1e-6)
        assert row["|P| / |G|"] == pytest.approx((labels > 0).sum() / (case.gt > 0).sum())
        assert row["loss value"] == pytest.approx(float(traj.loss[10, i]), rel=1e-6)
