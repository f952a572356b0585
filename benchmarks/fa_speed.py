"""Wall-clock time of flash attention runs: the README's main command and a long sequence.

Each case runs `examples/flash_attention.py` in a fresh process, as a user would, and
reports the whole command's wall time (start-up, tensors, simulation, float64 reference)
and the simulation's own share, with the simulated cycles and the rate in simulated
cycles per wall second.

    python benchmarks/fa_speed.py [--cases main,long] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flash_attention.py"
CASES = {
    "main": [],                                                     # the README's main command
    "long": ["--heads", "8", "--seq", "8192", "--dim", "128", "--grid", "8x8"],
}


def run_case(args):
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "fa.json"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(EXAMPLE), *args, "--json", str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        res = json.loads(out.read_text())
    return wall, res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="main,long", help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    figures = {}
    for name in a.cases.split(","):
        if name not in CASES:
            p.error(f"unknown case {name!r}: choose from {', '.join(CASES)}")
        wall, res = run_case(CASES[name])
        print(f"{name:5s} {' '.join(CASES[name]) or '(defaults: 8 heads, seq 2048, dim 64, 8x8)'}: "
              f"{wall:.1f} s wall, of which {res['wall_s']:.1f} s simulating "
              f"{res['cycles']:,.0f} cycles ({res['cycles'] / res['wall_s']:,.0f} cycles/s); "
              f"pcc {res['pcc']:.5f}")
        figures[f"{name}_wall_s"] = wall
        figures[f"{name}_sim_wall_s"] = res["wall_s"]
        figures[f"{name}_sim_cycles"] = res["cycles"]
        figures[f"{name}_sim_cycles_per_s"] = res["cycles"] / res["wall_s"]
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
