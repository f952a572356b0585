"""Process-wide defaults set by the command line: which sysdesc, whether to trace.

A script run by `ttsim run` builds `Device()` without naming a sysdesc and gets the one the
command line chose; every run's report is collected here for the command to print.
"""
from __future__ import annotations

default_sysdesc = None
trace = False
reports: list = []
collecting = False          # only `ttsim run` collects, so long sweeps do not pile up reports


def record(report):
    if collecting:
        reports.append(report)
