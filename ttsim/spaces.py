"""The declared schedule spaces of flash attention (examples/flash_attention.py) and the
library matmul (ttsim/library/matmul.py), for ttsim.sweep. Each SPACES entry takes a problem
dict (missing keys get defaults) and returns a ready Sweep."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

from .sweep import Space, Sweep, divides, fits

ROOT = Path(__file__).resolve().parents[1]
FA_PATH = ROOT / "examples" / "flash_attention.py"
MATMUL_PATH = Path(__file__).resolve().parent / "library" / "matmul.py"


def _fa():
    m = sys.modules.get("flash_attention")
    stamp = FA_PATH.stat().st_mtime_ns
    if (m is None or Path(getattr(m, "__file__", "")).resolve() != FA_PATH
            or getattr(m, "_sweep_stamp", stamp) != stamp):   # reloaded when edited
        spec = importlib.util.spec_from_file_location("flash_attention", FA_PATH)
        m = importlib.util.module_from_spec(spec)
        sys.modules["flash_attention"] = m
        spec.loader.exec_module(m)
        m._sweep_stamp = stamp
    return m


def _l1_budget(sysdesc):
    import sysdesc as _sdmod
    sd = _sdmod.load(sysdesc)
    return sd.l1_size - sd.l1_reserved, sd.worker_grid()


# --- flash attention -----------------------------------------------------------------------
FA_PROBLEM = dict(batch=1, heads=8, kv_heads=None, seq=2048, dim=64, causal=False, sysdesc=None)


def fa_l1_bytes(s, p):
    fa = _fa()
    sq_t, d_t = p["seq"] // 32, p["dim"] // 32
    qc, kc = s["q_chunk"], s["kv_chunk"]
    masks = len(fa.mask_offsets(sq_t // qc, qc, kc, sq_t // kc)) if p.get("causal") else 0
    kv_bytes = 1088 if s.get("kv_dtype") == "bfp8_b" else 2048
    return fa.l1_bytes_needed(qc, kc, d_t, s.get("buffers", 2), kv_bytes, masks)


def fa_run(**kw):
    """flash_attention.run, its figures plus the L1 its buffers take."""
    res, rep, _ = _fa().run(**kw)
    res = dict(res)
    sched = {k: kw.get(k, 2 if k == "buffers" else None) for k in ("q_chunk", "kv_chunk", "buffers", "kv_dtype")}
    res["l1_bytes"] = fa_l1_bytes(sched, kw)
    return res


def _grid_fits(s, p):
    _, (gx, gy) = _l1_budget(p.get("sysdesc"))
    gx_, gy_ = s["grid"]
    return None if gx_ <= gx and gy_ <= gy else f"grid {gx_}x{gy_} exceeds the chip's {gx}x{gy} workers"


def fa_space(problem):
    seq_t = problem["seq"] // 32
    chunks = [c for c in (1, 2, 4, 8, 16) if c <= seq_t]
    return Space(
        {"grid": [(8, 8), (4, 4), (8, 4)], "q_chunk": chunks, "kv_chunk": chunks, "buffers": [2],
         "kv_dtype": ["bf16", "bfp8_b"], "math_fidelity": ["HiFi4", "HiFi2"],
         "fp32_dest_acc_en": [False], "kv_share": ["auto"], "exp": ["fast"]},
        constraints=[divides("q_chunk", lambda p: p["seq"] // 32, "seq tiles"),
                     divides("kv_chunk", lambda p: p["seq"] // 32, "seq tiles"),
                     _grid_fits,
                     fits(fa_l1_bytes, lambda p: _l1_budget(p.get("sysdesc"))[0])])


def flash_attention(problem, **kw):
    problem = {**FA_PROBLEM, **problem}
    return Sweep(fa_run, fa_space(problem), problem, sources=[FA_PATH], name="flash_attention", **kw)


# --- library matmul ------------------------------------------------------------------------
MM_PROBLEM = dict(M=512, K=512, N=512, dtype="bf16", seed=0, sysdesc=None)


def _mm_work(s, p):
    from .library.matmul import plan
    return plan(p["M"] // 32, p["N"] // 32, s["grid"])


def _mm_blocks(s, p):
    """Reason the matmul's sm/sn/bm/bn/kb (None: chosen by the library) cannot run, or None."""
    import sysdesc as _sdmod
    sd = _sdmod.load(p.get("sysdesc"))
    if (p["M"] | p["K"] | p["N"]) % 32:
        return "M, K and N must be multiples of 32"
    kt = p["K"] // 32
    work = _mm_work(s, p)
    pm = math.gcd(*(w[1] for w in work.values()))
    pn = math.gcd(*(w[3] for w in work.values()))
    sm, sn, bm, bn, kb = (s.get(k) for k in ("sm", "sn", "bm", "bn", "kb"))
    dst = sd.dst_tiles(s.get("fp32_dest_acc_en", False), False)
    if sm and sn and sm * sn > dst:
        return f"subblock {sm}x{sn} exceeds the {dst} DST tiles"
    if kb and kt % kb:
        return f"kb={kb} does not divide K ({kt} tiles)"
    for name, v, per in (("sm", sm, pm), ("sn", sn, pn), ("bm", bm, pm), ("bn", bn, pn)):
        if v and per % v:
            return f"{name}={v} does not divide every core's {'rows' if name[1] == 'm' else 'columns'} ({per} tiles)"
    if bm and sm and bm % sm or bn and sn and bn % sn:
        return "the output block is not a multiple of the subblock"
    if s.get("mcast") and (p["M"] // 32 % s["grid"][1] or p["N"] // 32 % s["grid"][0]):
        return "multicast needs the output split evenly over the grid"
    if bm and bn and kb:
        t = 2048 if p.get("dtype", "bf16") == "bf16" else 1088
        need = bm * bn * t * (1 if s.get("l1_acc", True) else 2) + s.get("buffers", 2) * kb * (bm + bn) * t
        budget = int(0.85 * (sd.l1_size - sd.l1_reserved))
        if need > budget:
            return f"L1: needs {need:,} bytes > {budget:,}"
    return None


def mm_run(M, K, N, dtype="bf16", seed=0, sysdesc=None, **sched):
    """One library matmul of random M x K by K x N: cycles, bottleneck, utilisation, pcc."""
    import numpy as np
    import ttsim
    from .library.matmul import matmul
    dev = ttsim.Device(sysdesc)
    r = np.random.default_rng(seed)
    a = r.standard_normal((M, K)).astype(np.float32)
    b = r.standard_normal((K, N)).astype(np.float32)
    ta, tb = dev.tensor(a, dtype), dev.tensor(b, dtype)
    c, rep = matmul(dev, ta, tb, **{k: v for k, v in sched.items() if v is not None})
    ref = ta.to_numpy().astype(np.float64) @ tb.to_numpy().astype(np.float64)
    out = c.to_numpy().astype(np.float64)
    return {"cycles": float(rep.cycles), "us": float(rep.us), "bottleneck": rep.bottleneck(),
            "pcc": float(np.corrcoef(out.ravel(), ref.ravel())[0, 1]),
            "max_abs_err": float(np.abs(out - ref).max()),
            "utilisation": {k: round(d["busy"], 4) for k, d in rep.per_kind().items()}}


def mm_space(problem):
    return Space({"grid": [(8, 8), (4, 4), (2, 2)], "sm": [None, 1, 2, 4], "sn": [None, 1, 2, 4],
                  "kb": [None, 2, 4, 8], "buffers": [2], "math_fidelity": ["HiFi4", "HiFi2"],
                  "fp32_dest_acc_en": [False], "l1_acc": [True]},
                 constraints=[_grid_fits, _mm_blocks])


def matmul(problem, **kw):
    problem = {**MM_PROBLEM, **problem}
    return Sweep(mm_run, mm_space(problem), problem, sources=[MATMUL_PATH], name="matmul", **kw)


SPACES = {"flash_attention": flash_attention, "matmul": matmul}
