"""Every compute op, through the whole machine, against a float64 reference.

Inputs are rounded to their format on the host, so the reference sees exactly the values
the hardware holds; the remaining error is the op's own rounding (float32 SFPU, DST format,
pack to the output format), bounded from the formats involved.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import ttsim
from ttsim import numerics, sfpu
from ttsim.compute import ComputeConfig
from ttsim.library.tile_ops import BINARY_FPU, BINARY_SFPU, UNARY_SFPU, tile_op_program
from ttlang.testing import UNARY_REFERENCE as REF_UNARY

U_BF16 = 2.0 ** -8     # unit roundoff of bf16 (8 significant bits)

DOMAINS = {  # where each op is well-conditioned enough to test to format precision
    "log": (0.1, 50.0), "sqrt": (0.01, 100.0), "rsqrt": (0.05, 100.0), "recip": (0.1, 10.0),
    "exp": (-8.0, 4.0), "exp2": (-8.0, 5.0), "sin": (-3.0, 3.0), "cos": (-3.0, 3.0),
}


def run_op(dev, op, arrays, dtype="bf16", out_dtype="bf16", **kw):
    ins = [dev.tensor(a, dtype) for a in arrays]
    out = dev.empty(arrays[0].shape, out_dtype)
    rep = dev.run(tile_op_program(dev, op, ins, out, **kw))
    return [t.to_numpy().astype(np.float64) for t in ins], out.to_numpy().astype(np.float64), rep


def values(draw_shape=(32, 64), lo=-4.0, hi=4.0):
    return st.integers(0, 2 ** 31).map(
        lambda s: np.random.default_rng(s).uniform(lo, hi, draw_shape).astype(np.float32))


def assert_close(out, ref, rtol, atol):
    err = np.abs(out - ref)
    bound = rtol * np.abs(ref) + atol
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (f"max excess at {worst}: out {out[worst]}, ref {ref[worst]}, "
                                  f"err {err[worst]:.3g} > bound {bound[worst]:.3g}")


@pytest.mark.parametrize("op", UNARY_SFPU)
@given(seed=st.integers(0, 2 ** 31))
def test_unary_sfpu(op, seed):
    lo, hi = DOMAINS.get(op, (-4.0, 4.0))
    x = np.random.default_rng(seed).uniform(lo, hi, (32, 64)).astype(np.float32)
    (xq,), out, _ = run_op(ttsim.Device(), op, [x])
    ref = REF_UNARY[op](xq)
    # the SFPU op's result as it lands in a 16-bit DST (its own algorithm and rounding, or
    # float32 truncated by SFPSTORE), exactly kept by the bf16 pack
    u = sfpu.error_bound(op, ComputeConfig().sfpu_mode(op), fp32_dst=False) * 1.01
    assert_close(out, ref, rtol=u, atol=1e-6 + (u if op in ("sin", "cos") else 0))


@pytest.mark.parametrize("op", BINARY_FPU + BINARY_SFPU)
@pytest.mark.parametrize("dtype", ["bf16", "fp32", "bfp8_b"])
@given(seed=st.integers(0, 2 ** 31))
def test_binary(op, dtype, seed):
    r = np.random.default_rng(seed)
    a = r.uniform(-4, 4, (64, 32)).astype(np.float32)
    b = r.uniform(0.5, 4, (64, 32)).astype(np.float32) * r.choice([-1, 1], (64, 32))
    (aq, bq), out, _ = run_op(ttsim.Device(), op, [a, b], dtype, "fp32", fp32_dest_acc_en=True)
    ref = {"add": aq + bq, "sub": aq - bq, "mul": aq * bq, "max": np.maximum(aq, bq),
           "min": np.minimum(aq, bq), "div": aq / bq}[op]
    # fp32 DST and fp32 output; FPU operands pass through 19-bit source registers, so fp32
    # inputs keep 11 significant bits (TF32) before the op.
    u_src = 2.0 ** -11 if dtype == "fp32" and op in BINARY_FPU else 2.0 ** -23
    scale = np.abs(aq) + np.abs(bq) if op in ("add", "sub") else np.abs(ref)
    assert_close(out, ref, rtol=0, atol=(2 * u_src + 2 ** -22) * scale + 1e-30)


@pytest.mark.parametrize("bcast", ["row", "col", "scalar"])
@pytest.mark.parametrize("op", BINARY_FPU)
def test_binary_broadcast(op, bcast, rng):
    a = rng.uniform(-2, 2, (32, 32)).astype(np.float32)
    b = rng.uniform(-2, 2, (32, 32)).astype(np.float32)
    (aq, bq), out, _ = run_op(ttsim.Device(), op, [a, b], "bf16", "fp32", bcast=bcast,
                              fp32_dest_acc_en=True)
    bb = {"row": np.broadcast_to(bq[0:1, :], bq.shape), "col": np.broadcast_to(bq[:, 0:1], bq.shape),
          "scalar": np.full_like(bq, bq[0, 0])}[bcast]
    ref = {"add": aq + bb, "sub": aq - bb, "mul": aq * bb}[op]
    assert_close(out, ref, rtol=2 ** -22, atol=1e-30)


@pytest.mark.parametrize("fidelity", ["LoFi", "HiFi2", "HiFi3", "HiFi4"])
@pytest.mark.parametrize("dtype", ["bf16", "bfp8_b"])
def test_matmul_tile_by_fidelity(fidelity, dtype, rng):
    a = rng.uniform(-1, 1, (32, 32)).astype(np.float32)
    b = rng.uniform(-1, 1, (32, 32)).astype(np.float32)
    (aq, bq), out, _ = run_op(ttsim.Device(), "matmul", [a, b], dtype, "fp32", math_fidelity=fidelity,
                              fp32_dest_acc_en=True)
    ref = aq @ bq
    scale = np.abs(aq) @ np.abs(bq)
    exact = fidelity == "HiFi4" or (dtype == "bfp8_b" and fidelity != "LoFi")
    # Each fidelity phase drops the low mantissa slices of one operand: LoFi keeps 5
    # significant bits of A and 7 of B, so a product is off by up to ~2^-4 relative.
    u = {"LoFi": 2.0 ** -4 + 2.0 ** -6 + 2.0 ** -10, "HiFi2": 2.0 ** -6, "HiFi3": 2.0 ** -10,
         "HiFi4": 0}[fidelity]
    assert_close(out, ref, rtol=0, atol=(0 if exact else u) * scale + 32 * 2 ** -23 * scale)
    if fidelity == "LoFi" and dtype == "bf16":
        assert np.abs(out - ref).max() > 1e-5, "LoFi should lose precision on bf16 inputs"


def test_matmul_transpose_b(rng):
    a = rng.uniform(-1, 1, (32, 32)).astype(np.float32)
    b = rng.uniform(-1, 1, (32, 32)).astype(np.float32)
    (aq, bq), out, _ = run_op(ttsim.Device(), "matmul", [a, b], "bf16", "fp32", transpose_b=True,
                              fp32_dest_acc_en=True)
    assert_close(out, aq @ bq.T, rtol=0, atol=32 * 2 ** -23 * (np.abs(aq) @ np.abs(bq.T)))


@pytest.mark.parametrize("op", ["sum", "max"])
@pytest.mark.parametrize("dim", ["row", "col", "scalar"])
def test_reduce(op, dim, rng):
    x = rng.uniform(-3, 3, (32, 64)).astype(np.float32)
    s = np.ones_like(x)
    (xq, _), out, _ = run_op(ttsim.Device(), f"reduce_{op}_{dim}", [x, s], "bf16", "fp32",
                             fp32_dest_acc_en=True)
    f = np.sum if op == "sum" else np.max
    for t in range(2):
        tile, o = xq[:, 32 * t:32 * t + 32], out[:, 32 * t:32 * t + 32]
        if dim == "row":
            got, ref = o[:, 0], f(tile, axis=1)
        elif dim == "col":
            got, ref = o[0, :], f(tile, axis=0)
        else:
            got, ref = o[0, 0], f(tile)
        assert_close(np.atleast_1d(got), np.atleast_1d(ref), rtol=0,
                     atol=1e-6 * np.abs(tile).sum() + 1e-6)


def test_transpose_and_copy(rng):
    x = rng.uniform(-3, 3, (32, 32)).astype(np.float32)
    (xq,), out, _ = run_op(ttsim.Device(), "transpose", [x])
    assert np.array_equal(out, xq.T)
    (xq,), out, _ = run_op(ttsim.Device(), "copy", [x], "fp32", "fp32", fp32_dest_acc_en=True,
                           unpack_to_dest_fp32=False)
    # through the source registers fp32 keeps TF32 precision ...
    tf32 = numerics.to_src(xq.astype(np.float32), ttsim.DataFormat.FP32)
    assert np.array_equal(out, tf32) and not np.array_equal(out, xq)
    # ... unpacked straight to an fp32 DST (the default with fp32 DST) it keeps every bit
    (xq,), out, _ = run_op(ttsim.Device(), "copy", [x], "fp32", "fp32", fp32_dest_acc_en=True)
    assert np.array_equal(out, xq)


def test_dst_16bit_accumulation_loses_precision(rng):
    """Matmul over K into a 16-bit DST rounds to bf16 after every tile step; fp32 DST does not."""
    from ttsim.library.matmul import matmul
    a = rng.uniform(0, 1, (32, 32 * 16)).astype(np.float32)
    b = rng.uniform(0, 1, (32 * 16, 32)).astype(np.float32)
    errs = {}
    for acc in (False, True):
        dev = ttsim.Device()
        ta, tb = dev.tensor(a), dev.tensor(b)
        c, _ = matmul(dev, ta, tb, out_dtype="fp32", grid=(1, 1), fp32_dest_acc_en=acc)
        ref = ta.to_numpy().astype(np.float64) @ tb.to_numpy().astype(np.float64)
        errs[acc] = np.abs(c.to_numpy() - ref).max() / np.abs(ref).max()
    assert errs[True] < 1e-5 < errs[False] < 2 ** -6


def _threads(rep):
    return [(t.core, t.kind, t.busy, t.stalls, t.end) for t in rep.threads]


@pytest.mark.parametrize("grid", [(1, 1), (2, 2)])
def test_fused_compute_times_exactly_as_three_threads(grid, rng):
    """Running a compute kernel once for UNPACK, MATH and PACK (the default) gives the same
    cycles, per-thread busy/stall figures and bits as running three copies of it."""
    from ttsim.library.matmul import matmul_program
    a = rng.standard_normal((128, 256)).astype(np.float32)
    b = rng.standard_normal((256, 128)).astype(np.float32)
    out = {}
    for fused in (True, False):
        dev = ttsim.Device()
        c = dev.empty((128, 128))
        prog = matmul_program(dev, dev.tensor(a), dev.tensor(b), c, grid=grid)
        for k in prog.kernels:
            if k.kind == "compute":
                k.config.fused = fused
        rep = dev.run(prog)
        out[fused] = (rep.cycles, _threads(rep), c.to_numpy())
    assert out[True][:2] == out[False][:2]
    assert np.array_equal(out[True][2], out[False][2])


def test_fused_compute_refuses_to_wait_for_itself():
    """PACK waiting for DST before MATH commits it, in program order, works on hardware (and
    with fused=False) but would make the fused run wait for itself: a clear error instead."""
    def compute(k):
        k.tile_regs_acquire()
        k.fill_tile(0, 1.0)
        k.tile_regs_wait()          # before the commit below
        k.tile_regs_commit()
        k.cb_reserve_back(16, 1)
        k.pack_tile(0, 16)
        k.cb_push_back(16, 1)
        k.tile_regs_release()

    for fused in (True, False):
        dev = ttsim.Device()
        prog = ttsim.Program(dev)
        prog.circular_buffer((0, 0), 16, num_pages=1)
        prog.compute((0, 0), compute, fused=fused)
        if fused:
            with pytest.raises(ttsim.CBError, match="later in the kernel's program order"):
                dev.run(prog)
        else:
            assert dev.run(prog).cycles > 0


def test_sfpu_ops_on_a_16_bit_dst_are_their_algorithm_bit_for_bit():
    """A 16-bit DST holds bf16 values, so an SFPU unary op there is looked up in a table of
    its algorithm over all 65,536 bf16 patterns (compute._tabulated): every op and mode gives
    the algorithm's bits on bf16 inputs (NaNs, infinities, zeros, denormals included), and a
    value with low bits set takes the algorithm itself."""
    from ttsim import compute
    dev = ttsim.Device("wormhole_b0")
    costs = {k: f.value for k, f in dev.sd.figures.items()}
    table = compute.sfpu_ops(costs, ComputeConfig(fp32_dest_acc_en=False))
    rng = np.random.default_rng(0)
    bf16 = (rng.integers(0, 65536, (3, 32, 32), dtype=np.uint32) << 16)
    bf16[0, 0, :8] = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x00010000, 0x80010000, 0x3F800000]
    odd = bf16 | rng.integers(1, 65536, bf16.shape, dtype=np.uint32)
    checked = 0
    for (kind, op, mode), (_, _, fn) in table.items():
        if kind != "unary" or op == "scale":
            continue
        plain = fn.algorithm
        for x in (bf16.view(np.float32), odd.view(np.float32)):
            with np.errstate(all="ignore"):
                want, got = np.asarray(plain(x), np.float32), fn(x)
            if op in compute.CHIP_SFPU:         # SFPU.md's algorithms: every bit
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                              err_msg=f"{op} {mode}")
            else:       # numpy's functions: a NaN's payload is numpy's (it varies with the
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want))    # neighbours)
                ok = ~np.isnan(want)
                np.testing.assert_array_equal(got.view(np.uint32)[ok], want.view(np.uint32)[ok],
                                              err_msg=f"{op} {mode}")
        checked += 1
    assert checked >= 20
