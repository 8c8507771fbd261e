"""Validation-set evaluation: nnU-Net-style pairing, the CSV, the summary, exit codes, parallel runners.

A small nnU-Net-like folder is built in ``tmp_path``: NIfTI label maps read by nibabel as (x, y, z),
nnU-Net ``--save_probabilities`` exports stored as (C, z, y, x) (2-D: (C, 1, H, W)), a case with both
a probability export and a hard ``.nii.gz``, a hard prediction with fewer labels than the data set, a
cube (whose shape cannot tell the axis orders apart), a corrupt file, a prediction stored in the wrong
order, missing partners, a ``.pkl`` and ``.json`` files. Every value is checked against
``compute_all`` / ``metrics`` called directly on arrays built in nibabel's order.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

import segloss_core as sc
from segloss_core import cli
from segloss_core.analyses import dataset as ds

LOSSES = ["dice", "ce", "focal", "generalized_dice", "boundary", "hausdorff_dt", "lovasz_hinge"]
PARAMS = {"dice": {"smooth": 1e-3}}
CLI_LOSSES = ("--losses", ",".join(LOSSES), "--param", "dice.smooth=1e-3")
C = 3  # background + two classes, as in dataset.json
RNG = np.random.default_rng(7)


# ----------------------------------------------------------------------------------------------
# building the folder


def blobs(shape, seed: int) -> np.ndarray:
    """A label map with two ellipsoids (labels 1, 2) placed by ``seed``."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    lab = np.zeros(shape, dtype=np.uint8)
    for label in (1, 2):
        centre = [rng.uniform(0.3, 0.7) * s for s in shape]
        radii = [rng.uniform(0.15, 0.3) * s for s in shape]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) <= 1
        lab[inside] = label
    return lab


def probabilities(lab: np.ndarray, seed: int, classes: int = C) -> np.ndarray:
    """Softmax-like class probabilities (C, *lab.shape) that mostly agree with a shifted ``lab``."""
    rng = np.random.default_rng(seed)
    shifted = np.roll(lab, shift=int(rng.integers(1, 3)), axis=0)
    logits = 3.0 * np.eye(classes)[shifted].transpose(-1, *range(lab.ndim)) + rng.normal(0, 1, (classes, *lab.shape))
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def save_nifti(path: Path, arr: np.ndarray, zooms) -> None:
    img = nib.Nifti1Image(arr, np.diag([*zooms, 1.0][:4]) if len(zooms) == 3 else np.eye(4))
    img.header.set_zooms(tuple(zooms))
    nib.save(img, str(path))


def save_nnunet(path: Path | io.BytesIO, probs_xyz: np.ndarray) -> None:
    """nnU-Net v2's export: ``probabilities`` in SimpleITK order (z, y, x); 2-D as (C, 1, H, W)."""
    spatial = probs_xyz.ndim - 1
    zyx = probs_xyz.transpose(0, *range(spatial, 0, -1))
    if spatial == 2:
        zyx = zyx[:, None]
    np.savez_compressed(path, probabilities=zyx)


def nnunet_members(root: Path, n: int, shape, seed: int, zooms, name: str = "case_{i}") -> dict[str, bytes]:
    """``n`` 3-D cases as zip members: ``labels/<name>.nii.gz`` (:func:`blobs`, voxel size ``zooms``)
    and ``predictions/<name>.npz`` (nnU-Net's export of :func:`probabilities`), seeds ``seed + i``;
    ``root`` is a scratch folder."""
    members = {}
    for i in range(n):
        gt = blobs(shape, seed + i)
        save_nifti(root / "lab.nii.gz", gt, zooms)
        members[f"labels/{name.format(i=i)}.nii.gz"] = (root / "lab.nii.gz").read_bytes()
        npz = io.BytesIO()
        save_nnunet(npz, probabilities(gt, seed + i))
        members[f"predictions/{name.format(i=i)}.npz"] = npz.getvalue()
    return members


def expected_row(gt: np.ndarray, probs: np.ndarray, spacing) -> dict:
    """The row computed directly: the engine and the metrics on arrays in nibabel's order."""
    case = sc.Case(gt.astype(np.int64), probs, spacing)
    p, t = case.tensors(dtype=torch.float64)  # float64: the same numbers whatever the thread count
    values = sc.compute_all(p, t, LOSSES, params=PARAMS, spacing=case.spacing)
    per_class = sc.metrics(case.hard_prediction, case.gt, spacing=case.spacing, num_classes=case.num_classes)
    row = {n: (v if isinstance(v, float) else None) for n, v in values.items()}
    for m in ds.METRICS:
        vals = [d[m] for d in per_class.values() if d[m] is not None]
        row[f"metric_{m}"] = float(np.mean(vals)) if vals else None
        for k, d in per_class.items():
            row[f"metric_{m}_{k}"] = d[m]
    return row


GOOD = ("case_a", "case_b", "case_e", "case_g", "case_h", "case_k")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, Path, dict]:
    return build_folder(tmp_path_factory.mktemp("nnunet"))


def build_folder(root: Path) -> tuple[Path, Path, dict]:
    """labels/, predictions/ under ``root`` and the expected row of every good case."""
    labels, preds = root / "labels", root / "predictions"
    labels.mkdir()
    preds.mkdir()
    expected = {}

    # 3-D, non-cube, anisotropic: probabilities exported in (z, y, x)
    gt = blobs((14, 11, 9), 1)
    pa = probabilities(gt, 1)
    save_nifti(labels / "case_a.nii.gz", gt, (1.5, 1.0, 2.0))
    save_nnunet(preds / "case_a.npz", pa)
    (preds / "case_a.pkl").write_bytes(b"\x80\x04\x95 this is never unpickled")
    expected["case_a"] = expected_row(gt, pa, (1.5, 1.0, 2.0))

    # both an export and a hard .nii.gz: the probabilities win
    gt = blobs((12, 10, 8), 2)
    pb = probabilities(gt, 2)
    save_nifti(labels / "case_b.nii.gz", gt, (1.0, 1.0, 1.0))
    save_nnunet(preds / "case_b.npz", pb)
    save_nifti(preds / "case_b.nii.gz", np.zeros_like(gt), (1.0, 1.0, 1.0))
    expected["case_b"] = expected_row(gt, pb, (1.0, 1.0, 1.0))

    # corrupt prediction (a truncated gzip)
    gt = blobs((10, 10, 10), 3)
    save_nifti(labels / "case_c.nii.gz", gt, (1.0, 1.0, 1.0))
    save_nifti(preds / "case_c.nii.gz", gt, (1.0, 1.0, 1.0))
    data = (preds / "case_c.nii.gz").read_bytes()
    (preds / "case_c.nii.gz").write_bytes(data[: len(data) // 2])

    # label map without a prediction, prediction without a label map
    save_nifti(labels / "case_d.nii.gz", blobs((8, 8, 8), 4), (1.0, 1.0, 1.0))
    save_nifti(preds / "case_f.nii.gz", blobs((8, 8, 8), 5), (1.0, 1.0, 1.0))

    # 2-D, PNG label map (H, W) as nnU-Net's 2-D reader: (C, 1, H, W) -> (C, H, W)
    gt = blobs((24, 32), 6)
    pe = probabilities(gt, 6)
    (labels / "case_e.png").write_bytes(_png(gt))
    np.savez_compressed(preds / "case_e.npz", probabilities=pe[:, None])
    expected["case_e"] = expected_row(gt, pe, (1.0, 1.0))

    # 2-D NIfTI label map (x, y): the export (C, 1, y, x) is transposed
    gt = blobs((9, 7), 7)
    pg = probabilities(gt, 7)
    save_nifti(labels / "case_g.nii.gz", gt, (0.5, 2.0))
    save_nnunet(preds / "case_g.npz", pg)
    expected["case_g"] = expected_row(gt, pg, (0.5, 2.0))

    # a cube: transposed all the same
    gt = blobs((10, 10, 10), 8)
    ph = probabilities(gt, 8)
    save_nifti(labels / "case_h.nii.gz", gt, (1.0, 1.0, 1.0))
    save_nnunet(preds / "case_h.npz", ph)
    expected["case_h"] = expected_row(gt, ph, (1.0, 1.0, 1.0))

    # hard prediction holding labels 0/1 only: widened to the data set's 3 classes
    gt = blobs((12, 9, 7), 9)
    hard = (np.roll(gt, 1, axis=1) == 1).astype(np.uint8)
    save_nifti(labels / "case_k.nii.gz", gt, (1.0, 1.0, 1.0))
    save_nifti(preds / "case_k.nii.gz", hard, (1.0, 1.0, 1.0))
    expected["case_k"] = expected_row(gt, np.eye(C, dtype=np.float32)[hard].transpose(3, 0, 1, 2), (1.0,) * 3)

    # an export saved in the wrong order (not a cube): refused
    gt = blobs((12, 9, 7), 10)
    save_nifti(labels / "case_m.nii.gz", gt, (1.0, 1.0, 1.0))
    np.savez_compressed(preds / "case_m.npz", probabilities=probabilities(gt, 10))

    (preds / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1, "b": 2}}))
    (preds / "plans.json").write_text("{}")
    return labels, preds, expected


def _png(lab: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(lab).save(buf, format="PNG")
    return buf.getvalue()


def good_copy(folder, tmp_path, cases=GOOD) -> tuple[Path, Path]:
    """A folder with only the good cases (and dataset.json)."""
    labels, preds, _ = folder
    lab2, pred2 = tmp_path / "labels", tmp_path / "predictions"
    lab2.mkdir()
    pred2.mkdir()
    for f in labels.iterdir():
        if ds.case_id(f.name) in cases:
            shutil.copy(f, lab2 / f.name)
    for f in preds.iterdir():
        if ds.case_id(f.name) in cases or f.name == "dataset.json":
            shutil.copy(f, pred2 / f.name)
    return lab2, pred2


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: (float(v) if v not in ("",) and k != "case" else (v or None)) for k, v in r.items()}
                for r in csv.DictReader(fh)]


def call(capfd, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out, err = capfd.readouterr()
    return rc, out, err


def assert_rows_equal(rows, other, rel=1e-6):
    assert [r["case"] for r in rows] == [r["case"] for r in other]
    for r, o in zip(rows, other, strict=True):
        assert set(k for k, v in r.items() if v is not None) == set(k for k, v in o.items() if v is not None), r["case"]
        for k, v in r.items():
            if v is not None and k != "case":
                assert o[k] == pytest.approx(v, rel=rel, abs=1e-9), (r["case"], k)


# ----------------------------------------------------------------------------------------------
# pairing and one case


def test_case_id_and_pairing(folder):
    labels, preds, _ = folder
    assert ds.case_id("case_001.nii.gz") == "case_001"
    assert ds.case_id("case_001.NII.GZ") == "case_001"
    assert ds.case_id("case_001.pkl") is None and ds.case_id(".case_001.nii.gz") is None
    pairing = ds.pair_folders(labels, preds)
    assert [p.case for p in pairing.pairs] == ["case_a", "case_b", "case_c", "case_e", "case_g", "case_h",
                                               "case_k", "case_m"]
    pb = next(p for p in pairing.pairs if p.case == "case_b")
    assert pb.pred.endswith("case_b.npz")  # probabilities win over the hard .nii.gz
    assert [c for c, _ in pairing.unpaired] == ["case_d", "case_f"]
    assert ds.dataset_num_classes(preds) == C
    with pytest.raises(OSError, match="no such folder"):
        ds.pair_folders(labels / "nope", preds)


@pytest.mark.parametrize("name", GOOD)
def test_evaluate_case_matches_direct_computation(folder, name):
    labels, preds, expected = folder
    pair = next(p for p in ds.pair_folders(labels, preds).pairs if p.case == name)
    row = ds.evaluate_case(pair.gt, pair.pred, LOSSES, PARAMS, num_classes=C)
    want = {"case": name, **expected[name]}
    assert row.keys() == want.keys()
    assert_rows_equal([row], [want], rel=1e-9)
    assert row["lovasz_hinge"] is None  # binary only: undefined on 3 classes
    assert row["metric_dice"] is not None and 0 < row["metric_dice"] < 1


def test_transpose_matters_for_the_cube(folder):
    """Read without the (z, y, x) -> (x, y, z) rule, the cube would give other numbers."""
    labels, preds, expected = folder
    gt = nib.load(str(labels / "case_h.nii.gz")).get_fdata().astype(np.int64)
    stored = np.load(preds / "case_h.npz")["probabilities"]
    wrong = expected_row(gt, stored, (1.0, 1.0, 1.0))
    assert not math.isclose(wrong["ce"], expected["case_h"]["ce"], rel_tol=1e-3)


def test_bad_pairs_give_one_line(folder):
    labels, preds, _ = folder
    out = ds.evaluate_outcome(ds.Pair("case_m", str(labels / "case_m.nii.gz"), str(preds / "case_m.npz")),
                              LOSSES, PARAMS, C)
    assert out.row is None and "nnU-Net probabilities 3x12x9x7" in out.error and "\n" not in out.error
    out = ds.evaluate_outcome(ds.Pair("case_c", str(labels / "case_c.nii.gz"), str(preds / "case_c.nii.gz")),
                              LOSSES, PARAMS, C)
    assert out.row is None and "gzip" in out.error and "\n" not in out.error


# ----------------------------------------------------------------------------------------------
# the CLI: CSV, summary, exit codes


def test_cli_folder_csv_summary_and_exit_1(folder, tmp_path, capfd):
    labels, preds, expected = folder
    out_csv = tmp_path / "results.csv"
    rc, out, err = call(capfd, "evaluate", "--gt-dir", labels, "--pred-dir", preds, "--out", out_csv,
                        *CLI_LOSSES, "--json")
    assert rc == 1, err
    skipped = {line.split(":")[0] for line in err.splitlines() if line.startswith("skipped")}
    assert skipped == {"skipped case_c", "skipped case_d", "skipped case_f", "skipped case_m"}
    assert "[8/8]" in err and "Traceback" not in err
    rows = read_csv(out_csv)
    header = next(csv.reader(out_csv.open()))
    assert header[: 1 + len(LOSSES)] == ["case", *LOSSES]
    assert header[1 + len(LOSSES): 8 + len(LOSSES)] == [f"metric_{m}" for m in ds.METRICS]
    assert {"metric_dice_1", "metric_hd95_2"} <= set(header)
    assert_rows_equal(rows, [{"case": c, **expected[c]} for c in GOOD])
    assert all(r["lovasz_hinge"] is None for r in rows)  # empty cells

    summary = json.loads(out)
    assert summary["cases"] == len(GOOD) and summary["num_classes"] == C
    assert {s["case"] for s in summary["skipped"]} == {"case_c", "case_d", "case_f", "case_m"}
    dice = [r["dice"] for r in rows]
    col = summary["columns"]["dice"]
    assert col["n"] == len(GOOD)
    assert col["mean"] == pytest.approx(np.mean(dice)) and col["median"] == pytest.approx(np.median(dice))
    assert col["std"] == pytest.approx(np.std(dice, ddof=1))
    assert summary["columns"]["lovasz_hinge"] == {"n": 0, "mean": None, "median": None, "std": None}
    for loss in ("ce", "boundary"):
        pairs = [(r[loss], 1 - r["metric_dice"]) for r in rows]
        agree = summary["rank_agreement"][loss]["1-metric_dice"]
        assert agree["n"] == len(pairs)
        assert agree["spearman"] == pytest.approx(stats.spearmanr(*zip(*pairs, strict=True)).statistic)
        assert agree["kendall"] == pytest.approx(stats.kendalltau(*zip(*pairs, strict=True)).statistic)
        pairs = [(r[loss], r["metric_hd95"]) for r in rows if r["metric_hd95"] is not None]
        agree = summary["rank_agreement"][loss]["metric_hd95"]
        assert agree["n"] == len(pairs)
        assert agree["spearman"] == pytest.approx(stats.spearmanr(*zip(*pairs, strict=True)).statistic)
    assert summary["rank_agreement"]["lovasz_hinge"]["metric_hd95"] == {"n": 0, "spearman": None, "kendall": None}


def test_cli_exit_0_text_summary(folder, tmp_path, capfd):
    lab, pred = good_copy(folder, tmp_path, ("case_a", "case_b", "case_h"))
    rc, out, err = call(capfd, "evaluate", "--gt-dir", lab, "--pred-dir", pred, "--out", tmp_path / "r.csv",
                        "--losses", "dice,ce")
    assert rc == 0, err
    assert "3 cases evaluated, 0 skipped" in out and "spearman 1-dice" in out
    assert "skipped" not in err and "[3/3] case_" in err


@pytest.mark.parametrize("args, expect", [
    (("--gt-dir", "{lab}", "--pred-dir", "{pred}"), "needs --gt-dir, --pred-dir and --out"),
    (("--gt-dir", "{lab}", "--pred", "{pred}", "--out", "{out}"), "not both"),
    (("--gt-dir", "{lab}/missing", "--pred-dir", "{pred}", "--out", "{out}"), "no such folder"),
    (("--gt-dir", "{lab}", "--pred-dir", "{empty}", "--out", "{out}"), "no pairs"),
    (("--gt-dir", "{lab}", "--pred-dir", "{pred}", "--out", "{out}", "--jobs", "0"), "at least 1"),
    (("--gt", "{lab}/x.png", "--pred", "{pred}/x.png", "--jobs", "2"), "apply to --gt-dir"),
])
def test_cli_usage_errors_exit_2(folder, tmp_path, capfd, args, expect):
    labels, preds, _ = folder
    (tmp_path / "empty").mkdir()
    fill = {"lab": labels, "pred": preds, "out": tmp_path / "r.csv", "empty": tmp_path / "empty"}
    rc, out, err = call(capfd, "evaluate", *[a.format(**fill) for a in args])
    assert rc == 2 and out == "" and len(err.splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "r.csv").exists()


def test_cli_every_pair_skipped_exit_2(folder, tmp_path, capfd):
    lab, pred = good_copy(folder, tmp_path, ("case_c", "case_m"))
    rc, out, err = call(capfd, "evaluate", "--gt-dir", lab, "--pred-dir", pred, "--out", tmp_path / "r.csv",
                        "--losses", "dice")
    assert rc == 2 and out == ""
    assert err.splitlines()[-1].startswith("error: every pair was skipped")
    assert sum(line.startswith("skipped ") for line in err.splitlines()) == 2
    assert not (tmp_path / "r.csv").exists()


# ----------------------------------------------------------------------------------------------
# the same numbers whichever way it runs


def _run(pairs, **kw):
    return ds.evaluate_pairs(pairs, LOSSES, PARAMS, num_classes=C, **kw)


def _boom(*args, **kwargs):
    raise RuntimeError("boom")


def test_process_pool_and_dask_give_the_same_numbers(folder, tmp_path, capfd, monkeypatch):
    """Serial, a process pool of 2, Dask in-process (by address) and a Dask LocalCluster of worker
    processes (through the CLI) agree to 1e-6 relative, skipping the same pairs."""
    from distributed import LocalCluster

    labels, preds, _ = folder
    pairs = ds.pair_folders(labels, preds).pairs
    serial, skipped = _run(pairs)
    pool, pool_skipped = _run(pairs, jobs=2)
    assert_rows_equal(serial, pool)
    assert pool_skipped == skipped and [c for c, _ in skipped] == ["case_c", "case_m"]

    threads = torch.get_num_threads()
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            inproc, dask_skipped = _run(pairs, dask=cluster.scheduler_address)
            with monkeypatch.context() as m:  # a task that fails on the worker: one skipped case each
                m.setattr(ds, "evaluate_outcome", _boom)
                failed, failures = _run(pairs[:2], dask=cluster.scheduler_address)
    finally:
        torch.set_num_threads(threads)  # the in-process worker ran in this process
    assert_rows_equal(serial, inproc)
    assert dask_skipped == skipped
    assert failed == [] and failures == [(p.case, "dask: RuntimeError: boom") for p in pairs[:2]]

    out_csv = tmp_path / "dask.csv"
    rc, _, err = call(capfd, "evaluate", "--gt-dir", labels, "--pred-dir", preds, "--out", out_csv,
                      *CLI_LOSSES, "--dask", "local", "--jobs", "2", "--json")
    assert rc == 1, err
    assert_rows_equal(serial, read_csv(out_csv))


# ----------------------------------------------------------------------------------------------
# uploads: the CSV read back, zip guards


def test_csv_round_trip_and_refusals(folder):
    labels, preds, _ = folder
    rows, _ = _run(ds.pair_folders(labels, preds).pairs)
    back = ds.read_results_csv(ds.to_csv(rows).encode())
    assert back == rows  # floats round-trip exactly, empty cells come back as None
    for data, expect in [(b"case,dice\nx,1\n", "metric_"), (b"case,dice,metric_dice\nx,1\nx,2,3\n", "2 cells"),
                         (b"case,dice,metric_dice\nx,nan,1\n", "not finite"), (b"\xff\xfe", "UTF-8")]:
        with pytest.raises(ValueError, match=expect):
            ds.read_results_csv(data)


def _zip(members: dict[str, bytes]) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_pairs_like_a_folder_and_guards_inflation(folder, monkeypatch):
    labels, preds, expected = folder
    members = {f"labels/{f.name}": f.read_bytes() for f in labels.iterdir()}
    members |= {f"predictions/{f.name}": f.read_bytes() for f in preds.iterdir()}
    zset = ds.ZipDataset(_zip(members))
    assert [p.case for p in zset.pairs] == [p.case for p in ds.pair_folders(labels, preds).pairs]
    assert zset.num_classes == C and [c for c, _ in zset.unpaired] == ["case_d", "case_f"]
    rows, skipped = zset.evaluate(LOSSES, PARAMS)
    assert_rows_equal(rows, [{"case": c, **expected[c]} for c in GOOD], rel=1e-9)
    assert [c for c, _ in skipped] == ["case_c", "case_d", "case_f", "case_m"]
    # a member inflating past the per-file cap is refused on the bytes inflated, whatever the zip says
    import segloss_core.data.files as sio

    monkeypatch.setattr(sio, "MAX_UPLOAD_BYTES", 2000)
    out = ds.guarded("case_a", lambda: zset.case(zset.pairs[0]))
    assert out.row is None and "once inflated" in out.error
    monkeypatch.setattr(ds, "MAX_ZIP_INFLATED_BYTES", 1000)
    with pytest.raises(ValueError, match="declares"):
        ds.ZipDataset(_zip(members))
    with pytest.raises(ValueError, match="no labels/ and predictions/"):
        ds.ZipDataset(_zip({"other/x.nii.gz": b"1"}))


def test_upload_limits_in_mb_are_the_byte_limits(monkeypatch):
    """The MB the uploaders and the messages state are the byte limits in whole MiB."""
    assert (ds.MAX_CSV_MB, ds.MAX_ZIP_MB) == (20, 500)
    assert ds.MAX_CSV_MB * 2**20 == ds.MAX_CSV_BYTES and ds.MAX_ZIP_MB * 2**20 == ds.MAX_ZIP_BYTES
    with pytest.raises(ValueError, match=r"the limit is 20 MB"):
        ds.read_results_csv(b"x" * (20 * 2**20 + 1))
    monkeypatch.setattr(ds, "MAX_ZIP_BYTES", 10)
    monkeypatch.setattr(ds, "MAX_ZIP_MB", 0)
    with pytest.raises(ValueError, match=r"the limit is 0 MB"):
        ds.ZipDataset(b"x" * 11)
