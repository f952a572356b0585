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
a DST group, which tt-metal's SDPA (one Q tile per subblock row) may not do.

    python benchmarks/attention_matmul.py [--kv-chunks 2,4,8] [--json out.json]
"""
import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np

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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kv-chunks", default="2,4,8")
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
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"rows": [{"products_per_q_tile": int(r[0]), "math_cycles_per_q_tile": r[1]}
                                for r in rows],
                       "model_per_product": c, "model_per_q_tile": f,
                       "measured_per_product": MEASURED_PER_PRODUCT,
                       "measured_per_q_tile": MEASURED_PER_Q_TILE}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
