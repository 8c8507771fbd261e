"""``python -m segloss_core``: listings, evaluation against the API, and the one-line error contract.

Three runs go through a real subprocess (``.venv``'s python -m segloss_core); the rest call
``segloss_core.cli.main`` in-process with the file descriptors captured (the same code path, at a
fraction of the start-up cost). Every hostile input of ``test_io.HOSTILE`` is run through the CLI.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import segloss_core as sc
from segloss_core import cli
from segloss_core.data import files as sio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_io import HOSTILE, Hostile, disk, nifti_bytes, npy_bytes, png_bytes, soft  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():
    PYTHON = Path(sys.executable)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYTHON), "-m", "segloss_core", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def call(capfd, *args: str) -> tuple[int, str, str]:
    rc = cli.main(list(args))
    out, err = capfd.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, out: str, err: str, expect: str | None = None, code: int = 2) -> str:
    assert rc == code, (rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    assert out == "", out
    if expect is not None:
        message = re.sub(r"^error: (gt|pred)\.bin: ", "", lines[0]).removeprefix("error: ")
        assert re.search(expect, message), lines[0]
    return lines[0]


@pytest.fixture
def binary_pair(tmp_path):
    mask = disk((48, 48), 12)
    pred = soft(disk((48, 48), 10))
    gt_path, pred_path = tmp_path / "gt.png", tmp_path / "pred.npy"
    gt_path.write_bytes(png_bytes(mask * 255))
    pred_path.write_bytes(npy_bytes(pred))
    return gt_path, pred_path, mask.astype(np.int64), pred


@pytest.fixture
def multiclass_pair(tmp_path):
    lab = np.zeros((6, 24, 24), np.int16)
    lab[1:5, 3:10, 3:10], lab[2:5, 12:20, 12:20] = 1, 2
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3, *lab.shape)) + 4 * np.eye(3)[lab].transpose(3, 0, 1, 2)
    probs = torch.softmax(torch.from_numpy(logits), 0).numpy().astype(np.float32)
    gt_path, pred_path = tmp_path / "gt.nii.gz", tmp_path / "pred.npy"
    gt_path.write_bytes(gzip.compress(nifti_bytes(lab, zooms=(2.5, 0.8, 0.8))))
    pred_path.write_bytes(npy_bytes(probs))
    return gt_path, pred_path, lab.astype(np.int64), probs


def _reference(gt: np.ndarray, probs: np.ndarray, spacing, names=None, params=None):
    """The same evaluation through the public API, without the CLI or the file readers."""
    p = torch.from_numpy(probs)[None]
    target = sc.one_hot(torch.from_numpy(gt)[None], p.shape[1])
    losses = sc.compute_all(p, target, names, params=params, spacing=spacing)
    hard = probs.argmax(0)
    if p.shape[1] == 2:
        metrics = sc.metrics(hard == 1, gt == 1, spacing=spacing)
    else:
        metrics = sc.metrics(hard, gt, spacing=spacing, num_classes=p.shape[1])
    return losses, metrics


def _close(a, b):
    if isinstance(b, str) or b is None:
        return a == b
    if isinstance(a, str):
        return False
    return np.isclose(a, b, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# subprocess runs


def test_losses_lists_the_registry():
    res = run_cli("losses")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    rows = {line.split()[0]: line.split()[1] for line in res.stdout.splitlines()[2:] if line.strip()}
    names = sc.list_losses()
    assert list(rows) == names
    assert all(rows[n] == sc.get_loss(n).category for n in names)
    for n in names:
        for pname in sc.get_loss(n).params:
            assert f"{pname}=" in res.stdout


def test_usage_names_the_command_the_user_typed():
    assert run_cli("--help").stdout.startswith("usage: python -m segloss_core ")
    script = PYTHON.parent / "segloss"  # the console script `pip install` makes
    if script.exists():
        res = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and res.stdout.startswith("usage: segloss "), res.stdout[:80]


def test_evaluate_json_matches_api(binary_pair):
    gt_path, pred_path, mask, pred = binary_pair
    res = run_cli("evaluate", "--gt", str(gt_path), "--pred", str(pred_path), "--json", "--device", "cpu")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    out = json.loads(res.stdout)
    probs = np.stack([1 - pred, pred]).astype(np.float32)
    losses, metrics = _reference(mask, probs, (1.0, 1.0))
    assert set(out["losses"]) == set(sc.list_losses())
    for name, value in losses.items():
        assert _close(out["losses"][name], value), (name, out["losses"][name], value)
    assert out["metrics"].keys() == metrics.keys()
    for name, value in metrics.items():
        assert _close(out["metrics"][name], value), (name, out["metrics"][name], value)
    assert out["eps"] == sc.EPS and out["case"]["shape"] == [48, 48]
    assert "0/255 mask" in out["case"]["gt"]


def test_evaluate_text_multiclass_3d(capfd, multiclass_pair):
    gt_path, pred_path, lab, probs = multiclass_pair
    rc, text, err = call(capfd, "evaluate", "--gt", str(gt_path), "--pred", str(pred_path), "--device", "cpu")
    assert rc == 0 and err == "", err
    assert "EPS = 1e-07" in text and "spacing 2.5 x 0.8 x 0.8" in text and "3 classes" in text
    losses, metrics = _reference(lab, probs, (2.5, 0.8, 0.8))
    for name, value in losses.items():
        row = next(line for line in text.splitlines() if line.split()[:1] == [name])
        shown = row.split(None, 2)[2]
        if isinstance(value, str):
            assert shown.startswith("n/a"), row
        else:
            assert float(shown.split()[0]) == pytest.approx(value, rel=1e-5), row
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("metric "))
    header, dice_row = lines[at], next(line for line in lines[at:] if line.startswith("dice "))
    assert header.split()[1:] == ["class", "1", "class", "2", "mean"]
    assert [float(v) for v in dice_row.split()[1:3]] == pytest.approx([metrics[1]["dice"], metrics[2]["dice"]])


def test_hostile_subprocess_one_line(tmp_path):
    """The real entry point keeps the contract too: a .nii.gz gzip bomb as ground truth."""
    case = next(h for h in HOSTILE if h.id == "nii-gz-bomb")
    gt_path, pred_path = _write(tmp_path, case)
    res = run_cli("evaluate", "--gt", str(gt_path), "--pred", str(pred_path))
    assert_one_line_error(res.returncode, res.stdout, res.stderr, case.expect)


def test_usage_error_one_line(capfd):
    rc, out, err = call(capfd, "evaluate", "--gt", "x.png")
    assert_one_line_error(rc, out, err, r"required: --pred")


def test_landscape_json_matches_api(capfd):
    rc, text, err = call(capfd, "landscape", "--preset", "disk", "--size", "128", "--x", "shift_x:-4:4",
                         "--y", "dilate", "--n", "3", "--losses", "dice,ce", "--json", "--device", "cpu")
    assert rc == 0 and err == "", err
    out = json.loads(text)
    from segloss_core.analyses.landscape import landscape
    from segloss_core.data.presets import make_case

    ref = landscape(make_case("disk", size=128), x=("shift_x", -4, 4), y="dilate", n=3, losses=["dice", "ce"],
                    device="cpu")
    assert out["x_values"] == ref.x_values.tolist() and out["y_values"] == ref.y_values.tolist()
    for name in ("dice", "ce"):
        np.testing.assert_allclose(out["losses"][name], ref.losses[name], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# in-process runs (cli.main with captured file descriptors)


def _write(tmp_path: Path, case: Hostile) -> tuple[Path, Path]:
    gt_path, pred_path = tmp_path / "gt.bin", tmp_path / "pred.bin"
    gt_path.write_bytes(case.gt())
    pred_path.write_bytes(case.pred())
    return gt_path, pred_path


@pytest.mark.parametrize("case", HOSTILE, ids=[h.id for h in HOSTILE])
def test_every_hostile_input_one_line_exit_2(tmp_path, capfd, case: Hostile):
    gt_path, pred_path = _write(tmp_path, case)
    rc, out, err = call(capfd, "evaluate", "--gt", str(gt_path), "--pred", str(pred_path), "--device", "cpu")
    assert_one_line_error(rc, out, err, case.expect)


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["evaluate", "--gt", "{tmp}/missing.png", "--pred", "{pred}"], r"missing\.png: no such file"),
        (["evaluate", "--gt", "{tmp}", "--pred", "{pred}"], r"is a directory"),
        (["evaluate", "--gt", "{big}", "--pred", "{pred}"], r"the limit is 50\.0 MB"),
        (["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--losses", "dice,nope"], r"unknown loss 'nope'"),
        (["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--losses", ","], r"--losses is empty"),
        (["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--losses", "dice", "--param", "dice.nope=1"],
         r"loss 'dice' has no parameter 'nope'"),
        (["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--losses", "dice", "--param", "dice.smooth=abc"],
         r"'dice.smooth' must be a number"),
        (["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--losses", "dice", "--param", "dice.squared=maybe"],
         r"must be true or false"),
        (["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--losses", "dice", "--param", "smooth=1"],
         r"--param must look like loss\.name=value"),
        (["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--losses", "dice", "--param", "ce.x=1"],
         r"loss 'ce' has no parameter|not among the selected"),
        (["evaluate", "--gt", "{gt}", "--pred", "{pred}", "--losses", "tversky", "--param", "tversky.alpha=-5"],
         r"outside"),
        (["nonsense"], r"invalid choice"),
        ([], r"required"),
        (["landscape", "--x", "shift_x:-100:10", "--n", "3"], r"ranges over"),
        (["landscape", "--x", "warp", "--n", "3"], r"unknown axis 'warp'"),
        (["landscape", "--x", "shift_x:1", "--n", "3"], r"--x must be NAME or NAME:LOW:HIGH"),
        (["landscape", "--preset", "nope", "--n", "3"], r"unknown preset 'nope'"),
        (["landscape", "--n", "1"], r"\bn\b.*2"),
    ],
)
def test_bad_arguments_one_line_exit_2(tmp_path, capfd, binary_pair, args, expect):
    gt_path, pred_path, _, _ = binary_pair
    big = tmp_path / "big.nii"
    with open(big, "wb") as fh:
        fh.truncate(sio.MAX_UPLOAD_BYTES + 1)  # sparse
    subs = {"{tmp}": str(tmp_path), "{gt}": str(gt_path), "{pred}": str(pred_path), "{big}": str(big)}
    argv = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    rc, out, err = call(capfd, *argv)
    assert_one_line_error(rc, out, err, expect)


def test_internal_error_is_one_line_exit_1(capfd, binary_pair, monkeypatch):
    gt_path, pred_path, _, _ = binary_pair

    def boom(*a, **k):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("segloss_core.core.engine.compute_all", boom)
    rc, out, err = call(capfd, "evaluate", "--gt", str(gt_path), "--pred", str(pred_path))
    line = assert_one_line_error(rc, out, err, code=1)
    assert line == "error: internal error: RuntimeError: boom"


def test_param_changes_the_value(capfd, binary_pair):
    """``--param`` reaches the loss: the CLI value equals the API's with that parameter, and the
    parameter matters (the value differs from the default's)."""
    gt_path, pred_path, mask, pred = binary_pair
    probs = np.stack([1 - pred, pred]).astype(np.float32)
    options = [(n, k, p) for n in sc.list_losses() for k, p in sc.get_loss(n).params.items()
               if p.kind == "float" and p.range is not None and all(np.isfinite(p.range))]
    if not options:
        pytest.skip("no registered loss has a bounded float parameter")
    name, pname, spec = options[0]
    value = float(spec.range[0] + 0.37 * (spec.range[1] - spec.range[0]))
    rc, out, err = call(capfd, "evaluate", "--gt", str(gt_path), "--pred", str(pred_path), "--losses", name,
                        "--param", f"{name}.{pname}={value!r}", "--json", "--device", "cpu")
    assert rc == 0 and err == "", err
    got = json.loads(out)["losses"][name]
    ref, _ = _reference(mask, probs, (1.0, 1.0), [name], {name: {pname: value}})
    default, _ = _reference(mask, probs, (1.0, 1.0), [name])
    assert _close(got, ref[name]), (got, ref[name])
    assert not _close(got, default[name]), (name, pname, got)


def test_losses_json(capfd):
    rc, out, err = call(capfd, "losses", "--json")
    assert rc == 0 and err == ""
    data = json.loads(out)
    assert list(data) == sc.list_losses()
    for name, entry in data.items():
        spec = sc.get_loss(name)
        assert entry["category"] == spec.category
        assert entry["params"] == json.loads(json.dumps(cli._jsonable(spec.defaults)))


def test_help_exits_0(capfd):
    rc, out, err = call(capfd, "--help")
    assert rc == 0 and "evaluate" in out and err == ""


def test_landscape_text(capfd):
    rc, out, err = call(capfd, "landscape", "--size", "128", "--n", "3", "--losses", "dice", "--device", "cpu")
    assert rc == 0 and err == "", err
    assert "x = shift_x" in out and re.search(r"^dice\s+loss", out, re.M) and "1 - dice" in out
