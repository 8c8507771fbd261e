"""Plotly figures for the what-if training page: pure functions of a
:class:`segloss_core.analyses.optimise.Trajectory` (no Streamlit).

- :func:`frame_figure`: the target and every loss's prediction at one recorded step, side by side,
  with the ground-truth outline (solid) and the ambiguous band's edges (dotted);
- :func:`curves_figure`: loss, Dice, HD95, predicted size / GT size and the band probability (or
  the calibration on disputed pixels) over the steps, one colour per loss, the band-model optimum
  of each loss dashed in its colour, and a marker at the current step;
- :func:`band_model_figure`: each loss against the band probability ``q`` (scaled to [0, 1]), its
  minimiser and where gradient descent ended.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from skimage import measure

from ..analyses.optimise import Trajectory

#: One colour per loss (plotly's qualitative palette, 8 entries = ``optimise.MAX_LOSSES``).
LOSS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
GT_COLOUR = "#ff3b30"
BAND_COLOUR = "#ffffff"
PROB_SCALE = "Viridis"
IMAGE_SCALE = "gray"


def loss_colour(i: int) -> str:
    return LOSS_COLOURS[i % len(LOSS_COLOURS)]


def _contours(mask: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Outline of a boolean mask as one scatter trace (pixel coordinates, ``None`` between pieces)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    if mask.any() and not mask.all():
        padded = np.pad(mask.astype(np.float64), 1)
        for c in measure.find_contours(padded, 0.5):
            ys.extend((c[:, 0] - 1).tolist() + [None])
            xs.extend((c[:, 1] - 1).tolist() + [None])
    return xs, ys


def _band_edges(traj: Trajectory) -> np.ndarray | None:
    return None if traj.targets.band is None else traj.targets.band


def frame_figure(traj: Trajectory, frame: int, *, view: str = "probability", height: int = 330) -> go.Figure:
    """The target and each loss's prediction at recorded frame ``frame`` (an index into
    ``traj.frame_steps``).

    ``view="probability"``: the foreground probability ``1 - s_0`` (viridis: dark 0, yellow 1);
    ``view="mask"``: the arg-max label map (class 0 dark, the last class yellow). The first panel is the
    training target (its mean over annotators); in CNN mode a panel with the network's input follows.
    """
    if view not in ("probability", "mask"):
        raise ValueError(f"view must be 'probability' or 'mask', got {view!r}")
    frame = int(np.clip(frame, 0, traj.num_frames - 1))
    step = int(traj.frame_steps[frame])
    c = len(traj.class_names)
    panels: list[tuple[str, np.ndarray, float, float, str]] = []
    expected_fg = 1.0 - traj.targets.expected[0]
    if view == "mask":
        panels.append(("ground truth", traj.gt.astype(np.float64), 0.0, c - 1, "labels"))
    else:
        panels.append(("target (mean label)", expected_fg, 0.0, 1.0, "probability"))
    if traj.image is not None:
        lo, hi = np.percentile(traj.image, [1, 99])
        panels.append(("CNN input", traj.image, float(lo), float(max(hi, lo + 1e-6)), "intensity"))
    for i, name in enumerate(traj.names):
        if view == "mask":
            data = traj.labels[frame, i].astype(np.float64)
            panels.append((traj.titles[name], data, 0.0, c - 1, "labels"))
        else:
            data = traj.foreground[frame, i].astype(np.float64) / 255.0
            panels.append((traj.titles[name], data, 0.0, 1.0, "probability"))
    n = len(panels)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[p[0] for p in panels], horizontal_spacing=0.01)
    gx, gy = _contours(traj.gt > 0)
    band = _band_edges(traj)
    bx, by = _contours(band) if band is not None else ([], [])
    for k, (title, data, lo, hi, kind) in enumerate(panels, start=1):
        fig.add_trace(go.Heatmap(
            z=np.asarray(data, dtype=np.float32), zmin=lo, zmax=hi,  # float32: half the JSON, same 3 shown digits colorscale=IMAGE_SCALE if kind == "intensity" else PROB_SCALE,
            showscale=(k == n and kind != "intensity"),
            colorbar={"title": {"text": "fg prob." if kind == "probability" else "class"}, "len": 0.9,
                      "thickness": 12},
            hovertemplate=f"{title}<br>x=%{{x}} y=%{{y}}<br>{kind}=%{{z:.3f}}<extra></extra>"), 1, k)
        fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", line={"color": GT_COLOUR, "width": 1.2},
                                 hoverinfo="skip", showlegend=(k == 1), name="ground-truth outline"), 1, k)
        if bx:
            fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", line={"color": BAND_COLOUR, "width": 1, "dash": "dot"},
                                     hoverinfo="skip", showlegend=(k == 1), name="ambiguous band"), 1, k)
    h, w = traj.gt.shape
    for k in range(1, n + 1):
        fig.update_xaxes(visible=False, range=[-0.5, w - 0.5], constrain="domain", row=1, col=k)
        fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor=f"x{k if k > 1 else ''}",
                         row=1, col=k)
    fig.update_layout(height=height, margin={"l": 5, "r": 5, "t": 45, "b": 5},
                      title={"text": f"step {step} of {traj.settings.steps}", "x": 0.5, "font": {"size": 14}},
                      legend={"orientation": "h", "y": -0.02, "x": 0.0})
    return fig


def _panels(traj: Trajectory) -> list[str]:
    last = ("band probability q" if traj.band_q is not None else
            "mean |q − g| on disputed pixels" if traj.targets.disputed.any() else "mean |q − g|, all pixels")
    return ["loss", "Dice (arg-max vs ground truth)", "HD95 (px × spacing)",
            "predicted size / GT size (solid: arg-max, dotted: Σ s)", last]


def curves_figure(traj: Trajectory, step: int | None = None, *, height: int = 640) -> go.Figure:
    """Loss and metrics over the steps for every loss (see the module docstring)."""
    titles = _panels(traj)
    fig = make_subplots(rows=3, cols=2, subplot_titles=titles + [""], vertical_spacing=0.1,
                        horizontal_spacing=0.08)
    spots = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)]
    steps_all = np.arange(traj.loss.shape[0])
    fs = traj.frame_steps
    ms = fs[traj.metric_frames]
    positive = bool(np.all(traj.loss[np.isfinite(traj.loss)] > 0))
    for i, name in enumerate(traj.names):
        col = loss_colour(i)
        label = traj.titles[name]
        common = {"legendgroup": name, "line": {"color": col, "width": 2}}
        series = [
            (steps_all, traj.loss[:, i]),
            (fs, traj.dice[:, i]),
            (ms, traj.hd95[:, i]),
            (fs, traj.size_ratio[:, i]),
        ]
        if traj.band_q is not None:
            series.append((fs, traj.band_q[:, i]))
        elif traj.targets.disputed.any():
            series.append((fs, traj.calibration[:, i]))
        else:
            series.append((fs, traj.calibration[:, i]))
        for k, ((x, y), (r, c)) in enumerate(zip(series, spots, strict=True)):
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if k == 2 else "lines", name=label,
                                     showlegend=(k == 0), marker={"size": 4},
                                     hovertemplate=f"{label}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>",
                                     **common), r, c)
        fig.add_trace(go.Scatter(x=fs, y=traj.soft_ratio[:, i], mode="lines", name=label, showlegend=False,
                                 legendgroup=name, line={"color": col, "width": 1.5, "dash": "dot"},
                                 hovertemplate=f"{label}<br>step %{{x}}<br>Σ s / |G| = %{{y:.4g}}<extra></extra>"),
                      2, 2)
        if traj.band is not None and name in traj.band.q_star:
            fig.add_trace(go.Scatter(x=[0, traj.settings.steps], y=[traj.band.q_star[name]] * 2, mode="lines",
                                     line={"color": col, "width": 1.5, "dash": "dash"}, legendgroup=name,
                                     showlegend=False,
                                     hovertemplate=f"{label}: band-model optimum q* = %{{y:.3f}}<extra></extra>"),
                          3, 1)
    if traj.band_q is not None and traj.targets.pi is not None:
        fig.add_hline(y=traj.targets.pi, line={"color": "grey", "dash": "dot", "width": 1}, row=3, col=1,
                      annotation_text=f"π = {traj.targets.pi:.2f}", annotation_position="top left")
        fig.update_yaxes(range=[-0.03, 1.03], row=3, col=1)
    fig.add_hline(y=1.0, line={"color": "grey", "dash": "dot", "width": 1}, row=2, col=2)
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=2)
    if positive:
        fig.update_yaxes(type="log", dtick=1, row=1, col=1)
    for r, c in spots:
        fig.update_xaxes(title_text="step" if r == 3 or (r, c) == (2, 2) else None, row=r, col=c)
    if step is not None:  # one layout update: add_vline per subplot costs ~10 ms of plotly validation each
        axes = [(r - 1) * 2 + c for r, c in spots]
        fig.update_layout(shapes=list(fig.layout.shapes) + [
            {"type": "line", "x0": int(step), "x1": int(step), "xref": f"x{k if k > 1 else ''}", "y0": 0, "y1": 1,
             "yref": f"y{k if k > 1 else ''} domain", "line": {"color": "black", "width": 1, "dash": "dot"}}
            for k in axes])
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"x": 0.56, "y": 0.2, "xanchor": "left", "yanchor": "middle"},
                      hovermode="x unified")
    return fig


def band_model_figure(traj: Trajectory, *, height: int = 360) -> go.Figure:
    """Each loss vs the band probability ``q`` with the rest of the image at its target, its minimiser
    (diamond) and where the run ended (circle, the final mean band probability).

    Each curve is scaled so that its minimum is 0 and its largest value over ``0.05 <= q <= 0.95``
    is 1 (the log terms' values at ``q = 0, 1`` would flatten the rest), so shapes compare."""
    if traj.band is None:
        raise ValueError("this run has no ambiguous band")
    fig = go.Figure()
    q = traj.band.q
    for i, name in enumerate(traj.names):
        if name not in traj.band.values:
            continue
        v = np.asarray(traj.band.values[name], dtype=np.float64)
        inner = (q >= 0.05) & (q <= 0.95)
        lo, hi = np.nanmin(v), np.nanmax(v[inner] if inner.any() else v)
        scale = (hi - lo) or 1.0
        col = loss_colour(i)
        label = traj.titles[name]
        fig.add_trace(go.Scatter(x=q, y=(v - lo) / scale, mode="lines", name=label, legendgroup=name,
                                 line={"color": col, "width": 2},
                                 hovertemplate=f"{label}<br>q=%{{x:.3f}}<br>scaled loss %{{y:.3f}}<extra></extra>"))
        qs = traj.band.q_star[name]
        fig.add_trace(go.Scatter(x=[qs], y=[(np.interp(qs, q, v) - lo) / scale], mode="markers",
                                 marker={"symbol": "diamond", "size": 11, "color": col,
                                         "line": {"color": "black", "width": 1}},
                                 legendgroup=name, showlegend=False,
                                 hovertemplate=f"{label}: optimum q* = %{{x:.3f}}<extra></extra>"))
        if traj.band_q is not None:
            qe = float(traj.band_q[-1, i])
            fig.add_trace(go.Scatter(x=[qe], y=[(np.interp(qe, q, v) - lo) / scale], mode="markers",
                                     marker={"symbol": "circle-open", "size": 13, "color": col,
                                             "line": {"width": 2.5}},
                                     legendgroup=name, showlegend=False,
                                     hovertemplate=f"{label}: gradient descent ended at q = %{{x:.3f}}<extra></extra>"))
    if traj.targets.pi is not None:
        fig.add_vline(x=traj.targets.pi, line={"color": "grey", "dash": "dot", "width": 1},
                      annotation_text=f"π = {traj.targets.pi:.2f}", annotation_position="top")
    fig.update_yaxes(range=[-0.05, 1.1])
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis_title="band probability q (every band pixel)", yaxis_title="loss, scaled",
                      legend={"orientation": "h", "y": -0.25})
    return fig


__all__ = ["LOSS_COLOURS", "band_model_figure", "curves_figure", "frame_figure", "loss_colour"]
