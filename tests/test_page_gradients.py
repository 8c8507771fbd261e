"""AppTest for pages/gradients.py: it loads, every control reruns without an exception and changes
what is shown, and the pixel inspector reports the pixel's gradient as segloss_core computes it."""


import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.analyses import gradients as gr
from tests.page_helpers import assert_clean, disk_case, run_page

torch.set_num_threads(1)



def _disk_case(num_classes=2):
    return disk_case(size=48, radius=8, shift=(0, 3), num_classes=num_classes)


def _app(case=None):
    return run_page("gradients", case, timeout=120)


_ok = assert_clean


def _text(at):
    return "\n".join(m.value for m in at.markdown)


def test_page_loads_with_default_case():
    at = _app()
    assert at.title[0].value == "Gradient maps"
    assert [m.label for m in at.metric] == ["Dice", "Cross-entropy"]
    assert at.selectbox(key="grad_loss_a").value == "dice" and at.selectbox(key="grad_loss_b").value == "ce"
    assert len(at.get("plotly_chart")) >= 4  # maps, histograms, profile, size sweep
    assert "the same gradient" in _text(at)


def test_controls_rerun_and_change_the_output():
    case = _disk_case()
    at = _app(case)
    before = _text(at)
    at.segmented_control(key="grad_wrt").set_value("logits").run()
    _ok(at)
    assert "logits" in _text(at) and _text(at) != before
    for view in ("difference", "ratio", "side"):
        at.segmented_control(key="grad_view").set_value(view).run()
        _ok(at)
    at.toggle(key="grad_shared").set_value(False).run()
    at.toggle(key="grad_robust").set_value(True).run()
    at.segmented_control(key="grad_hist_scale").set_value("linear").run()
    at.radio(key="grad_prof_dir").set_value("column").run()
    at.slider(key="grad_prof_pos1").set_value(5).run()
    at.toggle(key="grad_prof_norm").set_value(False).run()
    at.slider(key="grad_p_out").set_value(0.05).run()
    _ok(at)
    at.selectbox(key="grad_loss_b").set_value("boundary").run()
    _ok(at)
    assert [m.label for m in at.metric] == ["Dice", "Boundary loss"]
    at.selectbox(key="grad_loss_b").set_value("dice").run()  # the same loss twice: one map
    _ok(at)
    assert [m.label for m in at.metric] == ["Dice"]


def test_pixel_inspector_reports_segloss_core_values():
    case = _disk_case()
    at = _app(case)
    at.slider(key="grad_px_y").set_value(24).run()
    at.slider(key="grad_px_x").set_value(17).run()
    _ok(at)
    assert "Pixel (y=24, x=17): label **class 1**" in _text(at)
    table = next(d for d in at.dataframe if "loss" in d.value.columns and "category" in d.value.columns)
    df = table.value.set_index("loss")
    assert list(df.index) == [sc.get_loss(n).title for n in sc.list_losses()]
    ref = gr.gradient_maps(case, ("dice", "ce"), dtype=torch.float32)
    for name in ("dice", "ce"):
        row = df.loc[sc.get_loss(name).title]
        np.testing.assert_allclose([row["d/d background"], row["d/d class 1"]], ref[name].grad[:, 24, 17],
                                   rtol=1e-5)


def test_pixel_inspector_computes_slow_losses_on_request():
    case = _disk_case()
    at = _app(case)
    slow = [n for n in sc.list_losses() if sc.get_loss(n).slow]
    assert slow, "the registry marks some losses slow"

    def table():
        t = next(d for d in at.dataframe if "loss" in d.value.columns and "category" in d.value.columns)
        return t.value.set_index("loss")

    df = table()
    assert list(df.index) == [sc.get_loss(n).title for n in sc.list_losses()]
    for name in slow:
        assert "slow" in df.loc[sc.get_loss(name).title, "note"]
    at.toggle(key="grad_px_slow").set_value(True).run()
    _ok(at)
    df = table()
    y, x = at.slider(key="grad_px_y").value, at.slider(key="grad_px_x").value
    ref = gr.gradient_maps(case, slow, dtype=torch.float32)
    for name in ref.results:
        row = df.loc[sc.get_loss(name).title]
        np.testing.assert_allclose([row["d/d background"], row["d/d class 1"]], ref[name].grad[:, y, x],
                                   rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("loss_b", ["lovasz_hinge"])
def test_multiclass_channel_and_unavailable_loss(loss_b):
    case = _disk_case(num_classes=3)
    at = _app(case)
    at.selectbox(key="grad_channel").set_value(2).run()
    _ok(at)
    assert "class 2" in _text(at)
    at.selectbox(key="grad_loss_b").set_value(loss_b).run()
    _ok(at)
    assert any("binary" in w.value or "n/a" in w.value for w in at.warning)
    assert [m.label for m in at.metric] == ["Dice"]


def test_three_d_case_gets_a_slice_slider():
    gt = np.zeros((5, 32, 32), dtype=np.int64)
    gt[1:4, 10:20, 12:22] = 1
    fg = np.where(gt == 1, 0.7, 0.1)
    at = _app(sc.Case(gt, np.stack([1 - fg, fg]).astype(np.float32)))
    at.slider(key="grad_slice").set_value(0).run()  # a slice without the object
    _ok(at)
    at.slider(key="grad_slice").set_value(2).run()
    _ok(at)
    assert "same gradient" in _text(at)
