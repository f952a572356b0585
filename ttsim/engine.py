"""One simulation run of a Program on a Device."""
from __future__ import annotations

import os
import warnings
from bisect import bisect_right

import numpy as np
import simpy

from .cb import CircularBuffer
from .compute import FusedCompute, MathContext, PackContext, UnpackContext, _ComputeShared
from .dataflow import DataMovementContext
from .errors import DeadlockError, L1OverflowError, LivelockError, NocError, TTSimError, TTSimWarning
from .noc import Noc
from .report import RunReport
from .thread import Thread
from .watchdog import Watchdog
from .trace import TraceStream

SEM_BYTES = 16

# Tests set this to a function(list of threads) -> the same threads in another order, to
# check that no run's timing or results depend on the order its threads are spawned in.
spawn_hook = None


class Engine:
    def __init__(self, device, program, trace=False, max_cycles=1e12, reverse_spawn=False,
                 spawn_order=None):
        if getattr(program, "device", None) is None or not hasattr(program, "kernels"):
            raise TTSimError(f"Device.run takes a ttsim.Program, got {type(program).__name__} "
                             f"{program!r:.60}")
        if program.device is not device:
            raise TTSimError("the program was built for another device: run it on the Device "
                             "given to ttsim.Program(...)")
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, (int, float, np.integer,
                                                                       np.floating)) \
                or not max_cycles > 0:
            raise TTSimError(f"max_cycles must be a positive number of cycles, got {max_cycles!r}")
        self.device, self.program, self.sd = device, program, device.sd
        self.env = simpy.Environment()
        self.noc = Noc(self.sd)
        self.costs = {k: f.value for k, f in self.sd.figures.items()}
        self.l1 = device.l1
        self.cbs: dict[tuple, dict[int, CircularBuffer]] = {c: {} for c in device.cores}
        self.semaphores: dict[tuple, list[int]] = {}
        self.sem_waiters: dict[tuple, list] = {}
        self.threads: list[Thread] = []
        # False, True (events kept in memory for the report) or a path the trace streams to
        if not isinstance(trace, (bool, str, os.PathLike)):
            raise TTSimError(f"trace must be True, False or a file path, got {trace!r}")
        self.trace = trace
        self.trace_stream = None if isinstance(trace, bool) else TraceStream(trace, self.sd.clock_ghz.value)
        self.max_cycles = max_cycles
        self.mem_at = device.mem_at
        self.bank_xys = device.bank_xys
        # tests use these: timing must not depend on spawn order. spawn_order: a permutation
        # of the threads' indices, or a function reordering the list of threads
        self.reverse_spawn = reverse_spawn
        self.spawn_order = spawn_order
        self.worker_at = {device.sd.worker_noc_xy(*c): c for c in device.cores}
        self.bank_at = {b.noc_xy: b for b in device.dram}
        self.dram_writers = [None]          # (core, kind) of each DRAM writer id (DramBank.claim)
        self.dram_landed = {}               # (bank xy, address) -> (landed, writer id) of this run's writes
        self.l1_landed = {}                 # (core, address) -> the same, for NoC writes into L1 outside CBs
        for b in device.dram:
            b.writer[:] = 0                 # a new run: no writer yet
        self._cb_bases: dict[tuple, tuple[list, list]] = {}
        self._regions: dict[tuple, tuple[list, list]] = {}
        self._tensors: dict[tuple, object] = {}      # (memory, address) -> tensor, from args
        self.warnings: dict[tuple, list] = {}        # key -> [message, times], first MAX_WARNINGS
        self.running = None         # the thread whose greenlet runs (Thread.process)
        self.resumes = 0            # greenlet resumes: the watchdog's sign of progress

    # --- setup --------------------------------------------------------------------------
    def _allocate(self):
        for l1 in self.l1.values():
            l1.reset_program()
        for core, specs in self.program.cbs.items():
            l1 = self.l1[core]
            for idx in sorted(specs):
                s = specs[idx]
                try:
                    base = l1.alloc_low(s.num_pages * s.page_size,
                                        f"cb {idx} ({s.num_pages} x {s.page_size} B {s.fmt.value})")
                except L1OverflowError as e:
                    e.cb = idx
                    raise
                self.cbs[core][idx] = CircularBuffer(self.env, core, idx, s.fmt, s.num_pages,
                                                     s.page_size, base, l1)
        for core, cbs in self.cbs.items():
            if cbs:
                order = sorted(cbs.values(), key=lambda c: c.base)
                self._cb_bases[core] = ([c.base for c in order], order)
        # a semaphore id has one address on every core of the program (as in tt-metal, where
        # kernels send to a remote core's semaphore at the address get_semaphore gives them
        # locally): above the highest CB of any core that holds semaphores
        sem_base = max((self.l1[c].low for c in self.program.semaphores), default=0)
        self.sem_ids: dict[tuple, dict[int, int]] = {}     # core -> {address: semaphore id}
        for core, initial in self.program.semaphores.items():
            l1 = self.l1[core]
            l1.low = max(l1.low, sem_base)
            addrs = []
            for i, v in enumerate(initial):
                a = l1.alloc_low(SEM_BYTES, f"semaphore {i}")
                l1.mem[a:a + 4] = np.array([v], np.uint32).view(np.uint8)
                addrs.append(a)
            self.semaphores[core] = addrs
            self.sem_ids[core] = {a: i for i, a in enumerate(addrs)}

    def _note_tensors(self, args, depth=0):
        """Remember the tensors among a kernel's arguments, to name DRAM buffers in errors."""
        for a in args:
            if hasattr(a, "address") and hasattr(a, "num_pages") and hasattr(a, "memory"):
                self._tensors.setdefault((a.memory, a.address), a)
            elif isinstance(a, (list, tuple)) and depth < 2:
                self._note_tensors(a, depth + 1)

    def _spawn(self):
        t0 = self.costs["cost.api.kernel_launch"]
        drivers = []      # the threads that get a simpy process
        for k in self.program.kernels:
            for core in k.cores:
                args = k.args_for(core)
                self._note_tensors(args)
                if k.kind == "compute":
                    shared = _ComputeShared(self, core, k.config)
                    ctxs = [(kind, cls(self, core, kind, args, k.compile_args, shared))
                            for kind, cls in (("unpack", UnpackContext), ("math", MathContext),
                                              ("pack", PackContext))]
                else:
                    ctxs = [(k.kind, DataMovementContext(self, core, k.kind, k.noc, args,
                                                         k.compile_args))]
                roles = []
                for kind, ctx in ctxs:
                    th = Thread(self, core, kind, k.fn, ctx, t0, self._trace_for(core, kind),
                                self.max_cycles)
                    ctx._th = th
                    roles.append(th)
                self.threads.extend(roles)
                if k.kind == "compute" and k.config.fused:
                    driver = Thread(self, core, "compute", k.fn,
                                    FusedCompute(*(ctx for _, ctx in ctxs)), t0, None, self.max_cycles)
                    driver.group = tuple(roles)
                    drivers.append(driver)
                else:
                    drivers.extend(roles)
        self._rank()
        order = drivers
        if self.spawn_order is None and spawn_hook is not None:
            order = spawn_hook(list(drivers))
        elif callable(self.spawn_order):
            order = self.spawn_order(list(drivers))
        elif self.spawn_order is not None:
            order = [drivers[i] for i in self.spawn_order]
        elif self.reverse_spawn:
            order = drivers[::-1]
        for th in order:
            self.env.process(th.process())

    def _trace_for(self, core, kind):
        if self.trace_stream is not None:
            return self.trace_stream.thread(core, kind)
        return [] if self.trace else None

    def _rank(self):
        """Give every thread its rank: the priority of its turns at a cycle (Thread.sync).
        Threads that reach the same cycle go by core (row, then column), then kind (reader,
        writer, compute's roles), whatever order they were spawned or resumed in."""
        from .thread import KIND_ORDER
        key = lambda th: (th.core[1], th.core[0], KIND_ORDER.get(th.kind, 9), th.kind)
        everyone = list(self.threads)
        everyone.sort(key=key)
        for i, th in enumerate(everyone):
            th.rank = 2 + i

    # --- services for kernels -------------------------------------------------------------
    def cb_at(self, core, addr, size):
        """The CB of `core` that bytes [addr, addr + size) start in, or else the first one
        they run into; None if they touch none (the caller checks the pages:
        CircularBuffer.wrote / read_bytes, which refuse an access that leaves the CB)."""
        hit = self._cb_bases.get(core)
        if hit is None:
            return None
        bases, cbs = hit
        i = bisect_right(bases, addr) - 1
        if i >= 0 and cbs[i].end > addr:
            return cbs[i]
        if i + 1 < len(cbs) and bases[i + 1] < addr + size:
            return cbs[i + 1]
        return None

    def l1_region(self, core, addr):
        """(start, end, name, kind) of the region of `core`'s L1 holding byte `addr` (see
        memory.L1.regions)."""
        r = self._regions.get(core)
        if r is None:
            regs = self.l1[core].regions()
            r = self._regions[core] = ([g[0] for g in regs], regs)
        starts, regs = r
        i = bisect_right(starts, addr) - 1
        return regs[max(i, 0)] if regs else (0, self.l1[core].size, "L1", "free")

    MAX_WARNINGS = 20

    def warn(self, key, message, where_=""):
        """Something the chip does silently that is most likely a bug but does not stop the
        run (a read of DRAM nothing wrote): kept once per key, counted, in the report."""
        w = self.warnings.get(key)
        if w is not None:
            w[1] += 1
        elif len(self.warnings) < self.MAX_WARNINGS:
            self.warnings[key] = [f"{message}\n  at {where_}" if where_ else message, 1]

    def dram_name(self, lo, hi):
        """A DRAM allocation [lo, hi) of every bank, by the tensor that holds it if a kernel
        of this program was given that tensor."""
        from .dataflow import tensor_name
        t = self._tensors.get(("dram", lo))
        what = tensor_name(t) if t is not None else f"the DRAM buffer at {lo:#x}"
        return f"{what} (bytes [{lo:#x}, {hi:#x}) of each bank)"

    def poll(self, th, key, value, line, what, cost):
        """`th` polled `key` (paying `cost` cycles for it) and found `value`, not what it
        waits for; value None means time alone will bring it. A thread that polls the same
        thing and sees the same value, with no other work in between, spins; when every
        event simpy holds is a spinning thread's next poll, nothing can change what any of
        them sees: a LivelockError naming them (and what the others wait for). `what` is a
        function giving the poll's description."""
        state = None if value is None else (key, value)
        step = th.busy - cost - th.spin_last       # busy work since the previous poll
        if state is None or th.spin_key != state:
            th.spin_key = state
            th.spins = 0
            th.spin_step = None
        elif th.spin_step is None or abs(step - th.spin_step) > 1e-6:
            # a loop that does the same work between polls (a NoC read of the word, a
            # semaphore set, ...) spins too, once it has done so 1024 times in a row
            th.spins = 1 if th.spin_step is not None else th.spins
            th.spin_step = step
        th.spins += 1
        th.spin_last = th.busy
        th.spin_what = what
        n = th.spins
        if state is not None and n >= 3 and (n & (n - 1) == 0 or n % 1024 == 0) \
                and (n >= 1024 or abs(th.spin_step) <= 1e-6):
            self._livelock(th, line)

    def _livelock(self, th, line):
        spinners = {}
        for _, _, _, ev in self.env._queue:
            owner = getattr(ev, "owner", None)
            if owner is None or owner.spins < 3 or owner.turn is not ev:
                return
            spinners[id(owner)] = owner
        spinning = [th] + [o for o in spinners.values() if o is not th]
        waiting = [o for o in self.threads if not o.done and o.blocked and o not in spinning
                   and o.blocked[0] != "global time (sync)"]
        raise LivelockError([(o.core, o.kind, o.spin_what(), o.blocked[1] if o is not th and
                              o.blocked else line) for o in spinning],
                            [(o.core, o.kind, o.blocked[0], o.blocked[1]) for o in waiting])

    def at(self, t, fn):
        """Run fn at global time t (>= now): used for NoC deliveries that others observe."""
        ev = self.env.timeout(max(0.0, t - self.env.now))
        ev.callbacks.append(lambda _e: fn())

    def sem_write(self, xy, addr, value):
        m = self.mem_at(xy)
        m[addr:addr + 4] = np.array([value & 0xFFFFFFFF], np.uint32).view(np.uint8)
        for ev in self.sem_waiters.pop((xy, addr), ()):
            ev.succeed()

    def sem_add(self, xy, addr, incr):
        m = self.mem_at(xy)
        cur = int(m[addr:addr + 4].view(np.uint32)[0])
        self.sem_write(xy, addr, cur + incr)

    # --- run ----------------------------------------------------------------------------
    def run(self):
        try:
            return self._run()
        finally:
            if self.trace_stream is not None:
                self.trace_stream.close()

    def _run(self):
        self._allocate()
        self._spawn()
        failure = None
        dog = Watchdog(lambda: self.resumes, context=lambda: self.running)
        try:
            with dog:
                self.env.run()
        except KeyboardInterrupt as e:
            if not dog.fired or dog.at_fire is None:
                raise
            failure = dog.at_fire.spin_error(e.__cause__ or e, dog.limit)
        except Exception as e:
            # simpy re-raises a failed process's exception as a copy made from its args;
            # the original, with its core/thread/line attributes and cause, is the copy's cause.
            failure = e.__cause__ if isinstance(e.__cause__, type(e)) else e
        if failure is not None:
            raise failure
        stuck = [th for th in self.threads if not th.done]
        if stuck:
            # in a fused compute kernel only the role that blocked says why; its siblings wait
            # behind it in program order and add nothing to the report
            shown = [th for th in stuck if th.blocked or len(th.group) == 1
                     and not any(o.blocked and o.glet is th.glet for o in stuck)]
            raise DeadlockError([(th.core, th.kind, th.blocked[0] if th.blocked else "?",
                                  th.blocked[1] if th.blocked else None) for th in shown or stuck])
        for th in self.threads:
            held = th.ctx.linked_left_open() if isinstance(th.ctx, DataMovementContext) else None
            if held is not None:
                raise NocError(f"the kernel ended with a linked multicast (to {len(held[0])} cores) "
                               "that no multicast followed: its path stays reserved on the NoC, "
                               "which the chip's next transfers on that path wait for; make the "
                               "last multicast of a chain linked=False", core=th.core,
                               thread=th.kind, line=held[1])
        rep = RunReport.from_engine(self)
        if rep.warnings:
            more = f" (and {len(rep.warnings) - 1} more in RunReport.warnings)" if len(rep.warnings) > 1 else ""
            warnings.warn(TTSimWarning(rep.warnings[0] + more), stacklevel=4)   # the caller of Device.run
        return rep
