"""Scientific fidelity: closed forms, displayed formulas, stated numbers and definitions follow the code.

References are independent of the code under test: numerical minimisation (scipy) of a numpy
re-implementation of the loss, the loss's own registry function, hand-computed values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

import segloss_core as sc
from segloss_core.analyses import optimise as opt

# ------------------------------------------------------------------------ what-if training: band optima


def _disk(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return ((yy - c) ** 2 + (xx - c) ** 2 <= radius**2).astype(np.int64)


def _squared_dice_fg(s: np.ndarray, g: np.ndarray) -> float:
    """Foreground-only squared Dice without smoothing, in numpy: 1 - 2 sum(sg) / (sum s^2 + sum g^2)."""
    return 1.0 - 2.0 * float((s * g).sum()) / float((s * s).sum() + (g * g).sum())


def _band_prediction(tg: opt.Targets, q: float) -> np.ndarray:
    """Foreground probability of the band model: the expected target off the band, ``q`` on it."""
    s = 1.0 - tg.expected[0].astype(np.float64)
    return np.where(tg.band, q, s)


def _numeric_band_optimum(tg: opt.Targets) -> float:
    """Minimiser over q in [0, 1] of the annotator-mean squared Dice of the band model."""
    gs = [t[1].astype(np.float64) for t in tg.target]

    def loss(q: float) -> float:
        s = _band_prediction(tg, q)
        return float(np.mean([_squared_dice_fg(s, g) for g in gs]))

    res = minimize_scalar(loss, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-10})
    edge = min((0.0, 1.0), key=loss)  # the optimum may sit on the boundary
    return float(edge if loss(edge) < res.fun else res.x)


@pytest.mark.parametrize("pi", [0.1, 0.3, 0.6, 0.9])
@pytest.mark.parametrize(("radius", "width"), [(2.0, 10.0), (9.0, 6.0), (14.0, 4.0)])
@pytest.mark.parametrize("target", ["soft_band", "random_band"])
def test_squared_dice_band_optimum_is_the_losss_minimiser(target, pi, radius, width):
    gt = _disk(40, radius)
    tg = opt.make_targets(gt, 2, opt.Settings(target=target, pi=pi, band_width=width, annotators=1))
    f, u, _ = opt.band_counts(tg, gt)
    assert u > 0 and (f == 0) == (radius == 2.0)  # F = 0 and F > 0 both covered
    # the numpy loss is the registry's squared Dice (foreground only, no smoothing)
    s = _band_prediction(tg, 0.4)
    probs = torch.from_numpy(np.stack([1.0 - s, s]))[None]
    reg = sc.compute("dice", probs, torch.from_numpy(tg.target[0].astype(np.float64))[None], squared=True,
                     include_background=False, smooth=0.0)
    assert float(reg) == pytest.approx(_squared_dice_fg(s, tg.target[0, 1].astype(np.float64)), abs=1e-12)
    closed = opt.closed_forms(tg, gt)["dice_squared"]
    assert closed == pytest.approx(_numeric_band_optimum(tg), abs=1e-6)
    if target == "soft_band":  # soft labels: squared Dice is minimised by the target itself
        assert closed == pytest.approx(pi, abs=1e-6)


def test_soft_band_explanation_prints_the_true_squared_dice_optimum():
    gt = _disk(40, 2.0)  # F = 0: the whole object is ambiguous
    case = sc.Case(gt, np.stack([1.0 - gt, gt]).astype(np.float32) * 0.8 + 0.1, name="small disk")
    traj = opt.optimise(case, opt.Settings(losses=("dice",), steps=2, target="soft_band", pi=0.3,
                                           band_width=10.0), device="cpu", band_model_points=0)
    assert opt.band_counts(traj.targets, gt)[0] == 0
    assert traj.closed["dice_squared"] == pytest.approx(0.300, abs=5e-4)
    assert "squared Dice q* = 0.300" in " ".join(opt.explain(traj))


# ------------------------------------------------------------------------ gradient maps: CE's closed form


@pytest.mark.parametrize("wrt", ["probs", "logits"])
def test_ce_closed_form_follows_the_clamped_log_on_a_missed_tiny_lesion(wrt):
    from segloss_core.analyses import gradients as gr
    from segloss_core.core._tensors import EPS
    from segloss_core.data.presets import make_case

    case = make_case("tiny_lesion", prediction={"shift_x": 30.0})  # the lesion is missed: s = 0 on it
    s = np.asarray(case.probs, dtype=np.float64)
    assert (s[1][case.gt == 1] < EPS).any()  # the clamp is in play
    maps = gr.gradient_maps(case, ("ce",), wrt=wrt)
    value, grad = gr.closed_form_gradient("ce", case, wrt)
    scale = float(np.abs(maps["ce"].grad).max())
    assert np.abs(grad - maps["ce"].grad).max() <= 1e-12 * scale
    if wrt == "probs":  # -g / (N max(s, EPS)): 1 / (N EPS) on the missed lesion
        assert scale == pytest.approx(1.0 / (case.gt.size * EPS), rel=1e-9)
    check = gr.explain(case, maps, ("ce",), wrt=wrt).find("ce", "check")
    assert check.numbers["agrees"] == 1.0 and "matches autograd" in check.text


# ------------------------------------------------------------------------ penalty GDL: what eq. 14 does


def test_penalty_gdl_shrinks_a_good_predictions_loss_as_its_summary_says():
    spec = sc.get_loss("penalty_gdl")
    k = spec.defaults["k"]
    assert k == 2.5
    # one foreground class, 49 of 50 object pixels found plus one false positive: L_GD = 1 - 98/100
    g = np.zeros((1, 2, 10, 10))
    g[0, 1].flat[:50] = 1.0
    s = np.zeros_like(g)
    s[0, 1].flat[1:51] = 1.0
    g[0, 0], s[0, 0] = 1 - g[0, 1], 1 - s[0, 1]
    probs, target = torch.from_numpy(s), torch.from_numpy(g)
    kw = {"include_background": False, "smooth": 0.0}
    gdl = float(sc.compute("generalized_dice", probs, target, **kw))
    pen = float(sc.compute("penalty_gdl", probs, target, k=k, **kw))
    assert gdl == pytest.approx(0.02, abs=1e-15)
    assert pen == pytest.approx(gdl / (1 + k * (1 - gdl)), rel=1e-12)
    # the numbers the summary and the docstring print, to their last digit
    for text in (spec.summary, spec.fn.__doc__):
        assert f"k = {k:g}" in text and f"L_GD {gdl:.2f} → {pen:.4f}" in text, text
    assert "weighs the remaining errors more" not in spec.fn.__doc__
    # below the GDL for every k > 0, and relatively more so the better the prediction
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = torch.from_numpy(rng.dirichlet([1, 1], size=(1, 10, 10)).transpose(0, 3, 1, 2))
        lg = float(sc.compute("generalized_dice", p, target, **kw))
        for kk in (0.5, 2.5, 10.0):
            assert float(sc.compute("penalty_gdl", p, target, k=kk, **kw)) < lg
    # a bad prediction (the complement: 1 of 50 object pixels found) keeps most of its loss
    gdl_bad = float(sc.compute("generalized_dice", 1 - probs, target, **kw))
    pen_bad = float(sc.compute("penalty_gdl", 1 - probs, target, k=k, **kw))
    assert gdl_bad == pytest.approx(0.98, abs=1e-15)
    for text in (spec.summary, spec.fn.__doc__):
        assert f"L_GD {gdl_bad:.2f} → {pen_bad:.2f}" in text
    assert pen / gdl < 0.3 < 0.9 < pen_bad / gdl_bad


# ------------------------------------------------------------------------ metric definitions, stated and true


def _directed(pm: np.ndarray, gm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances pred -> GT and GT -> pred by distance transforms (medpy's method)."""
    from scipy import ndimage

    def surface(m):
        return m & ~ndimage.binary_erosion(m, border_value=0)

    sp, sg = surface(pm), surface(gm)
    return ndimage.distance_transform_edt(~sg)[sp], ndimage.distance_transform_edt(~sp)[sg]


def _blob_pairs() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(pred, gt) pairs: a big disk found exactly and a 3 x 3 blob far away missed (only GT -> pred has
    long distances, on under 5 % of the pooled surface), and a small disk found exactly plus a big
    false-positive disk far away (surfaces of very different sizes)."""
    yy, xx = np.mgrid[:96, :96]
    big = (yy - 40) ** 2 + (xx - 40) ** 2 <= 20**2
    blob = (np.abs(yy - 85) <= 1) & (np.abs(xx - 85) <= 1)
    small = (yy - 10) ** 2 + (xx - 85) ** 2 <= 4**2
    return (big, big | blob), (small | big, small)


def test_hd95_and_assd_are_the_stated_definitions_and_differ_from_the_pooled_ones():
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    for pred, gt in _blob_pairs():
        m = sc.metrics(pred, gt)
        d_pg, d_gp = _directed(pred, gt)
        # segloss = max of the directed 95th percentiles (MONAI) and the mean of the pooled distances
        assert m["hd95"] == pytest.approx(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95)), rel=1e-12)
        assert m["assd"] == pytest.approx(np.concatenate([d_pg, d_gp]).mean(), rel=1e-12)
        onehot = [torch.from_numpy(np.stack([~x, x]))[None].double() for x in (pred, gt)]
        assert m["hd95"] == pytest.approx(float(compute_hausdorff_distance(*onehot, percentile=95)), rel=1e-6)
        assert m["assd"] == pytest.approx(float(compute_average_surface_distance(*onehot, symmetric=True)),
                                          rel=1e-6)
    # medpy's hd95 (one percentile of both directions pooled) and the mean of the two directed means
    # (medpy before 0.5) give other numbers
    (pred, gt), (pred2, gt2) = _blob_pairs()
    d_pg, d_gp = _directed(pred, gt)
    assert np.percentile(np.concatenate([d_pg, d_gp]), 95) < 0.5 * sc.metrics(pred, gt)["hd95"]
    d_pg, d_gp = _directed(pred2, gt2)
    assert (d_pg.mean() + d_gp.mean()) / 2 < 0.8 * sc.metrics(pred2, gt2)["assd"]


def test_metric_definitions_are_stated_in_the_docstrings_and_beside_the_metrics():
    import importlib

    metrics_module = importlib.import_module("segloss_core.core.metrics")  # sc.metrics is the function
    defs = metrics_module.METRIC_DEFINITIONS
    assert set(defs) >= {"hd", "hd95", "assd"}
    for key, phrase in (("hd95", "larger of the two directed 95th percentiles"),
                        ("assd", "mean of the distances of both directions pooled")):
        assert phrase in defs[key]
        for doc in (metrics_module.segmentation_metrics.__doc__, sc.metrics.__doc__):
            assert phrase in " ".join(doc.split()), doc
    for lib in ("MONAI", "medpy", "DeepMind"):
        assert lib in defs["hd95"] + defs["assd"]
        for doc in (metrics_module.segmentation_metrics.__doc__, sc.metrics.__doc__):
            assert lib in doc
    from tests.page_helpers import disk_case, run_page

    at = run_page("playground", disk_case())
    shown = " ".join(str(getattr(e, "value", "")) for e in at.markdown) + " ".join(str(e.value) for e in at.caption)
    for key in ("hd95", "assd"):
        assert " ".join(defs[key].split()) in " ".join(shown.split())


# ------------------------------------------------------------------------ displayed formulas follow the parameters

#: Parameter kinds whose value changes a formula's form (numbers only change a symbol's value).
FORM_KINDS = ("bool", "choice", "floats", "matrix")


def _other_values(ps: sc.ParamSpec) -> list:
    if ps.kind == "bool":
        return [not ps.default]
    if ps.kind == "choice":
        return [c for c in ps.choices if c != ps.default]
    if ps.kind == "floats":
        return [(0.2, 0.8)] if ps.default is None else [None]
    return [((0.0, 1.0), (1.0, 0.0))] if ps.default is None else [None]  # matrix


def _form_changes():
    return [(n, k, v) for n in sc.list_losses() for k, ps in sc.get_loss(n).params.items() if ps.kind in FORM_KINDS
            for v in _other_values(ps)]


def _balanced(tex: str) -> bool:
    depth = 0
    for ch in tex.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0 and tex.count(r"\left") == tex.count(r"\right")


@pytest.mark.parametrize(("name", "param", "value"), _form_changes())
def test_formula_changes_with_every_parameter_that_changes_its_form(name, param, value):
    spec = sc.get_loss(name)
    before, after = spec.formula_text(), spec.formula_text({param: value})
    assert after != before, f"{name}: the formula ignores {param}={value!r}"
    assert _balanced(after) and _balanced(before)


@pytest.mark.parametrize("name", sc.list_losses())
def test_formula_at_the_defaults_is_the_spec_formula_and_valid_latex(name):
    spec = sc.get_loss(name)
    assert spec.formula_text() == spec.formula == spec.formula_text(spec.defaults)
    assert _balanced(spec.formula), spec.formula
    assert "{}" not in spec.formula and "\n" not in spec.formula


def _first_line(tex: str) -> str:
    return tex.removeprefix(r"\begin{gathered}").split(r"\\")[0]


def test_formulas_state_what_the_code_computes():
    f = {n: sc.get_loss(n).formula_text for n in ("combo", "exp_log", "region_size", "sensitivity_specificity",
                                                  "dice", "iou")}
    fg_mean = r"\frac{1}{C-1}\sum_{c=1}^{C-1}"
    # combo: per foreground class, the background BCE term inside the bracket of the class mean
    assert f["combo"]().startswith(r"L_{Combo}=" + fg_mean + r"\Big[\alpha\Big(-\frac{1}{N}\sum_{i=1}^{N}\big(")
    assert r"(1-\beta)(1-g_{ic})\log(1-s_{ic})\big)\Big)" in f["combo"]()
    # exp_log: foreground-only smoothed Dice, CE term with its target g
    assert fg_mean + r"\big(-\log Dice_c\big)^{\gamma}" in f["exp_log"]()
    assert r"g_{ic}\big(-\log s_{ic}\big)^{\gamma}" in f["exp_log"]() and r"+\epsilon}" in f["exp_log"]()
    # region_size: each penalty shown, tau defined
    assert r"\tau_c\log\frac{\tau_c}{\hat\tau_c}" in f["region_size"]({"penalty": "kl"})
    assert r"\big|\hat\tau_c-\tau_c\big|" in f["region_size"]()
    for kw in ({}, {"penalty": "kl"}, {"target_proportion": [0.1]}):
        assert r"\tau_c=" in f["region_size"](kw) or r"\tau=(" in f["region_size"](kw)
    assert r"\tau=(0.9,0.1)" in f["region_size"]({"target_proportion": [0.1]})
    # sensitivity-specificity: the mean over the foreground classes
    assert _first_line(f["sensitivity_specificity"]()).startswith(fg_mean)
    # dice / iou: the squared (V-Net) sums
    for name in ("dice", "iou"):
        assert r"\sum_i s_{ic}^2+\sum_i g_{ic}^2" in f[name]({"squared": True})
        assert "^2" not in f[name]()


def test_playground_and_gradient_page_show_the_formula_for_the_parameters_in_force():
    from segloss_core.analyses import gradients as gr
    from tests.page_helpers import disk_case, run_page
    from ui.session import PARAMS_KEY

    params = {"dice": {"squared": True, "include_background": False}}
    at = run_page("playground", disk_case(), state={PARAMS_KEY: params})
    shown = [e.value.strip("$\n") for e in at.latex]
    dice = sc.get_loss("dice")
    assert dice.formula_text(params["dice"]) in shown and dice.formula not in shown
    case = disk_case()
    items = gr.explain(case, gr.gradient_maps(case, ("dice",), params=params), ("dice",), params=params).items
    assert dice.formula_text(params["dice"]) in [i.formula for i in items]
