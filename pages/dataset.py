"""Dataset: on a whole validation set, which loss orders the cases the way the reported metric does,
and which cases each loss thinks are worst.

Widgets and layout only: parsing, pairing, evaluation and statistics come from
``segloss_core.analyses.dataset``, the figures from ``segloss_core.plots.dataset``. Results live in this
session's state, keyed on the upload's sha256 (and the losses and parameters for a zip), so
reruns from the controls never recompute.
"""

from __future__ import annotations

import hashlib
import json

import streamlit as st

import segloss_core as sc
from segloss_core.analyses import dataset as ds
from segloss_core.plots import dataset as pdp
from ui import case_builder
from ui.session import current_case, current_params, panel

KEY = "ds_"
STATE = "segloss_dataset"
SOURCES = ("Results CSV", "Validation set (.zip)")
METHODS = {"spearman": "Spearman ρ", "kendall": "Kendall τ"}
MAX_CSV_MB, MAX_ZIP_MB = ds.MAX_CSV_MB, ds.MAX_ZIP_MB
WORST = 5


def _fast_losses() -> list[str]:
    return [n for n in sc.list_losses() if not getattr(sc.get_loss(n), "slow", False)]


def _store(key, rows, skipped, source: str, error: str | None = None) -> None:
    st.session_state[STATE] = {"key": key, "rows": rows, "skipped": skipped, "source": source, "error": error}


def _csv_input() -> None:
    up = st.file_uploader(f"CSV written by `segloss evaluate --gt-dir … --out results.csv` (≤ {MAX_CSV_MB} MB)",
                          type=["csv"], key=KEY + "csv", max_upload_size=MAX_CSV_MB)
    if up is None:
        return
    data = up.getvalue()
    key = ("csv", hashlib.sha256(data).hexdigest())
    if (st.session_state.get(STATE) or {}).get("key") != key:
        try:
            _store(key, ds.read_results_csv(data), [], "csv")
        except ValueError as err:
            _store(key, None, [], "csv", str(err))


def _zip_input() -> None:
    up = st.file_uploader(f"zip holding `labels/` and `predictions/` at its top level (≤ {MAX_ZIP_MB} MB)",
                          type=["zip"], key=KEY + "zip", max_upload_size=MAX_ZIP_MB,
                          help="paired by case id as nnU-Net does: labels/case_001.nii.gz with predictions/"
                               "case_001.<ext>; nnU-Net's --save_probabilities .npz wins over a hard .nii.gz; "
                               ".pkl files are ignored. Read in memory, never unpickled.")
    losses = st.multiselect("Losses", sc.list_losses(), default=_fast_losses(), key=KEY + "losses",
                            help="the slow ones (clDice skeletons, Lovász, Hausdorff DT) take seconds per 3-D case")
    if up is None:
        return
    data = up.getvalue()
    params = {k: v for k, v in current_params().items() if k in losses}
    key = ("zip", hashlib.sha256(data).hexdigest(), tuple(losses), json.dumps(params, sort_keys=True, default=str))
    if (st.session_state.get(STATE) or {}).get("key") == key:
        st.caption("Evaluated with these losses" + (" and the Playground's parameters." if params else "."))
        return
    try:
        zset = ds.ZipDataset(data)
    except ValueError as err:
        st.error(f"Upload rejected: {err}")
        return
    st.caption(f"{len(zset.pairs)} pairs found, {len(zset.unpaired)} files without a partner"
               + (f"; {zset.num_classes} classes from dataset.json" if zset.num_classes else ""))
    if not losses or not st.button(f"Evaluate {len(zset.pairs)} cases", key=KEY + "run", type="primary"):
        return
    bar = st.progress(0.0, text="starting")

    def progress(done, total, outcome):
        bar.progress(done / total, text=f"[{done}/{total}] {outcome.case}")

    rows, skipped = zset.evaluate(losses, params, progress=progress)
    bar.empty()
    _store(key, rows, skipped, "zip", None if rows else "every pair was skipped")


def _results() -> dict | None:
    res = st.session_state.get(STATE)
    if not res:
        st.info("Upload the CSV the command line wrote, or a zip of a validation set, to see how each loss "
                "ranks its cases.")
        return None
    if res["error"]:
        st.error(f"Could not use this file: {res['error']}")
    for case, reason in res["skipped"]:
        st.warning(f"skipped {case}: {reason}")
    return res if res["rows"] else None


def _table(rows: list[dict]) -> None:
    cols = ds.columns(rows)
    per_class = st.toggle("Per-class metric columns", value=False, key=KEY + "per_class")
    shown = [c for c in cols if per_class or not ds.per_class_column(c)]
    st.dataframe([{c: r.get(c) for c in shown} for r in rows], hide_index=True, key=KEY + "table",
                  height=min(400, 38 + 35 * len(rows)))
    st.caption("Click a column header to sort. Empty cells: undefined (a loss that does not apply, a metric "
               "of a class absent from both maps).")


def _analysis(rows: list[dict]) -> tuple[str, str]:
    cols = ds.columns(rows)
    metrics = [c for c in cols if c.startswith("metric_")]
    c1, c2 = st.columns([2, 1])
    metric = c1.selectbox("Metric the losses are compared with", metrics, index=metrics.index("metric_dice"),
                          key=KEY + "metric", format_func=lambda c: f"{c}  ({pdp.metric_label(c)})")
    method = c2.segmented_control("Rank correlation", list(METHODS), default="spearman", key=KEY + "method",
                                  format_func=METHODS.get) or "spearman"
    agreement = ds.agreement_with(rows, metric)
    st.plotly_chart(pdp.agreement_bars(agreement, metric, method), key=KEY + "bars")
    st.caption(f"Across the cases where both are defined; 1 means a loss ranks the cases exactly as "
               f"{pdp.metric_label(metric)} does (higher loss, worse case).")
    return metric, method


def _pick_from_scatter() -> None:
    """A clicked point of the scatter becomes the picked case (a callback: runs before the rerun)."""
    event = st.session_state.get(KEY + "scatter") or {}
    points = (event.get("selection") or {}).get("points") or []
    picked = [p.get("customdata") for p in points if isinstance(p.get("customdata"), str)]
    if picked:
        st.session_state[KEY + "case"] = picked[0]


def _scatter_and_worst(rows: list[dict], metric: str, can_open: bool) -> str | None:
    losses = ds.loss_columns(ds.columns(rows))
    c1, c2 = st.columns(2)
    loss = c1.selectbox("Loss on the x axis", losses, key=KEY + "loss")
    cases = [str(r["case"]) for r in rows]
    chosen = c2.selectbox("Case", cases, key=KEY + "case", help="ringed in the scatter; open it on every page")
    st.plotly_chart(pdp.loss_metric_scatter(rows, loss, metric, highlight=chosen), key=KEY + "scatter",
                    on_select=_pick_from_scatter, selection_mode="points")
    st.caption("Hover a point for its case; click one to pick it.")
    st.subheader(f"Worst {WORST} cases per loss")
    table = {f"{metric} (metric)": [f"{c} ({v:.3g})" for c, v in ds.worst_cases(rows, metric, WORST)]}
    for name in losses:
        table[name] = [f"{c} ({v:.3g})" for c, v in ds.worst_cases(rows, name, WORST)]
    depth = max(len(v) for v in table.values())
    st.dataframe({k: v + [""] * (depth - len(v)) for k, v in table.items()}, hide_index=True, key=KEY + "worst")
    if not can_open:
        st.caption("To open a case on the other pages, upload the validation set as a zip (a CSV holds no images).")
    return chosen if can_open else None


def _open_case(chosen: str) -> None:
    up = st.session_state.get(KEY + "zip")
    if not st.button(f"Make {chosen} the current case of every page", key=KEY + "open", icon=":material/open_in_new:"):
        return
    try:
        zset = ds.ZipDataset(up.getvalue())
        pair = next(p for p in zset.pairs if p.case == chosen)
        case = zset.case(pair)
    except (ValueError, StopIteration, AttributeError) as err:
        st.error(f"Could not open {chosen}: {err or 'the zip is no longer uploaded'}")
        return
    case_builder.use_case(case)


current_case()  # routes a page run outside app.py back through it
st.title("Dataset")
st.markdown("On your model's validation predictions: **which loss orders the cases the way the metric you "
            "report does, and which cases does each loss think are worst?** The command line "
            "`segloss evaluate --gt-dir labels --pred-dir predictions --out results.csv` (with `--jobs N` or "
            "`--dask`) writes the CSV; a zip is evaluated here, case by case.")
with panel("the upload"):
    source = st.radio("Source", SOURCES, key=KEY + "source", horizontal=True)
    if source == SOURCES[0]:
        _csv_input()
    else:
        _zip_input()
res = _results()
if res is not None:
    rows = res["rows"]
    with panel("the summary"):
        skipped = len(res["skipped"])
        st.caption(f"{len(rows)} cases" + (f", {skipped} skipped" if skipped else ""))
        _table(rows)
    with panel("the rank agreement"):
        metric, _ = _analysis(rows)
    with panel("the cases"):
        chosen = _scatter_and_worst(rows, metric, can_open=res["source"] == "zip")
        if chosen is not None:
            _open_case(chosen)
