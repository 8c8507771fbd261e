"""segloss_core.analyses.agreement: Dice/Jaccard relation and bounds (docs/theory.md, A1-A4), rank agreement, the WCE sweep (A6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import segloss_core as sc
from segloss_core.analyses import agreement as ag
from segloss_core.core import registry
from segloss_core.data import perturb


def disk(size, radius, centre):
    yy, xx = np.mgrid[:size, :size]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


@pytest.fixture(scope="module")
def gt():
    return disk(48, 9, (22, 25)).astype(np.int64)


@pytest.fixture(scope="module")
def pop(gt):
    return ag.population(gt, n=40, seed=3, dtype=torch.float64)


def test_population_is_seeded_batched_perturb(gt, pop):
    assert pop.foreground.shape == (40, 48, 48) and pop.foreground.dtype == torch.float64
    again = ag.population(gt, n=40, seed=3, dtype=torch.float64)
    assert torch.equal(pop.foreground, again.foreground)
    other = ag.population(gt, n=40, seed=4, dtype=torch.float64)
    assert not torch.equal(pop.foreground, other.foreground)
    for name, values in pop.amounts.items():
        lo, hi = perturb.PERTURBATIONS[name].range
        assert values.shape == (40,) and values.min() >= lo and values.max() <= hi
    # the chunked population equals one batched perturb.apply call on the same amounts
    base = torch.as_tensor(np.stack([np.where(gt > 0, 0.1, 0.9), np.where(gt > 0, 0.9, 0.1)]), dtype=torch.float64)
    once = perturb.apply(base, gt, pop.amounts, seed=3)[:, 1]
    torch.testing.assert_close(pop.foreground, once, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="no foreground"):
        ag.population(np.zeros((8, 8), np.int64))


def test_population_at_a_working_resolution(gt):
    """``max_side`` reduces the binary view by area averaging (2 x 2 blocks here) before perturbing."""
    fg = np.where(gt > 0, 0.8, 0.15)
    case = sc.Case(gt, np.stack([1 - fg, fg]).astype(np.float32), spacing=(1.0, 0.5))
    small = ag.population(case, n=5, seed=1, max_side=24, dtype=torch.float64)
    blocks = lambda a: a.reshape(24, 2, 24, 2).mean(axis=(1, 3))  # noqa: E731
    assert np.array_equal(small.gt, blocks(gt.astype(np.float64)) > 0.5) and small.spacing == (2.0, 1.0)
    base = blocks(case.probs[1].astype(np.float64))
    prob = torch.as_tensor(np.stack([1 - base, base]), dtype=torch.float64)
    once = perturb.apply(prob, small.gt.astype(np.int64), small.amounts, seed=1)[:, 1]
    torch.testing.assert_close(small.foreground, once, rtol=0, atol=1e-6)
    full = ag.population(case, n=5, seed=1, max_side=48, dtype=torch.float64)  # small enough: unchanged
    assert torch.equal(full.foreground, ag.population(case, n=5, seed=1, dtype=torch.float64).foreground)


def test_hard_metrics_match_segloss_metrics(pop):
    m = ag.hard_metrics(pop.hard(), pop.gt, pop.spacing)
    masks = pop.hard().numpy()
    for i in range(0, len(pop), 7):
        ref = sc.metrics(masks[i], pop.gt)
        assert m["1 - Dice"][i] == pytest.approx(1 - ref["dice"], abs=1e-15)
        assert m["1 - Jaccard"][i] == pytest.approx(1 - ref["jaccard"], abs=1e-15)
        if ref["hd95"] is None:
            assert np.isnan(m["HD95"][i])
        else:
            assert m["HD95"][i] == pytest.approx(ref["hd95"], rel=1e-12)


def test_dice_jaccard_relation_and_bounds_a1_a3(pop):
    dj = ag.dice_jaccard(pop)
    for kind in ("soft", "hard"):
        assert dj.relation_error[kind] <= 1e-12
        assert dj.bound_violation[kind] <= 1e-12
        assert 0 <= dj.max_gap[kind] <= ag.MAX_DICE_JACCARD_GAP + 1e-12
    # soft losses from their defining sums (binary, foreground only, linear, no smoothing)
    s = pop.foreground.flatten(1).numpy()
    g = pop.gt.ravel().astype(float)
    inter = s @ g
    np.testing.assert_allclose(dj.soft_dice_loss, 1 - 2 * inter / (s.sum(1) + g.sum()), rtol=1e-12)
    np.testing.assert_allclose(dj.soft_jaccard_loss, 1 - inter / (s.sum(1) + g.sum() - inter), rtol=1e-12)
    np.testing.assert_allclose(dj.soft_jaccard_loss, ag.jaccard_from_dice_loss(dj.soft_dice_loss), atol=1e-12)
    d, j = 1 - dj.hard_dice_loss, 1 - dj.hard_jaccard_loss
    assert np.all(j <= d + 1e-15) and np.all(d <= 2 * j + 1e-15)


def test_bound_curves_gap_maximum():
    c = ag.bound_curves(100_001)
    gap = c["relation"] - c["dice_loss"]  # D - J = L_J - L_D on the relation curve
    assert gap.max() == pytest.approx(3 - 2 * math.sqrt(2), abs=1e-10)
    ld, lj = c["max_gap_point"]
    assert lj == pytest.approx(2 * ld / (1 + ld), abs=1e-15) and 1 - lj == pytest.approx(math.sqrt(2) - 1)
    assert np.all(c["lower"] <= c["relation"] + 1e-15) and np.all(c["relation"] <= c["upper"] + 1e-15)


def test_rank_correlation_matches_scipy_and_handles_nan():
    rng = np.random.default_rng(0)
    x, y = rng.random(30), rng.random(30)
    assert ag.rank_correlation(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-15)
    assert ag.rank_correlation(x, y, "kendall") == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-15)
    y2 = y.copy()
    y2[:5] = np.nan
    assert ag.rank_correlation(x, y2) == pytest.approx(stats.spearmanr(x[5:], y[5:]).statistic, abs=1e-15)
    assert np.isnan(ag.rank_correlation(x, np.ones(30)))
    with pytest.raises(ValueError):
        ag.rank_correlation(x, y, "pearson")


def test_agreement_hard_dice_is_rank_identical(pop):
    params = {"dice": ag.EXACT_SOFT, "iou": ag.EXACT_SOFT}
    a = ag.agreement(pop, ["dice", "iou", "ce", "lovasz_hinge"], params=params, hard=True)
    for loss in ("dice", "iou"):
        for metric in ("1 - Dice", "1 - Jaccard"):  # monotone functions of each other (A4)
            assert a.spearman[loss][metric] == pytest.approx(1.0, abs=1e-12)
            assert a.kendall[loss][metric] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(a.values["dice"], a.metrics["1 - Dice"], atol=1e-12)
    assert a.ranking()[0][0] in ("dice", "iou")
    assert "linear denom." in a.labels["dice"]


def test_group_means_average_each_family_over_finite_correlations():
    def row(v):
        return {"1 - Dice": v}

    spearman = {"dice": row(0.9), "iou": row(0.7), "ce": row(0.2), "focal": row(float("nan")),
                "boundary": row(float("nan"))}
    kendall = {k: row(-v["1 - Dice"]) for k, v in spearman.items()}
    a = ag.Agreement(values={}, metrics={}, spearman=spearman, kendall=kendall, labels={}, hard=False, n=3)
    titles = registry.GROUPS
    means = a.group_means("1 - Dice", "spearman")
    assert list(means) == [titles["metric-sensitive"], titles["pixel-wise"]]  # best first; all-NaN left out
    assert means[titles["metric-sensitive"]] == pytest.approx(0.8)
    assert means[titles["pixel-wise"]] == pytest.approx(0.2)  # focal's NaN does not count
    assert list(a.group_means("1 - Dice", "kendall").values()) == pytest.approx([-0.2, -0.8])


def test_agreement_values_equal_compute(pop):
    names = ["ce", "dice", "focal", "boundary", "lovasz_softmax"]
    a = ag.agreement(pop, names)
    probs = pop.probs()
    target = pop.target().expand_as(probs)
    for name in names:
        ref = sc.compute(name, probs, target, reduction="none", spacing=(1.0, 1.0)).numpy()
        np.testing.assert_allclose(a.values[name], ref, rtol=1e-10, err_msg=name)
    assert set(a.spearman["ce"]) == set(ag.METRICS)
    bad = ag.agreement(pop, ["dice"], params={"dice": {"smooth": -1}})
    assert bad.values["dice"].startswith("n/a") and "dice" not in bad.spearman


def test_wce_sweep_is_exact_linear_combination(pop):
    sweep = ag.wce_sweep(pop, weights=[0.01, 1.0, 30.0], references=("dice",))
    metric = ag.hard_metrics(pop.hard(), pop.gt, hd95=False)["1 - Dice"]
    for w, rho in zip(sweep.weights, sweep.spearman, strict=True):
        direct = sc.compute("wce", pop.probs(), pop.target().expand(len(pop), -1, -1, -1), reduction="none",
                            weights=(1.0, w)).numpy()
        assert rho == pytest.approx(ag.rank_correlation(direct, metric), abs=1e-12)
    ce = sc.compute("ce", pop.probs(), pop.target().expand(len(pop), -1, -1, -1), reduction="none").numpy()
    assert sweep.spearman[1] == pytest.approx(ag.rank_correlation(ce, metric), abs=1e-12)
    # given reference values are used as they are
    given = ag.wce_sweep(pop, weights=[1.0], references=("dice", "ce"), reference_values={"ce": ce})
    assert given.reference == ag.wce_sweep(pop, weights=[1.0], references=("dice", "ce")).reference


def test_no_wce_weight_orders_pure_fp_and_fn_errors_like_dice_a6():
    """Hard predictions with pure false positives or pure false negatives: Dice ranks them by
    k/(2A +- k), a weighted Hamming error by w_bg FP + w_fg FN; no weight ratio matches the
    non-linear exchange rate, while the Dice loss agrees exactly."""
    g = disk(64, 10, (32, 32))  # A = 317 pixels
    radius = np.hypot(*np.mgrid[-32:32, -32:32])
    order_out = np.argsort(np.where(g, np.inf, radius).ravel())  # nearest outside pixels first
    order_in = np.argsort(np.where(g, radius, np.inf).ravel())  # innermost pixels first
    preds = []
    for k in np.linspace(5, 300, 20).astype(int):  # FN k ~ FP 2Ak/(2A - 2k): exchange rate 1 .. 8.6
        fn = g.ravel().copy()
        fn[order_in[:k]] = False
        preds.append(fn.reshape(g.shape))
    for k in np.geomspace(5, 2000, 20).astype(int):
        fp = g.ravel().copy()
        fp[order_out[:k]] = True
        preds.append(fp.reshape(g.shape))
    fg = torch.as_tensor(np.stack(preds), dtype=torch.float64)
    population = ag.Population(fg, g, {}, (1.0, 1.0), 0)
    sweep = ag.wce_sweep(population, references=("dice",), weights=np.logspace(-4, 4, 161))
    _, best = sweep.best
    assert best < 0.99
    hard = ag.agreement(population, ["dice"], params={"dice": ag.EXACT_SOFT})
    assert hard.spearman["dice"]["1 - Dice"] == pytest.approx(1.0, abs=1e-12)
