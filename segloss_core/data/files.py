"""Reading ground-truth label maps and predictions from bytes: PNG, TIFF, NPY/NPZ, NIfTI (.nii, .nii.gz).

Everything works on the file's *bytes* in memory, so the app's uploads and the CLI's paths share one
code path, and nothing is ever written to disk. Files are identified by their magic bytes, never by
their extension. Every rejection raises :class:`FileError` (a ``ValueError``) with a one-line message
that says what was wrong and, where it helps, what to do.

Safety (the file is assumed hostile until proven otherwise):

- at most :data:`MAX_UPLOAD_BYTES` of input; shapes are read from headers (PNG IHDR, TIFF series,
  ``.npy`` header, NIfTI header) and checked against :data:`MAX_PIXELS_2D`, :data:`MAX_VOXELS`,
  :data:`MAX_ELEMENTS` (voxels x classes) and :data:`MAX_DECOMPRESSED_BYTES` *before* any pixel data
  is decoded;
- gzip (``.nii.gz``) is inflated in bounded chunks, never more than the header declares (plus one
  byte to detect a liar), and never more than :data:`MAX_DECOMPRESSED_BYTES`; the zip members of an
  ``.npz`` are read with exact byte counts; deflate-compressed TIFF strips are test-inflated with a
  bound before the decoder sees them; other TIFF compressions are refused;
- no pickles: ``.npy`` object arrays, raw pickles and zip archives with ``.pkl`` members are
  refused; NumPy headers are parsed with ``max_header_size``; JPEG (lossy) label maps are refused;
- Pillow only ever sees PNG (``formats=["PNG"]``) after the IHDR size check; its
  ``DecompressionBombError`` becomes a ``FileError`` too.

How files are interpreted (the rule, also shown to users in each result's ``note``):

- **Label maps** must hold non-negative integers (integer dtypes, bool, or floats with integral
  values), at most :data:`MAX_LABELS` distinct labels in ``0..MAX_LABELS-1``. A 0/255 (or 0/65535)
  mask is read as labels 0/1 in any format. Palette PNGs give their palette indices; RGB
  colour-coded PNG/TIFF masks give one label per colour, in sorted RGB order (black first).
- **Predictions** are, in this order of precedence:

  1. *hard* (one-hot): bool, palette or colour images, a 0/1 or 0/255 (0/65535) mask, any integer
     array from NPY/NPZ/NIfTI, an integer PNG/TIFF whose values fit the class count (``max <
     num_classes``, or ``< MAX_LABELS`` when it is not given), or a float array with integral
     values ``0..K`` with ``K >= 2`` (a label map saved as floats);
  2. a *greyscale probability image*: any other 8-bit (16-bit) PNG/TIFF, read as ``value / 255``
     (``/ 65535``), the foreground probability of a binary problem;
  3. *float probabilities* in [0, 1]: one map (the foreground probability, stacked as ``[1 - p, p]``),
     or ``C`` maps along the leading axis, ``(C, H, W)`` / ``(C, D, H, W)``, summing to 1 within
     :data:`PROB_SUM_TOLERANCE` (tiny deviations are renormalised). A 3-D float array is ``C`` maps
     when it matches ``(C, *spatial_shape)`` of the ground truth, or (no shape given) when its
     leading axis is short and sums to 1; otherwise it is a 3-D foreground map. NIfTI keeps its own
     convention: 3-D is spatial, a 4th (or 5th) axis holds the classes.

  NaN/Inf are refused; values outside [0, 1] are refused (logits are not guessed at).

Spacing comes from NIfTI zooms (or an ``.npz`` ``spacing`` member); :func:`make_case` takes the
ground truth's.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..core import limits
from .case import Case

#: Largest input file (an upload or a CLI path), in bytes.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: Largest 3-D volume, in voxels.
MAX_VOXELS = 512 * 512 * 512
#: Largest 2-D image, in pixels (checked before decoding).
MAX_PIXELS_2D = 4096 * 4096
#: Most distinct labels (classes, background included) in a label map; labels lie in 0..MAX_LABELS-1.
MAX_LABELS = 32
#: Largest amount of array data inflated from compressed input (.nii.gz, .npz, compressed TIFF).
MAX_DECOMPRESSED_BYTES = 1024 * 1024 * 1024
#: Largest NIfTI header including extensions.
MAX_NIFTI_HEADER_BYTES = 1024 * 1024
#: Most members in an .npz archive.
MAX_NPZ_MEMBERS = 16
#: C probability maps must sum to 1 within this (absolute); smaller deviations are renormalised.
PROB_SUM_TOLERANCE = 1e-2

_INFLATE_CHUNK = 4 * 1024 * 1024

__all__ = [
    "FileError",
    "LabelMap",
    "Prediction",
    "MAX_UPLOAD_BYTES",
    "MAX_VOXELS",
    "MAX_PIXELS_2D",
    "MAX_LABELS",
    "MAX_DECOMPRESSED_BYTES",
    "PROB_SUM_TOLERANCE",
    "detect_format",
    "read_label_map",
    "read_prediction",
    "make_case",
    "read_case",
    "save_case_npz",
    "load_case_npz",
    "read_path",
]


class FileError(ValueError):
    """A file that cannot be used, with a one-line message for the user."""


@dataclass(frozen=True, eq=False)
class LabelMap:
    """An integer label map ``array`` (int64, ``(H, W)`` or ``(D, H, W)``, 0 = background).

    ``spacing``: voxel size per axis (1.0 where the file has none; ``spacing_known`` says which);
    ``format``: the detected file format; ``note``: how the file was interpreted;
    ``colours``: for RGB colour-coded masks, the RGB colour of each label (pass it to
    :func:`read_prediction` so a colour-coded prediction uses the same mapping).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    format: str
    note: str
    colours: tuple[tuple[int, int, int], ...] | None = None
    spacing_known: bool = False

    @property
    def num_classes(self) -> int:
        """``max(label) + 1``, at least 2."""
        return max(2, int(self.array.max()) + 1) if self.array.size else 2


@dataclass(frozen=True, eq=False)
class Prediction:
    """Class probabilities ``probs`` (float32, ``(C, *spatial)``, summing to 1 over C).

    ``labels`` is the hard label map when the file was a hard prediction (``probs`` is then its
    one-hot encoding), else ``None``. ``spacing``, ``format``, ``note`` as in :class:`LabelMap`.
    """

    probs: np.ndarray
    spacing: tuple[float, ...]
    format: str
    note: str
    labels: np.ndarray | None = None
    spacing_known: bool = False

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[0])


# ----------------------------------------------------------------------------------------------
# small helpers


def _dims(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    msg = text[0] if text else type(err).__name__
    return msg[:200]


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _fmt_num(x) -> str:
    return f"{float(x):.4g}"


def _check_size(data) -> None:
    if len(data) == 0:
        raise FileError("empty file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise FileError(f"file is {_mb(len(data))}; the limit is {_mb(MAX_UPLOAD_BYTES)}")


def _check_spatial(shape: tuple[int, ...]) -> None:
    """Spatial size caps (2-D pixels, 3-D voxels), with Python ints (no overflow)."""
    n = math.prod(int(s) for s in shape)
    if n == 0:
        raise FileError(f"the image is empty ({_dims(shape)})")
    if len(shape) <= 2 and n > MAX_PIXELS_2D:
        side = math.isqrt(MAX_PIXELS_2D)
        raise FileError(
            f"image is {_dims(shape)} pixels ({n:,}); at most {MAX_PIXELS_2D:,} ({side}x{side}) supported"
        )
    if n > MAX_VOXELS:
        raise FileError(f"volume is {_dims(shape)} voxels ({n:,}); at most {MAX_VOXELS:,} supported")


def _check_declared(shape: tuple[int, ...], itemsize: int, compressed: bool) -> None:
    """Caps on a declared array shape, before reading any of its data."""
    if any(int(s) < 0 for s in shape):
        raise FileError(f"corrupt header: negative dimension in shape {tuple(shape)}")
    n = math.prod(int(s) for s in shape)
    if n == 0:
        raise FileError(f"the array is empty (shape {_dims(shape) or '()'})")
    limits.check_count(n, lambda n, limit: f"header declares {_dims(shape)} = {n:,} values; at most {limit:,} "
                       "(voxels x classes) supported", FileError)
    if compressed and n * itemsize > MAX_DECOMPRESSED_BYTES:
        raise FileError(
            f"header declares {_mb(n * itemsize)} of data; at most {_mb(MAX_DECOMPRESSED_BYTES)} is decompressed"
        )


def _check_elements(num_classes: int, voxels: int) -> None:
    limits.check_count(num_classes * voxels, lambda n, limit: f"{voxels:,} voxels x {num_classes} classes = {n:,} "
                       f"values; at most {limit:,} fit in memory (crop, downsample or use fewer classes)", FileError)


def __getattr__(name: str):
    if name == "MAX_ELEMENTS":  # the live limit (segloss_core.core.limits.MAX_ELEMENTS), not a copy
        return limits.max_elements()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _prefixed(name: str, err: FileError) -> FileError:
    return FileError(f"{name}: {err}") if name else err


# ----------------------------------------------------------------------------------------------
# format detection

_PNG = b"\x89PNG\r\n\x1a\n"
_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY = b"\x93NUMPY"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP = b"\x1f\x8b"


def _nifti_version(head: bytes) -> int:
    """1 or 2 for a single-file NIfTI header, 0 otherwise; -1 for a .hdr/.img pair header."""
    if len(head) >= 348:
        for order in "<>":
            (size,) = struct.unpack(order + "i", head[:4])
            if size == 348:
                magic = head[344:348]
                if magic == b"n+1\x00":
                    return 1
                if magic == b"ni1\x00":
                    return -1
            if size == 540 and len(head) >= 540 and head[4:8] == b"n+2\x00":
                return 2
    return 0


def detect_format(data: bytes) -> str:
    """The format named by the magic bytes: ``"PNG"``, ``"TIFF"``, ``"NPY"``, ``"NPZ"``,
    ``"NIfTI"``, ``"GZIP"``; anything else raises :class:`FileError` saying what it is."""
    head = bytes(data[:544])
    if not head:
        raise FileError("empty file")
    if head.startswith(_PNG):
        return "PNG"
    if head.startswith(_TIFF):
        return "TIFF"
    if head.startswith(_NPY):
        return "NPY"
    if head.startswith(_ZIP):
        return "NPZ"
    if head.startswith(_GZIP):
        return "GZIP"
    version = _nifti_version(head)
    if version > 0:
        return "NIfTI"
    if version < 0:
        raise FileError("NIfTI .hdr/.img pairs are not supported; save a single-file .nii or .nii.gz")
    if len(head) < 348 and len(head) >= 4 and 348 in struct.unpack("<i", head[:4]) + struct.unpack(">i", head[:4]):
        raise FileError(f"truncated NIfTI header ({len(head)} of 348 bytes)")
    if head.startswith(b"\xff\xd8\xff") or head[4:12] in (b"ftypavif", b"ftypheic") or head.startswith(
        b"\x00\x00\x00\x0cjP  "
    ):
        raise FileError("JPEG is lossy: label maps must be PNG, TIFF, NPY or NIfTI")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        raise FileError("pickled data refused (never unpickled); save arrays with numpy.save")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        raise FileError("WebP is not supported (and lossy WebP destroys labels); save as PNG")
    if head.startswith((b"GIF87a", b"GIF89a")):
        raise FileError("GIF is not supported; save as PNG")
    if head.startswith(b"BM"):
        raise FileError("BMP is not supported; save as PNG")
    if head[128:132] == b"DICM":
        raise FileError("DICOM is not supported; convert it to NIfTI (e.g. with dcm2niix)")
    if head.startswith(b"\x89HDF"):
        raise FileError("HDF5 is not supported; save arrays as .npy or .npz")
    if head.startswith(b"NRRD"):
        raise FileError("NRRD is not supported; convert it to NIfTI")
    raise FileError("unrecognised file format (expected PNG, TIFF, NPY, NPZ or NIfTI .nii/.nii.gz)")


# ----------------------------------------------------------------------------------------------
# decoders: bytes -> _Decoded (raw array + what it is); interpretation comes later


@dataclass
class _Decoded:
    array: np.ndarray
    fmt: str
    kind: str  # "image" (integer PNG/TIFF), "palette", "colour" (H, W, 3), "array" (NPY/NPZ/NIfTI/float TIFF)
    spacing: tuple[float, ...] | None = None
    nifti: bool = False
    notes: list[str] = field(default_factory=list)


def _decode(data, role: str) -> _Decoded:
    _check_size(data)
    fmt = detect_format(data)
    if fmt == "PNG":
        return _decode_png(data)
    if fmt == "TIFF":
        return _decode_tiff(data)
    if fmt == "NPY":
        return _decode_npy(data)
    if fmt == "NPZ":
        return _decode_npz(data, role)
    if fmt == "GZIP":
        return _decode_nifti(_Gunzip(data), "NIfTI (gzip)")
    return _decode_nifti(_Plain(data), "NIfTI")


def _decode_png(data: bytes) -> _Decoded:
    from PIL import Image

    if len(data) < 33 or data[12:16] != b"IHDR":
        raise FileError("corrupt PNG: no IHDR header")
    width, height = struct.unpack(">II", data[16:24])
    depth, colour_type = data[24], data[25]
    _check_spatial((height, width))  # before Pillow decodes anything
    if depth == 16 and colour_type in (2, 6):
        raise FileError("16-bit colour PNG is not supported; save colour masks as 8-bit RGB, labels as greyscale")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            w, h = img.size
            _check_spatial((h, w))
            img.load()
            mode = img.mode
            arr = np.array(img)
    except Image.DecompressionBombError:
        raise FileError(f"PNG declares {width}x{height} pixels: decompression bomb refused") from None
    except Image.UnidentifiedImageError:
        raise FileError("corrupt PNG (Pillow cannot identify it)") from None
    except FileError:
        raise
    except MemoryError:
        raise FileError("PNG too large to decode in memory") from None
    except Exception as err:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, zlib.error...
        raise FileError(f"corrupt or truncated PNG ({_short(err)})") from None
    if mode == "P":
        return _Decoded(arr, "PNG", "palette")
    if mode == "PA":
        return _Decoded(arr[..., 0], "PNG", "palette")
    if mode in ("RGB", "RGBA"):
        return _Decoded(_rgb(arr), "PNG", "colour")
    if mode == "LA":
        arr = arr[..., 0]
    if mode in ("1", "L", "LA") or mode.startswith("I"):
        if arr.dtype.kind not in "biu":
            arr = arr.astype(np.int64)
        return _Decoded(arr, "PNG", "image")
    raise FileError(f"unsupported PNG colour mode {mode!r}")


def _rgb(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) -> (H, W, 3) uint8; fully transparent pixels become black (background)."""
    if arr.shape[-1] == 4:
        rgb = arr[..., :3].copy()
        rgb[arr[..., 3] == 0] = 0
        return rgb
    return arr[..., :3]


_TIFF_DEFLATE = (8, 32946)


def _decode_tiff(data: bytes) -> _Decoded:
    import tifffile

    try:
        tif = tifffile.TiffFile(io.BytesIO(data), is_ome=False)
    except Exception as err:  # noqa: BLE001 - tifffile raises TiffFileError, ValueError, struct.error...
        raise FileError(f"corrupt or truncated TIFF ({_short(err)})") from None
    with tif:
        try:
            series = tif.series
            if not series:
                raise FileError("corrupt TIFF: no readable image in it")
            s = series[0]
            shape, dtype, axes = tuple(int(x) for x in s.shape), np.dtype(s.dtype), s.axes
            pages = [p for p in s.pages if p is not None]
        except FileError:
            raise
        except Exception as err:  # noqa: BLE001
            raise FileError(f"corrupt TIFF ({_short(err)})") from None
        if dtype.kind not in "biuf":
            raise FileError(f"TIFF sample type {dtype} is not supported (integers or floats only)")
        s_axis = axes.find("S")
        colour = s_axis >= 0 and shape[s_axis] in (3, 4)
        if colour and dtype != np.uint8:
            raise FileError("only 8-bit RGB TIFF colour masks are supported")
        compressed = any(int(p.keyframe.compression) != 1 for p in pages)
        _check_declared(shape, dtype.itemsize, compressed)
        if not compressed and dtype != np.bool_ and math.prod(shape) * dtype.itemsize > len(data):
            raise FileError(f"truncated TIFF: {_dims(shape)} {dtype} does not fit in a {len(data):,}-byte file")
        spatial = tuple(d for i, d in enumerate(shape) if d != 1 and not (colour and i == s_axis)) or (1,)
        _check_spatial(spatial[-3:])
        if len(spatial) > 4:
            raise FileError(f"TIFF series of shape {_dims(shape)} (axes {axes}) has too many dimensions")
        for page in pages:
            _check_tiff_segments(data, page)
        try:
            arr = s.asarray(maxworkers=1)
        except Exception as err:  # noqa: BLE001
            raise FileError(f"corrupt or truncated TIFF ({_short(err)})") from None
    if colour:
        arr = np.moveaxis(arr, s_axis, -1) if arr.ndim == len(shape) else arr
        while arr.ndim > 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 3:
            raise FileError("only 2-D RGB TIFF colour masks are supported")
        return _Decoded(_rgb(arr), "TIFF", "colour")
    arr = _squeeze_leading(arr)
    return _Decoded(arr, "TIFF", "image" if arr.dtype.kind in "biu" else "array")


def _check_tiff_segments(data: bytes, page) -> None:
    """Every strip/tile lies inside the file; deflate segments inflate to at most one chunk each."""
    kf = page.keyframe
    offsets, counts = page.dataoffsets, page.databytecounts
    if not offsets:
        raise FileError("TIFF page has no image data")
    for off, cnt in zip(offsets, counts, strict=False):
        if off + cnt > len(data) or cnt == 0:
            raise FileError("truncated TIFF: image data lies beyond the end of the file")
    compression = int(kf.compression)
    if compression == 1:
        return
    if compression not in _TIFF_DEFLATE:
        try:
            import tifffile

            label = tifffile.COMPRESSION(compression).name
        except ValueError:
            label = str(compression)
        raise FileError(f"TIFF compression {label} is not supported; save uncompressed or with deflate (zlib)")
    limit = math.prod(int(c) for c in kf.chunks) * np.dtype(kf.dtype).itemsize
    view = memoryview(data)
    for off, cnt in zip(offsets, counts, strict=False):
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(view[off : off + cnt], limit + 1)
        except zlib.error as err:
            raise FileError(f"corrupt TIFF compressed data ({_short(err)})") from None
        if len(out) > limit:
            raise FileError("TIFF strip inflates beyond its declared size: decompression bomb refused")


def _squeeze_leading(arr: np.ndarray) -> np.ndarray:
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    return arr


# NumPy ---------------------------------------------------------------------------------------


def _npy_header(fp, text_ok: bool = False) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        major, _minor = fmt.read_magic(fp)
        if major == 1:
            shape, fortran, dtype = fmt.read_array_header_1_0(fp, max_header_size=10000)
        elif major == 2:
            shape, fortran, dtype = fmt.read_array_header_2_0(fp, max_header_size=10000)
        else:
            raise FileError(f".npy format version {major} is not supported")
    except FileError:
        raise
    except Exception as err:  # noqa: BLE001 - numpy raises ValueError, SyntaxError, EOFError...
        raise FileError(f"corrupt .npy header ({_short(err)})") from None
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise FileError("pickled data refused (object arrays are never unpickled)")
    if dtype.kind not in "biuf" and not (text_ok and dtype.kind == "U"):
        raise FileError(f"array type {dtype} is not supported (integers or floats only)")
    return tuple(int(s) for s in shape), bool(fortran), dtype


def _array_from(buf, shape, fortran, dtype, offset=0) -> np.ndarray:
    n = math.prod(shape)
    arr = np.frombuffer(buf, dtype=dtype, count=n, offset=offset)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def _decode_npy(data: bytes) -> _Decoded:
    fp = io.BytesIO(data)
    shape, fortran, dtype = _npy_header(fp)
    if not shape:
        raise FileError("the .npy file holds a scalar, not an image")
    _check_declared(shape, dtype.itemsize, compressed=False)
    offset = fp.tell()
    need = math.prod(shape) * dtype.itemsize
    if len(data) - offset < need:
        raise FileError(f"truncated .npy: header declares {need:,} bytes of data, file has {len(data) - offset:,}")
    arr = _array_from(data, shape, fortran, dtype, offset)
    return _Decoded(_squeeze_leading(arr), "NPY", "array")


def _npz_members(data: bytes) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception as err:  # noqa: BLE001 - BadZipFile, OSError, ValueError...
        raise FileError(f"corrupt .npz/zip archive ({_short(err)})") from None
    if len(infos) > MAX_NPZ_MEMBERS:
        raise FileError(f"the .npz archive has {len(infos)} members; at most {MAX_NPZ_MEMBERS} supported")
    members = {}
    for info in infos:
        if info.filename.endswith((".pkl", ".pickle")) or info.filename.endswith("/data.pkl"):
            raise FileError("pickled data refused (the archive holds pickles, e.g. a torch checkpoint)")
        if not info.filename.endswith(".npy") or info.is_dir():
            raise FileError(f"zip archive is not a NumPy .npz (member {info.filename[:60]!r})")
        members[info.filename[:-4]] = info
    if not members:
        raise FileError("the .npz archive is empty")
    return zf, members


def _npz_read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, text_ok: bool = False) -> np.ndarray:
    """One member, reading exactly the bytes its header declares (bounded whatever the zip says)."""
    key = info.filename[:-4]
    try:
        with zf.open(info) as fp:
            shape, fortran, dtype = _npy_header(fp, text_ok=text_ok)
            if shape:
                _check_declared(shape, dtype.itemsize, compressed=True)
            need = math.prod(shape) * dtype.itemsize
            if dtype.kind == "U" and need > 1024 * 1024:
                raise FileError("text member too large")
            buf = fp.read(need)
    except FileError as err:
        raise FileError(f"member {key!r}: {err}") from None
    except Exception as err:  # noqa: BLE001 - zlib.error, BadZipFile, EOFError, RuntimeError (encrypted)...
        raise FileError(f"corrupt .npz member {key!r} ({_short(err)})") from None
    if len(buf) < need:
        raise FileError(f"truncated .npz member {key!r}")
    return _array_from(buf, shape, fortran, dtype)


_GT_KEYS = ("gt", "label", "labels", "seg", "mask")
_PRED_KEYS = ("probs", "pred", "prediction", "probabilities", "softmax")


def _decode_npz(data: bytes, role: str) -> _Decoded:
    zf, members = _npz_members(data)
    with zf:
        data_keys = [k for k in members if k not in ("spacing", "name", "class_names")]
        wanted = _GT_KEYS if role == "label map" else _PRED_KEYS
        chosen = next((k for k in wanted if k in members), None)
        if chosen is None:
            if len(data_keys) != 1:
                raise FileError(
                    f".npz holds {sorted(members)}; expected a single array or one named {' / '.join(wanted)}"
                )
            chosen = data_keys[0]
        arr = _npz_read(zf, members[chosen])
        spacing = None
        if "spacing" in members:
            sp = _npz_read(zf, members["spacing"])
            if sp.ndim != 1 or sp.size > 4 or sp.dtype.kind not in "iuf":
                raise FileError("the .npz 'spacing' member must be a short 1-D array of numbers")
            spacing = tuple(float(v) for v in sp)
    if arr.ndim == 0:
        raise FileError(f".npz member {chosen!r} holds a scalar, not an image")
    note = f"member {chosen!r}" if len(members) > 1 else ""
    return _Decoded(_squeeze_leading(arr), "NPZ", "array", spacing=spacing, notes=[note] if note else [])


# NIfTI ---------------------------------------------------------------------------------------


class _Plain:
    """Uncompressed bytes, read through the same interface as :class:`_Gunzip`."""

    def __init__(self, data: bytes):
        self.buf = data

    def ensure(self, n: int, what: str) -> None:
        if len(self.buf) < n:
            raise FileError(f"truncated {what}: {n:,} bytes expected, the file has {len(self.buf):,}")

    def finish(self, n: int) -> None:
        pass


class _Gunzip:
    """Inflate a gzip stream in bounded chunks, only as far as asked; never past ``MAX_DECOMPRESSED_BYTES``.

    ``buf`` is allocated once at the size asked for (zlib's chunks are copied into place), so a
    volume is never held twice while its buffer grows; ``size`` bytes of it are inflated."""

    def __init__(self, data: bytes):
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = memoryview(data)
        self.buf = bytearray()
        self.size = 0

    def ensure(self, n: int, what: str) -> None:
        if n > MAX_DECOMPRESSED_BYTES:
            raise FileError(f"{what} would inflate to {_mb(n)}; at most {_mb(MAX_DECOMPRESSED_BYTES)} supported")
        if n > len(self.buf):
            grown = bytearray(n)
            grown[: self.size] = memoryview(self.buf)[: self.size]
            self.buf = grown
        while self.size < n:
            if self._inflater.eof:
                raise FileError(f"truncated {what}: the gzip data ends after {self.size:,} of {n:,} bytes")
            before = len(self._pending)
            try:
                out = self._inflater.decompress(self._pending, min(n - self.size, _INFLATE_CHUNK))
            except zlib.error as err:
                raise FileError(f"corrupt gzip data ({_short(err)})") from None
            self._pending = memoryview(self._inflater.unconsumed_tail)
            self.buf[self.size : self.size + len(out)] = out
            self.size += len(out)
            if not out and not self._inflater.eof and len(self._pending) in (0, before):
                raise FileError(f"truncated or corrupt gzip data: it ends after {self.size:,} of {n:,} bytes")

    def finish(self, n: int) -> None:
        """Nothing may follow the declared data: one more byte out means the stream lies (a bomb)."""
        while not self._inflater.eof:
            try:
                out = self._inflater.decompress(self._pending, 1)
            except zlib.error as err:
                raise FileError(f"corrupt gzip data ({_short(err)})") from None
            self._pending = memoryview(self._inflater.unconsumed_tail)
            if out:
                raise FileError(
                    f"gzip data inflates beyond the {n:,} bytes its NIfTI header declares: refused (gzip bomb?)"
                )
            if not self._pending:
                raise FileError("truncated gzip data (no end-of-stream marker)")


def _decode_nifti(src, fmt: str) -> _Decoded:
    import nibabel as nib

    src.ensure(348, "NIfTI header")
    head = bytes(src.buf[:548])
    version = _nifti_version(head) if len(head) >= 348 else 0
    if version == 0 and isinstance(src, _Gunzip):
        src.ensure(540, "NIfTI header")
        head = bytes(src.buf[:548])
        version = _nifti_version(head)
    if version == 0:
        if isinstance(src, _Gunzip):
            raise FileError("the gzip file does not contain a NIfTI image (only .nii.gz is supported)")
        raise FileError("corrupt NIfTI header")
    if version < 0:
        raise FileError("NIfTI .hdr/.img pairs are not supported; save a single-file .nii or .nii.gz")
    order = "<" if struct.unpack("<i", head[:4])[0] in (348, 540) else ">"
    if version == 1:
        vox_offset = struct.unpack(order + "f", head[108:112])[0]
        header_class, min_offset = nib.Nifti1Header, 352
    else:
        src.ensure(540, "NIfTI-2 header")
        vox_offset = struct.unpack(order + "q", bytes(src.buf[168:176]))[0]
        header_class, min_offset = nib.Nifti2Header, 544
    if not math.isfinite(vox_offset) or vox_offset > MAX_NIFTI_HEADER_BYTES:
        raise FileError(f"corrupt NIfTI header: data offset {vox_offset} is not plausible")
    vox_offset = max(int(vox_offset), min_offset)
    src.ensure(vox_offset, "NIfTI header")
    try:
        hdr = header_class.from_fileobj(io.BytesIO(bytes(src.buf[:vox_offset])), check=False)
        shape = tuple(int(s) for s in hdr.get_data_shape())
        dtype = np.dtype(hdr.get_data_dtype())
        zooms = tuple(float(f"{float(z):.7g}") for z in hdr.get_zooms())  # float32 -> shortest decimal
        slope, inter = hdr.get_slope_inter()
    except FileError:
        raise
    except Exception as err:  # noqa: BLE001 - nibabel raises HeaderDataError, WrapStructError, ValueError...
        raise FileError(f"corrupt NIfTI header ({_short(err)})") from None
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise FileError(f"NIfTI data type {dtype} is not supported (integers or floats only)")
    if not shape:
        raise FileError("NIfTI header declares no dimensions")
    _check_declared(shape, dtype.itemsize, compressed=isinstance(src, _Gunzip))
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 5 and shape[3] == 1:  # (X, Y, Z, 1, C): NIfTI's vector layout
        shape = shape[:3] + shape[4:]
    if len(shape) > 4:
        raise FileError(f"NIfTI image of shape {_dims(shape)} has too many dimensions (2-D or 3-D only)")
    _check_spatial(shape[:3])
    nbytes = math.prod(shape) * dtype.itemsize
    src.ensure(vox_offset + nbytes, "NIfTI image data")
    src.finish(vox_offset + nbytes)
    arr = np.frombuffer(src.buf, dtype=dtype, count=math.prod(shape), offset=vox_offset)
    arr = arr.reshape(shape, order="F")
    notes = []
    if (slope is not None and slope != 1) or (inter is not None and inter != 0):
        arr = arr * float(1 if slope is None else slope) + float(0 if inter is None else inter)
        notes.append(f"scaled by {_fmt_num(slope or 1)}, offset {_fmt_num(inter or 0)}")
    spacing = tuple(z if math.isfinite(z) and z > 0 else 1.0 for z in zooms[: min(len(shape), 3)])
    return _Decoded(arr, fmt, "array", spacing=spacing, nifti=True, notes=notes)


# ----------------------------------------------------------------------------------------------
# interpretation


def _label_stats(a: np.ndarray) -> tuple[int, int, int]:
    """(min, max, number of distinct values) of a non-empty integer array."""
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi < 1 << 20:
        distinct = int(np.count_nonzero(np.bincount(a.ravel(), minlength=1)))
    else:
        distinct = int(np.unique(a).size)
    return lo, hi, distinct


def _as_integers(a: np.ndarray, what: str) -> np.ndarray:
    """bool / int / integral float -> int64, or FileError."""
    if a.dtype == np.bool_:
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise FileError(f"{what} contains NaN or Inf")
        frac = a != np.round(a)
        if frac.any():
            example = float(a[frac].flat[0])
            raise FileError(
                f"{what} holds fractional values (e.g. {example:.3g}): labels must be integers "
                "(is this a probability map?)"
            )
        lo, hi = float(a.min()), float(a.max())
        if lo < 0:
            raise FileError(f"labels must be non-negative integers; found {lo:g}")
        if hi >= 2**31:
            raise FileError(f"label {hi:g} is too large: labels must lie in 0..{MAX_LABELS - 1}")
    return np.ascontiguousarray(a, dtype=np.int64)  # C order (NIfTI data is Fortran-ordered)


def _binary_max(values_hi: int, distinct: int, lo: int) -> int | None:
    """255 or 65535 when the array is a 0/255 or 0/65535 mask, else None."""
    if lo >= 0 and values_hi in (255, 65535) and distinct <= 2 and (distinct == 1 or lo == 0):
        return values_hi
    return None


def _check_labels(lo: int, hi: int, distinct: int) -> None:
    if lo < 0:
        raise FileError(f"labels must be non-negative integers; found {lo}")
    if distinct > MAX_LABELS:
        raise FileError(f"{distinct} distinct labels; at most {MAX_LABELS} supported")
    if hi >= MAX_LABELS:
        raise FileError(
            f"label {hi} is too large: labels must lie in 0..{MAX_LABELS - 1}; relabel them consecutively"
        )


def _colour_labels(rgb: np.ndarray, colours=None) -> tuple[np.ndarray, tuple[tuple[int, int, int], ...]]:
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    uniq, inverse = np.unique(packed, return_inverse=True)
    found = tuple((int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in uniq)
    if colours is None:
        if len(uniq) > 255:
            raise FileError(f"RGB image has {len(uniq):,} distinct colours: a photo, not a colour-coded mask")
        if len(uniq) > MAX_LABELS:
            raise FileError(f"{len(uniq)} distinct colours (labels); at most {MAX_LABELS} supported")
        return inverse.reshape(packed.shape).astype(np.int64), found
    index = {tuple(c): i for i, c in enumerate(colours)}
    missing = [c for c in found if c not in index]
    if missing:
        raise FileError(f"colour {missing[0]} of the prediction does not occur in the ground truth's colour mask")
    lut = np.array([index[c] for c in found], dtype=np.int64)
    return lut[inverse.reshape(packed.shape)], tuple(colours)


def _colour_note(colours) -> str:
    shown = ", ".join(f"#{r:02x}{g:02x}{b:02x}={i}" for i, (r, g, b) in enumerate(colours[:6]))
    more = ", ..." if len(colours) > 6 else ""
    return f"colour mask: {len(colours)} colours -> labels 0..{len(colours) - 1} ({shown}{more})"


def _finish_spacing(dec: _Decoded, ndim: int) -> tuple[tuple[float, ...], bool]:
    sp = dec.spacing
    if sp is not None and len(sp) >= ndim:
        sp = tuple(float(s) for s in sp[-ndim:]) if not dec.nifti else tuple(float(s) for s in sp[:ndim])
        if all(math.isfinite(s) and s > 0 for s in sp):
            return sp, True
    return (1.0,) * ndim, False


def read_label_map(data: bytes, name: str = "") -> LabelMap:
    """A ground-truth label map from a file's bytes (PNG, TIFF, NPY, NPZ, NIfTI .nii/.nii.gz).

    Convention: integer labels, 0 = background, at most :data:`MAX_LABELS` labels in
    ``0..MAX_LABELS-1``; a 0/255 (0/65535) mask becomes 0/1, a palette PNG gives its indices, an
    RGB colour mask one label per colour (sorted RGB order, black first). 2-D or 3-D (trailing
    singleton axes of NIfTI, leading ones of arrays, are dropped). ``name`` prefixes messages.

    Raises:
        FileError: with a one-line reason for anything that is not a usable label map.
    """
    try:
        return _read_label_map(data)
    except FileError as err:
        raise _prefixed(name, err) from None
    except MemoryError:
        raise _prefixed(name, FileError("not enough memory to read this file")) from None


def _read_label_map(data) -> LabelMap:
    dec = _decode(data, "label map")
    arr = dec.array
    colours = None
    notes = list(dec.notes)
    if dec.kind == "colour" and _is_grey(arr):
        lab, dec.kind = np.ascontiguousarray(arr[..., 0]), "image"
    elif dec.kind == "colour":
        lab, colours = _colour_labels(arr)
        notes.insert(0, _colour_note(colours))
    else:
        lab = arr
    if lab.ndim not in (2, 3):
        raise FileError(f"label map must be 2-D or 3-D; got shape {_dims(arr.shape)}")
    _check_spatial(lab.shape)
    if colours is None:
        raw_dtype = lab.dtype
        lab = _as_integers(lab, "label map")
        lo, hi, distinct = _label_stats(lab)
        binmax = _binary_max(hi, distinct, lo)
        if binmax is not None:
            lab = (lab == binmax).astype(np.int64)
            notes.insert(0, f"0/{binmax} mask -> labels 0/1")
        else:
            if dec.kind == "image" and raw_dtype == np.uint8 and (hi >= MAX_LABELS or distinct > MAX_LABELS):
                raise FileError(
                    f"8-bit {dec.fmt} holds {distinct} distinct values ({lo}..{hi}): not a 0/1 or 0/255 mask "
                    f"nor label indices 0..{MAX_LABELS - 1} (a greyscale image or a probability map?)"
                )
            _check_labels(lo, hi, distinct)
            if dec.kind == "palette":
                notes.insert(0, f"palette indices -> labels {lo}..{hi}")
            elif hi <= 1:
                notes.insert(0, "0/1 mask")
            else:
                notes.insert(0, f"labels {lo}..{hi} ({distinct} distinct)")
    spacing, known = _finish_spacing(dec, lab.ndim)
    if known:
        notes.append("spacing " + " x ".join(_fmt_num(s) for s in spacing))
    return LabelMap(
        np.ascontiguousarray(lab), spacing, dec.fmt, f"{dec.fmt} " + "; ".join(notes), colours=colours, spacing_known=known
    )


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def read_prediction(
    data: bytes,
    name: str = "",
    num_classes: int | None = None,
    *,
    spatial_shape: tuple[int, ...] | None = None,
    colours=None,
) -> Prediction:
    """A prediction from a file's bytes: probabilities in [0, 1] or a hard label map (-> one-hot).

    Convention (see the module docstring for the full rule): hard label maps and 0/1 / 0/255
    masks become one-hot; other 8-bit (16-bit) PNG/TIFF greyscale images are foreground
    probabilities ``v / 255`` (``v / 65535``); float arrays are one foreground map (stacked as
    ``[1 - p, p]``) or ``C`` maps along the leading axis summing to 1.

    Args:
        data: the file's bytes.
        name: prefixes error messages (e.g. the file name).
        num_classes: the ground truth's class count, if known: decides whether an integer image
            is a label map (values fit) or a probability image, and sets the one-hot width.
        spatial_shape: the ground truth's shape, if known: tells ``(C, H, W)`` maps from a
            ``(D, H, W)`` volume.
        colours: a :class:`LabelMap`'s ``colours``, so a colour-coded prediction maps the same way.

    Raises:
        FileError: NaN/Inf, values outside [0, 1], maps not summing to 1, and every reason
            :func:`read_label_map` gives.
    """
    try:
        return _read_prediction(data, num_classes, spatial_shape, colours)
    except FileError as err:
        raise _prefixed(name, err) from None
    except MemoryError:
        raise _prefixed(name, FileError("not enough memory to read this file")) from None


def _one_hot(lab: np.ndarray, num_classes: int) -> np.ndarray:
    _check_elements(num_classes, lab.size)
    out = np.zeros((num_classes, *lab.shape), dtype=np.float32)
    np.put_along_axis(out, lab[None], 1.0, axis=0)
    return out


def _hard(lab: np.ndarray, dec: _Decoded, num_classes, notes) -> Prediction:
    lo, hi, distinct = _label_stats(lab)
    _check_labels(lo, hi, distinct)
    if lab.ndim not in (2, 3):
        raise FileError(f"prediction label map must be 2-D or 3-D; got shape {_dims(lab.shape)}")
    _check_spatial(lab.shape)
    c = max(2, hi + 1, num_classes or 0)
    spacing, known = _finish_spacing(dec, lab.ndim)
    note = f"{dec.fmt} " + "; ".join(notes + [f"hard prediction -> one-hot, {c} classes"])
    return Prediction(_one_hot(lab, c), spacing, dec.fmt, note, labels=lab, spacing_known=known)


def _read_prediction(data, num_classes, spatial_shape, colours) -> Prediction:
    if num_classes is not None and not 2 <= int(num_classes) <= MAX_LABELS:
        raise FileError(f"num_classes must lie in 2..{MAX_LABELS}, got {num_classes}")
    dec = _decode(data, "prediction")
    arr = dec.array
    notes = list(dec.notes)
    if dec.kind == "colour":
        if _is_grey(arr):
            arr, dec.kind = np.ascontiguousarray(arr[..., 0]), "image"
        else:
            lab, cols = _colour_labels(arr, colours)
            return _hard(lab, dec, num_classes, [_colour_note(cols)] + notes)
    if dec.kind == "palette":
        return _hard(arr.astype(np.int64), dec, num_classes, ["palette indices as labels"] + notes)

    nifti_classes = dec.nifti and arr.ndim == 4
    if nifti_classes:  # NIfTI (X, Y, Z, C): classes on the last axis
        arr = np.moveaxis(arr, -1, 0)
        while arr.ndim > 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        notes.append("last NIfTI axis = classes")
    if arr.dtype == np.bool_ or arr.dtype.kind in "iu":
        lab = arr.astype(np.int64)
        lo, hi, distinct = _label_stats(lab)
        binmax = _binary_max(hi, distinct, lo)
        if lo >= 0 and hi <= 1:
            return _hard(lab, dec, num_classes, ["0/1 mask"] + notes)
        if binmax is not None:
            return _hard((lab == binmax).astype(np.int64), dec, num_classes, [f"0/{binmax} mask -> 0/1"] + notes)
        fits = hi < (num_classes if num_classes else MAX_LABELS) and lo >= 0
        if dec.kind == "image" and not fits and arr.dtype in (np.uint8, np.uint16):
            top = 255 if arr.dtype == np.uint8 else 65535
            bits = 8 if top == 255 else 16
            p = arr.astype(np.float32) / np.float32(top)
            notes.insert(0, f"{bits}-bit greyscale {lo}..{hi} -> foreground probability /{top}")
            return _soft_single(p, dec, notes)
        return _hard(lab, dec, num_classes, [f"labels {lo}..{hi}"] + notes)

    # floats
    if not np.isfinite(arr).all():
        raise FileError("prediction contains NaN or Inf")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi >= 2 and hi < MAX_LABELS and np.array_equal(arr, np.round(arr)):
        if spatial_shape is None or tuple(arr.shape) == tuple(spatial_shape) or arr.ndim == 2:
            return _hard(arr.astype(np.int64), dec, num_classes, ["float array with integer values -> labels"] + notes)
    if lo < 0 or hi > 1:
        raise FileError(
            f"probabilities must lie in [0, 1]; got min {_fmt_num(lo)} .. max {_fmt_num(hi)} "
            "(logits? apply softmax first)"
        )
    if nifti_classes or _is_class_maps(arr, dec, spatial_shape):
        return _soft_maps(arr, dec, notes)
    return _soft_single(arr, dec, notes)


def _is_class_maps(arr: np.ndarray, dec: _Decoded, spatial_shape) -> bool:
    if arr.ndim == 4:
        return True
    if arr.ndim == 2:
        return False
    if dec.nifti:  # NIfTI: 3-D is spatial
        return False
    if spatial_shape is not None:
        spatial_shape = tuple(spatial_shape)
        if tuple(arr.shape) == spatial_shape:
            return False
        if tuple(arr.shape[1:]) == spatial_shape:
            return True
    c = arr.shape[0]
    if not 2 <= c <= MAX_LABELS:
        return False
    sums = arr.sum(axis=0, dtype=np.float64)
    return bool(np.abs(sums - 1).max() <= PROB_SUM_TOLERANCE)


def _soft_single(p: np.ndarray, dec: _Decoded, notes) -> Prediction:
    if p.ndim not in (2, 3):
        raise FileError(f"probability map must be 2-D or 3-D; got shape {_dims(p.shape)}")
    _check_spatial(p.shape)
    _check_elements(2, p.size)
    # [1 - p, p] in C order (NIfTI data is Fortran-ordered; a strided case would be copied by every
    # reshape downstream), written in place: one copy of p, no temporary
    probs = np.empty((2, *p.shape), dtype=np.float32)
    probs[1] = p
    np.subtract(np.float32(1), probs[1], out=probs[0])
    spacing, known = _finish_spacing(dec, p.ndim)
    note = f"{dec.fmt} " + "; ".join(notes + ["one foreground probability map -> [1 - p, p]"])
    return Prediction(probs, spacing, dec.fmt, note, spacing_known=known)


def _soft_maps(arr: np.ndarray, dec: _Decoded, notes) -> Prediction:
    c = arr.shape[0]
    if arr.ndim not in (3, 4):
        raise FileError(f"class probability maps must be (C, H, W) or (C, D, H, W); got {_dims(arr.shape)}")
    if not 2 <= c <= MAX_LABELS:
        raise FileError(f"{c} class probability maps; expected 2..{MAX_LABELS}")
    _check_spatial(arr.shape[1:])
    probs = np.array(arr, dtype=np.float32, order="C")  # a copy in C order (NIfTI is Fortran-ordered)
    sums = probs.sum(axis=0, dtype=np.float64)
    dev = max(float(sums.max()) - 1, 1 - float(sums.min()))  # max |sum - 1|, without two more volumes
    if dev > PROB_SUM_TOLERANCE:
        raise FileError(
            f"the {c} class maps along the first axis must sum to 1 (sums range {_fmt_num(sums.min())} .. "
            f"{_fmt_num(sums.max())}); apply softmax, or give one foreground map"
        )
    if dev > 1e-6:
        probs /= sums.astype(np.float32)
        notes = notes + [f"renormalised (sums were off by up to {dev:.1g})"]
    spacing, known = _finish_spacing(dec, arr.ndim - 1)
    note = f"{dec.fmt} " + "; ".join(notes + [f"{c} class probability maps"])
    return Prediction(probs, spacing, dec.fmt, note, spacing_known=known)


# ----------------------------------------------------------------------------------------------
# cases


def make_case(gt: LabelMap, pred: Prediction, name: str = "case") -> Case:
    """A :class:`~segloss_core.Case` from a ground truth and a prediction read by this module.

    Checks: same dimensionality and shape, every ground-truth label has a prediction channel
    (hard predictions are widened to the ground truth's classes), voxels x classes within
    :data:`MAX_ELEMENTS`. The spacing is the ground truth's.
    """
    g, probs = gt.array, pred.probs
    spatial = probs.shape[1:]
    if g.ndim != len(spatial):
        raise FileError(
            f"ground truth is {g.ndim}-D ({_dims(g.shape)}) but prediction is {len(spatial)}-D ({_dims(spatial)})"
        )
    if tuple(g.shape) != tuple(spatial):
        raise FileError(f"ground truth is {_dims(g.shape)} but prediction is {_dims(spatial)}")
    top = int(g.max()) if g.size else 0
    if pred.labels is not None:
        c = max(2, top + 1, probs.shape[0])
        if c != probs.shape[0]:
            probs = _one_hot(pred.labels, c)
    else:
        c = probs.shape[0]
        if top >= c:
            if c == 2:
                raise FileError(
                    f"ground truth has labels up to {top} but the prediction is one foreground map (2 classes); "
                    "give one probability map per class"
                )
            raise FileError(f"ground truth has label {top} but the prediction has only {c} classes (0..{c - 1})")
    _check_elements(c, g.size)
    meta = {"gt_format": gt.format, "gt_note": gt.note, "pred_format": pred.format, "pred_note": pred.note}
    if gt.spacing_known and pred.spacing_known and not np.allclose(gt.spacing, pred.spacing, rtol=1e-4):
        meta["warning"] = (
            f"prediction spacing {pred.spacing} differs from the ground truth's {gt.spacing}; using the latter"
        )
    if gt.colours is not None:
        meta["colours"] = gt.colours
    return Case(g, probs, gt.spacing, name, meta=meta)


def read_case(
    gt_data: bytes, pred_data: bytes, *, gt_name: str = "ground truth", pred_name: str = "prediction",
    name: str | None = None,
) -> Case:
    """Ground truth and prediction bytes -> a checked :class:`~segloss_core.Case` (the CLI's and the
    app's upload path): the prediction is read knowing the ground truth's classes, shape and colours."""
    gt = read_label_map(gt_data, gt_name)
    pred = read_prediction(
        pred_data, pred_name, gt.num_classes, spatial_shape=tuple(gt.array.shape), colours=gt.colours
    )
    return make_case(gt, pred, name or f"{gt_name} vs {pred_name}")


_CASE_KEYS = ("gt", "probs", "spacing", "name", "class_names")


def save_case_npz(case: Case) -> bytes:
    """A case as compressed ``.npz`` bytes: ``gt``, ``probs``, ``spacing``, ``name``, ``class_names``
    (no pickles: strings are NumPy unicode arrays). :func:`load_case_npz` reads it back."""
    gt = case.gt
    small = np.uint8 if gt.size == 0 or int(gt.max()) < 256 else np.int32
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        gt=gt.astype(small),
        probs=np.asarray(case.probs, dtype=np.float32),
        spacing=np.asarray(case.spacing, dtype=np.float64),
        name=np.array(str(case.name)),
        class_names=np.array([str(c) for c in case.class_names]),
    )
    return buf.getvalue()


def load_case_npz(data: bytes, name: str = "") -> Case:
    """A case saved by :func:`save_case_npz`, checked like any upload (no pickles, caps, labels,
    probabilities in [0, 1] summing to 1, matching shapes)."""
    try:
        return _load_case_npz(data)
    except FileError as err:
        raise _prefixed(name, err) from None
    except MemoryError:
        raise _prefixed(name, FileError("not enough memory to read this file")) from None


def _load_case_npz(data) -> Case:
    _check_size(data)
    if detect_format(data) != "NPZ":
        raise FileError("not a saved case (.npz expected)")
    zf, members = _npz_members(data)
    with zf:
        for key in ("gt", "probs"):
            if key not in members:
                raise FileError(f"saved case has no {key!r} array (members: {', '.join(sorted(members))})")
        arrays = {k: _npz_read(zf, members[k], text_ok=k in ("name", "class_names")) for k in _CASE_KEYS if k in members}
    for key in ("gt", "probs", "spacing"):
        if key in arrays and arrays[key].dtype.kind == "U":
            raise FileError(f"saved case member {key!r} must hold numbers")
    gt = _as_integers(arrays["gt"], "saved ground truth")
    if gt.ndim not in (2, 3):
        raise FileError(f"saved ground truth must be 2-D or 3-D; got shape {_dims(gt.shape)}")
    _check_spatial(gt.shape)
    lo, hi, distinct = _label_stats(gt)
    _check_labels(lo, hi, distinct)
    probs = arrays["probs"]
    if probs.shape[1:] != gt.shape:
        raise FileError(f"saved ground truth is {_dims(gt.shape)} but its probabilities are {_dims(probs.shape)}")
    if probs.dtype.kind != "f" or not np.isfinite(probs).all():
        raise FileError("saved probabilities must be finite floats")
    plo, phi = float(probs.min()), float(probs.max())
    if plo < 0 or phi > 1:
        raise FileError(f"probabilities must lie in [0, 1]; got min {_fmt_num(plo)} .. max {_fmt_num(phi)}")
    dec = _Decoded(probs, "NPZ", "array")
    probs = _soft_maps(probs, dec, []).probs
    if hi >= probs.shape[0]:
        raise FileError(f"saved ground truth has label {hi} but only {probs.shape[0]} classes")
    spacing: tuple[float, ...] = ()
    if "spacing" in arrays:
        sp = arrays["spacing"]
        spacing = tuple(float(s) for s in sp.ravel())
        if sp.ndim != 1 or len(spacing) != gt.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise FileError(f"saved spacing must be {gt.ndim} positive numbers; got {sp.ravel()[:4].tolist()}")
    case_name = "case"
    if "name" in arrays:
        nm = arrays["name"]
        if nm.dtype.kind != "U" or nm.ndim != 0:
            raise FileError("saved case 'name' must be a string")
        case_name = str(nm)[:200]
    class_names: tuple[str, ...] = ()
    if "class_names" in arrays:
        cn = arrays["class_names"]
        if cn.dtype.kind != "U" or cn.shape != (probs.shape[0],):
            raise FileError(f"saved 'class_names' must be {probs.shape[0]} strings")
        class_names = tuple(str(c)[:100] for c in cn)
    return Case(gt, probs, spacing, case_name, class_names, meta={"format": "saved case (.npz)"})


# ----------------------------------------------------------------------------------------------
# paths (CLI)


def read_path(path) -> bytes:
    """A file's bytes for the CLI: at most :data:`MAX_UPLOAD_BYTES` (bigger files are refused
    without reading them all); every OS error becomes a :class:`FileError`."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            info = os.fstat(fh.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_UPLOAD_BYTES:
                raise FileError(f"{p}: file is {_mb(info.st_size)}; the limit is {_mb(MAX_UPLOAD_BYTES)}")
            data = fh.read(MAX_UPLOAD_BYTES + 1)
    except FileError:
        raise
    except FileNotFoundError:
        raise FileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise FileError(f"{p}: is a directory, not a file") from None
    except PermissionError:
        raise FileError(f"{p}: permission denied") from None
    except OSError as err:
        raise FileError(f"{p}: cannot read ({err.strerror or _short(err)})") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise FileError(f"{p}: file is larger than the limit of {_mb(MAX_UPLOAD_BYTES)}")
    return data
