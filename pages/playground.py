"""Playground: the case, every loss, the metrics, pin-and-compare, parameters and exports."""

import streamlit as st

from segloss_core import get_loss, list_losses
from segloss_core.analyses import claims
from segloss_core.analyses import playground as pg
from segloss_core.core.conventions import conventions_in_force
from segloss_core.core.metrics import METRIC_DEFINITIONS
from segloss_core.plots.masks import case_figure, profile_figure
from segloss_core.plots.table import delta_bar_figure
from ui import cache
from ui.cores import all_cores
from ui.params import editor
from ui.session import case_source, current_case, current_params, current_volume, panel

PIN_KEY = "segloss_pinned"
ZOOM_KEY = "pg_linked_zoom"
FORMULA_KEY = "formula_loss"
METRIC_LABELS = {"dice": "Dice", "jaccard": "Jaccard", "precision": "Precision", "recall": "Recall",
                 "hd95": "HD95", "assd": "ASSD"}
WHY_UNDEFINED = {"dice": "ground truth empty", "jaccard": "ground truth empty", "recall": "ground truth empty",
                 "precision": "prediction empty", "hd95": "a mask is empty", "assd": "a mask is empty"}


def _unit(case) -> str:
    return "px" if all(s == 1.0 for s in case.spacing) else "mm"


def images_panel(case) -> None:
    imgs = cache.case_images(case)
    # Plain images by default: three interactive image panels cost more to redraw on every
    # slider move than three PNGs.
    zoom = st.toggle("Linked zoom", key=ZOOM_KEY,
                     help="interactive panels: zoom or pan one and the others follow (slower to redraw)")
    if zoom:
        fig = case_figure(imgs["gt"], imgs["prediction"], imgs["overlay"], case.class_names, binary=case.is_binary)
        st.plotly_chart(fig, key="case_figure", config={"displaylogo": False}, width="stretch")
    else:
        for col, k, title in zip(st.columns(3), ("gt", "prediction", "overlay"), pg.panel_titles(case.is_binary),
                                 strict=True):
            col.image(pg.upscale_nearest(imgs[k]), caption=title, width="stretch", output_format="PNG")
        st.markdown(pg.legend_html(case.class_names, case.is_binary), unsafe_allow_html=True)
    c1, c2 = st.columns([4, 1])
    c1.caption("Overlay (colour-blind-safe): TP light grey, FP orange, FN sky blue"
               + ("" if case.is_binary else ", wrong foreground class purple")
               + (". Zoom one panel to zoom all." if zoom else "."))
    c2.download_button("Masks (PNG)", lambda: pg.masks_png(case), file_name=f"{case.name}_masks.png".replace(" ", "_"),
                       mime="image/png", key="dl_png", width="stretch")
    profile_panel(case)


def profile_panel(case) -> None:
    """The prediction along one line. Also the Playground's only figure by default, so the browser loads
    the plotting library during the first visit rather than on the next page that draws figures."""
    prof = pg.probability_profile(case)
    st.plotly_chart(profile_figure(prof, case.class_names, binary=case.is_binary), key="pg_profile",
                    config={"displaylogo": False}, width="stretch")
    st.caption(f"The prediction along row y = {prof.position}, through the centre of the ground truth (shaded): "
               "a horizontal shift moves its edges along this line; a softer boundary or a lower confidence "
               "flattens them.")


def metrics_panel(case) -> None:
    per_class = cache.metrics(case)
    counts = pg.confusion_counts(case)
    unit = _unit(case)
    if case.is_binary:
        m = per_class.get(1, {})
        cols = st.columns(len(METRIC_LABELS))
        for col, (key, label) in zip(cols, METRIC_LABELS.items(), strict=True):
            v = m.get(key)
            shown = "n/a" if v is None else (f"{v:.2f} {unit}" if key in ("hd95", "assd") else f"{v:.4f}")
            col.metric(label, shown, help=f"n/a: {WHY_UNDEFINED[key]}" if v is None else None)
        row = counts[0]
    else:
        table = [{"class": case.class_names[c], **{METRIC_LABELS[k]: m.get(k) for k in METRIC_LABELS}}
                 for c, m in per_class.items()]
        st.dataframe(table, hide_index=True, width="stretch")
        st.caption(f"Per class, arg-max prediction; distances in {unit}; empty cells are undefined "
                   "(ground truth or prediction empty).")
        names = [r["class"] for r in counts]
        pick = st.selectbox("Class in the Dice formula", names, key="dice_class")
        row = counts[names.index(pick)]
    with st.expander("How HD95 and ASSD are defined"):
        st.markdown("\n\n".join(METRIC_DEFINITIONS[k] for k in ("hd95", "assd")))
    st.latex(pg.dice_latex(row["tp"], row["fp"], row["fn"]))
    st.caption(f"Live hard counts of the arg-max prediction for '{row['class']}': TP {row['tp']:,}, "
               f"FP {row['fp']:,}, FN {row['fn']:,} pixels.")
    volume = current_volume()
    if volume is not None:
        with st.spinner("Measuring the whole volume..."), all_cores():
            per_volume = cache.metrics(volume)
        st.markdown("**Whole volume**")
        st.dataframe([{"class": volume.class_names[c], **{METRIC_LABELS[k]: m.get(k) for k in METRIC_LABELS}}
                      for c, m in per_volume.items()], hide_index=True, width="stretch", key="volume_metrics")
        spacing = ", ".join(f"{s:g}" for s in volume.spacing)
        st.caption(f"All {volume.gt.shape[0]} x {volume.gt.shape[1]} x {volume.gt.shape[2]} voxels; distances in "
                   f"mm with the header's voxel spacing ({spacing}).")


def _pin(values, case) -> None:
    st.session_state[PIN_KEY] = {"values": dict(values), "name": case.name, "digest": case.digest()}


def _unpin() -> None:
    st.session_state.pop(PIN_KEY, None)


def _pick_formula_from_table() -> None:
    sel = st.session_state.get("loss_table")
    rows = getattr(getattr(sel, "selection", None), "rows", None) or (sel or {}).get("selection", {}).get("rows", [])
    order = st.session_state.get("loss_table_order") or []
    if rows and rows[0] < len(order):
        st.session_state[FORMULA_KEY] = order[rows[0]]


SLOW_VOLUME_KEY = "pg_volume_slow_losses"


def _score_slow(digest: str) -> None:
    st.session_state[SLOW_VOLUME_KEY] = digest


def volume_values(volume, params) -> dict:
    """The whole volume's column: every loss but the slow ones (``LossSpec.slow``) at once; the slow
    ones, which on a 200^3 volume take about as long again, when asked for (then cached)."""
    names = list_losses()
    slow = [n for n in names if get_loss(n).slow]
    with st.spinner("Scoring the whole volume..."), all_cores():
        out = dict(cache.loss_values(volume, params, [n for n in names if n not in slow]))
    digest = cache.case_digest(volume)
    if not slow:
        return out
    if st.session_state.get(SLOW_VOLUME_KEY) == digest:
        with st.spinner(f"Scoring the {len(slow)} slow losses on the whole volume..."), all_cores():
            out.update(cache.loss_values(volume, params, slow))
    else:
        st.button(f"Score the {len(slow)} slow losses on the whole volume", key="pg_volume_slow",
                  on_click=_score_slow, args=(digest,), icon=":material/hourglass_top:",
                  help=f"{', '.join(slow)}: about as long again as all the others on a 200^3 volume")
        out.update({n: "n/a: slow on a whole volume; use the button above the table" for n in slow})
    return out


def table_panel(case, params, volume) -> dict:
    values = cache.loss_values(case, params)
    vol_values = None
    if volume is not None:
        vol_values = volume_values(volume, params)
    rows = pg.loss_rows(values, vol_values)
    pinned = st.session_state.get(PIN_KEY)
    deltas = pg.normalised_deltas(values, pinned["values"]) if pinned else None
    left, right = st.columns([3, 1.15], gap="medium")
    with left:
        st.subheader("Every registered loss")
        if not rows:
            st.info("No loss is registered yet.")
            return values
        table = []
        for r in rows:
            item = {"loss": r["title"], "family": r["family"], "value": r["value"]}
            if vol_values is not None:
                item["whole volume"] = r.get("volume_value")
            if deltas is not None:
                item["Δ vs pinned"] = deltas.get(r["loss"])
            if any(x["note"] for x in rows):
                item["note"] = r["note"]
            item["reference"] = r["reference"]
            table.append(item)
        st.session_state["loss_table_order"] = [r["loss"] for r in rows]
        config = {
            "value": st.column_config.NumberColumn("value" + (" (slice)" if volume is not None else ""),
                                                   format="%.5g", help="loss at the current prediction"),
            "whole volume": st.column_config.NumberColumn(format="%.5g", help="the same loss on the whole 3-D volume"),
            "Δ vs pinned": st.column_config.NumberColumn(format="%+.3f",
                                                         help="(now - pinned) / max(|now|, |pinned|)"),
            "note": st.column_config.TextColumn(help="n/a: why the loss is undefined here"),
        }
        st.dataframe(table, hide_index=True, width="stretch", column_config=config, key="loss_table",
                     on_select=_pick_formula_from_table, selection_mode="single-row",
                     height=min(38 + 35 * len(table), 780))
        st.caption("Click a column header to sort; click a row to see its formula below.")
        names = [r["loss"] for r in rows]
        if st.session_state.get(FORMULA_KEY) not in names:
            st.session_state[FORMULA_KEY] = "dice" if "dice" in names else names[0]
        name = st.selectbox("Formula of", names, key=FORMULA_KEY, format_func=lambda n: get_loss(n).title)
        spec = get_loss(name)
        try:  # the formula for the parameters in force
            st.latex(spec.formula_text(params.get(name)))
        except ValueError:
            st.latex(spec.formula)
        st.caption(f"{spec.summary}  \nReference: {spec.reference}")
        used = {**spec.defaults, **params.get(name, {})}
        if used:
            st.caption("Parameters in force: " + ", ".join(f"{k}={v}" for k, v in used.items()))
    with right:
        st.subheader("Conventions in force")
        for item in conventions_in_force(params):
            if item["aspect"] == "empty class":
                with st.expander("**empty class** policy"):
                    st.markdown(item["value"])
            else:
                st.markdown(f"**{item['aspect']}**: {item['value']}")
    return values


def pin_panel(case, values) -> None:
    pinned = st.session_state.get(PIN_KEY)
    c1, c2, c3 = st.columns([1, 1, 3])
    c1.button("Pin this prediction", icon=":material/push_pin:", on_click=_pin, args=(values, case), key="pin",
              help="remember every loss value now; then move a slider and compare")
    c2.button("Unpin", on_click=_unpin, disabled=pinned is None, key="unpin")
    if pinned is None:
        c3.caption("Pin the current prediction, change a slider (or draw), and see how much each loss moves.")
        return
    if pinned["digest"] == case.digest():
        c3.caption("Pinned: this very prediction. Change a slider to see each loss's change.")
    else:
        c3.caption(f"Pinned: an earlier prediction of '{pinned['name']}'.")
    deltas = pg.normalised_deltas(values, pinned["values"])
    fig = delta_bar_figure(deltas, {n: get_loss(n).title for n in deltas})
    st.plotly_chart(fig, key="delta_figure", config={"displaylogo": False}, width="stretch")
    st.caption("Each bar: (now - pinned) / max(|now|, |pinned|). Blue = the loss went down, orange = up; "
               "bars of losses on very different scales become comparable.")


def per_class_panel(case, params) -> None:
    if not st.toggle("Per-class values (one-vs-rest)", key="per_class", help="can take a few seconds"):
        return
    with st.spinner("Scoring each class..."):
        per = cache.per_class_values(case, params)
    table = []
    for name, by_class in per.items():
        item = {"loss": get_loss(name).title}
        for cls, v in by_class.items():
            item[cls] = v if isinstance(v, float) else None
        table.append(item)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.5g") for c in case.class_names})
    st.caption("Class c scored as a binary problem: prediction [1 - p_c, p_c] against [gt != c, gt == c]. "
               "Empty cells: undefined (see the main table's note).")


def downloads_panel(case, params, values) -> None:
    rows = pg.loss_rows(values)
    source = case_source()
    snippet = pg.python_snippet(source, params)
    c = st.columns(3)
    c[0].download_button("Table (CSV)", lambda: pg.rows_csv(rows), file_name="segloss_table.csv", mime="text/csv",
                         key="dl_csv", width="stretch")
    metrics = {case.class_names[k]: v for k, v in cache.metrics(case).items()}
    c[1].download_button("Table (JSON)", lambda: pg.table_json(rows, case, params, metrics),
                         file_name="segloss_table.json",
                         mime="application/json", key="dl_json", width="stretch")
    c[2].download_button("Python snippet", snippet, file_name="segloss_table.py", mime="text/x-python",
                         key="dl_py", width="stretch")
    with st.expander("Python snippet that recomputes this table"):
        st.code(snippet, language="python")
        if source.get("kind") != "preset":
            st.caption("Drawn and uploaded cases: save the case (.npz) from the sidebar first.")


@st.fragment
def loss_section() -> None:
    """Everything that depends on the loss parameters: editing one reruns only this part."""
    case = current_case()
    params = current_params()
    volume = current_volume()
    values = {}
    with panel("the loss table"):
        values = table_panel(case, params, volume)
    with panel("pin and compare"):
        st.subheader("Pin and compare")
        pin_panel(case, values)
    if not case.is_binary:
        with panel("the per-class values"):
            st.subheader("Per class")
            per_class_panel(case, params)
    with panel("the loss parameters"):
        st.subheader("Loss parameters")
        editor()
    with panel("the downloads"):
        st.subheader("Export")
        downloads_panel(case, params, values)


case = current_case()
st.title("Playground")
source = case_source()
if source.get("kind") == "preset":
    from segloss_core.analyses.claims import describe
    from segloss_core.data.presets import PRESETS

    preset = PRESETS.get(source["preset"])
    st.caption(f"**{preset.title if preset else case.name}**: {describe(preset) if preset else ''}")
else:
    st.caption(f"**{case.name}**: {' x '.join(map(str, case.gt.shape))} px, {case.num_classes} classes.")

with st.expander("What-if questions to try"):
    st.markdown(claims.what_if_text())  # numbers computed live from the presets
with panel("the images"):
    images_panel(case)
with panel("the metrics"):
    st.subheader("Metrics of the arg-max prediction")
    metrics_panel(case)
loss_section()
