"""Numbers behind the app's Playground page: the loss table, normalised deltas against a pinned
prediction, hard TP/FP/FN counts and overlays, exports (CSV, JSON, PNG) and the Python snippet
that recomputes the table. Pure functions of a :class:`~segloss_core.data.case.Case`; no Streamlit.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np
import torch

from ..core._tensors import EPS, one_hot
from ..core.engine import compute_all
from ..core.registry import get_loss, list_losses
from ..data.case import Case
from .gradients import Profile, profile

#: Overlay codes: true negative, true positive, false positive, false negative, wrong class
#: (a foreground pixel given another foreground class: FN for one class and FP for the other).
TN, TP, FP, FN, WRONG = 0, 1, 2, 3, 4
OVERLAY_NAMES = ("TN", "TP", "FP", "FN", "wrong class")

#: Colour-blind-safe overlay palette (Okabe & Ito 2008 colours on a dark background):
#: TP light grey, FP orange, FN sky blue, wrong class reddish purple.
OVERLAY_COLOURS = ("#1a1a1a", "#e0e0e0", "#e69f00", "#56b4e9", "#cc79a7")

#: Class colours for label maps: background dark, then Okabe-Ito (black and grey left out).
CLASS_COLOURS = ("#1a1a1a", "#f0f0f0", "#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2",
                 "#d55e00", "#cc79a7")


def _finite_or_none(v: Any) -> float | None:
    if isinstance(v, (int, float)) and math.isfinite(float(v)):
        return float(v)
    return None


def loss_values(case: Case, params: dict[str, dict] | None = None, names=None) -> dict[str, float | str]:
    """``{loss: value or "n/a: reason"}`` for every registered loss (or ``names``) on ``case``.

    One :func:`segloss_core.compute_all` call (the engine reports a loss undefined here with its
    one-line reason); a non-finite value is reported as ``"n/a: not finite (...)"``.
    """
    names = list(names) if names is not None else list_losses()
    probs, target = case.tensors()
    values = compute_all(probs, target, names, params=params or {}, spacing=case.spacing)
    return {name: v if isinstance(v, str) else (float(v) if math.isfinite(v) else f"n/a: not finite ({v})")
            for name, v in values.items()}


def loss_rows(values: dict[str, float | str], volume: dict[str, float | str] | None = None) -> list[dict]:
    """Table rows ``{loss, title, family, value, note, reference}`` for ``loss_values`` output.

    ``value`` is a float or ``None`` (then ``note`` says "n/a: reason"). With ``volume`` (the same
    losses on the whole 3-D volume) each row also gets ``volume_value``.
    """
    rows = []
    for name, v in values.items():
        spec = get_loss(name)
        row = {
            "loss": name,
            "title": spec.title,
            "family": spec.category,
            "value": _finite_or_none(v),
            "note": v if isinstance(v, str) else "",
            "reference": spec.reference,
        }
        if volume is not None:
            vv = volume.get(name)
            row["volume_value"] = _finite_or_none(vv)
            if isinstance(vv, str) and not row["note"]:
                row["note"] = f"volume: {vv}"
        rows.append(row)
    return rows


def normalised_deltas(current: dict[str, Any], pinned: dict[str, Any]) -> dict[str, float | None]:
    """Change of each loss from the pinned prediction, normalised per loss to [-2, 2].

    .. math::
        \\delta = \\frac{L_\\text{now} - L_\\text{pinned}}{\\max(|L_\\text{now}|, |L_\\text{pinned}|)}

    so +1 means "went up from 0", -1 "went down to 0", and losses on very different scales can
    share one bar chart. ``None`` where either value is undefined; 0 where both are 0.
    """
    out: dict[str, float | None] = {}
    for name, now in current.items():
        a, b = _finite_or_none(now), _finite_or_none(pinned.get(name))
        if a is None or b is None:
            out[name] = None
            continue
        scale = max(abs(a), abs(b))
        out[name] = 0.0 if scale < 1e-15 else (a - b) / scale
    return out


def per_class_values(case: Case, params: dict[str, dict] | None = None, names=None) -> dict[str, dict[str, Any]]:
    """One-vs-rest value of each loss per class: ``{loss: {class_name: value or "n/a: ..."}}``.

    Class ``c`` is scored as a binary problem: prediction ``[1 - p_c, p_c]`` against target
    ``[gt != c, gt == c]`` (background-vs-rest for class 0), with the same parameters.
    """
    names = list(names) if names is not None else list_losses()
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for c in range(case.num_classes):
        pc = case.probs[c]
        binary = Case((case.gt == c).astype(np.int64), np.stack([1.0 - pc, pc]), case.spacing,
                      f"{case.name} [{case.class_names[c]}]")
        for name, v in loss_values(binary, params, names).items():
            out[name][case.class_names[c]] = v
    return out


def confusion_counts(case: Case) -> list[dict[str, Any]]:
    """Hard (arg-max) TP, FP, FN, TN pixel counts per foreground class
    (:func:`segloss_core.core.metrics.confusion_counts`).

    Rows ``{class, label, tp, fp, fn, tn}``; a binary case gives one row.
    """
    from ..core.metrics import confusion_counts as counts

    pred = case.hard_prediction
    rows = []
    for c in range(1, case.num_classes):
        k = counts(pred, case.gt, label=c)
        rows.append({"class": case.class_names[c], "label": c, "tp": k.tp, "fp": k.fp, "fn": k.fn, "tn": k.tn})
    return rows


def dice_latex(tp: int, fp: int, fn: int) -> str:
    """The Dice formula with the live counts plugged in, as LaTeX (``n/a`` when both masks are empty)."""
    head = r"\mathrm{Dice} = \frac{2\,TP}{2\,TP + FP + FN}"
    denom = 2 * tp + fp + fn
    nums = rf"= \frac{{2 \cdot {tp:,}}}{{2 \cdot {tp:,} + {fp:,} + {fn:,}}}".replace(",", r"{,}")
    if denom == 0:
        return head + nums + r"= \text{n/a (both masks empty)}"
    return head + nums + rf"= {2 * tp / denom:.4f}"


def overlay_codes(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-pixel code (uint8): :data:`TN`, :data:`TP`, :data:`FP`, :data:`FN` or :data:`WRONG`."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    codes = np.zeros(gt.shape, np.uint8)
    gfg, pfg = gt > 0, pred > 0
    codes[gfg & pfg & (gt == pred)] = TP
    codes[gfg & pfg & (gt != pred)] = WRONG
    codes[~gfg & pfg] = FP
    codes[gfg & ~pfg] = FN
    return codes


def _hex_to_rgb(colours) -> np.ndarray:
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours], np.uint8)


def class_palette(num_classes: int) -> list[str]:
    """Hex colour per class (background first); cycles after the Okabe-Ito colours run out."""
    fg = CLASS_COLOURS[1:]
    return [CLASS_COLOURS[0]] + [fg[(k - 1) % len(fg)] for k in range(1, num_classes)]


def label_rgb(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label map -> RGB uint8 with :func:`class_palette`."""
    lut = _hex_to_rgb(class_palette(max(num_classes, int(labels.max()) + 1 if labels.size else 1)))
    return lut[np.asarray(labels)]


_VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
            "#b5de2b", "#fde725")


def probability_rgb(probs: np.ndarray) -> np.ndarray:
    """Soft prediction ``(C, *spatial)`` -> RGB uint8.

    Binary: the foreground probability through viridis (0 dark purple, 1 yellow). Multi-class:
    the arg-max class colour, blended towards the background colour as confidence drops.
    """
    probs = np.asarray(probs, np.float32)
    if probs.shape[0] == 2:
        lut = _hex_to_rgb(_VIRIDIS).astype(np.float32)
        x = np.clip(probs[1], 0, 1) * (len(_VIRIDIS) - 1)
        lo = np.floor(x).astype(np.int64).clip(0, len(_VIRIDIS) - 2)
        t = (x - lo)[..., None]
        return (lut[lo] * (1 - t) + lut[lo + 1] * t).round().astype(np.uint8)
    lab = probs.argmax(0)
    conf = probs.max(0)[..., None]
    colours = label_rgb(lab, probs.shape[0]).astype(np.float32)
    bg = _hex_to_rgb(CLASS_COLOURS[:1]).astype(np.float32)[0]
    weight = np.clip((conf - 1.0 / probs.shape[0]) / (1 - 1.0 / probs.shape[0]), 0, 1)
    return (bg * (1 - weight) + colours * weight).round().astype(np.uint8)


def overlay_rgb(codes: np.ndarray) -> np.ndarray:
    """Overlay codes -> RGB uint8 with :data:`OVERLAY_COLOURS`."""
    return _hex_to_rgb(OVERLAY_COLOURS)[np.asarray(codes)]


def case_images(case: Case) -> dict[str, np.ndarray]:
    """RGB uint8 images of a 2-D case: ``{"gt", "prediction", "overlay"}`` plus ``"codes"``."""
    if case.ndim != 2:
        raise ValueError("case_images needs a 2-D case; pick a slice first")
    codes = overlay_codes(case.gt, case.hard_prediction)
    return {
        "gt": label_rgb(case.gt, case.num_classes),
        "prediction": probability_rgb(case.probs),
        "overlay": overlay_rgb(codes),
        "codes": codes,
    }


def masks_png(case: Case, min_size: int = 256, gap: int = 6) -> bytes:
    """PNG bytes: ground truth | prediction | TP/FP/FN overlay side by side (nearest-neighbour
    upscaled so the short side is at least ``min_size``)."""
    from PIL import Image

    imgs = case_images(case)
    h, w = case.gt.shape
    scale = max(1, int(math.ceil(min_size / max(1, min(h, w)))))
    panels = [np.repeat(np.repeat(imgs[k], scale, 0), scale, 1) for k in ("gt", "prediction", "overlay")]
    H, W = h * scale, w * scale
    canvas = np.full((H, 3 * W + 2 * gap, 3), 255, np.uint8)
    for i, p in enumerate(panels):
        canvas[:, i * (W + gap): i * (W + gap) + W] = p
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG")
    return buf.getvalue()


def panel_titles(binary: bool) -> tuple[str, str, str]:
    """Titles of the three image panels (ground truth, prediction, overlay)."""
    return ("ground truth", "prediction (foreground probability)" if binary
            else "prediction (arg-max, faded by confidence)", "overlay: TP / FP / FN")


def probability_profile(case: Case, axis: int = 0) -> Profile:
    """The soft prediction along the line through the ground truth's centre: the row (``axis=0``,
    values along x) or the column (``axis=1``) through the foreground's centre of mass, the middle
    line when the ground truth is empty. One curve per foreground class, its probability ``p_c``,
    named by the class; the ground-truth labels of that line come along to shade the object."""
    if case.ndim != 2:
        raise ValueError("probability_profile needs a 2-D case; pick a slice first")
    position = case.centre()[axis]
    maps = {case.class_names[k]: case.probs[k] for k in range(1, case.num_classes)}
    return profile(maps, axis, position, case.gt)


def upscale_nearest(rgb: np.ndarray, min_size: int = 512) -> np.ndarray:
    """``rgb`` repeated by the smallest integer factor that makes its short side at least
    ``min_size`` (nearest neighbour: label edges stay sharp when the browser scales the image)."""
    h, w = rgb.shape[:2]
    k = max(1, int(math.ceil(min_size / max(1, min(h, w)))))
    return rgb if k == 1 else np.repeat(np.repeat(rgb, k, 0), k, 1)


def legend_html(class_names, binary: bool) -> str:
    """One line of HTML: a colour swatch per class and per overlay code (TP, FP, FN, TN and, for
    several classes, wrong class), in the colours of :func:`label_rgb` and :func:`overlay_rgb`."""
    from html import escape

    def swatch(name: str, colour: str) -> str:
        return (f'<span style="white-space:nowrap;margin-right:0.9em"><span style="display:inline-block;'
                f'width:0.9em;height:0.9em;background:{colour};border:1px solid #888;vertical-align:-0.1em;'
                f'margin-right:0.3em"></span>{escape(str(name))}</span>')

    classes = "".join(swatch(n, c) for n, c in zip(class_names, class_palette(len(class_names)), strict=False))
    codes = [k for k in (TP, FP, FN, WRONG, TN) if not (binary and k == WRONG)]
    overlay = "".join(swatch(OVERLAY_NAMES[k], OVERLAY_COLOURS[k]) for k in codes)
    return f'<div style="font-size:0.85em">classes: {classes} &nbsp; overlay: {overlay}</div>'


def rows_csv(rows: list[dict]) -> str:
    """CSV text of table rows (columns in the rows' key order; missing values empty)."""
    if not rows:
        return ""
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return buf.getvalue()


def table_json(rows: list[dict], case: Case, params: dict | None = None, metrics: dict | None = None) -> str:
    """JSON text: the case description, parameters in force, the loss rows and the metrics."""
    doc = {
        "case": {"name": case.name, "shape": list(case.gt.shape), "classes": list(case.class_names),
                 "spacing": list(case.spacing), "digest": case.digest()},
        "eps": EPS,
        "params": params or {},
        "losses": rows,
        "metrics": metrics or {},
    }
    return json.dumps(doc, indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def python_snippet(source: dict[str, Any], params: dict | None = None) -> str:
    """A short script that rebuilds the case and recomputes the table with ``segloss_core``.

    ``source``: ``{"kind": "preset", "preset": name, "size": px, "preset_params": {...},
    "prediction": {...}, "seed": int}`` for a preset with prediction sliders (``prediction``: the
    amounts that differ from ``PERTURBATIONS[k].default``, as ``make_case`` fills in the rest), or ``{"kind": "npz", "path": ...}``
    for a drawn / uploaded case saved with the "Save case" button.
    """
    lines = ["import segloss_core as sc"]
    if source.get("kind") == "preset":
        args = [repr(source["preset"]), f"size={int(source.get('size', 256))}",
                f"prediction={_pyrepr(source.get('prediction', {}))}"]
        if source.get("seed"):
            args.append(f"seed={int(source['seed'])}")
        args += [f"{k}={_pyrepr(v)}" for k, v in source.get("preset_params", {}).items()]
        lines += [
            "from segloss_core.data.presets import make_case",
            "",
            f"case = make_case({', '.join(args)})",
        ]
    else:
        path = source.get("path", "case.npz")
        lines += [
            "from segloss_core.data.files import load_case_npz",
            "",
            f"with open({path!r}, 'rb') as f:  # saved with the app's 'Save case (.npz)' button",
            "    case = load_case_npz(f.read())",
        ]
    lines += [
        f"params = {_pyrepr(params or {})}",
        "probs, target = case.tensors()",
        "table = sc.compute_all(probs, target, params=params, spacing=case.spacing)",
        "for name, value in table.items():",
        "    print(f'{name:24s} {value}')",
        "print(sc.metrics(case.hard_prediction, case.gt, spacing=case.spacing))",
    ]
    return "\n".join(lines) + "\n"


def _pyrepr(obj: Any) -> str:
    """``repr`` with numpy scalars turned into Python numbers and tuples kept readable."""
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k!r}: {_pyrepr(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(_pyrepr(v) for v in obj)
        return f"[{inner}]" if isinstance(obj, list) else f"({inner}{',' if len(obj) == 1 else ''})"
    if isinstance(obj, np.generic):
        return repr(obj.item())
    return repr(obj)


def probs_from_labels(labels: np.ndarray, num_classes: int, confidence: float = 0.9) -> np.ndarray:
    """Hard label map -> soft prediction ``(C, *spatial)`` float32: ``confidence`` on the drawn
    label, the rest spread evenly over the other classes (``confidence=1``: one-hot)."""
    if not 0 < confidence <= 1:
        raise ValueError(f"confidence must lie in (0, 1], got {confidence}")
    lab = torch.from_numpy(np.asarray(labels, np.int64)).unsqueeze(0)
    hot = one_hot(lab, num_classes, dtype=torch.float32)[0].numpy()
    rest = (1.0 - confidence) / (num_classes - 1)
    return (hot * confidence + (1 - hot) * rest).astype(np.float32)


#: Stroke colours the drawing canvas uses: paint adds the chosen label, erase sets background.
PAINT_RGB = (0, 200, 0)
ERASE_RGB = (220, 0, 0)


def stroke_masks(shape: tuple[int, int], rgba: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(paint, erase)`` boolean masks of ``shape`` from a canvas drawing: green-ish strokes
    (:data:`PAINT_RGB`) paint, red-ish ones (:data:`ERASE_RGB`) erase, transparent pixels do
    nothing. ``rgba`` (h, w, 4) uint8 is resized by nearest neighbour (pixel centres) and
    anti-aliased edges are thresholded at alpha > 127; where strokes overlap the canvas already
    shows the later one, so the later stroke wins."""
    h, w = shape
    if rgba is None:
        return np.zeros(shape, bool), np.zeros(shape, bool)
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] < 4:
        raise ValueError(f"canvas image must be (h, w, 4) RGBA, got shape {rgba.shape}")
    rows = ((np.arange(h) + 0.5) * rgba.shape[0] / h).astype(np.int64).clip(0, rgba.shape[0] - 1)
    cols = ((np.arange(w) + 0.5) * rgba.shape[1] / w).astype(np.int64).clip(0, rgba.shape[1] - 1)
    small = rgba[rows][:, cols].astype(np.int16)
    drawn = small[..., 3] > 127
    paint = drawn & (small[..., 1] > small[..., 0])
    return paint, drawn & ~paint


def apply_strokes(base: np.ndarray, rgba: np.ndarray | None, label: int = 1) -> np.ndarray:
    """Label map ``base`` edited by a canvas drawing: painted pixels get ``label``, erased ones 0."""
    base = np.asarray(base)
    if base.ndim != 2:
        raise ValueError(f"drawing needs a 2-D label map, got shape {base.shape}")
    paint, erase = stroke_masks(base.shape, rgba)
    out = base.copy()
    out[paint] = label
    out[erase] = 0
    return out


def apply_strokes_to_probs(base: np.ndarray, rgba: np.ndarray | None, label: int = 1,
                           confidence: float = 0.9) -> np.ndarray:
    """Soft prediction ``base`` (C, H, W) edited by a canvas drawing: painted pixels become
    ``confidence`` on ``label`` (the rest spread evenly), erased pixels the same on background."""
    base = np.asarray(base, np.float32)
    if base.ndim != 3:
        raise ValueError(f"drawing needs a (C, H, W) prediction, got shape {base.shape}")
    num_classes = base.shape[0]
    if not 0 <= label < num_classes:
        raise ValueError(f"label {label} does not fit {num_classes} classes")
    paint, erase = stroke_masks(base.shape[1:], rgba)
    out = base.copy()
    for mask, lab in ((paint, label), (erase, 0)):
        if mask.any():
            column = probs_from_labels(np.array([[lab]]), num_classes, confidence)[:, 0, 0]
            out[:, mask] = column[:, None]
    return out


def has_strokes(rgba: np.ndarray | None) -> bool:
    """Whether a canvas image holds any drawn (alpha > 127) pixel."""
    return rgba is not None and np.asarray(rgba).ndim == 3 and bool((np.asarray(rgba)[..., 3] > 127).any())


def mask_image(labels: np.ndarray, other: np.ndarray | None, num_classes: int, size: tuple[int, int]):
    """Canvas background (PIL RGB image of ``size`` = (width, height)): the label map being edited
    in class colours, with the other mask's outline (if given) in white for reference."""
    from PIL import Image

    rgb = label_rgb(labels, num_classes).copy()
    if other is not None:
        o = np.asarray(other) > 0
        edge = o & ~(np.roll(o, 1, 0) & np.roll(o, -1, 0) & np.roll(o, 1, 1) & np.roll(o, -1, 1))
        rgb[edge] = (255, 255, 255)
    return Image.fromarray(rgb).resize(size, Image.NEAREST)


__all__ = [
    "CLASS_COLOURS",
    "OVERLAY_COLOURS",
    "OVERLAY_NAMES",
    "apply_strokes",
    "apply_strokes_to_probs",
    "has_strokes",
    "stroke_masks",
    "case_images",
    "class_palette",
    "confusion_counts",
    "dice_latex",
    "label_rgb",
    "probability_profile",
    "legend_html",
    "loss_rows",
    "loss_values",
    "mask_image",
    "masks_png",
    "normalised_deltas",
    "overlay_codes",
    "overlay_rgb",
    "panel_titles",
    "per_class_values",
    "probability_rgb",
    "probs_from_labels",
    "python_snippet",
    "rows_csv",
    "table_json",
    "upscale_nearest",
]
