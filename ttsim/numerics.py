"""What the compute units do to values: source registers, fidelity phases, DST rounding, SFPU.

Every function takes and returns float32 (32, 32) tiles. The model (docs/numerics.md):

- Source registers hold 19-bit values (TF32: 11 significant bits). bf16 and bfp8_b fit
  exactly; fp32 is rounded to nearest on unpack.
- The FPU multiplier takes 7 significant bits of SrcB and 5 of SrcA per phase. A matmul
  `a @ b` has `a` (in0) in SrcB and `b` (in1) in SrcA, as tt-metal's matmul does; an
  element-wise multiply has in0 in SrcA and in1 in SrcB. The phases multiply the mantissa
  slices (A_hi B_hi, A_lo B_hi, A_hi B_lo, A_lo B_lo), truncated, in that order: LoFi runs
  the first, HiFi2 two, HiFi3 three, HiFi4 all four (exact). Products accumulate in fp32.
- DST holds fp32 with fp32_dest_acc_en, else bf16: every write to DST rounds to it.
- The SFPU computes in fp32. Overflow to inf and 0/0 are values there, not warnings: the
  kernel threads run under np.errstate(all="ignore") (ttsim.thread).
"""
from __future__ import annotations

from enum import IntEnum

import ml_dtypes
import numpy as np

from .errors import TTSimError
from .formats import DataFormat, parse_format

_BF16 = ml_dtypes.bfloat16
SRCA_BITS, SRCB_BITS = 5, 7      # significant bits per fidelity phase (HARDWARE.md)
TF32_DROP = 13                   # fp32 mantissa bits a source register does not hold


class Fidelity(IntEnum):
    """Math fidelity; the value is the number of multiplier phases."""
    LoFi = 1
    HiFi2 = 2
    HiFi3 = 3
    HiFi4 = 4


def parse_fidelity(f) -> Fidelity:
    if isinstance(f, Fidelity):
        return f
    if isinstance(f, str):
        for m in Fidelity:
            if m.name.lower() == f.lower():
                return m
    raise TTSimError(f"unknown math fidelity {f!r}: use LoFi, HiFi2, HiFi3 or HiFi4")


def _bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def keep_bits(x, k):
    """x truncated to its k most significant mantissa bits (the implicit one included)."""
    mask = np.uint32((0xFFFFFFFF << (24 - k)) & 0xFFFFFFFF)
    return (_bits(x) & mask).view(np.float32)


def to_src(tile, fmt):
    """A tile as a source register holds it: fp32 rounds (to nearest even) to TF32."""
    if parse_format(fmt) is not DataFormat.FP32:
        return tile
    b = _bits(tile)
    finite = (b & 0x7F800000) != 0x7F800000
    r = (b + np.uint32((1 << (TF32_DROP - 1)) - 1) + ((b >> TF32_DROP) & 1)) & \
        np.uint32((0xFFFFFFFF << TF32_DROP) & 0xFFFFFFFF)
    return np.where(finite, r, b).view(np.float32)


def _phases(srca, srcb, fidelity):
    """The (srca_part, srcb_part) pairs that `fidelity` multiplies."""
    a_hi = keep_bits(srca, SRCA_BITS)
    b_hi = keep_bits(srcb, SRCB_BITS)
    pairs = [(a_hi, b_hi), (srca - a_hi, b_hi), (a_hi, srcb - b_hi), (srca - a_hi, srcb - b_hi)]
    return pairs[:int(fidelity)]


def matmul(a, b, fidelity=Fidelity.HiFi4):
    """a @ b for one tile pair at `fidelity` (a is in0 in SrcB, b is in1 in SrcA)."""
    if fidelity >= Fidelity.HiFi4:
        return a @ b
    out = None
    for pa, pb in _phases(b, a, fidelity):
        p = pb @ pa
        out = p if out is None else out + p
    return out


def eltwise(op, a, b, fidelity=Fidelity.HiFi4):
    """FPU element-wise add/sub/mul of in0 (SrcA) and in1 (SrcB)."""
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        if fidelity >= Fidelity.HiFi4:
            return a * b
        out = None
        for pa, pb in _phases(a, b, fidelity):
            p = pa * pb
            out = p if out is None else out + p
        return out
    raise TTSimError(f"unknown FPU element-wise op {op!r}")


def transpose(tile):
    return np.ascontiguousarray(tile.T)


def bcast(tile, dim):
    """Broadcast of in1 as the unpacker does it: 'row' repeats row 0 down the tile, 'col'
    repeats column 0 across it, 'scalar' repeats element [0, 0]."""
    if dim == "row":
        return np.repeat(tile[0:1, :], 32, axis=0)
    if dim == "col":
        return np.repeat(tile[:, 0:1], 32, axis=1)
    if dim == "scalar":
        return np.full((32, 32), tile[0, 0], np.float32)
    raise TTSimError(f"unknown broadcast {dim!r}: use row, col or scalar")


def reduce(tile, op, dim, scaler=1.0):
    """Reduce a tile scaled by `scaler`: 'row' leaves each row's result in column 0, 'col'
    each column's in row 0, 'scalar' the whole tile's in [0, 0]; the rest is zero."""
    f = np.sum if op == "sum" else np.max
    x = tile * np.float32(scaler)
    out = np.zeros((32, 32), np.float32)
    if dim == "row":
        out[:, 0] = f(x, axis=1)
    elif dim == "col":
        out[0, :] = f(x, axis=0)
    else:
        out[0, 0] = f(x)
    return out


def reduce_accumulate(old, new, op):
    """A reduction into a DST tile that already holds a partial result."""
    return old + new if op == "sum" else np.maximum(old, new)


def dst_round(value, fp32_acc):
    """A value written to DST: fp32, or bf16 in the 16-bit mode."""
    v = np.asarray(value, np.float32)
    return v if fp32_acc else v.astype(_BF16).astype(np.float32)


def _gelu(x):
    return np.float32(0.5) * x * (1 + np.tanh(np.float32(0.7978845608) * (x + np.float32(0.044715) * x ** 3)))


def _sigmoid(x):
    return np.float32(1) / (np.float32(1) + np.exp(-x))


SFPU_UNARY = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "sqrt": np.sqrt,
    "rsqrt": lambda x: np.float32(1) / np.sqrt(x), "recip": lambda x: np.float32(1) / x,
    "tanh": np.tanh, "sigmoid": _sigmoid, "relu": lambda x: np.maximum(x, np.float32(0)),
    "gelu": _gelu, "silu": lambda x: x * _sigmoid(x), "abs": np.abs, "neg": np.negative,
    "square": np.square, "sin": np.sin, "cos": np.cos,
}
SFPU_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "max": np.maximum, "min": np.minimum,
}

