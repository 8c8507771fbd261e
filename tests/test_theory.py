"""docs/theory.md: derivations not already checked elsewhere, each against the real code (float64).

E1 (clamped log passes its gradient below EPS), A3 (largest Dice-Jaccard gap), B2/B3 with soft band
labels (linear Dice still jumps, squared Dice is calibrated, q* = pi), B4 (CE >= KL(tau || u)),
B6 (binary fg+bg Dice penalty maximal at u = 1 - tau), G11 (Dice semimetric gradient = G1 for hard
labels) and G12 (Lovász increments sum to 1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.analyses import agreement, bias
from segloss_core.core._tensors import EPS, clamped_log

SQUARED_FG = {"include_background": False, "smooth": 0.0, "squared": True}
LINEAR_FG = {"include_background": False, "smooth": 0.0, "squared": False}


def test_e1_clamped_log_gradient_below_eps():
    """E1: value log(max(p, EPS)), derivative 1/max(p, EPS) everywhere, also where p < EPS."""
    p = torch.tensor([0.0, 1e-9, 1e-7, 0.3], dtype=torch.float64, requires_grad=True)
    y = clamped_log(p)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), np.log(np.maximum(p.detach().numpy(), EPS)), rtol=1e-15)
    np.testing.assert_allclose(p.grad.numpy(), 1 / np.maximum(p.detach().numpy(), EPS), rtol=1e-15)


def test_e1_ce_probability_gradient_follows_the_clamp():
    """G6 with E1: dCE/ds_jk = -g_jk / (N max(s_jk, EPS)), non-zero below EPS."""
    p = torch.tensor([[[[1.0, 0.0, 0.5, 1e-9]]], [[[0.0, 1.0, 0.5, 1.0 - 1e-9]]]], dtype=torch.float64)
    p = p.permute(1, 0, 2, 3).contiguous().requires_grad_(True)  # (1, 2, 1, 4)
    g = torch.tensor([[[[0.0, 0.0, 1.0, 0.0]]], [[[1.0, 1.0, 0.0, 1.0]]]], dtype=torch.float64)
    g = g.permute(1, 0, 2, 3).contiguous()
    sc.compute("ce", p, g).backward()
    expected = -g / (4 * p.detach().clamp_min(EPS))
    np.testing.assert_allclose(p.grad.numpy(), expected.numpy(), rtol=1e-12)
    assert p.grad[0, 1, 0, 0] == pytest.approx(-1 / (4 * EPS))  # s = 0 on the true class: -1/(N EPS)


def test_a3_largest_gap_constant():
    j = np.linspace(0, 1, 200_001)
    gap = 2 * j / (1 + j) - j
    assert gap.min() >= 0
    assert gap.max() == pytest.approx(agreement.MAX_DICE_JACCARD_GAP, abs=1e-10)  # grid step 5e-6
    assert j[gap.argmax()] == pytest.approx(math.sqrt(2) - 1, abs=1e-5)
    assert agreement.MAX_DICE_JACCARD_GAP == pytest.approx(3 - 2 * math.sqrt(2), abs=1e-15)


def _soft_band(F: int, U: int, pi: float, bg: int, q: np.ndarray):
    """The band model with SOFT band labels (every band pixel labelled pi), one row per q."""
    n_q = len(q)
    fg = np.concatenate([np.ones(F), np.zeros(U), np.zeros(bg)])
    target_fg = np.concatenate([np.ones(F), np.full(U, pi), np.zeros(bg)])
    probs_fg = np.tile(fg, (n_q, 1))
    probs_fg[:, F:F + U] = q[:, None]
    probs = torch.tensor(np.stack([1 - probs_fg, probs_fg], 1)[:, :, None, :])
    target = torch.tensor(np.stack([1 - target_fg, target_fg])[None, :, None, :]).expand(n_q, -1, -1, -1)
    return probs, target.contiguous()


@pytest.mark.parametrize("F", [0, 300, 2000])
@pytest.mark.parametrize("pi", [0.2, 0.5, 0.7])
def test_b3_soft_labels_squared_dice_optimum_is_pi(F, pi):
    """B3, soft labels: G2 = F + pi^2 U, so the squared Dice's band optimum is q* = pi for every F."""
    q = np.linspace(0, 1, 2001)
    probs, target = _soft_band(F, 400, pi, 1000, q)
    values = sc.compute("dice", probs, target, reduction="none", **SQUARED_FG).numpy()
    assert q[values.argmin()] == pytest.approx(pi, abs=1e-3)


@pytest.mark.parametrize(("F", "pi", "expected"), [(0, 0.2, 1.0), (300, 0.2, 0.0), (2000, 0.7, 1.0)])
def test_b2_soft_labels_linear_dice_jumps(F, pi, expected):
    """B2 with soft band labels: the same sums I, S, G, so the same 0/1 rule F(2pi - 1) + pi^2 U."""
    q = np.linspace(0, 1, 201)
    probs, target = _soft_band(F, 400, pi, 1000, q)
    values = sc.compute("dice", probs, target, reduction="none", **LINEAR_FG).numpy()
    assert q[values.argmin()] == expected
    assert bias.q_star_closed_form("dice_linear", F, 400, pi) == expected


def test_b4_ce_bounds_kl_of_proportions():
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        probs = torch.softmax(3 * torch.randn(2, 4, 16, 16, generator=gen, dtype=torch.float64), 1)
        labels = torch.randint(0, 4, (2, 16, 16), generator=gen)
        target = sc.one_hot(labels, 4, dtype=torch.float64)
        d = bias.ce_decomposition(probs, target)
        assert torch.all(d["ce"] >= d["kl"] - 1e-12)
        np.testing.assert_allclose(d["ce"], d["size"] + d["matching"], atol=1e-12)
        np.testing.assert_allclose(d["size"], d["entropy"] + d["kl"], atol=1e-12)


@pytest.mark.parametrize("tau", [0.05, 0.2, 0.4])
def test_b6_binary_dice_penalty_maximum(tau):
    u = np.linspace(1e-6, 1 - 1e-6, 100_001)
    curves = bias.penalty_curves(tau, u)
    assert u[curves["dice_fgbg"].argmax()] == pytest.approx(1 - tau, abs=1e-4)
    assert curves["dice_fgbg"].argmin() == 0  # tau < 1/2: minimum at u = 0
    assert u[curves["ce_size"].argmin()] == pytest.approx(tau, abs=1e-4)


def test_g11_dice_semimetric_gradient_equals_g1():
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(500, generator=gen, dtype=torch.float64).clamp(0.01, 0.99).requires_grad_(True)
    g = (torch.rand(500, generator=gen, dtype=torch.float64) < 0.2).double()
    (torch.abs(s - g).sum() / (s.sum() + g.sum())).backward()
    sd = s.detach()
    inter, total = float((sd * g).sum()), float(sd.sum() + g.sum())
    g1 = (2 * inter - 2 * g.numpy() * total) / total**2
    np.testing.assert_allclose(s.grad.numpy(), g1, atol=1e-15)


def test_g12_lovasz_increments_sum_to_one():
    """G12: the Lovász-Softmax gradient on hard errors telescopes; per class the |gradient| sums to 1."""
    gen = torch.Generator().manual_seed(1)
    labels = (torch.rand(1, 12, 12, generator=gen) < 0.3).long()
    target = sc.one_hot(labels, 2, dtype=torch.float64)
    probs = torch.softmax(torch.randn(1, 2, 12, 12, generator=gen, dtype=torch.float64), 1).requires_grad_(True)
    sc.compute("lovasz_softmax", probs, target).backward()
    # two present classes averaged: each class's increments sum to 1, divided by K = 2
    assert float(probs.grad.abs().sum()) == pytest.approx(1.0, abs=1e-12)


def test_numbers_printed_in_docs_theory():
    """The examples docs/theory.md prints: A3's constant, A6's counter-examples, B3's sqrt(pi), B9's optimum."""
    assert round(3 - 2 * math.sqrt(2), 4) == 0.1716
    dice = lambda tp, fp, fn: 2 * tp / (2 * tp + fp + fn)  # noqa: E731
    g = 100  # 20 wrong pixels each time
    assert [round(dice(g - fn, fp, fn), 3) for fp, fn in ((20, 0), (0, 20), (10, 10))] == [0.909, 0.889, 0.9]
    assert [round(dice(gs - 10, 10, 10), 2) for gs in (20, 100, 1000)] == [0.5, 0.9, 0.99]
    assert round(bias.q_star_closed_form("dice_squared", 0, 400, 0.2), 3) == 0.447
    assert round(bias.q_star_closed_form("region_size_zero", 0, 400, 0.2, temperature=10.0), 3) == 0.465
    assert bias.q_star_closed_form("dice_linear", 0, 400, 0.2) == 1.0
    assert bias.q_star_closed_form("dice_linear", 300, 400, 0.2) == 0.0


def test_g5_binary_ce_gradients():
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(300, generator=gen, dtype=torch.float64, requires_grad=True)
    g = (torch.rand(300, generator=gen, dtype=torch.float64) < 0.3).double()
    torch.nn.functional.binary_cross_entropy_with_logits(z, g).backward()
    s = torch.sigmoid(z.detach())
    np.testing.assert_allclose(z.grad.numpy(), ((s - g) / 300).numpy(), atol=1e-15)
    s = s.clone().requires_grad_(True)
    torch.nn.functional.binary_cross_entropy(s, g).backward()
    np.testing.assert_allclose(s.grad.numpy(), ((s - g) / (300 * s * (1 - s))).detach().numpy(), rtol=1e-10)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_g8_focal_gradient_wrt_true_class_probability(gamma):
    """G8 on the registered (softmax) focal loss, alpha = 1: dL/dp_t = [γ(1-p_t)^(γ-1) log p_t - (1-p_t)^γ/p_t]/N
    on the true class's channel, 0 on the other."""
    gen = torch.Generator().manual_seed(5)
    fg = torch.rand(1, 1, 8, 8, generator=gen, dtype=torch.float64).clamp(0.05, 0.95)
    probs = torch.cat([1 - fg, fg], 1).requires_grad_(True)
    labels = (torch.rand(1, 8, 8, generator=gen) < 0.4).long()
    target = sc.one_hot(labels, 2, dtype=torch.float64)
    sc.compute("focal", probs, target, gamma=gamma).backward()
    pt = (probs.detach() * target).sum(1, keepdim=True)
    expected = (gamma * (1 - pt) ** (gamma - 1) * torch.log(pt) - (1 - pt) ** gamma / pt) / 64 * target
    np.testing.assert_allclose(probs.grad.numpy(), expected.numpy(), rtol=1e-10, atol=1e-15)
