"""The compute units' numerics (ttsim.numerics) against float64, with format-derived bounds.

Bounds come from the model in docs/numerics.md: TF32 source registers, fidelity phases that
truncate mantissa slices (ttlang.testing.FIDELITY_ROUNDOFF per product), a tile product's
exact sum rounded once to fp32 (the bounds allow a float32 unit roundoff per term summed,
which covers it), bf16 or fp32 DST, float32 SFPU.
"""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st

from ttlang.testing import FIDELITY_ROUNDOFF, UNARY_REFERENCE as REF_UNARY
from ttsim import formats as F, numerics as N
from ttsim.errors import TTSimError

U32 = 2.0 ** -24                 # float32 unit roundoff
FIDS = ["LoFi", "HiFi2", "HiFi3", "HiFi4"]
seeds = st.integers(0, 2 ** 32 - 1)


def bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def tile(seed, fmt="bf16", lo=-1.0, hi=1.0, spread=8):
    """A (32, 32) tile rounded to `fmt`, magnitudes spread over 2^-spread .. 2^spread."""
    r = np.random.default_rng(seed)
    x = r.uniform(lo, hi, (32, 32)) * 2.0 ** r.integers(-spread, spread + 1, (32, 32))
    return F.quantize(x.astype(np.float32), fmt)


def with_bits(seed, k, shape=(32, 32)):
    """Values with exactly k significant bits (or fewer), signs mixed."""
    r = np.random.default_rng(seed)
    m = r.integers(2 ** (k - 1), 2 ** k, shape) * r.choice([-1, 1], shape)
    return (m * 2.0 ** (r.integers(-6, 7, shape) - k)).astype(np.float32)


def src(x, fmt):
    return N.to_src(x, F.parse_format(fmt))


# --- source registers ----------------------------------------------------------------------
@given(seed=seeds)
def test_to_src_rounds_fp32_to_tf32(seed):
    """fp32 loses its low 13 mantissa bits, rounded to nearest even: 11 significant bits."""
    x = tile(seed, "fp32", spread=30)
    t = N.to_src(x, F.DataFormat.FP32)
    assert not (bits(t) & 0x1FFF).any()
    x64 = x.astype(np.float64)
    step = 2.0 ** (np.floor(np.log2(np.abs(x64))) - 10)
    assert np.array_equal(t, np.round(x64 / step) * step)      # np.round: half to even
    assert np.array_equal(N.to_src(x, "float32"), t)            # aliases name the same format


def test_to_src_ties_specials_and_overflow():
    x = np.array([1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, -(1 + 2.0 ** -11), -0.0, np.inf, np.nan,
                  np.finfo(np.float32).max], np.float32)
    t = N.to_src(x, "fp32")
    assert t[:3].tolist() == [1.0, 1 + 2.0 ** -9, -1.0]
    assert np.signbit(t[3]) and t[3] == 0 and t[4] == np.inf and np.isnan(t[5])
    assert t[6] == np.inf             # rounds past the largest TF32 value


@pytest.mark.parametrize("fmt", ["bf16", "bfp8_b"])
@given(seed=seeds)
def test_to_src_leaves_narrow_formats_alone(fmt, seed):
    """bf16 and bfp8_b values fit a 19-bit source register exactly."""
    x = tile(seed, fmt, spread=20)
    assert np.array_equal(bits(N.to_src(x, fmt)), bits(x))
    assert np.array_equal(bits(N.to_src(x, "fp32")), bits(x))   # and they are TF32 values too


@given(seed=seeds, k=st.integers(1, 23))
def test_keep_bits_truncates(seed, k):
    """keep_bits keeps the k leading significant bits and drops the rest (toward zero)."""
    x = tile(seed, "fp32", spread=20)
    y = N.keep_bits(x, k)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    step = 2.0 ** (np.floor(np.log2(np.abs(x64))) - (k - 1))
    assert np.array_equal(y64, np.sign(x64) * np.floor(np.abs(x64) / step) * step)
    assert (np.abs(x64 - y64) < 2.0 ** (1 - k) * np.abs(x64)).all()
    assert np.array_equal(N.keep_bits(y, k), y)


# --- matmul --------------------------------------------------------------------------------
def mm_bound(a, b, fid):
    """Per-product fidelity loss plus fp32 accumulation over K=32 and the phase sums."""
    scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    return (FIDELITY_ROUNDOFF[fid] + 40 * U32) * scale, scale


@pytest.mark.parametrize("fid", FIDS)
@pytest.mark.parametrize("fmt", ["bf16", "fp32", "bfp8_b"])
@given(seed=seeds)
def test_matmul_within_fidelity_bound(fmt, fid, seed):
    """Each fidelity stays within its documented per-product bound of the float64 product
    of the source-register values; LoFi on bf16 really loses precision."""
    a, b = src(tile(seed, fmt), fmt), src(tile(seed + 1, fmt), fmt)
    out = N.matmul(a, b, N.parse_fidelity(fid))
    assert out.dtype == np.float32
    ref = a.astype(np.float64) @ b.astype(np.float64)
    bound, scale = mm_bound(a, b, fid)
    assert (np.abs(out - ref) <= bound).all()
    if fid == "LoFi" and fmt != "bfp8_b":
        assert (np.abs(out - ref) > 2.0 ** -10 * scale).any()


@pytest.mark.parametrize("fmt,exact_from", [("bf16", "HiFi4"), ("bfp8_b", "HiFi2")])
@given(seed=seeds)
def test_matmul_exact_products(fmt, exact_from, seed):
    """HiFi4 multiplies bf16 exactly and HiFi2 already does bfp8_b (7 significant bits): only
    the fp32 accumulation errs. One fidelity lower is not exact."""
    a, b = tile(seed, fmt), tile(seed + 1, fmt)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    _, scale = mm_bound(a, b, "HiFi4")
    i = FIDS.index(exact_from)
    for fid in FIDS[i:]:
        out = N.matmul(a, b, N.Fidelity[fid])
        assert (np.abs(out - ref) <= 36 * U32 * scale).all(), fid
    below = N.matmul(a, b, N.Fidelity[FIDS[i - 1]])
    assert (np.abs(below - ref) > 36 * U32 * scale).any()


@pytest.mark.parametrize("fid", FIDS)
@pytest.mark.parametrize("fmt", ["bf16", "fp32"])
@given(seed=seeds)
def test_a_tile_product_is_the_exact_sum_of_its_phases_rounded_once(fmt, fid, seed):
    """Bit for bit: each element is the exactly rounded (math.fsum) sum of the products the
    fidelity's phases multiply, cast once to float32: the same on every machine, where a
    float32 BLAS product sums in a CPU-dependent order. Magnitudes spread over 2^+-8, so
    the exact sums fit float64 and fsum's result casts to float32 with one rounding."""
    import math
    a, b = src(tile(seed, fmt), fmt), src(tile(seed + 1, fmt), fmt)
    in0_hi, in1_hi = N.keep_bits(a, N.SRCB_BITS), N.keep_bits(b, N.SRCA_BITS)
    pairs = {"LoFi": [(in0_hi, in1_hi)], "HiFi2": [(in0_hi, b)],
             "HiFi3": [(in0_hi, b), (a - in0_hi, in1_hi)], "HiFi4": [(a, b)]}[fid]
    out = N.matmul(a, b, N.Fidelity[fid])
    lhs = np.concatenate([p for p, _ in pairs], axis=1).astype(np.float64)     # K x phases
    rhs = np.concatenate([q for _, q in pairs], axis=0).astype(np.float64)
    want = np.array([[math.fsum(lhs[i] * rhs[:, j]) for j in range(32)] for i in range(32)],
                    np.float64).astype(np.float32)
    np.testing.assert_array_equal(bits(out), bits(want))
    stacked = N.matmul(np.stack([a, b])[:, None], np.stack([b, a])[None], N.Fidelity[fid])
    np.testing.assert_array_equal(bits(stacked[0, 0]), bits(out))


def test_matmul_operand_registers():
    """in0 goes to SrcB (7 bits per phase) and in1 to SrcA (5 bits): LoFi is exact when
    in0 has 7 significant bits and in1 5, not the other way round."""
    a7, b5 = with_bits(1, 7), with_bits(2, 5)
    exact = a7.astype(np.float64) @ b5.astype(np.float64)
    scale = np.abs(a7.astype(np.float64)) @ np.abs(b5.astype(np.float64))
    assert (np.abs(N.matmul(a7, b5, N.Fidelity.LoFi) - exact) <= 36 * U32 * scale).all()
    a5, b7 = with_bits(3, 5), with_bits(4, 7)
    exact = a5.astype(np.float64) @ b7.astype(np.float64)
    scale = np.abs(a5.astype(np.float64)) @ np.abs(b7.astype(np.float64))
    assert (np.abs(N.matmul(a5, b7, N.Fidelity.LoFi) - exact) > 2.0 ** -8 * scale).any()


@given(seed=seeds)
def test_matmul_phases_only_add_for_nonnegative_operands(seed):
    """Truncated slices are never larger than the value, so for nonnegative operands each
    extra phase can only add: results grow with fidelity and stay below the exact product."""
    a, b = np.abs(tile(seed)), np.abs(tile(seed + 1))
    outs = [N.matmul(a, b, N.Fidelity[f]).astype(np.float64) for f in FIDS]
    _, scale = mm_bound(a, b, "HiFi4")
    slack = 36 * U32 * scale
    for lo, hi in zip(outs, outs[1:]):
        assert (lo <= hi + slack).all()
    assert (outs[0] <= a.astype(np.float64) @ b.astype(np.float64) + slack).all()


@given(seed=seeds)
def test_fidelity_monotone_on_average(seed):
    """Higher fidelity is never worse on average (mean absolute error over a tile)."""
    for fmt in ("bf16", "fp32"):
        a, b = src(tile(seed, fmt), fmt), src(tile(seed + 1, fmt), fmt)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        errs = [np.abs(N.matmul(a, b, N.Fidelity[f]) - ref).mean() for f in FIDS]
        assert errs == sorted(errs, reverse=True), (fmt, errs)
        assert errs[0] > errs[-1]


# --- element-wise --------------------------------------------------------------------------
@pytest.mark.parametrize("fid", FIDS)
@pytest.mark.parametrize("fmt", ["bf16", "fp32", "bfp8_b"])
@given(seed=seeds)
def test_eltwise_mul_at_fidelity(fmt, fid, seed):
    """Per element: truncated toward zero, same sign, within the fidelity bound (the phase
    sums of at most 22-bit products are exact in float32, so no extra slack)."""
    a, b = src(tile(seed, fmt), fmt), src(tile(seed + 1, fmt), fmt)
    out = N.eltwise("mul", a, b, N.Fidelity[fid]).astype(np.float64)
    ref = a.astype(np.float64) * b.astype(np.float64)
    assert (np.abs(out - ref) <= FIDELITY_ROUNDOFF[fid] * np.abs(ref)).all()
    assert (np.abs(out) <= np.abs(ref)).all() and ((out == 0) | (np.sign(out) == np.sign(ref))).all()
    if fid == "HiFi4" or (fmt == "bfp8_b" and fid != "LoFi"):
        assert np.array_equal(out, ref)


def test_eltwise_operand_registers():
    """For element-wise ops in0 is SrcA (5 bits per phase) and in1 SrcB (7 bits)."""
    a5, b7 = with_bits(5, 5), with_bits(6, 7)
    assert np.array_equal(N.eltwise("mul", a5, b7, N.Fidelity.LoFi), a5 * b7)
    assert not np.array_equal(N.eltwise("mul", b7, a5, N.Fidelity.LoFi), a5 * b7)


@pytest.mark.parametrize("op", ["add", "sub"])
@given(seed=seeds, fid=st.sampled_from(FIDS))
def test_eltwise_add_sub_ignore_fidelity(op, seed, fid):
    """Fidelity phases are a multiplier matter: add and sub are one float32 rounding."""
    a, b = tile(seed, "fp32"), tile(seed + 1, "fp32")
    out = N.eltwise(op, a, b, N.Fidelity[fid])
    ref = a.astype(np.float64) + (b if op == "add" else -b).astype(np.float64)
    assert np.array_equal(out, ref.astype(np.float32))


def test_eltwise_rejects_unknown_op():
    with pytest.raises(TTSimError, match="unknown FPU element-wise op"):
        N.eltwise("div", np.ones((32, 32), np.float32), np.ones((32, 32), np.float32))


# --- DST -----------------------------------------------------------------------------------
@given(seed=seeds)
def test_dst_round(seed):
    """16-bit DST rounds every value to bf16 (nearest even); fp32 DST keeps every bit."""
    x = tile(seed, "fp32", spread=30)
    x[0, :3] = [-0.0, np.inf, np.nan]
    assert np.array_equal(bits(N.dst_round(x, True)), bits(x))
    d = N.dst_round(x, False)
    assert np.array_equal(bits(d), bits(x.astype(ml_dtypes.bfloat16).astype(np.float32)))
    assert not (bits(d) & 0xFFFF).any() or np.isnan(d).any()
    fin = np.isfinite(x)
    assert (np.abs(d[fin] - x[fin]) <= 2.0 ** -8 * np.abs(x[fin])).all()


# --- reduce and broadcast ------------------------------------------------------------------
@pytest.mark.parametrize("op", ["sum", "max"])
@pytest.mark.parametrize("dim", ["row", "col", "scalar"])
@given(seed=seeds, scaler=st.sampled_from([1.0, 1 / 32, 1 / 1024, -0.5, 0.3]))
def test_reduce(op, dim, seed, scaler):
    """Results sit in column 0 (row), row 0 (col) or [0, 0] (scalar), zeros elsewhere; a sum
    errs by about one float32 rounding per term, a max is exact."""
    x = tile(seed, "bf16", spread=4)
    out = N.reduce(x, op, dim, scaler)
    s = np.float32(scaler)
    xs = x.astype(np.float64) * float(s)
    axis = {"row": 1, "col": 0, "scalar": None}[dim]
    where = {"row": (slice(None), 0), "col": (0, slice(None)), "scalar": (0, 0)}[dim]
    mask = np.zeros((32, 32), bool)
    mask[where] = True
    assert (out[~mask] == 0).all()
    got = out[where]
    if op == "sum":
        ref, n = xs.sum(axis=axis), 1024 if dim == "scalar" else 32
        assert (np.abs(got - ref) <= (n + 1) * U32 * np.abs(xs).sum(axis=axis)).all()
    else:
        assert np.array_equal(got, (x * s).max(axis=axis))


@pytest.mark.parametrize("op", ["sum", "max"])
@given(seed=seeds)
def test_reduce_accumulate(op, seed):
    """Reducing two tiles into one DST tile equals reducing them together."""
    x, y = tile(seed, "bf16"), tile(seed + 1, "bf16")
    acc = N.reduce_accumulate(N.reduce(x, op, "row"), N.reduce(y, op, "row"), op)
    both = np.concatenate([x, y], axis=1).astype(np.float64)
    if op == "max":
        assert np.array_equal(acc[:, 0], both.max(axis=1))
    else:
        assert (np.abs(acc[:, 0] - both.sum(axis=1)) <= 66 * U32 * np.abs(both).sum(axis=1)).all()
    assert (acc[:, 1:] == 0).all()


# --- reduce on the FPU (SFPU.md §5) ----------------------------------------------------------
def golden_phases(x, s, fid, tf32=False):
    """Per-element products at `fid` from the tt-llk golden's masks on 11-bit significands
    (§5): A 0b11111000000 / 0b00000111110, B 0b11111110000 / 0b00000001111."""
    def sig(v, keep):
        v = np.asarray(v, np.float32)
        e = ((bits(v) >> 23) & 0xFF).astype(np.int64)
        m11 = ((bits(v) & 0x7FFFFF) | 0x800000).astype(np.int64) >> 13   # 11 bits
        if not keep:
            m11 &= ~0 if tf32 else 0b11111111000
        return np.where(e == 0, 0, m11), e, np.sign(v)
    am, ae, asg = sig(x, False)
    bm, be, bsg = (v[0] for v in sig(np.array([s], np.float32), True))
    a_parts = [am & 0b11111000000, am & 0b00000111110]
    b_parts = [bm & 0b11111110000, bm & 0b00000001111]
    pairs = [(0, 0), (1, 0), (0, 1), (1, 1)][:fid]
    prod = sum(a_parts[i] * int(b_parts[j]) for i, j in pairs)
    return asg * float(bsg) * prod * 2.0 ** (ae - 127 - 10 + int(be) - 127 - 10)


FID_PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
S8 = 0.298828125                 # bf16 0x3E99: 8 significant bits, so SrcB's low slice is 1


@pytest.mark.parametrize("dim", ["row", "col", "scalar"])
@pytest.mark.parametrize("fid", FIDS)
@given(seed=seeds, scaler=st.sampled_from([1.0, 0.5, 1 / 32, S8, -0.75]))
def test_reduce_fpu_phases(dim, fid, seed, scaler):
    """A sum at each fidelity is the sum of the golden's masked products, up to one fp32
    rounding per GAPOOL (fp32 DST, fp32 moves); lower fidelities really lose the slices."""
    x = tile(seed, "bf16", spread=4)
    out = N.reduce(x, "sum", dim, scaler, fidelity=fid, fp32_dst=True, enforce_fp32_acc=True)
    terms = golden_phases(x, scaler, FID_PHASES[fid])
    exact = x.astype(np.float64) * scaler
    axis = {"row": 1, "col": 0, "scalar": None}[dim]
    where = {"row": (slice(None), 0), "col": (0, slice(None)), "scalar": (0, 0)}[dim]
    rounds = (4 if dim == "scalar" else 2) * FID_PHASES[fid] + (dim == "scalar")
    scale = np.abs(exact).sum(axis=axis)
    assert (np.abs(out[where] - terms.sum(axis=axis)) <= rounds * U32 * scale).all()
    if fid == "LoFi" or (fid == "HiFi2" and scaler == S8):     # on |x|, free of cancellation
        pos = N.reduce(np.abs(x), "sum", dim, scaler, fidelity=fid, enforce_fp32_acc=True)
        assert (np.abs(pos[where] - scale * np.sign(scaler)) > rounds * U32 * scale).any()


@given(seed=seeds)
def test_reduce_fpu_lofi_truncates_data(seed):
    """LoFi keeps SrcA's 5 significant bits (4 mantissa bits); HiFi2 is exact for bf16
    data with a power-of-two scaler (§5). Values on a narrow grid make the sums exact."""
    r = np.random.default_rng(seed)
    x = (r.integers(-255, 256, (32, 32)) * 2.0 ** r.integers(-3, 1, (32, 32))).astype(np.float32)
    for dim, axis in (("col", 0), ("row", 1)):
        at = (0, slice(None)) if dim == "col" else (slice(None), 0)
        lo = N.reduce(x, "sum", dim, 0.5, fidelity="LoFi", enforce_fp32_acc=True)
        assert np.array_equal(lo[at], (N.keep_bits(x, 5).astype(np.float64) * 0.5).sum(axis=axis))
        for fid in ("HiFi2", "HiFi4"):
            hi = N.reduce(x, "sum", dim, 0.5, fidelity=fid, enforce_fp32_acc=True)
            assert np.array_equal(hi[at], (x.astype(np.float64) * 0.5).sum(axis=axis))
        assert not np.array_equal(lo, hi)


def test_reduce_fpu_tf32_drops_lowest_srca_bit():
    """For fp32 input (TF32 in SrcA) the 11th significant bit never enters a product (§5)."""
    x = np.zeros((32, 32), np.float32)
    x[0, 0] = 1 + 2.0 ** -10                  # 11 significant bits: a TF32 value
    out = N.reduce(x, "sum", "col", 1.0, fidelity="HiFi4", fp32_src=True)
    assert out[0, 0] == 1.0


def test_reduce_fpu_bf16_dst_rounds_every_gapool():
    """16-bit DST: each GAPOOL's result is rounded to bf16. Top face 1 + 2^-8 rounds to 1
    (a tie, to even), the bottom face's 2^-8 again: 1, where the sum is 1 + 2^-7."""
    x = np.zeros((32, 32), np.float32)
    x[0, 0], x[1, 0], x[16, 0] = 1, 2.0 ** -8, 2.0 ** -8
    assert N.reduce(x, "sum", "col", 1.0, fidelity="HiFi4", fp32_dst=False)[0, 0] == 1.0
    assert N.reduce(x, "sum", "col", 1.0, fidelity="HiFi4", fp32_dst=True)[0, 0] == 1 + 2.0 ** -7
    assert N.dst_round(N.reduce(x, "sum", "col"), False)[0, 0] == 1 + 2.0 ** -7   # ideal path
    assert N.reduce(x.T.copy(), "sum", "row", 1.0, fidelity="HiFi2", fp32_dst=False)[0, 0] == 1.0


def test_reduce_fpu_row_result_truncated_by_movd2b():
    """A row sum of 1 + 3 * 2^-9 in an fp32 DST reaches column 0 truncated to bf16 (1.0;
    nearest would be 1 + 2^-7), to TF32 for fp32 input, exact with enforce_fp32_acc; a
    column sum keeps DST precision (§5)."""
    x = np.zeros((32, 32), np.float32)
    x[0, :5] = [1, 2.0 ** -8, 2.0 ** -9, 0, 0]
    kw = dict(fidelity="HiFi4", fp32_dst=True)
    assert N.reduce(x, "sum", "row", 1.0, **kw)[0, 0] == 1.0
    assert N.reduce(x, "sum", "row", 1.0, enforce_fp32_acc=True, **kw)[0, 0] == 1 + 3 * 2.0 ** -9
    assert N.reduce(x.T.copy(), "sum", "col", 1.0, **kw)[0, 0] == 1 + 3 * 2.0 ** -9
    x[0, 3] = 2.0 ** -12
    assert N.reduce(x, "sum", "row", 1.0, fp32_src=True, **kw)[0, 0] == 1 + 3 * 2.0 ** -9


def test_reduce_fpu_flushes_denormals():
    x = np.zeros((32, 32), np.float32)
    x[0, 0] = 1e-40                                           # denormal input reads as 0
    assert N.reduce(x, "sum", "col", 2.0 ** 100, fidelity="HiFi4", fp32_src=True)[0, 0] == 0
    assert N.reduce(x, "sum", "col", 2.0 ** 100)[0, 0] > 0    # the ideal path keeps it
    x[0, 0] = 2.0 ** -120                                     # a denormal result: 2^-130
    assert N.reduce(x, "sum", "col", 2.0 ** -10, fidelity="HiFi4")[0, 0] == 0
    y = np.full((32, 32), -1, np.float32)
    y[3, 3] = 1e-40
    assert N.reduce(y, "max", "col", 1.0, fidelity="LoFi", fp32_src=True)[0, 3] == 0


@pytest.mark.parametrize("dim", ["row", "col", "scalar"])
@given(seed=seeds, scaler=st.sampled_from([1.0, 0.3, -2.0, 1 / 1024]))
def test_reduce_fpu_max_scales_by_exponent_only(dim, seed, scaler):
    """GMPOOL multiplies SrcA by 2^(exponent of the scaler): 0.3 acts as 0.25, -2 as 2."""
    x = tile(seed, "bf16", spread=4)
    out = N.reduce(x, "max", dim, scaler, fidelity="HiFi4", fp32_dst=False)
    p2 = 2.0 ** np.floor(np.log2(abs(scaler)))
    axis = {"row": 1, "col": 0, "scalar": None}[dim]
    where = {"row": (slice(None), 0), "col": (0, slice(None)), "scalar": (0, 0)}[dim]
    assert np.array_equal(out[where], (x.astype(np.float64) * p2).max(axis=axis))


@pytest.mark.parametrize("dim", ["row", "col", "scalar"])
@pytest.mark.parametrize("fp32_dst", [True, False])
@given(seed=seeds, fid=st.sampled_from(FIDS), fmt=st.sampled_from(["bf16", "fp32"]),
       enforce=st.booleans())
def test_reduce_fpu_error_bound(dim, fp32_dst, seed, fid, fmt, enforce):
    """Against float64 of the source-register values: the fidelity loss per product (plus
    2^-10 for TF32's unused bit), one DST rounding per GAPOOL (bf16 2^-8 or fp32 2^-24 of
    the running sum), and the MOVD2B truncation of a row result (bf16 2^-7, TF32 2^-10)."""
    x = src(tile(seed, fmt, spread=4), fmt)
    s = S8
    tf32 = fmt == "fp32"
    out = N.reduce(x, "sum", dim, s, fidelity=fid, fp32_dst=fp32_dst, fp32_src=tf32,
                   enforce_fp32_acc=enforce)
    assert fp32_dst or not (bits(out) & 0xFFFF).any()
    axis = {"row": 1, "col": 0, "scalar": None}[dim]
    where = {"row": (slice(None), 0), "col": (0, slice(None)), "scalar": (0, 0)}[dim]
    exact = (x.astype(np.float64) * s).sum(axis=axis)
    scale = np.abs(x.astype(np.float64) * s).sum(axis=axis)
    u = U32 if fp32_dst else 2.0 ** -8
    rounds = (4 if dim == "scalar" else 2) * FID_PHASES[fid] + (dim == "scalar") + (dim == "row")
    moved = 0 if enforce or dim == "col" or not fp32_dst else (2.0 ** -10 if tf32 else 2.0 ** -7)
    bound = (FIDELITY_ROUNDOFF[fid] + (2.0 ** -10 if tf32 else 0) + rounds * u + moved) * scale
    assert (np.abs(out[where] - exact) <= bound).all()


@pytest.mark.parametrize("op", ["sum", "max"])
@pytest.mark.parametrize("dim", ["row", "col", "scalar"])
@given(seed=seeds)
def test_reduce_fpu_accumulates_into_dst(op, dim, seed):
    """A reduce into a DST tile holding a result combines with it: the col sum continues
    GAPOOL's accumulation (so it equals reducing the 64 rows as 4 faces), the rest add or max."""
    x, y = tile(seed, "bf16"), tile(seed + 1, "bf16")
    kw = dict(fidelity="HiFi4", fp32_dst=True, enforce_fp32_acc=True)
    acc = N.reduce(y, op, dim, 1.0, acc=N.reduce(x, op, dim, 1.0, **kw), **kw)
    axis = {"row": 1, "col": 0, "scalar": None}[dim]
    where = {"row": (slice(None), 0), "col": (0, slice(None)), "scalar": (0, 0)}[dim]
    both = np.concatenate([x, y], axis=0 if dim == "col" else 1).astype(np.float64)
    if op == "max":
        assert np.array_equal(acc[where], both.max(axis=axis))
    else:
        assert (np.abs(acc[where] - both.sum(axis=axis)) <= 12 * U32 * np.abs(both).sum(axis=axis)).all()
    mask = np.zeros((32, 32), bool)
    mask[where] = True
    assert (acc[~mask] == 0).all()


def test_reduce_default_is_the_ideal_model():
    """Without a fidelity (what compute.py passes today) reduce is the float32 model."""
    x = tile(7, "bf16")
    assert np.array_equal(N.reduce(x, "sum", "row", 0.3), N.reduce(x, "sum", "row", 0.3, acc=None))
    assert np.array_equal(N.reduce(x, "max", "col", 0.3)[0], (x * np.float32(0.3)).max(axis=0))
    assert not np.array_equal(N.reduce(x, "max", "col", 0.3),
                              N.reduce(x, "max", "col", 0.3, fidelity="HiFi4"))


@given(seed=seeds)
def test_bcast(seed):
    """row repeats row 0 down, col repeats column 0 across, scalar repeats [0, 0]."""
    x = tile(seed)
    assert np.array_equal(N.bcast(x, "row"), np.tile(x[0], (32, 1)))
    assert np.array_equal(N.bcast(x, "col"), np.tile(x[:, :1], (1, 32)))
    assert np.array_equal(N.bcast(x, "scalar"), np.full((32, 32), x[0, 0]))
    assert np.array_equal(N.transpose(x), x.T)


def test_bcast_rejects_unknown():
    with pytest.raises(TTSimError, match="unknown broadcast"):
        N.bcast(np.zeros((32, 32), np.float32), "diag")


# --- SFPU ----------------------------------------------------------------------------------
# Domains where the op is well-conditioned, so float32 evaluation stays within a few ulp.
DOMAINS = {"log": (2.0 ** -10, 1e4), "sqrt": (0.0, 1e6), "rsqrt": (2.0 ** -10, 1e6),
           "recip": (1e-3, 1e4), "exp": (-80.0, 80.0), "exp2": (-120.0, 120.0),
           "sin": (-3.0, 3.0), "cos": (-1.5, 1.5), "tanh": (-10.0, 10.0),
           "sigmoid": (-15.0, 80.0), "silu": (-15.0, 20.0), "gelu": (-3.0, 10.0)}
REF_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
              "max": np.maximum, "min": np.minimum}


def test_sfpu_ops_all_tested():
    """A new SFPU op needs a reference here."""
    assert set(N.SFPU_UNARY) == set(REF_UNARY) and set(N.SFPU_BINARY) == set(REF_BINARY)


@pytest.mark.parametrize("op", sorted(REF_UNARY))
@given(seed=seeds)
def test_sfpu_unary_float32(op, seed):
    """float32 results within 8 float32 ulp of float64 (gelu: relative to |x| too, since
    its 1 + tanh cancels for negative x)."""
    lo, hi = DOMAINS.get(op, (-100.0, 100.0))
    x = np.random.default_rng(seed).uniform(lo, hi, (32, 32)).astype(np.float32)
    out = N.SFPU_UNARY[op](x)
    assert out.dtype == np.float32
    x64 = x.astype(np.float64)
    ref = REF_UNARY[op](x64)
    scale = np.abs(ref) + (np.abs(x64) if op == "gelu" else 0)
    assert (np.abs(out - ref) <= 8 * U32 * scale).all()


@pytest.mark.parametrize("op", sorted(REF_BINARY))
@given(seed=seeds)
def test_sfpu_binary_float32(op, seed):
    """One correctly rounded float32 operation."""
    r = np.random.default_rng(seed)
    a = (r.uniform(-4, 4, (32, 32)) * 2.0 ** r.integers(-20, 21, (32, 32))).astype(np.float32)
    b = (r.uniform(0.5, 4, (32, 32)) * r.choice([-1, 1], (32, 32))).astype(np.float32)
    out = N.SFPU_BINARY[op](a, b)
    assert out.dtype == np.float32
    assert np.array_equal(out, REF_BINARY[op](a.astype(np.float64), b.astype(np.float64)).astype(np.float32))


def test_sfpu_specials_are_values_not_warnings():
    """Overflow, division by zero and domain errors give inf/NaN quietly in a simulation, as
    on the SFPU (kernel threads run under np.errstate(all="ignore"), not each op)."""
    import warnings

    import ttsim
    from ttsim.library.tile_ops import tile_op_program
    x = np.zeros((32, 32), np.float32)
    x[0, :3] = [0.0, -1.0, 100.0]
    outs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for op in ("recip", "log", "exp"):
            dev = ttsim.Device()
            src, out = dev.tensor(x, "fp32"), dev.empty((32, 32), "fp32")
            dev.run(tile_op_program(dev, op, [src], out, fp32_dest_acc_en=True))
            outs[op] = out.to_numpy()[0, :3]
    assert outs["recip"][0] == np.inf and np.isnan(outs["log"][1]) and outs["exp"][2] == np.inf


# --- names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,phases", [("LoFi", 1), ("lofi", 1), ("HiFi2", 2), ("HIFI2", 2),
                                         ("hifi3", 3), ("HiFi4", 4)])
def test_parse_fidelity(name, phases):
    f = N.parse_fidelity(name)
    assert f is N.Fidelity(phases) and int(f) == phases and N.parse_fidelity(f) is f


@pytest.mark.parametrize("junk", ["HiFi", "HiFi5", "", "fast", None, 2.5])
def test_parse_fidelity_rejects_junk(junk):
    with pytest.raises(TTSimError, match="unknown math fidelity .*LoFi, HiFi2, HiFi3 or HiFi4"):
        N.parse_fidelity(junk)


def test_compiled_dst_rounding_is_ml_dtypes_bf16_rounding():
    """The compiled bf16 rounding of large DST writes (ttsim.round_jit) gives ml_dtypes'
    bits on every upper half-word, with lower half-words at and around the rounding
    boundaries and the NaN payloads (which ml_dtypes makes the quiet NaN of their sign)."""
    from ttsim.round_jit import bf16_round
    hi = np.arange(65536, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x1234], np.uint32)
    b = (hi[:, None] | lows[None, :]).reshape(-1)
    x = b.view(np.float32)
    with np.errstate(invalid="ignore"):
        want = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(bf16_round(x).view(np.uint32), want.view(np.uint32))
    big = np.random.default_rng(0).standard_normal((9, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(N.dst_round(big, False).view(np.uint32),
                                  big.astype(ml_dtypes.bfloat16).astype(np.float32).view(np.uint32))
    pages = x[::48][:9 * 1024].reshape(9, 32, 32)    # 9 tiles of bf16 pages are packed compiled
    with np.errstate(invalid="ignore"):
        one_by_one = np.concatenate([F.encode_tiles(t[None], "bf16") for t in pages])
    np.testing.assert_array_equal(F.encode_tiles(pages, "bf16"), one_by_one)
