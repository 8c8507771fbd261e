"""Region losses (segloss_core.core.losses.region) against independent references: MONAI, kornia, closed-form
gradients (docs/theory.md, G1-G4, G7), exact identities (C2, C3, A4) and a loop implementation of
Berman's Lovász algorithm written from its set-function definition. Float64 throughout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.core._tensors import EPS
from segloss_core.core.losses import region as R
from segloss_core.core.stats import soft_confusion

monai_losses = pytest.importorskip("monai.losses")
kornia_losses = pytest.importorskip("kornia.losses")

RTOL = 1e-6
F64 = torch.float64


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


def _case(b=2, c=3, shape=(6, 7), seed=0, absent=(), scale=2.0):
    """Random softmax probabilities and a one-hot target; classes in ``absent`` never appear."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn((b, c, *shape), generator=g, dtype=F64) * scale, 1)
    allowed = torch.tensor([k for k in range(c) if k not in absent])
    labels = allowed[torch.randint(0, len(allowed), (b, *shape), generator=g)]
    return probs, sc.one_hot(labels, c, dtype=F64)


def _soft_target(b=2, c=3, shape=(6, 7), seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn((b, c, *shape), generator=g, dtype=F64), 1)


def _labels_to_onehot(lab, c):
    return sc.one_hot(torch.as_tensor(lab), c, dtype=F64)


def _close(actual, expected, rtol=RTOL, atol=0.0):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64),
                               rtol=rtol, atol=atol)


def _rel_err(actual, expected):
    a = torch.as_tensor(actual, dtype=F64)
    e = torch.as_tensor(expected, dtype=F64)
    return float(((a - e).abs() / e.abs().clamp_min(1e-300)).max())


# ----------------------------------------------------------------------------------------------
# MONAI references
# ----------------------------------------------------------------------------------------------

SHAPES = [(6, 7), (3, 4, 5)]


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("jaccard,squared,batch,include_background,soft_label",
                         list(itertools.product([False, True], repeat=5)))
def test_dice_iou_match_monai(shape, jaccard, squared, batch, include_background, soft_label):
    probs, onehot = _case(shape=shape, seed=3)
    target = _soft_target(shape=shape) if soft_label else onehot
    smooth = 1e-5
    ref = monai_losses.DiceLoss(softmax=False, jaccard=jaccard, squared_pred=squared, batch=batch,
                                include_background=include_background, soft_label=soft_label,
                                smooth_nr=smooth, smooth_dr=smooth)(probs, target)
    fn = R.iou_loss if jaccard else R.dice_loss
    kw = dict(smooth=smooth, squared=squared, batch=batch, include_background=include_background,
              soft_label=soft_label)
    _close(fn(probs, target, **kw), ref)
    # reduction="none": every sample's own (unpooled) value, whatever ``batch`` says
    ref_none = monai_losses.DiceLoss(softmax=False, jaccard=jaccard, squared_pred=squared, batch=False,
                                     include_background=include_background, soft_label=soft_label,
                                     smooth_nr=smooth, smooth_dr=smooth, reduction="none")(probs, target)
    _close(fn(probs, target, reduction="none", **kw), ref_none.flatten(1).mean(1))


@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_dice_other_smoothing_matches_monai(smooth):
    probs, target = _case(seed=5)
    ref = monai_losses.DiceLoss(smooth_nr=smooth, smooth_dr=smooth)(probs, target)
    _close(R.dice_loss(probs, target, smooth=smooth), ref)
    ref = monai_losses.DiceLoss(smooth_nr=smooth, smooth_dr=smooth, jaccard=True)(probs, target)
    _close(R.iou_loss(probs, target, smooth=smooth), ref)


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.5, 0.5), (0.9, 0.2)])
@pytest.mark.parametrize("batch,include_background,soft_label",
                         list(itertools.product([False, True], repeat=3)))
def test_tversky_matches_monai(shape, alpha, beta, batch, include_background, soft_label):
    probs, onehot = _case(shape=shape, seed=4)
    target = _soft_target(shape=shape) if soft_label else onehot
    ref = monai_losses.TverskyLoss(alpha=alpha, beta=beta, batch=batch, include_background=include_background,
                                   soft_label=soft_label, smooth_nr=1e-5, smooth_dr=1e-5)(probs, target)
    _close(R.tversky_loss(probs, target, alpha=alpha, beta=beta, batch=batch,
                          include_background=include_background, soft_label=soft_label), ref)


def _monai_gdl(probs, target, **kw):
    return monai_losses.GeneralizedDiceLoss(w_type="square", smooth_nr=1e-5, smooth_dr=1e-5, **kw)(probs, target)


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("batch,include_background", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("absent", [(), (2,)], ids=["all_present", "class2_empty"])
def test_generalized_dice_matches_monai(shape, batch, include_background, absent):
    probs, target = _case(c=4, shape=shape, seed=6, absent=absent)
    ref = _monai_gdl(probs, target, batch=batch, include_background=include_background)
    _close(R.generalized_dice_loss(probs, target, batch=batch, include_background=include_background), ref)
    ref_none = _monai_gdl(probs, target, include_background=include_background, reduction="none")
    _close(R.generalized_dice_loss(probs, target, batch=batch, include_background=include_background,
                                   reduction="none"), ref_none.flatten())


def test_generalized_dice_batch_weight_is_batch_max():
    """A class empty in sample 0 but present in sample 1: pooled weights come from the batch sums."""
    probs, target = _case(b=2, c=3, seed=7)
    lab = target.argmax(1)
    lab[0][lab[0] == 2] = 1
    target = _labels_to_onehot(lab, 3)
    for batch in (False, True):
        _close(R.generalized_dice_loss(probs, target, batch=batch), _monai_gdl(probs, target, batch=batch))


def test_generalized_dice_soft_label_matches_monai():
    probs, _ = _case(seed=8)
    target = _soft_target(seed=9)
    _close(R.generalized_dice_loss(probs, target, soft_label=True), _monai_gdl(probs, target, soft_label=True))


# ----------------------------------------------------------------------------------------------
# exact identities (docs/theory.md, C2, C3)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch,include_background", list(itertools.product([False, True], repeat=2)))
def test_identities(batch, include_background):
    probs, target = _case(c=4, seed=10, absent=(3,))
    kw = dict(batch=batch, include_background=include_background)
    s = 1e-3  # Tversky's (TP + s) pairs with Dice's (2TP + 2s)
    _close(R.tversky_loss(probs, target, alpha=0.5, beta=0.5, smooth=s, **kw),
           R.dice_loss(probs, target, smooth=2 * s, **kw))
    _close(R.tversky_loss(probs, target, alpha=1.0, beta=1.0, smooth=s, **kw),
           R.iou_loss(probs, target, smooth=2 * s, **kw))
    for b in (0.5, 1.5, 3.0):
        _close(R.asymmetric_loss(probs, target, beta=b, **kw),
               R.tversky_loss(probs, target, alpha=1 / (1 + b * b), beta=b * b / (1 + b * b), **kw))
    _close(R.focal_tversky_loss(probs, target, gamma=1.0, alpha=0.2, beta=0.8, **kw),
           R.tversky_loss(probs, target, alpha=0.2, beta=0.8, **kw))
    _close(R.penalty_gdl_loss(probs, target, k=0.0, **kw), R.generalized_dice_loss(probs, target, **kw))


def test_gdl_single_foreground_class_is_dice():
    probs, target = _case(c=2, seed=11)
    for batch in (False, True):
        _close(R.generalized_dice_loss(probs, target, include_background=False, smooth=0.0, batch=batch),
               R.dice_loss(probs, target, include_background=False, smooth=0.0, batch=batch))


def test_focal_tversky_is_per_class_power_of_monai_tversky():
    probs, target = _case(c=3, seed=12)
    per_class = monai_losses.TverskyLoss(alpha=0.3, beta=0.7, reduction="none")(probs, target)  # (B, C)
    for gamma in (4 / 3, 2.0, 0.75):
        expected = (per_class.reshape(2, 3) ** (1 / gamma)).mean()
        _close(R.focal_tversky_loss(probs, target, gamma=gamma), expected)


def test_penalty_gdl_formula_on_monai_gdl():
    probs, target = _case(c=3, seed=13)
    gdl = _monai_gdl(probs, target, reduction="none").flatten()
    for k in (0.5, 2.5, 10.0):
        _close(R.penalty_gdl_loss(probs, target, k=k, reduction="none"), gdl / (1 + k * (1 - gdl)))


@pytest.mark.parametrize("squared", [False, True])
def test_jaccard_dice_relation_at_zero_smooth(squared):
    """A4: per class, Delta_J = 2 Delta_D / (1 + Delta_D) when both use the same sums and smooth = 0."""
    probs, target = _case(b=3, c=2, seed=14)
    d = R.dice_loss(probs, target, smooth=0.0, squared=squared, include_background=False, reduction="none")
    j = R.iou_loss(probs, target, smooth=0.0, squared=squared, include_background=False, reduction="none")
    _close(j, 2 * d / (1 + d))
    assert not torch.allclose(j, d)


# ----------------------------------------------------------------------------------------------
# closed-form gradients (G1-G4, G7)
# ----------------------------------------------------------------------------------------------


def _sums(probs, target):
    dims = (2, 3)
    return (probs * target).sum(dims, keepdim=True), probs.sum(dims, keepdim=True), target.sum(dims, keepdim=True)


@pytest.mark.parametrize("eps", [1e-5, 1.0])
def test_dice_gradient_closed_form(eps):
    """G1: dL/ds_j = [(2I + e) - 2 g_j (S + G + e)] / (S + G + e)^2, divided by B*C for the means."""
    probs, target = _case(b=2, c=3, seed=15)
    i, s, g = _sums(probs, target)
    den = s + g + eps
    expected = ((2 * i + eps) - 2 * target * den) / den**2 / (2 * 3)
    _, grad = sc.loss_and_grad("dice", probs, target, smooth=eps)
    _close(grad, expected, rtol=1e-9, atol=1e-15)


def test_squared_dice_gradient_closed_form():
    """G2: dL/ds_j = [2 s_j (2I + e) - 2 g_j (S2 + G2 + e)] / (S2 + G2 + e)^2."""
    probs, target = _case(b=1, c=2, seed=16)
    eps = 1e-5
    i = (probs * target).sum((2, 3), keepdim=True)
    den = (probs**2).sum((2, 3), keepdim=True) + (target**2).sum((2, 3), keepdim=True) + eps
    expected = (2 * probs * (2 * i + eps) - 2 * target * den) / den**2 / 2
    _, grad = sc.loss_and_grad("dice", probs, target, smooth=eps, squared=True)
    _close(grad, expected, rtol=1e-9, atol=1e-15)


def test_iou_gradient_closed_form():
    """G3 (smooth 0): dL/ds_j = [I (1 - g_j) - g_j V] / V^2, V = S + G - I."""
    probs, target = _case(b=1, c=2, seed=17)
    i, s, g = _sums(probs, target)
    v = s + g - i
    expected = (i * (1 - target) - target * v) / v**2 / 2
    _, grad = sc.loss_and_grad("iou", probs, target, smooth=0.0)
    _close(grad, expected, rtol=1e-9, atol=1e-15)


def test_tversky_gradient_closed_form():
    """G4: dL/ds_j = -[g_j Dn - (I + e)(g_j (1 - a - b) + a)] / Dn^2."""
    probs, target = _case(b=1, c=2, seed=18)
    a, b, eps = 0.3, 0.7, 1e-5
    i, s, g = _sums(probs, target)
    dn = i + a * (s - i) + b * (g - i) + eps
    expected = -(target * dn - (i + eps) * (target * (1 - a - b) + a)) / dn**2 / 2
    _, grad = sc.loss_and_grad("tversky", probs, target, alpha=a, beta=b, smooth=eps)
    _close(grad, expected, rtol=1e-9, atol=1e-15)


def test_logit_gradient_is_softmax_chain_rule():
    """G7: dL/dz_jk = s_jk (dL/ds_jk - sum_m s_jm dL/ds_jm)."""
    probs, target = _case(b=2, c=3, seed=19)
    _, gp = sc.loss_and_grad("dice", probs, target)
    _, gz = sc.loss_and_grad("dice", probs, target, wrt="logits")
    _close(gz, probs * (gp - (probs * gp).sum(1, keepdim=True)), rtol=1e-9, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# Lovász: loop reference from the set-function definition, kornia, hard-prediction identity
# ----------------------------------------------------------------------------------------------


def _ref_lovasz_extension(errors, fg):
    """Lovász extension of Delta_J(M) = |M| / |F u M| (Berman eq. 8-9), by explicit sets."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    fg_set = {i for i in range(len(fg)) if fg[i] > 0.5}
    total, prev, wrong = 0.0, 0.0, set()
    for i in order:
        wrong.add(i)
        delta = len(wrong) / len(fg_set | wrong)
        total += errors[i] * (delta - prev)
        prev = delta
    return total


def _ref_lovasz_softmax_flat(p, g):
    """p, g: (C, P) numpy; mean over present classes (0 when none is present)."""
    vals = [_ref_lovasz_extension(np.abs(g[c] - p[c]), g[c]) for c in range(p.shape[0]) if g[c].sum() > 0]
    return float(np.mean(vals)) if vals else 0.0


def _ref_lovasz_softmax(probs, target, per_image):
    p = probs.detach().numpy().reshape(probs.shape[0], probs.shape[1], -1)
    g = target.numpy().reshape(p.shape)
    if per_image:
        return np.array([_ref_lovasz_softmax_flat(p[b], g[b]) for b in range(p.shape[0])])
    return _ref_lovasz_softmax_flat(np.concatenate(list(p), 1), np.concatenate(list(g), 1))


def _ref_tie_averaged_gradient(errors, fg):
    """Mean, over every order that sorts the errors decreasingly (foreground first among equal
    errors), of the Lovász subgradient of that order: h_r = Delta_J(first r) - Delta_J(first r - 1)
    at the pixel ranked r. By enumeration of all permutations (a few pixels only)."""
    key = [(-errors[i], -fg[i]) for i in range(len(errors))]
    orders = [o for o in itertools.permutations(range(len(errors)))
              if all(key[o[r]] <= key[o[r + 1]] for r in range(len(o) - 1))]
    fg_set = {i for i in range(len(fg)) if fg[i] > 0.5}
    grad = np.zeros(len(errors))
    for order in orders:
        prev, wrong = 0.0, set()
        for i in order:
            wrong.add(i)
            delta = len(wrong) / len(fg_set | wrong)
            grad[i] += (delta - prev) / len(orders)
            prev = delta
    return grad


@pytest.mark.parametrize("seed", range(4))
def test_lovasz_gradient_at_ties_is_the_mean_over_tie_orders(seed):
    """Where errors tie, the subgradient depends on the order of the tied pixels; the loss returns
    the mean over all such orders, whatever its sort does (and so on every device)."""
    rng = np.random.default_rng(seed)
    errors = rng.choice([0.1, 0.4, 0.7], size=7)
    fg = (rng.random(7) < 0.5).astype(float)
    e = torch.tensor(errors, requires_grad=True)
    R._lovasz_rows(e.unsqueeze(0), torch.tensor(fg).unsqueeze(0)).sum().backward()
    np.testing.assert_allclose(e.grad.numpy(), _ref_tie_averaged_gradient(errors, fg), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["lovasz_softmax", "lovasz_hinge"])
def test_lovasz_leaves_the_target_memoisable(name):
    """The value-only path (rows of at least LOVASZ_SPLIT_MIN pixels, no gradient) reads the target
    through numpy; the target must stay a tensor whose derived values can be remembered."""
    side = int(np.ceil(np.sqrt(R.LOVASZ_SPLIT_MIN)))
    probs, target = _case(1, 2, (side, side), seed=3)
    sc.compute(name, probs, target)
    assert target.untyped_storage().resizable()


@pytest.mark.parametrize("name", ["lovasz_softmax", "lovasz_hinge"])
def test_lovasz_gradient_keeps_a_mirror_symmetric_case_symmetric(name):
    yy, xx = np.mgrid[:32, :32]
    r = np.hypot(yy - 15.5, xx - 13.0)  # symmetric under flipping the rows only
    fg = torch.tensor(1 / (1 + np.exp(r - 8.0)))
    probs = torch.stack([1 - fg, fg]).unsqueeze(0)
    target = sc.one_hot(torch.tensor(r < 8.5).long().unsqueeze(0), 2, dtype=torch.float64)
    _, grad = sc.loss_and_grad(name, probs, target)
    assert float(grad.abs().max()) > 0
    torch.testing.assert_close(grad, grad.flip(-2), rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("absent", [(), (2,)], ids=["all_present", "class2_absent"])
def test_lovasz_softmax_matches_loop_reference(shape, absent):
    probs, target = _case(b=2, c=4, shape=shape, seed=20, absent=absent)
    _close(R.lovasz_softmax_loss(probs, target), _ref_lovasz_softmax(probs, target, per_image=False))
    per = _ref_lovasz_softmax(probs, target, per_image=True)
    _close(R.lovasz_softmax_loss(probs, target, per_image=True), per.mean())
    _close(R.lovasz_softmax_loss(probs, target, reduction="none"), per)
    _close(R.lovasz_softmax_loss(probs, target, per_image=True, reduction="sum"), per.sum())


def test_lovasz_softmax_matches_kornia_all_classes_present():
    probs, target = _case(b=3, c=3, shape=(8, 9), seed=21)
    labels = target.argmax(1)
    assert (target.sum((2, 3)) > 0).all()
    ref = kornia_losses.lovasz_softmax_loss(torch.log(probs), labels)
    _close(R.lovasz_softmax_loss(probs, target, per_image=True), ref)


def test_lovasz_softmax_on_hard_predictions_is_jaccard_loss():
    """A7: on 0/1 predictions the Lovász extension is 1 - J (mean over present classes)."""
    _, target = _case(b=1, c=3, shape=(7, 7), seed=22)
    pred = _labels_to_onehot(torch.randint(0, 3, (1, 7, 7), generator=torch.Generator().manual_seed(1)), 3)
    tp = (pred * target).sum((0, 2, 3))
    union = pred.sum((0, 2, 3)) + target.sum((0, 2, 3)) - tp
    _close(R.lovasz_softmax_loss(pred, target), (1 - tp / union).mean())


def test_lovasz_softmax_drops_absent_classes():
    probs, target = _case(b=2, c=3, seed=23, absent=(2,))
    # an absent class is dropped: the value is the mean over the two present classes only
    p = probs.numpy().transpose(1, 0, 2, 3).reshape(3, -1)
    g = target.numpy().transpose(1, 0, 2, 3).reshape(3, -1)
    present = np.mean([_ref_lovasz_extension(np.abs(g[c] - p[c]), g[c]) for c in (0, 1)])
    _close(R.lovasz_softmax_loss(probs, target), present)
    # a sample with no present class at all scores 0 (and has a zero gradient)
    empty = torch.zeros_like(target)
    leaf = probs.clone().requires_grad_(True)
    value = R.lovasz_softmax_loss(leaf, empty, reduction="none")
    _close(value, torch.zeros(2))
    value.sum().backward()
    assert torch.equal(leaf.grad, torch.zeros_like(leaf))


def _ref_lovasz_hinge(margin, fg, per_image):
    m = margin.detach().numpy().reshape(margin.shape[0], -1)
    y = fg.numpy().reshape(m.shape)

    def flat(mm, yy):
        errors = 1 - mm * (2 * yy - 1)
        order = np.argsort(-errors, kind="stable")
        hinge = np.maximum(errors, 0)
        # relu after sorting (Berman): same order, Lovász extension of the hinge errors
        return _ref_lovasz_extension(list(hinge[order]), list(yy[order]))

    if per_image:
        return np.array([flat(m[b], y[b]) for b in range(m.shape[0])])
    return flat(m.reshape(-1), y.reshape(-1))


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
def test_lovasz_hinge_matches_references(shape):
    probs, target = _case(b=3, c=2, shape=shape, seed=24, scale=3.0)
    margin = torch.log(probs[:, 1]) - torch.log(probs[:, 0])
    per = _ref_lovasz_hinge(margin, target[:, 1], per_image=True)
    _close(R.lovasz_hinge_loss(probs, target), per.mean())
    _close(R.lovasz_hinge_loss(probs, target, reduction="none"), per)
    _close(R.lovasz_hinge_loss(probs, target, per_image=False), _ref_lovasz_hinge(margin, target[:, 1], False))
    if len(shape) == 2:
        ref = kornia_losses.lovasz_hinge_loss(margin[:, None], target[:, 1].long())
        _close(R.lovasz_hinge_loss(probs, target), ref)


def test_lovasz_hinge_is_binary_only():
    probs, target = _case(c=3)
    with pytest.raises(ValueError, match=r"^lovasz_hinge is defined for binary segmentation only \(C = 2\)$"):
        R.lovasz_hinge_loss(probs, target)
    assert sc.get_loss("lovasz_hinge").binary_only
    assert sc.compute_all(probs, target, ["lovasz_hinge"])["lovasz_hinge"].startswith("n/a: ")


# ----------------------------------------------------------------------------------------------
# sensitivity-specificity against a loop reference of eq. 7
# ----------------------------------------------------------------------------------------------


def _ref_ss(probs, target, w, smooth, pooled):
    p, g = probs.numpy(), target.numpy()
    if pooled:
        p, g = p.transpose(1, 0, 2, 3)[None], g.transpose(1, 0, 2, 3)[None]
    out = []
    for b in range(p.shape[0]):
        vals = []
        for c in range(1, p.shape[1]):
            e = (g[b, c] - p[b, c]) ** 2
            sens = (e * g[b, c]).sum() / (g[b, c].sum() + smooth)
            spec = (e * (1 - g[b, c])).sum() / ((1 - g[b, c]).sum() + smooth)
            vals.append(w * sens + (1 - w) * spec)
        out.append(np.mean(vals))
    return np.array(out)


@pytest.mark.parametrize("c", [2, 4])
@pytest.mark.parametrize("w", [0.1, 0.7])
def test_sensitivity_specificity_matches_eq7(c, w):
    probs, target = _case(b=2, c=c, seed=25)
    per = _ref_ss(probs, target, w, 1e-5, pooled=False)
    _close(R.sensitivity_specificity_loss(probs, target, w=w, reduction="none"), per)
    _close(R.sensitivity_specificity_loss(probs, target, w=w), per.mean())
    _close(R.sensitivity_specificity_loss(probs, target, w=w, batch=True),
           _ref_ss(probs, target, w, 1e-5, pooled=True)[0])
    _close(R.sensitivity_specificity_loss(probs, target, w=w, batch=True, reduction="none"), per)


# ----------------------------------------------------------------------------------------------
# conventions: from_stats, batch / reduction semantics, soft labels, dtype
# ----------------------------------------------------------------------------------------------

STATS_LOSSES = [n for n in sc.list_losses("region") if sc.get_loss(n).from_stats is not None]
REGION = sc.list_losses("region")


def test_from_stats_availability():
    assert set(STATS_LOSSES) >= {"dice", "iou", "tversky", "generalized_dice", "focal_tversky", "asymmetric",
                                 "penalty_gdl"}


@pytest.mark.parametrize("name", STATS_LOSSES)
@pytest.mark.parametrize("batch,soft_label", list(itertools.product([False, True], repeat=2)))
def test_from_stats_matches_function(name, batch, soft_label):
    probs, onehot = _case(c=3, seed=26)
    target = _soft_target(seed=27) if soft_label else onehot
    spec = sc.get_loss(name)
    if soft_label and "soft_label" not in spec.params:
        pytest.skip(f"{name} has no soft_label parameter")
    settings = {"batch": batch, "soft_label": soft_label, "include_background": False}
    params = {**spec.defaults, **{k: v for k, v in settings.items() if k in spec.params}}
    if "squared" in params:
        params["squared"] = True
    conf = soft_confusion(probs, target, soft_label=soft_label)
    per = spec.from_stats(conf, **params)
    assert per.shape == (2,)
    _close(per.mean(), spec.fn(probs, target, **params))
    if not batch:
        _close(per, spec.fn(probs, target, reduction="none", **params))


@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "generalized_dice", "penalty_gdl"])
def test_batch_reduction_semantics(name):
    probs, target = _case(b=3, c=3, seed=28)
    fn = sc.get_loss(name).fn
    pooled = fn(probs, target, batch=True)
    _close(fn(probs, target, batch=True, reduction="sum"), 3 * pooled)
    _close(fn(probs, target, batch=True, reduction="none"), fn(probs, target, reduction="none"))
    assert not torch.allclose(pooled, fn(probs, target))
    # each sample's "none" value is the loss of that sample evaluated alone
    _close(fn(probs, target, reduction="none")[1], fn(probs[1:2], target[1:2]))


@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "generalized_dice", "focal_tversky", "asymmetric",
                                  "penalty_gdl"])
def test_soft_label_minimised_at_target(name):
    target = _soft_target(seed=29)
    fn = sc.get_loss(name).fn
    at_target = fn(target, target, soft_label=True)
    atol = 2 * EPS**0.75 if name == "focal_tversky" else 1e-12
    assert abs(float(at_target)) <= atol
    # without the soft-label TP the same input is far from 0 (the test can fail)
    assert float(fn(target, target, soft_label=False)) > 0.05


def test_dtype_and_shape_kept():
    for dtype in (torch.float32, F64):
        probs, target = (t.to(dtype) for t in _case(c=2, seed=30))
        for name in REGION:
            out = sc.get_loss(name).fn(probs, target)
            assert out.dtype == dtype and out.shape == ()
            assert sc.get_loss(name).fn(probs, target, reduction="none").shape == (2,)


def test_bad_reduction_raises():
    probs, target = _case()
    with pytest.raises(ValueError, match="reduction"):
        R.dice_loss(probs, target, reduction="avg")


# ----------------------------------------------------------------------------------------------
# empty-class policy
# ----------------------------------------------------------------------------------------------


def _empty_fg(shape=(6, 6), fg_prob=None):
    target = _labels_to_onehot(torch.zeros((1, *shape), dtype=torch.long), 2)
    if fg_prob is None:
        return target.clone(), target
    p1 = torch.full((1, *shape), fg_prob, dtype=F64)
    return torch.stack([1 - p1, p1], 1), target


@pytest.mark.parametrize("name", ["dice", "iou", "tversky", "asymmetric", "focal_tversky"])
def test_empty_class_predicted_empty_scores_zero(name):
    probs, target = _empty_fg()
    value = sc.get_loss(name).fn(probs, target, include_background=False)
    atol = 2 * EPS**0.75 if name == "focal_tversky" else 1e-12
    assert 0 <= float(value) <= atol


def test_empty_class_with_false_positives_saturates():
    s = 1e-5
    probs, target = _empty_fg(fg_prob=0.5)
    fp = 0.5 * 36
    _, grad = sc.loss_and_grad("dice", probs, target, include_background=False, smooth=s)
    value = R.dice_loss(probs, target, include_background=False, smooth=s)
    _close(value, 1 - s / (fp + s))
    # G1 with I = G = 0: every pixel gets s / (S + s)^2 (tiny): the loss is saturated
    _close(grad[:, 1], torch.full_like(grad[:, 1], s / (fp + s) ** 2))
    assert torch.equal(grad[:, 0], torch.zeros_like(grad[:, 0]))
    for name in ("iou", "tversky"):
        assert float(sc.compute(name, probs, target, include_background=False)) > 1 - 1e-5


def test_gdl_empty_class_takes_sample_max_weight():
    probs, target = _case(b=1, c=3, seed=31, absent=(2,))
    conf = soft_confusion(probs, target)
    w = 1 / conf.target_sum**2
    w[:, 2] = w[:, :2].max()
    expected = 1 - (2 * (w * conf.tp).sum() + 1e-5) / ((w * (conf.pred_sum + conf.target_sum)).sum() + 1e-5)
    _close(R.generalized_dice_loss(probs, target), expected)


@pytest.mark.parametrize("smooth", [1e-5, 0.0])
def test_gdl_all_classes_empty_is_zero(smooth):
    probs, target = _empty_fg(fg_prob=0.3)
    value, grad = sc.loss_and_grad("generalized_dice", probs, target, include_background=False, smooth=smooth)
    assert value == 0.0
    assert torch.equal(grad, torch.zeros_like(grad))
    if smooth:
        _close(value, _monai_gdl(probs, target, include_background=False))


# ----------------------------------------------------------------------------------------------
# gradcheck and finiteness on hostile inputs
# ----------------------------------------------------------------------------------------------

GRADCHECK_PARAMS = {
    "dice": [{}, {"squared": True, "batch": True}, {"soft_label": True, "include_background": False}],
    "iou": [{}, {"squared": True}, {"soft_label": True, "batch": True}],
    "tversky": [{}, {"batch": True, "soft_label": True}],
    "generalized_dice": [{}, {"batch": True, "include_background": False}],
    "focal_tversky": [{}, {"gamma": 2.5, "batch": True}],
    "asymmetric": [{}],
    "penalty_gdl": [{}, {"batch": True}],
    "sensitivity_specificity": [{}, {"batch": True}],
    "lovasz_softmax": [{}, {"per_image": True}],
    "lovasz_hinge": [{}, {"per_image": False}],
}


@pytest.mark.parametrize("name,params", [(n, p) for n, ps in GRADCHECK_PARAMS.items() for p in ps])
def test_gradcheck(name, params):
    c = 2 if name == "lovasz_hinge" else 3
    probs, target = _case(b=2, c=c, shape=(4, 5), seed=32, absent=(2,) if c == 3 else ())
    if params.get("soft_label"):
        target = _soft_target(c=c, shape=(4, 5), seed=33)
    fn = sc.get_loss(name).fn
    leaf = probs.clone().requires_grad_(True)
    # random continuous inputs: no ties among the Lovász errors
    assert torch.autograd.gradcheck(lambda p: fn(p, target, **params), (leaf,), eps=1e-7, atol=1e-6)


def _hostile_cases():
    lab = torch.zeros((1, 8, 8), dtype=torch.long)
    lab[0, 2:6, 2:6] = 1
    hard = _labels_to_onehot(lab, 2)
    one_px = torch.zeros_like(lab)
    one_px[0, 4, 4] = 1
    empty = _labels_to_onehot(torch.zeros_like(lab), 2)
    rnd, _ = _case(b=1, c=2, shape=(8, 8), seed=34)
    p3, t3 = _case(b=2, c=3, shape=(3, 4, 5), seed=35)
    return {
        "perfect_hard": (hard, hard),
        "all_wrong_hard": (_labels_to_onehot(1 - lab, 2), hard),
        "empty_gt_random_pred": (rnd, empty),
        "empty_both": (empty, empty),
        "single_pixel": (rnd, _labels_to_onehot(one_px, 2)),
        "single_pixel_hard": (_labels_to_onehot(one_px, 2), _labels_to_onehot(one_px, 2)),
        "3d": (p3, t3),
    }


HOSTILE = _hostile_cases()


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("smooth", [1e-5, 0.0])
def test_finite_on_hostile_inputs(case, smooth):
    probs, target = HOSTILE[case]
    for name in REGION:
        spec = sc.get_loss(name)
        if spec.binary_only and probs.shape[1] != 2:
            continue
        params = {"smooth": smooth} if "smooth" in spec.params else {}
        for extra in ({}, {"include_background": False}, {"batch": True}):
            kw = {**params, **{k: v for k, v in extra.items() if k in spec.params}}
            for wrt in ("probs", "logits"):
                value, grad = sc.loss_and_grad(name, probs, target, wrt=wrt, **kw)
                assert np.isfinite(value), (name, kw, wrt)
                assert torch.isfinite(grad).all(), (name, kw, wrt)


@pytest.mark.parametrize("name", REGION)
def test_perfect_prediction_scores_minimum(name):
    probs, target = HOSTILE["perfect_hard"]
    value = float(sc.compute(name, probs, target))
    # focal Tversky clamps its base at EPS (value EPS**0.75 there)
    atol = 2 * EPS**0.75 if name == "focal_tversky" else 1e-6
    assert abs(value) <= atol, (name, value)


def test_focal_tversky_gradient_finite_at_perfect_prediction():
    probs, target = HOSTILE["perfect_hard"]
    _, grad = sc.loss_and_grad("focal_tversky", probs, target)
    assert torch.isfinite(grad).all()
    _, grad = sc.loss_and_grad("focal_tversky", probs, target, wrt="logits")
    assert torch.isfinite(grad).all()


def test_empty_class_policy_is_documented():
    policy = R.EMPTY_CLASS_POLICY
    for needle in ("predicted empty scores 0", "largest finite weight", "drops absent classes"):
        assert needle in policy
        assert needle.split()[0] in R.__doc__


def test_lovasz_split_rows_equal_the_joint_sort(monkeypatch):
    """Long rows without a gradient are scored by sorting foreground and background errors apart
    (region._lovasz_split); same values as the joint sort, with ties, an image without
    foreground, the hinge's negative errors, pooled and per-image."""
    from segloss_core.core.losses import region

    gen = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(3, 2, 12, 13, 14, generator=gen, dtype=torch.float64) * 2, 1)
    probs = (probs * 8).round() / 8  # many ties
    probs = probs / probs.sum(1, keepdim=True)
    labels = torch.randint(0, 2, (3, 12, 13, 14), generator=gen)
    labels[0] = 0
    target = torch.nn.functional.one_hot(labels, 2).movedim(-1, 1).double()
    calls = [lambda: region.lovasz_softmax_loss(probs, target, reduction="none"),
             lambda: region.lovasz_softmax_loss(probs, target),
             lambda: region.lovasz_hinge_loss(probs, target, reduction="none"),
             lambda: region.lovasz_hinge_loss(probs, target, per_image=False)]
    monkeypatch.setattr(region, "LOVASZ_SPLIT_MIN", 1 << 40)
    joint = [f() for f in calls]
    monkeypatch.setattr(region, "LOVASZ_SPLIT_MIN", 1)
    split = [f() for f in calls]
    for a, b in zip(split, joint, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
