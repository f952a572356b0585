"""The data-movement kernel API (reader and writer RISCs), after TT-Metalium's dataflow_api.

Kernels are plain functions of a context `k`:

    def reader(k):
        a = k.interleaved_addr_gen(k.get_arg_val(0), page_size=2048)
        for i in range(k.get_arg_val(1)):
            k.cb_reserve_back(0, 1)
            k.noc_async_read_tile(i, a, k.get_write_ptr(0))
            k.noc_async_read_barrier()
            k.cb_push_back(0, 1)

Timing (docs/cycle-model.md): each NoC call charges the RISC the cost of programming the
NIU (`noc.read_issue_cycles`, `noc.write_issue_cycles`, the cheaper `noc.stateful_*` pair
after a `*_set_state`, plus `noc.addrgen_cycles` for a page of an interleaved buffer), then
hands the transfer to ttsim.noc at that time. A barrier waits until the last transfer has
completed plus `noc.completion_latency` (the NIU counter update and the RISC's poll loop).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import CBError, NocError
from .memory import check_range
from .thread import caller_line


class NocAddr(NamedTuple):
    x: int
    y: int
    addr: int


class McastAddr(NamedTuple):
    x0: int
    y0: int
    x1: int
    y1: int
    addr: int


class AddrGen:
    """Pages of an interleaved buffer: page i lives in bank i % n at base + (i // n) * page_size."""
    __slots__ = ("base", "page_size", "banks", "n")

    def __init__(self, base, page_size, banks):
        self.base, self.page_size, self.banks, self.n = base, page_size, banks, len(banks)

    def get_noc_addr(self, page, offset=0):
        x, y = self.banks[page % self.n]
        return NocAddr(x, y, self.base + (page // self.n) * self.page_size + offset)


class KernelContext:
    """What every kernel sees: who it is, its arguments, and the CBs of its core."""

    def __init__(self, engine, core, kind, args, compile_args):
        self._e = engine
        self.core = core                                  # logical (x, y)
        self.my_x, self.my_y = engine.sd.worker_noc_xy(*core)
        self._args = list(args)
        self._ct_args = list(compile_args)
        self._cbs = engine.cbs[core]
        self._c = engine.costs
        self._th = None                                   # set by the engine

    @property
    def kind(self):
        return self._th.kind

    def get_arg_val(self, i):
        if not 0 <= i < len(self._args):
            raise IndexError(f"runtime arg {i} asked for, but this kernel on core {self.core} "
                             f"has {len(self._args)}")
        return self._args[i]

    def get_compile_time_arg_val(self, i):
        if not 0 <= i < len(self._ct_args):
            raise IndexError(f"compile-time arg {i} asked for, but the kernel has {len(self._ct_args)}")
        return self._ct_args[i]

    @property
    def args(self):
        return self._args

    def grid_size(self):
        return self._e.sd.worker_grid()

    def pin_line(self, line):
        """Charge every call from now on to `line` (file, lineno), or back to the caller's
        own line with None; returns the line pinned before. A compiler that runs generated
        code for one statement of its language pins that statement's line: cheaper than
        finding it from the stack on every call."""
        prev = self._th.pinned
        for th in self._pin_threads():
            th.pinned = line
        return prev

    def _pin_threads(self):
        return (self._th,)

    def wall_clock(self):
        """This RISC's cycle counter now (tt-metal kernels read the wall-clock register to
        time a region). Reading it is modelled as free: one register read."""
        return int(self._th.t)

    def read_l1(self, addr, nbytes):
        """The bytes at an address of this core's L1 (a pointer dereference; not timed)."""
        return self._e.l1[self.core].mem[addr:addr + nbytes].copy()

    def write_l1(self, addr, data):
        """Store bytes into this core's L1 (a pointer store; not timed)."""
        data = np.asarray(data).view(np.uint8).reshape(-1)
        mem = self._e.l1[self.core].mem
        ln = caller_line()
        check_range(mem, addr, data.size, "write_l1", self.core, self._th.kind, ln)
        cb = self._e.cb_at(self.core, addr, data.size)
        if cb is not None:
            cb.wrote(addr, data.size, self._th, ln, "write_l1")
        mem[addr:addr + data.size] = data

    def _cb(self, cb, line):
        try:
            return self._cbs[cb]
        except KeyError:
            raise CBError(f"cb {cb} is not allocated on this core (allocated: "
                          f"{sorted(self._cbs) or 'none'})", core=self.core,
                          thread=self._th.kind, line=line, cb=cb) from None

    def _tile_fmt(self, cb):
        return self._cbs[cb].fmt


class DataMovementContext(KernelContext):
    def __init__(self, engine, core, kind, noc, args, compile_args):
        super().__init__(engine, core, kind, args, compile_args)
        self.noc_index = noc
        self._read_done = 0.0
        self._write_acked = 0.0
        self._write_landed = 0.0
        self._noc = engine.noc
        self._mcast_cache = {}                            # rectangle -> destinations
        self._cmd_free = {}                               # (noc, buffer) -> free after a multicast
        self._read_state = None                           # (noc, x, y) after *_set_state
        self._write_state = None
        c = engine.costs
        self._c_read = c["noc.read_issue_cycles"]
        self._c_write = c["noc.write_issue_cycles"]
        self._c_read_state = c["noc.stateful_read_issue_cycles"]
        self._c_write_state = c["noc.stateful_write_issue_cycles"]
        self._c_set_state = c["noc.set_state_cycles"]
        self._c_addrgen = c["noc.addrgen_cycles"]
        self._c_done = c["noc.completion_latency"]
        self._c_barrier = c["cost.api.barrier"]
        self._c_sem = c["cost.api.semaphore"]
        self._rules = {"l1": int(c["noc.l1_align_bytes"]),
                       "dram_read": int(c["noc.dram_read_align_bytes"]),
                       "dram_write": int(c["noc.dram_write_align_bytes"])}

    # --- circular buffers ---------------------------------------------------------------
    def cb_reserve_back(self, cb, n):
        ln = self._th.pinned or caller_line()
        self._cb(cb, ln).reserve(self._th, n, ln)
        self._th.charge(self._c["cost.api.cb_reserve_back"], "cb_reserve_back", ln)

    def cb_push_back(self, cb, n):
        ln = self._th.pinned or caller_line()
        self._th.charge(self._c["cost.api.cb_push_back"], "cb_push_back", ln)
        self._cb(cb, ln).push(self._th, n, ln)

    def cb_wait_front(self, cb, n):
        ln = self._th.pinned or caller_line()
        self._cb(cb, ln).wait(self._th, n, ln)
        self._th.charge(self._c["cost.api.cb_wait_front"], "cb_wait_front", ln)

    def cb_pop_front(self, cb, n):
        ln = self._th.pinned or caller_line()
        self._th.charge(self._c["cost.api.cb_pop_front"], "cb_pop_front", ln)
        self._cb(cb, ln).pop(self._th, n, ln)

    def get_write_ptr(self, cb):
        return self._cb(cb, None).write_ptr()

    def get_read_ptr(self, cb):
        return self._cb(cb, None).read_ptr()

    def cb_pages_available_at_front(self, cb, n):
        c = self._cb(cb, None)
        return c.pushed - c.popped >= n

    # --- addresses ----------------------------------------------------------------------
    def get_noc_addr(self, x, y, addr=0):
        return NocAddr(x, y, addr)

    def get_noc_multicast_addr(self, x0, y0, x1, y1, addr):
        return McastAddr(x0, y0, x1, y1, addr)

    def interleaved_addr_gen(self, base, page_size=None, dram=True):
        """Address generator for an interleaved buffer; `base` may be a host Tensor."""
        if hasattr(base, "address"):
            page_size = page_size or base.page_size
            dram = base.memory == "dram"
            base = base.address
        if page_size is None:
            raise ValueError("interleaved_addr_gen needs page_size for a raw address")
        return AddrGen(base, page_size, self._e.bank_xys(dram))

    def logical_to_noc(self, x, y):
        return self._e.sd.worker_noc_xy(x, y)

    # --- NoC transfers ------------------------------------------------------------------
    def _mem(self, xy, ln):
        m = self._e.mem_at(xy)
        if m is None:
            raise NocError(f"NoC address ({xy[0]},{xy[1]}) is neither a worker core nor a DRAM bank",
                           core=self.core, thread=self._th.kind, line=ln)
        return m

    def _issue(self, ln, name, cycles):
        """Charge the RISC's cost of programming the NIU, then hand over at global time."""
        th = self._th
        th.charge(cycles, name, ln)
        th.sync(ln)
        return th.t

    _RULE = {"l1": ("L1 addresses", "noc.l1_align_bytes"),
             "dram_read": ("DRAM addresses a read", "noc.dram_read_align_bytes"),
             "dram_write": ("DRAM addresses a write", "noc.dram_write_align_bytes")}

    def _align(self, name, addr, kind, ln, what):
        """The NoC moves aligned data only: an address off its rule (L1, DRAM read source,
        DRAM write destination) would be silently rounded by the hardware, so it is an error."""
        a = self._rules[kind]
        if addr % a:
            rule, fig = self._RULE[kind]
            raise NocError(f"{name}: {what} address {addr:#x} is not {a}-byte aligned "
                           f"({self._e.sd.name}: {rule} must be multiples of {a} B, {fig}; "
                           f"{addr:#x} is {addr % a} past {addr - addr % a:#x})",
                           core=self.core, thread=self._th.kind, line=ln)

    def _kind(self, xy, write):
        if xy in self._e.worker_at:
            return "l1"
        return "dram_write" if write else "dram_read"

    def _cb_pages(self, xy, addr, size, ln, what, write):
        """A NoC access to CB pages of a worker's L1: writes must land in reserved pages,
        reads must find data written for the page (see CircularBuffer.wrote/read_bytes)."""
        e = self._e
        core = self.core if xy is None else e.worker_at.get(xy)
        if core is None:
            return
        cb = e.cb_at(core, addr, size)
        if cb is not None:
            other = None if core == self.core else core
            if write:
                cb.wrote(addr, size, self._th, ln, what, other)
            else:
                cb.read_bytes(addr, size, self._th, ln, what, other)

    def _read(self, src, dst_l1, size, noc, ln, name, cycles):
        t = self._issue(ln, name, cycles)
        src_mem = self._mem((src.x, src.y), ln)
        me = self._e.l1[self.core].mem
        check_range(src_mem, src.addr, size, f"{name} source", self.core, self._th.kind, ln)
        check_range(me, dst_l1, size, f"{name} destination", self.core, self._th.kind, ln)
        self._align(name, src.addr, self._kind((src.x, src.y), False), ln, "source")
        self._align(name, dst_l1, "l1", ln, "destination")
        self._cb_pages((src.x, src.y), src.addr, size, ln, name, False)
        self._cb_pages(None, dst_l1, size, ln, name, True)
        me[dst_l1:dst_l1 + size] = src_mem[src.addr:src.addr + size]
        # the RISC sees the NIU's read counter completion-latency cycles after the data lands
        seen = self._noc.read(t, self.noc_index if noc is None else noc, (self.my_x, self.my_y),
                              (src.x, src.y), size) + self._c_done
        if seen > self._read_done:
            self._read_done = seen

    def noc_async_read(self, src, dst_l1, size, noc=None):
        ln = self._th.pinned or caller_line()
        self._read(src, dst_l1, size, noc, ln, "noc_async_read", self._c_read)

    def noc_async_read_tile(self, page, addrgen, dst_l1, noc=None):
        """Read page `page` of an interleaved buffer; finding its bank and offset costs
        `noc.addrgen_cycles` on top of the issue."""
        ln = self._th.pinned or caller_line()
        self._read(addrgen.get_noc_addr(page), dst_l1, addrgen.page_size, noc, ln,
                   "noc_async_read_tile", self._c_read + self._c_addrgen)

    def noc_async_read_set_state(self, src, noc=None):
        """Stateful issue: program the NIU's read command buffer with the source core or bank
        (src.x, src.y) once; later `noc_async_read_with_state` calls only set addresses and
        size, which costs less per issue (tt-metal's noc_async_read_set_state)."""
        ln = self._th.pinned or caller_line()
        self._mem((src.x, src.y), ln)
        self._th.charge(self._c_set_state, "noc_async_read_set_state", ln)
        self._read_state = (self.noc_index if noc is None else noc, src.x, src.y)

    def noc_async_read_with_state(self, src_addr, dst_l1, size):
        """Read `size` bytes at `src_addr` of the endpoint set by noc_async_read_set_state."""
        ln = self._th.pinned or caller_line()
        if self._read_state is None:
            raise NocError("noc_async_read_with_state before noc_async_read_set_state: the read "
                           "command buffer has no source", core=self.core, thread=self._th.kind,
                           line=ln)
        noc, x, y = self._read_state
        self._read(NocAddr(x, y, src_addr), dst_l1, size, noc, ln, "noc_async_read_with_state",
                   self._c_read_state)

    def noc_async_write(self, src_l1, dst, size, noc=None):
        ln = self._th.pinned or caller_line()
        self._write(src_l1, dst, size, noc, ln, "noc_async_write", self._c_write)

    def noc_async_write_tile(self, page, addrgen, src_l1, noc=None):
        """Write page `page` of an interleaved buffer (address generation as for reads)."""
        ln = self._th.pinned or caller_line()
        self._write(src_l1, addrgen.get_noc_addr(page), addrgen.page_size, noc, ln,
                    "noc_async_write_tile", self._c_write + self._c_addrgen)

    def noc_async_write_set_state(self, dst, noc=None):
        """Stateful issue for writes: program the destination core or bank once (see
        noc_async_read_set_state)."""
        ln = self._th.pinned or caller_line()
        self._mem((dst.x, dst.y), ln)
        self._th.charge(self._c_set_state, "noc_async_write_set_state", ln)
        self._write_state = (self.noc_index if noc is None else noc, dst.x, dst.y)

    def noc_async_write_with_state(self, src_l1, dst_addr, size):
        """Write `size` bytes from `src_l1` to `dst_addr` of the endpoint set by
        noc_async_write_set_state."""
        ln = self._th.pinned or caller_line()
        if self._write_state is None:
            raise NocError("noc_async_write_with_state before noc_async_write_set_state: the "
                           "write command buffer has no destination", core=self.core,
                           thread=self._th.kind, line=ln)
        noc, x, y = self._write_state
        self._write(src_l1, NocAddr(x, y, dst_addr), size, noc, ln, "noc_async_write_with_state",
                    self._c_write_state)

    def _write(self, src_l1, dst, size, noc, ln, name, cycles):
        t = self._issue(ln, name, cycles)
        if self._cmd_free:
            t = self._cmd_buf(t, (self.noc_index if noc is None else noc, "wr"), ln)
        dst_mem = self._mem((dst.x, dst.y), ln)
        me = self._e.l1[self.core].mem
        check_range(me, src_l1, size, f"{name} source", self.core, self._th.kind, ln)
        check_range(dst_mem, dst.addr, size, f"{name} destination", self.core, self._th.kind, ln)
        self._align(name, src_l1, "l1", ln, "source")
        self._align(name, dst.addr, self._kind((dst.x, dst.y), True), ln, "destination")
        self._cb_pages(None, src_l1, size, ln, name, False)
        self._cb_pages((dst.x, dst.y), dst.addr, size, ln, name, True)
        dst_mem[dst.addr:dst.addr + size] = me[src_l1:src_l1 + size]
        landed, acked = self._noc.write(t, self.noc_index if noc is None else noc,
                                        (self.my_x, self.my_y), (dst.x, dst.y), size)
        self._wrote(landed, acked)

    def _wrote(self, landed, acked):
        """Note a write's completion times as the RISC will see them (completion latency)."""
        d = self._c_done
        if landed + d > self._write_landed:
            self._write_landed = landed + d
        if acked + d > self._write_acked:
            self._write_acked = acked + d

    def noc_async_write_multicast(self, src_l1, mcast, size, num_dests=None, linked=False,
                                  noc=None, include_self=False):
        """Write `size` bytes from `src_l1` to the same address on every worker core of the
        rectangle but this one (tt-metal's noc_async_write_multicast). `linked` keeps the
        path reserved, so the next multicast to the same rectangle from this RISC's NoC skips
        the reservation (tt-metal's `linked`: send the data linked, then the semaphore).
        `include_self` is the loopback form (noc_async_write_multicast_loopback_src)."""
        ln = self._th.pinned or caller_line()
        self._mcast_write(src_l1, mcast, size, num_dests, linked, noc, include_self, ln,
                          "noc_async_write_multicast_loopback_src" if include_self
                          else "noc_async_write_multicast")

    def noc_async_write_multicast_loopback_src(self, src_l1, mcast, size, num_dests=None,
                                               linked=False, noc=None):
        """As noc_async_write_multicast, and this core, inside the rectangle, receives too."""
        ln = self._th.pinned or caller_line()
        self._mcast_write(src_l1, mcast, size, num_dests, linked, noc, True, ln,
                          "noc_async_write_multicast_loopback_src")

    def _cmd_buf(self, t, key, ln):
        """A multicast keeps its NIU command buffer until its data has left (after the path
        reservation): the next command on that buffer waits, and so does the RISC."""
        free = self._cmd_free.get(key)
        if free is not None and free > t:
            self._th.stall_until(free, "noc command buffer", ln)
            self._th.sync(ln)
            return self._th.t
        return t

    def _mcast_write(self, src_l1, mcast, size, num_dests, linked, noc, include_self, ln, name):
        noc = self.noc_index if noc is None else noc
        t = self._cmd_buf(self._issue(ln, name, self._c_write), (noc, "wr"), ln)
        me = self._e.l1[self.core].mem
        check_range(me, src_l1, size, "multicast source", self.core, self._th.kind, ln)
        cores = self._mcast_cores(mcast, include_self, num_dests, ln)
        self._align(name, src_l1, "l1", ln, "source")
        a = mcast.addr
        self._align(name, a, "l1", ln, "destination")
        self._cb_pages(None, src_l1, size, ln, name, False)
        data = me[src_l1:src_l1 + size]
        e, th, mine = self._e, self._th, self.core
        for xy, core, m in self._mcast_mems(cores):
            check_range(m, a, size, "multicast destination", mine, th.kind, ln)
            cb = e.cb_at(core, a, size)
            if cb is not None:
                cb.wrote(a, size, th, ln, name, None if core == mine else core)
            m[a:a + size] = data
        landed, acked, sent = self._noc.multicast_write(
            t, noc, (self.my_x, self.my_y), (mcast.x0, mcast.y0, mcast.x1, mcast.y1), size,
            include_self, linked)
        self._cmd_free[(noc, "wr")] = sent
        self._wrote(landed, acked)

    def _mcast_mems(self, cores):
        """(NoC xy, logical core, L1 bytes) per destination, cached per destination list."""
        r = self._mcast_cache.get(cores)
        if r is None:
            e = self._e
            r = self._mcast_cache[cores] = tuple((xy, e.worker_at[xy], e.mem_at(xy)) for xy in cores)
        return r

    def _mcast_cores(self, m, include_self, num_dests, ln):
        key = (m.x0, m.y0, m.x1, m.y1, include_self)
        cores = self._mcast_cache.get(key)
        if cores is None:
            sd = self._e.sd
            xs = [x for x in sd.worker_x if min(m.x0, m.x1) <= x <= max(m.x0, m.x1)]
            ys = [y for y in sd.worker_y if min(m.y0, m.y1) <= y <= max(m.y0, m.y1)]
            me = (self.my_x, self.my_y)
            cores = self._mcast_cache[key] = tuple((x, y) for y in ys for x in xs
                                                   if include_self or (x, y) != me)
        me = (self.my_x, self.my_y)
        if not cores:
            raise NocError(f"multicast rectangle ({m.x0},{m.y0})-({m.x1},{m.y1}) holds no worker core",
                           core=self.core, thread=self._th.kind, line=ln)
        if num_dests is not None and num_dests != len(cores):
            raise NocError(f"multicast says num_dests={num_dests} but the rectangle "
                           f"({m.x0},{m.y0})-({m.x1},{m.y1}) holds {len(cores)} destination cores"
                           f"{' (this core included: loopback)' if include_self and me in cores else ''}",
                           core=self.core, thread=self._th.kind, line=ln)
        return cores

    def noc_async_read_barrier(self):
        ln = self._th.pinned or caller_line()
        th = self._th
        th.charge(self._c_barrier, "noc_async_read_barrier", ln)
        th.stall_until(self._read_done, "noc read", ln)

    def noc_async_write_barrier(self):
        ln = self._th.pinned or caller_line()
        th = self._th
        th.charge(self._c_barrier, "noc_async_write_barrier", ln)
        th.stall_until(self._write_acked, "noc write", ln)

    def noc_async_writes_flushed(self):
        ln = self._th.pinned or caller_line()
        th = self._th
        th.charge(self._c_barrier, "noc_async_writes_flushed", ln)
        th.stall_until(self._write_landed, "noc write", ln)

    # --- semaphores ---------------------------------------------------------------------
    def get_semaphore(self, sem_id):
        try:
            return self._e.semaphores[self.core][sem_id]
        except (KeyError, IndexError):
            raise NocError(f"semaphore {sem_id} is not created on core {self.core}",
                           core=self.core, thread=self._th.kind, line=caller_line()) from None

    def _sem_value(self, addr):
        return int(self._e.l1[self.core].mem[addr:addr + 4].view(np.uint32)[0])

    def noc_semaphore_set(self, addr, value):
        ln = self._th.pinned or caller_line()
        self._th.charge(self._c_sem, "noc_semaphore_set", ln)
        self._th.sync(ln)
        self._e.sem_write((self.my_x, self.my_y), addr, value)

    def _sem_wait(self, addr, ok, what, ln):
        th = self._th
        th.charge(self._c_sem, "noc_semaphore_wait", ln)
        th.sync(ln)
        while not ok(self._sem_value(addr)):
            ev = self._e.env.event()
            self._e.sem_waiters.setdefault(((self.my_x, self.my_y), addr), []).append(ev)
            th.block(ev, f"semaphore {addr:#x} {what} (now {self._sem_value(addr)})", ln)
            th.stall_until(self._e.env.now, "semaphore", ln)

    def noc_semaphore_wait(self, addr, value):
        ln = self._th.pinned or caller_line()
        self._sem_wait(addr, lambda v: v == value, f"== {value}", ln)

    def noc_semaphore_wait_min(self, addr, value):
        ln = self._th.pinned or caller_line()
        self._sem_wait(addr, lambda v: v >= value, f">= {value}", ln)

    def noc_semaphore_inc(self, dst, incr=1, noc=None):
        ln = self._th.pinned or caller_line()
        t = self._issue(ln, "noc_semaphore_inc", self._c_write)
        if self._e.mem_at((dst.x, dst.y)) is None:
            raise NocError(f"semaphore increment to ({dst.x},{dst.y}), which is not a worker core",
                           core=self.core, thread=self._th.kind, line=ln)
        at = self._noc.atomic_inc(t, self.noc_index if noc is None else noc,
                                  (self.my_x, self.my_y), (dst.x, dst.y))
        self._e.at(at, lambda: self._e.sem_add((dst.x, dst.y), dst.addr, incr))

    def noc_semaphore_set_remote(self, src_l1, dst, noc=None):
        ln = self._th.pinned or caller_line()
        t = self._issue(ln, "noc_semaphore_set_remote", self._c_write)
        value = self._sem_value(src_l1)
        self._align("noc_semaphore_set_remote", src_l1, "l1", ln, "source")
        self._align("noc_semaphore_set_remote", dst.addr, "l1", ln, "destination")
        landed, acked = self._noc.write(t, self.noc_index if noc is None else noc,
                                        (self.my_x, self.my_y), (dst.x, dst.y), 4)
        self._write_acked = max(self._write_acked, acked + self._c_done)
        self._e.at(landed, lambda: self._e.sem_write((dst.x, dst.y), dst.addr, value))

    def noc_semaphore_set_multicast(self, src_l1, mcast, num_dests=None, linked=False, noc=None,
                                    include_self=False):
        """Multicast the 4-byte semaphore word at `src_l1` to the same address on every core of
        the rectangle but this one (with `include_self`, this one too: the loopback form)."""
        ln = self._th.pinned or caller_line()
        self._sem_mcast(src_l1, mcast, num_dests, linked, noc, include_self, ln,
                        "noc_semaphore_set_multicast_loopback_src" if include_self
                        else "noc_semaphore_set_multicast")

    def noc_semaphore_set_multicast_loopback_src(self, src_l1, mcast, num_dests=None,
                                                 linked=False, noc=None):
        ln = self._th.pinned or caller_line()
        self._sem_mcast(src_l1, mcast, num_dests, linked, noc, True, ln,
                        "noc_semaphore_set_multicast_loopback_src")

    def _sem_mcast(self, src_l1, mcast, num_dests, linked, noc, include_self, ln, name):
        noc = self.noc_index if noc is None else noc
        # tt-metal sends semaphore words from the register command buffer, not the data one
        t = self._cmd_buf(self._issue(ln, name, self._c_write), (noc, "reg"), ln)
        value = self._sem_value(src_l1)
        cores = self._mcast_cores(mcast, include_self, num_dests, ln)
        self._align(name, src_l1, "l1", ln, "source")
        self._align(name, mcast.addr, "l1", ln, "destination")
        landed, acked, sent = self._noc.multicast_write(
            t, noc, (self.my_x, self.my_y), (mcast.x0, mcast.y0, mcast.x1, mcast.y1), 4,
            include_self, linked)
        self._cmd_free[(noc, "reg")] = sent
        self._write_acked = max(self._write_acked, acked + self._c_done)

        def apply():
            for xy in cores:
                self._e.sem_write(xy, mcast.addr, value)
        self._e.at(landed, apply)
