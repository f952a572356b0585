"""Compare flash-attention tile schedules for one problem, ranked by simulated cycles.

    python benchmarks/fa_schedules.py --heads 8 --seq 1024 --dim 64 [--csv out.csv] [--html out.html]

A thin wrapper over `ttsim sweep flash_attention` (ttsim.sweep, docs/sweep.md) that keeps
this script's flags: the lists given become the choices of the kernel's declared space
(grid, Q/KV chunk sizes, K/V buffer depth, K/V format, fidelity, fp32 DST accumulation, K/V
sharing by multicast, the SFPU exp mode); schedules that cannot run are pruned with their
reason, results are cached (--cache), and the rest run on a local Dask cluster or process
pool. The table shows cycles, TFLOP/s, correctness (PCC), the L1 taken, each thread kind's
busy share, what bounds each schedule and the Pareto fronts; --json writes the figures.
"""
from __future__ import annotations

import argparse
import json
import os

from ttsim.sweep import DEFAULT_CACHE, for_kernel


def grid_list(s):
    return [tuple(int(v) for v in g.split("x")) for g in s.split(",")]


def int_list(s):
    return [int(v) for v in s.split(",")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--kv-heads", type=int, default=None, help="K/V heads (default: --heads)")
    p.add_argument("--causal", action="store_true")
    p.add_argument("--grids", type=grid_list, default=grid_list("8x8,4x4"))
    p.add_argument("--q-chunks", type=int_list, default=[1, 2, 4])
    p.add_argument("--kv-chunks", type=int_list, default=[2, 4])
    p.add_argument("--buffers", type=int_list, default=[2])
    p.add_argument("--kv-dtypes", default="bf16,bfp8_b")
    p.add_argument("--fidelities", default="HiFi4,HiFi2")
    p.add_argument("--fp32-acc", default="0", help="0, 1 or 0,1: fp32 DST accumulation")
    p.add_argument("--kv-share", default="auto",
                   help="auto, mcast, off or a list: K/V read once and multicast to the cores "
                        "that run the same K/V stream at once")
    p.add_argument("--exp", default="fast", help="fast, approx, accurate or a list: SFPU exp mode")
    p.add_argument("--sysdesc", default=None)
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    p.add_argument("--scheduler", default="auto", help="as ttsim sweep --scheduler")
    p.add_argument("--cache", default=None, help=f"sweep cache (default {DEFAULT_CACHE})")
    p.add_argument("--csv", default=None)
    p.add_argument("--html", default=None, help="the sweep's self-contained HTML report")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    problem = dict(batch=a.batch, heads=a.heads, kv_heads=a.kv_heads, seq=a.seq, dim=a.dim,
                   causal=a.causal, sysdesc=a.sysdesc)
    sw = for_kernel("flash_attention", problem, cache=a.cache)
    sw.space = sw.space.restrict(
        grid=a.grids, q_chunk=a.q_chunks, kv_chunk=a.kv_chunks, buffers=a.buffers,
        kv_dtype=a.kv_dtypes.split(","), math_fidelity=a.fidelities.split(","),
        fp32_dest_acc_en=[bool(int(x)) for x in a.fp32_acc.split(",")],
        kv_share=a.kv_share.split(","), exp=a.exp.split(","))
    res = sw.run(jobs=a.jobs, scheduler=a.scheduler)
    print(res.summary())
    print(res.table())
    for fmt, path in (("csv", a.csv), ("html", a.html)):
        if path:
            getattr(res, f"to_{fmt}")(path)
            print(f"{fmt}: {path}")
    if a.json:
        figures = {"schedules": sw.space.size, "pruned_schedules": len(res.pruned),
                   "simulated": res.ran, "cached": res.cached,
                   "failed_schedules": len(res.failed), "wall_s": res.wall}
        if res.ranked:
            best, worst = res.ranked[0]["result"]["cycles"], res.ranked[-1]["result"]["cycles"]
            figures.update(best_cycles=best, worst_cycles=worst, best_over_worst_speedup=worst / best)
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
