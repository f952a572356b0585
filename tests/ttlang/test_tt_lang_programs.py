"""TT-Lang programs, written as TT-Lang's public examples write them, run on ttsim.

Each program below is what a TT-Lang user writes, with only the two import lines changed
(`import ttl` -> `import ttlang as ttl`, `import ttnn` -> `import ttlang.ttnn as ttnn`): a
module-level `@ttl.kernel`, dataflow buffers, three decorated threads, `ttl.Program`, and
host code that opens the device, makes TT-NN tensors, launches the kernel and reads the
result back. The tests check each result against a float64 numpy reference with a
tolerance derived from the formats (ttlang.testing). Programs that use torch, as most of
TT-Lang's examples do, skip without it; the numpy ones always run.

TT-Lang constructs that ttlang may not run yet are kept, marked xfail(strict=True) with
the error they give, conditional on a probe of the construct: where it works the test must
pass, where it does not it must fail with that error.
"""
import inspect

import numpy as np
import pytest

import ttlang as ttl
import ttlang.ttnn as ttnn
from ttlang import testing as tt

TILE_SIZE = ttnn.TILE_SIZE


@pytest.fixture(autouse=True)
def _fresh_chip():
    """A fresh wormhole_b0 for each test; the device before it comes back after."""
    before = ttl.device()
    ttl.set_device("wormhole_b0")
    yield
    ttl.set_device(before)


def f64(t):
    return ttnn.to_numpy(t).astype(np.float64)


def _grid_size_in_kernel_body():
    @ttl.kernel(grid=(1, 1))
    def probe():
        ttl.grid_size(dims=2)
    try:
        probe.build()
    except ttl.CompileError:
        return False
    return True


GRID_SIZE_IN_BODY = _grid_size_in_kernel_body()
BROADCAST_LIKE = "like" in inspect.signature(ttl.math.broadcast).parameters


# --- element-wise add: one core, a tile at a time -------------------------------------------
@ttl.kernel(grid=(1, 1))
def eltwise_add(a_in: ttnn.Tensor, b_in: ttnn.Tensor, out: ttnn.Tensor):
    row_tiles = a_in.shape[0] // TILE_SIZE
    col_tiles = a_in.shape[1] // TILE_SIZE

    a_dfb = ttl.make_dataflow_buffer_like(a_in, shape=(1, 1), buffer_factor=2)
    b_dfb = ttl.make_dataflow_buffer_like(b_in, shape=(1, 1), buffer_factor=2)
    out_dfb = ttl.make_dataflow_buffer_like(out, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def add_compute():
        for _ in range(row_tiles):
            for _ in range(col_tiles):
                with a_dfb.wait() as a_blk, b_dfb.wait() as b_blk, out_dfb.reserve() as out_blk:
                    out_blk.store(a_blk + b_blk)

    @ttl.datamovement()
    def dm_read():
        for r in range(row_tiles):
            for c in range(col_tiles):
                with a_dfb.reserve() as a_blk, b_dfb.reserve() as b_blk:
                    tx_a = ttl.copy(a_in[r, c], a_blk)
                    tx_b = ttl.copy(b_in[r, c], b_blk)
                    tx_a.wait()
                    tx_b.wait()

    @ttl.datamovement()
    def dm_write():
        for r in range(row_tiles):
            for c in range(col_tiles):
                with out_dfb.wait() as out_blk:
                    tx = ttl.copy(out_blk, out[r, c])
                    tx.wait()

    return ttl.Program(add_compute, dm_read, dm_write)(a_in, b_in, out)


def eltwise_add_main(shape, dtype):
    device = ttnn.open_device(device_id=0)
    a = ttnn.rand(shape, dtype=dtype, layout=ttnn.TILE_LAYOUT, device=device,
                  memory_config=ttnn.DRAM_MEMORY_CONFIG, low=-2, high=2, seed=1)
    b = ttnn.rand(shape, dtype=dtype, layout=ttnn.TILE_LAYOUT, device=device,
                  memory_config=ttnn.L1_MEMORY_CONFIG, low=-2, high=2, seed=2)
    out = ttnn.empty(shape, dtype=dtype, layout=ttnn.TILE_LAYOUT, device=device,
                     memory_config=ttnn.DRAM_MEMORY_CONFIG)
    eltwise_add(a, b, out)
    ttnn.close_device(device)
    return a, b, out


@pytest.mark.parametrize("dtype", [ttnn.bfloat16, ttnn.float32])
def test_eltwise_add(dtype):
    a, b, out = eltwise_add_main((64, 96), dtype)
    av, bv = f64(a), f64(b)
    if dtype == ttnn.bfloat16:
        tt.assert_close(f64(out), av + bv, "bf16", ops=1)
        # the host op is the golden: the exact sum rounded once, as the packer rounds it
        assert np.array_equal(ttnn.to_numpy(out), ttnn.to_numpy(ttnn.add(a, b)))
    else:
        # fp32 operands pass through the source registers (TF32, one rounding each) and the
        # sum lands in a 16-bit DST (the kernel does not ask for fp32_dest_acc_en): bf16's u
        # plus two of TF32's
        tf32 = 2 * tt.unit_roundoff("tf32") / tt.unit_roundoff("bf16")
        tt.assert_close(f64(out), av + bv, "bf16", ops=1 + tf32, scale=np.abs(av) + np.abs(bv))


def test_eltwise_add_pads_shapes_that_are_not_whole_tiles():
    """(50, 70) is stored as (64, 96): the kernel sees 2x3 tiles, the host 50x70 values."""
    a, b, out = eltwise_add_main((50, 70), ttnn.bfloat16)
    assert out.shape == (50, 70) and out.padded_shape == (64, 96)
    got = ttnn.to_numpy(out)
    assert got.shape == (50, 70)
    tt.assert_close(got, f64(a) + f64(b), "bf16", ops=1)
    # the padding stayed zero: 0 + 0 in every padded position
    padded = out.device_tensor.to_numpy()
    assert not padded[50:].any() and not padded[:, 70:].any()


def test_eltwise_add_with_torch():
    torch = pytest.importorskip("torch")
    device = ttnn.open_device(device_id=0)
    a_torch = torch.rand((64, 64), dtype=torch.bfloat16)
    b_torch = torch.rand((64, 64), dtype=torch.bfloat16)
    a = ttnn.from_torch(a_torch, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                        memory_config=ttnn.L1_MEMORY_CONFIG)
    b = ttnn.from_torch(b_torch, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                        memory_config=ttnn.L1_MEMORY_CONFIG)
    out = ttnn.from_torch(torch.zeros((64, 64), dtype=torch.bfloat16), dtype=ttnn.bfloat16,
                          layout=ttnn.TILE_LAYOUT, device=device, memory_config=ttnn.L1_MEMORY_CONFIG)
    eltwise_add(a, b, out)
    result = ttnn.to_torch(out)
    ttnn.close_device(device)
    expected = a_torch + b_torch
    assert result.dtype == torch.bfloat16 and result.shape == (64, 64)
    assert torch.allclose(result, expected, rtol=1e-2, atol=1e-2)
    tt.assert_close(result.float().numpy(), a_torch.double().numpy() + b_torch.double().numpy(), "bf16")


# --- the tutorial: y = a * b + c, one tile, then many, then many cores ---------------------
@ttl.kernel(grid=(1, 1))
def tutorial_single_tile(a: ttnn.Tensor, b: ttnn.Tensor, c: ttnn.Tensor, y: ttnn.Tensor):
    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=2)
    b_dfb = ttl.make_dataflow_buffer_like(b, shape=(1, 1), buffer_factor=2)
    c_dfb = ttl.make_dataflow_buffer_like(c, shape=(1, 1), buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def compute():
        with a_dfb.wait() as a_blk, b_dfb.wait() as b_blk, c_dfb.wait() as c_blk, \
                y_dfb.reserve() as y_blk:
            y_blk.store(a_blk * b_blk + c_blk)

    @ttl.datamovement()
    def read():
        with a_dfb.reserve() as a_blk, b_dfb.reserve() as b_blk, c_dfb.reserve() as c_blk:
            tx_a = ttl.copy(a[0, 0], a_blk)
            tx_b = ttl.copy(b[0, 0], b_blk)
            tx_c = ttl.copy(c[0, 0], c_blk)
            tx_a.wait()
            tx_b.wait()
            tx_c.wait()

    @ttl.datamovement()
    def write():
        with y_dfb.wait() as y_blk:
            tx = ttl.copy(y_blk, y[0, 0])
            tx.wait()


TILES_PER_BLOCK = 2


@ttl.kernel(grid=(1, 1))
def tutorial_multi_tile(a: ttnn.Tensor, b: ttnn.Tensor, c: ttnn.Tensor, y: ttnn.Tensor):
    rows = a.shape[0] // TILE_SIZE // TILES_PER_BLOCK
    cols = a.shape[1] // TILE_SIZE // TILES_PER_BLOCK
    block = (TILES_PER_BLOCK, TILES_PER_BLOCK)

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=block, buffer_factor=2)
    b_dfb = ttl.make_dataflow_buffer_like(b, shape=block, buffer_factor=2)
    c_dfb = ttl.make_dataflow_buffer_like(c, shape=block, buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=block, buffer_factor=2)

    @ttl.compute()
    def compute():
        for _ in range(rows):
            for _ in range(cols):
                with a_dfb.wait() as a_blk, b_dfb.wait() as b_blk, c_dfb.wait() as c_blk, \
                        y_dfb.reserve() as y_blk:
                    y_blk.store(a_blk * b_blk + c_blk)

    @ttl.datamovement()
    def read():
        for r in range(rows):
            r0, r1 = r * TILES_PER_BLOCK, (r + 1) * TILES_PER_BLOCK
            for col in range(cols):
                c0, c1 = col * TILES_PER_BLOCK, (col + 1) * TILES_PER_BLOCK
                with a_dfb.reserve() as a_blk, b_dfb.reserve() as b_blk, c_dfb.reserve() as c_blk:
                    tx_a = ttl.copy(a[r0:r1, c0:c1], a_blk)
                    tx_b = ttl.copy(b[r0:r1, c0:c1], b_blk)
                    tx_c = ttl.copy(c[r0:r1, c0:c1], c_blk)
                    tx_a.wait()
                    tx_b.wait()
                    tx_c.wait()

    @ttl.datamovement()
    def write():
        for r in range(rows):
            r0, r1 = r * TILES_PER_BLOCK, (r + 1) * TILES_PER_BLOCK
            for col in range(cols):
                c0, c1 = col * TILES_PER_BLOCK, (col + 1) * TILES_PER_BLOCK
                with y_dfb.wait() as y_blk:
                    tx = ttl.copy(y_blk, y[r0:r1, c0:c1])
                    tx.wait()


@ttl.kernel(grid=(2, 2))
def tutorial_multicore(a: ttnn.Tensor, b: ttnn.Tensor, c: ttnn.Tensor, y: ttnn.Tensor):
    row_tiles = a.shape[0] // TILE_SIZE
    col_tiles = a.shape[1] // TILE_SIZE

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=2)
    b_dfb = ttl.make_dataflow_buffer_like(b, shape=(1, 1), buffer_factor=2)
    c_dfb = ttl.make_dataflow_buffer_like(c, shape=(1, 1), buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(1, 1), buffer_factor=2)

    def my_tiles():
        # this core's share: a contiguous band of tile rows and of tile columns
        grid_x, grid_y = ttl.grid_size(dims=2)
        x, y_ = ttl.core(dims=2)
        rows_per_core = -(-row_tiles // grid_y)
        cols_per_core = -(-col_tiles // grid_x)
        rows = range(y_ * rows_per_core, min(row_tiles, (y_ + 1) * rows_per_core))
        cols = range(x * cols_per_core, min(col_tiles, (x + 1) * cols_per_core))
        return [(r, col) for r in rows for col in cols]

    @ttl.compute()
    def compute():
        for _ in my_tiles():
            with a_dfb.wait() as a_blk, b_dfb.wait() as b_blk, c_dfb.wait() as c_blk, \
                    y_dfb.reserve() as y_blk:
                y_blk.store(a_blk * b_blk + c_blk)

    @ttl.datamovement()
    def read():
        for r, col in my_tiles():
            with a_dfb.reserve() as a_blk, b_dfb.reserve() as b_blk, c_dfb.reserve() as c_blk:
                tx_a = ttl.copy(a[r, col], a_blk)
                tx_b = ttl.copy(b[r, col], b_blk)
                tx_c = ttl.copy(c[r, col], c_blk)
                tx_a.wait()
                tx_b.wait()
                tx_c.wait()

    @ttl.datamovement()
    def write():
        for r, col in my_tiles():
            with y_dfb.wait() as y_blk:
                tx = ttl.copy(y_blk, y[r, col])
                tx.wait()


@ttl.kernel(grid="auto")
def tutorial_multicore_auto(a: ttnn.Tensor, b: ttnn.Tensor, c: ttnn.Tensor, y: ttnn.Tensor):
    # the tutorial's form: the grid's size read in the kernel body, once
    grid_x, grid_y = ttl.grid_size(dims=2)
    rows_per_core = a.shape[0] // TILE_SIZE // grid_y
    cols_per_core = a.shape[1] // TILE_SIZE // grid_x

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(rows_per_core, cols_per_core), buffer_factor=2)
    b_dfb = ttl.make_dataflow_buffer_like(b, shape=(rows_per_core, cols_per_core), buffer_factor=2)
    c_dfb = ttl.make_dataflow_buffer_like(c, shape=(rows_per_core, cols_per_core), buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(rows_per_core, cols_per_core), buffer_factor=2)

    @ttl.compute()
    def compute():
        with a_dfb.wait() as a_blk, b_dfb.wait() as b_blk, c_dfb.wait() as c_blk, \
                y_dfb.reserve() as y_blk:
            y_blk.store(a_blk * b_blk + c_blk)

    @ttl.datamovement()
    def read():
        x, y_ = ttl.core(dims=2)
        rows = slice(y_ * rows_per_core, (y_ + 1) * rows_per_core)
        cols = slice(x * cols_per_core, (x + 1) * cols_per_core)
        with a_dfb.reserve() as a_blk, b_dfb.reserve() as b_blk, c_dfb.reserve() as c_blk:
            tx_a = ttl.copy(a[rows, cols], a_blk)
            tx_b = ttl.copy(b[rows, cols], b_blk)
            tx_c = ttl.copy(c[rows, cols], c_blk)
            tx_a.wait()
            tx_b.wait()
            tx_c.wait()

    @ttl.datamovement()
    def write():
        x, y_ = ttl.core(dims=2)
        rows = slice(y_ * rows_per_core, (y_ + 1) * rows_per_core)
        cols = slice(x * cols_per_core, (x + 1) * cols_per_core)
        with y_dfb.wait() as y_blk:
            tx = ttl.copy(y_blk, y[rows, cols])
            tx.wait()


def tutorial_main(kernel, shape):
    device = ttnn.open_device(device_id=0)
    a = ttnn.rand(shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                  memory_config=ttnn.DRAM_MEMORY_CONFIG, low=-1, high=1, seed=11)
    b = ttnn.rand(shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                  memory_config=ttnn.DRAM_MEMORY_CONFIG, low=-1, high=1, seed=12)
    c = ttnn.rand(shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                  memory_config=ttnn.DRAM_MEMORY_CONFIG, low=-1, high=1, seed=13)
    y = ttnn.empty(shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                   memory_config=ttnn.DRAM_MEMORY_CONFIG)
    kernel(a, b, c, y)
    expected = a * b + c            # the host ops' golden
    ttnn.close_device(device)
    return a, b, c, y, expected


@pytest.mark.parametrize("kernel,shape", [
    (tutorial_single_tile, (TILE_SIZE, TILE_SIZE)),
    (tutorial_multi_tile, (128, 128)),
    (tutorial_multicore, (96, 160)),      # 3x5 tiles over a 2x2 grid: uneven shares
], ids=["single_tile", "multi_tile", "multicore"])
def test_tutorial(kernel, shape):
    a, b, c, y, expected = tutorial_main(kernel, shape)
    av, bv, cv = f64(a), f64(b), f64(c)
    # the product rounds in DST (bf16), the sum when packed: two roundings of |ab| + |c|
    tt.assert_close(f64(y), av * bv + cv, "bf16", ops=2, scale=np.abs(av * bv) + np.abs(cv))
    tt.assert_close(f64(y), f64(expected), "bf16", ops=3, scale=np.abs(av * bv) + np.abs(cv))


@pytest.mark.xfail(not GRID_SIZE_IN_BODY, strict=True, raises=ttl.CompileError,
                   reason="ttl.grid_size() in the kernel body: 'this ttlang call only works inside "
                          "a kernel thread (a function decorated with @ttl.compute() or "
                          "@ttl.datamovement())'")
def test_tutorial_multicore_grid_size_in_kernel_body():
    a, b, c, y, expected = tutorial_main(tutorial_multicore_auto, (256, 256))   # 8x8 grid
    av, bv, cv = f64(a), f64(b), f64(c)
    tt.assert_close(f64(y), av * bv + cv, "bf16", ops=2, scale=np.abs(av * bv) + np.abs(cv))


# --- matmul: accumulate over K into one reserved block ---------------------------------------
@ttl.kernel(grid=(1, 1))
def matmul_single_core(a: ttnn.Tensor, b: ttnn.Tensor, y: ttnn.Tensor):
    Mt = a.shape[0] // TILE_SIZE
    Kt = a.shape[1] // TILE_SIZE
    Nt = b.shape[1] // TILE_SIZE

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=2)
    b_dfb = ttl.make_dataflow_buffer_like(b, shape=(1, 1), buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def mm_compute():
        for _ in range(Mt):
            for _ in range(Nt):
                with y_dfb.reserve() as y_blk:
                    for _ in range(Kt):
                        with a_dfb.wait() as a_blk, b_dfb.wait() as b_blk:
                            y_blk.store(a_blk @ b_blk, acc=True)

    @ttl.datamovement()
    def mm_read():
        for m in range(Mt):
            for n in range(Nt):
                for k in range(Kt):
                    with a_dfb.reserve() as a_blk, b_dfb.reserve() as b_blk:
                        tx_a = ttl.copy(a[m, k], a_blk)
                        tx_b = ttl.copy(b[k, n], b_blk)
                        tx_a.wait()
                        tx_b.wait()

    @ttl.datamovement()
    def mm_write():
        for m in range(Mt):
            for n in range(Nt):
                with y_dfb.wait() as y_blk:
                    tx = ttl.copy(y_blk, y[m, n])
                    tx.wait()

    return ttl.Program(mm_compute, mm_read, mm_write)(a, b, y)


BM, BK, BN = 2, 2, 1     # block of the multicore matmul, in tiles


@ttl.kernel(grid=(2, 2))
def matmul_multicore(a: ttnn.Tensor, b: ttnn.Tensor, y: ttnn.Tensor):
    Mb = a.shape[0] // TILE_SIZE // BM
    Kb = a.shape[1] // TILE_SIZE // BK
    Nb = b.shape[1] // TILE_SIZE // BN

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(BM, BK), buffer_factor=2)
    b_dfb = ttl.make_dataflow_buffer_like(b, shape=(BK, BN), buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(BM, BN), buffer_factor=2)

    def my_blocks():
        # core (x, y) computes output block rows y, y + grid_y, ... and columns x, x + grid_x, ...
        grid_x, grid_y = ttl.grid_size(dims=2)
        x, y_ = ttl.core(dims=2)
        return [(m, n) for m in range(y_, Mb, grid_y) for n in range(x, Nb, grid_x)]

    @ttl.compute()
    def mm_compute():
        for _ in my_blocks():
            with y_dfb.reserve() as y_blk:
                for _ in range(Kb):
                    with a_dfb.wait() as a_blk, b_dfb.wait() as b_blk:
                        y_blk.store(a_blk @ b_blk, acc=True)

    @ttl.datamovement()
    def mm_read():
        for m, n in my_blocks():
            for k in range(Kb):
                with a_dfb.reserve() as a_blk, b_dfb.reserve() as b_blk:
                    tx_a = ttl.copy(a[m * BM:(m + 1) * BM, k * BK:(k + 1) * BK], a_blk)
                    tx_b = ttl.copy(b[k * BK:(k + 1) * BK, n * BN:(n + 1) * BN], b_blk)
                    tx_a.wait()
                    tx_b.wait()

    @ttl.datamovement()
    def mm_write():
        for m, n in my_blocks():
            with y_dfb.wait() as y_blk:
                tx = ttl.copy(y_blk, y[m * BM:(m + 1) * BM, n * BN:(n + 1) * BN])
                tx.wait()

    return ttl.Program(mm_compute, mm_read, mm_write)(a, b, y)


def matmul_main(kernel, M, K, N, dtype=ttnn.bfloat16):
    device = ttnn.open_device(device_id=0)
    a = ttnn.rand((M, K), dtype=dtype, layout=ttnn.TILE_LAYOUT, device=device, low=-1, high=1, seed=21)
    b = ttnn.rand((K, N), dtype=dtype, layout=ttnn.TILE_LAYOUT, device=device, low=-1, high=1, seed=22)
    y = ttnn.empty((M, N), dtype=dtype, layout=ttnn.TILE_LAYOUT, device=device)
    kernel(a, b, y)
    golden = ttnn.matmul(a, b)
    ttnn.close_device(device)
    return a, b, y, golden


def check_matmul(a, b, y, golden, k_steps, fmt="bf16"):
    av, bv = f64(a), f64(b)
    ref = av @ bv
    # each K step rounds the partial sum into the bf16 page it accumulates in
    scale = np.abs(av) @ np.abs(bv)
    tt.assert_close(f64(y), ref, fmt, ops=k_steps + 1, scale=scale)
    tt.assert_close(f64(golden), ref, fmt, ops=1)           # the golden: one rounding
    tt.assert_pcc(f64(y), ref, 0.9995)


def test_matmul_single_core():
    a, b, y, golden = matmul_main(matmul_single_core, 64, 128, 96)
    check_matmul(a, b, y, golden, k_steps=4)


def test_matmul_multicore():
    a, b, y, golden = matmul_main(matmul_multicore, 192, 128, 96)    # 3x2 output blocks of 2x1 tiles
    check_matmul(a, b, y, golden, k_steps=2)


def test_matmul_single_core_with_torch():
    torch = pytest.importorskip("torch")
    device = ttnn.open_device(device_id=0)
    a_torch = torch.randn((64, 96), dtype=torch.bfloat16)
    b_torch = torch.randn((96, 64), dtype=torch.bfloat16)
    a = ttnn.from_torch(a_torch, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                        memory_config=ttnn.DRAM_MEMORY_CONFIG)
    b = ttnn.from_torch(b_torch, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                        memory_config=ttnn.DRAM_MEMORY_CONFIG)
    y = ttnn.from_torch(torch.zeros((64, 64), dtype=torch.bfloat16), dtype=ttnn.bfloat16,
                        layout=ttnn.TILE_LAYOUT, device=device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    matmul_single_core(a, b, y)
    result = ttnn.to_torch(y)
    ttnn.close_device(device)
    expected = (a_torch.float() @ b_torch.float()).to(torch.bfloat16)
    assert torch.allclose(result.float(), expected.float(), rtol=5e-2, atol=2.5e-1)
    ref = a_torch.double().numpy() @ b_torch.double().numpy()
    tt.assert_close(result.float().numpy(), ref, "bf16", ops=4,
                    scale=np.abs(a_torch.double().numpy()) @ np.abs(b_torch.double().numpy()))


# --- a metal-style port: tt-metal's matmul_multi_core, work split with split_work_to_cores ---
def matmul_multi_core(a: ttnn.Tensor, b: ttnn.Tensor, output: ttnn.Tensor, compute_grid):
    Mt = a.shape[0] // TILE_SIZE
    Kt = a.shape[1] // TILE_SIZE
    Nt = b.shape[1] // TILE_SIZE
    num_output_tiles_total = Mt * Nt
    (num_cores, all_cores, core_group_1, core_group_2,
     num_output_tiles_per_core_group_1, num_output_tiles_per_core_group_2) = \
        ttnn.split_work_to_cores(compute_grid, num_output_tiles_total)
    num_cores_y = compute_grid.y

    def output_tile_range(core):
        # as tt-metal assigns them: core i = (i / num_cores_y, i % num_cores_y), contiguous ids
        i = core[0] * num_cores_y + core[1]
        n1 = core_group_1.num_cores()
        if core_group_1.contains(core):
            start = i * num_output_tiles_per_core_group_1
            return range(start, start + num_output_tiles_per_core_group_1)
        if core_group_2.contains(core):
            start = n1 * num_output_tiles_per_core_group_1 + (i - n1) * num_output_tiles_per_core_group_2
            return range(start, start + num_output_tiles_per_core_group_2)
        return range(0)

    @ttl.kernel(grid=(compute_grid.x, compute_grid.y))
    def matmul_kernel(a, b, output):
        cb_in0 = ttl.make_circular_buffer_like(a, shape=(1, 1), buffer_factor=2)
        cb_in1 = ttl.make_circular_buffer_like(b, shape=(1, 1), buffer_factor=2)
        cb_out = ttl.make_circular_buffer_like(output, shape=(1, 1), buffer_factor=2)

        @ttl.datamovement()
        def reader():
            for tile_id in output_tile_range(ttl.core(dims=2)):
                m, n = divmod(tile_id, Nt)
                for k in range(Kt):
                    in0 = cb_in0.reserve()
                    in1 = cb_in1.reserve()
                    tx0 = ttl.copy(a[m, k], in0)
                    tx1 = ttl.copy(b[k, n], in1)
                    tx0.wait()
                    tx1.wait()
                    cb_in0.push()
                    cb_in1.push()

        @ttl.compute()
        def mm():
            for _ in output_tile_range(ttl.core(dims=2)):
                out = cb_out.reserve()
                for _ in range(Kt):
                    in0 = cb_in0.wait()
                    in1 = cb_in1.wait()
                    out.store(in0 @ in1, acc=True)
                    cb_in0.pop()
                    cb_in1.pop()
                cb_out.push()

        @ttl.datamovement()
        def writer():
            for tile_id in output_tile_range(ttl.core(dims=2)):
                m, n = divmod(tile_id, Nt)
                out = cb_out.wait()
                ttl.copy(out, output[m, n]).wait()
                cb_out.pop()

        return ttl.Program(mm, reader, writer)(a, b, output)

    matmul_kernel(a, b, output)
    return num_cores, num_output_tiles_per_core_group_1, num_output_tiles_per_core_group_2


@pytest.mark.parametrize("grid,expect", [
    (None, (20, 1, 0)),                      # the device's 8x8 grid: 20 cores, one tile each
    (ttnn.CoreCoord(3, 2), (6, 4, 3)),       # 20 tiles over 6 cores: 2 get 4, 4 get 3
], ids=["device_grid", "3x2"])
def test_metal_style_matmul_multi_core(grid, expect):
    device = ttnn.open_device(device_id=0)
    compute_grid = grid or device.compute_with_storage_grid_size()
    a = ttnn.rand((128, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                  low=-1, high=1, seed=31)
    b = ttnn.rand((64, 160), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                  low=-1, high=1, seed=32)
    output = ttnn.zeros((128, 160), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
    assert matmul_multi_core(a, b, output, compute_grid) == expect
    check_matmul(a, b, output, ttnn.matmul(a, b), k_steps=2)
    ttnn.close_device(device)


# --- broadcast: a column (N, 1) across rows, a scalar (1, 1) everywhere ---------------------
@ttl.kernel(grid=(1, 1))
def add_column(a: ttnn.Tensor, col: ttnn.Tensor, y: ttnn.Tensor):
    row_tiles = a.shape[0] // TILE_SIZE
    col_tiles = a.shape[1] // TILE_SIZE

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(1, col_tiles), buffer_factor=2)
    c_dfb = ttl.make_dataflow_buffer_like(col, shape=(1, 1), buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(1, col_tiles), buffer_factor=2)

    @ttl.compute()
    def compute():
        for _ in range(row_tiles):
            with a_dfb.wait() as a_blk, c_dfb.wait() as c_blk, y_dfb.reserve() as y_blk:
                y_blk.store(a_blk + ttl.math.broadcast(c_blk, dims=[1]))

    @ttl.datamovement()
    def read():
        for r in range(row_tiles):
            with a_dfb.reserve() as a_blk, c_dfb.reserve() as c_blk:
                tx_a = ttl.copy(a[r, 0:col_tiles], a_blk)
                tx_c = ttl.copy(col[r, 0], c_blk)
                tx_a.wait()
                tx_c.wait()

    @ttl.datamovement()
    def write():
        for r in range(row_tiles):
            with y_dfb.wait() as y_blk:
                ttl.copy(y_blk, y[r, 0:col_tiles]).wait()


@ttl.kernel(grid=(1, 1))
def scale_by_scalar(a: ttnn.Tensor, s: ttnn.Tensor, y: ttnn.Tensor):
    row_tiles = a.shape[0] // TILE_SIZE
    col_tiles = a.shape[1] // TILE_SIZE

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(1, col_tiles), buffer_factor=2)
    s_dfb = ttl.make_dataflow_buffer_like(s, shape=(1, 1), buffer_factor=1)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(1, col_tiles), buffer_factor=2)

    @ttl.compute()
    def compute():
        with s_dfb.wait() as s_blk:
            for _ in range(row_tiles):
                with a_dfb.wait() as a_blk, y_dfb.reserve() as y_blk:
                    y_blk.store(a_blk * ttl.math.broadcast(s_blk, dims=[0, 1]))

    @ttl.datamovement()
    def read():
        with s_dfb.reserve() as s_blk:
            ttl.copy(s[0, 0], s_blk).wait()
        for r in range(row_tiles):
            with a_dfb.reserve() as a_blk:
                ttl.copy(a[r, 0:col_tiles], a_blk).wait()

    @ttl.datamovement()
    def write():
        for r in range(row_tiles):
            with y_dfb.wait() as y_blk:
                ttl.copy(y_blk, y[r, 0:col_tiles]).wait()


@ttl.kernel(grid=(1, 1))
def add_column_like(a: ttnn.Tensor, col: ttnn.Tensor, y: ttnn.Tensor):
    row_tiles = a.shape[0] // TILE_SIZE
    col_tiles = a.shape[1] // TILE_SIZE

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(1, col_tiles), buffer_factor=2)
    c_dfb = ttl.make_dataflow_buffer_like(col, shape=(1, 1), buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(1, col_tiles), buffer_factor=2)

    @ttl.compute()
    def compute():
        for _ in range(row_tiles):
            with a_dfb.wait() as a_blk, c_dfb.wait() as c_blk, y_dfb.reserve() as y_blk:
                # TT-LANG's three-argument form: broadcast c to a's shape along dims
                y_blk.store(a_blk + ttl.math.broadcast(c_blk, a_blk, dims=[1]))

    @ttl.datamovement()
    def read():
        for r in range(row_tiles):
            with a_dfb.reserve() as a_blk, c_dfb.reserve() as c_blk:
                tx_a = ttl.copy(a[r, 0:col_tiles], a_blk)
                tx_c = ttl.copy(col[r, 0], c_blk)
                tx_a.wait()
                tx_c.wait()

    @ttl.datamovement()
    def write():
        for r in range(row_tiles):
            with y_dfb.wait() as y_blk:
                ttl.copy(y_blk, y[r, 0:col_tiles]).wait()


def broadcast_main(kernel, shape, small_shape):
    device = ttnn.open_device(device_id=0)
    a = ttnn.rand(shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                  memory_config=ttnn.DRAM_MEMORY_CONFIG, low=-2, high=2, seed=41)
    small = ttnn.rand(small_shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                      memory_config=ttnn.DRAM_MEMORY_CONFIG, low=-2, high=2, seed=42)
    y = ttnn.empty(shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                   memory_config=ttnn.DRAM_MEMORY_CONFIG)
    kernel(a, small, y)
    ttnn.close_device(device)
    return a, small, y


@pytest.mark.parametrize("n", [64, 2048])
def test_broadcast_column(n):
    """A (N, 1) column is stored as (N, 32) with its values in column 0: the kernel reads one
    tile per tile row and spreads column 0 across the row."""
    a, col, y = broadcast_main(add_column, (n, 64), (n, 1))
    assert col.padded_shape == (n, 32)
    av, cv = f64(a), f64(col)
    # the column reaches the broadcast through a source register (TF32, exact for bf16)
    tt.assert_close(f64(y), av + cv, "bf16", ops=1)
    assert np.array_equal(ttnn.to_numpy(y), ttnn.to_numpy(a + col))


def test_broadcast_scalar():
    a, s, y = broadcast_main(scale_by_scalar, (96, 64), (1, 1))
    assert s.shape == (1, 1) and s.padded_shape == (32, 32)
    tt.assert_close(f64(y), f64(a) * f64(s), "bf16", ops=1)
    assert np.array_equal(ttnn.to_numpy(y), ttnn.to_numpy(ttnn.multiply(a, s)))


@pytest.mark.xfail(not BROADCAST_LIKE, strict=True, raises=TypeError,
                   reason="the three-argument ttl.math.broadcast(x, like, dims=...): "
                          "\"broadcast() got multiple values for argument 'dims'\"")
def test_broadcast_column_three_argument_form():
    a, col, y = broadcast_main(add_column_like, (64, 64), (64, 1))
    tt.assert_close(f64(y), f64(a) + f64(col), "bf16", ops=1)
