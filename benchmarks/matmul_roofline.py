"""Whole matmul programs on the full grid against their ideal time, as HARDWARE.md reports
them measured on a Wormhole n300 chip (8x8 grid): compute-bound programs took about 1.6x
the ideal FPU time, memory-bound ones about 1.4-1.5x the DRAM-bandwidth ideal.

The ideal FPU time is tiles^3 x (matmul cycles per fidelity phase x phases) / cores; the
DRAM ideal is the bytes the program must move (A and B read once each, C written once)
over the sum of the DRAM banks' bandwidth. Nothing here is fitted: the simulated program is
ttsim's library matmul (2-D multicast, tt-metal's large-block kernel), and the ratio comes
from the modelled unpack, pack, synchronisation and data movement.

Two configurations of the same kernel: "tt-metal style" steps K two tiles at a time and
carries partial sums through an intermediate CB, copying them back into DST every step
(as tt-metal's 2-D multicast matmul does with in0_block_w = 2 and packer L1 accumulation
off, our reading of TT-NN's usual configuration for these shapes; the measurements do not
record theirs); "library default" steps K eight tiles at a time and accumulates in L1 with
the packer.

    python benchmarks/matmul_roofline.py [--sysdesc NAME] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import ttsim
from ttsim.library.matmul import matmul_program

# (label, M, K, N, grid): compute-bound squares, and skinny products whose B matrix is
# read once and used by few rows (memory-bound)
TT_METAL = dict(kb=2, l1_acc=False)
CASES = [   # (label, M, K, N, library options)
    ("compute 2048^3, tt-metal style", 2048, 2048, 2048, TT_METAL),
    ("compute 4096x2048x4096, tt-metal style", 4096, 2048, 4096, TT_METAL),
    ("compute 2048^3, library default", 2048, 2048, 2048, {}),
    ("compute 4096x2048x4096, library default", 4096, 2048, 4096, {}),
    ("memory 256x4096x4096, tt-metal style", 256, 4096, 4096, TT_METAL),
    ("memory 256x4096x4096, library default", 256, 4096, 4096, {}),
]
MEASURED = {"compute": (1.6, 1.6), "memory": (1.4, 1.5)}     # HARDWARE.md, Compute cost


def ideal_cycles(sd, m, k, n, cores, fidelity_phases=4):
    fpu = (m // 32) * (k // 32) * (n // 32) * sd.value("cost.math.matmul") * fidelity_phases / cores
    dram_bw = sum(b.bandwidth.value for b in sd.dram_banks)
    dram = (m * k + k * n + m * n) * 2 / dram_bw
    return fpu, dram


def run_case(sd_name, m, k, n, opts):
    dev = ttsim.Device(sd_name)
    grid = dev.grid
    r = np.random.default_rng(0)
    a = dev.tensor(r.standard_normal((m, k)).astype(np.float32))
    b = dev.tensor(r.standard_normal((k, n)).astype(np.float32))
    c = dev.empty((m, n))
    prog = matmul_program(dev, a, b, c, grid=grid, **opts)
    t0 = time.perf_counter()
    rep = dev.run(prog)
    return dev.sd, grid, rep, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sysdesc", default="wormhole_b0")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="only the 2048^3 and the memory-bound case")
    a = p.parse_args(argv)
    figures = {}
    print(f"{'case':41s} {'grid':5s} {'cycles':>11s} {'FPU ideal':>10s} {'DRAM ideal':>10s} "
          f"{'bound':>7s} {'x ideal':>7s} {'measured':>9s}  bottleneck")
    for label, m, k, n, opts in ([CASES[0], CASES[4]] if a.quick else CASES):
        sd, g, rep, wall = run_case(a.sysdesc, m, k, n, opts)
        fpu, dram = ideal_cycles(sd, m, k, n, g[0] * g[1])
        kind = "compute" if fpu >= dram else "memory"
        ratio = rep.cycles / max(fpu, dram)
        lo, hi = MEASURED[label.split()[0]]
        meas = f"{lo:.1f}" if lo == hi else f"{lo:.1f}-{hi:.1f}"
        print(f"{label:41s} {g[0]}x{g[1]:<3d} {rep.cycles:11,.0f} {fpu:10,.0f} {dram:10,.0f} "
              f"{kind:>7s} {ratio:7.2f} {meas:>9s}  {rep.bottleneck()}  ({wall:.1f} s)")
        key = label.replace(", ", "_").replace(" ", "_").replace("-", "_").replace("^3", "_cubed")
        figures[f"{key}_cycles"] = rep.cycles
        figures[f"{key}_x_ideal"] = ratio
        figures[f"{key}_wall_s"] = wall
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
