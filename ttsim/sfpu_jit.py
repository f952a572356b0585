"""The SFPU's fast and approx exp compiled with numba: one pass per tile, not ~60 numpy calls.

Flash attention spends about a third of its simulation in the exps of its scores and of
its rescale factor, and almost all of that is numpy's per-call overhead on 1024-element
tiles: ttsim.sfpu writes each algorithm as SFPU.md does, a composition of instruction
models (SFPSWAP, SFPMAD, SFPSTOCHRND, SFPSTORE), each a handful of numpy calls. This module
fuses those compositions into compiled loops with the same arithmetic per element, so the
bits are the same (tests/ttsim/test_sfpu.py checks them against the compositions,
`sfpu._exp_fast` and `sfpu._exp_approx`, on every upper half-word, the specials and random
patterns). ttsim.sfpu imports this module, and with it numba, on the first such exp; each
loop is compiled then, or loaded from numba's cache.
"""
from __future__ import annotations

import numba
import numpy as np

_TINY = 2.0 ** -126                              # smallest normal float32
_QNAN = np.uint32(0x7FC00000).view(np.float32)   # SFPMAD's NaN (sfpu.QNAN_BITS)


@numba.njit(cache=True)
def _in64(v):
    """An SFPMAD operand (float32) in float64: a denormal reads as a zero of its sign."""
    if abs(v) < _TINY:
        return -0.0 if np.signbit(v) else 0.0
    return np.float64(v)


@numba.njit(cache=True)
def _mad(a64, b64, c64, f64, i64):
    """sfpu.mad of operands already through _in64: the exact product, one rounding, and
    the two-sum fix-up on a float32 midpoint; a tiny result is +0, a NaN one the qNaN
    pattern. f64 / i64: a one-element scratch array and its int64 view (numba has no
    scalar bit casts)."""
    p = a64 * b64
    s = p + c64
    f64[0] = s
    sb = i64[0]
    if (sb & 0x1FFFFFFF) == 0x10000000:
        bv = s - p
        err = (p - (s - bv)) + (c64 - bv)
        if err != 0 and np.isfinite(err):
            i64[0] = sb + (1 if (err > 0) == (s > 0) else -1)
            s = f64[0]
    r = np.float32(s)
    if abs(r) < _TINY:
        r = np.float32(0.0)
    if np.isnan(r):
        r = _QNAN
    return r


@numba.njit(cache=True)
def _store(bits, fp32_dst):
    """sfpu.store of a pattern: fp32 keeps it; a 16-bit DST flushes a denormal to a signed
    zero and keeps the top 16 bits."""
    if fp32_dst:
        return bits
    if (bits & 0x7F800000) == 0:
        bits = bits & 0x80000000
    return bits & 0xFFFF0000


@numba.njit(cache=True)
def _int32(u):
    """A uint32 pattern held in an int64 as the int32 it is."""
    return u - (1 << 32) if u >= 1 << 31 else u


@numba.njit(cache=True)
def _fast(xf, xb, out, a, thr_f, thr_b, c, clamp, fp32_dst):
    """out[k] = the bits sfpu._exp_fast gives for xf[k] (xb: the same values' bits)."""
    f64 = np.empty(1, np.float64)
    i64 = f64.view(np.int64)
    a64, c64 = _in64(a), _in64(c)
    t = _int32(np.int64(thr_b))
    t ^= (t >> 31) & 0x7FFFFFFF            # SFPSWAP's order (sfpu._order)
    for k in range(xf.size):
        v = xf[k]
        if clamp:                           # SFPSWAP max with the threshold (sfpu.vec_max)
            i = _int32(np.int64(xb[k]))
            if i ^ ((i >> 31) & 0x7FFFFFFF) < t:
                v = thr_f
        r = _mad(a64, _in64(v), c64, f64, i64)
        # SFPSTOCHRND to UINT16 (clamped form) or sign-magnitude INT16 (sfpu.to_int)
        mag = np.floor(abs(np.float64(r)) + 0.5)
        if clamp:
            n = np.int64(min(mag, 65535.0)) if np.isfinite(mag) else np.int64(65535)
            bits = (n << 15) & 0xFFFFFFFF
        else:
            n = np.int64(min(mag, 32767.0)) if np.isfinite(mag) else np.int64(32767)
            bits = (n << 15) | (np.int64(0x80000000) if r < 0 else np.int64(0))
        out[k] = _store(bits, fp32_dst)


@numba.njit(cache=True)
def _approx(xf, out, log2e, c23_73, adj, hi, lo, fp32_dst):
    """out[k] = the bits sfpu._exp_approx gives for xf[k]."""
    f32 = np.empty(1, np.float32)
    u32 = f32.view(np.uint32)
    f64 = np.empty(1, np.float64)
    i64 = f64.view(np.int64)
    b64, c64 = _in64(log2e), _in64(c23_73)
    for k in range(xf.size):
        x = xf[k]
        if x >= hi:
            bits = np.int64(0x7F800000)
        elif x < lo:
            bits = np.int64(0)
        else:
            f32[0] = _mad(_in64(x), b64, c64, f64, i64)
            bits = ((np.int64(u32[0]) + adj) << 7) & 0xFFFFFFFF
        out[k] = _store(bits, fp32_dst)


def _tile(x):
    """x as a C-ordered float32 array, its flat view, and an output of its shape."""
    xf = np.asarray(x, np.float32, order="C")
    return xf, xf.reshape(-1), np.empty(xf.shape, np.uint32)


def _values(out):
    r = out.view(np.float32)
    return r[()] if r.ndim == 0 else r


def exp_fast(x, fp32_dst, clamp, a, threshold, b_minus_c):
    """sfpu._exp_fast of `x` with its float32 constants (the same bits)."""
    _, flat, out = _tile(x)
    _fast(flat, flat.view(np.uint32), out.reshape(-1), a, threshold, threshold.view(np.uint32),
          b_minus_c, clamp, fp32_dst)
    return _values(out)


def exp_approx(x, fp32_dst, log2e, c23_73, adj, hi, lo):
    """sfpu._exp_approx of `x` with its constants (the same bits)."""
    _, flat, out = _tile(x)
    _approx(flat, out.reshape(-1), log2e, c23_73, adj, hi, lo, fp32_dst)
    return _values(out)
