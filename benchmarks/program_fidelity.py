"""Whole matmul programs against their measured device time: the compute model's check.

Each row of `calibration/wormhole_matmul.csv` is a matmul that TT-NN ran on a Wormhole
n150 (8x8 grid, inputs and output interleaved in DRAM, TT-NN's out-of-box program
configuration). This script runs the same product through ttsim's library matmul
(`ttsim.library.matmul`, tt-metal's 2-D multicast large-block kernel) configured as TT-NN
configures it, and prints simulated against measured cycles. Nothing is fitted to these rows.

TT-NN's out-of-box choice for these shapes (`MatmulMultiCoreReuseMultiCastProgramConfig`,
the 2-D systolic configuration; the CSV does not record it, so this is our reading of
TT-NN's defaults, kept in `ttnn_config`):
- each core owns per_core_M x per_core_N = (Mt / 8) x (Nt / 8) output tiles and keeps them
  as one output block in L1 (TT-NN's out_block = per_core), the largest block that fits
  where the per-core output does not;
- K steps of in0_block_w = 2 tiles;
- the output subblock is the first of TT-NN's SUBBLOCK_HW_CHOICES (4x2, 2x4, 8x1, ...) that
  divides the block and fits DST (8 tiles with a 16-bit DST);
- packer L1 accumulation off (partials go through the intermediate CB and back into DST
  every K step), 16-bit DST, the row's math fidelity; the output in the input's format.

    python benchmarks/program_fidelity.py [--csv PATH] [--rows 0,2] [--json out.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time

import numpy as np

import ttsim
from ttsim.library.matmul import matmul_program

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = os.path.join(HERE, "..", "..", "shared", "calibration", "wormhole_matmul.csv")
# TT-NN's out-of-box subblock choices, in its order of preference (h, w)
SUBBLOCK_HW_CHOICES = [(4, 2), (2, 4), (8, 1), (1, 8), (7, 1), (1, 7), (3, 2), (2, 3), (6, 1),
                       (1, 6), (5, 1), (1, 5), (2, 2), (4, 1), (1, 4), (3, 1), (1, 3), (2, 1),
                       (1, 2), (1, 1)]


def ttnn_config(dev, m, k, n, grid, fp32_acc=False):
    """The library matmul's options as TT-NN's out-of-box 2-D multicast configuration."""
    mt, kt, nt = m // 32, k // 32, n // 32
    pm, pn = mt // grid[1], nt // grid[0]
    dst = dev.sd.dst_tiles(fp32_acc, False)
    sm, sn = next((h, w) for h, w in SUBBLOCK_HW_CHOICES
                  if pm % h == 0 and pn % w == 0 and h * w <= dst)
    return dict(kb=2 if kt % 2 == 0 else 1, l1_acc=False, sm=sm, sn=sn, fp32_dest_acc_en=fp32_acc)


def _blocks(dev, a, b, c, m, n, grid, opts):
    """TT-NN keeps the whole per-core output in L1; where it does not fit with the
    intermediate CB beside it, the largest block of whole subblocks that does."""
    mt, nt = m // 32, n // 32
    pm, pn = mt // grid[1], nt // grid[0]
    cands = sorted(((x, y) for x in range(opts["sm"], pm + 1, opts["sm"])
                    for y in range(opts["sn"], pn + 1, opts["sn"]) if pm % x == 0 and pn % y == 0),
                   key=lambda xy: (-xy[0] * xy[1], -min(xy)))
    for bm, bn in cands:
        try:
            return matmul_program(dev, a, b, c, grid=grid, bm=bm, bn=bn, **opts), (bm, bn)
        except ValueError:
            continue
    raise ValueError(f"no output block fits L1 for {m}x{n}")


def run_row(row, sysdesc="wormhole_b0"):
    m, k, n = int(row["m"]), int(row["k"]), int(row["n"])
    grid = tuple(int(v) for v in row["grid"].split("x"))
    dev = ttsim.Device(sysdesc)
    fmt = row["dtype"]
    r = np.random.default_rng(0)
    a = dev.tensor(r.standard_normal((m, k)).astype(np.float32), fmt)
    b = dev.tensor(r.standard_normal((k, n)).astype(np.float32), fmt)
    c = dev.empty((m, n), fmt)
    opts = ttnn_config(dev, m, k, n, grid)
    opts["math_fidelity"] = row["math_fidelity"]
    prog, (bm, bn) = _blocks(dev, a, b, c, m, n, grid, opts)
    t0 = time.perf_counter()
    rep = dev.run(prog)
    wall = time.perf_counter() - t0
    us = rep.cycles / (dev.sd.clock_ghz.value * 1e3)
    return dict(m=m, k=k, n=n, dtype=fmt, fidelity=row["math_fidelity"], grid=row["grid"],
                block=f"{bm}x{bn}", subblock=f"{opts['sm']}x{opts['sn']}", kb=opts["kb"],
                measured_ns=float(row["measured_ns"]), simulated_ns=us * 1e3,
                error_pct=100.0 * (us * 1e3 - float(row["measured_ns"])) / float(row["measured_ns"]),
                bottleneck=rep.bottleneck(), wall_s=wall)


def per_k_step_fit(results):
    """Per (dtype, fidelity): time per K step fitted as c x (tile products per core per K
    step) + F over the rows, for the chip and for the model (a description of where each
    spends its time, not something fitted into the model). Needs two or more sizes."""
    groups = {}
    for r in results:
        bm, bn = (int(v) for v in r["block"].split("x"))
        steps = r["k"] // 32 // r["kb"]
        groups.setdefault(f"{r['dtype']} {r['fidelity']}", []).append(
            (bm * bn * r["kb"], r["measured_ns"] / steps, r["simulated_ns"] / steps))
    out = {}
    for g, pts in groups.items():
        if len({x for x, _, _ in pts}) < 2:
            continue
        x = np.array([p[0] for p in pts], float)
        chip = np.polyfit(x, [p[1] for p in pts], 1)
        model = np.polyfit(x, [p[2] for p in pts], 1)
        out[g] = {"chip": {"per_product": float(chip[0]), "per_k_step": float(chip[1])},
                  "model": {"per_product": float(model[0]), "per_k_step": float(model[1])}}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", default=CSV)
    p.add_argument("--rows", default=None, help="comma-separated row numbers (0-based) to run")
    p.add_argument("--sysdesc", default="wormhole_b0")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    with open(a.csv) as f:
        rows = list(csv.DictReader(f))
    if a.rows:
        rows = [rows[int(i)] for i in a.rows.split(",")]
    print(f"{'m x k x n':>18s} {'dtype':6s} {'fid':5s} {'block':6s} {'sub':4s} {'measured':>11s} "
          f"{'simulated':>11s} {'error':>7s}  bottleneck")
    results = []
    for row in rows:
        r = run_row(row, a.sysdesc)
        results.append(r)
        print(f"{r['m']:>5d}x{r['k']:>5d}x{r['n']:>5d} {r['dtype']:6s} {r['fidelity']:5s} "
              f"{r['block']:6s} {r['subblock']:4s} {r['measured_ns']:11,.0f} {r['simulated_ns']:11,.0f} "
              f"{r['error_pct']:+6.1f}%  {r['bottleneck']}  ({r['wall_s']:.1f} s)")
    errs = [abs(r["error_pct"]) for r in results]
    worst = max(range(len(results)), key=lambda i: errs[i])
    print(f"mean |error| {np.mean(errs):.1f}%, worst {errs[worst]:.1f}% "
          f"({results[worst]['m']}x{results[worst]['k']}x{results[worst]['n']} {results[worst]['dtype']})")
    fits = per_k_step_fit(results)
    for g, f in fits.items():
        print(f"{g}: cycles per K step = c x tile products + F; chip c {f['chip']['per_product']:.1f}, "
              f"F {f['chip']['per_k_step']:,.0f}; model c {f['model']['per_product']:.1f}, "
              f"F {f['model']['per_k_step']:,.0f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": results, "mean_abs_error_pct": float(np.mean(errs)),
                       "worst_abs_error_pct": float(errs[worst]), "per_k_step_fit": fits},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
