"""Host tensors: a small TT-NN-like layer over ttsim tensors on a default device.

`ttl.rand`, `ttl.zeros`, `ttl.empty`, `ttl.from_numpy` put tiled tensors in DRAM of the
current device (the sysdesc `ttsim run` chose, or wormhole_b0); `t.to_numpy()` reads back.
"""
from __future__ import annotations

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


def _tile_range(s, n, what):
    if isinstance(s, int):
        if not -n <= s < n:
            raise IndexError(f"tile {what} index {s} out of range (0..{n - 1})")
        return range(s % n, s % n + 1)
    start, stop, step = s.indices(n)
    if step != 1:
        raise IndexError("tile slices must have step 1")
    if s.stop is not None and s.stop > n:
        raise IndexError(f"tile {what} slice {s.start}:{s.stop} runs past the tensor's {n} tiles")
    return range(start, stop)


def from_numpy(a, dtype=bfloat16):
    return Tensor(device().tensor(np.asarray(a, np.float32), dtype))


def empty(shape, dtype=bfloat16):
    return Tensor(device().empty(shape, dtype))


def zeros(shape, dtype=bfloat16):
    return Tensor(device().zeros(shape, dtype))


def full(shape, value, dtype=bfloat16):
    return from_numpy(np.full(shape, value, np.float32), dtype)


def rand(shape, dtype=bfloat16, low=0.0, high=1.0, seed=None):
    r = np.random.default_rng(seed)
    return from_numpy(r.uniform(low, high, shape).astype(np.float32), dtype)


def randn(shape, dtype=bfloat16, seed=None):
    r = np.random.default_rng(seed)
    return from_numpy(r.standard_normal(shape).astype(np.float32), dtype)


to_numpy = Tensor.to_numpy
parse_dtype = formats.parse_format
