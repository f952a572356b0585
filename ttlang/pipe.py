"""Pipes: one core's block multicast (or unicast) into the same buffer on other cores.

    net = ttl.PipeNet([ttl.Pipe(src=(0, y), dst=(slice(1, 8), y)) for y in range(8)])

    with kv_buf.reserve() as blk:
        def send(pipe):
            ttl.copy(k[rows, :], blk).wait()
            ttl.copy(blk, pipe).wait()          # multicast to the pipe's destinations
        def recv(pipe):
            ttl.copy(pipe, blk).wait()          # receive into the same buffer
        net.if_src(send)
        net.if_dst(recv)

A transfer is the hardware's handshake: each receiver, once it has reserved its block,
increments the sender's `ready` semaphore; the sender waits until all have, multicasts
the block to the same L1 address on every receiver (buffers advance in lockstep on all
cores, so the address is the same), then multicasts `valid = 1`; each receiver waits for
`valid` and clears it. A destination range may contain the source (a row's multicast from
its first core to `slice(0, grid_x)`): the source's block is the one it sends, so its own
receive is a no-op and the multicast reaches the other cores.
"""
from __future__ import annotations

from .errors import CompileError


def _span(v, n, what):
    if isinstance(v, int):
        if not 0 <= v < n:
            raise CompileError(f"pipe {what} {v} is outside the grid (0..{n - 1})")
        return range(v, v + 1)
    start, stop, step = v.indices(n)
    if step != 1 or stop <= start:
        raise CompileError(f"pipe {what} slice {v} must be a non-empty step-1 range")
    return range(start, stop)


class Pipe:
    """From one core to a core or a rectangle of cores (logical coordinates; slices for ranges)."""

    def __init__(self, src, dst):
        self.src, self.dst = tuple(src), tuple(dst)
        self.sems = None        # (ready, valid) semaphore ids, set when the kernel is built

    def resolve(self, grid):
        gx, gy = grid
        sx, sy = self.src
        _span(sx, gx, "source x"), _span(sy, gy, "source y")
        xs, ys = _span(self.dst[0], gx, "destination x"), _span(self.dst[1], gy, "destination y")
        self.dst_cores = [(x, y) for y in ys for x in xs]
        self.rect = (xs.start, ys.start, xs.stop - 1, ys.stop - 1)
        # a range may hold the source: its own block already has the data, so the source
        # takes no part in the handshake and the multicast goes to the others
        self.remote = [c for c in self.dst_cores if c != self.src]

    def __repr__(self):
        return f"Pipe({self.src} -> {self.dst})"


class PipeNet:
    def __init__(self, pipes):
        self.pipes = list(pipes)
        if not self.pipes:
            raise CompileError("a PipeNet needs at least one Pipe")
        from .kernel import _current_build
        b = _current_build()
        for p in self.pipes:
            p.resolve(b.grid)
            b.pipes.append(p)
        srcs = [p.src for p in self.pipes]
        if len(set(srcs)) != len(srcs):
            raise CompileError("two pipes of one PipeNet share a source core")
        dsts = [c for p in self.pipes for c in p.dst_cores]
        if len(set(dsts)) != len(dsts):
            raise CompileError("a core is a destination of two pipes of one PipeNet")

    def if_src(self, fn):
        from .runtime import core
        me = core()
        for p in self.pipes:
            if p.src == me:
                fn(p)

    def if_dst(self, fn):
        from .runtime import core
        me = core()
        for p in self.pipes:
            if me in p.dst_cores:
                fn(p)
