"""Plotly figures for the region-size bias page: pure functions of :mod:`segloss_core.analyses.bias` results.

Every Dice curve carries its label from :func:`segloss_core.analyses.bias.loss_label`, which names the
denominator (linear or squared); minima are marked with a star.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..analyses.bias import BandOptimum, BandSweep, Decomposition, RegionSizeControl, SizeCurve, SizeSweep

PALETTE = qualitative.D3
GT_LINE = {"dash": "dash", "color": "#555", "width": 1}


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _normalise(v: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(v)), float(np.max(v))
    return np.zeros_like(v) if hi == lo else (v - lo) / (hi - lo)


def _curves(fig, x, series: Mapping[str, np.ndarray], labels: Mapping[str, str], normalise: bool,
            x_name: str, row=None, col=None, colours=None, dash=None, show_min=True, showlegend=True):
    """Lines with a star at each minimum; hover shows the raw value."""
    kw = {} if row is None else {"row": row, "col": col}
    for i, (key, v) in enumerate(series.items()):
        if isinstance(v, str):
            continue
        v = np.asarray(v, dtype=np.float64)
        y = _normalise(v) if normalise else v
        colour = (colours or {}).get(key, _colour(i))
        name = labels.get(key, key)
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", name=name, legendgroup=key, showlegend=showlegend,
            line={"color": colour, "dash": (dash or {}).get(key)},
            customdata=v, hovertemplate=f"{name}<br>{x_name} %{{x:.4g}}<br>loss %{{customdata:.5g}}<extra></extra>"), **kw)
        if show_min:
            j = int(np.argmin(v))
            fig.add_trace(go.Scatter(
                x=[x[j]], y=[y[j]], mode="markers", legendgroup=key, showlegend=False,
                marker={"symbol": "star", "size": 13, "color": colour, "line": {"width": 1, "color": "black"}},
                customdata=[v[j]],
                hovertemplate=f"minimum of {name}<br>{x_name} %{{x:.4g}}<br>loss %{{customdata:.5g}}<extra></extra>"),
                **kw)


def _vertical(fig, x: float, span: tuple[float, float], name: str, line: dict, showlegend: bool, **kw):
    """A vertical marker line as a trace (correct on log axes too)."""
    fig.add_trace(go.Scatter(x=[x, x], y=list(span), mode="lines", name=name, line=line, legendgroup=name,
                             showlegend=showlegend, hoverinfo="skip"), **kw)


def size_curve_figure(curve: SizeCurve, *, normalise: bool = True, height: int = 430) -> go.Figure:
    """Each loss vs predicted size / GT size, minimum starred, the GT size dashed."""
    fig = go.Figure()
    _curves(fig, curve.ratio, curve.values, curve.labels, normalise, "size ratio")
    fig.add_vline(x=1.0, line=GT_LINE, annotation_text="GT size", annotation_position="top")
    conf = "hard" if curve.confidence == 1 else f"confidence {curve.confidence:g} (outside {curve.outside:g})"
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": f"Loss vs predicted size, concentric dilation/erosion ({conf})", "font": {"size": 14}},
        xaxis_title="predicted size / GT size",
        yaxis_title="loss, min-max normalised per loss" if normalise else "loss",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def decomposition_figure(dec: Decomposition, *, log_x: bool = True, height: int = 440) -> go.Figure:
    """Left: CE = size term (H + KL) + matching term. Right: -log Dice (fg only) = matching +
    size penalty log(tau + u), with the fg + bg penalty dotted. ``u = tau`` and ``1 - tau`` marked."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "Cross-entropy / N (Liu et al.)", "−log Dice, linear denominator, no smoothing (Liu et al.)"))
    t = dec.terms
    ce = {"ce": t["ce"], "ce_size": t["ce_size"], "ce_matching": t["ce_matching"], "ce_kl": t["ce_kl"]}
    ce_labels = {"ce": "CE total", "ce_size": "size term −Σ τ log u = H(τ)+KL(τ‖u)",
                 "ce_matching": "GT-matching term", "ce_kl": "KL(τ‖u)"}
    colours = {"ce": "#000000", "ce_size": "#d62728", "ce_matching": "#1f77b4", "ce_kl": "#ff9896",
               "dice_fg_total": "#000000", "dice_fg_penalty": "#d62728", "dice_fg_matching": "#1f77b4",
               "dice_fgbg_penalty": "#9467bd"}
    _curves(fig, dec.u, ce, ce_labels, False, "u", row=1, col=1, colours=colours, dash={"ce_kl": "dot"})
    dice = {"dice_fg_total": t["dice_fg_total"], "dice_fg_penalty": t["dice_fg_penalty"],
            "dice_fg_matching": t["dice_fg_matching"], "dice_fgbg_penalty": t["dice_fgbg_penalty"]}
    dice_labels = {"dice_fg_total": "−log Dice (fg)", "dice_fg_penalty": "size penalty log(τ+u) (fg)",
                   "dice_fg_matching": "GT-matching term (fg)",
                   "dice_fgbg_penalty": "size penalty, fg + bg: log(τ+u)+log(2−τ−u)"}
    _curves(fig, dec.u, dice, dice_labels, False, "u", row=1, col=2, colours=colours,
            dash={"dice_fgbg_penalty": "dot"})
    for col, group in ((1, ce), (2, dice)):
        ys = np.concatenate([np.asarray(v)[np.isfinite(v)] for v in group.values()])
        span = (float(ys.min()), float(ys.max()))
        _vertical(fig, dec.tau, span, "u = τ (GT proportion)", GT_LINE, col == 1, row=1, col=col)
        _vertical(fig, 1 - dec.tau, span, "u = 1 − τ", {**GT_LINE, "dash": "dot"}, col == 1, row=1, col=col)
    lo = float(dec.u.min())
    fig.update_xaxes(title_text="predicted foreground proportion u", type="log" if log_x else "linear",
                     range=[np.log10(lo) - 0.05, 0.02] if log_x else [0, 1])
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      legend={"orientation": "h", "y": -0.25}, hovermode="closest")
    return fig


def band_curves_figure(optima: Mapping[str, BandOptimum], *, normalise: bool = True, height: int = 400) -> go.Figure:
    """Loss vs band confidence q for several losses (labels name the Dice), q* starred, q = pi dashed."""
    fig = go.Figure()
    series = {k: o.values for k, o in optima.items()}
    q = next(iter(optima.values())).q
    _curves(fig, q, series, {k: k for k in optima}, normalise, "q", show_min=False)
    for i, (k, o) in enumerate(optima.items()):
        y = (o.value_star - o.values.min()) / max(np.ptp(o.values), 1e-300) if normalise else o.value_star
        fig.add_trace(go.Scatter(x=[o.q_star], y=[y], mode="markers", legendgroup=k, showlegend=False,
                                 marker={"symbol": "star", "size": 13, "color": _colour(i),
                                         "line": {"width": 1, "color": "black"}},
                                 hovertemplate=f"{k}<br>q* = %{{x:.4f}}<extra></extra>"))
    band = next(iter(optima.values())).band
    fig.add_vline(x=band.pi, line=GT_LINE, annotation_text="q = π", annotation_position="top")
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": f"Band model: F={band.F}, U={band.U}, π={band.pi:.3g}, N={band.N}", "font": {"size": 14}},
        xaxis_title="band confidence q", yaxis_title="loss, min-max normalised" if normalise else "loss",
        legend={"orientation": "h", "y": -0.25})
    return fig


def band_sweep_figure(sweep: BandSweep, *, height: int = 420) -> go.Figure:
    """Optimal band confidence q* vs pi: CE on the diagonal, linear Dice a 0/1 step, squared Dice
    in between; closed forms dotted."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="q* = π", line={"color": "#bbb", "dash": "dash"}))
    for i, (label, qs) in enumerate(sweep.q_star.items()):
        fig.add_trace(go.Scatter(x=sweep.pi, y=qs, mode="lines+markers", name=label,
                                 line={"color": _colour(i), "shape": "linear"}, marker={"size": 5},
                                 hovertemplate=f"{label}<br>π %{{x:.3f}}<br>q* %{{y:.4f}}<extra></extra>"))
    closed_names = {"dice_linear": "closed form, linear Dice (theory B2)", "dice_squared": "closed form, squared Dice (theory B3)"}
    for kind, name in closed_names.items():
        fig.add_trace(go.Scatter(x=sweep.pi, y=sweep.closed_form[kind], mode="lines", name=name,
                                 line={"color": "#333", "dash": "dot", "width": 1}, visible="legendonly"))
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": f"Optimal band confidence q* vs foreground fraction π (F={sweep.F}, U={sweep.U})",
               "font": {"size": 14}},
        xaxis={"title": "fraction of the band that is foreground π", "range": [0, 1]},
        yaxis={"title": "q* minimising the loss", "range": [-0.03, 1.03]},
        legend={"orientation": "h", "y": -0.25})
    return fig


def size_sweep_figure(sweep: SizeSweep, *, height: int = 420) -> go.Figure:
    """Left: loss value / its largest magnitude vs object size (log x), with the hard Dice loss.
    Right: mean |dL/ds_fg| vs object size (log-log)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        f"Loss value (÷ largest |value|), {sweep.boundary_error_px:g} px boundary error",
        "Mean gradient magnitude |∂L/∂s| per pixel"))
    x = sweep.fraction * 100
    for i, (key, v) in enumerate(sweep.values.items()):
        if isinstance(v, str):
            continue
        name = sweep.labels.get(key, key)
        scale = max(float(np.max(np.abs(v))), 1e-300)
        fig.add_trace(go.Scatter(x=x, y=v / scale, mode="lines+markers", name=name, legendgroup=key,
                                 line={"color": _colour(i)}, marker={"size": 5}, customdata=v,
                                 hovertemplate=f"{name}<br>object %{{x:.3g}} %<br>loss %{{customdata:.5g}}"
                                               "<extra></extra>"), row=1, col=1)
        g = sweep.grad_mean[key]
        if not isinstance(g, str):
            fig.add_trace(go.Scatter(x=x, y=np.maximum(g, 1e-300), mode="lines+markers", name=name, legendgroup=key,
                                     showlegend=False, line={"color": _colour(i)}, marker={"size": 5},
                                     hovertemplate=f"{name}<br>object %{{x:.3g}} %<br>|grad| %{{y:.3g}}"
                                                   "<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Scatter(x=x, y=sweep.hard_dice_loss / sweep.hard_dice_loss.max(), mode="lines",
                             name="hard Dice loss |GΔS|/(|G|+|S|)", line={"color": "#333", "dash": "dot"}),
                  row=1, col=1)
    fig.update_xaxes(type="log", title_text="object size, % of the image")
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def region_size_figure(ctrl: RegionSizeControl, *, normalise: bool = True, height: int = 430) -> go.Figure:
    """Left: CE and the region_size loss along the case's size curve, with the target size.
    Right: the same two losses on the band model, with q = pi and where the penalty vanishes."""
    cols = 2 if ctrl.band is not None else 1
    titles = ["On the case: loss vs predicted size / GT size"]
    if ctrl.band is not None:
        titles.append("On the band model: loss vs band confidence q")
    fig = make_subplots(rows=1, cols=cols, horizontal_spacing=0.1, subplot_titles=titles)
    c = ctrl.curve
    colours = {"ce": "#1f77b4", "region_size": "#d62728"}
    _curves(fig, c.ratio, c.values, c.labels, normalise, "size ratio", row=1, col=1, colours=colours)
    fig.add_vline(x=1.0, line=GT_LINE, row=1, col=1)
    if 0 <= ctrl.target_ratio <= c.ratio.max():
        fig.add_vline(x=ctrl.target_ratio, line={"color": "#d62728", "dash": "dot"}, row=1, col=1)
        fig.add_annotation(x=ctrl.target_ratio, y=1.02, xref="x", yref="paper", text="target", showarrow=False,
                           font={"color": "#d62728"})
    if ctrl.band is not None:
        b = ctrl.band
        series = {"ce": b.ce.values, "region_size": b.region_size.values}
        labels = {"ce": b.ce.label, "region_size": b.region_size.label}
        _curves(fig, b.ce.q, series, labels, normalise, "q", row=1, col=2, colours=colours, show_min=False,
                showlegend=False)
        for key, opt in (("ce", b.ce), ("region_size", b.region_size)):
            y = (opt.value_star - opt.values.min()) / max(np.ptp(opt.values), 1e-300) if normalise else opt.value_star
            fig.add_trace(go.Scatter(x=[opt.q_star], y=[y], mode="markers", showlegend=False, legendgroup=key,
                                     marker={"symbol": "star", "size": 13, "color": colours[key],
                                             "line": {"width": 1, "color": "black"}},
                                     hovertemplate="q* = %{x:.4f}<extra></extra>"), row=1, col=2)
        fig.add_vline(x=b.ce.band.pi, line=GT_LINE, row=1, col=2)
        fig.add_vline(x=b.q_zero, line={"color": "#d62728", "dash": "dot"}, row=1, col=2)
        fig.update_xaxes(title_text="band confidence q", row=1, col=2)
    fig.update_xaxes(title_text="predicted size / GT size", row=1, col=1)
    fig.update_yaxes(title_text="loss, min-max normalised" if normalise else "loss", row=1, col=1)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


__all__ = [
    "band_curves_figure",
    "band_sweep_figure",
    "decomposition_figure",
    "region_size_figure",
    "size_curve_figure",
    "size_sweep_figure",
]
