"""Multi-core bf16 matmul on the simulator: correctness against float64 and cycles.

    python examples/matmul.py --m 1024 --k 1024 --n 1024 --grid 8x8
"""
import argparse
import json

import numpy as np

import ttsim
from ttsim.library.matmul import matmul


def grid_arg(s):
    x, y = s.lower().split("x")
    return int(x), int(y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", type=int, default=1024)
    p.add_argument("--k", type=int, default=1024)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--grid", type=grid_arg, default=None, help="e.g. 8x8 (default: the full worker grid)")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--fidelity", default="HiFi4")
    p.add_argument("--sysdesc", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    dev = ttsim.Device(a.sysdesc)
    rng = np.random.default_rng(a.seed)
    x = rng.standard_normal((a.m, a.k)).astype(np.float32)
    w = rng.standard_normal((a.k, a.n)).astype(np.float32)
    ta, tb = dev.tensor(x, a.dtype), dev.tensor(w, a.dtype)
    c, rep = matmul(dev, ta, tb, grid=a.grid, math_fidelity=a.fidelity)
    out = c.to_numpy().astype(np.float64)
    ref = ta.to_numpy().astype(np.float64) @ tb.to_numpy().astype(np.float64)
    err = np.abs(out - ref)
    pcc = float(np.corrcoef(out.ravel(), ref.ravel())[0, 1])
    rel = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
    flops = 2.0 * a.m * a.k * a.n
    tflops = flops / (rep.us * 1e-6) / 1e12
    print(f"matmul {a.m}x{a.k} @ {a.k}x{a.n} {a.dtype} {a.fidelity} on {dev.sd.name}")
    print(f"correctness: max abs err {err.max():.4g}, rel err {rel:.3g}, pcc {pcc:.6f} "
          f"(vs float64 on the same bf16 inputs)")
    print(f"cycles: {rep.cycles:,.0f} ({rep.us:,.1f} us), {tflops:.2f} TFLOP/s")
    print(rep.summary())
    if a.json:
        rep.write_json(a.json, extra={"pcc": pcc, "max_abs_err": float(err.max()), "rel_err": rel,
                                      "tflops": tflops})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
