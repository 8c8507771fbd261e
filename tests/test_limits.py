"""Memory caps by voxels x classes: every entry point refuses what would not fit, with one
line, *before* allocating it.

The example of the issue: a 512 x 512 x 300 volume with 10 classes is 786,432,000 values (3 GiB per
float32 one-hot copy), above ``limits.MAX_ELEMENTS`` (268,435,456). The inputs here are stride-0
views (``np.broadcast_to`` / ``Tensor.expand``) or headers, so the test itself allocates almost
nothing; the peak resident memory of the process is checked not to grow by anything like 3 GiB.
"""

from __future__ import annotations

import gzip
import resource
import sys

import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.analyses import agreement
from segloss_core.analyses.landscape import landscape as landscape_fn
from segloss_core.core import limits
from segloss_core.data import files as sio
from segloss_core.data import perturb
from tests.test_io import nifti_header

BIG_SPATIAL = (300, 512, 512)
BIG_C = 10
BIG_VALUES = 786_432_000
#: Allowed growth of the process's peak RSS while refusing (a 3 GiB allocation would blow it).
RSS_SLACK_MB = 400


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def _refuses(fn, match: str = r"exceed") -> str:
    """Run ``fn``; it must raise a one-line ValueError matching ``match`` without a big allocation."""
    before = _peak_rss_mb()
    with pytest.raises(ValueError, match=match) as info:
        fn()
    grown = _peak_rss_mb() - before
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300, msg
    assert grown < RSS_SLACK_MB, f"peak memory grew by {grown:.0f} MB before refusing: {msg}"
    return msg


def big_labels_np(value: int = 0) -> np.ndarray:
    return np.broadcast_to(np.int64(value), BIG_SPATIAL)


def big_probs_np() -> np.ndarray:
    return np.broadcast_to(np.float32(1.0 / BIG_C), (BIG_C, *BIG_SPATIAL))


def big_probs_t() -> torch.Tensor:
    return torch.full((1, 1, 1, 1, 1), 1.0 / BIG_C).expand(1, BIG_C, *BIG_SPATIAL)


def test_issue_example_exceeds_the_limit():
    assert BIG_C * np.prod(BIG_SPATIAL) == BIG_VALUES > limits.MAX_ELEMENTS
    assert limits.max_elements() == limits.MAX_ELEMENTS


def test_check_elements_message_and_boundary(monkeypatch):
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 1000)
    assert limits.check_elements((10, 50), 2, what="x") == 1000  # exactly at the limit: fine
    with pytest.raises(ValueError) as info:
        limits.check_elements((10, 50), 2, what="one_hot", batch=2)
    assert str(info.value).startswith(
        "one_hot: 10x50 voxels x 2 classes x 2 predictions = 2,000 values exceed the limit of 1,000"
    )
    msg = _refuses(lambda: limits.check_elements(BIG_SPATIAL, BIG_C, what="case"))
    assert "300x512x512 voxels x 10 classes = 786,432,000 values" in msg
    assert "crop, downsample or use fewer classes" in msg


@pytest.mark.parametrize("api", ["compute", "loss_and_grad", "losses_and_grads", "compute_all"])
def test_loss_api_refuses(api):
    p = big_probs_t()
    fns = {
        "compute": lambda: sc.compute("dice", p, p),
        "loss_and_grad": lambda: sc.loss_and_grad("ce", p, p, wrt="logits"),
        "losses_and_grads": lambda: sc.losses_and_grads(["ce", "dice"], p, p),
        "compute_all": lambda: sc.compute_all(p, p),
    }
    msg = _refuses(fns[api], r"786,432,000 voxels x classes exceed the limit")
    assert "crop or downsample" in msg


def test_one_hot_refuses_before_allocating():
    lab = torch.zeros((1, 1, 1, 1), dtype=torch.long).expand(1, *BIG_SPATIAL)
    _refuses(lambda: sc.one_hot(lab, BIG_C), r"^one_hot: 300x512x512 voxels x 10 classes = 786,432,000")
    # the batch counts too: 3 label maps of 256x256x300 with 2 classes fit one by one, not together
    small = torch.zeros((1, 1, 1, 1), dtype=torch.long).expand(3, 300, 512, 512)
    _refuses(lambda: sc.one_hot(small, 2), r"2 classes x 3 predictions")


def test_one_hot_limit_is_the_shared_knob(monkeypatch):
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 2 * 10 * 50)
    assert sc.one_hot(torch.zeros(1, 10, 50, dtype=torch.long), 2).shape == (1, 2, 10, 50)
    with pytest.raises(ValueError, match="exceed the limit of 1,000"):
        sc.one_hot(torch.zeros(1, 10, 50, dtype=torch.long), 3)
    # class count from the labels (max 2 -> 3 classes): refused after the scan, before the one-hot
    with pytest.raises(ValueError, match=r"^one_hot: 10x50 voxels x 3 classes = 1,500 values"):
        sc.one_hot(torch.full((1, 10, 50), 2, dtype=torch.long))
    probs = torch.full((1, 3, 10, 50), 1 / 3)
    with pytest.raises(ValueError, match="exceed the limit of 1,000"):
        sc.compute("ce", probs, probs)


def test_case_refuses_before_converting():
    msg = _refuses(lambda: sc.Case(big_labels_np(), big_probs_np()), r"^case: 300x512x512 voxels x 10 classes")
    assert "786,432,000" in msg
    # float64 input would be copied to float32 by Case: still refused first
    p64 = np.broadcast_to(np.float64(0.1), (BIG_C, *BIG_SPATIAL))
    _refuses(lambda: sc.Case(big_labels_np(), p64), r"^case:")


def test_io_refuses_big_volume_from_its_header():
    """A .nii.gz declaring 512x512x300 x 10 float32 class maps (a few hundred bytes in all)."""
    data = gzip.compress(nifti_header((512, 512, 300, BIG_C), np.float32) + b"\0" * 1024)
    assert len(data) < 2000
    msg = _refuses(lambda: sio.read_prediction(data), r"header declares 512x512x300x10 = 786,432,000 values")
    assert "(voxels x classes)" in msg  # (voxels x classes of hard predictions: tests/test_io.py)


def test_prediction_from_gt_refuses(monkeypatch):
    _refuses(lambda: perturb.prediction_from_gt(big_labels_np(), BIG_C), r"^prediction_from_gt: .* 10 classes")
    # labels 0..9 with the class count left to the function: refused after reading the labels
    small = np.zeros((40, 50, 50), np.int64)
    small[0, 0, 0] = 9
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 40 * 50 * 50 * 9)
    with pytest.raises(ValueError, match=r"^prediction_from_gt: 40x50x50 voxels x 10 classes"):
        perturb.prediction_from_gt(small)


def test_prepare_and_landscape_refuse_before_copying():
    _refuses(lambda: perturb.prepare(big_probs_np(), big_labels_np()), r"^prediction: 300x512x512 voxels x 10")
    _refuses(lambda: landscape_fn(big_probs_np(), big_labels_np(), n=5, device="cpu"),
             r"^prediction: 300x512x512 voxels x 10 classes")
    # a binary foreground map counts as 2 classes
    fg = np.broadcast_to(np.float32(0.5), (600, 512, 512))
    _refuses(lambda: perturb.prepare(fg, np.broadcast_to(np.int64(0), (600, 512, 512))),
             r"600x512x512 voxels x 2 classes")


def test_apply_refuses_a_batch_that_does_not_fit():
    probs = np.full((2, 512, 512), 0.5, np.float32)
    gt = np.zeros((512, 512), np.int64)
    prep = perturb.prepare(probs, gt)
    msg = _refuses(lambda: perturb.apply(prep, gt, {"shift_x": np.linspace(0, 2, 1025)}),
                   r"^perturb.apply: 512x512 voxels x 2 classes x 1025 predictions")
    assert "537,395,200" in msg
    out = perturb.apply(prep, gt, {"shift_x": np.linspace(0, 2, 3)})  # a small batch still works
    assert out.shape == (3, 2, 512, 512)


def test_population_refuses_too_many_predictions():
    gt = np.zeros((512, 512), np.int64)
    gt[200:300, 200:300] = 1
    _refuses(lambda: agreement.population(gt, n=1025), r"^population: 512x512 voxels x 1025 predictions")
