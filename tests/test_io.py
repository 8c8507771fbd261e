"""segloss_core.data.files: every format round-trips; every hostile input is refused with one line, in bounded memory.

All fixtures are generated here, in memory or in pytest's tmp dirs (no binary files in the repo).
References: the writers (Pillow, tifffile, numpy, nibabel) and nibabel's / tifffile's own readers.
``HOSTILE`` is the single table of hostile inputs; tests/test_cli.py runs the same table through
the command line.
"""

from __future__ import annotations

import functools
import gzip
import io
import pickle
import re
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

import segloss_core as sc
from segloss_core.core import limits
from segloss_core.data import files as sio

RNG = np.random.default_rng(1234)

# ----------------------------------------------------------------------------------------------
# builders (bytes in memory)


def png_bytes(arr: np.ndarray | Image.Image, **kw) -> bytes:
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def tiff_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def npy_bytes(arr, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def nifti_bytes(arr: np.ndarray, zooms=None, version: int = 1) -> bytes:
    klass = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    affine = np.diag([*(zooms or (1.0,) * 3)[:3], 1.0]) if zooms else np.eye(4)
    img = klass(arr, affine)
    if zooms:
        img.header.set_zooms(tuple(zooms))
    return img.to_bytes()


def disk(shape=(64, 64), r=14) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    dist2 = sum((g - s / 2) ** 2 for g, s in zip(grids, shape, strict=True))
    return (dist2 <= r * r).astype(np.uint8)


def soft(mask: np.ndarray) -> np.ndarray:
    return np.clip(mask * 0.8 + 0.1 + RNG.uniform(-0.05, 0.05, mask.shape), 0, 1).astype(np.float32)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int) -> bytes:
    """A 100-byte PNG whose IHDR declares width x height (1-bit grey): a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@functools.cache
def gzip_bomb(prefix: bytes, zero_mib: int) -> bytes:
    """A valid gzip of ``prefix`` + ``zero_mib`` MiB of zeros, built from one repeated deflate block
    (so a 2 GiB bomb takes ~2 MB and no time to make)."""
    head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = first.compress(prefix) + first.flush(zlib.Z_FULL_FLUSH)
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block.compress(b"\0" * (1 << 20)) + block.flush(zlib.Z_FULL_FLUSH)  # self-contained block
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc, mib = zlib.crc32(prefix), b"\0" * (1 << 20)
    for _ in range(zero_mib):
        crc = zlib.crc32(mib, crc)
    size = (len(prefix) + (zero_mib << 20)) & 0xFFFFFFFF
    return head + first + block * zero_mib + end + struct.pack("<II", crc, size)


def nifti_header(shape, dtype=np.uint8) -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr["vox_offset"] = 352
    return hdr.binaryblock + b"\0\0\0\0"


@functools.cache
def tiff_zlib_bomb(inflated_mib: int = 64) -> bytes:
    """An 8x8 deflate TIFF whose single strip inflates to ``inflated_mib`` MiB."""
    data = bytearray(tiff_bytes(np.zeros((8, 8), np.uint8), compression="zlib"))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tags = tif.pages[0].tags
        off_at, cnt_at = tags["StripOffsets"].valueoffset, tags["StripByteCounts"].valueoffset
    payload = zlib.compress(b"\0" * (inflated_mib << 20), 9)
    struct.pack_into("<I", data, off_at, len(data))
    struct.pack_into("<I", data, cnt_at, len(payload))
    return bytes(data) + payload


def jpeg_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


GOOD_MASK = disk()
GOOD_GT = png_bytes(GOOD_MASK * 255)
GOOD_PRED = npy_bytes(soft(GOOD_MASK))


def _truncated_png() -> bytes:
    return GOOD_GT[: len(GOOD_GT) - 40]


def _corrupt_png() -> bytes:
    data = bytearray(GOOD_GT)
    start = data.index(b"IDAT") + 8
    data[start : start + 16] = b"\xff" * 16
    return bytes(data)


def _tiff_good() -> bytes:
    return tiff_bytes(GOOD_MASK)


def _truncated_tiff() -> bytes:
    data = _tiff_good()
    return data[: len(data) // 2]


def _corrupt_tiff() -> bytes:
    data = bytearray(_tiff_good())
    struct.pack_into("<I", data, 4, len(data) + 1000)  # first IFD beyond the end
    return bytes(data)


def _nii() -> bytes:
    return nifti_bytes(np.stack([GOOD_MASK] * 4, axis=-1).astype(np.int16))


def _torch_like_checkpoint() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"weights": [1, 2, 3]}))
    return buf.getvalue()


def _probs3() -> np.ndarray:
    p = RNG.random((3, 64, 64)).astype(np.float32)
    return p / p.sum(0)


@dataclass(frozen=True)
class Hostile:
    """One hostile input: ``gt`` / ``pred`` build the two files (bytes); the one-line message
    (prefixed by the file's name when the file itself is at fault) must match ``expect``."""

    id: str
    what: str
    expect: str
    gt: Callable[[], bytes] = lambda: GOOD_GT
    pred: Callable[[], bytes] = lambda: GOOD_PRED


HOSTILE: list[Hostile] = [
    Hostile("empty", "empty ground-truth file (0 bytes)", r"empty file", gt=lambda: b""),
    Hostile("text", "a text file", r"unrecognised file format", gt=lambda: b"hello, not an image\n" * 10),
    Hostile("png-truncated", "PNG cut 40 bytes short", r"corrupt or truncated PNG", gt=_truncated_png),
    Hostile("png-corrupt", "PNG with garbage in its IDAT chunk", r"corrupt or truncated PNG", gt=_corrupt_png),
    Hostile("tiff-truncated", "TIFF cut in half", r"truncated TIFF|corrupt or truncated TIFF", gt=_truncated_tiff),
    Hostile("tiff-corrupt", "TIFF whose first IFD lies past the end", r"corrupt", gt=_corrupt_tiff),
    Hostile("tiff-zlib-bomb", "8x8 deflate TIFF whose strip inflates to 64 MiB",
            r"TIFF strip inflates beyond its declared size", gt=lambda: tiff_zlib_bomb(64)),
    Hostile("nii-truncated", "NIfTI cut inside its voxel data", r"truncated NIfTI image data",
            gt=lambda: _nii()[:1000]),
    Hostile("nii-header-truncated", "NIfTI cut inside its header", r"truncated NIfTI header",
            gt=lambda: _nii()[:200]),
    Hostile("nii-gz-truncated", ".nii.gz cut in half", r"truncated",
            gt=lambda: (lambda d: d[: len(d) // 2])(gzip.compress(_nii()))),
    Hostile("gz-corrupt", ".nii.gz with a corrupted deflate stream", r"corrupt gzip data|truncated or corrupt gzip",
            gt=lambda: (lambda d: d[:12] + b"\xff" * 40 + d[52:])(gzip.compress(_nii()))),
    Hostile("jpeg", "JPEG label map", r"JPEG is lossy: label maps must be PNG, TIFF, NPY or NIfTI",
            gt=lambda: jpeg_bytes(GOOD_MASK * 255)),
    Hostile("npy-pickled", ".npy object array (saved with allow_pickle=True)", r"pickled data refused",
            gt=lambda: npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)),
    Hostile("pickle", "a raw pickle file", r"pickled data refused", gt=lambda: pickle.dumps({"gt": [0, 1]})),
    Hostile("zip-pickle", "a zip holding data.pkl (a torch checkpoint)", r"pickled data refused",
            pred=_torch_like_checkpoint),
    Hostile("npy-huge-header", ".npy header declaring 100000x100000 float64 (tiny body)", r"header declares",
            gt=lambda: _npy_huge_header()),
    Hostile("npy-truncated", ".npy cut inside its data", r"truncated \.npy",
            pred=lambda: GOOD_PRED[: len(GOOD_PRED) // 2]),
    Hostile("nan", "probabilities with NaN", r"prediction contains NaN or Inf",
            pred=lambda: npy_bytes(np.where(GOOD_MASK > 0, np.nan, 0.1).astype(np.float32))),
    Hostile("inf", "probabilities with +Inf", r"prediction contains NaN or Inf",
            pred=lambda: npy_bytes(np.where(GOOD_MASK > 0, np.inf, 0.1).astype(np.float32))),
    Hostile("logits", "logits instead of probabilities (-3..5)",
            r"probabilities must lie in \[0, 1\]; got min -3 \.\. max 5 \(logits\? apply softmax first\)",
            pred=lambda: npy_bytes(np.linspace(-3, 5, 64 * 64).reshape(64, 64).astype(np.float32))),
    Hostile("sum-not-1", "3 class maps that do not sum to 1", r"must sum to 1",
            gt=lambda: npy_bytes((GOOD_MASK * 2).astype(np.uint8)),
            pred=lambda: npy_bytes(_probs3() * 0.5)),
    Hostile("shape-mismatch", "ground truth 64x64, prediction 32x32",
            r"^ground truth is 64x64 but prediction is 32x32$", pred=lambda: npy_bytes(soft(disk((32, 32), 6)))),
    Hostile("dims-mismatch", "3-D ground truth, 2-D prediction",
            r"ground truth is 3-D \(4x64x64\) but prediction is 2-D \(64x64\)",
            gt=lambda: npy_bytes(np.stack([GOOD_MASK] * 4))),
    Hostile("classes-mismatch", "ground truth labels 0..2, one foreground probability map",
            r"ground truth has labels up to 2 but the prediction is one foreground map",
            gt=lambda: npy_bytes((GOOD_MASK * 2).astype(np.uint8))),
    Hostile("labels-300", "label map with 300 distinct labels", r"300 distinct labels; at most 32 supported",
            gt=lambda: npy_bytes((np.arange(64 * 64) % 300).reshape(64, 64).astype(np.int16))),
    Hostile("label-1000", "label map with labels {0, 1000}", r"label 1000 is too large",
            gt=lambda: npy_bytes(GOOD_MASK.astype(np.int16) * 1000)),
    Hostile("label-negative", "label map with label -1", r"labels must be non-negative integers",
            gt=lambda: npy_bytes(GOOD_MASK.astype(np.int8) - 1)),
    Hostile("label-fractional", "probability map given as ground truth", r"fractional values",
            gt=lambda: GOOD_PRED),
    Hostile("grey-photo", "8-bit greyscale photo as ground truth", r"8-bit PNG holds 256 distinct values",
            gt=lambda: png_bytes((np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8))),
    Hostile("rgb-photo", "RGB noise image (thousands of colours) as ground truth", r"distinct colours: a photo",
            gt=lambda: png_bytes(RNG.integers(0, 256, (64, 64, 3)).astype(np.uint8))),
    Hostile("png-16bit-rgb", "16-bit RGB PNG", r"16-bit colour PNG is not supported",
            gt=lambda: _png_16bit_rgb()),
    Hostile("png-bomb", "PNG of ~100 bytes declaring 30000x30000 pixels",
            r"image is 30000x30000 pixels .* at most 16,777,216 \(4096x4096\) supported",
            gt=lambda: png_bomb(30000, 30000)),
    Hostile("nii-gz-huge-header", ".nii.gz whose header declares 32767x32767x32767 voxels",
            r"header declares 32767x32767x32767 = [\d,]+ values; at most",
            gt=lambda: gzip.compress(nifti_header((32767, 32767, 32767)))),
    Hostile("nii-gz-bomb", ".nii.gz: valid 8x8x8 header followed by 2 GiB of zeros (2 MB file)",
            r"gzip data inflates beyond the 864 bytes its NIfTI header declares",
            gt=lambda: gzip_bomb(nifti_header((8, 8, 8)), 2048)),
    Hostile("gz-zeros-bomb", "gzip of 2 GiB of zeros (no NIfTI header)", r"does not contain a NIfTI image",
            gt=lambda: gzip_bomb(b"", 2048)),
    Hostile("nii-pair", "NIfTI .hdr of a .hdr/.img pair", r"\.hdr/\.img pairs are not supported",
            gt=lambda: _nifti_pair_header()),
    Hostile("nii-4d-gt", "4-D NIfTI as ground truth", r"label map must be 2-D or 3-D",
            gt=lambda: nifti_bytes(np.zeros((8, 8, 8, 3), np.uint8))),
]


def _npy_huge_header() -> bytes:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64


def _png_16bit_rgb() -> bytes:
    data = bytearray(png_bytes(np.zeros((4, 4, 3), np.uint8)))
    data[24] = 16  # bit depth in IHDR (the check fires before decoding)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _nifti_pair_header() -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((8, 8, 8))
    hdr["magic"] = b"ni1"
    return hdr.binaryblock


#: Peak traced allocation allowed while refusing a hostile input (bombs declare GBs).
HOSTILE_PEAK_BYTES = 16 * 1024 * 1024


def load_pair(gt: bytes, pred: bytes):
    """What the CLI and the app do with two uploads."""
    return sio.read_case(gt, pred, gt_name="gt", pred_name="pred")


@pytest.mark.parametrize("case", HOSTILE, ids=[h.id for h in HOSTILE])
def test_hostile_input_refused_with_one_line_in_bounded_memory(case: Hostile):
    gt, pred = case.gt(), case.pred()
    tracemalloc.start()
    try:
        with pytest.raises(sio.FileError) as info:
            load_pair(gt, pred)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(info.value)
    assert "\n" not in msg and 0 < len(msg) < 400, msg
    assert re.search(case.expect, msg), msg
    assert peak < HOSTILE_PEAK_BYTES, f"{case.id}: peak {peak / 2**20:.1f} MiB"


def test_hostile_table_ids_unique_and_good_pair_loads():
    assert len({h.id for h in HOSTILE}) == len(HOSTILE)
    case = load_pair(GOOD_GT, GOOD_PRED)
    assert case.gt.shape == (64, 64) and case.num_classes == 2


def test_bombs_are_small_files_declaring_huge_data():
    """The bomb fixtures really are bombs (so the bounded-memory assertion means something)."""
    bomb = gzip_bomb(b"abc", 3)
    assert gzip.decompress(bomb) == b"abc" + b"\0" * (3 << 20)
    assert len(gzip_bomb(nifti_header((8, 8, 8)), 2048)) < 3 * 2**20
    with Image.open(io.BytesIO(png_bomb(300, 200))) as img:
        assert img.size == (300, 200)
    tb = tiff_zlib_bomb(2)
    with tifffile.TiffFile(io.BytesIO(tb)) as tif:
        off, cnt = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    assert len(zlib.decompress(tb[off : off + cnt])) == 2 << 20


def test_decompressed_cap_is_enforced(monkeypatch):
    """A legit .nii.gz bigger than MAX_DECOMPRESSED_BYTES is refused before inflating its data."""
    vol = np.zeros((64, 64, 64), np.uint8)  # 256 KiB of voxels
    data = gzip.compress(nifti_bytes(vol))
    monkeypatch.setattr(sio, "MAX_DECOMPRESSED_BYTES", 64 * 1024)
    with pytest.raises(sio.FileError, match="at most 0.1 MB"):
        sio.read_label_map(data)
    monkeypatch.setattr(sio, "MAX_DECOMPRESSED_BYTES", 1024 * 1024)
    assert sio.read_label_map(data).array.shape == (64, 64, 64)


def test_pixel_and_voxel_caps(monkeypatch):
    monkeypatch.setattr(sio, "MAX_VOXELS", 1000)
    with pytest.raises(sio.FileError, match=r"volume is 8x8x20 voxels"):
        sio.read_label_map(npy_bytes(np.zeros((8, 8, 20), np.uint8)))
    with pytest.raises(sio.FileError, match=r"image is 4097x4096 pixels"):
        sio.read_label_map(png_bytes(np.zeros((4097, 4096), np.uint8)))


def test_upload_size_cap(monkeypatch):
    monkeypatch.setattr(sio, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(sio.FileError, match=r"file is .* the limit is"):
        sio.read_label_map(npy_bytes(np.zeros((64, 64), np.uint8)))


def test_voxels_times_classes_cap(monkeypatch):
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 64 * 64 * 3)
    lab = (np.arange(64 * 64).reshape(64, 64) % 4).astype(np.uint8)
    with pytest.raises(sio.FileError, match=r"4,096 voxels x 4 classes = 16,384 values; at most 12,288"):
        sio.read_prediction(npy_bytes(lab))


# ----------------------------------------------------------------------------------------------
# round trips: label maps


def test_png_01_mask():
    lm = sio.read_label_map(png_bytes(GOOD_MASK))
    np.testing.assert_array_equal(lm.array, GOOD_MASK)
    assert lm.array.dtype == np.int64 and lm.format == "PNG" and "0/1 mask" in lm.note
    assert lm.spacing == (1.0, 1.0) and not lm.spacing_known


def test_png_0255_mask():
    lm = sio.read_label_map(png_bytes(GOOD_MASK * 255))
    np.testing.assert_array_equal(lm.array, GOOD_MASK)
    assert lm.note == "PNG 0/255 mask -> labels 0/1"


def test_png_bilevel_mode_1():
    img = Image.fromarray(GOOD_MASK.astype(bool))
    assert img.mode == "1"
    np.testing.assert_array_equal(sio.read_label_map(png_bytes(img)).array, GOOD_MASK)


def test_png_palette_indices():
    lab = (np.arange(48).reshape(6, 8) % 4).astype(np.uint8)
    img = Image.frombytes("P", (8, 6), lab.tobytes())
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (768 - 12))
    lm = sio.read_label_map(png_bytes(img))
    np.testing.assert_array_equal(lm.array, lab)
    assert "palette indices" in lm.note


def test_png_16bit_labels_and_0_65535():
    lab = (np.arange(48).reshape(6, 8) % 3).astype(np.uint16)
    data = png_bytes(lab)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode.startswith("I")
    np.testing.assert_array_equal(sio.read_label_map(data).array, lab)
    lm = sio.read_label_map(png_bytes(GOOD_MASK.astype(np.uint16) * 65535))
    np.testing.assert_array_equal(lm.array, GOOD_MASK)
    assert "0/65535 mask" in lm.note


def test_png_rgb_colour_mask_and_shared_colours():
    lab = np.zeros((16, 16), np.int64)
    lab[2:6, 2:6], lab[8:12, 8:14] = 1, 2
    palette = np.array([[0, 0, 0], [0, 200, 0], [220, 30, 30]], np.uint8)  # sorted RGB order
    lm = sio.read_label_map(png_bytes(palette[lab]))
    np.testing.assert_array_equal(lm.array, lab)
    assert lm.colours == tuple(map(tuple, palette.tolist()))
    assert "3 colours" in lm.note
    # a prediction holding only the red class maps through the ground truth's colours
    pred_lab = np.where(lab == 2, 2, 0)
    pr = sio.read_prediction(png_bytes(palette[pred_lab]), colours=lm.colours)
    np.testing.assert_array_equal(pr.labels, pred_lab)
    with pytest.raises(sio.FileError, match="does not occur in the ground truth"):
        sio.read_prediction(png_bytes(np.full((16, 16, 3), 77, np.uint8) + palette[lab]), colours=lm.colours)


def test_png_rgba_transparent_is_background():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere ...
    rgba[2:5, 2:5, 3] = 255  # ... but only opaque here
    rgba[2:5, 2:5, :3] = [255, 0, 0]
    lm = sio.read_label_map(png_bytes(rgba))
    expected = np.zeros((8, 8), np.int64)
    expected[2:5, 2:5] = 1
    np.testing.assert_array_equal(lm.array, expected)


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("shape", [(40, 50), (6, 40, 50)])
def test_tiff_2d_3d(shape, compression):
    lab = RNG.integers(0, 4, shape).astype(np.uint8)
    data = tiff_bytes(lab, compression=compression)
    lm = sio.read_label_map(data)
    np.testing.assert_array_equal(lm.array, tifffile.imread(io.BytesIO(data)))
    np.testing.assert_array_equal(lm.array, lab)
    assert lm.format == "TIFF"


def test_tiff_float_probabilities():
    p = soft(disk((40, 50), 10))
    pr = sio.read_prediction(tiff_bytes(p))
    np.testing.assert_allclose(pr.probs[1], p)
    np.testing.assert_allclose(pr.probs.sum(0), 1, atol=1e-6)


@pytest.mark.parametrize(
    "kw",
    [{}, {"compression": "zlib"}, {"compression": "zlib", "tile": (16, 16)}, {"planarconfig": "separate"}],
    ids=["plain", "deflate", "deflate-tiled", "planar"],
)
def test_tiff_rgb_colour_mask(kw):
    lab = np.zeros((40, 50), np.int64)
    lab[2:5, 3:9], lab[20:30, 10:40] = 1, 2
    colours = np.array([[0, 0, 0], [0, 0, 255], [255, 255, 0]], np.uint8)  # sorted RGB order
    rgb = colours[lab]
    if kw.get("planarconfig") == "separate":
        rgb = np.ascontiguousarray(np.moveaxis(rgb, -1, 0))
    data = tiff_bytes(rgb, photometric="rgb", **kw)
    lm = sio.read_label_map(data)
    np.testing.assert_array_equal(lm.array, lab)
    assert lm.colours == tuple(map(tuple, colours.tolist()))


def test_tiff_bilevel():
    np.testing.assert_array_equal(sio.read_label_map(tiff_bytes(GOOD_MASK.astype(bool))).array, GOOD_MASK)


def test_tiff_unsupported_compression_refused():
    data = tiff_bytes(GOOD_MASK, compression="zlib")
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        at = tif.pages[0].tags["Compression"].valueoffset
    patched = bytearray(data)
    struct.pack_into("<H", patched, at, 5)  # claim LZW
    with pytest.raises(sio.FileError, match=r"TIFF compression LZW is not supported"):
        sio.read_label_map(bytes(patched))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.bool_, np.float32])
def test_npy_dtypes(dtype):
    lab = RNG.integers(0, 2 if dtype == np.bool_ else 5, (7, 9)).astype(dtype)
    lm = sio.read_label_map(npy_bytes(lab))
    np.testing.assert_array_equal(lm.array, lab.astype(np.int64))


def test_npy_fortran_order_and_big_endian():
    lab = np.asfortranarray(RNG.integers(0, 3, (7, 9)).astype(">i2"))
    np.testing.assert_array_equal(sio.read_label_map(npy_bytes(lab)).array, lab.astype(np.int64))


def test_npz_single_and_gt_member_with_spacing():
    lab = RNG.integers(0, 3, (5, 7, 9)).astype(np.uint8)
    assert np.array_equal(sio.read_label_map(npz_bytes(x=lab)).array, lab)
    lm = sio.read_label_map(npz_bytes(gt=lab, other=lab * 0, spacing=np.array([2.5, 0.7, 0.7])))
    np.testing.assert_array_equal(lm.array, lab)
    assert lm.spacing == (2.5, 0.7, 0.7) and lm.spacing_known
    with pytest.raises(sio.FileError, match="expected a single array"):
        sio.read_label_map(npz_bytes(a=lab, b=lab))


@pytest.mark.parametrize("gz", [False, True], ids=["nii", "nii.gz"])
@pytest.mark.parametrize("version", [1, 2])
def test_nifti_3d_with_spacing_matches_nibabel(tmp_path, gz, version):
    vol = RNG.integers(0, 4, (9, 11, 7)).astype(np.int16)
    raw = nifti_bytes(vol, zooms=(0.8, 0.6, 2.5), version=version)
    data = gzip.compress(raw) if gz else raw
    path = tmp_path / ("x.nii.gz" if gz else "x.nii")
    path.write_bytes(data)
    ref = nib.load(path)
    lm = sio.read_label_map(data)
    np.testing.assert_array_equal(lm.array, np.asanyarray(ref.dataobj))
    np.testing.assert_allclose(lm.spacing, ref.header.get_zooms(), rtol=1e-6)
    assert lm.spacing_known and lm.format == ("NIfTI (gzip)" if gz else "NIfTI")


def test_nifti_2d_trailing_singleton_and_scaling():
    img = nib.Nifti1Image(GOOD_MASK[:, :, None].astype(np.int16), np.diag([0.5, 0.5, 3, 1]))
    img.header.set_slope_inter(2.0, 0.0)  # stored 0/1 -> 0/2 after scaling
    lm = sio.read_label_map(img.to_bytes())
    ref = nib.Nifti1Image.from_bytes(img.to_bytes())
    np.testing.assert_array_equal(lm.array, np.squeeze(np.asanyarray(ref.dataobj)))
    assert lm.array.ndim == 2 and lm.spacing == (0.5, 0.5) and lm.array.max() == 2


def test_nifti_4d_class_maps_channel_last():
    p = _probs3()
    vol = np.moveaxis(p, 0, -1)[:, :, None, :]  # (X, Y, 1, C)
    pr = sio.read_prediction(nifti_bytes(vol.astype(np.float32)))
    np.testing.assert_allclose(pr.probs, p, rtol=1e-6)


def test_content_not_extension(tmp_path):
    """A TIFF named .png is read as TIFF: the magic bytes decide."""
    path = tmp_path / "mask.png"
    path.write_bytes(tiff_bytes(GOOD_MASK))
    lm = sio.read_label_map(sio.read_path(path), name="mask.png")
    assert lm.format == "TIFF"
    np.testing.assert_array_equal(lm.array, GOOD_MASK)


# ----------------------------------------------------------------------------------------------
# predictions


def test_foreground_map_is_stacked():
    p = soft(GOOD_MASK)
    pr = sio.read_prediction(npy_bytes(p))
    np.testing.assert_array_equal(pr.probs, sc.binary_probs(torch.from_numpy(p)[None])[0].numpy())
    assert pr.labels is None and pr.probs.dtype == np.float32


def test_class_maps_and_renormalisation():
    p = _probs3()
    pr = sio.read_prediction(npy_bytes(p))
    np.testing.assert_allclose(pr.probs, p, rtol=1e-6)
    off = (p * 1.003).astype(np.float32)  # within tolerance: renormalised
    pr = sio.read_prediction(npy_bytes(off))
    np.testing.assert_allclose(pr.probs.sum(0), 1, atol=1e-6)
    np.testing.assert_allclose(pr.probs, p, rtol=1e-5)
    assert "renormalised" in pr.note


def test_spatial_shape_tells_maps_from_volume():
    p = _probs3()[:2]
    p = p / p.sum(0)  # (2, 64, 64) summing to 1: also a valid (D=2) volume
    as_maps = sio.read_prediction(npy_bytes(p), spatial_shape=(64, 64))
    as_volume = sio.read_prediction(npy_bytes(p), spatial_shape=(2, 64, 64))
    assert as_maps.probs.shape == (2, 64, 64)
    assert as_volume.probs.shape == (2, 2, 64, 64)


def test_hard_predictions_one_hot():
    lab = (np.arange(64 * 64).reshape(64, 64) % 3).astype(np.uint8)
    ref = sc.one_hot(torch.from_numpy(lab.astype(np.int64))[None], 3)[0].numpy()
    for data in (npy_bytes(lab), png_bytes(lab), tiff_bytes(lab), npy_bytes(lab.astype(np.float32))):
        pr = sio.read_prediction(data, num_classes=3)
        np.testing.assert_array_equal(pr.probs, ref)
        np.testing.assert_array_equal(pr.labels, lab)


def test_png_probability_rule():
    """8-bit greyscale: 0/1 and 0/255 are masks; values fitting the class count are labels;
    anything else is a foreground probability v/255."""
    grey = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    pr = sio.read_prediction(png_bytes(grey), num_classes=2)
    np.testing.assert_allclose(pr.probs[1], grey / 255.0, rtol=1e-6)
    assert pr.labels is None and "/255" in pr.note
    for mask in (GOOD_MASK, GOOD_MASK * 255):
        pr = sio.read_prediction(png_bytes(mask), num_classes=2)
        np.testing.assert_array_equal(pr.labels, GOOD_MASK)
    small = (np.arange(64 * 64).reshape(64, 64) % 3).astype(np.uint8)
    assert sio.read_prediction(png_bytes(small), num_classes=3).labels is not None
    assert sio.read_prediction(png_bytes(small), num_classes=2).labels is None  # 0..2 with 2 classes: probs


def test_prediction_errors_name_the_file():
    with pytest.raises(sio.FileError, match=r"^pred\.npy: probabilities must lie in \[0, 1\]"):
        sio.read_prediction(npy_bytes(np.full((4, 4), 1.5)), name="pred.npy")


# ----------------------------------------------------------------------------------------------
# cases


def test_make_case_widens_hard_prediction_and_takes_gt_spacing():
    gt_lab = np.zeros((5, 16, 16), np.int16)
    gt_lab[1:4, 2:6, 2:6], gt_lab[1:4, 8:12, 8:12] = 1, 2
    gt = sio.read_label_map(nifti_bytes(gt_lab, zooms=(1.0, 1.0, 3.0)))
    pred_lab = (gt_lab == 1).astype(np.uint8)  # class 2 missed entirely
    pred = sio.read_prediction(npy_bytes(pred_lab))
    assert pred.num_classes == 2
    case = sio.make_case(gt, pred, "c")
    assert case.num_classes == 3 and case.spacing == (1.0, 1.0, 3.0)
    np.testing.assert_array_equal(case.probs.argmax(0), pred_lab)
    assert case.probs[2].sum() == 0


def test_make_case_spacing_mismatch_is_a_warning():
    gt = sio.read_label_map(nifti_bytes(GOOD_MASK[:, :, None].astype(np.uint8), zooms=(1.0, 1.0, 1.0)))
    pred = sio.read_prediction(nifti_bytes(soft(GOOD_MASK)[:, :, None], zooms=(2.0, 2.0, 1.0)))
    case = sio.make_case(gt, pred)
    assert case.spacing == (1.0, 1.0) and "differs" in case.meta["warning"]


def test_make_case_label_beyond_prediction_classes():
    gt = sio.read_label_map(npy_bytes((np.arange(64 * 64).reshape(64, 64) % 4).astype(np.uint8)))
    pred = sio.read_prediction(npy_bytes(_probs3()))
    with pytest.raises(sio.FileError, match=r"ground truth has label 3 but the prediction has only 3 classes"):
        sio.make_case(gt, pred)


def test_case_npz_round_trip():
    gt_lab = (np.arange(32 * 32).reshape(32, 32) % 3).astype(np.int64)
    probs = _probs3()[:, :32, :32]
    probs = probs / probs.sum(0)
    case = sc.Case(gt_lab, probs, (0.5, 0.25), "my case", ("bg", "liver", "tumour"))
    back = sio.load_case_npz(sio.save_case_npz(case))
    np.testing.assert_array_equal(back.gt, case.gt)
    np.testing.assert_array_equal(back.probs, case.probs)
    assert (back.spacing, back.name, back.class_names) == (case.spacing, case.name, case.class_names)
    assert back.digest() == case.digest()
    # a saved case is also a valid --gt / --pred upload
    assert np.array_equal(sio.read_label_map(sio.save_case_npz(case)).array, gt_lab)


def test_case_npz_tampered():
    good = dict(gt=np.zeros((8, 8), np.uint8), probs=np.full((2, 8, 8), 0.5, np.float32))
    with pytest.raises(sio.FileError, match=r"probabilities must lie in \[0, 1\]"):
        sio.load_case_npz(npz_bytes(**{**good, "probs": good["probs"] * 3}))
    with pytest.raises(sio.FileError, match=r"pickled data refused"):
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=True, gt=good["gt"], probs=good["probs"], name=np.array([{"x": 1}], dtype=object))
        sio.load_case_npz(buf.getvalue())
    with pytest.raises(sio.FileError, match=r"no 'probs'"):
        sio.load_case_npz(npz_bytes(gt=good["gt"]))
    with pytest.raises(sio.FileError, match=r"8x8 but its probabilities are 2x4x4"):
        sio.load_case_npz(npz_bytes(gt=good["gt"], probs=good["probs"][:, :4, :4]))
    with pytest.raises(sio.FileError, match=r"not a saved case"):
        sio.load_case_npz(GOOD_GT)


# ----------------------------------------------------------------------------------------------
# paths


def test_read_path(tmp_path, monkeypatch):
    ok = tmp_path / "ok.npy"
    ok.write_bytes(GOOD_PRED)
    assert sio.read_path(ok) == GOOD_PRED
    with pytest.raises(sio.FileError, match="no such file"):
        sio.read_path(tmp_path / "missing.png")
    with pytest.raises(sio.FileError, match="is a directory"):
        sio.read_path(tmp_path)
    big = tmp_path / "big.nii"
    with open(big, "wb") as fh:  # sparse: no disk or memory used
        fh.truncate(sio.MAX_UPLOAD_BYTES + 1)
    with pytest.raises(sio.FileError, match=r"the limit is 50\.0 MB"):
        sio.read_path(big)
    monkeypatch.setattr(sio, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(sio.FileError, match="limit"):
        sio.read_path(ok)


def test_case_centre_is_the_centre_of_mass_of_the_class_or_the_foreground():
    from segloss_core import Case

    gt = np.zeros((9, 12), np.int64)
    gt[1:4, 2:5] = 1  # centre (2, 3)
    gt[6:9, 8:12] = 2  # centre (7, 9.5) -> 10 (round half to even)
    probs = np.stack([gt == k for k in range(3)]).astype(np.float32)
    case = Case(gt, probs)
    assert case.centre(1) == (2, 3) and case.centre(2) == (7, 10)
    fg = np.argwhere(gt > 0).mean(0)
    assert case.centre() == case.centre(5) == tuple(int(v) for v in fg.round())  # absent class: the foreground
    assert Case(np.zeros_like(gt), probs).centre() == (4, 6)  # empty: the middle
