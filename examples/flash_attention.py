"""Flash attention (FlashAttention-2 forward, online softmax) in ttlang, on the simulator.

    out = softmax(Q K^T * scale [+ causal mask]) V

Each core takes whole (batch, head, Q-chunk) work units. It scales its Q chunk once, then
for every KV chunk computes S = (Q * scale) K^T, the new running row max m,
P = exp(S - m), the rescale factor alpha = exp(m_old - m), the running row sum
l = alpha * l + rowsum(P), and the output accumulator O = alpha * O + P V; at the end
out = O / l. The running state (m, l, O) is
carried from one KV chunk to the next through dataflow buffers.

    python examples/flash_attention.py --heads 8 --seq 2048 --dim 64 --grid 8x8
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

import ttlang as ttl


def _deal(n, bins):
    """Split range(n) into `bins` contiguous runs whose lengths differ by at most one."""
    q, r = divmod(n, bins)
    starts = [b * q + min(b, r) for b in range(bins + 1)]
    return [range(starts[b], starts[b + 1]) for b in range(bins)]


def work_split(bh, n_q_chunks, grid, kv_mcast):
    """Which (batch*head, Q chunk) units each core computes, in order.

    Without multicast, units are dealt out in balanced contiguous runs. With multicast, a
    grid row takes row units, each one head's group of gx consecutive Q chunks, which the
    row's cores compute in lockstep, so one core per row can read each K/V chunk and
    multicast it to the others; row units are dealt out to the rows in balanced runs.
    """
    gx, gy = grid
    units = {}
    if not kv_mcast:
        runs = _deal(bh * n_q_chunks, gx * gy)
        for y in range(gy):
            for x in range(gx):
                units[(x, y)] = [divmod(u, n_q_chunks) for u in runs[y * gx + x]]
        return units
    if n_q_chunks % gx:
        raise ValueError(f"K/V multicast needs the {n_q_chunks} Q chunks of a head to split evenly "
                         f"over the {gx} cores of a grid row")
    row_units = [(h, g) for h in range(bh) for g in range(n_q_chunks // gx)]
    for y, run in enumerate(_deal(len(row_units), gy)):
        for x in range(gx):
            units[(x, y)] = [(h, g * gx + x) for h, g in (row_units[i] for i in run)]
    return units


def make_kernel(units, sq_t, skv_t, d_t, q_chunk, kv_chunk, scale, causal, grid, buffers,
                kv_mcast=False, **compute_cfg):
    """Build the ttlang kernel for one problem and schedule."""
    n_q_chunks = sq_t // q_chunk
    n_kv_chunks = skv_t // kv_chunk
    mcast = kv_mcast and grid[0] > 1

    def bcast(col):
        """Row statistics live in column 0 of their tiles: spread them across the columns."""
        return ttl.math.broadcast(col, dims=[1])

    def kv_blocks(qi):
        return qi + 1 if causal else n_kv_chunks   # causal: q_chunk == kv_chunk, blocks 0..qi

    @ttl.kernel(grid=grid, **compute_cfg)
    def flash_attention(q, k, v, mask, out):
        q_buf = ttl.make_dataflow_buffer_like(q, shape=(q_chunk, d_t), buffer_factor=2)
        qs_buf = ttl.make_dataflow_buffer_like(q, shape=(q_chunk, d_t), buffer_factor=1)
        k_buf = ttl.make_dataflow_buffer_like(k, shape=(kv_chunk, d_t), buffer_factor=buffers)
        v_buf = ttl.make_dataflow_buffer_like(v, shape=(kv_chunk, d_t), buffer_factor=buffers)
        if causal:
            mask_buf = ttl.make_dataflow_buffer_like(mask, shape=(q_chunk, kv_chunk), buffer_factor=1)
        out_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, d_t), buffer_factor=2)
        s_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, kv_chunk), buffer_factor=1)
        p_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, kv_chunk), buffer_factor=1)
        m_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=2)
        mn_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=1)
        alpha_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=1)
        l_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=2)
        o_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, d_t), buffer_factor=2)

        def my_units():
            return units[ttl.core(dims=2)]

        if mcast:   # core (0, y) reads K/V and multicasts them along row y
            net = ttl.PipeNet([ttl.Pipe(src=(0, y), dst=(slice(1, grid[0]), y))
                               for y in range(grid[1])])

        def fetch(buf, t, bh, j):
            rows = slice(j * kv_chunk, (j + 1) * kv_chunk)
            with buf.reserve() as blk:
                if not mcast:
                    ttl.copy(t[bh, rows, :], blk).wait()
                    return

                def send(pipe):
                    ttl.copy(t[bh, rows, :], blk).wait()
                    ttl.copy(blk, pipe).wait()

                def recv(pipe):
                    ttl.copy(pipe, blk).wait()
                net.if_src(send)
                net.if_dst(recv)

        @ttl.datamovement()
        def reader():
            if causal:
                with mask_buf.reserve() as mb:
                    ttl.copy(mask[0:q_chunk, 0:kv_chunk], mb).wait()
            for bh, qi in my_units():
                with q_buf.reserve() as qb:
                    ttl.copy(q[bh, qi * q_chunk:(qi + 1) * q_chunk, :], qb).wait()
                for j in range(kv_blocks(qi)):
                    fetch(k_buf, k, bh, j)
                    fetch(v_buf, v, bh, j)

        @ttl.compute()
        def compute():
            if causal:
                mask_blk = mask_buf.wait()
            for _, qi in my_units():
                with q_buf.wait() as qb, qs_buf.reserve() as qs:
                    qs.store(qb * scale)        # the softmax scale, folded into Q once per chunk
                with qs_buf.wait() as qb:
                    with m_buf.reserve() as m0:
                        m0.store(ttl.math.fill(m0, -math.inf))
                    with l_buf.reserve() as l0:
                        l0.store(ttl.math.fill(l0, 0.0))
                    with o_buf.reserve() as o0:
                        o0.store(ttl.math.fill(o0, 0.0))
                    for j in range(kv_blocks(qi)):
                        with k_buf.wait() as kb, s_buf.reserve() as s:
                            if causal and j == qi:
                                s.store(qb @ kb.transpose() + mask_blk)
                            else:
                                s.store(qb @ kb.transpose())
                        with s_buf.wait() as s, m_buf.wait() as m:
                            with mn_buf.reserve() as mn:
                                mn.store(ttl.math.max(m, s.rowmax()))
                            with mn_buf.wait() as mn:
                                with alpha_buf.reserve() as alpha:
                                    alpha.store(ttl.math.exp(m - mn))
                                with p_buf.reserve() as p:
                                    p.store(ttl.math.exp(s - bcast(mn)))
                                with m_buf.reserve() as m_next:
                                    m_next.store(mn)
                        with alpha_buf.wait() as alpha, p_buf.wait() as p:
                            with l_buf.wait() as l, l_buf.reserve() as l_next:
                                l_next.store(alpha * l + p.rowsum())
                            with v_buf.wait() as vb, o_buf.wait() as o, o_buf.reserve() as o_next:
                                o_next.store(bcast(alpha) * o + p @ vb)
                    with o_buf.wait() as o, l_buf.wait() as l, m_buf.wait() as m:
                        with out_buf.reserve() as ob:
                            ob.store(o / bcast(l))
            if causal:
                mask_blk.pop()

        @ttl.datamovement()
        def writer():
            for bh, qi in my_units():
                with out_buf.wait() as ob:
                    ttl.copy(ob, out[bh, qi * q_chunk:(qi + 1) * q_chunk, :]).wait()

    return flash_attention


def reference(q, k, v, scale, causal, rows=1024):
    """float64 attention on the same (format-rounded) inputs, `rows` query rows at a time so
    long sequences do not need the whole score matrix in memory."""
    out = np.empty(q.shape[:-1] + v.shape[-1:])
    n = k.shape[-2]
    kt = np.swapaxes(k, -1, -2)
    for r0 in range(0, q.shape[-2], rows):
        s = np.matmul(q[..., r0:r0 + rows, :], kt)
        s *= scale
        if causal:
            s += np.triu(np.full((n, n), -np.inf), 1)[r0:r0 + rows]
        s -= s.max(-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(-1, keepdims=True)
        out[..., r0:r0 + rows, :] = np.matmul(s, v)
    return out


def auto_schedule(bh, sq_t, skv_t, d_t, grid, causal=False, kv_mcast=False, buffers=2,
                  kv_bytes=2048, l1_bytes=1_300_000):
    """Default Q and K/V chunks (in tiles) for a problem.

    Q chunks: the largest (up to 8 tiles) that still gives every core a work unit, since
    each unit streams the whole of K and V once, so bigger chunks read DRAM less. K/V
    chunks: the largest (up to 16 tiles) whose buffers fit `l1_bytes` of L1, since bigger
    chunks mean fewer, longer statements. Causal runs use square chunks.
    """
    cores = grid[0] * grid[1]
    divs = lambda n, cap: [c for c in range(1, min(n, cap) + 1) if n % c == 0]
    q_opts = [c for c in divs(sq_t, 8) if not kv_mcast or (sq_t // c) % grid[0] == 0] or [1]
    busy = [c for c in q_opts if bh * (sq_t // c) >= cores]
    qc = max(busy) if busy else min(q_opts)

    def l1(qc, kc):   # tiles of every buffer the kernel makes (bf16 but K/V), plus spills
        bf16 = 2048 * (qc * d_t * 7 + qc * kc * (3 if causal else 2) + qc * 6 + qc * kc)
        return bf16 + 2 * kc * d_t * buffers * kv_bytes

    if causal:
        while qc > 1 and l1(qc, qc) > l1_bytes:
            qc = max(c for c in q_opts if c < qc)
        return qc, qc
    kc_opts = [c for c in divs(skv_t, 16) if l1(qc, c) <= l1_bytes] or [1]
    return qc, max(kc_opts)


def run(batch=1, heads=8, seq=2048, dim=64, grid=(8, 8), q_chunk=None, kv_chunk=None, buffers=2,
        kv_dtype="bf16", math_fidelity="HiFi4", fp32_dest_acc_en=False, causal=False, seed=0,
        sysdesc=None, kv_seq=None, kv_mcast=None, exp="fast"):
    """Run flash attention once; returns (figures, RunReport, kernel).

    `exp` is the SFPU exponential's mode: "fast" (the Schraudolph form the chip's attention
    kernels use, the default), "approx" or "accurate" (docs/numerics.md, "SFPU algorithms").
    `kv_seq` (default `seq`) sets the K/V sequence length separately from Q's; `kv_mcast`
    has one core per grid row read each K/V chunk and multicast it to the rest of the row
    (None: whenever the problem splits evenly for it; it reads DRAM once per row, not once
    per core).
    """
    if sysdesc is not None:
        ttl.set_device(sysdesc)
    dev = ttl.device()
    kv_seq = kv_seq or seq
    if seq % 32 or dim % 32 or kv_seq % 32:
        raise ValueError("seq, kv_seq and dim must be multiples of 32")
    sq_t, skv_t, d_t = seq // 32, kv_seq // 32, dim // 32
    if kv_mcast is None:
        qc = q_chunk or auto_schedule(batch * heads, sq_t, skv_t, d_t, grid, causal, True)[0]
        kv_mcast = not causal and grid[0] > 1 and sq_t % qc == 0 and (sq_t // qc) % grid[0] == 0
    auto_q, auto_kv = auto_schedule(batch * heads, sq_t, skv_t, d_t, grid, causal, kv_mcast, buffers,
                                    1088 if kv_dtype == "bfp8_b" else 2048)
    q_chunk, kv_chunk = q_chunk or auto_q, kv_chunk or (q_chunk if causal and q_chunk else auto_kv)
    if sq_t % q_chunk or skv_t % kv_chunk:
        raise ValueError(f"seq {seq} ({sq_t} tiles) must be a multiple of q_chunk={q_chunk} tiles and "
                         f"kv_seq {kv_seq} ({skv_t} tiles) of kv_chunk={kv_chunk}")
    if causal and (q_chunk != kv_chunk or kv_seq != seq):
        raise ValueError("causal runs need q_chunk == kv_chunk and kv_seq == seq")
    if causal and kv_mcast:
        raise ValueError("K/V multicast needs every core of a row to walk the same K/V chunks; "
                         "causal runs do not")
    bh = batch * heads
    units = work_split(bh, sq_t // q_chunk, grid, kv_mcast)
    scale = 1.0 / math.sqrt(dim)
    r = np.random.default_rng(seed)
    shape, kv_shape = (bh, seq, dim), (bh, kv_seq, dim)
    qh, kh, vh = (r.standard_normal(s).astype(np.float32) for s in (shape, kv_shape, kv_shape))
    q = ttl.from_numpy(qh, "bf16")
    k = ttl.from_numpy(kh, kv_dtype)
    v = ttl.from_numpy(vh, kv_dtype)
    mask = ttl.from_numpy(np.triu(np.full((q_chunk * 32, kv_chunk * 32), -np.inf, np.float32), 1)
                          if causal else np.zeros((32, 32), np.float32), "bf16")
    out = ttl.empty(shape, "bf16")
    kern = make_kernel(units, sq_t, skv_t, d_t, q_chunk, kv_chunk, scale, causal, grid, buffers,
                       kv_mcast, math_fidelity=math_fidelity, fp32_dest_acc_en=fp32_dest_acc_en,
                       exp_approx=exp)
    t0 = time.perf_counter()
    rep = kern(q, k, v, mask, out)
    wall = time.perf_counter() - t0
    f64 = lambda t: t.to_numpy().astype(np.float64).reshape(batch, heads, -1, dim)
    o = f64(out)
    ref = reference(f64(q), f64(k), f64(v), scale, causal)
    err = np.abs(o - ref)
    flops = 4.0 * bh * seq * kv_seq * dim * (0.5 if causal else 1.0)
    peak = peak_tflops(dev.sd)
    res = {
        "pcc": float(np.corrcoef(o.ravel(), ref.ravel())[0, 1]),
        "max_abs_err": float(err.max()),
        "rel_err": float(np.linalg.norm(o - ref) / np.linalg.norm(ref)),
        "cycles": float(rep.cycles),
        "us": float(rep.us),
        "tflops": flops / (rep.us * 1e-6) / 1e12,
        "peak_tflops": peak,
        "bottleneck": rep.bottleneck(),
        "wall_s": wall,
        "q_chunk": q_chunk,
        "kv_mcast": kv_mcast,
        "kv_chunk": kv_chunk,
        "exp": exp,
        "utilisation": {kd: round(d["busy"], 4) for kd, d in rep.per_kind().items()},
    }
    return res, rep, kern


def peak_tflops(sd):
    """The chip's HiFi4 FPU peak: one 32x32x32 tile product per 4 x matmul-phase cycles per core."""
    gx, gy = sd.worker_grid()
    per_tile = sd.value("cost.math.matmul") * 4
    return gx * gy * sd.clock_ghz.value * 1e9 * 2 * 32 ** 3 / per_tile / 1e12


def grid_arg(s):
    x, y = s.lower().split("x")
    return int(x), int(y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--kv-seq", type=int, default=None, help="K/V length (default: --seq)")
    p.add_argument("--grid", type=grid_arg, default=None, help="e.g. 8x8 (default: the full worker grid)")
    p.add_argument("--q-chunk", type=int, default=None,
                   help="Q rows per chunk, in tiles (default: auto_schedule)")
    p.add_argument("--kv-chunk", type=int, default=None,
                   help="K/V rows per chunk, in tiles (default: auto_schedule)")
    p.add_argument("--buffers", type=int, default=2, help="K/V buffer depth (blocks)")
    p.add_argument("--kv-dtype", default="bf16", choices=["bf16", "bfp8_b"])
    p.add_argument("--fidelity", default="HiFi4")
    p.add_argument("--fp32-acc", action="store_true")
    p.add_argument("--exp", default="fast", choices=["fast", "approx", "accurate"],
                   help="the SFPU exponential's mode (default fast, as the chip's attention kernels)")
    p.add_argument("--causal", action="store_true")
    p.add_argument("--kv-mcast", choices=["auto", "on", "off"], default="auto",
                   help="one core per grid row reads K/V and multicasts it to the row "
                        "(auto: whenever the work splits evenly for it)")
    p.add_argument("--sysdesc", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--show", action="store_true", help="print the generated low-level code")
    p.add_argument("--lines", type=int, default=0, metavar="N",
                   help="print the N costliest kernel lines per thread (a line profile)")
    a = p.parse_args(argv)
    if a.sysdesc:
        ttl.set_device(a.sysdesc)
    grid = a.grid or ttl.device().sd.worker_grid()
    res, rep, kern = run(a.batch, a.heads, a.seq, a.dim, grid, a.q_chunk, a.kv_chunk, a.buffers,
                         a.kv_dtype, a.fidelity, a.fp32_acc, a.causal, kv_seq=a.kv_seq,
                         kv_mcast={"auto": None, "on": True, "off": False}[a.kv_mcast], exp=a.exp)
    sd = ttl.device().sd
    print(f"flash attention: batch {a.batch}, heads {a.heads}, seq {a.seq}, head dim {a.dim}"
          f"{', causal' if a.causal else ''} on {sd.name} ({grid[0]}x{grid[1]} cores)")
    print(f"schedule: q_chunk {res['q_chunk']} tiles, kv_chunk {res['kv_chunk']} tiles, K/V {a.kv_dtype}, "
          f"{a.fidelity}{', fp32 acc' if a.fp32_acc else ''}, exp {a.exp}, K/V buffer depth {a.buffers}, "
          f"K/V {'multicast along rows' if res['kv_mcast'] else 'read by every core'}")
    print(f"correctness vs float64: pcc {res['pcc']:.6f}, max abs err {res['max_abs_err']:.4g}, "
          f"rel err {res['rel_err']:.3g}")
    print(f"cycles: {res['cycles']:,.0f} = {res['us']:,.1f} us at {sd.clock_ghz.value} GHz; "
          f"{res['tflops']:.2f} TFLOP/s of {res['peak_tflops']:.1f} peak "
          f"({res['tflops'] / res['peak_tflops']:.1%})")
    print(rep.summary())
    print(f"(simulated in {res['wall_s']:.1f} s)")
    if a.lines:
        print(rep.line_table(top=a.lines, by_thread=True))
    if a.show:
        print(kern.show())
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
