"""One simulation run of a Program on a Device."""
from __future__ import annotations

from bisect import bisect_right

import numpy as np
import simpy

from .cb import CircularBuffer
from .compute import FusedCompute, MathContext, PackContext, UnpackContext, _ComputeShared
from .dataflow import DataMovementContext
from .errors import DeadlockError, L1OverflowError
from .noc import Noc
from .report import RunReport
from .thread import Thread

SEM_BYTES = 16


class Engine:
    def __init__(self, device, program, trace=False, max_cycles=1e12, reverse_spawn=False):
        if program.device is not device:
            raise ValueError("the program was built for another device")
        self.device, self.program, self.sd = device, program, device.sd
        self.env = simpy.Environment()
        self.noc = Noc(self.sd)
        self.costs = {k: f.value for k, f in self.sd.figures.items()}
        self.l1 = device.l1
        self.cbs: dict[tuple, dict[int, CircularBuffer]] = {c: {} for c in device.cores}
        self.semaphores: dict[tuple, list[int]] = {}
        self.sem_waiters: dict[tuple, list] = {}
        self.threads: list[Thread] = []
        self.trace = trace
        self.max_cycles = max_cycles
        self.mem_at = device.mem_at
        self.bank_xys = device.bank_xys
        self.reverse_spawn = reverse_spawn   # tests use it: timing must not depend on spawn order
        self.worker_at = {device.sd.worker_noc_xy(*c): c for c in device.cores}
        self._cb_bases: dict[tuple, tuple[list, list]] = {}

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
        for core, initial in self.program.semaphores.items():
            l1 = self.l1[core]
            addrs = []
            for i, v in enumerate(initial):
                a = l1.alloc_low(SEM_BYTES, f"semaphore {i}")
                l1.mem[a:a + 4] = np.array([v], np.uint32).view(np.uint8)
                addrs.append(a)
            self.semaphores[core] = addrs

    def _spawn(self):
        t0 = self.costs["cost.api.kernel_launch"]
        drivers = []      # the threads that get a simpy process
        for k in self.program.kernels:
            for core in k.cores:
                args = k.args_for(core)
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
                    th = Thread(self, core, kind, k.fn, ctx, t0, self.trace, self.max_cycles)
                    ctx._th = th
                    roles.append(th)
                self.threads.extend(roles)
                if k.kind == "compute" and k.config.fused:
                    driver = Thread(self, core, "compute", k.fn,
                                    FusedCompute(*(ctx for _, ctx in ctxs)), t0, False, self.max_cycles)
                    driver.group = tuple(roles)
                    drivers.append(driver)
                else:
                    drivers.extend(roles)
        for th in (reversed(drivers) if self.reverse_spawn else drivers):
            self.env.process(th.process())

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
        self._allocate()
        self._spawn()
        failure = None
        try:
            self.env.run()
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
        return RunReport.from_engine(self)
