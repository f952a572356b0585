"""DRAM streaming copy: the data-movement-only program that measures achievable bandwidth."""
from __future__ import annotations

from ..program import Program, dram_nocs

CB = 0


def _reader(k):
    src, first, count, block = k.args
    g = k.interleaved_addr_gen(src)
    for t0 in range(first, first + count, block):
        k.cb_reserve_back(CB, block)
        p = k.get_write_ptr(CB)
        for t in range(t0, t0 + block):
            k.noc_async_read_tile(t, g, p)
            p += g.page_size
        k.noc_async_read_barrier()
        k.cb_push_back(CB, block)


def _writer(k):
    dst, first, count, block = k.args
    g = k.interleaved_addr_gen(dst)
    for t0 in range(first, first + count, block):
        k.cb_wait_front(CB, block)
        p = k.get_read_ptr(CB)
        for t in range(t0, t0 + block):
            k.noc_async_write_tile(t, g, p)
            p += g.page_size
        k.noc_async_write_barrier()
        k.cb_pop_front(CB, block)


def copy_program(device, src, dst, cores=((0, 0),), block=4, buffers=2):
    """dst = src, pages split evenly over `cores`; each core reads a block, then writes it."""
    n = src.num_pages
    cores = [tuple(c) for c in cores]
    per = n // len(cores)
    if per * len(cores) != n or per % block:
        raise ValueError(f"{n} pages do not split into {len(cores)} cores x blocks of {block}")
    prog = Program(device)
    prog.circular_buffer(cores, CB, src.dtype, buffers * block)
    first = {c: i * per for i, c in enumerate(cores)}
    rd, wr = dram_nocs(device.sd)
    prog.reader(cores, _reader, args=lambda c: [src, first[c], per, block], noc=rd)
    prog.writer(cores, _writer, args=lambda c: [dst, first[c], per, block], noc=wr)
    return prog
