"""Boundary and Hausdorff-DT losses vs MONAI 1.6.1, closed-form gradients (docs/theory.md, G10, C5), spacing,
edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import segloss_core as sc
from segloss_core import one_hot
from segloss_core.core.losses.boundary import boundary_loss, hausdorff_dt_loss


def monai_losses():
    return pytest.importorskip("monai.losses")


def blob_labels(shape, num_classes, seed, bg_bias=0.6):
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((num_classes, *shape)), sigma=(0, 0) + (2,) * (len(shape) - 1))
    noise[0] += bg_bias * noise.std()
    return torch.from_numpy(noise.argmax(0))


def make_pair(shape, num_classes, seed, dtype=torch.float64):
    """(probs, one-hot target): a noisy softmax around a shifted target; sample 0 lacks class C-1 (C >= 3)."""
    labels = blob_labels(shape, num_classes, seed)
    if num_classes >= 3:
        labels[0][labels[0] == num_classes - 1] = 0
    target = one_hot(labels, num_classes, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * target.roll(2, dims=-1) + torch.randn(target.shape, generator=gen, dtype=dtype)
    return torch.softmax(logits, dim=1), target


CASES = [((2, 32, 28), 3), ((2, 8, 11, 10), 3), ((3, 24, 24), 2)]


def kervadec_phi(target: np.ndarray, spacing) -> np.ndarray:
    out = np.zeros(target.shape)
    for b in range(target.shape[0]):
        for c in range(target.shape[1]):
            pos = target[b, c] > 0.5
            if pos.any() and not pos.all():
                neg = ~pos
                out[b, c] = (ndimage.distance_transform_edt(neg, sampling=spacing) * neg
                             - (ndimage.distance_transform_edt(pos, sampling=spacing) - 1) * pos)
    return out


def edt_sum(mask: np.ndarray, spacing) -> np.ndarray:
    out = np.zeros(mask.shape)
    for b in range(mask.shape[0]):
        for c in range(mask.shape[1]):
            m = mask[b, c] > 0.5
            if m.any() and not m.all():
                out[b, c] = (ndimage.distance_transform_edt(m, sampling=spacing)
                             + ndimage.distance_transform_edt(~m, sampling=spacing))
    return out


# ---------------------------------------------------------------------------------------------- MONAI


@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("shape,num_classes", CASES)
def test_boundary_equals_monai(shape, num_classes, include_background):
    probs, target = make_pair(shape, num_classes, seed=1)
    ref = monai_losses().BoundaryLoss(include_background=include_background)(probs, target)
    ours = boundary_loss(probs, target, include_background=include_background)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-9)
    ref_none = monai_losses().BoundaryLoss(include_background=include_background, reduction="none")(probs, target)
    ours_none = boundary_loss(probs, target, include_background=include_background, reduction="none")
    assert ours_none.shape == (shape[0],)
    torch.testing.assert_close(ours_none, ref_none.mean(1), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("alpha", [2.0, 1.0])
@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("shape,num_classes", CASES)
def test_hausdorff_dt_equals_monai(shape, num_classes, include_background, alpha):
    probs, target = make_pair(shape, num_classes, seed=2)
    loss = monai_losses().HausdorffDTLoss(alpha=alpha, include_background=include_background, softmax=False)
    ours = hausdorff_dt_loss(probs, target, alpha=alpha, include_background=include_background)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, loss(probs, target), rtol=1e-6, atol=1e-9)
    ref_none = monai_losses().HausdorffDTLoss(alpha=alpha, include_background=include_background,
                                            reduction="none")(probs, target)
    ours_none = hausdorff_dt_loss(probs, target, alpha=alpha, include_background=include_background,
                                  reduction="none")
    torch.testing.assert_close(ours_none, ref_none.flatten(1).mean(1), rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------------- theory


@pytest.mark.parametrize("shape,num_classes", CASES)
def test_boundary_gradient_is_the_distance_map(shape, num_classes):
    """G10 / C5: dL/ds = phi_G / N with N = samples x selected classes x pixels (reduction mean)."""
    probs, target = make_pair(shape, num_classes, seed=3)
    leaf = probs.clone().requires_grad_(True)
    boundary_loss(leaf, target).backward()
    phi = torch.from_numpy(kervadec_phi(target.numpy(), (1.0,) * (len(shape) - 1)))
    n = shape[0] * (num_classes - 1) * int(np.prod(shape[1:]))
    expected = phi / n
    expected[:, 0] = 0
    torch.testing.assert_close(leaf.grad, expected, rtol=1e-12, atol=1e-15)


def test_boundary_is_minimised_by_the_interior_and_can_be_negative():
    """C5: s = 1 where phi < 0 minimises the loss; it equals the perfect prediction's value, <= 0."""
    _, target = make_pair((2, 30, 30), 2, seed=4)
    phi = torch.from_numpy(kervadec_phi(target.numpy(), (1.0, 1.0)))
    interior = (phi[:, 1] < 0).double()
    best = boundary_loss(torch.stack([1 - interior, interior], 1), target)
    perfect = boundary_loss(target, target)
    torch.testing.assert_close(best, perfect)
    assert float(perfect) < 0
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        p1 = torch.rand(target[:, 1].shape, generator=gen, dtype=torch.float64)
        assert float(boundary_loss(torch.stack([1 - p1, p1], 1), target)) >= float(best)


def test_hausdorff_dt_gradient_closed_form():
    probs, target = make_pair((2, 20, 22), 3, seed=5)
    leaf = probs.clone().requires_grad_(True)
    hausdorff_dt_loss(leaf, target).backward()
    weight = torch.from_numpy(edt_sum(target.numpy(), (1, 1)) ** 2 + edt_sum(probs.numpy(), (1, 1)) ** 2)
    expected = 2 * (probs - target) * weight / (2 * 2 * 20 * 22)
    expected[:, 0] = 0
    torch.testing.assert_close(leaf.grad, expected, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------------------------- spacing


@pytest.mark.parametrize("shape,spacing", [((2, 26, 30), (2.0, 0.6)), ((2, 7, 12, 10), (3.0, 0.8, 0.8))])
def test_losses_with_spacing_match_scipy_sampling(shape, spacing):
    probs, target = make_pair(shape, 3, seed=6)
    pixels = int(np.prod(shape[1:]))
    phi = kervadec_phi(target.numpy(), spacing)[:, 1:]
    ref_bd = (probs[:, 1:].numpy() * phi).sum(axis=tuple(range(2, len(shape) + 1))) / pixels
    ours_bd = boundary_loss(probs, target, spacing=spacing, reduction="none")
    torch.testing.assert_close(ours_bd, torch.from_numpy(ref_bd.mean(1)), rtol=1e-12, atol=1e-14)
    weight = edt_sum(target.numpy(), spacing) ** 2 + edt_sum(probs.numpy(), spacing) ** 2
    err = ((probs - target).numpy() ** 2 * weight)[:, 1:]
    ref_hd = err.reshape(shape[0], 2, -1).mean(-1).mean(-1)
    ours_hd = hausdorff_dt_loss(probs, target, spacing=spacing, reduction="none")
    torch.testing.assert_close(ours_hd, torch.from_numpy(ref_hd), rtol=1e-12, atol=1e-14)
    # anisotropy matters
    assert not torch.allclose(ours_hd, hausdorff_dt_loss(probs, target, reduction="none"))


# ---------------------------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("fn", [boundary_loss, hausdorff_dt_loss])
def test_reductions_and_per_sample_values(fn):
    probs, target = make_pair((3, 18, 16), 3, seed=7)
    per = fn(probs, target, reduction="none")
    torch.testing.assert_close(fn(probs, target), per.mean())
    torch.testing.assert_close(fn(probs, target, reduction="sum"), per.sum())
    for b in range(3):
        torch.testing.assert_close(per[b], fn(probs[b:b + 1], target[b:b + 1]))


# ---------------------------------------------------------------------------------------------- edge cases


def edge_targets(spatial):
    empty = torch.zeros((1, *spatial), dtype=torch.long)
    full = torch.ones((1, *spatial), dtype=torch.long)
    single = empty.clone()
    single[(0,) + tuple(s // 2 for s in spatial)] = 1
    return {"empty": empty, "full": full, "single": single}


@pytest.mark.parametrize("spatial", [(9, 10), (5, 6, 7)])
@pytest.mark.parametrize("name", ["boundary", "hausdorff_dt"])
def test_finite_for_empty_full_single_and_hard_inputs(name, spatial):
    for kind, labels in edge_targets(spatial).items():
        target = one_hot(labels, 2, dtype=torch.float64)
        for pred in (target, 1 - target, torch.full_like(target, 0.5)):
            for wrt in ("probs", "logits"):
                value, grad = sc.loss_and_grad(name, pred, target, wrt=wrt, spacing=(2.0,) + (1.0,) * (len(spatial) - 1))
                assert np.isfinite(value), (kind, wrt)
                assert torch.isfinite(grad).all(), (kind, wrt)
        if name == "hausdorff_dt":
            assert sc.compute(name, target, target) == 0
    # the perfect prediction of an empty or full foreground scores exactly 0 for both losses
    for kind in ("empty", "full"):
        target = one_hot(edge_targets(spatial)[kind], 2, dtype=torch.float64)
        assert sc.compute(name, target, target) == 0


@pytest.mark.parametrize("fn", [boundary_loss, hausdorff_dt_loss])
@pytest.mark.parametrize("shape,spacing", [((1, 3, 6, 7), None), ((1, 2, 4, 5, 5), (2.0, 1.0, 0.5))])
def test_gradcheck(fn, shape, spacing):
    gen = torch.Generator().manual_seed(11)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
    target = one_hot(labels, shape[1], dtype=torch.float64)
    probs = torch.rand(shape, generator=gen, dtype=torch.float64)
    # keep every probability away from the 0.5 threshold of d_S so finite differences do not cross it
    probs = torch.where(probs < 0.5, probs * 0.9, 0.1 + probs * 0.9)
    probs.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: fn(p, target, spacing=spacing), (probs,))


# ---------------------------------------------------------------------------------------------- registry


def test_registry_entries():
    for name in ("boundary", "hausdorff_dt"):
        spec = sc.get_loss(name)
        assert spec.category == "boundary" and spec.uses_spacing
        assert spec.defaults["include_background"] is False
    assert sc.get_loss("hausdorff_dt").defaults["alpha"] == 2.0
    probs, target = make_pair((2, 14, 12), 3, seed=8)
    torch.testing.assert_close(sc.compute("hausdorff_dt", probs, target, spacing=(2, 1), alpha=1.0),
                               hausdorff_dt_loss(probs, target, spacing=(2, 1), alpha=1.0))
    torch.testing.assert_close(sc.compute("boundary", probs, target, include_background=True),
                               boundary_loss(probs, target, include_background=True))


def test_float32_stays_float32_and_matches_float64():
    probs, target = make_pair((2, 20, 20), 3, seed=9)
    for fn in (boundary_loss, hausdorff_dt_loss):
        value32 = fn(probs.float(), target.float())
        assert value32.dtype == torch.float32
        torch.testing.assert_close(value32.double(), fn(probs, target), rtol=1e-5, atol=1e-6)
