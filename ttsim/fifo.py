"""Timestamped single-producer/single-consumer FIFO: the timing core of CBs and hand-offs.

Every slot remembers when it was pushed and when it was popped. A consumer that needs
page k waits until page k's push time; a producer that reuses a slot waits until the
slot's pop time. Because each end belongs to one thread, these times do not depend on
the order the simulator runs threads in, so the two sides need not share a global clock;
a side blocks (in simpy) only when the other has not yet, in execution order, done what
it needs.
"""
from __future__ import annotations

import numpy as np

from .errors import CBError


class Fifo:
    __slots__ = ("env", "name", "capacity", "pushed", "popped", "reserved_upto", "waited_upto",
                 "push_t", "pop_t", "payload", "producer", "consumer", "prod_waiter",
                 "cons_waiter", "core", "stall_full", "stall_empty")

    def __init__(self, env, capacity, name, core=None, stall_full=None, stall_empty=None):
        self.env, self.name, self.capacity, self.core = env, name, capacity, core
        self.pushed = self.popped = 0
        self.reserved_upto = self.waited_upto = 0
        self.push_t = [0.0] * capacity
        self.pop_t = [0.0] * capacity
        self.payload = [None] * capacity
        self.producer = self.consumer = None
        self.prod_waiter = self.cons_waiter = None
        self.stall_full = stall_full or f"{name} full"
        self.stall_empty = stall_empty or f"{name} empty"

    def _err(self, msg, th, line):
        return CBError(msg, core=th.core, thread=th.kind, line=line, cb=self.name)

    def _n(self, n, th, line, what):
        """A page count: a whole number >= 1 (a numpy integer will do)."""
        if n.__class__ is not bool and isinstance(n, (int, np.integer)) and n >= 1:
            return int(n)
        kind = "not an integer" if n.__class__ is bool or not isinstance(n, (int, np.integer)) \
            else "not positive"
        raise self._err(f"{what} of {n!r} pages on {self.name}: a page count must be a whole "
                        f"number >= 1 ({kind})", th, line)

    def _self_wait(self, th, other, line):
        """A thread of a fused group (see compute.FusedCompute) about to wait for a sibling
        that runs later in program order: it would wait for itself."""
        if other is not None and other is not th and other.glet is th.glet:
            raise self._err(f"{th.kind} waits on {self.name} for {other.kind}, which reaches that "
                            f"point later in the kernel's program order; ttsim runs UNPACK, MATH and "
                            f"PACK of a compute kernel in program order: make the calls in the usual "
                            f"order (acquire, math, commit, wait, pack, release), or build the kernel "
                            f"with Program.compute(..., fused=False)", th, line)

    def _bind(self, th, end, line):
        cur = getattr(self, end)
        if cur is None:
            setattr(self, end, th)
        elif cur is not th:
            raise self._err(f"{self.name} already has {cur.kind} as its {end}; "
                            f"{th.kind} may not use that end too", th, line)

    # --- producer side ------------------------------------------------------------------
    def reserve(self, th, n, line):
        """Block until n slots past everything pushed are free."""
        if n.__class__ is not int or n < 1:
            n = self._n(n, th, line, "reserve")
        if th is not self.producer:
            self._bind(th, "producer", line)
        if n > self.capacity:
            raise self._err(f"reserve of {n} pages can never succeed: {self.name} holds only "
                            f"{self.capacity}", th, line)
        last = self.pushed + n - 1 - self.capacity  # slot sequence that must have been popped
        if last >= 0:
            if self.popped <= last:
                self._self_wait(th, self.consumer, line)
                ev = self.env.event()
                self.prod_waiter = (last + 1, ev)
                th.block(ev, f"space in {self.name} ({n} pages; "
                         f"{self.pushed - self.popped} of {self.capacity} in use)", line)
            th.stall_until(self.pop_t[last % self.capacity], self.stall_full, line)
        if self.pushed + n > self.reserved_upto:
            self.reserved_upto = self.pushed + n

    def push(self, th, n, line, payload=None, t=None):
        """Make n reserved slots visible to the consumer, at the producer's time or at an
        earlier `t` it gives (data that streams out before the producer's call ends)."""
        if n.__class__ is not int or n < 1:
            n = self._n(n, th, line, "push")
        if th is not self.producer:
            self._bind(th, "producer", line)
        if self.pushed + n > self.reserved_upto:
            raise self._err(f"push of {n} pages but only {self.reserved_upto - self.pushed} "
                            f"reserved in {self.name}", th, line)
        t, cap = (th.t if t is None else t), self.capacity
        for s in range(self.pushed, self.pushed + n):
            self.push_t[s % cap] = t
            self.payload[s % cap] = payload
        self.pushed += n
        w = self.cons_waiter
        if w is not None and self.pushed >= w[0]:
            self.cons_waiter = None
            w[1].succeed()

    # --- consumer side ------------------------------------------------------------------
    def wait(self, th, n, line):
        """Block until n pages past everything popped have been pushed."""
        if n.__class__ is not int or n < 1:
            n = self._n(n, th, line, "wait")
        if th is not self.consumer:
            self._bind(th, "consumer", line)
        if n > self.capacity:
            raise self._err(f"wait for {n} pages can never succeed: {self.name} holds only "
                            f"{self.capacity}", th, line)
        need = self.popped + n
        if self.pushed < need:
            self._self_wait(th, self.producer, line)
            ev = self.env.event()
            self.cons_waiter = (need, ev)
            th.block(ev, f"data in {self.name} ({n} pages; "
                     f"{self.pushed - self.popped} there)", line)
        th.stall_until(self.push_t[(need - 1) % self.capacity], self.stall_empty, line)
        if need > self.waited_upto:
            self.waited_upto = need

    def front(self, i=0):
        """Payload of the i-th page at the front (must have been waited for)."""
        return self.payload[(self.popped + i) % self.capacity]

    def pop(self, th, n, line):
        if n.__class__ is not int or n < 1:
            n = self._n(n, th, line, "pop")
        if th is not self.consumer:
            self._bind(th, "consumer", line)
        if self.popped + n > self.waited_upto:
            raise self._err(f"pop of {n} pages but only {self.waited_upto - self.popped} "
                            f"waited for in {self.name}", th, line)
        t, cap = th.t, self.capacity
        for s in range(self.popped, self.popped + n):
            self.pop_t[s % cap] = t
            self.payload[s % cap] = None
        self.popped += n
        w = self.prod_waiter
        if w is not None and self.popped >= w[0]:
            self.prod_waiter = None
            w[1].succeed()
