"""TT-Lang's kernel surface beyond the threads: ttl.grid_size() in the kernel body, the
three-argument ttl.math.broadcast(x, like, dims), the outer product of a column and a row
broadcast, and blocks used after their push/pop. Results against float64 numpy."""
import inspect

import numpy as np
import pytest
from hypothesis import given, strategies as st

import ttlang as ttl
from ttlang import testing as tt



def _line(fn, text):
    src, start = inspect.getsourcelines(fn)
    return start + next(i for i, l in enumerate(src) if text in l)


def f64(t):
    return t.to_numpy().astype(np.float64)


# --- ttl.grid_size() in the kernel body -----------------------------------------------------
def _rows_per_core_kernel():
    """The tutorial's multicore shape: the body splits the rows over the grid it is given."""
    @ttl.kernel(grid=None)
    def scale_rows(a, out):
        gx, gy = ttl.grid_size(dims=2)
        ncores = ttl.grid_size(dims=1)
        assert ncores == gx * gy
        rows = a.shape[0] // 32
        per_core = -(-rows // ncores)
        a_buf = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=2)
        o_buf = ttl.make_dataflow_buffer_like(out, shape=(1, 1), buffer_factor=2)

        def mine():
            i = ttl.core(dims=1)
            return range(i * per_core, min(rows, (i + 1) * per_core))

        @ttl.datamovement()
        def read():
            for r in mine():
                with a_buf.reserve() as blk:
                    ttl.copy(a[r, 0], blk).wait()

        @ttl.compute()
        def compute():
            for _ in mine():
                with a_buf.wait() as x, o_buf.reserve() as o:
                    o.store(x * 2.0 + 1.0)

        @ttl.datamovement()
        def write():
            for r in mine():
                with o_buf.wait() as blk:
                    ttl.copy(blk, out[r, 0]).wait()

    return scale_rows


@pytest.mark.parametrize("grid", [(1, 1), (2, 1), (3, 2)])
def test_grid_size_in_the_kernel_body(grid):
    ttl.set_device("wormhole_b0")
    x = tt.array((32 * 5, 32), "bf16", 1)
    a, out = ttl.from_numpy(x), ttl.empty((32 * 5, 32))
    k = _rows_per_core_kernel()
    k.grid_spec = grid
    rep = k(a, out)
    assert rep.cores == grid[0] * grid[1]
    xq = f64(a)
    # x * 2 is exact; the + 1 on the SFPU is truncated to the 16-bit DST: one bf16 unit
    tt.assert_close(f64(out), xq * 2 + 1, "bf16", ops=2, scale=np.abs(xq * 2) + 1)


def test_grid_size_in_the_body_with_the_auto_grid():
    ttl.set_device("wormhole_b0")
    seen = []

    @ttl.kernel(grid="auto")
    def k(a):
        seen.append(ttl.grid_size(dims=2))

    k(ttl.from_numpy(np.zeros((32, 32), np.float32)))
    assert seen == [ttl.device().sd.worker_grid()]


def test_core_in_the_kernel_body_is_an_error_naming_the_line():
    ttl.set_device("wormhole_b0")

    @ttl.kernel(grid=(2, 2))
    def k(a):
        x, y = ttl.core(dims=2)

    with pytest.raises(ttl.CompileError, match="ttl.core\\(\\) in the kernel body") as e:
        k(ttl.from_numpy(np.zeros((32, 32), np.float32)))
    assert f":{_line(k.fn, 'ttl.core(dims=2)')}:" in str(e.value)
    assert "x, y = ttl.core(dims=2)" in str(e.value)


def test_grid_size_outside_a_kernel_is_an_error():
    with pytest.raises(ttl.CompileError, match="inside a @ttl.kernel function"):
        ttl.grid_size()


# --- a one-statement kernel over whole tensors -------------------------------------------------
def _whole(expr, arrays, out_shape, dtype="bf16", out_dtype="bf16", **config):
    """out = expr(*blocks, out_block) with every tensor one block on one core."""
    ttl.set_device("wormhole_b0")
    ins = [ttl.from_numpy(a, dtype) for a in arrays]
    out = ttl.empty(out_shape, out_dtype)

    @ttl.kernel(grid=(1, 1), **config)
    def k(*ts):
        *xs, o = ts
        bufs = [ttl.make_dataflow_buffer_like(x, shape=(x.shape[0] // 32, x.shape[1] // 32))
                for x in xs]
        ob = ttl.make_dataflow_buffer_like(o, shape=(out_shape[0] // 32, out_shape[1] // 32))

        @ttl.datamovement()
        def read():
            for x, b in zip(xs, bufs):
                with b.reserve() as blk:
                    ttl.copy(x[:, :], blk).wait()

        @ttl.compute()
        def comp():
            blks = [b.wait() for b in bufs]
            with ob.reserve() as ob_:
                ob_.store(expr(*blks, ob_))
            for b in blks:
                b.pop()

        @ttl.datamovement()
        def write():
            with ob.wait() as blk:
                ttl.copy(blk, o[:, :]).wait()

    k(*ins, out)
    return [f64(t) for t in ins], f64(out), k


def _spread(x, dims, shape):
    """float64 reference of the hardware broadcast: column 0 / row 0 / [0, 0] of each tile,
    spread to `shape` (elements)."""
    if dims == [1]:
        return np.broadcast_to(x[:, :1], shape)
    if dims == [0]:
        return np.broadcast_to(x[:1, :], shape)
    return np.broadcast_to(x[:1, :1], shape)


SMALL = {(1,): lambda r, c: (r, 1), (0,): lambda r, c: (1, c), (0, 1): lambda r, c: (1, 1)}


# --- the three-argument broadcast -----------------------------------------------------------
@given(r=st.integers(1, 3), c=st.integers(1, 3), dims=st.sampled_from([[1], [0], [0, 1]]),
       like=st.sampled_from(["input", "output"]), seed=tt.seeds())
def test_broadcast_like(r, c, dims, like, seed):
    """a + broadcast(x, like, dims): like is the other input or the reserved output block
    (only its shape is used). x holds data in every element; only the broadcast row/column
    may reach the result."""
    sr, sc = SMALL[tuple(dims)](r, c)
    a, x = tt.array((32 * r, 32 * c), "bf16", seed), tt.array((32 * sr, 32 * sc), "bf16", seed + 1)
    pick = (lambda ab, xb, o: ab) if like == "input" else (lambda ab, xb, o: o)
    (aq, xq), out, _ = _whole(lambda ab, xb, o: ab + ttl.math.broadcast(xb, pick(ab, xb, o), dims=dims),
                              [a, x], a.shape)
    s = _spread(xq, dims, aq.shape)
    # one add on the FPU, rounded once to the bf16 DST
    tt.assert_close(out, aq + s, "bf16", ops=1, scale=np.abs(aq) + np.abs(s))


@given(r=st.integers(1, 3), c=st.integers(1, 3), dims=st.sampled_from([[1], [0], [0, 1]]),
       seed=tt.seeds())
def test_broadcast_stored_as_it_is(r, c, dims, seed):
    """o.store(broadcast(x, dims)) takes the stored-into block's shape; the three-argument
    form stored the same way gives the same values."""
    sr, sc = SMALL[tuple(dims)](r, c)
    x = tt.array((32 * sr, 32 * sc), "bf16", seed)
    (xq,), out, _ = _whole(lambda xb, o: ttl.math.broadcast(xb, dims=dims), [x], (32 * r, 32 * c))
    np.testing.assert_array_equal(out, _spread(xq, dims, out.shape))
    (xq,), out2, _ = _whole(lambda xb, o: ttl.math.broadcast(xb, o, dims), [x], (32 * r, 32 * c))
    np.testing.assert_array_equal(out2, out)


def test_broadcast_dims_positionally_is_the_two_argument_form():
    x = tt.array((64, 32), "bf16", 4)
    a = tt.array((64, 96), "bf16", 5)
    (aq, xq), out, _ = _whole(lambda ab, xb, o: ab * ttl.math.broadcast(xb, [1]), [a, x], a.shape)
    s = _spread(xq, [1], aq.shape)
    tt.assert_close(out, aq * s, "bf16", ops=1)


# --- outer products ---------------------------------------------------------------------------
OUTER = {
    "open": lambda c, r, o: ttl.math.broadcast(c, dims=[1]) * ttl.math.broadcast(r, dims=[0]),
    "like": lambda c, r, o: ttl.math.broadcast(c, o, dims=[1]) * ttl.math.broadcast(r, o, dims=[0]),
    "mixed": lambda c, r, o: ttl.math.broadcast(r, dims=[0]) * ttl.math.broadcast(c, o, dims=[1]),
    "implicit": lambda c, r, o: c * r,
}


@given(r=st.integers(1, 3), c=st.integers(1, 3), form=st.sampled_from(sorted(OUTER)),
       fp32=st.booleans(), seed=tt.seeds())
def test_outer_product_of_a_column_and_a_row(r, c, form, fp32, seed):
    """An (R, 1)-tile column times a (1, C)-tile row is their outer product: out[i, j] =
    col[i, 0] * row[0, j]. With one tile each way the implicit form cannot tell it from an
    elementwise product, so it is drawn only when the shapes differ."""
    if form == "implicit" and (r == 1 or c == 1):
        form = "open"
    col, row = tt.array((32 * r, 32), "bf16", seed), tt.array((32, 32 * c), "bf16", seed + 1)
    kw = dict(out_dtype="fp32", fp32_dest_acc_en=True) if fp32 else {}
    (cq, rq), out, _ = _whole(OUTER[form], [col, row], (32 * r, 32 * c), **kw)
    ref = cq[:, :1] * rq[:1, :]
    # the product of two bf16 values is exact in fp32; one rounding to the DST format
    # (a 16-bit DST truncates the SFPU result: one bf16 unit)
    tt.assert_close(out, ref, "fp32" if fp32 else "bf16", ops=2)


@given(n=st.integers(1, 3), seed=tt.seeds())
def test_outer_product_inside_a_larger_expression(n, seed):
    """exp(u v^T / 4) - a: an outer product feeding more ops in one statement."""
    a = tt.array((32 * n, 32 * n), "bf16", seed)
    u, v = tt.array((32 * n, 32), "bf16", seed + 1), tt.array((32, 32 * n), "bf16", seed + 2)

    def f(ab, ub, vb, o):
        outer = ttl.math.broadcast(ub, o, dims=[1]) * ttl.math.broadcast(vb, o, dims=[0])
        return ttl.math.exp(outer * 0.25) - ab

    (aq, uq, vq), out, _ = _whole(f, [a, u, v], a.shape, out_dtype="fp32", fp32_dest_acc_en=True)
    ref = np.exp(uq[:, :1] * vq[:1, :] * 0.25) - aq
    # fp32 DST: the exp (accurate SFPU, ~2^-20) and the subtract's FPU pass through TF32
    tt.assert_close(out, ref, "tf32", ops=3, scale=np.abs(ref) + np.abs(aq) + 1)


# --- misuse: clear errors naming the line -------------------------------------------------------
def _error(expr, arrays, out_shape):
    with pytest.raises(ttl.CompileError) as e:
        _whole(expr, arrays, out_shape)
    return str(e.value)


X22, X21, X12 = (np.ones((64, 64), np.float32), np.ones((64, 32), np.float32),
                 np.ones((32, 64), np.float32))


def test_broadcast_like_of_a_block_not_one_tile_wide():
    f = lambda ab, xb, o: ab + ttl.math.broadcast(xb, ab, dims=[1])   # noqa: E731
    msg = _error(f, [X22, X22], (64, 64))
    assert "broadcast along dim 1: x is 2 tiles along it (columns) and must be 1" in msg
    assert "test_kernel_surface.py" in msg and "ttl.math.broadcast(xb, ab, dims=[1])" in msg


def test_broadcast_like_of_a_shape_that_does_not_match():
    f = lambda ab, xb, o: ab + ttl.math.broadcast(xb, ab, dims=[0])   # noqa: E731
    msg = _error(f, [X22, np.ones((32, 32), np.float32)], (64, 64))
    assert "x is 1 tiles along dim 1 (columns) and like is 2" in msg and "add 1 to dims" in msg


def test_broadcast_like_needs_a_block():
    f = lambda ab, xb, o: ab + ttl.math.broadcast(xb, 3.0, dims=[1])   # noqa: E731
    assert "like must be a block" in _error(f, [X22, X21], (64, 64))


def test_bad_broadcast_dims():
    f = lambda ab, xb, o: ab + ttl.math.broadcast(xb, ab, dims=[2])   # noqa: E731
    assert "broadcast dims must be [0], [1] or [0, 1]; got [2]" in _error(f, [X22, X21], (64, 64))


def test_two_open_broadcasts_along_the_same_dimension():
    f = lambda ab, xb, o: ttl.math.broadcast(ab, dims=[1]) + ttl.math.broadcast(xb, dims=[1])  # noqa
    msg = _error(f, [X21, X21], (64, 64))
    assert "cannot tell the block's number of tile columns" in msg
    assert "broadcast(x, like, dims)" in msg and "test_kernel_surface.py" in msg


def test_open_broadcast_that_does_not_fit_the_other_operand():
    f = lambda ab, xb, o: ab * ttl.math.broadcast(xb, dims=[0])   # a (1, 3) row against (2, 2)
    msg = _error(f, [X22, np.ones((32, 96), np.float32)], (64, 64))
    assert "do not match and cannot broadcast" in msg


def test_unary_of_an_open_broadcast():
    f = lambda ab, xb, o: ab + ttl.math.exp(ttl.math.broadcast(xb, dims=[1]))   # noqa: E731
    msg = _error(f, [X22, X21], (64, 64))
    assert "exp of a broadcast whose shape is still open" in msg


def _two_tile_kernel(compute_body, write_body):
    ttl.set_device("wormhole_b0")
    a = ttl.from_numpy(tt.array((32, 64), "bf16", 3))
    out = ttl.empty((32, 64))

    @ttl.kernel(grid=(1, 1))
    def k(a, out):
        ab = ttl.make_dataflow_buffer_like(a, shape=(1, 1))
        ob = ttl.make_dataflow_buffer_like(out, shape=(1, 1))

        @ttl.datamovement()
        def read():
            for j in range(2):
                with ab.reserve() as blk:
                    ttl.copy(a[0, j], blk).wait()

        @ttl.compute()
        def comp():
            compute_body(ab, ob)

        @ttl.datamovement()
        def write():
            write_body(ob, out)

    return k, (a, out)


def _write_two(ob, out):
    for j in range(2):
        with ob.wait() as blk:
            ttl.copy(blk, out[0, j]).wait()


def test_a_block_read_after_its_pop_is_an_error():
    """Before, the statement silently read the buffer's next block in its place."""
    def body(ab, ob):
        with ab.wait() as first:
            pass
        with ab.wait() as second, ob.reserve() as o:
            o.store(first + second)
        with ob.reserve() as o2:
            o2.store(second * 1.0)
    k, args = _two_tile_kernel(body, _write_two)
    with pytest.raises(ttl.CompileError, match="uses a block of ab after it was popped") as e:
        k(*args)
    assert f":{_line(body, 'o.store(first + second)')}:" in str(e.value)


def test_a_store_into_a_pushed_block_is_an_error():
    def body(ab, ob):
        for _ in range(2):
            with ab.wait() as x, ob.reserve() as o:
                o.store(x)
        o.store(x)
    k, args = _two_tile_kernel(body, _write_two)
    with pytest.raises(ttl.CompileError, match="store into a block of ob after it was pushed"):
        k(*args)


def test_a_copy_out_of_a_popped_block_is_an_error():
    def write(ob, out):
        _write_two(ob, out)
        with ob.wait() as blk:
            pass
        ttl.copy(blk, out[0, 0]).wait()

    def body(ab, ob):
        for _ in range(2):
            with ab.wait() as x, ob.reserve() as o:
                o.store(x)
        with ob.reserve() as o:
            o.store(ttl.math.fill(o, 1.0))
    k, args = _two_tile_kernel(body, write)
    with pytest.raises(ttl.CompileError, match="ttl.copy with a block of ob after it was popped") as e:
        k(*args)
    assert f":{_line(write, 'ttl.copy(blk, out[0, 0])')}:" in str(e.value)


def test_a_kernel_call_inside_ttsim_tracing_streams_its_trace_with_user_lines(tmp_path):
    import json

    import ttsim
    from .kernels import row_broadcast
    k = row_broadcast(2, 1, lambda b: b * 2.0)
    src = ttl.from_numpy(np.ones((32, 32), np.float32))
    out = ttl.empty((32, 64))
    with ttsim.tracing(tmp_path / "k.json"):
        rep = k(src, out)
    assert rep.trace_path == str(tmp_path / "k.json")
    ev = [e for e in json.loads((tmp_path / "k.json").read_text())["traceEvents"] if e["ph"] == "X"]
    lines = {e["args"].get("line", "") for e in ev}
    assert any(l.startswith("kernels.py:") for l in lines)       # charged to the kernel's lines
    assert np.array_equal(out.to_numpy(), np.full((32, 64), 2.0, np.float32))


@pytest.mark.parametrize("idx, what", [
    ((0.0, 0), r"tile rows index 0.0: a tile index is an integer or a slice of integers"),
    ((slice(0, 1.0), 0), r"tile rows slice 0:1.0: slice bounds are integers \(tiles\)"),
    ((0, "0"), r"tile columns index '0'"),
])
def test_a_tile_index_that_is_not_an_integer_names_it(idx, what):
    """(0.0, 0) used to be AttributeError: 'float' object has no attribute 'indices'."""
    import ttsim
    a, out = ttl.from_numpy(np.ones((32, 64), np.float32)), ttl.empty((32, 64))

    @ttl.kernel(grid=(1, 1))
    def k(a, out):
        ab = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=2)

        @ttl.datamovement()
        def read():
            with ab.reserve() as blk:
                ttl.copy(a[idx], blk).wait()
    with pytest.raises(ttsim.KernelError, match=what) as e:
        k(a, out)
    assert e.value.thread == "reader"


def test_numpy_integer_tile_indices_are_taken_as_their_value():
    a, out = ttl.from_numpy(np.arange(32 * 64, dtype=np.float32).reshape(32, 64)), \
        ttl.empty((32, 64))

    @ttl.kernel(grid=(1, 1))
    def k(a, out):
        ab = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=2)

        @ttl.datamovement()
        def read():
            with ab.reserve() as blk:
                ttl.copy(a[np.int64(0), np.int32(1)], blk).wait()

        @ttl.datamovement()
        def write():
            with ab.wait() as blk:
                ttl.copy(blk, out[0, np.int64(0):np.int64(1)]).wait()
    k(a, out)
    np.testing.assert_array_equal(out.to_numpy()[:, :32], a.to_numpy()[:, 32:])
