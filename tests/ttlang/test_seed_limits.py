"""The seed document's limits, as regression tests that now pass: long op chains, several
matmuls per kernel, reductions that feed later ops, many tiles per core, large grids."""
import numpy as np
import pytest

import ttlang as ttl
from ttlang import testing as tt
from tests.ttlang.conftest import run_blocks


def _chain(n):
    """n ops alternating in a way that stays bounded: x -> relu, *0.5, +x, tanh, ..."""
    def f(a, b):
        y = a
        for i in range(n):
            y = [lambda v: v * 0.5, lambda v: v + b, ttl.math.tanh, lambda v: ttl.math.max(v, b),
                 ttl.math.abs][i % 5](y)
        return y
    return f


def _chain_ref(n, a, b):
    y = a
    for i in range(n):
        y = [lambda v: v * 0.5, lambda v: v + b, np.tanh, lambda v: np.maximum(v, b), np.abs][i % 5](y)
    return y


@pytest.mark.parametrize("n", [7, 30])
def test_long_op_chains(n):
    a, b = tt.array((64, 64), "bf16", 1), tt.array((64, 64), "bf16", 2)
    (aq, bq), out, _, k = run_blocks(_chain(n), [a, b], block=(2, 2), grid=(2, 2))
    # every op rounds to bf16 in DST; the chain is contractive (tanh, *0.5), so errors stay O(n u)
    tt.assert_close(out, _chain_ref(n, aq, bq), "bf16", ops=n, scale=np.abs(aq) + np.abs(bq) + 1)


def test_three_matmuls_in_one_kernel():
    a, b, c = (tt.array((64, 64), "bf16", s, -1, 1) for s in (3, 4, 5))
    f = lambda x, y, z: (x @ y) @ z + x @ z
    (aq, bq, cq), out, _, k = run_blocks(f, [a, b, c], block=(2, 2), out_dtype="fp32",
                                         fp32_dest_acc_en=True)
    ref = (aq @ bq) @ cq + aq @ cq
    scale = (np.abs(aq) @ np.abs(bq)) @ np.abs(cq) + np.abs(aq) @ np.abs(cq)
    tt.assert_close(out, ref, "bf16", ops=3, scale=scale)
    assert k.show().count("k.matmul_block(") >= 3


def test_reduction_feeding_later_ops():
    x = tt.array((64, 128), "bf16", 6)
    f = lambda a: ttl.math.exp(a - a.rowmax()) * 2.0 + a.rowsum()
    (xq,), out, _, _ = run_blocks(f, [x], block=(2, 4), out_dtype="fp32", fp32_dest_acc_en=True)
    ref = np.exp(xq - xq.max(1, keepdims=True)) * 2 + xq.sum(1, keepdims=True)
    tt.assert_close(out, ref, "bf16", ops=3, scale=np.abs(ref) + np.abs(xq).sum(1, keepdims=True) * 2 ** -6)


@pytest.mark.parametrize("grid", [(2, 2), (4, 4), (8, 8)])
def test_multi_tile_blocks_on_grids(grid):
    gx, gy = grid
    a = tt.array((32 * 2 * gy, 32 * 4 * gx), "bf16", 7)
    b = tt.array(a.shape, "bf16", 8)
    (aq, bq), out, rep, _ = run_blocks(lambda x, y: ttl.math.exp(x) * y - x, [a, b], block=(2, 4),
                                       grid=grid)
    tt.assert_close(out, np.exp(aq) * bq - aq, "bf16", ops=3, scale=np.exp(aq) * np.abs(bq) + np.abs(aq))
    assert rep.cores == gx * gy


def test_loop_carried_state_through_buffers():
    """A running sum over 6 blocks, carried from one iteration to the next in a buffer."""
    ttl.set_device("wormhole_b0")
    xs = tt.array((32, 32 * 6), "bf16", 9)
    x = ttl.from_numpy(xs)
    out = ttl.empty((32, 32))

    @ttl.kernel(grid=(1, 1))
    def running(x, o):
        xb = ttl.make_dataflow_buffer_like(x, shape=(1, 1))
        acc = ttl.make_dataflow_buffer_like(o, shape=(1, 1))
        ob = ttl.make_dataflow_buffer_like(o, shape=(1, 1))

        @ttl.datamovement()
        def rd():
            for j in range(6):
                with xb.reserve() as blk:
                    ttl.copy(x[0:1, j:j + 1], blk).wait()

        @ttl.compute()
        def cp():
            with acc.reserve() as a0:
                a0.store(ttl.math.fill(a0, 0.0))
            for j in range(6):
                with xb.wait() as blk, acc.wait() as a, acc.reserve() as a2:
                    a2.store(a + ttl.math.exp(blk))
            with acc.wait() as a, ob.reserve() as o_:
                o_.store(a)

        @ttl.datamovement()
        def wr():
            with ob.wait() as blk:
                ttl.copy(blk, o[0:1, 0:1]).wait()

    running(x, out)
    xq = x.to_numpy().astype(np.float64)
    ref = sum(np.exp(xq[:, 32 * j:32 * j + 32]) for j in range(6))
    tt.assert_close(out.to_numpy(), ref, "bf16", ops=7)
