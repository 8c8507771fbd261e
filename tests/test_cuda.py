"""The CUDA path gives the CPU path's numbers. Skipped where no GPU is present (CI runs on CPU).

Every registered loss, its per-sample values and its gradient, 2-D and 3-D, binary and
multi-class, in float64 on both devices; then the batched analyses that take ``device=``.
Differences come only from summation order inside reductions, so the tolerances are a few
ulps of the values' scale.
"""

import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core.analyses.gradients import gradient_maps
from segloss_core.core.engine import evaluate
from segloss_core.data.presets import make_case

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

NAMES = sc.list_losses()


def _case(b, c, shape, seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn((b, c, *shape), generator=g, dtype=torch.float64) * 2, 1)
    labels = torch.zeros((b, *shape), dtype=torch.long)
    for k in range(1, c):
        labels[(slice(None), *(slice(1 + 2 * k, 1 + 2 * k + max(3, s // 3)) for s in shape))] = k
    return probs, sc.one_hot(labels, c, dtype=torch.float64)


CASES = {
    "2d_binary": _case(2, 2, (24, 28), 1),
    "2d_3class": _case(2, 3, (24, 28), 2),
    "3d_binary": _case(2, 2, (10, 12, 14), 3),
    "3d_3class": _case(2, 3, (10, 12, 14), 4),
}


def test_auto_device_is_cuda():
    assert sc.resolve_device("auto").type == "cuda"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("wrt", ["probs", "logits"])
def test_every_loss_and_gradient_equal_on_cpu_and_cuda(case, wrt):
    probs, target = CASES[case]
    cpu = evaluate(NAMES, probs, target, reduction="none", grad=wrt)
    gpu = evaluate(NAMES, probs.cuda(), target.cuda(), reduction="none", grad=wrt)
    for name in NAMES:
        if isinstance(cpu[name], str):
            assert gpu[name] == cpu[name], name
            continue
        (v_cpu, g_cpu), (v_gpu, g_gpu) = cpu[name], gpu[name]
        assert v_gpu.device.type == "cuda" and g_gpu.device.type == "cuda", name
        torch.testing.assert_close(v_gpu.cpu(), v_cpu, rtol=1e-9, atol=1e-12, msg=name)
        scale = float(g_cpu.abs().max()) or 1.0
        torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-7, atol=1e-9 * scale, msg=name)


@pytest.mark.parametrize("case", CASES)
def test_compute_all_equal_on_cpu_and_cuda(case):
    probs, target = CASES[case]
    cpu = sc.compute_all(probs, target, reduction="none")
    gpu = sc.compute_all(probs.cuda(), target.cuda(), reduction="none")
    assert cpu.keys() == gpu.keys()
    for name, value in cpu.items():
        if isinstance(value, str):
            assert gpu[name] == value, name
        else:
            np.testing.assert_allclose(gpu[name], value, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("preset", ["disk", "phantom"])
def test_landscape_equal_on_cpu_and_cuda(preset):
    case = make_case(preset)
    kw = dict(x=("shift_x", -4, 4), y=("dilate", -3, 3), n=7, hd95=False)
    cpu = sc.landscape(case, device="cpu", **kw)
    gpu = sc.landscape(case, device="cuda", **kw)
    assert gpu.device.startswith("cuda")
    assert cpu.losses.keys() == gpu.losses.keys()
    for name in cpu.losses:
        # the presets' probabilities are float32, and so are the grids: float32 sums in another order
        np.testing.assert_allclose(gpu.losses[name], cpu.losses[name], rtol=2e-5, atol=1e-7, err_msg=name)


def test_gradient_maps_equal_on_cpu_and_cuda():
    case = make_case("disk")
    names = ["dice", "ce", "boundary", "lovasz_softmax", "cldice"]
    cpu = gradient_maps(case, names, device="cpu")
    gpu = gradient_maps(case, names, device="cuda")
    for name in names:
        a, b = cpu.results[name], gpu.results[name]
        assert abs(a.value - b.value) <= 1e-9 * max(1.0, abs(a.value)), name
        scale = float(np.abs(a.grad).max()) or 1.0
        np.testing.assert_allclose(b.grad, a.grad, rtol=1e-7, atol=1e-9 * scale, err_msg=name)
