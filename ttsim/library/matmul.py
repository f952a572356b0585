"""Multi-core blocked matmul, written as tt-metal kernels are: reader, compute, writer.

Each core owns a rectangle of output tiles and walks it in output blocks that stay in L1
while the reader streams K through in steps; the compute kernel multiplies sm x sn
subblocks in DST with matmul_block (each operand tile unpacked once per subblock) and the
packer accumulates them into the block in L1. At the last K step each subblock goes to the
writer as soon as it is packed (tt-metal's bmm_large_block_zm and its writer hand the output
over a subblock at a time), so the block's first writes overlap its last products.
"""
from __future__ import annotations

import math

from ..program import Program, dram_nocs

CB_A, CB_B, CB_OUT, CB_INTERM = 0, 1, 16, 24


def plan(mt, nt, grid):
    """Split mt x nt output tiles over a (gx, gy) grid: per-core rows and columns of tiles."""
    gx, gy = grid
    pm, pn = math.ceil(mt / gy), math.ceil(nt / gx)
    work = {}
    for y in range(gy):
        for x in range(gx):
            m0, n0 = y * pm, x * pn
            if m0 < mt and n0 < nt:
                work[(x, y)] = (m0, min(pm, mt - m0), n0, min(pn, nt - n0))
    return work


def _read_tiles(k, gen, first, rows, cols, stride, p):
    """Issue reads of a rows x cols block of tiles (row stride `stride` pages) into L1 at p."""
    for i in range(rows):
        for j in range(cols):
            k.noc_async_read_tile(first + i * stride + j, gen, p)
            p += gen.page_size


def _reader(k):
    a_base, b_base, kt, nt, m0, mc, n0, nc, bm, bn, kb = k.args
    a = k.interleaved_addr_gen(a_base, k.get_compile_time_arg_val(0))
    b = k.interleaved_addr_gen(b_base, k.get_compile_time_arg_val(1))
    for mb in range(m0, m0 + mc, bm):
        for nb in range(n0, n0 + nc, bn):
            for k0 in range(0, kt, kb):
                k.cb_reserve_back(CB_A, bm * kb)
                _read_tiles(k, a, mb * kt + k0, bm, kb, kt, k.get_write_ptr(CB_A))
                k.cb_reserve_back(CB_B, kb * bn)
                _read_tiles(k, b, k0 * nt + nb, kb, bn, nt, k.get_write_ptr(CB_B))
                k.noc_async_read_barrier()
                k.cb_push_back(CB_A, bm * kb)
                k.cb_push_back(CB_B, kb * bn)


def _compute(k):
    """Per output block, per K step, per subblock: accumulate the K step in DST, then add it
    to the block's partial sums: by the packer in L1 (l1_acc), or, as tt-metal does without
    packer L1 accumulation, by packing partials to an intermediate CB and copying them
    back into DST at the next K step."""
    kt, mc, nc, bm, bn, sm, sn, kb, l1_acc = k.args
    s = sm * sn
    for _ in range(0, mc * nc, bm * bn):
        k.cb_reserve_back(CB_OUT, bm * bn)
        for k0 in range(0, kt, kb):
            first, last = k0 == 0, k0 + kb == kt
            k.cb_wait_front(CB_A, bm * kb)
            k.cb_wait_front(CB_B, kb * bn)
            for si in range(0, bm, sm):
                for sj in range(0, bn, sn):
                    k.tile_regs_acquire()
                    if not (first or l1_acc):
                        k.cb_wait_front(CB_INTERM, s)
                        k.copy_block_matmul_partials(CB_INTERM, 0, 0, s)
                        k.cb_pop_front(CB_INTERM, s)
                    for kk in range(kb):
                        k.matmul_block(CB_A, CB_B, si * kb + kk, kk * bn + sj, 0, False, sn, sm, kb)
                    k.tile_regs_commit()
                    k.tile_regs_wait()
                    if last or l1_acc:
                        # the block's pages in subblock order: each subblock is pushed to the
                        # writer as the last K step finishes it (the pages pushed before it are
                        # behind the write pointer then)
                        base = 0 if last else (si // sm * (bn // sn) + sj // sn) * s
                        for d in range(s):
                            k.pack_tile(d, CB_OUT, base + d, accumulate=l1_acc and not first)
                        if last:
                            k.cb_push_back(CB_OUT, s)
                    else:
                        k.cb_reserve_back(CB_INTERM, s)
                        for d in range(s):
                            k.pack_tile(d, CB_INTERM)
                        k.cb_push_back(CB_INTERM, s)
                    k.tile_regs_release()
            k.cb_pop_front(CB_A, bm * kb)
            k.cb_pop_front(CB_B, kb * bn)


def _write_block(k, c, mb, nb, nt, bm, bn, sm, sn, noc=None):
    """The output block to DRAM a subblock at a time, as the compute kernel pushes it (tt-metal's
    matmul writer: wait for a subblock, write its tiles, barrier, pop), so the writes of the
    first subblocks overlap the packing of the last."""
    s = sm * sn
    for si in range(0, bm, sm):
        for sj in range(0, bn, sn):
            k.cb_wait_front(CB_OUT, s)
            p = k.get_read_ptr(CB_OUT)
            for i in range(sm):
                for j in range(sn):
                    if noc is None:
                        k.noc_async_write_tile((mb + si + i) * nt + nb + sj + j, c, p)
                    else:
                        k.noc_async_write_tile((mb + si + i) * nt + nb + sj + j, c, p, noc)
                    p += c.page_size
            k.noc_async_write_barrier()
            k.cb_pop_front(CB_OUT, s)


def _writer(k):
    c_base, nt, m0, mc, n0, nc, bm, bn, sm, sn = k.args
    c = k.interleaved_addr_gen(c_base, k.get_compile_time_arg_val(0))
    for mb in range(m0, m0 + mc, bm):
        for nb in range(n0, n0 + nc, bn):
            _write_block(k, c, mb, nb, nt, bm, bn, sm, sn)


def _mcast_step(k, cb, ntiles, nbytes, fetch, role, ready, valid):
    """One block into `cb` on every core of a row (or column): the sender fetches it from
    DRAM and multicasts it to the same address on the receivers, with tt-metal's semaphore
    handshake (receivers signal `ready` once they have room; the sender multicasts `valid`)."""
    k.cb_reserve_back(cb, ntiles)
    p = k.get_write_ptr(cb)
    if role is None:                                   # alone in its row / column
        fetch(p)
    elif role[0] == "send":
        _, rect, n_recv = role
        fetch(p)
        k.noc_semaphore_wait(ready, n_recv)
        k.noc_semaphore_set(ready, 0)
        # the multicast takes the other NoC than the kernel's (DRAM) reads, so the two
        # streams do not queue on the same links (the sender's column or row); linked, as
        # tt-metal sends it, so the "valid" multicast behind it reuses the reserved path
        noc = 1 - k.noc_index
        k.noc_async_write_multicast(p, k.get_noc_multicast_addr(*rect, p), nbytes, n_recv,
                                    linked=True, noc=noc)
        k.noc_semaphore_set_multicast(valid, k.get_noc_multicast_addr(*rect, valid), n_recv, noc=noc)
    else:
        _, sx, sy = role
        k.noc_semaphore_set(valid, 0)
        k.noc_semaphore_inc(k.get_noc_addr(sx, sy, ready), 1)
        k.noc_semaphore_wait(valid, 1)
    k.cb_push_back(cb, ntiles)


def _reader_mcast(k):
    """in0 (A): the first core of each grid row reads A and multicasts it along the row."""
    a_base, kt, m0, mc, nc, bm, bn, kb, role, s_ready, s_valid = k.args
    a = k.interleaved_addr_gen(a_base, k.get_compile_time_arg_val(0))
    ready, valid = k.get_semaphore(s_ready), k.get_semaphore(s_valid)
    if role and role[0] == "send":
        k.noc_semaphore_set(valid, 1)          # the word the "valid" multicast sends
    for mb in range(m0, m0 + mc, bm):
        for _ in range(0, nc, bn):
            for k0 in range(0, kt, kb):
                def fetch(p, mb=mb, k0=k0):
                    _read_tiles(k, a, mb * kt + k0, bm, kb, kt, p)
                    k.noc_async_read_barrier()
                _mcast_step(k, CB_A, bm * kb, bm * kb * a.page_size, fetch, role, ready, valid)


def _writer_mcast(k):
    """in1 (B): the first core of each grid column reads B and multicasts it down the
    column; then the output block goes to DRAM."""
    b_base, c_base, kt, nt, m0, mc, n0, nc, bm, bn, sm, sn, kb, role, s_ready, s_valid, wr = k.args
    b = k.interleaved_addr_gen(b_base, k.get_compile_time_arg_val(0))
    c = k.interleaved_addr_gen(c_base, k.get_compile_time_arg_val(1))
    ready, valid = k.get_semaphore(s_ready), k.get_semaphore(s_valid)
    if role and role[0] == "send":
        k.noc_semaphore_set(valid, 1)          # the word the "valid" multicast sends
    for mb in range(m0, m0 + mc, bm):
        for nb in range(n0, n0 + nc, bn):
            for k0 in range(0, kt, kb):
                def fetch(p, nb=nb, k0=k0):
                    _read_tiles(k, b, k0 * nt + nb, kb, bn, nt, p)
                    k.noc_async_read_barrier()
                _mcast_step(k, CB_B, kb * bn, kb * bn * b.page_size, fetch, role, ready, valid)
            _write_block(k, c, mb, nb, nt, bm, bn, sm, sn, wr)


def _roles(device, grid, along):
    """Per core: None (no peers), ("send", noc rectangle, receivers) or ("recv", sender noc
    x, y), for multicast along grid rows (along="row") or columns."""
    sd, (gx, gy) = device.sd, grid
    roles = {}
    for y in range(gy):
        for x in range(gx):
            peers = gx if along == "row" else gy
            if peers == 1:
                roles[(x, y)] = None
            elif (x if along == "row" else y) == 0:
                far = (gx - 1, y) if along == "row" else (x, gy - 1)
                near = (1, y) if along == "row" else (x, 1)
                roles[(x, y)] = ("send", (*sd.worker_noc_xy(*near), *sd.worker_noc_xy(*far)), peers - 1)
            else:
                roles[(x, y)] = ("recv", *sd.worker_noc_xy(*((0, y) if along == "row" else (x, 0))))
    return roles


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _largest_divisor(n, limit):
    return max(d for d in _divisors(n) if d <= limit)


def choose_blocking(device, a, b, c, work, kt, buffers, fp32_dest_acc_en, sm=None, sn=None, kb=None,
                    bm=None, bn=None, l1_share=0.85, l1_acc=True):
    """Subblock (sm x sn, in DST), output block (bm x bn, in L1) and K step kb for `work`.

    The subblock fills DST with the fewest unpacked tiles per product, (sm + sn) / (sm sn).
    The output block is the one that fits `l1_share` of the free L1 (output block, plus
    `buffers` K steps of A and B) and reads the fewest tiles per product, 1/bm + 1/bn.
    kb depends on K only, so every grid accumulates in the same order (same bits).
    """
    dst = device.sd.dst_tiles(fp32_dest_acc_en, False)
    pm = math.gcd(*(w[1] for w in work.values()))
    pn = math.gcd(*(w[3] for w in work.values()))
    kb = kb or _largest_divisor(kt, 8)
    if sm is None or sn is None:
        cands = [(x, y) for x in _divisors(pm) for y in _divisors(pn) if x * y <= dst
                 and (sm is None or x == sm) and (sn is None or y == sn)]
        if not cands:
            raise ValueError(f"no {sm or '?'}x{sn or '?'} subblock divides every core's output "
                             f"tiles and fits the {dst} DST tiles")
        sm, sn = max(cands, key=lambda xy: (xy[0] * xy[1], -(xy[0] + xy[1]), xy[1]))
    if sm * sn > dst:
        raise ValueError(f"the {sm}x{sn} subblock exceeds the {dst} DST tiles")
    if pm % sm or pn % sn:
        raise ValueError(f"the {sm}x{sn} subblock does not divide every core's {pm}x{pn} output tiles")
    budget = l1_share * (device.sd.l1_size - device.sd.l1_reserved)
    ta, tb, tc = a.page_size, b.page_size, c.page_size

    def fits(x, y):
        out = x * y * tc * (1 if l1_acc else 2)         # without L1 acc: the intermediate CB too
        return out + buffers * kb * (x * ta + y * tb) <= budget
    if bm is None or bn is None:
        cands = [(x, y) for x in _divisors(pm) for y in _divisors(pn)
                 if x % sm == 0 and y % sn == 0 and fits(x, y)
                 and (bm is None or x == bm) and (bn is None or y == bn)]
        if not cands:
            raise ValueError(f"no output block of {sm}x{sn} subblocks fits in L1 with kb={kb}")
        bm, bn = min(cands, key=lambda xy: (1 / xy[0] + 1 / xy[1], -xy[0] * xy[1]))
    for core, (m0, mc, n0, nc) in work.items():
        if mc % bm or nc % bn or bm % sm or bn % sn or kt % kb:
            raise ValueError(f"core {core} has {mc}x{nc} output tiles and K={kt} tiles: not a "
                             f"multiple of the {bm}x{bn} block, {sm}x{sn} subblock, kb={kb}")
    return sm, sn, bm, bn, kb


def matmul_program(device, a, b, c, grid=None, sm=None, sn=None, kb=None, bm=None, bn=None,
                   buffers=2, math_fidelity="HiFi4", fp32_dest_acc_en=False, mcast=None, l1_acc=True):
    """Build the program computing c = a @ b (tilized 2-D tensors) on a `grid` of cores.

    As tt-metal's large-block matmul: each core walks its output in bm x bn blocks that
    stay in L1 while K streams through in steps of kb tiles; within a block, sm x sn
    subblocks accumulate a K step in DST and the packer adds them to the block in L1.
    With `mcast`, as tt-metal's 2-D multicast matmul: A is read once per grid row and
    multicast along it, B once per grid column and multicast down it. By default it is on
    whenever the output splits evenly over a grid of more than one core. With l1_acc=False
    the partial sums of each K step go through an intermediate CB and back into DST
    (tt-metal's matmul without packer L1 accumulation).
    """
    (mt, kt), (kt2, nt) = a.tiles, b.tiles
    if kt != kt2 or c.tiles != (mt, nt):
        raise ValueError(f"matmul shapes do not agree: a {a.shape} @ b {b.shape} -> c {c.shape}")
    grid = grid or device.grid
    work = plan(mt, nt, grid)
    if mcast is None:
        mcast = grid != (1, 1) and mt % grid[1] == 0 and nt % grid[0] == 0
    if mcast and (mt % grid[1] or nt % grid[0]):
        raise ValueError(f"multicast matmul needs {mt} row tiles split evenly over {grid[1]} grid rows "
                         f"and {nt} column tiles over {grid[0]} columns")
    sm, sn, bm, bn, kb = choose_blocking(device, a, b, c, work, kt, buffers, fp32_dest_acc_en,
                                         sm, sn, kb, bm, bn, l1_acc=l1_acc)
    prog = Program(device)
    cores = list(work)
    prog.circular_buffer(cores, CB_A, a.dtype, buffers * bm * kb)
    prog.circular_buffer(cores, CB_B, b.dtype, buffers * kb * bn)
    prog.circular_buffer(cores, CB_OUT, c.dtype, bm * bn)
    if not l1_acc:
        prog.circular_buffer(cores, CB_INTERM, c.dtype, bm * bn)
    rd, wr = dram_nocs(device.sd)
    if mcast:
        row, col = _roles(device, grid, "row"), _roles(device, grid, "col")
        sems = [prog.semaphore(cores, 0) for _ in range(4)]
        prog.reader(cores, _reader_mcast, compile_args=[a.page_size], noc=wr,
                    args=lambda cr: [a.address, kt, work[cr][0], work[cr][1], work[cr][3], bm, bn, kb,
                                     row[cr], sems[0], sems[1]])
        prog.writer(cores, _writer_mcast, compile_args=[b.page_size, c.page_size], noc=rd,
                    args=lambda cr: [b.address, c.address, kt, nt, *work[cr], bm, bn, sm, sn, kb,
                                     col[cr], sems[2], sems[3], wr])
    else:
        prog.reader(cores, _reader, compile_args=[a.page_size, b.page_size], noc=rd,
                    args=lambda cr: [a.address, b.address, kt, nt, *work[cr], bm, bn, kb])
        prog.writer(cores, _writer, compile_args=[c.page_size], noc=wr,
                    args=lambda cr: [c.address, nt, *work[cr], bm, bn, sm, sn])
    prog.compute(cores, _compute, math_fidelity=math_fidelity, fp32_dest_acc_en=fp32_dest_acc_en,
                 args=lambda cr: [kt, work[cr][1], work[cr][3], bm, bn, sm, sn, kb, l1_acc])
    return prog


def matmul(device, a, b, out_dtype="bf16", **kw):
    """c = a @ b on the simulator; returns (c tensor, RunReport)."""
    c = device.empty((a.shape[0], b.shape[1]), out_dtype)
    rep = device.run(matmul_program(device, a, b, c, **kw))
    return c, rep


# --- the schedule space, for `ttsim sweep matmul` (ttsim.sweep, docs/sweep.md) -------------
SWEEP_PROBLEM = dict(M=512, K=512, N=512, dtype="bf16", seed=0, sysdesc=None)
FIDELITY_PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}


def run(M=512, K=512, N=512, dtype="bf16", seed=0, sysdesc=None, **schedule):
    """One library matmul of random M x K by K x N for the sweep: cycles, bottleneck,
    per-thread utilisation, the L1 its CBs take, pcc and max abs error against float64."""
    import numpy as np
    from ..device import Device
    dev = Device(sysdesc)
    r = np.random.default_rng(seed)
    ta, tb = (dev.tensor(r.standard_normal(s).astype(np.float32), dtype) for s in ((M, K), (K, N)))
    c = dev.empty((M, N), "bf16")
    prog = matmul_program(dev, ta, tb, c, **{k: v for k, v in schedule.items() if v is not None})
    rep = dev.run(prog)
    ref = ta.to_numpy().astype(np.float64) @ tb.to_numpy().astype(np.float64)
    out = c.to_numpy().astype(np.float64)
    return {"cycles": float(rep.cycles), "us": float(rep.us), "bottleneck": rep.bottleneck(),
            "pcc": float(np.corrcoef(out.ravel(), ref.ravel())[0, 1]),
            "max_abs_err": float(np.abs(out - ref).max()),
            "l1_bytes": max(sum(cb.num_pages * cb.page_size for cb in cbs.values())
                            for cbs in prog.cbs.values()),
            "utilisation": {k: round(d["busy"], 4) for k, d in rep.per_kind().items()}}


def _sweep_blocking(s, p):
    """The reason choose_blocking refuses a schedule's sm/sn/kb (None: the library chooses)
    for problem p, or None: the library's own rule, asked without building a program."""
    from types import SimpleNamespace
    import sysdesc as _sdmod
    from ..formats import parse_format
    if (p["M"] | p["K"] | p["N"]) % 32:
        return f"M, K and N ({p['M']}, {p['K']}, {p['N']}) must be multiples of 32"
    dev = SimpleNamespace(sd=_sdmod.load(p.get("sysdesc")))
    ab = SimpleNamespace(page_size=parse_format(p.get("dtype", "bf16")).tile_bytes)
    c = SimpleNamespace(page_size=parse_format("bf16").tile_bytes)
    try:
        choose_blocking(dev, ab, ab, c, plan(p["M"] // 32, p["N"] // 32, s["grid"]), p["K"] // 32,
                        s.get("buffers", 2), s.get("fp32_dest_acc_en", False), s.get("sm"),
                        s.get("sn"), s.get("kb"), l1_acc=s.get("l1_acc", True))
    except ValueError as e:
        return str(e)
    return None


def sweep_estimate(s, p):
    """A flop/byte estimate of cycles: the busiest core's tile products at the fidelity's
    phases, or the DRAM reads (A and B once per core, once per grid row/column with
    multicast) at the banks' bandwidth, whichever is longer."""
    import sysdesc as _sdmod
    sd = _sdmod.load(p.get("sysdesc"))
    mt, kt, nt = p["M"] // 32, p["K"] // 32, p["N"] // 32
    gx, gy = s["grid"]
    work = plan(mt, nt, s["grid"])
    flops = max(mc * nc for _, mc, _, nc in work.values()) * kt
    compute = flops * sd.value("cost.math.matmul") * FIDELITY_PHASES.get(s.get("math_fidelity"), 4)
    mcast = s.get("mcast", (gx, gy) != (1, 1) and mt % gy == 0 and nt % gx == 0)
    tiles = kt * (mt + nt) if mcast else sum((mc + nc) * kt for _, mc, _, nc in work.values())
    tile = 2048 if p.get("dtype", "bf16") == "bf16" else 1088
    return max(compute, tiles * tile / sum(b.bandwidth.value for b in sd.dram_banks))


def schedule_space(problem=None):
    """The library matmul's schedule parameters for `problem` (missing keys: SWEEP_PROBLEM);
    None lets the library choose. Grids larger than the chip and blockings it would refuse
    are pruned before anything runs."""
    from ..sweep import Space, grid_fits
    return Space({"grid": [(8, 8), (4, 4), (2, 2)], "sm": [None, 1, 2, 4], "sn": [None, 1, 2, 4],
                  "kb": [None, 2, 4, 8], "buffers": [2], "math_fidelity": ["HiFi4", "HiFi2"],
                  "fp32_dest_acc_en": [False], "l1_acc": [True]},
                 constraints=[grid_fits(), _sweep_blocking],
                 problem={**SWEEP_PROBLEM, **(problem or {})}, estimate=sweep_estimate)
