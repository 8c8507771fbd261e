"""Loss landscapes: every loss over a grid of perturbations of the current prediction.

Widgets and layout only: the numbers come from ``segloss_core.analyses.landscape`` and the figures from
``segloss_core.plots.landscape``; results are cached (``ui.cache``) on the case and the settings.
The whole landscape panel is an ``st.fragment``, so changing a control reruns only it.
"""

from __future__ import annotations

import streamlit as st

import segloss_core as sc
from segloss_core.analyses.landscape import (
    DEFAULT_LOSSES,
    DEFAULT_RANGES,
    Landscape1DResult,
    LandscapeResult,
    landscape,
    landscape_1d,
)
from segloss_core.data.perturb import PERTURBATIONS
from segloss_core.plots import landscape as lp
from ui.cache import page_cache, progress_bar
from ui.session import current_case, current_params, panel

KEY = "land_"
GRID_SIZES = (11, 21, 31, 41)
METRIC_LABELS = {"dice": "1 − Dice", "jaccard": "1 − Jaccard", "hd95": "HD95 (coarse grid)", "none": "none"}


# ----------------------------------------------------------------------------- cached numerics


def _in_force(params: dict, losses) -> dict:
    return {k: v for k, v in params.items() if k in losses}


@page_cache(max_entries=16)
def _landscape(case, x: tuple, y: tuple, n: int, losses: tuple, params: dict, hd95, progress=None) -> LandscapeResult:
    return landscape(case, x=x, y=y, n=n, losses=list(losses), params=params, hd95=hd95, device="auto",
                     progress=progress)


@page_cache(max_entries=16)
def _slice(case, axis: tuple, n: int, losses: tuple, params: dict, hd95: bool, progress=None) -> Landscape1DResult:
    return landscape_1d(case, axis=axis, n=n, losses=list(losses), params=params, hd95=hd95, device="auto",
                        fixed={}, progress=progress)


# ----------------------------------------------------------------------------- widgets


def _axis_controls(col, which: str, default: str, exclude: str | None):
    names = [n for n in PERTURBATIONS if n != exclude]
    name = col.selectbox(f"{which} axis", names, index=names.index(default) if default in names else 0,
                         format_func=lambda n: PERTURBATIONS[n].label, key=KEY + which + "_name",
                         help="the perturbation swept along this axis (applied to the current prediction)")
    spec = PERTURBATIONS[name]
    lo, hi = DEFAULT_RANGES.get(name, spec.range)
    step = float(spec.step)
    rng = col.slider(f"{which} range ({spec.unit})", float(spec.range[0]), float(spec.range[1]),
                     (float(lo), float(hi)), step=step, key=KEY + which + "_range_" + name, help=spec.help)
    if rng[1] <= rng[0]:
        rng = (rng[0], rng[0] + step)
    return name, rng


@st.fragment
def landscape_panel(case, params: dict, titles: dict[str, str]) -> None:
    with panel("the landscape"):
        registered = sc.list_losses()
        defaults = [n for n in DEFAULT_LOSSES if n in registered]
        top = st.columns([1, 1, 1])
        x_name, x_rng = _axis_controls(top[0], "x", "shift_x", None)
        y_name, y_rng = _axis_controls(top[1], "y", "dilate" if x_name != "dilate" else "shift_x", x_name)
        with top[2]:
            n = st.select_slider("Grid points per axis", GRID_SIZES, value=21, key=KEY + "n",
                                 help="41 × 41 is finer but slower; results are cached per case and settings")
            metric = st.segmented_control("Overlay metric", list(METRIC_LABELS), default="dice",
                                          format_func=METRIC_LABELS.get, key=KEY + "metric") or "none"
        losses = st.multiselect("Losses", registered, default=defaults, format_func=titles.get, key=KEY + "losses",
                                max_selections=9)
        if not losses:
            st.info("Pick at least one loss.")
            return
        with progress_bar(f"Computing {n} × {n} grid points…") as tick:
            result = _landscape(case, (x_name, *x_rng), (y_name, *y_rng), n, tuple(losses),
                                _in_force(params, losses), 7 if metric == "hd95" else False, progress=tick)
        for name, reason in result.unavailable.items():
            st.warning(f"{titles.get(name, name)}: {reason}")
        if not result.losses:
            st.info("None of these losses is defined on this case.")
            return

        opts = st.columns([1, 1, 2])
        normalised = opts[0].toggle("Normalise each loss", value=True, key=KEY + "norm",
                                    help="min-max per loss on one shared colour scale (compare shapes and "
                                         "minima); off: raw values, one colour bar per panel")
        view = opts[1].segmented_control("View", ["maps", "3-D surface"], default="maps", key=KEY + "view") or "maps"
        overlay = None if metric == "none" else metric
        if view == "maps":
            fig = lp.landscape_grid(result, titles=titles, normalised=normalised, metric=overlay)
            st.plotly_chart(fig, width="stretch", key=KEY + "grid")
        else:
            options = list(result.losses) + [f"1 - {m}" for m in result.metrics]
            which = opts[2].selectbox("Surface of", options, format_func=lambda k: titles.get(k, k),
                                      key=KEY + "surface")
            fig = lp.landscape_surface(result, which, title=titles.get(which, which), normalised=normalised)
            st.plotly_chart(fig, width="stretch", key=KEY + "surface_fig")
        st.caption(
            f"Each panel: one loss over {n} × {n} perturbations of the current prediction (white ×; "
            f"it sits at {PERTURBATIONS[x_name].label} = {result.current[0]:g}, "
            f"{PERTURBATIONS[y_name].label} = {result.current[1]:g}). Gold star: the loss's minimum; red "
            "dashed lines and diamond: the overlay metric's contours and minimum. Computed in "
            f"{result.seconds:.2f} s on {result.device}."
        )

        st.markdown("**Where each loss has its minimum, and how far that is from the metric's**")
        st.dataframe(lp.minima_rows(result, titles), hide_index=True, width="stretch",
                     column_config={"minimum value": st.column_config.NumberColumn(format="%.4g")})
        st.caption("A loss that agrees with the metric has its minimum 0 grid steps away. Many tied grid "
                   "points mean a flat minimum: the loss cannot tell those predictions apart.")

        st.markdown("**1-D slice through the current prediction**")
        scol = st.columns([1, 2])
        axis = scol[0].radio("Along", [x_name, y_name], format_func=lambda k: PERTURBATIONS[k].label,
                             horizontal=True, key=KEY + "slice_axis")
        rng = x_rng if axis == x_name else y_rng
        with progress_bar("Computing the slice…") as tick:
            one = _slice(case, (axis, *rng), 81, tuple(result.losses), _in_force(params, result.losses),
                         metric == "hd95", progress=tick)
        st.plotly_chart(lp.landscape_slice(one, titles=titles, metric=overlay, normalised=normalised),
                        width="stretch", key=KEY + "slice")


# ----------------------------------------------------------------------------- page

st.title("Loss landscapes")
st.caption(
    "How each loss changes as the current prediction is moved, grown, softened or corrupted along two "
    "axes, next to how the metric changes. Where a loss is flat but the metric is steep (try the thin "
    "vessel preset with shift × dilate and the HD95 overlay), training with that loss gets no signal "
    "about what the metric cares about."
)

case = current_case()
if case.ndim == 3:
    z = st.slider("Slice", 0, case.gt.shape[0] - 1, case.gt.shape[0] // 2, key=KEY + "slice_z")
    case = case.slice(z)
    st.caption("The landscape is computed on this 2-D slice.")

params = current_params()
titles = {n: sc.get_loss(n).title for n in sc.list_losses()}
titles.update({"1 - dice": "1 − Dice", "1 - jaccard": "1 − Jaccard"})
in_force = [f"{n}({', '.join(f'{k}={v}' for k, v in p.items())})" for n, p in params.items() if p]
st.caption("Loss parameters: " + (", ".join(in_force) + " (set on the Playground)" if in_force else
                                  "registry defaults (change them on the Playground)"))

landscape_panel(case, params, titles)
