"""Gradient maps: where each loss pushes the prediction, pixel by pixel.

Widgets and layout only: the numbers come from ``segloss_core.analyses.gradients`` and the figures from
``segloss_core.plots.gradients``; both are cached on the case digest and the settings. Each panel is
an ``st.fragment``, so a slider reruns only its own panel.
"""

from __future__ import annotations

import streamlit as st

import segloss_core as sc
from segloss_core.analyses import gradients as gr
from segloss_core.plots import gradients as gp
from ui.cache import cached
from ui.session import current_case, current_params, panel

KEY = "grad_"
SCALING_RADII = (2, 4, 8, 16, 32, 64)
SCALING_SIZE = 256


# ----------------------------------------------------------------------------- cached numerics
# Numbers are cached (ui.cache), figures are not: they are assembled from plain dicts in a few
# milliseconds, while a cached plotly figure would be validated again on every unpickling.

MAPS_CACHE = 128  # entries of the gradient-map cache: the two shown losses and the inspector's, one each


def _maps(case, names, wrt, params, dtype=None):
    """Every loss in ``names`` on its own cache entry (case, loss, its own parameters, wrt, dtype):
    another loss's parameter or another pair of losses recomputes nothing already computed."""
    one = cached(gr.gradient_maps, max_entries=MAPS_CACHE)
    kw = {} if dtype is None else {"dtype": dtype}
    return gr.merge_maps([one(case, (n,), wrt=wrt, params={n: params[n]} if n in params else {}, **kw)
                          for n in names])


def _pixel_maps(case, names, wrt, params):
    return _maps(case, names, wrt, params, dtype=gr.INSPECTOR_DTYPE)  # every loss at once: float32


def _heatmap_figure(maps: gr.GradientMaps, gt, names, channel, view, shared, robust, titles):
    by_name = maps.channel_maps(channel)
    if view == "side":
        return gp.gradient_heatmaps(by_name, gt, shared_scale=shared, titles=titles,
                                    robust=99.0 if robust else None)
    a, b = (by_name[n] for n in names)
    ta, tb = (titles[n] for n in names)
    if view == "difference":
        return gp.comparison_heatmap(gr.normalised_difference(a, b), gt, kind="difference",
                                     title=f"{ta} / max|{ta}|  −  {tb} / max|{tb}|")
    return gp.comparison_heatmap(gr.log_ratio(a, b), gt, kind="ratio", title=f"log10 |{ta}| / |{tb}|")


def _scaling(names, wrt, p_in, p_out, params):
    return cached(gr.dice_vs_ce_scaling, max_entries=16)(SCALING_RADII, SCALING_SIZE, p_in, p_out, names, wrt,
                                                         {n: params[n] for n in names if n in params})


# ----------------------------------------------------------------------------- panels


@st.fragment
def maps_panel(case, names, channel, maps, titles):
    with panel("the gradient maps"):
        cols = st.columns([2, 1, 1])
        views = {"side": "Side by side", "difference": "Normalised difference", "ratio": "Log ratio"}
        view = cols[0].segmented_control("View", list(views), format_func=views.get, default="side",
                                         key=KEY + "view") or "side"
        if len(names) < 2:
            view = "side"
        shared = cols[1].toggle("Shared scale", value=True, key=KEY + "shared",
                                help="One range for both maps (compare sizes) or one per map (compare patterns).")
        robust = cols[2].toggle("Clip at 99%", value=False, key=KEY + "robust",
                                help="Set the colour range by the 99th percentile of |gradient|, so a few "
                                     "extreme pixels do not wash out the rest.")
        fig = _heatmap_figure(maps, case.gt, names, channel, view, shared, robust, titles)
        st.plotly_chart(fig, width="stretch", key=KEY + "heat")
        st.caption("Red: positive gradient (gradient descent lowers this probability); blue: negative "
                   "(descent raises it); white: 0. Black line: ground-truth outline."
                   + (f" Maps are reduced for display to {gp.DISPLAY_MAX_SIDE} px per side."
                      if gp.display_factor(case.gt.shape) > 1 else ""))


@st.fragment
def histogram_panel(case, names, channel, maps, titles):
    with panel("the histograms"):
        scale = st.segmented_control("Bins", ["log", "linear"], default="log", key=KEY + "hist_scale") or "log"
        groups = cached(gr.pixel_groups)(case.gt)
        hists = gr.group_histograms(maps.magnitudes(channel), groups, scale=scale)
        st.plotly_chart(gp.magnitude_histograms(hists, titles), width="stretch", key=KEY + "hist")
        rows = []
        for name, h in hists.items():
            for group, s in h.stats.items():
                rows.append({"loss": titles[name], "group": group, "pixels": s["n"], "mean |grad|": s["mean"],
                             "max |grad|": s["max"], "share of |grad|": s["share"]})
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"mean |grad|": st.column_config.NumberColumn(format="%.3e"),
                                    "max |grad|": st.column_config.NumberColumn(format="%.3e"),
                                    "share of |grad|": st.column_config.NumberColumn(format="percent")})
        st.caption(f"Groups: inside the object, outside it, and the band within {gr.DEFAULT_BOUNDARY_PX:g} px of "
                   "its boundary (both sides). Bars are fractions of each group's pixels; pixels with "
                   "a zero gradient cannot sit on a log axis (they are in the table's mean and share).")


@st.fragment
def profile_panel(case, names, channel, maps, titles, centre):
    with panel("the profile"):
        cols = st.columns(2)
        direction = cols[0].radio("Line", ["row", "column"], horizontal=True, key=KEY + "prof_dir")
        normalise = cols[1].toggle("Normalise", value=True, key=KEY + "prof_norm",
                                   help="Divide each curve by its largest |value| on the line.")
        axis = 0 if direction == "row" else 1
        n = case.gt.shape[axis]
        pos = st.slider(f"Position ({direction})", 0, n - 1, value=int(centre[axis]), key=KEY + f"prof_pos{axis}")
        prof = gr.profile(maps.channel_maps(channel), axis, pos, case.gt)
        st.plotly_chart(gp.profile_figure(prof, titles, normalise=normalise), width="stretch", key=KEY + "prof")
        st.caption("Grey: the object along this line.")


SLOW_NOTE = "slow: switch on 'Slow losses too'"


@st.fragment
def pixel_panel(case, wrt, params, centre):
    with panel("the pixel inspector"):
        h, w = case.gt.shape
        cols = st.columns([2, 2, 1])
        y = cols[0].slider("y (row)", 0, h - 1, value=int(centre[0]), key=KEY + "px_y")
        x = cols[1].slider("x (column)", 0, w - 1, value=int(centre[1]), key=KEY + "px_x")
        slow = cols[2].toggle("Slow losses too", value=False, key=KEY + "px_slow",
                              help="Also the losses marked slow (sorting, distance transforms, soft "
                                   "skeletons): they take most of the time of all the losses together.")
        names = gr.inspector_losses(slow=slow)
        with st.spinner("Computing every loss's gradient…"):
            all_maps = _pixel_maps(case, names, wrt, params)
        rep = gr.pixel_report(case, y, x, wrt=wrt, maps=all_maps)
        probs = ", ".join(f"{case.class_names[k]} {p:.3f}" for k, p in enumerate(rep.probs))
        st.markdown(f"Pixel (y={y}, x={x}): label **{case.class_names[rep.label]}**, prediction {probs}.")
        where, table = st.columns([1, 3])
        where.plotly_chart(gp.location_figure(case.gt, (y, x)), width="stretch", key=KEY + "px_where")
        rows = []
        for r in rep.rows:
            row = {"loss": r["title"], "category": r["category"]}
            if "unavailable" in r:
                row["value"] = None
                row["note"] = SLOW_NOTE if r["loss"] not in names else r["unavailable"]
            else:
                row["value"] = r["value"]
                for k, g in enumerate(r["grad"]):
                    row[f"d/d {case.class_names[k]}"] = g
                if "foreground" in r:
                    row["d/d fg − d/d bg"] = r["foreground"]
            rows.append(row)
        fmt = {k: st.column_config.NumberColumn(format="%.3e") for k in rows[0] if k.startswith("d/d")}
        table.dataframe(rows, hide_index=True, width="stretch", column_config=fmt, height=400)
        st.caption(f"Gradients w.r.t. {'probabilities' if wrt == 'probs' else 'logits'}, one column per class "
                   "channel; for two classes the last column is the derivative along 'more foreground' "
                   "(the probabilities sum to one).")


@st.fragment
def explanation_panel(case, names, wrt, channel, maps, titles, params):
    with panel("the explanation"):
        exp = cached(gr.explain)(case, maps, names, wrt=wrt, channel=channel)
        for name in [*names, "both"]:
            items = [i for i in exp.items if i.loss == name]
            if not items:
                continue
            st.markdown(f"**{titles.get(name, 'Both')}**" if name != "both" else "**Side by side**")
            for item in items:
                st.markdown(f"- {item.text}")
                if item.formula:
                    st.latex(item.formula)
        with st.expander("All numbers"):
            st.json({f"{i.loss}.{i.topic}": i.numbers for i in exp.items if i.numbers}, expanded=False)

        st.markdown("**As the object shrinks** (disks in a 256 × 256 image, prediction p_in inside, "
                    "p_out outside)")
        cols = st.columns(2)
        p_in = cols[0].slider("p_in", 0.05, 0.95, 0.7, 0.05, key=KEY + "p_in")
        p_out = cols[1].slider("p_out", 0.0, 0.2, 0.0, 0.01, key=KEY + "p_out")
        table = _scaling(names, wrt, p_in, p_out, params)
        st.plotly_chart(gp.scaling_figure(table, titles), width="stretch", key=KEY + "scaling")
        rows = [{"radius": float(r), "|G|": int(a)} for r, a in zip(table.radii, table.areas, strict=True)]
        for name, cols_ in table.per_loss.items():
            for i, row in enumerate(rows):
                row[f"{titles[name]}: object"] = float(cols_["object_mean"][i])
                row[f"{titles[name]}: share on object"] = float(cols_["object_share"][i])
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(format="%.3e")
                                    for k in rows[0] if k.endswith("object")})
        st.caption("Mean |gradient| per object pixel on the foreground channel. Dice normalises by the "
                   "object's size; CE's per-pixel gradient does not depend on it.")


# ----------------------------------------------------------------------------- page


st.title("Gradient maps")
st.caption("Where each loss pushes the prediction: the gradient of two losses, pixel by pixel, on the "
           "current case (built in the sidebar).")

case = current_case()
if case.ndim == 3:
    z = st.slider("Slice", 0, case.gt.shape[0] - 1, case.gt.shape[0] // 2, key=KEY + "slice")
    case = case.slice(z)
    st.caption("Losses and gradients are computed on this 2-D slice as if it were the whole image.")

losses = sc.list_losses()
titles = {n: sc.get_loss(n).title for n in losses}
params = current_params()

with panel("the settings"):
    cols = st.columns([2, 2, 2, 2])
    loss_a = cols[0].selectbox("Loss A", losses, index=losses.index("dice"), format_func=titles.get,
                               key=KEY + "loss_a")
    loss_b = cols[1].selectbox("Loss B", losses, index=losses.index("ce"), format_func=titles.get,
                               key=KEY + "loss_b")
    wrt = cols[2].segmented_control("Gradient w.r.t.", ["probs", "logits"], default="probs", key=KEY + "wrt",
                                    format_func={"probs": "probabilities", "logits": "logits"}.get) or "probs"
    channel = cols[3].selectbox("Class channel", list(range(case.num_classes)),
                                index=min(1, case.num_classes - 1), key=KEY + "channel",
                                format_func=lambda k: f"{k}: {case.class_names[k]}")

names = (loss_a,) if loss_a == loss_b else (loss_a, loss_b)
with st.spinner("Computing gradients…"):
    maps = _maps(case, names, wrt, params)
for name, reason in maps.unavailable.items():
    st.warning(f"{titles[name]}: {reason}")
names = tuple(n for n in names if n in maps.results)
in_force = [f"{n}({', '.join(f'{k}={v}' for k, v in params[n].items())})" for n in names if params.get(n)]
st.caption("Loss parameters: " + (", ".join(in_force) + " (set on the Playground)" if in_force else
                                  "registry defaults (change them on the Playground)"))

if not names:
    st.info("Neither loss is defined on this case; pick others.")
    st.stop()

values = st.columns(len(names))
for col, name in zip(values, names, strict=True):
    col.metric(titles[name], f"{maps[name].value:.4g}")

centre = case.centre(channel)

maps_panel(case, names, channel, maps, titles)
left, right = st.columns(2)
with left:
    st.subheader("Gradient magnitude by pixel group")
    histogram_panel(case, names, channel, maps, titles)
with right:
    st.subheader("Profile along a line")
    profile_panel(case, names, channel, maps, titles, centre)

st.subheader("One pixel under every loss")
pixel_panel(case, wrt, params, centre)

st.subheader("Why the maps look like this")
explanation_panel(case, names, wrt, channel, maps, titles, params)
