"""Chrome/Perfetto trace output: one process per core, one track per thread.

A trace can be kept in memory (`Device.run(trace=True)`, then `RunReport.write_trace`) or
streamed to its file while the run makes it (`Device.run(trace="run.json")`, `ttsim run
--trace`): each thread then holds at most `CHUNK` events before they are written, so a
long run's trace costs disk, not memory. Both write through `TraceStream`.
"""
from __future__ import annotations

import json
import os

from .errors import TTSimError
from .report import THREAD_KINDS

CHUNK = 1024        # events a streamed thread holds before they go to the file


class ThreadTrace(list):
    """One thread's events, (name, start cycle, cycles, line): a list that hands itself to
    its stream to be written every CHUNK events."""
    __slots__ = ("stream", "pid", "tid")

    def append(self, ev):
        list.append(self, ev)
        if len(self) >= CHUNK:
            self.stream.flush(self)


class TraceStream:
    """The Trace Event Format (JSON) that ui.perfetto.dev and chrome://tracing open, written
    as it comes. Timestamps are microseconds at the described clock; each slice's args carry
    cycles and the kernel source line."""

    def __init__(self, path, clock_ghz):
        self.path = os.fspath(path)
        try:
            self._f = open(self.path, "w")
        except OSError as e:
            raise TTSimError(f"trace: cannot write {self.path!r}: {e.strerror}") from None
        self._scale = 1.0 / (clock_ghz * 1e3)
        self._pids: dict = {}
        self._threads: list = []
        self._sep = ""
        self._f.write('{"displayTimeUnit": "ns", "traceEvents": [\n')

    def thread(self, core, kind):
        """The event list of `kind` on `core`."""
        pid = self._pids.setdefault(core, len(self._pids))
        tid = THREAD_KINDS.index(kind) if kind in THREAD_KINDS else 9
        buf = ThreadTrace()
        buf.stream, buf.pid, buf.tid = self, pid, tid
        self._threads.append(buf)
        self._write([{"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                      "args": {"name": kind}}])
        return buf

    def flush(self, buf):
        scale, pid, tid = self._scale, buf.pid, buf.tid
        evs = []
        for name, t0, dur, line in buf:
            ev = {"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": t0 * scale,
                  "dur": dur * scale, "cat": "wait" if name.startswith("wait") else "op",
                  "args": {"cycles": dur, "start_cycle": t0}}
            if line:
                ev["args"]["line"] = f"{os.path.basename(line[0])}:{line[1]}"
            evs.append(ev)
        del buf[:]
        self._write(evs)

    def _write(self, evs):
        if evs:
            self._f.write(self._sep + ",\n".join(json.dumps(ev) for ev in evs))
            self._sep = ",\n"

    def close(self):
        """Write what the threads still hold and the cores' names; the file is complete
        (also after a run that failed: its trace up to the failure is what one debugs)."""
        if self._f.closed:
            return
        for buf in self._threads:
            self.flush(buf)
        meta = []
        for core, pid in self._pids.items():
            meta.append({"ph": "M", "name": "process_name", "pid": pid,
                         "args": {"name": f"core ({core[0]},{core[1]})"}})
            meta.append({"ph": "M", "name": "process_sort_index", "pid": pid,
                         "args": {"sort_index": pid}})
        self._write(meta)
        self._f.write("\n]}\n")
        self._f.close()


def write_chrome_trace(path, thread_events, clock_ghz):
    """Write a run's in-memory events ((core, kind, events) per thread) to `path`."""
    s = TraceStream(path, clock_ghz)
    try:
        for core, kind, evs in thread_events:
            buf = s.thread(core, kind)
            list.extend(buf, evs or ())
            s.flush(buf)
    finally:
        s.close()
