"""Data formats and the tile layout: what L1 and DRAM hold, byte for byte.

The properties are checked on values spanning the whole float32 range (tiny, huge, zeros,
negative zeros, blocks of very different magnitude), so rounding, exponent clamping and the
byte layout are exercised at the edges, not only on well-behaved numbers.
"""
import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st

from ttsim import formats as F
from ttsim.errors import TTSimError

FORMATS = ["bf16", "fp32", "bfp8_b"]
FACES = [(0, 0), (0, 16), (16, 0), (16, 16)]     # top-left, top-right, bottom-left, bottom-right
seeds = st.integers(0, 2 ** 32 - 1)


def wide_values(seed, shape):
    """float32 values whose 16-value row blocks have magnitudes anywhere in float32's range.

    Each block gets its own binade (mostly near 1, some near the subnormal floor, some near
    the top), values inside a block spread over 12 binades below it, and some values and
    whole blocks are +0 or -0.
    """
    r = np.random.default_rng(seed)
    rows, cols = shape
    nb = (rows, cols // 16)
    kind = r.choice(3, nb, p=[0.6, 0.2, 0.2])
    e = np.where(kind == 0, r.integers(-10, 11, nb),
                 np.where(kind == 1, r.integers(-149, -119, nb), r.integers(100, 128, nb)))
    e = np.repeat(e, 16, axis=1)
    x = r.uniform(-1.9, 1.9, shape) * 2.0 ** (e - r.integers(0, 12, shape))
    x[r.random(shape) < 0.05] = 0.0
    x[r.random(shape) < 0.05] = -0.0
    x.reshape(rows, -1, 16)[r.random(nb) < 0.1] = 0.0
    return x.astype(np.float32)


def bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def same_bits(a, b):
    return np.array_equal(bits(a), bits(b))


def block_max(x):
    """Largest magnitude of each value's bfp8_b block (16 values of a row, 16-aligned)."""
    m = np.abs(x).reshape(*x.shape[:-1], -1, 16).max(axis=-1, keepdims=True)
    return np.broadcast_to(m, (*x.shape[:-1], x.shape[-1] // 16, 16)).reshape(x.shape)


def bf16_rne_bits(x):
    """Reference bf16 rounding on the bit pattern: round to nearest, ties to even (finite x)."""
    b = bits(x).astype(np.uint64)
    r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return r.astype(np.uint16)


def ref_bfp8_page(tile):
    """Slow, independent bfp8_b encoder for one 32x32 tile (the documented model).

    Face rows in face order give 64 blocks; exponent byte i belongs to block i, mantissa byte
    64 + 16 i + j to value j of it. Shared exponent: the biased exponent of the block's
    largest magnitude (0 for a zero block, clamped at 0 below 2^-126); magnitudes are the
    values over 2^(exp - 127 - 6) rounded half to even and clamped to 127; the sign bit is
    set only for a negative value with a nonzero magnitude (as tt-metal's packer does).
    """
    out = bytearray(1088)
    blk = 0
    for r0, c0 in FACES:
        for i in range(16):
            vals = [float(v) for v in tile[r0 + i, c0:c0 + 16]]
            mx = max(abs(v) for v in vals)
            biased = 0 if mx == 0 else max(math.frexp(mx)[1] - 1 + 127, 0)
            out[blk] = biased
            step = 2.0 ** (biased - 127 - 6)
            for j, v in enumerate(vals):
                m = min(round(abs(v) / step), 127)
                out[64 + 16 * blk + j] = (0x80 if v < 0 and m else 0) | m
            blk += 1
    return np.frombuffer(bytes(out), np.uint8)


# --- tile layout ---------------------------------------------------------------------------
@given(lead=st.lists(st.integers(1, 3), max_size=2), tr=st.integers(1, 3), tc=st.integers(1, 3),
       seed=seeds)
def test_tilize_untilize_round_trip(lead, tr, tc, seed):
    """Tiles come out row-major over tiles, leading dims first, and untilize inverts tilize."""
    shape = (*lead, 32 * tr, 32 * tc)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    t = F.tilize(x)
    assert t.shape == (math.prod(lead) * tr * tc, 32, 32) and t.dtype == np.float32
    flat = x.reshape(-1, 32 * tr, 32 * tc)
    for k in range(t.shape[0]):
        b, rem = divmod(k, tr * tc)
        i, j = divmod(rem, tc)
        assert np.array_equal(t[k], flat[b, 32 * i:32 * i + 32, 32 * j:32 * j + 32])
    assert same_bits(F.untilize(t, shape), x)


def test_tilize_rejects_partial_tiles():
    with pytest.raises(TTSimError, match="multiples of 32"):
        F.tilize(np.zeros((32, 48), np.float32))


# --- pages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,size", [("bf16", 2048), ("fp32", 4096), ("bfp8_b", 1088)])
@given(n=st.integers(1, 4))
def test_page_sizes(fmt, size, n):
    """Page sizes are the hardware's (HARDWARE.md: Tiles and formats)."""
    assert F.parse_format(fmt).tile_bytes == size
    raw = F.encode_tiles(np.ones((n, 32, 32), np.float32), fmt)
    assert raw.dtype == np.uint8 and raw.shape == (n * size,)
    assert F.decode_tiles(raw, fmt, n).shape == (n, 32, 32)


@pytest.mark.parametrize("fmt", FORMATS)
@given(seed=seeds, n=st.integers(1, 3))
def test_quantize_is_idempotent_and_pages_round_trip(fmt, seed, n):
    """Encoding rounds exactly as quantize does, and a quantized value survives a page exactly."""
    x = wide_values(seed, (32, 32 * n))
    q = F.quantize(x, fmt)
    assert q.dtype == np.float32 and q.shape == x.shape
    assert same_bits(F.quantize(q, fmt), q)
    for v in (x, q):
        back = F.untilize(F.decode_tiles(F.encode_tiles(F.tilize(v), fmt), fmt, n), x.shape)
        if fmt == "bfp8_b":           # -0 has no encoding of its own (see test_bfp8_signs)
            assert np.array_equal(back, q)
        else:
            assert same_bits(back, q)


# --- bf16 and fp32 -------------------------------------------------------------------------
@given(seed=seeds)
def test_bf16_rounds_to_nearest_even(seed):
    """bf16 quantize is ml_dtypes' cast and a bit-level round-half-to-even, with -0 kept."""
    x = wide_values(seed, (32, 64))
    q = F.quantize(x, "bf16")
    assert same_bits(q, x.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert np.array_equal(bits(q) >> 16, bf16_rne_bits(x)) and not (bits(q) & 0xFFFF).any()


def test_bf16_ties_and_top_of_range():
    """Ties go to the even neighbour; the largest bf16 stays, the next half-step up is inf."""
    one_ulp = 2.0 ** -7
    bf16_max = float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    x = np.array([1 + one_ulp / 2, 1 + 3 * one_ulp / 2, -(1 + one_ulp / 2), bf16_max,
                  bf16_max + 2.0 ** 119, -bf16_max - 2.0 ** 119, bf16_max + 2.0 ** 119 * 0.99,
                  2.0 ** -133, 0.0, -0.0], np.float32)
    q = F.quantize(x, "bf16")
    assert q[:4].tolist() == [1.0, 1 + 2 * one_ulp, -1.0, bf16_max]
    assert q[4] == np.inf and q[5] == -np.inf and q[6] == bf16_max
    assert q[7] == np.float32(2.0 ** -133)          # bf16 keeps subnormals
    assert same_bits(q[8:], x[8:]) and np.signbit(q[9])


@given(seed=seeds)
def test_bf16_page_bytes(seed):
    """A bf16 page is the top halves of the rounded float32s, little-endian, in face order."""
    x = wide_values(seed, (32, 32))
    raw = F.encode_tiles(x[None], "bf16")
    want = np.concatenate([bf16_rne_bits(x[r0:r0 + 16, c0:c0 + 16]).ravel() for r0, c0 in FACES])
    assert np.array_equal(raw, want.astype("<u2").view(np.uint8))


@given(seed=seeds)
def test_fp32_is_exact(seed):
    """fp32 stores every bit, including subnormals, -0, inf and NaN payloads."""
    x = wide_values(seed, (32, 32))
    x[0, :4] = np.array([0x7FC01234, 0xFF800000, 0x7F800000, 0x00000001], np.uint32).view(np.float32)
    assert same_bits(F.quantize(x, "fp32"), x)
    raw = F.encode_tiles(x[None], "fp32")
    want = np.concatenate([x[r0:r0 + 16, c0:c0 + 16].ravel() for r0, c0 in FACES])
    assert np.array_equal(raw, want.astype("<f4").view(np.uint8))
    assert same_bits(F.decode_tiles(raw, "fp32", 1)[0], x)


@pytest.mark.parametrize("fmt", ["bf16", "fp32"])
def test_nonfinite_pass_through_bf16_fp32(fmt):
    """inf, -inf and NaN stay what they are through quantize and a page (the finite values
    around them are untouched)."""
    x = np.full((32, 32), 1.5, np.float32)
    x[0, :3] = [np.inf, -np.inf, np.nan]
    for v in (F.quantize(x, fmt), F.decode_tiles(F.encode_tiles(x[None], fmt), fmt, 1)[0]):
        assert v[0, 0] == np.inf and v[0, 1] == -np.inf and np.isnan(v[0, 2])
        assert (v.ravel()[3:] == 1.5).all()


# --- bfp8_b --------------------------------------------------------------------------------
@given(seed=seeds)
def test_bfp8_error_within_block_bound(seed):
    """Each value is within 2^-7 of its block's largest magnitude (half a step of 2^(e-6),
    e the block max's exponent). Blocks below 2^-126 keep exponent 0, so their step is
    2^-133 and the bound is half of that."""
    x = wide_values(seed, (64, 64))
    q = F.quantize(x, "bfp8_b").astype(np.float64)
    err = np.abs(q - x)
    bound = np.maximum(2.0 ** -7 * block_max(x.astype(np.float64)), 2.0 ** -134)
    assert (err <= bound).all(), f"worst excess {np.max(err - bound):.3g}"


@given(seed=seeds, seed2=seeds, block=st.integers(0, 63))
def test_bfp8_blocks_are_independent(seed, seed2, block):
    """Changing one block (16 values of a row) changes no value outside it."""
    x = wide_values(seed, (32, 64))
    y = x.copy()
    r, c = divmod(block, 4)
    y[r, 16 * c:16 * c + 16] = wide_values(seed2, (1, 16))[0]
    qx, qy = F.quantize(x, "bfp8_b"), F.quantize(y, "bfp8_b")
    outside = np.ones(x.shape, bool)
    outside[r, 16 * c:16 * c + 16] = False
    assert np.array_equal(qx[outside], qy[outside])


@given(seed=seeds)
def test_bfp8_shared_exponent_and_zero_blocks(seed):
    """Exponent byte = biased exponent of the block max (0 for zero or sub-2^-126 blocks);
    zero blocks are all zero bytes and decode to zero."""
    x = wide_values(seed, (32, 32))
    raw = F.encode_tiles(x[None], "bfp8_b")
    blocks = np.concatenate([x[r0:r0 + 16, c0:c0 + 16] for r0, c0 in FACES]).astype(np.float64)
    mx = np.abs(blocks).max(axis=1)
    with np.errstate(divide="ignore"):
        want = np.where(mx > 0, np.maximum(np.floor(np.log2(mx)) + 127, 0), 0)
    assert np.array_equal(raw[:64], want.astype(np.uint8))
    zero = mx == 0
    assert (raw[64:].reshape(64, 16)[zero] == 0).all()
    dec = F.decode_tiles(raw, "bfp8_b", 1)[0]
    dec_blocks = np.concatenate([dec[r0:r0 + 16, c0:c0 + 16] for r0, c0 in FACES])
    assert (dec_blocks[zero] == 0).all()


@given(seed=seeds)
def test_bfp8_signs(seed):
    """Nonzero results keep the input's sign; values that round to zero (including -0)
    become +0: a zero magnitude is stored without a sign bit."""
    x = wide_values(seed, (32, 32))
    q = F.quantize(x, "bfp8_b")
    nz = q != 0
    assert np.array_equal(np.signbit(q[nz]), np.signbit(x[nz]))
    assert not np.signbit(q[~nz]).any()
    assert np.all((q == 0) | (np.abs(x) > 0))


@given(seed=seeds, n=st.integers(1, 2))
def test_bfp8_page_bytes_match_reference_encoder(seed, n):
    """Byte layout: 64 exponents, then 1024 sign+7-bit magnitudes, faces TL, TR, BL, BR,
    each row by row, checked against a slow encoder written from the description."""
    x = wide_values(seed, (32, 32 * n))
    tiles = F.tilize(x)
    raw = F.encode_tiles(tiles, "bfp8_b").reshape(n, 1088)
    for k in range(n):
        want = ref_bfp8_page(tiles[k])
        diff = np.flatnonzero(raw[k] != want)
        assert diff.size == 0, f"tile {k}: first differing byte {diff[0]}: {raw[k][diff[0]]} != {want[diff[0]]}"


def test_bfp8_edges():
    """Rounding at the top of a block clamps to 127; ties go to even; tiny blocks use
    exponent 0 with a step of 2^-133; the largest float32 stays finite."""
    x = np.zeros((1, 64), np.float32)
    x[0, :3] = [1.999, 1.0 + 2 ** -7, 1.0 + 3 * 2 ** -7]   # step 2^-6 in the block of 1.x
    x[0, 16:18] = [2.0 ** -128, 2.0 ** -140]                 # block max below 2^-126
    x[0, 32:34] = [np.finfo(np.float32).max, 1.0]
    x[0, 48:50] = [2.0 ** -149, -2.0 ** -149]                # smallest subnormals flush to 0
    q = F.quantize(x, "bfp8_b")
    assert q[0, :3].tolist() == [127 / 64, 1.0, 1.0 + 2 * 2 ** -6]
    assert q[0, 16] == np.float32(2.0 ** -128) and q[0, 17] == 0
    assert q[0, 32] == np.float32(127 * 2.0 ** 121) and q[0, 33] == 0
    assert (q[0, 48:50] == 0).all()


def test_bfp8_nonfinite_poisons_its_block_only():
    """A bfp8_b block holding inf or NaN has no shared exponent: it reads back as NaN (the
    same through quantize and through a page), and the other blocks are unaffected."""
    x = np.full((32, 32), 0.75, np.float32)
    x[0, 0], x[1, 16] = np.inf, np.nan
    dec = F.decode_tiles(F.encode_tiles(x[None], "bfp8_b"), "bfp8_b", 1)[0]
    q = F.quantize(x, "bfp8_b")
    bad = np.zeros(x.shape, bool)
    bad[0, :16] = bad[1, 16:] = True
    assert np.isnan(dec[bad]).all() and np.isnan(q[bad]).all()
    assert (dec[~bad] == 0.75).all() and (q[~bad] == 0.75).all()


def test_bfp8_needs_whole_blocks():
    with pytest.raises(TTSimError, match="multiple of 16"):
        F.quantize(np.ones((2, 24), np.float32), "bfp8_b")


# --- names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,fmt", [
    ("bf16", "BF16"), ("bfloat16", "BF16"), ("float16_b", "BF16"), ("BF16", "BF16"),
    ("fp32", "FP32"), ("float32", "FP32"), ("Float32", "FP32"),
    ("bfp8_b", "BFP8_B"), ("bfloat8_b", "BFP8_B"), ("bfp8", "BFP8_B"), ("BFP8_B", "BFP8_B")])
def test_parse_format_aliases(name, fmt):
    assert F.parse_format(name) is F.DataFormat[fmt]
    assert F.parse_format(F.DataFormat[fmt]) is F.DataFormat[fmt]


def test_parse_format_takes_named_objects():
    """Objects with a .name (numpy dtypes, ttnn-style enums) are looked up by that name."""
    assert F.parse_format(np.dtype(np.float32)) is F.DataFormat.FP32
    assert F.parse_format(np.dtype(ml_dtypes.bfloat16)) is F.DataFormat.BF16


@pytest.mark.parametrize("junk", ["fp16", "bfp4_b", "", "int8", None, 3])
def test_parse_format_rejects_junk(junk):
    with pytest.raises(TTSimError, match=r"unknown data format .*bf16, fp32, bfp8_b"):
        F.parse_format(junk)
