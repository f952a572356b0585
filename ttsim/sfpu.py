"""Wormhole B0's SFPU kernels bit for bit in numpy: exp, reciprocal, sqrt, rsqrt.

Each function takes the DST values as SFPLOAD hands them to the SFPU (float32 of any
shape; a 16-bit DST's bf16 values widened) and returns exactly what the kernel leaves in
DST: fp32 bits, or for a 16-bit DST a bf16-representable float32, rounded half away
(SFPSTOCHRND) or truncated (plain SFPSTORE) as that kernel does. The algorithms, their
constants and every bit operation come from /work/shared/SFPU.md (the section is cited
at each constant); the docs are docs/numerics.md, "SFPU algorithms".

Where SFPU.md leaves a choice, the model takes what tt-metal's current kernels run
(METAL's dispatch, SFPU.md §1.0), and each choice sits in one place:

- `EXP_ACCURATE = "metal"`: exp's accurate mode is METAL's exp_21f TTI body for a bf16
  DST (§1.3', c0 = 1.001953125) and METAL's Juffa-derived fp32 exp for an fp32 DST
  (§1.4'). "llk" selects LLK's `_sfpu_exp_accurate_` instead (§1.3 with c0 = 1.0017248,
  §1.4), the one LLK's exp2/elu/sigmoid use.
- `CLAMP_NEGATIVE = True`: the fast exp clamps at -88.5 (§1.1, the SDPA path) and exp_21f
  keeps its max(L, 0) swap (§1.3'); False gives §1.1b and the swap-less exp_21f.
- `LREG8_BITS`: the fixed constant "0.8373" (only the legacy exp, §1.5, reads it).
- `mad`: SFPMAD's partially fused product taken as exact, one RNE rounding (§0).
- `_negative`: the float compares of v_if are IEEE (NaN false, -0 not negative) (§6 c).
- `QNAN_BITS` and `to_int`: the NaN an SFPMAD produces, and NaN/inf into SFPSTOCHRND's
  float-to-int modes (saturate), neither given by SFPU.md.

Blackhole is assumed to run the same algorithms (SFPU.md describes Wormhole B0 only).
inf and NaN are values: the arithmetic runs under np.errstate(all="ignore").
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

_F32, _F64, _U32 = np.float32, np.float64, np.uint32
_M32 = 0xFFFFFFFF

EXP_ACCURATE = "metal"           # §1.0: "metal" (§1.3'/§1.4') or "llk" (§1.3/§1.4)
CLAMP_NEGATIVE = True            # §1.1 / §1.3' CLAMP_NEGATIVE template flag
LREG8_BITS = 0x3F56594B          # §0: LReg8 = 0.8373, exact bits undocumented (nearest fp32)
QNAN_BITS = 0x7FC00000           # SFPMAD's NaN pattern: not in SFPU.md; +qNaN chosen
EXP_MODES = ("fast", "approx", "accurate", "legacy")


# --- bits ----------------------------------------------------------------------------------
def bits(x):
    """The uint32 pattern of float32 values."""
    return np.asarray(x, _F32).view(_U32)


def from_bits(b):
    """float32 values from bit patterns (any integer array; taken mod 2^32)."""
    return (np.asarray(b).astype(np.int64) & _M32).astype(_U32).view(_F32)


def _i(x):
    return bits(x).astype(np.int64)


def exexp(x, debias=True):
    """SFPEXEXP: the exponent field, minus 127 unless NODEBIAS (§0)."""
    e = (_i(x) >> 23) & 0xFF
    return e - 127 if debias else e


def exman(x, pad8=True):
    """SFPEXMAN: the mantissa; PAD8 adds the hidden bit, even for 0 and denormals (§0)."""
    m = _i(x) & 0x7FFFFF
    return m | 0x800000 if pad8 else m


def setexp(x, e):
    """SFPSETEXP: exponent field <- low 8 bits of e (§0)."""
    return from_bits((_i(x) & 0x807FFFFF) | ((np.asarray(e, np.int64) & 0xFF) << 23))


def setman(x, m):
    """SFPSETMAN: mantissa <- low 23 bits of m (§0)."""
    return from_bits((_i(x) & 0xFF800000) | (np.asarray(m, np.int64) & 0x7FFFFF))


def setsgn(x, s):
    """SFPSETSGN: sign <- s (0 or 1), or the sign of float32 array `s` (§0)."""
    s = (_i(s) >> 31) if np.asarray(s).dtype == _F32 else np.asarray(s, np.int64)
    return from_bits((_i(x) & 0x7FFFFFFF) | ((s & 1) << 31))


def addexp(x, n):
    """SFPDIVP2 ADD: E <- (E + n) mod 256, unless E = 255 (§0)."""
    b = _i(x)
    e = (b >> 23) & 0xFF
    return from_bits(np.where(e == 255, b, (b & 0x807FFFFF) | (((e + n) & 0xFF) << 23)))


def shft(v, amount):
    """SFPSHFT of a 32-bit integer: left for amount >= 0, logical right otherwise; the
    amount's magnitude is taken mod 32 (so -127 shifts right by 31) (§0)."""
    v = np.asarray(v, np.int64) & _M32
    a = np.asarray(amount, np.int64)
    return np.where(a >= 0, (v << (a % 32)) & _M32, v >> ((-a) % 32))


def _order(x):
    """SFPSWAP's order: the bits as sign-magnitude, -NaN < -inf < ... < -0 < +0 < ... < +NaN."""
    i = np.asarray(x, _F32).view(np.int32)
    return i ^ ((i >> 31) & 0x7FFFFFFF)


def vec_max(a, b):
    """SFPSWAP VEC_MIN_MAX, the max half (§0)."""
    a, b = np.broadcast_arrays(np.asarray(a, _F32), np.asarray(b, _F32))
    return np.where(_order(a) >= _order(b), a, b)


def vec_min(a, b):
    """SFPSWAP VEC_MIN_MAX, the min half (§0)."""
    a, b = np.broadcast_arrays(np.asarray(a, _F32), np.asarray(b, _F32))
    return np.where(_order(a) <= _order(b), a, b)


_TINY = 2.0 ** -126                  # smallest normal float32


def _in64(v):
    """An SFPMAD operand in float64: a denormal reads as a zero of its sign (§0)."""
    if np.ndim(v) == 0:
        f = float(np.float32(v))
        return math.copysign(0.0, f) if abs(f) < _TINY else f
    a = np.asarray(v, _F32)
    small = np.abs(a) < _TINY
    return (np.where(small, np.copysign(_F32(0), a), a) if small.any() else a).astype(_F64)


def _negative(x):
    """The v_if float compare x < 0: IEEE, so NaN and -0 are not negative. The SFPU's
    compare semantics for NaN and -0 are not in SFPU.md (§6 c); this is the choice."""
    return np.asarray(x, _F32) < 0


# --- primitives ----------------------------------------------------------------------------
def mad(a, b, c):
    """SFPMAD d = a*b + c (§0): denormal inputs read as 0; the exact a*b + c rounded once
    to fp32 (RNE); denormal and -0 results become +0; a NaN result is QNAN_BITS.

    The hardware keeps the product "wider than fp32, but not exactly"; the model takes it
    as exact (§0 allows a 1-ulp difference where the product needs more than 48 bits).
    The product is exact in float64; the float64 sum is rounded once more only when it
    lands exactly on a float32 midpoint, where the two-sum error decides the side."""
    a, b, c = _in64(a), _in64(b), _in64(c)
    with np.errstate(all="ignore"):
        p = np.multiply(a, b, dtype=_F64)
        s = np.add(p, c, dtype=_F64)
        sb = s.view(np.int64)
        tie = (sb & 0x1FFFFFFF) == 0x10000000
        if tie.any():
            bv = s - p
            err = (p - (s - bv)) + (c - bv)            # two-sum: p + c = s + err exactly
            tie &= (err != 0) & np.isfinite(err)
            s = np.where(tie, (sb + np.where((err > 0) == (s > 0), 1, -1)).view(_F64), s)
        r = s.astype(_F32)
    small = np.abs(r) < _TINY
    if small.any():
        r = np.where(small, _F32(0), r)
    nan = np.isnan(r)
    return np.where(nan, _f(QNAN_BITS), r) if nan.any() else r


def store(x, fp32_dst):
    """SFPSTORE into DST (§4): fp32 keeps every bit (denormals too); bf16 flushes
    denormals to a signed zero, then truncates the low 16 bits (NaN can become inf)."""
    if fp32_dst:
        return np.array(x, _F32)
    b = bits(x)
    out = b & _U32(0xFFFF0000)
    denormal = (b & _U32(0x7F800000)) == 0
    if denormal.any():
        out = np.where(denormal, b & _U32(0x80000000), out)
    return out.view(_F32)


def round_fp16b(x):
    """SFPSTOCHRND FP32->FP16B with rnd = 0 (`float_to_fp16b(v, 0)`, §4): E = 0 gives +0
    (so -0 too), E = 255 keeps sign and exponent (NaN -> inf), otherwise the magnitude
    rounds half away from zero (the carry can reach inf). Not ties to even."""
    b = _i(x)
    e = (b >> 23) & 0xFF
    d = b & 0xFFFF
    r = (b - d) + np.where(d >= 0x8000, 0x10000, 0)
    r = np.where(e == 0, 0, np.where(e == 255, b & 0xFF800000, r))
    return from_bits(r)


def to_int(x, max_mag, signed):
    """SFPSTOCHRND FP32->INT16/UINT16 with rnd = 0 (§1.1 step 3, §4): |x| rounded half
    away from zero, < 0.5 gives 0, clamped to max_mag; the unsigned modes drop the sign.
    Returns int64 (sign and magnitude as a signed value). NaN and inf saturate like any
    |x| >= 2^16 (exponent 255 is large; SFPU.md does not say)."""
    x = np.asarray(x, _F32)
    with np.errstate(all="ignore"):
        mag = np.floor(np.abs(x.astype(_F64)) + 0.5)
    n = np.where(np.isfinite(mag), np.minimum(mag, max_mag), max_mag).astype(np.int64)
    return np.where(signed & (_i(x) >> 31 == 1), -n, n)


def to_uint16(x):
    """FP32->UINT16 (mod1 = 6), as the fast exp rounds (§1.1 step 3)."""
    return to_int(x, 65535, False)


def to_int16(x):
    """FP32->INT16 (mod1 = 7), sign-magnitude, |n| <= 32767 (§1.1b, §1.4')."""
    return to_int(x, 32767, True)


def int_to_float(n):
    """SFPCAST int -> fp32, mode 0 (RNE) (§0)."""
    return np.asarray(n, np.int64).astype(_F32)


def _f(b):
    return from_bits(np.int64(b))


def _fp16_imm(h):
    """SFPLOADI of an FP16 immediate: exponent rebiased by +112, no special cases (§0)."""
    return from_bits(((h & 0x8000) << 16) | ((((h >> 10) & 0x1F) + 112) << 23) | ((h & 0x3FF) << 13))


def _bf16_trunc(v):
    """`sFloat16b(f)`: a constant truncated to bf16 (§0)."""
    return from_bits(bits(_F32(v)) & 0xFFFF0000)


_INF, _ZERO, _ONE = _f(0x7F800000), _F32(0), _F32(1)


# --- exp -----------------------------------------------------------------------------------
FAST_THRESHOLD = _f(0xC2B10000)      # §1.1 LREG14: -88.5 (scale 1)
FAST_A = _f(0x43B8AA3B)              # §1.1 LREG12: 256/ln2 = 369.329925537109375
FAST_B_MINUS_C = _f(0x46FDE9A3)      # §1.1 LREG13: 127*256 - 11.181640625 = 32500.818359375


def _exp_fast(x, fp32_dst, clamp):
    """Schraudolph: N = round(A x + B - C) as a uint, N << 15 is the float (§1.1). The
    sanitize step writes max(x, -88.5) back into DST and the compute reloads it; the final
    store overwrites it, so only the result is returned. Without the clamp (§1.1b) the
    round is to INT16 and the sign is copied back (valid for x in [-88, 0.72])."""
    if clamp:
        v = mad(FAST_A, vec_max(x, FAST_THRESHOLD), FAST_B_MINUS_C)
        return store(from_bits(to_uint16(v) << 15), fp32_dst)
    v = mad(FAST_A, x, FAST_B_MINUS_C)
    n = np.abs(to_int16(v))
    return store(from_bits((n << 15) | ((_i(v) >> 31) << 31)), fp32_dst)


APPROX_LOG2E = _f(0x3FB8AA3B)        # §1.2 Prgm0: 1.442695
APPROX_C23_73 = _f(0x43400000)       # §1.2 Prgm1: bf16 0x4340 = 192.0
APPROX_ADJ_EXP = 0xBD3F0000          # §1.2 Prgm2: p_exp::ADJ_EXP = 0xBD3F << 16
APPROX_HI, APPROX_LO = _F32(89), _F32(-42)   # §1.2 step 2 guards


def _exp_approx(x, fp32_dst):
    """LLK's piecewise approx exp: t = x/ln2 + 192, out_bits = (bits(t) + ADJ) << 7, i.e.
    2^floor(z) (1 + frac z) for x in [-42, 44.36); +inf from 89, 0 below -42 (§1.2)."""
    t = mad(x, APPROX_LOG2E, APPROX_C23_73)
    out = from_bits(((_i(t) + APPROX_ADJ_EXP) << 7) & _M32)
    x = np.asarray(x, _F32)
    out = np.where(x >= APPROX_HI, _INF, np.where(x < APPROX_LO, _ZERO, out))
    return store(out, fp32_dst)


EXP21F_ONE_LN2 = _f(0x3FB8AA3B)      # §1.3 ONE_LN2
EXP21F_C0_LLK = _f(0x3F803885)       # §1.3 c0 = 1.0017248
EXP21F_C0_METAL = _fp16_imm(0x3C02)  # §1.3' c0 as FP16 immediate 0x3C02 = 1.001953125
EXP21F_C1 = _f(0x33A85ADA)           # §1.3 c1 = 7.839635491371155e-08
EXP21F_C2 = _f(0x27ACA418)           # §1.3 c2 = 4.791750143340323e-15


def exp_21f(x, c0, clamp):
    """Moroz et al.'s exp_21f before any rounding (§1.3): L = x/ln2 + 127 clamped to
    [0, 255] (the 0 side only with `clamp`), Z = floor(L 2^23) via the mod-32 shift, the
    exponent of Z kept and its mantissa replaced by c0 + f (c1 + f c2). L = 255 gives a NaN
    pattern (neither LLK HEAD nor METAL's TTI body fixes it) and K = 0 a denormal one."""
    lg = mad(x, EXP21F_ONE_LN2, _F32(127))
    if clamp:
        lg = vec_max(lg, _ZERO)
    lg = vec_min(lg, _F32(255))
    z = from_bits(shft(exman(lg, pad8=True), exexp(lg)))
    k = exexp(z, debias=False)
    f = int_to_float(exman(z, pad8=False))
    p = mad(f, mad(f, EXP21F_C2, EXP21F_C1), c0)
    return setexp(p, k)


EXPF_LOG2E = _f(0x3FB8AA3B)          # §1.4 step 1 / §1.4' step 1: 1.442695
EXPF_RND = _f(0x4B400000)            # §1.4 step 3: 2^23 + 2^22
EXPF_LN2_HI, EXPF_LN2_LO = _f(0xBF317000), _f(0xB805FDF4)   # §1.4 step 4
EXPF_TAYLOR = tuple(_f(b) for b in (0x3F800000, 0x3F800000, 0x3F000000, 0x3E2AAAAB,
                                    0x3D2AAAAB, 0x3C088889, 0x3AB60B61, 0x39500D01))  # §1.4 step 5
JUFFA_HI, JUFFA_LO = _f(0xBF317200), _f(0xB5BFBE8E)          # §1.4' step 3
JUFFA_POLY = tuple(_f(b) for b in (0x3AB4A000, 0x3C092F6E, 0x3D2AADAD, 0x3E2AAA28,
                                   0x3EFFFFFB))               # §1.4' step 4, highest first


def _nan_in_nan_out(x, y):
    """NaN inputs of the fp32 exps give NaN: the source's intent ("keeps NaN", the NaN
    branch) where the bit path is uncertain (§1.4 step 2, §1.4' step 6, §6 c)."""
    return np.where(np.isnan(x), _f(QNAN_BITS), y)


def exp_fp32_llk(x):
    """LLK's `_sfpu_exp_fp32_accurate_` (§1.4): Cody-Waite with k = round(x/ln2), Taylor
    degree 7, the exponent of p raised by k; +inf for z >= 128, 0 for z <= -127."""
    x = np.asarray(x, _F32)
    z = mad(x, EXPF_LOG2E, _ZERO)
    tmp = mad(z, _ONE, EXPF_RND)
    k = mad(tmp, _ONE, -EXPF_RND)
    k_int = _i(tmp) - 0x4B400000
    r = mad(k, EXPF_LN2_LO, mad(k, EXPF_LN2_HI, x))
    p = EXPF_TAYLOR[-1]
    for c in EXPF_TAYLOR[-2::-1]:
        p = mad(p, r, c)
    y = setexp(p, exexp(p, debias=False) + k_int)
    y = np.where(z >= 128, _INF, np.where(z <= -127, _ZERO, y))
    return _nan_in_nan_out(x, y)


def exp_fp32_metal(a):
    """METAL's Juffa-derived fp32 exp (§1.4'): j = round-half-away(a/ln2) through INT16,
    Cody-Waite, degree-6 polynomial, result exponent E(r) + j: +inf from 255, 0 below 1."""
    a = np.asarray(a, _F32)
    j = to_int16(mad(EXPF_LOG2E, a, _ZERO))
    jf = int_to_float(j)
    f = mad(jf, JUFFA_LO, mad(jf, JUFFA_HI, a))
    r = JUFFA_POLY[0]
    for c in JUFFA_POLY[1:]:
        r = mad(r, f, c)
    r = mad(mad(r, f, _ONE), f, _ONE)
    e = exexp(r, debias=False) + j
    y = np.where(e >= 1, np.where(e < 255, setexp(r, e), _INF), _ZERO)
    return _nan_in_nan_out(a, y)


LEGACY_C1 = _bf16_trunc(0.863281)    # §1.5 step 3: sFloat16b(0.863281) = 0.859375


def _exp_legacy(x, fp32_dst):
    """LLK's `_calculate_exponential_` !APPROX (§1.5): a quadratic on |x| scaled into
    [0.5, 1), squared min(e, 7) + 1 times, the reciprocal (2 NR) for x < 0; no rounding
    before the store. Meant for |x| < 256."""
    x = np.asarray(x, _F32)
    v = setsgn(x, 0)
    e = exexp(v)
    v = np.where(e >= 0, setexp(v, 126), v)
    p = mad(v, mad(v, _f(LREG8_BITS), LEGACY_C1), _ONE)
    n = np.where(e >= 0, np.minimum(e, 7) + 1, 0)
    for i in range(8):
        p = np.where(i < n, mad(p, p, _ZERO), p)
    return store(np.where(_negative(x), _recip(p, 2), p), fp32_dst)


COMPOSED_MIN = 16384      # values from which exp's fast and approx run as numpy compositions


def exp(x, mode="accurate", fp32_dst=False, *, clamp_negative=None, variant=None):
    """exp of the DST values in `mode`, as it lands in DST.

    fast: Schraudolph (§1.1; the -88.5 clamp unless clamp_negative=False, §1.1b), what
    METAL runs for APPROX. approx: LLK's piecewise kernel (§1.2). accurate: METAL's !APPROX
    (variant "metal": §1.3' for a bf16 DST, §1.4' for fp32) or LLK's `_sfpu_exp_accurate_`
    ("llk": §1.3 / §1.4); default EXP_ACCURATE. legacy: LLK's own !APPROX path (§1.5)."""
    clamp = CLAMP_NEGATIVE if clamp_negative is None else clamp_negative
    variant = variant or EXP_ACCURATE
    # fast and approx: a few tiles run compiled (the bits of _exp_fast and _exp_approx in one
    # pass, ~16 ns a value, where the compositions pay ~100 us of numpy calls per call);
    # from COMPOSED_MIN values on, the compositions themselves are faster (~0.5 ns a value)
    big = np.size(x) >= COMPOSED_MIN
    if mode == "fast":
        if big:
            return _exp_fast(x, fp32_dst, clamp)
        from .sfpu_jit import exp_fast
        return exp_fast(x, bool(fp32_dst), bool(clamp), FAST_A, FAST_THRESHOLD, FAST_B_MINUS_C)
    if mode == "approx":
        if big:
            return _exp_approx(x, fp32_dst)
        from .sfpu_jit import exp_approx
        return exp_approx(x, bool(fp32_dst), APPROX_LOG2E, APPROX_C23_73, APPROX_ADJ_EXP,
                          APPROX_HI, APPROX_LO)
    if mode == "legacy":
        return _exp_legacy(x, fp32_dst)
    if mode != "accurate":
        raise ValueError(f"unknown exp mode {mode!r}: use one of {EXP_MODES}")
    if variant not in ("metal", "llk"):
        raise ValueError(f"unknown exp variant {variant!r}: use 'metal' or 'llk'")
    if fp32_dst:
        return exp_fp32_metal(x) if variant == "metal" else exp_fp32_llk(x)
    c0 = EXP21F_C0_METAL if variant == "metal" else EXP21F_C0_LLK
    return store(round_fp16b(exp_21f(x, c0, clamp)), False)


# --- reciprocal ----------------------------------------------------------------------------
RECIP_K0 = _f(0x3EA57EBB)            # §2 Prgm0: 0.3232325017452239990234375
RECIP_K1 = _f(0x3FBA2E90)            # §2 Prgm1: 1.4545459747314453125
RECIP_K2 = _f(0x4007C1F2)            # §2 Prgm2: 2.121212482452392578125
_NEG_ONE, _HALF = _F32(-1), _F32(0.5)


def _recip(x, max_iter):
    """`_sfpu_reciprocal_<max_iter>` (§2): a minimax quadratic in the significand, Newton-
    Raphson steps (<0> is one step, as <1>), scaled by 2^(127 - E) built from ~bits(x), sign
    copied. E = 0 (zero, denormal) gives inf, E = 255 (inf, NaN) gives 0."""
    x = np.asarray(x, _F32)
    nx = setman(_NEG_ONE, exman(x, pad8=False))
    y = mad(mad(RECIP_K0, nx, RECIP_K1), nx, RECIP_K2)
    s = mad(from_bits(~_i(x) & 0xFF800000), _HALF, _ZERO)
    for _ in range(max(max_iter, 1)):
        y = mad(y, mad(nx, y, _ONE), y)
    return setsgn(mad(y, s, _ZERO), x)


def recip(x, approx=False, fp32_dst=False):
    """1/x as it lands in DST (§2): approx is 1 NR stored plainly (a bf16 DST truncates);
    precise is 2 NR into an fp32 DST, or 1 NR rounded half away into a bf16 DST."""
    if approx:
        return store(_recip(x, 0), fp32_dst)
    if fp32_dst:
        return store(_recip(x, 2), True)
    return store(round_fp16b(_recip(x, 1)), False)


# --- sqrt / rsqrt --------------------------------------------------------------------------
SQRT_APPROX_MAGIC = 0x5F0B3892       # §3 APPROX Prgm0
SQRT_APPROX_P1 = _f(0x3FF20BF7)      # §3 APPROX Prgm1: 1.89099014875
SQRT_MAGIC = 0x5F1110A0              # §3 precise Prgm0
SQRT_P1 = _f(0x401214C9)             # §3 precise Prgm1: 2.2825186
SQRT_P2 = _f(0x40103626)             # §3 precise Prgm2: 2.2533049
_INF_BITS = 0x7F800000


def _sqrt(x, approx, reciprocal):
    """Kokosinski-Moroz SQRT_10/SQRT_23 (§3): seed MAGIC - bits(x)/2, one (approx) or two
    corrections; rsqrt's +0 and +inf are 0x7F800000 - bits(x); x < 0 gives a quiet NaN."""
    x = np.asarray(x, _F32)
    b = _i(x)
    y0 = from_bits((SQRT_APPROX_MAGIC if approx else SQRT_MAGIC) - (b >> 1))
    special = (b == 0) | (b == _INF_BITS)
    if approx:
        c = mad(x, y0, _ZERO)
        t = mad(-y0, c, SQRT_APPROX_P1)
        if reciprocal:
            y = np.where(special, from_bits(_INF_BITS - b), mad(y0, t, _ZERO))
        else:
            y = np.where(b == _INF_BITS, c, mad(c, t, _ZERO))
    else:
        xy = mad(x, y0, _ZERO)
        c = mad(-y0, xy, _ZERO)
        y1 = mad(y0, mad(c, mad(c, _ONE, SQRT_P2), SQRT_P1), _ZERO)
        xy = mad(x, y1, _ZERO)
        r = mad(-y1, xy, _ONE)
        if reciprocal:
            y = np.where(special, from_bits(_INF_BITS - b), mad(r, addexp(y1, -1), y1))
        else:
            signed = np.where(b >> 31, b - (1 << 32), b)
            y = np.where(signed < _INF_BITS, mad(r, mad(_HALF, xy, _ZERO), xy), xy)
    return np.where(_negative(x), _f(QNAN_BITS), y)


def _sqrt_out(y, fp32_dst):
    """sqrt/rsqrt round half away into a bf16 DST in both modes (§3 Output, §4)."""
    return store(y if fp32_dst else round_fp16b(y), fp32_dst)


def sqrt(x, approx=False, fp32_dst=False):
    """sqrt as it lands in DST (§3); negative x: NaN in fp32, +inf in bf16."""
    return _sqrt_out(_sqrt(x, approx, False), fp32_dst)


def rsqrt(x, approx=False, fp32_dst=False):
    """1/sqrt as it lands in DST (§3); rsqrt(+0) = +inf, rsqrt(+inf) = 0."""
    return _sqrt_out(_sqrt(x, approx, True), fp32_dst)


# --- issue slots ---------------------------------------------------------------------------
class Slots(NamedTuple):
    """SFPU instruction issue slots per 32-lane iteration (one dst_reg++), for a bf16 and
    an fp32 DST, where SFPU.md derives them; not cycles (the sysdesc turns them into those)."""
    bf16: float
    fp32: float
    section: str
    derivation: str


ISSUE_SLOTS = {
    ("exp", "fast"): Slots(3, 3, "§1.1", "SFPLOADMACRO: per 8 iterations 8 sanitize macros "
                           "(LD, SWAP, STORE) + 7 NOP + 8 compute macros (LD, MAD, ROUND, SHIFT, "
                           "STORE) + 1 NOP = 24 slots"),
    ("exp", "fast_no_loadmacro"): Slots(6, 6, "§1.1", "DISABLE_SFPLOADMACRO: SFPLOAD, SFPSWAP, "
                                        "SFPMAD, SFPSTOCHRND, SFPSHFT, SFPSTORE"),
    ("exp", "fast_noclamp"): Slots(2.5, 2.5, "§1.1b", "replay buffer, ITER = 8 (2.125 at "
                                   "ITER = 32), from the source comments"),
    ("exp", "approx"): Slots(11, 11, "§1.2", "estimate: LOAD + STORE + about 6-8 ALU + 2-3 "
                             "compare/predication instructions (10-13)"),
    ("exp", "accurate"): Slots(20, 27, "§1.3' / §1.4'", "bf16: METAL's TTI body 17 + 1 "
                               "(STOCHRND) + 2 (CLAMP_NEGATIVE), 18 without the clamp; fp32 "
                               "(§1.4'): not counted in SFPU.md, estimate here: LOAD, MUL, "
                               "STOCHRND, CAST, 2 MAD, 6 MAD, EXEXP, IADD, SETEXP, ~6 "
                               "predication, ~3 constant loads, STORE"),
    ("exp", "accurate_noclamp"): Slots(18, 27, "§1.3'", "METAL's TTI body 17 + 1 (STOCHRND)"),
    ("recip", "approx"): Slots(12, 12, "§2", "1 NR: 2 SETMAN, NOT, 4 MAD, 2 MUL, SETSGN = 10 "
                               "ALU + LOAD + STORE"),
    ("recip", "precise"): Slots(13, 15, "§2", "bf16: 1 NR, 10 ALU + LOAD + STOCHRND + STORE; "
                                "fp32: 2 NR, about 12 ALU + LOAD + STORE, 14-15"),
    ("sqrt", "approx"): Slots(15, 14, "§3", "about 8-10 ALU + LOAD + STORE (+ STOCHRND for "
                              "bf16) + predication (estimate 3: the inf case and x < 0)"),
    ("sqrt", "precise"): Slots(21, 20, "§3", "about 14-16 ALU + LOAD + STORE (+ STOCHRND for "
                               "bf16) + predication (estimate 3)"),
    ("rsqrt", "approx"): Slots(15, 14, "§3", "as sqrt approx (same body, RECIPROCAL = true)"),
    ("rsqrt", "precise"): Slots(21, 20, "§3", "as sqrt precise (same body, RECIPROCAL = true)"),
}


def issue_slots(op, mode, fp32_dst=False):
    """Issue slots per 32-lane iteration from ISSUE_SLOTS; a tile is 32 iterations."""
    s = ISSUE_SLOTS[(op, mode)]
    return s.fp32 if fp32_dst else s.bf16


# --- error bounds --------------------------------------------------------------------------
_ULP32, _HALF16 = 2.0 ** -23, 2.0 ** -8        # fp32 ulp and bf16 half-ulp, relative
_TRUNC16 = 2.0 ** -7                     # SFPSTORE truncating to a 16-bit DST: < 1 bf16 ulp
# relative error of an op's result as it lands in DST, against exact, on the op's documented
# domain: (fp32 DST, 16-bit DST). From the "measured max" column of docs/numerics.md, rounded
# up; the ops whose algorithm is not modelled compute in float32 (a few fp32 ulp) before the
# store. One place for ttlang.testing's derived bounds.
ERROR_BOUNDS = {
    ("exp", "fast"): (0.0312, 0.0334),
    ("exp", "approx"): (0.0615, 0.0615),
    ("exp", "accurate"): (_ULP32, _TRUNC16),
    ("recip", "approx"): (1.03e-4, _TRUNC16 + 1.03e-4),
    ("recip", "accurate"): (_ULP32, _HALF16 + 2.0 ** -13),
    ("sqrt", "approx"): (8.9e-4, _HALF16 + 8.9e-4),
    ("sqrt", "accurate"): (_ULP32, _HALF16),
    ("rsqrt", "approx"): (8.9e-4, _HALF16 + 8.9e-4),
    ("rsqrt", "accurate"): (_ULP32, _HALF16),
}
_NUMPY_F32 = 4 * 2.0 ** -24               # numpy's float32 transcendental functions


def error_bound(op, mode=None, fp32_dst=False):
    """The relative error an SFPU op adds to a value, as it lands in DST."""
    b = ERROR_BOUNDS.get((op, mode))
    if b is not None:
        return b[0] if fp32_dst else b[1]
    return _NUMPY_F32 if fp32_dst else _TRUNC16 + _NUMPY_F32
