"""Region-size bias (Liu et al.): which predicted size each loss prefers, and why.

Widgets and layout only: the numbers come from ``segloss_core.analyses.bias`` and the figures from
``segloss_core.plots.bias``, cached (``ui.cache``) on the case and the settings. Each panel is an
``st.fragment``, so its sliders rerun only that panel.
"""

from __future__ import annotations

import streamlit as st

import segloss_core as sc
from segloss_core.analyses import bias
from segloss_core.plots import bias as pb
from ui.cache import cached, page_cache
from ui.session import current_case, current_params, panel
from ui.widgets import binary_view_picker

KEY = "bias_"


def _loss_params(params: dict, names) -> dict:
    return {n: params[n] for n in names if n in params}


# ----------------------------------------------------------------------------- cached numerics


def _size_curve(case, names, n, confidence, fg_class, params) -> bias.SizeCurve:
    return cached(bias.size_curve, max_entries=64)(case, list(names), n=n, confidence=confidence,
                                                   params=_loss_params(params, names), foreground_class=fg_class)


@page_cache(max_entries=32)
def _band(F, U, pi, background, alpha, temperature):
    losses = _band_losses(alpha, temperature)
    optima = {label: bias.band_optimum(F, U, pi, name, params, background=background)
              for label, (name, params) in losses.items()}
    sweep = bias.band_sweep(F, U, losses=losses, background=background)
    return optima, sweep


def _band_losses(alpha, temperature):
    losses = {k: v for k, v in bias.BAND_LOSSES.items() if v[0] != "region_size"}
    losses[f"CE + L1 region size (α={alpha:g}, T={temperature:g})"] = (
        "region_size", {"alpha": alpha, "temperature": temperature, "penalty": "l1"})
    return losses


# ----------------------------------------------------------------------------- panels


@st.fragment
def size_panel(case, fg_class, params, titles):
    with panel("loss vs predicted size"):
        cols = st.columns([3, 1, 1, 1])
        names = cols[0].multiselect("Losses", sc.list_losses(), default=list(bias.DEFAULT_LOSSES),
                                    format_func=titles.get, key=KEY + "size_losses")
        hard = cols[1].toggle("Hard predictions", value=True, key=KEY + "size_hard",
                              help="Off: every pixel's top-class probability is the confidence below.")
        conf = cols[2].slider("Confidence", 0.55, 0.99, 0.8, 0.01, key=KEY + "size_conf", disabled=hard)
        n = cols[3].select_slider("Points", [50, 100, 200, 400], value=200, key=KEY + "size_n")
        normalise = st.toggle("Normalise each loss to [0, 1]", value=True, key=KEY + "size_norm")
        if not names:
            st.info("Pick at least one loss.")
            return
        confidence = None if hard else conf
        fast = tuple(x for x in names if x not in bias.SLOW_LOSSES)
        slow = [x for x in names if x in bias.SLOW_LOSSES]
        parts = []
        if fast:
            parts.append(_size_curve(case, fast, n, confidence, fg_class, params))
        if slow:
            bar = st.progress(0.0, text="Slower losses…")
            for i, name in enumerate(slow):
                bar.progress(i / len(slow), text=f"Computing {titles[name]} ({i + 1} of {len(slow)})…")
                parts.append(_size_curve(case, (name,), n, confidence, fg_class, params))
            bar.empty()
        curve = bias.SizeCurve.merge(parts)
        st.plotly_chart(pb.size_curve_figure(curve, normalise=normalise), width="stretch", key=KEY + "size_fig")
        rows = [{"loss": curve.labels[k], "minimum at size ratio": curve.argmin.get(k),
                 "loss at the minimum": curve.minima[k],
                 "note": v if isinstance(v, str) else ""} for k, v in curve.values.items()]
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"minimum at size ratio": st.column_config.NumberColumn(format="%.3f")})
        off = curve.off_true_size()
        if off:
            where = ", ".join(f"{curve.labels[k]} (at {r:.2f})" for k, r in off.items())
            verdict = f"The others are smallest at the true size (ratio 1); off it: {where}."
            if "boundary" in off:
                verdict += (" The boundary loss rewards s = 1 only where its signed distance is negative, so it "
                            "drops the object's outermost ring.")
        else:
            verdict = "Every selected loss is smallest at the true size (ratio 1)."
        st.markdown(
            f"**What it shows.** Predictions of the {curve.gt_size:,}-px object are grown and shrunk "
            f"concentrically along the ground truth's distance map. {verdict} For nested predictions the "
            "bias of Liu et al. does not show; it appears when pixels are uncertain (the band model below). "
            "Curves are min-max normalised per loss unless unticked; hover for raw values.")


@st.fragment
def decomposition_panel(case, fg_class):
    with panel("the decomposition"):
        log_x = st.toggle("Log x-axis", value=True, key=KEY + "dec_log")
        dec = cached(bias.decomposition)(case, n=200, foreground_class=fg_class)
        st.plotly_chart(pb.decomposition_figure(dec, log_x=log_x), width="stretch", key=KEY + "dec_fig")
        left, right = st.columns(2)
        left.latex(r"\tfrac1N CE = \underbrace{H(\tau) + KL(\tau\|u)}_{\text{size term}}"
                   r"\;\underbrace{-\tfrac1N\textstyle\sum_i \log \tfrac{s_{i,y_i}}{u_{y_i}}}_{\text{GT matching}}")
        right.latex(r"-\log D_k = \underbrace{-\log\tfrac{\sum_{i\in\Omega_k} s_{ik}}{N} - \log 2}_{\text{GT matching}}"
                    r" + \underbrace{\log(\tau_k + u_k)}_{\text{size penalty}}")
        am = dec.argmin
        st.markdown(
            f"**What it shows** (τ = {dec.tau:.4f}, the GT's foreground proportion; the family is a "
            f"{dec.family}, which changes the predicted proportion u without reordering pixels). "
            f"CE's size term is smallest at u = {am['ce_size']:.4f} = τ: **CE's penalty pulls the predicted "
            "proportion toward the ground-truth proportion.** Dice's size penalty log(τ + u) only grows with u; "
            "with the background class in the mean, log(τ+u) + log(2−τ−u) peaks at u = 1 − τ and is smallest "
            "at an extreme (u → 0 when τ < ½): **Dice's penalty favours particular, imbalanced sizes.** "
            f"Along this family CE is minimal at u = {am['ce']:.4f} and −log Dice at u = {am['dice_fg_total']:.4f}.")


@st.fragment
def band_panel():
    with panel("the uncertain region"):
        cols = st.columns(4)
        F = cols[0].slider("Confident foreground F", 0, 3000, 300, 50, key=KEY + "band_F")
        U = cols[1].slider("Ambiguous band U", 50, 2000, 400, 50, key=KEY + "band_U")
        pi = cols[2].slider("Foreground fraction π of the band", 0.05, 0.95, 0.2, 0.05, key=KEY + "band_pi")
        background = cols[3].slider("Confident background", 0, 4000, 0, 100, key=KEY + "band_bg",
                                    help="Moves none of these optima (every term scales with 1/N); "
                                         "it only rescales the curves.")
        cols = st.columns(2)
        alpha = cols[0].slider("CE + L1: α", 0.0, 5.0, 1.0, 0.1, key=KEY + "band_alpha")
        temperature = cols[1].select_slider("CE + L1: temperature T", [1.0, 2.0, 5.0, 10.0, 20.0], value=10.0,
                                            key=KEY + "band_T")
        with st.spinner("Minimising every loss over q…"):
            optima, sweep = _band(F, U, pi, background, alpha, temperature)
        left, right = st.columns(2)
        left.plotly_chart(pb.band_curves_figure(optima), width="stretch", key=KEY + "band_fig")
        right.plotly_chart(pb.band_sweep_figure(sweep), width="stretch", key=KEY + "band_sweep_fig")
        band = next(iter(optima.values())).band
        closed = bias.band_closed_forms(F, U, band.pi)
        rows = [{"loss": k, "q* (brute force, real loss)": o.q_star} | ({"closed form": closed[k]} if k in closed else {})
                for k, o in optima.items()]
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.4f")
                                    for c in ("q* (brute force, real loss)", "closed form")})
        q = [o.q_star for o in optima.values()]
        zero = bias.q_star_closed_form("region_size_zero", F, U, band.pi, temperature=temperature)
        st.markdown(
            f"**What it shows** (π = {band.pi:.3g}). CE's optimum is q* = π = {q[0]:.3f}: it predicts the "
            f"ambiguous pixels with their true frequency. **Linear Dice jumps to {q[1]:.0f}** (it is monotone in "
            f"q; the switch is at F(2π − 1) + π²U = 0, here {bias.linear_dice_slope(F, U, band.pi):+.1f}), while "
            f"**squared Dice lands in between**, at q* = {q[2]:.3f}. CE + L1 at T = {temperature:g} puts "
            f"q* = {q[3]:.3f}: its penalty vanishes at σ(logit(π)/T) = {zero:.3f}, the proportion of "
            "*sharpened* probabilities, so at the authors' T = 10 it pulls ambiguous pixels toward ½. "
            "Every q* is found by brute force on the registered loss; the table gives the closed forms.")


@st.fragment
def sweep_panel(params, titles):
    with panel("the object-size sweep"):
        cols = st.columns([3, 1, 1])
        names = cols[0].multiselect("Losses", [n for n in sc.list_losses() if n not in bias.SLOW_LOSSES],
                                    default=list(bias.DEFAULT_LOSSES), format_func=titles.get,
                                    key=KEY + "sweep_losses")
        error = cols[1].select_slider("Boundary error (px)", [-2.0, -1.0, 1.0, 2.0, 3.0], value=1.0,
                                      key=KEY + "sweep_err", help="+ = the prediction is the disk of radius R + e")
        conf = cols[2].select_slider("Confidence", [0.9, 0.99, 0.999, 1.0], value=0.999, key=KEY + "sweep_conf")
        if not names:
            st.info("Pick at least one loss.")
            return
        sweep = cached(bias.size_sweep)(boundary_error_px=error, losses=list(names), confidence=conf,
                                        params=_loss_params(params, names))
        st.plotly_chart(pb.size_sweep_figure(sweep), width="stretch", key=KEY + "sweep_fig")
        text = [f"Disks from {sweep.percent[0]:.2g} % to {sweep.percent[-1]:.2g} % of a "
                f"{sweep.image_size} × {sweep.image_size} image, each predicted {error:+g} px off. "
                f"The hard Dice loss falls from {sweep.hard_dice_loss[0]:.3f} to {sweep.hard_dice_loss[-1]:.4f} "
                "(≈ 1/R): the same boundary mistake costs a small object far more."]
        if "ce" in sweep.values and not isinstance(sweep.values["ce"], str):
            ce = sweep.values["ce"]
            floor = sweep.confidence_floor  # every pixel's price for its confidence
            text.append(f"Mean CE instead rises from {ce[0]:.2g} to {ce[-1]:.2g}: above the {floor:.2g} every pixel "
                        "pays for its confidence it grows ∝ R/N, because it counts wrong pixels, whatever the "
                        "object's size.")
        shrink = sweep.gradient_shrink("dice")
        if shrink is not None:
            text.append(f"Dice's mean gradient shrinks {shrink:.0f}-fold from the smallest to the largest "
                        "object, while CE's grows with the number of wrong pixels.")
        st.markdown("**What it shows.** " + " ".join(text))


@st.fragment
def control_panel(case, fg_class):
    with panel("the explicit control"):
        cols = st.columns(5)
        alpha = cols[0].slider("α", 0.0, 50.0, 20.0, 0.5, key=KEY + "ctl_alpha",
                               help="Weight of the penalty; CE charges about −log(1e-7) ≈ 16 per wrong hard pixel.")
        temperature = cols[1].select_slider("Temperature T", [1.0, 2.0, 5.0, 10.0, 20.0], value=1.0,
                                            key=KEY + "ctl_T")
        penalty = cols[2].segmented_control("Penalty", ["l1", "kl"], default="l1", key=KEY + "ctl_pen") or "l1"
        low, top = bias.target_ratio_range(case, foreground_class=fg_class)
        ratio = cols[3].slider("Target size / GT size", low, top, min(1.5, top), 0.05, key=KEY + "ctl_ratio",
                               help=f"up to {top:g}: the image holds {bias.room_to_grow(case, foreground_class=fg_class):.2f}"
                                    " × the object")
        hard = cols[4].toggle("Hard predictions", value=True, key=KEY + "ctl_hard")
        confidence = None if hard else 0.9
        ctl = cached(bias.region_size_control)(case, target_size_ratio=ratio, alpha=alpha,
                                               temperature=temperature, penalty=penalty, confidence=confidence,
                                               foreground_class=fg_class)
        st.plotly_chart(pb.region_size_figure(ctl), width="stretch", key=KEY + "ctl_fig")
        at = ctl.curve.argmin.get("region_size", float("nan"))
        b = ctl.band
        st.markdown(
            f"**What it shows.** `region_size` = CE + α · {penalty.upper()}(predicted, target proportion) with the "
            f"target at {ratio:g} × the GT proportion ({ctl.target_proportion:.4f}). On the case its minimum sits at "
            f"size ratio {at:.3f} (the penalty vanishes at {ctl.target_ratio:.3f}; CE alone at "
            f"{ctl.curve.argmin.get('ce', float('nan')):.3f}): with α large enough the optimum moves where you put it. "
            f"On the band model (F = {b.ce.band.F}, U = {b.ce.band.U}, π = {b.ce.band.pi:g}) q* = "
            f"{b.region_size.q_star:.3f} vs CE's {b.ce.q_star:.3f}. At T = {temperature:g} the predicted proportion "
            "is that of softmax(T · log p): at the authors' T = 10 **the penalty matches sharpened probabilities, "
            "not the raw ones**: a pixel above ½ counts almost as 1 and one below ½ almost as 0, so the penalty "
            "constrains the size of the arg-max mask rather than the soft mass.")


# ----------------------------------------------------------------------------- page


st.title("Region-size bias")
st.caption("Liu et al., *Do we really need Dice? The hidden region-size biases of segmentation losses* "
           "(MedIA 2023): CE and Dice both split into a ground-truth-matching term and a region-size penalty, "
           "with different preferred sizes. Every curve below is computed with the registered losses.")

case = current_case()
case, fg_class = binary_view_picker(case, KEY, "The papers' maths is binary: this page uses")

problem = bias.view_problem(bias.binary_view(case, foreground_class=fg_class)[0])
if problem is not None:
    st.warning("This view needs an object and some background: the current ground truth is "
               + ("empty." if problem == "empty" else "all foreground.") + " Pick another preset in the sidebar.")
    st.stop()

params = current_params()
titles = {n: sc.get_loss(n).title for n in sc.list_losses()}

# the size curves and the region_size control read the ground truth only: keyed on it, they stay
# cached while only the prediction moves
gt_case = bias.ground_truth_case(case)

st.subheader("Loss vs predicted region size")
size_panel(gt_case, fg_class, params, titles)

st.subheader("Decomposition: GT matching + region-size penalty")
decomposition_panel(case, fg_class)

st.subheader("An uncertain region: which confidence does each loss prefer?")
st.caption("F confidently right foreground pixels, a band of U ambiguous pixels of which a fraction π is "
           "foreground, all predicted with the same probability q, the rest confidently right background.")
band_panel()

st.subheader("Object-size sweep: the same mistake on objects of every size")
sweep_panel(params, titles)

st.subheader("Explicit control: the region_size loss")
control_panel(gt_case, fg_class)
