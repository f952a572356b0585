"""A kernel that loops in Python without an API call that waits cannot end, and the other
checks cannot see it: the cycle limit and the livelock check run only when a thread calls
the API, and nothing else runs while it spins. A watchdog thread notices that a run makes no
progress (its counter does not move) for `limit` seconds of wall time and interrupts it; the
caller turns the interrupt into an error at the kernel's line. A real Ctrl-C is left alone.

The limit is TTSIM_SPIN_SECONDS (default 20): far above the longest gap between two waits of
any program in the suite (a fraction of a second), far below a test harness's timeout.
"""
from __future__ import annotations

import _thread
import os
import threading
import time

SPIN_SECONDS = float(os.environ.get("TTSIM_SPIN_SECONDS", "20"))


class Watchdog:
    """`with Watchdog(progress) as w:`: interrupts the main thread (KeyboardInterrupt) once
    `progress()` has returned the same value for `limit` seconds; `w.fired` says it did and
    `w.at_fire` holds what `context()` returned then."""

    def __init__(self, progress, limit=None, context=None):
        self.progress, self.context = progress, context
        self.limit = SPIN_SECONDS if limit is None else limit
        self.fired = False
        self.at_fire = None         # context() when it fired (who was running)
        self._stop = threading.Event()

    def __enter__(self):
        if self.limit > 0 and threading.current_thread() is threading.main_thread():
            threading.Thread(target=self._watch, daemon=True, name="ttsim-watchdog").start()
        return self

    def _watch(self):
        last, since = self.progress(), time.monotonic()
        while not self._stop.wait(min(0.5, self.limit / 4)):
            p, now = self.progress(), time.monotonic()
            if p != last:
                last, since = p, now
            elif now - since >= self.limit and not self._stop.is_set():
                self.at_fire = self.context() if self.context else None
                self.fired = True
                _thread.interrupt_main()
                return

    def __exit__(self, *exc):
        self._stop.set()
        return False
