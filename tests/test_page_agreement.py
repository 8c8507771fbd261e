"""AppTest for pages/agreement.py: it loads, the controls rerun without an exception and change what
is shown, and the numbers shown are segloss_core.analyses.agreement's."""

from __future__ import annotations

import json

import numpy as np
import torch

import segloss_core as sc
from segloss_core.analyses import agreement as ag
from tests.page_helpers import assert_clean, disk_case, run_page

torch.set_num_threads(1)



def _disk_case(num_classes=2):
    return disk_case(size=40, radius=8, shift=(1, 2), num_classes=num_classes, confidence=0.85, second_at=6)


def _app(case=None):
    return run_page("agreement", case, timeout=300)


_ok = assert_clean


def _says(at, start):
    hits = [m.value for m in at.markdown if m.value.startswith("**What it shows") and start in m.value]
    assert len(hits) == 1, start
    return hits[0]


def _figure(at, key):
    charts = [c for c in at.get("plotly_chart") if key in c.proto.id]
    assert charts, key
    return json.loads(charts[0].proto.spec)


def test_page_loads_and_checks_the_relation():
    case = _disk_case()
    at = _app(case)
    assert at.title[0].value == "Metric agreement"
    assert "foreground-vs-background view" in at.info[0].value
    assert len(at.get("plotly_chart")) == 4
    assert float(at.metric[0].value) <= 1e-12 and float(at.metric[1].value) <= 1e-12
    assert float(at.metric[2].value) <= round(ag.MAX_DICE_JACCARD_GAP, 4)  # shown to 4 decimals
    assert "L_J = 2 L_D / (1 + L_D)" in _says(at, "Every prediction lies")
    assert "a statement about all images at once" in _says(at, "Sweeping the foreground weight")
    # the registry defaults' distance from the curve is the live number of the same population
    pop = ag.population(case, n=100, seed=0)
    pair = ag.loss_values(pop, ["dice", "iou"])
    assert f"are up to {ag.relation_gap(pair['dice'], pair['iou']):.3f} off it" in _says(at, "Every prediction lies")
    # the bars are segloss_core's correlations on the same seeded population
    pop = ag.population(case, n=100, seed=0)
    agr = ag.agreement(pop, ["dice", "ce"], params={})
    bars = _figure(at, "agr_bars")["data"][0]
    shown = dict(zip(bars["y"], bars["x"], strict=True))
    for name in ("dice", "ce"):
        assert abs(shown[agr.labels[name]] - agr.spearman[name]["1 - Dice"]) < 1e-9


def test_controls_rerun_and_change_the_output():
    at = _app(_disk_case())
    before = _says(at, "Over 100 perturbed")
    at.radio(key="agr_metric").set_value("HD95").run()
    _ok(at)
    assert "exactly as HD95 does" in _says(at, "Over 100 perturbed")
    at.segmented_control(key="agr_method").set_value("kendall").run()
    _ok(at)
    assert "Kendall" in _figure(at, "agr_bars")["layout"]["xaxis"]["title"]["text"]
    at.selectbox(key="agr_scatter_loss").set_value("boundary").run()
    _ok(at)
    assert "Boundary" in _figure(at, "agr_scatter")["layout"]["title"]["text"]
    at.radio(key="agr_wce_metric").set_value("1 - Jaccard").run()
    _ok(at)
    assert "with 1 - Jaccard any weight" in _says(at, "Sweeping")
    at.toggle(key="agr_hard").set_value(True).run()
    _ok(at)
    at.radio(key="agr_metric").set_value("1 - Dice").run()
    _ok(at)
    hard = _says(at, "Over 100 perturbed")
    assert hard != before
    # arg-max masks: the Dice in the bars (registry defaults) gets its own, live rho, not a claimed 1
    pop = ag.population(_disk_case(), n=100, seed=0)
    tau = ag.agreement(pop, ["dice"], params={}, hard=True).kendall["dice"]["1 - Dice"]  # Kendall picked above
    assert f"reaches Kendall τ = {tau:.4f} with 1 - Dice" in hard
    assert "ρ = 1.000" in _says(at, "Sweeping")  # arg-max inputs: the exact soft Dice is 1 - Dice
    at.select_slider(key="agr_n").set_value(50).run()
    at.number_input(key="agr_seed").set_value(3).run()
    at.slider(key="agr_strength").set_value(0.5).run()
    _ok(at)
    assert "Over 50 perturbed" in _says(at, "Over 50 perturbed")


def test_multiclass_and_empty_cases():
    at = _app(_disk_case(num_classes=3))
    assert "merged" in at.info[0].value
    at.selectbox(key="agr_fg_class").set_value(1).run()
    _ok(at)
    empty = sc.Case(np.zeros((24, 24), np.int64), np.stack([np.full((24, 24), 0.9), np.full((24, 24), 0.1)]))
    at = _app(empty)
    assert "undefined for an empty ground truth" in at.warning[0].value


def test_slow_losses_join_with_their_toggle_and_the_working_resolution_applies():
    case = disk_case(size=96, radius=20, shift=(1, 2), confidence=0.85)
    at = _app(case)
    slow = [k for k in sc.list_losses() if sc.get_loss(k).slow]
    bars = _figure(at, "agr_bars")["data"][0]["y"]
    assert not any(sc.get_loss(k).title in " ".join(bars) for k in slow)
    assert "Lovász" not in _says(at, "Sweeping")
    assert any("Include the slow losses" in c.value for c in at.caption)
    # the default working resolution (128 px) keeps a 96 px case as it is
    assert at.select_slider(key="agr_max_side").value == 96
    at.toggle(key="agr_slow").set_value(True).run()
    _ok(at)
    shown = " ".join(_figure(at, "agr_bars")["data"][0]["y"])
    assert sc.get_loss("lovasz_softmax").title in shown and "Lovász-Softmax's ρ" in _says(at, "Sweeping")
    at.select_slider(key="agr_max_side").set_value(64).run()
    _ok(at)
    pop = ag.population(case, n=100, seed=0, max_side=64)
    gap = ag.relation_gap(*ag.loss_values(pop, ["dice", "iou"]).values())
    assert f"are up to {gap:.3f} off it" in _says(at, "Every prediction lies")


def test_the_undefined_hd95_count_is_the_number_of_empty_predictions():
    case = disk_case(size=48, radius=2, shift=(0, 1))
    at = run_page("agreement", case, timeout=300, state={"agr_metric": "HD95", "agr_n": 50, "agr_strength": 2.0})
    pop = ag.population(case, n=50, seed=0, strength=2.0)
    empty = int(sum(not np.asarray(m).any() for m in pop.hard()))
    assert empty > 0
    assert f"HD95 is undefined for {empty} predictions with an empty mask" in _says(at, "Over 50 perturbed")
    at.radio(key="agr_metric").set_value("1 - Dice").run()
    assert_clean(at)
    assert "HD95 is undefined" not in _says(at, "Over 50 perturbed")
