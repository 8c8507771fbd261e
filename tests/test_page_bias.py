"""AppTest for pages/bias.py: it loads, every panel's controls rerun without an exception and change
what is shown, and the numbers shown are segloss_core.analyses.bias's."""

from __future__ import annotations

import json

import numpy as np
import torch

import segloss_core as sc
from segloss_core.analyses import bias
from tests.page_helpers import assert_clean, disk_case, run_page

torch.set_num_threads(1)



def _disk_case(num_classes=2):
    return disk_case(size=48, radius=9, shift=(0, 2), num_classes=num_classes)


def _app(case=None):
    return run_page("bias", case, timeout=300)


_ok = assert_clean


def _says(at, start):
    texts = [m.value for m in at.markdown if m.value.startswith("**What it shows")]
    hits = [t for t in texts if start in t]
    assert len(hits) == 1, (start, texts)
    return hits[0]


def _figure(at, key):
    charts = [c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id]
    assert charts, key
    return json.loads(charts[0].proto.spec)


def test_page_loads_and_explains_every_panel():
    at = _app(_disk_case())
    assert at.title[0].value == "Region-size bias"
    assert "foreground-vs-background view" in at.info[0].value
    assert len(at.get("plotly_chart")) == 6
    texts = [m.value for m in at.markdown if m.value.startswith("**What it shows")]
    assert len(texts) == 5
    assert "pulls the predicted proportion toward the ground-truth proportion" in _says(at, "CE's size term")
    band_text = _says(at, "CE's optimum is q* = π")
    assert "Linear Dice jumps to 0" in band_text and "squared Dice lands in between" in band_text
    assert "sharpened probabilities" in _says(at, "region_size")


def test_size_curve_panel_shows_segloss_core_minima():
    case = _disk_case()
    at = _app(case)
    frame = at.dataframe[0].value
    curve = bias.size_curve(case, list(bias.DEFAULT_LOSSES), n=200)
    for name in bias.DEFAULT_LOSSES:
        row = frame[frame["loss"] == curve.labels[name]].iloc[0]
        assert row["minimum at size ratio"] == curve.argmin[name]
        assert abs(row["loss at the minimum"] - float(np.min(curve.values[name]))) <= 1e-6 * max(
            1.0, abs(row["loss at the minimum"]))
    before = frame["loss at the minimum"].tolist()
    at.toggle(key="bias_size_hard").set_value(False).run()
    _ok(at)
    assert at.dataframe[0].value["loss at the minimum"].tolist() != before
    at.select_slider(key="bias_size_n").set_value(50).run()
    at.toggle(key="bias_size_norm").set_value(False).run()
    _ok(at)
    at.multiselect(key="bias_size_losses").set_value(["dice", "lovasz_softmax"]).run()
    _ok(at)
    assert len(at.dataframe[0].value) == 2
    assert "Lovász" in " ".join(at.dataframe[0].value["loss"])


def test_decomposition_and_band_controls():
    at = _app(_disk_case())
    assert _figure(at, "bias_dec_fig")["layout"]["xaxis"]["type"] == "log"
    at.toggle(key="bias_dec_log").set_value(False).run()
    _ok(at)
    assert _figure(at, "bias_dec_fig")["layout"]["xaxis"]["type"] == "linear"
    at.slider(key="bias_band_pi").set_value(0.7).run()
    _ok(at)
    text = _says(at, "CE's optimum")
    assert "(π = 0.7)" in text and "Linear Dice jumps to 1" in text
    table = at.dataframe[1].value
    direct = bias.band_optimum(300, 400, 0.7, "dice", {"squared": True, "include_background": False,
                                                          "smooth": 0.0}, background=0)
    assert abs(table["q* (brute force, real loss)"][2] - direct.q_star) < 1e-9
    assert abs(table["closed form"][2] - bias.q_star_closed_form("dice_squared", 300, 400, 0.7)) < 1e-12
    at.slider(key="bias_band_F").set_value(0).run()
    at.select_slider(key="bias_band_T").set_value(1.0).run()
    _ok(at)
    assert "T = 1 puts q* = 0.700" in _says(at, "CE's optimum")


def test_sweep_and_control_controls_change_the_text():
    at = _app(_disk_case())
    before = _says(at, "Disks from")
    at.select_slider(key="bias_sweep_err").set_value(2.0).run()
    _ok(at)
    assert _says(at, "Disks from") != before and "+2 px off" in _says(at, "Disks from")
    at.multiselect(key="bias_sweep_losses").set_value(["dice"]).run()
    _ok(at)
    text = _says(at, "region_size")
    assert "target at 1.5 ×" in text
    at.slider(key="bias_ctl_ratio").set_value(0.5).run()
    _ok(at)
    assert "target at 0.5 ×" in _says(at, "region_size")
    at.select_slider(key="bias_ctl_T").set_value(10.0).run()
    at.segmented_control(key="bias_ctl_pen").set_value("kl").run()
    at.toggle(key="bias_ctl_hard").set_value(False).run()
    _ok(at)
    assert "KL(predicted" in _says(at, "region_size")


def test_multiclass_and_empty_cases():
    at = _app(_disk_case(num_classes=3))
    assert "merged" in at.info[0].value
    at.selectbox(key="bias_fg_class").set_value(2).run()
    _ok(at)
    assert "merged" not in at.info[0].value
    empty = sc.Case(np.zeros((32, 32), np.int64), np.stack([np.full((32, 32), 0.9), np.full((32, 32), 0.1)]))
    at = _app(empty)
    assert "needs an object" in at.warning[0].value


def test_numbers_in_the_text_are_the_cases_own():
    """The GT proportion, the sweep's percentages and the off-size minima the page prints come from
    segloss_core, checked here against independent counts."""
    case = _disk_case()
    at = _app(case)
    tau = np.count_nonzero(case.gt) / case.gt.size
    assert f"target at 1.5 × the GT proportion ({1.5 * tau:.4f})" in _says(at, "region_size")
    # default sweep: 20 log-spaced fractions in [5e-4, 0.5] of a 256 x 256 image, rasterised disks
    radii = np.sqrt(np.geomspace(5e-4, 0.5, 20) * 256**2 / np.pi)
    yy, xx = np.mgrid[:256, :256]
    percent = [100 * np.count_nonzero((yy - 127.5) ** 2 + (xx - 127.5) ** 2 <= r * r) / 256**2
               for r in radii[[0, -1]]]
    assert f"Disks from {percent[0]:.2g} % to {percent[1]:.2g} % of a 256 × 256 image" in _says(at, "Disks from")
    curve = bias.size_curve(case, list(bias.DEFAULT_LOSSES), n=200)
    off = {k: r for k, r in curve.argmin.items() if not 0.98 <= r <= 1.02}
    verdict = _says(at, "grown and shrunk")
    if off:
        assert "off it: " + ", ".join(f"{curve.labels[k]} (at {r:.2f})" for k, r in off.items()) + "." in verdict
    else:
        assert "Every selected loss is smallest at the true size" in verdict


def test_an_all_foreground_view_gets_a_message():
    full = sc.Case(np.ones((24, 24), np.int64), np.stack([np.full((24, 24), 0.1), np.full((24, 24), 0.9)]))
    at = _app(full)
    assert "all foreground" in at.warning[0].value and not at.get("plotly_chart")


def test_every_preset_opens_the_page_cleanly():
    """Each preset's default case (retina's foreground fills 77 % of its image: no room to double it)."""
    from segloss_core.data.presets import PRESETS, make_case

    for name in PRESETS:
        if name == "empty":
            continue
        case = make_case(name, size=96)
        at = _app(case)  # checked clean: no error box, no exception
        assert at.slider(key="bias_ctl_ratio").max < bias.room_to_grow(case), name
