"""What ttlang calls do inside a running kernel thread.

A ttlang thread function runs as a ttsim kernel; Python control flow runs as written.
Buffer operations map one-to-one onto the CB protocol, `ttl.copy` onto NoC tile reads and
writes, and `blk.store(expr)` onto the low-level code the compiler generated for that
statement (see lower.py). The thread's environment is found through the current greenlet,
so user code needs no context argument, as in TT-Lang.
"""
from __future__ import annotations

import os
import sys

import greenlet
import numpy as np

from .errors import CompileError
from .expr import Leaf, Node, as_node
from .pipe import Pipe
from .tensor import TensorSlice

_envs: dict = {}
_getframe = sys._getframe


class ThreadEnv:
    """One running (or dry-run) ttlang thread on one core."""

    def __init__(self, build, kind, core, k=None):
        self.build, self.kind, self.core, self.k = build, kind, core, k
        self.dry = k is None
        # the build's dry run of a compute thread ends or fails: a loop that never ends makes
        # ttlang calls without end there (nothing blocks in a dry run)
        self.dry_budget = CALLS[0] + MAX_DRY_CALLS if self.dry else None
        self.pending: list = []           # copies not yet waited on
        self.addrgens: dict = {}
        self.written: set = set()         # buffers whose current reservation holds data
        # buffers with a block reserved (waited for) on this thread and not yet pushed
        # (popped): a second reserve (wait) before that would be the same pages
        self.reserving: set = set()
        self.waiting: set = set()

    def __enter__(self):
        _envs[greenlet.getcurrent()] = self
        return self

    def __exit__(self, *exc):
        _envs.pop(greenlet.getcurrent(), None)


CALLS = [0]      # ttlang calls made (env lookups): the build's dry run's sign of progress
# ttlang calls one core's compute thread may make in the build's dry run (about 2.4 us each):
# far more than any program whose real run would end in hours
MAX_DRY_CALLS = int(float(os.environ.get("TTLANG_MAX_DRY_CALLS", "1e7")))


def env() -> ThreadEnv:
    CALLS[0] += 1
    e = _envs.get(greenlet.getcurrent())
    if e is None:
        raise CompileError("this ttlang call only works inside a kernel thread "
                           "(a function decorated with @ttl.compute() or @ttl.datamovement())")
    if e.dry and CALLS[0] > e.dry_budget:
        raise CompileError(f"the compute thread made more than {MAX_DRY_CALLS:,} ttlang calls in "
                           "the build, which runs it once per core to compile its statements "
                           "(nothing waits there): a loop that never ends (while True: ...)? "
                           "Loop a known number of times; TTLANG_MAX_DRY_CALLS raises the limit "
                           "for a program this long", e.build.user_line())
    return e


class DataflowBuffer:
    """A circular buffer of `buffer_factor` blocks of `shape` tiles, in each core's L1."""

    def __init__(self, build, cb, shape, buffer_factor, dtype, name, line):
        self.build, self.cb, self.shape, self.factor, self.dtype, self.name, self.line = \
            build, cb, tuple(shape), int(buffer_factor), dtype, name, line
        self.tiles = self.shape[0] * self.shape[1]
        self.leaf_key = Leaf.key(self)      # every block of the buffer lowers alike

    def reserve(self):
        e = env()
        if self.cb in e.reserving:
            self._held_twice(e, "reserve", "reserved", "pushed", "write", "push")
        e.reserving.add(self.cb)
        if not e.dry:
            e.k.cb_reserve_back(self.cb, self.tiles)
        return Block(self, "reserved", e)

    def wait(self):
        e = env()
        if self.cb in e.waiting:
            self._held_twice(e, "wait", "waited for", "popped", "read", "pop")
        e.waiting.add(self.cb)
        if not e.dry:
            e.k.cb_wait_front(self.cb, self.tiles)
        return Block(self, "waited", e)

    def _held_twice(self, e, call, held, released, ptr, moves):
        """A second reserve (wait) while this thread holds a block of the buffer: the CB
        call would hand back the same pages (cb_reserve_back and cb_wait_front count from
        the write and read pointers, which only a push and a pop move)."""
        raise CompileError(f"{self.name}.{call}() while a block of {self.name} {held} earlier on "
                           f"this thread is not yet {released}: the new block would be the same "
                           f"pages (the {ptr} pointer moves only on a {moves}). End the first "
                           f"block's `with` (or {moves}() it) before the next {call}(), or make "
                           f"the buffer's blocks larger", e.build.user_line())

    def push(self, e=None):
        e = e or env()
        if self.cb not in e.written:
            raise CompileError(f"a block of {self.name} is pushed with nothing stored or copied into "
                               "it since it was reserved: its pages would hand on whatever an "
                               "earlier block left there. Store into the block (blk.store(...)) "
                               "or copy into it before it is pushed", e.build.user_line())
        e.written.discard(self.cb)
        e.reserving.discard(self.cb)
        for h in e.pending:
            if h.block is not None and h.block.buf is self:
                push = e.build.user_line()
                raise CompileError(f"this copy into {self.name} is never waited on before the block "
                                   f"is pushed (line {push[1] if push else '?'}): call .wait() on "
                                   "the handle ttl.copy returns", h.line)
        if not e.dry:
            e.k.cb_push_back(self.cb, self.tiles)

    def pop(self, e=None):
        e = e or env()
        e.waiting.discard(self.cb)
        if not e.dry:
            e.k.cb_pop_front(self.cb, self.tiles)

    def __repr__(self):
        return f"DataflowBuffer({self.name}: cb {self.cb}, {self.shape} tiles x {self.factor})"


class Block(Leaf):
    """A reserved (writable) or waited-for (readable) block of a dataflow buffer."""

    def __init__(self, buf, mode, e):
        self.cb, self.shape, self.name = buf.cb, buf.shape, buf.name
        self.buf, self.mode, self.env = buf, mode, e
        self.readable = mode == "waited"
        self._dead = self._retired = None

    def key(self):
        return self.buf.leaf_key

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            # the `with` statement's own frame is the user's line, unless it is generated code
            f = _getframe(1)
            fn = f.f_code.co_filename
            line = (fn, f.f_lineno) if fn not in self.env.build.skip else None
            (self.push if self.mode == "reserved" else self.pop)(line)

    @property
    def dead(self):
        """Why this block may not be used any more (None while it may). The message for a
        retired block is made when a use needs it, not at every push and pop."""
        if self._dead is None and self._retired is not None:
            what, line = self._retired
            at = f" (line {line[1]})" if line else ""
            self._dead = (f"uses a block of {self.name} after it was {what}{at}: its pages now "
                          "belong to the buffer's next block. Use a block only before its "
                          "push/pop (inside its `with`)")
        return self._dead

    @dead.setter
    def dead(self, why):
        self._dead = why

    def _retire(self, what, line):
        """After its push or pop the block's pages belong to the next block: any later use
        of this one is an error, not a read of whatever is there."""
        self._retired = (what, line or self.env.build.user_line())

    def push(self, line=None):
        self.buf.push(self.env)
        self._retire("pushed", line)

    def pop(self, line=None):
        self.buf.pop(self.env)
        self._retire("popped", line)

    def store(self, expr, acc=False):
        if self.dead:
            raise CompileError("store into " + self.dead[5:])
        if acc is not False and acc is not True and not isinstance(acc, np.bool_):
            raise CompileError(f"store(..., acc={acc!r}): acc is True (add onto the block) or False")
        if self.mode != "reserved":
            raise CompileError(f"store into {self.name}, a block that was waited for: store into "
                               "a block from .reserve()")
        if not isinstance(expr, Node):
            if isinstance(expr, str):
                expr = as_node(expr)          # its own error: cannot use str in a block expression
            number = isinstance(expr, (int, float)) and not isinstance(expr, bool) or \
                type(expr).__module__ == "numpy" and getattr(expr, "ndim", 1) == 0
            raise CompileError(f"store of {type(expr).__name__} {expr!r:.40} into {self.name}: "
                               "store a block expression"
                               + (" (store of a plain number: use ttl.math.fill(blk, value))"
                                  if number else ""))
        _check_live(expr)
        e = env()
        if e.kind != "compute":
            raise CompileError("store runs on the compute thread; data-movement threads use ttl.copy")
        # a reserved block starts at zero (TT-Lang's contract), so the first store of a
        # reservation packs plainly and only later ones accumulate onto it in L1
        low = e.build.lower(expr, self.cb, self.shape, acc and self.cb in e.written)
        e.written.add(self.cb)
        if not e.dry:
            # every call of the generated code is this statement's: pin its line once
            prev = e.k.pin_line(e.build.user_line())
            try:
                low.fn(e.k)
            finally:
                e.k.pin_line(prev)


def _check_live(expr):
    """A statement may only read blocks that are still held (not pushed or popped since)."""
    stack, seen = [expr], set()
    while stack:
        n = stack.pop()
        if n.__class__ is Block:             # a leaf, the common case
            if n._dead is not None or n._retired is not None:
                raise CompileError(n.dead)
            continue
        if id(n) in seen:
            continue
        seen.add(id(n))
        dead = getattr(n, "dead", None)
        if dead:
            raise CompileError(dead)
        for a in ("x", "y"):
            c = getattr(n, a, None)
            if isinstance(c, Node):
                stack.append(c)


class CopyHandle:
    def __init__(self, e, direction, block, line, pipe=None):
        self.env, self.direction, self.block, self.line, self.done = e, direction, block, line, False
        self.pipe = pipe

    def wait(self):
        e = self.env
        if not e.dry:
            k = e.k
            if self.direction == "read":
                k.noc_async_read_barrier()
            elif self.direction == "local":
                pass
            elif self.direction == "recv":
                valid = k.get_semaphore(self.pipe.sems[1])
                k.noc_semaphore_wait(valid, 1)
                k.noc_semaphore_set(valid, 0)
            else:
                k.noc_async_write_barrier()
        self.done = True
        if self in e.pending:
            e.pending.remove(self)


def _addrgen(e, tensor):
    g = e.addrgens.get(id(tensor))
    if g is None:
        g = e.addrgens[id(tensor)] = e.k.interleaved_addr_gen(tensor.device_tensor)
    return g


def copy(src, dst):
    """Move a block between a tensor slice and a buffer block; returns a handle to wait on."""
    e = env()
    if e.kind != "datamovement":
        raise CompileError("ttl.copy runs on data-movement threads (@ttl.datamovement())")
    line = e.build.user_line()
    for blk in (src, dst):
        if blk.__class__ is not TensorSlice and getattr(blk, "dead", None):
            raise CompileError("ttl.copy with " + blk.dead[5:], line)
    if isinstance(dst, Pipe) or isinstance(src, Pipe):
        return _pipe_copy(e, src, dst, line)
    if isinstance(src, TensorSlice) and isinstance(dst, Block):
        sl, blk, direction = src, dst, "read"
        if blk.mode != "reserved":
            raise CompileError(f"copy into {blk.name}, a block that was waited for: copy into a "
                               "block from .reserve()")
    elif isinstance(src, Block) and isinstance(dst, TensorSlice):
        sl, blk, direction = dst, src, "write"
        if blk.mode != "waited":
            raise CompileError(f"copy out of {blk.name}, a block that was only reserved: copy out "
                               "of a block from .wait()")
    else:
        raise CompileError(f"ttl.copy({type(src).__name__}, {type(dst).__name__}): copy a tensor slice "
                           "into a reserved block, or a waited block into a tensor slice")
    if sl.shape != blk.shape:
        raise CompileError(f"copy between a {sl.shape[0]}x{sl.shape[1]}-tile slice and a "
                           f"{blk.shape[0]}x{blk.shape[1]}-tile block of {blk.name}: shapes must match")
    if sl.tensor.device_tensor.dtype != blk.buf.dtype:
        raise CompileError(f"copy between a {sl.tensor.dtype} tensor and {blk.name} "
                           f"({blk.buf.dtype.value}): make the buffer with the tensor's dtype")
    h = CopyHandle(e, direction, blk, line)
    if direction == "read":
        e.written.add(blk.cb)
    if not e.dry:
        k = e.k
        g = _addrgen(e, sl.tensor)
        pages = sl.pages()
        if len(pages) == 1:       # the API finds this line from the stack as cheaply as a pin
            if direction == "read":
                k.noc_async_read_tile(pages[0], g, k.get_write_ptr(blk.cb))
            else:
                k.noc_async_write_tile(pages[0], g, k.get_read_ptr(blk.cb))
        else:
            ps = g.page_size
            prev = k.pin_line(line)
            try:
                if direction == "read":
                    p = k.get_write_ptr(blk.cb)
                    for page in pages:
                        k.noc_async_read_tile(page, g, p)
                        p += ps
                else:
                    p = k.get_read_ptr(blk.cb)
                    for page in pages:
                        k.noc_async_write_tile(page, g, p)
                        p += ps
            finally:
                k.pin_line(prev)
    e.pending.append(h)
    return h


def _pipe_copy(e, src, dst, line):
    if isinstance(dst, Pipe) and isinstance(src, Block):
        pipe, blk, direction = dst, src, "send"
        if e.core != pipe.src:
            raise CompileError(f"core {e.core} sends on {pipe}, whose source is {pipe.src}: send "
                               "inside net.if_src")
    elif isinstance(src, Pipe) and isinstance(dst, Block):
        pipe, blk, direction = src, dst, "recv"
        if e.core not in pipe.dst_cores:
            raise CompileError(f"core {e.core} receives on {pipe}, which does not reach it: "
                               "receive inside net.if_dst")
        if blk.mode != "reserved":
            raise CompileError(f"receive into {blk.name}, a block that was waited for: receive "
                               "into a block from .reserve()")
    else:
        raise CompileError("a pipe copy goes from a block to a pipe (send) or from a pipe to a "
                           "block (receive)")
    if direction == "recv" and e.core == pipe.src:
        # the source in its own destination range: the block it sends is the block, already
        # there (or copied in before the send); nothing moves
        h = CopyHandle(e, "local", blk, line, pipe)
        e.pending.append(h)
        return h
    if direction == "recv":
        e.written.add(blk.cb)
    elif blk.mode == "reserved" and blk.cb not in e.written:
        raise CompileError(f"sends a block of {blk.name} that nothing was copied into since it was "
                           "reserved: copy into the block before sending it on the pipe")
    h = CopyHandle(e, direction, blk, line, pipe)
    if not e.dry:
        k = e.k
        ready = k.get_semaphore(pipe.sems[0])
        if direction == "recv":
            sx, sy = k.logical_to_noc(*pipe.src)
            k.noc_semaphore_inc(k.get_noc_addr(sx, sy, ready), 1)
        elif pipe.remote:
            n = len(pipe.remote)
            k.noc_semaphore_wait(ready, n)
            k.noc_semaphore_set(ready, 0)
            x0, y0 = k.logical_to_noc(pipe.rect[0], pipe.rect[1])
            x1, y1 = k.logical_to_noc(pipe.rect[2], pipe.rect[3])
            addr = k.get_write_ptr(blk.cb) if blk.mode == "reserved" else k.get_read_ptr(blk.cb)
            size = blk.buf.tiles * blk.buf.dtype.tile_bytes
            # linked: the "valid" multicast behind it reuses the reserved path (as tt-metal)
            k.noc_async_write_multicast(addr, k.get_noc_multicast_addr(x0, y0, x1, y1, addr), size, n,
                                        linked=True)
            valid = k.get_semaphore(pipe.sems[1])
            k.noc_semaphore_set(valid, 1)
            k.noc_semaphore_set_multicast(valid, k.get_noc_multicast_addr(x0, y0, x1, y1, valid), n)
            k.noc_semaphore_set(valid, 0)
    e.pending.append(h)
    return h


def _body_build(what):
    """The kernel being defined when `what` is called in a kernel body, outside the threads."""
    from .kernel import _building
    if not _building:
        raise CompileError(f"{what} belongs inside a @ttl.kernel function (its body or a thread)")
    return _building[-1]


def core(dims=2):
    if greenlet.getcurrent() not in _envs:
        _body_build("ttl.core()")
        raise CompileError("ttl.core() in the kernel body: the body runs once, for the whole grid, "
                           "before any core runs, so there is no current core yet (TT-Lang compiles "
                           "one program for every core). Call ttl.core() inside the "
                           "@ttl.compute() / @ttl.datamovement() functions; ttl.grid_size() works "
                           "in the body too")
    c = env().core
    if dims == 2:
        return c
    if dims == 1:
        gx, _ = env().build.grid
        return c[1] * gx + c[0]
    raise CompileError(f"ttl.core(dims={dims}): dims must be 1 or 2")


def grid_size(dims=2):
    """The kernel's grid, known at launch: in a thread function or in the kernel body."""
    e = _envs.get(greenlet.getcurrent())
    g = e.build.grid if e is not None else _body_build("ttl.grid_size()").grid
    if dims == 2:
        return g
    if dims == 1:
        return g[0] * g[1]
    raise CompileError(f"ttl.grid_size(dims={dims}): dims must be 1 or 2")
