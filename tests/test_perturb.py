"""Each named perturbation does what its name says, batched and one at a time, 2-D and 3-D."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segloss_core.data import perturb as P
from segloss_core.data.presets import make_case

R = 20.0
SIZE = 128


@pytest.fixture(scope="module")
def disk():
    """A 128 x 128 disk of radius 20 with the perturbation defaults' soft prediction (float64)."""
    case = make_case("disk", SIZE, prediction={}, radius=R * 256 / SIZE)  # radius in px at 256
    probs = torch.from_numpy(case.probs).double()
    return probs / probs.sum(0), case.gt


def centroid(fg: torch.Tensor, axis: int) -> float:
    """Centroid of a 2-D map along ``axis`` (-1 = x, -2 = y)."""
    marginal = fg.sum(dim=-2 if axis == -1 else -1)
    pos = torch.arange(marginal.shape[0], dtype=fg.dtype)
    return float((marginal * pos).sum() / marginal.sum())


def entropy(p: torch.Tensor) -> float:
    return float(-(p * torch.log(p.clamp_min(1e-300))).sum())


def assert_probability_map(p: torch.Tensor, atol=1e-6):
    assert torch.isfinite(p).all()
    assert p.min() >= 0 and p.max() <= 1 + atol
    torch.testing.assert_close(p.sum(1), torch.ones_like(p.sum(1)), atol=atol, rtol=0)


# ---------------------------------------------------------------- shift


@pytest.mark.parametrize("name, axis", [("shift_x", -1), ("shift_y", -2)])
def test_shift_moves_centroid_by_k_px_subpixel_too(disk, name, axis):
    base, gt = disk
    ks = torch.tensor([0.0, 0.25, 1.0, 2.6, -3.4, 7.0], dtype=torch.float64)
    out = P.apply(base, gt, {name: ks})
    assert out.shape == (len(ks), 2, SIZE, SIZE)
    c0 = centroid(base[1], axis)
    moved = [centroid(o[1], axis) - c0 for o in out]
    np.testing.assert_allclose(moved, ks.numpy(), atol=1e-9)
    other = -2 if axis == -1 else -1
    np.testing.assert_allclose([centroid(o[1], other) for o in out], centroid(base[1], other), atol=1e-9)


@pytest.mark.parametrize("k", [-4.0, 0.5, 3.3])
def test_prediction_from_gt_shift_moves_centroid(disk, k):
    base, gt = disk
    shifted = torch.from_numpy(P.prediction_from_gt(gt, 2, shift_x=k, shift_y=-k)).double()
    assert centroid(shifted[1], -1) - centroid(base[1], -1) == pytest.approx(k, abs=2e-3)
    assert centroid(shifted[1], -2) - centroid(base[1], -2) == pytest.approx(-k, abs=2e-3)


# ---------------------------------------------------------------- dilate


def test_dilate_zero_is_identity_and_area_grows_monotonically(disk):
    base, gt = disk
    d = torch.linspace(-8, 8, 33, dtype=torch.float64)
    out = P.apply(base, gt, {"dilate": d})
    assert_probability_map(out, atol=1e-12)
    torch.testing.assert_close(out[16], base, rtol=0, atol=0)  # d = 0 exactly
    area = out[:, 1].sum((1, 2))
    assert torch.all(area.diff() > 0)
    from_gt = [P.prediction_from_gt(gt, 2, dilate=float(v))[1].sum() for v in d]
    assert np.all(np.diff(from_gt) > 0)


@pytest.mark.parametrize("d", [-6.0, -2.0, 3.0, 6.0])
def test_dilate_moves_the_boundary_by_d_px(disk, d):
    """Soft area ~ pi (R + d)^2 (the 0.5-level set of a disk moves outward by d)."""
    base, gt = disk
    expected = math.pi * (R + d) ** 2
    from_gt = P.prediction_from_gt(gt, 2, dilate=d)[1].sum()
    assert from_gt == pytest.approx(expected, rel=0.03)
    applied = P.apply(base, gt, {"dilate": d})[0, 1].sum()
    assert float(applied) == pytest.approx(expected, rel=0.03)


def test_dilation_reach_is_compact(disk):
    """Growth by d changes nothing farther than d + k outside the arg-max boundary; shrinkage by d
    changes nothing deeper than |d| + k inside it (k = RAMP_K)."""
    base, gt = disk
    sdf = torch.from_numpy(P.signed_distance(P.channel_argmax(base[None])[0].numpy() == 1))
    grown = P.apply(base, gt, {"dilate": 3.0})[0]
    far = sdf > 3.0 + P.RAMP_K
    assert far.sum() > 1000
    assert torch.equal(grown[:, far], base[:, far])
    assert not torch.equal(grown[:, sdf < 3.0 + P.RAMP_K - 0.5], base[:, sdf < 3.0 + P.RAMP_K - 0.5])
    shrunk = P.apply(base, gt, {"dilate": -3.0})[0]
    deep = sdf < -(3.0 + P.RAMP_K)
    assert deep.sum() > 100
    assert torch.equal(shrunk[:, deep], base[:, deep])


def test_mixed_sign_batch_equals_one_at_a_time(disk):
    base, gt = disk
    d = torch.tensor([-3.0, 0.0, 2.5], dtype=torch.float64)
    sx = torch.tensor([1.5, -2.0, 0.0], dtype=torch.float64)
    batched = P.apply(base, gt, {"dilate": d, "shift_x": sx, "noise": 0.3}, seed=7)
    for i in range(3):
        single = P.apply(base, gt, {"dilate": float(d[i]), "shift_x": float(sx[i]), "noise": 0.3}, seed=7)
        torch.testing.assert_close(batched[i], single[0], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- confidence, softness


def test_logit_scale_sharpens_above_one_and_softens_below(disk):
    base, gt = disk
    scales = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    out = P.apply(base, gt, {"logit_scale": scales})
    ent = [entropy(o) for o in out]
    assert all(a > b for a, b in zip(ent, ent[1:], strict=False))
    torch.testing.assert_close(out[0], torch.full_like(out[0], 0.5))  # scale 0: uniform
    torch.testing.assert_close(out[2], base, rtol=0, atol=0)
    # the hard decision never changes
    assert torch.equal(out[3].argmax(0), base.argmax(0))
    ent_gt = [entropy(torch.from_numpy(P.prediction_from_gt(gt, 2, logit_scale=s)).double()) for s in (0.5, 1, 3)]
    assert ent_gt[0] > ent_gt[1] > ent_gt[2]


def test_softness_blurs_keeps_mass_and_centroid(disk):
    base, gt = disk
    out = P.apply(base, gt, {"softness": torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)})
    assert_probability_map(out, atol=1e-12)
    torch.testing.assert_close(out[0], base, rtol=0, atol=0)
    ent = [entropy(o) for o in out]
    assert ent[0] < ent[1] < ent[2]
    for o in out:
        assert float(o[1].sum()) == pytest.approx(float(base[1].sum()), rel=1e-9)
        assert centroid(o[1], -1) == pytest.approx(centroid(base[1], -1), abs=1e-9)
    sharp = P.prediction_from_gt(gt, 2, softness=0.5)
    soft = P.prediction_from_gt(gt, 2, softness=3.0)
    assert entropy(torch.from_numpy(soft).double()) > entropy(torch.from_numpy(sharp).double())


# ---------------------------------------------------------------- false positives / negatives


@pytest.mark.parametrize("area", [30.0, 200.0, 700.0])
def test_fp_area_adds_that_area_far_from_the_object(disk, area):
    base, gt = disk
    for probs in (P.apply(base, gt, {"fp_area": area})[0],
                  torch.from_numpy(P.prediction_from_gt(gt, 2, fp_area=area)).double()):
        added = probs[1] - base[1]
        assert float(added.sum()) == pytest.approx(area, rel=0.01)
        inside = torch.from_numpy(gt > 0)
        assert float(added[inside].sum()) < 1e-3 * area  # nothing added on the object
        ys, xs = torch.nonzero(added > 0.5, as_tuple=True)
        dist = torch.hypot(ys.double() - (SIZE - 1) / 2, xs.double() - (SIZE - 1) / 2)
        assert dist.min() > R + 5  # the blob sits away from the disk


def test_fp_area_is_smooth_and_zero_is_identity(disk):
    base, gt = disk
    areas = torch.linspace(0, 400, 41, dtype=torch.float64)
    out = P.apply(base, gt, {"fp_area": areas})
    torch.testing.assert_close(out[0], base, rtol=0, atol=0)
    added = out[:, 1].sum((1, 2)) - base[1].sum()
    np.testing.assert_allclose(added[1:].numpy(), areas[1:].numpy(), rtol=0.02)
    assert torch.all(added.diff() > 0)


def test_fp_blob_on_empty_ground_truth_goes_to_the_centre():
    gt = np.zeros((64, 64), np.int64)
    probs = torch.from_numpy(P.prediction_from_gt(gt, 2, fp_area=100.0)).double()
    assert float(probs[1].sum()) == pytest.approx(100.0, rel=0.01)
    assert centroid(probs[1], -1) == pytest.approx(31.5, abs=0.6)


@pytest.mark.parametrize("f", [0.1, 0.5, 0.85])
def test_fn_fraction_removes_that_fraction_from_the_left(disk, f):
    base, gt = disk
    total = float(base[1].sum())
    applied = P.apply(base, gt, {"fn_fraction": f})[0]
    assert 1 - float(applied[1].sum()) / total == pytest.approx(f, abs=0.01)
    assert centroid(applied[1], -1) > centroid(base[1], -1) + 1
    assert_probability_map(applied.unsqueeze(0), atol=1e-12)
    from_gt = P.prediction_from_gt(gt, 2, fn_fraction=f)
    assert 1 - float(from_gt[1].sum()) / total == pytest.approx(f, abs=0.01)


def test_fn_fraction_extremes(disk):
    base, gt = disk
    out = P.apply(base, gt, {"fn_fraction": torch.tensor([0.0, 1.0], dtype=torch.float64)})
    torch.testing.assert_close(out[0], base, rtol=0, atol=0)
    assert float(out[1, 1].sum()) == 0.0


# ---------------------------------------------------------------- noise


def test_noise_is_seeded_and_deterministic(disk):
    base, gt = disk
    a = P.apply(base, gt, {"noise": 1.0}, seed=3)
    b = P.apply(base, gt, {"noise": 1.0}, seed=3)
    c = P.apply(base, gt, {"noise": 1.0}, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(P.apply(base, gt, {"noise": 0.0})[0], base, rtol=0, atol=0)
    # the logit difference is exactly sigma * epsilon (one shared field)
    z = torch.log(a[0])
    z0 = torch.log(base.clamp_min(P.EPS))
    eps = P._noise_field(base.shape, 3, torch.float64, "cpu")
    diff = (z - z0) - eps
    centred = diff - diff.mean(0, keepdim=True)
    unclamped = (a[0].min(0).values > 1e-6) & (base.min(0).values > 1e-6)
    assert unclamped.sum() > 1000
    torch.testing.assert_close(centred[:, unclamped], torch.zeros_like(centred[:, unclamped]), atol=1e-9, rtol=0)
    g1 = P.prediction_from_gt(gt, 2, noise=0.8, seed=1)
    np.testing.assert_array_equal(g1, P.prediction_from_gt(gt, 2, noise=0.8, seed=1))
    assert not np.allclose(g1, P.prediction_from_gt(gt, 2, noise=0.8, seed=2))


# ---------------------------------------------------------------- validity, dtypes, 3-D, multi-class


def test_every_output_is_a_valid_probability_map_multiclass():
    case = make_case("phantom", 96, prediction={})
    rng = np.random.default_rng(0)
    n = 6
    amounts = {k: torch.from_numpy(rng.uniform(max(p.range[0], -6), min(p.range[1], 6), n))
               for k, p in P.PERTURBATIONS.items()}
    amounts["fp_area"] = amounts["fp_area"] * 50
    amounts["fn_fraction"] = amounts["fn_fraction"] / 6
    out = P.apply(case.probs, case.gt, amounts, seed=1)
    assert out.dtype == torch.float32 and out.shape == (n, 5, 96, 96)
    assert_probability_map(out, atol=1e-5)
    for values in ({"dilate": 3.0, "fp_area": 80.0, "fn_fraction": 0.3, "noise": 0.5, "shift_x": 1.5},
                   {"dilate": -2.0, "softness": 0.0, "logit_scale": 0.0}):
        probs = P.prediction_from_gt(case.gt, 5, **values)
        assert probs.dtype == np.float32
        assert_probability_map(torch.from_numpy(probs).unsqueeze(0), atol=1e-5)


def test_multiclass_dilation_grows_every_class():
    case = make_case("phantom", 96, prediction={})
    out = P.apply(case.probs, case.gt, {"dilate": torch.tensor([0.0, 2.0])})
    grown = out[1].sum((1, 2)) - out[0].sum((1, 2))
    assert grown[0] < 0  # background shrinks
    assert float(out[1, 1:].sum()) > float(out[0, 1:].sum())


def test_float64_stays_float64_and_binary_foreground_map_is_accepted(disk):
    base, gt = disk
    assert P.apply(base, gt, {"dilate": 1.0}).dtype == torch.float64
    from_fg = P.apply(base[1], gt, {"dilate": 1.0})
    torch.testing.assert_close(from_fg, P.apply(base, gt, {"dilate": 1.0}))
    assert P.perturb_prediction(base, gt, shift_x=2.0).dtype == np.float32


def test_3d_volume_in_plane_shift_and_dilation():
    zz, yy, xx = np.mgrid[:12, :64, :64]
    gt = (((zz - 5.5) / 4) ** 2 + ((yy - 31.5) / 12) ** 2 + ((xx - 31.5) / 12) ** 2 <= 1).astype(np.int64)
    probs = torch.from_numpy(P.prediction_from_gt(gt, 2, fp_area=60.0)).double()
    assert probs.shape == (2, 12, 64, 64)
    assert float(probs[1].sum()) - float(torch.from_numpy(P.prediction_from_gt(gt, 2))[1].sum()) == \
        pytest.approx(60.0, rel=0.05)
    base = torch.from_numpy(P.prediction_from_gt(gt, 2)).double()
    base = base / base.sum(0)
    out = P.apply(base, gt, {"shift_x": torch.tensor([0.0, 2.5]), "dilate": 1.0})
    xs = torch.arange(64, dtype=torch.float64)
    cx = [(o[1].sum((0, 1)) * xs).sum() / o[1].sum() for o in out]
    assert float(cx[1] - cx[0]) == pytest.approx(2.5, abs=1e-5)  # border tails ~1e-7
    assert float(out[0, 1].sum()) > float(base[1].sum())
    assert_probability_map(out, atol=1e-12)


def test_device_auto_runs():
    gt = np.zeros((32, 32), np.int64)
    gt[8:20, 8:20] = 1
    out = P.apply(P.prediction_from_gt(gt, 2), gt, {"shift_x": [0.0, 1.0]}, device="auto")
    assert out.shape == (2, 2, 32, 32)


# ---------------------------------------------------------------- table and errors


def test_table_documents_every_perturbation():
    assert set(P.PERTURBATIONS) == {"shift_x", "shift_y", "dilate", "softness", "logit_scale", "fp_area",
                                    "fn_fraction", "noise"}
    for p in P.PERTURBATIONS.values():
        assert p.unit and p.help and p.label
        assert p.range[0] <= p.default <= p.range[1]
        assert p.range[0] <= p.identity <= p.range[1]


def test_identity_amounts_change_nothing(disk):
    base, gt = disk
    torch.testing.assert_close(P.apply(base, gt, P.identity())[0], base, rtol=0, atol=0)


@pytest.mark.parametrize("amounts, match", [
    ({"blur": 1.0}, "unknown perturbation"),
    ({"dilate": 100.0}, "outside|takes values"),
    ({"shift_x": [1.0, 2.0], "dilate": [1.0, 2.0, 3.0]}, "values but another"),
    ({"noise": float("nan")}, "finite"),
])
def test_bad_amounts_raise_value_error(disk, amounts, match):
    base, gt = disk
    with pytest.raises(ValueError, match=match):
        P.apply(base, gt, amounts)


def test_bad_inputs_raise_value_error(disk):
    base, gt = disk
    with pytest.raises(ValueError, match="does not match"):
        P.apply(base[:, :10], gt, {"dilate": 1.0})
    with pytest.raises(ValueError, match="probabilities"):
        P.apply(base * 2, gt, {"dilate": 1.0})
    with pytest.raises(ValueError, match="unknown perturbation"):
        P.prediction_from_gt(gt, 2, wobble=1.0)
    with pytest.raises(ValueError, match="outside"):
        P.prediction_from_gt(gt, 2, fn_fraction=2.0)
    with pytest.raises(ValueError, match="too small"):
        P.prediction_from_gt(gt * 3, 2)
