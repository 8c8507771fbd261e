"""Numbers the app states in words, computed live from the presets (no literals in the texts).

Each function rebuilds the preset case it talks about with :func:`segloss_core.data.presets.make_case`
(256 x 256, the preset's default parameters), evaluates the registered losses with the registry's
defaults (what the Playground's table shows) and the metrics of the arg-max prediction, and returns
the numbers; ``*_text`` functions turn them into the sentences the app displays. Results are
cached per process (they depend on nothing but the code). ``tests/test_claims.py`` checks these
numbers, and the README's copies of them, against independent computations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..core.conventions import convention_params
from ..core.engine import compute
from ..core.metrics import segmentation_metrics
from ..data.presets import make_case


def _loss(case, name: str, params: dict | None = None) -> float:
    probs, target = case.tensors(dtype=torch.float64)
    return float(compute(name, probs, target, **(params or {})))


def _hard(case) -> dict:
    """Metrics of class 1 of the arg-max prediction (``None`` where undefined)."""
    return segmentation_metrics(case.hard_prediction == 1, case.gt == 1)


def _nnunet(name: str) -> dict:
    return convention_params("nnU-Net")[0].get(name, {})


@dataclass(frozen=True)
class ShiftCost:
    """Soft Dice loss (registry defaults) and hard metrics of a preset's GT-made prediction,
    unshifted and shifted by ``shift`` px along ``axis`` (other perturbations at their identity)."""

    preset: str
    axis: str
    shift: float
    dice_loss_unshifted: float
    dice_loss_shifted: float
    hard_dice_shifted: float
    hd95_shifted: float

    @property
    def added(self) -> float:
        """What the shift adds to the soft Dice loss."""
        return self.dice_loss_shifted - self.dice_loss_unshifted


@functools.lru_cache(maxsize=16)
def shift_cost(preset: str, shift: float = 2.0, axis: str = "shift_y") -> ShiftCost:
    base = make_case(preset, prediction={})
    moved = make_case(preset, prediction={axis: float(shift)})
    m = _hard(moved)
    return ShiftCost(preset, axis, float(shift), _loss(base, "dice"), _loss(moved, "dice"),
                     float(m["dice"]), float(m["hd95"]))


@dataclass(frozen=True)
class MissedLesion:
    """The tiny lesion shifted 15 px (missed entirely)."""

    shift: float
    fraction: float
    dice_loss: float
    dice_loss_nnunet: float
    ce: float
    hard_dice: float


@functools.lru_cache(maxsize=2)
def missed_lesion(shift: float = 15.0) -> MissedLesion:
    case = make_case("tiny_lesion", prediction={"shift_x": float(shift)})
    return MissedLesion(float(shift), float((case.gt == 1).mean()), _loss(case, "dice"),
                        _loss(case, "dice", _nnunet("dice")), _loss(case, "ce"), float(_hard(case)["dice"]))


@dataclass(frozen=True)
class EmptyTruth:
    """The empty-ground-truth preset with its default false-positive blob."""

    metrics: dict
    dice_loss: float
    dice_loss_nnunet: float
    generalized_dice: float


@functools.lru_cache(maxsize=1)
def empty_truth() -> EmptyTruth:
    case = make_case("empty")
    return EmptyTruth(_hard(case), _loss(case, "dice"), _loss(case, "dice", _nnunet("dice")),
                      _loss(case, "generalized_dice"))


@dataclass(frozen=True)
class MissedBlob:
    """Two-blob preset: a hard prediction equal to the GT except the small blob, left out."""

    small_pixels: int
    big_pixels: int
    hard_dice_loss: float


@functools.lru_cache(maxsize=1)
def missed_small_blob() -> MissedBlob:
    from scipy import ndimage

    case = make_case("two_blobs", prediction={})
    parts, n = ndimage.label(case.gt == 1)
    sizes = np.bincount(parts.ravel())[1:]
    small = parts == (int(np.argmin(sizes)) + 1)
    m = segmentation_metrics((case.gt == 1) & ~small, case.gt == 1)
    return MissedBlob(int(sizes.min()), int(sizes.max()), 1.0 - float(m["dice"]))


@functools.lru_cache(maxsize=1)
def vessel_topology() -> dict[str, tuple[float, float]]:
    """(Dice loss, clDice loss) on the thin vessel with shift y 0 (``"base"``), with logit noise 1
    (``"noise"``) and dilated by 2 px (``"thick"``)."""
    out = {}
    for key, pred in (("base", {}), ("noise", {"noise": 1.0}), ("thick", {"dilate": 2.0})):
        case = make_case("vessel", prediction=pred)
        out[key] = (_loss(case, "dice"), _loss(case, "cldice"))
    return out


# ---------------------------------------------------------------------------------------------
# sentences
# ---------------------------------------------------------------------------------------------


def describe(preset) -> str:
    """A preset's caption followed by its live-computed numbers (what the app shows)."""
    if preset.fact is None:
        return preset.caption
    return f"{preset.caption} {globals()[preset.fact]()}"


def vessel_fact() -> str:
    """The thin-vessel preset's caption numbers: a 1-px shift against HD95, next to the disk."""
    y, x = shift_cost("vessel", 1.0, "shift_y"), shift_cost("vessel", 1.0, "shift_x")
    disk = shift_cost("disk", 1.0, "shift_y")
    return (f"At the default 3-px width a 1-px shift leaves a hard Dice of only {y.hard_dice_shifted:.2f} "
            f"(vertical) or {x.hard_dice_shifted:.2f} (horizontal) while HD95 is {y.hd95_shifted:g} px; "
            f"the disk keeps {disk.hard_dice_shifted:.2f}.")


def tiny_lesion_fact() -> str:
    m = missed_lesion()
    return (f"Missed entirely (shift x {m.shift:g} px), CE is only {m.ce:.3f}, while the Dice loss is "
            f"{m.dice_loss_nnunet:.2f} without the background ({m.dice_loss:.2f} with it).")


def two_blobs_fact() -> str:
    b = missed_small_blob()
    return (f"Leaving out the small blob ({b.small_pixels} px) entirely costs a hard Dice loss of only "
            f"{b.hard_dice_loss:.3f}.")


def what_if_text() -> str:
    """The Playground's what-if questions, with the numbers computed now."""
    d, v = shift_cost("disk"), shift_cost("vessel")
    m, e, t = missed_lesion(), empty_truth(), vessel_topology()
    precision = e.metrics["precision"]
    return f"""
1. **Does a 2-px shift cost the same on a disk and on a thin vessel?** Pick *Disk*, set *shift x*
   and *dilate / erode* to 0: the Dice loss is {d.dice_loss_unshifted:.3f} (the soft boundary alone);
   set *shift y* to 2 and it becomes {d.dice_loss_shifted:.3f}, the shift adds {d.added:.4f}. Pick
   *Thin vessel*, shift y 0: already {v.dice_loss_unshifted:.3f}, most of it the soft boundary of a
   3-px structure; shift y 2: {v.dice_loss_shifted:.3f}, the shift adds {v.added:.3f}, about
   {v.added / d.added:.0f} times the disk's. HD95 reads {d.hd95_shifted:g} px on the disk and
   {v.hd95_shifted:g} px on the vessel, and hard Dice
   falls to {d.hard_dice_shifted:.3f} on the disk but {v.hard_dice_shifted:.3f} on the vessel: overlap
   losses scale with the object's size; surface distances do not.
2. **What if the tiny lesion is missed?** Pick *Tiny lesion*, **pin**, then set *shift x* to
   {m.shift:g} px. The Dice loss only reaches {m.dice_loss:.2f}: half of it is the perfectly segmented
   background. Click *nnU-Net defaults* (background excluded) and it is {m.dice_loss_nnunet:.2f}.
   Cross-entropy is {m.ce:.3f}, because the lesion is {100 * m.fraction:.2f} % of the pixels.
3. **What if there is nothing to find?** Pick *Empty ground truth* (it opens with a false-positive
   blob). Dice, recall and HD95 are *n/a* in the metrics, precision is {precision:g}. The Dice loss is
   {e.dice_loss:.2f} with the background included and {e.dice_loss_nnunet:.2f} with *nnU-Net defaults*,
   while generalised Dice is {e.generalized_dice:.4f}: empty classes are exactly where libraries
   disagree.
4. **What does clDice see that Dice does not?** Pick *Thin vessel*, shift y 0: the Dice loss is
   {t["base"][0]:.3f}, clDice {t["base"][1]:.3f}. Set *logit noise* to 1: Dice only rises to {t["noise"][0]:.3f} but
   clDice to {t["noise"][1]:.3f}: the noise scatters spurious centre-line fragments around the vessel,
   which clDice's topological precision counts and pixel overlap hardly sees; *dilate / erode* +2
   instead (noise 0) raises Dice to {t["thick"][0]:.3f} and lowers clDice to {t["thick"][1]:.3f}: clDice scores
   centre-lines, not thickness.
"""


__all__ = ["EmptyTruth", "MissedBlob", "MissedLesion", "ShiftCost", "empty_truth", "missed_lesion",
           "missed_small_blob", "shift_cost", "tiny_lesion_fact", "two_blobs_fact", "vessel_fact",
           "vessel_topology", "what_if_text"]
