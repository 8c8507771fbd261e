"""Figures of a case: ground truth, prediction and the TP/FP/FN overlay, side by side with linked
zoom. Pure functions returning plotly figures; the colours come from :mod:`segloss_core.analyses.playground`.

The figure is assembled from plain dicts (no ``make_subplots``) and built with plotly's
validation off: it is rebuilt on every slider move, and validation cost more than the losses.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go

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


__all__ = ["case_figure", "png_data_uri"]
