"""Byte-addressed memories: each worker core's L1 and each DRAM bank.

Memory holds real bytes in the hardware's tile layout, so kernels can move tiles or
arbitrary byte ranges and the numerics see exactly what the hardware formats hold.
"""
from __future__ import annotations

import numpy as np

from .errors import L1OverflowError, NocError

ALIGN = 32  # L1 and DRAM allocations are 32-byte aligned, as the NoC requires


def align(n, a=ALIGN):
    return (n + a - 1) // a * a


class L1:
    """One core's L1: CBs and semaphores grow up from the reserved region, buffers down from the top."""

    def __init__(self, core, size, reserved):
        self.core, self.size, self.reserved = core, size, reserved
        self._mem = None
        self.low = reserved        # next free byte for CBs / semaphores (program scope)
        self.high = size           # lowest byte used by long-lived L1 buffers (device scope)
        self.allocs: list[tuple[str, int, int]] = []

    @property
    def mem(self):
        if self._mem is None:
            self._mem = np.zeros(self.size, np.uint8)
        return self._mem

    def alloc_low(self, nbytes, what):
        addr = align(self.low)
        if addr + nbytes > self.high:
            used = "\n".join(f"    {w}: {n} bytes at {a:#x}" for w, a, n in self.allocs)
            raise L1OverflowError(
                f"L1 overflow allocating {what} ({nbytes} bytes): core ({self.core[0]},{self.core[1]}) "
                f"has {self.high - addr} bytes free of {self.size} ({self.reserved} reserved for "
                f"firmware).\n  Already allocated:\n{used or '    nothing'}\n"
                f"  Use fewer or smaller buffers (fewer pages, a smaller block shape).",
                core=self.core)
        self.low = addr + nbytes
        self.allocs.append((what, addr, nbytes))
        return addr

    def alloc_high(self, nbytes, what):
        addr = (self.high - nbytes) // ALIGN * ALIGN
        if addr < self.low:
            raise L1OverflowError(f"L1 overflow allocating {what} ({nbytes} bytes) on core "
                                  f"({self.core[0]},{self.core[1]}): {self.high - self.low} bytes free",
                                  core=self.core)
        self.high = addr
        self.allocs.append((what, addr, nbytes))
        return addr

    def reset_program(self):
        """Free program-scoped allocations (CBs, semaphores) between program runs."""
        self.low = self.reserved
        self.allocs = [a for a in self.allocs if a[1] >= self.high]

    def regions(self):
        """Every byte of this L1 in one region: [(start, end, name, kind)], sorted. kind is
        "firmware" (below `reserved`: no kernel may touch it), "alloc" (a CB, a semaphore or
        an L1 tensor, by its allocation name) or "free" (unallocated L1, usable as scratch)."""
        out = [(0, self.reserved, f"the firmware region [0x0, {self.reserved:#x})", "firmware")] \
            if self.reserved else []
        at = self.reserved
        for what, a, n in sorted(self.allocs, key=lambda x: x[1]):
            if a > at:
                out.append((at, a, "unallocated L1", "free"))
            out.append((a, a + n, what, "alloc"))
            at = max(at, a + n)
        if at < self.size:
            out.append((at, self.size, "unallocated L1", "free"))
        return out


WRITTEN_GRANULE = 16          # bytes per flag of DramBank.written


class DramBank:
    """One DRAM bank's memory, grown on demand as tensors are allocated.

    `written` flags each 16-byte granule something (the host or a NoC write) has written:
    DRAM is not cleared on the chip, so a read of a granule nothing wrote returns whatever
    the bank held before: the simulator's new buffers hold NaN patterns (ensure) and a
    kernel's read of such a granule is a warning (RunReport.warnings), not zeros."""

    def __init__(self, bank_id, noc_xy):
        self.id, self.noc_xy = bank_id, noc_xy
        self.mem = np.zeros(0, np.uint8)
        self.written = np.zeros(0, bool)
        # per granule, which of this run's data-movement threads last wrote it (Engine's
        # dram_writers; 0: none this run): two writers of the same bytes race on the chip
        self.writer = np.zeros(0, np.int16)
        self.used = 0               # bytes allocated to buffers (mem may be larger)
        self.regions: list[tuple[int, int]] = []   # [start, end) of each allocation, in order

    def mark(self, addr, nbytes):
        """Bytes [addr, addr + nbytes) were written (each granule they touch counts)."""
        self.written[addr // WRITTEN_GRANULE:-(-(addr + nbytes) // WRITTEN_GRANULE)] = True

    def claim(self, addr, nbytes, wid):
        """Writer `wid` writes [addr, addr + nbytes): the id of another writer of this run
        that wrote some of those bytes before, else 0."""
        w = self.writer[addr // WRITTEN_GRANULE:-(-(addr + nbytes) // WRITTEN_GRANULE)]
        other = w[(w != 0) & (w != wid)]
        w[:] = wid
        return int(other[0]) if other.size else 0

    def first_unwritten(self, addr, nbytes):
        """The address of the first granule of [addr, addr + nbytes) nothing wrote, or None."""
        g0 = addr // WRITTEN_GRANULE
        w = self.written[g0:-(-(addr + nbytes) // WRITTEN_GRANULE)]
        if w.all():
            return None
        return max(addr, (g0 + int(np.argmin(w))) * WRITTEN_GRANULE)

    def ensure(self, nbytes):
        """Make room for allocations up to `nbytes`: the device allocates DRAM buffers one
        after the other at the same address in every bank, so each call that grows the
        bank is one more buffer, [previous end, nbytes)."""
        if nbytes > self.mem.size:
            new = np.zeros(max(nbytes, 2 * self.mem.size), np.uint8)
            new[: self.mem.size] = self.mem
            self.mem = new
            w = np.zeros(-(-new.size // WRITTEN_GRANULE), bool)
            w[: self.written.size] = self.written
            self.written = w
            ids = np.zeros(w.size, np.int16)
            ids[: self.writer.size] = self.writer
            self.writer = ids
        if nbytes > self.used:
            self.regions.append((self.used, nbytes))
            # not cleared: a new buffer holds quiet-NaN half-words (bf16 0x7FC0, and fp32
            # 0x7FC07FC0), so what nothing wrote reads as NaN, not as plausible zeros
            self.mem[self.used:nbytes].view(np.uint16)[:] = 0x7FC0
            self.used = nbytes


def check_range(mem, addr, nbytes, what, core=None, thread=None, line=None):
    if addr < 0 or addr + nbytes > mem.size:
        raise NocError(f"{what}: bytes [{addr:#x}, {addr + nbytes:#x}) are outside the memory "
                       f"({mem.size} bytes)", core=core, thread=thread, line=line)
