"""Where a script's time goes, by sampling its stack: self and inclusive share per function.

cProfile charges its own overhead to every Python call, which inflates the call-heavy code
a simulator is made of, and its cumulative times get lost across greenlet switches. This
samples the running frame instead (SIGPROF, every --interval seconds of CPU time) and
counts each function once per sample where it is on the stack (inclusive) and where it is
the innermost frame (self).

    python benchmarks/sample_profile.py [--interval 0.0005] [--top 30] SCRIPT [ARGS...]
"""
import argparse
import os
import runpy
import signal
import sys
from collections import Counter


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interval", type=float, default=0.0005, help="CPU seconds between samples")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    own, incl, n = Counter(), Counter(), [0]

    def sample(_sig, frame):
        n[0] += 1
        seen = set()
        f = frame
        while f is not None:
            c = f.f_code
            key = f"{os.path.basename(c.co_filename)}:{c.co_name}"
            if f is frame:
                own[key] += 1
            if key not in seen:
                seen.add(key)
                incl[key] += 1
            f = f.f_back

    signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, a.interval, a.interval)
    sys.argv = [a.script, *a.args]
    try:
        runpy.run_path(a.script, run_name="__main__")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        total = max(n[0], 1)
        print(f"\n{n[0]} samples")
        for title, counts in (("self", own), ("inclusive", incl)):
            print(f"{title:>9s}  function")
            for key, v in counts.most_common(a.top):
                print(f"{v / total:9.1%}  {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
