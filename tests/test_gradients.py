"""segloss_core.analyses.gradients and its figures: the gradient maps against the closed forms of
docs/theory.md (G1, G2, G6, G7), written out again here independently of the module,
plus pixel groups, histograms, profiles, the explanation's numbers and the size sweep."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist

import segloss_core as sc
from segloss_core.analyses import gradients as gr
from segloss_core.plots import gradients as gp

torch.set_num_threads(1)

FG_ONLY = {"dice": {"include_background": False, "smooth": 0.0}}


def _blob_case(shape=(24, 28), num_classes=2, seed=0, lo=0.01, hi=0.99):
    """Random soft prediction in [lo, hi] (renormalised) and blobs of each foreground class."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, dtype=np.int64)
    for k in range(1, num_classes):
        cy, cx = rng.integers(4, np.array(shape) - 4)
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        gt[(yy - cy) ** 2 + (xx - cx) ** 2 <= (3 + k) ** 2] = k
    raw = rng.uniform(lo, hi, size=(num_classes, *shape))
    probs = raw / raw.sum(0, keepdims=True)
    return sc.Case(gt, probs.astype(np.float32))


def _arrays(case, wrt="probs"):
    """float64 probabilities and one-hot target; for logits the probabilities the loss sees,
    softmax(log p) = p / sum_k p_k (the float32 case sums to 1 only up to rounding)."""
    s = case.probs.astype(np.float64)
    if wrt == "logits":
        s = s / s.sum(0, keepdims=True)
    g = np.stack([case.gt == k for k in range(case.num_classes)]).astype(np.float64)
    return s, g


# ---------------------------------------------------------------------------------- maps vs closed forms


def test_dice_map_is_G1_foreground_only_unsmoothed():
    case = _blob_case()
    maps = gr.gradient_maps(case, ("dice",), params=FG_ONLY)
    grad = maps["dice"].grad
    s, g = _arrays(case)
    inter, ssum, gsum = (s[1] * g[1]).sum(), s[1].sum(), g[1].sum()
    bg_value = 2 * inter / (ssum + gsum) ** 2
    fg_value = -2 * (ssum + gsum - inter) / (ssum + gsum) ** 2
    assert grad.dtype == np.float64 and grad.shape == case.probs.shape
    np.testing.assert_allclose(grad[1][case.gt == 0], bg_value, rtol=1e-12)
    np.testing.assert_allclose(grad[1][case.gt == 1], fg_value, rtol=1e-12)
    assert np.ptp(grad[1][case.gt == 0]) <= 1e-15 * bg_value  # the same value on every background pixel
    np.testing.assert_array_equal(grad[0], 0.0)  # background channel not in the loss
    assert maps["dice"].value == pytest.approx(1 - 2 * inter / (ssum + gsum), rel=1e-12)


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_dice_map_is_G1_with_smoothing_and_class_mean(num_classes, smooth):
    case = _blob_case(num_classes=num_classes, seed=num_classes)
    maps = gr.gradient_maps(case, ("dice",), params={"dice": {"smooth": smooth}})
    s, g = _arrays(case)
    axes = (1, 2)
    inter, denom = (s * g).sum(axes), s.sum(axes) + g.sum(axes) + smooth
    expected = ((2 * inter + smooth)[:, None, None] - 2 * g * denom[:, None, None]) / (
        num_classes * denom[:, None, None] ** 2)
    np.testing.assert_allclose(maps["dice"].grad, expected, rtol=1e-10, atol=1e-18)


def test_dice_squared_map_is_G2():
    case = _blob_case(seed=4)
    maps = gr.gradient_maps(case, ("dice",), params={"dice": {"squared": True, "include_background": False,
                                                              "smooth": 0.0}})
    s, g = _arrays(case)
    inter, denom = (s[1] * g[1]).sum(), (s[1] ** 2).sum() + (g[1] ** 2).sum()
    expected = (2 * s[1] * 2 * inter - 2 * g[1] * denom) / denom**2
    np.testing.assert_allclose(maps["dice"].grad[1], expected, rtol=1e-10)
    # not flat: proportional to s on background pixels
    bg = case.gt == 0
    np.testing.assert_allclose(maps["dice"].grad[1][bg] / s[1][bg], 4 * inter / denom**2, rtol=1e-10)


def test_dice_logit_map_is_softmax_chain_of_G1():
    case = _blob_case(seed=5)
    maps = gr.gradient_maps(case, ("dice",), wrt="logits", params=FG_ONLY)
    s, g = _arrays(case, "logits")
    inter, ssum, gsum = (s[1] * g[1]).sum(), s[1].sum(), g[1].sum()
    c = (2 * inter - 2 * g[1] * (ssum + gsum)) / (ssum + gsum) ** 2  # d/ds1, G1
    np.testing.assert_allclose(maps["dice"].grad[1], s[1] * (1 - s[1]) * c, rtol=1e-9)
    np.testing.assert_allclose(maps["dice"].grad[0], -s[0] * s[1] * c, rtol=1e-9)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_ce_maps_are_G6(num_classes):
    case = _blob_case(num_classes=num_classes, seed=7)
    s, g = _arrays(case)
    n = case.gt.size
    probs_map = gr.gradient_maps(case, ("ce",), wrt="probs")["ce"]
    np.testing.assert_allclose(probs_map.grad, -g / (n * s), rtol=1e-12)
    logit_map = gr.gradient_maps(case, ("ce",), wrt="logits")["ce"]
    s, g = _arrays(case, "logits")
    np.testing.assert_allclose(logit_map.grad, (s - g) / n, rtol=1e-9, atol=1e-18)
    assert probs_map.value == pytest.approx(-(g * np.log(case.probs.astype(np.float64))).sum() / n, rel=1e-12)


@pytest.mark.parametrize("wrt", ["probs", "logits"])
@pytest.mark.parametrize("params", [{}, FG_ONLY["dice"], {"squared": True}, {"smooth": 1.0, "soft_label": True}])
def test_closed_form_gradient_matches_autograd(wrt, params):
    case = _blob_case(num_classes=3, seed=11)
    maps = gr.gradient_maps(case, ("dice", "ce"), wrt=wrt, params={"dice": params})
    for name in ("dice", "ce"):
        value, grad = gr.closed_form_gradient(name, case, wrt, maps[name].params)
        np.testing.assert_allclose(grad, maps[name].grad, rtol=1e-9, atol=1e-18)
        assert value == pytest.approx(maps[name].value, rel=1e-12)
    assert gr.closed_form_gradient("boundary", case, wrt) is None


def test_one_call_several_losses_and_unavailable_reasons():
    case = _blob_case(num_classes=3)
    maps = gr.gradient_maps(case, ("dice", "ce", "lovasz_hinge", "dice"))
    assert set(maps.results) == {"dice", "ce"}
    assert maps.unavailable["lovasz_hinge"].startswith("n/a")
    with pytest.raises(KeyError):
        maps["lovasz_hinge"]
    bad = gr.gradient_maps(case, ("dice",), params={"dice": {"smooth": -1.0}})
    assert "dice" in bad.unavailable
    with pytest.raises(ValueError, match="unknown loss"):
        gr.gradient_maps(case, ("nope",))
    with pytest.raises(ValueError, match="wrt"):
        gr.gradient_maps(case, ("dice",), wrt="z")


def test_gradient_maps_3d_case():
    gt = np.zeros((5, 8, 9), dtype=np.int64)
    gt[1:4, 2:6, 3:7] = 1
    fg = np.where(gt == 1, 0.8, 0.1)
    case = sc.Case(gt, np.stack([1 - fg, fg]).astype(np.float32))
    maps = gr.gradient_maps(case, ("dice", "ce"), params=FG_ONLY)
    assert maps["dice"].grad.shape == (2, 5, 8, 9)
    s, g = _arrays(case)
    inter, tot = (s[1] * g[1]).sum(), s[1].sum() + g[1].sum()
    np.testing.assert_allclose(maps["dice"].grad[1][gt == 0], 2 * inter / tot**2, rtol=1e-12)


# ---------------------------------------------------------------------------------- groups, histograms, profiles


def _band_reference(gt, px):
    """Brute force: pixels within px (Euclidean) of a pixel with another label, for fg classes."""
    coords = np.argwhere(np.ones_like(gt, dtype=bool))
    labels = gt.ravel()
    band = np.zeros(gt.size, dtype=bool)
    for k in np.unique(gt):
        if k == 0:
            continue
        inside = labels == k
        if inside.all():
            continue
        d = cdist(coords, coords[~inside]).min(1)
        d_out = cdist(coords, coords[inside]).min(1)
        band |= (inside & (d <= px)) | (~inside & (d_out <= px))
    return band.reshape(gt.shape)


@pytest.mark.parametrize("px", [1, 2, 3.5])
def test_pixel_groups_partition_and_band(px):
    case = _blob_case(shape=(20, 22), num_classes=3, seed=2)
    groups = gr.pixel_groups(case.gt, px)
    stack = np.stack(list(groups.as_dict().values())).astype(int)
    np.testing.assert_array_equal(stack.sum(0), 1)  # a partition
    np.testing.assert_array_equal(groups.boundary, _band_reference(case.gt, px))
    assert not (groups.inside & (case.gt == 0)).any() and not (groups.outside & (case.gt > 0)).any()
    assert sum(groups.counts().values()) == case.gt.size


def test_pixel_groups_square_and_edge_cases():
    gt = np.zeros((30, 30), dtype=np.int64)
    gt[5:25, 5:25] = 1
    groups = gr.pixel_groups(gt, 2)
    assert groups.inside.sum() == 16 * 16  # 2 px off each side of a 20 px square
    assert gr.pixel_groups(np.zeros((5, 5), int)).boundary.sum() == 0
    assert gr.pixel_groups(np.ones((5, 5), int)).inside.all()
    with pytest.raises(ValueError):
        gr.pixel_groups(gt, -1)
    gt3 = np.zeros((6, 7, 8), dtype=np.int64)
    gt3[2:4, 2:5, 2:6] = 1
    g3 = gr.pixel_groups(gt3)
    assert (g3.inside.astype(int) + g3.outside + g3.boundary == 1).all()


def test_group_histograms_counts_and_shares():
    case = _blob_case(seed=3)
    maps = gr.gradient_maps(case, ("dice", "ce"), wrt="probs")
    groups = gr.pixel_groups(case.gt)
    mags = maps.magnitudes(1)
    for scale in ("log", "linear"):
        hists = gr.group_histograms(mags, groups, bins=15, scale=scale)
        for name, h in hists.items():
            for group, mask in groups.as_dict().items():
                assert h.counts[group].sum() + (h.zeros[group] if scale == "log" else 0) == mask.sum()
                assert h.stats[group]["mean"] == pytest.approx(mags[name][mask].mean())
            assert sum(st["share"] for st in h.stats.values()) == pytest.approx(1.0)
    # CE w.r.t. probabilities on channel 1: zero on background pixels
    ce = gr.group_histograms(mags, groups)["ce"]
    assert ce.zeros["outside"] == groups.outside.sum() and ce.stats["outside"]["share"] == 0


def test_profile_and_comparisons():
    case = _blob_case(seed=6)
    maps = gr.gradient_maps(case, ("dice", "ce")).channel_maps(1)
    row = gr.profile(maps, 0, 7, case.gt)
    col = gr.profile(maps, 1, 9)
    np.testing.assert_array_equal(row.values["ce"], maps["ce"][7, :])
    np.testing.assert_array_equal(col.values["dice"], maps["dice"][:, 9])
    np.testing.assert_array_equal(row.gt, case.gt[7])
    with pytest.raises(ValueError):
        gr.profile(maps, 0, case.gt.shape[0])
    a = maps["dice"]
    np.testing.assert_allclose(gr.normalised_difference(a, 3 * a), 0, atol=1e-15)
    d = gr.normalised_difference(a, maps["ce"])
    assert np.abs(d).max() <= 2 + 1e-12
    r = gr.log_ratio(2 * a, a)
    np.testing.assert_allclose(r[np.isfinite(r)], np.log10(2))
    assert np.isnan(gr.log_ratio(a, maps["ce"])[case.gt == 0]).all()  # CE is 0 there
    assert gr.same_sign_fraction(a, -a) == 0.0


def test_pixel_report_matches_maps():
    case = _blob_case(seed=8)
    rep = gr.pixel_report(case, 5, 6, wrt="probs")
    assert [r["loss"] for r in rep.rows] == sc.list_losses()
    pair = gr.gradient_maps(case, ("dice", "ce"), dtype=torch.float32)
    by = {r["loss"]: r for r in rep.rows}
    for name in ("dice", "ce"):
        np.testing.assert_allclose(by[name]["grad"], pair[name].grad[:, 5, 6], rtol=1e-6)
        assert by[name]["foreground"] == pytest.approx(by[name]["grad"][1] - by[name]["grad"][0])
    assert rep.label == case.gt[5, 6] and rep.probs == pytest.approx(tuple(case.probs[:, 5, 6]))
    with pytest.raises(ValueError):
        gr.pixel_report(case, 100, 0)
    three = _blob_case(num_classes=3)
    rows = {r["loss"]: r for r in gr.pixel_report(three, 1, 1).rows}
    assert "unavailable" in rows["lovasz_hinge"] and len(rows["ce"]["grad"]) == 3


def test_per_loss_maps_merge_into_the_all_loss_maps():
    case = _blob_case(num_classes=3, seed=9)
    params = {"focal": {"gamma": 3.0}}
    whole = gr.all_gradient_maps(case, params)
    fast = gr.inspector_losses(slow=False)
    assert fast == [n for n in sc.list_losses() if not sc.get_loss(n).slow] and len(fast) < len(sc.list_losses())
    assert gr.inspector_losses() == sc.list_losses()
    parts = [gr.gradient_maps(case, (n,), params={n: params[n]} if n in params else {}, dtype=gr.INSPECTOR_DTYPE)
             for n in sc.list_losses()]
    merged = gr.merge_maps(parts)
    assert set(merged.results) == set(whole.results) and set(merged.unavailable) == set(whole.unavailable)
    for name, r in whole.results.items():
        np.testing.assert_allclose(merged[name].grad, r.grad, rtol=1e-6, atol=0)
        assert merged[name].value == pytest.approx(r.value, rel=1e-6) and merged[name].params == r.params
    only_fast = gr.merge_maps([p for p, n in zip(parts, sc.list_losses(), strict=True) if n in fast])
    rows = {r["loss"]: r for r in gr.pixel_report(case, 3, 4, maps=only_fast).rows}
    assert rows["cldice"]["unavailable"] == "n/a: not computed" and "grad" in rows["focal"]
    with pytest.raises(ValueError):
        gr.merge_maps([parts[0], gr.gradient_maps(case, ("dice",), wrt="logits")])


# ---------------------------------------------------------------------------------- explanation and teaching claims


def test_explanation_numbers_equal_closed_forms():
    case = _blob_case(seed=9)
    exp = gr.explain(case, params=FG_ONLY)
    s, g = _arrays(case)
    inter, ssum, gsum = (s[1] * g[1]).sum(), s[1].sum(), g[1].sum()
    off = exp.find("dice", "off_class").numbers
    assert off["I"] == pytest.approx(inter) and off["S"] == pytest.approx(ssum) and off["G"] == gsum
    assert off["off_class"] == pytest.approx(2 * inter / (ssum + gsum) ** 2, rel=1e-12)
    assert off["on_class"] == pytest.approx(-2 * (ssum + gsum - inter) / (ssum + gsum) ** 2, rel=1e-12)
    assert off["value"] == pytest.approx(1 - 2 * inter / (ssum + gsum), rel=1e-12)
    assert f"{off['off_class']:.3g}" in exp.find("dice", "off_class").text
    # half the object, same probabilities: sums recomputed from scratch
    i2, g2, s2 = inter / 2, gsum / 2, ssum - inter / 2
    assert exp.find("dice", "half_size").numbers["off_class_half"] == pytest.approx(2 * i2 / (s2 + g2) ** 2)
    for name in ("dice", "ce"):
        assert exp.find(name, "check").numbers["agrees"] == 1.0
    ce = exp.find("ce", "probs").numbers
    assert ce["N"] == case.gt.size
    assert ce["max_abs"] == pytest.approx(1 / (case.gt.size * s[1][case.gt == 1].min()))
    both = exp.find("both", "object_vs_background").numbers
    assert both["dice_ratio"] == pytest.approx(abs(off["on_class"]) / off["off_class"], rel=1e-9)
    # the settings actually in force are reported (defaults: background included, smoothed)
    default = gr.explain(case)
    assert default.find("dice", "settings").numbers["K"] == 2
    assert "include_background=True" in default.find("dice", "settings").text


def _tiny_lesion_case(size=96, radius=3.0, shift=3, p_hit=0.8, p_out=0.02):
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    gt = ((yy - c) ** 2 + (xx - c) ** 2 <= radius**2).astype(np.int64)
    pred = (yy - c) ** 2 + (xx - c - shift) ** 2 <= radius**2  # the lesion, shifted
    fg = np.where(pred, p_hit, p_out)
    return sc.Case(gt, np.stack([1 - fg, fg]).astype(np.float32))


def test_tiny_lesion_ce_concentrates_on_errors_dice_is_uniform():
    case = _tiny_lesion_case()
    wrong = case.hard_prediction != case.gt
    assert 0 < wrong.mean() < 0.005
    ce = gr.gradient_maps(case, ("ce",), wrt="logits")["ce"].grad
    mag = np.sqrt((ce**2).sum(0))
    share = mag[wrong].sum() / mag.sum()
    assert share > 20 * wrong.mean()  # a tiny fraction of pixels carries a large share of CE's gradient
    s, g = _arrays(case)
    assert mag[wrong].min() > mag[~wrong].max()  # (s - g)/N is largest where the prediction is wrong
    dice = gr.gradient_maps(case, ("dice",), params=FG_ONLY)["dice"].grad[1]
    bg = case.gt == 0
    assert np.ptp(dice[bg]) <= 1e-15 * dice[bg].max()  # uniform: far, correct pixels get as much as errors
    exp = gr.explain(case, wrt="logits")
    assert exp.find("ce", "misclassified").numbers["misclassified_share"] == pytest.approx(share)


def test_dice_vs_ce_scaling_monotone_and_closed_form():
    radii = (2, 4, 8, 16)
    p_in, size = 0.75, 64  # exact in float32 (the Case stores float32)
    table = gr.dice_vs_ce_scaling(radii, size=size, p_in=p_in, p_out=0.0, params=FG_ONLY)
    areas = table.areas.astype(float)
    dice, ce = table.per_loss["dice"], table.per_loss["ce"]
    assert np.all(np.diff(areas) > 0)
    assert np.all(np.diff(dice["object_mean"]) < 0)  # smaller object, larger per-pixel Dice gradient
    np.testing.assert_allclose(dice["object_mean"], 2 / ((1 + p_in) ** 2 * areas), rtol=1e-10)
    np.testing.assert_allclose(table.dice_off_class, 2 * p_in / ((1 + p_in) ** 2 * areas), rtol=1e-10)
    np.testing.assert_allclose(dice["background_mean"], table.dice_off_class, rtol=1e-10)
    np.testing.assert_allclose(ce["object_mean"], 1 / (size**2 * p_in), rtol=1e-12)  # size-independent
    assert np.all(np.diff(ce["object_share"]) >= 0)
    np.testing.assert_allclose(dice["value"], 1 - 2 * p_in / (1 + p_in), rtol=1e-10)
    # with false positives the background value first grows with |G| (see the docstring)
    fp = gr.dice_vs_ce_scaling((2, 4, 8), size=64, p_in=p_in, p_out=0.1, params=FG_ONLY)
    assert fp.dice_off_class[1] > fp.dice_off_class[0]


# ---------------------------------------------------------------------------------- figures


def test_heatmaps_are_symmetric_and_centred():
    case = _blob_case(seed=12)
    maps = gr.gradient_maps(case, ("dice", "ce")).channel_maps(1)
    fig = gp.gradient_heatmaps(maps, case.gt, shared_scale=True, marker=(3, 4), line=(0, 5))
    heat = [t for t in fig.data if t.type == "heatmap"]
    lim = max(np.abs(m).max() for m in maps.values())
    assert len(heat) == 2
    for t in heat:
        assert t.zmid == 0 and t.zmin == pytest.approx(-lim) and t.zmax == pytest.approx(lim)
    per = gp.gradient_heatmaps(maps, case.gt, shared_scale=False)
    lims = sorted(t.zmax for t in per.data if t.type == "heatmap")
    assert lims == pytest.approx(sorted(np.abs(m).max() for m in maps.values()))
    assert any(t.name == "ground truth" for t in fig.data)
    xs, ys = gp.contour_xy(case.gt)
    pts = np.array([(y, x) for x, y in zip(xs, ys, strict=True) if x is not None])
    assert np.all(np.abs(ndimage.map_coordinates(case.gt.astype(float), pts.T, order=1) - 0.5) <= 0.5)
    for kind, view in (("difference", gr.normalised_difference(maps["dice"], maps["ce"])),
                       ("ratio", gr.log_ratio(maps["dice"], maps["ce"]))):
        f = gp.comparison_heatmap(view, case.gt, kind=kind)
        assert f.data[0].zmin == -f.data[0].zmax


def test_downsample_keeps_extremes_and_coordinates():
    arr = np.zeros((600, 520))
    arr[301, 17] = -5.0
    arr[10, 500] = 3.0
    small, f = gp.downsample(arr, 256)
    assert f == 3 and max(small.shape) <= 256
    assert small.min() == -5.0 and small.max() == 3.0
    assert small[301 // 3, 17 // 3] == -5.0
    fig = gp.gradient_heatmaps({"a": arr}, None, max_side=256)
    assert np.asarray(fig.data[0].z).shape == small.shape
    assert fig.data[0].x[1] - fig.data[0].x[0] == 3
    labels = np.zeros((600, 520), int)
    labels[0, 0] = 2
    assert gp.downsample(labels, 256, mode="max")[0][0, 0] == 2


def test_histogram_profile_and_scaling_figures():
    case = _blob_case(seed=13)
    maps = gr.gradient_maps(case, ("dice", "ce"))
    hists = gr.group_histograms(maps.magnitudes(1), gr.pixel_groups(case.gt))
    fig = gp.magnitude_histograms(hists)
    assert len([t for t in fig.data if t.type == "bar"]) == 2 * 3
    assert sum(bool(t.showlegend) for t in fig.data) == 3  # one legend entry per group
    pf = gp.profile_figure(gr.profile(maps.channel_maps(1), 0, 4, case.gt), normalise=True)
    assert all(np.abs(np.asarray(t.y)).max() == pytest.approx(1.0) for t in pf.data if np.any(t.y))
    table = gr.dice_vs_ce_scaling((2, 4), size=32)
    sf = gp.scaling_figure(table)
    assert len(sf.data) == 3 and sf.layout.xaxis.type == "log"
    loc = gp.location_figure(case.gt, (4, 5))
    marker = next(t for t in loc.data if t.name == "inspected pixel")
    assert (marker.y[0], marker.x[0]) == (4, 5)
    assert gr.dice_vs_ce_scaling((2, 4), size=32, wrt="logits").dice_off_class is None
