"""TT-Lang's accumulate pattern: a block from reserve() starts at zero, so a loop of
`store(a @ b, acc=True)` over K computes the sum, and nothing stale reaches an output."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import ttlang as ttl
from ttlang import testing as tt


def matmul_acc(m, k, n, block=(1, 1, 1), grid=(1, 1), seed=0, factor=2):
    """TT-Lang's tutorial matmul: each output block reserved once, K accumulated into it."""
    ttl.set_device("wormhole_b0")
    a_np, b_np = tt.array((m, k), "bf16", seed), tt.array((k, n), "bf16", seed + 1)
    a, b, out = ttl.from_numpy(a_np), ttl.from_numpy(b_np), ttl.empty((m, n))
    bm, bk, bn = block
    mt, kt, nt = m // 32 // bm, k // 32 // bk, n // 32 // bn
    ncores = grid[0] * grid[1]

    @ttl.kernel(grid=grid)
    def mm(a, b, out):
        a_cb = ttl.make_circular_buffer_like(a, shape=(bm, bk), buffer_factor=factor)
        b_cb = ttl.make_circular_buffer_like(b, shape=(bk, bn), buffer_factor=factor)
        o_cb = ttl.make_circular_buffer_like(out, shape=(bm, bn), buffer_factor=factor)

        def mine():
            return range(ttl.core(dims=1), mt * nt, ncores)

        @ttl.compute()
        def compute():
            for _ in mine():
                with o_cb.reserve() as o:
                    for _ in range(kt):
                        with a_cb.wait() as x, b_cb.wait() as y:
                            o.store(x @ y, acc=True)

        @ttl.datamovement()
        def read():
            for t in mine():
                i, j = divmod(t, nt)
                for kk in range(kt):
                    with a_cb.reserve() as x, b_cb.reserve() as y:
                        ttl.copy(a[i * bm:(i + 1) * bm, kk * bk:(kk + 1) * bk], x).wait()
                        ttl.copy(b[kk * bk:(kk + 1) * bk, j * bn:(j + 1) * bn], y).wait()

        @ttl.datamovement()
        def write():
            for t in mine():
                i, j = divmod(t, nt)
                with o_cb.wait() as o:
                    ttl.copy(o, out[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn]).wait()

    mm(a, b, out)
    ref = a_np.astype(np.float64) @ b_np.astype(np.float64)
    return out.to_numpy().astype(np.float64), ref, kt


@pytest.mark.parametrize("m,k,n,block,grid", [
    (128, 128, 128, (1, 1, 1), (1, 1)),      # the tutorial's single-core, tile at a time
    (128, 256, 128, (2, 2, 2), (1, 1)),      # multi-tile blocks, one core
    (256, 128, 256, (1, 1, 1), (2, 2)),      # tiles over a 2x2 grid
    (256, 256, 256, (2, 2, 2), (2, 1)),      # multi-tile blocks over cores
])
def test_accumulate_over_k_matches_numpy(m, k, n, block, grid):
    got, ref, kt = matmul_acc(m, k, n, block, grid)
    # every K step rounds the partial sum to the bf16 page it accumulates in
    tt.assert_close(got, ref, "bf16", ops=kt + 1, scale=np.abs(ref).max())
    tt.assert_pcc(got, ref, 0.999)


@given(mt=st.integers(1, 3), kt=st.integers(1, 4), nt=st.integers(1, 3),
       factor=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_accumulate_never_adds_an_earlier_block(mt, kt, nt, factor, seed):
    """Whatever the buffer depth, a block's pages hold a previous block's result when it is
    reserved again: the sum must not include it."""
    got, ref, kt = matmul_acc(32 * mt, 32 * kt, 32 * nt, seed=seed, factor=factor)
    tt.assert_close(got, ref, "bf16", ops=kt + 1, scale=np.abs(ref).max())


def _one_block_kernel(body):
    ttl.set_device("wormhole_b0")
    x_np = tt.array((32, 32), "bf16", 5)
    x, out = ttl.from_numpy(x_np), ttl.empty((32, 32))

    @ttl.kernel(grid=(1, 1))
    def k(x, out):
        xb = ttl.make_dataflow_buffer_like(x, shape=(1, 1), buffer_factor=1)
        ob = ttl.make_dataflow_buffer_like(out, shape=(1, 1), buffer_factor=1)

        @ttl.datamovement()
        def read():
            with xb.reserve() as blk:
                ttl.copy(x[0, 0], blk).wait()

        @ttl.compute()
        def compute():
            with xb.wait() as a, ob.reserve() as o:
                body(a, o)

        @ttl.datamovement()
        def write():
            with ob.wait() as blk:
                ttl.copy(blk, out[0, 0]).wait()

    k(x, out)
    return x_np.astype(np.float64), out.to_numpy().astype(np.float64)


def test_store_then_accumulate_adds_onto_the_stored_value():
    def body(a, o):
        o.store(a * 2.0)
        o.store(a, acc=True)
    x, got = _one_block_kernel(body)
    tt.assert_close(got, 3 * x, "bf16", ops=2, scale=np.abs(x).max())


@pytest.mark.parametrize("groups", [True, False])
def test_an_accumulated_block_read_by_compute_holds_the_sum(groups, monkeypatch):
    """A block stored, then accumulated onto, then read by another compute statement (not
    copied out): the reader gets the sum. Before, UNPACK's per-page decode cache still held
    the first store's values (the accumulation keeps the page's number), and the statement
    read them, silently, both tile by tile and through ttsim.group."""
    import ttsim.group
    monkeypatch.setattr(ttsim.group, "ENABLED", groups)
    ttl.set_device("wormhole_b0")
    a_np, b_np = tt.array((32, 32), "bf16", 1), tt.array((32, 32), "bf16", 2)
    a, b, out = ttl.from_numpy(a_np), ttl.from_numpy(b_np), ttl.empty((32, 32))

    @ttl.kernel(grid=(1, 1))
    def k(a, b, out):
        ab = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=1)
        bb = ttl.make_dataflow_buffer_like(b, shape=(1, 1), buffer_factor=1)
        sb = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=1)
        ob = ttl.make_dataflow_buffer_like(out, shape=(1, 1), buffer_factor=1)

        @ttl.datamovement()
        def read():
            with ab.reserve() as x, bb.reserve() as y:
                ttl.copy(a[0, 0], x).wait()
                ttl.copy(b[0, 0], y).wait()

        @ttl.compute()
        def compute():
            with ab.wait() as x, bb.wait() as y:
                with sb.reserve() as s:
                    s.store(x)
                    s.store(y, acc=True)
                with sb.wait() as s, ob.reserve() as o:
                    o.store(s * 1.0)

        @ttl.datamovement()
        def write():
            with ob.wait() as blk:
                ttl.copy(blk, out[0, 0]).wait()

    k(a, b, out)
    x, y = a.to_numpy().astype(np.float64), b.to_numpy().astype(np.float64)
    tt.assert_close(out.to_numpy().astype(np.float64), x + y, "bf16", ops=1,
                    scale=np.abs(x) + np.abs(y))


def test_a_single_accumulating_store_is_the_value_itself():
    x, got = _one_block_kernel(lambda a, o: o.store(a, acc=True))
    np.testing.assert_array_equal(got, x)


def test_compute_block_pushed_without_a_store_is_an_error():
    with pytest.raises(ttl.CompileError, match="pushed with nothing stored") as e:
        _one_block_kernel(lambda a, o: None)
    assert "test_accumulate.py" in str(e.value)


def test_datamovement_block_pushed_without_a_copy_is_an_error():
    ttl.set_device("wormhole_b0")
    x = ttl.from_numpy(np.ones((32, 32), np.float32))
    out = ttl.empty((32, 32))

    @ttl.kernel(grid=(1, 1))
    def k(x, out):
        xb = ttl.make_dataflow_buffer_like(x, shape=(1, 1), buffer_factor=2)

        @ttl.datamovement()
        def read():
            with xb.reserve():
                pass

        @ttl.datamovement()
        def write():
            with xb.wait() as blk:
                ttl.copy(blk, out[0, 0]).wait()

    with pytest.raises(ttl.CompileError, match="pushed with nothing stored or copied") as e:
        k(x, out)
    assert "with xb.reserve():" in str(e.value)
