"""Multi-core blocked matmul, written as tt-metal kernels are: reader, compute, writer.

Each core owns a rectangle of output tiles and walks it in subblocks of sm x sn tiles that
stay in DST for the whole K loop; the reader streams K in blocks of kb tiles, and the compute
kernel uses matmul_block so each operand tile is unpacked once per subblock.
"""
from __future__ import annotations

import math

from ..program import Program

CB_A, CB_B, CB_OUT = 0, 1, 16


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


def _reader(k):
    a_base, b_base, kt, nt, m0, mc, n0, nc, sm, sn, kb = k.args
    a = k.interleaved_addr_gen(a_base, k.get_compile_time_arg_val(0))
    b = k.interleaved_addr_gen(b_base, k.get_compile_time_arg_val(1))
    for ms in range(m0, m0 + mc, sm):
        for ns in range(n0, n0 + nc, sn):
            for k0 in range(0, kt, kb):
                k.cb_reserve_back(CB_A, sm * kb)
                p = k.get_write_ptr(CB_A)
                for i in range(sm):
                    for kk in range(kb):
                        k.noc_async_read_tile((ms + i) * kt + k0 + kk, a, p)
                        p += a.page_size
                k.cb_reserve_back(CB_B, kb * sn)
                p = k.get_write_ptr(CB_B)
                for kk in range(kb):
                    for j in range(sn):
                        k.noc_async_read_tile((k0 + kk) * nt + ns + j, b, p)
                        p += b.page_size
                k.noc_async_read_barrier()
                k.cb_push_back(CB_A, sm * kb)
                k.cb_push_back(CB_B, kb * sn)


def _compute(k):
    kt, mc, nc, sm, sn, kb = k.args
    for _ in range(0, mc, sm):
        for _ in range(0, nc, sn):
            k.tile_regs_acquire()
            for _ in range(0, kt, kb):
                k.cb_wait_front(CB_A, sm * kb)
                k.cb_wait_front(CB_B, kb * sn)
                for kk in range(kb):
                    k.matmul_block(CB_A, CB_B, kk, kk * sn, 0, False, sn, sm, kb)
                k.cb_pop_front(CB_A, sm * kb)
                k.cb_pop_front(CB_B, kb * sn)
            k.tile_regs_commit()
            k.tile_regs_wait()
            k.cb_reserve_back(CB_OUT, sm * sn)
            for d in range(sm * sn):
                k.pack_tile(d, CB_OUT)
            k.cb_push_back(CB_OUT, sm * sn)
            k.tile_regs_release()


def _writer(k):
    c_base, nt, m0, mc, n0, nc, sm, sn = k.args
    c = k.interleaved_addr_gen(c_base, k.get_compile_time_arg_val(0))
    for ms in range(m0, m0 + mc, sm):
        for ns in range(n0, n0 + nc, sn):
            k.cb_wait_front(CB_OUT, sm * sn)
            p = k.get_read_ptr(CB_OUT)
            for i in range(sm):
                for j in range(sn):
                    k.noc_async_write_tile((ms + i) * nt + ns + j, c, p)
                    p += c.page_size
            k.noc_async_write_barrier()
            k.cb_pop_front(CB_OUT, sm * sn)


def _largest_divisor(n, limit):
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def matmul_program(device, a, b, c, grid=None, sm=None, sn=None, kb=None, buffers=2,
                   math_fidelity="HiFi4", fp32_dest_acc_en=False):
    """Build the program computing c = a @ b (tilized 2-D tensors) on a `grid` of cores."""
    (mt, kt), (kt2, nt) = a.tiles, b.tiles
    if kt != kt2 or c.tiles != (mt, nt):
        raise ValueError(f"matmul shapes do not agree: a {a.shape} @ b {b.shape} -> c {c.shape}")
    grid = grid or device.grid
    work = plan(mt, nt, grid)
    dst = device.sd.dst_tiles(fp32_dest_acc_en, False)
    pm = math.gcd(*(w[1] for w in work.values()))
    pn = math.gcd(*(w[3] for w in work.values()))
    if sm is None or sn is None:
        # the subblock that fills DST and unpacks the fewest tiles per product: (sm + sn) / (sm sn)
        cands = [(a, b) for a in range(1, pm + 1) for b in range(1, pn + 1)
                 if pm % a == 0 and pn % b == 0 and a * b <= dst
                 and (sm is None or a == sm) and (sn is None or b == sn)]
        if not cands:
            raise ValueError(f"no {sm or '?'}x{sn or '?'} subblock divides every core's output "
                             f"tiles and fits the {dst} DST tiles")
        sm, sn = max(cands, key=lambda ab: (ab[0] * ab[1], -(ab[0] + ab[1]), ab[1]))
    kb = kb or _largest_divisor(kt, 4)
    for core, (m0, mc, n0, nc) in work.items():
        if mc % sm or nc % sn:
            raise ValueError(f"core {core} has {mc}x{nc} output tiles, not a multiple of the "
                             f"{sm}x{sn} subblock")
    prog = Program(device)
    cores = list(work)
    prog.circular_buffer(cores, CB_A, a.dtype, buffers * sm * kb)
    prog.circular_buffer(cores, CB_B, b.dtype, buffers * kb * sn)
    prog.circular_buffer(cores, CB_OUT, c.dtype, buffers * sm * sn)
    prog.reader(cores, _reader, compile_args=[a.page_size, b.page_size],
                args=lambda cr: [a.address, b.address, kt, nt, *work[cr], sm, sn, kb])
    prog.compute(cores, _compute, math_fidelity=math_fidelity, fp32_dest_acc_en=fp32_dest_acc_en,
                 args=lambda cr: [kt, work[cr][1], work[cr][3], sm, sn, kb])
    prog.writer(cores, _writer, compile_args=[c.page_size],
                args=lambda cr: [c.address, nt, *work[cr], sm, sn])
    return prog


def matmul(device, a, b, out_dtype="bf16", **kw):
    """c = a @ b on the simulator; returns (c tensor, RunReport)."""
    c = device.empty((a.shape[0], b.shape[1]), out_dtype)
    rep = device.run(matmul_program(device, a, b, c, **kw))
    return c, rep
