"""Figures of a case: ground truth, prediction and the TP/FP/FN overlay, side by side with linked
zoom, and the soft prediction along one line. Pure functions returning plotly figures; the colours
come from :mod:`segloss_core.analyses.playground`.

The figure is assembled from plain dicts (no ``make_subplots``) and built with plotly's
validation off: it is rebuilt on every slider move, and validation cost more than the losses.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go

from ..analyses.gradients import Profile
from ..analyses.playground import OVERLAY_COLOURS, OVERLAY_NAMES, class_palette


def png_data_uri(rgb: np.ndarray) -> str:
    """RGB uint8 array -> ``data:image/png;base64,...`` (fast zlib level)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _legend_entry(name: str, colour: str, group: str) -> dict:
    return {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": name,
            "legendgroup": group, "legendgrouptitle": {"text": group}, "showlegend": True, "hoverinfo": "skip",
            "marker": {"symbol": "square", "size": 13, "color": colour, "line": {"color": "#888", "width": 1}}}


def case_figure(gt_rgb: np.ndarray, pred_rgb: np.ndarray, overlay_rgb: np.ndarray,
                class_names=("background", "foreground"), *, titles=None, binary: bool = True,
                height: int = 380) -> go.Figure:
    """Three linked image panels (zoom one, zoom all) plus a legend of classes and TP/FP/FN.

    Images are RGB uint8 arrays (H, W, 3), sent as PNG (compact at 512 x 512).
    ``binary``: the prediction panel shows a foreground probability (viridis) rather than classes.
    """
    titles = titles or ("ground truth", "prediction (foreground probability)" if binary
                        else "prediction (arg-max, faded by confidence)", "overlay: TP / FP / FN")
    h, w = gt_rgb.shape[:2]
    gap = 0.02
    width = (1 - 2 * gap) / 3
    data, layout = [], {}
    annotations = []
    for i, img in enumerate((gt_rgb, pred_rgb, overlay_rgb)):
        suffix = "" if i == 0 else str(i + 1)
        lo = i * (width + gap)
        data.append({"type": "image", "source": png_data_uri(img), "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                     "hovertemplate": "x=%{x}, y=%{y}<extra></extra>"})
        layout[f"xaxis{suffix}"] = {"domain": [lo, lo + width], "range": [-0.5, w - 0.5], "showticklabels": False, "ticks": "",
                                    "showgrid": False, "zeroline": False, "anchor": f"y{suffix}",
                                    **({} if i == 0 else {"matches": "x"})}
        layout[f"yaxis{suffix}"] = {"domain": [0, 1], "range": [h - 0.5, -0.5], "showticklabels": False, "ticks": "",
                                    "showgrid": False, "zeroline": False, "anchor": f"x{suffix}",
                                    "scaleanchor": f"x{suffix}", **({} if i == 0 else {"matches": "y"})}
        annotations.append({"text": titles[i], "x": lo + width / 2, "y": 1.0, "xref": "paper", "yref": "paper",
                            "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 14}})
    for name, colour in zip(class_names, class_palette(len(class_names)), strict=False):
        data.append(_legend_entry(name, colour, "classes"))
    for code in range(1, len(OVERLAY_NAMES)):
        if binary and OVERLAY_NAMES[code] == "wrong class":
            continue
        data.append(_legend_entry(OVERLAY_NAMES[code], OVERLAY_COLOURS[code], "overlay"))
    data.append(_legend_entry("TN", OVERLAY_COLOURS[0], "overlay"))
    layout.update({"height": height, "margin": {"l": 4, "r": 4, "t": 28, "b": 4}, "annotations": annotations,
                   "legend": {"orientation": "v", "x": 1.01, "y": 1.0, "font": {"size": 12}},
                   "plot_bgcolor": "rgba(0,0,0,0)"})
    return go.Figure(data=data, layout=layout, _validate=False)


#: Binary cases: the probability line in the top colour of the prediction panel's viridis.
BINARY_LINE = "#fde725"


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def profile_figure(prof: Profile, class_names, *, binary: bool = True, height: int = 230) -> go.Figure:
    """Each foreground class's predicted probability along one line, over the ground truth of that
    line (each class's runs shaded in its colour), in the colours and on the dark background of the
    image panels (binary: one line, in the prediction panel's yellow). Binary cases also get the 0.5
    line where the arg-max prediction flips.

    ``prof``: :func:`segloss_core.analyses.playground.probability_profile` (values named by class).
    """
    palette = dict(zip(class_names, class_palette(len(class_names)), strict=False))
    shapes = []
    if prof.gt is not None:
        for k, name in enumerate(class_names[1:], start=1):
            for start, stop in _runs(np.asarray(prof.gt) == k):
                shapes.append({"type": "rect", "xref": "x", "yref": "y domain", "x0": start - 0.5,
                               "x1": stop - 0.5, "y0": 0, "y1": 1, "fillcolor": palette[name], "opacity": 0.22,
                               "line": {"width": 0}, "layer": "below"})
    if binary:
        shapes.append({"type": "line", "xref": "x domain", "yref": "y", "x0": 0, "x1": 1, "y0": 0.5, "y1": 0.5,
                       "line": {"color": "#888", "width": 1, "dash": "dot"}})
    along = "x (row y = " if prof.axis == 0 else "y (column x = "
    data = [{"type": "scatter", "x": prof.coords, "y": np.asarray(v, np.float32), "mode": "lines",
             "name": f"p({name})", "line": {"color": BINARY_LINE if binary else palette.get(name, "#f0f0f0"),
                                            "width": 2, "shape": "hvh"},
             "hovertemplate": f"{along[0]}=%{{x}}: p({name}) = %{{y:.3f}}<extra></extra>"}
            for name, v in prof.values.items()]
    axis = {"gridcolor": "#444", "zeroline": False}
    layout = {"height": height, "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
              "shapes": shapes, "plot_bgcolor": "#1a1a1a", "showlegend": not binary,
              "xaxis": {**axis, "title": {"text": f"{along}{prof.position}); shaded: ground truth"}},
              "yaxis": {**axis, "title": {"text": "p(foreground)" if binary else "probability"}, "range": [-0.02, 1.02]},
              "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "bgcolor": "#1a1a1a",
                         "font": {"color": "#eee"}}}
    return go.Figure(data=data, layout=layout, _validate=False)


__all__ = ["case_figure", "png_data_uri", "profile_figure"]
