"""Properties every registered loss must have. A loss added to the registry is tested here
automatically: finite values and gradients on hostile-but-valid inputs, dtype, reductions,
per-sample semantics, gradcheck, and the registry's metadata."""

import re

import pytest
import torch

import segloss_core as sc
from segloss_core.core.registry import CATEGORIES

#: losses that must stay registered (a new loss needs no entry here: see the reference-test check below)
EXPECTED = {
    "ce", "wce", "topk", "focal", "dpce",
    "sensitivity_specificity", "dice", "iou", "tversky", "generalized_dice", "focal_tversky",
    "asymmetric", "penalty_gdl", "lovasz_softmax", "lovasz_hinge", "mcc", "wasserstein_dice",
    "boundary", "hausdorff_dt", "log_hausdorff_dt",
    "combo", "exp_log", "dice_ce", "region_size", "dice_focal", "generalized_dice_focal", "unified_focal",
    "dice_cldice", "cldice",
}
NAMES = sc.list_losses()


def _random_case(b=2, c=2, shape=(9, 11), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn((b, c, *shape), generator=g, dtype=dtype) * 2
    labels = torch.zeros((b, *shape), dtype=torch.long)
    # a blob of class k per sample so every class is present and boundaries exist
    for k in range(1, c):
        sl = tuple(slice(1 + k, 1 + k + max(2, s // 3)) for s in shape)
        labels[(slice(None), *sl)] = k
    return torch.softmax(logits, 1), sc.one_hot(labels, c, dtype=dtype)


def _hard(labels, c, dtype=torch.float64):
    return sc.one_hot(labels, c, dtype=dtype)


def _edge_cases():
    lab = torch.zeros((1, 8, 8), dtype=torch.long)
    lab[0, 2:6, 2:6] = 1
    perfect = (_hard(lab, 2), _hard(lab, 2))
    wrong = (_hard(1 - lab, 2), _hard(lab, 2))
    empty_gt = (_random_case(1, shape=(8, 8))[0], _hard(torch.zeros_like(lab), 2))
    empty_both = (_hard(torch.zeros_like(lab), 2), _hard(torch.zeros_like(lab), 2))
    one_px = torch.zeros_like(lab)
    one_px[0, 4, 4] = 1
    single_pixel = (_random_case(1, shape=(8, 8))[0], _hard(one_px, 2))
    full_fg = (_random_case(1, shape=(8, 8))[0], _hard(torch.ones_like(lab), 2))
    return {
        "perfect": perfect, "all_wrong": wrong, "empty_gt": empty_gt, "empty_both": empty_both,
        "single_pixel": single_pixel, "full_foreground": full_fg,
        "3d_multiclass": _random_case(2, 3, (5, 6, 7)),
    }


EDGE = _edge_cases()


def test_all_losses_registered():
    assert set(NAMES) >= EXPECTED


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_has_a_reference_test(name):
    """Each registered loss is named in a reference-test file (tests/test_losses_*.py)."""
    from pathlib import Path

    pattern = re.compile(rf"""["']{re.escape(name)}["']|\b{re.escape(name)}(_loss)?\(""")
    files = sorted(Path(__file__).parent.glob("test_losses_*.py"))
    assert any(pattern.search(f.read_text(encoding="utf-8")) for f in files), name


@pytest.mark.parametrize("name", NAMES)
def test_spec_metadata(name):
    spec = sc.get_loss(name)
    assert spec.name == name and spec.category in CATEGORIES
    assert spec.title and spec.formula and spec.reference and spec.fn.__doc__
    assert "math" in spec.fn.__doc__ or "\\" in spec.fn.__doc__, "docstring must give the formula"
    for pname, p in spec.params.items():
        assert p.help, f"{name}.{pname} has no help text"
        assert p.validate(pname, p.default) == p.default or p.default is None
    assert spec.resolve_params({}) == spec.defaults


@pytest.mark.parametrize("case", list(EDGE))
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("wrt", ["probs", "logits"])
def test_finite_value_and_gradient(name, case, wrt):
    probs, target = EDGE[case]
    spec = sc.get_loss(name)
    if spec.binary_only and probs.shape[1] > 2:
        with pytest.raises(ValueError, match="binary"):
            sc.loss_and_grad(name, probs, target, wrt=wrt)
        return
    value, grad = sc.loss_and_grad(name, probs, target, wrt=wrt)
    assert grad.shape == probs.shape and grad.dtype == torch.float64
    assert torch.isfinite(torch.tensor(value)), f"{name} on {case}: value {value}"
    assert torch.isfinite(grad).all(), f"{name} on {case}: non-finite gradient"


@pytest.mark.parametrize("name", NAMES)
def test_dtype_preserved_and_reductions(name):
    probs, target = _random_case(3, 2)
    for dtype in (torch.float32, torch.float64):
        v = sc.compute(name, probs.to(dtype), target.to(dtype))
        assert v.ndim == 0 and v.dtype == dtype
    none = sc.compute(name, probs, target, reduction="none")
    assert none.shape == (3,)
    total = sc.compute(name, probs, target, reduction="sum")
    assert torch.isfinite(total)
    # "none" = each sample evaluated alone
    for i in range(3):
        alone = sc.compute(name, probs[i : i + 1], target[i : i + 1])
        torch.testing.assert_close(none[i], alone, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_perfect_prediction_is_not_worse_than_a_wrong_one(name):
    perfect = sc.compute(name, *EDGE["perfect"])
    wrong = sc.compute(name, *EDGE["all_wrong"])
    assert perfect < wrong


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name):
    probs, target = _random_case(2, 2, (5, 6), seed=3)
    logits = torch.log(probs).detach().requires_grad_(True)

    def f(z):
        return sc.compute(name, torch.softmax(z, 1), target)

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_bad_inputs_give_one_line_errors():
    probs, target = _random_case()
    cases = [
        (lambda: sc.compute("nope", probs, target), "unknown loss"),
        (lambda: sc.compute("dice", probs, target, alpha=3), "no parameter"),
        (lambda: sc.compute("dice", probs, target[:, :, :5]), "shape"),
        (lambda: sc.compute("dice", probs[:, :1], target[:, :1]), "C >= 2"),
        (lambda: sc.compute("dice", probs * float("nan"), target), "NaN"),
        (lambda: sc.compute("dice", probs * 3, target), r"\[0, 1\]"),
        (lambda: sc.compute("dice", probs, target, reduction="avg"), "reduction"),
        (lambda: sc.compute("tversky", probs, target, alpha="x"), "number"),
        (lambda: sc.loss_and_grad("dice", probs, target, wrt="labels"), "wrt"),
    ]
    for call, msg in cases:
        with pytest.raises(ValueError, match=msg) as info:
            call()
        assert "\n" not in str(info.value)


def test_compute_all_reports_na_reasons():
    probs, target = _random_case(1, 3)
    table = sc.compute_all(probs, target)
    assert set(table) == set(NAMES)
    binary = {n for n in NAMES if sc.get_loss(n).binary_only}
    assert "lovasz_hinge" in binary
    assert all(isinstance(table[n], str) and table[n].startswith("n/a") for n in binary)
    assert all(isinstance(v, float) for k, v in table.items() if k not in binary)


def test_logit_gradient_of_ce_is_closed_form():
    probs, target = _random_case(2, 3)
    n = probs.shape[0] * probs[0, 0].numel()
    _, grad = sc.loss_and_grad("ce", probs, target, wrt="logits")
    torch.testing.assert_close(grad, (probs - target) / n, rtol=1e-10, atol=1e-14)
