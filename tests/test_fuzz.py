"""Property-based fuzzing (hypothesis) of the loss engine, the metrics, the perturbations and presets.

Properties, on random 2-D / 3-D shapes (1..64 px per axis, few voxels so CI stays fast),
2..6 classes, and deliberately nasty values: exact 0/1 predictions, 1e-30 probabilities, near-ties
(1/C +- 1e-12), logits scaled up to 1e3 (softmax underflows to exact 0), perfect and all-wrong
predictions, empty / full / single-pixel ground truths, soft labels where a loss takes them
(``soft_label=True``), random parameters inside their ``ParamSpec`` ranges:

- every registered loss returns a finite value and finite gradients w.r.t. the probabilities and
  the logits (``segloss_core.loss_and_grad``); a ``binary_only`` loss raises ``ValueError`` for C > 2;
- ``segloss_core.core.metrics`` never raises on valid hard masks / label maps; undefined values are
  ``None`` exactly where the empty-mask policy says so, everything else is finite;
- ``perturb.apply`` (batched), ``perturb.prediction_from_gt`` and ``presets.make_case`` only
  produce valid probabilities (finite, in [0, 1], summing to 1 over the classes).

``derandomize=True``: the same examples on every run (CI is reproducible); no example database.
Total examples: see ``N_LOSS`` etc. below (>= 500 together).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segloss_core as sc
from segloss_core.core.metrics import METRIC_NAMES
from segloss_core.data import perturb, presets

torch.set_num_threads(1)

#: Examples per loss (x 21 losses), metrics, perturbations, presets.
N_LOSS = 30
N_METRICS = 120
N_PERTURB = 60
N_FROM_GT = 30
N_PRESETS = 16

#: Largest voxel count per sample (keeps every example in the milliseconds).
MAX_VOXELS = 1536

FUZZ = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))

LOSSES = sc.list_losses()


# ----------------------------------------------------------------------------------------------
# strategies
# ----------------------------------------------------------------------------------------------


@st.composite
def spatial_shapes(draw, max_voxels: int = MAX_VOXELS) -> tuple[int, ...]:
    """2-D or 3-D, each axis 1..64, at most ``max_voxels`` voxels (axes drawn under the budget)."""
    ndim = draw(st.sampled_from((2, 3)))
    shape: list[int] = []
    budget = max_voxels
    for axis in range(ndim):
        rest = ndim - axis - 1
        hi = max(1, min(64, budget))
        # thin axes are the interesting edge cases: draw 1 often
        n = draw(st.one_of(st.just(1), st.integers(1, min(hi, 4)), st.integers(1, hi)))
        shape.append(n)
        budget = max(1, budget // n) if rest else budget
    return tuple(shape)


LABEL_MODES = ("random", "empty", "full", "single", "two_classes", "all_classes")
PROB_MODES = ("dirichlet", "hard", "perfect", "wrong", "tiny", "near_tie", "logits", "uniform", "mixed")


def _labels(rng: np.random.Generator, mode: str, shape: tuple[int, ...], c: int) -> np.ndarray:
    """Integer label maps ``shape`` (batch first) in 0..c-1."""
    if mode == "empty":
        return np.zeros(shape, np.int64)
    if mode == "full":
        return np.full(shape, int(rng.integers(1, c)), np.int64)
    if mode == "single":
        lab = np.zeros(shape, np.int64)
        lab.reshape(shape[0], -1)[:, int(rng.integers(0, math.prod(shape[1:])))] = int(rng.integers(1, c))
        return lab
    if mode == "two_classes":
        return rng.choice([0, int(rng.integers(1, c))], size=shape, p=[0.8, 0.2]).astype(np.int64)
    return rng.integers(0, c, size=shape).astype(np.int64)


def _one_hot(lab: np.ndarray, c: int) -> np.ndarray:
    return np.moveaxis(np.eye(c)[lab], -1, 1)


def _probs(rng: np.random.Generator, mode: str, lab: np.ndarray, c: int) -> np.ndarray:
    """Probabilities ``(B, C, *spatial)`` built from the labels in one of the nasty modes."""
    shape = (lab.shape[0], c, *lab.shape[1:])
    if mode == "mixed":  # a different mode per pixel
        parts = [_probs(rng, m, lab, c) for m in ("dirichlet", "hard", "tiny", "near_tie", "logits")]
        pick = rng.integers(0, len(parts), size=lab.shape)[:, None]
        return np.choose(np.broadcast_to(pick, shape), parts)
    if mode == "dirichlet":
        x = rng.gamma(rng.choice([0.05, 0.5, 2.0]), size=shape) + 1e-300
        return x / x.sum(1, keepdims=True)
    if mode == "hard":
        return _one_hot(rng.integers(0, c, size=lab.shape), c)
    if mode == "perfect":
        return _one_hot(lab, c)
    if mode == "wrong":
        return _one_hot((lab + rng.integers(1, c, size=lab.shape)) % c, c)
    if mode == "tiny":  # a hard prediction with 1e-30 on the other classes (still sums to 1)
        hard = _one_hot(rng.integers(0, c, size=lab.shape), c)
        return np.where(hard > 0, 1.0 - (c - 1) * 1e-30, 1e-30)
    if mode == "near_tie":
        x = 1.0 / c + rng.normal(0.0, 1e-12, size=shape)
        x = np.clip(x, 0.0, None)
        return x / x.sum(1, keepdims=True)
    if mode == "uniform":
        return np.full(shape, 1.0 / c)
    # "logits": softmax of logits scaled up to 1e3: exact zeros and values like 1e-300
    z = rng.normal(size=shape) * 10.0 ** rng.uniform(0.0, 3.0)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _valid_probs(p: np.ndarray) -> np.ndarray:
    """Clip rounding overshoots (1 + 1e-16) so the pair passes ``check_pair``; keep exact 0 and 1."""
    return np.clip(p, 0.0, 1.0)


@st.composite
def loss_cases(draw, soft_ok: bool = False) -> dict:
    """A (probs, target) pair and its description; ``soft`` targets only when ``soft_ok``."""
    shape = draw(spatial_shapes())
    voxels = math.prod(shape)
    batch = draw(st.integers(1, 2)) if voxels <= MAX_VOXELS // 2 else 1
    c = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    label_mode = draw(st.sampled_from(LABEL_MODES))
    prob_mode = draw(st.sampled_from(PROB_MODES))
    soft = soft_ok and draw(st.booleans())
    dtype = draw(st.sampled_from((torch.float64, torch.float64, torch.float32)))
    rng = np.random.default_rng(seed)
    lab = _labels(rng, label_mode, (batch, *shape), c)
    target = _one_hot(lab, c)
    if soft:  # soft labels: a mixture of the one-hot target and a random distribution
        mix = rng.uniform(0.0, 1.0, size=(batch, 1, *shape))
        other = rng.gamma(0.5, size=target.shape) + 1e-300
        target = np.clip((1 - mix) * target + mix * other / other.sum(1, keepdims=True), 0.0, 1.0)
    probs = _valid_probs(_probs(rng, prob_mode, lab, c))
    spacing = tuple(draw(st.sampled_from((1.0, 0.5, 2.5, 0.1))) for _ in shape)
    return {
        "probs": torch.as_tensor(probs, dtype=dtype),
        "target": torch.as_tensor(target, dtype=dtype),
        "labels": lab,
        "spacing": spacing,
        "soft": soft,
        "desc": f"shape={(batch, c, *shape)} labels={label_mode} probs={prob_mode} soft={soft} "
                f"dtype={dtype} seed={seed}",
    }


def _param_value(draw, name: str, spec, c: int):
    """A value for one ``ParamSpec``: its default, a range end, or a random value inside."""
    if spec.kind == "bool":
        return draw(st.booleans())
    if spec.kind == "choice":
        return draw(st.sampled_from(spec.choices))
    if spec.kind == "floats":
        if name == "target_proportion":
            raw = draw(st.lists(st.sampled_from((0.0, 0.01, 0.3, 1.0, 5.0)), min_size=c, max_size=c))
            total = sum(raw)
            return None if total == 0 else [v / total for v in raw]
        return draw(st.one_of(st.none(), st.lists(st.sampled_from((0.0, 1e-3, 0.5, 1.0, 10.0)),
                                                  min_size=c, max_size=c)))
    if spec.kind == "matrix":  # None (= 1 - I) or a random distance matrix: zero diagonal, entries >= 0
        entries = draw(st.lists(st.sampled_from((0.0, 0.25, 1.0, 3.0)), min_size=c * c, max_size=c * c))
        rows = [[0.0 if i == j else entries[i * c + j] + 0.5 for j in range(c)] for i in range(c)]
        return draw(st.one_of(st.none(), st.just(rows)))
    lo, hi = spec.range
    if spec.kind == "int":
        return draw(st.sampled_from((spec.default, int(lo), int(hi))))
    return draw(st.one_of(st.just(spec.default), st.sampled_from((float(lo), float(hi))),
                          st.floats(float(lo), float(hi), allow_nan=False)))


@st.composite
def loss_params(draw, name: str, c: int, soft: bool) -> dict:
    spec = sc.get_loss(name)
    params = {}
    if draw(st.booleans()):  # half the examples at the defaults
        for k, p in spec.params.items():
            params[k] = _param_value(draw, k, p, c)
    if soft:
        params["soft_label"] = True
    return params


def _finite(x) -> bool:
    return bool(torch.isfinite(torch.as_tensor(x)).all())


# ----------------------------------------------------------------------------------------------
# 1. every loss: finite value, finite gradients (probs and logits)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
@settings(max_examples=N_LOSS, **FUZZ)
@given(data=st.data())
def test_every_loss_finite_value_and_gradients(name, data):
    spec = sc.get_loss(name)
    case = data.draw(loss_cases(soft_ok="soft_label" in spec.params), label="case")
    c = case["probs"].shape[1]
    params = data.draw(loss_params(name, c, case["soft"]), label="params")
    reduction = data.draw(st.sampled_from(("mean", "sum", "none")), label="reduction")
    kw = dict(reduction=reduction, spacing=case["spacing"] if spec.uses_spacing else None, **params)
    note = f"{name} {params} reduction={reduction} {case['desc']}"
    if spec.binary_only and c > 2:
        with pytest.raises(ValueError):
            sc.loss_and_grad(name, case["probs"], case["target"], **kw)
        return
    values = {}
    for wrt in ("probs", "logits"):
        value, grad = sc.loss_and_grad(name, case["probs"], case["target"], wrt=wrt, **kw)
        assert math.isfinite(value), f"non-finite value {value} ({wrt}): {note}"
        assert grad.shape == case["probs"].shape
        assert grad.dtype == case["probs"].dtype
        assert _finite(grad), f"non-finite gradient w.r.t. {wrt}: {note}"
        values[wrt] = value
    # the forward value agrees with compute() (same input, no autograd; "none" is summed by loss_and_grad)
    direct = sc.compute(name, case["probs"], case["target"], **kw)
    assert _finite(direct), note
    assert math.isclose(float(direct.sum()), values["probs"], rel_tol=1e-4, abs_tol=1e-5), note


@settings(max_examples=40, **FUZZ)
@given(case=loss_cases())
def test_compute_all_never_raises_and_is_finite(case):
    """The table the app shows: every loss at once, "n/a: ..." only for binary-only losses."""
    out = sc.compute_all(case["probs"], case["target"], spacing=case["spacing"])
    assert set(out) == set(LOSSES)
    c = case["probs"].shape[1]
    for name, v in out.items():
        if isinstance(v, str):
            assert sc.get_loss(name).binary_only and c > 2, f"{name}: {v} ({case['desc']})"
            assert v.startswith("n/a:")
        else:
            assert math.isfinite(v), f"{name}={v} ({case['desc']})"


# ----------------------------------------------------------------------------------------------
# 2. metrics never crash; None exactly where the empty-mask policy says
# ----------------------------------------------------------------------------------------------


@st.composite
def metric_pairs(draw):
    shape = draw(spatial_shapes(max_voxels=4096))
    c = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    gt = _labels(rng, draw(st.sampled_from(LABEL_MODES)), (1, *shape), c)[0]
    pred = _labels(rng, draw(st.sampled_from(LABEL_MODES)), (1, *shape), c)[0]
    kind = draw(st.sampled_from(("labels", "bool", "float_labels", "tensor")))
    spacing = draw(st.one_of(st.none(), st.tuples(*[st.sampled_from((0.3, 1.0, 2.0)) for _ in shape])))
    return gt, pred, c, kind, spacing


@settings(max_examples=N_METRICS, **FUZZ)
@given(pair=metric_pairs())
def test_metrics_never_crash(pair):
    gt, pred, c, kind, spacing = pair
    if kind == "bool":
        g, p = gt > 0, pred > 0
        per_class = {1: sc.metrics(p, g, spacing=spacing)}
        masks = {1: (p, g)}
    else:
        g, p = gt, pred
        if kind == "float_labels":
            g, p = gt.astype(np.float32), pred.astype(np.float64)
        elif kind == "tensor":
            g, p = torch.from_numpy(gt), torch.from_numpy(pred)
        per_class = sc.metrics(p, g, spacing=spacing, num_classes=c)
        assert set(per_class) == set(range(1, c))
        masks = {k: (pred == k, gt == k) for k in per_class}
    for k, m in per_class.items():
        pm, gm = masks[k]
        assert set(m) == set(METRIC_NAMES)
        empty_gt, empty_pred = not gm.any(), not pm.any()
        expected_none = {
            "dice": empty_gt, "jaccard": empty_gt, "recall": empty_gt, "precision": empty_pred,
            "hd": empty_gt or empty_pred, "hd95": empty_gt or empty_pred, "assd": empty_gt or empty_pred,
        }
        for name, v in m.items():
            if expected_none[name]:
                assert v is None, f"class {k} {name}={v} should be None (empty mask)"
            else:
                assert v is not None and math.isfinite(v) and v >= 0, f"class {k} {name}={v}"
        if m["dice"] is not None:
            assert 0.0 <= m["jaccard"] <= m["dice"] <= 1.0
        if m["hd"] is not None:
            assert m["hd95"] <= m["hd"] + 1e-9 and m["assd"] <= m["hd"] + 1e-9


# ----------------------------------------------------------------------------------------------
# 3. perturbations and presets only make valid probabilities
# ----------------------------------------------------------------------------------------------


def _assert_probabilities(p, what: str, *, dim: int, atol: float = 1e-5) -> None:
    """Finite, in [0, 1], summing to 1 over the class axis ``dim``."""
    p = torch.as_tensor(p).double()
    assert torch.isfinite(p).all(), f"{what}: NaN/Inf"
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0, f"{what}: outside [0, 1]"
    sums = p.sum(dim)
    assert torch.allclose(sums, torch.ones_like(sums), atol=atol), f"{what}: sums {sums.min()}..{sums.max()}"


def _amount(draw, name: str):
    """One amount: identity, a range end, or a random value (sub-pixel included)."""
    spec = perturb.PERTURBATIONS[name]
    lo, hi = spec.range
    if name == "fp_area":
        hi = 400.0  # the blob solver is the slow part; the range end is covered in test_perturb
    return draw(st.one_of(st.just(spec.identity), st.sampled_from((lo, hi)),
                          st.floats(lo, hi, allow_nan=False)))


@st.composite
def perturb_inputs(draw):
    shape = draw(spatial_shapes(max_voxels=1024))
    c = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lab = _labels(rng, draw(st.sampled_from(LABEL_MODES)), (1, *shape), c)
    probs = _valid_probs(_probs(rng, draw(st.sampled_from(PROB_MODES)), lab, c))[0]
    dtype = draw(st.sampled_from((np.float64, np.float32)))
    probs = probs.astype(dtype)
    names = draw(st.lists(st.sampled_from(tuple(perturb.PERTURBATIONS)), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(1, 4))
    amounts = {}
    for k in names:
        if n > 1 and draw(st.booleans()):
            amounts[k] = torch.tensor([_amount(draw, k) for _ in range(n)], dtype=torch.float64)
        else:
            amounts[k] = _amount(draw, k)
    return probs, lab[0], amounts, int(rng.integers(0, 1000))


@settings(max_examples=N_PERTURB, **FUZZ)
@given(inp=perturb_inputs())
def test_perturb_apply_gives_valid_probabilities(inp):
    probs, gt, amounts, seed = inp
    out = perturb.apply(probs, gt, amounts, seed=seed, device="cpu")
    n = max((len(v) for v in amounts.values() if isinstance(v, torch.Tensor)), default=1)
    assert out.shape == (n, *probs.shape)
    tol = 1e-4 if probs.dtype == np.float32 else 1e-6
    _assert_probabilities(out, f"apply {amounts}", dim=1, atol=tol)


@st.composite
def gt_inputs(draw):
    shape = draw(spatial_shapes(max_voxels=1024))
    c = draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gt = _labels(rng, draw(st.sampled_from(LABEL_MODES)), (1, *shape), c)[0]
    names = draw(st.lists(st.sampled_from(tuple(perturb.PERTURBATIONS)), max_size=4, unique=True))
    amounts = {k: _amount(draw, k) for k in names}
    if "softness" in amounts:  # prediction_from_gt's softness is a width, 0 is allowed (clamped)
        amounts["softness"] = float(amounts["softness"])
    return gt, c, amounts, int(rng.integers(0, 1000))


@settings(max_examples=N_FROM_GT, **FUZZ)
@given(inp=gt_inputs())
def test_prediction_from_gt_gives_valid_probabilities(inp):
    gt, c, amounts, seed = inp
    p = perturb.prediction_from_gt(gt, c, seed=seed, **amounts)
    assert p.shape == (c, *gt.shape) and p.dtype == np.float32
    _assert_probabilities(p, f"prediction_from_gt {amounts}", dim=0)
    sc.Case(gt, p)  # and it makes a valid case


@settings(max_examples=N_PRESETS, **FUZZ)
@given(data=st.data())
def test_presets_give_valid_cases(data):
    name = data.draw(st.sampled_from(tuple(presets.PRESETS)), label="preset")
    preset = presets.PRESETS[name]
    params = {k: _param_value(data.draw, k, p, 2) for k, p in preset.params.items()
              if data.draw(st.booleans())}
    size = data.draw(st.sampled_from((presets.SIZE_RANGE[0], 96)), label="size")
    pred = {k: _amount(data.draw, k) for k in data.draw(
        st.lists(st.sampled_from(tuple(perturb.PERTURBATIONS)), max_size=3, unique=True))}
    case = presets.make_case(name, size, prediction=pred or None, **params)
    assert case.gt.shape == (size, size)
    assert 0 <= case.gt.min() and case.gt.max() < case.num_classes
    _assert_probabilities(case.probs, f"preset {name} {params} {pred}", dim=0)
    # and every loss is finite on it
    probs, target = case.tensors()
    for loss, v in sc.compute_all(probs, target).items():
        assert isinstance(v, str) or math.isfinite(v), f"{loss}={v} on preset {name} {params} {pred}"


# ----------------------------------------------------------------------------------------------
# regressions found by the fuzzing above (kept explicit so they survive strategy changes)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["combo", "exp_log", "dice", "dice_ce"])
def test_smooth_zero_on_an_empty_class_predicted_empty_is_a_perfect_score(name):
    """Found by test_every_loss_finite_value_and_gradients[combo]: ``smooth=0`` with an empty
    foreground predicted empty gave NaN (0/0) in combo / exp_log (compound._soft_dice). The limit of
    ``(2I + s) / (S + G + s)`` as ``s -> 0`` there is 1, as in region.py: a perfect score, finite gradients."""
    probs = torch.tensor([1.0, 0.0], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 3, 3).contiguous()
    target = probs.clone()
    value, grad = sc.loss_and_grad(name, probs, target, wrt="probs", smooth=0.0)
    assert _finite(grad), name
    # the s -> 0 limit: the same value as with a tiny and with the default smoothing (Dice 1 there;
    # 0 for combo / dice / dice_ce, EPS^gamma for exp_log's clamped fractional powers)
    for smooth in (1e-12, 1e-5):
        assert value == pytest.approx(float(sc.compute(name, probs, target, smooth=smooth)), abs=1e-6), smooth
    assert value < 0.01, (name, value)
    # w.r.t. logits the loss sees softmax(log(clamp(p, EPS))): ~EPS of false-positive mass, which
    # smooth=0 scores as Dice 0 (a discontinuity of smooth=0 itself); it must still be finite
    value, grad = sc.loss_and_grad(name, probs, target, wrt="logits", smooth=0.0)
    assert math.isfinite(value) and _finite(grad), (name, value)
