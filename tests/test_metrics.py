"""Segmentation metrics vs MONAI 1.6.1 (compute_dice / iou / hausdorff / ASSD / confusion), hand cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

import segloss_core as sc
from segloss_core import one_hot
from segloss_core.core.metrics import METRIC_NAMES, confusion_counts, mean_over_classes, segmentation_metrics


def blob_labels(shape, num_classes, seed, bg_bias=0.5):
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((num_classes, *shape)), sigma=(0,) + (2,) * len(shape))
    noise[0] += bg_bias * noise.std()
    return noise.argmax(0)


def monai_reference(pred: np.ndarray, gt: np.ndarray, num_classes: int, spacing) -> dict[int, dict[str, float]]:
    """MONAI metrics per foreground class, NaN / inf mapped to None."""
    monai_metrics = pytest.importorskip("monai.metrics")
    yp = one_hot(torch.from_numpy(pred)[None], num_classes)
    yt = one_hot(torch.from_numpy(gt)[None], num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        confusion = monai_metrics.get_confusion_matrix(yp, yt, include_background=False)
        table = {
            "dice": monai_metrics.compute_dice(yp, yt, include_background=False, ignore_empty=True),
            "jaccard": monai_metrics.compute_iou(yp, yt, include_background=False, ignore_empty=True),
            "precision": monai_metrics.compute_confusion_matrix_metric("precision", confusion),
            "recall": monai_metrics.compute_confusion_matrix_metric("recall", confusion),
            "hd": monai_metrics.compute_hausdorff_distance(yp, yt, spacing=spacing),
            "hd95": monai_metrics.compute_hausdorff_distance(yp, yt, percentile=95, spacing=spacing),
            "assd": monai_metrics.compute_average_surface_distance(yp, yt, symmetric=True, spacing=spacing),
        }
    out: dict[int, dict[str, float]] = {}
    for c in range(1, num_classes):
        row = {}
        for name, values in table.items():
            v = float(values[0, c - 1])
            row[name] = v if math.isfinite(v) else None
        out[c] = row
    return out


def assert_rows_close(ours: dict, ref: dict, rtol: float = 1e-5):
    assert set(ours) == set(METRIC_NAMES)
    for name in METRIC_NAMES:
        if ref[name] is None:
            assert ours[name] is None, name
        else:
            assert ours[name] is not None, name
            assert ours[name] == pytest.approx(ref[name], rel=rtol, abs=1e-9), name


@pytest.mark.parametrize(
    "shape,spacing",
    [((48, 40), None), ((48, 40), (0.7, 2.5)), ((14, 18, 16), None), ((14, 18, 16), (3.0, 0.9, 0.9))],
)
def test_label_maps_match_monai(shape, spacing):
    gt = blob_labels(shape, 4, seed=1)
    pred = np.roll(gt, 2, axis=-1)
    noise = blob_labels(shape, 4, seed=3, bg_bias=1.5)
    pred = np.where(noise > 0, noise, pred)  # spurious blobs far from the objects
    pred[pred == 3] = 0  # class 3 missing from the prediction: distances undefined
    ours = segmentation_metrics(pred, gt, spacing=spacing)
    ref = monai_reference(pred, gt, 4, spacing)
    assert set(ours) == {1, 2, 3}
    for c in ours:
        assert_rows_close(ours[c], ref[c])
    assert ours[3]["dice"] == 0 and ours[3]["hd"] is None and ours[3]["precision"] is None
    assert ours[1]["hd"] > ours[1]["hd95"] > 0


@pytest.mark.parametrize("spacing", [None, (1.5, 0.5)])
def test_bool_masks_match_monai_and_accept_tensors(spacing):
    gt = blob_labels((40, 44), 2, seed=4) == 1
    pred = ndimage.binary_dilation(gt, iterations=2) & ~ndimage.binary_erosion(gt, iterations=6)
    pred[2:5, 30:34] = True
    ours = segmentation_metrics(pred, gt, spacing=spacing)
    ref = monai_reference(pred.astype(np.int64), gt.astype(np.int64), 2, spacing)[1]
    assert_rows_close(ours, ref)
    from_tensors = segmentation_metrics(torch.from_numpy(pred), torch.from_numpy(gt), spacing=spacing)
    assert from_tensors == ours
    assert sc.metrics(pred, gt, spacing=spacing) == ours


def test_object_on_the_image_edge_matches_monai():
    gt = np.zeros((20, 20), dtype=np.int64)
    gt[0:8, 0:20] = 1
    pred = np.zeros_like(gt)
    pred[0:5, 3:20] = 1
    assert_rows_close(segmentation_metrics(pred, gt)[1], monai_reference(pred, gt, 2, None)[1])


# ---------------------------------------------------------------------------------------------- hand cases


def test_both_empty_is_undefined():
    empty = np.zeros((8, 8), dtype=bool)
    assert segmentation_metrics(empty, empty) == dict.fromkeys(METRIC_NAMES)


def test_empty_gt_with_false_positives():
    gt = np.zeros((8, 8), dtype=bool)
    pred = gt.copy()
    pred[2, 3] = True
    m = segmentation_metrics(pred, gt)
    assert m["precision"] == 0.0
    assert all(m[k] is None for k in ("dice", "jaccard", "recall", "hd", "hd95", "assd"))


def test_empty_prediction_of_a_present_object():
    gt = np.zeros((8, 8), dtype=bool)
    gt[2:4, 3:6] = True
    m = segmentation_metrics(np.zeros_like(gt), gt)
    assert m["dice"] == 0.0 and m["jaccard"] == 0.0 and m["recall"] == 0.0
    assert all(m[k] is None for k in ("precision", "hd", "hd95", "assd"))


def test_single_pixels():
    gt = np.zeros((10, 10), dtype=bool)
    gt[1, 1] = True
    same = segmentation_metrics(gt, gt)
    assert same == {"dice": 1.0, "jaccard": 1.0, "precision": 1.0, "recall": 1.0, "hd": 0.0, "hd95": 0.0,
                    "assd": 0.0}
    pred = np.zeros_like(gt)
    pred[4, 5] = True  # (3, 4) pixels away
    m = segmentation_metrics(pred, gt)
    assert m["dice"] == 0.0 and m["hd"] == 5.0 and m["hd95"] == 5.0 and m["assd"] == 5.0
    m = segmentation_metrics(pred, gt, spacing=(2.0, 1.0))
    assert m["hd"] == pytest.approx(math.hypot(6.0, 4.0))


def test_num_classes_adds_absent_classes_and_mean_skips_undefined():
    gt = np.zeros((12, 12), dtype=np.int64)
    gt[2:6, 2:6] = 1
    pred = gt.copy()
    pred[2:6, 2] = 0
    m = segmentation_metrics(pred, gt, num_classes=3)
    assert set(m) == {1, 2}
    assert m[2] == dict.fromkeys(METRIC_NAMES)
    assert m[1]["dice"] == pytest.approx(2 * 12 / (12 + 16))
    mean = mean_over_classes(m)
    assert mean["dice"] == m[1]["dice"] and mean["hd"] == m[1]["hd"]
    # float label maps holding integers are label maps too
    assert segmentation_metrics(pred.astype(np.float32), gt.astype(np.float64)) == {1: m[1]}


def test_confusion_counts():
    gt = np.zeros((6, 7), dtype=bool)
    gt[1:4, 1:4] = True
    pred = np.zeros_like(gt)
    pred[2:5, 2:6] = True
    tp, fp, fn, tn = confusion_counts(pred, gt)
    assert (tp, fp, fn) == (4, 8, 5) and tp + fp + fn + tn == 42
    counts = confusion_counts(torch.from_numpy(pred.astype(np.int64) * 2), torch.from_numpy(gt * 2), label=2)
    assert counts == (4, 8, 5, 25)
    assert counts.tp == 4
    dice = segmentation_metrics(pred, gt)["dice"]
    assert dice == 2 * tp / (2 * tp + fp + fn)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "pred,gt,match",
    [
        (np.full((5, 5), 0.3), np.zeros((5, 5), dtype=np.int64), "threshold"),
        (torch.rand(5, 5), torch.zeros(5, 5, dtype=torch.long), "threshold"),
        (np.zeros((5, 5), dtype=bool), np.zeros((5, 6), dtype=bool), "differ"),
        (np.zeros(5, dtype=bool), np.zeros(5, dtype=bool), "2-D or 3-D"),
        (np.full((5, 5), -1), np.zeros((5, 5), dtype=np.int64), "negative"),
        (np.full((5, 5), np.nan), np.zeros((5, 5)), "NaN"),
        (np.array([["a"] * 3] * 3), np.zeros((3, 3), dtype=np.int64), "numeric"),
    ],
)
def test_bad_input_raises(pred, gt, match):
    with pytest.raises(ValueError, match=match):
        segmentation_metrics(pred, gt)


def test_bad_options_raise():
    gt = np.zeros((5, 5), dtype=np.int64)
    gt[1, 1] = 3
    with pytest.raises(ValueError, match="num_classes"):
        segmentation_metrics(gt, gt, num_classes=3)
    with pytest.raises(ValueError, match="spacing"):
        segmentation_metrics(gt, gt, spacing=(1.0, 1.0, 1.0))


def test_public_metrics_stays_a_function_after_importing_the_submodule():
    import importlib

    importlib.import_module("segloss_core.core.metrics")
    mask = np.zeros((6, 6), dtype=bool)
    mask[2:4, 2:4] = True
    assert callable(sc.metrics)
    assert sc.metrics(mask, mask)["dice"] == 1.0
