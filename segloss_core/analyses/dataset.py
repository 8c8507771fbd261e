r"""A whole validation set: pair label maps with predictions by case id, evaluate each case, summarise.

Pairing (the nnU-Net way): a label map ``LABELS/case_001.nii.gz`` goes with the prediction
``PREDICTIONS/case_001.<ext>`` of any supported extension (:data:`EXTENSIONS`); the case id is the
file name without that extension. Hidden files and other extensions (nnU-Net's ``.pkl``,
``.json``) are ignored, and nothing is ever unpickled. When a case has several predictions, the
first in :data:`PRED_ORDER` wins: an ``.npz`` (probabilities) before a hard ``.nii.gz``.

nnU-Net v2's ``--save_probabilities`` export is an ``.npz`` whose one array ``probabilities`` has
shape ``(C, *spatial)`` in SimpleITK's axis order ``(z, y, x)`` (2-D: ``(C, 1, H, W)``), while
nibabel reads a NIfTI label map as ``(x, y, z)``. Rule: paired with a NIfTI label map, the
probabilities are always transposed to nibabel's order, ``(C, z, y, x) -> (C, x, y, z)`` (cubes
included: a cube's shape cannot tell the orders apart); a 2-D export first drops its singleton
axis. With a PNG/TIFF/NumPy label map (read ``(H, W)``, as nnU-Net's 2-D reader does) only the
singleton axis is dropped. If the shapes still differ the pair is refused with a one-line reason.

Per case (:func:`evaluate_case`): every selected loss on the whole volume (batch of one, the one
engine :func:`segloss_core.compute_all`) and :func:`segloss_core.core.metrics` of the arg-max prediction
with the label map's header spacing, per foreground class (``metric_dice_1``, ...) and as the mean
over the foreground classes where defined (``metric_dice``, ...). An undefined value (a loss that
does not apply, a metric of an empty class) is ``None``: an empty CSV cell. Losses run in float64:
in float32, sums over the 2 million voxels of a 128^3 case depend on the reduction order, i.e. on
the torch thread count, by up to 3e-3 relative (MCC; soft Dice 4e-4), so a process pool and a serial
run would disagree; in float64 they agree to about 1e-15.

Summary (:func:`summarise`): count, mean, median and sample standard deviation (``ddof=1``) of every
column over the cases where it is defined; per loss, the Spearman and Kendall (tau-b) rank
correlations (``scipy.stats``) with ``1 - metric_dice`` and with ``metric_hd95`` over the cases
where both are defined (``n``). A loss that ranks cases as the metric does has correlation 1:
higher loss, worse case (lower Dice, larger HD95).

Runners (:func:`run_pairs`): serially, on a ``concurrent.futures`` process pool (one case per
worker at a time, one torch thread per worker), or on a Dask distributed cluster (an existing
scheduler address, whose workers must see the same paths, or a local cluster of worker
processes). Every runner calls the same :func:`evaluate_case`; only the order of completion
differs, and rows are returned sorted by case id.

Uploads (the app): :func:`read_results_csv` reads the CSV back (size, shape and number checks);
:class:`ZipDataset` pairs the ``labels/`` and ``predictions/`` members of a zip the same way and
reads each member in memory, capped on the bytes actually inflated.
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import json
import math
import os
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

#: Supported file extensions (lower case), longest first so ``.nii.gz`` wins over ``.gz``.
EXTENSIONS = (".nii.gz", ".nii", ".npz", ".npy", ".png", ".tiff", ".tif")
#: Which prediction file wins when a case has several: probabilities first.
PRED_ORDER = (".npz", ".nii.gz", ".nii", ".npy", ".tiff", ".tif", ".png")
#: Which label file wins when a case has several.
LABEL_ORDER = (".nii.gz", ".nii", ".png", ".tiff", ".tif", ".npy", ".npz")
#: Metric columns (mean over foreground classes); per class they get a ``_<label>`` suffix.
METRICS = ("dice", "jaccard", "precision", "recall", "hd", "hd95", "assd")
#: The two metrics every loss is rank-correlated with in the summary, as (summary key, column).
TARGETS = (("1-metric_dice", "metric_dice"), ("metric_hd95", "metric_hd95"))
#: Metrics where larger is worse (the others are compared as ``1 - metric``).
DISTANCES = ("hd", "hd95", "assd")
#: Largest ``dataset.json`` read for the class count.
MAX_JSON_BYTES = 1024 * 1024


# ----------------------------------------------------------------------------------------------
# pairing


@dataclass(frozen=True)
class Pair:
    """One case: its id and the paths of its label map and prediction."""

    case: str
    gt: str
    pred: str


@dataclass
class Pairing:
    """The pairs found in two folders, and the case ids that have no partner (``(case, reason)``)."""

    pairs: list[Pair]
    unpaired: list[tuple[str, str]]


def case_id(filename: str) -> str | None:
    """``"case_001.nii.gz"`` -> ``"case_001"``; ``None`` for hidden files and unsupported extensions."""
    if filename.startswith("."):
        return None
    low = filename.lower()
    for ext in EXTENSIONS:
        if low.endswith(ext) and len(filename) > len(ext):
            return filename[: -len(ext)]
    return None


def _extension(filename: str) -> str:
    low = filename.lower()
    return next(ext for ext in EXTENSIONS if low.endswith(ext))


def _choose(names: Iterable[str], order: Sequence[str]) -> dict[str, str]:
    """case id -> the preferred file name (by extension ``order``) among ``names``."""
    found: dict[str, list[str]] = {}
    for name in names:
        cid = case_id(name)
        if cid is not None:
            found.setdefault(cid, []).append(name)
    return {cid: min(group, key=lambda n: order.index(_extension(n))) for cid, group in found.items()}


def pair_names(label_names: Iterable[str], pred_names: Iterable[str], *, labels_where: str = "the labels",
               preds_where: str = "the predictions") -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """``([(case, label name, prediction name)], [(case, reason)])`` by case id, sorted."""
    labels, preds = _choose(label_names, LABEL_ORDER), _choose(pred_names, PRED_ORDER)
    pairs = [(c, labels[c], preds[c]) for c in sorted(labels) if c in preds]
    unpaired = [(c, f"no prediction in {preds_where}") for c in labels if c not in preds]
    unpaired += [(c, f"no label map in {labels_where}") for c in preds if c not in labels]
    return pairs, sorted(unpaired)


def _files(folder: str) -> list[str]:
    with os.scandir(folder) as entries:
        return [e.name for e in entries if e.is_file()]


def _check_folder(folder, flag: str) -> str:
    path = os.fspath(folder)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path}: no such folder")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{flag} {path}: not a folder")
    return path


def pair_folders(gt_dir, pred_dir) -> Pairing:
    """Pair ``gt_dir``'s label maps with ``pred_dir``'s predictions by case id (sorted by id), as
    absolute paths (a Dask worker may run in another directory). Raises ``OSError`` (one line)
    when a folder is missing or unreadable."""
    gt_dir = os.path.abspath(_check_folder(gt_dir, "--gt-dir"))
    pred_dir = os.path.abspath(_check_folder(pred_dir, "--pred-dir"))
    try:
        label_names, pred_names = _files(gt_dir), _files(pred_dir)
    except OSError as err:
        raise OSError(f"cannot list a folder ({err.strerror or err})") from None
    found, unpaired = pair_names(label_names, pred_names, labels_where=gt_dir, preds_where=pred_dir)
    pairs = [Pair(c, os.path.join(gt_dir, g), os.path.join(pred_dir, p)) for c, g, p in found]
    return Pairing(pairs, unpaired)


def dataset_num_classes(*folders) -> int | None:
    """The class count of an nnU-Net ``dataset.json`` (its ``labels``, background included) found in
    one of ``folders`` (nnU-Net copies it next to its predictions), else ``None``. Region-based
    label definitions (lists) are not class maps: ``None``."""
    for folder in folders:
        path = os.path.join(os.fspath(folder), "dataset.json")
        try:
            if not os.path.isfile(path) or os.path.getsize(path) > MAX_JSON_BYTES:
                continue
            with open(path, "rb") as fh:
                count = _labels_count(fh.read(MAX_JSON_BYTES))
        except OSError:
            continue
        if count is not None:
            return count
    return None


def _labels_count(data: bytes) -> int | None:
    """``len(labels)`` of a ``dataset.json`` whose labels are ``{name: 0..C-1}``, else ``None``."""
    try:
        labels = json.loads(data).get("labels")
    except (ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(labels, dict) or len(labels) < 2:
        return None
    values = list(labels.values())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values) and sorted(values) == list(
            range(len(values))):
        return len(values)
    return None


# ----------------------------------------------------------------------------------------------
# one case


def _nnunet_probabilities(data: bytes) -> bool:
    """Whether ``data`` is an nnU-Net probabilities export: an ``.npz`` whose only array is
    ``probabilities`` (the zip directory is read, no member is decompressed)."""
    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as zf:
            return [n.removesuffix(".npy") for n in zf.namelist()] == ["probabilities"]
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _to_label_order(pred, gt, name: str):
    """nnU-Net's ``(C, z, y, x)`` / ``(C, 1, H, W)`` probabilities -> the label map's axis order."""
    from ..data.files import FileError

    probs = pred.probs
    stored = "x".join(str(s) for s in probs.shape)
    if gt.array.ndim == 2 and probs.ndim == 4 and probs.shape[1] == 1:
        probs = probs[:, 0]
    if gt.format.startswith("NIfTI"):
        probs = probs.transpose(0, *range(probs.ndim - 1, 0, -1))
    if probs.shape[1:] != gt.array.shape:
        raise FileError(
            f"{name}: nnU-Net probabilities {stored} (C, z, y, x) become "
            f"{'x'.join(str(s) for s in probs.shape)} in the label map's order, which is "
            f"{'x'.join(str(s) for s in gt.array.shape)}"
        )
    note = pred.note + "; nnU-Net probabilities (z, y, x) -> label map's axis order"
    return replace(pred, probs=np.ascontiguousarray(probs), note=note)


def _with_classes(case, pred, num_classes: int | None, name: str):
    """Widen a case to the data set's class count (hard predictions), or refuse one that disagrees."""
    from ..core.limits import check_elements
    from ..data.case import Case
    from ..data.files import FileError

    c = case.num_classes
    if num_classes is None or c == num_classes:
        return case
    if c > num_classes:
        raise FileError(f"{name}: {c} classes, but the data set has {num_classes}")
    if pred.labels is None:
        raise FileError(f"{name}: the prediction has {c} class maps, but the data set has {num_classes} classes")
    check_elements(pred.labels.shape, num_classes, what=name)
    probs = np.zeros((num_classes, *pred.labels.shape), dtype=np.float32)
    np.put_along_axis(probs, pred.labels[None], 1.0, axis=0)
    return Case(case.gt, probs, case.spacing, case.name, meta=case.meta)


def read_pair_bytes(gt_data: bytes, gt_name: str, pred_data: bytes, pred_name: str, *, name: str,
                    num_classes: int | None = None):
    """A checked :class:`~segloss_core.Case` from a label map's and a prediction's bytes (the safe
    readers of :mod:`segloss_core.data.files`, with nnU-Net's probability export recognised by its one
    ``probabilities`` array in an ``.npz``)."""
    from ..data import files as sio

    gt = sio.read_label_map(gt_data, gt_name)
    if pred_name.lower().endswith(".npz") and _nnunet_probabilities(pred_data):
        pred = _to_label_order(sio.read_prediction(pred_data, pred_name, gt.num_classes), gt, pred_name)
    else:
        pred = sio.read_prediction(pred_data, pred_name, gt.num_classes, spatial_shape=tuple(gt.array.shape),
                                   colours=gt.colours)
    case = sio.make_case(gt, pred, name)
    return _with_classes(case, pred, num_classes, name)


def read_pair(gt_path, pred_path, *, name: str | None = None, num_classes: int | None = None):
    """:func:`read_pair_bytes` of two files (at most ``io.MAX_UPLOAD_BYTES`` each)."""
    from ..data import files as sio

    gt_path, pred_path = os.fspath(gt_path), os.fspath(pred_path)
    gt_name, pred_name = os.path.basename(gt_path), os.path.basename(pred_path)
    return read_pair_bytes(sio.read_path(gt_path), gt_name, sio.read_path(pred_path), pred_name,
                           name=name or case_id(gt_name) or gt_name, num_classes=num_classes)


def _number(value) -> float | None:
    """A finite float, or ``None`` (a loss's "n/a: ..." string, NaN, inf, a missing metric)."""
    if value is None or isinstance(value, str):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def evaluate_case(gt_path, pred_path, losses: Sequence[str] | None = None,
                  params: dict[str, dict] | None = None, *, num_classes: int | None = None,
                  device: str = "cpu", name: str | None = None) -> dict[str, float | str | None]:
    """One CSV row: ``case``, each loss (whole volume) and the ``metric_*`` columns of one pair.

    Losses: :func:`segloss_core.compute_all` on the case as a batch of one, with the label map's
    spacing; metrics: :func:`segloss_core.core.metrics` of the arg-max prediction, per foreground class
    (``metric_<m>_<label>``) and as their mean over the classes where defined (``metric_<m>``).
    Undefined values are ``None``. Raises ``ValueError`` (one line) for an unusable pair.
    """
    case = read_pair(gt_path, pred_path, name=name, num_classes=num_classes)
    return case_row(case, losses, params, device=device)


def case_row(case, losses: Sequence[str] | None = None, params: dict[str, dict] | None = None, *,
             device: str = "cpu") -> dict[str, float | str | None]:
    """The row of :func:`evaluate_case` for a :class:`~segloss_core.Case` already read."""
    import torch

    import segloss_core as sc

    names = list(losses) if losses else sc.list_losses()
    probs, target = case.tensors(device=device, dtype=torch.float64)
    values = sc.compute_all(probs, target, names, params=params or {}, spacing=case.spacing)
    per_class = sc.metrics(case.hard_prediction, case.gt, spacing=case.spacing, num_classes=case.num_classes)
    row: dict[str, float | str | None] = {"case": case.name}
    row.update({n: _number(values[n]) for n in names})
    for m in METRICS:
        defined = [v[m] for v in per_class.values() if v[m] is not None]
        row[f"metric_{m}"] = _number(float(np.mean(defined))) if defined else None
    for label, vals in per_class.items():
        row.update({f"metric_{m}_{label}": _number(vals[m]) for m in METRICS})
    return row


# ----------------------------------------------------------------------------------------------
# runners


@dataclass(frozen=True)
class Outcome:
    """What one case gave: its row, or the one-line reason it was skipped."""

    case: str
    row: dict | None = None
    error: str | None = None


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def single_thread() -> None:
    """One torch thread in this process (a pool or Dask worker: the workers share the cores)."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def guarded(case: str, make_row: Callable[[], dict]) -> Outcome:
    """``make_row()`` as an :class:`Outcome`; any failure becomes a one-line reason."""
    try:
        return Outcome(case, row=make_row())
    except MemoryError:
        return Outcome(case, error="out of memory")
    except (ValueError, OSError) as err:
        return Outcome(case, error=_one_line(err))
    except Exception as err:  # noqa: BLE001 - one bad case must not stop a data set
        return Outcome(case, error=f"internal error: {type(err).__name__}: {_one_line(err)}")


def evaluate_outcome(pair: Pair, losses=None, params=None, num_classes=None, device: str = "cpu",
                     worker: bool = False) -> Outcome:
    """:func:`evaluate_case` with every failure turned into a one-line reason (the task every
    runner sends; it never raises, so a bad pair never stops a run)."""
    if worker:
        single_thread()
    return guarded(pair.case, lambda: evaluate_case(pair.gt, pair.pred, losses, params, num_classes=num_classes,
                                                    device=device, name=pair.case))


def _serial(pairs, kw) -> Iterator[Outcome]:
    for pair in pairs:
        yield evaluate_outcome(pair, **kw)


def _pool(pairs, kw, jobs: int) -> Iterator[Outcome]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's thread pools
    ex = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=single_thread)
    try:
        futures = {ex.submit(evaluate_outcome, p, worker=True, **kw): p for p in pairs}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except BrokenProcessPool:
                yield Outcome(futures[fut].case, error="a worker process died (out of memory?)")
    finally:  # interrupted (Ctrl-C) or abandoned: drop the queued cases, wait only for the running ones
        ex.shutdown(wait=True, cancel_futures=True)


def _dask(pairs, kw, address: str, jobs: int) -> Iterator[Outcome]:
    import logging

    from distributed import Client, LocalCluster, as_completed

    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = None
    try:
        if address == "local":
            cluster = LocalCluster(n_workers=jobs if jobs > 1 else 2, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            client = Client(address, timeout="20s")
    except OSError as err:
        if cluster is not None:
            cluster.close()
        raise OSError(f"--dask {address}: cannot reach the scheduler ({_one_line(err)})") from None
    try:
        futures = client.map(evaluate_outcome, pairs, pure=False, worker=True, **kw)
        case_of = {fut.key: pair.case for fut, pair in zip(futures, pairs, strict=True)}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as err:  # noqa: BLE001 - a killed worker, a worker without segloss_core...
                yield Outcome(case_of[fut.key], error=f"dask: {type(err).__name__}: {_one_line(err)}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_pairs(pairs: Sequence[Pair], losses=None, params=None, *, num_classes: int | None = None,
              device: str = "cpu", jobs: int = 1, dask: str | None = None) -> Iterator[Outcome]:
    """Evaluate ``pairs``, yielding an :class:`Outcome` per case as it completes.

    ``jobs > 1``: a process pool of ``jobs`` workers; ``dask``: a scheduler address (workers must
    see the same paths) or ``"local"`` (a LocalCluster of ``jobs`` worker processes, at least 2).
    """
    kw = {"losses": list(losses) if losses else None, "params": params or {}, "num_classes": num_classes,
          "device": device}
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if dask:
        return _dask(list(pairs), kw, dask, jobs)
    if jobs > 1 and len(pairs) > 1:
        return _pool(list(pairs), kw, min(jobs, len(pairs)))
    return _serial(list(pairs), kw)


def evaluate_pairs(pairs: Sequence[Pair], losses=None, params=None, *,
                   progress: Callable[[int, int, Outcome], None] | None = None,
                   **kw) -> tuple[list[dict], list[tuple[str, str]]]:
    """All of :func:`run_pairs`, collected: ``(rows sorted by case, [(case, reason) skipped])``."""
    rows, skipped = [], []
    for done, outcome in enumerate(run_pairs(pairs, losses, params, **kw), start=1):
        if outcome.row is not None:
            rows.append(outcome.row)
        else:
            skipped.append((outcome.case, outcome.error or "failed"))
        if progress is not None:
            progress(done, len(pairs), outcome)
    return sorted(rows, key=lambda r: str(r["case"])), sorted(skipped)


# ----------------------------------------------------------------------------------------------
# table and summary


def columns(rows: Iterable[dict]) -> list[str]:
    """``case``, the losses (in order of appearance), the mean metrics, then per class by label."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    means = [f"metric_{m}" for m in METRICS]
    labels = sorted({int(c.rsplit("_", 1)[1]) for c in seen if per_class_column(c)})
    per_class = [f"metric_{m}_{k}" for k in labels for m in METRICS]
    losses = [c for c in seen if c != "case" and not c.startswith("metric_")]
    return ["case", *losses, *means, *per_class]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_csv(rows: Sequence[dict]) -> str:
    """The per-case table as CSV text (undefined values as empty cells, floats round-trip exactly)."""
    cols = columns(rows)
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
    return buf.getvalue()


def loss_columns(cols: Iterable[str]) -> list[str]:
    """The loss columns of a results table: every column but ``case`` and the ``metric_*`` ones."""
    return [c for c in cols if c != "case" and not c.startswith("metric_")]


def _stats(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {
        "n": int(a.size),
        "mean": float(a.mean()) if a.size else None,
        "median": float(np.median(a)) if a.size else None,
        "std": float(a.std(ddof=1)) if a.size > 1 else None,
    }


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> dict:
    """Spearman and Kendall (tau-b) of paired values; ``None`` below 3 pairs or with a constant side."""
    from scipy import stats

    n = len(x)
    out = {"n": n, "spearman": None, "kendall": None}
    if n < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(stats.spearmanr(x, y).statistic)
        tau = float(stats.kendalltau(x, y).statistic)
    out["spearman"] = rho if math.isfinite(rho) else None
    out["kendall"] = tau if math.isfinite(tau) else None
    return out


def worse_is_higher(metric_column: str) -> bool:
    """Distances (``metric_hd95``, ``metric_assd_2``, ...) grow as a case gets worse; overlaps shrink."""
    parts = metric_column.removeprefix("metric_").split("_")
    return parts[0] in DISTANCES


def badness(metric_column: str) -> str:
    """How a metric column is compared with losses: ``"1-metric_dice"`` or ``"metric_hd95"``."""
    return metric_column if worse_is_higher(metric_column) else f"1-{metric_column}"


def paired(rows: Sequence[dict], loss: str, metric_column: str) -> tuple[list[float], list[float], list[str]]:
    """(loss values, metric badness, case ids) over the cases where both are defined; badness is
    the metric for distances, ``1 - metric`` for overlaps (so both grow as the case gets worse)."""
    xs, ys, ids = [], [], []
    flip = not worse_is_higher(metric_column)
    for row in rows:
        va, vb = row.get(loss), row.get(metric_column)
        if va is not None and vb is not None:
            xs.append(float(va))
            ys.append(1.0 - float(vb) if flip else float(vb))
            ids.append(str(row.get("case")))
    return xs, ys, ids


def agreement_with(rows: Sequence[dict], metric_column: str, losses: Sequence[str] | None = None) -> dict:
    """``{loss: {n, spearman, kendall}}``: each loss's rank correlation with the metric's badness."""
    losses = loss_columns(columns(rows)) if losses is None else losses
    return {loss: rank_correlation(*paired(rows, loss, metric_column)[:2]) for loss in losses}


def worst_cases(rows: Sequence[dict], column: str, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` worst cases by ``column`` as ``(case, value)``: a loss's largest values, a metric's
    lowest overlaps or largest distances (ties by case id)."""
    flip = column.startswith("metric_") and not worse_is_higher(column)
    scored = [(float(r[column]), str(r.get("case"))) for r in rows if r.get(column) is not None]
    scored.sort(key=lambda t: (t[0] if flip else -t[0], t[1]))
    return [(case, value) for value, case in scored[:k]]


def summarise(rows: Sequence[dict], skipped: Sequence[tuple[str, str]] = ()) -> dict:
    """``{"cases", "skipped", "columns": {col: {n, mean, median, std}}, "rank_agreement":
    {loss: {"1-metric_dice": {n, spearman, kendall}, "metric_hd95": {...}}}}``."""
    cols = columns(rows)
    table = {c: _stats([float(r[c]) for r in rows if r.get(c) is not None]) for c in cols if c != "case"}
    by_target = {key: agreement_with(rows, col, loss_columns(cols)) for key, col in TARGETS}
    agreement = {loss: {key: by_target[key][loss] for key, _ in TARGETS} for loss in loss_columns(cols)}
    return {
        "cases": len(rows),
        "skipped": [{"case": c, "reason": r} for c, r in skipped],
        "columns": table,
        "rank_agreement": agreement,
    }


def per_class_column(column: str) -> bool:
    """Whether ``column`` is a per-class metric (``metric_dice_1``), not a foreground mean (``metric_dice``)."""
    return column.startswith("metric_") and column.rsplit("_", 1)[1].isdigit()


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4g}"


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    return lines + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def summary_text(summary: dict) -> str:
    """The summary as plain-text tables (the CLI's stdout without ``--json``)."""
    lines = [f"{summary['cases']} cases evaluated, {len(summary['skipped'])} skipped", ""]
    rows = [[c, str(s["n"]), _fmt(s["mean"]), _fmt(s["median"]), _fmt(s["std"])]
            for c, s in summary["columns"].items() if not per_class_column(c)]
    lines += _text_table(["column", "n", "mean", "median", "std"], rows)
    lines += ["", "rank agreement across cases (1 = the loss orders cases as the metric does)"]
    rows = []
    for loss, by in summary["rank_agreement"].items():
        d, h = by["1-metric_dice"], by["metric_hd95"]
        rows.append([loss, _fmt(d["spearman"]), _fmt(d["kendall"]), str(d["n"]),
                     _fmt(h["spearman"]), _fmt(h["kendall"]), str(h["n"])])
    header = ["loss", "spearman 1-dice", "kendall 1-dice", "n", "spearman hd95", "kendall hd95", "n"]
    return "\n".join(lines + _text_table(header, rows))


# ----------------------------------------------------------------------------------------------
# uploads (the app): a results CSV, or a zip holding labels/ and predictions/

#: Largest results CSV read back.
MAX_CSV_BYTES = 20 * 1024 * 1024
#: Most columns / rows in a results CSV.
MAX_CSV_COLUMNS, MAX_CSV_ROWS = 2000, 100_000
#: Largest uploaded zip, and the most it may inflate to in all (each member is also capped at
#: ``io.MAX_UPLOAD_BYTES``, checked on the bytes actually inflated, not on what the zip declares).
MAX_ZIP_BYTES = 500 * 1024 * 1024
MAX_ZIP_INFLATED_BYTES = 4 * 1024 * 1024 * 1024
MAX_ZIP_MEMBERS = 20_000
#: The two upload limits in whole MiB (what the app's uploaders and the messages state).
MAX_CSV_MB, MAX_ZIP_MB = MAX_CSV_BYTES // 2**20, MAX_ZIP_BYTES // 2**20


def read_results_csv(data: bytes) -> list[dict]:
    """Rows of a CSV written by ``segloss evaluate --gt-dir`` (or any CSV with a ``case`` column,
    loss columns and ``metric_*`` columns), numbers as floats, empty cells as ``None``.
    Raises ``ValueError`` (one line) for anything else."""
    if len(data) > MAX_CSV_BYTES:
        raise ValueError(f"CSV is {len(data) / 2**20:.1f} MB; the limit is {MAX_CSV_MB} MB")
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not a UTF-8 text file (expected the CSV written by segloss evaluate)") from None
    if "\0" in text:
        raise ValueError("binary data, not a CSV")
    try:
        table = list(csv.reader(_io.StringIO(text)))
    except csv.Error as err:
        raise ValueError(f"malformed CSV ({_one_line(err)})") from None
    if not table or "case" not in table[0]:
        raise ValueError("the CSV has no 'case' column (expected the CSV written by segloss evaluate --gt-dir)")
    header = [h.strip() for h in table[0]]
    if len(header) > MAX_CSV_COLUMNS or len(table) - 1 > MAX_CSV_ROWS:
        raise ValueError(f"at most {MAX_CSV_COLUMNS} columns and {MAX_CSV_ROWS:,} rows supported")
    if len(set(header)) != len(header) or any(len(h) > 100 or not h for h in header):
        raise ValueError("CSV column names must be unique, non-empty and short")
    if not loss_columns(header) or "metric_dice" not in header:
        raise ValueError("the CSV needs loss columns and metric_* columns (e.g. metric_dice), as segloss evaluate writes")
    rows = [_csv_row(header, cells, i) for i, cells in enumerate(table[1:], start=2) if any(c.strip() for c in cells)]
    if not rows:
        raise ValueError("the CSV has a header but no cases")
    if len({r["case"] for r in rows}) != len(rows):
        raise ValueError("case ids in the CSV are not unique")
    return rows


def _csv_row(header: list[str], cells: list[str], line: int) -> dict:
    if len(cells) != len(header):
        raise ValueError(f"line {line} has {len(cells)} cells, the header {len(header)}")
    row: dict[str, float | str | None] = {}
    for key, cell in zip(header, cells, strict=True):
        cell = cell.strip()
        if key == "case":
            if not cell:
                raise ValueError(f"line {line}: empty case id")
            row[key] = cell[:200]
            continue
        if not cell:
            row[key] = None
            continue
        try:
            value = float(cell)
        except ValueError:
            raise ValueError(f"line {line}, column {key!r}: {cell[:30]!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"line {line}, column {key!r}: {cell[:30]!r} is not finite")
        row[key] = value
    return row


class ZipDataset:
    """An uploaded zip whose top level (or one folder inside it) holds ``labels/`` and
    ``predictions/``: pairs found by case id as in a folder, members read in memory with bounds."""

    def __init__(self, data: bytes):
        if len(data) > MAX_ZIP_BYTES:
            raise ValueError(f"zip is {len(data) / 2**20:.0f} MB; the limit is {MAX_ZIP_MB} MB")
        try:
            self._zip = zipfile.ZipFile(_io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise ValueError(f"not a readable zip archive ({_one_line(err)})") from None
        if len(infos) > MAX_ZIP_MEMBERS:
            raise ValueError(f"the zip has {len(infos):,} members; at most {MAX_ZIP_MEMBERS:,} supported")
        declared = sum(i.file_size for i in infos)
        if declared > MAX_ZIP_INFLATED_BYTES:
            raise ValueError(f"the zip declares {declared / 2**30:.1f} GiB of content; at most "
                             f"{MAX_ZIP_INFLATED_BYTES // 2**30} GiB supported")
        self._inflated = 0
        self.members: dict[tuple[str, str], zipfile.ZipInfo] = {}
        for info in infos:
            parts = info.filename.replace("\\", "/").split("/")
            if info.is_dir() or "__MACOSX" in parts or len(parts) < 2 or parts[-2] not in ("labels", "predictions"):
                continue
            if len(parts) <= 3:  # labels/x or wrapper/labels/x
                self.members[(parts[-2], parts[-1])] = info
        #: the class count of an nnU-Net dataset.json in the zip, if any
        self.num_classes = None
        for folder in ("predictions", "labels"):
            info = self.members.get((folder, "dataset.json"))
            if info is not None and info.file_size <= MAX_JSON_BYTES and self.num_classes is None:
                with contextlib.suppress(ValueError):
                    self.num_classes = _labels_count(self.read(folder, "dataset.json"))
        found, self.unpaired = pair_names([n for f, n in self.members if f == "labels"],
                                          [n for f, n in self.members if f == "predictions"],
                                          labels_where="labels/", preds_where="predictions/")
        if not found and not self.unpaired:
            raise ValueError("the zip holds no labels/ and predictions/ folders with supported files at its top level")
        self.pairs = [Pair(c, g, p) for c, g, p in found]

    def read(self, folder: str, name: str) -> bytes:
        """A member's bytes, at most ``io.MAX_UPLOAD_BYTES`` whatever the zip declares."""
        from ..data.files import MAX_UPLOAD_BYTES

        info = self.members[(folder, name)]
        try:
            with self._zip.open(info) as fh:
                data = fh.read(MAX_UPLOAD_BYTES + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError) as err:
            raise ValueError(f"{folder}/{name}: corrupt or encrypted zip member ({_one_line(err)})") from None
        except Exception as err:  # noqa: BLE001 - zlib.error and friends
            raise ValueError(f"{folder}/{name}: corrupt zip member ({_one_line(err)})") from None
        if len(data) > MAX_UPLOAD_BYTES:
            raise ValueError(f"{folder}/{name}: more than {MAX_UPLOAD_BYTES // 2**20} MB once inflated")
        self._inflated += len(data)
        if self._inflated > MAX_ZIP_INFLATED_BYTES:
            raise ValueError(f"the zip inflates beyond {MAX_ZIP_INFLATED_BYTES // 2**30} GiB: refused")
        return data

    def case(self, pair: Pair, num_classes: int | None = None):
        """The :class:`~segloss_core.Case` of one pair."""
        return read_pair_bytes(self.read("labels", pair.gt), pair.gt, self.read("predictions", pair.pred),
                               pair.pred, name=pair.case, num_classes=num_classes or self.num_classes)

    def evaluate(self, losses=None, params=None, *, num_classes: int | None = None,
                 progress: Callable[[int, int, Outcome], None] | None = None):
        """``(rows, skipped)`` as :func:`evaluate_pairs`, serially in this process (classes:
        ``num_classes``, else the zip's ``dataset.json``, else each case's own)."""
        num_classes = num_classes or self.num_classes
        rows, skipped = [], list(self.unpaired)
        for done, pair in enumerate(self.pairs, start=1):
            out = guarded(pair.case, lambda p=pair: case_row(self.case(p, num_classes), losses, params))
            if out.row is not None:
                rows.append(out.row)
            else:
                skipped.append((out.case, out.error or "failed"))
            if progress is not None:
                progress(done, len(self.pairs), out)
        return rows, sorted(skipped)


__all__ = [
    "EXTENSIONS",
    "ZipDataset",
    "agreement_with",
    "badness",
    "case_row",
    "guarded",
    "pair_names",
    "per_class_column",
    "read_pair_bytes",
    "read_results_csv",
    "worse_is_higher",
    "worst_cases",
    "METRICS",
    "Outcome",
    "Pair",
    "Pairing",
    "case_id",
    "columns",
    "dataset_num_classes",
    "evaluate_case",
    "evaluate_outcome",
    "evaluate_pairs",
    "loss_columns",
    "pair_folders",
    "rank_correlation",
    "read_pair",
    "run_pairs",
    "summarise",
    "summary_text",
    "to_csv",
]
