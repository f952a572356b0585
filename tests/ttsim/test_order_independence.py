"""Timing and results do not depend on the order threads are spawned in (issue 8).

The engine's contract (docs/architecture.md): threads that reach the same cycle take their
turn at the NoC, semaphores and shared L1 words in an order fixed by core and thread kind,
not by the order simpy happens to resume them. Here hypothesis permutes the start order (the
program's kernels, the cores of each kernel, and the spawn direction) of varied programs:
many cores streaming DRAM, multicast matmuls with semaphore handshakes, a semaphore gather
with polling, and a ttlang pipe multicast; cycles, every thread's figures and every output
bit must be identical. Before the fix, reversing the spawn order of a 64-core DRAM-bound
copy changed its cycles.
"""
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ttlang as ttl
import ttsim
from ttsim.library.matmul import matmul_program
from ttsim.library.stream import copy_program

from tests.ttlang.kernels import row_broadcast


def _permute(prog, seed):
    """Shuffle the order the engine spawns `prog`'s threads in; returns whether to reverse."""
    r = random.Random(seed)
    r.shuffle(prog.kernels)
    for k in prog.kernels:
        r.shuffle(k.cores)
    return r.random() < 0.5


def _figures(rep, outs):
    threads = sorted((t.core, t.kind, t.end, t.busy, t.stalled) for t in rep.threads)
    return rep.cycles, threads, [o.to_numpy().tobytes() for o in outs]


def _run(build, seed):
    dev = ttsim.Device("wormhole_b0")
    prog, outs = build(dev)
    rev = _permute(prog, seed) if seed is not None else False
    return _figures(dev.run(prog, _reverse_spawn=rev), outs)


def _stream(n_cores, per_core, block):
    def build(dev):
        n = n_cores * per_core
        src = dev.tensor(np.random.default_rng(n).standard_normal((32, 32 * n)).astype(np.float32))
        dst = dev.empty((32, 32 * n))
        gx, _ = dev.grid
        cores = [(i % gx, i // gx) for i in range(n_cores)]
        return copy_program(dev, src, dst, cores=cores, block=block), [dst]
    return build


def _matmul(grid, mcast):
    def build(dev):
        gx, gy = grid
        r = np.random.default_rng(gx * 10 + gy)
        a = dev.tensor(r.standard_normal((64 * gy, 64)).astype(np.float32))
        b = dev.tensor(r.standard_normal((64, 64 * gx)).astype(np.float32))
        c = dev.empty((64 * gy, 64 * gx))
        return matmul_program(dev, a, b, c, grid=grid, mcast=mcast), [c]
    return build


def _gather(n_cores):
    """Every core but (0,0) writes a tile into (0,0)'s CB and increments its semaphore;
    (0,0) polls the count with read_l1, then multicasts a "go" that the others wait for,
    and every core writes its page of the output."""
    def build(dev):
        cores = [(i % 8, i // 8) for i in range(n_cores)]
        x = dev.tensor(np.random.default_rng(n_cores).standard_normal((32, 32 * n_cores))
                       .astype(np.float32))
        out = dev.empty((32, 32 * n_cores))
        prog = ttsim.Program(dev)
        prog.circular_buffer(cores, 0, "bf16", num_pages=n_cores)
        arrived = prog.semaphore(cores, 0)
        go = prog.semaphore(cores, 0)
        xs = [dev.sd.worker_noc_xy(*c) for c in cores]

        def reader(k):
            i = cores.index(k.core)
            k.cb_reserve_back(0, n_cores)
            base = k.get_write_ptr(0)
            me = k.get_write_ptr(0) + i * 2048
            k.noc_async_read_tile(i, k.interleaved_addr_gen(x), me)
            k.noc_async_read_barrier()
            s, g = k.get_semaphore(arrived), k.get_semaphore(go)
            if i == 0:
                while k.read_l1(s, 4).view(np.uint32)[0] != n_cores - 1:
                    pass
                k.noc_semaphore_set(g, 1)
                x0, y0 = min(xs)
                x1, y1 = max(xs)
                k.noc_semaphore_set_multicast(g, k.get_noc_multicast_addr(x0, y0, x1, y1, g))
            else:
                x0, y0 = xs[0]
                k.noc_async_write(me, k.get_noc_addr(x0, y0, base + i * 2048), 2048)
                k.noc_async_write_barrier()
                k.noc_semaphore_inc(k.get_noc_addr(x0, y0, s), 1)
                k.noc_semaphore_wait(g, 1)
            k.noc_async_write_tile(i, k.interleaved_addr_gen(out), me)
            k.noc_async_write_barrier()

        prog.reader(cores, reader)
        return prog, [out]
    return build


def _pipes(gx, gy):
    def build(dev):
        ttl.set_device(dev)
        src = ttl.from_numpy(np.random.default_rng(gx).standard_normal((32 * gy, 32))
                             .astype(np.float32))
        out = ttl.empty((32 * gy, 32 * gx))

        bcast = row_broadcast(gx, gy, lambda b: ttl.math.exp(b) * 2.0)
        return bcast, (src, out)
    return build


def _run_ttl(build, seed, monkeypatch):
    """ttlang builds and runs its own Program: permute it on its way into Device.run."""
    dev = ttsim.Device("wormhole_b0")
    kern, (src, out) = build(dev)
    orig = ttsim.Device.run

    def run(self, prog, **kw):
        rev = _permute(prog, seed) if seed is not None else False
        return orig(self, prog, _reverse_spawn=rev, **kw)

    with monkeypatch.context() as m:
        m.setattr(ttsim.Device, "run", run)
        rep = kern(src, out)
    return _figures(rep, [out.device_tensor if hasattr(out, "device_tensor") else out])


PROGRAMS = {
    "stream 64 cores": _stream(64, 2, 2),
    "stream 16 cores": _stream(16, 4, 1),
    "stream 40 cores": _stream(40, 4, 4),
    "matmul 4x4 multicast": _matmul((4, 4), True),
    "matmul 4x2 multicast": _matmul((4, 2), True),
    "matmul 2x4": _matmul((2, 4), False),
    "gather 8": _gather(8),
    "gather 24": _gather(24),
}
_BASE = {}


@settings(max_examples=24)
@given(name=st.sampled_from(sorted(PROGRAMS)), seed=st.integers(0, 2 ** 32 - 1))
def test_permuting_the_spawn_order_changes_no_cycle_and_no_bit(name, seed):
    base = _BASE.get(name)
    if base is None:
        base = _BASE[name] = _run(PROGRAMS[name], None)
    assert _run(PROGRAMS[name], seed) == base


@pytest.mark.parametrize("grid", [(4, 2), (3, 3)])
def test_ttlang_pipes_do_not_depend_on_spawn_order(grid, monkeypatch):
    base = _run_ttl(_pipes(*grid), None, monkeypatch)
    for seed in (1, 2, 3):
        assert _run_ttl(_pipes(*grid), seed, monkeypatch) == base


def test_reversing_a_64_core_dram_bound_copy_keeps_its_cycles():
    """The issue's case: a DRAM-bound copy on all 64 cores, spawned in reverse."""
    build = _stream(64, 4, 2)
    fwd = _run(build, None)
    dev = ttsim.Device("wormhole_b0")
    prog, outs = build(dev)
    assert _figures(dev.run(prog, _reverse_spawn=True), outs) == fwd
