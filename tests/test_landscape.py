"""The batched landscape equals per-point segloss_core.compute; chunking and cropping change nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.analyses.landscape import (
    CROP_SEPARABLE,
    DEFAULT_LOSSES,
    active_box,
    landscape,
    landscape_1d,
    minima_table,
    parse_axis,
)
from segloss_core.data import perturb as P
from segloss_core.data.presets import make_case

LOSSES = list(DEFAULT_LOSSES) + ["wce", "topk", "generalized_dice", "dice_ce", "lovasz_softmax"]


@pytest.fixture(scope="module")
def disk():
    """A small disk in a 160 x 160 image, float64, so the active crop is a real sub-box."""
    case = make_case("disk", 160, radius=16)  # 10 px (radii are given at 256 px)
    probs = torch.from_numpy(case.probs).double()
    return probs / probs.sum(0), case.gt


def reference(probs, gt, amounts, names, params=None):
    """Per-point values: perturb one prediction, then sc.compute per loss and sc.metrics."""
    pp = P.apply(probs, gt, amounts)
    target = sc.one_hot(torch.from_numpy(gt)[None], pp.shape[1], dtype=torch.float64)
    out = {n: float(sc.compute(n, pp, target, **(params or {}).get(n, {}))) for n in names}
    per = sc.metrics(P.channel_argmax(pp)[0].numpy(), gt, num_classes=pp.shape[1])
    dice = [m["dice"] for m in per.values() if m["dice"] is not None]
    jac = [m["jaccard"] for m in per.values() if m["jaccard"] is not None]
    out["1 - dice"] = 1 - float(np.mean(dice)) if dice else math.nan
    out["1 - jaccard"] = 1 - float(np.mean(jac)) if jac else math.nan
    return out


@pytest.mark.parametrize("x, y", [
    (("shift_x", -4, 4), ("dilate", -3, 3)),
    (("fp_area", 0, 150), ("softness", 0, 1.5)),
    (("fn_fraction", 0, 0.7), ("shift_y", -2.5, 2.5)),
    (("logit_scale", 0.3, 3), ("noise", 0, 1)),
])
def test_landscape_equals_per_point_compute(disk, x, y):
    probs, gt = disk
    res = landscape(probs, gt, x=x, y=y, n=3, losses=LOSSES, device="cpu")
    assert set(res.losses) == set(LOSSES) and not res.unavailable
    for i, yv in enumerate(res.y_values):
        for j, xv in enumerate(res.x_values):
            ref = reference(probs, gt, {x[0]: xv, y[0]: yv}, LOSSES)
            for name in LOSSES:
                np.testing.assert_allclose(res.losses[name][i, j], ref[name], rtol=1e-10, atol=1e-13,
                                           err_msg=f"{name} at {x[0]}={xv}, {y[0]}={yv}")
            for name in ("dice", "jaccard"):
                np.testing.assert_allclose(res.metrics[name][i, j], ref[f"1 - {name}"], rtol=1e-12)


def test_crop_is_a_real_sub_box_and_changes_nothing(disk):
    probs, gt = disk
    prep = P.prepare(probs, gt)
    box = active_box(prep, {"shift_x": np.array([-3.0, 3.0]), "dilate": np.array([-2.0, 2.0])})
    assert box is not None
    assert np.prod([b.stop - b.start for b in box]) < 0.6 * gt.size
    assert active_box(prep, {"noise": np.array([0.0, 1.0])}) is None
    kw = dict(x=("shift_x", -3, 3), y=("dilate", -2, 2), n=5, losses=LOSSES, device="cpu")
    cropped, full = landscape(probs, gt, **kw), landscape(probs, gt, crop=False, **kw)
    for name in LOSSES:
        np.testing.assert_allclose(cropped.losses[name], full.losses[name], rtol=1e-11, atol=1e-14)
    for name in cropped.metrics:
        np.testing.assert_array_equal(cropped.metrics[name], full.metrics[name])


def test_chunking_gives_identical_results(disk):
    probs, gt = disk
    kw = dict(x=("shift_x", -3, 3), y=("dilate", -2, 2), n=4, losses=LOSSES, device="cpu")
    one = landscape(probs, gt, **kw)
    tiny = landscape(probs, gt, chunk_bytes=1, **kw)  # one grid point per chunk
    some = landscape(probs, gt, chunk_bytes=7 * probs.numel() * 8, **kw)
    for name in LOSSES:
        np.testing.assert_array_equal(one.losses[name], tiny.losses[name])
        np.testing.assert_array_equal(one.losses[name], some.losses[name])
    for name in one.metrics:
        np.testing.assert_array_equal(one.metrics[name], tiny.metrics[name])


def test_dice_and_jaccard_share_their_argmin_without_smoothing(disk):
    """docs/theory.md, A4: J = D / (2 - D) is monotone, so the soft losses (smooth = 0) have the
    same minimiser on any grid; so do the hard metrics."""
    probs, gt = disk
    params = {"dice": {"smooth": 0.0, "include_background": False},
              "iou": {"smooth": 0.0, "include_background": False}}
    res = landscape(probs, gt, x=("shift_x", -5, 5), y=("dilate", -4, 4), n=21, losses=["dice", "iou"],
                    params=params, device="cpu")
    assert res.argmin["dice"] == res.argmin["iou"]
    d = 1 - res.losses["dice"]
    np.testing.assert_allclose(1 - res.losses["iou"], d / (2 - d), rtol=1e-12)
    assert res.argmin["1 - dice"] == res.argmin["1 - jaccard"]


def test_current_point_and_minima(disk):
    probs, gt = disk
    res = landscape(probs, gt, x=("shift_x", -4, 4), y=("dilate", -4, 4), n=9, device="cpu")
    assert res.current == (0.0, 0.0)
    target = sc.one_hot(torch.from_numpy(gt)[None], 2, dtype=torch.float64)
    for name in DEFAULT_LOSSES:
        assert res.current_values[name] == pytest.approx(float(sc.compute(name, probs[None], target)), rel=1e-10)
        # the grid contains the current point (0, 0) at its centre
        assert res.losses[name][4, 4] == pytest.approx(res.current_values[name], rel=1e-10)
        i, j = np.unravel_index(np.argmin(res.losses[name]), res.losses[name].shape)
        assert res.argmin[name] == (res.x_values[j], res.y_values[i])
    rows = {r["name"]: r for r in minima_table(res)}
    assert set(rows) == set(DEFAULT_LOSSES) | {"1 - dice", "1 - jaccard"}
    assert rows["1 - dice"]["steps_from_metric"] == 0
    for r in rows.values():
        assert r["flat"] >= 1


def test_hd95_on_a_coarse_grid_matches_metrics(disk):
    probs, gt = disk
    res = landscape(probs, gt, x=("shift_x", -4, 4), y=("dilate", -2, 2), n=9, hd95=3, losses=["dice"],
                    device="cpu")
    assert res.hd95.shape == (3, 3)
    for i, yv in enumerate(res.hd95_y):
        for j, xv in enumerate(res.hd95_x):
            pp = P.apply(probs, gt, {"shift_x": xv, "dilate": yv})
            ref = sc.metrics(P.channel_argmax(pp)[0].numpy(), gt)[1]["hd95"]
            assert res.hd95[i, j] == pytest.approx(ref)
    # the prediction sits 4 px right of the disk (the preset's default): shifting it back lowers HD95
    assert res.hd95[1, 0] < res.hd95[1, 1] < res.hd95[1, 2]


def test_landscape_1d_is_a_slice_of_the_2d_landscape(disk):
    probs, gt = disk
    two = landscape(probs, gt, x=("shift_x", -4, 4), y=("dilate", -3, 3), n=7, losses=LOSSES, device="cpu")
    one = landscape_1d(probs, gt, axis=("dilate", -3, 3), n=7, losses=LOSSES, device="cpu",
                       fixed={"shift_x": 0.0})
    for name in LOSSES:
        np.testing.assert_allclose(one.losses[name], two.losses[name][:, 3], rtol=1e-12)
    assert one.argmin["1 - dice"] == pytest.approx(two.y_values[np.argmin(two.metrics["dice"][:, 3])])
    with_hd = landscape_1d(probs, gt, axis=("shift_x", -3, 3), n=4, losses=["ce"], hd95=True, device="cpu")
    assert with_hd.hd95.shape == (4,) and np.isfinite(with_hd.hd95).all()


def test_multiclass_and_binary_only_loss():
    case = make_case("phantom", 64, prediction={})
    res = landscape(case, x=("shift_x", -2, 2), y=("dilate", -1, 1), n=3,
                    losses=["ce", "dice", "boundary", "lovasz_hinge"], device="cpu")
    assert "lovasz_hinge" in res.unavailable and "binary" in res.unavailable["lovasz_hinge"]
    assert set(res.losses) == {"ce", "dice", "boundary"}
    probs = torch.from_numpy(case.probs).double()
    ref = reference(probs / probs.sum(0), case.gt, {"shift_x": 2.0, "dilate": -1.0}, ["ce", "dice"])
    res64 = landscape(probs / probs.sum(0), case.gt, x=("shift_x", -2, 2), y=("dilate", -1, 1), n=3,
                      losses=["ce", "dice"], device="cpu")
    assert res64.losses["ce"][0, 2] == pytest.approx(ref["ce"], rel=1e-10)
    assert res64.losses["dice"][0, 2] == pytest.approx(ref["dice"], rel=1e-10)
    assert res64.metrics["dice"][0, 2] == pytest.approx(ref["1 - dice"], rel=1e-12)


def test_empty_ground_truth_metrics_are_nan_not_errors():
    case = make_case("empty", 64)
    res = landscape(case, x=("fp_area", 0, 100), y=("shift_x", -2, 2), n=3, device="cpu")
    assert np.isnan(res.metrics["dice"]).all()
    assert np.isfinite(res.losses["ce"]).all()
    assert np.all(np.diff(res.losses["ce"], axis=1) > 0)  # more false-positive area costs more


def test_float32_input_stays_close_and_device_auto_runs():
    case = make_case("disk", 64, radius=48)
    res = landscape(case, n=3, device="auto")
    assert res.losses["dice"].dtype == np.float64 and res.device in ("cpu", "cuda:0", "cuda")
    assert list(res.losses) == list(DEFAULT_LOSSES)
    assert set(res.to_dict()) >= {"x_values", "y_values", "losses", "metrics", "argmin"}


def test_separable_losses_are_registered_means():
    for name in CROP_SEPARABLE:
        assert sc.get_loss(name).from_stats is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=("wobble", 0, 1)), "unknown axis"),
    (dict(x=("shift_x", 3, -3)), "low < high"),
    (dict(x=("dilate", -100, 100)), "ranges over"),
    (dict(x="dilate", y="dilate"), "must differ"),
    (dict(n=1), "n must"),
    (dict(losses=["nope"]), "unknown loss"),
    (dict(metrics=("hd",)), "unknown metric"),
    (dict(params={"dice": {"gamma": 2}}), "no parameter"),
])
def test_bad_arguments_raise_value_error(disk, kwargs, match):
    probs, gt = disk
    with pytest.raises(ValueError, match=match):
        landscape(probs, gt, **{"n": 3, **kwargs})


def test_parse_axis_forms():
    assert parse_axis("dilate", 5)[1].tolist() == np.linspace(-8, 8, 5).tolist()
    assert parse_axis(("shift_y", [0.0, 2.0]), 5)[1].tolist() == [0.0, 2.0]
