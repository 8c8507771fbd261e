"""Command line: ``python -m segloss_core {losses, evaluate, landscape}``.

- ``losses``: the registered losses with their category and parameters (defaults).
- ``evaluate --gt GT --pred PRED [--losses a,b] [--param loss.name=value ...] [--json]``: every
  loss and the segmentation metrics of one ground truth / prediction pair (files read by
  :mod:`segloss_core.data.files`: PNG, TIFF, NPY, NPZ, NIfTI; identified by content).
- ``evaluate --gt-dir LABELS --pred-dir PREDICTIONS --out results.csv [--jobs N] [--dask ADDRESS|local]``:
  a whole validation set, paired by case id the nnU-Net way (:mod:`segloss_core.analyses.dataset`): one CSV
  row per case, a summary on stdout, progress and one line per skipped pair on stderr. Exit 0 when
  every pair was evaluated, 1 when some were skipped, 2 on bad usage, a missing folder, no pairs or
  every pair skipped.
- ``landscape --preset disk --x shift_x --y dilate --n 41 [--losses ...] [--json]``: a loss
  landscape over two perturbation axes (:func:`segloss_core.analyses.landscape.landscape`).

Any bad input (missing, unreadable or hostile file, unknown loss or parameter, bad value) exits
with status 2 and exactly one line ``error: ...`` on stderr, never a traceback; an unexpected
failure exits with status 1 and one line ``error: internal error: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import warnings
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


class UsageError(ValueError):
    """Bad command-line usage (argparse's errors, raised instead of printed)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # noqa: D401 - argparse hook
        raise UsageError(message)


# ----------------------------------------------------------------------------------------------
# helpers


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _jsonable(value: Any) -> Any:
    """numpy / torch scalars and arrays -> JSON types; NaN -> null, +-inf -> "inf" / "-inf"."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    return str(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a (undefined)"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.6g}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _parse_losses(text: str | None) -> list[str] | None:
    from .core.registry import get_loss

    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--losses is empty; give comma-separated names (see `python -m segloss_core losses`)")
    for name in names:
        get_loss(name)  # unknown names raise a one-line ValueError
    return list(dict.fromkeys(names))


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(spec, key: str, text: str) -> Any:
    """A ``--param`` value (a string) -> the type its ``ParamSpec`` expects."""
    kind = spec.kind
    low = text.strip().lower()
    if kind == "bool":
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"parameter {key!r} must be true or false, got {text!r}")
    if kind == "choice":
        for choice in spec.choices or ():
            if str(choice).lower() == low:
                return choice
        raise ValueError(f"parameter {key!r} must be one of {[str(c) for c in spec.choices or ()]}, got {text!r}")
    if kind == "matrix":  # rows separated by ';': 0,1;1,0 (quote it in a shell); blank or none = default
        return spec.validate(key, text)
    if kind == "floats":
        if low in ("none", "null", ""):
            return None
        return [_number(key, t) for t in text.split(",")]
    if kind == "int":
        value = _number(key, text)
        if value != int(value):
            raise ValueError(f"parameter {key!r} must be an integer, got {text!r}")
        return int(value)
    return _number(key, text)


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"parameter {key!r} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"parameter {key!r} must be finite, got {text!r}")
    return value


def _parse_params(items: list[str] | None, names: list[str]) -> dict[str, dict[str, Any]]:
    """``["dice.smooth=1e-3", ...]`` -> ``{"dice": {"smooth": 0.001}}``, validated by the registry."""
    from .core.registry import get_loss

    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        loss, dot, pname = key.strip().partition(".")
        if not sep or not dot or not loss or not pname:
            raise ValueError(f"--param must look like loss.name=value (e.g. dice.smooth=1e-3), got {item!r}")
        spec = get_loss(loss)
        if loss not in names:
            raise ValueError(f"--param {item!r}: loss {loss!r} is not among the selected --losses")
        if pname not in spec.params:
            known = ", ".join(spec.params) or "none"
            raise ValueError(f"loss {loss!r} has no parameter {pname!r} (known: {known})")
        out.setdefault(loss, {})[pname] = _coerce(spec.params[pname], f"{loss}.{pname}", text)
    for loss, params in out.items():
        get_loss(loss).resolve_params(params)  # ranges and kinds, one-line ValueError
    return out


# ----------------------------------------------------------------------------------------------
# subcommands


def cmd_losses(args) -> int:
    from .core.registry import get_loss, list_losses

    names = list_losses()
    if args.json:
        out = {}
        for name in names:
            spec = get_loss(name)
            out[name] = {
                "title": spec.title,
                "category": spec.category,
                "params": {k: _jsonable(p.default) for k, p in spec.params.items()},
                "binary_only": spec.binary_only,
                "uses_spacing": spec.uses_spacing,
                "reference": spec.reference,
            }
        print(json.dumps(out, indent=2, allow_nan=False))
        return 0
    rows = []
    for name in names:
        spec = get_loss(name)
        params = ", ".join(f"{k}={p.default!r}" for k, p in spec.params.items()) or "-"
        rows.append([name, spec.category, params])
    if not rows:
        print("(no losses registered)")
        return 0
    print(_table(rows, ["loss", "category", "parameters (defaults)"]))
    return 0


def _metrics(case) -> tuple[dict, str | None]:
    import numpy as np

    from .core.metrics import mean_over_classes, segmentation_metrics

    pred = case.hard_prediction
    if case.num_classes == 2:
        return segmentation_metrics(pred == 1, case.gt == 1, spacing=case.spacing), None
    per_class = segmentation_metrics(pred.astype(np.int64, copy=False), case.gt, spacing=case.spacing,
                                     num_classes=case.num_classes)
    out = {str(k): v for k, v in per_class.items()}
    out["mean"] = mean_over_classes(per_class)
    return out, "per class"


def _folder_mode(args) -> bool:
    """Which evaluate mode the flags ask for; a usage error for a mix or a half."""
    folder = args.gt_dir is not None or args.pred_dir is not None
    if folder and (args.gt is not None or args.pred is not None):
        raise UsageError("give either --gt/--pred (one pair) or --gt-dir/--pred-dir (a folder), not both")
    if folder and (args.gt_dir is None or args.pred_dir is None or args.out is None):
        raise UsageError("folder mode needs --gt-dir, --pred-dir and --out")
    missing = [flag for flag, value in (("--gt", args.gt), ("--pred", args.pred)) if value is None]
    if not folder and missing:
        raise UsageError(f"the following arguments are required: {', '.join(missing)} "
                         "(or --gt-dir, --pred-dir and --out for a folder)")
    if not folder and (args.out or args.jobs is not None or args.dask or args.num_classes is not None):
        raise UsageError("--out, --jobs, --dask and --num-classes apply to --gt-dir/--pred-dir only")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    return folder


def _progress(done: int, total: int, outcome) -> None:
    """``[12/50] case_012`` on stderr: one line redrawn on a terminal, one line per case otherwise;
    a skipped case adds one line ``skipped CASE: reason``."""
    tty = sys.stderr.isatty()
    clear = "\r\033[K" if tty else ""
    if outcome.error is not None:
        print(f"{clear}skipped {outcome.case}: {outcome.error}", file=sys.stderr)
    end = "\n" if not tty or done == total else ""
    print(f"{clear}[{done}/{total}] {outcome.case}", end=end, file=sys.stderr, flush=True)


def cmd_evaluate_folder(args) -> int:
    from .analyses import dataset as ds
    from .core.registry import list_losses

    names = _parse_losses(args.losses) or list_losses()
    params = _parse_params(args.param, names)
    if args.num_classes is not None and not 2 <= args.num_classes <= 32:
        raise UsageError(f"--num-classes must lie in 2..32, got {args.num_classes}")
    pairing = ds.pair_folders(args.gt_dir, args.pred_dir)
    if not pairing.pairs:
        hint = " (nnU-Net images end in _0000: give the labels folder)" if any(
            c.endswith("_0000") for c, _ in pairing.unpaired) else ""
        raise ValueError(f"no pairs: no case id has both a label map in {args.gt_dir} and a prediction in "
                         f"{args.pred_dir}{hint}")
    num_classes = args.num_classes or ds.dataset_num_classes(args.pred_dir, args.gt_dir,
                                                             os.path.dirname(os.path.abspath(args.gt_dir)))
    for case, reason in pairing.unpaired:
        print(f"skipped {case}: {reason}", file=sys.stderr)
    rows, skipped = ds.evaluate_pairs(
        pairing.pairs, names, params, progress=_progress, num_classes=num_classes,
        device=args.device, jobs=args.jobs or 1, dask=args.dask)
    skipped = sorted(skipped + pairing.unpaired)
    if not rows:
        raise ValueError(f"every pair was skipped ({len(skipped)}); nothing written to {args.out}")
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            fh.write(ds.to_csv(rows))
    except OSError as err:
        raise OSError(f"--out {args.out}: cannot write ({err.strerror or err})") from None
    summary = {**ds.summarise(rows, skipped), "out": args.out, "num_classes": num_classes}
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2, allow_nan=False))
    else:
        print(ds.summary_text(summary))
        print(f"\nper-case table: {args.out}")
    return 1 if skipped else 0


def _return_freed_memory() -> None:
    """glibc: return every freed block of 1 MiB or more to the system at once (a fixed mmap
    threshold). By default the threshold climbs to 32 MiB after the first large free, so the
    per-channel temporaries of a 3-D volume (29 MB at 200^3) then stay in the heap and the peak RSS
    of ``evaluate`` climbs by about 300 MB of freed fragments. No-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _use_all_cores() -> None:
    """One pair: torch (and the ``edt`` package, which follows torch's count) on every core this
    process may use. The app and the dataset workers keep their own settings (one thread each)."""
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores))


def cmd_evaluate(args) -> int:
    from .core._tensors import EPS
    from .core.engine import compute_all
    from .core.registry import get_loss, list_losses
    from .data import files as sio

    _return_freed_memory()
    if _folder_mode(args):
        return cmd_evaluate_folder(args)
    _use_all_cores()
    names = _parse_losses(args.losses) or list_losses()
    params = _parse_params(args.param, names)
    case = sio.read_case(sio.read_path(args.gt), sio.read_path(args.pred), gt_name=args.gt, pred_name=args.pred)
    probs, target = case.tensors(device=args.device)
    values = compute_all(probs, target, names, params=params, spacing=case.spacing)
    metrics, layout = _metrics(case)
    info = {
        "gt": case.meta["gt_note"],
        "pred": case.meta["pred_note"],
        "shape": list(case.gt.shape),
        "num_classes": case.num_classes,
        "spacing": list(case.spacing),
        "device": str(probs.device),
    }
    if "warning" in case.meta:
        info["warning"] = case.meta["warning"]
    if args.json:
        out = {"losses": _jsonable(values), "metrics": _jsonable(metrics), "eps": EPS, "case": _jsonable(info)}
        print(json.dumps(out, indent=2, allow_nan=False))
        return 0
    dims = "x".join(str(s) for s in case.gt.shape)
    print(f"ground truth  {args.gt}: {info['gt']}")
    print(f"prediction    {args.pred}: {info['pred']}")
    print(f"case          {case.ndim}-D {dims}, {case.num_classes} classes, spacing "
          + " x ".join(f"{s:g}" for s in case.spacing) + f", device {probs.device}")
    if "warning" in case.meta:
        print(f"warning       {case.meta['warning']}")
    print(f"EPS = {EPS:g} (clamps probabilities inside logs and fractional powers)")
    print()
    rows = []
    for name, value in values.items():
        spec = get_loss(name)
        shown = {**spec.defaults, **params.get(name, {})}
        changed = ", ".join(f"{k}={v!r}" for k, v in params.get(name, {}).items() if k in shown)
        rows.append([name, spec.category, _fmt(value), changed])
    print(_table(rows, ["loss", "category", "value", "parameters set"]))
    print()
    if layout is None:
        print(_table([[k, _fmt(v)] for k, v in metrics.items()], ["metric", "value"]))
    else:
        cols = list(metrics)
        keys = list(next(iter(metrics.values())))
        header = ["metric"] + [c if c == "mean" else f"class {c}" for c in cols]
        print(_table([[k] + [_fmt(metrics[c].get(k)) for c in cols] for k in keys], header))
    return 0


def _axis(text: str, flag: str) -> tuple[str, float, float] | str:
    """``"shift_x"`` or ``"shift_x:-10:10"`` -> name or (name, low, high); the landscape checks ranges."""
    parts = text.split(":")
    if len(parts) == 1:
        return parts[0]
    if len(parts) != 3:
        raise ValueError(f"{flag} must be NAME or NAME:LOW:HIGH (e.g. shift_x:-10:10), got {text!r}")
    return parts[0], _number(flag, parts[1]), _number(flag, parts[2])


def cmd_landscape(args) -> int:
    from .analyses.landscape import DEFAULT_LOSSES, landscape
    from .data.presets import make_case

    names = _parse_losses(args.losses)
    params = _parse_params(args.param, names or list(DEFAULT_LOSSES))
    x, y = _axis(args.x, "--x"), _axis(args.y, "--y")
    case = make_case(args.preset, size=args.size)
    result = landscape(case, x=x, y=y, n=args.n, losses=names, params=params or None, device=args.device)
    if args.json:
        out = {"preset": args.preset, "size": args.size, **result.to_dict()}
        print(json.dumps(_jsonable(out), allow_nan=False))
        return 0
    xs, ys = result.x_values, result.y_values
    print(f"landscape of preset {args.preset!r} ({args.size}x{args.size}), {len(ys)}x{len(xs)} grid: "
          f"x = {result.x_name} {xs[0]:g}..{xs[-1]:g}, y = {result.y_name} {ys[0]:g}..{ys[-1]:g}, "
          f"{result.seconds:.2f} s on {result.device}")
    rows = [[r["name"], r["kind"], _fmt(r["value"]), _fmt(r["x"]), _fmt(r["y"]),
             _fmt(r["steps_from_metric"]), str(r["flat"])] for r in result.minima()]
    rows += [[name, "loss", reason, "", "", "", ""] for name, reason in result.unavailable.items()]
    print(_table(rows, ["name", "kind", "minimum", "at x", "at y", "steps from 1 - dice min", "flat points"]))
    return 0


# ----------------------------------------------------------------------------------------------
# entry point


def build_parser() -> argparse.ArgumentParser:
    prog = "segloss" if os.path.basename(sys.argv[0]) == "segloss" else "python -m segloss_core"
    parser = _Parser(prog=prog, description="Segmentation losses: list, evaluate, landscapes.")
    sub = parser.add_subparsers(dest="command", metavar="{losses,evaluate,landscape}")
    sub.required = True

    p = sub.add_parser("losses", help="list the registered losses with their parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_losses)

    p = sub.add_parser(
        "evaluate", help="every loss and metric of a ground truth / prediction pair, or of a folder of them",
        description="One pair (--gt, --pred): every loss and metric. A validation set (--gt-dir, --pred-dir, "
                    "--out): label maps paired with predictions by case id the nnU-Net way (case_001.nii.gz "
                    "with case_001.<any supported extension>; nnU-Net's --save_probabilities .npz wins over "
                    "a hard .nii.gz; .pkl files are ignored, never unpickled), one CSV row per case, a "
                    "summary on stdout. Exit 0: all evaluated; 1: some pairs skipped; 2: bad usage, "
                    "missing folder, no pairs, or every pair skipped.")
    p.add_argument("--gt", help="ground-truth label map (PNG, TIFF, NPY, NPZ, NIfTI)")
    p.add_argument("--pred", help="prediction: probabilities in [0, 1] or a label map")
    p.add_argument("--gt-dir", help="folder of label maps (validation-set mode; needs --pred-dir and --out)")
    p.add_argument("--pred-dir", help="folder of predictions, e.g. an nnU-Net output folder")
    p.add_argument("--out", help="CSV file written in folder mode (one row per case)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="folder mode: N local worker processes, one case each at a time (default 1)")
    p.add_argument("--dask", metavar="ADDRESS|local",
                   help="folder mode: run the cases on the Dask scheduler at ADDRESS (e.g. tcp://host:8786); "
                        "its workers must see the same paths (a shared filesystem). 'local' starts a local "
                        "cluster of --jobs worker processes (at least 2)")
    p.add_argument("--num-classes", type=int, metavar="C",
                   help="folder mode: classes incl. background (default: an nnU-Net dataset.json next to the "
                        "folders, else each case's own)")
    p.add_argument("--losses", help="comma-separated loss names (default: all)")
    p.add_argument("--param", action="append", metavar="LOSS.NAME=VALUE",
                   help="set a loss parameter, e.g. dice.smooth=1e-3 (repeatable)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--json", action="store_true",
                   help='JSON: {"losses": {...}, "metrics": {...}}; folder mode: the summary as one object')
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("landscape", help="loss landscape over two perturbation axes of a preset")
    p.add_argument("--preset", default="disk", help="preset case (see segloss_core.data.presets)")
    p.add_argument("--size", type=int, default=256, help="image side in px (64..512, default 256)")
    p.add_argument("--x", default="shift_x", help="x axis: NAME or NAME:LOW:HIGH (default shift_x)")
    p.add_argument("--y", default="dilate", help="y axis: NAME or NAME:LOW:HIGH (default dilate)")
    p.add_argument("--n", type=int, default=41, help="grid points per axis (default 41)")
    p.add_argument("--losses", help="comma-separated loss names (default: ce, dice, iou, tversky, focal, boundary)")
    p.add_argument("--param", action="append", metavar="LOSS.NAME=VALUE", help="set a loss parameter")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--json", action="store_true", help="JSON output (NaN as null)")
    p.set_defaults(func=cmd_landscape)
    return parser


@contextlib.contextmanager
def _quiet_libraries():
    """A CLI run prints only its result and at most one error line: no library warnings or logs."""
    loggers = [logging.getLogger(n) for n in ("nibabel", "nibabel.global", "tifffile", "PIL", "segloss_core")]
    levels = [lg.level for lg in loggers]
    root, null = logging.getLogger(), logging.NullHandler()
    root.addHandler(null)  # no "last resort" handler printing to stderr
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for lg in loggers:
                lg.setLevel(logging.CRITICAL + 1)
            yield
    finally:
        root.removeHandler(null)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 1 internal error)."""
    with _quiet_libraries():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("error: out of memory (input too large)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as err:  # FileError, UsageError, registry and parameter errors
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # noqa: BLE001 - the one-line contract holds for bugs too
        print(f"error: internal error: {type(err).__name__}: {_one_line(err)}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
