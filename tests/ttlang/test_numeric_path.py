"""Bounds derived from what a kernel did to its numbers (ttlang.testing.numeric_path)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ttlang as ttl
from ttlang import testing as tt


def softmax_kernel(fp32_dest_acc_en, exp):
    @ttl.kernel(grid=(2, 1), fp32_dest_acc_en=fp32_dest_acc_en, exp_approx=exp)
    def softmax_rows(x, out):
        xb = ttl.make_dataflow_buffer_like(x, shape=(1, 2), buffer_factor=2)
        ob = ttl.make_dataflow_buffer_like(out, shape=(1, 2), buffer_factor=2)

        @ttl.datamovement()
        def read():
            i = ttl.core(dims=1)
            with xb.reserve() as blk:
                ttl.copy(x[i:i + 1, 0:2], blk).wait()

        @ttl.compute()
        def compute():
            with xb.wait() as a, ob.reserve() as o:
                e = ttl.math.exp(a - ttl.math.broadcast(a.rowmax(), dims=[1]))
                o.store(e / ttl.math.broadcast(e.rowsum(), dims=[1]))

        @ttl.datamovement()
        def write():
            i = ttl.core(dims=1)
            with ob.wait() as blk:
                ttl.copy(blk, out[i:i + 1, 0:2]).wait()
    return softmax_rows


def softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# exp's argument x - max has an absolute error of |x - max| u, so a relative error of that
# size in exp: at most 2 * 3 u for inputs in [-3, 3]; then the exp, the row sum, the division
# (a reciprocal and a product) and the stores: 12 roundings of the kernel's u in all.
OPS = 12


@settings(max_examples=6)
@given(seed=tt.seeds(), fmt=st.sampled_from(["bf16", "fp32"]), fp32_dst=st.booleans(),
       exp=st.sampled_from([False, "fast", "accurate"]))
def test_softmax_within_the_bound_its_numeric_path_gives(seed, fmt, fp32_dst, exp):
    ttl.set_device("wormhole_b0")
    x = tt.array((64, 64), fmt, seed, -3.0, 3.0)
    xt, out = ttl.from_numpy(x, fmt), ttl.empty((64, 64), fmt)
    k = softmax_kernel(fp32_dst, exp)
    k(xt, out)
    ref = softmax(xt.to_numpy().astype(np.float64))
    tt.assert_close(out.to_numpy(), ref, fmt, ops=OPS, kernel=k)
    path = k.numerics()
    assert path["dst"] == ("fp32" if fp32_dst else "bf16")
    assert any(name.startswith("exp") for name in path["sfpu"])


def test_the_path_names_what_ran_and_its_bound_is_tight_enough_to_fail():
    """fp32 tensors through a 16-bit DST: the path's u is bf16's, not fp32's; a bound from the
    tensor format alone (the mistake this API exists for) rejects the kernel's result."""
    ttl.set_device("wormhole_b0")
    x = tt.array((64, 64), "fp32", 1, -3.0, 3.0)
    xt, out = ttl.from_numpy(x, "fp32"), ttl.empty((64, 64), "fp32")
    k = softmax_kernel(False, "fast")
    k(xt, out)
    path = k.numerics()
    assert path["dst"] == "bf16" and path["source_registers"] == "tf32"
    assert "exp(fast)" in path["sfpu"] and path["u"] >= 0.03      # the fast exp's error
    ref = softmax(xt.to_numpy().astype(np.float64))
    with pytest.raises(AssertionError):
        tt.assert_close(out.to_numpy(), ref, "fp32", ops=OPS)
    tt.assert_close(out.to_numpy(), ref, "fp32", ops=OPS, kernel=k)
    # and the fp32 DST with the accurate exp is far tighter than the bf16 one
    k32 = softmax_kernel(True, "accurate")
    k32(xt, out)
    assert k32.numerics()["u"] < 2.0 ** -10
    tt.assert_close(out.to_numpy(), ref, "fp32", ops=OPS, kernel=k32)


def test_numeric_path_needs_a_run():
    with pytest.raises(ValueError, match="run the kernel first"):
        softmax_kernel(False, "fast").numerics()


def test_assert_pcc_takes_tolerances():
    ref = np.linspace(1, 2, 100)
    tt.assert_pcc(ref * 1.001, ref, rtol=2e-3)
    with pytest.raises(AssertionError, match="outside"):
        tt.assert_pcc(ref * 1.01, ref, rtol=2e-3)
