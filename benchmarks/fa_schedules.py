"""Compare flash-attention tile schedules for one problem, ranked by simulated cycles.

    python benchmarks/fa_schedules.py --heads 8 --seq 1024 --dim 64 [--csv out.csv] [--plot out.png]

Each schedule (grid, Q/KV chunk sizes, K/V buffer depth, K/V format, fidelity, fp32 DST
accumulation, K/V sharing by multicast, the SFPU exp mode) is one simulation; they run in parallel over the local cores.
The table shows cycles, achieved TFLOP/s, correctness (PCC), each thread kind's busy share
and what bounds each schedule.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def _one(job):
    import flash_attention as fa
    problem, sched = job
    try:
        res, rep, _ = fa.run(**problem, **sched)
    except Exception as e:  # a schedule that does not fit is a row, not a crash
        return sched, {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    res = dict(res)
    res["busy"] = rep.per_kind()
    return sched, res


def default_schedules(grids, q_chunks, kv_chunks, buffers, kv_dtypes, fidelities, seq,
                      fp32_accs=(False,), kv_shares=("auto",), exps=("fast",)):
    out = []
    for g, qc, kc, b, dt, fid, acc, sh, ex in itertools.product(
            grids, q_chunks, kv_chunks, buffers, kv_dtypes, fidelities, fp32_accs, kv_shares, exps):
        if (seq // 32) % qc or (seq // 32) % kc:
            continue
        out.append(dict(grid=g, q_chunk=qc, kv_chunk=kc, buffers=b, kv_dtype=dt, math_fidelity=fid,
                        fp32_dest_acc_en=acc, kv_share=sh, exp=ex))
    return out


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
    p.add_argument("--csv", default=None)
    p.add_argument("--plot", default=None, help="bar chart of cycles (needs matplotlib: pip install .[plot])")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    problem = dict(batch=a.batch, heads=a.heads, kv_heads=a.kv_heads, seq=a.seq, dim=a.dim,
                   causal=a.causal, sysdesc=a.sysdesc)
    flags = lambda v: [bool(int(x)) for x in v.split(",")]
    scheds = default_schedules(a.grids, a.q_chunks, a.kv_chunks, a.buffers, a.kv_dtypes.split(","),
                               a.fidelities.split(","), a.seq, flags(a.fp32_acc),
                               a.kv_share.split(","), a.exp.split(","))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=a.jobs) as ex:
        rows = list(ex.map(_one, [(problem, s) for s in scheds]))
    wall = time.perf_counter() - t0
    ok = sorted([r for r in rows if "error" not in r[1]], key=lambda r: r[1]["cycles"])
    bad = [r for r in rows if "error" in r[1]]
    kvh = f" kv{a.kv_heads}" if a.kv_heads else ""
    print(f"flash attention b{a.batch} h{a.heads}{kvh} s{a.seq} d{a.dim}{' causal' if a.causal else ''}: "
          f"{len(scheds)} schedules in {wall:.1f} s on {a.jobs} processes")
    kinds = ("reader", "unpack", "math", "pack", "writer")
    hdr = (f"{'rank':>4} {'grid':>5} {'qc':>3} {'kc':>3} {'buf':>3} {'kv':>6} {'fidelity':>8} "
           f"{'acc':>4} {'share':>5} {'exp':>8} {'cycles':>12} {'us':>9} {'TFLOP/s':>8} {'pcc':>8} "
           f"{'rd%':>4} {'up%':>4} {'ma%':>4} {'pk%':>4} {'wr%':>4}  bottleneck")
    print(hdr)
    for i, (s, r) in enumerate(ok, 1):
        busy = " ".join(f"{100 * r['busy'].get(k, {}).get('busy', 0.0):4.0f}" for k in kinds)
        print(f"{i:4d} {s['grid'][0]}x{s['grid'][1]:<3d} {s['q_chunk']:3d} {s['kv_chunk']:3d} "
              f"{s['buffers']:3d} {s['kv_dtype']:>6} {s['math_fidelity']:>8} "
              f"{'fp32' if s['fp32_dest_acc_en'] else 'bf16':>4} {s['kv_share']:>5} {s['exp']:>8} "
              f"{r['cycles']:12,.0f} {r['us']:9.1f} {r['tflops']:8.2f} {r['pcc']:8.5f} {busy}  "
              f"{r['bottleneck']}")
    for s, r in bad:
        print(f"   - {s}: {r['error']}")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["rank", "grid", "q_chunk", "kv_chunk", "buffers", "kv_dtype", "fidelity",
                        "fp32_dest_acc_en", "kv_share", "exp", "units_shared",
                        "cycles", "us", "tflops", "pcc", "max_abs_err", "bottleneck",
                        "reader_busy", "unpack_busy", "math_busy", "pack_busy", "writer_busy"])
            for i, (s, r) in enumerate(ok, 1):
                busy = r["busy"]
                w.writerow([i, f"{s['grid'][0]}x{s['grid'][1]}", s["q_chunk"], s["kv_chunk"],
                            s["buffers"], s["kv_dtype"], s["math_fidelity"], s["fp32_dest_acc_en"],
                            s["kv_share"], s["exp"], r["units_shared"], r["cycles"], r["us"],
                            r["tflops"], r["pcc"], r["max_abs_err"], r["bottleneck"],
                            *(round(busy.get(k, {}).get("busy", 0.0), 4)
                              for k in kinds)])
        print(f"csv: {a.csv}")
    if a.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("plot skipped: matplotlib is not installed (pip install -e '.[plot]')")
        else:
            labels = [f"{s['grid'][0]}x{s['grid'][1]} q{s['q_chunk']} k{s['kv_chunk']} "
                      f"{s['kv_dtype']} {s['math_fidelity']}{' fp32' if s['fp32_dest_acc_en'] else ''}"
                      f" {s['kv_share']} exp {s['exp']}" for s, _ in ok]
            fig, ax = plt.subplots(figsize=(8, 0.3 * len(ok) + 1))
            ax.barh(labels[::-1], [r["cycles"] for _, r in ok][::-1])
            ax.set_xlabel("simulated cycles")
            fig.tight_layout()
            fig.savefig(a.plot)
            print(f"plot: {a.plot}")
    if a.json:
        figures = {"schedules": len(scheds), "failed_schedules": len(bad), "wall_s": wall}
        if ok:
            figures.update(best_cycles=ok[0][1]["cycles"], worst_cycles=ok[-1][1]["cycles"],
                           best_over_worst_speedup=ok[-1][1]["cycles"] / ok[0][1]["cycles"])
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
