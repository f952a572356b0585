"""Data formats and the tile layout in memory: bytes in L1 and DRAM are the hardware's.

A tile is 32x32 values stored as four 16x16 faces (top-left, top-right, bottom-left,
bottom-right), each face row by row. bf16 and fp32 pages hold the faces' values in order.
A bfp8_b page holds 64 shared exponents (one per face row of 16 values, in face order),
then 1024 one-byte mantissas: sign bit and 7 magnitude bits, the magnitude scaled to the
block's largest exponent (so small values in a block with a large one lose bits). A block
holding inf or NaN has no shared exponent that fits: it is stored with exponent 255 and
reads back as NaN, so the damage shows instead of passing for numbers.
Rounding is to nearest, ties to even, everywhere; see docs/numerics.md.
"""
from __future__ import annotations

import sys
from enum import Enum

import ml_dtypes

import numpy as np

from .errors import TTSimError

_BF16 = ml_dtypes.bfloat16
BFP_MANT_BITS = 7           # magnitude bits of a bfp8_b mantissa (the implicit one included)


class DataFormat(Enum):
    BF16 = "bf16"
    FP32 = "fp32"
    BFP8_B = "bfp8_b"

    # members are singletons: identity hashing keeps dicts keyed by format off Enum's slow
    # Python-level __hash__, which the per-tile paths hit constantly
    __hash__ = object.__hash__


_TILE_BYTES = {DataFormat.BF16: 2048, DataFormat.FP32: 4096, DataFormat.BFP8_B: 1088}
for _f, _n in _TILE_BYTES.items():
    _f.tile_bytes = _n          # bytes of one tile page (HARDWARE.md "Tiles and formats")
_ALIASES = {
    "bf16": DataFormat.BF16, "bfloat16": DataFormat.BF16, "float16_b": DataFormat.BF16,
    "fp32": DataFormat.FP32, "float32": DataFormat.FP32,
    "bfp8_b": DataFormat.BFP8_B, "bfloat8_b": DataFormat.BFP8_B, "bfp8": DataFormat.BFP8_B,
}


def parse_format(fmt) -> DataFormat:
    """A DataFormat from itself or a name ("bf16", "bfloat16", "fp32", "float32", "bfp8_b")."""
    if isinstance(fmt, DataFormat):
        return fmt
    key = getattr(fmt, "name", fmt) if not isinstance(fmt, str) else fmt
    hit = _ALIASES.get(str(key).lower())
    if hit is None:
        raise TTSimError(f"unknown data format {fmt!r}: use one of bf16, fp32, bfp8_b")
    return hit


# --- tile layout -------------------------------------------------------------------------
def tilize(a) -> np.ndarray:
    """(..., H, W) -> (n, 32, 32) float32 tiles, row-major over tiles, leading dims first."""
    a = np.asarray(a, np.float32)
    *lead, h, w = a.shape
    if h % 32 or w % 32:
        raise TTSimError(f"shape {a.shape}: the last two dims must be multiples of 32 to tilize")
    t = a.reshape(-1, h // 32, 32, w // 32, 32).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(t).reshape(-1, 32, 32)


def untilize(tiles, shape) -> np.ndarray:
    *lead, h, w = shape
    t = np.asarray(tiles, np.float32).reshape(-1, h // 32, w // 32, 32, 32).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(t).reshape(shape)


def _face_view(tiles):
    """(n, 32, 32) -> a (n, 2, 2, 16, 16) view whose C order is the face order; converting
    it (astype) reorders and converts in one pass."""
    return tiles.reshape(-1, 2, 16, 2, 16).transpose(0, 1, 3, 2, 4)


def _to_faces(tiles):
    """(n, 32, 32) -> (n, 1024) in face order."""
    return _face_view(tiles).reshape(-1, 1024)


def _from_faces(flat, dtype=np.float32):
    """(n, 1024) in face order -> (n, 32, 32), converted to `dtype` in the same pass."""
    n = flat.size // 1024
    return flat.reshape(n, 2, 2, 16, 16).transpose(0, 1, 3, 2, 4).astype(dtype).reshape(n, 32, 32)


# --- bfp8_b ------------------------------------------------------------------------------
def _bfp8_split(blocks):
    """blocks (..., 16) float32 -> (biased shared exponent uint8 (...), signed mantissa int
    (..., 16) in [-127, 127]); the value is mantissa * 2^(exp - 127 - 6)."""
    x = np.asarray(blocks, np.float32)
    mag = np.abs(x)
    _, e = np.frexp(mag.max(axis=-1))            # max in [2^(e-1), 2^e)
    shared = e.astype(np.int32) - 1                # unbiased exponent of the block's largest value
    zero = mag.max(axis=-1) == 0
    biased = np.clip(shared + 127, 0, 255)
    biased[zero] = 0
    # scale from the exponent actually stored: a block whose largest value is below 2^-126
    # keeps exponent 0 and its values round to multiples of 2^-133 (or flush to zero)
    scale = np.ldexp(np.float32(1), biased - 127 - (BFP_MANT_BITS - 1))[..., None]
    m = np.minimum(np.rint(mag / scale), 2 ** BFP_MANT_BITS - 1)
    m[zero] = 0
    bad = ~np.isfinite(mag).all(axis=-1)        # inf/NaN: the whole block reads back as NaN
    biased[bad] = 255
    m[bad] = 0
    return biased.astype(np.uint8), np.where(np.signbit(x), -m, m).astype(np.int32)


def _bfp8_join(biased, mant):
    b = biased.astype(np.int32)
    scale = np.ldexp(np.float32(1), b - 127 - (BFP_MANT_BITS - 1)).astype(np.float32)
    scale[b == 255] = np.nan
    return (mant.astype(np.float32) * scale[..., None]).astype(np.float32)


def quantize(x, fmt) -> np.ndarray:
    """Values rounded to `fmt` as the hardware would store them (float32 result).

    bfp8_b shares an exponent per 16 consecutive values of a row, aligned to 16 columns:
    the face rows of the tile layout. The last dim must be a multiple of 16 for it.
    """
    fmt = parse_format(fmt)
    x = np.asarray(x, np.float32)
    if fmt is DataFormat.FP32:
        return x.copy()
    if fmt is DataFormat.BF16:
        return x.astype(_BF16).astype(np.float32)
    if x.shape[-1] % 16:
        raise TTSimError(f"bfp8_b blocks are 16 values of a row; shape {x.shape} has a last dim "
                         "that is not a multiple of 16")
    blocks = x.reshape(*x.shape[:-1], -1, 16)
    return _bfp8_join(*_bfp8_split(blocks)).reshape(x.shape)


# --- bf16 rounding of large arrays ------------------------------------------------------
_JIT_MIN = 8192           # values (8 tiles) from which the compiled bf16 rounding is faster
_JIT_AFTER = 1 << 29      # values rounded by ml_dtypes (~1.3 s at 2.4 ns) after which loading numba pays
_bulk = [0]


def bulk_bf16_jit(n):
    """Whether to round an array of n values to bf16 with the compiled loop (ttsim.round_jit,
    the same bits as ml_dtypes' casts at an eighth of the time). Loading numba costs about a
    second per process, so the loop is used once numba is loaded anyway, or once this
    process has spent about that second rounding large arrays with ml_dtypes (as in ski
    rental: a run that stops soon after pays at most twice the best choice's cost)."""
    if n < _JIT_MIN:
        return False
    if _bulk[0] >= _JIT_AFTER or "numba" in sys.modules:
        return True
    _bulk[0] += n
    return False


# --- pages -------------------------------------------------------------------------------
def encode_tiles(tiles, fmt) -> np.ndarray:
    """(n, 32, 32) values -> n pages of bytes (flat uint8, n * tile_bytes)."""
    fmt = parse_format(fmt)
    tiles = np.asarray(tiles, np.float32)
    if fmt is DataFormat.FP32:
        return _face_view(tiles).astype(np.float32).view(np.uint8).reshape(-1)
    if fmt is DataFormat.BF16:
        if bulk_bf16_jit(tiles.size):      # the same bits, compiled (ttsim.round_jit)
            from .round_jit import bf16_bits
            return bf16_bits(_face_view(tiles)).view(np.uint8).reshape(-1)
        return _face_view(tiles).astype(_BF16).view(np.uint8).reshape(-1)
    faces = _to_faces(tiles)
    n = faces.shape[0]
    exps, mant = _bfp8_split(faces.reshape(n, 64, 16))
    out = np.empty((n, 1088), np.uint8)
    out[:, :64] = exps
    sign = (mant < 0).astype(np.uint8) << 7
    out[:, 64:] = (sign | np.abs(mant).astype(np.uint8)).reshape(n, 1024)
    return out.reshape(-1)


def decode_tiles(raw, fmt, n) -> np.ndarray:
    """n pages of bytes -> (n, 32, 32) float32 values."""
    fmt = parse_format(fmt)
    raw = np.asarray(raw, np.uint8).reshape(n, fmt.tile_bytes)
    if fmt is DataFormat.FP32:
        return _from_faces(raw.view(np.float32))
    if fmt is DataFormat.BF16:
        return _from_faces(raw.view(_BF16))
    exps = raw[:, :64]
    b = raw[:, 64:].reshape(n, 64, 16)
    mant = (b & 0x7F).astype(np.int32)
    mant = np.where(b & 0x80, -mant, mant)
    return _from_faces(_bfp8_join(exps, mant).reshape(n, 1024))
