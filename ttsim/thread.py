"""One hardware thread (a RISC running a kernel) with its own clock.

A thread runs its kernel in a greenlet and keeps a local clock `t` that runs ahead of
simpy's `env.now`. Work that touches only the thread itself (an op's cost) just moves the
clock. A thread suspends into simpy only when it needs something that has not happened
yet in execution order (`block`), or when it is about to touch a shared, order-sensitive
resource such as the NoC and must let global time catch up first (`sync`). Everything it
charges is attributed to the kernel source line that asked for it.
"""
from __future__ import annotations

import os
import sys
import traceback

from heapq import heappush

import greenlet
import simpy
from greenlet import getcurrent
import numpy as np
from simpy.events import Event

from .errors import KernelError, SimLimitError, SpinError, TTSimError, where

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
# Frames in these files are the kernel API itself; the first frame outside them is the
# kernel line that called it (library kernels under ttsim/library count as kernels).
_API_FILES = {os.path.join(_PKG_DIR, f) for f in
              ("thread.py", "fifo.py", "cb.py", "dataflow.py", "compute.py", "memory.py")}


def register_api_file(path):
    """Treat frames in `path` as API, not kernel code: a compiler's runtime registers itself
    here so that cycles land on the user's source line rather than on the runtime's."""
    _API_FILES.add(path if path.startswith("<") else os.path.abspath(path))
_frame = sys._getframe


def caller_line():
    """(filename, lineno) of the kernel line that called the API."""
    f = _frame(2)
    while f is not None and f.f_code.co_filename in _API_FILES:
        f = f.f_back
    return (f.f_code.co_filename, f.f_lineno) if f is not None else None


# thread kinds in the order they take their turn at one cycle (see Thread.sync)
KIND_ORDER = {"reader": 0, "writer": 1, "compute": 2, "unpack": 3, "math": 4, "pack": 5}


class _Turn(Event):
    """An event that fires at time `t` with `priority`: simpy runs the events of one time in
    (priority, creation) order; a turn's priority is its thread's rank, above simpy's own
    URGENT (0) and NORMAL (1), so every thread's turn at a cycle comes after the deliveries
    and wake-ups of that cycle and in an order fixed by (core, thread kind), not by the
    order the threads were spawned or got there."""
    __slots__ = ()

    def __init__(self, env, t, priority):
        self.env = env
        self.callbacks = []
        self._value = None
        self._ok = True
        heappush(env._queue, (t, priority, next(env._eid), self))


def limit_text(limit):
    """A cycle limit as the user gave it: whole numbers without a fraction, others exactly."""
    return f"{limit:.0f}" if float(limit).is_integer() else repr(float(limit))


_LIB_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (greenlet, simpy))


def _user_frame(tb):
    """The innermost frame of a traceback in kernel code (not the API, greenlet or simpy)."""
    user = [fr for fr in traceback.extract_tb(tb)
            if fr.filename not in _API_FILES and not fr.filename.startswith(_LIB_DIRS)]
    return user[-1] if user else None


class _Ended:
    """What a kernel context's thread becomes once its kernel has returned: any use of
    that context (a `k` kept by another thread, or after the run) is an error naming it,
    not an API call charged to a finished thread's clock."""
    __slots__ = ("core", "kind")

    def __init__(self, th):
        self.core, self.kind = th.core, th.kind

    def __getattr__(self, name):
        raise TTSimError(f"the kernel context k of core ({self.core[0]},{self.core[1]}) {self.kind} "
                         "is used after that kernel returned: a k belongs to its own kernel while "
                         "it runs (do not keep it for another thread or for after the run)",
                         line=caller_line())


class Thread:
    __slots__ = ("engine", "env", "core", "kind", "fn", "ctx", "t", "busy", "stalls", "lines",
                 "trace", "glet", "blocked", "done", "end", "limit", "group", "pinned", "rank",
                 "turn", "spins", "spin_key", "spin_last", "spin_what", "spin_step")

    def __init__(self, engine, core, kind, fn, ctx, t0, trace, limit):
        self.engine, self.env = engine, engine.env
        self.core, self.kind, self.fn, self.ctx = core, kind, fn, ctx
        self.t = float(t0)
        self.busy = 0.0
        self.stalls: dict[str, float] = {}
        self.lines: dict[tuple, list] = {}
        self.trace = trace      # a list the events go to (trace.ThreadTrace when streamed), or None
        self.blocked = None
        self.done = False
        self.end = None
        self.limit = limit
        self.glet = None
        self.group = (self,)    # the threads this one's greenlet runs (see FusedCompute)
        self.pinned = None      # a source line every call is charged to (KernelContext.pin_line)
        self.rank = 2           # priority of this thread's turns (the engine sets it: Engine._rank)
        self.turn = None        # the turn event it waits for, while it waits in sync
        self.spins = 0          # polls in a row that saw the same value (Engine.poll)
        self.spin_key = self.spin_what = self.spin_step = None
        self.spin_last = 0.0

    # --- accounting -------------------------------------------------------------------
    def charge(self, cycles, name, line, calls=1):
        """Spend `cycles` of busy time on `line` (`calls` API calls: 0 for work a call
        causes besides its own, such as reconfiguring a unit)."""
        if self.glet is not None and getcurrent() is not self.glet:
            self._foreign(line)
        rec = self.lines.get(line)
        if rec is None:
            rec = self.lines[line] = [0, 0.0, 0.0]
        rec[0] += calls
        rec[1] += cycles
        if self.trace is not None:
            self.trace.append((name, self.t, cycles, line))
        self.t += cycles
        self.busy += cycles
        if self.t > self.limit:
            raise SimLimitError(f"thread passed the cycle limit of {limit_text(self.limit)} cycles",
                                core=self.core, thread=self.kind, line=line)

    def _foreign(self, line):
        """This thread's k was called from another kernel's code: its clock and its CBs'
        ends would be driven by the wrong thread."""
        user = next((th for th in self.engine.threads if th.glet is getcurrent()), None)
        by = f"core ({user.core[0]},{user.core[1]}) {user.kind}" if user else "code outside any kernel"
        raise TTSimError(f"the kernel context k of core ({self.core[0]},{self.core[1]}) {self.kind} "
                         f"is used by {by}, which is another kernel: a k belongs to its own "
                         f"kernel (do not keep it for another thread; each kernel gets its own k)",
                         core=user.core if user else None, thread=user.kind if user else None,
                         line=line)

    def stall_until(self, t, reason, line):
        """Wait (idle, not busy) until `t`, attributing the wait to `reason` and `line`."""
        d = t - self.t
        if d <= 0:
            return
        self.stalls[reason] = self.stalls.get(reason, 0.0) + d
        rec = self.lines.get(line)
        if rec is None:
            rec = self.lines[line] = [0, 0.0, 0.0]
        rec[2] += d
        if self.trace is not None:
            self.trace.append(("wait " + reason, self.t, d, line))
        self.t = t
        if t > self.limit:
            raise SimLimitError(f"thread waited ({reason}) past the cycle limit of "
                                f"{limit_text(self.limit)} cycles", core=self.core, thread=self.kind,
                                line=line)

    # --- suspension -------------------------------------------------------------------
    def block(self, event, what, line):
        """Suspend until the simpy `event` fires; `what` is shown if the run deadlocks."""
        if getcurrent() is not self.glet:
            self._foreign(line)
        self.blocked = (what, line)
        value = self.glet.parent.switch(event)
        self.blocked = None
        return value

    def sync(self, line):
        """Let global time catch up with this thread's clock before a shared-resource access
        (the NoC, a semaphore, a word of L1 another thread may write). The thread always
        takes a turn, even when global time is already there: threads that reach one cycle
        go in rank order (core, then thread kind; see _Turn), so what they see of each other
        and the order the NoC serves them in do not depend on the order simpy resumed them."""
        env = self.env
        t = self.t
        ev = self.turn = _Turn(env, t if t > env._now else env._now, self.rank)
        ev.owner = self
        self.block(ev, "global time (sync)", line)
        self.turn = None

    # --- running ----------------------------------------------------------------------
    def _run(self):
        try:
            # inf and NaN are values on the hardware, not warnings. Set once per kernel (numpy
            # keeps errstate per greenlet context; per op it would cost more than most ops).
            with np.errstate(all="ignore"):
                self.fn(self.ctx)
        except TTSimError as e:
            if e.core is None and not hasattr(e, "blocked"):
                e.core, e.thread = self.core, self.kind
                e.args = (f"{e.message}\n  at {where(self.core, self.kind, e.line, e.cb)}",)
            raise
        except (Exception, SystemExit, GeneratorExit) as e:  # a bug in kernel code: report it
            # where it ran (sys.exit() in a kernel ends that kernel's run with an error, not
            # the simulating process; KeyboardInterrupt still stops everything)
            fr = _user_frame(e.__traceback__) or traceback.extract_tb(e.__traceback__)[-1]
            raise KernelError(f"{type(e).__name__} in kernel {getattr(self.fn, '__name__', '?')}: {e}",
                              core=self.core, thread=self.kind,
                              line=(fr.filename, fr.lineno)) from e

    def spin_error(self, exc, seconds):
        """The SpinError for this thread's kernel, interrupted by the watchdog (exc, the
        KeyboardInterrupt it raised, holds where the kernel was)."""
        fr = _user_frame(exc.__traceback__)
        return SpinError(f"kernel {getattr(self.fn, '__name__', '?')} has run {seconds:g} s of "
                         f"wall time without an API call that waits or takes a turn: a Python "
                         f"loop that calls none cannot end (nothing it reads can change while "
                         f"it runs, and no other thread runs); call the API in the loop (a CB "
                         f"wait, a NoC call, a semaphore wait) or end it "
                         f"(TTSIM_SPIN_SECONDS sets the limit)", core=self.core,
                         thread=self.kind, line=(fr.filename, fr.lineno) if fr else None)

    def process(self):
        """The simpy process that drives the greenlet: it yields whatever the kernel blocks on."""
        glet = self.glet = greenlet.greenlet(self._run)
        for th in self.group:
            th.glet = glet
        engine = self.engine
        engine.running = self
        ev = glet.switch()
        while not glet.dead:
            yield ev
            engine.running = self
            engine.resumes += 1
            ev = glet.switch(ev.value if hasattr(ev, "value") else None)
        for th in self.group:
            th.done = True
            th.end = th.t
            th.ctx._th = _Ended(th)
        if not isinstance(self.ctx._th, _Ended):     # a fused compute kernel's own context
            self.ctx._th = _Ended(self)
