"""Circular buffers: a Fifo whose pages live in a core's L1 at real addresses."""
from __future__ import annotations

import numpy as np

from .errors import CBError
from .fifo import Fifo


class CircularBuffer(Fifo):
    __slots__ = ("index", "fmt", "page_size", "base", "end", "l1", "pack_offset", "decoded", "wseq",
                 "land_t", "out_t", "block")

    def __init__(self, env, core, index, fmt, num_pages, page_size, base, l1):
        super().__init__(env, num_pages, f"cb {index}", core=core,
                         stall_full=f"cb {index} full", stall_empty=f"cb {index} empty")
        self.index, self.fmt, self.page_size, self.base, self.l1 = index, fmt, page_size, base, l1
        self.end = base + num_pages * page_size
        self.pack_offset = 0
        self.decoded = {}   # slot -> (page sequence number, as decoded, as in a source register)
        # the pages a statement packed at once (ttsim.group): (first page's sequence number,
        # their values as one array, their `decoded` entries); valid for a page while its
        # entry is still the one in `decoded`
        self.block = None
        # per slot, the sequence number of the page whose data it last received; a page read
        # with another number holds what an earlier page left there (or nothing at all)
        self.wseq = [-1] * num_pages
        # per slot: when the last NoC transfer into it lands, and when the last one reading
        # out of it has its data out of L1 (a push before the first, or new data in the page
        # before the second, races the NoC: the chip would hand on or send the wrong bytes)
        self.land_t = [0.0] * num_pages
        self.out_t = [0.0] * num_pages

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
        if n.__class__ is not int or n < 1:
            n = self._n(n, th, line, "reserve")
        self.check_no_wrap(self.pushed, n, th, line, "reserve")
        Fifo.reserve(self, th, n, line)

    def wait(self, th, n, line):
        if n.__class__ is not int or n < 1:
            n = self._n(n, th, line, "wait")
        self.check_no_wrap(self.popped, n, th, line, "wait")
        Fifo.wait(self, th, n, line)

    def push(self, th, n, line, payload=None):
        cap, t = self.capacity, th.t
        # only pages that are reserved (Fifo.push refuses a count past them, and the count
        # may be anything a kernel passes: a loop to it would never end)
        for q in range(self.pushed, min(self.pushed + n, self.reserved_upto)
                       if n.__class__ is int else self.pushed):
            if self.land_t[q % cap] > t:
                raise CBError(f"cb_push_back pushes page {q % cap} of {self.name} at cycle {t:,.0f}, "
                              f"before the NoC data written into it lands (cycle "
                              f"{self.land_t[q % cap]:,.0f}): its consumer could read the page "
                              "first. Wait for the transfer (noc_async_read_barrier, or the "
                              "writer's semaphore) before cb_push_back", core=th.core,
                              thread=th.kind, line=line, cb=self.index)
        Fifo.push(self, th, n, line, payload)
        self.pack_offset = 0

    def transfer(self, addr, size, t, out, th=None, line=None):
        """A NoC transfer into (out=False) or out of (out=True) bytes [addr, addr + size) of
        this buffer is done with them at cycle t (see land_t, out_t)."""
        if addr < self.base or addr + size > self.end:
            return                   # not this buffer's pages (an access check reports it)
        times = self.out_t if out else self.land_t
        for s in range((addr - self.base) // self.page_size,
                       (addr + size - 1 - self.base) // self.page_size + 1):
            if not out:
                self.check_overwrite(s, t, th, line, "a NoC transfer")
            if times[s] < t:
                times[s] = t

    def check_overwrite(self, slot, t, th, line, what):
        """New data is in page `slot` by cycle t: a NoC write still reading the page's old
        data out of L1 after that would send the new data instead (its consumer popped the
        page, and it was written again, before the write was done with it)."""
        if self.out_t[slot] > t:
            raise CBError(f"{what} writes page {slot} of {self.name} (done at cycle {t:,.0f}) while "
                          f"a NoC write still reads its previous data out of L1 (until cycle "
                          f"{self.out_t[slot]:,.0f}): the write would send the new data. Wait for "
                          "the write (noc_async_write_barrier or noc_async_writes_flushed) before "
                          "its cb_pop_front", core=th.core if th else None,
                          thread=th.kind if th else None, line=line, cb=self.index)

    def slot_seq(self, slot):
        """The page sequence number slot `slot` stands for now: the one in
        [popped, popped + capacity), written by the producer if it is reserved or pushed."""
        return self.popped + (slot - self.popped) % self.capacity

    def slots(self, addr, size, th, line, what):
        """The slots bytes [addr, addr + size) cover; an access must stay inside the buffer."""
        if addr < self.base or addr + size > self.end:
            raise CBError(f"{what}: bytes [{addr:#x}, {addr + size:#x}) run outside {self.name}, "
                          f"whose {self.capacity} pages of {self.page_size} B span "
                          f"[{self.base:#x}, {self.end:#x})", core=th.core, thread=th.kind,
                          line=line, cb=self.index)
        return range((addr - self.base) // self.page_size,
                     (addr + size - 1 - self.base) // self.page_size + 1)

    def wrote(self, addr, size, th, line, what, core=None):
        """Bytes landed in pages of this buffer: each must be reserved by its producer
        (cb_reserve_back) and not yet pushed; they now hold that page's data. A buffer
        nobody has reserved yet is scratch L1 (tt-metal kernels use get_write_ptr of an
        unused CB as a plain address), so only the bounds are checked."""
        pages = self.slots(addr, size, th, line, what)
        if not self.reserved_upto:
            return
        for s in pages:
            q = self.slot_seq(s)
            if not self.pushed <= q < self.reserved_upto:
                state = "pushed and not yet popped" if q < self.pushed else "not reserved"
                raise CBError(f"{what} writes page {s} of {self.name}{_on(core)}, which is {state} "
                              f"({self.reserved_upto - self.pushed} pages reserved from the write "
                              f"pointer): write only into pages the producer has reserved "
                              f"(cb_reserve_back) and not yet pushed", core=th.core,
                              thread=th.kind, line=line, cb=self.index)
            self.wseq[s] = q
            self.decoded.pop(s, None)

    def peek(self, addr, size, th, line, what):
        """A kernel's own load of bytes of this buffer (read_l1): their pages must be reserved
        or pushed; a page popped and not reserved again is free, and its producer may be
        writing the next page's data into it (the chip would return either)."""
        for s in self.slots(addr, size, th, line, what):
            q = self.slot_seq(s)
            if q >= self.reserved_upto:
                raise CBError(f"{what} reads page {s} of {self.name}, which is free (popped, and "
                              f"not reserved again): its data may be overwritten at any time by "
                              f"the producer; read a page between cb_wait_front and cb_pop_front "
                              f"(or between cb_reserve_back and cb_push_back)", core=th.core,
                              thread=th.kind, line=line, cb=self.index)
            if q >= self.waited_upto and th is not self.producer:
                state = "pushed" if q < self.pushed else "reserved and not yet pushed"
                raise CBError(f"{what} reads page {s} of {self.name}, which is {state} by "
                              f"{self.producer.kind} but not waited for: only cb_wait_front says "
                              f"its data is there (the chip would return whatever the page held "
                              f"if it is read before the producer's push); wait for the page "
                              f"first", core=th.core, thread=th.kind, line=line, cb=self.index)

    def check_fresh(self, slot, seq, th, line, what, core=None):
        """Page `seq` (in slot `slot`) is about to be read: it must hold data written for it."""
        if self.wseq[slot] != seq:
            raise CBError(f"{what} reads page {slot} of {self.name}{_on(core)}, which nothing has "
                          f"written since it was reserved: its producer pushed it (or it is read) "
                          f"without data, so it holds whatever an earlier page left there",
                          core=th.core, thread=th.kind, line=line, cb=self.index)

    def read_bytes(self, addr, size, th, line, what, core=None):
        """Bytes of this buffer read by the NoC: their pages must hold data written for them
        (unless the buffer is still scratch L1, see wrote)."""
        pages = self.slots(addr, size, th, line, what)
        if not self.reserved_upto:
            return
        for s in pages:
            q = self.slot_seq(s)
            if q >= self.reserved_upto:
                raise CBError(f"{what} reads page {s} of {self.name}{_on(core)}, which is neither "
                              "reserved nor pushed: it holds whatever an earlier page left there",
                              core=th.core, thread=th.kind, line=line, cb=self.index)
            self.check_fresh(s, q, th, line, what, core)

    def _page_index(self, i, th, line, what):
        """A tile index into the waited-for or reserved pages: a whole number (a numpy
        integer will do; not a float or a bool)."""
        if i.__class__ is not bool and isinstance(i, (int, np.integer)):
            return int(i)
        raise CBError(f"{what} {i!r} into {self.name} is not an integer", core=th.core,
                      thread=th.kind, line=line, cb=self.index)

    def front_seq(self, i, th, line):
        """Sequence number of the i-th waited-for page (its slot is seq % num_pages)."""
        if i.__class__ is not int:
            i = self._page_index(i, th, line, "tile index")
        if self.popped + i >= self.waited_upto or i < 0:
            raise CBError(f"reads page {i} of {self.name} but only {self.waited_upto - self.popped} "
                          f"pages were waited for (cb_wait_front)", core=th.core, thread=th.kind,
                          line=line, cb=self.index)
        return self.popped + i

    def back_addr(self, i, th, line):
        """L1 address of the i-th reserved page, for the packer."""
        if i.__class__ is not int:
            i = self._page_index(i, th, line, "pack_tile output index")
        if self.pushed + i >= self.reserved_upto or i < 0:
            raise CBError(f"packs into page {i} of {self.name} but only "
                          f"{self.reserved_upto - self.pushed} pages were reserved (cb_reserve_back)",
                          core=th.core, thread=th.kind, line=line, cb=self.index)
        return self.base + ((self.pushed + i) % self.capacity) * self.page_size


def _on(core):
    return "" if core is None else f" on core ({core[0]},{core[1]})"
