"""The sidebar case builder shared by every page: presets with prediction sliders (in the URL),
drawing on a canvas, uploading files, saving / loading a case as ``.npz``, and the share link.

Everything it builds goes through :func:`ui.session.set_case`; pages read
:func:`ui.session.current_case`. Widgets only: the numbers come from ``segloss_core``.
"""

from __future__ import annotations

import base64
import hashlib
import io
from urllib.parse import urlencode

import numpy as np
import streamlit as st

from segloss_core import Case
from segloss_core.analyses import playground as pg

from . import cache
from .session import case_source, current_case, current_volume, panel, set_case
from .widgets import spec_widget

MODES = ("Preset", "Draw", "Upload")
SIZES = (64, 96, 128, 192, 256, 384, 512)
MAX_UPLOAD_MB = 50
CANVAS_WIDTH = 240  # px: fits the default sidebar
URL = "query-params"

MODE_KEY = "case_mode"
PRESET_KEY = "preset"
DRAW_KEY = "segloss_draw"
UPLOAD_KEY = "segloss_upload"
NPZ_KEY = "segloss_npz"
PENDING_MODE_KEY = "segloss_pending_mode"

UPLOAD_NOTE = ("Uploads stay in this browser session's memory only: they are never written to disk, "
               "stored or shared, and vanish when you close the tab.")
SHARE_NOTE = ("A link holds the preset and the slider values only. Drawn and uploaded cases cannot "
              "live in a URL: save them as a .npz file and load it back.")


def render() -> None:
    """Draw the whole case builder in the sidebar (call once per run, from ``app.py``)."""
    with st.sidebar:
        st.header("Case")
        with panel("the case builder"):
            if PENDING_MODE_KEY in st.session_state:
                st.session_state[MODE_KEY] = st.session_state.pop(PENDING_MODE_KEY)
            mode = st.radio("Input", MODES, key=MODE_KEY, horizontal=True, on_change=_on_mode_change,
                            help="Presets are the main input; draw or upload your own masks.")
            if mode == "Draw":
                _draw_mode()
            elif mode == "Upload":
                _upload_mode()
            else:
                _preset_mode()
        st.caption(f"case {cache.fingerprint(current_case())}",
                   help="The first characters of the case's digest: the same case shows the same fingerprint.")
        with panel("save / load"):
            _save_load()
        with panel("the share link"):
            _share()


# ------------------------------------------------------------------------------------ presets


def _preset_defaults(name: str) -> dict[str, float]:
    from segloss_core.data.perturb import PERTURBATIONS
    from segloss_core.data.presets import PRESETS

    own = PRESETS[name].prediction
    return {k: float(own.get(k, p.default)) for k, p in PERTURBATIONS.items()}


def _on_preset_change() -> None:
    """A new preset starts from its own default prediction."""
    name = st.session_state.get(PRESET_KEY)
    if name:
        for k, v in _preset_defaults(name).items():
            st.session_state[k] = v


def _reset_prediction() -> None:
    _on_preset_change()


def _preset_mode() -> None:
    from segloss_core.analyses.claims import describe
    from segloss_core.data.perturb import PERTURBATIONS
    from segloss_core.data.presets import DEFAULT_PRESET, PRESETS

    names = list(PRESETS)
    # no format_func: a bound selectbox writes the displayed label into the URL
    name = st.selectbox("Preset", names, index=names.index(DEFAULT_PRESET), key=PRESET_KEY, bind=URL,
                        persist_state="session", on_change=_on_preset_change)
    preset = PRESETS[name]
    st.caption(f"**{preset.title}**: {describe(preset)}")
    size = st.select_slider("Image size (px)", SIZES, value=256, key="size", bind=URL, persist_state="session",
                            help="side of the square image; losses and metrics are per pixel of it")
    params = {p: spec_widget(spec, f"{name}_{p}", name=p, bind=URL) for p, spec in preset.params.items()}
    with st.expander("How this ground truth is made"):
        st.markdown(preset.doc or "(no description)")

    st.subheader("Prediction", help="a soft prediction made from the ground truth (segloss_core.data.perturb)")
    defaults = _preset_defaults(name)
    amounts = {}
    for k, p in PERTURBATIONS.items():
        amounts[k] = spec_widget(p, k, label=f"{p.label} ({p.unit})", default=defaults[k], bind=URL)
    seed = 0
    if amounts.get("noise"):
        seed = int(st.number_input("noise seed", 0, 10_000, 0, key="seed", bind=URL))
    st.button("Reset prediction", icon=":material/restart_alt:", on_click=_reset_prediction, key="reset_prediction",
              help="back to this preset's default prediction")

    case = cache.preset_case(name, int(size), params, amounts, seed)
    set_case(case, source={"kind": "preset", "preset": name, "size": int(size), "preset_params": params,
                           "prediction": {k: v for k, v in amounts.items() if v != PERTURBATIONS[k].default},
                           "amounts": amounts, "seed": seed})


# ------------------------------------------------------------------------------------ drawing


def _draw_state() -> dict:
    state = st.session_state.get(DRAW_KEY)
    if state is None:
        case = current_case()
        state = {"gt": case.gt.copy(), "probs": case.probs.copy(), "class_names": case.class_names,
                 "spacing": case.spacing, "origin": (case.gt.copy(), case.probs.copy()),
                 "history": [], "redo": [], "counter": 0}
        st.session_state[DRAW_KEY] = state
    return state


def _push(state: dict) -> None:
    state["history"] = (state["history"] + [(state["gt"].copy(), state["probs"].copy())])[-20:]
    state["redo"] = []


def _canvas_key(state: dict) -> str:
    return f"draw_canvas_{state['counter']}"


def decode_canvas(value) -> np.ndarray | None:
    """RGBA array of a canvas session-state value (``{"drawing": {"data": "data:image/png;base64,..."}}``)."""
    from PIL import Image

    if not isinstance(value, dict):
        return None
    url = (value.get("drawing") or {}).get("data")
    if not url or ";base64," not in url:
        return None
    raw = base64.b64decode(url.split(";base64,", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGBA"))


def absorb_drawing(rgba: np.ndarray | None) -> bool:
    """Apply a canvas drawing to the drawn case (ground truth or prediction, per the controls),
    record it for undo and start a fresh canvas. Returns whether anything was drawn."""
    if not pg.has_strokes(rgba):
        return False
    state = _draw_state()
    _push(state)
    label = int(st.session_state.get("draw_label", 1))
    if not 1 <= label < state["probs"].shape[0]:
        label = 1
    if st.session_state.get("draw_target", "ground truth") == "ground truth":
        state["gt"] = pg.apply_strokes(state["gt"], rgba, label)
    else:
        conf = float(st.session_state.get("draw_confidence", 0.9))
        state["probs"] = pg.apply_strokes_to_probs(state["probs"], rgba, label, conf)
    state["counter"] += 1
    return True


def _on_canvas_change() -> None:
    state = _draw_state()
    absorb_drawing(decode_canvas(st.session_state.get(_canvas_key(state))))


def _undo() -> None:
    state = _draw_state()
    if state["history"]:
        state["redo"].append((state["gt"], state["probs"]))
        state["gt"], state["probs"] = state["history"].pop()
        state["counter"] += 1


def _redo() -> None:
    state = _draw_state()
    if state["redo"]:
        state["history"].append((state["gt"], state["probs"]))
        state["gt"], state["probs"] = state["redo"].pop()
        state["counter"] += 1


def _clear() -> None:
    """Empty the mask being drawn (ground truth: all background; prediction: confident background)."""
    state = _draw_state()
    _push(state)
    if st.session_state.get("draw_target", "ground truth") == "ground truth":
        state["gt"] = np.zeros_like(state["gt"])
    else:
        conf = float(st.session_state.get("draw_confidence", 0.9))
        state["probs"] = pg.probs_from_labels(np.zeros_like(state["gt"]), state["probs"].shape[0], conf)
    state["counter"] += 1


def _reset_drawing() -> None:
    """Back to the case the drawing started from."""
    state = _draw_state()
    _push(state)
    state["gt"], state["probs"] = (a.copy() for a in state["origin"])
    state["counter"] += 1


def _on_mode_change() -> None:
    """Entering Draw mode starts from the case on screen (a preset, an upload, ...)."""
    if st.session_state.get(MODE_KEY) == "Draw":
        st.session_state.pop(DRAW_KEY, None)


def _draw_mode() -> None:
    from streamlit_drawable_canvas import st_canvas

    state = _draw_state()
    num_classes = state["probs"].shape[0]
    st.caption("Paint (green) or erase (red) on the ground truth or on the prediction; the other "
               "mask's outline is shown in white. Each stroke updates every page.")
    target = st.radio("Draw on", ("ground truth", "prediction"), key="draw_target", horizontal=True)
    c1, c2 = st.columns(2)
    brush = c1.radio("Brush", ("paint", "erase"), key="draw_brush", horizontal=True)
    tool = c2.selectbox("Tool", ("freedraw", "rect", "circle", "line"), key="draw_tool")
    width = st.slider("Brush width (canvas px)", 1, 40, 12, key="draw_width")
    if num_classes > 2:
        st.selectbox("Class to paint", list(range(1, num_classes)), key="draw_label",
                     format_func=lambda k: f"{k}: {state['class_names'][k]}")
    if target == "prediction":
        st.slider("Confidence of painted pixels", 0.5, 1.0, 0.9, 0.01, key="draw_confidence")

    h, w = state["gt"].shape
    cw = CANVAS_WIDTH
    ch = max(40, min(560, round(cw * h / w)))
    if target == "ground truth":
        edited, other = state["gt"], state["probs"].argmax(0)
    else:
        edited, other = state["probs"].argmax(0), state["gt"]
    background = pg.mask_image(edited, other, num_classes, (cw, ch))
    colour = "rgb({},{},{})".format(*(pg.PAINT_RGB if brush == "paint" else pg.ERASE_RGB))
    key = _canvas_key(state)
    result = st_canvas(fill_color=colour, stroke_width=width, stroke_color=colour, background_image=background,
                       update_streamlit=True, height=ch, width=cw, drawing_mode=tool, return_image_data=True,
                       key=key, on_change=_on_canvas_change)
    if key == _canvas_key(state) and absorb_drawing(result.image_data):
        st.rerun()  # the callback did not run (e.g. in AppTest): start the fresh canvas now

    b = st.columns(2)
    b[0].button("Undo", icon=":material/undo:", on_click=_undo, disabled=not state["history"], width="stretch",
                key="draw_undo")
    b[1].button("Redo", icon=":material/redo:", on_click=_redo, disabled=not state["redo"], width="stretch",
                key="draw_redo")
    b[0].button("Clear", icon=":material/delete:", on_click=_clear, help=f"empty the {target}", width="stretch",
                key="draw_clear")
    b[1].button("Reset", icon=":material/restart_alt:", on_click=_reset_drawing, width="stretch",
                help="back to the case the drawing started from", key="draw_reset")
    names = state["class_names"]
    case = Case(state["gt"], state["probs"], state["spacing"], "drawn", names)
    set_case(case, source={"kind": "npz", "path": "drawn_case.npz"})


# ------------------------------------------------------------------------------------ uploads


def _io():
    from segloss_core.data import files as sio

    return sio


def load_upload(gt_bytes: bytes, gt_name: str, pred_bytes: bytes | None, pred_name: str | None) -> Case:
    """Read an uploaded ground truth (+ prediction) with the engine's safe readers -> Case.

    Without a prediction file the prediction is made from the ground truth with the default
    sliders (``segloss_core.data.perturb.prediction_from_gt``). Raises ``ValueError`` (``FileError``,
    one line) on any bad input.
    """
    sio = _io()
    if pred_bytes is not None:
        return sio.read_case(gt_bytes, pred_bytes, gt_name=gt_name, pred_name=pred_name or "prediction",
                             name=gt_name)
    from segloss_core.data.perturb import prediction_from_gt

    gt = sio.read_label_map(gt_bytes, gt_name)
    probs = prediction_from_gt(gt.array, gt.num_classes)
    meta = {"gt_format": gt.format, "gt_note": gt.note,
            "pred_note": "no prediction uploaded: made from the ground truth (default sliders)"}
    return Case(gt.array, probs, gt.spacing, gt_name, meta=meta)


def _read_with_progress(gt_bytes: bytes, gt_name: str, pred_bytes: bytes | None, pred_name: str | None) -> Case:
    """:func:`load_upload` with its steps shown in a status box (a 200^3 volume takes a second or
    two: inflating, checking, the case's fingerprint); the box goes once the case is read."""
    slot = st.empty()
    mb = (len(gt_bytes) + len(pred_bytes or b"")) / 2**20
    try:
        with slot.status(f"Reading the upload ({mb:.1f} MB)...", expanded=False) as status:
            status.write("Inflating and checking the files")
            case = load_upload(gt_bytes, gt_name, pred_bytes, pred_name)
            status.update(label=f"Fingerprinting the {'x'.join(map(str, case.gt.shape))} case...")
            cache.case_digest(case)  # once per case; every cached page result is keyed on it
    finally:
        slot.empty()  # a rejection is reported by the caller, in one line
    return case


def _error_line(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:300].rstrip(". ")


def handle_upload(gt_file, pred_file) -> None:
    """Parse new uploads once (keyed on their sha256); a rejection keeps the previous case."""
    state = st.session_state.setdefault(UPLOAD_KEY, {"key": None, "volume": None, "error": None})
    if gt_file is None:
        if pred_file is not None:
            st.info("Upload a ground truth too (the prediction is scored against it).")
        return
    gt_bytes = gt_file.getvalue()
    pred_bytes = None if pred_file is None else pred_file.getvalue()
    key = (hashlib.sha256(gt_bytes).hexdigest(), None if pred_bytes is None else hashlib.sha256(pred_bytes).hexdigest())
    if key != state["key"] and pred_bytes is None and state["key"] and state["key"][0] == key[0] \
            and state["key"][1] is not None:
        # the prediction was removed (or is being replaced): keep the case until a new one arrives
        state["key"] = key
        state["error"] = None
        state["kept"] = True
    elif key != state["key"]:
        state["key"] = key
        state["kept"] = False
        try:
            case = _read_with_progress(gt_bytes, gt_file.name, pred_bytes, None if pred_file is None else pred_file.name)
        except Exception as err:  # noqa: BLE001 - hostile files: any failure is a rejection
            state["error"] = _error_line(err)
        else:
            state["error"] = None
            state["volume"] = case
            st.session_state.pop("slice_index", None)
    if state["error"]:
        st.error(f"Upload rejected: {state['error']}. The previous case is kept.")
    elif state.get("kept"):
        st.caption("Prediction removed: the last case is kept until a new prediction is uploaded "
                   "(re-upload the ground truth alone for a prediction made from it).")
    elif state.get("volume") is not None:
        meta = state["volume"].meta
        for k in ("gt_note", "pred_note"):
            if meta.get(k):
                st.caption(f"{'Ground truth' if k == 'gt_note' else 'Prediction'}: {meta[k]}")
        if meta.get("warning"):
            st.warning(meta["warning"])


def _upload_mode() -> None:
    st.caption(UPLOAD_NOTE)
    types = ["png", "tif", "tiff", "npy", "npz", "nii", "gz"]
    gt_file = st.file_uploader("Ground-truth label map", type=types, key="upload_gt", max_upload_size=MAX_UPLOAD_MB,
                               help="PNG (0/1, 0/255, palette), TIFF, NPY/NPZ or NIfTI (.nii, .nii.gz); integer labels, "
                                    "0 = background; identified by content, not by extension")
    pred_file = st.file_uploader("Prediction (optional)", type=types, key="upload_pred",
                                 max_upload_size=MAX_UPLOAD_MB,
                                 help="probabilities in [0, 1] (one foreground map or C maps) or a label map; "
                                      "without it the prediction is made from the ground truth")
    handle_upload(gt_file, pred_file)
    volume = (st.session_state.get(UPLOAD_KEY) or {}).get("volume")
    if volume is None:
        st.caption("Showing the previous case until a ground truth is uploaded.")
        set_case(current_case(), volume=current_volume(), source=case_source())
        return
    set_volume_case(volume)


def set_volume_case(volume: Case) -> None:
    """Make an uploaded case current; a 3-D volume gets a slice picker (the pages show the slice,
    the Playground also scores the whole volume with the header's voxel spacing)."""
    if volume.ndim == 2:
        set_case(volume, source={"kind": "npz", "path": "uploaded_case.npz"})
        return
    sp = ", ".join(f"{s:g}" for s in volume.spacing)
    st.caption(f"3-D volume {' x '.join(map(str, volume.gt.shape))}, voxel spacing ({sp}).")
    axis = st.radio("Slice axis", (0, 1, 2), index=0, key="slice_axis", horizontal=True,
                    format_func=lambda a: f"axis {a}")
    n = volume.gt.shape[axis]
    index = st.slider("Slice", 0, n - 1, volume.busiest_slice(int(axis)), key="slice_index")
    set_case(volume.slice(int(index), axis=int(axis)), volume=volume,
             source={"kind": "npz", "path": "uploaded_case.npz"})


# ------------------------------------------------------------------------------------ save / load


def _save_load() -> None:
    with st.expander("Save / load case (.npz)"):
        sio = _io()
        case = current_volume() or current_case()
        st.download_button("Save case (.npz)", data=lambda: sio.save_case_npz(case),
                           file_name=f"{case.name}.npz".replace(" ", "_"), mime="application/octet-stream", key="save_npz",
                           help="ground truth + soft prediction (+ spacing and class names) in one file")
        up = st.file_uploader("Load a saved case", type=["npz"], key="upload_npz", max_upload_size=MAX_UPLOAD_MB)
        handle_npz(up)


def handle_npz(up) -> None:
    """Load a ``.npz`` case once per file (sha256); a bad file keeps the current case."""
    state = st.session_state.setdefault(NPZ_KEY, {"key": None, "error": None})
    if up is None:
        return
    raw = up.getvalue()
    key = hashlib.sha256(raw).hexdigest()
    if key != state["key"]:
        state["key"] = key
        try:
            case = _io().load_case_npz(raw, up.name)
        except Exception as err:  # noqa: BLE001 - hostile files: any failure is a rejection
            state["error"] = _error_line(err)
        else:
            state["error"] = None
            st.session_state[UPLOAD_KEY] = {"key": ("npz", key), "volume": case, "error": None}
            st.session_state[PENDING_MODE_KEY] = "Upload"  # the mode radio is already drawn this run
            st.rerun()
    if state["error"]:
        st.error(f"Could not load the case: {state['error']}. The previous case is kept.")


def use_case(case: Case) -> None:
    """Make ``case`` the current case of every page, as an upload would (a 3-D case gets the
    sidebar's slice picker), and rerun. Used by pages that open a case (e.g. the Dataset page)."""
    st.session_state[UPLOAD_KEY] = {"key": ("case", case.digest()), "volume": case, "error": None}
    st.session_state[PENDING_MODE_KEY] = "Upload"  # the mode radio is already drawn this run
    st.session_state.pop("slice_index", None)
    st.rerun()


# ------------------------------------------------------------------------------------ share


def share_query(source: dict) -> dict[str, str]:
    """The URL query parameters that reproduce a preset view (the bound widgets' keys)."""
    if source.get("kind") != "preset":
        return {}
    q = {"preset": source["preset"]}
    if source.get("size", 256) != 256:
        q["size"] = str(source["size"])
    for k, v in source.get("preset_params", {}).items():
        q[f"{source['preset']}_{k}"] = f"{v:g}" if isinstance(v, float) else str(v)
    defaults = _preset_defaults(source["preset"])  # what the bound sliders start from
    for k, v in source.get("amounts", {}).items():
        if v != defaults.get(k):
            q[k] = f"{v:g}"
    if source.get("seed"):
        q["seed"] = str(source["seed"])
    return q


def _share() -> None:
    with st.expander("Share this view"):
        source = case_source()
        if source.get("kind") == "preset":
            base = ""
            try:
                base = (st.context.url or "").split("?")[0]
            except Exception:  # noqa: BLE001 - no browser context (tests)
                base = ""
            st.code(f"{base}?{urlencode(share_query(source))}", language=None, wrap_lines=True)
            st.caption("The address bar always holds this: copy it to share the preset and sliders.")
        st.caption(SHARE_NOTE)
