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

import operator

from .errors import CompileError


def _int(v):
    """v as an int if it is an integer (numpy too, not a bool), else None."""
    if v.__class__ is bool:
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def _span(v, n, what):
    """The cores a coordinate (an integer, or a slice for a range) names along a grid of n."""
    if not isinstance(v, slice):
        i = _int(v)
        if i is None:
            raise CompileError(f"{what} {v!r}: a core coordinate is an integer, or a slice of "
                               "integers for a range")
        if not 0 <= i < n:
            raise CompileError(f"{what} {i} is outside the grid (0..{n - 1})")
        return range(i, i + 1)
    for b in (v.start, v.stop, v.step):
        if b is not None and _int(b) is None:
            raise CompileError(f"{what} slice {v.start}:{v.stop}: slice bounds are integers, "
                               f"not {b!r}")
    if v.stop is not None and _int(v.stop) > n or v.start is not None and _int(v.start) >= n:
        # slice.indices would clip it to the grid: cores the user named would get nothing
        raise CompileError(f"{what} slice {v.start}:{v.stop} runs past the grid (0..{n - 1})")
    start, stop, step = v.indices(n)
    if step != 1 or stop <= start:
        raise CompileError(f"{what} slice {v} must be a non-empty step-1 range")
    return range(start, stop)


def _pair(c, what):
    if isinstance(c, (str, bytes)) or not hasattr(c, "__len__") or len(c) != 2:
        raise CompileError(f"{what} {c!r}: a core is (x, y)")
    return tuple(c)


class Pipe:
    """From one core to a core or a rectangle of cores (logical coordinates; slices for ranges)."""

    def __init__(self, src, dst):
        self.src, self.dst = _pair(src, "pipe source"), _pair(dst, "pipe destination")
        self.sems = None        # (ready, valid) semaphore ids, set when the kernel is built

    def resolve(self, grid):
        gx, gy = grid
        sx, sy = self.src
        for v, what in ((sx, "pipe source x"), (sy, "pipe source y")):
            if isinstance(v, slice):
                raise CompileError(f"{what} {v}: a pipe has one source core")
        sx, sy = _span(sx, gx, "pipe source x")[0], _span(sy, gy, "pipe source y")[0]
        self.src = (sx, sy)
        xs, ys = (_span(self.dst[0], gx, "pipe destination x"),
                  _span(self.dst[1], gy, "pipe destination y"))
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
        for p in self.pipes:
            if not isinstance(p, Pipe):
                raise CompileError(f"a PipeNet holds ttl.Pipe(src=..., dst=...)s, got {p!r}")
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
