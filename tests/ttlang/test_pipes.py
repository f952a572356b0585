"""Pipes: a block read once and multicast along a row reaches every destination intact."""
import numpy as np
import pytest

import ttlang as ttl
from ttlang import testing as tt

from tests.ttlang.kernels import row_broadcast


def test_row_multicast_delivers_the_block_to_every_core():
    ttl.set_device("wormhole_b0")
    gx, gy = 4, 2
    x = tt.array((32 * gy, 32), "bf16", 11)
    src = ttl.from_numpy(x)
    out = ttl.empty((32 * gy, 32 * gx))

    bcast_rows = row_broadcast(gx, gy, lambda b: b * 2.0)
    rep = bcast_rows(src, out)
    got = out.to_numpy()
    xq = src.to_numpy()
    for y in range(gy):
        for c in range(gx):
            np.testing.assert_array_equal(got[32 * y:32 * y + 32, 32 * c:32 * c + 32],
                                          xq[32 * y:32 * y + 32] * 2)
    receivers = [t for t in rep.threads if t.kind == "reader" and t.core[0] > 0]
    assert all(t.stalls.get("semaphore", 0) > 0 for t in receivers)


def test_a_destination_range_may_hold_the_source():
    """TT-Lang multicasts a row's block from its first core to slice(0, grid_x): the source's
    own receive is a no-op (its block is the one sent) and the others get it as before, in
    the same cycles as the range without the source."""
    ttl.set_device("wormhole_b0")
    gx, gy = 4, 2
    src = ttl.from_numpy(tt.array((32 * gy, 32), "bf16", 12))
    outs, cycles = [], []
    for start in (0, 1):
        out = ttl.empty((32 * gy, 32 * gx))
        rep = row_broadcast(gx, gy, lambda b: b + 1.0, dst_start=start)(src, out)
        outs.append(out.to_numpy())
        cycles.append(rep.cycles)
    xq = src.to_numpy().astype(np.float64)
    for y in range(gy):
        for c in range(gx):
            tt.assert_close(outs[0][32 * y:32 * y + 32, 32 * c:32 * c + 32], xq[32 * y:32 * y + 32] + 1,
                            "bf16")
    np.testing.assert_array_equal(outs[0], outs[1])
    assert cycles[0] == cycles[1]


def test_a_pipe_from_a_core_to_itself_moves_nothing():
    ttl.set_device("wormhole_b0")
    src = ttl.from_numpy(tt.array((32, 32), "bf16", 13))
    out = ttl.empty((32, 32))
    row_broadcast(1, 1, lambda b: b * 2.0, dst_start=0)(src, out)
    np.testing.assert_array_equal(out.to_numpy(), src.to_numpy() * 2)


def test_send_outside_if_src_is_an_error():
    ttl.set_device("wormhole_b0")
    src = ttl.from_numpy(np.ones((32, 32), np.float32))

    @ttl.kernel(grid=(2, 1))
    def bad(src):
        buf = ttl.make_dataflow_buffer_like(src, shape=(1, 1))
        net = ttl.PipeNet([ttl.Pipe(src=(0, 0), dst=(1, 0))])

        @ttl.datamovement()
        def read():
            with buf.reserve() as blk:
                ttl.copy(src[0, 0], blk).wait()
                ttl.copy(blk, net.pipes[0]).wait()

    with pytest.raises(ttl.CompileError, match="send inside net.if_src"):
        bad(src)


def _net_kernel(make, grid=(4, 1)):
    ttl.set_device("wormhole_b0")
    src = ttl.from_numpy(np.ones((32, 32), np.float32))

    @ttl.kernel(grid=grid)
    def k(src):
        make()

        @ttl.datamovement()
        def read():
            pass
    return lambda: k(src)


@pytest.mark.parametrize("make, what", [
    (lambda: ttl.PipeNet([ttl.Pipe(src=(0, 0), dst=(slice(1, 9), 0))]),
     r"pipe destination x slice 1:9 runs past the grid \(0..3\)"),
    (lambda: ttl.PipeNet([ttl.Pipe(src=(0, 0), dst=(1.0, 0))]),
     r"pipe destination x 1.0: a core coordinate is an integer, or a slice of integers"),
    (lambda: ttl.PipeNet([ttl.Pipe(src=(0.0, 0), dst=(1, 0))]), r"pipe source x 0.0: a core coordinate"),
    (lambda: ttl.PipeNet([ttl.Pipe(src=(slice(0, 2), 0), dst=(3, 0))]), r"a pipe has one source core"),
    (lambda: ttl.PipeNet([ttl.Pipe(src=(0, 0, 0), dst=(1, 0))]), r"pipe source \(0, 0, 0\): a core is \(x, y\)"),
    (lambda: ttl.PipeNet([ttl.Pipe(src=(0, 0), dst="all")]), r"pipe destination 'all': a core is \(x, y\)"),
    (lambda: ttl.PipeNet(["x"]), r"a PipeNet holds ttl.Pipe\(src=..., dst=...\)s, got 'x'"),
    (lambda: ttl.Semaphore().get_remote_multicast((slice(0, 9), 0)),
     r"semaphore multicast x slice 0:9 runs past the grid \(0..3\)"),
    (lambda: ttl.Semaphore().get_remote_multicast((1.5, 0)), r"semaphore multicast x 1.5"),
])
def test_pipe_and_multicast_coordinates_are_checked(make, what):
    """A slice past the grid used to be clipped to it (slice.indices): the cores past the
    grid the kernel named silently got nothing. Floats, strs and 3-tuples were
    AttributeError or ValueError from pipe.py."""
    with pytest.raises(ttl.CompileError, match=what):
        _net_kernel(make)()


def test_a_remote_semaphore_core_must_be_two_integers():
    ttl.set_device("wormhole_b0")
    src = ttl.from_numpy(np.ones((32, 32), np.float32))
    for core, what in (((1.0, 0), r"remote semaphore on core \(1.0, 0\): a core is \(x, y\), two "
                                  r"integers"),
                       ("x", r"remote semaphore on core 'x': a core is \(x, y\)")):
        @ttl.kernel(grid=(2, 1))
        def k(src):
            sem = ttl.Semaphore()

            @ttl.datamovement()
            def read():
                sem.get_remote(core).inc(1)
        with pytest.raises(ttl.CompileError, match=what):
            k(src)
