"""Plotly figures for the metric-agreement page: pure functions of :mod:`segloss_core.analyses.agreement` results."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analyses.agreement import Agreement, DiceJaccard, WceSweep, bound_curves

RELATION_COLOUR = "#d62728"
BOUND_COLOUR = "#7f7f7f"


def dice_jaccard_figure(dj: DiceJaccard, *, height: int = 430) -> go.Figure:
    """Soft and hard Jaccard loss vs Dice loss over the population, with the exact relation
    L_J = 2L_D/(1+L_D), the bounds J <= D <= 2J and the point of largest gap D - J = 3 - 2 sqrt 2."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "Soft losses (fg only, linear, no smoothing)", "Hard (arg-max) 1 − Dice vs 1 − Jaccard"))
    c = bound_curves()
    for col, (x, y, name) in enumerate(((dj.soft_dice_loss, dj.soft_jaccard_loss, "soft"),
                                        (dj.hard_dice_loss, dj.hard_jaccard_loss, "hard")), start=1):
        first = col == 1
        fig.add_trace(go.Scatter(x=c["dice_loss"], y=c["upper"], mode="lines", name="bound D ≤ 2J",
                                 line={"color": BOUND_COLOUR, "dash": "dash"}, showlegend=first,
                                 legendgroup="upper"), row=1, col=col)
        fig.add_trace(go.Scatter(x=c["dice_loss"], y=c["lower"], mode="lines", name="bound J ≤ D",
                                 line={"color": BOUND_COLOUR, "dash": "dot"}, showlegend=first,
                                 fill="tonexty", fillcolor="rgba(127,127,127,0.08)", legendgroup="lower"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=c["dice_loss"], y=c["relation"], mode="lines", name="L_J = 2 L_D / (1 + L_D)",
                                 line={"color": RELATION_COLOUR}, showlegend=first, legendgroup="rel"),
                      row=1, col=col)
        ld, lj = c["max_gap_point"]
        fig.add_trace(go.Scatter(x=[ld], y=[lj], mode="markers", name="largest gap D − J = 3 − 2√2",
                                 marker={"symbol": "x", "size": 10, "color": "black"}, showlegend=first,
                                 legendgroup="gap"), row=1, col=col)
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name="perturbed predictions",
                                 marker={"size": 6, "color": "#1f77b4", "opacity": 0.7}, showlegend=first,
                                 legendgroup="pop",
                                 hovertemplate=f"{name}<br>Dice loss %{{x:.4f}}<br>Jaccard loss %{{y:.4f}}"
                                               "<extra></extra>"), row=1, col=col)
        top = float(max(np.max(x), 0.05)) * 1.1
        fig.update_xaxes(range=[0, min(1.0, top)], title_text=f"{name} Dice loss L_D", row=1, col=col)
        fig.update_yaxes(range=[0, min(1.0, 2 * top / (1 + top)) * 1.05], title_text=f"{name} Jaccard loss L_J",
                         row=1, col=col)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def rank_bars_figure(agr: Agreement, metric: str = "1 - Dice", method: str = "spearman",
                     *, height: int | None = None) -> go.Figure:
    """Horizontal bars of each loss's rank correlation with ``metric``, best on top."""
    rows = [(k, v) for k, v in agr.ranking(metric, method) if np.isfinite(v)]
    rows = rows[::-1]
    names = [agr.labels.get(k, k) for k, _ in rows]
    values = [v for _, v in rows]
    colours = ["#2ca02c" if v >= 0.95 else "#1f77b4" if v >= 0.8 else "#ff7f0e" for v in values]
    symbol = "ρ (Spearman)" if method == "spearman" else "τ (Kendall)"
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colours,
                           text=[f"{v:.3f}" for v in values], textposition="outside",
                           hovertemplate="%{y}<br>" + symbol + " = %{x:.4f}<extra></extra>"))
    lo = min(0.0, min(values, default=0.0))
    fig.update_layout(
        height=height or max(320, 26 * len(rows) + 90), margin={"l": 10, "r": 40, "t": 40, "b": 10},
        title={"text": f"Rank agreement with {metric} over {agr.n} predictions "
                       f"({'arg-max' if agr.hard else 'soft'} inputs to the losses)", "font": {"size": 14}},
        xaxis={"title": symbol, "range": [lo, 1.08]})
    return fig


def wce_sweep_figure(sweep: WceSweep, *, height: int = 400) -> go.Figure:
    """Spearman agreement of weighted CE with the metric vs the foreground weight (log x), the best
    weight marked, and soft Dice / Lovász (and CE) as horizontal reference lines."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=sweep.weights, y=sweep.spearman, mode="lines", name="weighted CE (bg weight 1)",
                             line={"color": "#1f77b4"},
                             hovertemplate="fg weight %{x:.3g}<br>ρ %{y:.4f}<extra></extra>"))
    w, best = sweep.best
    fig.add_trace(go.Scatter(x=[w], y=[best], mode="markers", name=f"best weight {w:.3g}: ρ = {best:.3f}",
                             marker={"symbol": "star", "size": 14, "color": "#1f77b4",
                                     "line": {"width": 1, "color": "black"}}))
    dashes = ("dash", "dot", "dashdot", "longdash")
    colours = ("#2ca02c", "#9467bd", "#7f7f7f", "#8c564b")
    for i, (label, ref) in enumerate(sweep.reference.items()):
        fig.add_trace(go.Scatter(x=[sweep.weights[0], sweep.weights[-1]], y=[ref["spearman"]] * 2, mode="lines",
                                 name=f"{label}: ρ = {ref['spearman']:.3f}",
                                 line={"color": colours[i % 4], "dash": dashes[i % 4]}))
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": f"Weighted CE vs {sweep.metric}: the best any foreground weight reaches", "font": {"size": 14}},
        xaxis={"title": "foreground weight w (background 1)", "type": "log"},
        yaxis={"title": "Spearman ρ"}, legend={"orientation": "h", "y": -0.25})
    return fig


def loss_metric_scatter(agr: Agreement, loss: str, metric: str = "1 - Dice", *, height: int = 360) -> go.Figure:
    """One loss against one metric over the population (what a rank correlation summarises)."""
    v = agr.values[loss]
    m = agr.metrics[metric]
    fig = go.Figure(go.Scatter(x=m, y=v, mode="markers", marker={"size": 6, "opacity": 0.75},
                               hovertemplate=f"{metric} %{{x:.4g}}<br>loss %{{y:.5g}}<extra></extra>"))
    rho = agr.spearman.get(loss, {}).get(metric, float("nan"))
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": f"{agr.labels.get(loss, loss)} vs {metric} (ρ = {rho:.3f})", "font": {"size": 14}},
        xaxis_title=metric, yaxis_title=agr.labels.get(loss, loss))
    return fig


__all__ = ["dice_jaccard_figure", "loss_metric_scatter", "rank_bars_figure", "wce_sweep_figure"]
