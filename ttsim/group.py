"""A DST group of a fused compute kernel run as one call, with the cycles and bits of its tile ops.

A compiler that generates a compute statement (ttlang's lowering) knows each DST group's ops
before it runs them: a GroupPlan says them once, in ttsim's vocabulary, for every group of
the statement. `run` then does what the per-tile calls (compute.py) would do, in one call:

- Timing. In a fused compute kernel UNPACK, MATH and PACK hand over through FIFOs only they
  use, and inside a group nothing can block in simpy (each role waits only for work that comes
  earlier in program order), so the three clocks follow the recurrences of compute.py's calls:
  UNPACK's op i starts when its source register is free (MATH popped op i - 2), MATH's when its
  operands are pushed, and so on. `_time` runs them over the group's ops in program order,
  with the same additions in the same order, so clocks, busy and stall totals and the per-line
  records come out bit-identical.
- Values. Each tile of a group works on its own DST registers (ttlang gives each value a plane
  of consecutive registers), so the values are computed one op at a time for all the group's
  tiles at once (one numpy call where the per-tile path makes one per tile), with the same
  numpy operations as the per-tile path (MathContext's `_*_into` helpers).

A plan covers what the tile ops it replaces would do; anything else (a trace being recorded,
an op or mode the core does not know) makes `run` return False, and the caller runs the
per-tile code, which reports the problem as it always has.
"""
from __future__ import annotations

import os

import numpy as np

from . import formats, numerics
from .errors import SimLimitError
from .thread import caller_line, limit_text

# TTSIM_GROUPS=0 runs every statement tile by tile (the reference the fast path must match)
ENABLED = os.environ.get("TTSIM_GROUPS", "1") != "0"

_FP32, _BF16 = formats.DataFormat.FP32, formats.DataFormat.BF16


class GroupPlan:
    """The ops of every DST group of one statement: `ntiles` output tiles in row-major order,
    `cols` per row, at most `per` per group (a group's tiles are t0 .. t0 + n - 1).

    Registers: value plane `off` of the group's tile b is DST register b + off. Tile indices
    are affine, `(ci, cj, ck, c0)` -> ci * i + cj * j + ck * kk + c0 for output tile (i, j)
    and loop index kk. Body ops, run for each tile in turn:
      ("copy", cb, ix, off)                      copy_tile
      ("fill", value, off)                       fill_tile
      ("bcast", cb, ix, off, dim)                unary_bcast
      ("transpose", cb, ix, off)                 transpose_wh_tile
      ("reduce", cb, scaler_cb, count, ix, off, op, dim)   reduce_tile for kk < count
      ("sfpu", op, off, mode, params)            sfpu_unary
      ("binary", op, cb_a, cb_b, ix_a, ix_b, off, bcast)   binary_tiles
      ("reuse", op, cb, ix, off, dst_as)         binary_dest_reuse_tiles
      ("sfpu_binary", op, off0, off1, off_out)   sfpu_binary
    Matmuls, before the body, once per group for its rectangle of tiles (rows of `cols`
    tiles, or part of one row), one matmul_block per kk < kt:
      ("matmul", cb_a, cb_b, kt, transpose, ia, ib, off, in1_stride) with ia = (ci, ck, c0)
      over (i0, kk) and ib = (cj, ck, c0) over (j0, kk), (i0, j0) the group's first tile.
    The group's tiles are packed into `out_cb` at their index t (accumulating if `acc`)."""
    __slots__ = ("ntiles", "cols", "per", "matmuls", "body", "out_cb", "acc")

    def __init__(self, ntiles, cols, per, matmuls, body, out_cb, acc):
        self.ntiles, self.cols, self.per = ntiles, cols, per
        self.matmuls, self.body = tuple(matmuls), tuple(body)
        self.out_cb, self.acc = out_cb, bool(acc)


def _ix(form, i, j, kk=0):
    ci, cj, ck, c0 = form
    return ci * i + cj * j + ck * kk + c0


class _Expanded:
    """A plan resolved for one core: per group its first tile, size and timing steps (in
    program order); the value ops with their tiles' indices over the whole statement; the
    packer's format and cost."""
    __slots__ = ("groups", "mm", "body", "planes", "pack_fmt", "pack_cost")


_UM, _SFPU, _FILL = 0, 1, 2      # step kinds: UNPACK then MATH; an SFPU op; fill_tile


def _expand(fc, plan, ln):
    """`plan` resolved for this core, or None where the per-tile path must run (a register
    past DST, an op or mode the core does not know)."""
    u, m, p = fc._roles_ctx
    nt, cols, per = plan.ntiles, plan.cols, plan.per
    tiles = [divmod(t, cols) for t in range(nt)]
    fmts = {}

    def f(cb):
        c = fmts.get(cb)
        if c is None:
            c = fmts[cb] = u._cb(cb, ln).fmt
        return c

    def at(ix):
        return _spec([_ix(ix, i, j) for i, j in tiles])
    cu, call, dst_tiles = u._c_unpack, u._c_call, fc._s.dst_tiles
    mm, body, per_tile, offs = [], [], [], [0]
    rows_n = nt // cols
    for (_, ca, cb, kt, tr, ia, ib, off, _stride) in plan.matmuls:
        mm.append((ca, [_spec([ia[0] * r + ia[1] * kk + ia[2] for r in range(rows_n)]) for kk in range(kt)],
                   cb, [_spec([ib[0] * c + ib[1] * kk + ib[2] for c in range(cols)]) for kk in range(kt)],
                   kt, tr, off))
        offs.append(off)
    for op in plan.body:
        k = op[0]
        if k == "copy":
            _, cb, ix, off = op
            fc_ = f(cb)
            body.append(("copy", cb, at(ix), off, fc_, u.cfg.unpack_to_dest))
            step = [(_UM, cu[fc_] + call, None, "copy", (fc_, None), m._c_copy, 0.0, "datacopy")]
        elif k == "fill":
            _, value, off = op
            body.append(("fill", value, off))
            step = [(_FILL, m._c_fill)]
        elif k == "bcast":
            _, cb, ix, off, dim = op
            fc_ = f(cb)
            body.append(("bcast", cb, at(ix), off, fc_, dim))
            step = [(_UM, cu[fc_] + call, None, ("bcast", dim), (None, fc_), m._c_copy, 0.0,
                     ("bcast", dim))]
        elif k == "transpose":
            _, cb, ix, off = op
            fc_ = f(cb)
            body.append(("transpose", cb, at(ix), off, fc_))
            step = [(_UM, cu[fc_] + call, None, "transpose", (fc_, None), m._c_transpose, 0.0,
                     "transpose")]
        elif k == "reduce":
            _, cb, scb, count, ix, off, rop, dim = op
            fa, fs = f(cb), f(scb)
            body.append(("reduce", cb, scb, [_spec([_ix(ix, i, j, kk) for i, j in tiles])
                                              for kk in range(count)], off, rop, dim))
            step = [(_UM, u._cost2(fa, fs) + call, None, ("reduce", dim), (fa, fs), m._c_reduce,
                     0.0, ("reduce", rop, dim))] * count
        elif k == "sfpu":
            _, sop, off, mode, params = op
            mode = m.cfg.sfpu_mode(sop) if mode is None else mode
            entry = m._sfpu_table.get(("unary", sop, mode))
            if entry is None:
                return None
            m._s.sfpu_used.add((sop, mode))
            body.append(("sfpu", entry[2], off, params))
            step = [(_SFPU, (sop, mode), entry[0])]
        elif k == "binary":
            _, bop, ca, cb, ixa, ixb, off, bc = op
            fa, fb = f(ca), f(cb)
            body.append(("binary", bop, ca, at(ixa), cb, at(ixb), off, bc))
            step = [(_UM, u._cost2(fa, fb) + call, None, ("binary", bc), (fa, fb), m._c_bin[bop],
                     0.0, ("eltwise", bop, bc))]
        elif k == "reuse":
            _, bop, cb, ix, off, dst_as = op
            fc_ = f(cb)
            body.append(("reuse", bop, cb, at(ix), off, dst_as))
            step = [(_UM, cu[fc_] + call, None, ("dest_reuse", dst_as),
                     (None, fc_) if dst_as == "a" else (fc_, None), m._c_bin[bop], 0.0,
                     ("dest_reuse", bop, dst_as))]
        elif k == "sfpu_binary":
            _, sop, o0, o1, off = op
            entry = m._sfpu_table.get(("binary", sop, None))
            if entry is None:
                return None
            m._s.sfpu_used.add((sop, None))
            body.append(("sfpu_binary", entry[2], o0, o1, off))
            step = [(_SFPU, (sop, None), entry[0])]
            offs += [o0, o1]
        else:
            return None
        offs.append(off)
        per_tile.extend(step)
    if max(offs) + per > dst_tiles or any(o % per for o in offs):
        return None
    groups, by_n = [], {}
    for t0 in range(0, nt, per):
        n = min(per, nt - t0)
        steps = by_n.get(n)
        if steps is None:
            steps = by_n[n] = []
            rt, ct = (n // cols, cols) if per >= cols else (1, per)
            for (ca, ia, cb, ib, kt, tr, off) in mm:
                fa, fb = f(ca), f(cb)
                na, nb = (rt, rt * ct) if ct >= rt else (rt * ct, ct)
                ucost = max(na * cu[fa], nb * cu[fb],
                            (na * fa.tile_bytes + nb * fb.tile_bytes) / u._dual_bw)
                steps += [(_UM, ucost + call, ucost - u._cost2(fa, fb), ("matmul", tr), (fb, fa),
                           m._c_mm * n + m._c_mm_call, m._c_mm, "matmul")] * kt
            for _ in range(n):
                steps.extend(per_tile)
        groups.append((t0, n, steps))
    ex = _Expanded()
    ex.groups, ex.mm, ex.body, ex.planes = groups, mm, body, max(offs) // per + 1
    ex.pack_fmt = f(plan.out_cb)
    ex.pack_cost = p._c_pack[ex.pack_fmt]
    return ex


def run(fc, plan):
    """Run the DST groups of `plan` on the fused compute context `fc`; False if the per-tile
    path must run instead (nothing has happened then)."""
    u, m, p = fc._roles_ctx
    uth, mth, pth = u._th, m._th, p._th
    if not ENABLED or uth.trace is not None or mth.trace is not None or pth.trace is not None:
        return False
    ln = uth.pinned or caller_line()
    ex = fc._groups.get(plan)
    if ex is None:
        ex = fc._groups[plan] = _expand(fc, plan, ln) or False
    if ex is False:
        return False
    vals = _values(u, m, plan, ex, ln)
    writes = []
    for t0, n, steps in ex.groups:
        m.tile_regs_acquire()
        _time(u, m, steps, ln)
        m.tile_regs_commit()
        p.tile_regs_wait()
        _pack_time(p, plan, ex, t0, n, ln, writes)
        p.tile_regs_release()
    _pack_write(p, plan, ex, vals, writes, ln)
    return True


def _spec(idx):
    """How to gather tiles `idx` of a buffer: ("dup", spec of the distinct ones, where each
    comes from) for a broadcast operand's repeats; ("prog", idx, start, step) for an
    arithmetic progression, which a block a statement packed (CircularBuffer.block) holds
    as a view; ("list", idx) otherwise."""
    uniq = list(dict.fromkeys(idx))
    if len(uniq) < len(idx):
        pos = {v: k for k, v in enumerate(uniq)}
        return ("dup", _spec(uniq), np.array([pos[v] for v in idx]))
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    if step > 0 and all(idx[k + 1] - idx[k] == step for k in range(len(idx) - 1)):
        return ("prog", idx, idx[0], step)
    return ("list", idx)


def _gather(u, cb, spec, ln, to_dest=False):
    """The tiles of `spec` (see _spec) of cb as source registers hold them (or, with
    `to_dest`, as unpacked to DST), as one (n, 32, 32) array; read-only."""
    kind = spec[0]
    if kind == "dup":
        return _gather(u, cb, spec[1], ln, to_dest)[spec[2]]
    idx = spec[1]
    if kind == "prog" and not to_dest:
        v = _block(u._cb(cb, ln), idx[0], spec[3], len(idx))
        if v is not None:
            return v
    if len(idx) == 1:
        return u._read(cb, idx[0], ln, to_dest)[0][None]
    return np.stack([u._read(cb, i, ln, to_dest)[0] for i in idx])


def _block(c, start, step, n):
    """Waited-for pages start, start + step, ... (n of them) of c as a view of the block a
    statement packed them in, if they are all still what it packed; else None (and the
    per-page reads check and decode them)."""
    blk = c.block
    if blk is None or start < 0:
        return None
    seq0 = c.popped + start
    span = step * (n - 1)
    b0 = seq0 - blk[0]
    entries = blk[2]
    if seq0 + span >= c.waited_upto or b0 < 0 or b0 + span >= len(entries):
        return None
    dec, cap = c.decoded, c.capacity
    for q in range(0, span + 1, step):
        if dec.get((seq0 + q) % cap) is not entries[b0 + q]:
            return None
    return blk[1][b0:b0 + span + 1:step]


def _values(u, m, plan, ex, ln):
    """The statement's values, one op at a time for all its tiles, in MATH's DST through
    MathContext's helpers: value plane `off // per` of tile t is register plane * ntiles + t
    of a DST as large as the statement. Returns the result's plane (what PACK packs)."""
    nt, per = plan.ntiles, plan.per
    m._dst = np.zeros((ex.planes * nt, 32, 32), np.float32)
    m._written = np.zeros(ex.planes * nt, bool)
    try:
        def plane(off):
            s = off // per * nt
            return slice(s, s + nt)
        for (ca, rows, cb, cols, kt, tr, off) in ex.mm:     # all K steps in one call
            a = np.stack([_gather(u, ca, rows[kk], ln) for kk in range(kt)])
            b = np.stack([_gather(u, cb, cols[kk], ln) for kk in range(kt)])
            m._matmul_into(off // per * nt, nt, a, numerics.transpose(b) if tr else b)
        for op in ex.body:
            k = op[0]
            if k == "copy":
                _, cb, idx, off, f, to_dest = op
                m._put_moved(plane(off), _gather(u, cb, idx, ln, to_dest), f)
            elif k == "fill":
                _, value, off = op
                m._put(plane(off), np.full((nt, 32, 32), value, np.float32))
            elif k == "bcast":
                _, cb, idx, off, f, dim = op
                m._put_moved(plane(off), numerics.bcast(_gather(u, cb, idx, ln), dim), f)
            elif k == "transpose":
                _, cb, idx, off, f = op
                m._put_moved(plane(off), numerics.transpose(_gather(u, cb, idx, ln)), f)
            elif k == "reduce":
                _, cb, scb, idxs, off, rop, dim = op     # every step's reduce in one call,
                s, _ = u._read(scb, 0, ln)                 # accumulated step by step
                r = numerics.reduce(np.stack([_gather(u, cb, idx, ln) for idx in idxs]), rop, dim,
                                    float(s[0, 0]))
                for rk in r:
                    m._reduced_into(plane(off), rk, rop)
            elif k == "sfpu":
                _, fn, off, params = op
                m._sfpu_into(plane(off), fn, params)
            elif k == "binary":
                _, bop, ca, ia, cb, ib, off, bc = op
                b = _gather(u, cb, ib, ln)
                if bc != "none":
                    b = numerics.bcast(b, bc)
                m._put(plane(off), numerics.eltwise(bop, _gather(u, ca, ia, ln), b, m.cfg.fidelity))
            elif k == "reuse":
                _, bop, cb, idx, off, dst_as = op
                m._reuse_into(plane(off), bop, _gather(u, cb, idx, ln), dst_as)
            else:       # sfpu_binary
                _, fn, o0, o1, off = op
                d = m._dst
                d[plane(off)] = fn(d[plane(o0)], d[plane(o1)])
        return m._dst[:nt]
    finally:
        m._dst = m._written = None


def _put_rec(th, ln, start, calls, cycles, stall):
    """A thread's record of line ln as its charges would leave it: made only if charged."""
    if (calls, cycles, stall) != start:
        rec = th.lines.get(ln)
        if rec is None:
            rec = th.lines[ln] = [0, 0.0, 0.0]
        rec[0], rec[1], rec[2] = calls, cycles, stall


def _time(u, m, steps, ln):
    """UNPACK's and MATH's clocks over the group's ops, as compute.py's calls move them:
    UnpackContext._hand_over (setup change, source-register reserve, charge, push) and
    MathContext._take (operand wait, FPU setup change, charge, streamed end, pop), the SFPU
    ops' setup change and charge. Same additions in the same order as Thread.charge and
    Thread.stall_until."""
    uth, mth = u._th, m._th
    src = u._s.src
    push_t, pop_t = src.push_t, src.pop_t
    P, Q = src.pushed, src.popped
    us, fpu, sf = u._setup, m._fpu, m._sfpu_op
    ut, ub, mt, mb = uth.t, uth.busy, mth.t, mth.busy
    ur, mr = tuple(uth.lines.get(ln, (0, 0.0, 0.0))), tuple(mth.lines.get(ln, (0, 0.0, 0.0)))
    uc, ucy, ust = ur
    mc, mcy, mst = mr
    full, empty = src.stall_full, src.stall_empty
    s_full = uth.stalls.get(full)
    s_empty = mth.stalls.get(empty)
    for st in steps:
        kind = st[0]
        if kind == _UM:
            _, ucost, stream, ukind, ufmts, mcost, mlast, msetup = st
            if ukind != us.kind:                        # UNPACK: _Setup.change
                c = us.c_init
                ucy += c
                ut += c
                ub += c
                us.kind = ukind
            if ufmts != us.fmts:
                cur = us.fmts
                if cur is None or any(f is not None and f != c for f, c in zip(ufmts, cur)):
                    c = us.c_reconfig
                    ucy += c
                    ut += c
                    ub += c
                    us.fmts = ufmts if cur is None else tuple(c if f is None else f
                                                              for f, c in zip(ufmts, cur))
            if P >= 2:                                  # src.reserve: MATH's pop of op P - 2
                tgt = pop_t[P % 2]
                if tgt > ut:
                    d = tgt - ut
                    s_full = d if s_full is None else s_full + d
                    ust += d
                    ut = tgt
            uc += 1
            ucy += ucost
            ut += ucost
            ub += ucost
            push_t[P % 2] = ut if stream is None else ut - stream
            P += 1
            tgt = push_t[Q % 2]                         # MATH: src.wait
            if tgt > mt:
                d = tgt - mt
                s_empty = d if s_empty is None else s_empty + d
                mst += d
                mt = tgt
            if msetup != fpu.kind:
                c = fpu.c_init
                mcy += c
                mt += c
                mb += c
                fpu.kind = msetup
            mc += 1
            mcy += mcost
            mt += mcost
            mb += mcost
            if mlast:                                   # a streamed block's last operands
                tgt = ut + mlast
                if tgt > mt:
                    d = tgt - mt
                    s_empty = d if s_empty is None else s_empty + d
                    mst += d
                    mt = tgt
            pop_t[Q % 2] = mt
            Q += 1
        elif kind == _SFPU:
            _, key, cost = st
            if key != sf.kind:
                c = sf.c_init
                mcy += c
                mt += c
                mb += c
                sf.kind = key
            mc += 1
            mcy += cost
            mt += cost
            mb += cost
        else:
            cost = st[1]
            mc += 1
            mcy += cost
            mt += cost
            mb += cost
    src.pushed = src.reserved_upto = P
    src.popped = src.waited_upto = Q
    _put_rec(uth, ln, ur, uc, ucy, ust)
    _put_rec(mth, ln, mr, mc, mcy, mst)
    if s_full is not None:
        uth.stalls[full] = s_full
    if s_empty is not None:
        mth.stalls[empty] = s_empty
    uth.t, uth.busy, mth.t, mth.busy = ut, ub, mt, mb
    for th in (uth, mth):
        if th.t > th.limit:
            raise SimLimitError(f"thread passed the cycle limit of {limit_text(th.limit)} cycles",
                                core=th.core, thread=th.kind, line=ln)


def _pack_time(p, plan, ex, t0, n, ln, writes):
    """PackContext.pack_tile's clock and checks for a group's tiles; the pages they write go
    to `writes` as (tile, address, slot, sequence number)."""
    th = p._th
    c = p._cb(plan.out_cb, ln)
    fmt, acc, cost, cap = ex.pack_fmt, plan.acc, ex.pack_cost, c.capacity
    s = p._setup
    fm = (fmt, acc)
    for t in range(t0, t0 + n):
        addr = c.back_addr(t, th, ln)
        if fm != s.fmts:
            s.change(th, None, fm, ln)
        th.charge(cost, "pack_tile", ln)
        seq = c.pushed + t
        slot = seq % cap
        if acc:
            c.check_fresh(slot, seq, th, ln, "pack_tile(accumulate=True)")
        c.check_overwrite(slot, th.t, th, ln, "pack_tile")
        writes.append((t, addr, slot, seq))


def _pack_write(p, plan, ex, vals, writes, ln):
    """The statement's pages into L1, encoded in one call (and, for bf16 from a 16-bit DST,
    their values kept for UNPACK as pack_tile keeps them)."""
    c = p._cb(plan.out_cb, ln)
    fmt, ps, mem = ex.pack_fmt, c.page_size, p._l1.mem
    tiles = vals
    if plan.acc:
        old = np.stack([formats.decode_tiles(mem[a:a + ps], fmt, 1)[0] for _, a, _, _ in writes])
        tiles = old + tiles
    raw = formats.encode_tiles(tiles, fmt)
    keep = fmt is _BF16 and not (plan.acc or p.cfg.fp32_acc)
    if keep:
        tiles = tiles.copy()
        entries = []
    dec, run = c.decoded, 0
    for q in range(1, len(writes) + 1):        # pages in consecutive slots: one copy
        if q == len(writes) or writes[q][1] != writes[q - 1][1] + ps:
            t0, a0 = writes[run][0], writes[run][1]
            mem[a0:a0 + (q - run) * ps] = raw[t0 * ps:(t0 + q - run) * ps]
            run = q
    for t, a, slot, seq in writes:
        c.wseq[slot] = seq
        if keep:
            v = tiles[t]
            e = dec[slot] = (seq, v, v)
            entries.append(e)
        else:
            dec.pop(slot, None)
    c.block = (writes[0][3], tiles, entries) if keep else None
