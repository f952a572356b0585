"""Semaphores: small counters in every core's L1 that data-movement threads signal through.

    arrived = ttl.Semaphore(initial_value=0)       # in the kernel body: one on every core
    go = ttl.Semaphore(initial_value=0)

    @ttl.datamovement()
    def dm():
        if ttl.core() == (0, 0):
            arrived.wait_eq(n_cores - 1)            # every other core has checked in
            go.get_remote_multicast().set(1)        # release them all (not itself)
        else:
            arrived.get_remote((0, 0)).inc(1)
            go.wait_eq(1)

Local `wait_eq`, `wait_ge` and `set` act on this core's copy; `get_remote(core)` gives a
handle to another core's copy (`inc`, `set`), `get_remote_multicast(cores)` one to a
rectangle of cores (`set`). They lower to ttsim's noc_semaphore_* calls, with their costs.
"""
from __future__ import annotations

from .errors import CompileError
from .pipe import _int, _pair, _span


def _dm_env(what):
    from .runtime import env
    e = env()
    if e.kind != "datamovement":
        raise CompileError(f"{what} runs on data-movement threads; the compute thread cannot "
                           "reach semaphores")
    return e


class Semaphore:
    """One semaphore on every core of the kernel's grid, starting at `initial_value`."""

    def __init__(self, initial_value=0):
        from .kernel import _current_build
        if isinstance(initial_value, bool) or not isinstance(initial_value, int) \
                or not 0 <= initial_value < 1 << 32:
            raise CompileError(f"Semaphore initial_value must be a whole number in [0, 2**32 - 1] "
                               f"(a semaphore is a 32-bit word), got {initial_value!r}")
        b = _current_build()
        self.initial, self.build = initial_value, b
        self.id = None                      # set when the program is built
        b.semaphores.append(self)

    def _addr(self, e):
        return e.k.get_semaphore(self.id)

    def wait_eq(self, value):
        e = _dm_env("Semaphore.wait_eq")
        if not e.dry:
            e.k.noc_semaphore_wait(self._addr(e), value)

    def wait_ge(self, value):
        e = _dm_env("Semaphore.wait_ge")
        if not e.dry:
            e.k.noc_semaphore_wait_min(self._addr(e), value)

    def set(self, value):
        e = _dm_env("Semaphore.set")
        if not e.dry:
            e.k.noc_semaphore_set(self._addr(e), value)

    def get_remote(self, core):
        gx, gy = self.build.grid
        x, y = _pair(core, "remote semaphore on core")
        xi, yi = _int(x), _int(y)
        if xi is None or yi is None:
            raise CompileError(f"remote semaphore on core {core!r}: a core is (x, y), two integers")
        if not (0 <= xi < gx and 0 <= yi < gy):
            raise CompileError(f"remote semaphore on core {core}, outside the {gx}x{gy} grid")
        return _Remote(self, [(xi, yi)])

    def get_remote_multicast(self, cores=None):
        """Every core of a rectangle ((x or slice, y or slice); default: the whole grid but
        the caller)."""
        gx, gy = self.build.grid
        cores = _pair(cores, "semaphore multicast to") if cores is not None else \
            (slice(0, gx), slice(0, gy))
        xs, ys = (_span(cores[0], gx, "semaphore multicast x"),
                  _span(cores[1], gy, "semaphore multicast y"))
        return _Remote(self, [(x, y) for y in ys for x in xs], rect=(xs.start, ys.start,
                                                                     xs.stop - 1, ys.stop - 1))


class _Remote:
    def __init__(self, sem, cores, rect=None):
        self.sem, self.cores, self.rect = sem, cores, rect

    def inc(self, value=1):
        e = _dm_env("remote Semaphore.inc")
        if self.rect is not None:
            raise CompileError("a multicast semaphore can only be set, not incremented")
        if not e.dry:
            k = e.k
            x, y = k.logical_to_noc(*self.cores[0])
            k.noc_semaphore_inc(k.get_noc_addr(x, y, self.sem._addr(e)), value)

    def set(self, value):
        e = _dm_env("remote Semaphore.set")
        if e.dry:
            return
        k = e.k
        addr = self.sem._addr(e)
        # the value travels from a word in this core's L1, as in tt-metal: one scratch
        # semaphore per data-movement thread, so the two never race for it
        scratch = k.get_semaphore(self.sem.build.scratch_sems[k.kind])
        k.noc_semaphore_set(scratch, value)
        if self.rect is None:
            x, y = k.logical_to_noc(*self.cores[0])
            k.noc_semaphore_set_remote(scratch, k.get_noc_addr(x, y, addr))
        else:
            targets = [c for c in self.cores if c != e.core]
            if not targets:
                return
            x0, y0 = k.logical_to_noc(self.rect[0], self.rect[1])
            x1, y1 = k.logical_to_noc(self.rect[2], self.rect[3])
            k.noc_semaphore_set_multicast(scratch, k.get_noc_multicast_addr(x0, y0, x1, y1, addr),
                                          len(targets))
