"""Plotly figures for the loss-landscape page: pure functions of a landscape result (no Streamlit).

- :func:`landscape_grid`: small multiples, one heatmap (+ contours) per loss, each loss min-max
  normalised to [0, 1] on a shared colour scale (or raw values, one colour bar per panel), the
  metric's contours overlaid, the current prediction (a white cross) and each panel's minimum
  (a star in the loss colour) and the metric's minimum (a diamond) marked.
- :func:`landscape_surface`: a 3-D surface of one loss (or metric).
- :func:`landscape_slice`: the 1-D slice plot, all losses (normalised) and the metric along one axis.
- :func:`minima_rows`: the minima disagreement table as a list of dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analyses.landscape import Landscape1DResult, LandscapeResult, grid_argmin, minima_table
from ..data.perturb import PERTURBATIONS

SEQUENTIAL = "Viridis"
CURRENT_COLOUR = "#ffffff"
METRIC_COLOUR = "#ff4d4d"
LINE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def axis_title(name: str) -> str:
    """``"dilate / erode (px)"`` for a perturbation name."""
    p = PERTURBATIONS.get(name)
    return f"{p.label} ({p.unit})" if p else name


def normalise(grid: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] ignoring NaN; a constant (flat) grid maps to 0."""
    grid = np.asarray(grid, dtype=np.float64)
    if not np.isfinite(grid).any():
        return np.full(grid.shape, np.nan)
    lo, hi = np.nanmin(grid), np.nanmax(grid)
    if not hi > lo:
        return np.where(np.isfinite(grid), 0.0, np.nan)
    return (grid - lo) / (hi - lo)


def _metric_grid(result: LandscapeResult, metric: str | None) -> tuple[str, np.ndarray, np.ndarray,
                                                                        np.ndarray] | None:
    """``(label, grid, xs, ys)`` of the overlay metric: ``"dice"``, ``"jaccard"`` or ``"hd95"``."""
    if not metric:
        return None
    if metric == "hd95":
        if result.hd95 is None:
            return None
        return "HD95", result.hd95, result.hd95_x, result.hd95_y
    if metric not in result.metrics:
        return None
    return f"1 - {metric.capitalize()}", result.metrics[metric], result.x_values, result.y_values


def landscape_grid(
    result: LandscapeResult,
    names: Sequence[str] | None = None,
    *,
    titles: Mapping[str, str] | None = None,
    normalised: bool = True,
    metric: str | None = "dice",
    columns: int = 3,
    contours: bool = True,
    height_per_row: int = 260,
) -> go.Figure:
    """Small multiples of the loss landscapes.

    Args:
        result: a :class:`segloss_core.analyses.landscape.LandscapeResult`.
        names: the losses to show (default: every loss of the result, in order).
        titles: display titles per loss (default: the registry names).
        normalised: each loss min-max normalised to [0, 1] on one shared colour scale (the shapes
            and minima compare; values do not); ``False``: raw values, one colour bar per panel.
        metric: ``"dice"`` | ``"jaccard"`` | ``"hd95"`` | ``None``: the metric whose contours
            (dashed red) and minimum (red diamond) are overlaid on every panel.
        columns: panels per row.
        contours: draw the loss's own contour lines on its heatmap.
    """
    names = [n for n in (names or list(result.losses)) if n in result.losses]
    if not names:
        raise ValueError("no loss to plot: the landscape holds none of the requested losses")
    titles = dict(titles or {})
    cols = max(1, min(columns, len(names)))
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[titles.get(n, n) for n in names],
                        horizontal_spacing=0.06 if normalised else 0.11, vertical_spacing=0.12 / max(rows, 1) + 0.04)
    xs, ys = result.x_values, result.y_values
    overlay = _metric_grid(result, metric)
    cx, cy = result.current
    for k, name in enumerate(names):
        r, c = k // cols + 1, k % cols + 1
        raw = np.asarray(result.losses[name], dtype=np.float64)
        z = normalise(raw) if normalised else raw
        hover = (f"{axis_title(result.x_name)}: %{{x:.3g}}<br>{axis_title(result.y_name)}: %{{y:.3g}}"
                 f"<br>{titles.get(name, name)}: %{{customdata:.5g}}<extra></extra>")
        bar = None
        if not normalised:
            dom_x = fig.get_subplot(r, c).xaxis.domain
            dom_y = fig.get_subplot(r, c).yaxis.domain
            bar = dict(x=dom_x[1] + 0.005, y=(dom_y[0] + dom_y[1]) / 2, len=(dom_y[1] - dom_y[0]), thickness=8,
                       tickfont=dict(size=9))
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=z.astype(np.float32), customdata=raw.astype(np.float32),
                                 colorscale=SEQUENTIAL, zmin=0 if normalised else None,
                                 zmax=1 if normalised else None, showscale=(k == 0) or not normalised,
                                 colorbar=bar if bar else dict(title="normalised", thickness=10),
                                 hovertemplate=hover, name=name), row=r, col=c)
        if contours and np.isfinite(z).sum() > 3:
            fig.add_trace(go.Contour(x=xs, y=ys, z=z, contours_coloring="none", showscale=False,
                                     line=dict(color="rgba(255,255,255,0.45)", width=1), ncontours=10,
                                     hoverinfo="skip", showlegend=False), row=r, col=c)
        if overlay is not None:
            label, mgrid, mx, my = overlay
            if np.isfinite(mgrid).sum() > 3:
                fig.add_trace(go.Contour(x=mx, y=my, z=mgrid, contours_coloring="none", showscale=False,
                                         line=dict(color=METRIC_COLOUR, width=1.2, dash="dash"), ncontours=8,
                                         name=label, hoverinfo="skip", showlegend=(k == 0)), row=r, col=c)
            at = grid_argmin(mgrid)
            if at is not None:
                fig.add_trace(go.Scatter(x=[mx[at[1]]], y=[my[at[0]]], mode="markers", name=f"{label} minimum",
                                         marker=dict(symbol="diamond", size=10, color=METRIC_COLOUR,
                                                     line=dict(color="black", width=1)),
                                         showlegend=(k == 0), legendgroup="metric-min",
                                         hovertemplate=f"{label} minimum<extra></extra>"), row=r, col=c)
        at = grid_argmin(raw)
        if at is not None:
            fig.add_trace(go.Scatter(x=[xs[at[1]]], y=[ys[at[0]]], mode="markers", name="loss minimum",
                                     marker=dict(symbol="star", size=13, color="#ffd700",
                                                 line=dict(color="black", width=1)),
                                     showlegend=(k == 0), legendgroup="loss-min",
                                     hovertemplate=f"{titles.get(name, name)} minimum: %{{x:.3g}}, %{{y:.3g}}"
                                                   "<extra></extra>"), row=r, col=c)
        fig.add_trace(go.Scatter(x=[cx], y=[cy], mode="markers", name="current prediction",
                                 marker=dict(symbol="x-thin", size=12, color=CURRENT_COLOUR,
                                             line=dict(color=CURRENT_COLOUR, width=2.5)),
                                 showlegend=(k == 0), legendgroup="current",
                                 hovertemplate="current prediction<extra></extra>"), row=r, col=c)
        fig.update_xaxes(title_text=axis_title(result.x_name) if r == rows else None, row=r, col=c,
                         range=[xs[0], xs[-1]])
        fig.update_yaxes(title_text=axis_title(result.y_name) if c == 1 else None, row=r, col=c,
                         range=[ys[0], ys[-1]])
    fig.update_layout(height=max(300, rows * height_per_row + 80), margin=dict(l=50, r=30, t=50, b=40),
                      legend=dict(orientation="h", y=-0.08 if rows > 1 else -0.2, x=0))
    return fig


def landscape_surface(result: LandscapeResult, name: str, *, title: str | None = None,
                      normalised: bool = False) -> go.Figure:
    """3-D surface of one loss (or ``"1 - dice"`` / ``"1 - jaccard"``) with the current point and
    the minimum marked."""
    grids = result.grids
    if name not in grids:
        raise ValueError(f"{name!r} is not in this landscape (have: {', '.join(grids)})")
    z = np.asarray(grids[name], dtype=np.float64)
    z = normalise(z) if normalised else z
    xs, ys = result.x_values, result.y_values
    fig = go.Figure(go.Surface(x=xs, y=ys, z=z, colorscale=SEQUENTIAL, showscale=True,
                               colorbar=dict(thickness=10), name=name,
                               hovertemplate="x %{x:.3g}<br>y %{y:.3g}<br>value %{z:.5g}<extra></extra>"))
    at = grid_argmin(z)
    if at is not None:
        fig.add_trace(go.Scatter3d(x=[xs[at[1]]], y=[ys[at[0]]], z=[z[at]], mode="markers", name="minimum",
                                   marker=dict(size=6, color="#ffd700", symbol="diamond")))
    cx, cy = result.current
    j, i = int(np.argmin(np.abs(xs - cx))), int(np.argmin(np.abs(ys - cy)))
    if xs[0] <= cx <= xs[-1] and ys[0] <= cy <= ys[-1]:
        fig.add_trace(go.Scatter3d(x=[cx], y=[cy], z=[z[i, j]], mode="markers", name="current (nearest grid point)",
                                   marker=dict(size=6, color="white", line=dict(color="black", width=1))))
    fig.update_layout(title=title or name, height=520, margin=dict(l=0, r=0, t=40, b=0),
                      scene=dict(xaxis_title=axis_title(result.x_name), yaxis_title=axis_title(result.y_name),
                                 zaxis_title="normalised" if normalised else "value"))
    return fig


def landscape_slice(result: Landscape1DResult, names: Sequence[str] | None = None, *,
                    titles: Mapping[str, str] | None = None, metric: str | None = "dice",
                    normalised: bool = True) -> go.Figure:
    """All losses along one axis (each min-max normalised, or raw), the metric on the same scale
    (dashed), each minimum marked by a dot and the current point by a vertical line."""
    names = [n for n in (names or list(result.losses)) if n in result.losses]
    titles = dict(titles or {})
    xs = result.values
    fig = go.Figure()
    curves: list[tuple[str, np.ndarray, dict]] = []
    for k, name in enumerate(names):
        curves.append((titles.get(name, name), np.asarray(result.losses[name], dtype=np.float64),
                       dict(color=LINE_COLOURS[k % len(LINE_COLOURS)], width=2)))
    if metric == "hd95" and result.hd95 is not None:
        curves.append(("HD95", np.asarray(result.hd95, dtype=np.float64), dict(color=METRIC_COLOUR, dash="dash")))
    elif metric in result.metrics:
        curves.append((f"1 - {metric.capitalize()}", np.asarray(result.metrics[metric], dtype=np.float64),
                       dict(color=METRIC_COLOUR, dash="dash", width=2.5)))
    for label, raw, line in curves:
        y = normalise(raw) if normalised else raw
        fig.add_trace(go.Scatter(x=xs, y=y, mode="lines", name=label, line=line, customdata=raw,
                                 hovertemplate=f"{label}: %{{customdata:.5g}} at %{{x:.3g}}<extra></extra>"))
        if grid_argmin(y) is not None:
            (k,) = grid_argmin(y)
            fig.add_trace(go.Scatter(x=[xs[k]], y=[y[k]], mode="markers", showlegend=False,
                                     marker=dict(size=9, color=line["color"], line=dict(color="black", width=1)),
                                     hovertemplate=f"{label} minimum at %{{x:.3g}}<extra></extra>"))
    fig.add_vline(x=result.current, line=dict(color="grey", dash="dot"), annotation_text="current",
                  annotation_position="top")
    fixed = ", ".join(f"{axis_title(k)} = {v:g}" for k, v in result.fixed.items())
    fig.update_layout(height=380, margin=dict(l=50, r=20, t=40, b=40),
                      xaxis_title=axis_title(result.name),
                      yaxis_title="normalised value (min-max per curve)" if normalised else "value",
                      title=f"slice{' at ' + fixed if fixed else ' through the current prediction'}",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def minima_rows(result: LandscapeResult, titles: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The disagreement table: one dict per loss / metric with its minimum's position, its value,
    how many grid steps it lies from the 1 - Dice minimum, and how many grid points tie with it
    (a large number means a flat minimum)."""
    titles = dict(titles or {})
    x_label, y_label = axis_title(result.x_name), axis_title(result.y_name)
    out = []
    for row in minima_table(result):
        out.append({
            "loss / metric": titles.get(row["name"], row["name"]),
            x_label: row["x"],
            y_label: row["y"],
            "minimum value": row["value"],
            "grid steps from 1 - Dice minimum": row["steps_from_metric"],
            "tied grid points": row["flat"],
        })
    if result.hd95 is not None and grid_argmin(result.hd95) is not None:
        i, j = grid_argmin(result.hd95)
        out.append({"loss / metric": "HD95 (coarse grid)", x_label: float(result.hd95_x[j]),
                    y_label: float(result.hd95_y[i]), "minimum value": float(result.hd95[i, j]),
                    "grid steps from 1 - Dice minimum": None,
                    "tied grid points": int(np.sum(result.hd95 == result.hd95[i, j]))})
    return out


__all__ = ["axis_title", "landscape_grid", "landscape_slice", "landscape_surface", "minima_rows", "normalise"]
