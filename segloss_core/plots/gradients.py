"""Plotly figures for the gradient-maps page: pure functions of arrays (no Streamlit, no torch).

Colour convention for signed gradient maps: a diverging scale centred at 0, symmetric
(``zmin = -zmax``): red = positive gradient (gradient descent lowers that probability), blue =
negative (descent raises it). Maps larger than ``max_side`` are reduced for display by keeping, in
each block, the value of largest magnitude (so thin boundary peaks stay visible); hover shows the
original pixel coordinates.

Figures are assembled from plain dicts (no ``make_subplots`` / ``update_layout``) and built with
plotly's validation off, as in :mod:`segloss_core.plots.masks`: they are rebuilt on every rerun.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale
from skimage import measure

from ..analyses.gradients import GroupHistogram, Profile, ScalingTable

DIVERGING = get_colorscale("RdBu_r")  # expanded: the figures skip the validation that would expand a name
DISPLAY_MAX_SIDE = 256
GROUP_COLOURS = {"inside": "#d62728", "outside": "#1f77b4", "boundary": "#2ca02c"}
LOSS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")


def display_factor(shape: Sequence[int], max_side: int = DISPLAY_MAX_SIDE) -> int:
    """Integer block size that brings the largest side down to ``max_side`` or less."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    return max(1, int(np.ceil(max(shape) / max_side)))


def downsample(arr: np.ndarray, max_side: int = DISPLAY_MAX_SIDE, mode: str = "maxabs") -> tuple[np.ndarray, int]:
    """Reduce a 2-D map to at most ``max_side`` per side by ``f x f`` blocks; returns ``(small, f)``.

    ``mode``: ``"maxabs"`` keeps each block's value of largest magnitude (sign kept; NaN ignored),
    ``"max"`` the block maximum (label maps: any foreground), ``"mean"`` the block mean.
    """
    a = np.asarray(arr)
    if a.ndim != 2:
        raise ValueError(f"need a 2-D map, got shape {a.shape}")
    f = display_factor(a.shape, max_side)
    if f == 1:
        return a, 1
    h, w = a.shape
    ph, pw = -h % f, -w % f
    fill = np.nan if mode == "maxabs" and a.dtype.kind == "f" else 0
    if ph or pw:
        a = np.pad(a.astype(np.float64) if fill is np.nan else a, ((0, ph), (0, pw)), constant_values=fill)
    blocks = a.reshape(a.shape[0] // f, f, a.shape[1] // f, f).transpose(0, 2, 1, 3).reshape(
        a.shape[0] // f, a.shape[1] // f, f * f)
    if mode == "max":
        return blocks.max(-1), f
    if mode == "mean":
        return np.nanmean(blocks, -1), f
    if mode != "maxabs":
        raise ValueError(f"mode must be 'maxabs', 'max' or 'mean', got {mode!r}")
    mag = np.where(np.isnan(blocks), -1.0, np.abs(blocks)) if blocks.dtype.kind == "f" else np.abs(blocks)
    idx = mag.argmax(-1)
    return np.take_along_axis(blocks, idx[..., None], -1)[..., 0], f


def _coords(n_small: int, f: int) -> np.ndarray:
    return np.arange(n_small) * f + (f - 1) / 2


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain dicts without plotly's per-property validation (the builders below
    assemble known-good specs; validation cost more than the numbers on every rerun)."""
    return go.Figure(data=data, layout=layout, _validate=False)


def _title(text: str, x: float, y: float) -> dict:
    """A subplot title as ``make_subplots`` places it (centred above the panel)."""
    return {"text": text, "x": x, "y": y, "xref": "paper", "yref": "paper", "xanchor": "center",
            "yanchor": "bottom", "showarrow": False, "font": {"size": 16}}


def contour_xy(gt: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Outline of every foreground class of a 2-D label map, as x/y lists (None between pieces)."""
    gt = np.asarray(gt)
    xs: list[float | None] = []
    ys: list[float | None] = []
    for label in np.unique(gt):
        if label == 0:
            continue
        mask = np.pad((gt == label).astype(np.float32), 1)
        for c in measure.find_contours(mask, 0.5):
            ys.extend((c[:, 0] - 1).tolist() + [None])
            xs.extend((c[:, 1] - 1).tolist() + [None])
    return xs, ys


def symmetric_limit(maps: Sequence[np.ndarray], robust: float | None = None) -> float:
    """Largest |value| over ``maps`` (or its ``robust`` percentile, e.g. 99); 1 for all-zero maps."""
    vals = [np.abs(np.asarray(m, dtype=np.float64)) for m in maps]
    vals = [v[np.isfinite(v)] for v in vals]
    vals = [v for v in vals if v.size]
    if not vals:
        return 1.0
    allv = np.concatenate([v.ravel() for v in vals])
    lim = float(np.percentile(allv, robust)) if robust else float(allv.max())
    if lim <= 0:
        lim = float(allv.max())
    return lim if lim > 0 else 1.0


def _heatmap(z, f, zlim, colorbar, showscale, name, colorscale=DIVERGING, unit="gradient", axis=""):
    """One heatmap trace: float32 values (half the bytes of float64, base64-encoded by plotly) on the
    original pixel coordinates of each displayed block."""
    return {"type": "heatmap", "z": np.asarray(z, dtype=np.float32), "x": _coords(z.shape[1], f),
            "y": _coords(z.shape[0], f), "colorscale": colorscale, "zmid": 0, "zmin": -zlim, "zmax": zlim,
            "showscale": showscale, "colorbar": colorbar, "name": name, "xaxis": f"x{axis}", "yaxis": f"y{axis}",
            "hovertemplate": f"x=%{{x}} y=%{{y}}<br>{unit}=%{{z:.3g}}<extra>{name}</extra>"}


def _overlays(gt, axis, marker, line, shape, show_legend, contour=None) -> list[dict]:
    """Traces drawn over an image panel (axes ``x{axis}``/``y{axis}``): the ground-truth outline, the
    profile line ``(axis, position)`` and the inspected pixel ``(y, x)``. ``contour``: the outline's
    ``contour_xy`` when already computed."""
    on = {"xaxis": f"x{axis}", "yaxis": f"y{axis}", "showlegend": show_legend}
    out = []
    if gt is not None:
        xs, ys = contour if contour is not None else contour_xy(gt)
        # float arrays, None -> NaN (a gap in the line): sent as one typed array, not a list walked value by value
        xs, ys = np.array(xs, dtype=np.float32), np.array(ys, dtype=np.float32)
        out.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines", "line": {"color": "black", "width": 1.5},
                    "name": "ground truth", "hoverinfo": "skip", "legendgroup": "gt", **on})
    if line is not None:
        which, pos = line
        h, w = shape
        xs, ys = ([0, w - 1], [pos, pos]) if which == 0 else ([pos, pos], [0, h - 1])
        out.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines",
                    "line": {"color": "#555", "width": 1, "dash": "dash"}, "name": "profile line",
                    "hoverinfo": "skip", "legendgroup": "line", **on})
    if marker is not None:
        y, x = marker
        out.append({"type": "scatter", "x": [x], "y": [y], "mode": "markers", "name": "inspected pixel",
                    "marker": {"symbol": "x-thin", "size": 12, "line": {"width": 2, "color": "black"}},
                    "legendgroup": "px", **on})
    return out


def _image_axes(n: int, shape, spacing: float = 0.08) -> dict:
    """Layout axes of ``n`` image panels side by side (row 0 at the top, square pixels)."""
    h, w = shape
    width = (1 - spacing * (n - 1)) / n
    layout = {}
    for i in range(n):
        sfx = "" if i == 0 else str(i + 1)
        lo = i * (width + spacing)
        layout[f"xaxis{sfx}"] = {"domain": [lo, lo + width], "anchor": f"y{sfx}", "range": [-0.5, w - 0.5],
                                 "showgrid": False, "zeroline": False, "constrain": "domain"}
        layout[f"yaxis{sfx}"] = {"domain": [0.0, 1.0], "anchor": f"x{sfx}", "range": [h - 0.5, -0.5],
                                 "showgrid": False, "zeroline": False, "scaleanchor": f"x{sfx}", "scaleratio": 1,
                                 "constrain": "domain"}
    return layout


def _image_layout(n: int, shape, height: int, spacing: float = 0.08) -> dict:
    return {**_image_axes(n, shape, spacing), "height": height, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
            "legend": {"orientation": "h", "y": -0.05}, "plot_bgcolor": "white"}


def gradient_heatmaps(
    maps: Mapping[str, np.ndarray],
    gt: np.ndarray | None = None,
    *,
    shared_scale: bool = True,
    titles: Mapping[str, str] | None = None,
    robust: float | None = None,
    marker: tuple[int, int] | None = None,
    line: tuple[int, int] | None = None,
    max_side: int = DISPLAY_MAX_SIDE,
    height: int = 420,
) -> go.Figure:
    """Side-by-side signed heatmaps of 2-D gradient maps with the GT contour on top.

    Args:
        maps: ``{name: 2-D map}`` (one subplot each, same shape).
        gt: 2-D label map drawn as a black outline (optional).
        shared_scale: one symmetric colour range for all maps (compare magnitudes) or one per map
            (compare patterns); the range is ``[-m, m]`` with m the largest |value| (or its ``robust``
            percentile) so 0 is always the middle colour.
        marker: ``(y, x)`` of an inspected pixel; line: ``(axis, position)`` of a profile line.
        max_side: maps are reduced to at most this many values per side (:func:`downsample`); the
            default is about the panels' size on screen, so no more values are sent than are drawn.
    """
    if not maps:
        raise ValueError("no maps to draw")
    names = list(maps)
    arrays = [np.asarray(maps[n]) for n in names]
    shape = arrays[0].shape
    if any(a.shape != shape or a.ndim != 2 for a in arrays):
        raise ValueError("maps must be 2-D and of one shape")
    titles = dict(titles or {})
    limits = ([symmetric_limit(arrays, robust)] * len(names) if shared_scale
              else [symmetric_limit([a], robust) for a in arrays])
    layout = _image_layout(len(names), shape, height)
    contour = contour_xy(gt) if gt is not None else None
    data, notes = [], []
    for i, (name, arr) in enumerate(zip(names, arrays, strict=True)):
        axis = "" if i == 0 else str(i + 1)
        domain = layout[f"xaxis{axis}"]["domain"]
        if shared_scale:
            cb = {"title": {"text": "gradient"}, "exponentformat": "e", "len": 0.9}
            show = i == len(names) - 1
        else:
            cb = {"x": domain[1] + 0.005, "len": 0.9, "thickness": 12, "exponentformat": "e"}
            show = True
        z, f = downsample(arr, max_side)
        data.append(_heatmap(z, f, limits[i], cb, show, titles.get(name, name), axis=axis))
        data += _overlays(gt, axis, marker, line, shape, show_legend=i == 0, contour=contour)
        notes.append(_title(titles.get(name, name) + ("" if shared_scale else f"  (±{limits[i]:.2g})"),
                            (domain[0] + domain[1]) / 2, 1.0))
    layout["annotations"] = notes
    return _figure(data, layout)


def comparison_heatmap(
    view: np.ndarray,
    gt: np.ndarray | None = None,
    *,
    kind: str = "difference",
    title: str = "",
    marker: tuple[int, int] | None = None,
    max_side: int = DISPLAY_MAX_SIDE,
    height: int = 420,
) -> go.Figure:
    """One diverging map of a comparison: ``kind="difference"`` (normalised difference, range
    [-2, 2] for max-normalised maps) or ``"ratio"`` (log10 |a|/|b|; NaN = undefined, left blank)."""
    if kind not in ("difference", "ratio"):
        raise ValueError(f"kind must be 'difference' or 'ratio', got {kind!r}")
    arr = np.asarray(view, dtype=np.float64)
    z, f = downsample(arr, max_side)
    lim = symmetric_limit([arr])
    unit = "a/|a| - b/|b|" if kind == "difference" else "log10 |a|/|b|"
    data = [_heatmap(z, f, lim, {"title": {"text": unit}}, True, title or kind, unit=unit),
            *_overlays(gt, "", marker, None, arr.shape, show_legend=True)]
    layout = _image_layout(1, arr.shape, height)
    if title:
        layout["title"] = {"text": title}
    return _figure(data, layout)


def magnitude_histograms(
    hists: Mapping[str, GroupHistogram],
    titles: Mapping[str, str] | None = None,
    *,
    normalise: bool = True,
    height_per_loss: int = 200,
) -> go.Figure:
    """One row per loss: distribution of |gradient| in the inside / outside / boundary groups.

    ``normalise``: each group's bars are fractions of that group's pixels (so a small group is
    visible next to the background). Hover gives each group's share of the loss's total |gradient|
    and its pixels with exactly zero gradient (a log axis cannot show them).
    """
    if not hists:
        raise ValueError("no histograms to draw")
    titles = dict(titles or {})
    names = list(hists)
    n = len(names)
    spacing = 0.3 / n
    row_h = (1 - spacing * (n - 1)) / n
    data: list[dict] = []
    layout: dict = {"annotations": []}
    shown: set[str] = set()
    for i, name in enumerate(names):
        h = hists[name]
        sfx = "" if i == 0 else str(i + 1)
        top = 1 - i * (row_h + spacing)
        layout[f"xaxis{sfx}"] = {"domain": [0.0, 1.0], "anchor": f"y{sfx}"}
        layout[f"yaxis{sfx}"] = {"domain": [top - row_h, top], "anchor": f"x{sfx}",
                                 "title": {"text": "fraction of group" if normalise else "pixels"}}
        layout["annotations"].append(_title(titles.get(name, name), 0.5, top))
        log = h.scale == "log"
        edges = np.log10(h.edges) if log else h.edges
        centres = (edges[:-1] + edges[1:]) / 2
        width = np.diff(edges)
        for group, counts in h.counts.items():
            gstats = h.stats[group]
            y = counts / max(gstats["n"], 1) if normalise else counts
            share = gstats["share"]
            share_txt = f"{100 * share:.1f}% of the |gradient|" if share == share else "no gradient"
            data.append({
                "type": "bar", "x": centres, "y": y, "width": width, "name": group, "legendgroup": group,
                "showlegend": group not in shown, "marker": {"color": GROUP_COLOURS.get(group)}, "opacity": 0.6,
                "xaxis": f"x{sfx}", "yaxis": f"y{sfx}",
                "hovertemplate": (f"{group}: %{{y:.3g}}<br>{'log10 ' if log else ''}|grad|=%{{x:.3g}}"
                                  f"<br>{share_txt}; zero-gradient pixels: {h.zeros[group]}<extra>{name}</extra>"),
            })
            shown.add(group)
    last = "" if n == 1 else str(n)
    layout[f"xaxis{last}"]["title"] = {"text": "log10 |gradient|" if hists[names[-1]].scale == "log"
                                       else "|gradient|"}
    layout.update(barmode="overlay", height=height_per_loss * n + 60, bargap=0,
                  margin={"l": 10, "r": 10, "t": 30, "b": 10},
                  legend={"orientation": "h", "y": 1.0 + 40 / (height_per_loss * n), "yanchor": "bottom",
                          "x": 1, "xanchor": "right"})
    return _figure(data, layout)


def profile_figure(
    prof: Profile,
    titles: Mapping[str, str] | None = None,
    *,
    normalise: bool = False,
    height: int = 320,
) -> go.Figure:
    """The losses' values along one line, on one axis; the object (GT > 0) shaded.

    ``normalise`` divides each curve by its largest |value| on the line (losses whose gradients
    differ by orders of magnitude then share the axis; the legend gives the scale).
    """
    titles = dict(titles or {})
    shapes = []
    if prof.gt is not None:
        fg = np.asarray(prof.gt) > 0
        edges = np.flatnonzero(np.diff(np.concatenate([[0], fg.astype(int), [0]])))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            shapes.append({"type": "rect", "xref": "x", "yref": "y domain", "x0": start - 0.5, "x1": stop - 0.5,
                           "y0": 0, "y1": 1, "fillcolor": "#bbb", "opacity": 0.3, "line": {"width": 0},
                           "layer": "below"})
    shapes.append({"type": "line", "xref": "x domain", "yref": "y", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
                   "line": {"color": "#888", "width": 1}})
    data = []
    for i, (name, vals) in enumerate(prof.values.items()):
        v = np.asarray(vals, dtype=np.float64)
        scale = float(np.abs(v).max()) if normalise else 1.0
        scale = scale if scale > 0 else 1.0
        label = titles.get(name, name) + (f" (÷ {scale:.3g})" if normalise else "")
        data.append({"type": "scatter", "x": prof.coords, "y": v / scale, "mode": "lines", "name": label,
                     "line": {"color": LOSS_COLOURS[i % len(LOSS_COLOURS)], "shape": "hvh"},
                     "hovertemplate": "%{x}: %{y:.3g}<extra>" + titles.get(name, name) + "</extra>"})
    along = "x (row " if prof.axis == 0 else "y (column "
    layout = {"height": height, "margin": {"l": 10, "r": 10, "t": 10, "b": 10}, "shapes": shapes,
              "xaxis": {"title": {"text": f"{along}{prof.position})"}},
              "yaxis": {"title": {"text": "gradient / max |gradient|" if normalise else "gradient"},
                        "exponentformat": "e"},
              "plot_bgcolor": "white", "legend": {"orientation": "h", "y": -0.25, "yanchor": "top", "x": 0}}
    return _figure(data, layout)


def location_figure(gt: np.ndarray, marker: tuple[int, int], height: int = 240) -> go.Figure:
    """A light map for orientation: the ground-truth outline and one pixel ``(y, x)`` (no heatmap)."""
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"need a 2-D label map, got shape {gt.shape}")
    layout = {**_image_axes(1, gt.shape), "height": height, "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
              "plot_bgcolor": "#f4f4f4", "showlegend": False}
    return _figure(_overlays(gt, "", marker, None, gt.shape, show_legend=False), layout)


def scaling_figure(table: ScalingTable, titles: Mapping[str, str] | None = None, height: int = 320) -> go.Figure:
    """Mean |gradient| per object pixel vs object area (log-log), one line per loss; Dice's closed-form
    off-class value dashed."""
    titles = dict(titles or {})
    data = []
    for i, (name, cols) in enumerate(table.per_loss.items()):
        data.append({"type": "scatter", "x": table.areas, "y": cols["object_mean"], "mode": "lines+markers",
                     "name": f"{titles.get(name, name)}: object pixels",
                     "line": {"color": LOSS_COLOURS[i % len(LOSS_COLOURS)]}})
    if table.dice_off_class is not None:
        data.append({"type": "scatter", "x": table.areas, "y": table.dice_off_class, "mode": "lines+markers",
                     "name": "Dice: every background pixel (closed form)",
                     "line": {"color": LOSS_COLOURS[0], "dash": "dash"}})
    layout = {"height": height, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
              "xaxis": {"type": "log", "title": {"text": "object area |G| (pixels)"}},
              "yaxis": {"type": "log", "title": {"text": "mean |gradient| per pixel"}, "exponentformat": "e"},
              "legend": {"orientation": "h", "y": 1.15}, "plot_bgcolor": "white"}
    return _figure(data, layout)


__all__ = [
    "DISPLAY_MAX_SIDE",
    "comparison_heatmap",
    "contour_xy",
    "display_factor",
    "downsample",
    "gradient_heatmaps",
    "location_figure",
    "magnitude_histograms",
    "profile_figure",
    "scaling_figure",
    "symmetric_limit",
]
