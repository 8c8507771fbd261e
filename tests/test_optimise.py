"""segloss_core.analyses.optimise: what-if training on the prediction itself.

References are independent of the code under test: the papers' closed forms for the band optima
(docs/theory.md, B1, B2 via ``bias.q_star_closed_form``), ``segloss_core.core.metrics`` for Dice, a KD
tree for the band, separate (unbatched) runs for the batching, and per-pixel annotator frequencies
for CE's calibration.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

import segloss_core as sc
from segloss_core.analyses import optimise as opt
from segloss_core.analyses.bias import q_star_closed_form
from segloss_core.plots import optimise as op

torch.set_num_threads(1)

LINEAR_DICE_FG = {"include_background": False, "smooth": 0.0}  # the papers' linear Dice (B2)


def disk_case(size=40, radius=11, num_classes=2, centre=None):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = centre or ((size - 1) / 2, (size - 1) / 2)
    gt = ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2).astype(np.int64)
    if num_classes == 3:
        gt[(yy - 5) ** 2 + (xx - 5) ** 2 <= 9] = 2
    fg = np.where(gt > 0, 0.8, 0.1)
    probs = np.zeros((num_classes, size, size))
    probs[0] = 1 - fg
    for k in range(1, num_classes):
        probs[k] = fg / (num_classes - 1)
    return sc.Case(gt, probs.astype(np.float32), name="disk")


def run(case, **kw):
    return opt.optimise(case, opt.Settings(**kw), device="cpu")


# ---------------------------------------------------------------------------------------- convergence


@pytest.mark.parametrize("optimiser", ["adam", "sgd"])
def test_ce_on_a_clean_case_reaches_dice_099(optimiser):
    case = disk_case()
    traj = run(case, losses=("ce",), optimiser=optimiser, steps=120, target="clean")
    final = sc.metrics(traj.labels[-1, 0].astype(np.int64), case.gt)[1]
    assert final["dice"] >= 0.99
    assert traj.rows[0]["dice"] == pytest.approx(final["dice"])
    assert traj.loss[-1, 0] < traj.loss[0, 0] / 10  # CE from log 2 down to a small value


def test_recorded_dice_and_sizes_match_the_metrics_module():
    case = disk_case(num_classes=3)
    traj = run(case, losses=("ce", "dice"), steps=30, start="noise", target="clean")
    for k in range(traj.num_frames):
        for i in range(len(traj.names)):
            labels = traj.labels[k, i].astype(np.int64)
            per = sc.metrics(labels, case.gt, num_classes=3)
            assert traj.dice[k, i] == pytest.approx(np.mean([per[c]["dice"] for c in (1, 2)]), abs=1e-6)
            assert traj.size_ratio[k, i] == pytest.approx((labels > 0).sum() / (case.gt > 0).sum())
            fg = np.asarray(traj.foreground[k, i], np.float64) / 255  # rounded to 1/255
            g = (case.gt > 0).sum()
            assert traj.soft_ratio[k, i] == pytest.approx(fg.sum() / g, abs=0.5 / 255 * fg.size / g)
    assert list(traj.frame_steps) == list(range(0, 31))  # steps // 40 = 0 -> every step


def test_frames_are_recorded_on_the_schedule_and_at_the_last_step():
    s = opt.Settings(steps=203)
    assert s.frames()[:3] == [0, 5, 10] and s.frames()[-1] == 203
    assert opt.Settings(steps=200, record_every=7).frames()[-2:] == [196, 200]


# ---------------------------------------------------------------------------------------- determinism


def test_trajectory_is_reproducible_bit_for_bit():
    case = disk_case(size=32, radius=9)
    kw = dict(losses=("ce", "dice", "region_size"), steps=25, start="noise", target="random_band", annotators=2,
              seed=3)
    a, b = run(case, **kw), run(case, **kw)
    assert np.array_equal(a.loss, b.loss)
    assert np.array_equal(a.foreground, b.foreground) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.targets.target, b.targets.target)
    c = run(case, **{**kw, "seed": 4})
    assert not np.array_equal(a.loss, c.loss)


@pytest.mark.parametrize("kw", [dict(start="uniform"), dict(start="noise", target="random_band", annotators=2),
                                dict(model="cnn", target="clean"), dict(start="prediction")])
def test_training_case_gives_the_same_run(kw):
    """The page caches a run on ``training_case``: the GT alone unless free logits start from the prediction."""
    case = disk_case(size=32, radius=9)
    settings = opt.Settings(losses=("ce", "dice"), steps=12, **kw)
    key_case = opt.training_case(case, settings)
    a, b = opt.optimise(case, settings), opt.optimise(key_case, settings)
    assert np.array_equal(a.loss, b.loss) and np.array_equal(a.foreground, b.foreground)
    moved = case.with_probs(np.roll(case.probs, 3, axis=2))
    same_key = opt.training_case(moved, settings).digest() == key_case.digest()
    assert same_key == (kw.get("start") != "prediction")


def test_band_model_is_reused_across_training_settings(monkeypatch):
    """The band model reads the targets and the losses only: a run with other steps or rate reuses it."""
    calls = []
    real = opt.band_model
    monkeypatch.setattr(opt, "band_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    case = disk_case(size=32, radius=9)
    kw = dict(losses=("ce", "dice"), target="soft_band", pi=0.35, band_width=4.0)
    a = opt.optimise(case, opt.Settings(steps=6, **kw))
    b = opt.optimise(case, opt.Settings(steps=9, lr=0.3, **kw))
    assert len(calls) == 1 and a.band.q_star == b.band.q_star
    np.testing.assert_array_equal(a.band.values["dice"], b.band.values["dice"])
    opt.optimise(case, opt.Settings(steps=6, **{**kw, "pi": 0.4}))  # another target: computed again
    opt.optimise(case, opt.Settings(steps=6, params={"dice": {"smooth": 0.5}}, **kw))  # other parameters
    assert len(calls) == 3


def test_cnn_is_reproducible_and_learns():
    case = disk_case(size=32, radius=9)
    kw = dict(losses=("ce", "dice"), model="cnn", steps=40, target="clean", seed=1)
    a, b = run(case, **kw), run(case, **kw)
    assert np.array_equal(a.loss, b.loss) and np.array_equal(a.foreground, b.foreground)
    assert a.image is not None and a.image.shape == case.gt.shape
    assert (a.loss[-1] < a.loss[0]).all()
    assert a.dice[-1, 0] > 0.9


def test_batched_losses_equal_separate_runs():
    """Loss i depends only on slice i and the optimisers act element-wise: batching changes nothing."""
    case = disk_case(size=32, radius=9)
    kw = dict(steps=30, start="noise", target="soft_band", seed=2)
    both = run(case, losses=("ce", "dice"), **kw)
    alone = run(case, losses=("dice",), **kw)
    assert np.array_equal(both.loss[:, 1], alone.loss[:, 0])
    assert np.array_equal(both.foreground[:, 1], alone.foreground[:, 0])
    cnn_both = run(case, losses=("ce", "dice"), model="cnn", **kw)
    cnn_alone = run(case, losses=("dice",), model="cnn", **kw)
    np.testing.assert_allclose(cnn_both.loss[:, 1], cnn_alone.loss[:, 0], rtol=1e-4)


# ---------------------------------------------------------------------------------------- ambiguous band


def _band_by_kdtree(gt: np.ndarray, width: float) -> np.ndarray:
    """Band of ``|phi| < width/2`` with phi = +-(distance to the other side's nearest pixel - 1/2)."""
    pts = np.argwhere(np.ones_like(gt, bool))
    fg, bg = np.argwhere(gt > 0), np.argwhere(gt == 0)
    d_to_bg = cKDTree(bg).query(pts)[0].reshape(gt.shape)
    d_to_fg = cKDTree(fg).query(pts)[0].reshape(gt.shape)
    phi = np.where(gt > 0, -(d_to_bg - 0.5), d_to_fg - 0.5)
    return np.abs(phi) < width / 2


@pytest.mark.parametrize("pi", [0.3, 0.6])
def test_soft_band_ce_goes_to_pi_and_linear_dice_to_the_papers_extreme(pi):
    case = disk_case(size=48, radius=14)
    traj = run(case, losses=("ce", "dice"), steps=300, target="soft_band", pi=pi, band_width=6.0,
               params={"dice": LINEAR_DICE_FG})
    band = _band_by_kdtree(case.gt, 6.0)
    assert np.array_equal(traj.targets.band, band)
    f, u = int(((case.gt > 0) & ~band).sum()), int(band.sum())
    ce_star = q_star_closed_form("ce", f, u, pi)
    dice_star = q_star_closed_form("dice_linear", f, u, pi)
    assert dice_star == (0.0 if pi == 0.3 else 1.0)  # F(2 pi - 1) + pi^2 U changes sign between them
    q_ce, q_dice = traj.band_q[-1]
    assert q_ce == pytest.approx(ce_star, abs=0.02)
    assert q_dice == pytest.approx(dice_star, abs=0.02)
    # every band pixel, not only the mean
    fg_dice = traj.foreground[-1, 1][band] / 255.0
    assert np.abs(fg_dice - dice_star).max() < 0.05
    # the band model (uniform q on the real image, the real losses) agrees with the closed forms
    assert traj.band.q_star["ce"] == pytest.approx(ce_star, abs=1e-3)
    assert traj.band.q_star["dice"] == dice_star
    # soft labels: squared Dice is minimised by the target itself (hard labels would give B3)
    assert traj.closed == pytest.approx({"ce": ce_star, "dice_linear": dice_star, "dice_squared": pi}, abs=1e-6)
    text = " ".join(opt.explain(traj))
    assert "q ≈ π" in text and ("q → 0" in text if pi == 0.3 else "q → 1" in text)


def test_random_band_ce_is_calibrated_per_pixel_and_dice_decides_every_pixel():
    case = disk_case(size=40, radius=12)
    traj = run(case, losses=("ce", "dice"), steps=300, target="random_band", annotators=4, pi=0.4,
               params={"dice": LINEAR_DICE_FG})
    t = traj.targets
    freq = 1.0 - t.target[:, 0].mean(0)  # each pixel's share of annotators calling it foreground
    band = t.band
    q_ce = traj.foreground[-1, 0][band] / 255.0
    assert np.abs(q_ce - freq[band]).max() < 0.03
    q_dice = traj.foreground[-1, 1][band] / 255.0
    assert ((q_dice < 0.05) | (q_dice > 0.95)).mean() > 0.97
    assert traj.rows[1]["undecided"] < 0.03 and traj.rows[0]["calibration"] < 0.02


# ---------------------------------------------------------------------------------------- targets


def test_targets_are_valid_and_match_their_rates():
    gt = disk_case(size=64, radius=18).gt
    soft = opt.make_targets(gt, 2, opt.Settings(target="soft_band", pi=0.25))
    assert soft.target.shape == (1, 2, 64, 64)
    np.testing.assert_allclose(soft.target.sum(1), 1.0, atol=1e-6)
    assert np.allclose(soft.target[0, 1][soft.band], 0.25) and soft.pi == pytest.approx(0.25)
    assert np.array_equal(soft.target[0, 1][~soft.band], (gt > 0)[~soft.band])

    noisy = opt.make_targets(gt, 2, opt.Settings(target="label_noise", flip=0.2, annotators=4, seed=5))
    flipped = noisy.target[:, 1] != (gt > 0)[None]
    assert flipped.mean() == pytest.approx(0.2, abs=0.01)

    rb = opt.make_targets(gt, 2, opt.Settings(target="random_band", pi=0.3, annotators=8))
    assert set(np.unique(rb.target)) == {0.0, 1.0}
    assert rb.pi == pytest.approx(0.3, abs=0.02)
    assert (rb.target[:, 1][:, ~rb.band] == (gt > 0)[~rb.band]).all()

    blurred = opt.make_targets(gt, 2, opt.Settings(target="soft_labels", soft_sigma=2.0))
    ref = ndimage.gaussian_filter((gt > 0).astype(np.float64), 2.0, mode="nearest")
    np.testing.assert_allclose(blurred.target[0, 1], ref, atol=1e-5)


def test_multiclass_band_uses_each_objects_class():
    case = disk_case(size=40, num_classes=3)
    t = opt.make_targets(case.gt, 3, opt.Settings(target="soft_band", pi=0.5, band_width=4))
    outside = t.band & (case.gt == 0)
    near_small = outside & (np.hypot(*np.mgrid[:40, :40] - 5) < 6)
    assert near_small.any() and (t.target[0, 2][near_small] == 0.5).all()
    assert (t.target[0, 1][near_small] == 0).all()


# ---------------------------------------------------------------------------------------- inputs and errors


def test_working_case_reduces_large_cases():
    big = disk_case(size=256, radius=70)
    small = opt.working_case(big, 128)
    assert small.gt.shape == (128, 128) and small.spacing == (2.0, 2.0)
    assert abs(int((small.gt > 0).sum()) * 4 - int((big.gt > 0).sum())) < 0.02 * (big.gt > 0).sum()
    np.testing.assert_allclose(small.probs.sum(0), 1.0, atol=1e-5)
    assert opt.working_case(small, 128) is small


@pytest.mark.parametrize("kw, message", [
    ({"losses": ()}, "at least one loss"),
    ({"losses": ("nope",)}, "unknown loss"),
    ({"steps": 0}, "steps"),
    ({"target": "odd"}, "target"),
    ({"pi": 1.5}, "pi"),
    ({"lr": -1.0}, "learning rate"),
    ({"params": {"dice": {"smooth": "x"}}}, "smooth"),
])
def test_bad_settings_raise_one_line_value_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        opt.Settings(**kw).validate()


def test_band_on_an_empty_ground_truth_is_a_clear_error():
    empty = sc.Case(np.zeros((16, 16), np.int64), np.full((2, 16, 16), 0.5, np.float32))
    with pytest.raises(ValueError, match="needs an object"):
        run(empty, target="soft_band", steps=2)
    traj = run(empty, target="clean", steps=3)  # the clean target still runs; Dice is undefined
    assert np.isnan(traj.dice).all() and traj.rows[0]["size_ratio"] is None


def test_losses_undefined_on_the_case_are_reported_and_left_out():
    case = disk_case(size=24, radius=6, num_classes=3)
    traj = run(case, losses=("ce", "lovasz_hinge"), steps=3)
    assert traj.names == ["ce"] and "lovasz_hinge" in traj.unavailable


def test_settings_key_changes_with_every_setting():
    base = opt.Settings()
    assert base.key() == opt.Settings().key()
    for kw in ({"lr": 0.05}, {"pi": 0.4}, {"seed": 1}, {"params": {"dice": {"squared": True}}}):
        assert opt.Settings(**kw).key() != base.key()


# ---------------------------------------------------------------------------------------- figures


def test_figures_show_the_recorded_frames():
    case = disk_case(size=32, radius=9)
    traj = run(case, steps=20, target="soft_band", losses=("ce", "dice"))
    fig = op.frame_figure(traj, 2)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 3  # target + two losses
    np.testing.assert_allclose(np.asarray(heat[2].z), traj.foreground[2, 1] / 255.0)
    np.testing.assert_allclose(np.asarray(heat[0].z), 1 - traj.targets.expected[0])
    curves = op.curves_figure(traj, step=int(traj.frame_steps[2]))
    names = {t.name for t in curves.data if t.showlegend}
    assert names == {"Cross-entropy", "Dice"}
    band = op.band_model_figure(traj)
    assert len([t for t in band.data if t.mode == "lines"]) == 2
    mask = op.frame_figure(traj, traj.num_frames - 1, view="mask")
    np.testing.assert_array_equal(np.asarray(mask.data[0].z), case.gt)


# ---------------------------------------------------------------------------------------- shown by the page


def test_frame_rows_read_each_frames_own_step():
    case = disk_case()
    traj = run(case, losses=("ce", "dice"), steps=20, record_every=5, target="clean")
    assert list(traj.frame_steps) == [0, 5, 10, 15, 20]
    rows = traj.frame_rows(0)
    assert [r["title"] for r in rows] == [sc.get_loss("ce").title, sc.get_loss("dice").title]
    assert rows[0]["loss"] == pytest.approx(np.log(2))  # uniform start: CE = log C
    assert all("band_q" not in r and "calibration" not in r for r in rows)  # a clean target
    g = (case.gt > 0).sum()
    for k in (1, 3):
        for i, row in enumerate(traj.frame_rows(k)):
            labels = traj.labels[k, i].astype(np.int64)
            assert row["dice"] == pytest.approx(sc.metrics(labels, case.gt)[1]["dice"], abs=1e-6)
            assert row["size_ratio"] == pytest.approx((labels > 0).sum() / g)
        # the value at step 5 k, recomputed from the recorded (1/255-rounded) foreground probability
        fg = torch.as_tensor(traj.foreground[k, 0] / 255.0, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
        probs = torch.stack([1 - fg, fg])[None]
        target = torch.as_tensor(np.stack([case.gt == 0, case.gt > 0]), dtype=torch.float64)[None]
        ce = sc.compute("ce", probs, target).item()
        assert traj.frame_rows(k)[0]["loss"] == pytest.approx(ce, abs=0.01)


def test_frame_rows_report_band_q_or_disputed_calibration():
    case = disk_case()
    band = run(case, losses=("ce",), steps=10, record_every=5, target="soft_band", pi=0.3)
    q = band.foreground[-1, 0][band.targets.band] / 255.0
    assert band.frame_rows(band.num_frames - 1)[0]["band_q"] == pytest.approx(q.mean(), abs=1 / 255)
    soft = run(case, losses=("ce",), steps=10, record_every=5, target="soft_labels", soft_sigma=2.0)
    t = soft.targets
    assert t.band is None and t.disputed.any()
    row = soft.frame_rows(soft.num_frames - 1)[0]
    assert "band_q" not in row
    g = 1.0 - t.expected[0]  # expected foreground probability
    q = soft.foreground[-1, 0] / 255.0
    assert row["calibration"] == pytest.approx(np.abs(q - g)[t.disputed].mean(), abs=1 / 255)


@pytest.mark.parametrize("shape, preferred, sides, default", [
    ((300, 200), 128, (32, 64, 128, 256, 300), 128),
    ((100, 50), 80, (32, 64, 100), 64),  # the largest side not above the preferred one
    ((40, 30), 16, (32, 40), 32),  # every side above it: the smallest
    ((64, 64), 128, (32, 64), 64),
])
def test_working_sides_default_to_the_largest_side_not_above_the_preferred(shape, preferred, sides, default):
    assert opt.working_sides(shape, (32, 64, 128, 256), preferred) == (sides, default)
