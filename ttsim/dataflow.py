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

from bisect import bisect_right
from typing import NamedTuple

import numpy as np

from .errors import AccessError, ArgumentError, CBError, NocError, TTSimError
from .errors import where as errors_where
from .thread import caller_line

U32 = 1 << 32


def as_int(v):
    """`v` as a plain int if it is an integer (a Python or numpy integer or a CbPtr, not a
    bool), else None."""
    c = v.__class__
    if c is int:
        return v
    if c is CbPtr:
        return int(v)
    if c is bool:
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    return None


class CbPtr(int):
    """An L1 address from get_write_ptr / get_read_ptr: an int that remembers the CB it
    points into, and keeps remembering it through `+` and `-` of a number. An access made
    at such an address must stay inside that CB (on this core, or at the same address of
    another core's CB of that index): past its end is the next CB, which the chip would
    silently overwrite."""

    def __new__(cls, value, cb):
        p = int.__new__(cls, value)
        p.cb = cb
        return p

    def __add__(self, o):
        if o.__class__ is CbPtr:
            return int(self) + int(o)
        if isinstance(o, np.integer):
            o = int(o)
        r = int.__add__(self, o)
        return r if r is NotImplemented else CbPtr(r, self.cb)

    __radd__ = __add__

    def __sub__(self, o):
        if o.__class__ is CbPtr:
            return int(self) - int(o)
        if isinstance(o, np.integer):
            o = int(o)
        r = int.__sub__(self, o)
        return r if r is NotImplemented else CbPtr(r, self.cb)


class NocAddr(NamedTuple):
    x: int
    y: int
    addr: int


class PageAddr(NocAddr):
    """The NoC address of a page of a tensor (AddrGen.get_noc_addr on a tensor's address
    generator): `page` is (tensor, page index, number of banks, end of the page), so a
    transfer there must stay inside that page."""


def _cores_text(cores):
    """NoC coordinates of multicast destinations, for a message: their bounding rectangle."""
    xs, ys = [c[0] for c in cores], [c[1] for c in cores]
    return f"({min(xs)},{min(ys)})-({max(xs)},{max(ys)}) ({len(cores)} cores)"


class McastAddr(NamedTuple):
    x0: int
    y0: int
    x1: int
    y1: int
    addr: int


def tensor_name(t):
    return (f"tensor {tuple(t.shape)} {t.dtype.value} ({t.num_pages} pages of {t.page_size} B "
            f"at {t.address:#x} in {t.memory.upper() if t.memory == 'dram' else t.memory})")


class AddrGen:
    """Pages of an interleaved buffer: page i lives in bank i % n at base + (i // n) * page_size.

    Made from a tensor, it knows how many pages there are: a page index past them (or
    negative) is an AccessError naming the tensor, and the address it gives remembers the
    page (PageAddr), so a transfer there may not run into the next page."""
    __slots__ = ("base", "page_size", "banks", "n", "tensor", "ctx")

    def __init__(self, base, page_size, banks, tensor=None, ctx=None):
        self.base, self.page_size, self.banks, self.n = base, page_size, banks, len(banks)
        self.tensor, self.ctx = tensor, ctx

    def get_noc_addr(self, page, offset=0):
        t = self.tensor
        if page.__class__ is not int or page < 0 or (t is not None and page >= t.num_pages):
            page = self._bad_page(page)
        if offset.__class__ is not int or offset and t is not None:
            offset = self._offset(page, offset)
        x, y = self.banks[page % self.n]
        a = self.base + (page // self.n) * self.page_size
        if t is None:
            return NocAddr(x, y, a + offset)
        r = PageAddr(x, y, a + offset)
        r.page = (t, page, self.n, a + self.page_size)
        return r

    def _raise(self, msg):
        c = self.ctx
        th = c._th if c is not None else None
        raise AccessError(msg, core=th and th.core, thread=th and th.kind,
                          line=th and (th.pinned or caller_line()))

    def _bad_page(self, page):
        p = as_int(page)
        t = self.tensor
        if p is None:
            self._raise(f"page index {page!r} is not an integer")
        if p < 0:
            self._raise(f"page {p} of " + (tensor_name(t) if t is not None else
                        f"the interleaved buffer at {self.base:#x}") + ": page indices start at 0")
        if t is not None and p >= t.num_pages:
            self._raise(f"page {p} of {tensor_name(t)}: it has pages 0..{t.num_pages - 1}; page "
                        f"{p} would be bytes of whatever lies after it in bank {p % self.n}")
        return p

    def _offset(self, page, offset):
        o = as_int(offset)
        if o is None:
            self._raise(f"offset {offset!r} into page {page} is not an integer")
        if self.tensor is not None and not 0 <= o < self.page_size:
            self._raise(f"offset {o} into page {page} of {tensor_name(self.tensor)} is outside "
                        f"the page (0..{self.page_size - 1})")
        return o


def _indices(args):
    return f"{len(args)} (indices 0..{len(args) - 1})" if args else "none"


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
        self._wc_busy = -1.0                              # busy time at the last wall_clock()

    @property
    def kind(self):
        return self._th.kind

    def __getattr__(self, name):
        """Reached only for a name this context lacks: a call that belongs to the other kind
        of kernel (a compute call on a reader's k, a NoC call on the compute kernel's) says
        so at the kernel's line, instead of an AttributeError."""
        if not name.startswith("_"):
            from .compute import _API as compute_api
            dm = isinstance(self, DataMovementContext)
            if dm and name in compute_api or not dm and hasattr(DataMovementContext, name):
                mine, theirs = (("a data-movement kernel (reader or writer)", "the compute kernel")
                                if dm else ("the compute kernel", "data-movement kernels (reader, writer)"))
                raise TTSimError(f"k.{name} is an API call of {theirs}; this k belongs to {mine}: "
                                 f"move the call to a kernel of that kind", line=caller_line())
        raise AttributeError(f"{'compute' if not isinstance(self, DataMovementContext) else 'data-movement'} "
                             f"kernel API has no {name!r}")

    def get_arg_val(self, i):
        n = i if i.__class__ is int else as_int(i)
        if n is None or not 0 <= n < len(self._args):
            raise self._fail(ArgumentError, f"runtime arg {i!r} asked for, but this kernel on "
                             f"core ({self.core[0]},{self.core[1]}) has {_indices(self._args)}", caller_line())
        return self._args[n]

    def get_compile_time_arg_val(self, i):
        n = i if i.__class__ is int else as_int(i)
        if n is None or not 0 <= n < len(self._ct_args):
            raise self._fail(ArgumentError, f"compile-time arg {i!r} asked for, but the kernel "
                             f"has {_indices(self._ct_args)}", caller_line())
        return self._ct_args[n]

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
        time a region). Reading it is modelled as free: one register read; but a read with
        no work since the last one (a loop that waits for time to pass) costs a cycle, so
        such a loop ends (or meets the cycle limit) instead of spinning forever."""
        th = self._th
        if th.busy == self._wc_busy:
            th.charge(1, "wall_clock", th.pinned or caller_line())
        self._wc_busy = th.busy
        return int(th.t)

    def read_l1(self, addr, nbytes):
        """The bytes at an address of this core's L1 (a pointer dereference). It costs one
        L1 load (`cost.api.get_arg`) and is read at global time (the thread takes its turn
        first), so a kernel may poll a word another thread writes; one that polls a value
        nothing can change any more is a LivelockError."""
        th = self._th
        ln = th.pinned or caller_line()
        th.charge(self._c["cost.api.get_arg"], "read_l1", ln)
        th.sync(ln)
        a, n = self._l1_range(self.core, addr, nbytes, ln, "read_l1")
        cb = self._l1_check(self.core, addr, a, n, ln, "read_l1", None)
        if cb is not None and cb.reserved_upto:
            cb.peek(a, n, th, ln, "read_l1")
        elif cb is None:
            w = self._e.l1_landed.get((self.core, a))
            if w is not None and w[0] > th.t:
                self._l1_race(self.core, a, th.t, w, "read_l1", ln)
        data = self._e.l1[self.core].mem[a:a + n].copy()
        self._e.poll(th, ("read_l1", a, n), data.tobytes(), ln,
                     lambda: f"read_l1({a:#x}, {n}) = 0x{data[:16].tobytes().hex()}"
                             f"{'...' if n > 16 else ''} (in {self._e.l1_region(self.core, a)[2]})",
                     self._c["cost.api.get_arg"])
        return data

    def write_l1(self, addr, data):
        """Store bytes into this core's L1 (a pointer store; not timed, but made at global
        time, as read_l1 reads)."""
        th = self._th
        ln = th.pinned or caller_line()
        arr = np.asarray(data)
        if arr.dtype.kind not in "biuf":
            raise self._fail(ArgumentError, f"write_l1: data must be a numpy array (or list) of "
                             f"numbers, got {type(data).__name__} of dtype {arr.dtype}", ln)
        data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
        th.sync(ln)
        a, n = self._l1_range(self.core, addr, data.size, ln, "write_l1")
        self._l1_check(self.core, addr, a, n, ln, "write_l1", True)
        self._e.l1[self.core].mem[a:a + n] = data

    # --- checking accesses ----------------------------------------------------------------
    def _fail(self, cls, msg, ln):
        th = self._th
        return cls(msg, core=self.core, thread=th.kind if th is not None else None, line=ln)

    def _count(self, v, what, ln, lo=1, hi=None):
        """`v` as an int in [lo, hi): a count, size or value given to an API call."""
        n = as_int(v)
        if n is None or n < lo or (hi is not None and n >= hi):
            rng = (f"a whole number >= {lo}" if hi is None else
                   f"a whole number in [{lo}, {hi - 1}]")
            kind = "not an integer" if n is None else "out of range"
            raise self._fail(ArgumentError, f"{what} must be {rng}, got {v!r} ({kind})", ln)
        return int(n)

    def _l1_range(self, core, addr, size, ln, what):
        """(address, size) as ints for an access of `core`'s L1, inside the L1."""
        a = as_int(addr)
        if a is None:
            raise self._fail(AccessError, f"{what}: address {addr!r} is not an integer", ln)
        n = size if size.__class__ is int and size > 0 else \
            self._count(size, f"{what}: the size in bytes", ln)
        top = self._e.l1[core].size
        if a < 0 or a + n > top:
            raise self._fail(AccessError, f"{what}: bytes [{a:#x}, {a + n:#x}) are outside the "
                             f"L1 of core ({core[0]},{core[1]}), which spans [0x0, {top:#x}) "
                             f"({top} B)", ln)
        return a, n

    def _l1_check(self, core, addr, a, n, ln, what, write):
        """An access of bytes [a, a + n) of `core`'s L1 (`addr` as the kernel gave it): it
        must fall inside one region. In a CB, the CB's page rules apply (writes land in
        reserved pages, reads find data written for the page; write=None checks only that
        it stays inside the CB); an address from a CB's pointer must stay in that CB;
        elsewhere it must not touch the firmware region or run from one allocation into
        the next (a semaphore, an L1 tensor, unallocated L1). Returns the CB the bytes are
        in, or None."""
        e = self._e
        cb = e.cb_at(core, a, n)
        if cb is not None:
            other = None if core == self.core else core
            if write:
                cb.wrote(a, n, self._th, ln, what, other)
            elif write is False:
                cb.read_bytes(a, n, self._th, ln, what, other)
            else:
                cb.slots(a, n, self._th, ln, what)
        src = getattr(addr, "cb", None)
        if src is not None and (cb is None or cb.index != src):
            reg = e.l1_region(core, a)
            mine = e.cbs[core].get(src)
            span = (f", whose pages span [{mine.base:#x}, {mine.end:#x})" if mine is not None
                    else f" (core ({core[0]},{core[1]}) has no cb {src})")
            raise self._fail(AccessError, f"{what}: bytes [{a:#x}, {a + n:#x}) of core "
                             f"({core[0]},{core[1]}) are addressed from cb {src}'s pointer "
                             f"(get_write_ptr / get_read_ptr) but fall outside cb {src}{span}: "
                             f"they land in {reg[2]}", ln)
        if cb is None:
            reg = e.l1_region(core, a)
            if reg[3] == "firmware" or a + n > reg[1]:
                if reg[3] == "firmware":
                    where = f"start in {reg[2]}, which kernels may not touch"
                else:
                    nxt = e.l1_region(core, reg[1])
                    where = (f"run past the end of {reg[2]} [{reg[0]:#x}, {reg[1]:#x}) into "
                             f"{nxt[2]}")
                raise self._fail(AccessError, f"{what}: bytes [{a:#x}, {a + n:#x}) of core "
                                 f"({core[0]},{core[1]})'s L1 {where}", ln)
        return cb

    def _cb(self, cb, line):
        if cb.__class__ is int:
            try:
                return self._cbs[cb]
            except KeyError:
                pass
        i = cb if cb.__class__ is int else as_int(cb)    # not 1.0 or True for cb 1
        c = self._cbs.get(i) if i is not None else None
        if c is not None:
            return c
        what = (f"cb {cb!r} is not allocated on this core" if i is not None else
                f"cb index {cb!r} is not an integer (a CB is named by its integer index)")
        raise CBError(f"{what} (allocated: {sorted(self._cbs) or 'none'})", core=self.core,
                      thread=self._th.kind, line=line, cb=i)

    def _tile_fmt(self, cb):
        return self._cbs[cb].fmt


class DataMovementContext(KernelContext):
    def __init__(self, engine, core, kind, noc, args, compile_args):
        super().__init__(engine, core, kind, args, compile_args)
        self.noc_index = noc
        self._read_done = 0.0
        self._write_acked = 0.0
        self._atomic_acked = 0.0
        self._write_landed = 0.0
        self._noc = engine.noc
        self._nocs = engine.sd.num_nocs
        self._mcast_cache = {}                            # rectangle -> destinations
        self._cmd_free = {}                               # (noc, buffer) -> free after a multicast
        self._read_state = None                           # (noc, x, y) after *_set_state
        self._linked_open = {}                            # noc -> (destinations, line) held
        self._write_state = None
        self._wid = len(engine.dram_writers)              # this thread's id as a DRAM writer
        engine.dram_writers.append((core, kind))
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
        """L1 address of the page at the CB's back (a CbPtr: it remembers the CB)."""
        c = self._cbs.get(cb) if cb.__class__ is int else None
        if c is None:
            c = self._cb(cb, self._th.pinned or caller_line())
        return CbPtr(c.write_ptr(), c.index)

    def get_read_ptr(self, cb):
        """L1 address of the page at the CB's front (a CbPtr: it remembers the CB)."""
        c = self._cbs.get(cb) if cb.__class__ is int else None
        if c is None:
            c = self._cb(cb, self._th.pinned or caller_line())
        return CbPtr(c.read_ptr(), c.index)

    def _cb_poll(self, cb, n, name, cost_key):
        """A CB poll's common part: checks, the poll's cost, the thread's turn at global
        time. Returns (thread, line, CB, page count, cost)."""
        th = self._th
        ln = th.pinned or caller_line()
        c = self._cb(cb, ln)
        n = n if n.__class__ is int and n > 0 else self._count(n, f"{name}: the page count", ln)
        if n > c.capacity:
            raise CBError(f"{name}({c.index}, {n}) can never be true: {c.name} holds only "
                          f"{c.capacity} pages", core=self.core, thread=th.kind, line=ln,
                          cb=c.index)
        cost = self._c[cost_key]
        th.charge(cost, name, ln)
        th.sync(ln)
        return th, ln, c, n, cost

    def cb_pages_reservable_at_back(self, cb, n):
        """True if n pages past everything pushed are free by now (this thread's time; as
        cb_reserve_back, without waiting): the producer's poll, priced and answered as
        cb_pages_available_at_front is."""
        th, ln, c, n, cost = self._cb_poll(cb, n, "cb_pages_reservable_at_back",
                                           "cost.api.cb_reserve_back")
        free = c.capacity - (c.pushed - c.popped)
        last = c.pushed + n - 1 - c.capacity        # the page that must have been popped
        if n <= free and (last < 0 or c.pop_t[last % c.capacity] <= th.t):
            th.spins = 0
            return True
        self._e.poll(th, ("cb back", c.index, n), free if free < n else None, ln,
                     lambda: f"cb_pages_reservable_at_back({c.index}, {n}): {free} of "
                             f"{c.capacity} pages free, nothing can pop more", cost)
        return False

    def cb_pages_available_at_front(self, cb, n):
        """True if n pages past everything popped have been pushed by now (this thread's
        time; as cb_wait_front, without waiting). It costs what one poll of the CB's
        received counter does (`cost.api.cb_wait_front`) and is answered at global time
        (the thread takes its turn), so a kernel may spin on it; spinning when nothing can
        push any more is a LivelockError naming the line."""
        th, ln, c, n, cost = self._cb_poll(cb, n, "cb_pages_available_at_front",
                                           "cost.api.cb_wait_front")
        have = c.pushed - c.popped
        if n <= have and c.push_t[(c.popped + n - 1) % c.capacity] <= th.t:
            th.spins = 0
            return True
        # pushed but not yet by this thread's time: time alone will bring it, not a livelock
        self._e.poll(th, ("cb", c.index, n), have if have < n else None, ln,
                     lambda: f"cb_pages_available_at_front({c.index}, {n}): {have} of "
                             f"{c.capacity} pages there, nothing can push more", cost)
        return False

    # --- addresses ----------------------------------------------------------------------
    def get_noc_addr(self, x, y, addr=0):
        return NocAddr(x, y, addr)

    def get_noc_multicast_addr(self, x0, y0, x1, y1, addr):
        return McastAddr(x0, y0, x1, y1, addr)

    def interleaved_addr_gen(self, base, page_size=None, dram=True):
        """Address generator for an interleaved buffer; `base` may be a host Tensor."""
        tensor = None
        if hasattr(base, "address"):
            if getattr(base, "device", self._e.device) is not self._e.device:
                raise self._fail(AccessError, f"interleaved_addr_gen: {tensor_name(base)} was made "
                                 f"on another ttsim.Device (a {base.device.sd.name}) than the one "
                                 f"this program runs on (a {self._e.sd.name}): its address would "
                                 "read or write whatever this device holds there. Make the "
                                 "tensor with this program's Device", self._th.pinned or caller_line())
            if page_size is not None and page_size != base.page_size:
                raise self._fail(ArgumentError, f"interleaved_addr_gen({tensor_name(base)}, "
                                 f"page_size={page_size!r}): the tensor is interleaved in pages of "
                                 f"{base.page_size} B (page i in bank i % n at base + (i // n) * "
                                 f"page_size), so another page size addresses other bytes; leave "
                                 f"page_size out", self._th.pinned or caller_line())
            tensor = base
            page_size = base.page_size
            dram = base.memory == "dram"
            base = base.address
        ln = self._th.pinned or caller_line()
        if page_size is None:
            raise self._fail(ArgumentError, "interleaved_addr_gen needs page_size for a raw "
                             "address", ln)
        page_size = self._count(page_size, "interleaved_addr_gen: page_size", ln)
        base = self._count(base, "interleaved_addr_gen: the base address", ln, lo=0)
        return AddrGen(base, page_size, self._e.bank_xys(dram), tensor, self)

    def logical_to_noc(self, x, y):
        gx, gy = self._e.sd.worker_grid()
        if x.__class__ is not int or y.__class__ is not int or not (0 <= x < gx and 0 <= y < gy):
            cx, cy = as_int(x), as_int(y)
            if cx is None or cy is None or not (0 <= cx < gx and 0 <= cy < gy):
                raise self._fail(NocError, f"logical core ({x!r},{y!r}) is not on the {gx}x{gy} "
                                 f"worker grid of {self._e.sd.name}", caller_line())
            x, y = cx, cy
        return self._e.sd.worker_noc_xy(x, y)

    # --- NoC transfers ------------------------------------------------------------------
    def _mem(self, xy, ln):
        try:
            m = self._e.mem_at(xy)
        except TypeError:           # unhashable coordinates
            m = None
        if m is None:
            raise NocError(f"NoC address ({xy[0]!r},{xy[1]!r}) is neither a worker core nor a "
                           f"DRAM bank", core=self.core, thread=self._th.kind, line=ln)
        return m

    def _noc_id(self, noc, ln):
        if noc is None:
            return self.noc_index
        if noc.__class__ is int and 0 <= noc < self._nocs:
            return noc
        n = as_int(noc)
        if n is None or not 0 <= n < self._nocs:
            raise self._fail(NocError, f"NoC index {noc!r} does not exist: {self._e.sd.name} "
                             f"has NoC 0..{self._nocs - 1}", ln)
        return n

    def _not_addr(self, a, ln, what, mcast=False):
        """The error for an endpoint argument that is not a NoC address of the kind the call
        takes (a plain int, a tuple, a multicast address to a unicast call, ...)."""
        if mcast:
            hint = ("a unicast address (get_noc_addr): a multicast takes one from "
                    "get_noc_multicast_addr(x0, y0, x1, y1, addr)" if isinstance(a, NocAddr) else
                    "not a multicast address: make one with get_noc_multicast_addr(x0, y0, x1, "
                    "y1, addr)")
        elif isinstance(a, McastAddr):
            hint = ("a multicast address (get_noc_multicast_addr), which only "
                    "noc_async_write_multicast and noc_semaphore_set_multicast take")
        else:
            hint = ("not a NoC address: make one with get_noc_addr(x, y, addr) or an address "
                    "generator's get_noc_addr(page)")
        return self._fail(ArgumentError, f"{what}: {a!r} is {hint}", ln)

    def _at(self, xy, addr, size, ln, what):
        """The address of an access of `size` bytes at NoC endpoint `xy` (a worker's L1 or a
        DRAM bank) as an int, inside that memory's extent."""
        core = self._e.worker_at.get(xy)
        if core is not None:
            return self._l1_range(core, addr, size, ln, what)[0]
        a = as_int(addr)
        if a is None:
            raise self._fail(AccessError, f"{what}: address {addr!r} is not an integer", ln)
        return a

    def _region(self, xy, addr, a, size, ln, what, write, page=None):
        """Check that bytes [a, a + size) at endpoint `xy` (`addr` as the kernel gave it) fall
        inside what they target: in a worker's L1 one region (see _l1_check); in a DRAM bank
        one allocation, and the page of a tensor the address was made for."""
        e = self._e
        core = e.worker_at.get(xy)
        if core is not None:
            self._l1_check(core, addr, a, size, ln, what, write)
            return
        bank = e.bank_at[xy]
        if page is not None:
            t, p, n, hi = page
            if a + size > hi:
                nxt = (f"page {p + n} of the tensor" if p + n < t.num_pages else
                       "past the tensor's pages in that bank")
                raise self._fail(AccessError, f"{what}: bytes [{a:#x}, {a + size:#x}) from page {p} "
                                 f"of {tensor_name(t)} run past the end of that page ({hi:#x} in "
                                 f"DRAM bank {bank.id}) into {nxt}: an interleaved buffer's "
                                 f"consecutive pages are in different banks, so a transfer from a "
                                 f"page's address stays in that page (move one page a transfer, "
                                 f"or give a raw address, get_noc_addr(x, y, addr))", ln)
        regions = bank.regions
        i = bisect_right(regions, (a, float("inf"))) - 1
        if a < 0 or i < 0 or a >= regions[i][1]:
            raise self._fail(AccessError, f"{what}: bytes [{a:#x}, {a + size:#x}) of DRAM bank "
                             f"{bank.id} at ({xy[0]},{xy[1]}) are outside every DRAM allocation "
                             + (f"(bank {bank.id} holds buffers in [0x0, {bank.used:#x}))"
                                if bank.used else "(no DRAM buffer is allocated)"), ln)
        lo, hi = regions[i]
        if a + size > hi:
            nxt = e.dram_name(*regions[i + 1]) if i + 1 < len(regions) else "memory no buffer holds"
            raise self._fail(AccessError, f"{what}: bytes [{a:#x}, {a + size:#x}) of DRAM bank "
                             f"{bank.id} at ({xy[0]},{xy[1]}) run past the end of "
                             f"{e.dram_name(lo, hi)} into {nxt}", ln)
        if not write:
            bad = bank.first_unwritten(a, size)
            if bad is not None:
                where = (f"page {page[1]} of {tensor_name(page[0])}" if page is not None
                         else e.dram_name(lo, hi))
                e.warn(("unwritten", self.core, self._th.kind, ln, where),
                       f"{what} reads {where} (from byte {bad:#x} of DRAM bank {bank.id}), "
                       f"which nothing has written: "
                       f"DRAM is not cleared, so the chip reads whatever the bank held "
                       f"(ttsim: NaN); fill the tensor first (device.tensor, zeros, Tensor.write)",
                       where_=errors_where(self.core, self._th.kind, ln))

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

    def _read(self, src, dst_l1, size, noc, ln, name, cycles):
        t = self._issue(ln, name, cycles)
        noc = self._noc_id(noc, ln)
        try:
            sxy = (src.x, src.y)
        except AttributeError:
            raise self._not_addr(src, ln, f"{name} source") from None
        src_mem = self._mem(sxy, ln)
        me = self._e.l1[self.core].mem
        size = size if size.__class__ is int and size > 0 else \
            self._count(size, f"{name}: the size in bytes", ln)
        sa = self._at(sxy, src.addr, size, ln, f"{name} source")
        da = self._l1_range(self.core, dst_l1, size, ln, f"{name} destination")[0]
        self._align(name, sa, self._kind(sxy, False), ln, "source")
        self._align(name, da, "l1", ln, "destination")
        self._region(sxy, src.addr, sa, size, ln, name, False, getattr(src, "page", None))
        dcb = self._l1_check(self.core, dst_l1, da, size, ln, name, True)
        me[da:da + size] = src_mem[sa:sa + size]
        landed = self._noc.read(t, noc, (self.my_x, self.my_y), sxy, size)
        if dcb is not None:
            dcb.transfer(da, size, landed, False, self._th, ln)
        score = self._e.worker_at.get(sxy)
        if score is not None:                       # out of another core's L1
            if not self._transfer(score, sa, size, landed, True):
                w = self._e.l1_landed.get((score, sa))
                if w is not None and w[0] > t:
                    self._l1_race(score, sa, t, w, name, ln)
        else:
            w = self._e.dram_landed.get((sxy, sa))
            if w is not None and w[0] > t:
                self._read_race(sxy, src, sa, t, w, name, ln)
        # the RISC sees the NIU's read counter completion-latency cycles after the data lands
        seen = landed + self._c_done
        if seen > self._read_done:
            self._read_done = seen

    def noc_async_read(self, src, dst_l1, size, noc=None):
        ln = self._th.pinned or caller_line()
        self._read(src, dst_l1, size, noc, ln, "noc_async_read", self._c_read)

    def noc_async_read_tile(self, page, addrgen, dst_l1, noc=None):
        """Read page `page` of an interleaved buffer; finding its bank and offset costs
        `noc.addrgen_cycles` on top of the issue."""
        ln = self._th.pinned or caller_line()
        if addrgen.__class__ is not AddrGen:
            self._addrgen(addrgen, ln, "noc_async_read_tile")
        self._read(addrgen.get_noc_addr(page), dst_l1, addrgen.page_size, noc, ln,
                   "noc_async_read_tile", self._c_read + self._c_addrgen)

    def _addrgen(self, g, ln, name):
        """The page calls take an address generator (interleaved_addr_gen); anything else
        with get_noc_addr(page) and page_size will do."""
        if not (hasattr(g, "get_noc_addr") and hasattr(g, "page_size")):
            raise self._fail(ArgumentError, f"{name}: {g!r} is not an address generator: make "
                             "one with interleaved_addr_gen(tensor) (or interleaved_addr_gen("
                             "base, page_size=...))", ln)

    def noc_async_read_set_state(self, src, noc=None):
        """Stateful issue: program the NIU's read command buffer with the source core or bank
        (src.x, src.y) once; later `noc_async_read_with_state` calls only set addresses and
        size, which costs less per issue (tt-metal's noc_async_read_set_state)."""
        ln = self._th.pinned or caller_line()
        if not hasattr(src, "x") or isinstance(src, McastAddr):
            raise self._not_addr(src, ln, "noc_async_read_set_state source")
        self._mem((src.x, src.y), ln)
        noc = self._noc_id(noc, ln)
        self._th.charge(self._c_set_state, "noc_async_read_set_state", ln)
        self._read_state = (noc, src.x, src.y)

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
        if addrgen.__class__ is not AddrGen:
            self._addrgen(addrgen, ln, "noc_async_write_tile")
        self._write(src_l1, addrgen.get_noc_addr(page), addrgen.page_size, noc, ln,
                    "noc_async_write_tile", self._c_write + self._c_addrgen)

    def noc_async_write_set_state(self, dst, noc=None):
        """Stateful issue for writes: program the destination core or bank once (see
        noc_async_read_set_state)."""
        ln = self._th.pinned or caller_line()
        if not hasattr(dst, "x") or isinstance(dst, McastAddr):
            raise self._not_addr(dst, ln, "noc_async_write_set_state destination")
        self._mem((dst.x, dst.y), ln)
        noc = self._noc_id(noc, ln)
        self._th.charge(self._c_set_state, "noc_async_write_set_state", ln)
        self._write_state = (noc, dst.x, dst.y)

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
        noc = self._noc_id(noc, ln)
        if self._cmd_free:
            t = self._cmd_buf(t, (noc, "wr"), ln)
        try:
            dxy = (dst.x, dst.y)
        except AttributeError:
            raise self._not_addr(dst, ln, f"{name} destination") from None
        dst_mem = self._mem(dxy, ln)
        me = self._e.l1[self.core].mem
        size = size if size.__class__ is int and size > 0 else \
            self._count(size, f"{name}: the size in bytes", ln)
        sa = self._l1_range(self.core, src_l1, size, ln, f"{name} source")[0]
        da = self._at(dxy, dst.addr, size, ln, f"{name} destination")
        self._align(name, sa, "l1", ln, "source")
        self._align(name, da, self._kind(dxy, True), ln, "destination")
        scb = self._l1_check(self.core, src_l1, sa, size, ln, name, False)
        self._region(dxy, dst.addr, da, size, ln, name, True, getattr(dst, "page", None))
        dst_mem[da:da + size] = me[sa:sa + size]
        landed, acked = self._noc.write(t, noc, (self.my_x, self.my_y), dxy, size)
        if scb is not None:
            scb.transfer(sa, size, landed, True)
        dcore = self._e.worker_at.get(dxy)
        if dcore is not None:
            if not self._transfer(dcore, da, size, landed, False, ln):
                self._e.l1_landed[(dcore, da)] = (landed, self._wid)
        else:
            bank = self._e.bank_at[dxy]
            bank.mark(da, size)
            other = bank.claim(da, size, self._wid)
            if other:
                self._write_race(bank, dxy, dst, da, size, other, name, ln)
            self._e.dram_landed[(dxy, da)] = (landed, self._wid)
        self._wrote(landed, acked)

    def _dram_where(self, bank, addr, a):
        """What DRAM byte `a` of `bank` belongs to, for a message: the tensor page the
        address was made for, else the allocation."""
        page = getattr(addr, "page", None)
        if page is not None:
            return f"page {page[1]} of {tensor_name(page[0])}"
        i = bisect_right(bank.regions, (a, float("inf"))) - 1
        return self._e.dram_name(*bank.regions[i])

    def _read_race(self, xy, src, a, t, w, name, ln):
        """A warning: this read, issued at cycle t, reads DRAM bytes whose write (by this run's
        writer w[1]) lands only at cycle w[0]: on the chip it may return the old data."""
        e = self._e
        bank = e.bank_at[xy]
        where = self._dram_where(bank, src, a)
        if w[1] == self._wid:
            who = ("this thread's own write of it, which has not landed: a "
                   "noc_async_write_barrier first")
        else:
            oc, ok = e.dram_writers[w[1]]
            who = (f"core ({oc[0]},{oc[1]}) {ok}'s write of it: order them (the writer's "
                   f"noc_async_write_barrier, then a semaphore this thread waits on)")
        e.warn(("read race", self.core, self._th.kind, ln, where),
               f"{name} at cycle {t:,.0f} reads {where} (from byte {a:#x} of DRAM bank "
               f"{bank.id}) before {who}; that write lands at cycle {w[0]:,.0f}, and the chip "
               f"may return the old data (ttsim returns the new)",
               where_=errors_where(self.core, self._th.kind, ln))

    def _l1_race(self, core, a, t, w, name, ln):
        """A warning: this read of core's L1 (not a CB: scratch or an L1 tensor), at cycle t,
        reads bytes a NoC write of this run lands only at cycle w[0]."""
        e = self._e
        oc, ok = e.dram_writers[w[1]]
        region = e.l1_region(core, a)[2]
        e.warn(("l1 read race", self.core, self._th.kind, ln, core, a),
               f"{name} at cycle {t:,.0f} reads {a:#x} of core ({core[0]},{core[1]})'s L1 "
               f"(in {region}) before core ({oc[0]},{oc[1]}) {ok}'s NoC write there lands "
               f"(cycle {w[0]:,.0f}): the chip may return the old data (ttsim returns the "
               f"new); order them with the writer's barrier and a semaphore",
               where_=errors_where(self.core, self._th.kind, ln))

    def _write_race(self, bank, xy, dst, a, size, other, name, ln):
        """A warning: this run's other writer `other` wrote some of these DRAM bytes too."""
        e = self._e
        where = self._dram_where(bank, dst, a)
        oc, ok = e.dram_writers[other]
        e.warn(("write race", self.core, self._th.kind, ln, where),
               f"{name} writes {where} (bytes from {a:#x} of DRAM bank {bank.id}), which core "
               f"({oc[0]},{oc[1]}) {ok} also wrote in this run: two kernels writing the same "
               f"bytes race on the chip (which lands last depends on NoC timing) unless a "
               f"semaphore orders them; give each its own pages",
               where_=errors_where(self.core, self._th.kind, ln))

    def _transfer(self, core, addr, size, t, out, ln=None):
        """Note when a NoC transfer is done with CB pages of `core` (CircularBuffer.transfer);
        False if the bytes are not in a CB."""
        cb = self._e.cb_at(core, addr, size)
        if cb is None:
            return False
        cb.transfer(addr, size, t, out, self._th, ln)
        return True

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

    def _link(self, noc, cores, linked, ln, name):
        """A linked multicast keeps its path reserved for the next multicast from this RISC on
        its NoC, which must go to the same cores (tt-metal's `linked`): one to other cores
        would find the path still held, a wait the chip may never end."""
        held = self._linked_open.get(noc)
        if held is not None and held[0] != cores:
            raise self._fail(NocError, f"{name} to {_cores_text(cores)} right after a linked "
                             f"multicast to {_cores_text(held[0])} (line {held[1][1] if held[1] else '?'}) "
                             f"on NoC {noc}: a linked multicast holds its path for the next one, "
                             "which must go to the same cores (loopback included); send the next "
                             "one there, or the linked one with linked=False", ln)
        if linked:
            self._linked_open[noc] = (cores, ln)
        else:
            self._linked_open.pop(noc, None)

    def _mcast_write(self, src_l1, mcast, size, num_dests, linked, noc, include_self, ln, name):
        noc = self._noc_id(noc, ln)
        t = self._cmd_buf(self._issue(ln, name, self._c_write), (noc, "wr"), ln)
        me = self._e.l1[self.core].mem
        size = size if size.__class__ is int and size > 0 else \
            self._count(size, f"{name}: the size in bytes", ln)
        sa = self._l1_range(self.core, src_l1, size, ln, f"{name} source")[0]
        cores = self._mcast_cores(mcast, include_self, num_dests, ln)
        self._link(noc, cores, linked, ln, name)
        self._align(name, sa, "l1", ln, "source")
        addr = mcast.addr
        a = self._l1_range(self.core, addr, size, ln, f"{name} destination")[0]
        self._align(name, a, "l1", ln, "destination")
        scb = self._l1_check(self.core, src_l1, sa, size, ln, name, False)
        data = me[sa:sa + size]
        mems = self._mcast_mems(cores)
        for xy, core, m in mems:
            self._l1_check(core, addr, a, size, ln, name, True)
        for xy, core, m in mems:
            m[a:a + size] = data
        landed, acked, sent = self._noc.multicast_write(
            t, noc, (self.my_x, self.my_y), (mcast.x0, mcast.y0, mcast.x1, mcast.y1), size,
            include_self, linked)
        self._cmd_free[(noc, "wr")] = sent
        if scb is not None:
            scb.transfer(sa, size, sent, True)
        for (xy, core, m), t_in in zip(mems, self._noc.last_landed_each):
            if not self._transfer(core, a, size, t_in, False, ln):
                self._e.l1_landed[(core, a)] = (t_in, self._wid)
        self._wrote(landed, acked)

    def _mcast_mems(self, cores):
        """(NoC xy, logical core, L1 bytes) per destination, cached per destination list."""
        r = self._mcast_cache.get(cores)
        if r is None:
            e = self._e
            r = self._mcast_cache[cores] = tuple((xy, e.worker_at[xy], e.mem_at(xy)) for xy in cores)
        return r

    def _mcast_cores(self, m, include_self, num_dests, ln):
        try:
            key = (m.x0, m.y0, m.x1, m.y1, include_self)
        except AttributeError:
            raise self._not_addr(m, ln, "multicast destination", mcast=True) from None
        try:
            cores = self._mcast_cache.get(key)
        except TypeError:
            cores = None
        if cores is None:
            sd = self._e.sd
            w, h = sd.noc_grid
            for v, top, axis in ((m.x0, w, "x"), (m.y0, h, "y"), (m.x1, w, "x"), (m.y1, h, "y")):
                c = as_int(v)
                if c is None or not 0 <= c < top:
                    raise self._fail(NocError, f"multicast rectangle ({m.x0!r},{m.y0!r})-"
                                     f"({m.x1!r},{m.y1!r}): {axis} = {v!r} is not on the "
                                     f"{w}x{h} NoC grid", ln)
            m = McastAddr(int(m.x0), int(m.y0), int(m.x1), int(m.y1), m.addr)
            xs = [x for x in sd.worker_x if min(m.x0, m.x1) <= x <= max(m.x0, m.x1)]
            ys = [y for y in sd.worker_y if min(m.y0, m.y1) <= y <= max(m.y0, m.y1)]
            me = (self.my_x, self.my_y)
            cores = self._mcast_cache[key] = tuple((x, y) for y in ys for x in xs
                                                   if include_self or (x, y) != me)
        me = (self.my_x, self.my_y)
        if not cores:
            only_me = (not include_self and min(m.x0, m.x1) <= me[0] <= max(m.x0, m.x1)
                       and min(m.y0, m.y1) <= me[1] <= max(m.y0, m.y1))
            raise NocError(f"multicast rectangle ({m.x0},{m.y0})-({m.x1},{m.y1}) holds no worker core"
                           + (" but the sender, which a multicast without loopback skips (use the "
                              "_loopback_src form, or a unicast write)" if only_me else ""),
                           core=self.core, thread=self._th.kind, line=ln)
        if num_dests is not None and as_int(num_dests) is None:
            raise self._fail(ArgumentError, f"multicast num_dests {num_dests!r} is not an integer "
                             f"(the rectangle holds {len(cores)} destination cores)", ln)
        if num_dests is not None and num_dests != len(cores):
            raise NocError(f"multicast says num_dests={num_dests} but the rectangle "
                           f"({m.x0},{m.y0})-({m.x1},{m.y1}) holds {len(cores)} destination cores"
                           f"{' (this core included: loopback)' if include_self and me in cores else ''}",
                           core=self.core, thread=self._th.kind, line=ln)
        return cores

    def linked_left_open(self):
        """(destinations, line) of a linked multicast nothing followed, or None."""
        return next(iter(self._linked_open.values()), None)

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

    def noc_async_atomic_barrier(self, noc=None):
        """Wait until every noc_semaphore_inc this thread issued is acknowledged."""
        ln = self._th.pinned or caller_line()
        th = self._th
        th.charge(self._c_barrier, "noc_async_atomic_barrier", ln)
        th.stall_until(self._atomic_acked, "noc atomic", ln)

    def noc_async_full_barrier(self, noc=None):
        """Wait for every read, write and atomic this thread issued (tt-metal's full barrier)."""
        ln = self._th.pinned or caller_line()
        th = self._th
        th.charge(self._c_barrier, "noc_async_full_barrier", ln)
        th.stall_until(max(self._read_done, self._write_acked, self._atomic_acked), "noc", ln)

    # --- semaphores ---------------------------------------------------------------------
    def get_semaphore(self, sem_id):
        try:
            if as_int(sem_id) is None or sem_id < 0:
                raise TypeError
            return self._e.semaphores[self.core][sem_id]
        except (KeyError, IndexError, TypeError):
            raise NocError(f"semaphore {sem_id!r} is not created on core {self.core}",
                           core=self.core, thread=self._th.kind, line=caller_line()) from None

    def _sem_value(self, addr):
        return int(self._e.l1[self.core].mem[addr:addr + 4].view(np.uint32)[0])

    def _sem_word(self, core, addr, ln, what):
        """A semaphore word: 4 bytes, 4-byte aligned, inside one region of `core`'s L1 (not
        the firmware's). Returns the address as an int."""
        a = self._l1_range(core, addr, 4, ln, what)[0]
        if a % 4:
            raise self._fail(AccessError, f"{what}: semaphore address {a:#x} is not 4-byte "
                             f"aligned (a semaphore is one 32-bit word of L1)", ln)
        self._l1_check(core, addr, a, 4, ln, what, None)
        return a

    def _sem_there(self, core, a, ln, what):
        """A remote semaphore operation at address `a` of `core`: if `a` is one of this core's
        semaphores, `core` must have that semaphore too (the kernel took the address from
        get_semaphore here; elsewhere it lands in whatever that core holds there)."""
        ids = self._e.sem_ids
        if core == self.core or a in ids.get(core, ()):
            return
        sid = ids.get(self.core, {}).get(a)
        if sid is None:
            return
        e = self._e
        runs = any(core in k.cores for k in e.program.kernels)
        reg = e.l1_region(core, a)[2]
        raise self._fail(AccessError, f"{what} to core ({core[0]},{core[1]}) at {a:#x}, the address "
                         f"of semaphore {sid} here, but core ({core[0]},{core[1]}) has no semaphore "
                         f"{sid}" + ("" if runs else " (it runs no kernel of this program)") +
                         f": the word there is in {reg}. Create the semaphore on that core too "
                         f"(Program.semaphore on every core it is sent to)", ln)

    def _sem_target(self, dst, ln, what):
        """The worker core a remote semaphore operation goes to (NoC atomics and semaphore
        words live in a worker's L1, never in DRAM)."""
        try:
            xy = (dst.x, dst.y)
        except AttributeError:
            raise self._not_addr(dst, ln, what) from None
        self._mem(xy, ln)
        core = self._e.worker_at.get(xy)
        if core is None:
            bank = self._e.bank_at[xy]
            raise self._fail(AccessError, f"{what} to ({dst.x},{dst.y}), which is DRAM bank "
                             f"{bank.id}: semaphores live in a worker core's L1 (the NoC's "
                             f"atomics and semaphore words target worker L1 only)", ln)
        return xy, core

    def _sem_val(self, value, ln, what):
        return value if value.__class__ is int and 0 <= value < U32 else \
            self._count(value, what, ln, lo=0, hi=U32)

    def noc_semaphore_set(self, addr, value):
        ln = self._th.pinned or caller_line()
        value = self._sem_val(value, ln, "noc_semaphore_set: the value")
        a = self._sem_word(self.core, addr, ln, "noc_semaphore_set")
        self._th.charge(self._c_sem, "noc_semaphore_set", ln)
        self._th.sync(ln)
        self._e.sem_write((self.my_x, self.my_y), a, value)

    def _sem_wait(self, addr, ok, what, ln):
        th = self._th
        a = self._sem_word(self.core, addr, ln, "noc_semaphore_wait")
        th.charge(self._c_sem, "noc_semaphore_wait", ln)
        th.sync(ln)
        while not ok(self._sem_value(a)):
            ev = self._e.env.event()
            self._e.sem_waiters.setdefault(((self.my_x, self.my_y), a), []).append(ev)
            sid = self._e.sem_ids.get(self.core, {}).get(a)
            th.block(ev, (f"semaphore {sid} ({a:#x})" if sid is not None else
                          f"the semaphore word at {a:#x}") +
                     f" {what} (now {self._sem_value(a)})", ln)
            th.stall_until(self._e.env.now, "semaphore", ln)

    def noc_semaphore_wait(self, addr, value):
        ln = self._th.pinned or caller_line()
        value = self._sem_val(value, ln, "noc_semaphore_wait: the value")
        self._sem_wait(addr, lambda v: v == value, f"== {value}", ln)

    def noc_semaphore_wait_min(self, addr, value):
        ln = self._th.pinned or caller_line()
        value = self._sem_val(value, ln, "noc_semaphore_wait_min: the value")
        self._sem_wait(addr, lambda v: v >= value, f">= {value}", ln)

    def noc_semaphore_inc(self, dst, incr=1, noc=None):
        ln = self._th.pinned or caller_line()
        t = self._issue(ln, "noc_semaphore_inc", self._c_write)
        noc = self._noc_id(noc, ln)
        incr = incr if incr.__class__ is int and 0 < incr < U32 else \
            self._count(incr, "noc_semaphore_inc: the increment", ln, lo=1, hi=U32)
        xy, core = self._sem_target(dst, ln, "noc_semaphore_inc")
        a = self._sem_word(core, dst.addr, ln, "noc_semaphore_inc")
        self._sem_there(core, a, ln, "noc_semaphore_inc")
        at = self._noc.atomic_inc(t, noc, (self.my_x, self.my_y), xy)
        self._e.at(at, lambda: self._e.sem_add(xy, a, incr))
        acked = self._noc.atomic_ack(noc, (self.my_x, self.my_y), xy, at) + self._c_done
        if acked > self._atomic_acked:
            self._atomic_acked = acked

    def noc_semaphore_set_remote(self, src_l1, dst, noc=None):
        ln = self._th.pinned or caller_line()
        t = self._issue(ln, "noc_semaphore_set_remote", self._c_write)
        noc = self._noc_id(noc, ln)
        sa = self._sem_word(self.core, src_l1, ln, "noc_semaphore_set_remote source")
        xy, core = self._sem_target(dst, ln, "noc_semaphore_set_remote")
        da = self._sem_word(core, dst.addr, ln, "noc_semaphore_set_remote destination")
        self._sem_there(core, da, ln, "noc_semaphore_set_remote")
        value = self._sem_value(sa)
        self._align("noc_semaphore_set_remote", sa, "l1", ln, "source")
        self._align("noc_semaphore_set_remote", da, "l1", ln, "destination")
        landed, acked = self._noc.write(t, noc, (self.my_x, self.my_y), xy, 4)
        self._write_acked = max(self._write_acked, acked + self._c_done)
        self._e.at(landed, lambda: self._e.sem_write(xy, da, value))

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
        noc = self._noc_id(noc, ln)
        # tt-metal sends semaphore words from the register command buffer, not the data one
        t = self._cmd_buf(self._issue(ln, name, self._c_write), (noc, "reg"), ln)
        sa = self._sem_word(self.core, src_l1, ln, f"{name} source")
        value = self._sem_value(sa)
        cores = self._mcast_cores(mcast, include_self, num_dests, ln)
        self._link(noc, cores, linked, ln, name)
        self._align(name, sa, "l1", ln, "source")
        da = self._l1_range(self.core, mcast.addr, 4, ln, f"{name} destination")[0]
        self._align(name, da, "l1", ln, "destination")
        for xy, core, m in self._mcast_mems(cores):
            self._sem_word(core, mcast.addr, ln, f"{name} destination")
            self._sem_there(core, da, ln, name)
        landed, acked, sent = self._noc.multicast_write(
            t, noc, (self.my_x, self.my_y), (mcast.x0, mcast.y0, mcast.x1, mcast.y1), 4,
            include_self, linked)
        self._cmd_free[(noc, "reg")] = sent
        self._write_acked = max(self._write_acked, acked + self._c_done)

        def apply():
            for xy in cores:
                self._e.sem_write(xy, da, value)
        self._e.at(landed, apply)
