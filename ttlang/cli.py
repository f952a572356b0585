"""`ttlang show SCRIPT.py [-- args]`: run a script and print the low-level code its kernels became."""
from __future__ import annotations

import argparse
import os
import runpy
import sys

from ttsim.cli import check_script, report_script_error

from .kernel import build_hooks, render


def main(argv=None):
    p = argparse.ArgumentParser(prog="ttlang", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show", help="print each kernel's generated code, under its source lines")
    s.add_argument("script")
    s.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error the script raises")
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, script_args = argv[:i], argv[i + 1:]
    a = p.parse_args(argv)
    check_script(s, a.script)
    shown = []

    def on_build(b):
        text = render(b)
        if text not in shown:
            shown.append(text)
            print(text, flush=True)

    build_hooks.append(on_build)
    saved = (sys.argv, list(sys.path))
    sys.argv = [a.script] + script_args
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.script)))
    try:
        runpy.run_path(a.script, run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        print("ttlang: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        return report_script_error("ttlang", e, a.script, a.debug)
    finally:
        # run in-process (tests, notebooks): leave the session as it was
        build_hooks.remove(on_build)
        sys.argv, sys.path[:] = saved
    if not shown:
        print("ttlang: the script ran no ttlang kernel", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
