"""The matmul inside attention against its measurement on a Blackhole chip.

HARDWARE.md ("Compute cost (measured)", tt-metal issue #55760): inside an attention kernel on
Blackhole, with bfp8_b K and HiFi2, one tile multiply-accumulate measures 34.5-36.9 cycles
(32 ideal) plus about 105 cycles per Q tile per K/V step. This runs the flash attention
example (its Q K^T statement, `s.store(qb @ kb.transpose())`) on one Blackhole p100a core
at head dim 128 with K/V chunks of several sizes, takes MATH's busy cycles on that line, and
fits them per Q tile and K/V step as `products x c + F` over the chunk sizes, as the
measurement separates them. Nothing here is fitted into the model: it prints the model's
c and F beside the measured ones.

The measurement does not record the kernel's subblocking; the example's compiler holds up
to half of DST (8 tiles) per acquire, so its per-Q-tile overhead is shared over the rows of
a DST group, which tt-metal's SDPA (one Q tile per subblock row) may not do. So the script
also runs the Q K^T matmul as tt-metal's SDPA compute kernel does (`ttmetal_qk`: its
`matmul_blocks` loop, and the subblocks its program factory picks: subblock width
min(Sk_chunk_t, DST), height min(Sq_chunk_t, DST / width) when the width is a whole row,
else 1) as a ttsim compute kernel, and prints the model's MATH cycles per Q tile and K/V
step beside what the measured figures give at the same size (products x 34.5-36.9 + 105).

    python benchmarks/attention_matmul.py [--kv-chunks 2,4,8] [--sk-chunks 2,4,8,16] [--json out.json]
"""
import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np

import ttsim

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flash_attention.py"
QK_LINE = "s.store(qb @ kb.transpose())"
MEASURED_PER_PRODUCT = (34.5, 36.9)
MEASURED_PER_Q_TILE = 105.0


def _example():
    spec = importlib.util.spec_from_file_location("flash_attention_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def qk_math_cycles(fa, kv_chunk, seq=512, dim=128, q_chunk=4):
    """MATH busy cycles on the Q K^T line and the (Q tile, K/V step) pairs it served."""
    res, rep, _ = fa.run(heads=1, seq=seq, dim=dim, grid=(1, 1), q_chunk=q_chunk,
                         kv_chunk=kv_chunk, kv_dtype="bfp8_b", math_fidelity="HiFi2",
                         sysdesc="blackhole_p100a")
    import linecache
    busy = sum(l.busy for l in rep.lines if l.kind == "math"
               and QK_LINE in linecache.getline(l.file, l.line))
    sq_t, skv_t = seq // 32, seq // 32
    pairs = sq_t * (skv_t // kv_chunk)
    return busy, pairs, kv_chunk * (dim // 32), res["pcc"]


CB_Q, CB_K, CB_S = 0, 1, 16


def ttmetal_qk(sk_t, sq_t=4, dht=4, steps=4, dst=8, sysdesc="blackhole_p100a"):
    """MATH's busy cycles per Q tile per K/V step of S = Q K^T (bf16 Q, bfp8_b K, HiFi2) on
    one core as tt-metal's SDPA compute kernel runs it: per subblock, tile_regs_acquire, one
    matmul_block per head-dim tile, commit, pack. Returns (cycles, products per Q tile,
    subblock (h, w))."""
    dev = ttsim.Device(sysdesc)
    r = np.random.default_rng(0)
    q = dev.tensor(r.standard_normal((32 * sq_t, 32 * dht)).astype(np.float32), "bf16")
    kt = dev.tensor(r.standard_normal((32 * sk_t, 32 * dht)).astype(np.float32), "bfp8_b")
    sw = min(sk_t, dst)
    sh = min(sq_t, dst // sw) if sw == sk_t else 1

    def read(k, cb, t, n):
        g = k.interleaved_addr_gen(t)
        k.cb_reserve_back(cb, n)
        for i in range(n):
            k.noc_async_read_tile(i, g, k.get_write_ptr(cb) + i * t.page_size)
        k.noc_async_read_barrier()
        k.cb_push_back(cb, n)

    def reader(k):
        read(k, CB_Q, q, sq_t * dht)
        for _ in range(steps):
            read(k, CB_K, kt, sk_t * dht)

    def compute(k):
        k.cb_wait_front(CB_Q, sq_t * dht)
        for _ in range(steps):
            k.cb_wait_front(CB_K, sk_t * dht)
            for i0 in range(0, sq_t, sh):
                for j0 in range(0, sk_t, sw):
                    k.tile_regs_acquire()
                    for d in range(dht):      # K's tiles are (row, head-dim): K^T by in1_stride
                        k.matmul_block(CB_Q, CB_K, i0 * dht + d, j0 * dht + d, 0, True, sw, sh, dht, dht)
                    k.tile_regs_commit()
                    k.tile_regs_wait()
                    k.cb_reserve_back(CB_S, sw * sh)
                    for t in range(sw * sh):
                        k.pack_tile(t, CB_S)
                    k.cb_push_back(CB_S, sw * sh)
                    k.tile_regs_release()
            k.cb_pop_front(CB_K, sk_t * dht)

    def writer(k):
        for _ in range(steps * sq_t * sk_t // (sw * sh)):
            k.cb_wait_front(CB_S, sw * sh)
            k.cb_pop_front(CB_S, sw * sh)

    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), CB_Q, "bf16", num_pages=sq_t * dht)
    prog.circular_buffer((0, 0), CB_K, "bfp8_b", num_pages=2 * sk_t * dht)
    prog.circular_buffer((0, 0), CB_S, "bf16", num_pages=2 * dst)
    prog.reader((0, 0), reader)
    prog.writer((0, 0), writer)
    prog.compute((0, 0), compute, math_fidelity="HiFi2")
    rep = dev.run(prog)
    math = next(t for t in rep.threads if t.kind == "math")
    return math.busy / (sq_t * steps), sk_t * dht, (sh, sw)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kv-chunks", default="2,4,8")
    p.add_argument("--sk-chunks", default="2,4,8,16",
                   help="K/V chunks (tiles) of the tt-metal-structured Q K^T")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    fa = _example()
    rows = []
    print(f"{'kv_chunk':>8s} {'products/Q tile':>16s} {'MATH cycles/Q tile/step':>24s}")
    for kc in (int(x) for x in a.kv_chunks.split(",")):
        busy, pairs, prods, pcc = qk_math_cycles(fa, kc)
        rows.append((prods, busy / pairs))
        print(f"{kc:8d} {prods:16d} {busy / pairs:24.1f}   (pcc {pcc:.5f})")
    x, y = np.array([r[0] for r in rows], float), np.array([r[1] for r in rows], float)
    c, f = np.polyfit(x, y, 1)
    lo, hi = MEASURED_PER_PRODUCT
    print(f"model: {c:.1f} cycles per tile product + {f:.1f} per Q tile per K/V step")
    print(f"chip:  {lo}-{hi} cycles per tile product + about {MEASURED_PER_Q_TILE:.0f} per Q tile "
          f"per K/V step (issue #55760)")
    lo, hi = MEASURED_PER_PRODUCT
    print("\nQ K^T as tt-metal's SDPA runs it (4 Q tiles, head dim 128, bfp8_b K, HiFi2, p100a):")
    print(f"{'Sk_chunk_t':>10s} {'subblock':>8s} {'products/Q tile':>16s} {'model':>8s} "
          f"{'chip (#55760 fit)':>18s}")
    tm = []
    for sk in (int(x) for x in a.sk_chunks.split(",")):
        cyc, prods, (sh, sw) = ttmetal_qk(sk)
        chip = (prods * lo + MEASURED_PER_Q_TILE, prods * hi + MEASURED_PER_Q_TILE)
        tm.append({"sk_chunk_t": sk, "subblock": [sh, sw], "products_per_q_tile": prods,
                   "model": cyc, "chip": chip})
        print(f"{sk:10d} {f'{sh}x{sw}':>8s} {prods:16d} {cyc:8.1f} {chip[0]:8.0f}-{chip[1]:.0f}"
              f"  ({100 * (cyc / chip[1] - 1):+.0f}% to {100 * (cyc / chip[0] - 1):+.0f}%)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"rows": [{"products_per_q_tile": int(r[0]), "math_cycles_per_q_tile": r[1]}
                                for r in rows],
                       "model_per_product": c, "model_per_q_tile": f,
                       "measured_per_product": MEASURED_PER_PRODUCT,
                       "measured_per_q_tile": MEASURED_PER_Q_TILE,
                       "ttmetal_structured": tm}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
