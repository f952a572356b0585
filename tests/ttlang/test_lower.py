"""What the compiler makes of a statement: common subexpressions computed once."""
import numpy as np

import ttlang as ttl
from ttlang import testing as tt
from tests.ttlang.conftest import run_blocks


def test_repeated_subexpressions_are_computed_once():
    """softmax written the plain way uses exp(a - rowmax) twice and rowmax twice; each is
    computed once, spilled, and read back where it is used again."""
    x = tt.array((64, 128), "bf16", 9)

    def softmax(a):
        e = ttl.math.exp(a - ttl.math.broadcast(a.rowmax(), dims=[1]))
        return e / ttl.math.broadcast(e.rowsum(), dims=[1])

    (xq,), out, rep, k = run_blocks(softmax, [x], block=(1, 4), grid=(2, 1))
    code = k.show()
    assert code.count("'exp'") == 1 and code.count("'max', 'row'") == 1
    ref = np.exp(xq - xq.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    # e is rounded in DST and stored (bf16), its row sum reaches the divide through a
    # source register; every step is one bf16 rounding of a well-conditioned value
    tt.assert_close(out, ref, "bf16", ops=6)


def test_intermediates_of_different_sizes_get_their_own_spill_buffers():
    """A 1-tile intermediate, then a 2-tile one: in one 2-page spill CB the second would start
    at page 1 and run past the CB's end (flash attention with 2-tile K/V blocks stopped with a
    CBError on its reduce_max). Each size of intermediate has its own spill CB."""
    ttl.set_device("wormhole_b0")
    a = ttl.from_numpy(tt.array((32, 64), "bf16", 1))
    b = ttl.from_numpy(tt.array((32, 32), "bf16", 2))
    o1, o2 = ttl.empty((32, 32), "fp32"), ttl.empty((32, 32), "fp32")

    @ttl.kernel(grid=(1, 1))
    def k(a, b, o1, o2):
        ab = ttl.make_dataflow_buffer_like(a, shape=(1, 2), buffer_factor=1)
        bb = ttl.make_dataflow_buffer_like(b, shape=(1, 1), buffer_factor=1)
        ob1 = ttl.make_dataflow_buffer_like(o1, shape=(1, 1), buffer_factor=1)
        ob2 = ttl.make_dataflow_buffer_like(o2, shape=(1, 1), buffer_factor=1)

        @ttl.datamovement()
        def rd():
            with ab.reserve() as x, bb.reserve() as y:
                t = ttl.copy(a[0:1, 0:2], x)
                u = ttl.copy(b[0, 0], y)
                t.wait()
                u.wait()

        @ttl.compute()
        def c():
            with ab.wait() as x, bb.wait() as y:
                for _ in range(2):      # and back to the 1-tile one, then the 2-tile one again
                    with ob1.reserve() as o:
                        o.store(ttl.math.reduce_sum(y * 2.0, dims=[1]))
                    with ob2.reserve() as o:
                        o.store(ttl.math.reduce_sum(x * 2.0, dims=[1]))

        @ttl.datamovement()
        def wr():
            for _ in range(2):
                with ob1.wait() as o:
                    ttl.copy(o, o1[0, 0]).wait()
                with ob2.wait() as o:
                    ttl.copy(o, o2[0, 0]).wait()

    k(a, b, o1, o2)
    an, bn = a.to_numpy().astype(np.float64), b.to_numpy().astype(np.float64)
    # the doubling rounds to the bf16 spill, the sum to the bf16 DST
    tt.assert_close(o1.to_numpy()[:, 0], 2 * bn.sum(1), "bf16", ops=3, scale=2 * np.abs(bn).sum(1))
    tt.assert_close(o2.to_numpy()[:, 0], 2 * an.sum(1), "bf16", ops=3, scale=2 * np.abs(an).sum(1))
    assert "compiler intermediate, 1 tiles" in k.show() and "compiler intermediate, 2 tiles" in k.show()


def test_a_row_statistic_broadcasts_against_its_one_tile_wide_source():
    """a - rowmax(a) with a one tile wide: equal shapes, but the statistic is a's, so it
    spreads across the columns as it would against a wider block; two statistics combine
    elementwise (their column 0 is what holds values)."""
    x = tt.array((64, 32), "bf16", 4)

    def centred(a):
        return ttl.math.exp(a - ttl.math.reduce_max(a, dims=[1]))

    (xq,), out, _, k = run_blocks(centred, [x], block=(1, 1))
    arg = xq - xq.max(1, keepdims=True)
    # the subtract's rounding is amplified by exp (|arg| times), then exp rounds to the DST
    tt.assert_close(out, np.exp(arg), "bf16", ops=3, scale=np.exp(arg) * (1 + np.abs(arg)))

    def spread(a):
        return ttl.math.reduce_max(a, dims=[1]) - ttl.math.reduce_sum(a, dims=[1])

    (xq,), out, _, k = run_blocks(spread, [x], block=(1, 1))
    assert "bcast" not in k.show()
    tt.assert_close(out[:, 0], xq.max(1) - xq.sum(1), "bf16", ops=3,
                    scale=np.abs(xq).max(1) + np.abs(xq).sum(1))
