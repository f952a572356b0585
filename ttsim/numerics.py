"""What the compute units do to values: source registers, fidelity phases, DST rounding, SFPU.

Every function takes and returns float32 (32, 32) tiles. The model (docs/numerics.md):

- Source registers hold 19-bit values (TF32: 11 significant bits). bf16 and bfp8_b fit
  exactly; fp32 is rounded to nearest on unpack.
- The FPU multiplier takes 7 significant bits of SrcB and 5 of SrcA per phase. A matmul
  `a @ b` has `a` (in0) in SrcB and `b` (in1) in SrcA, as tt-metal's matmul does; an
  element-wise multiply has in0 in SrcA and in1 in SrcB. The phases multiply the mantissa
  slices (A_hi B_hi, A_lo B_hi, A_hi B_lo, A_lo B_lo), truncated, in that order: LoFi runs
  the first, HiFi2 two, HiFi3 three, HiFi4 all four (exact). A tile product is the exact
  sum of its phases' products rounded once to fp32 (the same bits on every machine).
- DST holds fp32 with fp32_dest_acc_en, else bf16: every write to DST rounds to it.
- The SFPU computes in fp32. Overflow to inf and 0/0 are values there, not warnings: the
  kernel threads run under np.errstate(all="ignore") (ttsim.thread).
"""
from __future__ import annotations

from enum import IntEnum

import ml_dtypes
import numpy as np

from .errors import TTSimError
from .formats import DataFormat, bulk_bf16_jit, parse_format

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
    if fmt is not DataFormat.FP32 and (fmt.__class__ is DataFormat or
                                       parse_format(fmt) is not DataFormat.FP32):
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


def _f64(x):
    return np.asarray(x, np.float64)


def matmul(a, b, fidelity=Fidelity.HiFi4):
    """a @ b for tile pairs at `fidelity` (a is in0 in SrcB, b is in1 in SrcA; stacked
    tiles broadcast as in np.matmul): the exact sum of the phases' products, rounded once
    to fp32.

    The sums run in float64, where the products of source-register values (at most 11 x 11
    significant bits) are exact, and so are their sums unless the products spread over more
    than 2^26 in magnitude: the bits are the same on every machine. (A float32 `a @ b` sums
    in the order the BLAS library picks for the CPU: OpenBLAS's AVX2 and AVX-512 kernels
    give different bits.) Exact sums are bilinear, so the phases group into whole-operand
    products: HiFi2's two phases are SrcB_hi x SrcA, one product."""
    fidelity = int(fidelity)
    if fidelity >= Fidelity.HiFi4:
        return (_f64(a) @ _f64(b)).astype(np.float32)
    in0_hi = keep_bits(a, SRCB_BITS)
    if fidelity == Fidelity.LoFi:
        return (_f64(in0_hi) @ _f64(keep_bits(b, SRCA_BITS))).astype(np.float32)
    out = _f64(in0_hi) @ _f64(b)
    if fidelity == Fidelity.HiFi3:
        out += _f64(a - in0_hi) @ _f64(keep_bits(b, SRCA_BITS))
    return out.astype(np.float32)


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
    """One tile (32, 32) or a stack of them (..., 32, 32), each transposed."""
    return np.ascontiguousarray(np.swapaxes(tile, -1, -2))


def bcast(tile, dim):
    """Broadcast of in1 as the unpacker does it: 'row' repeats row 0 down the tile, 'col'
    repeats column 0 across it, 'scalar' repeats element [0, 0] (of each tile of a stack)."""
    if dim == "row":
        return np.repeat(tile[..., 0:1, :], 32, axis=-2)
    if dim == "col":
        return np.repeat(tile[..., :, 0:1], 32, axis=-1)
    if dim == "scalar":
        return np.repeat(np.repeat(tile[..., 0:1, 0:1], 32, axis=-2), 32, axis=-1)
    raise TTSimError(f"unknown broadcast {dim!r}: use row, col or scalar")


def reduce(tile, op, dim, scaler=1.0, *, fidelity=None, fp32_dst=True, fp32_src=False,
           enforce_fp32_acc=False, acc=None):
    """Reduce a tile scaled by `scaler`: 'row' leaves each row's result in column 0, 'col'
    each column's in row 0, 'scalar' the whole tile's in [0, 0]; the rest is zero.

    With fidelity=None the reduce is ideal: scale and sum (or max) in float32. With a
    fidelity it is the FPU's (SFPU.md §5, docs/numerics.md "FPU reduce precision"): the
    tile as it sits in SrcA (fp32_src: TF32, from fp32 input), the scaler in SrcB, sums by
    GAPOOL at that fidelity into a DST of fp32_dst's format, a row result moved through
    SrcB by MOVD2B (truncated unless enforce_fp32_acc), maxima by GMPOOL. `acc` is the DST
    tile the reduce accumulates into (None: a fresh one)."""
    if fidelity is not None:
        return _reduce_fpu(tile, op, dim, scaler, parse_fidelity(fidelity), fp32_dst,
                           fp32_src, enforce_fp32_acc, acc)
    f = (np.add if op == "sum" else np.maximum).reduce     # np.sum / np.max, minus their wrapper
    x = tile * np.float32(scaler)        # one tile, or a stack of them (..., 32, 32)
    out = np.zeros(x.shape, np.float32)
    if dim == "row":
        out[..., :, 0] = f(x, axis=-1)
    elif dim == "col":
        out[..., 0, :] = f(x, axis=-2)
    else:
        out[..., 0, 0] = f(x.reshape(x.shape[:-2] + (1024,)), axis=-1)
    return out if acc is None else reduce_accumulate(acc, out, op)


# --- the FPU's reduce (SFPU.md §5) ---------------------------------------------------------
GAPOOL_SRCA_BITS = 10            # §5: phases 0-1 take 5 + 5 of SrcA; the lowest TF32 bit never
GAPOOL_SRCB_BITS = 11            # §5: phases 0/2 take 7 + 4 of SrcB's 11 significant bits
_TINY = 2.0 ** -126


def _ftz(x):
    """The FPU treats denormals as zero (§5): flushed, sign kept."""
    x = np.asarray(x, np.float32)
    small = np.abs(x) < _TINY
    return np.where(small, np.copysign(np.float32(0), x), x) if small.any() else x


def gapool_to_dst(value, fp32_dst):
    """One GAPOOL (or the row reduce's ELWADD) landing in DST. §5 leaves the summation order
    and precision open and does not name the bf16 rounding: the model sums the 16 products
    and the DST value exactly (float64), rounds once to fp32 to nearest even, then for a
    16-bit DST to bf16 to nearest even; denormals are flushed. This is the one place."""
    r = _ftz(np.asarray(value, np.float64).astype(np.float32))
    return r if fp32_dst else _ftz(r.astype(_BF16).astype(np.float32))


def movd2b(value, fp32_src, enforce_fp32_acc):
    """A row-reduce result moved DST -> SrcB (§5): truncated to bf16, or to TF32 when SrcA
    holds TF32 (fp32 input), unless enforce_fp32_acc moves the hi16 and lo16 halves."""
    if enforce_fp32_acc:
        return np.asarray(value, np.float32)
    return _ftz(keep_bits(value, 11 if fp32_src else 8))


def _gapool_phases(srca, scaler, fidelity):
    """The products GAPOOL's fidelity phases add (§5): SrcA's 5 leading significant bits and
    its next 5 (3 for bf16), SrcB's 7 and its next 4, in the order (A_hi B_hi), (A_lo B_hi),
    (A_hi B_lo), (A_lo B_lo); LoFi runs the first, HiFi4 all four. Each is exact in float64."""
    a = keep_bits(_ftz(srca), GAPOOL_SRCA_BITS)
    s = keep_bits(_ftz(np.array([scaler], np.float32)), GAPOOL_SRCB_BITS)
    a_hi, s_hi = keep_bits(a, SRCA_BITS), keep_bits(s, SRCB_BITS)
    pairs = [(a_hi, s_hi), (a - a_hi, s_hi), (a_hi, s - s_hi), (a - a_hi, s - s_hi)]
    return [pa.astype(np.float64) * float(pb[0]) for pa, pb in pairs[:int(fidelity)]]


def _gapool_chunks(tile, dim):
    """The (16, n) SrcA blocks GAPOOL sums down their 16 rows, in issue order: a column's top
    face then bottom face; a row's left then right face (the unpacker transposes each face);
    for scalar, the four faces TL, TR, BL, BR into 16 shared column partials."""
    if dim == "col":
        return [tile[:16], tile[16:]]
    if dim == "row":
        return [tile[:, :16].T, tile[:, 16:].T]
    return [tile[:16, :16], tile[:16, 16:], tile[16:, :16], tile[16:, 16:]]


def _reduce_fpu(tile, op, dim, scaler, fidelity, fp32_dst, fp32_src, enforce, acc):
    chunks = _gapool_chunks(np.asarray(tile, np.float32), dim)
    n = 16 if dim == "scalar" else 32
    start = None
    if acc is not None and dim == "col":
        start = np.asarray(acc, np.float32)[0, :]
    if op == "sum":
        d = np.zeros(n, np.float32) if start is None else start
        for ch in chunks:
            for prod in _gapool_phases(ch, scaler, fidelity):
                d = gapool_to_dst(d.astype(np.float64) + prod.sum(axis=0), fp32_dst)
    else:
        # GMPOOL (§5): SrcA scaled by 2^(exponent of the scaler) only, compared at bf16 (7
        # mantissa bits) or TF32 (10) precision, against the DST row.
        e = (int(_bits(np.float32(scaler))[0]) >> 23) & 0xFF
        x = [_ftz((_ftz(ch).astype(np.float64) * 2.0 ** (e - 127)).astype(np.float32)) for ch in chunks]
        d = np.max([keep_bits(v, 11 if fp32_src else 8).max(axis=0) for v in x], axis=0)
        d = gapool_to_dst(d if start is None else np.maximum(start, d), fp32_dst)
    out = np.zeros((32, 32), np.float32)
    if dim == "col":
        out[0, :] = d
        return out
    moved = movd2b(d, fp32_src, enforce)
    old = None if acc is None else np.asarray(acc, np.float32)
    if dim == "row":
        if op == "sum":
            prev = 0.0 if old is None else old[:, 0].astype(np.float64)
            out[:, 0] = gapool_to_dst(prev + moved, fp32_dst)
        else:
            out[:, 0] = moved if old is None else gapool_to_dst(np.maximum(old[:, 0], moved), fp32_dst)
        return out
    # scalar: the 16 partials, moved and transposed, pooled once more with unit products
    if op == "sum":
        prev = 0.0 if old is None else float(old[0, 0])
        out[0, 0] = gapool_to_dst(prev + moved.astype(np.float64).sum(), fp32_dst)
    else:
        m = moved.max()
        out[0, 0] = m if old is None else gapool_to_dst(max(old[0, 0], m), fp32_dst)
    return out


def reduce_accumulate(old, new, op):
    """A reduction into a DST tile that already holds a partial result."""
    return old + new if op == "sum" else np.maximum(old, new)


def dst_round(value, fp32_acc):
    """A value written to DST: fp32, or bf16 in the 16-bit mode (round to nearest even)."""
    v = np.asarray(value, np.float32)
    if fp32_acc:
        return v
    if bulk_bf16_jit(v.size):
        from .round_jit import bf16_round
        return bf16_round(v)
    return v.astype(_BF16).astype(np.float32)


def _in_f64(fn):
    """fn evaluated in float64, rounded once to float32. numpy's transcendentals have
    CPU-specific implementations (AVX2, AVX-512, the C library elsewhere) that differ in the
    last bit, in float32 as in float64; a float64 difference changes the float32 result only
    for a value within about 2^-29 (relative) of a rounding boundary, so the bits are the
    same on every machine but for about one value in 10^8."""
    def f(x):
        return fn(np.asarray(x, np.float64)).astype(np.float32)
    return f


def _gelu(x):
    """The tanh form, 0.5 x (1 + tanh(y)), written x / (1 + exp(-2y)): the same function
    without the cancellation in 1 + tanh(y) near -1 that turns tanh's last-bit differences
    between machines into visible ones."""
    return x / (1 + np.exp(-2 * 0.7978845608 * (x + 0.044715 * (x * x * x))))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


SFPU_UNARY = {
    "exp": _in_f64(np.exp), "exp2": _in_f64(np.exp2), "log": _in_f64(np.log), "sqrt": np.sqrt,
    "rsqrt": lambda x: np.float32(1) / np.sqrt(x), "recip": lambda x: np.float32(1) / x,
    "tanh": _in_f64(np.tanh), "sigmoid": _in_f64(_sigmoid),
    "relu": lambda x: np.maximum(x, np.float32(0)), "gelu": _in_f64(_gelu),
    "silu": _in_f64(lambda x: x * _sigmoid(x)), "abs": np.abs, "neg": np.negative,
    "square": np.square, "sin": _in_f64(np.sin), "cos": _in_f64(np.cos),
}
SFPU_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "max": np.maximum, "min": np.minimum,
}

