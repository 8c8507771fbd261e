"""Every quantitative statement of the README and of the app's texts, recomputed.

Rule: a number printed with k decimals must match the computation to within half a unit of its last
digit (:func:`_agrees`); words such as "about" get an explicit tolerance, written next to them. Each
README number is found through the sentence that states it (:func:`_stated`), so editing the text
without the numbers (or the numbers without the test) fails here. The computations below use the
presets at 256 x 256 with their defaults, the registry's default parameters and the pages' default
settings, as the texts say, and are written independently of ``segloss_core.analyses.claims`` (which makes
the app's live texts); the app's texts are then checked to carry the same numbers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.special import expit, logit

import segloss_core as sc
from segloss_core.analyses import agreement as ag
from segloss_core.analyses import bias, claims
from segloss_core.analyses import gradients as gr
from segloss_core.core._tensors import EPS
from segloss_core.core.conventions import convention_params
from segloss_core.data.presets import PRESETS, TINY_FRACTION, make_case

ROOT = Path(__file__).resolve().parents[1]
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
NUMBER = r"([-+]?\d+(?:\.\d+)?)"


def _stated(text: str, template: str) -> list[str]:
    """The numbers printed where ``template`` (``{}`` = a number, whitespace-insensitive) occurs once."""
    pattern = re.escape(" ".join(template.split())).replace(r"\{\}", NUMBER)
    hits = re.findall(pattern, " ".join(text.split()))
    assert len(hits) == 1, f"expected the sentence once: {template!r} (found {len(hits)})"
    hit = hits[0]
    return [hit] if isinstance(hit, str) else list(hit)


def _agrees(printed: str, value: float, tol: float | None = None) -> None:
    """``printed`` states ``value``: within half a unit of its last digit unless ``tol`` is given."""
    if tol is None:
        decimals = len(printed.split(".")[1]) if "." in printed else 0
        tol = 0.5 * 10.0**-decimals
    assert abs(float(printed) - value) <= tol + 1e-12, f"text says {printed}, computed {value!r} (tol {tol})"


def _check(text: str, template: str, *values: float, tol: dict[int, float] | None = None) -> None:
    printed = _stated(text, template)
    assert len(printed) == len(values)
    for i, (p, v) in enumerate(zip(printed, values, strict=True)):
        _agrees(p, v, (tol or {}).get(i))


# ---------------------------------------------------------------------------------------------
# independent computations (presets at 256 x 256, registry defaults)
# ---------------------------------------------------------------------------------------------


def _tensors(case):
    probs = torch.from_numpy(case.probs).double()[None]
    target = sc.one_hot(torch.from_numpy(case.gt)[None], case.num_classes, dtype=torch.float64)
    return probs, target


def _loss(case, name, **params) -> float:
    return float(sc.compute(name, *_tensors(case), **params))


def _hard_dice(case) -> float:
    pred, gt = case.probs.argmax(0) == 1, case.gt == 1
    return 2 * float((pred & gt).sum()) / float(pred.sum() + gt.sum())


def _hd95(case) -> float:
    return float(sc.metrics(case.probs.argmax(0) == 1, case.gt == 1)["hd95"])


NNUNET_DICE = convention_params("nnU-Net")[0]["dice"]


@pytest.fixture(scope="module")
def shifts():
    out = {}
    for preset in ("disk", "vessel"):
        base, moved = make_case(preset, prediction={}), make_case(preset, prediction={"shift_y": 2.0})
        out[preset] = {"base": _loss(base, "dice"), "moved": _loss(moved, "dice"),
                       "hard": _hard_dice(moved), "hd95": _hd95(moved)}
    return out


# ---------------------------------------------------------------------------------------------
# README: the Playground's what-if questions (and the live text of the page)
# ---------------------------------------------------------------------------------------------


def test_readme_two_px_shift_disk_vs_vessel(shifts):
    d, v = shifts["disk"], shifts["vessel"]
    _check(README, "the soft Dice loss is already {} on the disk and {} on the vessel", d["base"], v["base"])
    _check(README, "A 2-px vertical shift raises them to {} and {}: it adds {} on the disk and {} on the vessel",
           d["moved"], v["moved"], d["moved"] - d["base"], v["moved"] - v["base"])
    # "about 14 times more": the ratio of what the shift adds, within 0.5
    ratio = (v["moved"] - v["base"]) / (d["moved"] - d["base"])
    _check(README, "about {} times more, while HD95 reads {} px in both", ratio, d["hd95"], tol={0: 0.5})
    assert d["hd95"] == v["hd95"] == 2.0
    _check(README, "hard Dice falls to {} and {}", d["hard"], v["hard"])
    assert PRESETS["vessel"].params["thickness"].default == 3.0  # "a 3-px structure"


def test_readme_missed_tiny_lesion():
    case = make_case("tiny_lesion", prediction={"shift_x": 15.0})
    assert _hard_dice(case) == 0.0  # missed entirely
    _check(README, "the Dice loss only reaches {}, because half", _loss(case, "dice"))
    _check(README, "(background excluded) it is {}. Cross-entropy is {}: the lesion is {} % of the pixels",
           _loss(case, "dice", **NNUNET_DICE), _loss(case, "ce"), 100 * float((case.gt == 1).mean()))


def test_readme_empty_ground_truth():
    case = make_case("empty")
    assert PRESETS["empty"].prediction.get("fp_area", 0) > 0  # it opens with a false-positive blob
    m = sc.metrics(case.probs.argmax(0) == 1, case.gt == 1)
    assert m["dice"] is None and m["recall"] is None and m["hd95"] is None
    _check(README, "precision is {}, the Dice loss is {} with background and {} without, generalised Dice {}.",
           m["precision"], _loss(case, "dice"), _loss(case, "dice", **NNUNET_DICE),
           _loss(case, "generalized_dice"))


def test_app_what_if_text_carries_the_same_numbers(shifts):
    text = claims.what_if_text()
    d, v = shifts["disk"], shifts["vessel"]
    _check(text, "the Dice loss is {} (the soft boundary alone)", d["base"])
    _check(text, "set *shift y* to 2 and it becomes {}, the shift adds {}", d["moved"], d["moved"] - d["base"])
    _check(text, "shift y 0: already {}", v["base"])
    _check(text, "shift y 2: {}, the shift adds {}, about {} times the disk's",
           v["moved"], v["moved"] - v["base"], (v["moved"] - v["base"]) / (d["moved"] - d["base"]),
           tol={2: 0.5})
    _check(text, "HD95 reads {} px on the disk and {} px on the vessel", d["hd95"], v["hd95"])
    _check(text, "falls to {} on the disk but {} on the vessel", d["hard"], v["hard"])
    lesion = make_case("tiny_lesion", prediction={"shift_x": 15.0})
    _check(text, "The Dice loss only reaches {}: half", _loss(lesion, "dice"))
    _check(text, "(background excluded) and it is {}. Cross-entropy is {}, because the lesion is {} %",
           _loss(lesion, "dice", **NNUNET_DICE), _loss(lesion, "ce"), 100 * float((lesion.gt == 1).mean()))
    empty = make_case("empty")
    _check(text, "The Dice loss is {} with the background included and {} with *nnU-Net defaults*, while "
           "generalised Dice is {}:", _loss(empty, "dice"), _loss(empty, "dice", **NNUNET_DICE),
           _loss(empty, "generalized_dice"))


def test_playground_page_shows_the_live_what_if_text():
    from tests.page_helpers import disk_case, run_page

    at = run_page("playground", disk_case())
    assert any(m.value.strip() == claims.what_if_text().strip() for m in at.markdown)
    source = (ROOT / "pages" / "playground.py").read_text(encoding="utf-8")
    assert "0.25" not in source and "ten times" not in source  # the old literals are gone


# ---------------------------------------------------------------------------------------------
# preset captions (generated live; the old false vessel claim is gone)
# ---------------------------------------------------------------------------------------------


def test_vessel_caption_states_what_the_preset_shows():
    text = claims.describe(PRESETS["vessel"])
    assert "halves" not in text
    y = make_case("vessel", prediction={"shift_y": 1.0})
    x = make_case("vessel", prediction={"shift_x": 1.0})
    disk = make_case("disk", prediction={"shift_y": 1.0})
    _check(text, "a hard Dice of only {} (vertical) or {} (horizontal) while HD95 is {} px; the disk keeps {}.",
           _hard_dice(y), _hard_dice(x), _hd95(y), _hard_dice(disk))
    assert PRESETS["vessel"].params["thickness"].default == 3.0  # "at the default 3-px width"
    assert PRESETS["vessel"].prediction == {"shift_y": 1.0}  # the preset opens with that 1-px shift


def test_tiny_lesion_caption():
    text = claims.describe(PRESETS["tiny_lesion"])
    case = make_case("tiny_lesion", prediction={"shift_x": 15.0})
    _check(text, "(shift x {} px), CE is only {}, while the Dice loss is {} without the background ({} with it)",
           15.0, _loss(case, "ce"), _loss(case, "dice", **NNUNET_DICE), _loss(case, "dice"))
    # "under 0.5 % of the image", at every radius the slider allows
    for radius in (1.0, 5.0, 25.0):
        gt, _ = PRESETS["tiny_lesion"].build(256, radius=radius)
        assert 0 < (gt == 1).mean() < TINY_FRACTION == 0.005


def test_two_blobs_caption():
    text = claims.describe(PRESETS["two_blobs"])
    gt, _ = PRESETS["two_blobs"].build(256)
    parts, n = ndimage.label(gt == 1)
    sizes = np.bincount(parts.ravel())[1:]
    assert n == 2
    small, big = sizes.min(), sizes.max()
    _check(text, "Leaving out the small blob ({} px) entirely costs a hard Dice loss of only {}.",
           small, small / (2 * big + small))  # 1 - 2 big / (big + (big + small))


# ---------------------------------------------------------------------------------------------
# README: gradient maps (and the page's computed explanation)
# ---------------------------------------------------------------------------------------------


def test_readme_ce_logit_gradient_on_the_tiny_lesion():
    case = make_case("tiny_lesion")
    p = np.maximum(case.probs.astype(np.float64), EPS)
    s = p / p.sum(0, keepdims=True)  # softmax(log clamp p)
    onehot = np.stack([case.gt == k for k in range(case.num_classes)]).astype(np.float64)
    mag = np.sqrt(((s - onehot) ** 2).sum(0))  # |(s - g)/N| up to the factor 1/N
    wrong = s.argmax(0) != case.gt
    uncertain = ~wrong & ((s * onehot).sum(0) < 0.9)
    share_wrong, share_unc = mag[wrong].sum() / mag.sum(), mag[uncertain].sum() / mag.sum()
    _check(README, "the misclassified pixels ({} % of the image) carry {} % of it and correctly classified "
           "pixels that are not certain (own class below {}) another {} %",
           100 * wrong.mean(), 100 * share_wrong, gr.UNCERTAIN_BELOW, 100 * share_unc)
    exp = gr.explain(case, losses=("dice", "ce"), wrt="logits").find("ce", "misclassified")
    assert exp.numbers["misclassified_share"] == pytest.approx(share_wrong, abs=1e-9)
    assert exp.numbers["uncertain_share_logits"] == pytest.approx(share_unc, abs=1e-9)
    assert "concentrate on them" not in exp.text


# ---------------------------------------------------------------------------------------------
# README: region-size bias (page defaults: U = 400, background 0, alpha = 1, T = 10)
# ---------------------------------------------------------------------------------------------


def test_readme_band_optima():
    source = (ROOT / "pages" / "bias.py").read_text(encoding="utf-8")
    assert re.search(r'"Ambiguous band U", 50, 2000, 400,', source)
    assert re.search(r'"Confident background", 0, 4000, 0,', source)
    assert re.search(r'"CE \+ L1: α", 0\.0, 5\.0, 1\.0,', source)
    assert re.search(r'"CE \+ L1: temperature T", \[[^]]*\], value=10\.0', source)
    F, U, pi = 0, 400, 0.2
    q = {label: bias.band_optimum(F, U, pi, name, params, background=0).q_star
         for label, (name, params) in bias.BAND_LOSSES.items() if name != "region_size"}
    rs = bias.band_optimum(F, U, pi, "region_size", {"alpha": 1.0, "temperature": 10.0, "penalty": "l1"},
                           background=0).q_star
    ce, lin, sq = q["CE"], q["Dice, linear denominator (fg only, no smoothing)"], \
        q["Dice, squared denominator (fg only, no smoothing)"]
    _check(README, "CE answers q* = {} = π (calibrated), linear Dice {}, squared Dice {} = √π; CE + L1 with the "
           "authors' T = {} (the panel's default, α = {}) answers {} = σ(logit(π)/10)",
           ce, lin, sq, 10, 1, rs)
    assert sq == pytest.approx(math.sqrt(pi), abs=1e-5) and ce == pytest.approx(pi, abs=1e-5)
    assert rs == pytest.approx(expit(logit(pi) / 10), abs=1e-5)


def test_bias_page_help_minus_log_eps():
    source = (ROOT / "pages" / "bias.py").read_text(encoding="utf-8")
    # "CE charges about -log(1e-7) ≈ 16 per wrong hard pixel": the clamp of docs/theory.md, E1
    assert "−log(1e-7) ≈ 16" in source and EPS == 1e-7
    _agrees("16", -math.log(EPS), tol=0.5)


def test_readme_conventions():
    assert "`EPS = 1e-7`" in README and EPS == 1e-7


# ---------------------------------------------------------------------------------------------
# README: metric agreement (page defaults: 100 predictions, seed 0, strength 1, 128 px)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def populations():
    source = (ROOT / "pages" / "agreement.py").read_text(encoding="utf-8")
    assert re.search(r'"Predictions", \[50, 100, 200, 400\], value=100', source)
    assert re.search(r'"Seed", 0, 10_000, 0,', source)
    assert re.search(r'"Perturbation strength", 0\.25, 2\.0, 1\.0,', source)
    assert "WORKING_SIDE = 128" in source and re.search(r'"Include the slow losses", value=False', source)
    return {name: ag.population(make_case(name), n=100, seed=0, strength=1.0, max_side=128)
            for name in ("disk", "vessel", "tiny_lesion")}


def _rho(pop, names, hard):
    metrics = ag.hard_metrics(pop.hard(), pop.gt, hd95=False)
    values = ag.loss_values(pop, names, hard=hard)
    return {k: ag.rank_correlation(v, metrics["1 - Dice"]) for k, v in values.items()}


def test_readme_argmax_dice_ranking(populations):
    disk = _rho(populations["disk"], ["dice", "exp_log"], hard=True)
    vessel = _rho(populations["vessel"], ["dice"], hard=True)
    _check(README, "Spearman ρ = {} on the disk, where `exp_log` ranks above it ({}), and {} on the thin vessel",
           disk["dice"], disk["exp_log"], vessel["dice"])
    assert disk["exp_log"] > disk["dice"]
    assert "(background in the class mean, smooth 1e-5)" in README
    defaults = sc.get_loss("dice").resolve_params({})
    assert defaults["include_background"] is True and defaults["smooth"] == 1e-5
    exact = ag.agreement(populations["disk"], ["dice"], params={"dice": ag.EXACT_SOFT}, hard=True)
    assert exact.spearman["dice"]["1 - Dice"] == pytest.approx(1.0, abs=1e-12)  # "then *is* 1 − Dice (ρ = 1)"


def test_readme_dice_jaccard_relation(populations):
    gaps = {}
    for name in ("disk", "vessel"):
        pop = populations[name]
        dj = ag.dice_jaccard(pop)
        assert dj.relation_error["soft"] < 1e-12  # "to machine precision"
        v = ag.loss_values(pop, ["dice", "iou"])  # the registry's defaults
        gaps[name] = ag.relation_gap(v["dice"], v["iou"])
    _check(README, "the registry defaults are up to {} (disk) and {} (thin vessel) off it", gaps["disk"],
           gaps["vessel"])


def test_readme_weighted_ce_sweep(populations):
    refs = ("dice", "lovasz_softmax")
    lesion = ag.wce_sweep(populations["tiny_lesion"], references=refs)
    vessel = ag.wce_sweep(populations["vessel"], references=("dice",))
    disk = ag.wce_sweep(populations["disk"], references=("dice",), hard=True)
    dice_label = bias.loss_label("dice", ag.EXACT_SOFT)
    lovasz_label = bias.loss_label("lovasz_softmax", None)
    (w_l, r_l), (w_v, r_v), (_, r_d) = lesion.best, vessel.best, disk.best
    _check(README, "the best weight, {}, reaches ρ = {}, above soft Dice's {} (Lovász: {})", w_l, r_l,
           lesion.reference[dice_label]["spearman"], lesion.reference[lovasz_label]["spearman"])
    assert r_l > lesion.reference[dice_label]["spearman"]
    _check(README, "the best weight, {}, reaches {} against soft Dice's {}", w_v, r_v,
           vessel.reference[dice_label]["spearman"])
    _check(README, "the best weight stays below Dice's ρ = {} ({} on the disk)", 1, r_d)
    assert disk.reference[dice_label]["spearman"] == pytest.approx(1.0, abs=1e-12) and r_d < 1


# ---------------------------------------------------------------------------------------------
# the empty-class policy shown beside the Playground's table
# ---------------------------------------------------------------------------------------------


def test_empty_class_policy_numbers():
    from segloss_core.core.losses.region import EMPTY_CLASS_POLICY, SMOOTH

    assert "predicted empty scores 0 and one with false positives scores about 1" in EMPTY_CLASS_POLICY
    assert "gradient ~ smooth/FP^2" in EMPTY_CLASS_POLICY
    case = make_case("empty")
    probs, target = _tensors(case)
    fg_only = {"include_background": False}
    exact_empty = torch.stack([torch.ones_like(probs[:, 0]), torch.zeros_like(probs[:, 0])], 1)
    assert float(sc.compute("dice", exact_empty, target, **fg_only)) == 0.0  # "predicted empty scores 0"
    probs.requires_grad_(True)
    loss = sc.compute("dice", probs, target, **fg_only)
    loss.backward()
    value = loss.detach()
    fp = float(probs.detach()[0, 1].sum())  # the blob's soft mass: every foreground probability is a false positive
    # "about 1": within 1e-6 here (1 - s/(FP + s) with FP of the default blob)
    assert fp > 10 and abs(float(value) - 1.0) <= 1e-6
    assert float(value) == pytest.approx(1 - SMOOTH / (fp + SMOOTH), abs=1e-12)
    # "gradient ~ smooth/FP^2" (docs/theory.md, G1 with G = 0): every pixel gets s/(FP + s)^2 on channel 1
    np.testing.assert_allclose(probs.grad[0, 1].numpy(), SMOOTH / (fp + SMOOTH) ** 2, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# page texts with a quantitative shape: the gradient-scaling caption, the bias page's size sweep
# ---------------------------------------------------------------------------------------------


def test_gradient_scaling_caption():
    """"Dice normalises by the object's size; CE's per-pixel gradient does not depend on it" (page defaults
    p_in = 0.7, p_out = 0, 256 x 256, w.r.t. probabilities)."""
    source = (ROOT / "pages" / "gradients.py").read_text(encoding="utf-8")
    assert "SCALING_RADII = (2, 4, 8, 16, 32, 64)" in source and "SCALING_SIZE = 256" in source
    assert re.search(r'"p_in", 0\.05, 0\.95, 0\.7,', source) and re.search(r'"p_out", 0\.0, 0\.2, 0\.0,', source)
    table = gr.dice_vs_ce_scaling((2, 4, 8, 16, 32, 64), 256, 0.7, 0.0, ("dice", "ce"), "probs", device="cpu")
    ce = np.asarray(table.per_loss["ce"]["object_mean"])
    dice = np.asarray(table.per_loss["dice"]["object_mean"])
    np.testing.assert_allclose(ce, 1 / (256 * 256 * 0.7), rtol=1e-6)  # -1/(N p_in) at every size (G6)
    assert np.all(np.diff(dice) < 0)  # Dice's per-pixel gradient falls as the object grows (G1)


def test_bias_size_sweep_shapes():
    """The size-sweep text: hard Dice loss "(≈ 1/R)" and mean CE, above the -log(confidence) every pixel
    pays, "∝ R/N", over the page's default sweep (boundary error +1 px, confidence 0.999). Explicit
    tolerance: the log-log slopes against R are -1 and +1 within 0.1 (single points scatter by up to
    40 % at the smallest, rasterised radii)."""
    source = (ROOT / "pages" / "bias.py").read_text(encoding="utf-8")
    assert "(≈ 1/R)" in source and "pays for its confidence it grows ∝ R/N" in source
    assert re.search(r'"Boundary error \(px\)", \[[^]]*\], value=1\.0', source)
    assert re.search(r'"Confidence", \[[^]]*\], value=0\.999', source)
    sweep = bias.size_sweep(boundary_error_px=1.0, losses=["ce"], confidence=0.999)
    log_r = np.log(np.asarray(sweep.radius, dtype=np.float64))
    dice_slope = np.polyfit(log_r, np.log(sweep.hard_dice_loss), 1)[0]
    ce_slope = np.polyfit(log_r, np.log(np.asarray(sweep.values["ce"]) + math.log(0.999)), 1)[0]
    assert abs(dice_slope + 1) <= 0.1 and abs(ce_slope - 1) <= 0.1, (dice_slope, ce_slope)


# ---------------------------------------------------------------------------------------------
# README: loss landscapes
# ---------------------------------------------------------------------------------------------


def test_readme_vessel_dice_flat_where_hd95_steep():
    from segloss_core.analyses.landscape import landscape_1d

    r = landscape_1d(make_case("vessel"), axis=("shift_y", 4.0, 10.0), n=7, losses=["dice"], hd95=True)
    dice_loss, hd95 = np.asarray(r.metrics["dice"]), np.asarray(r.hd95)
    _check(README, "1 − Dice only goes from {} to {} while HD95 more than doubles, from {} to {} px",
           dice_loss[0], dice_loss[-1], hd95[0], hd95[-1])
    assert hd95[-1] > 2 * hd95[0] and np.all(np.diff(hd95) > 0)


# ---------------------------------------------------------------------------------------------
# README: limits quoted in the Dataset page, serving a class and the metric definitions
# ---------------------------------------------------------------------------------------------


def test_readme_limits_are_the_codes():
    """"at most 500 MB" (the Dataset page's zip), "default 512" (the page cache's memory bound) and
    "95th percentiles" (HD95) are the values the code uses."""
    from segloss_core.analyses import dataset
    from ui import cache

    assert "(at most 500 MB," in README and dataset.MAX_ZIP_BYTES == 500 * 2**20
    assert "the Dataset page's zip: 500 MB)" in README  # serving a class: each uploader's cap
    assert "`SEGLOSS_CACHE_MB`, default 512)" in README
    assert cache.MAX_BYTES == 512 * 2**20 or "SEGLOSS_CACHE_MB" in __import__("os").environ
    assert "two directed 95th percentiles" in README


def test_readme_hd95_is_the_max_of_directed_95th_percentiles():
    """The README's HD95 definition, on a pair where pooling both directions gives another value."""
    pred = np.zeros((40, 40), dtype=np.uint8)
    gt = np.zeros_like(pred)
    gt[10:30, 10:30] = 1
    pred[12:20, 12:20] = 1
    got = sc.metrics(pred, gt)[1]["hd95"]
    from scipy import ndimage

    def surface(m):
        m = m.astype(bool)
        return m & ~ndimage.binary_erosion(m, border_value=0)

    sp, sg = surface(pred), surface(gt)
    d_to_g = ndimage.distance_transform_edt(~sg)[sp]
    d_to_p = ndimage.distance_transform_edt(~sp)[sg]
    expected = max(np.percentile(d_to_g, 95), np.percentile(d_to_p, 95))
    pooled = np.percentile(np.concatenate([d_to_g, d_to_p]), 95)
    assert abs(got - expected) < 1e-6 and abs(pooled - expected) > 0.1
