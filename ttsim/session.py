"""Process-wide defaults set by the command line: which sysdesc, whether to trace.

A script run by `ttsim run` builds `Device()` without naming a sysdesc and gets the one the
command line chose; every run's report is collected here for the command to print.
"""
from __future__ import annotations

default_sysdesc = None
trace = None                # `ttsim run --trace PATH`: run i streams its trace to PATH (i = 0) or PATH.i
reports: list = []
collecting = False          # only `ttsim run` collects, so long sweeps do not pile up reports


def trace_target():
    """Where the next run's trace streams to (False: nowhere)."""
    if not trace:
        return False
    i = len(reports)
    return trace if i == 0 else f"{trace}.{i}"


def record(report):
    if collecting:
        reports.append(report)
