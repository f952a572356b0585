"""Errors that name where things went wrong: core, thread, buffer and kernel source line."""
from __future__ import annotations

import linecache


def where(core=None, thread=None, line=None, cb=None) -> str:
    """A compact location string: 'core (1,2) reader, cb 3, kernels.py:42'."""
    parts = []
    if core is not None:
        parts.append(f"core ({core[0]},{core[1]})" + (f" {thread}" if thread else ""))
    elif thread:
        parts.append(thread)
    if cb is not None:
        parts.append(cb if isinstance(cb, str) else f"cb {cb}")
    if line is not None:
        parts.append(format_line(line))
    return ", ".join(parts)


def format_line(line) -> str:
    """'file.py:42: <source text>' for a (filename, lineno) pair."""
    if line is None:
        return "<unknown line>"
    fname, lineno = line
    text = linecache.getline(fname, lineno).strip()
    return f"{fname}:{lineno}" + (f": {text}" if text else "")


class TTSimError(Exception):
    """Base of every error the simulator raises on bad input or a broken kernel."""

    def __init__(self, message, *, core=None, thread=None, line=None, cb=None):
        self.core, self.thread, self.line, self.cb = core, thread, line, cb
        loc = where(core, thread, line, cb)
        super().__init__(f"{message}\n  at {loc}" if loc else message)
        self.message = message


class TTSimWarning(UserWarning):
    """What a run did that the chip does silently and is most likely a bug (a read of DRAM
    nothing wrote); the run goes on, RunReport.warnings lists each with where it happened."""


class CBError(TTSimError):
    """Circular-buffer protocol misuse: over-reservation, pop without wait, wrong thread."""


class L1OverflowError(TTSimError):
    """More L1 asked of a core than it has."""


class DstOverflowError(TTSimError):
    """A DST register index beyond the capacity of the current sync mode and format."""


class KernelError(TTSimError):
    """An exception raised by kernel code, re-raised with the core and thread it ran on."""


class NocError(TTSimError):
    """A NoC transfer to a place that is not there (off-grid, out of a bank's memory)."""


class AccessError(NocError):
    """A NoC transfer, semaphore operation or L1 access outside what it targets: the
    firmware region, past the end of a CB, a semaphore, a tensor's pages or a DRAM
    allocation, off a core's L1 (the chip would silently corrupt the neighbour)."""


class ArgumentError(TTSimError):
    """A count, size, address or value of the wrong kind: negative, zero, not an integer."""


class DeadlockError(TTSimError):
    """Every remaining thread is blocked and nothing can wake them."""

    def __init__(self, blocked):
        self.blocked = blocked
        lines = [f"  core ({c[0]},{c[1]}) {th}: waiting for {what}\n      at {format_line(ln)}"
                 for c, th, what, ln in blocked]
        Exception.__init__(self, "deadlock: every running thread is blocked\n" + "\n".join(lines))
        self.message = str(self)
        self.core = self.thread = self.line = self.cb = None


class SimLimitError(TTSimError):
    """A thread ran past the run's cycle limit (an endless loop in a kernel, most likely)."""


class SpinError(TTSimError):
    """A kernel loops in Python without an API call that waits or takes a turn, for longer
    than the watchdog allows (ttsim.watchdog): it cannot end, and nothing else runs."""


class LivelockError(TTSimError):
    """Threads poll a value (cb_pages_available_at_front, a word of L1) that nothing can
    change any more: every other thread has finished or waits, and no transfer is in flight."""

    def __init__(self, spinning, blocked=()):
        if isinstance(spinning, str):      # simpy copies a failed process's error from its args
            TTSimError.__init__(self, spinning)
            self.spinning, self.blocked = [], []
            return
        self.spinning, self.blocked = spinning, blocked
        lines = [f"  core ({c[0]},{c[1]}) {th}: spins on {what}\n      at {format_line(ln)}"
                 for c, th, what, ln in spinning]
        lines += [f"  core ({c[0]},{c[1]}) {th}: waiting for {what}\n      at {format_line(ln)}"
                  for c, th, what, ln in blocked]
        Exception.__init__(self, "livelock: every running thread polls a value no other thread "
                           "can change (the others have finished or wait, nothing is in flight)\n"
                           + "\n".join(lines))
        self.message = str(self)
        first = spinning[0]
        self.core, self.thread, self.line, self.cb = first[0], first[1], first[3], None
