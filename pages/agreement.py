"""Metric agreement (Eelbode et al.): which losses order predictions the way Dice does.

Widgets and layout only: the numbers come from ``segloss_core.analyses.agreement`` and the figures from
``segloss_core.plots.agreement``, cached (``ui.cache``) on the case and the settings. Each panel is an
``st.fragment``, so its controls rerun only that panel.
"""

from __future__ import annotations

import math

import streamlit as st

import segloss_core as sc
from segloss_core.analyses import agreement as ag
from segloss_core.analyses import bias
from segloss_core.plots import agreement as pa
from ui.cache import page_cache, progress_bar
from ui.session import current_case, current_params, panel
from ui.widgets import binary_view_picker

KEY = "agr_"
METHODS = {"spearman": "Spearman ρ", "kendall": "Kendall τ"}
SIDES = (64, 128, 256)
WORKING_SIDE = 128  # the default working resolution (longer side, px)


# ----------------------------------------------------------------------------- cached numerics


# every function takes the population's settings first: (case, fg_class, n, seed, strength, max_side)


@page_cache(max_entries=4)
def _population(case, fg_class, n, seed, strength, max_side, progress=None) -> ag.Population:
    return ag.population(case, n=n, seed=seed, strength=strength, foreground_class=fg_class, max_side=max_side,
                         progress=progress)


@page_cache(max_entries=64)
def _values(case, fg_class, n, seed, strength, max_side, names, hard, params, progress=None):
    pop = _population(case, fg_class, n, seed, strength, max_side)
    return ag.loss_values(pop, list(names), params=params, hard=hard, progress=progress)


@page_cache(max_entries=16)
def _metrics(case, fg_class, n, seed, strength, max_side, hd95=False):
    """1 - Dice and 1 - Jaccard; HD95 (a distance transform per prediction) only when asked."""
    pop = _population(case, fg_class, n, seed, strength, max_side)
    return ag.hard_metrics(pop.hard(), pop.gt, pop.spacing, hd95=hd95)


@page_cache(max_entries=16)
def _dice_jaccard(case, fg_class, n, seed, strength, max_side) -> ag.DiceJaccard:
    return ag.dice_jaccard(_population(case, fg_class, n, seed, strength, max_side))


@page_cache(max_entries=16)
def _wce(case, fg_class, n, seed, strength, max_side, metric, hard, lovasz_params: dict | None) -> ag.WceSweep:
    """``lovasz_params=None``: no Lovász reference (a slow loss)."""
    settings = (case, fg_class, n, seed, strength, max_side)
    given, refs = {}, ("dice", "ce")
    if lovasz_params is not None:
        p = {"lovasz_softmax": lovasz_params} if lovasz_params else {}
        lovasz = _values(*settings, ("lovasz_softmax",), hard, p)["lovasz_softmax"]
        given = {} if isinstance(lovasz, str) else {"lovasz_softmax": lovasz}
        refs = ("dice", "lovasz_softmax", "ce")
    return ag.wce_sweep(_population(*settings), metric=metric, metrics=_metrics(*settings), hard=hard,
                        references=refs, reference_values=given,
                        reference_params={"dice": ag.EXACT_SOFT, "lovasz_softmax": lovasz_params or {}})


# ----------------------------------------------------------------------------- panels


@st.fragment
def dice_jaccard_panel(case, settings, params):
    with panel("Dice vs Jaccard"):
        dj = _dice_jaccard(*settings)
        p = {k: params[k] for k in ("dice", "iou") if k in params}
        pair = _values(*settings, ("dice", "iou"), False, p)
        gap = ag.relation_gap(pair["dice"], pair["iou"])
        labels = {k: bias.loss_label(k, params.get(k)) for k in ("dice", "iou")}
        st.plotly_chart(pa.dice_jaccard_figure(dj), width="stretch", key=KEY + "dj_fig")
        worst = dj.largest
        cols = st.columns(3)
        cols[0].metric("Largest |L_J − 2L_D/(1+L_D)|", f"{worst['relation_error']:.1e}",
                       help="Soft (fg only, linear, no smoothing) and hard losses alike.")
        cols[1].metric("Largest bound violation", f"{worst['bound_violation']:.1e}",
                       help="J ≤ D ≤ 2J and 0 ≤ D − J ≤ 3 − 2√2.")
        cols[2].metric("Largest D − J seen", f"{worst['max_gap']:.4f}",
                       help=f"Never above 3 − 2√2 = {ag.MAX_DICE_JACCARD_GAP:.4f}, reached at J = √2 − 1.")
        st.markdown(
            "**What it shows.** Every prediction lies on the curve L_J = 2 L_D / (1 + L_D), soft (foreground "
            "only, linear denominator, no smoothing) and hard alike: Dice and Jaccard losses are increasing "
            "functions of each other, so they rank every prediction the same way and share their minimisers "
            "(Eelbode et al.: they approximate each other relatively, J ≤ D ≤ 2J, and absolutely, "
            f"0 ≤ D − J ≤ 3 − 2√2 ≈ {ag.MAX_DICE_JACCARD_GAP:.4f}). The relation is exact only in that form "
            "(docs/theory.md, A4): smoothing, or a mean over background and foreground, moves the pair off "
            f"the curve. With the parameters in force ({labels['dice']}; {labels['iou']}) the registered soft "
            f"Dice and Jaccard of these predictions are up to {gap:.3f} off it.")


def exact_dice(agr, metric, method) -> str:
    """On arg-max masks the fg-only unsmoothed Dice is 1 - Dice itself; say what the Dice in the bars gets."""
    rho = agr.correlation("dice", metric, method)
    return ("On arg-max masks the foreground-only, unsmoothed soft Dice is 1 − Dice itself (ρ = 1, "
            "docs/theory.md, A8); the Dice in these bars uses the parameters in force "
            f"({agr.labels.get('dice', 'dice')}), a different set function, and reaches {METHODS[method]} = "
            f"{rho:.4f} with {metric}. ")


@st.fragment
def ranking_panel(case, settings, hard, params, titles, with_slow):
    with panel("the rank agreement"):
        cols = st.columns([2, 2, 3])
        metric = cols[0].radio("Metric", list(ag.METRICS), horizontal=True, key=KEY + "metric")
        method = cols[1].segmented_control("Correlation", list(METHODS), format_func=METHODS.get,
                                           default="spearman", key=KEY + "method") or "spearman"
        names = sc.list_losses()
        fast = tuple(n for n in names if n not in bias.SLOW_LOSSES)
        slow = [n for n in names if n in bias.SLOW_LOSSES]
        with progress_bar("Losses over the population:") as tick:
            values = dict(_values(*settings, fast, hard, {k: params[k] for k in fast if k in params}, progress=tick))
        if with_slow and slow:
            bar = st.progress(0.0, text="Slower losses…")
            for i, name in enumerate(slow):
                bar.progress(i / len(slow), text=f"Computing {titles[name]} over the population "
                                                 f"({i + 1} of {len(slow)})…")
                p = {name: params[name]} if name in params else {}
                values.update(_values(*settings, (name,), hard, p))
            bar.empty()
        agr = ag.agreement_from_values(values, _metrics(*settings, hd95=metric == "HD95"), params=params, hard=hard)
        st.plotly_chart(pa.rank_bars_figure(agr, metric, method), width="stretch", key=KEY + "bars")
        unavailable = {k: v for k, v in agr.values.items() if isinstance(v, str)}
        if unavailable:
            st.caption("Not shown: " + "; ".join(f"{titles[k]}: {v}" for k, v in unavailable.items()))
        if slow and not with_slow:
            st.caption(f"Left out until *Include the slow losses* is on: {', '.join(titles[k] for k in slow)}.")
        ranked = agr.ranking(metric, method, finite=True)
        top = ", ".join(f"{agr.labels[k]} ({v:.3f})" for k, v in ranked[:3])
        bottom = ", ".join(f"{agr.labels[k]} ({v:.3f})" for k, v in ranked[-3:])
        n_nan = agr.n_undefined("HD95")
        groups = " > ".join(f"{g} ({v:.3f})" for g, v in agr.group_means(metric, method).items())
        st.markdown(
            f"**What it shows.** Over {agr.n} perturbed predictions, a correlation of 1 means the loss orders them "
            f"exactly as {metric} does. Closest: {top}. Furthest: {bottom}. Mean {METHODS[method]} by family: "
            f"{groups}. "
            + (f"HD95 is undefined for {n_nan} predictions with an empty mask (left out). " if n_nan else "")
            + (exact_dice(agr, metric, method) if hard else
               "The losses see soft predictions, whose confidence the hard metric ignores; switch "
               "*Losses see arg-max masks* on to compare the set functions themselves. ")
            + "This is a proxy on one case, not the papers' training experiments.")
        pick = st.selectbox("Look at one loss", [k for k, _ in ranked], format_func=lambda k: agr.labels[k],
                            key=KEY + "scatter_loss")
        if pick:
            st.plotly_chart(pa.loss_metric_scatter(agr, pick, metric), width="stretch", key=KEY + "scatter")


@st.fragment
def wce_panel(case, settings, hard, params, with_slow):
    with panel("the weighted-CE sweep"):
        metric = st.radio("Agree with", ["1 - Dice", "1 - Jaccard"], horizontal=True, key=KEY + "wce_metric")
        sweep = _wce(*settings, metric, hard, dict(params.get("lovasz_softmax", {})) if with_slow else None)
        st.plotly_chart(pa.wce_sweep_figure(sweep), width="stretch", key=KEY + "wce_fig")
        w, best = sweep.best
        dice = sweep.reference_spearman("Dice")
        lovasz = sweep.reference_spearman("Lov")

        def versus(name, rho):
            return f"{sweep.best_versus(rho)} {name}'s ρ = {rho:.3f}"

        st.markdown(
            f"**What it shows.** Sweeping the foreground weight of weighted CE from 10⁻³ to 10⁴, the best rank "
            f"agreement with {metric} any weight reaches is ρ = {best:.3f} (at w = {w:.3g}), "
            f"{versus('soft Dice (fg only, linear, no smoothing)', dice)}"
            + (f" and {versus('Lovász-Softmax', lovasz)}. " if math.isfinite(lovasz) else ". ")
            + "Eelbode et al.'s theorem is a statement about all images at once: no fixed weighting of a "
            "per-pixel (Hamming-type) loss stays within a constant factor of Dice, because Dice normalises "
            "each image by |G| + |S| while a weighted sum over pixels cannot (docs/theory.md, A6). On one "
            "population a weight tuned to it can rank as well as Dice, or better; the best weight then moves "
            "with the case (compare the disk, the thin vessel and the tiny lesion). "
            + ("" if hard else "On soft predictions the soft losses also pay for confidence, which the hard metric "
               "ignores; with *Losses see arg-max masks* on, this Dice's ρ becomes exactly 1: compare the best weight there."))


# ----------------------------------------------------------------------------- page


st.title("Metric agreement")
st.caption("Eelbode et al., *Optimization for medical image segmentation: theory and practice when evaluating "
           "with Dice score or Jaccard index* (IEEE TMI 2020): do the losses order predictions as the metric does?")

case = current_case()
case, fg_class = binary_view_picker(case, KEY, "Dice and Jaccard are binary here: the page uses")

mask, _ = bias.binary_view(case, foreground_class=fg_class)
if bias.view_problem(mask) == "empty":
    st.warning("Dice and Jaccard are undefined for an empty ground truth. Pick another preset in the sidebar.")
    st.stop()

cols = st.columns(4)
n = cols[0].select_slider("Predictions", [50, 100, 200, 400], value=100, key=KEY + "n")
seed = int(cols[1].number_input("Seed", 0, 10_000, 0, key=KEY + "seed"))
strength = cols[2].slider("Perturbation strength", 0.25, 2.0, 1.0, 0.25, key=KEY + "strength")
hard = cols[3].toggle("Losses see arg-max masks", value=False, key=KEY + "hard",
                      help="Off: the losses see the soft perturbed predictions; the metrics always use the arg-max.")
cols = st.columns(4)
sides, default_side = ag.working_sides(mask.shape, SIDES, WORKING_SIDE)
max_side = cols[0].select_slider(
    "Working resolution (longer side, px)", sides, value=default_side,
    key=KEY + "max_side", help="The binary view is reduced by area averaging before it is perturbed: every cost "
                               "(each prediction, each loss, HD95) grows with the pixel count.")
slow_names = [sc.get_loss(k).title for k in sc.list_losses() if k in bias.SLOW_LOSSES]
with_slow = cols[1].toggle("Include the slow losses", value=False, key=KEY + "slow",
                           help="Losses that sort, skeletonise or take distance maps per prediction ("
                                + ", ".join(slow_names) + "): seconds more per population.")
st.caption(f"The population: the current prediction (at most {max_side} px per side) perturbed at random (seeded) "
           "by dilation/erosion, shifts, confidence scaling, a false-positive blob, a dropped part and logit noise, "
           "each active with probability 0.6 and scaled to the object's size, in one batched call of "
           "segloss_core.data.perturb.apply.")

params = current_params()
titles = {k: sc.get_loss(k).title for k in sc.list_losses()}
settings = (case, fg_class, n, seed, strength, max_side)
with progress_bar("Population:") as tick:
    _population.ensure(*settings, progress=tick)

st.subheader("Soft Jaccard vs soft Dice: one is a function of the other")
dice_jaccard_panel(case, settings, params)

st.subheader("Which losses order predictions like the metric?")
ranking_panel(case, settings, hard, params, titles, with_slow)

st.subheader("Can a weighted CE stand in for Dice?")
wce_panel(case, settings, hard, params, with_slow)
