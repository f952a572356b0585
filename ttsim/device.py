"""The simulated chip as the host sees it: memories, tensors, and running programs."""
from __future__ import annotations

import math

import numpy as np

import sysdesc

from . import formats, session
from .errors import TTSimError
from .memory import L1, WRITTEN_GRANULE, DramBank, align


def _numeric(array):
    """The data of a tensor as an array of real numbers: complex values would lose their
    imaginary part silently, objects (None, strings) turn into NaN or fail inside numpy."""
    a = np.asarray(array)
    if a.dtype.kind not in "biuf" and a.dtype.name != "bfloat16":
        raise TTSimError(f"tensor data of dtype {a.dtype}: a tensor holds real numbers (float, "
                         "int or bool arrays)")
    return a


class Tensor:
    """A tilized tensor interleaved page by page (one tile a page) over DRAM banks or L1s."""

    def __init__(self, device, shape, fmt, memory, address):
        self.device, self.shape, self.dtype, self.memory, self.address = \
            device, tuple(shape), fmt, memory, address
        self.page_size = fmt.tile_bytes
        *lead, h, w = self.shape
        self.tiles = (h // 32, w // 32)
        self.num_pages = int(np.prod(lead, dtype=np.int64)) * self.tiles[0] * self.tiles[1]

    @property
    def tile_shape(self):
        """Shape in tiles: leading dims, then rows and columns of tiles."""
        return self.shape[:-2] + self.tiles

    def _bank_views(self):
        banks = self.device._banks(self.memory)
        n = len(banks)
        for b, mem in enumerate(banks):
            count = len(range(b, self.num_pages, n))
            if count:
                yield b, n, mem[self.address:self.address + count * self.page_size]

    def write(self, array):
        a = _numeric(array)
        if a.shape != self.shape:
            raise TTSimError(f"writing an array of shape {a.shape} into a tensor of shape {self.shape}")
        pages = formats.encode_tiles(formats.tilize(a), self.dtype).reshape(self.num_pages, self.page_size)
        for b, n, view in self._bank_views():
            view[:] = pages[b::n].reshape(-1)
            if self.memory == "dram":
                self.device.dram[b].mark(self.address, view.size)

    def to_numpy(self):
        """The tensor's values. A DRAM page that nothing has written (wholly or in part)
        reads back as NaN: the chip would return whatever the bank held there."""
        pages = np.empty((self.num_pages, self.page_size), np.uint8)
        unwritten = np.zeros(self.num_pages, bool)
        for b, n, view in self._bank_views():
            pages[b::n] = view.reshape(-1, self.page_size)
            if self.memory == "dram":
                w = self.device.dram[b].written
                g = self.address // WRITTEN_GRANULE
                unwritten[b::n] = ~w[g:g + view.size // WRITTEN_GRANULE].reshape(
                    -1, self.page_size // WRITTEN_GRANULE).all(axis=1)
        tiles = formats.decode_tiles(pages.reshape(-1), self.dtype, self.num_pages)
        if unwritten.any():
            tiles[unwritten] = np.nan
        return formats.untilize(tiles, self.shape)

    def __repr__(self):
        return (f"Tensor(shape={self.shape}, dtype={self.dtype.value}, {self.memory} "
                f"interleaved at {self.address:#x})")


class Device:
    """One chip described by a sysdesc. DRAM and L1 buffers persist across program runs."""

    def __init__(self, desc=None):
        if desc is None and session.default_sysdesc is not None:
            desc = session.default_sysdesc
        self.sd = desc if isinstance(desc, sysdesc.SysDesc) else sysdesc.load(desc)
        sd = self.sd
        self.grid = sd.worker_grid()
        self.cores = [(x, y) for y in range(self.grid[1]) for x in range(self.grid[0])]
        self.l1 = {c: L1(c, sd.l1_size, sd.l1_reserved) for c in self.cores}
        self.dram = [DramBank(b.id, tuple(b.noc_xy)) for b in sd.dram_banks]
        self._dram_next = 0
        self._running = False     # a program is being simulated (Device.run)
        self._by_xy = {}
        for c in self.cores:
            self._by_xy[sd.worker_noc_xy(*c)] = ("l1", c)
        for i, b in enumerate(self.dram):
            self._by_xy[b.noc_xy] = ("dram", i)

    # --- memory lookup ------------------------------------------------------------------
    def mem_at(self, xy):
        """The byte array behind a NoC endpoint (a worker's L1 or a DRAM bank), or None."""
        hit = self._by_xy.get(xy)
        if hit is None:
            return None
        return self.l1[hit[1]].mem if hit[0] == "l1" else self.dram[hit[1]].mem

    def bank_xys(self, dram=True):
        if dram:
            return [b.noc_xy for b in self.dram]
        return [self.sd.worker_noc_xy(*c) for c in self.cores]

    def _banks(self, memory):
        if memory == "dram":
            return [b.mem for b in self.dram]
        return [self.l1[c].mem for c in self.cores]

    # --- tensors ------------------------------------------------------------------------
    def empty(self, shape, dtype="bf16", memory="dram"):
        fmt = formats.parse_format(dtype)
        try:
            dims = tuple(shape)
        except TypeError:
            dims = None
        if dims is None or not all(d.__class__ is not bool and isinstance(d, (int, np.integer))
                                   for d in dims):
            raise TTSimError(f"tensor shape {shape!r}: a shape is a tuple of whole numbers")
        shape = tuple(int(s) for s in dims)
        if len(shape) < 2 or shape[-1] % 32 or shape[-2] % 32 or min(shape) <= 0:
            raise TTSimError(f"tensor shape {shape}: the last two dims must be positive multiples of 32 "
                             "(tile layout)")
        if memory not in ("dram", "l1"):
            raise TTSimError(f"tensor memory must be 'dram' or 'l1', got {memory!r}")
        n_banks = len(self.dram) if memory == "dram" else len(self.cores)
        *lead, h, w = shape
        pages = math.prod(lead) * (h // 32) * (w // 32)
        per_bank = -(-pages // n_banks) * fmt.tile_bytes
        if memory == "dram":
            addr = self._dram_next
            cap = self.sd.dram_bank_bytes
            if align(addr + per_bank) > cap:
                gib = 1 << 30
                raise TTSimError(
                    f"DRAM full: tensor {shape} {fmt.value} needs {per_bank} bytes in each of "
                    f"the {n_banks} DRAM banks ({per_bank * n_banks / gib:.3f} GiB); "
                    f"{cap - addr} bytes are left in each ({(cap - addr) * n_banks / gib:.3f} "
                    f"of {cap * n_banks / gib:.3f} GiB) on {self.sd.name}")
            self._dram_next = align(addr + per_bank)
            for b in self.dram:
                b.ensure(self._dram_next)
        else:
            addrs = {self.l1[c].alloc_high(per_bank, f"L1 tensor {shape}") for c in self.cores}
            addr = min(addrs)
            for c in self.cores:        # not cleared, as a DRAM buffer is not (DramBank.ensure)
                self.l1[c].mem[addr:addr + per_bank].view(np.uint16)[:] = 0x7FC0
        return Tensor(self, shape, fmt, memory, addr)

    def tensor(self, array, dtype="bf16", memory="dram"):
        """Allocate and fill a tensor; values are rounded to `dtype` as the hardware stores them."""
        a = _numeric(array)
        t = self.empty(a.shape, dtype, memory)
        t.write(a)
        return t

    def zeros(self, shape, dtype="bf16", memory="dram"):
        return self.tensor(np.zeros(shape, np.float32), dtype, memory)

    # --- running ------------------------------------------------------------------------
    def run(self, program, trace=False, max_cycles=1e12, _reverse_spawn=False):
        """Simulate `program`; returns a RunReport (cycles, per-thread and per-line figures).
        trace=True keeps every thread's events for `RunReport.write_trace`; trace=PATH streams
        them to that file as the run makes them (bounded memory, for long runs)."""
        from .engine import Engine
        if getattr(self, "_running", False):
            from .thread import caller_line
            # a kernel (or a callback) ran another program on this device mid-run: its CBs and
            # semaphores would be allocated over the running program's, in the same L1
            raise TTSimError("Device.run while another program is running on this device (called "
                             "from a kernel?): a device runs one program at a time; run the "
                             "second after the first returns", line=caller_line())
        self._running = True
        try:
            report = Engine(self, program, trace=trace or session.trace_target(),
                            max_cycles=max_cycles, reverse_spawn=_reverse_spawn).run()
        finally:
            self._running = False
        session.record(report)
        return report
