"""Circular buffers: a Fifo whose pages live in a core's L1 at real addresses."""
from __future__ import annotations

from .errors import CBError
from .fifo import Fifo


class CircularBuffer(Fifo):
    __slots__ = ("index", "fmt", "page_size", "base", "l1", "pack_offset", "decoded")

    def __init__(self, env, core, index, fmt, num_pages, page_size, base, l1):
        super().__init__(env, num_pages, f"cb {index}", core=core,
                         stall_full=f"cb {index} full", stall_empty=f"cb {index} empty")
        self.index, self.fmt, self.page_size, self.base, self.l1 = index, fmt, page_size, base, l1
        self.pack_offset = 0
        self.decoded = {}   # slot -> (page sequence number, as decoded, as in a source register)

    @property
    def num_pages(self):
        return self.capacity

    def write_ptr(self):
        return self.base + (self.pushed % self.capacity) * self.page_size

    def read_ptr(self):
        return self.base + (self.popped % self.capacity) * self.page_size

    def check_no_wrap(self, start_seq, n, th, line, what):
        """A block of n pages must not straddle the end of the buffer (as on hardware)."""
        if n <= self.capacity and (start_seq % self.capacity) + n > self.capacity:
            raise CBError(f"{what} of {n} pages starting at page {start_seq % self.capacity} runs "
                          f"past the end of {self.name} ({self.capacity} pages): make the page "
                          f"count a multiple of {n}", core=th.core, thread=th.kind, line=line,
                          cb=self.index)

    def reserve(self, th, n, line):
        self.check_no_wrap(self.pushed, n, th, line, "reserve")
        Fifo.reserve(self, th, n, line)

    def wait(self, th, n, line):
        self.check_no_wrap(self.popped, n, th, line, "wait")
        Fifo.wait(self, th, n, line)

    def push(self, th, n, line, payload=None):
        Fifo.push(self, th, n, line, payload)
        self.pack_offset = 0

    def front_seq(self, i, th, line):
        """Sequence number of the i-th waited-for page (its slot is seq % num_pages)."""
        if self.popped + i >= self.waited_upto or i < 0:
            raise CBError(f"reads page {i} of {self.name} but only {self.waited_upto - self.popped} "
                          f"pages were waited for (cb_wait_front)", core=th.core, thread=th.kind,
                          line=line, cb=self.index)
        return self.popped + i

    def back_addr(self, i, th, line):
        """L1 address of the i-th reserved page, for the packer."""
        if self.pushed + i >= self.reserved_upto or i < 0:
            raise CBError(f"packs into page {i} of {self.name} but only "
                          f"{self.reserved_upto - self.pushed} pages were reserved (cb_reserve_back)",
                          core=th.core, thread=th.kind, line=line, cb=self.index)
        return self.base + ((self.pushed + i) % self.capacity) * self.page_size
