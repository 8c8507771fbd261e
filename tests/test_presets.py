"""Presets build the documented ground truths, and make_case gives valid cases."""

from __future__ import annotations

import numpy as np
import pytest

from segloss_core import Case
from segloss_core.data.perturb import PERTURBATIONS
from segloss_core.data.presets import DEFAULT_PRESET, PRESETS, SIZE_RANGE, TINY_FRACTION, make_case

# docs/theory.md, B8: raster disk sizes on a 256 x 256 grid, (x - 127.5)^2 + (y - 127.5)^2 <= R^2
B8_DISK_AREAS = {2: 12, 4: 52, 8: 208, 16: 812, 32: 3228, 64: 12892, 100: 31428}


def test_expected_presets_and_default():
    assert set(PRESETS) == {"disk", "ring", "two_blobs", "vessel", "tiny_lesion", "empty", "phantom", "retina"}
    assert DEFAULT_PRESET == "disk" and next(iter(PRESETS)) == "disk"
    for p in PRESETS.values():
        assert p.title and p.caption and "\n" not in p.caption
        assert len(p.doc) > 40  # how the GT is made
        assert set(p.prediction) <= set(PERTURBATIONS)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("size", [SIZE_RANGE[0], 256])
def test_every_preset_builds_a_label_map_and_a_valid_case(name, size):
    gt, names = PRESETS[name].build(size)
    assert gt.shape == (size, size) and gt.dtype == np.int64
    assert gt.min() >= 0 and gt.max() < len(names) and len(names) >= 2
    case = make_case(name, size)
    assert isinstance(case, Case) and case.class_names == names
    np.testing.assert_array_equal(case.gt, gt)
    assert np.isfinite(case.probs).all() and case.probs.min() >= 0 and case.probs.max() <= 1
    np.testing.assert_allclose(case.probs.sum(0), 1.0, atol=1e-5)
    assert case.meta["preset"] == name


@pytest.mark.parametrize("radius, area", list(B8_DISK_AREAS.items()))
def test_disk_raster_area_matches_paper_theory_b8(radius, area):
    gt, _ = PRESETS["disk"].build(256, radius=radius)
    assert int(gt.sum()) == area


def test_ring_area_is_two_pi_r_t():
    gt, _ = PRESETS["ring"].build(256, radius=60, thickness=10)
    assert gt.sum() == pytest.approx(2 * np.pi * 60 * 10, rel=0.02)
    assert gt[127, 127] == 0  # hollow


def test_two_blobs_have_very_different_sizes():
    from scipy import ndimage

    gt, _ = PRESETS["two_blobs"].build(256)
    parts, n = ndimage.label(gt)
    assert n == 2
    sizes = sorted(np.bincount(parts.ravel())[1:])
    assert sizes[1] > 20 * sizes[0]


def test_vessel_is_thin_and_connected():
    from scipy import ndimage

    gt, _ = PRESETS["vessel"].build(256, thickness=3)
    assert ndimage.label(gt)[1] == 1
    # thin: area ~ thickness x curve length, and no pixel deeper than 3 px
    from segloss_core.data.presets import _vessel_points

    pts = _vessel_points(256, 0.15, 1.5)
    main, branch = pts[: 8 * 256], pts[8 * 256:]
    length = sum(np.linalg.norm(np.diff(p, axis=0), axis=1).sum() for p in (main, branch))
    assert gt.sum() == pytest.approx(3 * length, rel=0.15)
    assert ndimage.distance_transform_edt(gt).max() <= 3
    assert 0.005 < gt.mean() < 0.05


@pytest.mark.parametrize("size", [64, 128, 256, 512])
@pytest.mark.parametrize("radius", [1.0, 5.0, 25.0])
def test_tiny_lesion_is_below_half_a_percent(size, radius):
    gt, _ = PRESETS["tiny_lesion"].build(size, radius=radius)
    assert 0 < gt.sum() < TINY_FRACTION * size * size


def test_empty_has_no_foreground_and_two_classes():
    gt, names = PRESETS["empty"].build(128)
    assert not gt.any() and len(names) == 2
    case = make_case("empty", 128)
    assert case.probs[1].sum() == pytest.approx(PRESETS["empty"].prediction["fp_area"], rel=0.02)


@pytest.mark.parametrize("name", ["phantom", "retina"])
def test_real_image_presets_have_three_or_more_present_classes(name):
    gt, names = PRESETS[name].build(256)
    present = np.unique(gt)
    assert len(present) >= 3 and len(names) >= 3
    np.testing.assert_array_equal(present, np.arange(len(names)))
    assert PRESETS[name].image is not None and PRESETS[name].image(64).shape == (64, 64)


def test_phantom_classes_follow_the_intensity_regions():
    from skimage.data import shepp_logan_phantom

    gt, names = PRESETS["phantom"].build(400)  # native size: no resizing
    ph = np.round(shepp_logan_phantom(), 3)
    np.testing.assert_array_equal(gt == names.index("skull"), ph >= 0.95)
    np.testing.assert_array_equal(gt == names.index("brain"), np.isclose(ph, 0.2))
    assert (ph[gt == names.index("ventricles")] == 0).all()


def test_retina_lesions_are_tiny_and_inside_the_field_of_view():
    from scipy import ndimage

    gt, names = PRESETS["retina"].build(256, n_lesions=5, lesion_radius=2.0)
    lesions = gt == names.index("lesions")
    parts, n = ndimage.label(lesions)
    assert n == 5
    assert lesions.mean() < TINY_FRACTION
    fov = ndimage.binary_erosion(gt > 0, iterations=3)
    assert fov[lesions].all()
    # reproducible by seed, different with another seed
    np.testing.assert_array_equal(gt, PRESETS["retina"].build(256, n_lesions=5, lesion_radius=2.0)[0])
    other, _ = PRESETS["retina"].build(256, n_lesions=5, lesion_radius=2.0, lesion_seed=1)
    assert not np.array_equal(gt, other)


def test_make_case_prediction_amounts():
    default = make_case("disk", 128)
    assert default.meta["prediction"] == PRESETS["disk"].prediction
    perfect = make_case("disk", 128, prediction={"softness": 0.0})
    np.testing.assert_array_equal(perfect.hard_prediction, perfect.gt)
    shifted = make_case("disk", 128, prediction={"shift_x": 5.0})
    assert not np.array_equal(shifted.hard_prediction, shifted.gt)


@pytest.mark.parametrize("call, match", [
    (lambda: make_case("nope"), "unknown preset"),
    (lambda: make_case("disk", 32), "size"),
    (lambda: make_case("disk", radius=-1), "outside"),
    (lambda: make_case("disk", thickness=3), "no parameter"),
    (lambda: make_case("disk", prediction={"blur": 1}), "unknown perturbation"),
])
def test_bad_requests_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
