"""ttsim.sfpu: the SFPU kernels of /work/shared/SFPU.md against float64, and bit patterns
derived by hand from the algorithm descriptions.

Error bounds come from SFPU.md (the documented accuracy of each kernel, or a bound derived
here from its constants, e.g. the Schraudolph shift or the reciprocal's seed polynomial)
and from the DST format: a bf16 result is within half an ulp (round half away) or one ulp
(truncation) of the fp32 value the kernel computed.
"""
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st

from ttsim import sfpu as S

seeds = st.integers(0, 2 ** 32 - 1)
F = np.float32
N = 4096                          # values per hypothesis example


def b(x):
    return int(S.bits(F(x)))


def f(bits):
    return F(np.array(bits, np.uint32).view(np.float32))


def ulp_bf16(ref):
    """The bf16 ulp of the binade of |ref| (7 stored mantissa bits)."""
    return 2.0 ** (np.floor(np.log2(np.abs(ref))) - 7)


def ulp_f32(ref):
    return 2.0 ** (np.floor(np.log2(np.abs(ref))) - 23)


def bf16(x):
    """bf16 inputs, as a 16-bit DST holds them (nearest even)."""
    return np.asarray(x, F).astype(ml_dtypes.bfloat16).astype(F)


def is_bf16(x):
    return not (S.bits(x) & 0xFFFF).any()


def uniform(seed, lo, hi, fp32=True):
    x = np.random.default_rng(seed).uniform(lo, hi, N).astype(F)
    return x if fp32 else bf16(x)


def spread(seed, lo_exp, hi_exp, signs=True):
    """Values with exponents spread over [lo_exp, hi_exp]."""
    r = np.random.default_rng(seed)
    x = r.uniform(1, 2, N) * 2.0 ** r.integers(lo_exp, hi_exp + 1, N)
    return (x * (r.choice([-1, 1], N) if signs else 1)).astype(F)


# --- primitives ----------------------------------------------------------------------------
def round_f32(q):
    """The float32 nearest the rational q, ties to even (an independent reference)."""
    r = F(float(q))
    cands = [np.nextafter(r, F(-np.inf)), r, np.nextafter(r, F(np.inf))]
    return min(cands, key=lambda c: (abs(Fraction(float(c)) - q), b(c) & 1))


def fmad(a, bb, c):
    """One SFPMAD by exact rational arithmetic (normal values only)."""
    return round_f32(Fraction(float(a)) * Fraction(float(bb)) + Fraction(float(c)))


@given(seed=seeds)
def test_mad_rounds_once(seed):
    """a*b + c is exact, then rounded to nearest even once. Operands with few significant
    bits make exact float32 midpoints common, where a double rounding would show."""
    r = np.random.default_rng(seed)
    n = 200
    k = r.integers(1, 25, (3, n))
    m = r.integers(1, 2 ** 24, (3, n)) >> (24 - k)
    v = (m * 2.0 ** r.integers(-20, 20, (3, n)) * r.choice([-1, 1], (3, n))).astype(F)
    v[2, : n // 2] = (v[0, : n // 2].astype(np.float64) * 2.0 ** -24).astype(F)   # near-ties
    out = S.mad(v[0], v[1], v[2])
    for a, bb, c, o in zip(v[0], v[1], v[2], out):
        q = Fraction(float(a)) * Fraction(float(bb)) + Fraction(float(c))
        want = round_f32(q)
        want = F(0) if abs(want) < 2.0 ** -126 else want
        assert b(o) == b(want), (a, bb, c, o, want)


def test_mad_single_rounding_where_float64_double_rounds():
    """(1 + 2^-23) + 2^-24 (1 - 2^-23) (1 + 2^-23) is 1 + 3 * 2^-24 - 2^-70: just below the
    midpoint, so 1 + 2^-23. float64 then float32 would land on the midpoint and give the
    even 1 + 2^-22."""
    a, bb = F(1 + 2.0 ** -23), F(2.0 ** -24 * (1 - 2.0 ** -23))
    assert np.float32(np.float64(a) * np.float64(bb) + np.float64(a)) == F(1 + 2.0 ** -22)
    assert S.mad(a, bb, a) == F(1 + 2.0 ** -23)
    assert S.mad(-a, bb, -a) == F(-(1 + 2.0 ** -23))


def test_mad_flushes_denormals_and_negative_zero():
    """Denormal inputs are 0, denormal and -0 results +0 (§0); NaN is one quiet pattern."""
    assert S.mad(F(1e-40), F(1e30), F(0)) == 0                 # not 1e-10
    assert S.mad(F(1), F(1), F(1e-40)) == 1
    assert b(S.mad(F(-1), F(0), F(0))) == 0                    # -0 -> +0
    assert b(S.mad(F(2.0 ** -70), F(-2.0 ** -70), F(0))) == 0  # -2^-140 -> +0
    assert b(S.mad(F(2.0 ** -63), F(2.0 ** -63), F(0))) == b(2.0 ** -126)
    assert b(S.mad(F(np.inf), F(0), F(1))) == S.QNAN_BITS
    assert S.mad(F(3e38), F(2), F(0)) == np.inf                # overflow is a value


@given(seed=seeds)
def test_store_bf16_truncates_fp32_keeps_bits(seed):
    """SFPSTORE (§4): fp32 bit for bit; bf16 toward zero, denormals to a signed zero."""
    x = spread(seed, -140, 127)
    x[:4] = [np.nan, -np.inf, -1e-40, F(1 + 2.0 ** -8)]
    assert np.array_equal(S.bits(S.store(x, True)), S.bits(x))
    out = S.store(x, False)
    assert is_bf16(out)
    fin = np.isfinite(x) & (np.abs(x) >= 2.0 ** -126)
    x64 = x[fin].astype(np.float64)
    step = ulp_bf16(x64)
    assert np.array_equal(out[fin], np.sign(x64) * np.floor(np.abs(x64) / step) * step)
    den = (np.abs(x) < 2.0 ** -126)
    assert (out[den] == 0).all() and np.array_equal(np.signbit(out[den]), np.signbit(x[den]))
    assert out[3] == 1.0                                       # truncated, not rounded


@given(seed=seeds)
def test_round_fp16b_is_half_away(seed):
    """SFPSTOCHRND FP32->FP16B rnd=0 (§4): nearest, ties away from zero, on the magnitude."""
    r = np.random.default_rng(seed)
    x = spread(seed, -125, 126)
    ties = (r.integers(2 ** 7, 2 ** 8, N // 4) * 2 + 1) * 2.0 ** r.integers(-40, 40, N // 4)
    x[: N // 4] = (ties * r.choice([-1, 1], N // 4)).astype(F)  # exact bf16 midpoints
    out = S.round_fp16b(x)
    assert is_bf16(out)
    x64 = x.astype(np.float64)
    step = ulp_bf16(x64)
    want = np.sign(x64) * np.floor(np.abs(x64) / step + 0.5) * step
    assert np.array_equal(out.astype(np.float64), want)
    rne = bf16(x[: N // 4])
    assert (np.abs(out[: N // 4]) > np.abs(rne)).any()         # differs from ties-to-even


def test_round_fp16b_ties_and_specials():
    one_half_ulp = F(1 + 2.0 ** -8)                            # tie between 1 and 1 + 2^-7
    assert S.round_fp16b(one_half_ulp) == F(1 + 2.0 ** -7)     # RNE would give 1.0
    assert bf16(one_half_ulp) == 1.0
    assert S.round_fp16b(-one_half_ulp) == F(-(1 + 2.0 ** -7))
    assert S.store(one_half_ulp, False) == 1.0                 # SFPSTORE truncates
    assert S.round_fp16b(F(1 + 3 * 2.0 ** -8)) == F(1 + 2.0 ** -6)   # tie, away = even here
    assert S.round_fp16b(f(0x7F7FFFFF)) == np.inf              # the carry reaches inf
    assert b(S.round_fp16b(F(-0.0))) == 0 and b(S.round_fp16b(F(-1e-40))) == 0
    assert b(S.round_fp16b(f(0x7FC00001))) == 0x7F800000       # NaN -> +inf
    assert b(S.round_fp16b(f(0xFFC00000))) == 0xFF800000       # -NaN -> -inf


def test_float_to_int_rounds_half_away_and_saturates():
    x = np.array([0.4999, 0.5, 1.5, 2.5, -2.5, 65535.4, 65535.5, 1e9, np.inf, np.nan], F)
    assert S.to_uint16(x).tolist() == [0, 1, 2, 3, 3, 65535, 65535, 65535, 65535, 65535]
    y = np.array([2.5, -2.5, -0.4, 32766.5, 40000, -40000, -np.inf], F)
    assert S.to_int16(y).tolist() == [3, -3, 0, 32767, 32767, -32767, -32767]


def test_bit_helpers():
    assert S.shft(0x800000, -40) == 0x8000 and S.shft(0x800000, -127) == 0x800000 >> 31
    assert S.shft(0x800000, 6) == 0x20000000 and S.shft(0xFFFFFFFF, 4) == 0xFFFFFFF0
    assert S.exexp(F(1)) == 0 and S.exexp(F(1), debias=False) == 127 and S.exexp(F(0)) == -127
    assert S.exman(F(0)) == 0x800000 and S.exman(F(1.5), pad8=False) == 0x400000
    assert S.setexp(F(1.5), 128) == 3 and S.setman(F(-2), 0x400000) == -3
    assert S.setsgn(F(2), 1) == -2 and S.setsgn(F(-2), F(3)) == 2
    assert S.addexp(F(2), -1) == 1 and S.addexp(F(np.inf), -1) == np.inf
    assert b(S.addexp(F(1), 129)) == 0x00000000                # wraps mod 256: E 127 + 129 = 0
    order = np.array([f(0xFFC00000), -np.inf, -1, F(-0.0), 0, 1, np.inf, f(0x7FC00000)], F)
    for i in range(len(order) - 1):
        lo, hi = order[i], order[i + 1]
        assert b(S.vec_max(lo, hi)) == b(hi) and b(S.vec_min(hi, lo)) == b(lo)


# --- exp fast (Schraudolph, §1.1) ----------------------------------------------------------
C_SHIFT = 11.181640625                          # §1.1: B - C = 32512 - C


def schraudolph_bounds(shift_over_256, grid=(0.5 + 2.0 ** -8) / 256):
    """Ratio bounds of 2^floor(w) (1 + frac w) / 2^z with w = z - shift: the mantissa line
    overestimates by at most max (1 + f) / 2^f (at f = 1/ln2 - 1), the shift scales down,
    rounding N to an integer moves w by up to `grid` (half a step, plus 2^-8 of a step for
    v's fp32 rounding and A's)."""
    fs = 1 / np.log(2) - 1
    hi = (1 + fs) / 2 ** fs * 2 ** -shift_over_256 * 2 ** grid
    lo = 2 ** -shift_over_256 * 2 ** -grid
    return lo, hi


@pytest.mark.parametrize("fp32", [True, False])
@given(seed=seeds)
def test_exp_fast_error(fp32, seed):
    """About +-3% on the clamp's valid range (x <= 0, results normal); a bf16 DST truncates
    the last of the 8 mantissa bits (up to 2^-8 more, downward)."""
    x = uniform(seed, -87, 0, fp32)
    out = S.exp(x, "fast", fp32)
    ratio = out.astype(np.float64) / np.exp(x.astype(np.float64))
    lo, hi = schraudolph_bounds(C_SHIFT / 256)
    assert hi - 1 < 0.032 and 1 - lo < 0.032                  # the documented ~3%
    lo *= 1 if fp32 else 1 - 2.0 ** -8
    assert (ratio >= lo).all() and (ratio <= hi).all(), (ratio.min(), ratio.max())
    assert np.abs(ratio - 1).max() > 0.025                     # really that coarse
    assert not (S.bits(out) & 0x7FFF).any()                    # 8 mantissa bits at most
    assert fp32 or is_bf16(out)


def test_exp_fast_bit_patterns():
    """Hand-derived: v = A x + (B - C), N = round(v), bits = N << 15 (§1.1)."""
    # x = 0: N = round(32500.818) = 32501 -> 0x3F7A8000 = 0.978515625; bf16 drops bit 15
    assert b(S.exp(F(0), "fast", True)) == 32501 << 15 == 0x3F7A8000
    assert b(S.exp(F(0), "fast", False)) == 0x3F7A0000
    # below the clamp: x' = -88.5, v = -184.88, N = 185: a denormal pattern, flushed in bf16
    low = np.array([-88.5, -1000, -np.inf, f(0xFFC00000)], F)
    assert (S.bits(S.exp(low, "fast", True)) == 185 << 15).all()
    assert (S.bits(S.exp(low, "fast", False)) == 0).all()
    # -88.5 < x < -87.34: exponent field 0, kept in fp32
    mid = S.exp(np.linspace(-88.4, -87.4, 50, dtype=F), "fast", True)
    assert ((S.bits(mid) >> 23) == 0).all() and (mid > 0).all()
    # x ~ 88.75: N = 65280 is 0x7F800000 = inf; above it NaN patterns; N = 65535 at 100
    assert S.exp(F(88.752), "fast", True) == np.inf
    assert b(S.exp(F(88.745), "fast", True)) == 65277 << 15    # v = 65277.0: finite
    assert b(S.exp(F(100), "fast", True)) == 0x7FFF8000
    assert np.isnan(S.exp(F(100), "fast", False)) and b(S.exp(F(100), "fast", False)) == 0x7FFF0000


@given(seed=seeds)
def test_exp_fast_without_clamp(seed):
    """§1.1b: INT16 round keeps the sign: same error on [-87, 0.72]; saturates at 32767 << 15
    above 0.72 and gives a negative tiny number below about -88 (needs a ReLU)."""
    x = uniform(seed, -87, 0.72)
    out = S.exp(x, "fast", True, clamp_negative=False)
    ratio = out.astype(np.float64) / np.exp(x.astype(np.float64))
    lo, hi = schraudolph_bounds(C_SHIFT / 256)
    assert (ratio >= lo).all() and (ratio <= hi).all()
    assert b(S.exp(F(1), "fast", True, clamp_negative=False)) == 32767 << 15
    neg = S.exp(F(-100), "fast", True, clamp_negative=False)   # N = -4432: -2^-110 (1.3)
    assert -1e-30 < neg < 0


def _all_kinds_of_patterns():
    """Every upper half-word with four lower ones, and random patterns, as tiles."""
    hi = np.arange(1 << 16, dtype=np.uint32) << 16
    rand = np.random.default_rng(7).integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([hi, hi | 0x8000, hi | 0xFFFF, hi | 1, rand]).view(F).reshape(-1, 32, 32)


@pytest.mark.parametrize("mode,clamp", [("fast", True), ("fast", False), ("approx", True)])
@pytest.mark.parametrize("fp32", [True, False])
def test_exp_compiled_matches_the_instruction_models(mode, clamp, fp32):
    """S.exp's fast and approx modes run compiled loops (ttsim.sfpu_jit) on arrays of fewer
    than COMPOSED_MIN values, the compositions of instruction models (_exp_fast,
    _exp_approx) on larger ones; the loops must give the compositions' bits."""
    x = _all_kinds_of_patterns()
    with np.errstate(all="ignore"):
        want = S._exp_approx(x, fp32) if mode == "approx" else S._exp_fast(x, fp32, clamp)
    chunks = np.split(x, 64)
    assert chunks[0].size < S.COMPOSED_MIN <= x.size
    got = np.concatenate([S.exp(c, mode, fp32, clamp_negative=clamp) for c in chunks])
    assert np.array_equal(S.bits(got), S.bits(want))
    with np.errstate(all="ignore"):
        whole = S.exp(x, mode, fp32, clamp_negative=clamp)
    assert np.array_equal(S.bits(whole), S.bits(want))
    assert S.exp(F(-1), mode, fp32).shape == ()


# --- exp approx (LLK piecewise, §1.2) ------------------------------------------------------
@pytest.mark.parametrize("fp32", [True, False])
@given(seed=seeds)
def test_exp_approx_error(fp32, seed):
    """2^floor(z) (1 + frac z): overestimates by at most +6.15% on [-42, 44.36), z on a
    2^-16 grid (2^-15 relative slack); a bf16 DST truncates (down to -2^-7)."""
    x = uniform(seed, -42, 44.36, fp32)
    out = S.exp(x, "approx", fp32)
    ratio = out.astype(np.float64) / np.exp(x.astype(np.float64))
    fs = 1 / np.log(2) - 1
    hi = (1 + fs) / 2 ** fs
    assert abs(hi - 1.0615) < 1e-4
    lo = 1 - 2.0 ** -15 - (0 if fp32 else 2.0 ** -7)
    assert (ratio >= lo).all() and (ratio <= hi + 2.0 ** -15).all(), (ratio.min(), ratio.max())
    assert ratio.max() > 1.055                                 # the bias is real


@given(seed=seeds)
def test_exp_approx_closed_form(seed):
    """For t = x/ln2 + 192 in [128, 256) the bit trick is exactly (t - 65) 2^23 (§1.2)."""
    x = uniform(seed, -42, 44.36)
    t = S.mad(x, S.APPROX_LOG2E, S.APPROX_C23_73).astype(np.float64)
    want = ((t - 65) * 2 ** 23).astype(np.int64)
    assert np.array_equal(S.bits(S.exp(x, "approx", True)).astype(np.int64), want)


def test_exp_approx_edges():
    out = S.exp(np.array([0, 89, 1000, np.inf, -42.5, -1000], F), "approx", True)
    assert out.tolist() == [1.0, np.inf, np.inf, np.inf, 0.0, 0.0]
    # the guard sits at 89, the trick breaks at 44.36: about 2^((z + 64) / 2), far too small
    x = np.array([60, 70, 80], F)
    out, z = S.exp(x, "approx", True).astype(np.float64), x / np.log(2)
    assert (out < np.exp(x.astype(np.float64)) * 2.0 ** -10).all()
    assert (np.abs(np.log2(out) - (z + 64) / 2) < 0.1).all()


# --- exp accurate, bf16 DST (exp_21f, §1.3 / §1.3') ----------------------------------------
def exp21f_poly_error(c0):
    """max |P(t) / 2^t - 1| over t in [0, 1): the quadratic c0 + c1' t + c2' t^2 (§1.3)."""
    t = np.linspace(0, 1, 100001)
    p = float(c0) + float(S.EXP21F_C1) * 2.0 ** 23 * t + float(S.EXP21F_C2) * 2.0 ** 46 * t * t
    return np.abs(p / 2 ** t - 1).max()


@pytest.mark.parametrize("variant", ["metal", "llk"])
@given(seed=seeds)
def test_exp_accurate_bf16_error(variant, seed):
    """Within 1 bf16 ulp ("~< 1 ULP"): half an ulp of rounding (half away) plus the
    quadratic's error (about 2^-9) plus L's fp32 rounding (2^-17 in z)."""
    x = uniform(seed, -87, 88.5, fp32=False)
    out = S.exp(x, "accurate", False, variant=variant)
    assert is_bf16(out)
    ref = np.exp(x.astype(np.float64))
    c0 = S.EXP21F_C0_METAL if variant == "metal" else S.EXP21F_C0_LLK
    eps = exp21f_poly_error(c0) + 2.0 ** -16
    err = np.abs(out - ref)
    assert (err <= 0.5 * ulp_bf16(out) + eps * ref).all()
    assert (err <= ulp_bf16(ref)).all(), (err / ulp_bf16(ref)).max()


def test_exp_accurate_metal_c0():
    """§1.3': METAL loads c0 as the FP16 immediate 0x3C02 = 1.001953125, not 1.0017248, so
    a few bf16 results differ by one ulp from LLK's SFPI form."""
    assert b(S.EXP21F_C0_METAL) == 0x3F804000 and abs(float(S.EXP21F_C0_LLK) - 1.0017248) < 1e-7
    x = bf16(np.linspace(-80, 80, 20001, dtype=F))
    m, l = S.exp(x, "accurate", False, variant="metal"), S.exp(x, "accurate", False, variant="llk")
    diff = m != l
    assert diff.any() and diff.mean() < 0.2
    assert (np.abs(m - l)[diff] <= ulp_bf16(l[diff])).all()


def test_exp_accurate_bf16_edges():
    # x = 0: L = 127 -> Z = 127 << 23, K = 127, f = 0: y = c0 exactly, rounds to 1.0
    assert S.exp_21f(F(0), S.EXP21F_C0_METAL, True) == S.EXP21F_C0_METAL
    assert S.exp(F(0), "accurate", False) == 1.0
    # L = 255 (x >= 88.72): K = 255 with c0's mantissa: a NaN pattern, STOCHRND makes +inf
    assert b(S.exp_21f(F(89), S.EXP21F_C0_METAL, True)) == 0x7F804000
    assert b(S.exp_21f(F(89), S.EXP21F_C0_LLK, True)) == 0x7F803885
    assert S.exp(F(89), "accurate", False) == np.inf
    # K = 0 (x < -87.34): a denormal pattern, +0 after rounding; the clamp gives 0 below
    raw = S.exp_21f(F(-87.5), S.EXP21F_C0_METAL, True)
    assert (b(raw) >> 23) == 0 and b(raw) != 0
    out = S.exp(np.array([-87.5, -88.5, -200, -np.inf], F), "accurate", False)
    assert (S.bits(out) == 0).all()
    assert S.exp(F(-87), "accurate", False) > 0


@pytest.mark.parametrize("x", [1.0, -3.5, 10.25, -60.0, 0.0078125])
def test_exp_21f_steps_by_hand(x):
    """§1.3 with the closed form Z = floor(L 2^23) for L >= 1, in exact arithmetic."""
    x = F(x)
    lg = min(max(fmad(x, f(0x3FB8AA3B), 127), F(0)), F(255))
    z = int(np.floor(Fraction(float(lg)) * 2 ** 23))
    k, mant = z >> 23, F(z & 0x7FFFFF)
    for c0 in (S.EXP21F_C0_METAL, S.EXP21F_C0_LLK):
        p = fmad(mant, fmad(mant, f(0x27ACA418), f(0x33A85ADA)), c0)
        y = f((b(p) & 0x807FFFFF) | (k << 23))
        assert b(S.exp_21f(x, c0, True)) == b(y)
        variant = "metal" if c0 is S.EXP21F_C0_METAL else "llk"
        assert b(S.exp(x, "accurate", False, variant=variant)) == b(S.round_fp16b(y))


@pytest.mark.parametrize("x", [1.0, -3.5, 10.25, -60.0, 0.0078125, 80.0])
def test_exp_fp32_metal_steps_by_hand(x):
    """§1.4' in exact arithmetic: j rounded half away, Cody-Waite, Horner, exponent + j."""
    x = F(x)
    j = fmad(F(1.442695), x, 0)
    i = int(np.floor(abs(float(j)) + 0.5)) * (1 if j >= 0 else -1)
    r = fmad(F(i), f(0xB5BFBE8E), fmad(F(i), f(0xBF317200), x))
    p = f(0x3AB4A000)
    for c in (0x3C092F6E, 0x3D2AADAD, 0x3E2AAA28, 0x3EFFFFFB):
        p = fmad(p, r, f(c))
    p = fmad(fmad(p, r, 1), r, 1)
    e = (b(p) >> 23) + i
    assert 1 <= e < 255
    assert b(S.exp(x, "accurate", True)) == (b(p) & 0x807FFFFF) | (e << 23)


# --- exp accurate, fp32 DST (§1.4' METAL, §1.4 LLK) ----------------------------------------
@pytest.mark.parametrize("variant", ["metal", "llk"])
@given(seed=seeds)
def test_exp_accurate_fp32_error(variant, seed):
    """Within 1 fp32 ulp (LLK's comment: "< 1 ULP"; Juffa's form likewise) on the range
    where the result is normal."""
    x = uniform(seed, -87, 88.5)
    out = S.exp(x, "accurate", True, variant=variant)
    ref = np.exp(x.astype(np.float64))
    assert ((np.abs(out - ref) / ulp_f32(ref)) <= 1).all()


@pytest.mark.parametrize("variant", ["metal", "llk"])
def test_exp_accurate_fp32_edges(variant):
    x = np.array([0, 89, 1000, np.inf, -89, -1000, -np.inf], F)
    out = S.exp(x, "accurate", True, variant=variant)
    assert out.tolist() == [1.0, np.inf, np.inf, np.inf, 0.0, 0.0, 0.0]
    # x = -88: METAL gives 0 (e < 1); LLK's z = -126.96 passes its -127 guard, k = -127,
    # and setexp leaves a denormal pattern (exponent field 0), kept by an fp32 DST
    low = S.exp(F(-88), "accurate", True, variant=variant)
    assert b(low) == 0 if variant == "metal" else (b(low) >> 23 == 0 and b(low) != 0)
    assert np.isnan(S.exp(np.array([np.nan, -np.nan], F), "accurate", True, variant=variant)).all()


def test_exp_dispatch_choice():
    """The accurate mode follows EXP_ACCURATE (METAL by default)."""
    x = uniform(3, -80, 80)
    assert S.EXP_ACCURATE == "metal"
    assert np.array_equal(S.exp(x, "accurate", True), S.exp_fp32_metal(x))
    assert not np.array_equal(S.exp_fp32_metal(x), S.exp_fp32_llk(x))
    with pytest.raises(ValueError, match="unknown exp mode"):
        S.exp(x, "precise")


# --- exp legacy (§1.5) ---------------------------------------------------------------------
@given(seed=seeds)
def test_exp_legacy(seed):
    """A quadratic p(v) on [0, 1) squared 2^(e+1) times: its error grows as (1 + d)^(2^(e+1));
    x < 0 is the 2-NR reciprocal of the x > 0 result."""
    x = uniform(seed, 0, 4)
    out = S.exp(x, "legacy", True)
    v = np.linspace(0, 1, 100001)
    p = 1 + v * (float(S.LEGACY_C1) + v * float(S.from_bits(np.int64(S.LREG8_BITS))))
    d = np.abs(p / np.exp(v) - 1).max()
    e = np.maximum(np.floor(np.log2(np.maximum(x, 2.0 ** -30))), -1)
    bound = (1 + d) ** (2.0 ** (e + 1)) - 1 + 2.0 ** -20
    ref = np.exp(x.astype(np.float64))
    assert (np.abs(out / ref - 1) <= bound).all()
    assert np.array_equal(S.exp(-x, "legacy", True), S.recip(out, False, True))
    assert b(S.exp(F(0), "legacy", True)) == b(1.0)


# --- reciprocal (§2) -----------------------------------------------------------------------
def recip_seed_error():
    """max |1 - m q(m)| of the minimax quadratic q on [1, 2] (§2); one NR step squares it."""
    m = np.linspace(1, 2, 100001)
    k0, k1, k2 = (float(k) for k in (S.RECIP_K0, S.RECIP_K1, S.RECIP_K2))
    return np.abs(1 - m * (k2 - k1 * m + k0 * m * m)).max()


@given(seed=seeds)
def test_recip_precise_fp32(seed):
    """2 NR: within 1 fp32 ulp (§2, documented)."""
    x = spread(seed, -125, 125)
    out = S.recip(x, False, True)
    ref = 1 / x.astype(np.float64)
    assert (np.abs(out - ref) <= ulp_f32(ref)).all()


@given(seed=seeds)
def test_recip_one_step(seed):
    """1 NR (approx, fp32 DST): relative error eps0^2 plus fp32 roundings; into a bf16 DST
    rounded half away (precise) it is within half an ulp plus that, truncated (approx)
    within one ulp plus that, and exactly the fp32 value truncated."""
    x = spread(seed, -124, 124)
    ref = 1 / x.astype(np.float64)
    eps1 = recip_seed_error() ** 2 + 2.0 ** -21
    assert 2.0 ** -14 < eps1 < 2.0 ** -13
    one = S.recip(x, True, True)
    rel = np.abs(one / ref - 1)
    assert (rel <= eps1).all() and rel.max() > eps1 / 4
    xb = bf16(x)
    refb = 1 / xb.astype(np.float64)
    prec = S.recip(xb, False, False)
    assert is_bf16(prec)
    assert (np.abs(prec - refb) <= 0.5 * ulp_bf16(prec) + eps1 * np.abs(refb)).all()
    appr = S.recip(xb, True, False)
    assert np.array_equal(appr, S.store(S.recip(xb, True, True), False))
    assert (np.abs(appr - refb) <= ulp_bf16(refb) + eps1 * np.abs(refb)).all()


def test_recip_edges():
    x = np.array([0, -0.0, np.inf, -np.inf, 1e-40, 2.0 ** 127, np.nan], F)
    out = S.recip(x, True, True)
    assert out[:2].tolist() == [np.inf, -np.inf] and out[4] == np.inf
    assert b(out[2]) == 0 and b(out[3]) == 0x80000000          # +-0, sign copied
    assert out[5] == 0                                         # 2^-127 is denormal: flushed
    assert out[6] == 0                                         # E = 255: the scale is 0
    # bf16 precise rounds -0 to +0 (E = 0 -> +0); approx keeps -0
    assert b(S.recip(F(-np.inf), False, False)) == 0
    assert b(S.recip(F(-np.inf), True, False)) == 0x80000000
    # 1/2: y = (k2 - k1 + k0) after one step is 1 - 0.0101^2 = 0.999898, times 1/2 = 0.49995:
    # rounded half away to 0.5, truncated to 0.498046875 (0x3EFF0000)
    assert S.recip(F(2), False, False) == 0.5
    assert b(S.recip(F(2), True, False)) == 0x3EFF0000
    assert S.recip(F(2), False, True) == 0.5


# --- sqrt / rsqrt (§3) ---------------------------------------------------------------------
@pytest.mark.parametrize("op", ["sqrt", "rsqrt"])
@pytest.mark.parametrize("approx", [True, False])
@given(seed=seeds)
def test_sqrt_rsqrt_error(op, approx, seed):
    """SQRT_10-bits / SQRT_23-bits: relative error at most 2^-10 / 2^-23 in fp32; into a
    bf16 DST rounded half away: half an ulp plus that."""
    x = spread(seed, -120, 120, signs=False)
    fn = getattr(S, op)
    eps = 2.0 ** (-10 if approx else -23)
    ref = np.sqrt(x.astype(np.float64))
    ref = ref if op == "sqrt" else 1 / ref
    rel = np.abs(fn(x, approx, True) / ref - 1)
    assert (rel <= eps).all() and rel.max() > eps / 8
    xb = bf16(x)
    refb = np.sqrt(xb.astype(np.float64))
    refb = refb if op == "sqrt" else 1 / refb
    out = fn(xb, approx, False)
    assert is_bf16(out)
    assert (np.abs(out - refb) <= 0.5 * ulp_bf16(out) + eps * refb).all()


@pytest.mark.parametrize("approx", [True, False])
def test_sqrt_rsqrt_edges(approx):
    neg = np.array([-1, -4, -np.inf, -1e-30], F)
    for fn in (S.sqrt, S.rsqrt):
        assert (S.bits(fn(neg, approx, True)) == S.QNAN_BITS).all()     # NaN in fp32
        assert (fn(neg, approx, False) == np.inf).all()                  # +inf in bf16
    assert S.sqrt(np.array([0, np.inf], F), approx, True).tolist() == [0, np.inf]
    assert S.rsqrt(np.array([0, np.inf], F), approx, True).tolist() == [np.inf, 0]
    assert S.sqrt(F(0), approx, False) == 0 and S.rsqrt(F(0), approx, False) == np.inf


@pytest.mark.parametrize("x", [1.0, 2.0, 3.0, 0.1, 1e20])
def test_sqrt_rsqrt_steps_by_hand(x):
    """§3 step by step in exact arithmetic: the seed MAGIC - bits(x)/2, then the MADs."""
    x = F(x)
    y0 = f((0x5F0B3892 - (b(x) >> 1)) & 0xFFFFFFFF)
    c = fmad(x, y0, 0)
    t = fmad(-y0, c, 1.89099014875)
    assert b(S.rsqrt(x, True, True)) == b(fmad(y0, t, 0))
    assert b(S.sqrt(x, True, True)) == b(fmad(c, t, 0))
    y0 = f((0x5F1110A0 - (b(x) >> 1)) & 0xFFFFFFFF)
    xy = fmad(x, y0, 0)
    c = fmad(-y0, xy, 0)
    y1 = fmad(y0, fmad(c, fmad(c, 1, f(0x40103626)), f(0x401214C9)), 0)
    xy = fmad(x, y1, 0)
    r = fmad(-y1, xy, 1)
    assert b(S.rsqrt(x, False, True)) == b(fmad(r, y1 / 2, y1))
    assert b(S.sqrt(x, False, True)) == b(fmad(r, fmad(0.5, xy, 0), xy))
    assert b(S.sqrt(x, False, False)) == b(S.round_fp16b(fmad(r, fmad(0.5, xy, 0), xy)))


@pytest.mark.parametrize("x", [3.0, -0.7, 1e-10, 12345.678])
def test_recip_steps_by_hand(x):
    """§2 step by step: -m, the quadratic, 2^(127 - E) from ~bits, NR steps, sign."""
    x = F(x)
    nx = f(0xBF800000 | (b(x) & 0x7FFFFF))
    y = fmad(fmad(f(0x3EA57EBB), nx, f(0x3FBA2E90)), nx, f(0x4007C1F2))
    scale = fmad(f(~b(x) & 0xFF800000), 0.5, 0)
    outs = []
    for _ in range(2):
        y = fmad(y, fmad(nx, y, 1), y)
        outs.append(np.copysign(fmad(y, scale, 0), x))
    assert b(S.recip(x, True, True)) == b(outs[0])
    assert b(S.recip(x, False, True)) == b(outs[1])


def test_sqrt_precise_exact_squares():
    """23 bits then half-away rounding: squares of 4-bit integers give the integer."""
    k = np.arange(1, 16, dtype=F) * np.array([[1], [2.0 ** -20], [2.0 ** 30]], F)
    assert np.array_equal(S.sqrt(k * k, False, False), k)
    assert np.array_equal(S.rsqrt(k * k, False, False), S.round_fp16b(1 / k))


# --- shapes and the cost table -------------------------------------------------------------
def test_vectorised_over_shapes():
    x = uniform(9, 0.1, 10).reshape(2, 2, 32, 32)
    for fn in (lambda v: S.exp(v, "fast", False), lambda v: S.exp(v, "accurate", True),
               lambda v: S.recip(v, False, False), lambda v: S.sqrt(v, True, True),
               lambda v: S.exp(v, "legacy", False)):
        out = fn(x)
        assert out.shape == x.shape and out.dtype == np.float32
        assert np.array_equal(out.ravel(), fn(x.ravel()))
        assert b(fn(x[0, 0, 0, 0])) == b(out[0, 0, 0, 0])


def test_issue_slot_table():
    """The counts SFPU.md states (§1.1, §1.3', §2), and every entry cites its section."""
    assert S.issue_slots("exp", "fast") == 3 and S.issue_slots("exp", "fast_no_loadmacro") == 6
    assert S.issue_slots("exp", "accurate") == 17 + 1 + 2
    assert S.issue_slots("exp", "accurate_noclamp") == 17 + 1
    assert S.issue_slots("recip", "precise") == 13 and S.issue_slots("recip", "precise", True) == 15
    for (op, mode), s in S.ISSUE_SLOTS.items():
        assert s.section.startswith("§") and s.derivation and s.bf16 > 0 and s.fp32 > 0
        assert op in ("exp", "recip", "sqrt", "rsqrt")
