"""Every ttlang op, reduction and broadcast direction against a float64 reference."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import ttlang as ttl
from ttlang import testing as tt
from tests.ttlang.conftest import run_blocks

UNARY_REF = tt.UNARY_REFERENCE
POSITIVE = {"log", "sqrt", "rsqrt", "recip"}


@pytest.mark.parametrize("op", sorted(UNARY_REF))
@given(seed=tt.seeds(), shape=tt.tile_shapes(max_tiles=3), fmt=tt.formats(("bf16", "bfp8_b")),
       grid=st.sampled_from([(1, 1), (2, 1), (2, 2)]))
def test_unary(op, seed, shape, fmt, grid):
    lo, hi = (0.25, 4.0) if op in POSITIVE else (-3.0, 3.0)
    x = tt.array(shape, fmt, seed, lo, hi)
    (xq,), out, _, k = run_blocks(getattr(ttl.math, op), [x], block=(1, 1), grid=grid, dtype=fmt,
                                  out_dtype="bf16")
    ref = UNARY_REF[op](xq)
    # one SFPU op as the kernel ran it, stored into a 16-bit DST (truncated unless the op
    # rounds); sin/cos near zero need an absolute floor
    tt.assert_close(out, ref, "bf16", ops=1.05, kernel=k,
                    atol=2 ** -9 if op in ("sin", "cos") else 1e-30)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "max", "min"])
@given(seed=tt.seeds(), fmt=tt.formats(), block=st.sampled_from([(1, 1), (2, 2), (1, 4)]),
       grid=st.sampled_from([(1, 1), (2, 2)]))
def test_binary(op, seed, fmt, block, grid):
    a = tt.array((64, 128), fmt, seed)
    b = tt.array((64, 128), fmt, seed + 1, 0.5, 2.0) * np.where(np.arange(128) % 2, 1, -1)
    b = tt.quantize(b, fmt)
    f = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
         "div": lambda x, y: x / y, "max": ttl.math.max, "min": ttl.math.min}[op]
    (aq, bq), out, _, _ = run_blocks(f, [a, b], block, grid, fmt, out_dtype="fp32",
                                     fp32_dest_acc_en=True)
    ref = {"add": aq + bq, "sub": aq - bq, "mul": aq * bq, "div": aq / bq,
           "max": np.maximum(aq, bq), "min": np.minimum(aq, bq)}[op]
    scale = np.abs(aq) + np.abs(bq) if op in ("add", "sub") else np.abs(ref)
    # fp32 operands of FPU ops pass through 19-bit source registers (TF32)
    u_ops = 2 ** -11 / 2 ** -24 if fmt == "fp32" and op in ("add", "sub", "mul") else 2
    tt.assert_close(out, ref, "fp32", ops=2 * u_ops, scale=scale)


@pytest.mark.parametrize("kind", ["max", "sum"])
@pytest.mark.parametrize("dims", [[1], [0], [0, 1]])
@given(seed=tt.seeds(), shape=tt.tile_shapes(max_tiles=3), fmt=tt.formats(("bf16", "bfp8_b")),
       grid=st.sampled_from([(1, 1), (2, 1)]))
def test_reductions(kind, dims, seed, shape, fmt, grid):
    """Two blocks of `shape` stacked by rows, each reduced on its own (core)."""
    r, c = shape[0] // 32, shape[1] // 32
    x = tt.array((2 * shape[0], shape[1]), fmt, seed)
    red = getattr(ttl.math, f"reduce_{kind}")
    ob = {(1,): (r, 1), (0,): (1, c), (0, 1): (1, 1)}[tuple(dims)]
    (xq,), out, _, _ = run_blocks(lambda a: red(a, dims=dims), [x], block=(r, c), grid=grid,
                                  dtype=fmt, out_block=ob, out_dtype="fp32", fp32_dest_acc_en=True)
    f = np.max if kind == "max" else np.sum
    for blk in range(2):
        xb = xq[blk * shape[0]:(blk + 1) * shape[0]]
        o = out[blk * 32 * ob[0]:(blk + 1) * 32 * ob[0]]
        if dims == [1]:
            got, ref = o[:, 0], f(xb, axis=1)
        elif dims == [0]:
            got, ref = o[0, :], f(xb, axis=0)
        else:
            got, ref = o[0, 0], f(xb)
        # fp32 accumulation of exact products (inputs times a scaler of 1.0)
        tt.assert_close(np.atleast_1d(got), np.atleast_1d(ref), "fp32", ops=xb.size,
                        scale=np.abs(xb).sum() if kind == "sum" else np.abs(ref))


@pytest.mark.parametrize("kind", ["max", "sum"])
@pytest.mark.parametrize("dims", [[1], [0], [0, 1]])
@pytest.mark.parametrize("scale", [0.25, -2.0])
def test_reductions_with_a_scaler(kind, dims, scale):
    """TT-Lang's reduce_<kind>(x, scaler, dims): x times the scaler block's first element
    (the hardware's scaler tile), reduced; a number scales the same way; dims may be given
    positionally."""
    x = tt.array((64, 96), "bf16", 5)
    sc = np.full((64, 96), scale, np.float32)
    red = getattr(ttl.math, f"reduce_{kind}")
    ob = {(1,): (2, 1), (0,): (1, 3), (0, 1): (1, 1)}[tuple(dims)]
    f = np.max if kind == "max" else np.sum
    axis = tuple(dims)
    outs = []
    for fn in (lambda a, s: red(a, s, dims=dims), lambda a, s: red(a, s + 0.0, dims),
               lambda a, s: red(a, scale, dims=dims)):
        (xq, _), out, _, _ = run_blocks(fn, [x, sc], block=(2, 3), out_block=ob, out_dtype="fp32",
                                        fp32_dest_acc_en=True)
        ref = f(xq * scale, axis=axis, keepdims=True)
        got = out[:, :1] if dims == [1] else (out[:1] if dims == [0] else out[:1, :1])
        tt.assert_close(got, ref, "bf16", ops=2, scale=np.abs(xq * scale).sum(axis=axis, keepdims=True))
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])   # a scaler computed in the statement


def test_reduce_scaler_of_the_wrong_kind_is_a_compile_error():
    x = tt.array((32, 32), "bf16", 5)
    with pytest.raises(ttl.CompileError, match="cannot use str in a block expression"):
        run_blocks(lambda a: ttl.math.reduce_sum(a, "one", dims=[1]), [x])


@pytest.mark.parametrize("dims", [[1], [0], [0, 1]])
@given(seed=tt.seeds(), shape=tt.tile_shapes(max_tiles=3), grid=st.sampled_from([(1, 1), (2, 1)]))
def test_broadcast_directions(dims, seed, shape, grid):
    x = tt.array(shape, "bf16", seed)
    v = tt.array(shape, "bf16", seed + 1)
    block = (shape[0] // 32, shape[1] // 32)
    f = lambda a, b: a - ttl.math.broadcast(ttl.math.reduce_max(b, dims=dims), dims=dims)
    (aq, bq), out, _, _ = run_blocks(f, [x, v], block=block, grid=grid, out_dtype="fp32",
                                     fp32_dest_acc_en=True)
    m = bq.max(axis=tuple(dims), keepdims=True)
    # the statistic reaches the broadcast through a source register: TF32
    tt.assert_close(out, aq - m, "tf32", ops=2, scale=np.abs(aq) + np.abs(m))


def test_method_forms_and_transpose():
    x = tt.array((64, 64), "bf16", 7, 0.5, 2.0)
    f = lambda a: a.transpose().exp().sqrt().recip()
    (xq,), out, _, _ = run_blocks(f, [x], block=(2, 2))
    tt.assert_close(out, 1 / np.sqrt(np.exp(xq.T)), "bf16", ops=3)
    f2 = lambda a: a - ttl.math.broadcast(a.rowmax(), dims=[1]) + ttl.math.broadcast(a.rowsum(), dims=[1])
    (xq,), out, _, _ = run_blocks(f2, [x], block=(2, 2), out_dtype="fp32", fp32_dest_acc_en=True)
    ref = xq - xq.max(1, keepdims=True) + xq.sum(1, keepdims=True)
    # fp32 DST, but the row statistics reach the broadcast through a source register (TF32)
    tt.assert_close(out, ref, "tf32", ops=2, scale=np.abs(xq).sum(1, keepdims=True) + np.abs(xq))


@given(m=st.integers(1, 3), k=st.integers(1, 4), n=st.integers(1, 3), seed=tt.seeds(),
       fmt=tt.formats(("bf16", "bfp8_b")), fid=tt.fidelities())
def test_matmul(m, k, n, seed, fmt, fid):
    a = tt.array((32 * m, 32 * k), fmt, seed)
    b = tt.array((32 * k, 32 * n), fmt, seed + 1)
    ttl.set_device("wormhole_b0")
    ta, tb = ttl.from_numpy(a, fmt), ttl.from_numpy(b, fmt)
    out = ttl.empty((32 * m, 32 * n), "fp32")

    @ttl.kernel(grid=(1, 1), math_fidelity=fid, fp32_dest_acc_en=True)
    def mm(x, y, o):
        xb = ttl.make_dataflow_buffer_like(x, shape=(m, k))
        yb = ttl.make_dataflow_buffer_like(y, shape=(k, n))
        ob = ttl.make_dataflow_buffer_like(o, shape=(m, n))

        @ttl.datamovement()
        def rd():
            with xb.reserve() as p, yb.reserve() as q:
                h1, h2 = ttl.copy(x[:, :], p), ttl.copy(y[:, :], q)
                h1.wait(); h2.wait()

        @ttl.compute()
        def cp():
            with xb.wait() as p, yb.wait() as q, ob.reserve() as r:
                r.store(p @ q)

        @ttl.datamovement()
        def wr():
            with ob.wait() as r:
                ttl.copy(r, o[:, :]).wait()

    mm(ta, tb, out)
    aq, bq = ta.to_numpy().astype(np.float64), tb.to_numpy().astype(np.float64)
    tt.assert_close(out.to_numpy(), aq @ bq, "fp32", ops=32 * k, scale=np.abs(aq) @ np.abs(bq),
                    fidelity=fid if not (fmt == "bfp8_b" and fid != "LoFi") else "HiFi4")


@pytest.mark.parametrize("config,expr,mode", [
    ({}, lambda a: ttl.math.exp(a), "accurate"),
    ({}, lambda a: ttl.math.exp(a, approx=True), "fast"),
    ({}, lambda a: ttl.math.exp(a, approx="approx"), "approx"),
    ({"exp_approx": True}, lambda a: ttl.math.exp(a), "fast"),
    ({"exp_approx": True}, lambda a: ttl.math.exp(a, approx=False), "accurate"),
    ({"math_approx_mode": True}, lambda a: ttl.math.exp(a), "fast"),
    ({"math_approx_mode": True}, lambda a: ttl.math.recip(a), "approx"),
    ({"math_approx_mode": True, "exp_approx": "accurate"}, lambda a: a.exp(), "accurate"),
    ({}, lambda a: ttl.math.sqrt(a, approx=True), "approx"),
])
def test_sfpu_modes_reach_the_generated_code(config, expr, mode):
    """A statement's mode, else the kernel's (exp_approx, then math_approx_mode), is named in
    the code it became, so `show()` says which algorithm runs."""
    x = tt.array((32, 32), "bf16", 3, 0.5, 2.0)
    *_, k = run_blocks(expr, [x], **config)
    assert f"mode={mode!r}" in k.show()


def test_bad_approx_values_are_compile_errors():
    x = tt.array((32, 32), "bf16", 3)
    with pytest.raises(ttl.CompileError, match=r"exp\(approx='quick'\): use one of") as e:
        run_blocks(lambda a: ttl.math.exp(a, approx="quick"), [x])
    assert "test_ops.py" in str(e.value)
    with pytest.raises(ttl.CompileError, match="relu has one mode"):
        run_blocks(lambda a: ttl.math.relu(a, approx=True), [x])
    with pytest.raises(ttl.CompileError, match="exp_approx='quick'"):
        run_blocks(lambda a: a, [x], exp_approx="quick")


@pytest.mark.parametrize("dims,neg", [([1], [-1]), ([0], [-2]), ([0, 1], [-2, -1])])
def test_negative_dims_count_from_the_last(dims, neg):
    """dims=[-1] is the last dim (columns), [-2] the one before, as torch counts."""
    x = tt.array((64, 64), "bf16", 9)
    outs = []
    for d in (dims, neg):
        f = lambda a, d=d: a - ttl.math.broadcast(ttl.math.reduce_max(a, dims=d), dims=d)
        outs.append(run_blocks(f, [x], block=(2, 2))[1])
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], np.zeros_like(outs[0]))


def test_python_operators_abs_and_square():
    """abs(x) and x ** 2 are the SFPU's abs and square (x ** 1 is x); other powers and
    comparisons are compile errors naming what to write instead."""
    x = tt.array((64, 64), "bf16", 8, -3.0, 3.0)
    (xq,), out, _, _ = run_blocks(lambda a: abs(a) + a ** 2 - a ** 1, [x], block=(1, 1))
    # each rounding is relative to the partial sums, |x| + x^2 and then |x| more
    tt.assert_close(out, np.abs(xq) + xq * xq - xq, "bf16", ops=3, scale=2 * np.abs(xq) + xq * xq)
    with pytest.raises(ttl.CompileError, match=r"x \*\* 3: the SFPU has square"):
        run_blocks(lambda a: a ** 3, [x], block=(1, 1))
    with pytest.raises(ttl.CompileError, match="comparing blocks"):
        run_blocks(lambda a: ttl.math.max(a, a < 0), [x], block=(1, 1))
