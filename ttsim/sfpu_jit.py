"""The SFPU's fast exp compiled with numba: one pass per tile instead of ~60 numpy calls.

Flash attention spends about a third of its simulation in the fast (Schraudolph) exp of
its scores, and almost all of that is numpy's per-call overhead on 1024-element tiles:
ttsim.sfpu writes the algorithm as SFPU.md does, a composition of instruction models
(SFPSWAP, SFPMAD, SFPSTOCHRND, SFPSTORE), each a handful of numpy calls. This module
fuses that composition into one compiled loop with the same arithmetic per element, so
the bits are the same (tests/ttsim/test_sfpu.py checks it against the composition on
every special value and a million random patterns). numba is imported, and the loop
compiled (or loaded from numba's cache), on the first call.
"""
from __future__ import annotations

import numpy as np

_TINY = 2.0 ** -126                          # smallest normal float32
_QNAN = np.uint32(0x7FC00000).view(np.float32)   # SFPMAD's NaN (sfpu.QNAN_BITS)
_kernel = None


def _loop(xf, xb, out, a, thr_f, thr_b, c, clamp, fp32_dst):
    """out[k] = the bits sfpu._exp_fast gives for xf[k] (xb: the same values' bits)."""
    f64 = np.empty(1, np.float64)
    i64 = f64.view(np.int64)
    a64 = np.float64(a)
    c64 = np.float64(c)
    # SFPSWAP's order (sfpu._order): the pattern as an int32, sign-magnitude flipped
    t = np.int64(thr_b) - (1 << 32) if thr_b >= 1 << 31 else np.int64(thr_b)
    t ^= (t >> 31) & 0x7FFFFFFF
    for k in range(xf.size):
        # SFPSWAP max with the -88.5 threshold (vec_max), or x itself
        i = np.int64(xb[k]) - (1 << 32) if xb[k] >= 1 << 31 else np.int64(xb[k])
        if clamp and i ^ ((i >> 31) & 0x7FFFFFFF) < t:
            v = thr_f
        else:
            v = xf[k]
        # SFPMAD a * v + c (sfpu.mad): a denormal in reads as a signed zero; the exact
        # product, one rounding and the two-sum fix-up on a float32 midpoint; a tiny
        # result is +0, a NaN one the qNaN pattern
        b64 = np.float64(v)
        if abs(v) < _TINY:
            b64 = -0.0 if np.signbit(v) else 0.0
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
        # SFPSTOCHRND to UINT16 (clamped form) or sign-magnitude INT16 (sfpu.to_int)
        mag = np.floor(abs(np.float64(r)) + 0.5)
        if clamp:
            n = np.int64(min(mag, 65535.0)) if np.isfinite(mag) else np.int64(65535)
            bits = (n << 15) & 0xFFFFFFFF
        else:
            n = np.int64(min(mag, 32767.0)) if np.isfinite(mag) else np.int64(32767)
            bits = (n << 15) | (np.int64(0x80000000) if r < 0 else np.int64(0))
        # SFPSTORE (sfpu.store): a 16-bit DST flushes denormals and keeps the top 16 bits
        if not fp32_dst:
            if (bits & 0x7F800000) == 0:
                bits = bits & 0x80000000
            bits = bits & 0xFFFF0000
        out[k] = bits


def exp_fast(x, fp32_dst, clamp, a, threshold, b_minus_c):
    """ttsim.sfpu._exp_fast of float32 array `x` with its constants (same bits)."""
    global _kernel
    if _kernel is None:
        import numba
        _kernel = numba.njit(cache=True)(_loop)
    xf = np.asarray(x, np.float32, order="C")
    flat = xf.reshape(-1)
    out = np.empty(xf.shape, np.uint32)
    _kernel(flat, flat.view(np.uint32), out.reshape(-1), a, threshold,
            threshold.view(np.uint32), b_minus_c, clamp, fp32_dst)
    r = out.view(np.float32)
    return r[()] if r.ndim == 0 else r
