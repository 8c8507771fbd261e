"""Figures for the Playground's loss table: normalised change of every loss since a pinned
prediction. Pure functions returning plotly figures."""

from __future__ import annotations

import plotly.graph_objects as go

#: Bar colours (Okabe-Ito): loss went down = blue, up = orange, undefined = grey.
DOWN, UP, UNDEFINED = "#0072b2", "#e69f00", "#999999"


def delta_bar_figure(deltas: dict[str, float | None], labels: dict[str, str] | None = None,
                     *, height: int | None = None) -> go.Figure:
    """Horizontal bars of normalised deltas (see :func:`segloss_core.analyses.playground.normalised_deltas`).

    One bar per loss in the given order (top to bottom); ``None`` is drawn as an empty slot with
    the note "n/a". The axis is symmetric so "no change" sits in the middle.
    """
    names = list(deltas)
    labels = labels or {}
    ys = [labels.get(n, n) for n in names]
    xs = [0.0 if deltas[n] is None else deltas[n] for n in names]
    colours = [UNDEFINED if deltas[n] is None else (DOWN if deltas[n] < 0 else UP) for n in names]
    text = ["n/a" if deltas[n] is None else f"{deltas[n]:+.3f}" for n in names]
    top = max([abs(x) for x in xs] + [0.05]) * 1.15
    fig = go.Figure(go.Bar(x=xs, y=ys, orientation="h", marker_color=colours, text=text,
                           textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: %{text}<extra></extra>"))
    fig.update_xaxes(range=[-top, top], zeroline=True, zerolinecolor="#444", zerolinewidth=2,
                     title_text="(now - pinned) / max(|now|, |pinned|)")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=height or max(240, 22 * len(names) + 80), margin={"l": 8, "r": 8, "t": 8, "b": 40},
                      showlegend=False, bargap=0.25)
    return fig


__all__ = ["delta_bar_figure"]
