"""segloss_core.analyses.bias: closed forms of docs/theory.md (B1-B9) against the real losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import expit, logit

import segloss_core as sc
from segloss_core.analyses import bias
from segloss_core.core._tensors import EPS

EXACT_DICE = {"include_background": False, "smooth": 0.0, "squared": False}
SQUARED_DICE = {"include_background": False, "smooth": 0.0, "squared": True}


def disk(size, radius, centre=None):
    """Independent raster of a disk (B8's convention when centre is None)."""
    c = (size - 1) / 2 if centre is None else centre
    yy, xx = np.mgrid[:size, :size]
    return (yy - c) ** 2 + (xx - c) ** 2 <= radius**2


@pytest.fixture(scope="module")
def blob():
    yy, xx = np.mgrid[:64, :64]
    return ((yy - 30) ** 2 / 144 + (xx - 34) ** 2 / 64 <= 1).astype(np.int64)


# ---------------------------------------------------------------------------------------------- views


def test_signed_distance_zero_level_between_pixels(blob):
    phi = bias.signed_distance(blob > 0)
    assert (phi[blob > 0] <= -0.5).all() and (phi[blob == 0] >= 0.5).all()
    with pytest.raises(ValueError, match="no foreground"):
        bias.signed_distance(np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="whole image"):
        bias.signed_distance(np.ones((8, 8), bool))


def test_binary_view_3d_multiclass_picks_fullest_slice():
    gt = np.zeros((4, 16, 16), np.int64)
    gt[1, 2:5, 2:5] = 1
    gt[2, 2:10, 2:10] = 2
    probs = np.stack([gt == k for k in range(3)]).astype(np.float32) * 0.8 + 0.2 / 3
    case = sc.Case(gt, probs / probs.sum(0))
    mask, fg = bias.binary_view(case)
    assert mask.sum() == 64 and mask.shape == (16, 16)
    np.testing.assert_allclose(fg, 1 - case.probs[0][2], rtol=1e-6)
    mask1, fg1 = bias.binary_view(case, foreground_class=1)
    assert mask1.sum() == 9  # slice 1 holds class 1
    np.testing.assert_allclose(fg1, case.probs[1][1], rtol=1e-6)
    with pytest.raises(ValueError):
        bias.binary_view(case, foreground_class=3)


# ---------------------------------------------------------------------------------------------- size curve


def test_size_family_hits_requested_sizes_and_gt(blob):
    ratios = np.array([0.0, 0.3, 1.0, 1.7, 2.0])
    fg, realised, offsets = bias.size_family(blob > 0, ratios, dtype=torch.float64)
    np.testing.assert_allclose(realised, ratios, atol=1e-12)
    np.testing.assert_allclose(fg.sum((1, 2)).numpy() / blob.sum(), ratios, atol=1e-12)
    assert torch.equal(fg[2], torch.as_tensor(blob, dtype=torch.float64))  # ratio 1 is the GT itself
    # concentric: every prediction contains the previous one
    assert (torch.diff(fg, dim=0) >= 0).all()
    with pytest.raises(ValueError, match="confidence"):
        bias.size_family(blob > 0, ratios, confidence=0.4)


def test_size_curve_nested_closed_forms_b7(blob):
    """Hard nested predictions: Dice loss |1-t|/(1+t), Jaccard loss 1 - min(t, 1/t) (B7)."""
    curve = bias.size_curve(blob, ["dice", "iou"], n=41, params={"dice": EXACT_DICE, "iou": EXACT_DICE},
                            dtype=torch.float64)
    t = curve.ratio
    np.testing.assert_allclose(curve.values["dice"], np.abs(1 - t) / (1 + t), atol=1e-12)
    np.testing.assert_allclose(curve.values["iou"], 1 - np.minimum(t, 1 / np.maximum(t, 1e-300)), atol=1e-12)
    assert curve.argmin["dice"] == 1.0 and curve.argmin["iou"] == 1.0
    assert "linear denom." in curve.labels["dice"] and "fg only" in curve.labels["dice"]


@pytest.mark.parametrize("squared", [False, True])
def test_size_curve_uniform_confidence_optimum_b7(blob, squared):
    """Confidence p inside the predicted region, 0 outside: optimum at P = A with
    D* = 2p/(1+p) (linear) or 2p/(1+p^2) (squared)."""
    p = 0.7
    params = {"dice": SQUARED_DICE if squared else EXACT_DICE}
    curve = bias.size_curve(blob, ["dice"], n=81, confidence=p, outside=0.0, params=params, dtype=torch.float64)
    d_star = 2 * p / (1 + p * p) if squared else 2 * p / (1 + p)
    assert curve.argmin["dice"] == 1.0
    assert curve.values["dice"].min() == pytest.approx(1 - d_star, abs=1e-12)
    assert ("squared denom." if squared else "linear denom.") in curve.labels["dice"]


def test_size_curve_ce_closed_form(blob):
    q = 0.8
    curve = bias.size_curve(blob, ["ce"], n=21, confidence=q, dtype=torch.float64)
    fg, _, _ = bias.size_family(blob > 0, curve.ratio, confidence=q, dtype=torch.float64)
    s = fg.numpy()
    g = (blob > 0)[None]
    expected = -np.where(g, np.log(np.maximum(s, EPS)), np.log(np.maximum(1 - s, EPS))).mean((1, 2))
    np.testing.assert_allclose(curve.values["ce"], expected, rtol=1e-12)
    assert curve.argmin["ce"] == 1.0


def test_size_curve_batched_equals_per_point_compute(blob):
    losses = list(bias.DEFAULT_LOSSES)
    curve = bias.size_curve(blob, losses, n=7, confidence=0.9, dtype=torch.float64)
    fg, _, _ = bias.size_family(blob > 0, curve.ratio, confidence=0.9, dtype=torch.float64)
    target = sc.one_hot(torch.as_tensor(blob)[None], 2, dtype=torch.float64)
    for j in range(len(curve.ratio)):
        probs = torch.stack([1 - fg[j], fg[j]])[None]
        for name in losses:
            ref = float(sc.compute(name, probs, target, spacing=(1.0, 1.0)))
            assert curve.values[name][j] == pytest.approx(ref, rel=1e-10, abs=1e-14), name


def test_size_curve_reports_na_and_bad_input(blob):
    curve = bias.size_curve(blob, ["dice"], n=5, params={"dice": {"smooth": -1.0}})
    assert isinstance(curve.values["dice"], str) and curve.values["dice"].startswith("n/a")
    with pytest.raises(ValueError, match="no foreground"):
        bias.size_curve(np.zeros((16, 16), int), ["ce"])
    with pytest.raises(ValueError, match="cannot grow"):
        bias.size_curve(np.pad(np.ones((12, 12), int), 2), ["ce"], max_ratio=2.0)


def test_evaluate_losses_matches_compute():
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(5, 2, 12, 12, generator=gen, dtype=torch.float64), 1)
    target = sc.one_hot((torch.rand(1, 12, 12, generator=gen) > 0.6).long(), 2, dtype=torch.float64)
    names = sc.list_losses()  # every registered loss, shared soft_confusion for the region ones
    params = {"dice": {"squared": True}, "tversky": {"alpha": 0.2, "beta": 0.8}, "focal_tversky": {"gamma": 2.0}}
    out = bias.evaluate_losses(probs, target, names, params=params, chunk_elements=2 * 144 * 2)
    for name in names:
        ref = sc.compute(name, probs, target.expand_as(probs), reduction="none", **params.get(name, {})).numpy()
        np.testing.assert_allclose(out[name], ref, rtol=1e-12, atol=1e-15, err_msg=name)


# ---------------------------------------------------------------------------------------------- decompositions


def test_penalty_curves_match_table_of_section_4_2():
    u = np.array([1e-6, 0.01, 0.025, 0.05, 0.10, 0.30, 0.50, 0.95])
    table = np.array([
        [0.6908, 0.4923, -2.3279, -2.9957],
        [0.2398, 0.0413, -2.1507, -2.8134],
        [0.2085, 0.0100, -1.9353, -2.5903],
        [0.1985, 0.0, -1.6607, -2.3026],
        [0.2152, 0.0167, -1.2819, -1.8971],
        [0.3990, 0.2005, -0.5490, -1.0498],
        [0.6931, 0.4946, -0.2263, -0.5978],
        [2.8485, 2.6500, 0.0, 0.0],
    ])
    c = bias.penalty_curves(0.05, u)
    got = np.stack([c["ce_size"], c["kl"], c["dice_fgbg"], c["dice_fg"]], 1)
    np.testing.assert_allclose(got, table, atol=6e-5)
    np.testing.assert_allclose(c["ce_size"], c["entropy"] + c["kl"], atol=1e-14)


@pytest.mark.parametrize("tau", [0.01, 0.2, 0.4, 0.7])
def test_penalty_optima_b6(tau):
    u = np.linspace(1e-4, 1 - 1e-4, 99_999)
    c = bias.penalty_curves(tau, u)
    assert u[np.argmin(c["ce_size"])] == pytest.approx(tau, abs=2e-5)
    assert u[np.argmax(c["dice_fgbg"])] == pytest.approx(1 - tau, abs=2e-5)
    assert u[np.argmin(c["dice_fgbg"])] == pytest.approx(1e-4 if tau < 0.5 else 1 - 1e-4)


def test_ce_decomposition_identity_b5_and_bound_b4():
    gen = torch.Generator().manual_seed(1)
    for c in (2, 3, 5):
        probs = torch.softmax(3 * torch.randn(6, c, 9, 11, generator=gen, dtype=torch.float64), 1)
        labels = torch.randint(0, c, (6, 9, 11), generator=gen)
        target = sc.one_hot(labels, c, dtype=torch.float64)
        d = bias.ce_decomposition(probs, target)
        torch.testing.assert_close(d["ce"], d["size"] + d["matching"], rtol=0, atol=1e-12)
        torch.testing.assert_close(d["size"], d["entropy"] + d["kl"], rtol=0, atol=1e-12)
        torch.testing.assert_close(d["ce"], sc.compute("ce", probs, target, reduction="none"), rtol=1e-12, atol=0)
        assert (d["ce"] >= d["kl"]).all()
    # a perfect prediction: matching term = -H(tau)
    d = bias.ce_decomposition(target, target)
    torch.testing.assert_close(d["matching"], -d["entropy"], rtol=0, atol=1e-6)


def test_dice_log_decomposition_identity():
    gen = torch.Generator().manual_seed(2)
    probs = torch.softmax(torch.randn(4, 3, 10, 10, generator=gen, dtype=torch.float64), 1)
    target = sc.one_hot(torch.randint(0, 3, (4, 10, 10), generator=gen), 3, dtype=torch.float64)
    d = bias.dice_log_decomposition(probs, target)
    torch.testing.assert_close(d["total"], d["matching"] + d["penalty"], rtol=0, atol=1e-12)
    ref = sc.compute("dice", probs, target, reduction="none", smooth=0.0)
    torch.testing.assert_close(1 - d["dice"].mean(1), ref, rtol=1e-12, atol=0)


def test_decomposition_along_logit_shift(blob):
    case = sc.Case(blob, np.stack([1 - 0.3 - 0.5 * blob, 0.3 + 0.5 * blob]).astype(np.float32))
    d = bias.decomposition(case, n=60)
    tau = blob.mean()
    assert np.all(np.diff(d.u) > 0) and np.isclose(d.u, tau, atol=1e-9).any()
    assert d.argmin["ce_size"] == pytest.approx(tau, abs=1e-9)
    np.testing.assert_allclose(d.terms["ce"], d.terms["ce_size"] + d.terms["ce_matching"], atol=1e-12)
    np.testing.assert_allclose(d.terms["dice_fg_total"], d.terms["dice_fg_matching"] + d.terms["dice_fg_penalty"],
                               atol=1e-12)
    np.testing.assert_allclose(d.terms["ce_size"], bias.penalty_curves(tau, d.u)["ce_size"], rtol=1e-12)
    np.testing.assert_allclose(d.terms["dice_fg_penalty"], bias.penalty_curves(tau, d.u)["dice_fg"], rtol=1e-12)
    bare = bias.decomposition(blob, n=30)
    assert "GT" in bare.family


def test_decomposition_terms_equal_the_losses_on_the_whole_image(blob):
    """The decomposition evaluates each distinct (logit, label) pair once, weighted by its count: the
    same numbers as the registered CE and Dice on every pixel of the shifted predictions."""
    rng = np.random.default_rng(0)
    fg = np.clip(0.3 + 0.5 * blob + rng.choice([0.0, 0.05, 0.1], blob.shape), 0.01, 0.99)
    case = sc.Case(blob, np.stack([1 - fg, fg]).astype(np.float32))
    d = bias.decomposition(case, n=25)
    z = logit(np.clip(1.0 - case.probs[0].astype(np.float64), EPS, 1 - EPS))
    s = torch.as_tensor(expit(z[None] + d.shift[:, None, None]))
    probs = torch.stack([1 - s, s], 1)
    target = sc.one_hot(torch.as_tensor(blob)[None], 2, dtype=torch.float64).expand_as(probs)
    np.testing.assert_allclose(d.terms["ce"], sc.compute("ce", probs, target, reduction="none").numpy(), rtol=1e-10)
    fg_dice = sc.compute("dice", probs, target, reduction="none", smooth=0.0, include_background=False)
    np.testing.assert_allclose(d.terms["dice_fg_total"], -np.log(1 - fg_dice.numpy()), rtol=1e-10)
    np.testing.assert_allclose(d.u, s.mean((1, 2)).numpy(), rtol=1e-12)


def test_decomposition_weights_count_repeated_pixels():
    gen = torch.Generator().manual_seed(4)
    probs = torch.softmax(torch.randn(3, 2, 7, generator=gen, dtype=torch.float64), 1)
    target = sc.one_hot(torch.randint(0, 2, (1, 7), generator=gen), 2, dtype=torch.float64).expand(3, 2, 7)
    counts = torch.tensor([1, 3, 2, 1, 5, 1, 2], dtype=torch.float64)
    reps = counts.long()
    full_p, full_t = probs.repeat_interleave(reps, dim=2), target.repeat_interleave(reps, dim=2)
    for fn in (bias.ce_decomposition, lambda p, t, w=None: bias.dice_log_decomposition(p, t, weights=w)):
        weighted, expanded = fn(probs, target, counts), fn(full_p, full_t)
        for key in expanded:
            torch.testing.assert_close(weighted[key], expanded[key], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------- band model


def test_band_tensors_layout():
    band = bias.make_band(3, 10, 0.3, background=5)
    probs, target = band.tensors([0.25])
    assert probs.shape == (1, 2, 1, 18) and band.k == 3 and band.pi == 0.3
    assert target[0, 1, 0].tolist() == [1] * 6 + [0] * 12
    assert probs[0, 1, 0].tolist() == [1] * 3 + [0.25] * 10 + [0] * 5


@pytest.mark.parametrize("kind,name,params", [
    ("ce", "ce", {}),
    ("dice_linear", "dice", EXACT_DICE),
    ("dice_squared", "dice", SQUARED_DICE),
    ("jaccard_linear", "iou", EXACT_DICE),
])
def test_band_closed_forms_equal_registered_losses(kind, name, params):
    F, U, pi, bg = 300, 400, 0.2, 3396
    q = np.linspace(0.01, 0.99, 25)
    res = bias.band_optimum(F, U, pi, name, params, background=bg, n_q=25, refine=0)
    values = bias._band_values(F, U, bg, [res.band.k], q, name, params)[0]
    np.testing.assert_allclose(values, bias.band_closed_form(kind, F, U, pi, q, bg), rtol=1e-10)


@pytest.mark.parametrize("F,pi", [(0, 0.2), (300, 0.2), (300, 0.5), (2000, 0.7), (50, 0.9)])
def test_band_ce_optimum_is_pi_b1(F, pi):
    assert bias.band_optimum(F, 400, pi, "ce").q_star == pytest.approx(pi, abs=1e-6)


@pytest.mark.parametrize("F,pi,expected", [(0, 0.2, 1.0), (300, 0.2, 0.0), (2000, 0.2, 0.0), (2000, 0.7, 1.0),
                                           (300, 0.5, 1.0)])
def test_band_linear_dice_extremes_b2(F, pi, expected):
    assert bias.q_star_closed_form("dice_linear", F, 400, pi) == expected
    assert bias.band_optimum(F, 400, pi, "dice", EXACT_DICE).q_star == expected
    assert bias.band_optimum(F, 400, pi, "iou", EXACT_DICE).q_star == expected  # A4: same argmin
    # background in the Dice mean: still an extreme, never pi (brute force)
    with_bg = bias.band_optimum(F, 400, pi, "dice", {**EXACT_DICE, "include_background": True}).q_star
    assert with_bg in (0.0, 1.0)


@pytest.mark.parametrize("F,pi,expected", [(0, 0.05, 0.2236), (0, 0.25, 0.5), (0, 0.8, 0.8944), (300, 0.2, 0.2202),
                                           (2000, 0.2, 0.2032), (2000, 0.7, 0.7134)])
def test_band_squared_dice_interior_b3(F, pi, expected):
    closed = bias.q_star_closed_form("dice_squared", F, 400, pi)
    assert closed == pytest.approx(expected, abs=1e-4)
    if F == 0:
        assert closed == pytest.approx(math.sqrt(pi), abs=1e-12)
    assert bias.band_optimum(F, 400, pi, "dice", SQUARED_DICE).q_star == pytest.approx(closed, abs=1e-5)


@pytest.mark.parametrize("F", [0, 300])
def test_band_region_size_temperature_b9(F):
    pi = 0.2
    for alpha in (0.1, 5.0):  # T = 1: the CE optimum survives any alpha
        r = bias.band_region_size(F, 400, pi, alpha=alpha, temperature=1.0)
        assert r.region_size.q_star == pytest.approx(pi, abs=1e-5)
    q_t = bias.q_star_closed_form("region_size_zero", F, 400, pi, temperature=10.0)
    assert q_t == pytest.approx(expit(logit(0.2) / 10), abs=1e-12) and q_t == pytest.approx(0.4654, abs=1e-4)
    assert bias.band_region_size(F, 400, pi, alpha=0.1, temperature=10.0).region_size.q_star == pytest.approx(
        pi, abs=1e-4)
    for alpha in (1.0,):
        r = bias.band_region_size(F, 400, pi, alpha=alpha, temperature=10.0)
        assert r.region_size.q_star == pytest.approx(q_t, abs=1e-4)
        assert r.q_zero == pytest.approx(q_t, abs=1e-6)


def test_band_region_size_moves_to_target():
    F, U, pi = 300, 400, 0.2
    band = bias.make_band(F, U, pi)
    rho = (F + 0.6 * U) / band.N  # penalty zero at q = 0.6 (T = 1)
    r = bias.band_region_size(F, U, pi, alpha=20.0, temperature=1.0, target_proportion=rho)
    assert r.q_zero == pytest.approx(0.6, abs=1e-12)
    assert r.region_size.q_star == pytest.approx(0.6, abs=1e-4)
    assert r.predicted_proportion == pytest.approx(rho, abs=1e-4)
    assert r.ce.q_star == pytest.approx(pi, abs=1e-6)


def test_band_sweep_matches_closed_forms():
    sw = bias.band_sweep(300, 400, pis=[0.1, 0.3, 0.8])
    single = bias.band_optimum(300, 400, 0.3, "dice", SQUARED_DICE)
    assert sw.q_star[list(sw.q_star)[2]][1] == pytest.approx(single.q_star, abs=1e-5)
    no_bg = bias.band_sweep(300, 400, pis=[0.1, 0.3, 0.8], background=0)
    for label in sw.q_star:  # confident background moves none of these optima
        np.testing.assert_allclose(no_bg.q_star[label], sw.q_star[label], atol=1e-5)
    labels = list(sw.q_star)
    np.testing.assert_allclose(sw.q_star[labels[0]], sw.pi, atol=1e-5)
    np.testing.assert_array_equal(sw.q_star[labels[1]], sw.closed_form["dice_linear"])
    np.testing.assert_allclose(sw.q_star[labels[2]], sw.closed_form["dice_squared"], atol=1e-5)
    assert all(("linear" in lab or "squared" in lab) for lab in labels if "Dice" in lab)


# ---------------------------------------------------------------------------------------------- size sweep


def test_size_sweep_b8_exact_raster_counts():
    radii = [2, 4, 8, 16, 32, 64, 100]
    conf = 1 - 1e-3
    sw = bias.size_sweep(radii=radii, losses=["ce", "dice"], confidence=conf, params={"dice": EXACT_DICE})
    n = 256 * 256
    g = np.array([disk(256, r).sum() for r in radii])
    p = np.array([disk(256, r + 1).sum() for r in radii])
    miss = np.array([(disk(256, r) ^ disk(256, r + 1)).sum() for r in radii])
    np.testing.assert_array_equal(sw.gt_size, g)
    np.testing.assert_array_equal(g, [12, 52, 208, 812, 3228, 12892, 31428])  # B8 table
    np.testing.assert_array_equal(p, [32, 80, 256, 912, 3436, 13264, 32052])
    np.testing.assert_allclose(sw.hard_dice_loss, miss / (g + p), rtol=1e-15)
    np.testing.assert_allclose(sw.hard_dice_loss, [0.4545, 0.2121, 0.1034, 0.0580, 0.0312, 0.0142, 0.0098],
                               atol=6e-5)
    ce = (miss * -np.log(1e-3) + (n - miss) * -np.log(conf)) / n
    np.testing.assert_allclose(sw.values["ce"], ce, rtol=1e-10)
    np.testing.assert_allclose(sw.values["ce"], [0.00311, 0.00395, 0.00606, 0.01154, 0.02292, 0.04021, 0.06676],
                               atol=6e-6)
    assert np.all(np.diff(sw.values["dice"]) < 0) and np.all(np.diff(sw.values["ce"]) > 0)
    # soft Dice at this confidence from counts (linear, fg only, no smoothing)
    inter = conf * g  # every GT pixel lies inside the prediction
    soft = 1 - 2 * inter / (conf * p + (1 - conf) * (n - p) + g)
    np.testing.assert_allclose(sw.values["dice"], soft, rtol=1e-10)
    # mean |dL/ds_fg|: CE (G5), linear Dice (G1)
    grad_ce = (miss * (1 / (1 - conf)) + (n - miss) * (1 / conf)) / n / n
    np.testing.assert_allclose(sw.grad_mean["ce"], grad_ce, rtol=1e-10)
    s_sum = conf * p + (1 - conf) * (n - p)
    den = s_sum + g
    g_fg = 2 * (s_sum + g - inter) / den**2
    g_bg = 2 * inter / den**2
    np.testing.assert_allclose(sw.grad_mean["dice"], (g * g_fg + (n - g) * g_bg) / n, rtol=1e-10)


def test_size_sweep_hard_dice_equals_soft_at_confidence_one():
    sw = bias.size_sweep(fractions=[5e-4, 0.01, 0.5], losses=["dice", "iou"], confidence=1.0,
                         params={"dice": EXACT_DICE, "iou": EXACT_DICE})
    np.testing.assert_allclose(sw.values["dice"], sw.hard_dice_loss, rtol=1e-12)
    np.testing.assert_allclose(sw.values["iou"], sw.hard_jaccard_loss, rtol=1e-12)
    assert sw.fraction[0] == pytest.approx(5e-4, rel=0.2) and sw.fraction[-1] == pytest.approx(0.5, rel=0.01)


# ---------------------------------------------------------------------------------------------- control


def test_region_size_control_moves_optimum_to_target(blob):
    tau = blob.mean()
    # hard predictions: the sharpened proportion is the size / N; CE charges -log(EPS) ~ 16 per
    # wrong pixel, the L1 term alpha per pixel, so alpha = 40 wins
    res = bias.region_size_control(blob, target_proportion=1.5 * tau, alpha=40.0, temperature=1.0, n=61,
                                   band=None)
    assert res.target_ratio == pytest.approx(1.5)
    step = res.curve.ratio[1] - res.curve.ratio[0]
    assert res.curve.argmin["region_size"] == pytest.approx(1.5, abs=step)
    assert res.curve.argmin["ce"] == 1.0
    # confidence 0.9: at T = 1 the 0.1 background mass counts in the proportion, at T = 10 it hardly does
    soft = bias.region_size_control(blob, target_proportion=0.11, alpha=40.0, temperature=1.0, n=61,
                                    confidence=0.9, band=None)
    assert soft.target_ratio == pytest.approx((0.11 - 0.1) / 0.8 / tau)
    sharp = bias.region_size_control(blob, target_proportion=1.5 * tau, alpha=40.0, temperature=10.0, n=61,
                                     confidence=0.9, band=None)
    assert sharp.target_ratio == pytest.approx(1.5, abs=1e-6)
    assert sharp.curve.argmin["region_size"] == pytest.approx(1.5, abs=1.5 * step)  # ramp pixels
    base = bias.region_size_control(blob, alpha=40.0, n=61, band=(300, 400, 0.2))
    assert base.curve.argmin["region_size"] == 1.0
    assert base.band.region_size.q_star == pytest.approx(0.2, abs=1e-4)


def test_ground_truth_case_keeps_what_the_size_curves_read(blob):
    probs = np.stack([np.full(blob.shape, 0.7), np.full(blob.shape, 0.3)]).astype(np.float32)
    case = sc.Case(blob, probs, spacing=(1.0, 2.0), name="blob")
    gt_case = bias.ground_truth_case(case)
    assert np.array_equal(gt_case.gt, case.gt) and gt_case.spacing == case.spacing and gt_case.name == "blob"
    assert np.array_equal(gt_case.probs.argmax(0), blob) and set(np.unique(gt_case.probs)) == {0.0, 1.0}
    other = bias.ground_truth_case(case.with_probs(probs[::-1].copy()))
    assert gt_case.digest() == other.digest() != case.digest()  # a new prediction, the same key
    a = bias.size_curve(case, ["ce", "dice", "boundary"], n=21)
    b = bias.size_curve(gt_case, ["ce", "dice", "boundary"], n=21)
    for name in a.values:
        np.testing.assert_array_equal(a.values[name], b.values[name])
    c = bias.region_size_control(case, alpha=5.0, n=21, band=None)
    d = bias.region_size_control(gt_case, alpha=5.0, n=21, band=None)
    np.testing.assert_array_equal(c.curve.values["region_size"], d.curve.values["region_size"])


def test_size_sweep_confidence_floor_and_curve_minima():
    """The numbers the bias page prints beside its curves come from segloss_core."""
    sweep = bias.size_sweep(boundary_error_px=1.0, losses=["ce"], confidence=0.999, n=4)
    assert sweep.confidence_floor == pytest.approx(-np.log(0.999))
    from segloss_core.data.presets import make_case

    curve = bias.size_curve(make_case("disk"), losses=("dice",), n=9)
    assert curve.minima["dice"] == pytest.approx(float(np.min(curve.values["dice"])))


# ---------------------------------------------------------------------------------------------- shown by the page


def test_view_problem_names_an_empty_or_full_view(blob):
    assert bias.view_problem(np.zeros((5, 5), bool)) == "empty"
    assert bias.view_problem(np.ones((5, 5), bool)) == "full"
    assert bias.view_problem(blob > 0) is None
    one_pixel = np.zeros((5, 5), bool)
    one_pixel[2, 3] = True
    assert bias.view_problem(one_pixel) is None and bias.view_problem(~one_pixel) is None


def test_size_curve_off_true_size_keeps_minima_beyond_the_tolerance():
    curve = bias.SizeCurve(ratio=np.linspace(0, 2, 5), values={}, labels={}, gt_size=10, n_pixels=100,
                           confidence=1.0, outside=0.0,
                           argmin={"a": 1.0, "b": 1.03, "c": 0.97, "d": 1.015, "e": 0.0})
    assert curve.off_true_size() == {"b": 1.03, "c": 0.97, "e": 0.0}
    assert list(curve.off_true_size(0.01)) == ["b", "c", "d", "e"]
    assert curve.off_true_size(2.0) == {}


def test_size_sweep_percent_and_gradient_shrink_b8():
    radii, conf = [2, 100], 1 - 1e-3
    sw = bias.size_sweep(radii=radii, losses=["dice", "ce"], confidence=conf, params={"dice": EXACT_DICE})
    n = 256 * 256
    g = np.array([disk(256, r).sum() for r in radii], dtype=np.float64)
    p = np.array([disk(256, r + 1).sum() for r in radii], dtype=np.float64)
    np.testing.assert_allclose(sw.percent, 100 * g / n, rtol=1e-15)
    # mean |dL/ds_fg| of linear Dice from its counts (as in the B8 test above)
    inter = conf * g
    den = conf * p + (1 - conf) * (n - p) + g
    grad = (g * 2 * (den - inter) / den**2 + (n - g) * 2 * inter / den**2) / n
    assert sw.gradient_shrink("dice") == pytest.approx(grad[0] / grad[1], rel=1e-10)
    assert sw.gradient_shrink("dice") > 10  # a small object gets far larger gradients
    assert sw.gradient_shrink("ce") < 1  # CE's grows with the wrong pixels
    assert sw.gradient_shrink("iou") is None  # not in the sweep
    from dataclasses import replace

    assert replace(sw, grad_mean={"dice": "n/a: why"}).gradient_shrink("dice") is None


def test_region_size_control_target_size_ratio_is_relative_to_the_gt(blob):
    tau = np.count_nonzero(blob) / blob.size
    by_ratio = bias.region_size_control(blob, target_size_ratio=1.5, alpha=40.0, n=31, band=(300, 400, 0.2))
    by_value = bias.region_size_control(blob, target_proportion=1.5 * tau, alpha=40.0, n=31, band=(300, 400, 0.2))
    assert by_ratio.target_proportion == pytest.approx(1.5 * tau, rel=1e-12)
    assert by_ratio.target_ratio == pytest.approx(1.5)
    np.testing.assert_array_equal(by_ratio.curve.values["region_size"], by_value.curve.values["region_size"])
    assert by_ratio.band.region_size.q_star == by_value.band.region_size.q_star
    with pytest.raises(ValueError, match="not both"):
        bias.region_size_control(blob, target_proportion=0.1, target_size_ratio=1.5, band=None)
    with pytest.raises(ValueError, match="target proportion"):
        bias.region_size_control(blob, target_size_ratio=1.0 / tau, band=None)


@pytest.mark.parametrize("F, U, pi", [(300, 400, 0.2), (300, 400, 0.7)])
def test_band_closed_forms_are_named_like_the_band_losses_and_match_brute_force(F, U, pi):
    closed = bias.band_closed_forms(F, U, pi)
    assert set(closed) < set(bias.BAND_LOSSES) and len(closed) == 3
    for label, q in closed.items():
        name, params = bias.BAND_LOSSES[label]
        assert q == pytest.approx(bias.band_optimum(F, U, pi, name, params).q_star, abs=1e-4), label
    assert closed["CE"] == pi


def test_an_object_filling_most_of_the_image_caps_the_sizes_it_can_grow_to():
    gt = np.zeros((20, 20), int)
    gt[:, :16] = 1  # 80 % foreground: the image holds 1.25 x the object
    assert bias.room_to_grow(gt) == 1.25
    curve = bias.size_curve(gt, ["ce", "dice"], n=21)  # 2x by default, where the image holds it
    assert math.isclose(curve.ratio.max(), 1.25) and 1.0 in curve.ratio
    low, top = bias.target_ratio_range(gt)
    assert (low, top) == (0.25, 1.2)
    ctl = bias.region_size_control(gt, target_size_ratio=top, alpha=5.0, band=None)
    assert math.isclose(ctl.target_proportion, 1.2 * 0.8)
    with pytest.raises(ValueError, match="target proportion"):
        bias.region_size_control(gt, target_size_ratio=1.25, band=None)
