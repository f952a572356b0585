"""`ttsim run SCRIPT.py [options] [-- script args]`: run a script on the simulator and report.
`ttsim sysdesc [NAME]` describes a chip; `ttsim sweep KERNEL ...` sweeps a kernel's schedule
space (ttsim.sweep, docs/sweep.md).

The script builds `ttsim.Device()` without naming a sysdesc and gets the one chosen here;
every program it runs is summarised, and optionally written as JSON and as a trace.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import traceback

from . import session


def non_negative(s):
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative")
    return n


def check_script(p, path):
    """A script to run must be a readable file: else the parser's one-line error (exit 2)."""
    if not os.path.exists(path):
        p.error(f"{path}: no such file")
    if not os.path.isfile(path):
        p.error(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        p.error(f"{path}: cannot be read")


def check_output(p, flag, path):
    """An output file's directory must exist, so a long run does not fail at its end."""
    if path is None:
        return
    d = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        p.error(f"{flag} {path}: is a directory")
    if not os.path.isdir(d):
        p.error(f"{flag} {path}: directory {d} does not exist")
    if not os.access(d, os.W_OK):
        p.error(f"{flag} {path}: directory {d} is not writable")


def user_error(e) -> bool:
    """An error the simulator, the sysdesc loader or the ttlang compiler raised on purpose:
    its message says what is wrong, a traceback would only hide it."""
    mod = type(e).__module__.split(".")[0]
    return mod in ("ttsim", "sysdesc", "ttlang") and isinstance(e, Exception)


def report_script_error(prog, e, script, debug):
    """One line (two with the script's line) for an exception a script raised; the whole
    traceback with --debug. Returns the exit status."""
    if debug:
        traceback.print_exception(e)
        return 1
    if user_error(e):
        print(f"{prog}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if os.path.abspath(f.filename) == os.path.abspath(script)]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno}: {frames[-1].line})" if frames else ""
    print(f"{prog}: the script raised {type(e).__name__}: {e}{where}; run with --debug for "
          f"the traceback", file=sys.stderr)
    return 1


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:
        from .sweep import main as sweep_main      # its own parser: options of its own
        return sweep_main(argv[1:], prog="ttsim sweep")
    p = argparse.ArgumentParser(prog="ttsim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a script on the simulator and print a summary")
    r.add_argument("script")
    r.add_argument("--sysdesc", default=None,
                   help="built-in name (wormhole_b0, blackhole), a .toml path or a tt-mlir .ttsys "
                        "(default: $SYSTEM_DESC_PATH, else wormhole_b0)")
    r.add_argument("--chip", type=non_negative, default=None,
                   help="chip of a multi-chip .ttsys (default 0)")
    r.add_argument("--json", default=None, help="write every run's report as JSON here")
    r.add_argument("--trace", default=None, help="write a Perfetto/chrome://tracing trace here")
    r.add_argument("--lines", type=non_negative, default=15,
                   help="show the N costliest kernel lines (0: none)")
    r.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error the script raises")
    d = sub.add_parser("sysdesc", help="describe a sysdesc")
    d.add_argument("name", nargs="?", default=None)
    d.add_argument("--chip", type=non_negative, default=None,
                   help="chip of a multi-chip .ttsys (default 0)")
    sub.add_parser("sweep", add_help=False,
                   help="sweep a kernel's schedule space: prune, cache, run on Dask, rank "
                        "(ttsim sweep --help)")
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

    check_script(r, a.script)
    check_output(r, "--json", a.json)
    check_output(r, "--trace", a.trace)
    import sysdesc
    try:
        desc = sysdesc.load(a.sysdesc, chip=a.chip)
    except sysdesc.SysdescError as e:
        print(f"ttsim: {e}", file=sys.stderr)
        return 2
    saved = (session.default_sysdesc, session.trace, session.traced_runs, session.collecting, sys.argv,
             list(sys.path))
    session.default_sysdesc = desc
    try:
        return _run(a, script_args)
    finally:
        # run in-process (tests, notebooks): the script's sysdesc must not outlive it
        (session.default_sysdesc, session.trace, session.traced_runs, session.collecting, sys.argv,
         sys.path[:]) = saved


def _run(a, script_args):
    session.trace, session.traced_runs = a.trace, 0
    session.reports.clear()
    session.collecting = True
    sys.argv = [a.script] + script_args
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.script)))
    try:
        runpy.run_path(a.script, run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        print("ttsim: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        return report_script_error("ttsim", e, a.script, a.debug)
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
            path = rep.trace_path
            if path is None:           # the script asked for an in-memory trace itself
                path = a.trace if i == 0 else f"{a.trace}.{i}"
                rep.write_trace(path)
            print(f"trace: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
