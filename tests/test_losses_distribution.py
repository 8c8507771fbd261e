"""Distribution losses (ce, wce, topk, focal, dpce) against independent references: torch's
nll_loss / cross_entropy, MONAI's softmax FocalLoss, numpy sorts and scipy distance transforms,
plus gradcheck and the closed-form CE logit gradient."""

import importlib.util

import numpy as np
import pytest
import torch
from scipy import ndimage

import segloss_core as sc
from segloss_core.core._tensors import EPS
from segloss_core.core.losses import distribution as dist

OWN = ["ce", "wce", "topk", "focal", "dpce"]
HAVE_DISTANCE = importlib.util.find_spec("segloss_core.core.distance") is not None
needs_distance = pytest.mark.skipif(
    not HAVE_DISTANCE, reason="segloss_core/core/distance.py (boundary_weight_map, another owner) not written yet"
)


def _case(b=2, c=3, shape=(6, 7), seed=0, dtype=torch.float64, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn((b, c, *shape), generator=gen, dtype=dtype) * scale, 1)
    labels = torch.randint(0, c, (b, *shape), generator=gen)
    return probs, sc.one_hot(labels, c, dtype=dtype), labels


def _needs(name):
    return [needs_distance] if name == "dpce" else []


def _params(name):
    return [pytest.param(n, marks=_needs(n)) for n in name]


# ---------------------------------------------------------------- ce / wce


@pytest.mark.parametrize("shape", [(6, 7), (3, 4, 5)])
def test_ce_equals_torch_nll_loss(shape):
    probs, target, labels = _case(shape=shape)
    ref = torch.nn.functional.nll_loss(torch.log(probs), labels)
    assert torch.allclose(dist.ce_loss(probs, target), ref, rtol=1e-12, atol=0)
    per = dist.ce_loss(probs, target, reduction="none")
    ref_per = torch.nn.functional.nll_loss(torch.log(probs), labels, reduction="none").flatten(1).mean(1)
    assert per.shape == (2,) and torch.allclose(per, ref_per, rtol=1e-12, atol=0)


def test_ce_soft_target_equals_torch_cross_entropy():
    probs, _, _ = _case()
    soft, _, _ = _case(seed=5, scale=1.0)
    ref = torch.nn.functional.cross_entropy(torch.log(probs), soft)
    assert torch.allclose(dist.ce_loss(probs, soft), ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("hard", [False, True])
def test_ce_logit_gradient_is_p_minus_g_over_n(hard):
    probs, target, labels = _case(b=2, c=3, shape=(4, 5), seed=1)
    if hard:  # hard 0/1 predictions, some wrong: softmax(z)_y = EPS/(1 + 2 EPS) sits just below the clamp
        probs = sc.one_hot((labels + (labels % 2)) % 3, 3, dtype=torch.float64)
    value, grad = sc.loss_and_grad("ce", probs, target, wrt="logits")
    softmax_z = torch.softmax(torch.log(probs.clamp_min(EPS)), 1)
    n = probs.shape[0] * probs[0, 0].numel()
    assert torch.isfinite(grad).all()
    # exact for soft inputs; on hard wrong pixels the clamped log's gradient 1/EPS replaces 1/s_y,
    # a relative change of (C - 1) EPS
    rtol = 1e-6 if hard else 1e-10
    assert torch.allclose(grad, (softmax_z - target) / n, rtol=rtol, atol=1e-15)
    if hard:  # every hard wrong pixel is pushed towards its label (a plain clamp would give 0 here)
        wrong = target.bool() & (probs == 0)
        assert wrong.any() and (grad[wrong] < -0.99 / n).all()
    assert np.isclose(value, float(dist.ce_loss(softmax_z, target)), rtol=1e-12)


def test_wce_relation_to_torch_weighted_nll():
    probs, target, labels = _case(c=3, seed=2)
    weights = (0.2, 1.5, 3.0)
    w = torch.tensor(weights, dtype=torch.float64)
    torch_wce = torch.nn.functional.nll_loss(torch.log(probs), labels, weight=w)
    ours = dist.wce_loss(probs, target, weights=weights)
    assert torch.allclose(ours, torch_wce * w[labels].sum() / labels.numel(), rtol=1e-12, atol=0)
    # and the paper's form directly (1/N normalisation)
    direct = -(w.view(1, 3, 1, 1) * target * torch.log(probs)).sum(1).mean()
    assert torch.allclose(ours, direct, rtol=1e-12, atol=0)
    via_registry = sc.compute("wce", probs, target, weights=list(weights))
    assert torch.allclose(via_registry, ours, rtol=0, atol=0)


def test_wce_defaults_to_ce_and_checks_length():
    probs, target, _ = _case()
    assert torch.equal(dist.wce_loss(probs, target), dist.ce_loss(probs, target))
    assert torch.allclose(dist.wce_loss(probs, target, weights=[1, 1, 1]), dist.ce_loss(probs, target))
    with pytest.raises(ValueError, match="one number per class"):
        dist.wce_loss(probs, target, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="one number per class"):
        sc.compute("wce", probs, target, weights=[1.0, 2.0, 3.0, 4.0])


# ---------------------------------------------------------------- topk


def _numpy_topk(probs, labels, k, per_sample):
    logp = np.log(np.clip(probs.numpy(), EPS, None))
    ce = -np.take_along_axis(logp, labels.numpy()[:, None], axis=1)[:, 0].reshape(labels.shape[0], -1)
    rows = list(ce) if per_sample else [ce.ravel()]
    out = []
    for row in rows:
        keep = max(1, int(np.floor(row.size * k / 100 + 1e-9)))
        out.append(np.sort(row)[::-1][:keep].mean())
    return np.array(out)


@pytest.mark.parametrize("k", [0.5, 10, 37.5, 100])
@pytest.mark.parametrize("shape", [(6, 7), (3, 4, 5)])
def test_topk_matches_numpy_sort(k, shape):
    probs, target, labels = _case(shape=shape, seed=3)
    pooled = _numpy_topk(probs, labels, k, per_sample=False)[0]
    per = _numpy_topk(probs, labels, k, per_sample=True)
    assert np.isclose(float(dist.topk_loss(probs, target, k=k)), pooled, rtol=1e-12)
    assert np.isclose(float(dist.topk_loss(probs, target, k=k, reduction="sum")), 2 * pooled, rtol=1e-12)
    none = dist.topk_loss(probs, target, k=k, reduction="none")
    assert none.shape == (2,) and np.allclose(none.numpy(), per, rtol=1e-12)


def test_topk_100_is_ce_and_tiny_input_keeps_one_pixel():
    probs, target, labels = _case(seed=4)
    assert torch.allclose(dist.topk_loss(probs, target, k=100), dist.ce_loss(probs, target), rtol=1e-12)
    tiny_p, tiny_g, tiny_l = _case(b=1, c=2, shape=(1, 3), seed=6)
    worst = (-torch.log(tiny_p.gather(1, tiny_l[:, None]))).max()
    assert torch.allclose(dist.topk_loss(tiny_p, tiny_g, k=10), worst, rtol=1e-12)
    for bad in (0, -5, 100.5):
        with pytest.raises(ValueError, match="k must be"):
            dist.topk_loss(probs, target, k=bad)


# ---------------------------------------------------------------- focal


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.3])
@pytest.mark.parametrize("alpha", [None, (0.25, 1.0, 2.0)])
def test_focal_is_c_times_monai_softmax_focal(gamma, alpha):
    monai_losses = pytest.importorskip("monai.losses")
    probs, target, _ = _case(c=3, shape=(5, 6), seed=7)
    ref = monai_losses.FocalLoss(use_softmax=True, gamma=gamma, alpha=alpha, reduction="mean")(
        torch.log(probs), target
    )
    ours = dist.focal_loss(probs, target, gamma=gamma, alpha=alpha)
    assert ours.dtype == torch.float64
    assert np.isclose(float(ours), 3 * float(ref), rtol=1e-5, atol=0)


def test_focal_gamma_zero_is_ce_and_alpha_checks():
    probs, target, _ = _case(shape=(3, 4, 5))
    assert torch.allclose(dist.focal_loss(probs, target, gamma=0.0), dist.ce_loss(probs, target), rtol=1e-14)
    with pytest.raises(ValueError, match="one number per class"):
        dist.focal_loss(probs, target, alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match="gamma"):
        dist.focal_loss(probs, target, gamma=-1.0)


@pytest.mark.parametrize("gamma", [0.3, 0.5, 2.0])
def test_focal_fractional_gamma_finite_gradient_at_certainty(gamma):
    lab = torch.zeros((1, 4, 4), dtype=torch.long)
    lab[0, 1:3, 1:3] = 1
    probs = sc.one_hot(lab, 2, dtype=torch.float64)  # perfect, hard
    for wrt in ("probs", "logits"):
        value, grad = sc.loss_and_grad("focal", probs, probs, wrt=wrt, gamma=gamma)
        assert np.isfinite(value) and torch.isfinite(grad).all()


# ---------------------------------------------------------------- dpce


def _boundary_weight_reference(labels_onehot, spacing, include_background):
    """D = 1 - d/max d per sample: d = EDT to the nearest inner-boundary pixel of the selected classes."""
    target = labels_onehot.numpy().astype(bool)
    out = np.zeros((target.shape[0], *target.shape[2:]))
    first = 0 if include_background else 1
    structure = ndimage.generate_binary_structure(target.ndim - 2, 1)
    for b in range(target.shape[0]):
        boundary = np.zeros(target.shape[2:], dtype=bool)
        for c in range(first, target.shape[1]):
            mask = target[b, c]
            if mask.any() and not mask.all():
                inner = mask & ~ndimage.binary_erosion(mask, structure, border_value=1)
                boundary |= inner
        if not boundary.any():
            continue
        d = ndimage.distance_transform_edt(~boundary, sampling=spacing)
        out[b] = 1 - d / d.max() if d.max() > 0 else 1.0
    return out


@needs_distance
@pytest.mark.parametrize(
    "shape,spacing,include_background",
    [((9, 10), None, False), ((9, 10), (1.0, 2.5), True), ((4, 6, 7), (2.0, 1.0, 0.5), False)],
)
def test_dpce_matches_scipy_reference(shape, spacing, include_background):
    probs, _, _ = _case(b=2, c=3, shape=shape, seed=8)
    labels = torch.zeros((2, *shape), dtype=torch.long)
    labels[(0, *[slice(1, s // 2 + 1) for s in shape])] = 1
    labels[(0, *[slice(s // 2 + 1, s - 1) for s in shape])] = 2
    labels[(1, *[slice(2, 4) for _ in shape])] = 2  # sample 1: class 1 empty
    target = sc.one_hot(labels, 3, dtype=torch.float64)
    weight = torch.from_numpy(_boundary_weight_reference(target, spacing, include_background))
    per_pixel = -(target * torch.log(probs)).sum(1)
    ref = ((1 + weight) * per_pixel).flatten(1).mean(1)
    ours = dist.dpce_loss(probs, target, reduction="none", spacing=spacing, include_background=include_background)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=0)
    via_registry = sc.compute("dpce", probs, target, spacing=spacing, include_background=include_background)
    assert torch.allclose(via_registry, ref.mean(), rtol=1e-10, atol=0)


@needs_distance
def test_dpce_is_ce_without_boundary_and_bounded_by_two_ce():
    probs, _, _ = _case(b=2, c=2, shape=(6, 6), seed=9)
    empty = sc.one_hot(torch.zeros((2, 6, 6), dtype=torch.long), 2, dtype=torch.float64)
    assert torch.allclose(dist.dpce_loss(probs, empty), dist.ce_loss(probs, empty), rtol=1e-14)
    _, target, _ = _case(b=2, c=2, shape=(6, 6), seed=10)
    value = dist.dpce_loss(probs, target)
    ce = dist.ce_loss(probs, target)
    assert ce <= value <= 2 * ce


# ---------------------------------------------------------------- all own losses


_PARAMS = {"wce": {"weights": (0.5, 1.0, 2.0)}, "focal": {"gamma": 1.5, "alpha": (0.3, 1.0, 2.0)}, "topk": {"k": 30}}


@pytest.mark.parametrize("name", _params(OWN))
def test_gradcheck(name):
    gen = torch.Generator().manual_seed(11)
    # probabilities away from the EPS clamps; continuous values so topk has no ties
    probs = (torch.rand((2, 3, 3, 4), generator=gen, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    labels = torch.randint(0, 3, (2, 3, 4), generator=gen)
    labels[0, 1, 1:3] = 1
    target = sc.one_hot(labels, 3, dtype=torch.float64)
    fn = sc.get_loss(name).fn
    params = _PARAMS.get(name, {})
    for reduction in ("mean", "none"):
        assert torch.autograd.gradcheck(lambda p, r=reduction: fn(p, target, reduction=r, **params), (probs,))


@pytest.mark.parametrize("name", _params(["ce", "wce", "focal", "dpce"]))
@pytest.mark.parametrize("shape", [(6, 7), (3, 4, 5)])
def test_per_sample_reductions(name, shape):
    probs, target, _ = _case(b=3, shape=shape, seed=12)
    none = sc.compute(name, probs, target, reduction="none")
    assert none.shape == (3,) and none.dtype == torch.float64
    assert torch.allclose(none.mean(), sc.compute(name, probs, target), rtol=1e-13)
    assert torch.allclose(none.sum(), sc.compute(name, probs, target, reduction="sum"), rtol=1e-13)
    # each sample as if evaluated alone
    alone = sc.compute(name, probs[1:2], target[1:2])
    assert torch.allclose(none[1], alone, rtol=1e-13)


def _hostile_cases():
    lab = torch.zeros((1, 6, 6), dtype=torch.long)
    lab[0, 2:4, 2:4] = 1
    one_px = torch.zeros((1, 5, 6, 4), dtype=torch.long)
    one_px[0, 2, 3, 1] = 2
    soft = _case(b=1, c=3, shape=(5, 6, 4), seed=13)[0]
    return {
        "perfect_hard": (sc.one_hot(lab, 2, dtype=torch.float64), sc.one_hot(lab, 2, dtype=torch.float64)),
        "all_wrong_hard": (sc.one_hot(1 - lab, 2, dtype=torch.float64), sc.one_hot(lab, 2, dtype=torch.float64)),
        "empty_class": (_case(b=1, c=2, shape=(6, 6))[0], sc.one_hot(torch.zeros_like(lab), 2, dtype=torch.float64)),
        "single_voxel_3d": (soft, sc.one_hot(one_px, 3, dtype=torch.float64)),
        "hard_pred_single_voxel_3d": (sc.one_hot(torch.zeros_like(one_px), 3, dtype=torch.float64),
                                      sc.one_hot(one_px, 3, dtype=torch.float64)),
    }


_HOSTILE = _hostile_cases()


@pytest.mark.parametrize("case", sorted(_HOSTILE))
@pytest.mark.parametrize("name", _params(OWN))
def test_finite_on_hostile_inputs(name, case):
    probs, target = _HOSTILE[case]
    params = {"focal": {"gamma": 0.5}}.get(name, {})
    for wrt in ("probs", "logits"):
        value, grad = sc.loss_and_grad(name, probs, target, wrt=wrt, **params)
        assert np.isfinite(value) and value >= 0
        assert torch.isfinite(grad).all() and grad.dtype == torch.float64


def test_float32_stays_float32():
    probs, target, _ = _case(dtype=torch.float32)
    for name in ["ce", "wce", "topk", "focal"]:
        assert sc.compute(name, probs, target).dtype == torch.float32


def test_specs_metadata():
    names = [s.name for s in dist.SPECS]
    assert names == OWN
    for spec in dist.SPECS:
        assert spec.category == "distribution"
        assert spec.fn.__name__ == f"{spec.name}_loss"
        assert "Ma 2020" in spec.reference and spec.formula and spec.summary and spec.title
        assert "Convention" in spec.fn.__doc__ and ".. math::" in spec.fn.__doc__
        for pname, p in spec.params.items():
            assert p.help
            assert spec.resolve_params({pname: p.default})[pname] == p.default
    assert sc.get_loss("dpce").uses_spacing
    assert sc.get_loss("topk").params["k"].default == 10
    assert sc.get_loss("focal").params["gamma"].default == 2
    assert sc.get_loss("dpce").params["include_background"].default is False
