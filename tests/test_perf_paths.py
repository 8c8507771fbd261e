"""Checks of the speed paths: per-tensor memo invalidation, row-loop vs vectorised paths, fused CE/focal."""
import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.core import _tensors
from segloss_core.core.stats import soft_confusion


def _case(b=2, c=3, h=80, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(b, c, h, w, generator=g, dtype=torch.float64), 1)
    target = sc.one_hot(torch.randint(0, c, (b, h, w), generator=g), c, dtype=torch.float64)
    return probs, target


def test_memo_sees_in_place_changes():
    probs, target = _case()
    first = soft_confusion(probs, target).target_sum
    assert torch.equal(soft_confusion(probs, target).target_sum, first)  # memo hit, same values
    target[:, :, :10] = target[:, :, :10].roll(1, dims=1)  # in place: version counter bumps
    assert torch.equal(soft_confusion(probs, target).target_sum, target.flatten(2).sum(-1))
    target[0, 0, 0, 0] = 2.0
    with pytest.raises(ValueError, match="target"):
        sc.compute("dice", probs, target)
    view = target[:, 1]
    view.zero_()  # through a view: same counter
    assert torch.equal(soft_confusion(probs, target).target_sum[:, 1], torch.zeros(2, dtype=torch.float64))


def test_memo_skips_numpy_backed_tensors():
    arr = np.zeros((1, 2, 8, 8))
    arr[0, 0] = 1
    t = torch.from_numpy(arr)
    probs = torch.full((1, 2, 8, 8), 0.5, dtype=torch.float64)
    assert float(soft_confusion(probs, t).target_sum[0, 0]) == 64
    arr[0, 0, :4] = 0  # numpy writes do not bump torch's version counter: must not be memoised
    arr[0, 1, :4] = 1
    assert float(soft_confusion(probs, t).target_sum[0, 0]) == 32
    arr[0, 0, 0, 0] = 7
    with pytest.raises(ValueError, match="target"):
        sc.compute("dice", probs, t)


def test_returned_tables_do_not_alias_the_memo():
    probs, target = _case()
    conf = soft_confusion(probs, target)
    conf.target_sum.mul_(0)
    assert torch.equal(soft_confusion(probs, target).target_sum, target.flatten(2).sum(-1))


@pytest.mark.parametrize("name", ["dice", "iou", "generalized_dice", "tversky", "ce", "focal", "dice_ce"])
def test_one_thread_row_paths_equal_vectorised_paths(name):
    probs, target = _case(h=96, w=64)  # 6144 px per row: the one-thread row loops apply
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        v1, g1 = sc.loss_and_grad(name, probs, target)
        torch.set_num_threads(2)
        v2, g2 = sc.loss_and_grad(name, probs, target)
    finally:
        torch.set_num_threads(threads)
    assert v1 == pytest.approx(v2, rel=1e-13, abs=1e-15)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-15)


def test_memo_forgets_dead_tensors():
    probs, target = _case()
    soft_confusion(probs, target)
    ident = id(target)
    del target
    assert ident not in _tensors._memo
