"""A generic ttlang kernel for tests: apply a block expression to every block of the inputs."""
import numpy as np
import pytest

import ttlang as ttl


def run_blocks(fn, arrays, block=(1, 1), grid=(1, 1), dtype="bf16", out_block=None, out_dtype=None,
               **config):
    """out[block i] = fn(*input blocks i); returns (inputs as stored, output) as float64.

    `out_block` is the output block shape in tiles (default: the input block shape); the
    output tensor has as many blocks as the inputs, laid out the same way.
    """
    ttl.set_device("wormhole_b0")
    r, c = arrays[0].shape[0] // 32, arrays[0].shape[1] // 32
    br, bc = block
    obr, obc = out_block or block
    nbr, nbc = r // br, c // bc
    ins = [ttl.from_numpy(a, dtype) for a in arrays]
    out = ttl.empty((nbr * obr * 32, nbc * obc * 32), out_dtype or dtype)
    gx, gy = grid
    ncores = gx * gy

    @ttl.kernel(grid=grid, **config)
    def k(*ts):
        *xs, o = ts
        bufs = [ttl.make_dataflow_buffer_like(x, shape=block, buffer_factor=2) for x in xs]
        obuf = ttl.make_dataflow_buffer_like(o, shape=(obr, obc), buffer_factor=2)

        def mine():
            return range(ttl.core(dims=1), nbr * nbc, ncores)

        @ttl.datamovement()
        def read():
            for n in mine():
                i, j = divmod(n, nbc)
                for x, b in zip(xs, bufs):
                    with b.reserve() as blk:
                        ttl.copy(x[i * br:(i + 1) * br, j * bc:(j + 1) * bc], blk).wait()

        @ttl.compute()
        def comp():
            for _ in mine():
                blks = [b.wait() for b in bufs]
                with obuf.reserve() as ob:
                    ob.store(fn(*blks))
                for b in blks:
                    b.pop()

        @ttl.datamovement()
        def write():
            for n in mine():
                i, j = divmod(n, nbc)
                with obuf.wait() as ob:
                    ttl.copy(ob, o[i * obr:(i + 1) * obr, j * obc:(j + 1) * obc]).wait()

    rep = k(*ins, out)
    return ([t.to_numpy().astype(np.float64) for t in ins], out.to_numpy().astype(np.float64), rep, k)


@pytest.fixture
def blocks():
    return run_blocks
