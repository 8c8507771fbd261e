"""Memory caps, counted in voxels x classes (not bytes), and the one check every entry point uses.

A 512 x 512 x 300 volume with 10 classes is 786,432,000 values: 3 GiB per float32 one-hot tensor,
before a loss makes its own copies. Every entry point that would allocate a ``(n, C, *spatial)``
tensor refuses such inputs *before allocating*, with one line that says what was too big:

==============================================  ==========================================================
entry point                                     what is counted (against :data:`MAX_ELEMENTS`)
==============================================  ==========================================================
``compute`` / ``loss_and_grad`` / ``compute_all``  ``probs.numel()`` (``_tensors.check_pair``)
``one_hot(labels, C)``                          voxels x C, before the one-hot tensor exists
``Case(gt, probs)``                             C x voxels, before the float32 conversion
``io`` readers                                  header-declared shape and classes (``io.MAX_*``), before
                                                decoding; see :mod:`segloss_core.data.files`
``perturb.prediction_from_gt``                  C x voxels, before the distance maps
``perturb.prepare`` / ``landscape``             C x voxels of the prediction, before any copy
``perturb.apply``                               n x C x voxels (the batched output)
``agreement.population``                        n x pixels (the stored family of predictions)
==============================================  ==========================================================

Landscapes and the bias / agreement sweeps then work in chunks bounded by
``landscape.CHUNK_BYTES`` and ``engine.CHUNK_ELEMENTS``. The byte and size caps on files
(``io.MAX_UPLOAD_BYTES``, ``io.MAX_VOXELS``, ``io.MAX_PIXELS_2D``, ``io.MAX_DECOMPRESSED_BYTES``,
``io.MAX_LABELS``) live in :mod:`segloss_core.data.files`.

The limit is :data:`MAX_ELEMENTS`, defined here only and read at call time (a test lowers it with
``monkeypatch.setattr(segloss_core.core.limits, "MAX_ELEMENTS", ...)``); every check compares against it
in :func:`check_count`, each entry point wording its own one-line message. This module imports
nothing from the package (no import cycle).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

#: Largest voxels x classes (x batch) handled in one tensor (about 1 GiB per float32 copy).
MAX_ELEMENTS = 256 * 1024 * 1024


def max_elements() -> int:
    """The current limit on voxels x classes (x batch) held in one tensor."""
    return int(MAX_ELEMENTS)


def check_count(count: int, message: Callable[[int, int], str], error: type[Exception] = ValueError) -> int:
    """Raise ``error(message(count, limit))`` when ``count`` exceeds :func:`max_elements`; return
    ``count`` otherwise. The one place where the element cap is compared.

    >>> check_count(10, lambda n, limit: f"{n} > {limit}")
    10
    """
    limit = max_elements()
    if int(count) > limit:
        raise error(message(int(count), limit))
    return int(count)


def _dims(shape: Iterable[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def check_elements(
    spatial_shape: Iterable[int], num_classes: int = 1, *, what: str, batch: int = 1
) -> int:
    """Raise ``ValueError`` (one line) when ``batch x num_classes x prod(spatial_shape)`` exceeds
    :func:`max_elements`; return that count otherwise. Python ints: no overflow.

    >>> check_elements((300, 512, 512), 10, what="one_hot")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: one_hot: 300x512x512 voxels x 10 classes = 786,432,000 values exceed the limit of ...
    """
    spatial_shape = tuple(int(s) for s in spatial_shape)
    count = int(batch) * int(num_classes) * math.prod(spatial_shape)

    def message(count: int, limit: int) -> str:
        parts = [f"{_dims(spatial_shape)} voxels"]
        if num_classes != 1:
            parts.append(f"{int(num_classes)} classes")
        if batch != 1:
            parts.append(f"{int(batch)} predictions")
        return (f"{what}: {' x '.join(parts)} = {count:,} values exceed the limit of {limit:,} "
                f"(about {limit * 4 / 2**30:.0f} GiB per float32 copy); crop, downsample or use fewer classes")

    return check_count(count, message)


__all__ = ["MAX_ELEMENTS", "check_count", "check_elements", "max_elements"]
