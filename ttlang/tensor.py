"""Host tensors: a small TT-NN-like layer over ttsim tensors on a default device.

`ttl.rand`, `ttl.zeros`, `ttl.empty`, `ttl.from_numpy` put tiled tensors in DRAM of the
current device (the sysdesc `ttsim run` chose, or wormhole_b0); `t.to_numpy()` reads back.
"""
from __future__ import annotations

import operator

import numpy as np

import ttsim
from ttsim import formats

_device = None


def device():
    """The device ttlang kernels run on; created on first use."""
    global _device
    if _device is None:
        _device = ttsim.Device()
    return _device


def set_device(dev_or_sysdesc=None):
    """Use another device (a ttsim.Device, or a sysdesc name or path); returns it."""
    global _device
    _device = dev_or_sysdesc if isinstance(dev_or_sysdesc, ttsim.Device) else ttsim.Device(dev_or_sysdesc)
    return _device


bfloat16, float32, bfloat8_b = "bf16", "fp32", "bfp8_b"
# TT-NN's names, so TT-Lang host code ports with its calls as they are: tensors are always
# tiled here; the memory config picks DRAM or L1 interleaving.
TILE_LAYOUT, ROW_MAJOR_LAYOUT = "tile", "row_major"
DRAM_MEMORY_CONFIG, L1_MEMORY_CONFIG = "dram", "l1"


def open_device(device_id=0, sysdesc=None):
    """TT-NN's open_device: the simulated chip (device_id is accepted and ignored)."""
    return set_device(sysdesc) if sysdesc is not None else device()


def close_device(dev=None):
    """Nothing to release on a simulated chip."""


def _placement(layout, dev, memory_config):
    if layout not in (None, TILE_LAYOUT):
        raise ValueError(f"layout {layout!r}: ttsim tensors are tiled (32x32 tiles); use "
                         "ttl.TILE_LAYOUT")
    dev = getattr(dev, "sim", dev)       # a ttlang.ttnn device wraps the simulated one
    if dev is not None and dev is not device():
        set_device(dev)
    mem = memory_config or DRAM_MEMORY_CONFIG
    if mem not in (DRAM_MEMORY_CONFIG, L1_MEMORY_CONFIG):
        raise ValueError(f"memory_config {mem!r}: use ttl.DRAM_MEMORY_CONFIG or ttl.L1_MEMORY_CONFIG")
    return mem


class Tensor:
    """A host handle on a tiled device tensor. Slicing (in tiles) gives a TensorSlice for copies."""

    def __init__(self, t: ttsim.Tensor):
        self._t = t

    @property
    def shape(self):
        return self._t.shape

    @property
    def dtype(self):
        return self._t.dtype.value

    @property
    def device_tensor(self):
        return self._t

    def to_numpy(self):
        return self._t.to_numpy()

    def __getitem__(self, idx):
        return TensorSlice(self, idx)

    def __repr__(self):
        return f"ttl.Tensor(shape={self.shape}, dtype={self.dtype})"


class TensorSlice:
    """A block of tiles of a tensor: ints on leading dims, tile slices on the last two."""

    def __init__(self, tensor, idx):
        self.tensor = tensor
        t = tensor._t
        if idx.__class__ is tuple and len(idx) == 2 and len(t.shape) == 2 \
                and idx[0].__class__ is int and idx[1].__class__ is int:
            # one tile of a matrix, as tile-at-a-time kernels index: the same checks, inline
            (i, j), (ht, wt) = idx, t.tiles
            if not (-ht <= i < ht and -wt <= j < wt):
                _tile_range(i, ht, "rows")
                _tile_range(j, wt, "columns")
            i, j = i % ht, j % wt
            self.lead, self.rows, self.cols, self.shape = 0, range(i, i + 1), range(j, j + 1), (1, 1)
            return
        idx = idx if isinstance(idx, tuple) else (idx,)
        nd = len(t.tile_shape)
        if len(idx) > nd:
            raise IndexError(f"{len(idx)} indices for a {nd}-d tensor")
        idx = idx + (slice(None),) * (nd - len(idx))
        lead, rows, cols = idx[:-2], idx[-2], idx[-1]
        tshape = t.tile_shape
        flat = 0
        for k, (i, n) in enumerate(zip(lead, tshape[:-2])):
            if not isinstance(i, int):
                i = _index(i)
                if i is None:
                    raise IndexError("leading (non-tile) dims take integer indices")
            if not -n <= i < n:
                raise IndexError(f"index {i} out of range for dim {k} of size {n}")
            flat = flat * n + (i % n)
        self.lead = flat
        self.rows = _tile_range(rows, tshape[-2], "rows")
        self.cols = _tile_range(cols, tshape[-1], "columns")
        self.shape = (len(self.rows), len(self.cols))

    def pages(self):
        ht, wt = self.tensor._t.tiles
        base = self.lead * ht * wt
        return [base + r * wt + c for r in self.rows for c in self.cols]


def _index(i):
    """An integer index as an int (numpy integers too), or None (a slice, a float, ...)."""
    if i.__class__ is bool or isinstance(i, slice):
        return None
    try:
        return operator.index(i)
    except TypeError:
        return None


def _tile_range(s, n, what):
    if not isinstance(s, (int, slice)):
        i = _index(s)
        if i is None:
            raise IndexError(f"tile {what} index {s!r}: a tile index is an integer or a slice "
                             "of integers")
        s = i
    if isinstance(s, int):
        if not -n <= s < n:
            raise IndexError(f"tile {what} index {s} out of range (0..{n - 1})")
        return range(s % n, s % n + 1)
    for v in (s.start, s.stop, s.step):
        if v is not None and _index(v) is None:
            raise IndexError(f"tile {what} slice {s.start}:{s.stop}: slice bounds are integers "
                             f"(tiles), not {v!r}")
    start, stop, step = s.indices(n)
    if step != 1:
        raise IndexError("tile slices must have step 1")
    if s.stop is not None and s.stop > n:
        raise IndexError(f"tile {what} slice {s.start}:{s.stop} runs past the tensor's {n} tiles")
    return range(start, stop)


def from_numpy(a, dtype=bfloat16, layout=None, device=None, memory_config=None):
    """TT-NN's from_torch, from a numpy array: rounded to `dtype`, tiled, interleaved."""
    mem = _placement(layout, device, memory_config)
    return Tensor(_dev().tensor(np.asarray(a, np.float32), dtype, mem))


def empty(shape, dtype=bfloat16, layout=None, device=None, memory_config=None):
    mem = _placement(layout, device, memory_config)
    return Tensor(_dev().empty(shape, dtype, mem))


def zeros(shape, dtype=bfloat16, layout=None, device=None, memory_config=None):
    return full(shape, 0.0, dtype, layout, device, memory_config)


def full(shape, value, dtype=bfloat16, layout=None, device=None, memory_config=None):
    return from_numpy(np.full(shape, value, np.float32), dtype, layout, device, memory_config)


def rand(shape, dtype=bfloat16, low=0.0, high=1.0, seed=None, **placement):
    r = np.random.default_rng(seed)
    return from_numpy(r.uniform(low, high, shape).astype(np.float32), dtype, **placement)


def randn(shape, dtype=bfloat16, seed=None, **placement):
    r = np.random.default_rng(seed)
    return from_numpy(r.standard_normal(shape).astype(np.float32), dtype, **placement)


_dev = device


def to_numpy(t):
    """TT-NN's to_torch, to a numpy array."""
    return t.to_numpy()
parse_dtype = formats.parse_format
