"""The evaluation engine: every registered loss evaluates through it exactly as through its own
function (float64, per sample and reduced, hard and soft targets, a broadcast target), and the
``LossSpec`` fields the engine relies on are consistent. A loss added to the registry is tested here
automatically."""

from __future__ import annotations

import pytest
import torch

import segloss_core as sc
from segloss_core.core.engine import PixelView, Plan, evaluate, evaluate_batches, is_one_hot
from segloss_core.core.spec import GROUPS, HARD_TARGETS_ONLY

NAMES = sc.list_losses()


def _case(b=3, c=2, shape=(12, 13), seed=0, soft=False):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn((b, c, *shape), generator=g, dtype=torch.float64) * 2, 1)
    labels = torch.zeros((b, *shape), dtype=torch.long)
    for k in range(1, c):
        labels[:, 2 + k:2 + k + shape[0] // 3, 3:3 + shape[1] // 3] = k
    labels[1:, 0, :] = c - 1  # the samples differ
    target = sc.one_hot(labels, c, dtype=torch.float64)
    if soft:
        target = 0.8 * target + 0.2 / c
    return probs, target


def _own(name, probs, target, reduction, params=None, spacing=None):
    spec = sc.get_loss(name)
    kw = spec.resolve_params(params)
    if spec.uses_spacing:
        kw["spacing"] = spacing
    return spec.fn(probs, target, reduction=reduction, **kw)


def _defined(name, c):
    return not (sc.get_loss(name).binary_only and c > 2)


@pytest.mark.parametrize("b", [1, 2, 3])
def test_compute_all_none_gives_one_float_per_sample(b):
    probs, target = _case(b)
    table = sc.compute_all(probs, target, reduction="none")
    for name in NAMES:
        ref = sc.compute(name, probs, target, reduction="none")
        assert isinstance(table[name], list) and len(table[name]) == b, name
        assert table[name] == pytest.approx(ref.tolist(), rel=1e-10, abs=1e-12), name


@pytest.mark.parametrize("c, soft", [(2, False), (3, False), (2, True), (3, True)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_every_loss_through_the_engine_equals_its_function(c, soft, reduction):
    probs, target = _case(3, c, soft=soft)
    spacing = (1.0, 0.5)
    out = evaluate(NAMES, probs, target, reduction=reduction, spacing=spacing)
    for name in NAMES:
        if not _defined(name, c):
            assert out[name].startswith("n/a: ") and "binary" in out[name]
            continue
        if soft and sc.get_loss(name).hard_targets_only:
            assert out[name] == f"n/a: {HARD_TARGETS_ONLY}"
            continue
        try:
            ref = _own(name, probs, target, reduction, spacing=spacing)
        except ValueError as err:
            assert out[name] == f"n/a: {err}", name
            continue
        assert not isinstance(out[name], str), (name, out[name])
        torch.testing.assert_close(out[name], ref.detach(), rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("c", [2, 3])
def test_a_broadcast_target_equals_the_expanded_one(c):
    probs, target = _case(4, c)
    one = target[:1]
    out = evaluate(NAMES, probs, one)
    for name in NAMES:
        if _defined(name, c):
            ref = _own(name, probs, one.expand(4, *one.shape[1:]).contiguous(), "none")
            torch.testing.assert_close(out[name], ref, rtol=1e-10, atol=1e-12, msg=name)


def test_pixel_mean_forms_equal_the_functions():
    """Each ``LossSpec.pixel_mean`` (used for hard targets) against its function, with parameters."""
    probs, target = _case(3, 3)
    params = {"wce": {"weights": [0.5, 2.0, 1.0]}, "focal": {"gamma": 1.5, "alpha": [1.0, 0.5, 2.0]},
              "boundary": {"include_background": True}}
    forms = [n for n in NAMES if sc.get_loss(n).pixel_mean is not None]
    assert {"ce", "wce", "focal", "boundary"} <= set(forms)
    px = PixelView(probs, target)
    for name in forms:
        spec = sc.get_loss(name)
        kw = spec.resolve_params(params.get(name))
        if spec.uses_spacing:
            kw["spacing"] = (2.0, 1.0)
        torch.testing.assert_close(spec.pixel_mean(px, **kw), spec.fn(probs, target, reduction="none", **kw),
                                   rtol=1e-12, atol=1e-12, msg=name)
        assert spec.from_stats is None, f"{name}: a region loss with a pixel form"


def test_bad_parameters_and_classes_become_reasons_or_raise():
    probs, target = _case(2, 3)
    out = evaluate(["dice", "lovasz_hinge", "wce"], probs, target, params={"wce": {"weights": [1.0]}})
    assert out["lovasz_hinge"].startswith("n/a: ") and "binary" in out["lovasz_hinge"]
    assert out["wce"].startswith("n/a: ") and "one number per class" in out["wce"]
    assert out["dice"].shape == (2,)
    with pytest.raises(ValueError, match="one number per class"):
        evaluate(["wce"], probs, target, params={"wce": {"weights": [1.0]}}, on_error="raise")
    with pytest.raises(ValueError, match="unknown loss"):
        evaluate(["nope"], probs, target)


def test_gradients_through_the_engine_equal_autograd_of_the_function():
    probs, target = _case(2, 3)
    out = evaluate(["dice", "ce", "boundary"], probs, target, grad="probs", reduction="mean")
    for name, (value, grad) in out.items():
        leaf = probs.clone().requires_grad_(True)
        ref = _own(name, leaf, target, "mean")
        (ref_grad,) = torch.autograd.grad(ref, leaf)
        torch.testing.assert_close(value, ref.detach(), msg=name)
        torch.testing.assert_close(grad, ref_grad, msg=name)


def test_chunked_batches_equal_one_batch():
    probs, target = _case(7, 2)
    whole = evaluate(NAMES, probs, target)
    chunked = evaluate_batches(7, lambda lo, hi: probs[lo:hi], target, NAMES, chunk_elements=2 * 12 * 13 * 2)
    for name in NAMES:
        torch.testing.assert_close(torch.from_numpy(chunked[name]), whole[name], rtol=1e-10, atol=1e-12,
                                   msg=name)


def test_registry_metadata_the_engine_relies_on():
    for name in NAMES:
        spec = sc.get_loss(name)
        assert spec.group in GROUPS, name
        assert isinstance(spec.slow, bool)
        assert not (spec.from_stats and spec.pixel_mean), name
    assert {sc.get_loss(n).group for n in NAMES} == set(GROUPS)  # no empty display group
    plan = Plan(NAMES, num_classes=3)
    assert set(plan.unavailable) == {n for n in NAMES if sc.get_loss(n).binary_only}


def test_one_hot_check():
    _, target = _case(2, 3)
    assert is_one_hot(target) and not is_one_hot(0.9 * target + 0.1 / 3)


@pytest.mark.parametrize("name", NAMES)
def test_public_loss_functions_validate_their_input(name):
    """Called directly (not through the engine), every registered function refuses logits and
    label maps with the one-line messages of ``sc.compute``."""
    probs, target = _case(2, 2)
    fn = sc.get_loss(name).fn
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        fn(torch.log(probs) * 3, target)
    with pytest.raises(ValueError, match="shape"):
        fn(probs, target.argmax(1))


def test_float32_region_losses_of_a_volume_match_float64():
    """On a volume (more pixels than the matrix-product path takes) float32 region losses stay
    within 1e-5 (relative) of float64: the confusion sums do not lose precision with size."""
    from segloss_core.core.engine import MATMUL_MAX_PIXELS

    z, y, x = torch.meshgrid(*(torch.linspace(-1, 1, 72, dtype=torch.float64),) * 3, indexing="ij")
    assert 72**3 > MATMUL_MAX_PIXELS
    r = (z**2 + 1.2 * y**2 + 0.8 * x**2).sqrt()
    lab = (r < 0.7).long()[None]
    p1 = torch.sigmoid((0.72 - r) * 30)[None]
    probs = torch.stack([1 - p1, p1], 1)
    target = sc.one_hot(lab, 2, dtype=torch.float64)
    names = ["dice", "iou", "tversky", "mcc"]
    ref = evaluate(names, probs, target)
    ours = evaluate(names, probs.float(), target.float())
    for name in names:
        assert float(ours[name]) == pytest.approx(float(ref[name]), rel=1e-5), name


def test_long_float32_dot_is_accurate_on_one_thread():
    """The row-by-row path (one CPU thread) sums long float32 products accurately: a BLAS float32
    dot alone is 1e-5 off on a 72^3 volume's rows."""
    from segloss_core.core.stats import DOT_BLOCK, dot

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(3 * DOT_BLOCK + 17, generator=g, dtype=torch.float64)
        y = torch.rand(3 * DOT_BLOCK + 17, generator=g, dtype=torch.float64)
        ref = float(torch.dot(x.float().double(), y.float().double()))
        assert float(dot(x.float(), y.float())) == pytest.approx(ref, rel=2e-7)
    finally:
        torch.set_num_threads(threads)


def test_a_bound_loss_carries_its_parameters_and_spacing():
    probs, target = _case(2, 2, (12, 13))
    bound = sc.get_loss("tversky").bind({"alpha": 0.7})
    assert bound.params == {**sc.get_loss("tversky").defaults, "alpha": 0.7} and bound.spacing is None
    torch.testing.assert_close(bound(probs, target), sc.compute("tversky", probs, target, alpha=0.7))
    boundary = sc.get_loss("boundary").bind(spacing=(2.0, 0.5))
    assert boundary.kwargs["spacing"] == (2.0, 0.5)
    torch.testing.assert_close(boundary(probs, target, "none"),
                               sc.compute("boundary", probs, target, "none", spacing=(2.0, 0.5)))
    assert "spacing" not in sc.get_loss("dice").bind(spacing=(2.0, 0.5)).kwargs  # dice uses none
    with pytest.raises(ValueError, match="alpha"):
        sc.get_loss("tversky").bind({"alpha": -1.0})
