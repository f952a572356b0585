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
import hashlib
import heapq
import json
import math
import time

import numpy as np

import ttlang as ttl
import ttsim


def kv_blocks(qi, q_chunk, kv_chunk, n_kv, causal):
    """K/V chunks Q chunk qi attends to: all of them, or causally those that start at or
    before its last row."""
    return min(n_kv, -(-(qi + 1) * q_chunk // kv_chunk)) if causal else n_kv


def kv_parts(n_blocks, split):
    """The K/V blocks [j0, j1) of each of `split` cores that share one Q chunk's K/V range
    (flash-decoding): contiguous, as even as whole blocks allow, the longer ones first."""
    q, r = divmod(n_blocks, split)
    out, j = [], 0
    for p in range(split):
        n = q + (p < r)
        out.append((j, j + n))
        j += n
    return out


def diagonal(qi, j, q_chunk, kv_chunk):
    """A causal (Q chunk, K/V chunk) block some of whose entries lie above the diagonal."""
    return (j + 1) * kv_chunk > qi * q_chunk


def mask_offsets(n_q, q_chunk, kv_chunk, n_kv):
    """The offsets qi * q_chunk - j * kv_chunk (tiles) of the diagonal blocks: each needs the
    mask of its own offset, and there are few (one when the chunks are equal)."""
    return sorted({qi * q_chunk - j * kv_chunk for qi in range(n_q)
                   for j in range(kv_blocks(qi, q_chunk, kv_chunk, n_kv, True))
                   if diagonal(qi, j, q_chunk, kv_chunk)})


def causal_mask(offset, q_chunk, kv_chunk):
    """-inf above the diagonal of a block whose first row is `offset` tiles below its first
    column, else 0."""
    r = np.arange(q_chunk * 32)[:, None] + 32 * offset
    c = np.arange(kv_chunk * 32)[None, :]
    return np.where(c > r, -np.inf, 0.0).astype(np.float32)


def work_units(batch, heads, kv_heads, n_q):
    """The work of a run without a mask, in units, in the order that puts units reading the
    same K/V stream side by side; each is (stream key, Q chunks as (q row, kv row, qi)).

    A unit is one Q chunk. Units of one K/V head (the grouped-query heads of a group, all
    their Q chunks) read the same K/V chunks in the same order: their stream key is the
    same, and cores that run them at the same time can share each K/V chunk one core reads.
    """
    g = heads // kv_heads
    return [((b, kh), ((b * heads + h, b * kv_heads + kh, qi),))
            for b in range(batch) for kh in range(kv_heads)
            for h in range(kh * g, (kh + 1) * g) for qi in range(n_q)]


# Per Q chunk, what a core does besides its K/V steps (read and scale Q, initialise the
# running state, normalise and write the output), counted in K/V steps: an estimate.
CHUNK_STEPS = 1


def gangs(n_cores, group):
    """Consecutive cores in gangs that run the query heads of one K/V group side by side, so
    each K/V chunk is read once per gang: gangs of `group` cores where they fit, the rest in
    gangs whose sizes divide `group` (such a gang takes a group's heads in several passes)."""
    out, i = [], 0
    while i < n_cores:
        size = max(d for d in range(1, min(group, n_cores - i) + 1) if group % d == 0)
        out.append(range(i, i + size))
        i += size
    return out


# The running row max of a K/V part starts finite, not at -inf: a causal part can hold rows
# whose every column is masked, where exp(S - m) would be exp(-inf - -inf) = NaN; from
# -1e30 they get P = 0, l = 0, and the fold weighs them by exp(-1e30 - m) = 0.
PART_M0 = -1e30


def combine_steps(q_chunk, kv_chunk, d_t):
    """A K/V split's combine step (folding one part's partial (m, l, O) in) in K/V steps, as
    `estimate` counts them: per Q tile the partial O's transfer and rescale (about 3 tile
    products a head-dim tile) and two accurate exps (about 25 each), against a K/V step's
    two matmuls and softmax work; an estimate."""
    return (q_chunk * (3 * d_t + 50) + 8) / (q_chunk * kv_chunk * (2 * d_t + 4) + 8)


def causal_deal(batch, kv_heads, group, n_q, n_cores, blocks_of, split=1, combine=0.0):
    """Deal causal work longest first, each item to the gang that would finish it first
    (LPT list scheduling), so no core idles while others finish the long rows.

    An item is one Q chunk of one K/V group, (b, kv head, qi): its `group` query heads read
    the same K/V chunks, so a gang runs them side by side. Q chunk qi costs its K/V steps
    plus CHUNK_STEPS; a gang of `size` cores takes group / size passes of it. With a K/V
    `split`, the gangs are of slots of `split` cores (n_cores // split slots), each core of
    a slot taking a part of the item's K/V steps (kv_parts): an item costs its longest part
    plus `combine` K/V steps (combine_steps) for each other part. Returns (gangs, items per gang in order, each
    gang's load, the longest load)."""
    gs = gangs(n_cores // split, group)
    load = [0.0] * len(gs)
    dealt = [[] for _ in gs]
    cost = lambda item: -(-blocks_of(item[2]) // split) + CHUNK_STEPS + (split - 1) * combine
    items = sorted(((b, kh, qi) for b in range(batch) for kh in range(kv_heads)
                    for qi in range(n_q)), key=lambda it: (-cost(it), it))
    heaps = {}                        # gangs by passes, each a heap of (load, gang)
    for i, g in enumerate(gs):
        heaps.setdefault(group // len(g), []).append((0.0, i))
    for item in items:
        c = cost(item)
        p = min(heaps, key=lambda p: (heaps[p][0][0] + c * p, heaps[p][0][1]))
        _, i = heapq.heappop(heaps[p])
        load[i] += c * p
        dealt[i].append(item)
        heapq.heappush(heaps[p], (load[i], i))
    return gs, dealt, load, max(load)


def _rects(first, last, gx):
    """Cores first..last (row-major indices on a gx-wide grid) as at most three rectangles
    (x0, y0, x1, y1): the rest of the first row, whole rows, the start of the last row."""
    out = []
    while first <= last:
        y, x = divmod(first, gx)
        if x or last - first + 1 < gx:
            x1 = min(gx - 1, x + last - first)
            out.append((x, y, x1, y))
            first += x1 - x + 1
        else:
            y1 = (last + 1) // gx - 1
            out.append((0, y, gx - 1, y1))
            first = (y1 + 1) * gx
    return out


class _Pipes:
    """Multicast pipes as (source core, rectangle of destination cores), one id each."""

    def __init__(self, cores, gx):
        self.cores, self.gx, self.pipes, self._ids = cores, gx, [], {}

    def _id(self, key):
        if key not in self._ids:
            self._ids[key] = len(self.pipes)
            self.pipes.append(key)
        return self._ids[key]

    def unicast(self, i, j):
        """The pipe from core i to core j (row-major indices) alone."""
        x, y = self.cores[j]
        return self._id((self.cores[i], (x, y, x, y)))

    def roles(self, i, j):
        """K/V roles of cores i..j (row-major indices) that share a stream: the first reads
        and multicasts to the rest, a rectangle at a time."""
        if j == i:
            return [None]
        ids = [self._id((self.cores[i], rect)) for rect in _rects(i + 1, j, self.gx)]
        out = [("send", ids)]
        for m in range(i + 1, j + 1):
            x, y = self.cores[m]
            out.append(("recv", next(p for p in ids if self.pipes[p][1][0] <= x <= self.pipes[p][1][2]
                                     and self.pipes[p][1][1] <= y <= self.pipes[p][1][3])))
        return out


def plan(units, grid, share, blocks_of, buffers, split=1):
    """Deal units to cores in rounds (round r gives unit r * cores + i to core i, row-major)
    and decide who reads each K/V chunk from DRAM.

    Returns (schedule, pipes): per core, its units in order, each as (chunks, K/V role).
    A chunk is (q row, kv row, qi, j0, j1, exchange): the Q chunk attends to K/V blocks
    j0..j1-1. The K/V role is None (the core reads its own), ("send", [pipe ids]) or
    ("recv", pipe id); pipes are (source core, rectangle of destination cores). With
    `share`, the cores of a round whose units have the same stream key form a run of
    consecutive cores; the first reads each K/V chunk and multicasts it to the rest, a
    rectangle at a time. A multicast lands at the sender's buffer address, so a run only
    shares among cores whose K/V buffers stand at the same block (blocks consumed so far,
    modulo `buffers`): it splits where they do not.

    With `split` > 1 (flash-decoding), each Q chunk's K/V blocks are split (kv_parts) over
    `split` cores that run it at the same time: a round gives cores // split units, part p
    of unit g to core p * (cores // split) + g (so the cores of one part sit side by side
    and share K/V streams as above; cores left over idle). Part 0's core combines: its
    exchange is ("combine", [pipe ids of parts 1.., in order]); the others' is ("part",
    pipe id), the pipe their partial (m, l, O) goes to it on. Without a split it is None.
    """
    gx, gy = grid
    cores = [(x, y) for y in range(gy) for x in range(gx)]
    sched = {c: [] for c in cores}
    consumed = [0] * len(cores)
    pipes = _Pipes(cores, gx)
    n_g = len(cores) // split
    for r0 in range(0, len(units), n_g):
        rnd = units[r0:r0 + n_g]
        for part in range(split):
            base = part * n_g
            i = 0
            while i < len(rnd):
                j = i
                while (share and j + 1 < len(rnd) and rnd[j + 1][0] == rnd[i][0]
                       and consumed[base + j + 1] % buffers == consumed[base + i] % buffers):
                    j += 1
                for m, role in zip(range(i, j + 1), pipes.roles(base + i, base + j)):
                    chunks = []
                    for q_row, kv_row, qi in rnd[m][1]:
                        j0, j1 = kv_parts(blocks_of(qi), split)[part]
                        if split == 1:
                            x = None
                        elif part:
                            x = ("part", pipes.unicast(base + m, m))
                        else:
                            x = ("combine", [pipes.unicast(p * n_g + m, m) for p in range(1, split)])
                        chunks.append((q_row, kv_row, qi, j0, j1, x))
                        consumed[base + m] += j1 - j0
                    sched[cores[base + m]].append((tuple(chunks), role))
                i = j + 1
    return sched, pipes.pipes


def causal_plan(batch, heads, kv_heads, n_q, grid, share, blocks_of, split=1, combine=0.0):
    """The schedule of a causal run (as plan returns it) from causal_deal: each gang takes
    its items in turn, a pass at a time; in a pass its cores run query heads of the same
    K/V group on the same Q chunk, so with `share` the first reads each K/V chunk and
    multicasts it to the rest (a gang's cores consume the same blocks, so their K/V
    buffers stay in step). With a K/V `split`, slot m of the deal is the cores
    p * (cores // split) + m, part p on each (laid out as plan lays them out): part p of
    every item of a gang on the gang's cores of part p, which share its K/V as above; part
    0 combines (a Q chunk with fewer K/V chunks than parts leaves the last parts empty:
    they send m = -inf, l = 0, O = 0)."""
    gx, gy = grid
    cores = [(x, y) for y in range(gy) for x in range(gx)]
    group = heads // kv_heads
    n_v = len(cores) // split
    gs, dealt, _, _ = causal_deal(batch, kv_heads, group, n_q, len(cores), blocks_of, split, combine)
    sched = {c: [] for c in cores}
    pipes = _Pipes(cores, gx)
    for gang, items in zip(gs, dealt):
        for part in range(split):
            real = [part * n_v + m for m in gang]
            roles = pipes.roles(real[0], real[-1]) if share else [None] * len(gang)
            for b, kh, qi in items:
                j0, j1 = kv_parts(blocks_of(qi), split)[part]
                for h0 in range(kh * group, (kh + 1) * group, len(gang)):
                    for m, r, role in zip(gang, real, roles):
                        if split == 1:
                            x = None
                        elif part:
                            x = ("part", pipes.unicast(r, m))
                        else:
                            x = ("combine", [pipes.unicast(p * n_v + m, m) for p in range(1, split)])
                        sched[cores[r]].append((((b * heads + h0 + m - gang[0], b * kv_heads + kh, qi,
                                                  j0, j1, x),), role))
    return sched, pipes.pipes


def make_kernel(sched, pipes, d_t, q_chunk, kv_chunk, scale, causal, offsets, grid,
                buffers, alpha_exp="accurate", **compute_cfg):
    """Build the ttlang kernel for one problem and schedule (see plan)."""
    split = any(x for units in sched.values() for chunks, _ in units for *_, x in chunks)

    def bcast(col):
        """Row statistics live in column 0 of their tiles: spread them across the columns."""
        return ttl.math.broadcast(col, dims=[1])

    @ttl.kernel(grid=grid, **compute_cfg)
    def flash_attention(q, k, v, mask, out):
        q_buf = ttl.make_dataflow_buffer_like(q, shape=(q_chunk, d_t), buffer_factor=2)
        qs_buf = ttl.make_dataflow_buffer_like(q, shape=(q_chunk, d_t), buffer_factor=1)
        k_buf = ttl.make_dataflow_buffer_like(k, shape=(kv_chunk, d_t), buffer_factor=buffers)
        v_buf = ttl.make_dataflow_buffer_like(v, shape=(kv_chunk, d_t), buffer_factor=buffers)
        mask_bufs = [ttl.make_dataflow_buffer_like(mask, shape=(q_chunk, kv_chunk), buffer_factor=1)
                     for _ in offsets]
        out_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, d_t), buffer_factor=2)
        s_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, kv_chunk), buffer_factor=1)
        p_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, kv_chunk), buffer_factor=1)
        m_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=2)
        mn_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=1)
        alpha_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=1)
        l_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=2)
        o_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, d_t), buffer_factor=2)
        if split:       # a part's (m, l, O) on its way to the core that combines them
            xm_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=1)
            xl_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=1)
            xo_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, d_t), buffer_factor=1)
            beta_buf = ttl.make_dataflow_buffer_like(out, shape=(q_chunk, 1), buffer_factor=1)
        nets = [ttl.PipeNet([ttl.Pipe(src=src, dst=(slice(x0, x1 + 1), slice(y0, y1 + 1)))])
                for src, (x0, y0, x1, y1) in pipes]

        def my_work():
            return sched[ttl.core(dims=2)]

        def fetch(buf, t, kv_row, j, role):
            rows = slice(j * kv_chunk, (j + 1) * kv_chunk)
            with buf.reserve() as blk:
                if role is None or role[0] == "send":
                    ttl.copy(t[kv_row, rows, :], blk).wait()
                if role is None:
                    return
                if role[0] == "send":
                    sent = [ttl.copy(blk, nets[p].pipes[0]) for p in role[1]]
                    for h in sent:
                        h.wait()
                else:
                    ttl.copy(nets[role[1]].pipes[0], blk).wait()

        @ttl.datamovement()
        def reader():
            for n, mb in enumerate(mask_bufs):
                with mb.reserve() as blk:
                    ttl.copy(mask[n * q_chunk:(n + 1) * q_chunk, 0:kv_chunk], blk).wait()
            for chunks, role in my_work():
                for q_row, kv_row, qi, j0, j1, _ in chunks:
                    with q_buf.reserve() as qb:
                        ttl.copy(q[q_row, qi * q_chunk:(qi + 1) * q_chunk, :], qb).wait()
                    for j in range(j0, j1):
                        fetch(k_buf, k, kv_row, j, role)
                        fetch(v_buf, v, kv_row, j, role)

        @ttl.compute()
        def compute():
            masks = [mb.wait() for mb in mask_bufs]
            for chunks, _ in my_work():
                for _, _, qi, j0, j1, x in chunks:
                    with q_buf.wait() as qb, qs_buf.reserve() as qs:
                        qs.store(qb * scale)        # the softmax scale, folded into Q once per chunk
                    with qs_buf.wait() as qb:
                        with m_buf.reserve() as m0:
                            m0.store(ttl.math.fill(m0, -math.inf if x is None else PART_M0))
                        with l_buf.reserve() as l0:
                            l0.store(ttl.math.fill(l0, 0.0))
                        with o_buf.reserve() as o0:
                            o0.store(ttl.math.fill(o0, 0.0))
                        for j in range(j0, j1):
                            with k_buf.wait() as kb, s_buf.reserve() as s:
                                if causal and diagonal(qi, j, q_chunk, kv_chunk):
                                    mk = masks[offsets.index(qi * q_chunk - j * kv_chunk)]
                                    s.store(qb @ kb.transpose() + mk)
                                else:
                                    s.store(qb @ kb.transpose())
                            with s_buf.wait() as s, m_buf.wait() as m:
                                with mn_buf.reserve() as mn:
                                    mn.store(ttl.math.max(m, s.rowmax()))
                                with mn_buf.wait() as mn:
                                    with alpha_buf.reserve() as alpha:
                                        alpha.store(ttl.math.exp(m - mn, approx=alpha_exp))
                                    with p_buf.reserve() as p:
                                        p.store(ttl.math.exp(s - bcast(mn)))
                                    with m_buf.reserve() as m_next:
                                        m_next.store(mn)
                            with alpha_buf.wait() as alpha, p_buf.wait() as p:
                                with l_buf.wait() as l, l_buf.reserve() as l_next:
                                    l_next.store(alpha * l + p.rowsum())
                                with v_buf.wait() as vb, o_buf.wait() as o, o_buf.reserve() as o_next:
                                    o_next.store(bcast(alpha) * o + p @ vb)
                        if x and x[0] == "part":      # the partial goes to the combining core
                            with o_buf.wait() as o, l_buf.wait() as l, m_buf.wait() as m:
                                with xm_buf.reserve() as xm:
                                    xm.store(m)
                                with xl_buf.reserve() as xl:
                                    xl.store(l)
                                with xo_buf.reserve() as xo:
                                    xo.store(o)
                        else:
                            for _ in (x[1] if x else ()):  # fold in each part's (m, l, O)
                                with xm_buf.wait() as mi, m_buf.wait() as m:
                                    with mn_buf.reserve() as mn:
                                        mn.store(ttl.math.max(m, mi))
                                    with mn_buf.wait() as mn:
                                        # accurate: these weigh whole partial sums, so an
                                        # approximate exp's bias would not cancel (few tiles)
                                        with alpha_buf.reserve() as alpha:
                                            alpha.store(ttl.math.exp(m - mn, approx="accurate"))
                                        with beta_buf.reserve() as beta:
                                            beta.store(ttl.math.exp(mi - mn, approx="accurate"))
                                        with m_buf.reserve() as m_next:
                                            m_next.store(mn)
                                with alpha_buf.wait() as alpha, beta_buf.wait() as beta:
                                    with xl_buf.wait() as li, l_buf.wait() as l, l_buf.reserve() as l_next:
                                        l_next.store(alpha * l + beta * li)
                                    with xo_buf.wait() as oi, o_buf.wait() as o, o_buf.reserve() as o_next:
                                        o_next.store(bcast(alpha) * o + bcast(beta) * oi)
                            with o_buf.wait() as o, l_buf.wait() as l, m_buf.wait() as m:
                                with out_buf.reserve() as ob:
                                    ob.store(o / bcast(l))
            for mk in masks:
                mk.pop()

        @ttl.datamovement()
        def writer():
            for chunks, _ in my_work():
                for q_row, _, qi, _, _, x in chunks:
                    if x and x[0] == "part":
                        for xb in (xm_buf, xl_buf, xo_buf):
                            with xb.wait() as blk:
                                ttl.copy(blk, nets[x[1]].pipes[0]).wait()
                        continue
                    for pid in (x[1] if x else ()):
                        for xb in (xm_buf, xl_buf, xo_buf):
                            with xb.reserve() as blk:
                                ttl.copy(nets[pid].pipes[0], blk).wait()
                    with out_buf.wait() as ob:
                        ttl.copy(ob, out[q_row, qi * q_chunk:(qi + 1) * q_chunk, :]).wait()

    return flash_attention


def reference(q, k, v, scale, causal, rows=1024):
    """float64 attention on the same (format-rounded) inputs, one head and at most `rows`
    query rows at a time, so that neither long sequences nor many heads need the whole
    score matrix, or float64 copies of the inputs, in memory. q is (batch, heads, seq,
    dim), k and v (batch, kv_heads, kv_seq, dim), in float32 or float64: each K/V head
    serves heads / kv_heads consecutive query heads."""
    g = q.shape[1] // k.shape[1]
    out = np.empty(q.shape[:-1] + v.shape[-1:])
    n = k.shape[-2]
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            kt = k[b, h // g].astype(np.float64).T
            vh = v[b, h // g].astype(np.float64)
            for r0 in range(0, q.shape[-2], rows):
                s = np.matmul(q[b, h, r0:r0 + rows, :].astype(np.float64), kt)
                s *= scale
                if causal:      # -inf above the diagonal of the whole score matrix
                    s += np.triu(np.full(s.shape, -np.inf), 1 + r0)
                s -= s.max(-1, keepdims=True)
                np.exp(s, out=s)
                s /= s.sum(-1, keepdims=True)
                out[b, h, r0:r0 + rows, :] = np.matmul(s, vh)
    return out


def pcc_in_place(xy):
    """np.corrcoef(xy)[0, 1] of a (2, n) float64 array, computed as numpy computes it (the
    same bits) but in place: xy is left centred. numpy's copies the rows twice, which for a
    long run is hundreds of MB."""
    xy -= xy.mean(axis=1)[:, None]
    c = np.dot(xy, xy.T)
    c *= np.true_divide(1, xy.shape[1] - 1)
    sd = np.sqrt(np.diag(c))
    c /= sd[:, None]
    c /= sd[None, :]
    np.clip(c, -1, 1, out=c)
    return float(c[0, 1])


def l1_bytes_needed(qc, kc, d_t, buffers, kv_bytes, n_masks, split=1):
    """L1 the kernel's buffers take (bf16 but K/V) plus the compiler's intermediates; a
    K/V split adds the exchange buffers (m, l, O and a rescale factor)."""
    bf16 = 2048 * (qc * d_t * 7 + qc * kc * (2 + n_masks) + qc * 6 + qc * kc)
    if split > 1:
        bf16 += 2048 * qc * (d_t + 3)
    return bf16 + 2 * kc * d_t * buffers * kv_bytes


def work_steps(batch, heads, kv_heads, n_q, cores, blocks_of, causal, split=1, combine=0.0):
    """The busiest core's K/V steps under the run's deal: rounds of equal units, or
    causally causal_deal's longest load (with a K/V split, causal only)."""
    if causal:
        return causal_deal(batch, kv_heads, heads // kv_heads, n_q, cores, blocks_of, split,
                           combine)[3]
    return -(-batch * heads * n_q // cores) * blocks_of(0)


def estimate(steps, q_chunk, kv_chunk, d_t):
    """A rough time for a schedule, in tile products: `steps` K/V steps (work_steps), each
    its two matmuls, its softmax work (about 4 tile products per score tile) and a fixed
    cost; enough to rank chunk sizes, not a prediction of cycles."""
    return steps * (q_chunk * kv_chunk * (2 * d_t + 4) + 8)


def split_estimate(units, n_kv, q_chunk, kv_chunk, d_t, cores, split):
    """`estimate` of non-causal work split over `split` cores per Q chunk (kv_parts): rounds
    of cores // split units, each its longest part's K/V steps, plus a combine step per extra
    part on the combining core (per Q tile: the partial O's transfer and rescale, about 3
    tile products a head-dim tile, and two accurate exps at about 25 each: an estimate)."""
    rounds = -(-units // (cores // split))
    return (estimate(rounds * -(-n_kv // split), q_chunk, kv_chunk, d_t)
            + rounds * (split - 1) * (q_chunk * (3 * d_t + 50) + 8))


def choose_split(batch, heads, n_q, n_kv, q_chunk, kv_chunk, d_t, cores, l1_fits=lambda s: True):
    """The K/V split split_estimate ranks fastest for chunks already chosen: a split gives
    idle cores part of each Q chunk's K/V range at the price of the combine steps. The
    smallest split on a tie; 1 where whole Q chunks fill the grid."""
    units = batch * heads * n_q
    best = None
    for split in range(1, min(cores, n_kv) + 1):
        if split > 1 and not l1_fits(split):
            continue
        t = split_estimate(units, n_kv, q_chunk, kv_chunk, d_t, cores, split)
        if best is None or t < best[0]:
            best = (t, split)
    return best[1]


# the L1 a schedule's buffers may take (of the 1,396,736 bytes a Wormhole core has free): room
# for the compiler's spills beyond what l1_bytes_needed counts
L1_BYTES = 1_300_000


def choose_causal_split(batch, heads, kv_heads, n_q, n_kv, cores, blocks_of, combine,
                        l1_fits=lambda s: True):
    """The K/V split whose causal deal (causal_deal, with the split's costs; `combine` from
    combine_steps) has the shortest longest load; the smallest on a tie, so 1 where whole
    Q chunks balance."""
    best = None
    for split in range(1, min(cores, n_kv) + 1):
        if split > 1 and not l1_fits(split):
            continue
        t = causal_deal(batch, kv_heads, heads // kv_heads, n_q, cores, blocks_of, split, combine)[3]
        if best is None or t < best[0]:
            best = (t, split)
    return best[1]


def auto_schedule(batch, heads, kv_heads, sq_t, skv_t, d_t, grid, causal=False, buffers=2,
                  kv_bytes=2048, l1_bytes=L1_BYTES):
    """Default Q and K/V chunks (in tiles, at most 16 each) for a problem: of the pairs whose
    buffers fit `l1_bytes` of L1, the one `estimate` ranks fastest (the largest on a tie:
    fewer, longer statements, and fewer K/V reads). It weighs the work per core, so it
    trades big chunks against the cores they leave idle; causal runs use square chunks."""
    cores = grid[0] * grid[1]
    divs = lambda n: [c for c in range(1, min(n, 16) + 1) if n % c == 0]
    best = None
    for qc in divs(sq_t):
        for kc in ([qc] if causal else divs(skv_t)):
            n_q, n_kv = sq_t // qc, skv_t // kc
            masks = len(mask_offsets(n_q, qc, kc, n_kv)) if causal else 0
            if l1_bytes_needed(qc, kc, d_t, buffers, kv_bytes, masks) > l1_bytes:
                continue
            steps = work_steps(batch, heads, kv_heads, n_q, cores,
                               lambda qi: kv_blocks(qi, qc, kc, n_kv, causal), causal)
            t = estimate(steps, qc, kc, d_t)
            key = (t, -qc * kc, -qc)
            if best is None or key < best[0]:
                best = (key, qc, kc)
    if best is None:
        raise ValueError(f"no Q/K/V chunks of head dim {32 * d_t} fit {l1_bytes} bytes of L1")
    return best[1], best[2]


SHARE_MODES = ("auto", "mcast", "off")
ALPHA_EXP = {"fast": "approx", "approx": "approx", "accurate": "accurate"}   # see run()


def run(batch=1, heads=8, seq=2048, dim=64, grid=(8, 8), q_chunk=None, kv_chunk=None, buffers=2,
        kv_dtype="bf16", math_fidelity="HiFi4", fp32_dest_acc_en=False, causal=False, seed=0,
        sysdesc=None, kv_seq=None, kv_share="auto", exp="fast", kv_heads=None, kv_mcast=None,
        alpha_exp=None, kv_split=1):
    """Run flash attention once; returns (figures, RunReport, kernel).

    `kv_heads` (default `heads`) K/V heads, each serving heads / kv_heads query heads
    (grouped-query attention; 1 is multi-query). `kv_seq` (default `seq`) sets the K/V
    sequence length apart from Q's. `kv_share`: "mcast" has the cores that run units of the
    same K/V stream at the same time (the same K/V head, causally the same Q chunks) read
    each K/V chunk once, on one of them, and multicast it to the others; "off" has every
    core read its own; "auto" (default) shares wherever some cores can. `kv_mcast` is the
    older flag (True "mcast", False "off"). `exp` is the SFPU exponential's mode: "fast"
    (the Schraudolph form the chip's attention kernels use, the default), "approx" or
    "accurate" (docs/numerics.md, "SFPU algorithms") for the scores' exp(S - m);
    `alpha_exp` is the mode of the rescale factor exp(m_old - m): by default approx with
    the fast and approx scores, accurate with accurate ones, as tt-metal's SDPA runs it (its
    max-difference exp is initialised with fast_and_approx=false). It matters: the fast
    form's exp(0) is 0.977, which would shrink the weight of every earlier K/V chunk by 2.3%
    each time a row max stays put (P's bias is shared with its row sum and cancels;
    alpha's is not): pcc 0.99866 on the main job where approx gives 0.99946. Causal runs may use Q and K/V chunks
    of different sizes; each diagonal block gets the mask of its offset.
    """
    if sysdesc is not None:
        ttl.set_device(sysdesc)
    dev = ttl.device()
    alpha_exp = alpha_exp or ALPHA_EXP[exp]
    kv_seq = kv_seq or seq
    kv_heads = kv_heads or heads
    if kv_mcast is not None:
        kv_share = "mcast" if kv_mcast else "off"
    if kv_share not in SHARE_MODES:
        raise ValueError(f"kv_share {kv_share!r}: use one of {', '.join(SHARE_MODES)}")
    if seq % 32 or dim % 32 or kv_seq % 32:
        raise ValueError("seq, kv_seq and dim must be multiples of 32")
    if heads % kv_heads:
        raise ValueError(f"{heads} query heads do not split into groups over {kv_heads} K/V heads")
    if causal and kv_seq != seq:
        raise ValueError("causal runs need kv_seq == seq")
    sq_t, skv_t, d_t = seq // 32, kv_seq // 32, dim // 32
    kv_bytes = 1088 if kv_dtype == "bfp8_b" else 2048
    if q_chunk is None or kv_chunk is None:
        if causal and (q_chunk or kv_chunk):
            auto_q = auto_kv = q_chunk or kv_chunk
        else:
            auto_q, auto_kv = auto_schedule(batch, heads, kv_heads, sq_t, skv_t, d_t, grid, causal,
                                            buffers, kv_bytes)
        q_chunk, kv_chunk = q_chunk or auto_q, kv_chunk or auto_kv
    if sq_t % q_chunk or skv_t % kv_chunk:
        raise ValueError(f"seq {seq} ({sq_t} tiles) must be a multiple of q_chunk={q_chunk} tiles and "
                         f"kv_seq {kv_seq} ({skv_t} tiles) of kv_chunk={kv_chunk}")
    n_q, n_kv = sq_t // q_chunk, skv_t // kv_chunk
    cores = grid[0] * grid[1]
    blocks_of = lambda qi: kv_blocks(qi, q_chunk, kv_chunk, n_kv, causal)
    n_masks = len(mask_offsets(n_q, q_chunk, kv_chunk, n_kv)) if causal else 0
    if kv_split == "auto":
        fits_l1 = lambda sp: l1_bytes_needed(q_chunk, kv_chunk, d_t, buffers, kv_bytes, n_masks,
                                             sp) <= L1_BYTES
        kv_split = (choose_causal_split(batch, heads, kv_heads, n_q, n_kv, cores, blocks_of,
                                        combine_steps(q_chunk, kv_chunk, d_t), fits_l1)
                    if causal else
                    choose_split(batch, heads, n_q, n_kv, q_chunk, kv_chunk, d_t, cores, fits_l1))
    if not isinstance(kv_split, int) or isinstance(kv_split, bool) or kv_split < 1:
        raise ValueError(f"kv_split {kv_split!r}: a whole number of cores per Q chunk (1: no split), or 'auto'")
    if kv_split > min(n_kv, cores):
        raise ValueError(f"kv_split {kv_split}: a Q chunk's {n_kv} K/V chunks split over at most "
                         f"{min(n_kv, cores)} cores (one K/V chunk each, and {cores} cores in the grid)")
    share = kv_share != "off"
    if causal:
        sched, pipes = causal_plan(batch, heads, kv_heads, n_q, grid, share, blocks_of, kv_split,
                                   combine_steps(q_chunk, kv_chunk, d_t))
    else:
        sched, pipes = plan(work_units(batch, heads, kv_heads, n_q), grid, share, blocks_of, buffers,
                            kv_split)
    offsets = mask_offsets(n_q, q_chunk, kv_chunk, n_kv) if causal else []
    scale = 1.0 / math.sqrt(dim)
    r = np.random.default_rng(seed)
    shape, kv_shape = (batch * heads, seq, dim), (batch * kv_heads, kv_seq, dim)
    # one host array at a time: each is dropped once the device holds it
    q = ttl.from_numpy(r.standard_normal(shape).astype(np.float32), "bf16")
    k = ttl.from_numpy(r.standard_normal(kv_shape).astype(np.float32), kv_dtype)
    v = ttl.from_numpy(r.standard_normal(kv_shape).astype(np.float32), kv_dtype)
    masks = [causal_mask(o, q_chunk, kv_chunk) for o in offsets] or [np.zeros((32, 32), np.float32)]
    mask = ttl.from_numpy(np.concatenate(masks), "bf16")
    out = ttl.empty(shape, "bf16")
    kern = make_kernel(sched, pipes, d_t, q_chunk, kv_chunk, scale, causal, offsets, grid,
                       buffers, alpha_exp, math_fidelity=math_fidelity,
                       fp32_dest_acc_en=fp32_dest_acc_en, exp_approx=exp)
    t0 = time.perf_counter()
    rep = kern(q, k, v, mask, out)
    wall = time.perf_counter() - t0
    values = lambda t, h: t.to_numpy().reshape(batch, h, -1, dim)    # float32, exact
    ref = reference(values(q, heads), values(k, kv_heads), values(v, kv_heads), scale, causal)
    both = np.empty((2, ref.size))           # the output and the reference, as rows
    both[1] = ref.ravel()
    del ref
    both[0] = out.to_numpy().ravel()
    sha = hashlib.sha256()
    for i in range(0, both.shape[1], 1 << 20):      # in slices: no copy of the whole output
        sha.update(both[0, i:i + (1 << 20)].astype(np.float32).tobytes())
    d = both[0] - both[1]
    rel_err = float(np.linalg.norm(d) / np.linalg.norm(both[1]))
    max_abs_err = float(np.abs(d, out=d).max())
    del d
    pcc = pcc_in_place(both)
    flops = 4.0 * batch * heads * seq * kv_seq * dim * (0.5 if causal else 1.0)
    peak = peak_tflops(dev.sd)
    shared = sum(1 for c in sched.values() for _, role in c if role and role[0] == "recv")
    res = {
        "pcc": pcc,
        "max_abs_err": max_abs_err,
        "rel_err": rel_err,
        "out_sha256": sha.hexdigest()[:16],     # the output's bits (as float32), to compare runs
        "cycles": float(rep.cycles),
        "us": float(rep.us),
        "tflops": flops / (rep.us * 1e-6) / 1e12,
        "peak_tflops": peak,
        "bottleneck": rep.bottleneck(),
        "wall_s": wall,
        "q_chunk": q_chunk,
        "kv_chunk": kv_chunk,
        "kv_heads": kv_heads,
        "kv_share": kv_share,
        "kv_mcast": shared > 0,
        "units_shared": shared,
        "units": sum(len(c) for c in sched.values()),
        "kv_split": kv_split,
        "exp": exp,
        "alpha_exp": alpha_exp,
        "utilisation": {kd: round(d["busy"], 4) for kd, d in rep.per_kind().items()},
        "max_idle": max(t.idle for t in rep.threads) / rep.cycles if rep.cycles else 0.0,
    }
    return res, rep, kern


def peak_tflops(sd):
    """The chip's HiFi4 FPU peak: one 32x32x32 tile product per 4 x matmul-phase cycles per core."""
    gx, gy = sd.worker_grid()
    per_tile = sd.value("cost.math.matmul") * 4
    return gx * gy * sd.clock_ghz.value * 1e9 * 2 * 32 ** 3 / per_tile / 1e12


def grid_arg(s):
    try:
        x, y = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: give the grid as WxH, e.g. 8x8") from None
    if x < 1 or y < 1:
        raise argparse.ArgumentTypeError(f"{s!r}: a grid needs at least one core each way")
    return x, y


def positive(s):
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{s} must be at least 1")
    return n


def tiles(s):
    """A length in elements: a positive multiple of the 32-row tile."""
    n = positive(s)
    if n % 32:
        raise argparse.ArgumentTypeError(f"{n} is not a multiple of 32 (whole tiles)")
    return n


def chunk(s):
    """A chunk length: in tiles (1 to 16), or in rows as tt-metal's SDPA program config gives
    q_chunk_size and k_chunk_size (32 and up, a multiple of 32); no length is both."""
    n = positive(s)
    if n < 32:
        return n
    if n % 32:
        raise argparse.ArgumentTypeError(f"{n} rows is not a multiple of 32 (whole tiles)")
    return n // 32


def split_arg(s):
    if s == "auto":
        return s
    return positive(s)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=positive, default=1)
    p.add_argument("--heads", type=positive, default=8)
    p.add_argument("--seq", type=tiles, default=2048)
    p.add_argument("--dim", type=tiles, default=64)
    p.add_argument("--kv-seq", type=tiles, default=None, help="K/V length (default: --seq)")
    p.add_argument("--grid", type=grid_arg, default=None, help="e.g. 8x8 (default: the full worker grid)")
    p.add_argument("--q-chunk", type=chunk, default=None,
                   help="Q chunk: tiles (1-16) or rows (32, 64, ... 512, as tt-metal's "
                        "q_chunk_size; default: auto_schedule)")
    p.add_argument("--kv-chunk", type=chunk, default=None,
                   help="K/V chunk: tiles (1-16) or rows (as tt-metal's k_chunk_size; "
                        "default: auto_schedule)")
    p.add_argument("--buffers", type=positive, default=2, help="K/V buffer depth (blocks)")
    p.add_argument("--kv-dtype", default="bf16", choices=["bf16", "bfp8_b"])
    p.add_argument("--fidelity", default="HiFi4", choices=["LoFi", "HiFi2", "HiFi3", "HiFi4"])
    p.add_argument("--fp32-acc", action="store_true")
    p.add_argument("--exp", default="fast", choices=["fast", "approx", "accurate"],
                   help="the SFPU exponential's mode (default fast, as the chip's attention kernels)")
    p.add_argument("--alpha-exp", default=None, choices=["fast", "approx", "accurate"],
                   help="the mode of the rescale factor's exp (default: approx, or accurate "
                        "with --exp accurate, as tt-metal's SDPA; see run())")
    p.add_argument("--causal", action="store_true")
    p.add_argument("--kv-heads", type=positive, default=None,
                   help="K/V heads (grouped-query attention; default: --heads)")
    p.add_argument("--kv-share", choices=SHARE_MODES, default="auto",
                   help="cores running the same K/V stream at once read each chunk once and "
                        "multicast it (auto: wherever some can)")
    p.add_argument("--kv-mcast", choices=["on", "off"], default=None,
                   help="the older form of --kv-share mcast / off")
    p.add_argument("--kv-split", type=split_arg, default="auto",
                   help="cores per Q chunk, each taking part of its K/V range (flash-decoding): "
                        "a number, or auto (default) to split where the work would leave cores idle")
    p.add_argument("--sysdesc", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--show", action="store_true", help="print the generated low-level code")
    p.add_argument("--lines", type=int, default=0, metavar="N",
                   help="print the N costliest kernel lines per thread (a line profile)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    a = p.parse_args(argv)
    try:
        if a.sysdesc:
            ttl.set_device(a.sysdesc)
        grid = a.grid or ttl.device().sd.worker_grid()
        full = ttl.device().sd.worker_grid()
        if grid[0] > full[0] or grid[1] > full[1]:
            p.error(f"--grid {grid[0]}x{grid[1]} is larger than {ttl.device().sd.name}'s "
                    f"{full[0]}x{full[1]} worker cores")
        share = {"on": "mcast", "off": "off", None: a.kv_share}[a.kv_mcast]
        res, rep, kern = run(a.batch, a.heads, a.seq, a.dim, grid, a.q_chunk, a.kv_chunk,
                             a.buffers, a.kv_dtype, a.fidelity, a.fp32_acc, a.causal,
                             kv_seq=a.kv_seq, kv_share=share, exp=a.exp, kv_heads=a.kv_heads,
                             alpha_exp=a.alpha_exp,
                             kv_split=a.kv_split)
    except (ValueError, ttl.CompileError, ttsim.TTSimError) as e:   # SysdescError is a ValueError
        if a.debug:
            raise
        p.error(str(e))
    sd = ttl.device().sd
    kvh = f" ({res['kv_heads']} K/V heads)" if res["kv_heads"] != a.heads else ""
    print(f"flash attention: batch {a.batch}, heads {a.heads}{kvh}, seq {a.seq}, head dim {a.dim}"
          f"{', causal' if a.causal else ''} on {sd.name} ({grid[0]}x{grid[1]} cores)")
    print(f"schedule: q_chunk {res['q_chunk']} tiles, kv_chunk {res['kv_chunk']} tiles, K/V {a.kv_dtype}, "
          f"{a.fidelity}{', fp32 acc' if a.fp32_acc else ''}, exp {a.exp} (alpha {res['alpha_exp']}), K/V buffer depth {a.buffers}, "
          f"K/V {'shared by multicast' if res['kv_mcast'] else 'read by every core'} "
          f"({res['units_shared']} of {res['units']} units receive theirs)"
          + (f", each Q chunk's K/V range split over {res['kv_split']} cores" if res["kv_split"] > 1 else ""))
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


# --- the schedule space, for `ttsim sweep flash_attention` (ttsim.sweep, docs/sweep.md) ------
# (after main() on purpose: a block of its own that the sweep reads; the script never needs it)
from ttsim.sweep import Space, divides, fits, grid_fits, l1_free  # noqa: E402

SWEEP_PROBLEM = dict(batch=1, heads=8, kv_heads=None, seq=2048, kv_seq=None, dim=64, causal=False,
                     sysdesc=None)


def _sweep_split(s, p):
    """The schedule's K/V split, "auto" resolved as run() resolves it."""
    split = s.get("kv_split", 1)
    if split != "auto":
        return split
    sq_t, skv_t, d_t = p["seq"] // 32, (p.get("kv_seq") or p["seq"]) // 32, p["dim"] // 32
    qc, kc, causal = s["q_chunk"], s["kv_chunk"], p.get("causal", False)
    n_q, n_kv, cores = sq_t // qc, skv_t // kc, s["grid"][0] * s["grid"][1]
    kv_bytes = 1088 if s.get("kv_dtype") == "bfp8_b" else 2048
    masks = len(mask_offsets(n_q, qc, kc, n_kv)) if causal else 0
    fits_l1 = lambda sp: l1_bytes_needed(qc, kc, d_t, s.get("buffers", 2), kv_bytes, masks, sp) <= L1_BYTES
    if causal:
        return choose_causal_split(p["batch"], p["heads"], p.get("kv_heads") or p["heads"], n_q, n_kv,
                                   cores, lambda qi: kv_blocks(qi, qc, kc, n_kv, True),
                                   combine_steps(qc, kc, d_t), fits_l1)
    return choose_split(p["batch"], p["heads"], n_q, n_kv, qc, kc, d_t, cores, fits_l1)


def sweep_l1_bytes(s, p):
    """The L1 a schedule's buffers take (l1_bytes_needed), from the problem and schedule."""
    sq_t, skv_t, d_t = p["seq"] // 32, (p.get("kv_seq") or p["seq"]) // 32, p["dim"] // 32
    qc, kc = s["q_chunk"], s["kv_chunk"]
    masks = len(mask_offsets(sq_t // qc, qc, kc, skv_t // kc)) if p.get("causal") else 0
    kv_bytes = 1088 if s.get("kv_dtype") == "bfp8_b" else 2048
    return l1_bytes_needed(qc, kc, d_t, s.get("buffers", 2), kv_bytes, masks, _sweep_split(s, p))


def sweep_estimate(s, p):
    """auto_schedule's estimate of a schedule (tile products on the busiest core): the
    search starts from the schedules it ranks fastest."""
    sq_t, skv_t, d_t = p["seq"] // 32, (p.get("kv_seq") or p["seq"]) // 32, p["dim"] // 32
    qc, kc, causal = s["q_chunk"], s["kv_chunk"], p.get("causal", False)
    n_kv, cores = skv_t // kc, s["grid"][0] * s["grid"][1]
    split = _sweep_split(s, p)
    if split > 1 and not causal:
        return split_estimate(p["batch"] * p["heads"] * (sq_t // qc), n_kv, qc, kc, d_t, cores,
                              split)
    steps = work_steps(p["batch"], p["heads"], p.get("kv_heads") or p["heads"], sq_t // qc,
                       cores, lambda qi: kv_blocks(qi, qc, kc, n_kv, causal), causal, split,
                       combine_steps(qc, kc, d_t))
    return estimate(steps, qc, kc, d_t)


def _split_fits(s, p):
    """A K/V split needs at least one K/V chunk and one core per part."""
    split = s.get("kv_split", 1)
    if split in (1, "auto"):
        return None
    n_kv = (p.get("kv_seq") or p["seq"]) // 32 // s["kv_chunk"]
    cores = s["grid"][0] * s["grid"][1]
    if split > min(n_kv, cores):
        return f"kv_split {split} > {min(n_kv, cores)} (K/V chunks {n_kv}, cores {cores})"
    return None


def schedule_space(problem=None):
    """Flash attention's schedule parameters for `problem` (missing keys: SWEEP_PROBLEM, the
    main job): chunks that do not divide the sequence, grids larger than the chip and
    buffers that do not fit its free L1 are pruned before anything runs. `kv_split` is 1
    (sweep a decode problem with `-s kv_split=1,2,4,8,auto`)."""
    p = {**SWEEP_PROBLEM, **(problem or {})}
    seq_t = p["seq"] // 32
    chunks = [c for c in (1, 2, 4, 8, 16) if c <= seq_t]
    return Space(
        {"grid": [(8, 8), (4, 4), (8, 4)], "q_chunk": chunks, "kv_chunk": chunks, "buffers": [2],
         "kv_dtype": ["bf16", "bfp8_b"], "math_fidelity": ["HiFi4", "HiFi2"],
         "fp32_dest_acc_en": [False], "kv_share": ["auto"], "exp": ["fast"], "kv_split": [1]},
        constraints=[divides("q_chunk", lambda p: p["seq"] // 32, "seq tiles"),
                     divides("kv_chunk", lambda p: (p.get("kv_seq") or p["seq"]) // 32, "K/V seq tiles"),
                     grid_fits(), _split_fits,
                     fits(sweep_l1_bytes, lambda p: l1_free(p.get("sysdesc")))],
        problem=p, figures={"l1_bytes": sweep_l1_bytes}, estimate=sweep_estimate)
