"""ttlang.ttnn: the part of TT-NN's host module that TT-Lang programs use, over ttsim tensors.

TT-Lang programs are written against two modules, `ttl` and `ttnn`. With

    import ttlang as ttl
    import ttlang.ttnn as ttnn

in place of `import ttl` and `import ttnn`, the rest of such a program runs as written: the
tensors it makes (`ttnn.from_torch`, `ttnn.rand`, `ttnn.zeros`, ...) live in the simulated
chip's DRAM (or L1), a `@ttl.kernel` takes them as they are, and `ttnn.to_torch` (or
`ttnn.to_numpy`) reads the results back.

- Tile layout pads as TT-NN's does: a (2048, 1) tensor is stored as (2048, 32), its padding
  zeros (or `pad_value`); `x.shape` is the logical shape on the host and the padded one
  inside a kernel (so tile counts come out whole), `x.padded_shape` is always the padded
  one, and `to_torch` / `to_numpy` return the logical shape.
- Host ops (`ttnn.add`, `multiply`, `subtract`, `divide`, `matmul`, `repeat`, `squeeze`,
  ..., and `+ - * / @` on tensors) are the golden, not simulated: float64 on the host from
  the stored values, then rounded to the result's dtype as the chip would store it.
- torch is optional (`pip install -e '.[torch]'`): without it everything but `to_torch`
  works, and numpy arrays go in through `from_numpy` (or `from_torch`, which takes them too).
- `split_work_to_cores` follows tt-metal (tt_metal/common/work_split.cpp); see its docstring.
"""
from __future__ import annotations

import contextlib
import enum
import sys
from typing import NamedTuple

import greenlet
import numpy as np

import ttsim
from ttsim import formats as _formats

from . import tensor as _host
from .errors import CompileError

TILE_SIZE = 32
TILE_SHAPE = (32, 32)
TILE_HW = TILE_SIZE * TILE_SIZE


# --- dtypes, layouts, memory configs --------------------------------------------------------
# String enums whose values are ttlang's own names, so `ttnn.bfloat16 == ttl.bfloat16` and
# every ttl call takes them.
class DataType(enum.StrEnum):
    BFLOAT16 = "bf16"
    FLOAT32 = "fp32"
    BFLOAT8_B = "bfp8_b"

    def __repr__(self):
        return f"DataType.{self.name}"


bfloat16, float32, bfloat8_b = DataType.BFLOAT16, DataType.FLOAT32, DataType.BFLOAT8_B


class Layout(enum.StrEnum):
    TILE = "tile"
    ROW_MAJOR = "row_major"

    def __repr__(self):
        return f"Layout.{self.name}"


TILE_LAYOUT, ROW_MAJOR_LAYOUT = Layout.TILE, Layout.ROW_MAJOR


class BufferType(enum.StrEnum):
    DRAM = "dram"
    L1 = "l1"

    def __repr__(self):
        return f"BufferType.{self.name}"


class TensorMemoryLayout(enum.StrEnum):
    INTERLEAVED = "interleaved"
    HEIGHT_SHARDED = "height_sharded"
    WIDTH_SHARDED = "width_sharded"
    BLOCK_SHARDED = "block_sharded"

    def __repr__(self):
        return f"TensorMemoryLayout.{self.name}"


class MemoryConfig(str):
    """An interleaved buffer in DRAM or L1. A str ("dram" or "l1"), so ttl calls take it."""

    def __new__(cls, memory_layout=TensorMemoryLayout.INTERLEAVED, buffer_type=BufferType.DRAM,
                shard_spec=None):
        memory_layout, buffer_type = TensorMemoryLayout(memory_layout), BufferType(buffer_type)
        if memory_layout is not TensorMemoryLayout.INTERLEAVED or shard_spec is not None:
            raise NotImplementedError(
                f"MemoryConfig({memory_layout!r}): ttsim tensors are interleaved page by page over "
                "DRAM banks or L1s; use ttnn.DRAM_MEMORY_CONFIG or ttnn.L1_MEMORY_CONFIG")
        self = super().__new__(cls, buffer_type.value)
        self.memory_layout, self.buffer_type, self.shard_spec = memory_layout, buffer_type, None
        return self

    def is_sharded(self):
        return False

    def __repr__(self):
        return f"MemoryConfig(memory_layout={self.memory_layout!r}, buffer_type={self.buffer_type!r})"


DRAM_MEMORY_CONFIG = MemoryConfig(buffer_type=BufferType.DRAM)
L1_MEMORY_CONFIG = MemoryConfig(buffer_type=BufferType.L1)


def _dtype(d, default=bfloat16):
    if d is None:
        return default
    if isinstance(d, DataType):
        return d
    try:
        return DataType(_formats.parse_format(d).value)
    except Exception:
        raise TypeError(f"dtype {d!r}: ttsim tensors are ttnn.bfloat16, ttnn.float32 or "
                        "ttnn.bfloat8_b") from None


def _layout(layout):
    if layout is None:
        # TT-NN's creation functions default to ROW_MAJOR_LAYOUT; here TILE_LAYOUT, the only
        # layout a kernel reads
        return TILE_LAYOUT
    try:
        return Layout(layout)
    except ValueError:
        raise ValueError(f"layout {layout!r}: use ttnn.TILE_LAYOUT or ttnn.ROW_MAJOR_LAYOUT") from None


def _memory(mem):
    if mem is None:
        return DRAM_MEMORY_CONFIG
    if isinstance(mem, MemoryConfig):
        return mem
    if mem in (BufferType.DRAM, BufferType.L1):
        return MemoryConfig(buffer_type=mem)
    raise ValueError(f"memory_config {mem!r}: use ttnn.DRAM_MEMORY_CONFIG or ttnn.L1_MEMORY_CONFIG")


class Shape(tuple):
    """TT-NN's Shape: a tuple of ints that also compares equal to a list."""

    def __new__(cls, dims=()):
        return super().__new__(cls, (int(d) for d in dims))

    @property
    def rank(self):
        return len(self)

    def __eq__(self, other):
        if isinstance(other, list):
            other = tuple(other)
        return tuple.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self):
        return f"Shape({list(self)})"


# --- the device --------------------------------------------------------------------------
class Device:
    """TT-NN's device handle on the simulated chip (a ttsim.Device; other attributes pass on)."""

    def __init__(self, dev, device_id=0):
        self._dev, self._id = dev, device_id

    @property
    def sim(self):
        """The ttsim.Device."""
        return self._dev

    def id(self):
        return self._id

    def arch(self):
        return self._dev.sd.name

    def compute_with_storage_grid_size(self):
        return CoreCoord(*self._dev.sd.worker_grid())

    def dram_grid_size(self):
        return CoreCoord(len(self._dev.dram), 1)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._dev, name)

    def __eq__(self, other):
        return isinstance(other, Device) and other._dev is self._dev

    __hash__ = object.__hash__

    def __repr__(self):
        return f"ttnn.Device(id={self._id}, {self._dev.sd.name})"


def open_device(device_id=0, sysdesc=None, **options):
    """The simulated chip ttlang kernels run on (`ttl.device()`; `sysdesc=` picks another).

    TT-NN's options (l1_small_size, trace_region_size, dispatch_core_config, ...) are
    accepted and change nothing here."""
    dev = _host.set_device(sysdesc) if sysdesc is not None else _host.device()
    return Device(dev, device_id)


def close_device(device=None):
    """Nothing to release on a simulated chip."""


@contextlib.contextmanager
def manage_device(device_id=0, **options):
    d = open_device(device_id, **options)
    try:
        yield d
    finally:
        close_device(d)


def synchronize_device(device=None, *args, **kwargs):
    """Kernels run to completion when called: nothing to wait for."""


def _sim_device(device):
    """The ttsim.Device for a `device=` argument; a device passed becomes ttlang's default,
    as ttl.from_numpy does, since kernels run on the default device."""
    if device is None:
        return _host.device()
    dev = device._dev if isinstance(device, Device) else device
    if not isinstance(dev, ttsim.Device):
        raise TypeError(f"device={device!r}: pass the device ttnn.open_device() returned")
    if dev is not _host.device():
        _host.set_device(dev)
    return dev


# --- padding -----------------------------------------------------------------------------
def _up(n):
    return -(-n // TILE_SIZE) * TILE_SIZE


def _check_shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(shape)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape):
        raise ValueError(f"tensor shape {shape}: dims are whole numbers")   # 32.5 was cut to 32
    shape = tuple(int(s) for s in shape)
    if any(s <= 0 for s in shape):
        raise ValueError(f"tensor shape {shape}: every dim must be positive")
    return shape


def _padded_shape(shape):
    """The tile layout's storage shape: the last two dims rounded up to whole tiles (a 1-d
    tensor of n is one row of (32, n rounded up); a scalar one tile)."""
    if len(shape) == 0:
        return (TILE_SIZE, TILE_SIZE)
    if len(shape) == 1:
        return (TILE_SIZE, _up(shape[0]))
    return shape[:-2] + (_up(shape[-2]), _up(shape[-1]))


def _pad(values, padded, pad_value=0.0):
    out = np.full(padded, pad_value, np.float32)
    v = np.asarray(values, np.float32)
    if v.ndim == 0:
        out[0, 0] = v
    elif v.ndim == 1:
        out[0, :v.shape[0]] = v
    else:
        out[(Ellipsis, slice(0, v.shape[-2]), slice(0, v.shape[-1]))] = v
    return out


def _crop(padded, shape):
    if len(shape) == 0:
        return padded[0, 0].copy()
    if len(shape) == 1:
        return padded[0, :shape[0]].copy()
    return np.ascontiguousarray(padded[..., :shape[-2], :shape[-1]])


def _in_kernel():
    """True while a @ttl.kernel body or one of its threads runs."""
    # (the package's `kernel` attribute is the decorator, so the modules come from sys.modules)
    _kernel, _runtime = sys.modules.get("ttlang.kernel"), sys.modules.get("ttlang.runtime")
    if getattr(_kernel, "_building", None):
        return True
    envs = getattr(_runtime, "_envs", None)
    return bool(envs) and greenlet.getcurrent() in envs


# --- tensors -----------------------------------------------------------------------------
class Tensor(_host.Tensor):
    """A TT-NN tensor. In TILE_LAYOUT it is a ttl.Tensor on the simulated chip (padded to
    whole tiles), which a @ttl.kernel takes as it is; in ROW_MAJOR_LAYOUT its values stay on
    the host (for host ops and conversions; kernels need TILE_LAYOUT).

    `Tensor(data, dtype=None, device=None, layout=None, memory_config=None)` is
    `ttnn.from_torch` (torch tensors, numpy arrays, nested lists)."""

    __array_ufunc__ = None          # numpy arrays defer to our operators

    def __init__(self, data, dtype=None, device=None, layout=None, memory_config=None):
        t = from_torch(data, dtype=dtype, layout=layout, device=device, memory_config=memory_config)
        self.__dict__.update(t.__dict__)

    @classmethod
    def _new(cls, values, shape, dtype, layout, device, memory_config, pad_value=0.0, fill=True):
        """A tensor of logical `shape` holding `values` (any array broadcastable to it, or
        None for uninitialised), rounded to `dtype` as it is stored."""
        self = object.__new__(cls)
        self._logical = shape
        self._dtype, self._layout, self._mem = dtype, layout, memory_config
        self._t, self._host_values = None, None
        if layout is TILE_LAYOUT:
            dev = _sim_device(device)
            padded = _padded_shape(shape)
            if values is None:
                self._t = dev.empty(padded, dtype.value, memory_config.buffer_type.value)
            else:
                v = np.broadcast_to(np.asarray(values, np.float32), shape)
                self._t = dev.tensor(_pad(v, padded, pad_value), dtype.value,
                                     memory_config.buffer_type.value)
        else:
            if dtype is bfloat8_b:
                raise ValueError("ttnn.bfloat8_b needs TILE_LAYOUT (its exponents are shared "
                                 "along the rows of a tile), as in TT-NN")
            if device is not None:
                _sim_device(device)
            v = np.zeros(shape, np.float32) if values is None else \
                np.broadcast_to(np.asarray(values, np.float32), shape)
            self._host_values = _formats.quantize(np.array(v, np.float32), dtype.value)
        return self

    # -- what TT-NN's Tensor answers
    @property
    def shape(self):
        """The logical shape; inside a kernel, the padded one (whole tiles)."""
        if self._t is not None and _in_kernel():
            return Shape(self._t.shape)
        return Shape(self._logical)

    @property
    def padded_shape(self):
        return Shape(self._t.shape if self._t is not None else self._logical)

    def volume(self):
        """Elements of the logical shape."""
        return int(np.prod(self._logical, dtype=np.int64))

    def logical_shape(self):
        return Shape(self._logical)

    @property
    def dtype(self):
        return self._dtype

    def get_dtype(self):
        return self._dtype

    @property
    def layout(self):
        return self._layout

    def get_layout(self):
        return self._layout

    def memory_config(self):
        return self._mem

    def device(self):
        return Device(self._t.device) if self._t is not None else None

    def is_allocated(self):
        return True

    @property
    def device_tensor(self):
        if self._t is None:
            raise _row_major_error(self)
        return self._t

    def to_numpy(self, dtype=None):
        """The logical values as a float32 array (the padding cut off)."""
        if self._t is not None:
            a = _crop(self._t.to_numpy(), self._logical)
        else:
            a = self._host_values.copy()
        return a if dtype is None else a.astype(dtype)

    def to_torch(self, dtype=None):
        return to_torch(self, dtype=dtype)

    def cpu(self):
        return self

    def __array__(self, dtype=None, copy=None):
        return self.to_numpy(dtype)

    def __getitem__(self, idx):
        """A block of tiles, for ttl.copy inside a kernel (indices in tiles of the padded shape)."""
        if self._t is None:
            raise _row_major_error(self)
        return _host.TensorSlice(self, idx)

    # -- host ops as operators
    def __add__(self, o): return add(self, o)
    def __radd__(self, o): return add(o, self)
    def __sub__(self, o): return subtract(self, o)
    def __rsub__(self, o): return subtract(o, self)
    def __mul__(self, o): return multiply(self, o)
    def __rmul__(self, o): return multiply(o, self)
    def __truediv__(self, o): return divide(self, o)
    def __rtruediv__(self, o): return divide(o, self)
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)
    def __neg__(self): return neg(self)

    def __repr__(self):
        where = (f"{self._mem.buffer_type.value} of {self._t.device.sd.name}" if self._t is not None
                 else "host")
        pad = f", padded_shape={list(self._t.shape)}" if self._t is not None and \
            tuple(self._t.shape) != self._logical else ""
        return (f"ttnn.Tensor(shape={list(self._logical)}{pad}, dtype={self._dtype!r}, "
                f"layout={self._layout!r}, {where})")


def _row_major_error(t):
    return CompileError(f"a ROW_MAJOR_LAYOUT tensor of shape {list(t._logical)} is held on the "
                        "host: kernels read tiled tensors. Make it with layout=ttnn.TILE_LAYOUT or "
                        "convert it with ttnn.to_layout(x, ttnn.TILE_LAYOUT)")


def _as_ttnn(x):
    """A ttnn.Tensor for a ttnn or ttl tensor (a ttl one is viewed with its shape as logical)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, _host.Tensor):
        t = object.__new__(Tensor)
        t._t, t._host_values = x._t, None
        t._logical = tuple(x._t.shape)
        t._dtype, t._layout = DataType(x._t.dtype.value), TILE_LAYOUT
        t._mem = _memory(x._t.memory)
        return t
    raise TypeError(f"expected a ttnn.Tensor, got {type(x).__name__}")


# --- conversions ---------------------------------------------------------------------------
_TORCH_HINT = "pip install -e '.[torch]' (or use ttnn.from_numpy / ttnn.to_numpy)"


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"ttnn.to_torch needs torch, an optional dependency of ttsim: "
                          f"{_TORCH_HINT}") from e
    return torch


def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _host_array(data):
    """(float32 values, the dtype they suggest) from a torch tensor, numpy array or list."""
    if _is_torch(data):
        import torch
        t = data.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.to(torch.float32).numpy(), bfloat16
        if t.dtype.is_complex:
            raise TypeError(f"from_torch: {t.dtype} tensors have no ttsim format")
        return t.to(torch.float32).numpy(), (float32 if t.dtype.is_floating_point else None)
    a = np.asarray(data)
    if a.dtype.name == "bfloat16":
        return a.astype(np.float32), bfloat16
    if a.dtype.kind == "f":
        return a.astype(np.float32), float32
    if a.dtype.kind in "iub":
        return a.astype(np.float32), None
    raise TypeError(f"cannot make a tensor of {a.dtype} values")


def from_torch(tensor, dtype=None, *, layout=None, device=None, memory_config=None, pad_value=None,
               tile=None, mesh_mapper=None, cq_id=None):
    """TT-NN's from_torch: a torch tensor (or a numpy array) on the chip, rounded to `dtype`
    (default: torch.bfloat16 -> ttnn.bfloat16, other floating types -> ttnn.float32; integer
    data needs a dtype). Tile layout pads to whole tiles with zeros (or `pad_value`)."""
    if mesh_mapper is not None:
        raise NotImplementedError("mesh_mapper: ttsim simulates one chip")
    if tile is not None and tuple(getattr(tile, "tile_shape", tile)) != TILE_SHAPE:
        raise NotImplementedError(f"tile={tile!r}: ttsim tiles are 32x32")
    values, suggested = _host_array(tensor)
    if dtype is None and suggested is None:
        raise TypeError(f"from_torch: {getattr(tensor, 'dtype', type(tensor).__name__)} data has no "
                        "ttsim format (bf16, fp32, bfp8_b): pass dtype=ttnn.bfloat16 or ttnn.float32")
    return Tensor._new(values, _check_shape(values.shape), _dtype(dtype, suggested), _layout(layout),
                       device, _memory(memory_config), pad_value or 0.0)


def from_numpy(array, dtype=None, *, layout=None, device=None, memory_config=None, pad_value=None):
    """from_torch for a numpy array (default dtype: bfloat16 for ml_dtypes.bfloat16 arrays,
    float32 for other floating arrays)."""
    return from_torch(np.asarray(array), dtype, layout=layout, device=device,
                      memory_config=memory_config, pad_value=pad_value)


def to_torch(tensor, dtype=None, **options):
    """TT-NN's to_torch: the logical values as a torch tensor (torch.bfloat16 for a bfloat16
    tensor, torch.float32 for float32 and bfloat8_b, or `dtype`)."""
    torch = _torch()
    if _is_torch(tensor):
        return tensor if dtype is None else tensor.to(dtype)
    t = _as_ttnn(tensor)
    out = torch.from_numpy(t.to_numpy())
    want = dtype or (torch.bfloat16 if t.dtype is bfloat16 else torch.float32)
    return out.to(want)


def to_numpy(tensor, dtype=None):
    """The logical values as a float32 numpy array (or `dtype`)."""
    if isinstance(tensor, _host.Tensor):
        return _as_ttnn(tensor).to_numpy(dtype)
    if _is_torch(tensor):
        return _host_array(tensor)[0] if dtype is None else _host_array(tensor)[0].astype(dtype)
    return np.asarray(tensor, dtype)


def _like(t, values, shape=None, dtype=None, layout=None, device=None, memory_config=None):
    t = _as_ttnn(t)
    shape = t._logical if shape is None else shape
    layout = t._layout if layout is None else _layout(layout)
    if device is None and t._t is not None:
        device = t._t.device
    return Tensor._new(values, shape, _dtype(dtype, t._dtype), layout, device,
                       _memory(memory_config) if memory_config is not None else t._mem)


def to_layout(tensor, layout, dtype=None, memory_config=None, device=None, **options):
    t = _as_ttnn(tensor)
    return _like(t, t.to_numpy(), dtype=dtype, layout=layout, memory_config=memory_config, device=device)


def to_device(tensor, device, memory_config=None, **options):
    t = _as_ttnn(tensor)
    return _like(t, t.to_numpy(), device=device, memory_config=memory_config)


def from_device(tensor, **options):
    return tensor


def to_memory_config(tensor, memory_config, dtype=None):
    t = _as_ttnn(tensor)
    return _like(t, t.to_numpy(), dtype=dtype, memory_config=memory_config)


def typecast(tensor, dtype, memory_config=None, **options):
    t = _as_ttnn(tensor)
    return _like(t, t.to_numpy(), dtype=dtype, memory_config=memory_config)


def deallocate(tensor, force=True):
    """Accepted; simulated DRAM is not reclaimed."""


# --- creation ----------------------------------------------------------------------------
def _create(values, shape, dtype, layout, device, memory_config):
    return Tensor._new(values, _check_shape(shape), _dtype(dtype), _layout(layout), device,
                       _memory(memory_config))


def empty(shape, dtype=None, layout=None, device=None, memory_config=None):
    return _create(None, shape, dtype, layout, device, memory_config)


def zeros(shape, dtype=None, layout=None, device=None, memory_config=None):
    return _create(0.0, shape, dtype, layout, device, memory_config)


def ones(shape, dtype=None, layout=None, device=None, memory_config=None):
    return _create(1.0, shape, dtype, layout, device, memory_config)


def full(shape, fill_value, dtype=None, layout=None, device=None, memory_config=None):
    return _create(float(fill_value), shape, dtype, layout, device, memory_config)


def rand(shape, dtype=None, layout=None, device=None, memory_config=None, low=0.0, high=1.0, seed=None):
    """Uniform in [low, high), then rounded to dtype. `seed=None` draws fresh values."""
    shape = _check_shape(shape)
    v = np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)
    return _create(v, shape, dtype, layout, device, memory_config)


def randn(shape, dtype=None, layout=None, device=None, memory_config=None, seed=None):
    shape = _check_shape(shape)
    v = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return _create(v, shape, dtype, layout, device, memory_config)


def _like_create(t, value, dtype, layout, device, memory_config):
    t = _as_ttnn(t)
    return _like(t, value, dtype=dtype, layout=layout, device=device, memory_config=memory_config)


def empty_like(tensor, dtype=None, layout=None, device=None, memory_config=None):
    return _like_create(tensor, 0.0, dtype, layout, device, memory_config)


def zeros_like(tensor, dtype=None, layout=None, device=None, memory_config=None):
    return _like_create(tensor, 0.0, dtype, layout, device, memory_config)


def ones_like(tensor, dtype=None, layout=None, device=None, memory_config=None):
    return _like_create(tensor, 1.0, dtype, layout, device, memory_config)


def full_like(tensor, fill_value, dtype=None, layout=None, device=None, memory_config=None):
    return _like_create(tensor, float(fill_value), dtype, layout, device, memory_config)


# --- host ops: the golden, in float64 ---------------------------------------------------------
def _values(x):
    if isinstance(x, _host.Tensor):
        return _as_ttnn(x).to_numpy().astype(np.float64)
    if isinstance(x, (int, float, np.number)):
        return np.float64(x)
    if _is_torch(x):
        return _host_array(x)[0].astype(np.float64)
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":        # None became NaN, silently
        raise TypeError(f"a ttnn op takes tensors, numbers or arrays of numbers, not {x!r:.40}")
    return a.astype(np.float64)


def _template(*xs):
    for x in xs:
        if isinstance(x, _host.Tensor):
            return x
    raise TypeError("a ttnn op needs at least one ttnn.Tensor operand")


def _op_result(values, *operands, dtype=None, memory_config=None):
    """values (float64) rounded to the result's dtype: the first tensor operand's, or `dtype`."""
    t = _template(*operands)
    values = np.asarray(values, np.float64)
    return _like(t, values.astype(np.float32), shape=_check_shape(values.shape), dtype=dtype,
                 memory_config=memory_config)


def _binary(fn):
    def op(input_tensor_a, input_tensor_b, *, dtype=None, memory_config=None, output_tensor=None,
           **options):
        a, b = input_tensor_a, input_tensor_b
        r = _op_result(fn(_values(a), _values(b)), a, b, dtype=dtype, memory_config=memory_config)
        if output_tensor is not None:
            return _store_into(output_tensor, r)
        return r
    return op


def _store_into(out, r):
    out = _as_ttnn(out)
    if tuple(out._logical) != tuple(r._logical):
        raise ValueError(f"output_tensor of shape {list(out._logical)} for a result of shape "
                         f"{list(r._logical)}")
    v = r.to_numpy()
    if out._t is not None:
        out._t.write(_pad(v, out._t.shape))
    else:
        out._host_values = _formats.quantize(v, out._dtype.value)
    return out


add = _binary(np.add)
subtract = _binary(np.subtract)
multiply = _binary(np.multiply)
divide = _binary(np.divide)
mul, sub, div = multiply, subtract, divide


def neg(input_tensor, *, memory_config=None, **options):
    return _op_result(-_values(input_tensor), input_tensor, memory_config=memory_config)


def matmul(input_tensor_a, input_tensor_b, *, transpose_a=False, transpose_b=False, dtype=None,
           memory_config=None, program_config=None, compute_kernel_config=None, core_grid=None,
           **options):
    """a @ b in float64 (numpy's matmul broadcasting), rounded to a's dtype (or `dtype`).
    program_config, compute_kernel_config and core_grid are accepted: the golden is exact."""
    a, b = _values(input_tensor_a), _values(input_tensor_b)
    if transpose_a:
        a = np.swapaxes(a, -1, -2)
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    return _op_result(np.matmul(a, b), input_tensor_a, input_tensor_b, dtype=dtype,
                      memory_config=memory_config)


def repeat(input_tensor, repetition_vector, *, memory_config=None):
    """torch's Tensor.repeat: the tensor tiled `repetition_vector` times along each dim."""
    reps = tuple(int(r) for r in repetition_vector)
    return _op_result(np.tile(_values(input_tensor), reps), input_tensor, memory_config=memory_config)


def _dims(dim, rank):
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -rank <= d < rank:
            raise IndexError(f"dim {d} out of range for a rank-{rank} tensor")
        out.append(d % rank)
    return out


def squeeze(input_tensor, dim=None, *, memory_config=None):
    """Drop dims of size 1 (all of them, or those of `dim` that are 1, as torch does)."""
    v = _values(input_tensor)
    axes = tuple(i for i in (range(v.ndim) if dim is None else _dims(dim, v.ndim)) if v.shape[i] == 1)
    return _op_result(np.squeeze(v, axis=axes), input_tensor, memory_config=memory_config)


def unsqueeze(input_tensor, dim, *, memory_config=None):
    v = _values(input_tensor)
    return _op_result(np.expand_dims(v, _dims(dim, v.ndim + 1)[0]), input_tensor,
                      memory_config=memory_config)


def reshape(input_tensor, shape, *, memory_config=None, **options):
    return _op_result(np.reshape(_values(input_tensor), tuple(shape)), input_tensor,
                      memory_config=memory_config)


def transpose(input_tensor, dim0, dim1, *, memory_config=None, **options):
    return _op_result(np.swapaxes(_values(input_tensor), dim0, dim1), input_tensor,
                      memory_config=memory_config)


def permute(input_tensor, dims, *, memory_config=None, **options):
    return _op_result(np.transpose(_values(input_tensor), tuple(dims)), input_tensor,
                      memory_config=memory_config)


# --- cores and work splitting ------------------------------------------------------------------
class CoreCoord(NamedTuple):
    """A logical core (x, y): unpacks and compares like the tuple ttl.core(dims=2) returns."""
    x: int
    y: int

    def __repr__(self):
        return f"CoreCoord(x={self.x}, y={self.y})"


def _coord(c):
    if isinstance(c, CoreCoord):
        return c
    if hasattr(c, "x") and hasattr(c, "y"):
        return CoreCoord(int(c.x), int(c.y))
    x, y = c
    return CoreCoord(int(x), int(y))


class CoreGrid:
    """TT-NN's CoreGrid(y=, x=): a grid size."""

    def __init__(self, y, x):
        self.y, self.x = int(y), int(x)

    @property
    def num_cores(self):
        return self.x * self.y

    def __repr__(self):
        return f"CoreGrid(y={self.y}, x={self.x})"


class CoreRange:
    """The rectangle of cores from `start` to `end`, both included."""

    def __init__(self, start, end=None):
        self.start = _coord(start)
        self.end = _coord(start if end is None else end)
        if self.end.x < self.start.x or self.end.y < self.start.y:
            raise ValueError(f"CoreRange end {self.end} is before its start {self.start}")

    def contains(self, other):
        if isinstance(other, CoreRange):
            return self.contains(other.start) and self.contains(other.end)
        c = _coord(other)
        return self.start.x <= c.x <= self.end.x and self.start.y <= c.y <= self.end.y

    def __contains__(self, other):
        return self.contains(other)

    def grid_size(self):
        return CoreCoord(self.end.x - self.start.x + 1, self.end.y - self.start.y + 1)

    def num_cores(self):
        g = self.grid_size()
        return g.x * g.y

    def cores(self, row_wise=False):
        xs, ys = range(self.start.x, self.end.x + 1), range(self.start.y, self.end.y + 1)
        if row_wise:
            return [CoreCoord(x, y) for y in ys for x in xs]
        return [CoreCoord(x, y) for x in xs for y in ys]

    def intersects(self, other):
        return not (other.end.x < self.start.x or self.end.x < other.start.x or
                    other.end.y < self.start.y or self.end.y < other.start.y)

    def __eq__(self, other):
        return isinstance(other, CoreRange) and (self.start, self.end) == (other.start, other.end)

    def __hash__(self):
        return hash((self.start, self.end))

    def __repr__(self):
        return f"CoreRange(start={self.start!r}, end={self.end!r})"


class CoreRangeSet:
    """Disjoint core ranges. `ranges()` keeps the order given (a Python set is sorted by start)."""

    def __init__(self, ranges=()):
        if isinstance(ranges, CoreRange):
            ranges = [ranges]
        elif isinstance(ranges, (set, frozenset)):
            ranges = sorted(ranges, key=lambda r: (r.start, r.end))
        self._ranges = list(ranges)
        for i, r in enumerate(self._ranges):
            if not isinstance(r, CoreRange):
                raise TypeError(f"CoreRangeSet takes CoreRanges, got {type(r).__name__}")
            for o in self._ranges[:i]:
                if r.intersects(o):
                    raise ValueError(f"CoreRangeSet: {r!r} overlaps {o!r}")

    def ranges(self):
        return list(self._ranges)

    def contains(self, other):
        if isinstance(other, CoreRangeSet):
            return all(self.contains(r) for r in other._ranges)
        if isinstance(other, CoreRange):
            return all(self.contains(c) for c in other.cores())
        return any(r.contains(other) for r in self._ranges)

    def __contains__(self, other):
        return self.contains(other)

    def num_cores(self):
        return sum(r.num_cores() for r in self._ranges)

    def empty(self):
        return not self._ranges

    def bounding_box(self):
        if not self._ranges:
            raise ValueError("an empty CoreRangeSet has no bounding box")
        return CoreRange((min(r.start.x for r in self._ranges), min(r.start.y for r in self._ranges)),
                         (max(r.end.x for r in self._ranges), max(r.end.y for r in self._ranges)))

    def merge(self, other):
        other = other if isinstance(other, CoreRangeSet) else CoreRangeSet(other)
        return _set_from_cores(corerange_to_cores(self) + [c for c in corerange_to_cores(other)
                                                         if not self.contains(c)])

    def __iter__(self):
        return iter(self._ranges)

    def __len__(self):
        return len(self._ranges)

    def __eq__(self, other):
        if not isinstance(other, CoreRangeSet):
            return NotImplemented
        return set(corerange_to_cores(self)) == set(corerange_to_cores(other))

    __hash__ = None

    def __repr__(self):
        return f"CoreRangeSet({self._ranges!r})"


def corerange_to_cores(core_range_set, max_cores=None, row_wise=False):
    """The cores of a CoreRangeSet (or CoreRange), range by range; in each range column by
    column (y fastest), or row by row with row_wise=True (tt-metal's corerange_to_cores)."""
    ranges = [core_range_set] if isinstance(core_range_set, CoreRange) else core_range_set.ranges()
    out = []
    for r in ranges:
        out.extend(r.cores(row_wise))
    return out if max_cores is None else out[:max_cores]


def _set_from_cores(cores):
    """A CoreRangeSet of these cores: runs of consecutive cores on a row or column merged."""
    ranges = []
    for c in cores:
        last = ranges[-1] if ranges else None
        if last is not None and last.start.y == last.end.y == c.y and c.x == last.end.x + 1:
            ranges[-1] = CoreRange(last.start, c)
        elif last is not None and last.start.x == last.end.x == c.x and c.y == last.end.y + 1:
            ranges[-1] = CoreRange(last.start, c)
        else:
            ranges.append(CoreRange(c, c))
    return CoreRangeSet(ranges)


def _line_ranges(start, count, grid, row_wise):
    """Cores start .. start+count-1 of `grid` in order (column by column, y fastest; or row by
    row) as tt-metal's num_cores_to_corerangeset builds them: a partial first line, a
    rectangle of whole lines, a partial last line."""
    gx, gy = grid
    n_line = gx if row_wise else gy

    def seg(line, p0, p1):
        if row_wise:
            return CoreRange((p0, line), (p1, line))
        return CoreRange((line, p0), (line, p1))

    ranges, i, end = [], start, start + count
    if count and i % n_line:
        stop = min(end, (i // n_line + 1) * n_line)
        ranges.append(seg(i // n_line, i % n_line, stop - 1 - (i // n_line) * n_line))
        i = stop
    full_lines = (end - i) // n_line
    if full_lines:
        l0, l1 = i // n_line, i // n_line + full_lines - 1
        ranges.append(CoreRange((0, l0), (gx - 1, l1)) if row_wise else CoreRange((l0, 0), (l1, gy - 1)))
        i += full_lines * n_line
    if i < end:
        ranges.append(seg(i // n_line, 0, end - i - 1))
    return CoreRangeSet(ranges)


def num_cores_to_corerangeset(target_num_cores, grid_size, row_wise=False):
    """The first `target_num_cores` cores of `grid_size`, column by column (y fastest) or row
    by row with row_wise=True."""
    g = _coord(grid_size)
    if target_num_cores > g.x * g.y:
        raise ValueError(f"{target_num_cores} cores do not fit a {g.x}x{g.y} grid")
    return _line_ranges(0, int(target_num_cores), g, row_wise)


def split_work_to_cores(grid_size, units_to_divide, row_wise=False):
    """tt-metal's split_work_to_cores (tt_metal/common/work_split.cpp; `ttnn.split_work_to_cores`):

        num_cores, all_cores, core_group_1, core_group_2, units_per_core_group_1, \\
            units_per_core_group_2 = ttnn.split_work_to_cores(grid_size, units_to_divide)

    `grid_size` is a CoreCoord (or (x, y), or a device's compute_with_storage_grid_size())
    or a CoreRangeSet of the cores to use. num_cores = min(units, cores available); the
    cores are taken in order, column by column (core i of a grid is (i // y, i % y)) or row
    by row with row_wise=True. If the units divide evenly, core_group_1 is all of them with
    units // num_cores each and core_group_2 is empty (units_per_core_group_2 = 0);
    otherwise the first units % num_cores cores form core_group_1 with one unit more
    (units // num_cores + 1) and the rest core_group_2 with units // num_cores."""
    units = int(units_to_divide)
    if units < 0:
        raise ValueError(f"units_to_divide must be >= 0, got {units}")
    if isinstance(grid_size, (CoreRangeSet, CoreRange)):
        cores = corerange_to_cores(grid_size, row_wise=row_wise)
        target = min(units, len(cores))
        if target == 0:
            return 0, CoreRangeSet(), CoreRangeSet(), CoreRangeSet(), 0, 0
        per, rem = divmod(units, target)
        used = cores[:target]
        if rem == 0:
            all_cores = _set_from_cores(used)
            return target, all_cores, all_cores, CoreRangeSet(), per, 0
        return (target, _set_from_cores(used), _set_from_cores(used[:rem]), _set_from_cores(used[rem:]),
                per + 1, per)
    g = _coord(grid_size)
    target = min(units, g.x * g.y)
    if target == 0:
        return 0, CoreRangeSet(), CoreRangeSet(), CoreRangeSet(), 0, 0
    per, rem = divmod(units, target)
    all_cores = _line_ranges(0, target, g, row_wise)
    if rem == 0:
        return target, all_cores, all_cores, CoreRangeSet(), per, 0
    return (target, all_cores, _line_ranges(0, rem, g, row_wise), _line_ranges(rem, target - rem, g, row_wise),
            per + 1, per)


# --- compute kernel configs (for host ops' compute_kernel_config=, and for ttl.kernel) -------
class MathFidelity(enum.StrEnum):
    """TT-NN's math fidelity; the values are ttl's names, so `@ttl.kernel(math_fidelity=
    ttnn.MathFidelity.HiFi2)` takes them."""
    LoFi = "LoFi"
    HiFi2 = "HiFi2"
    HiFi3 = "HiFi3"
    HiFi4 = "HiFi4"


class WormholeComputeKernelConfig:
    """TT-NN's compute kernel config, as a record: host ops accept it (their golden is exact,
    so it changes nothing there); its fields name what @ttl.kernel takes as arguments."""

    def __init__(self, math_fidelity=MathFidelity.HiFi4, math_approx_mode=False,
                 fp32_dest_acc_en=False, packer_l1_acc=False, dst_full_sync_en=False, **options):
        self.math_fidelity = MathFidelity(math_fidelity)
        self.math_approx_mode, self.fp32_dest_acc_en = bool(math_approx_mode), bool(fp32_dest_acc_en)
        self.packer_l1_acc, self.dst_full_sync_en = bool(packer_l1_acc), bool(dst_full_sync_en)
        self.options = options

    def __repr__(self):
        return (f"{type(self).__name__}(math_fidelity={self.math_fidelity.value}, math_approx_mode="
                f"{self.math_approx_mode}, fp32_dest_acc_en={self.fp32_dest_acc_en}, "
                f"packer_l1_acc={self.packer_l1_acc})")


class BlackholeComputeKernelConfig(WormholeComputeKernelConfig):
    pass


def init_device_compute_kernel_config(arch=None, config=None, math_fidelity=MathFidelity.LoFi,
                                      math_approx_mode=True, fp32_dest_acc_en=False,
                                      packer_l1_acc=False, **options):
    """`config` if given, else one with these defaults (TT-NN's)."""
    return config if config is not None else WormholeComputeKernelConfig(
        math_fidelity, math_approx_mode, fp32_dest_acc_en, packer_l1_acc)


# --- what is not here ---------------------------------------------------------------------
_UNSUPPORTED_DTYPES = ("bfloat4_b", "float16", "int32", "uint32", "uint16", "uint8", "int8")


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _UNSUPPORTED_DTYPES:
        raise AttributeError(f"ttnn.{name}: ttsim tensors are ttnn.bfloat16, ttnn.float32 or "
                             "ttnn.bfloat8_b")
    raise AttributeError(
        f"ttlang.ttnn has no '{name}'. It covers what TT-Lang programs use around their kernels: "
        "open_device/close_device, tensors (from_torch, to_torch, from_numpy, to_numpy, rand, "
        "randn, zeros, ones, full, empty and *_like, to_layout, to_device), host ops (add, "
        "subtract, multiply, divide, neg, matmul, repeat, squeeze, unsqueeze, reshape, transpose, "
        "permute; + - * / @), CoreCoord, CoreRange, CoreRangeSet, split_work_to_cores, MathFidelity, WormholeComputeKernelConfig. Compute "
        "anything else on the host with numpy or torch, or write it as a ttl kernel")
