"""Simulator speed: simulated tile matmuls per wall-clock second.

Runs the library matmul (reader, compute, writer; NoC, DRAM, CBs, numerics and the cycle
model all included) on one core and on the full grid, and reports tile matmuls per second;
then on one core again with one matmul call per tile product.

    python benchmarks/sim_speed.py [--size 1024] [--json out.json]
"""
import argparse
import json
import time

import numpy as np

import ttsim
from ttsim.library.matmul import matmul_program


def measure(size, grid, sysdesc=None, **blocking):
    dev = ttsim.Device(sysdesc)
    r = np.random.default_rng(0)
    a = dev.tensor(r.standard_normal((size, size)).astype(np.float32))
    b = dev.tensor(r.standard_normal((size, size)).astype(np.float32))
    c = dev.empty((size, size))
    prog = matmul_program(dev, a, b, c, grid=grid, **blocking)
    t0 = time.perf_counter()
    rep = dev.run(prog)
    wall = time.perf_counter() - t0
    tiles = (size // 32) ** 3
    return wall, tiles, rep


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    out = {}
    # the library kernel multiplies a 2x4 subblock per call; "1x1_per_tile" makes one call
    # (one unpack and one math hand-off) per tile product, the worst case for the simulator
    cases = (("1x1", (1, 1), {}), ("8x8", (8, 8), {}), ("1x1_per_tile", (1, 1), dict(sm=1, sn=1)))
    for label, grid, blocking in cases:
        wall, tiles, rep = measure(a.size, grid, **blocking)
        rate = tiles / wall
        print(f"{a.size}^3 bf16 matmul on {label}: {tiles:,} tile matmuls in {wall:.2f} s wall "
              f"= {rate:,.0f} tile matmuls/s; simulated {rep.cycles:,.0f} cycles "
              f"({rep.cycles / wall:,.0f} simulated cycles per wall second)")
        out[f"tile_matmuls_per_s_{label}"] = rate
        out[f"wall_s_{label}"] = wall
        out[f"sim_cycles_{label}"] = rep.cycles
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
