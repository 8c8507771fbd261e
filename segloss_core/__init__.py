"""segloss_core: segmentation losses, their gradients and the metrics they stand in for.

>>> import segloss_core as sc
>>> sc.list_losses()[:3]
['ce', 'wce', 'topk']

No Streamlit import anywhere in this package: the app in ``app.py`` / ``pages/`` only lays out
what these functions compute.
"""

import types

from . import landscape as _landscape_module
from . import metrics as _metrics_module
from ._tensors import EPS, as_tensor, binary_probs, one_hot, resolve_device, to_probs
from .case import Case
from .engine import compute, compute_all, loss_and_grad, losses_and_grads
from .landscape import landscape_1d
from .metrics import segmentation_metrics as segmentation_metrics  # also sc.metrics(...)
from .registry import LossSpec, ParamSpec, get_loss, list_losses
from .stats import SoftConfusion, soft_confusion


class _CallableModule(types.ModuleType):
    """A submodule that is also callable as its main function, so that a public function and the
    submodule of the same name do not shadow each other: ``sc.metrics(pred, gt)`` calls
    :func:`segloss_core.metrics.segmentation_metrics`, and ``sc.metrics`` stays the module
    (``import segloss_core.metrics as m``, ``sc.metrics.confusion_counts`` work)."""

    def __call__(self, *args, **kwargs):
        return getattr(self, self.__dict__["_call_"])(*args, **kwargs)


def _callable(module: types.ModuleType, function: str) -> None:
    """Make ``module`` callable as ``module.function``; its help then also shows that function's."""
    module.__class__ = _CallableModule
    module._call_ = function
    doc = getattr(module, function).__doc__ or ""
    module.__doc__ = f"{module.__doc__ or ''}\n\nCalling the module calls ``{function}``: {doc}"


_callable(_metrics_module, "segmentation_metrics")  # sc.metrics(pred, gt, spacing=None, ...)
_callable(_landscape_module, "landscape")  # sc.landscape(pred, gt, x=..., y=..., n=...)


__all__ = [
    "EPS",
    "Case",
    "LossSpec",
    "ParamSpec",
    "SoftConfusion",
    "as_tensor",
    "binary_probs",
    "compute",
    "compute_all",
    "get_loss",
    "list_losses",
    "landscape",
    "landscape_1d",
    "loss_and_grad",
    "losses_and_grads",
    "metrics",
    "one_hot",
    "resolve_device",
    "soft_confusion",
    "to_probs",
]
