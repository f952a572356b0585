"""Wall-clock time of flash attention runs: the README's main command and a long sequence.

Each case runs `examples/flash_attention.py` in a fresh process, as a user would, and
reports the whole command's wall time (start-up, tensors, simulation, float64 reference)
and the simulation's own share, with the simulated cycles and the rate in simulated
cycles per wall second. With `--baseline REV` each case also runs from a temporary git
worktree of REV, alternating with this tree's runs on the same machine, and the figure is
the speed-up of this tree over REV (absolute times do not carry between machines; the
ratio does). `--repeat N` runs each side N times and keeps the fastest, so that a load
that comes and goes on the machine does not decide the ratio; the CPU time of the runs
is reported beside the wall time. The worktree is removed afterwards.

    python benchmarks/fa_speed.py [--cases main,long] [--baseline REV] [--repeat N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "main": [],                                                     # the README's main command
    "long": ["--heads", "8", "--seq", "8192", "--dim", "128", "--grid", "8x8"],
}


def _child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_case(args, root=ROOT):
    """Run the example of the tree at `root` (its own packages on the path); returns its
    wall time, its CPU time and its JSON figures."""
    env = dict(os.environ, PYTHONPATH=str(root))
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "fa.json"
        t0, c0 = time.perf_counter(), _child_cpu()
        subprocess.run([sys.executable, str(root / "examples" / "flash_attention.py"), *args,
                        "--json", str(out)], check=True, stdout=subprocess.DEVNULL, env=env,
                       cwd=root)
        wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
        res = json.loads(out.read_text())
    return wall, cpu, res


def fastest(runs):
    """The run with the shortest simulation, and the shortest wall and CPU times seen."""
    best = min(runs, key=lambda r: r[2]["wall_s"])
    return min(r[0] for r in runs), min(r[1] for r in runs), best[2]


@contextmanager
def worktree(rev):
    """A temporary detached worktree of `rev` of this repository, removed on exit."""
    d = tempfile.mkdtemp(prefix="fa_speed_baseline_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", d, rev], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield Path(d)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", d], check=True)


def describe(wall, cpu, res):
    return (f"{wall:.1f} s wall ({cpu:.1f} s CPU), of which {res['wall_s']:.1f} s simulating "
            f"{res['cycles']:,.0f} cycles ({res['cycles'] / res['wall_s']:,.0f} cycles/s); "
            f"pcc {res['pcc']:.5f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="main,long", help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--baseline", default=None, metavar="REV",
                   help="also run each case from a worktree of REV and report the speed-up")
    p.add_argument("--repeat", type=int, default=1, help="runs per side; the fastest counts")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    names = a.cases.split(",")
    for name in names:
        if name not in CASES:
            p.error(f"unknown case {name!r}: choose from {', '.join(CASES)}")
    figures = {}
    with worktree(a.baseline) if a.baseline else nullcontext() as base:
        for name in names:
            mine, theirs = [], []
            for _ in range(a.repeat):
                mine.append(run_case(CASES[name]))
                if base is not None:
                    theirs.append(run_case(CASES[name], base))
            wall, cpu, res = fastest(mine)
            print(f"{name:5s} {' '.join(CASES[name]) or '(defaults: 8 heads, seq 2048, dim 64, 8x8)'}: "
                  f"{describe(wall, cpu, res)}")
            figures[f"{name}_wall_s"] = wall
            figures[f"{name}_cpu_s"] = cpu
            figures[f"{name}_sim_wall_s"] = res["wall_s"]
            figures[f"{name}_sim_cycles"] = res["cycles"]
            figures[f"{name}_sim_cycles_per_s"] = res["cycles"] / res["wall_s"]
            if base is None:
                continue
            bwall, bcpu, bres = fastest(theirs)
            same = bres["cycles"] == res["cycles"] and bres["pcc"] == res["pcc"]
            print(f"{'':5s} baseline {a.baseline}: {describe(bwall, bcpu, bres)}")
            print(f"{'':5s} speed-up {bwall / wall:.2f}x wall, {bcpu / cpu:.2f}x CPU, "
                  f"{bres['wall_s'] / res['wall_s']:.2f}x simulating (fastest of {a.repeat}); "
                  f"cycles and pcc {'identical' if same else 'DIFFER'}")
            figures[f"{name}_baseline_wall_s"] = bwall
            figures[f"{name}_baseline_cpu_s"] = bcpu
            figures[f"{name}_baseline_sim_wall_s"] = bres["wall_s"]
            figures[f"{name}_speedup_wall"] = bwall / wall
            figures[f"{name}_speedup_cpu"] = bcpu / cpu
            figures[f"{name}_speedup_sim"] = bres["wall_s"] / res["wall_s"]
            figures[f"{name}_same_result"] = same
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
