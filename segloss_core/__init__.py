"""segloss_core: segmentation losses, their gradients and the metrics they stand in for.

>>> import segloss_core as sc
>>> sc.list_losses()[:3]
['ce', 'wce', 'topk']

No Streamlit import anywhere in this package: the app in ``app.py`` / ``pages/`` only lays out
what these functions compute.
"""

from ._tensors import EPS, as_tensor, binary_probs, one_hot, resolve_device, to_probs
from .case import Case
from .landscape import landscape, landscape_1d  # the functions win over the submodule name
from .metrics import segmentation_metrics as segmentation_metrics  # load now: `def metrics` below must win
from .registry import (
    LossSpec,
    ParamSpec,
    compute,
    compute_all,
    get_loss,
    list_losses,
    loss_and_grad,
    losses_and_grads,
)
from .stats import SoftConfusion, soft_confusion


def metrics(pred, gt, spacing=None, **kwargs):
    """Dice, Jaccard, precision, recall, HD, HD95, ASSD of a hard prediction vs a label map.

    HD95 is the larger of the two directed 95th percentiles of the distances between surface voxel
    centres, as MONAI's ``compute_hausdorff_distance(percentile=95)`` (medpy pools both directions
    before one percentile; DeepMind's surface-distance weights surface elements by area: both can give
    other numbers). ASSD is the mean of the distances of both directions pooled, as MONAI's
    ``compute_average_surface_distance(symmetric=True)`` and medpy's ``assd`` from version 0.5.
    See :func:`segloss_core.metrics.segmentation_metrics` and ``METRIC_DEFINITIONS`` there.
    """
    from .metrics import segmentation_metrics

    return segmentation_metrics(pred, gt, spacing=spacing, **kwargs)


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
