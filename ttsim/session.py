"""Process-wide defaults set by the command line: which sysdesc, whether to trace.

A script run by `ttsim run` builds `Device()` without naming a sysdesc and gets the one the
command line chose; every run's report is collected here for the command to print.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

default_sysdesc = None
trace = None                # a path: run i streams its trace to it (i = 0) or to PATH.i
traced_runs = 0
reports: list = []
collecting = False          # only `ttsim run` collects, so long sweeps do not pile up reports


def trace_target():
    """Where the next run's trace streams to (False: nowhere)."""
    global traced_runs
    if not trace:
        return False
    i = traced_runs
    traced_runs += 1
    return trace if i == 0 else f"{trace}.{i}"


@contextmanager
def tracing(path):
    """Stream the trace of every run made inside the block to `path` (the second run's to
    `path.1`, and so on): for runs one does not call `Device.run` for oneself, such as a
    ttlang kernel call. `RunReport.trace_path` names each file."""
    global trace, traced_runs
    saved = trace, traced_runs
    trace, traced_runs = os.fspath(path), 0
    try:
        yield
    finally:
        trace, traced_runs = saved


def record(report):
    if collecting:
        reports.append(report)
