"""Soft skeleton on the box where a channel is not constant, and the per-call memo of clDice's
prediction sums: the same numbers as the full-image computation."""

import numpy as np
import pytest
import torch

from segloss_core.core import _tensors
from segloss_core.core.engine import compute_all
from segloss_core.core.losses.topology import _skeleton_cropped, cldice_loss, soft_skeleton


def _blob_volume(seed: int, shape=(1, 1, 48, 50, 46), fill=1.0) -> torch.Tensor:
    """A constant ``fill`` volume with a random soft blob (part hard 0/1) well inside and one at an edge."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full(shape, fill, dtype=torch.float64)
    x[..., 10:17, 12:20, 9:15] = torch.rand(*shape[:2], 7, 8, 6, generator=g, dtype=torch.float64)
    x[..., 0:3, 20:26, 20:28] = (torch.rand(*shape[:2], 3, 6, 8, generator=g, dtype=torch.float64) > 0.5).double()
    return x


@pytest.mark.parametrize("iterations", [0, 1, 3, 5])
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_cropped_skeleton_equals_the_pooled_full_image_one(iterations, fill):
    x = _blob_volume(iterations, fill=fill)
    box, skel = _skeleton_cropped(x, iterations)
    assert skel is not None and skel.numel() < x.numel()  # the box is a real crop
    with torch.enable_grad():  # the graph path: max pooling over the whole image
        pooled = soft_skeleton(x.clone().requires_grad_(True), iterations).detach()
    assert torch.equal(soft_skeleton(x, iterations), pooled)
    outside = torch.ones_like(x, dtype=torch.bool)
    outside[box] = False
    assert not pooled[outside].any()  # the skeleton vanishes outside the box


def test_constant_channel_has_an_empty_skeleton_without_work():
    box, skel = _skeleton_cropped(torch.full((2, 1, 9, 9, 9), 0.3), 3)
    assert skel is None
    assert not soft_skeleton(torch.full((2, 2, 9, 9, 9), 0.3), 3).any()


def test_cldice_and_dice_cldice_share_prediction_sums_within_one_call():
    lab = torch.zeros(1, 24, 26, 22, dtype=torch.long)
    lab[:, 5:19, 6:20, 4:18] = 1
    lab[:, 9:15, 10:16, 8:14] = 2
    target = torch.nn.functional.one_hot(lab, 3).permute(0, 4, 1, 2, 3).double()
    rng = np.random.default_rng(0)
    probs_np = np.ascontiguousarray(rng.dirichlet(np.ones(3), size=lab.shape[1:]).transpose(3, 0, 1, 2)[None])
    probs = torch.from_numpy(probs_np)  # memory torch does not own: remembered within the call only
    together = compute_all(probs, target, ["cldice", "dice_cldice"])
    alone = {n: compute_all(probs, target, [n])[n] for n in ("cldice", "dice_cldice")}
    assert together == alone
    assert together["cldice"] == pytest.approx(float(cldice_loss(probs.clone(), target)), rel=1e-12)
    assert id(probs) not in _tensors._memo  # forgotten when the call ended


def test_hausdorff_and_log_hausdorff_share_one_evaluation_within_a_call():
    lab = torch.zeros(1, 20, 22, 18, dtype=torch.long)
    lab[:, 4:15, 5:17, 3:14] = 1
    lab[:, 8:12, 9:13, 6:10] = 2
    target = torch.nn.functional.one_hot(lab, 3).permute(0, 4, 1, 2, 3).double()
    rng = np.random.default_rng(1)
    probs = torch.from_numpy(np.ascontiguousarray(rng.dirichlet(np.ones(3), size=lab.shape[1:]).transpose(3, 0, 1, 2)[None]))
    names = ["hausdorff_dt", "log_hausdorff_dt"]
    together = compute_all(probs, target, names, spacing=(1.0, 2.0, 0.5))
    alone = {n: compute_all(probs, target, [n], spacing=(1.0, 2.0, 0.5))[n] for n in names}
    assert together == alone
    assert together["log_hausdorff_dt"] == pytest.approx(np.log1p(together["hausdorff_dt"]), rel=1e-12)
    assert id(probs) not in _tensors._memo
