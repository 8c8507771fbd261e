"""segloss_core: segmentation losses, their gradients and the metrics they stand in for.

>>> import segloss_core as sc
>>> sc.list_losses()[:3]
['ce', 'wce', 'topk']

No Streamlit import anywhere in this package: the app in ``app.py`` / ``pages/`` only lays out
what these functions compute.
"""

import types

from .analyses import landscape as _landscape_module
from .analyses.landscape import landscape_1d
from .core import metrics as _metrics_module
from .core._tensors import EPS, as_tensor, binary_probs, one_hot, resolve_device, to_probs
from .core.engine import compute, compute_all, loss_and_grad, losses_and_grads
from .core.metrics import segmentation_metrics as segmentation_metrics  # also sc.metrics(...)
from .core.registry import LossSpec, ParamSpec, get_loss, list_losses
from .core.stats import SoftConfusion, soft_confusion
from .data.case import Case


class _CallableModule(types.ModuleType):
    """A module that is also callable as its main function, so that the public call and the module
    of the same name are one object: ``sc.metrics(pred, gt)`` calls
    :func:`segloss_core.core.metrics.segmentation_metrics`, and ``sc.metrics`` is that module
    (``sc.metrics.confusion_counts`` works; ``sc.landscape`` likewise)."""

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
metrics = _metrics_module
landscape = _landscape_module


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
