r"""Metric agreement (Eelbode et al.): do the losses order predictions the way Dice / Jaccard / HD95 do?

Over a seeded population of perturbed predictions of the current case (binary
foreground-vs-background view, :func:`segloss_core.analyses.bias.binary_view`), this module gives

- every registered loss's value and its Spearman / Kendall rank correlation with 1 - Dice,
  1 - Jaccard and HD95 of the arg-max predictions (:func:`agreement`);
- the soft Jaccard vs soft Dice loss data (foreground only, linear, no smoothing) with the exact
  relation :math:`L_J = 2L_D/(1 + L_D)` and the bounds :math:`J \le D \le 2J`,
  :math:`0 \le D - J \le 3 - 2\sqrt2` (docs/theory.md, A1-A4), and the same for the hard metrics
  (:func:`dice_jaccard`);
- the weighted-CE sweep: the best rank agreement with 1 - Dice that any foreground weight reaches,
  next to soft Dice's and Lovász's (:func:`wce_sweep`). docs/theory.md, A6: no fixed weighting of a
  pixel-wise loss approximates Dice on every image, since Dice normalises by |G| + |S| per image; on
  one population a tuned weight can still rank as well as Dice, and the best weight moves with the case.

Rank agreement over a population is the in-app proxy for Eelbode et al.'s theorem (A8), not
their training experiments (docs/theory.md, A8). Labels such as A3 refer to docs/theory.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..core.engine import CHUNK_ELEMENTS, evaluate_batches
from ..core.limits import check_elements
from ..core.metrics import segmentation_metrics
from ..core.registry import GROUPS, get_loss, list_losses
from ..core.stats import hard_counts
from ..data import perturb
from ..data.case import Case
from .bias import ProgressFn, _two_channel, binary_view, loss_label

#: Largest gap between Dice and Jaccard of the same pair of masks (A3), at J = sqrt(2) - 1.
MAX_DICE_JACCARD_GAP = 3.0 - 2.0 * math.sqrt(2.0)

#: The metric names of :attr:`Agreement.metrics`.
METRICS = ("1 - Dice", "1 - Jaccard", "HD95")

#: Soft Dice / Jaccard in the form the relation holds for: foreground only, linear, no smoothing.
EXACT_SOFT = {"include_background": False, "smooth": 0.0, "squared": False}


# ----------------------------------------------------------------------------------------------
# the population
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """``n`` perturbed predictions of one case, binary view.

    ``foreground``: ``(n, H, W)`` foreground probabilities; ``gt``: ``(H, W)`` bool mask;
    ``amounts``: the perturbation amounts of each prediction (``segloss_core.data.perturb.apply``);
    ``spacing``: pixel size of the slice (for HD95).
    """

    foreground: torch.Tensor
    gt: np.ndarray
    amounts: dict[str, np.ndarray]
    spacing: tuple[float, float]
    seed: int

    def __len__(self) -> int:
        return int(self.foreground.shape[0])

    def probs(self, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Two-channel probabilities ``(hi - lo, 2, H, W)``."""
        return _two_channel(self.foreground[lo:hi])

    def target(self) -> torch.Tensor:
        """The ``(1, 2, H, W)`` one-hot target."""
        return _two_channel(torch.as_tensor(self.gt, dtype=self.foreground.dtype)[None])

    def hard(self) -> torch.Tensor:
        """Arg-max masks ``(n, H, W)`` (foreground where its probability exceeds 1/2)."""
        return self.foreground > 0.5


def random_amounts(n: int, object_size: int, seed: int = 0, strength: float = 1.0) -> dict[str, np.ndarray]:
    """Seeded random perturbation amounts, scaled to the object (``object_size`` pixels).

    Each prediction draws every perturbation independently; each is active with probability 0.6
    (else at its identity): ``dilate`` and shifts up to ``strength x 0.4 x`` the equivalent
    radius (at most 8 px), ``logit_scale`` log-uniform in [1/4, 4], ``fp_area`` up to half the
    object, ``fn_fraction`` up to 0.4, ``noise`` up to 1.5 logits.
    """
    rng = np.random.default_rng(seed)
    radius = math.sqrt(max(object_size, 1) / math.pi)
    reach = min(8.0, max(1.0, 0.4 * radius)) * strength

    def active(values: np.ndarray, identity: float) -> np.ndarray:
        return np.where(rng.random(n) < 0.6, values, identity)

    amounts = {
        "dilate": active(rng.uniform(-reach, reach, n), 0.0),
        "shift_x": active(rng.uniform(-reach, reach, n), 0.0),
        "shift_y": active(rng.uniform(-reach, reach, n), 0.0),
        "logit_scale": active(np.exp(rng.uniform(math.log(0.25), math.log(4.0), n) * min(1.0, strength)), 1.0),
        "fp_area": active(rng.uniform(0.0, 0.5 * object_size * strength, n), 0.0),
        "fn_fraction": active(rng.uniform(0.0, min(0.9, 0.4 * strength), n), 0.0),
        "noise": active(rng.uniform(0.0, min(5.0, 1.5 * strength), n), 0.0),
    }
    for name, values in amounts.items():
        lo, hi = perturb.PERTURBATIONS[name].range
        amounts[name] = np.clip(values, lo, hi)
    return amounts


def population(
    case_or_gt: Case | np.ndarray,
    n: int = 200,
    seed: int = 0,
    *,
    strength: float = 1.0,
    foreground_class: int | None = None,
    slice_index: int | None = None,
    max_side: int | None = None,
    dtype: torch.dtype = torch.float32,
    progress: ProgressFn | None = None,
) -> Population:
    """A seeded population of ``n`` perturbed predictions of the case, made in one batched
    :func:`segloss_core.data.perturb.apply` call on the binary view (the case's prediction, or a
    0.9-confidence copy of the GT for a bare label map).

    ``max_side``: the binary view is first reduced so that its longer side is at most this many
    pixels (:func:`reduce_view`); every later cost (the perturbations, each loss, HD95) scales with
    the pixel count. ``None`` keeps the full resolution. ``progress(fraction, message)`` is called
    before each chunk."""
    if n < 3:
        raise ValueError(f"the population needs at least 3 predictions, got {n}")
    mask, fg = binary_view(case_or_gt, foreground_class=foreground_class, slice_index=slice_index)
    if fg is None:
        fg = np.where(mask, 0.9, 0.1)
    spacing = tuple(case_or_gt.spacing[-2:]) if isinstance(case_or_gt, Case) else (1.0, 1.0)
    if max_side is not None:
        mask, fg, spacing = reduce_view(mask, fg, spacing, max_side)
    if not mask.any():
        raise ValueError("the ground truth has no foreground pixel: Dice and Jaccard are undefined")
    check_elements(mask.shape, what="population", batch=n)  # the n stored predictions
    amounts = random_amounts(n, int(mask.sum()), seed, strength)
    base = torch.as_tensor(np.stack([1.0 - fg, fg]), dtype=dtype)
    labels = mask.astype(np.int64)
    prepared = perturb.prepare(base, labels)
    step = max(1, CHUNK_ELEMENTS // base.numel())
    parts = []
    with torch.inference_mode():  # chunks: the same outputs as one call, several times faster
        for lo in range(0, n, step):
            if progress is not None:
                progress(lo / n, f"perturbing predictions {lo + 1}-{min(n, lo + step)} of {n}")
            chunk = {k: v[lo: lo + step] for k, v in amounts.items()}
            parts.append(perturb.apply(prepared, labels, chunk, seed=seed)[:, 1])
    return Population(torch.cat(parts).contiguous(), mask, amounts, spacing, int(seed))


def working_sides(shape: Sequence[int], choices: Sequence[int], preferred: int) -> tuple[tuple[int, ...], int]:
    """The working resolutions (longer side, px) offered for a view of ``shape``: the ``choices``
    below its longer side, then the longer side itself (full resolution); and the default, the
    offered side closest to ``preferred`` (the smaller one on a tie)."""
    side = int(max(shape))
    sides = tuple(int(s) for s in choices if s < side) + (side,)
    return sides, min(sides, key=lambda s: abs(s - preferred))


def reduce_view(mask: np.ndarray, fg: np.ndarray, spacing: tuple[float, float], max_side: int
                ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """The binary view ``(mask, foreground probability, spacing)`` reduced so that its longer side
    is at most ``max_side`` px, as :func:`segloss_core.analyses.optimise.working_case` reduces a case: area
    averaging of the probability and of the mask, the reduced mask is where the averaged mask
    exceeds 1/2 (ties to the background), the spacing grows by the factor. Returned as is when
    already small enough."""
    h, w = mask.shape
    factor = max(h, w) / float(max_side)
    if factor <= 1:
        return mask, fg, spacing
    size = (max(1, round(h / factor)), max(1, round(w / factor)))
    both = torch.as_tensor(np.stack([mask, fg]), dtype=torch.float64)[None]
    small = torch.nn.functional.interpolate(both, size=size, mode="area")[0].numpy()
    return small[0] > 0.5, small[1], (spacing[0] * h / size[0], spacing[1] * w / size[1])


# ----------------------------------------------------------------------------------------------
# metrics and rank correlations
# ----------------------------------------------------------------------------------------------


def hard_metrics(pred: torch.Tensor | np.ndarray, gt: np.ndarray, spacing=None, *, hd95: bool = True
                 ) -> dict[str, np.ndarray]:
    """``1 - Dice``, ``1 - Jaccard`` (vectorised counts) and ``HD95``
    (:func:`segloss_core.core.metrics.segmentation_metrics`, NaN where a mask is empty) of ``(n, H, W)``
    hard masks against the ``(H, W)`` GT."""
    pm = torch.as_tensor(pred).bool().flatten(1)
    gm = torch.as_tensor(np.asarray(gt, dtype=bool)).flatten()[None]
    tp, p_sum = (t[:, 0] for t in hard_counts(pm, gm))
    g_sum = gm.sum().double()
    dice = 2 * tp / (p_sum + g_sum)
    jaccard = tp / (p_sum + g_sum - tp)
    out = {"1 - Dice": (1 - dice).numpy(), "1 - Jaccard": (1 - jaccard).numpy()}
    if hd95:
        masks = torch.as_tensor(pred).bool().cpu().numpy()
        gt_b = np.asarray(gt, dtype=bool)
        hd = [segmentation_metrics(m, gt_b, spacing=spacing)["hd95"] for m in masks]
        out["HD95"] = np.array([np.nan if v is None else v for v in hd], dtype=np.float64)
    return out


def rank_correlation(x: np.ndarray, y: np.ndarray, method: str = "spearman") -> float:
    """Spearman's rho or Kendall's tau-b (scipy.stats) over the pairs where both are finite;
    NaN when fewer than 3 pairs remain or one side is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "spearman":
            return float(stats.spearmanr(x[ok], y[ok]).statistic)
        if method == "kendall":
            return float(stats.kendalltau(x[ok], y[ok]).statistic)
    raise ValueError(f"method must be 'spearman' or 'kendall', got {method!r}")


@dataclass(frozen=True)
class Agreement:
    """Loss values over a population and their rank agreement with the metrics.

    ``values[loss]``: ``(n,)`` or ``"n/a: reason"``; ``metrics[name]``: ``(n,)`` for
    :data:`METRICS`; ``spearman[loss][metric]`` and ``kendall[loss][metric]``; ``hard``: whether
    the losses saw the arg-max predictions instead of the soft ones.
    """

    values: dict[str, np.ndarray | str]
    metrics: dict[str, np.ndarray]
    spearman: dict[str, dict[str, float]]
    kendall: dict[str, dict[str, float]]
    labels: dict[str, str]
    hard: bool
    n: int

    def ranking(self, metric: str = "1 - Dice", method: str = "spearman", *, finite: bool = False
                ) -> list[tuple[str, float]]:
        """``(loss, correlation)`` sorted from the best agreement down (NaN last); ``finite=True``
        leaves out the losses whose correlation is NaN (undefined)."""
        table = self.spearman if method == "spearman" else self.kendall
        rows = [(k, v[metric]) for k, v in table.items()]
        if finite:
            rows = [(k, v) for k, v in rows if math.isfinite(v)]
        return sorted(rows, key=lambda kv: (-kv[1] if np.isfinite(kv[1]) else np.inf))

    def correlation(self, loss: str, metric: str = "1 - Dice", method: str = "spearman") -> float:
        """``loss``'s rank correlation with ``metric`` (NaN when the loss is absent or n/a)."""
        table = self.spearman if method == "spearman" else self.kendall
        return table.get(loss, {}).get(metric, float("nan"))

    def n_undefined(self, metric: str = "HD95") -> int:
        """How many predictions have no finite ``metric`` (HD95 of an empty mask is NaN); 0 when the
        metric was not computed."""
        return int(np.sum(~np.isfinite(np.asarray(self.metrics.get(metric, ()), dtype=np.float64))))

    def group_means(self, metric: str = "1 - Dice", method: str = "spearman") -> dict[str, float]:
        """``{group title: mean correlation}`` over each display group's losses (``LossSpec.group``,
        titles from :data:`segloss_core.core.spec.GROUPS`), finite correlations only, best first; a group
        with no finite correlation is left out."""
        table = self.spearman if method == "spearman" else self.kendall
        means = {}
        for key, title in GROUPS.items():
            vals = [table[k][metric] for k in table if get_loss(k).group == key and math.isfinite(table[k][metric])]
            if vals:
                means[title] = sum(vals) / len(vals)
        return dict(sorted(means.items(), key=lambda kv: -kv[1]))


def _predictions(pop: Population, hard: bool) -> Callable[[int, int], torch.Tensor]:
    if hard:
        return lambda lo, hi: _two_channel((pop.foreground[lo:hi] > 0.5).to(pop.foreground.dtype))
    return lambda lo, hi: pop.probs(lo, hi)


def loss_values(
    pop: Population,
    losses: Sequence[str] | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    hard: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, np.ndarray | str]:
    """Every loss (default: all registered) on every prediction of the population: ``(n,)`` or
    ``"n/a: reason"``; ``hard=True`` feeds the losses the arg-max predictions."""
    losses = list(list_losses() if losses is None else losses)
    return evaluate_batches(len(pop), _predictions(pop, hard), pop.target(), losses, params=params,
                            spacing=pop.spacing, progress=progress)


def agreement_from_values(
    values: dict[str, np.ndarray | str],
    metrics: dict[str, np.ndarray],
    *,
    params: dict[str, dict[str, Any]] | None = None,
    hard: bool = False,
) -> Agreement:
    """Spearman and Kendall correlations of precomputed loss values with the metrics."""
    spearman: dict[str, dict[str, float]] = {}
    kendall: dict[str, dict[str, float]] = {}
    for name, v in values.items():
        if isinstance(v, str):
            continue
        spearman[name] = {m: rank_correlation(v, metrics[m], "spearman") for m in metrics}
        kendall[name] = {m: rank_correlation(v, metrics[m], "kendall") for m in metrics}
    labels = {k: loss_label(k, (params or {}).get(k)) for k in values}
    n = len(next(iter(metrics.values()))) if metrics else 0
    return Agreement(values, metrics, spearman, kendall, labels, bool(hard), n)


def agreement(
    pop: Population,
    losses: Sequence[str] | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    hard: bool = False,
    progress: ProgressFn | None = None,
) -> Agreement:
    """Every loss (default: all registered) over the population, and its Spearman and Kendall
    correlation with 1 - Dice, 1 - Jaccard and HD95 of the arg-max predictions (a loss that
    orders the predictions as the metric does scores 1). ``hard=True`` feeds the losses the arg-max
    predictions too (then the linear, unsmoothed, foreground Dice loss *is* 1 - Dice)."""
    values = loss_values(pop, losses, params=params, hard=hard, progress=progress)
    metrics = hard_metrics(pop.hard(), pop.gt, pop.spacing)
    return agreement_from_values(values, metrics, params=params, hard=hard)


# ----------------------------------------------------------------------------------------------
# Dice vs Jaccard
# ----------------------------------------------------------------------------------------------


def jaccard_from_dice_loss(dice_loss):
    """Exact relation (A1/A4): :math:`L_J = 2L_D / (1 + L_D)` (same pair, no smoothing)."""
    d = np.asarray(dice_loss, dtype=np.float64)
    return 2 * d / (1 + d)


def relation_gap(dice_loss, jaccard_loss) -> float:
    """Largest :math:`|L_J - 2L_D/(1 + L_D)|` over paired values: ~1e-16 for the foreground-only,
    unsmoothed losses (A4); smoothing and a mean over several classes (the registry's defaults
    include the background) move the pair off the curve."""
    lj = np.asarray(jaccard_loss, dtype=np.float64)
    return float(np.max(np.abs(lj - jaccard_from_dice_loss(dice_loss))))


def bound_curves(n: int = 201) -> dict[str, np.ndarray]:
    """Curves for the (L_D, L_J) plane: the relation, and the bounds J <= D (``L_J >= L_D``),
    D <= 2J (``L_J <= (1 + L_D)/2``); plus the point of largest gap D - J = 3 - 2 sqrt 2."""
    ld = np.linspace(0.0, 1.0, n)
    j_star = math.sqrt(2.0) - 1.0
    d_star = 2 * j_star / (1 + j_star)
    return {
        "dice_loss": ld,
        "relation": jaccard_from_dice_loss(ld),
        "lower": ld,
        "upper": (1 + ld) / 2,
        "max_gap_point": np.array([1 - d_star, 1 - j_star]),
    }


@dataclass(frozen=True)
class DiceJaccard:
    """Soft (fg only, linear, no smoothing) and hard Dice / Jaccard losses over a population,
    with the largest deviations from the relation and the bounds (all ~1e-16 when they hold)."""

    soft_dice_loss: np.ndarray
    soft_jaccard_loss: np.ndarray
    hard_dice_loss: np.ndarray
    hard_jaccard_loss: np.ndarray
    relation_error: dict[str, float]
    bound_violation: dict[str, float]
    max_gap: dict[str, float]

    @property
    def largest(self) -> dict[str, float]:
        """The worst of soft and hard: ``{"relation_error", "bound_violation", "max_gap"}``, each the
        larger of its two entries."""
        return {"relation_error": max(self.relation_error.values()),
                "bound_violation": max(self.bound_violation.values()),
                "max_gap": max(self.max_gap.values())}


def _check_relation(ld: np.ndarray, lj: np.ndarray) -> tuple[float, float, float]:
    d, j = 1 - ld, 1 - lj
    err = relation_gap(ld, lj)
    gap = d - j
    violation = float(max(0.0, np.max(j - d), np.max(d - 2 * j), np.max(-gap), np.max(gap - MAX_DICE_JACCARD_GAP)))
    return err, violation, float(np.max(gap))


def dice_jaccard(pop: Population, *, progress: ProgressFn | None = None) -> DiceJaccard:
    """Soft Jaccard vs soft Dice (the registered ``iou`` and ``dice`` losses with
    :data:`EXACT_SOFT`) and hard Jaccard vs hard Dice over the population, with the checks of
    A1-A3: :math:`L_J = 2L_D/(1+L_D)`, :math:`J \\le D \\le 2J`, :math:`0 \\le D - J \\le 3 - 2\\sqrt2`."""
    params = {"dice": EXACT_SOFT, "iou": EXACT_SOFT}
    soft = evaluate_batches(len(pop), lambda lo, hi: pop.probs(lo, hi).double(), pop.target().double(),
                            ["dice", "iou"], params=params, progress=progress)
    hard = hard_metrics(pop.hard(), pop.gt, hd95=False)
    ld, lj = soft["dice"], soft["iou"]
    hd, hj = hard["1 - Dice"], hard["1 - Jaccard"]
    s_err, s_viol, s_gap = _check_relation(ld, lj)
    h_err, h_viol, h_gap = _check_relation(hd, hj)
    return DiceJaccard(ld, lj, hd, hj, {"soft": s_err, "hard": h_err}, {"soft": s_viol, "hard": h_viol},
                       {"soft": s_gap, "hard": h_gap})


# ----------------------------------------------------------------------------------------------
# weighted CE vs Dice
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WceSweep:
    """Rank agreement of weighted CE (background weight 1, foreground weight ``w``) with a
    metric over the population, for every ``w``; ``reference`` holds the same correlation for
    soft Dice and Lovász (and plain CE, ``w = 1``)."""

    weights: np.ndarray
    spearman: np.ndarray
    kendall: np.ndarray
    metric: str
    reference: dict[str, dict[str, float]]

    @property
    def best(self) -> tuple[float, float]:
        """``(weight, Spearman)`` of the best agreement any weight reaches."""
        i = int(np.nanargmax(self.spearman))
        return float(self.weights[i]), float(self.spearman[i])

    def reference_spearman(self, prefix: str) -> float:
        """Spearman correlation of the first reference whose label starts with ``prefix`` (labels
        come from :func:`~segloss_core.analyses.bias.loss_label`: ``"Dice"``, ``"Lov"``, ...); NaN when
        none does (a reference left out or n/a)."""
        return next((v["spearman"] for k, v in self.reference.items() if k.startswith(prefix)), float("nan"))

    def best_versus(self, rho: float) -> str:
        """Where the best weight's Spearman correlation lies relative to ``rho``: ``"below"``,
        ``"above"`` or ``"equal to"`` (also for a NaN ``rho``, which compares neither way)."""
        best = self.best[1]
        return "below" if best < rho else "above" if best > rho else "equal to"


def wce_sweep(
    pop: Population,
    weights: Sequence[float] | None = None,
    *,
    metric: str = "1 - Dice",
    references: Sequence[str] = ("dice", "lovasz_softmax", "ce"),
    reference_params: dict[str, dict[str, Any]] | None = None,
    reference_values: dict[str, np.ndarray] | None = None,
    metrics: dict[str, np.ndarray] | None = None,
    hard: bool = False,
    progress: ProgressFn | None = None,
) -> WceSweep:
    r"""Sweep the foreground weight of ``wce`` over a log grid (default :math:`10^{-3}..10^{4}`).

    ``wce`` with weights ``(1, w)`` is :math:`A_{bg} + w A_{fg}` per sample (the paper's 1/N
    normalisation makes it linear in the weights), so the two registered evaluations with weights
    ``(1, 0)`` and ``(0, 1)`` give every ``w`` exactly. A6: no weight makes a per-pixel sum
    normalise by ``|G| + |S|`` as Dice does. The references default to the soft Dice of the
    relation (:data:`EXACT_SOFT`: foreground only, linear, no smoothing), Lovász-Softmax and CE;
    ``hard=True`` feeds every loss the arg-max masks (then that Dice agrees exactly).
    ``reference_values``: already computed values of some references (same population, same
    ``hard``, the same ``reference_params``), which are then not recomputed.
    """
    reference_params = {"dice": EXACT_SOFT} if reference_params is None else reference_params
    make = _predictions(pop, hard)
    weights = np.logspace(-3, 4, 57) if weights is None else np.asarray(weights, dtype=np.float64)
    if metrics is None:
        metrics = hard_metrics(pop.hard(), pop.gt, pop.spacing, hd95=metric == "HD95")
    if metric not in metrics:
        raise ValueError(f"metric must be one of {list(metrics)}, got {metric!r}")
    target = metrics[metric]
    parts = {}
    for key, w in (("bg", (1.0, 0.0)), ("fg", (0.0, 1.0))):
        parts[key] = evaluate_batches(len(pop), make, pop.target(), ["wce"],
                                      params={"wce": {"weights": w}}, progress=progress)["wce"]
    curves = parts["bg"][None, :] + weights[:, None] * parts["fg"][None, :]
    rho = np.array([rank_correlation(c, target, "spearman") for c in curves])
    tau = np.array([rank_correlation(c, target, "kendall") for c in curves])
    given = dict(reference_values or {})
    todo = [k for k in references if k not in given]
    ref_values = evaluate_batches(len(pop), make, pop.target(), todo, params=reference_params,
                                  progress=progress) if todo else {}
    ref_values = {k: given[k] if k in given else ref_values[k] for k in references}
    reference = {
        loss_label(k, reference_params.get(k)): {"spearman": rank_correlation(v, target, "spearman"),
                        "kendall": rank_correlation(v, target, "kendall")}
        for k, v in ref_values.items() if not isinstance(v, str)
    }
    return WceSweep(weights, rho, tau, metric, reference)


__all__ = [
    "EXACT_SOFT",
    "MAX_DICE_JACCARD_GAP",
    "METRICS",
    "Agreement",
    "DiceJaccard",
    "Population",
    "WceSweep",
    "agreement",
    "agreement_from_values",
    "bound_curves",
    "dice_jaccard",
    "hard_metrics",
    "jaccard_from_dice_loss",
    "loss_values",
    "population",
    "random_amounts",
    "rank_correlation",
    "reduce_view",
    "relation_gap",
    "wce_sweep",
    "working_sides",
]
