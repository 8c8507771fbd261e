"""The losses MONAI 1.6 has that segloss added: each equals MONAI's class with MONAI's default parameters on
segloss's convention (probabilities, one-hot targets), float64, 2-D and 3-D, B = 2 (unless said), plus
gradcheck on tiny inputs and the engine capabilities they brought (matrix parameters, hard targets only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

import segloss_core as sc

monai_losses = pytest.importorskip("monai.losses")

SHAPES = [(2, 3, 20, 22), (2, 3, 7, 9, 10), (2, 2, 18, 16), (2, 2, 6, 8, 9)]
RTOL = 1e-12


def make_pair(shape, seed=0, dtype=torch.float64):
    """(probs, one-hot target): smooth random label blobs, a noisy softmax around a shifted copy."""
    b, c, *spatial = shape
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((b, c, *spatial)), sigma=(0, 0) + (1.5,) * len(spatial))
    noise[:, 0] += 0.3 * noise.std()
    labels = torch.from_numpy(noise.argmax(1))
    target = sc.one_hot(labels, c, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * target.roll(1, dims=-1) + torch.randn(target.shape, generator=gen, dtype=dtype)
    return torch.softmax(logits, 1), target


def close(ours, ref, rtol=RTOL):
    ours, ref = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=1e-14)


def gradcheck(name, shape=(2, 2, 5, 6), seed=3, **params):
    probs, target = make_pair(shape, seed)
    logits = torch.log(probs).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: sc.compute(name, torch.softmax(z, 1), target, **params), (logits,),
                                    eps=1e-6, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# mcc
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_mcc_matches_monai(shape):
    probs, target = make_pair(shape)
    close(sc.compute("mcc", probs, target), monai_losses.MCCLoss()(probs, target))
    per_class = monai_losses.MCCLoss(reduction="none")(probs, target)  # (B, C)
    close(sc.compute("mcc", probs, target, reduction="none"), per_class.mean(1))
    close(sc.compute("mcc", probs, target, batch=True, include_background=False),
          monai_losses.MCCLoss(batch=True, include_background=False)(probs, target))


def test_mcc_perfect_prediction_is_zero_and_complement_is_two():
    _, target = make_pair((2, 2, 12, 12))
    assert float(sc.compute("mcc", target, target)) == 0.0
    close(sc.compute("mcc", target.flip(1), target), monai_losses.MCCLoss()(target.flip(1), target), rtol=1e-9)
    assert float(sc.compute("mcc", target.flip(1), target)) == pytest.approx(2.0, abs=1e-6)


def test_mcc_gradcheck():
    gradcheck("mcc")
    gradcheck("mcc", batch=True, smooth_nr=1e-3)


# ----------------------------------------------------------------------------------------------
# wasserstein_dice
# ----------------------------------------------------------------------------------------------


def _labels(target):
    return target.argmax(1, keepdim=True)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["default", "GDL"])
def test_wasserstein_dice_matches_monai(shape, mode):
    probs, target = make_pair(shape)
    c = shape[1]
    eye = 1 - torch.eye(c, dtype=torch.float64)
    ref = monai_losses.GeneralizedWassersteinDiceLoss(dist_matrix=eye, weighting_mode=mode)
    # MONAI applies the softmax itself: fed z = log p it sees p again. Its GDL weights are float32.
    rtol = RTOL if mode == "default" else 1e-6
    close(sc.compute("wasserstein_dice", probs, target, weighting_mode=mode), ref(torch.log(probs), _labels(target)),
          rtol)
    close(sc.compute("wasserstein_dice", probs, target, weighting_mode=mode, reduction="none"),
          monai_losses.GeneralizedWassersteinDiceLoss(dist_matrix=eye, weighting_mode=mode, reduction="none")(
              torch.log(probs), _labels(target)), rtol)


def test_wasserstein_dice_user_matrix_matches_monai():
    probs, target = make_pair((2, 3, 16, 17), seed=5)
    m = np.array([[0.0, 2.0, 2.0], [2.0, 0.0, 1.0], [2.0, 1.0, 0.0]])  # MONAI scales it to max 1, so do we
    ref = monai_losses.GeneralizedWassersteinDiceLoss(dist_matrix=m)(torch.log(probs), _labels(target))
    close(sc.compute("wasserstein_dice", probs, target, dist_matrix=m.tolist()), ref)
    close(sc.compute("wasserstein_dice", probs, target, dist_matrix="0,2,2;2,0,1;2,1,0"), ref)
    # cheaper confusions cost less than the default 1 - I
    assert float(sc.compute("wasserstein_dice", probs, target, dist_matrix=m.tolist())) < float(
        sc.compute("wasserstein_dice", probs, target))


def test_wasserstein_dice_reports_soft_targets_and_bad_matrices():
    probs, target = make_pair((1, 3, 10, 10))
    soft = 0.8 * target + 0.2 / 3
    assert sc.compute_all(probs, soft, ["wasserstein_dice"])["wasserstein_dice"] == "n/a: hard (one-hot) targets only"
    out = sc.losses_and_grads(["wasserstein_dice", "dice"], probs, soft)
    assert out["wasserstein_dice"] == "hard (one-hot) targets only" and isinstance(out["dice"], tuple)
    with pytest.raises(ValueError, match="hard"):
        sc.compute("wasserstein_dice", probs, soft)
    for bad, msg in [("0,1;1,0", "C=3"), ("0,1,1;1,0,1", "square"), ("1,1,1;1,0,1;1,1,0", "diagonal"),
                     ("0,-1,1;1,0,1;1,1,0", "non-negative")]:
        with pytest.raises(ValueError, match=msg) as info:
            sc.compute("wasserstein_dice", probs, target, dist_matrix=bad)
        assert "\n" not in str(info.value)
    assert sc.compute_all(probs, target, ["wasserstein_dice"], params={"wasserstein_dice": {"dist_matrix": "0,1;1,0"}})[
        "wasserstein_dice"].startswith("n/a: dist_matrix is 2x2")


def test_wasserstein_dice_gradcheck():
    gradcheck("wasserstein_dice", (2, 3, 5, 6))
    gradcheck("wasserstein_dice", (2, 3, 5, 6), weighting_mode="GDL", dist_matrix="0,1,2;1,0,1;2,1,0")


def test_matrix_parameter_through_the_cli(tmp_path, capsys):
    from segloss_core import cli

    gt = np.zeros((16, 16), np.uint8)
    gt[3:9, 3:9], gt[11:14, 2:14] = 1, 2
    pred = gt.copy()
    pred[5:7, 5:14] = 2
    np.save(tmp_path / "gt.npy", gt)
    np.save(tmp_path / "pred.npy", pred)
    base = ["evaluate", "--gt", str(tmp_path / "gt.npy"), "--pred", str(tmp_path / "pred.npy"),
            "--losses", "wasserstein_dice", "--json"]
    assert cli.main(base + ["--param", "wasserstein_dice.dist_matrix=0,1,1;1,0,0.5;1,0.5,0"]) == 0
    value = json.loads(capsys.readouterr().out)["losses"]["wasserstein_dice"]
    probs, target = sc.one_hot(torch.from_numpy(pred)[None], 3, dtype=torch.float64), sc.one_hot(
        torch.from_numpy(gt)[None], 3, dtype=torch.float64)
    m = [[0, 1, 1], [1, 0, 0.5], [1, 0.5, 0]]
    assert value == pytest.approx(float(sc.compute("wasserstein_dice", probs, target, dist_matrix=m)), rel=1e-6)
    assert cli.main(base + ["--param", "wasserstein_dice.dist_matrix=0,1;1"]) == 2
    err = capsys.readouterr().err
    assert "square matrix" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------------------------
# dice_focal, generalized_dice_focal
# ----------------------------------------------------------------------------------------------


def _softmax_focal(probs, target):
    """Segloss's focal convention in closed form (gamma = 2, summed over classes, mean over pixels); equal to
    C x MONAI's FocalLoss(use_softmax=True) on logits log p, whose result MONAI returns in float32."""
    closed = -((1 - probs) ** 2 * target * torch.log(probs)).sum(1).flatten(1).mean(1).mean()
    monai_value = probs.shape[1] * monai_losses.FocalLoss(use_softmax=True, gamma=2.0)(torch.log(probs), target)
    close(closed, monai_value, rtol=1e-6)
    return closed


@pytest.mark.parametrize("shape", SHAPES)
def test_dice_focal_is_monai_dice_plus_softmax_focal(shape):
    probs, target = make_pair(shape)
    focal = _softmax_focal(probs, target)
    close(sc.compute("dice_focal", probs, target), monai_losses.DiceLoss()(probs, target) + focal)
    # MONAI's GeneralizedDiceLoss keeps its class weights in float32
    close(sc.compute("generalized_dice_focal", probs, target),
          monai_losses.GeneralizedDiceLoss()(probs, target) + focal, rtol=1e-7)


def test_monai_combinations_apply_a_sigmoid_focal_term():
    """What the docstrings say: MONAI's DiceFocalLoss(softmax=True) adds a sigmoid focal term on the raw
    logits, so it is not Dice + softmax focal (segloss's dice_focal)."""
    probs, target = make_pair((2, 3, 12, 13))
    z = torch.log(probs)
    theirs = monai_losses.DiceFocalLoss(softmax=True)(z, target)
    sigmoid_focal = monai_losses.FocalLoss(use_softmax=False, gamma=2.0)(z, target)
    close(theirs, monai_losses.DiceLoss(softmax=True)(z, target) + sigmoid_focal)
    assert abs(float(theirs) - float(sc.compute("dice_focal", probs, target))) > 1e-2
    theirs = monai_losses.GeneralizedDiceFocalLoss(softmax=True)(z, target)
    close(theirs, monai_losses.GeneralizedDiceLoss(softmax=True)(z, target) + sigmoid_focal)


def test_dice_focal_without_background_drops_channel_0_from_both_terms():
    probs, target = make_pair((2, 3, 12, 13))
    dice = monai_losses.DiceLoss(include_background=False)(probs, target)
    p, g = probs[:, 1:], target[:, 1:]
    focal = -((1 - p) ** 2 * g * torch.log(p)).sum(1).flatten(1).mean(1).mean()  # classes 1..C-1, closed form
    close(sc.compute("dice_focal", probs, target, include_background=False), dice + focal)


def test_dice_focal_gradcheck():
    gradcheck("dice_focal", (2, 3, 5, 6))
    gradcheck("generalized_dice_focal", (2, 3, 5, 6), include_background=False, gamma=0.5)


# ----------------------------------------------------------------------------------------------
# unified_focal
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[1] == 2])
def test_unified_focal_matches_monai(shape):
    probs, target = make_pair(shape)
    close(sc.compute("unified_focal", probs, target), monai_losses.AsymmetricUnifiedFocalLoss()(probs, target))
    for b in range(shape[0]):  # per sample = MONAI on that sample alone
        close(sc.compute("unified_focal", probs, target, reduction="none")[b],
              monai_losses.AsymmetricUnifiedFocalLoss()(probs[b:b + 1], target[b:b + 1]))
    kw = dict(weight=0.3, gamma=0.2, delta=0.6)
    close(sc.compute("unified_focal", probs, target, **kw),
          monai_losses.AsymmetricUnifiedFocalLoss(**kw)(probs, target))


def test_unified_focal_is_binary_only():
    probs, target = make_pair((1, 3, 8, 8))
    assert sc.compute_all(probs, target, ["unified_focal"])["unified_focal"].startswith("n/a")
    with pytest.raises(ValueError, match="binary"):
        sc.compute("unified_focal", probs, target)


def test_unified_focal_gradcheck():
    gradcheck("unified_focal")


# ----------------------------------------------------------------------------------------------
# log_hausdorff_dt
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_log_hausdorff_dt_matches_monai_for_one_sample(shape):
    probs, target = make_pair(shape)
    for b in range(shape[0]):
        p, g = probs[b:b + 1], target[b:b + 1]
        # MONAI's distance maps are float32: agreement to float32 round-off of the distances
        close(sc.compute("log_hausdorff_dt", p, g), monai_losses.LogHausdorffDTLoss()(p, g), rtol=1e-6)


def test_log_hausdorff_dt_batch_is_the_mean_of_per_sample_logs():
    probs, target = make_pair((2, 3, 20, 22))
    hd = sc.compute("hausdorff_dt", probs, target, reduction="none")
    close(sc.compute("log_hausdorff_dt", probs, target), torch.log1p(hd).mean())
    monai_value = monai_losses.LogHausdorffDTLoss()(probs, target)  # log of the batch mean
    close(monai_value, torch.log1p(hd.mean()), rtol=1e-6)
    assert float(sc.compute("log_hausdorff_dt", probs, target)) <= float(monai_value)


def test_log_hausdorff_dt_gradcheck():
    gradcheck("log_hausdorff_dt")


# ----------------------------------------------------------------------------------------------
# cldice, dice_cldice
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_cldice_matches_monai(shape):
    probs, target = make_pair(shape)
    close(sc.compute("cldice", probs, target), monai_losses.SoftclDiceLoss()(probs, target))
    close(sc.compute("cldice", probs, target, reduction="none"),
          monai_losses.SoftclDiceLoss(reduction="none")(probs, target))
    close(sc.compute("dice_cldice", probs, target), monai_losses.SoftDiceclDiceLoss()(probs, target))
    kw = dict(iterations=5, smooth_nr=0.5, smooth_dr=2.0, smooth_hm=1e-3, include_background=False)
    ref = dict(iter_=5, smooth_nr=0.5, smooth_dr=2.0, smooth=1e-3, include_background=False)
    close(sc.compute("cldice", probs, target, **kw), monai_losses.SoftclDiceLoss(**ref)(probs, target))
    close(sc.compute("dice_cldice", probs, target, alpha=0.3, **kw),
          monai_losses.SoftDiceclDiceLoss(alpha=0.3, **ref)(probs, target))


def test_soft_skeleton_matches_monai_and_thins_a_bar():
    from monai.losses.cldice import soft_skel

    from segloss_core.core.losses.topology import soft_skeleton

    probs, _ = make_pair((2, 3, 7, 9, 10))
    assert torch.equal(soft_skeleton(probs, 4), soft_skel(probs, 4))
    bar = torch.zeros(1, 1, 11, 30, dtype=torch.float64)
    bar[0, 0, 3:8, 2:28] = 1  # 5 pixels thick
    skel = soft_skeleton(bar, 3)
    assert skel.sum() < bar.sum() / 4 and bool((skel[0, 0, 5, 5:25] == 1).all())  # the centre line survives


def test_cldice_gradcheck():
    gradcheck("cldice")
    gradcheck("dice_cldice", (2, 3, 5, 6), include_background=False, iterations=2)


def test_cldice_target_skeleton_is_remembered_per_target_and_follows_changes():
    probs, target = make_pair((1, 2, 16, 16))
    first = float(sc.compute("cldice", probs, target))
    target[0, :, 4:8, 4:8] = target[0, :, 4:8, 4:8].flip(0)  # in place: the memo must see the new target
    assert float(sc.compute("cldice", probs, target)) == pytest.approx(
        float(monai_losses.SoftclDiceLoss()(probs, target)), rel=1e-12)
    assert float(sc.compute("cldice", probs, target)) != first


def test_vessel_what_if_line_numbers():
    """The Playground's clDice question: its numbers, recomputed with MONAI on the preset's tensors."""
    from segloss_core.analyses import claims
    from segloss_core.data.presets import PRESETS, make_case

    assert PRESETS["vessel"].params["thickness"].default == 3.0  # the thin vessel the sentence describes
    text = " ".join(claims.what_if_text().split())
    numbers = {}
    for key, pred in (("base", {}), ("noise", {"noise": 1.0}), ("thick", {"dilate": 2.0})):
        probs, target = make_case("vessel", prediction=pred).tensors(dtype=torch.float64)
        numbers[key] = (float(monai_losses.DiceLoss()(probs, target)), float(monai_losses.SoftclDiceLoss()(probs, target)))
    (bd, bc), (nd, nc), (td, tc) = numbers["base"], numbers["noise"], numbers["thick"]
    assert f"shift y 0: the Dice loss is {bd:.3f}, clDice {bc:.3f}." in text
    assert f"Dice only rises to {nd:.3f} but clDice to {nc:.3f}:" in text
    assert f"raises Dice to {td:.3f} and lowers clDice to {tc:.3f}:" in text
    # what the sentence claims: noise moves clDice far more than Dice; thickening lowers clDice, raises Dice
    assert nc - bc > 4 * (nd - bd) > 0 and tc < bc and td > bd


# ----------------------------------------------------------------------------------------------
# nacl
# ----------------------------------------------------------------------------------------------

#: MONAI smooths the one-hot labels in float32: agreement to float32 round-off of the smoothed target.
NACL_RTOL = 1e-8


def _monai_nacl(probs, target, **kw):
    """MONAI's NACLLoss on z = log p (the logits with log-sum-exp 0) and the label map."""
    ref = monai_losses.NACLLoss(classes=probs.shape[1], dim=probs.ndim - 2, **kw)
    return ref(torch.log(probs), target.argmax(1))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # MONAI's even box
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kw", [{}, dict(kernel_ops="gaussian", distance_type="l2"),
                                dict(kernel_ops="gaussian", sigma=0.6, alpha=0.5), dict(kernel_size=4, alpha=2.0)],
                         ids=["default", "gaussian-l2", "gaussian-sigma", "even-box"])
def test_nacl_matches_monai(shape, kw):
    probs, target = make_pair(shape)
    close(sc.compute("nacl", probs, target, **kw), _monai_nacl(probs, target, **kw), NACL_RTOL)
    per_sample = sc.compute("nacl", probs, target, reduction="none", **kw)
    assert per_sample.shape == (shape[0],)
    for b in range(shape[0]):  # per sample = MONAI on that sample alone
        close(per_sample[b], _monai_nacl(probs[b:b + 1], target[b:b + 1], **kw), NACL_RTOL)


def test_nacl_smoothed_target_matches_monai_and_is_remembered():
    from segloss_core.core.losses.compound import neighbour_mean

    probs, target = make_pair((2, 3, 12, 13))
    for kw in [{}, dict(kernel_ops="gaussian", sigma=1.5), dict(kernel_size=5)]:
        ref = monai_losses.NACLLoss(classes=3, dim=2, **kw).get_constr_target(target.argmax(1))
        # MONAI's filters and Gaussian taps (differences of erf values) are float32: a few float32 ulps of 1
        torch.testing.assert_close(neighbour_mean(target, **kw), ref.double(), rtol=0, atol=5e-7)
    u = neighbour_mean(target)
    assert neighbour_mean(target) is u  # remembered per target tensor
    # zero padding: the class proportions sum to 1 inside, to the box's share of the image at the border
    total = u.sum(1)
    close(total[:, 1:-1, 1:-1], torch.ones_like(total[:, 1:-1, 1:-1]))
    close(total[:, 0, 0], torch.full((2,), 4 / 9, dtype=torch.float64))
    first = float(sc.compute("nacl", probs, target, distance_type="l2"))
    target[0, :, 4:8, 4:8] = target[0, :, 4:8, 4:8].roll(1, 0)  # in place: the memo must see the new target
    assert neighbour_mean(target) is not u
    close(sc.compute("nacl", probs, target, distance_type="l2"), _monai_nacl(probs, target, distance_type="l2"),
          NACL_RTOL)
    assert float(sc.compute("nacl", probs, target, distance_type="l2")) != first


def test_nacl_monai_penalty_depends_on_the_logit_shift():
    """What the docstring says: MONAI's value changes when every logit of a pixel moves by the same amount
    (the probabilities, and the CE, do not); segloss is MONAI at the shift z = log p."""
    probs, target = make_pair((2, 3, 12, 13))
    z = torch.log(probs)
    labels = target.argmax(1)
    ref = monai_losses.NACLLoss(classes=3, dim=2)
    shifted = z + 2.0 * torch.rand(z[:, :1].shape, dtype=z.dtype, generator=torch.Generator().manual_seed(1))
    close(torch.nn.functional.cross_entropy(shifted, labels), torch.nn.functional.cross_entropy(z, labels))
    assert abs(float(ref(shifted, labels)) - float(ref(z, labels))) > 1e-2
    close(sc.compute("nacl", probs, target), ref(z, labels), NACL_RTOL)


def test_m7_nacl_l1_penalty_is_a_target_free_push():
    """docs/theory.md M7: with z = log p <= 0 <= u, the L1 penalty is mean u - mean log p, so its gradient does
    not depend on the target (the L2 penalty's does)."""
    from segloss_core.core.losses.compound import neighbour_mean

    probs, target = make_pair((2, 3, 10, 11))
    other = make_pair((2, 3, 10, 11), seed=7)[1]
    alpha = 0.3
    penalty = sc.compute("nacl", probs, target, alpha=alpha, reduction="none") - sc.compute(
        "ce", probs, target, reduction="none")
    closed = alpha * (neighbour_mean(target).flatten(1).mean(1) - torch.log(probs).flatten(1).mean(1))
    close(penalty, closed, 1e-10)

    def penalty_grad(g, distance_type):
        p = probs.clone().requires_grad_(True)
        value = sc.compute("nacl", p, g, alpha=alpha, distance_type=distance_type) - sc.compute("ce", p, g)
        return torch.autograd.grad(value, p)[0]

    close(penalty_grad(target, "l1"), penalty_grad(other, "l1"))
    close(penalty_grad(target, "l1"), -alpha / probs.numel() / probs)
    assert not torch.allclose(penalty_grad(target, "l2"), penalty_grad(other, "l2"))


def test_nacl_soft_targets_and_bad_parameters():
    probs, target = make_pair((2, 3, 10, 10))
    soft = 0.8 * target + 0.2 / 3
    value = sc.compute("nacl", probs, soft, distance_type="l2")
    assert torch.isfinite(value) and float(value) != float(sc.compute("nacl", probs, target, distance_type="l2"))
    assert isinstance(sc.compute_all(probs, soft, ["nacl"])["nacl"], float)
    for bad, msg in [(dict(kernel_ops="box"), "kernel_ops"), (dict(distance_type="l3"), "distance_type"),
                     (dict(kernel_size=0), "kernel_size"), (dict(alpha=-1), "alpha")]:
        with pytest.raises(ValueError, match=msg) as info:
            sc.compute("nacl", probs, target, **bad)
        assert "\n" not in str(info.value)


def test_nacl_works_in_every_analysis():
    from segloss_core.analyses import agreement, bias, gradients, optimise
    from segloss_core.analyses.landscape import landscape
    from segloss_core.data.presets import make_case

    for case in (make_case("vessel", size=64), make_case("phantom", size=64)):  # C = 2 and C = 5
        names = ["nacl", "ce"]
        grads = gradients.gradient_maps(case, names, device="cpu")
        assert not grads.unavailable and np.isfinite(grads.results["nacl"].grad).all()
        land = landscape(case, n=3, losses=names, device="cpu")
        assert not land.unavailable and np.isfinite(land.losses["nacl"]).all()
        assert np.isfinite(bias.size_curve(case, names, n=4).values["nacl"]).all()
        assert np.isfinite(agreement.loss_values(agreement.population(case, 4), names)["nacl"]).all()
        run = optimise.optimise(case, optimise.Settings(losses=tuple(names), steps=2, max_side=24), device="cpu",
                                band_model_points=0)
        assert not run.unavailable and list(run.names) == names


def test_nacl_gradcheck():
    gradcheck("nacl", (2, 3, 5, 6))
    gradcheck("nacl", (2, 2, 4, 5, 3), kernel_ops="gaussian", distance_type="l2", sigma=0.7, alpha=0.5)


# ----------------------------------------------------------------------------------------------
# every new loss through every analysis the pages run (the pages iterate the registry)
# ----------------------------------------------------------------------------------------------

NEW = ("mcc", "wasserstein_dice", "dice_focal", "generalized_dice_focal", "unified_focal", "log_hausdorff_dt",
       "cldice", "dice_cldice")


def test_new_losses_are_registered_with_monai_metadata():
    for name in NEW:
        spec = sc.get_loss(name)
        assert spec.formula and spec.summary and "MONAI" in spec.fn.__doc__, name
    assert {n for n in NEW if sc.get_loss(n).slow} == {"log_hausdorff_dt", "cldice", "dice_cldice"}
    assert sc.get_loss("cldice").category == "topology" and sc.get_loss("unified_focal").binary_only
    assert [n for n in sc.list_losses() if sc.get_loss(n).hard_targets_only] == ["wasserstein_dice"]


def test_new_losses_work_in_every_analysis():
    from segloss_core.analyses import agreement, bias, gradients, optimise
    from segloss_core.analyses.landscape import landscape
    from segloss_core.data.presets import make_case

    case = make_case("vessel", size=64)
    names = list(NEW)
    grads = gradients.gradient_maps(case, names, device="cpu")
    assert not grads.unavailable and all(np.isfinite(grads.results[n].grad).all() for n in names)
    land = landscape(case, n=3, losses=names, device="cpu")
    assert not land.unavailable and all(np.isfinite(land.losses[n]).all() for n in names)
    curve = bias.size_curve(case, names, n=5)
    assert all(np.isfinite(curve.values[n]).all() for n in names)
    values = agreement.loss_values(agreement.population(case, 5), names)
    assert all(np.isfinite(values[n]).all() for n in names)
    run = optimise.optimise(case, optimise.Settings(losses=tuple(names), steps=3, max_side=32), device="cpu",
                            band_model_points=0)
    assert not run.unavailable and list(run.names) == names
    multi = make_case("phantom", size=64)  # C = 5: the binary-only loss says why, the rest work
    land = landscape(multi, n=2, losses=names, device="cpu")
    assert set(land.unavailable) == {"unified_focal"} and "binary" in land.unavailable["unified_focal"]


def test_matrix_parameter_in_the_parameter_editor(app_test):
    """The Playground's editor builds a text input for the matrix ParamSpec: bad text gives an inline
    one-line error and changes nothing; a valid matrix reaches the loss table."""
    from segloss_core.data.presets import make_case
    from ui.session import PARAMS_KEY

    at = app_test(query_params={"preset": "phantom", "size": "64"})
    at.run()
    at.selectbox(key="param_loss").set_value("wasserstein_dice").run()
    assert not at.exception
    key = "lp__wasserstein_dice__dist_matrix"
    assert at.text_input(key=key).value == ""
    at.text_input(key=key).input("0,1;1,0").run()  # 2 x 2 for 5 classes: valid matrix, n/a for this case
    assert not at.exception
    assert at.session_state[PARAMS_KEY]["wasserstein_dice"]["dist_matrix"] == ((0.0, 1.0), (1.0, 0.0))
    frame = next(d.value for d in at.dataframe if "family" in d.value.columns)
    note = frame.set_index("loss").loc[sc.get_loss("wasserstein_dice").title, "note"]
    assert "dist_matrix is 2x2" in note
    at.text_input(key=key).input("0,1;1").run()
    assert not at.exception and any("square matrix" in e.value for e in at.error)
    assert at.session_state[PARAMS_KEY]["wasserstein_dice"]["dist_matrix"] == ((0.0, 1.0), (1.0, 0.0))
    m = ";".join(",".join("0" if i == j else str(1 + abs(i - j)) for j in range(5)) for i in range(5))
    at.text_input(key=key).input(m).run()
    assert not at.exception and not at.error
    probs, target = make_case("phantom", size=64).tensors()
    frame = next(d.value for d in at.dataframe if "family" in d.value.columns)
    shown = frame.set_index("loss").loc[sc.get_loss("wasserstein_dice").title, "value"]
    assert shown == pytest.approx(float(sc.compute("wasserstein_dice", probs, target, dist_matrix=m)), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# docs/theory.md, M1-M5
# ----------------------------------------------------------------------------------------------


def test_m1_true_negatives_from_the_confusion_table():
    from segloss_core.core.stats import soft_confusion

    probs, target = make_pair((2, 3, 9, 11))
    soft = 0.7 * target + 0.1
    for g in (target, soft):
        tn = ((1 - probs) * (1 - g)).flatten(2).sum(2)
        conf = soft_confusion(probs, g)
        close(conf.n_pixels - conf.tp - conf.fp - conf.fn, tn)


def test_m2_binary_wasserstein_dice_is_foreground_dice():
    probs, target = make_pair((2, 2, 14, 15))
    close(sc.compute("wasserstein_dice", probs, target), sc.compute("dice", probs, target, include_background=False))
    probs3, target3 = make_pair((2, 3, 14, 15))
    assert float(sc.compute("wasserstein_dice", probs3, target3, dist_matrix="0,1,0.5;1,0,1;0.5,1,0")) <= float(
        sc.compute("wasserstein_dice", probs3, target3))


def test_m4_skeleton_of_binary_masks_and_m5_perfect_cldice():
    from segloss_core.core.losses.topology import soft_skeleton

    _, target = make_pair((2, 3, 16, 17))
    skel = soft_skeleton(target, 3)
    assert bool(((skel == 0) | (skel == 1)).all()) and bool((skel <= target).all())
    assert float(soft_skeleton(torch.ones(1, 1, 6, 7, dtype=torch.float64)).abs().sum()) == 0.0
    for s_hm in (1e-4, 0.3):
        close(sc.compute("cldice", target, target, smooth_hm=s_hm), s_hm / (2 + s_hm), rtol=1e-9)  # 1 - x
