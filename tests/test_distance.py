"""Distance maps: MONAI 1.6.1 / Kervadec formulas (scipy, full-image EDTs) as references, cache, spacing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist

from segloss_core import one_hot
from segloss_core.core.distance import (
    boundary_weight_map,
    cache_info,
    clear_cache,
    signed_distance_map,
    unsigned_distance_map,
)


def monai_losses():
    return pytest.importorskip("monai.losses")


def blob_labels(shape, num_classes, seed, bg_bias=0.6):
    """Smooth random label map (B, *spatial) with blob-shaped classes, background dominant."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((num_classes, *shape)), sigma=(0, 0) + (2,) * (len(shape) - 1))
    noise[0] += bg_bias * noise.std()
    return torch.from_numpy(noise.argmax(0))


def make_target(shape, num_classes, seed, dtype=torch.float64):
    """One-hot (B, C, *spatial) with blobs; B >= 3: sample 1 is all class 1 (full / empty channels),
    and for C >= 3 class C-1 is empty in sample 0."""
    labels = blob_labels(shape, num_classes, seed)
    if num_classes >= 3:
        labels[0][labels[0] == num_classes - 1] = 0
    labels[1] = 1
    return one_hot(labels, num_classes, dtype=dtype)


def kervadec_signed(target: np.ndarray, spacing) -> np.ndarray:
    """Kervadec's one_hot2dist per (b, c) on full images, with MONAI's empty / full guard."""
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


CASES = [((3, 40, 36), 3), ((3, 9, 12, 11), 3)]


@pytest.mark.parametrize("shape,num_classes", CASES)
def test_signed_map_equals_monai_boundary_loss_map(shape, num_classes):
    target = make_target(shape, num_classes, seed=1)
    ours = signed_distance_map(target, cache=False)
    ref = monai_losses().BoundaryLoss().compute_distance_map(target).double()
    assert ours.shape == target.shape and ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    assert ours[0, num_classes - 1].abs().max() == 0  # empty channel
    assert ours[1].abs().max() == 0  # full channel 1, empty channels 0 and 2


def test_signed_map_small_square_profile():
    target = torch.zeros(1, 2, 7, 7, dtype=torch.float64)
    target[0, 1, 2:5, 2:5] = 1
    target[0, 0] = 1 - target[0, 1]
    row = signed_distance_map(target, cache=False)[0, 1, 3]
    # outside: distance to the square; inner ring 0; centre -(EDT - 1) = -1
    assert row.tolist() == [2.0, 1.0, 0.0, -1.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("shape,num_classes,spacing", [((3, 30, 26), 3, (2.5, 0.7)),
                                                        ((3, 8, 10, 9), 2, (3.0, 1.0, 0.5))])
def test_signed_map_with_spacing_matches_scipy_sampling(shape, num_classes, spacing):
    target = make_target(shape, num_classes, seed=2)
    ours = signed_distance_map(target, spacing, cache=False)
    ref = torch.from_numpy(kervadec_signed(target.numpy(), spacing))
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,num_classes", CASES)
def test_unsigned_map_equals_monai_hausdorff_distance_field(shape, num_classes):
    target = make_target(shape, num_classes, seed=3)
    ours = unsigned_distance_map(target, cache=False)
    field = monai_losses().HausdorffDTLoss().distance_field
    ref = torch.cat([field(target[:, [c]]) for c in range(num_classes)], dim=1)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_unsigned_map_thresholds_probabilities_and_uses_spacing():
    rng = np.random.default_rng(4)
    probs = torch.from_numpy(ndimage.gaussian_filter(rng.random((2, 3, 20, 24)), sigma=(0, 0, 2, 2)))
    spacing = (1.5, 0.5)
    ours = unsigned_distance_map(probs, spacing, cache=False)
    ref = torch.from_numpy(edt_sum(probs.numpy(), spacing))
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    bool_in = unsigned_distance_map(probs > 0.5, spacing, cache=False)
    assert bool_in.dtype == torch.get_default_dtype()
    torch.testing.assert_close(bool_in.double(), ref, rtol=1e-6, atol=1e-6)


def brute_force_weight(target: np.ndarray, spacing, include_background: bool) -> np.ndarray:
    """D = 1 - d / max d with d = min distance to boundary pixels (erosion with border 1, cdist)."""
    spatial = target.shape[2:]
    structure = ndimage.generate_binary_structure(len(spatial), 1)
    coords = np.indices(spatial).reshape(len(spatial), -1).T * np.asarray(spacing)
    out = np.zeros((target.shape[0], 1, *spatial))
    first = 0 if include_background else 1
    for b in range(target.shape[0]):
        boundary = np.zeros(spatial, dtype=bool)
        for c in range(first, target.shape[1]):
            m = target[b, c] > 0.5
            boundary |= m & ~ndimage.binary_erosion(m, structure, border_value=1)
        if not boundary.any():
            continue
        d = cdist(coords, coords[boundary.reshape(-1)]).min(axis=1).reshape(spatial)
        out[b, 0] = 1 - d / d.max()
    return out


@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("shape,spacing", [((3, 18, 21), None), ((3, 18, 21), (2.0, 0.5)),
                                           ((3, 7, 9, 8), (2.5, 1.0, 1.0))])
def test_boundary_weight_map_matches_brute_force(shape, spacing, include_background):
    labels = blob_labels(shape, 3, seed=5)
    labels[2] = 0  # sample without foreground: no foreground boundary
    target = one_hot(labels, 3, dtype=torch.float64)
    ours = boundary_weight_map(target, spacing, include_background=include_background, cache=False)
    sp = spacing or (1.0,) * (len(shape) - 1)
    ref = torch.from_numpy(brute_force_weight(target.numpy(), sp, include_background))
    assert ours.shape == (shape[0], 1, *shape[1:])
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    assert float(ours.min()) >= 0 and float(ours.max()) <= 1
    # sample 2 is all background: no foreground boundary, and the image edge is no boundary either
    assert ours[2].abs().max() == 0


def test_boundary_weight_map_is_one_on_the_boundary():
    target = torch.zeros(1, 2, 9, 9)
    target[0, 1, 3:6, 2:7] = 1
    target[0, 0] = 1 - target[0, 1]
    weight = boundary_weight_map(target, cache=False)[0, 0]
    ring = target[0, 1].bool() & ~torch.from_numpy(ndimage.binary_erosion(target[0, 1].numpy() > 0.5))
    assert torch.all(weight[ring] == 1)
    assert torch.all(weight[~ring] < 1)
    assert weight.dtype == torch.float32


def test_cache_hits_and_keys():
    clear_cache()
    target = make_target((3, 24, 20), 3, seed=6)
    first = signed_distance_map(target)
    misses = cache_info()["misses"]
    assert misses > 0 and cache_info()["entries"] == misses
    again = signed_distance_map(target)
    assert cache_info()["hits"] == misses
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    again.add_(1)  # returned tensors are fresh copies
    torch.testing.assert_close(signed_distance_map(target), first, rtol=0, atol=0)
    # another mask and another spacing are other keys
    moved = target.roll(3, dims=-1)
    torch.testing.assert_close(signed_distance_map(moved), signed_distance_map(moved, cache=False))
    aniso = signed_distance_map(target, (2.0, 1.0))
    torch.testing.assert_close(aniso, signed_distance_map(target, (2.0, 1.0), cache=False))
    assert not torch.equal(aniso, first)
    clear_cache()
    assert cache_info() == {"hits": 0, "misses": 0, "bytes": 0, "entries": 0}


def test_repeated_images_in_a_batch_are_computed_once():
    clear_cache()
    target = make_target((3, 16, 16), 2, seed=7)[:1].repeat(5, 1, 1, 1)
    maps = signed_distance_map(target)
    assert cache_info()["misses"] == 2  # the two channels of one image
    for b in range(5):
        torch.testing.assert_close(maps[b], maps[0], rtol=0, atol=0)
    clear_cache()


def test_dtype_follows_input():
    target = make_target((3, 12, 12), 2, seed=8, dtype=torch.float32)
    assert signed_distance_map(target).dtype == torch.float32
    assert unsigned_distance_map(target.double()).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_maps_land_on_the_input_device():
    target = make_target((3, 12, 12), 2, seed=9).cuda()
    for fn in (signed_distance_map, unsigned_distance_map, boundary_weight_map):
        out = fn(target)
        assert out.device == target.device
        torch.testing.assert_close(out.cpu(), fn(target.cpu()))


@pytest.mark.parametrize(
    "spacing,match",
    [((1.0,), "2 spatial axes"), ((1.0, -1.0), "positive"), ((1.0, float("nan")), "positive"), ("ab", "positive")],
)
def test_bad_spacing_raises(spacing, match):
    target = make_target((3, 8, 8), 2, seed=10)
    with pytest.raises(ValueError, match=match):
        signed_distance_map(target, spacing)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="expected a"):
        unsigned_distance_map(torch.zeros(8, 8))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 1.3, 2.1)])
def test_float32_maps_agree_with_float64_scipy_in_3d(spacing):
    """Float32 maps (the fast EDT when installed) lie within 1e-6 (relative) of scipy's float64 EDT."""
    z, y, x = np.indices((23, 31, 27))
    ball = (z - 11) ** 2 / 64 + (y - 14) ** 2 / 100 + (x - 12) ** 2 / 49 < 1
    target = torch.from_numpy(np.stack([~ball, ball])[None]).double()
    for fn, ref in ((signed_distance_map, kervadec_signed), (unsigned_distance_map, edt_sum)):
        ours = fn(target, spacing, cache=False, dtype=torch.float32)
        assert ours.dtype == torch.float32
        want = torch.from_numpy(ref(target.numpy() > 0.5, spacing)).float()
        torch.testing.assert_close(ours, want, rtol=1e-6, atol=1e-6)
    weight = boundary_weight_map(target, spacing, cache=False, dtype=torch.float32)
    torch.testing.assert_close(weight.double(), boundary_weight_map(target, spacing, cache=False),
                               rtol=1e-6, atol=1e-6)
