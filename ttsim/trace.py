"""Chrome/Perfetto trace output: one process per core, one track per thread."""
from __future__ import annotations

import json
import os

from .report import THREAD_KINDS


def write_chrome_trace(path, thread_events, clock_ghz):
    """Write the Trace Event Format (JSON) that ui.perfetto.dev and chrome://tracing open.

    Timestamps are microseconds at the described clock; each slice's args carry cycles and
    the kernel source line.
    """
    scale = 1.0 / (clock_ghz * 1e3)
    pids, events = {}, []
    for core, kind, evs in thread_events:
        pid = pids.setdefault(core, len(pids))
        tid = THREAD_KINDS.index(kind) if kind in THREAD_KINDS else 9
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                       "args": {"name": kind}})
        for name, t0, dur, line in evs or ():
            ev = {"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": t0 * scale,
                  "dur": dur * scale, "cat": "wait" if name.startswith("wait") else "op",
                  "args": {"cycles": dur, "start_cycle": t0}}
            if line:
                ev["args"]["line"] = f"{os.path.basename(line[0])}:{line[1]}"
            events.append(ev)
    for core, pid in pids.items():
        events.append({"ph": "M", "name": "process_name", "pid": pid,
                       "args": {"name": f"core ({core[0]},{core[1]})"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
    with open(path, "w") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ns"}, f)
