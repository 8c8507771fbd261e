"""Compound losses (combo, exp_log, dice_ce, region_size) against independent references: numpy closed
forms, MONAI's DiceCELoss, Liu et al.'s region-term gradient (docs/theory.md, G9) and the band
optimum (B9), plus gradcheck, reductions and finiteness on hostile inputs."""

import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.core._tensors import EPS
from segloss_core.core.losses import compound as comp
from segloss_core.core.losses import distribution as dist
from segloss_core.core.losses import region

OWN = ["combo", "exp_log", "dice_ce", "region_size"]


def _case(b=2, c=3, shape=(6, 7), seed=0, dtype=torch.float64, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn((b, c, *shape), generator=gen, dtype=dtype) * scale, 1)
    labels = torch.randint(0, c, (b, *shape), generator=gen)
    return probs, sc.one_hot(labels, c, dtype=dtype)


def _np(t):
    return t.detach().numpy().reshape(t.shape[0], t.shape[1], -1)  # (B, C, N)


def _log(x):
    return np.log(np.maximum(x, EPS))


# ---------------------------------------------------------------- combo


def _combo_ref(probs, target, alpha, beta, smooth):
    p, g = _np(probs)[:, 1:], _np(target)[:, 1:]
    wbce = -(beta * g * _log(p) + (1 - beta) * (1 - g) * _log(1 - p)).mean(2)
    dice = (2 * (p * g).sum(2) + smooth) / (p.sum(2) + g.sum(2) + smooth)
    return (alpha * wbce + (1 - alpha) * (1 - dice)).mean(1)


@pytest.mark.parametrize("c,shape", [(2, (6, 7)), (3, (3, 4, 5))])
@pytest.mark.parametrize("alpha,beta,smooth", [(0.5, 0.5, 1e-5), (0.3, 0.8, 1.0), (1.0, 0.2, 0.0)])
def test_combo_closed_form(c, shape, alpha, beta, smooth):
    probs, target = _case(c=c, shape=shape, seed=1)
    ref = _combo_ref(probs, target, alpha, beta, smooth)
    ours = comp.combo_loss(probs, target, reduction="none", alpha=alpha, beta=beta, smooth=smooth)
    assert ours.shape == (2,) and np.allclose(ours.numpy(), ref, rtol=1e-12, atol=0)
    via_registry = sc.compute("combo", probs, target, alpha=alpha, beta=beta, smooth=smooth)
    assert np.isclose(float(via_registry), ref.mean(), rtol=1e-12)


def test_combo_nonnegative_zero_at_perfect_and_printed_gradient():
    lab = torch.zeros((1, 6, 6), dtype=torch.long)
    lab[0, 1:4, 2:5] = 1
    perfect = sc.one_hot(lab, 2, dtype=torch.float64)
    assert float(comp.combo_loss(perfect, perfect)) == 0.0
    probs, target = _case(c=2, seed=2)
    probs.requires_grad_(True)
    ours = comp.combo_loss(probs, target, alpha=0.4, beta=0.7)
    assert ours >= 0
    # the printed form alpha*WBCE - (1-alpha)*Dice differs by the constant 1 - alpha
    p, g = probs[:, 1], target[:, 1]
    wbce = -(0.7 * g * torch.log(p) + 0.3 * (1 - g) * torch.log(1 - p)).flatten(1).mean(1)
    dice = (2 * (p * g).flatten(1).sum(1) + 1e-5) / (p.flatten(1).sum(1) + g.flatten(1).sum(1) + 1e-5)
    printed = (0.4 * wbce - 0.6 * dice).mean()
    assert torch.allclose(ours - printed, torch.tensor(0.6, dtype=torch.float64), rtol=1e-12)
    (g_ours,) = torch.autograd.grad(ours, probs)
    (g_printed,) = torch.autograd.grad(printed, probs)
    assert torch.allclose(g_ours, g_printed, rtol=1e-12, atol=1e-18)


# ---------------------------------------------------------------- exp_log


def _exp_log_ref(probs, target, w_dice, w_ce, gamma, smooth, class_weights):
    p, g = _np(probs), _np(target)
    dice = (2 * (p * g).sum(2) + smooth) / (p.sum(2) + g.sum(2) + smooth)
    dice_part = (np.maximum(-_log(dice[:, 1:]), EPS) ** gamma).mean(1)
    w = np.ones(p.shape[1]) if class_weights is None else np.asarray(class_weights)
    ce_part = (w[None, :, None] * g * np.maximum(-_log(p), EPS) ** gamma).sum(1).mean(1)
    return w_dice * dice_part + w_ce * ce_part


@pytest.mark.parametrize("c,shape", [(2, (6, 7)), (3, (3, 4, 5))])
@pytest.mark.parametrize("w_dice,w_ce,gamma,smooth,weighted", [
    (0.8, 0.2, 0.3, 1e-5, False), (0.5, 0.5, 1.0, 1.0, True), (0.3, 0.9, 2.0, 0.0, True)])
def test_exp_log_closed_form(c, shape, w_dice, w_ce, gamma, smooth, weighted):
    probs, target = _case(c=c, shape=shape, seed=3)
    cw = [0.5 + i for i in range(c)] if weighted else None
    ref = _exp_log_ref(probs, target, w_dice, w_ce, gamma, smooth, cw)
    ours = comp.exp_log_loss(probs, target, reduction="none", w_dice=w_dice, w_ce=w_ce, gamma=gamma,
                             smooth=smooth, class_weights=cw)
    assert ours.shape == (2,) and np.allclose(ours.numpy(), ref, rtol=1e-12, atol=0)
    via_registry = sc.compute("exp_log", probs, target, w_dice=w_dice, w_ce=w_ce, gamma=gamma, smooth=smooth,
                              class_weights=cw)
    assert np.isclose(float(via_registry), ref.mean(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(6, 6), (3, 4, 4)])
def test_exp_log_finite_at_perfect_prediction(shape):
    lab = torch.zeros((2, *shape), dtype=torch.long)
    lab[(0, *[slice(1, 3)] * len(shape))] = 1
    lab[(1, *[slice(0, 1)] * len(shape))] = 2  # single-pixel object; class 1 empty in sample 1
    perfect = sc.one_hot(lab, 3, dtype=torch.float64)
    value = comp.exp_log_loss(perfect, perfect)
    assert np.isclose(float(value), (0.8 + 0.2) * EPS**0.3, rtol=1e-10)  # documented floor
    for wrt in ("probs", "logits"):
        val, grad = sc.loss_and_grad("exp_log", perfect, perfect, wrt=wrt)
        assert np.isfinite(val) and torch.isfinite(grad).all()
    with pytest.raises(ValueError, match="class_weights"):
        comp.exp_log_loss(perfect, perfect, class_weights=[1.0, 2.0])


# ---------------------------------------------------------------- dice_ce


@pytest.mark.parametrize("shape", [(6, 7), (3, 4, 5)])
@pytest.mark.parametrize("settings", [
    {},
    {"lambda_dice": 0.7, "lambda_ce": 1.6, "include_background": False},
    {"batch": True, "smooth": 1.0},
    {"squared": True, "smooth": 0.5, "include_background": False},
])
def test_dice_ce_equals_monai(shape, settings):
    monai_losses = pytest.importorskip("monai.losses")
    probs, target = _case(c=3, shape=shape, seed=4)
    s = {"lambda_dice": 1.0, "lambda_ce": 1.0, "smooth": 1e-5, "include_background": True, "batch": False,
         "squared": False, **settings}
    ref = monai_losses.DiceCELoss(
        softmax=True, to_onehot_y=False, include_background=s["include_background"], batch=s["batch"],
        squared_pred=s["squared"], smooth_nr=s["smooth"], smooth_dr=s["smooth"],
        lambda_dice=s["lambda_dice"], lambda_ce=s["lambda_ce"],
    )(torch.log(probs), target)
    ours = sc.compute("dice_ce", probs, target, **settings)
    assert ours.dtype == torch.float64
    assert np.isclose(float(ours), float(ref), rtol=1e-6, atol=0)


def test_dice_ce_is_weighted_sum_per_sample():
    probs, target = _case(b=3, seed=5)
    none = comp.dice_ce_loss(probs, target, reduction="none", lambda_dice=0.5, lambda_ce=2.0, batch=True)
    ref = 0.5 * region.dice_loss(probs, target, reduction="none") + 2.0 * dist.ce_loss(probs, target,
                                                                                          reduction="none")
    assert none.shape == (3,) and torch.allclose(none, ref, rtol=1e-13)


# ---------------------------------------------------------------- region_size


def _region_size_ref(probs, target, alpha, temperature, penalty, tau=None):
    p, g = _np(probs), _np(target)
    ce = -(g * _log(p)).sum(1).mean(1)
    logits = temperature * _log(p)
    e = np.exp(logits - logits.max(1, keepdims=True))
    tau_hat = (e / e.sum(1, keepdims=True)).mean(2)
    tau = g.mean(2) if tau is None else np.broadcast_to(np.asarray(tau, dtype=float), tau_hat.shape)
    if penalty == "l1":
        reg = np.abs(tau_hat - tau).mean(1)
    else:
        reg = (tau * (_log(tau) - _log(tau_hat))).sum(1)
    return ce + alpha * reg


@pytest.mark.parametrize("penalty", ["l1", "kl"])
@pytest.mark.parametrize("alpha,temperature", [(1.0, 1.0), (0.3, 10.0), (5.0, 0.5)])
@pytest.mark.parametrize("c,shape", [(2, (6, 7)), (3, (3, 4, 5))])
def test_region_size_closed_form(penalty, alpha, temperature, c, shape):
    probs, target = _case(c=c, shape=shape, seed=6)
    ref = _region_size_ref(probs, target, alpha, temperature, penalty)
    ours = comp.region_size_loss(probs, target, reduction="none", alpha=alpha, temperature=temperature,
                                 penalty=penalty)
    assert ours.shape == (2,) and np.allclose(ours.numpy(), ref, rtol=1e-12, atol=0)
    assert np.isclose(float(sc.compute("region_size", probs, target, alpha=alpha, temperature=temperature,
                                       penalty=penalty)), ref.mean(), rtol=1e-12)


def test_region_size_target_proportion():
    probs, target = _case(c=2, seed=7)
    ours = comp.region_size_loss(probs, target, reduction="none", target_proportion=[0.1])
    assert np.allclose(ours.numpy(), _region_size_ref(probs, target, 1.0, 1.0, "l1", tau=[0.9, 0.1]), rtol=1e-12)
    ours = comp.region_size_loss(probs, target, reduction="none", penalty="kl", target_proportion=[0.3, 0.7])
    assert np.allclose(ours.numpy(), _region_size_ref(probs, target, 1.0, 1.0, "kl", tau=[0.3, 0.7]), rtol=1e-12)
    probs3, target3 = _case(c=3, seed=7)
    ours = comp.region_size_loss(probs3, target3, target_proportion=(0.5, 0.25, 0.25))
    ref = _region_size_ref(probs3, target3, 1.0, 1.0, "l1", tau=[0.5, 0.25, 0.25]).mean()
    assert np.isclose(float(ours), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="binary"):
        comp.region_size_loss(probs3, target3, target_proportion=[0.2])
    with pytest.raises(ValueError, match="sum to 1"):
        comp.region_size_loss(probs3, target3, target_proportion=[0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="C=3"):
        sc.compute("region_size", probs3, target3, target_proportion=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        comp.region_size_loss(probs, target, target_proportion=[1.5])
    with pytest.raises(ValueError, match="penalty"):
        sc.compute("region_size", probs, target, penalty="l2")


def test_region_size_alpha_zero_is_ce():
    probs, target = _case(c=3, shape=(3, 4, 5), seed=8)
    for penalty in ("l1", "kl"):
        assert torch.allclose(comp.region_size_loss(probs, target, alpha=0.0, penalty=penalty, temperature=10.0),
                              dist.ce_loss(probs, target), rtol=1e-14)


@pytest.mark.parametrize("penalty", ["l1", "kl"])
@pytest.mark.parametrize("temperature", [1.0, 10.0])
def test_region_size_gradient_matches_g9(penalty, temperature):
    """G9 (binary, as in Liu et al.'s code): dR/dz_j = k * (T/N) * sigma(T zeta_j)(1 - sigma(T zeta_j)),
    zeta = z1 - z0 the binary logit, k = sign(u - tau) (L1) or (u - tau)/(u(1 - u)) (KL); per-sample
    means then the batch mean add 1/B. The penalty gradient is the region_size gradient minus CE's."""
    gen = torch.Generator().manual_seed(9)
    b, shape = 2, (5, 6)
    zeta = torch.randn((b, *shape), generator=gen, dtype=torch.float64) * 0.4  # sigma(T zeta) not saturated
    p1 = torch.sigmoid(zeta)
    probs = torch.stack([1 - p1, p1], 1)
    labels = (torch.rand((b, *shape), generator=gen) < 0.3).long()
    target = sc.one_hot(labels, 2, dtype=torch.float64)
    alpha = 2.5
    _, g_total = sc.loss_and_grad("region_size", probs, target, wrt="logits", alpha=alpha,
                                  temperature=temperature, penalty=penalty)
    _, g_ce = sc.loss_and_grad("ce", probs, target, wrt="logits")
    g_region = (g_total - g_ce) / alpha

    n = p1[0].numel()
    sig = torch.sigmoid(temperature * zeta)
    u = sig.flatten(1).mean(1).view(b, 1, 1)
    tau = target[:, 1].flatten(1).mean(1).view(b, 1, 1)
    k = torch.sign(u - tau) if penalty == "l1" else (u - tau) / (u * (1 - u))
    closed = k * (temperature / n) * sig * (1 - sig) / b
    assert torch.allclose(g_region[:, 1], closed, rtol=1e-8, atol=1e-15)
    assert torch.allclose(g_region[:, 0], -closed, rtol=1e-8, atol=1e-15)
    # B10: the push has the same sign at every pixel of a sample
    assert all(((g_region[i, 1] > 0).all() or (g_region[i, 1] < 0).all()) for i in range(b))


def _band_batch(q_grid, n_certain_fg=20, band=50, pi=0.2, shape=(4, 64)):
    """docs/theory.md, B9: F certain foreground pixels (p = 1), a band of U pixels of which a fraction
    pi is foreground, all predicted q, the rest certain background (p = 0); one sample per q."""
    n = shape[0] * shape[1]
    fg = np.zeros(n)
    fg[:n_certain_fg] = 1
    fg[n_certain_fg:n_certain_fg + int(round(pi * band))] = 1
    p1 = np.zeros((len(q_grid), n))
    p1[:, :n_certain_fg] = 1
    p1[:, n_certain_fg:n_certain_fg + band] = np.asarray(q_grid)[:, None]
    p1 = torch.from_numpy(p1).view(len(q_grid), *shape)
    labels = torch.from_numpy(fg).long().view(1, *shape).expand(len(q_grid), *shape)
    return torch.stack([1 - p1, p1], 1), sc.one_hot(labels, 2, dtype=torch.float64)


@pytest.mark.parametrize("alpha,temperature,penalty,expected", [
    (1.0, 1.0, "l1", 0.2), (10.0, 1.0, "l1", 0.2), (1.0, 1.0, "kl", 0.2),  # T = 1: q* = pi for every alpha
    (0.1, 10.0, "l1", 0.2),                                                 # T = 10, small alpha: still pi
    (1.0, 10.0, "l1", 0.4654),  # T = 10, alpha >= 1: q_T = sigmoid(logit(pi) / T)
])
def test_region_size_band_optimum_b9(alpha, temperature, penalty, expected):
    q_grid = np.round(np.arange(0.01, 0.9901, 0.001), 6)
    probs, target = _band_batch(q_grid)
    values = comp.region_size_loss(probs, target, reduction="none", alpha=alpha, temperature=temperature,
                                   penalty=penalty)
    assert abs(q_grid[int(values.argmin())] - expected) <= 0.0006  # grid step 0.001
    q_t = 1 / (1 + np.exp(-np.log(0.2 / 0.8) / 10))
    assert np.isclose(q_t, 0.4654, atol=5e-5)


# ---------------------------------------------------------------- all own losses


_PARAMS = {
    "combo": {"alpha": 0.3, "beta": 0.7},
    "exp_log": {"class_weights": (0.5, 1.0, 2.0)},
    "dice_ce": {"lambda_dice": 0.7, "include_background": False},
    "region_size": {"temperature": 3.0},
}


@pytest.mark.parametrize("name,extra", [(n, {}) for n in OWN] + [
    ("region_size", {"penalty": "kl"}), ("dice_ce", {"batch": True, "squared": True})])
def test_gradcheck(name, extra):
    gen = torch.Generator().manual_seed(10)
    probs = (torch.rand((2, 3, 3, 4), generator=gen, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    labels = torch.randint(0, 3, (2, 3, 4), generator=gen)
    target = sc.one_hot(labels, 3, dtype=torch.float64)
    fn = sc.get_loss(name).fn
    params = {**_PARAMS[name], **extra}
    for reduction in ("mean", "none"):
        assert torch.autograd.gradcheck(lambda p, r=reduction: fn(p, target, reduction=r, **params), (probs,))


@pytest.mark.parametrize("name", OWN)
@pytest.mark.parametrize("shape", [(6, 7), (3, 4, 5)])
def test_per_sample_reductions(name, shape):
    probs, target = _case(b=3, shape=shape, seed=11)
    none = sc.compute(name, probs, target, reduction="none")
    assert none.shape == (3,) and none.dtype == torch.float64
    assert torch.allclose(none.mean(), sc.compute(name, probs, target), rtol=1e-13)
    assert torch.allclose(none.sum(), sc.compute(name, probs, target, reduction="sum"), rtol=1e-13)
    assert torch.allclose(none[2], sc.compute(name, probs[2:], target[2:]), rtol=1e-13)


def _hostile_cases():
    lab = torch.zeros((1, 6, 6), dtype=torch.long)
    lab[0, 2:4, 2:4] = 1
    one_px = torch.zeros((1, 5, 6, 4), dtype=torch.long)
    one_px[0, 2, 3, 1] = 2
    soft = _case(b=1, c=3, shape=(5, 6, 4), seed=12)[0]
    hard = sc.one_hot(lab, 2, dtype=torch.float64)
    return {
        "perfect_hard": (hard, hard),
        "all_wrong_hard": (sc.one_hot(1 - lab, 2, dtype=torch.float64), hard),
        "empty_class": (_case(b=1, c=2, shape=(6, 6))[0], sc.one_hot(torch.zeros_like(lab), 2, dtype=torch.float64)),
        "empty_both_hard": (sc.one_hot(torch.zeros_like(lab), 2, dtype=torch.float64),) * 2,
        "single_voxel_3d": (soft, sc.one_hot(one_px, 3, dtype=torch.float64)),
        "hard_pred_single_voxel_3d": (sc.one_hot(torch.zeros_like(one_px), 3, dtype=torch.float64),
                                      sc.one_hot(one_px, 3, dtype=torch.float64)),
    }


_HOSTILE = _hostile_cases()


@pytest.mark.parametrize("case", sorted(_HOSTILE))
@pytest.mark.parametrize("name,params", [(n, {}) for n in OWN] + [
    ("region_size", {"penalty": "kl", "temperature": 10.0}), ("exp_log", {"gamma": 0.1})])
def test_finite_on_hostile_inputs(name, params, case):
    probs, target = _HOSTILE[case]
    for wrt in ("probs", "logits"):
        value, grad = sc.loss_and_grad(name, probs, target, wrt=wrt, **params)
        assert np.isfinite(value) and value >= 0
        assert torch.isfinite(grad).all() and grad.dtype == torch.float64


def test_specs_metadata():
    assert set(OWN) <= {s.name for s in comp.SPECS}
    for spec in comp.SPECS:
        assert spec.category == "compound"
        assert spec.fn.__name__ == f"{spec.name}_loss"
        assert spec.reference and spec.formula and spec.summary and spec.title
        if spec.name in OWN:  # the taxonomy's compound losses cite it
            assert "Ma 2020" in spec.reference
        assert "Convention" in spec.fn.__doc__ and ".. math::" in spec.fn.__doc__
        for pname, p in spec.params.items():
            assert p.help
            assert spec.resolve_params({pname: p.default})[pname] == p.default
    defaults = {s.name: s.defaults for s in comp.SPECS}
    assert defaults["combo"] == {"alpha": 0.5, "beta": 0.5, "smooth": 1e-5}
    assert {k: defaults["exp_log"][k] for k in ("w_dice", "w_ce", "gamma")} == {"w_dice": 0.8, "w_ce": 0.2,
                                                                                 "gamma": 0.3}
    assert {k: defaults["dice_ce"][k] for k in ("lambda_dice", "lambda_ce")} == {"lambda_dice": 1, "lambda_ce": 1}
    assert {k: defaults["region_size"][k] for k in ("alpha", "temperature", "penalty")} == {
        "alpha": 1, "temperature": 1, "penalty": "l1"}
