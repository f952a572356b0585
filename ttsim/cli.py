"""`ttsim run SCRIPT.py [options] [-- script args]`: run a script on the simulator and report.

The script builds `ttsim.Device()` without naming a sysdesc and gets the one chosen here;
every program it runs is summarised, and optionally written as JSON and as a trace.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import sys

from . import session
from .errors import TTSimError


def main(argv=None):
    p = argparse.ArgumentParser(prog="ttsim", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a script on the simulator and print a summary")
    r.add_argument("script")
    r.add_argument("--sysdesc", default=None,
                   help="built-in name (wormhole_b0, blackhole), a .toml path or a tt-mlir .ttsys "
                        "(default: $SYSTEM_DESC_PATH, else wormhole_b0)")
    r.add_argument("--chip", type=int, default=None, help="chip of a multi-chip .ttsys (default 0)")
    r.add_argument("--json", default=None, help="write every run's report as JSON here")
    r.add_argument("--trace", default=None, help="write a Perfetto/chrome://tracing trace here")
    r.add_argument("--lines", type=int, default=15, help="show the N costliest kernel lines (0: none)")
    d = sub.add_parser("sysdesc", help="describe a sysdesc")
    d.add_argument("name", nargs="?", default=None)
    d.add_argument("--chip", type=int, default=None, help="chip of a multi-chip .ttsys (default 0)")
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, script_args = argv[:i], argv[i + 1:]
    a = p.parse_args(argv)

    if a.cmd == "sysdesc":
        import sysdesc
        try:
            print(sysdesc.load(a.name, chip=a.chip).describe())
        except sysdesc.SysdescError as e:
            print(f"ttsim: {e}", file=sys.stderr)
            return 2
        return 0

    import sysdesc
    try:
        desc = sysdesc.load(a.sysdesc, chip=a.chip)
    except sysdesc.SysdescError as e:
        print(f"ttsim: {e}", file=sys.stderr)
        return 2
    saved = (session.default_sysdesc, session.trace, session.collecting, sys.argv, list(sys.path))
    session.default_sysdesc = desc
    try:
        return _run(a, script_args)
    finally:
        # run in-process (tests, notebooks): the script's sysdesc must not outlive it
        (session.default_sysdesc, session.trace, session.collecting, sys.argv, sys.path[:]) = saved


def _run(a, script_args):
    session.trace = a.trace is not None
    session.reports.clear()
    session.collecting = True
    sys.argv = [a.script] + script_args
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.script)))
    try:
        runpy.run_path(a.script, run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            return e.code if isinstance(e.code, int) else 1
    except TTSimError as e:
        print(f"ttsim: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if not session.reports:
        print("ttsim: the script ran no program on the simulator", file=sys.stderr)
        return 1
    for i, rep in enumerate(session.reports):
        print(f"\n=== run {i + 1} of {len(session.reports)} ===")
        print(rep.summary())
        if a.lines:
            print(rep.line_table(top=a.lines))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"schema_version": 1, "script": a.script,
                       "runs": [rep.to_dict() for rep in session.reports]}, f, indent=1, default=str)
    if a.trace:
        for i, rep in enumerate(session.reports):
            path = a.trace if i == 0 else f"{a.trace}.{i}"
            rep.write_trace(path)
            print(f"trace: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
