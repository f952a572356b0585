"""Simulator speed, as ratios to a bare numpy loop over the same tile math (the floor).

Absolute rates depend on the machine; each figure here is measured beside the time numpy
takes for the same tile products in the same run, so the ratio carries across machines.

- the library matmul (reader, compute, writer; NoC, DRAM, CBs, numerics and the cycle
  model all included) on one core and on the full grid, and on one core again with one
  matmul call per tile product: tile matmuls per second;
- a TT-Lang-style tile-at-a-time single-core matmul through ttlang (1x1 blocks, the K
  loop accumulating into one reserved block with `acc=True`, one copy per tile), as a
  TT-Lang user writes it: tile steps per second and wall time over the numpy floor;
- with --fa-rss, the peak resident memory of a flash attention run (batch 2, 24 heads,
  seq 4096, head dim 64) in a subprocess, whole command included.

    python benchmarks/sim_speed.py [--size 1024] [--ttlang-sizes 512,1024] [--fa-rss] [--json out.json]
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np

import ttlang as ttl
import ttlang.ttnn as ttnn
import ttsim
from ttsim.library.matmul import matmul_program

TILE = 32
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flash_attention.py"
FA_RSS_ARGS = ["--batch", "2", "--heads", "24", "--seq", "4096", "--dim", "64"]


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


@ttl.kernel(grid=(1, 1))
def matmul_tiles(a: ttnn.Tensor, b: ttnn.Tensor, y: ttnn.Tensor):
    """TT-Lang's single-core matmul example, a tile at a time."""
    Mt = a.shape[0] // TILE
    Kt = a.shape[1] // TILE
    Nt = b.shape[1] // TILE

    a_dfb = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=2)
    b_dfb = ttl.make_dataflow_buffer_like(b, shape=(1, 1), buffer_factor=2)
    y_dfb = ttl.make_dataflow_buffer_like(y, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def mm_compute():
        for _ in range(Mt):
            for _ in range(Nt):
                with y_dfb.reserve() as y_blk:
                    for _ in range(Kt):
                        with a_dfb.wait() as a_blk, b_dfb.wait() as b_blk:
                            y_blk.store(a_blk @ b_blk, acc=True)

    @ttl.datamovement()
    def mm_read():
        for m in range(Mt):
            for n in range(Nt):
                for k in range(Kt):
                    with a_dfb.reserve() as a_blk, b_dfb.reserve() as b_blk:
                        tx_a = ttl.copy(a[m, k], a_blk)
                        tx_b = ttl.copy(b[k, n], b_blk)
                        tx_a.wait()
                        tx_b.wait()

    @ttl.datamovement()
    def mm_write():
        for m in range(Mt):
            for n in range(Nt):
                with y_dfb.wait() as y_blk:
                    tx = ttl.copy(y_blk, y[m, n])
                    tx.wait()

    return ttl.Program(mm_compute, mm_read, mm_write)(a, b, y)


def numpy_tile_matmul(a, b):
    """The floor: the same tile products, a tile at a time, in numpy, each K step's sum
    rounded to bf16 as the simulated kernel packs it into its bf16 page."""
    mt, kt, nt = a.shape[0] // TILE, a.shape[1] // TILE, b.shape[1] // TILE
    at = a.reshape(mt, TILE, kt, TILE).swapaxes(1, 2).copy()
    bt = b.reshape(kt, TILE, nt, TILE).swapaxes(1, 2).copy()
    y = np.empty((mt, nt, TILE, TILE), np.float32)
    for m in range(mt):
        for n in range(nt):
            acc = np.zeros((TILE, TILE), np.float32)
            for k in range(kt):
                acc = (acc + at[m, k] @ bt[k, n]).astype(ml_dtypes.bfloat16).astype(np.float32)
            y[m, n] = acc
    return y


def measure_ttlang(size):
    """(simulated wall s, numpy floor wall s, tile steps, RunReport) of a size^3 matmul."""
    device = ttnn.open_device(device_id=0)
    a = ttnn.rand((size, size), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                  low=-1, high=1, seed=21)
    b = ttnn.rand((size, size), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                  low=-1, high=1, seed=22)
    y = ttnn.empty((size, size), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
    t0 = time.perf_counter()
    rep = matmul_tiles(a, b, y)
    wall = time.perf_counter() - t0
    an, bn = ttnn.to_numpy(a).astype(np.float32), ttnn.to_numpy(b).astype(np.float32)
    ttnn.close_device(device)
    t0 = time.perf_counter()
    numpy_tile_matmul(an, bn)
    floor = time.perf_counter() - t0
    return wall, floor, (size // TILE) ** 3, rep


def fa_peak_rss(args):
    """Peak RSS (bytes) and wall time of one flash attention command in a fresh process."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(EXAMPLE), *args], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    # ru_maxrss is in KiB on Linux: the largest of the children waited for (only this one)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, wall


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="library matmul size (0 skips it)")
    p.add_argument("--ttlang-sizes", default="512,1024",
                   help="comma-separated sizes of the ttlang tile-at-a-time matmul (1024 takes about 10 s)")
    p.add_argument("--fa-rss", action="store_true",
                   help=f"peak RSS of flash_attention.py {' '.join(FA_RSS_ARGS)} (slow)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    out = {}
    if a.fa_rss:     # first, so that the children's peak RSS is this run's alone
        rss, wall = fa_peak_rss(FA_RSS_ARGS)
        print(f"flash attention {' '.join(FA_RSS_ARGS)}: peak RSS {rss / 2**30:.2f} GiB, "
              f"{wall:.0f} s wall")
        out["fa_b2_h24_s4096_d64_peak_rss_bytes"] = rss
        out["fa_b2_h24_s4096_d64_wall_s"] = wall
    # the library kernel multiplies a 2x4 subblock per call; "1x1_per_tile" makes one call
    # (one unpack and one math hand-off) per tile product, the worst case for the simulator
    cases = (("1x1", (1, 1), {}), ("8x8", (8, 8), {}), ("1x1_per_tile", (1, 1), dict(sm=1, sn=1)))
    for label, grid, blocking in cases if a.size else ():
        wall, tiles, rep = measure(a.size, grid, **blocking)
        rate = tiles / wall
        print(f"{a.size}^3 bf16 matmul on {label}: {tiles:,} tile matmuls in {wall:.2f} s wall "
              f"= {rate:,.0f} tile matmuls/s; simulated {rep.cycles:,.0f} cycles "
              f"({rep.cycles / wall:,.0f} simulated cycles per wall second)")
        out[f"tile_matmuls_per_s_{label}"] = rate
        out[f"wall_s_{label}"] = wall
        out[f"sim_cycles_{label}"] = rep.cycles
    for size in (int(s) for s in a.ttlang_sizes.split(",") if s):
        wall, floor, steps, rep = measure_ttlang(size)
        print(f"ttlang tile-at-a-time {size}^3 matmul: {steps:,} tile steps in {wall:.2f} s wall "
              f"= {steps / wall:,.0f} tile steps/s; numpy floor {floor:.3f} s; "
              f"{wall / floor:.1f}x the floor; simulated {rep.cycles:,.0f} cycles")
        key = f"ttlang_tile_matmul_{size}"
        out[f"{key}_wall_s"] = wall
        out[f"{key}_numpy_floor_s"] = floor
        out[f"{key}_over_floor"] = wall / floor
        out[f"{key}_tile_steps_per_s"] = steps / wall
        out[f"{key}_sim_cycles"] = rep.cycles
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
