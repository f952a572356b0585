"""Programs written the way TT-Lang's spec writes them run with only the import changed,
and semaphores signal between cores."""
import numpy as np
import pytest

import ttlang as ttl
from ttlang import testing as tt


def test_spec_style_eltwise_add_runs_as_written():
    """TT-Lang's shape: a kernel body that makes circular buffers, three decorated threads,
    and `return ttl.Program(...)(...)`; host tensors through TT-NN-like calls."""
    device = ttl.open_device(device_id=0)
    a_np, b_np = tt.array((64, 64), "bf16", 1), tt.array((64, 64), "bf16", 2)
    a = ttl.from_numpy(a_np, dtype=ttl.bfloat16, layout=ttl.TILE_LAYOUT, device=device,
                       memory_config=ttl.DRAM_MEMORY_CONFIG)
    b = ttl.from_numpy(b_np, dtype=ttl.bfloat16, layout=ttl.TILE_LAYOUT, device=device,
                       memory_config=ttl.L1_MEMORY_CONFIG)
    out = ttl.empty((64, 64), dtype=ttl.bfloat16, layout=ttl.TILE_LAYOUT, device=device)

    @ttl.kernel(grid=(2, 2))
    def eltwise_add(a_in, b_in, out):
        a_cb = ttl.make_circular_buffer_like(a_in, shape=(1, 1), buffer_factor=2)
        b_cb = ttl.make_circular_buffer_like(b_in, shape=(1, 1), buffer_factor=2)
        out_cb = ttl.make_circular_buffer_like(out, shape=(1, 1), buffer_factor=2)

        @ttl.compute()
        def add_compute():
            with a_cb.wait() as x, b_cb.wait() as y, out_cb.reserve() as o:
                o.store(x + y)

        @ttl.datamovement()
        def dm_read():
            cx, cy = ttl.core(dims=2)
            with a_cb.reserve() as x, b_cb.reserve() as y:
                tx_a = ttl.copy(a_in[cy, cx], x)
                tx_b = ttl.copy(b_in[cy, cx], y)
                tx_a.wait()
                tx_b.wait()

        @ttl.datamovement()
        def dm_write():
            cx, cy = ttl.core(dims=2)
            with out_cb.wait() as o:
                tx = ttl.copy(o, out[cy, cx])
                tx.wait()

        return ttl.Program(add_compute, dm_read, dm_write)(a_in, b_in, out)

    eltwise_add(a, b, out)
    result = ttl.to_numpy(out)
    ttl.close_device(device)
    tt.assert_close(result, a_np.astype(np.float64) + b_np, "bf16")


def test_program_names_only_the_kernels_threads():
    x = ttl.from_numpy(np.zeros((32, 32), np.float32))

    @ttl.kernel(grid=(1, 1))
    def k(x):
        @ttl.datamovement()
        def dm():
            pass
        return ttl.Program(dm, print)(x)

    with pytest.raises(ttl.CompileError, match="not a @ttl.compute"):
        k(x)


def test_row_major_layout_is_refused():
    with pytest.raises(ValueError, match="TILE_LAYOUT"):
        ttl.from_numpy(np.zeros((32, 32), np.float32), layout=ttl.ROW_MAJOR_LAYOUT)


def test_semaphores_gather_and_release():
    """Every core checks in with core (0,0) (remote inc); (0,0) waits for all of them, then
    releases them with one multicast set. Each core then writes its tile: the run only
    finishes if the handshake works, and receivers stall on the semaphore."""
    ttl.set_device("wormhole_b0")
    gx, gy = 3, 2
    n = gx * gy
    src = ttl.from_numpy(tt.array((32, 32), "bf16", 3))
    out = ttl.empty((32, 32 * n))

    @ttl.kernel(grid=(gx, gy))
    def barrier(src, out):
        arrived = ttl.Semaphore(initial_value=0)
        go = ttl.Semaphore(initial_value=0)
        buf = ttl.make_dataflow_buffer_like(src, shape=(1, 1))

        @ttl.datamovement()
        def sync():
            if ttl.core(dims=2) == (0, 0):
                arrived.wait_eq(n - 1)
                go.get_remote_multicast().set(1)
            else:
                arrived.get_remote((0, 0)).inc(1)
                go.wait_ge(1)
            with buf.reserve() as blk:
                ttl.copy(src[0, 0], blk).wait()

        @ttl.datamovement()
        def write():
            with buf.wait() as blk:
                ttl.copy(blk, out[0, ttl.core(dims=1)]).wait()

    rep = barrier(src, out)
    got = out.to_numpy()
    for c in range(n):
        assert np.array_equal(got[:, 32 * c:32 * c + 32], src.to_numpy())
    waiting = [t for t in rep.threads if t.kind == "reader" and t.core != (0, 0)]
    assert all(t.stalls.get("semaphore", 0) > 0 for t in waiting)


def test_semaphore_on_the_compute_thread_is_a_compile_error():
    x = ttl.from_numpy(np.zeros((32, 32), np.float32))

    @ttl.kernel(grid=(1, 1))
    def k(x):
        s = ttl.Semaphore()

        @ttl.compute()
        def comp():
            s.set(1)

    with pytest.raises(ttl.CompileError, match="data-movement threads") as e:
        k(x)
    assert "s.set(1)" in str(e.value)
