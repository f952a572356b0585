"""ttlang.ttnn, the TT-NN host module for TT-Lang programs: tensors, padding, host ops
(the float64 golden, rounded to the dtype), conversions, cores and work splitting."""
import sys

import ml_dtypes
import numpy as np
import pytest

import ttlang as ttl
import ttlang.ttnn as ttnn
from ttlang import testing as tt
from ttsim import formats


@pytest.fixture(autouse=True)
def _fresh_chip():
    """A fresh wormhole_b0 for each test; the device before it comes back after."""
    before = ttl.device()
    ttl.set_device("wormhole_b0")
    yield
    ttl.set_device(before)


def q(x, fmt):
    return formats.quantize(np.asarray(x, np.float32), fmt)


# --- constants, dtypes, layouts, memory configs ----------------------------------------------
def test_constants_and_names():
    assert ttnn.TILE_SIZE == 32 and ttnn.TILE_SHAPE == (32, 32)
    # ttnn's names equal ttl's, so either module's calls take them
    assert ttnn.bfloat16 == ttl.bfloat16 and ttnn.float32 == ttl.float32 and ttnn.bfloat8_b == ttl.bfloat8_b
    assert ttnn.TILE_LAYOUT == ttl.TILE_LAYOUT and ttnn.ROW_MAJOR_LAYOUT == ttl.ROW_MAJOR_LAYOUT
    assert ttnn.DRAM_MEMORY_CONFIG == ttl.DRAM_MEMORY_CONFIG and ttnn.L1_MEMORY_CONFIG == ttl.L1_MEMORY_CONFIG
    assert ttnn.L1_MEMORY_CONFIG.buffer_type is ttnn.BufferType.L1
    assert repr(ttnn.bfloat16) == "DataType.BFLOAT16"
    x = ttl.from_numpy(np.ones((32, 32), np.float32), dtype=ttnn.bfloat8_b, memory_config=ttnn.L1_MEMORY_CONFIG)
    assert x.dtype == "bfp8_b"


def test_memory_config_objects():
    m = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.INTERLEAVED, ttnn.BufferType.L1)
    assert m == ttnn.L1_MEMORY_CONFIG
    t = ttnn.zeros((32, 32), memory_config=m)
    assert t.memory_config() == ttnn.L1_MEMORY_CONFIG and t.device_tensor.memory == "l1"
    with pytest.raises(NotImplementedError, match="interleaved"):
        ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1)


def test_device():
    d = ttnn.open_device(device_id=0)
    assert d.sim is ttl.device()
    assert d.compute_with_storage_grid_size() == ttnn.CoreCoord(8, 8)
    assert d.arch() == "wormhole_b0" and d.id() == 0
    t = ttnn.ones((32, 32), device=d)
    assert t.device() == d
    ttnn.close_device(d)
    with ttnn.manage_device(device_id=0) as d2:
        assert d2.sim is ttl.device()
    b = ttnn.open_device(device_id=0, sysdesc="blackhole")
    assert ttl.device() is b.sim and b.compute_with_storage_grid_size() != (8, 8)


# --- creation, dtypes and padding ----------------------------------------------------------
@pytest.mark.parametrize("dtype", [ttnn.bfloat16, ttnn.float32, ttnn.bfloat8_b])
def test_creation_functions_round_to_the_dtype(dtype):
    d = ttnn.open_device(device_id=0)
    kw = dict(dtype=dtype, layout=ttnn.TILE_LAYOUT, device=d, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    assert np.array_equal(ttnn.to_numpy(ttnn.zeros((64, 32), **kw)), np.zeros((64, 32)))
    assert np.array_equal(ttnn.to_numpy(ttnn.ones((64, 32), **kw)), np.ones((64, 32)))
    assert np.array_equal(ttnn.to_numpy(ttnn.full((32, 64), 0.1, **kw)), q(np.full((32, 64), 0.1), dtype))
    assert ttnn.empty((32, 96), **kw).shape == (32, 96)
    r = ttnn.rand((64, 64), **kw, seed=3)
    v = np.random.default_rng(3).uniform(0, 1, (64, 64)).astype(np.float32)
    assert r.dtype is dtype and np.array_equal(ttnn.to_numpy(r), q(v, dtype))
    n = ttnn.randn((32, 32), **kw, seed=4)
    assert np.array_equal(ttnn.to_numpy(n), q(np.random.default_rng(4).standard_normal((32, 32)), dtype))
    assert ttnn.rand((32, 32), **kw, low=2, high=3, seed=1).to_numpy().min() >= 2
    for like in (ttnn.zeros_like(r), ttnn.ones_like(r), ttnn.full_like(r, 2.0), ttnn.empty_like(r)):
        assert like.shape == r.shape and like.dtype is dtype


@pytest.mark.parametrize("shape,padded", [
    ((2048, 1), (2048, 32)), ((1, 1), (32, 32)), ((50, 70), (64, 96)), ((2, 3, 33, 5), (2, 3, 64, 32)),
    ((7,), (32, 32)), ((), (32, 32)),
])
def test_padding_keeps_the_logical_shape(shape, padded):
    rng = np.random.default_rng(0)
    v = rng.standard_normal(shape).astype(np.float32)
    t = ttnn.from_numpy(v, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)
    assert t.shape == shape and t.padded_shape == padded and t.logical_shape() == shape
    assert t.device_tensor.shape == padded
    got = ttnn.to_numpy(t)
    assert got.shape == shape and np.array_equal(got, q(v, "bf16"))
    # the padding is zeros, as TT-NN's tile layout pads
    stored = t.device_tensor.to_numpy()
    assert np.count_nonzero(stored) == np.count_nonzero(q(v, "bf16"))


def test_pad_value():
    t = ttnn.from_numpy(np.ones((2, 3), np.float32), layout=ttnn.TILE_LAYOUT, pad_value=-1.0)
    stored = t.device_tensor.to_numpy()
    assert (stored[:2, :3] == 1).all() and (stored[2:] == -1).all() and (stored[:, 3:] == -1).all()


def test_shape_is_padded_inside_a_kernel():
    col = ttnn.rand((64, 1), seed=1)
    out = ttnn.empty((64, 1))
    seen = {}

    @ttl.kernel(grid=(1, 1))
    def copy_column(col, out):
        seen["body"] = tuple(col.shape)
        buf = ttl.make_dataflow_buffer_like(col, shape=(1, 1), buffer_factor=2)

        @ttl.datamovement()
        def read():
            seen["thread"] = tuple(col.shape)
            for r in range(col.shape[0] // ttnn.TILE_SIZE):
                with buf.reserve() as blk:
                    ttl.copy(col[r, 0], blk).wait()

        @ttl.datamovement()
        def write():
            for r in range(out.shape[0] // ttnn.TILE_SIZE):
                with buf.wait() as blk:
                    ttl.copy(blk, out[r, 0]).wait()

    copy_column(col, out)
    assert seen == {"body": (64, 32), "thread": (64, 32)}
    assert col.shape == (64, 1)
    assert np.array_equal(ttnn.to_numpy(out), ttnn.to_numpy(col))


def test_from_numpy_infers_the_dtype():
    assert ttnn.from_numpy(np.zeros((4, 4), np.float32)).dtype is ttnn.float32
    assert ttnn.from_numpy(np.zeros((4, 4), np.float64)).dtype is ttnn.float32
    assert ttnn.from_numpy(np.zeros((4, 4), ml_dtypes.bfloat16)).dtype is ttnn.bfloat16
    assert ttnn.from_numpy(np.zeros((4, 4), np.int32), dtype=ttnn.bfloat16).dtype is ttnn.bfloat16
    with pytest.raises(TypeError, match="pass dtype="):
        ttnn.from_numpy(np.zeros((4, 4), np.int32))
    t = ttnn.Tensor([[1.0, 2.0], [3.0, 4.0]], ttnn.bfloat16)
    assert np.array_equal(np.asarray(t), [[1, 2], [3, 4]])


def test_row_major_tensors_stay_on_the_host():
    v = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    t = ttnn.from_numpy(v, dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT)
    assert t.layout is ttnn.ROW_MAJOR_LAYOUT and t.padded_shape == (2, 3)
    assert np.array_equal(ttnn.to_numpy(t), q(v, "bf16"))
    assert np.array_equal(ttnn.to_numpy(t + t), q(2 * q(v, "bf16"), "bf16"))
    tiled = ttnn.to_layout(t, ttnn.TILE_LAYOUT)
    assert tiled.layout is ttnn.TILE_LAYOUT and tiled.padded_shape == (32, 32)
    assert np.array_equal(ttnn.to_numpy(tiled), ttnn.to_numpy(t))
    with pytest.raises(ttl.CompileError, match="TILE_LAYOUT"):
        t[0, 0]
    with pytest.raises(ValueError, match="TILE_LAYOUT"):
        ttnn.zeros((32, 32), dtype=ttnn.bfloat8_b, layout=ttnn.ROW_MAJOR_LAYOUT)


def test_dtype_and_memory_conversions():
    t = ttnn.rand((40, 40), dtype=ttnn.float32, seed=2)
    b = ttnn.typecast(t, ttnn.bfloat16)
    assert b.dtype is ttnn.bfloat16 and np.array_equal(ttnn.to_numpy(b), q(ttnn.to_numpy(t), "bf16"))
    l1 = ttnn.to_memory_config(t, ttnn.L1_MEMORY_CONFIG)
    assert l1.device_tensor.memory == "l1" and np.array_equal(ttnn.to_numpy(l1), ttnn.to_numpy(t))
    assert ttnn.to_device(t, ttnn.open_device(device_id=0)).shape == (40, 40)
    assert ttnn.from_device(t) is t


# --- host ops: the golden ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [ttnn.bfloat16, ttnn.float32, ttnn.bfloat8_b])
def test_elementwise_host_ops_are_float64_rounded_once(dtype):
    a = ttnn.randn((64, 64), dtype=dtype, seed=5)
    b = ttnn.randn((64, 64), dtype=dtype, seed=6)
    av, bv = ttnn.to_numpy(a).astype(np.float64), ttnn.to_numpy(b).astype(np.float64)
    for got, ref in [(ttnn.add(a, b), av + bv), (a + b, av + bv), (ttnn.subtract(a, b), av - bv),
                     (a - b, av - bv), (ttnn.multiply(a, b), av * bv), (a * b, av * bv),
                     (a + 1.5, av + 1.5), (2 * a, 2 * av), (1 - a, 1 - av), (-a, -av),
                     (a / 4, av / 4)]:
        assert got.dtype is dtype and got.shape == (64, 64)
        assert np.array_equal(ttnn.to_numpy(got), q(ref.astype(np.float32), dtype))


def test_result_dtype_and_output_tensor():
    a = ttnn.rand((32, 32), dtype=ttnn.float32, seed=1)
    b = ttnn.rand((32, 32), dtype=ttnn.bfloat16, seed=2)
    assert ttnn.add(a, b).dtype is ttnn.float32 and ttnn.add(b, a).dtype is ttnn.bfloat16
    assert ttnn.add(a, b, dtype=ttnn.bfloat8_b).dtype is ttnn.bfloat8_b
    out = ttnn.empty((32, 32), dtype=ttnn.bfloat16)
    assert ttnn.multiply(a, b, output_tensor=out) is out
    ref = ttnn.to_numpy(a).astype(np.float64) * ttnn.to_numpy(b)
    assert np.array_equal(ttnn.to_numpy(out), q(ref.astype(np.float32), "bf16"))


def test_broadcasting_host_ops():
    a = ttnn.rand((64, 96), seed=1)
    col = ttnn.rand((64, 1), seed=2)
    row = ttnn.rand((1, 96), seed=3)
    s = ttnn.full((1, 1), 3.0)
    av = ttnn.to_numpy(a).astype(np.float64)
    for got, ref in [(a + col, av + ttnn.to_numpy(col)), (a * row, av * ttnn.to_numpy(row)),
                     (ttnn.multiply(a, s), av * 3), (col * row, ttnn.to_numpy(col).astype(np.float64)
                                                     * ttnn.to_numpy(row))]:
        assert got.shape == ref.shape
        assert np.array_equal(ttnn.to_numpy(got), q(ref.astype(np.float32), "bf16"))


@pytest.mark.parametrize("dtype", [ttnn.bfloat16, ttnn.float32])
def test_matmul(dtype):
    a = ttnn.randn((64, 96), dtype=dtype, seed=7)
    b = ttnn.randn((96, 40), dtype=dtype, seed=8)
    ref = ttnn.to_numpy(a).astype(np.float64) @ ttnn.to_numpy(b).astype(np.float64)
    for got in (ttnn.matmul(a, b), a @ b):
        assert got.shape == (64, 40) and got.padded_shape == (64, 64)
        assert np.array_equal(ttnn.to_numpy(got), q(ref.astype(np.float32), dtype))
    bt = ttnn.transpose(b, 0, 1)
    assert np.array_equal(ttnn.to_numpy(ttnn.matmul(a, bt, transpose_b=True)), ttnn.to_numpy(a @ b))
    # batched
    x = ttnn.randn((2, 32, 64), seed=9)
    y = ttnn.randn((64, 32), seed=10)
    assert (x @ y).shape == (2, 32, 32)


def test_repeat_squeeze_reshape():
    c = ttnn.rand((1, 1), seed=1)
    r = ttnn.repeat(c, (64, 3))
    assert r.shape == (64, 3) and (ttnn.to_numpy(r) == ttnn.to_numpy(c)[0, 0]).all()
    x = ttnn.rand((1, 4, 1, 32), seed=2)
    assert ttnn.squeeze(x).shape == (4, 32)
    assert ttnn.squeeze(x, 0).shape == (4, 1, 32)
    assert ttnn.squeeze(x, 1).shape == (1, 4, 1, 32)        # not of size 1: kept, as torch does
    assert ttnn.squeeze(ttnn.ones((1, 1))).shape == ()
    assert ttnn.unsqueeze(ttnn.squeeze(x), 0).shape == (1, 4, 32)
    assert ttnn.reshape(x, (4, 32)).shape == (4, 32)
    assert ttnn.permute(x, (3, 1, 2, 0)).shape == (32, 4, 1, 1)
    assert np.array_equal(ttnn.to_numpy(ttnn.squeeze(x)), ttnn.to_numpy(x).reshape(4, 32))


def test_ttl_tensors_work_with_ttnn_calls():
    t = ttl.from_numpy(np.full((32, 64), 2.0, np.float32))
    assert np.array_equal(ttnn.to_numpy(t + ttnn.ones((32, 64))), np.full((32, 64), 3.0))
    assert ttl.to_numpy(ttnn.ones((3, 3))).shape == (3, 3)


def test_unsupported_names_say_what_is_there():
    with pytest.raises(AttributeError, match="has no 'softmax'.*split_work_to_cores"):
        ttnn.softmax
    with pytest.raises(AttributeError, match="bfloat16, ttnn.float32 or ttnn.bfloat8_b"):
        ttnn.int32
    assert not hasattr(ttnn, "conv2d")


# --- torch -------------------------------------------------------------------------------
def test_to_torch_without_torch_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)       # import torch now raises ImportError
    t = ttnn.ones((32, 32))
    with pytest.raises(ImportError, match=r"pip install -e '\.\[torch\]'"):
        ttnn.to_torch(t)
    assert ttnn.to_numpy(t).sum() == 32 * 32


def test_torch_round_trip():
    torch = pytest.importorskip("torch")
    d = ttnn.open_device(device_id=0)
    x = torch.randn((50, 3), dtype=torch.bfloat16)
    t = ttnn.from_torch(x, layout=ttnn.TILE_LAYOUT, device=d, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    assert t.dtype is ttnn.bfloat16 and t.padded_shape == (64, 32)
    back = ttnn.to_torch(t)
    assert back.dtype == torch.bfloat16 and back.shape == (50, 3) and torch.equal(back, x)
    f = ttnn.from_torch(torch.randn(32, 32), dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT, device=d)
    assert ttnn.to_torch(f).dtype == torch.float32
    b8 = ttnn.from_torch(torch.randn(32, 32), dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT, device=d)
    assert ttnn.to_torch(b8).dtype == torch.float32
    assert ttnn.to_torch(b8, dtype=torch.bfloat16).dtype == torch.bfloat16
    # golden against torch: the sum of bf16 tensors rounded once, as torch rounds it
    y = torch.randn((50, 3), dtype=torch.bfloat16)
    s = ttnn.to_torch(ttnn.add(t, ttnn.from_torch(y, layout=ttnn.TILE_LAYOUT, device=d)))
    assert torch.equal(s, x + y) and torch.allclose(s, x + y)
    m = ttnn.to_torch(ttnn.from_torch(x, device=d) @ ttnn.from_torch(y.T.contiguous(), device=d))
    tt.assert_close(m.float().numpy(), x.double().numpy() @ y.double().numpy().T, "bf16",
                    scale=np.abs(x.double().numpy()) @ np.abs(y.double().numpy().T))
    with pytest.raises(TypeError, match="pass dtype="):
        ttnn.from_torch(torch.zeros(4, 4, dtype=torch.int32))
    assert ttnn.from_torch(torch.zeros(4, 4, dtype=torch.int32), dtype=ttnn.float32).shape == (4, 4)


# --- cores and split_work_to_cores -----------------------------------------------------------
def cores(crs):
    return sorted(ttnn.corerange_to_cores(crs))


def test_core_types():
    c = ttnn.CoreCoord(2, 3)
    assert c.x == 2 and c.y == 3 and c == (2, 3) and tuple(c) == (2, 3)
    r = ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(1, 2))
    assert r.num_cores() == 6 and r.grid_size() == (2, 3)
    assert r.contains((1, 2)) and not r.contains(ttnn.CoreCoord(2, 0))
    s = ttnn.CoreRangeSet({r, ttnn.CoreRange((3, 0), (3, 0))})
    assert s.num_cores() == 7 and s.contains((3, 0)) and (1, 1) in s
    assert s.bounding_box() == ttnn.CoreRange((0, 0), (3, 2))
    with pytest.raises(ValueError, match="overlaps"):
        ttnn.CoreRangeSet([r, ttnn.CoreRange((1, 1), (2, 2))])
    assert ttnn.corerange_to_cores(r)[:3] == [(0, 0), (0, 1), (0, 2)]
    assert ttnn.corerange_to_cores(r, row_wise=True)[:3] == [(0, 0), (1, 0), (0, 1)]


def test_split_work_to_cores_even():
    n, all_cores, g1, g2, u1, u2 = ttnn.split_work_to_cores(ttnn.CoreCoord(8, 8), 128)
    assert (n, u1, u2) == (64, 2, 0) and all_cores == g1 and g1.num_cores() == 64 and g2.empty()


def test_split_work_to_cores_fewer_units_than_cores():
    n, all_cores, g1, g2, u1, u2 = ttnn.split_work_to_cores(ttnn.CoreCoord(8, 8), 20)
    assert (n, u1, u2) == (20, 1, 0) and g2.num_cores() == 0
    # column by column: x = 0 and 1 whole (16 cores), then (2, 0)..(2, 3)
    assert cores(all_cores) == sorted([(x, y) for x in range(2) for y in range(8)] +
                                      [(2, y) for y in range(4)])
    assert all_cores.ranges() == [ttnn.CoreRange((0, 0), (1, 7)), ttnn.CoreRange((2, 0), (2, 3))]


def test_split_work_to_cores_uneven():
    """tt-metal: the first units % cores cores (in column-major order) take one unit more."""
    n, all_cores, g1, g2, u1, u2 = ttnn.split_work_to_cores(ttnn.CoreCoord(3, 2), 20)
    assert (n, u1, u2) == (6, 4, 3)
    assert cores(g1) == [(0, 0), (0, 1)]
    assert cores(g2) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert g1.num_cores() * u1 + g2.num_cores() * u2 == 20
    n, all_cores, g1, g2, u1, u2 = ttnn.split_work_to_cores((3, 2), 20, row_wise=True)
    assert cores(g1) == [(0, 0), (1, 0)] and cores(g2) == [(0, 1), (1, 1), (2, 0), (2, 1)]
    # group 2 starts mid-column: a partial column, then whole ones
    n, all_cores, g1, g2, u1, u2 = ttnn.split_work_to_cores(ttnn.CoreCoord(4, 4), 35)
    assert (n, u1, u2) == (16, 3, 2)
    assert g1.ranges() == [ttnn.CoreRange((0, 0), (0, 2))]
    assert g2.ranges() == [ttnn.CoreRange((0, 3), (0, 3)), ttnn.CoreRange((1, 0), (3, 3))]


@pytest.mark.parametrize("gx,gy,units", [(1, 1, 5), (8, 8, 64), (8, 8, 65), (5, 3, 7), (5, 3, 100), (2, 7, 0)])
@pytest.mark.parametrize("row_wise", [False, True])
def test_split_work_to_cores_covers_the_work_once(gx, gy, units, row_wise):
    n, all_cores, g1, g2, u1, u2 = ttnn.split_work_to_cores(ttnn.CoreCoord(gx, gy), units, row_wise)
    assert n == min(units, gx * gy) == all_cores.num_cores()
    assert g1.num_cores() * u1 + g2.num_cores() * u2 == units
    assert set(cores(g1)).isdisjoint(cores(g2)) and sorted(cores(g1) + cores(g2)) == cores(all_cores)
    assert u2 == 0 or u1 == u2 + 1


def test_split_work_to_cores_on_a_core_range_set():
    crs = ttnn.CoreRangeSet([ttnn.CoreRange((0, 0), (1, 1)), ttnn.CoreRange((4, 4), (4, 5))])
    n, all_cores, g1, g2, u1, u2 = ttnn.split_work_to_cores(crs, 9)
    assert (n, u1, u2) == (6, 2, 1)
    assert ttnn.corerange_to_cores(g1) == [(0, 0), (0, 1), (1, 0)]
    assert ttnn.corerange_to_cores(g2) == [(1, 1), (4, 4), (4, 5)]
    assert ttnn.num_cores_to_corerangeset(10, ttnn.CoreCoord(4, 4)).ranges() == \
        [ttnn.CoreRange((0, 0), (1, 3)), ttnn.CoreRange((2, 0), (2, 1))]


@pytest.mark.parametrize("other", [None, "x", object()])
def test_host_ops_refuse_operands_that_are_not_numbers(other):
    """a + None used to give a tensor of NaN, silently; 'x' a ValueError from float()."""
    a = ttnn.from_numpy(np.ones((32, 32), np.float32), dtype=ttnn.bfloat16)
    with pytest.raises(TypeError, match="a ttnn op takes tensors, numbers or arrays of numbers"):
        ttnn.add(a, other)
    with pytest.raises(TypeError, match="a ttnn op takes tensors"):
        a * other


@pytest.mark.parametrize("shape", [(32.5, 32), (32.0, 32), (True, 32)])
def test_creation_shapes_are_whole_numbers(shape):
    """(32.5, 32) used to be cut to (32, 32)."""
    with pytest.raises(ValueError, match="dims are whole numbers"):
        ttnn.zeros(shape, dtype=ttnn.bfloat16)


def test_volume_and_compute_kernel_configs():
    t = ttnn.rand((2, 50, 33), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, seed=1)
    assert t.volume() == 2 * 50 * 33                      # the logical shape, not the padded one
    cfg = ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.HiFi2,
                                           math_approx_mode=True, fp32_dest_acc_en=False,
                                           packer_l1_acc=True)
    assert cfg.math_fidelity == "HiFi2" and cfg.packer_l1_acc
    assert ttnn.init_device_compute_kernel_config(None, cfg) is cfg
    assert ttnn.init_device_compute_kernel_config(None).math_fidelity == ttnn.MathFidelity.LoFi
    a = ttnn.rand((64, 64), dtype=ttnn.bfloat16, seed=2)
    b = ttnn.rand((64, 64), dtype=ttnn.bfloat16, seed=3)
    assert np.array_equal(ttnn.to_numpy(ttnn.matmul(a, b, compute_kernel_config=cfg)),
                          ttnn.to_numpy(ttnn.matmul(a, b)))

    @ttl.kernel(grid=(1, 1), math_fidelity=ttnn.MathFidelity.LoFi)
    def k(x: ttnn.Tensor, y: ttnn.Tensor):
        xb = ttl.make_dataflow_buffer_like(x, shape=(1, 1), buffer_factor=2)
        yb = ttl.make_dataflow_buffer_like(y, shape=(1, 1), buffer_factor=2)

        @ttl.datamovement()
        def rd():
            with xb.reserve() as blk:
                ttl.copy(x[0, 0], blk).wait()

        @ttl.compute()
        def cp():
            with xb.wait() as u, yb.reserve() as v:
                v.store(u @ u)

        @ttl.datamovement()
        def wr():
            with yb.wait() as blk:
                ttl.copy(blk, y[0, 0]).wait()

    y = ttnn.empty((32, 32), dtype=ttnn.bfloat16)
    k(a, y)
    assert list(k.numerics()["fidelity"]) == ["LoFi"]          # the kernel ran at the given fidelity
    with pytest.raises(ValueError):
        ttnn.WormholeComputeKernelConfig(math_fidelity="HiFi9")
