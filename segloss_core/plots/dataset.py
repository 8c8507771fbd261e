"""Plotly figures for the Dataset page: pure functions of :mod:`segloss_core.analyses.dataset` rows and results."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ..analyses.dataset import worse_is_higher

GOOD, FAIR, POOR = "#2ca02c", "#1f77b4", "#ff7f0e"


def metric_label(column: str) -> str:
    """``metric_dice`` -> ``1 − Dice``, ``metric_hd95_2`` -> ``HD95 (class 2)``: what a loss is compared with."""
    parts = column.removeprefix("metric_").split("_")
    name = {"dice": "Dice", "jaccard": "Jaccard", "precision": "precision", "recall": "recall", "hd": "HD",
            "hd95": "HD95", "assd": "ASSD"}.get(parts[0], parts[0])
    suffix = f" (class {parts[1]})" if len(parts) > 1 else ""
    return (name if worse_is_higher(column) else f"1 − {name}") + suffix


def agreement_bars(agreement: dict[str, dict], metric_column: str, method: str = "spearman",
                   *, height: int | None = None) -> go.Figure:
    """Horizontal bars of each loss's rank correlation across cases with the metric's badness
    (``{loss: {n, spearman, kendall}}`` from :func:`segloss_core.analyses.dataset.agreement_with`), best on
    top; losses without a value (fewer than 3 cases, constant) are named in the title."""
    defined = sorted(((k, v) for k, v in agreement.items() if v.get(method) is not None),
                     key=lambda kv: kv[1][method])
    missing = [k for k, v in agreement.items() if v.get(method) is None]
    values = [v[method] for _, v in defined]
    symbol = "Spearman ρ" if method == "spearman" else "Kendall τ"
    fig = go.Figure(go.Bar(
        x=values, y=[k for k, _ in defined], orientation="h",
        marker_color=[GOOD if v >= 0.9 else FAIR if v >= 0.6 else POOR for v in values],
        customdata=[v["n"] for _, v in defined],
        hovertemplate=f"%{{y}}<br>{symbol} %{{x:.3f}}<br>over %{{customdata}} cases<extra></extra>",
    ))
    title = f"{symbol} of each loss with {metric_label(metric_column)} across cases"
    if missing:
        title += f"<br><sup>undefined for: {', '.join(missing[:8])}{', …' if len(missing) > 8 else ''}</sup>"
    fig.update_layout(title=title, height=height or max(260, 22 * len(defined) + 110),
                      margin={"l": 10, "r": 10, "t": 60, "b": 10}, xaxis={"range": [-1.05, 1.05],
                      "title": f"{symbol} (1: the loss orders the cases as the metric does)"})
    return fig


def loss_metric_scatter(rows: Sequence[dict], loss: str, metric_column: str, *,
                        highlight: str | None = None, height: int = 420) -> go.Figure:
    """One point per case: ``loss`` against the metric, the case id under the cursor; ``highlight``
    (a case id) is ringed."""
    pts = [(float(r[loss]), float(r[metric_column]), str(r["case"])) for r in rows
           if r.get(loss) is not None and r.get(metric_column) is not None]
    xs, ys, ids = ([p[i] for p in pts] for i in range(3))
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", text=ids, customdata=ids, name="cases",
        marker={"size": 8, "color": FAIR, "opacity": 0.8},
        hovertemplate=f"<b>%{{text}}</b><br>{loss} %{{x:.4g}}<br>{metric_column} %{{y:.4g}}<extra></extra>",
    ))
    if highlight in ids:
        i = ids.index(highlight)
        fig.add_trace(go.Scatter(x=[xs[i]], y=[ys[i]], mode="markers", name=highlight, text=[highlight],
                                 marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
                                 hoverinfo="skip"))
    fig.update_layout(title=f"{loss} vs {metric_column} ({len(pts)} cases)", height=height, showlegend=False,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      xaxis={"title": f"{loss} (higher = worse for the loss)"},
                      yaxis={"title": metric_column})
    return fig


__all__ = ["agreement_bars", "loss_metric_scatter", "metric_label"]
