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


# ---------------------------------------------------------------------------------------- shown by the page


def test_n_undefined_counts_the_empty_predictions_hd95_leaves_out():
    gt = np.zeros((32, 32), np.int64)
    gt[15:18, 15:18] = 1  # a 3 x 3 object: strong perturbations erase it in some predictions
    small = ag.population(gt, n=40, seed=0, strength=2.0, dtype=torch.float64)
    metrics = ag.hard_metrics(small.hard(), small.gt, small.spacing, hd95=True)
    a = ag.agreement_from_values({"ce": np.arange(40.0)}, metrics)
    empty = int(sum(not np.asarray(m).any() for m in small.hard()))  # predictions without foreground
    assert empty > 0 and a.n_undefined("HD95") == empty
    assert a.n_undefined("1 - Dice") == 0
    assert ag.agreement_from_values({"ce": np.arange(40.0)}, {"1 - Dice": metrics["1 - Dice"]}).n_undefined() == 0
    made = ag.Agreement(values={}, metrics={"HD95": np.array([1.0, np.nan, np.inf, 2.0])}, spearman={},
                        kendall={}, labels={}, hard=False, n=4)
    assert made.n_undefined("HD95") == 2


def test_finite_ranking_and_correlation_lookup():
    spearman = {"dice": {"1 - Dice": 0.5}, "ce": {"1 - Dice": float("nan")}, "iou": {"1 - Dice": 0.9},
                "focal": {"1 - Dice": -0.2}}
    kendall = {k: {"1 - Dice": v["1 - Dice"] / 2} for k, v in spearman.items()}
    a = ag.Agreement(values={}, metrics={}, spearman=spearman, kendall=kendall, labels={}, hard=False, n=3)
    assert [k for k, _ in a.ranking()] == ["iou", "dice", "focal", "ce"]  # NaN last
    assert a.ranking(finite=True) == [("iou", 0.9), ("dice", 0.5), ("focal", -0.2)]
    assert a.ranking("1 - Dice", "kendall", finite=True) == [("iou", 0.45), ("dice", 0.25), ("focal", -0.1)]
    assert a.correlation("dice") == 0.5 and a.correlation("dice", method="kendall") == 0.25
    assert math.isnan(a.correlation("lovasz_softmax")) and math.isnan(a.correlation("dice", "HD95"))


def test_dice_jaccard_largest_takes_the_worse_of_soft_and_hard(pop):
    dj = ag.dice_jaccard(pop)
    worst = dj.largest
    # independently: the checks over soft and hard pooled (A1-A3)
    ld = np.concatenate([dj.soft_dice_loss, dj.hard_dice_loss])
    lj = np.concatenate([dj.soft_jaccard_loss, dj.hard_jaccard_loss])
    assert worst["relation_error"] == pytest.approx(np.max(np.abs(lj - 2 * ld / (1 + ld))), abs=1e-18)
    assert worst["max_gap"] == pytest.approx(np.max(lj - ld), abs=1e-15)
    assert worst["bound_violation"] == max(dj.bound_violation["soft"], dj.bound_violation["hard"])
    made = ag.DiceJaccard(*([np.zeros(1)] * 4), relation_error={"soft": 1e-16, "hard": 3e-16},
                          bound_violation={"soft": 0.5, "hard": 0.0}, max_gap={"soft": 0.1, "hard": 0.12})
    assert made.largest == {"relation_error": 3e-16, "bound_violation": 0.5, "max_gap": 0.12}


def test_wce_reference_lookup_and_comparison():
    sweep = ag.WceSweep(weights=np.array([0.1, 1.0, 10.0]), spearman=np.array([0.2, np.nan, 0.7]),
                        kendall=np.zeros(3), metric="1 - Dice",
                        reference={"Dice (linear denom., fg only)": {"spearman": 0.9, "kendall": 0.8},
                                   "Lovász-Softmax": {"spearman": 0.6, "kendall": 0.5},
                                   "Cross-entropy": {"spearman": 0.4, "kendall": 0.3}})
    assert sweep.best == (10.0, 0.7)
    assert sweep.reference_spearman("Dice") == 0.9 and sweep.reference_spearman("Lov") == 0.6
    assert math.isnan(sweep.reference_spearman("Hausdorff"))
    assert sweep.best_versus(0.9) == "below" and sweep.best_versus(0.6) == "above"
    assert sweep.best_versus(0.7) == "equal to"


def test_wce_reference_spearman_is_the_references_correlation(pop):
    sweep = ag.wce_sweep(pop, weights=[1.0], references=("dice", "ce"))
    metric = ag.hard_metrics(pop.hard(), pop.gt, hd95=False)["1 - Dice"]
    target = pop.target().expand(len(pop), -1, -1, -1)
    dice = sc.compute("dice", pop.probs(), target, reduction="none", **ag.EXACT_SOFT).numpy()
    assert sweep.reference_spearman("Dice") == pytest.approx(stats.spearmanr(dice, metric).statistic, abs=1e-12)


@pytest.mark.parametrize("shape, preferred, sides, default", [
    ((300, 200), 128, (64, 128, 256, 300), 128),
    ((100, 50), 128, (64, 100), 100),  # |100 - 128| < |64 - 128|
    ((64, 64), 128, (64,), 64),  # a choice equal to the side is the side itself
    ((200, 10), 96, (64, 128, 200), 64),  # a tie goes to the smaller side
])
def test_working_sides_offer_the_choices_below_the_side_and_the_nearest_default(shape, preferred, sides, default):
    assert ag.working_sides(shape, (64, 128, 256), preferred) == (sides, default)
