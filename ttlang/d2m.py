"""The seed document's D2M-style kernel API, as a thin layer over ttlang's kernels.

The project's seed wrote kernels against tt-lang's older D2M front end: a `@pykernel_gen`
function of tensors, `@compute() async def` / `@datamovement() async def` threads that take
one circular buffer per operand, `cb.pop()` / `cb.reserve()`, `Stream` + `dma(...)` for
operands moved explicitly, and the block methods (`S.exp()`, `K.transpose()`,
`S.rowmax()`, ...). Here each such kernel becomes a `ttl.kernel`; its statements go through
the same compiler (`ttlang/lower.py`) and run on the same simulator:

    from ttlang.d2m import *

    @pykernel_gen(grid=(2, 2), block_factors=[(1, 1), (1, 1), (1, 1)])
    def attention(Q, K, out):
        K_stream = Stream(K)

        @compute()
        async def comp(Q_cb: CircularBuffer, K_cb: CircularBuffer, out_cb: CircularBuffer):
            Q_block = Q_cb.pop()
            K_block = K_cb.pop()
            o = out_cb.reserve()
            S = Q_block @ K_block.transpose()
            o.store((S - S.rowmax()).exp())

        @datamovement()
        async def dm(Q_cb: CircularBuffer, K_cb: CircularBuffer, out_cb: CircularBuffer):
            dma(K_stream[0, 0], K_cb.reserve()).wait()

        return Program(comp, dm)(Q, K, out)

The choices this layer makes where the seed leaves the D2M surface open (docs/ttlang.md,
"D2M-style kernels"):

- `grid=(rows, cols)` of cores, in the tensor's dimension order; `core_index(0)` is this
  core's row, `core_index(1)` its column.
- An operand not wrapped in `Stream` is held in L1 as this core's shard: the tensor split
  evenly over the grid (rows over grid rows, columns over grid columns), cut into
  `block_factors[i]` blocks. An input's blocks arrive in its buffer by themselves, in
  row-major order; an output's blocks are written back as the compute thread stores them.
  A `Stream` operand is not sharded: its buffer holds blocks of the whole tensor divided by
  its block factors, two deep, and `stream[i, j]` is block (i, j) of the tensor, moved with
  `dma(stream[i, j], cb.reserve())` or `dma(cb.pop(), stream[i, j])`.
- The last `num_outs` operands (default 1) are the outputs.
- `cb.pop()` waits for the buffer's next block and holds it until the next `pop()` of the
  same buffer, or the thread's end (D2M releases at the end of the scope); so one block of a
  buffer is held at a time. `cb.reserve()` gives a block that is pushed once it is filled:
  by its `store(...)` on the compute thread, when the dma into it is waited for on a
  data-movement thread. A block popped into a dma is released when the dma is waited for.
- Threads are `async def` (or plain `def`) functions that run straight through: nothing in
  them may `await`.
"""
from __future__ import annotations

import inspect

import greenlet
import numpy as np

from .kernel import Kernel as _Kernel, compute as _ttl_compute, datamovement as _ttl_datamovement
from .kernel import make_dataflow_buffer_like as _make_buffer
from . import tensor as host
from .errors import CompileError
from .runtime import Block, _envs, copy as _copy, core as _core, env as _env
from .tensor import Tensor, TensorSlice

__all__ = ["pykernel_gen", "compute", "datamovement", "Program", "CircularBuffer", "Stream", "dma",
           "core_index"]

_stack: list = []        # the D2M kernel being built (its body running)


def _build(what):
    if not _stack:
        raise CompileError(f"{what} belongs inside a @pykernel_gen function")
    return _stack[-1]


def _def_line(fn):
    """(file, line) of fn's `def` (co_firstlineno is its first decorator's line)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    import linecache
    n = code.co_firstlineno
    for k in range(n, n + 20):
        if linecache.getline(code.co_filename, k).lstrip().startswith(("def ", "async def ")):
            return (code.co_filename, k)
    return (code.co_filename, n)


# --- threads ----------------------------------------------------------------------------------
class _Thread:
    def __init__(self, kind, fn):
        self.kind, self.fn = kind, fn
        self.__name__ = getattr(fn, "__name__", kind)

    def __call__(self, *args, **kwargs):
        raise CompileError(f"{self.__name__} is a D2M {self.kind} thread: it runs when the kernel "
                           "runs; name it in Program(...) instead of calling it")


def _thread(kind):
    def deco(fn):
        t = _Thread(kind, fn)
        _build(f"@{kind}()").threads.append(t)
        return t
    return deco


def compute():
    """`@compute() async def f(cb0, cb1, ...)`: the compute thread, one buffer per operand."""
    return _thread("compute")


def datamovement():
    """`@datamovement() async def f(cb0, cb1, ...)`: a data-movement thread (at most two)."""
    return _thread("datamovement")


class Program:
    """`return Program(comp, dm)(*operands)`: names the kernel's threads (checked); the
    kernel runs when the @pykernel_gen function is called."""

    def __init__(self, *threads):
        b = _build("Program(...)")
        for t in threads:
            if not (isinstance(t, _Thread) and t in b.threads):
                raise CompileError(f"Program got {getattr(t, '__name__', t)!r}, which is not a "
                                   "@compute() or @datamovement() thread of this kernel")
        b.program = threads

    def __call__(self, *args, **kwargs):
        return None


# --- operands, streams, buffers ---------------------------------------------------------------
class _Operand:
    def __init__(self, index, tensor, is_out):
        self.index, self.tensor, self.is_out = index, tensor, is_out
        self.streamed = False
        self.buf = None
        self.block = None          # block shape in tiles
        self.factors = (1, 1)

    @property
    def name(self):
        return self.buf.name if self.buf is not None else f"operand {self.index}"


class Stream:
    """An operand moved explicitly: `dma(stream[i, j], cb.reserve())` reads block (i, j) of
    the tensor (in units of its buffer's block), `dma(cb.pop(), stream[i, j])` writes it."""

    def __init__(self, tensor):
        b = _build("Stream(...)")
        for op in b.operands:
            if op.tensor is tensor:
                op.streamed = True
                self.op = op
                return
        raise CompileError(f"Stream({type(tensor).__name__}): stream an operand of the kernel "
                           "(one of the tensors the @pykernel_gen function was called with)")

    def __getitem__(self, idx):
        op = self.op
        idx = idx if isinstance(idx, tuple) else (idx,)
        nd = len(op.tensor.device_tensor.tile_shape)
        if len(idx) != nd or not all(isinstance(i, (int, np.integer)) for i in idx):
            raise CompileError(f"index the stream of {op.name} with {nd} integers: block "
                               "coordinates in units of its buffer's block "
                               f"({op.block[0]}x{op.block[1]} tiles)")
        *lead, i, j = (int(v) for v in idx)
        br, bc = op.block
        try:
            return TensorSlice(op.tensor, (*lead, slice(i * br, (i + 1) * br),
                                           slice(j * bc, (j + 1) * bc)))
        except IndexError as e:
            raise CompileError(f"block ({i}, {j}) of the stream of {op.name}: {e} (blocks of "
                               f"{br}x{bc} tiles)") from None


class _D2MBlock(Block):
    """A block handed out by a D2M buffer: pushed once filled, released when done with."""

    def __init__(self, cb, mode):
        e = _env()
        super().__init__(cb._op.buf, mode, e)
        self.d2m = cb
        self.line = e.build.user_line()

    def store(self, expr, acc=False):
        if self.mode == "reserved" and _env().kind != "compute":
            raise CompileError("store runs on the compute thread; data-movement threads fill a "
                               "block with dma(stream[i, j], block)")
        super().store(expr, acc)
        self.d2m._filled(self)

    def push(self, line=None):
        raise CompileError(f"a block of {self.name} is pushed by itself once it is filled (its "
                           "store, or the wait on the dma into it): D2M blocks have no push()")

    def pop(self, line=None):
        raise CompileError(f"a popped block of {self.name} is released by the next {self.name}.pop() "
                           "or at the end of the thread: D2M blocks have no pop()")


class CircularBuffer:
    """One operand's buffer as a D2M thread sees it (the threads' parameters)."""

    def __init__(self, op, state):
        self._op, self._state = op, state
        self.shape = op.block
        self.name = op.buf.name

    def _check(self, what):
        op, kind = self._op, self._state.kind
        if op.streamed:
            return
        if kind == "datamovement":
            raise CompileError(f"{self.name}.{what}() on a data-movement thread: {self.name} holds "
                               f"{'an output' if op.is_out else 'an input'} that is not a Stream, so "
                               "its blocks move by themselves; wrap the tensor in Stream(...) to move "
                               "it with dma")
        if op.is_out and what == "pop":
            raise CompileError(f"{self.name}.pop() on the compute thread: {self.name} holds an output; "
                               "reserve() a block and store into it (it is written back by itself)")
        if not op.is_out and what == "reserve":
            raise CompileError(f"{self.name}.reserve() on the compute thread: {self.name} holds an "
                               "input; pop() its blocks")

    def pop(self):
        """Wait for this buffer's next block and hold it (the previous one is released)."""
        self._check("pop")
        st = self._state
        prev = st.popped.pop(self.name, None)
        if prev is not None:
            self._release(prev, "when {name}.pop() was called again")
        self._op.buf.wait()
        blk = _D2MBlock(self, "waited")
        st.popped[self.name] = blk
        return blk

    def reserve(self):
        """A block to fill: pushed once its store (or the dma into it) is done."""
        self._check("reserve")
        st = self._state
        prev = st.reserved.get(self.name)
        if prev is not None:
            raise CompileError(f"reserves a block of {self.name} while the one reserved at line "
                               f"{prev.line[1] if prev.line else '?'} was never filled: store into it "
                               "(compute) or dma into it and wait (data movement) first")
        self._op.buf.reserve()
        blk = _D2MBlock(self, "reserved")
        st.reserved[self.name] = blk
        return blk

    def _filled(self, blk):
        self._state.reserved.pop(self.name, None)
        Block.push(blk)
        blk.dead = (f"uses a block of {self.name} after it was filled and pushed: a reserved block "
                    "takes one store (or one dma); reserve() another")

    def _release(self, blk, when):
        Block.pop(blk)
        blk.dead = (f"uses a block of {self.name} after it was released "
                    f"({when.format(name=self.name)}): its pages now belong to the next block. "
                    "A buffer holds one popped block at a time; keep what you need in an expression "
                    "stored before the next pop")

    def __repr__(self):
        return f"CircularBuffer({self.name}: {self.shape[0]}x{self.shape[1]} tiles)"


class _State:
    """What one run of one thread holds: popped and reserved blocks per buffer."""

    def __init__(self, kind):
        self.kind = kind
        self.popped: dict = {}
        self.reserved: dict = {}

    def finish(self):
        e = _env()
        if e.pending:
            raise CompileError("this dma is never waited on: call .wait() on the handle dma "
                               "returns", e.pending[0].line)
        for name, blk in self.reserved.items():
            raise CompileError(f"a block of {name} is reserved here and never filled before the "
                               "thread ends: store into it (compute) or dma into it and wait",
                               blk.line)
        for blk in list(self.popped.values()):
            blk.d2m._release(blk, "at the end of the thread")
        self.popped.clear()


class _Tx:
    def __init__(self, handle, blk):
        self.handle, self.blk = handle, blk

    def wait(self):
        self.handle.wait()
        blk = self.blk
        if blk is None or getattr(blk, "dead", None):
            return
        if blk.mode == "reserved":
            blk.d2m._filled(blk)
        else:
            blk.d2m._state.popped.pop(blk.d2m.name, None)
            blk.d2m._release(blk, "when the dma out of it was waited for")


def dma(src, dst):
    """Move a block: dma(stream[i, j], cb.reserve()) or dma(cb.pop(), stream[i, j]); returns
    a transfer to wait() on."""
    if isinstance(src, Stream) or isinstance(dst, Stream):
        raise CompileError("dma takes a block of a stream: index it, stream[i, j]")
    blk = src if isinstance(src, _D2MBlock) else dst if isinstance(dst, _D2MBlock) else None
    if blk is not None and not blk.d2m._op.streamed:
        raise CompileError(f"dma with a block of {blk.name}, whose tensor is not a Stream: its blocks "
                           "move by themselves; wrap the tensor in Stream(...) to move it with dma")
    return _Tx(_copy(src, dst), blk)


def core_index(dim):
    """This core's coordinate along grid dimension `dim`: 0 its row, 1 its column."""
    if dim not in (0, 1):
        raise CompileError(f"core_index({dim!r}): the grid has dimensions 0 (rows) and 1 (columns)")
    if greenlet.getcurrent() not in _envs:
        raise CompileError("core_index() gives the core a thread runs on: call it inside a "
                           "@compute() or @datamovement() function, not in the kernel body")
    x, y = _core(dims=2)
    return y if dim == 0 else x


# --- the kernel -------------------------------------------------------------------------------
class _Build:
    def __init__(self, kern, tensors):
        self.kern = kern
        n = len(tensors)
        self.operands = [_Operand(i, t, i >= n - kern.num_outs) for i, t in enumerate(tensors)]
        self.threads: list = []
        self.program = None


def _implicit_runner(filename, line):
    """A one-line function compiled at the user's kernel line: implicit moves run inside it,
    so their cycles and any error are the kernel's line, not this file's."""
    ns = {}
    exec(compile("\n" * (line - 1) + "def _run(fn, *a): return fn(*a)", filename, "exec"), ns)
    return ns["_run"]


class D2MKernel:
    """A kernel in the seed's D2M style; call it with the operands (ttl tensors or numpy
    arrays; numpy outputs receive the result in place). Returns the run report."""

    def __init__(self, fn, grid, block_factors, num_outs, memory_space, config):
        grid = tuple(grid) if isinstance(grid, (list, tuple)) else (grid,)
        if len(grid) != 2 or not all(isinstance(g, int) and g >= 1 for g in grid):
            raise CompileError(f"grid={grid!r}: give (rows, cols) of cores")
        if memory_space not in ("L1", "DRAM"):
            raise CompileError(f"memory_space={memory_space!r}: use 'L1' or 'DRAM'")
        if not isinstance(num_outs, int) or num_outs < 1:
            raise CompileError(f"num_outs={num_outs!r}: a kernel has at least one output")
        self.fn, self.grid, self.block_factors = fn, tuple(grid), block_factors
        self.num_outs, self.memory_space = num_outs, memory_space
        self.line = _def_line(fn)
        self.ttl_kernel = _Kernel(self._body, (grid[1], grid[0]), **config)
        self.ttl_kernel.__name__ = self.__name__ = getattr(fn, "__name__", "kernel")
        params = inspect.signature(fn).parameters
        self._extra = {k for k in ("block_factors", "grid") if k in params or any(
            p.kind is p.VAR_KEYWORD for p in params.values())}

    def __call__(self, *args):
        if len(args) <= self.num_outs:
            raise CompileError(f"{self.__name__} takes its inputs and {self.num_outs} output(s); got "
                               f"{len(args)} operand(s)")
        sd = host.device().sd
        wx, wy = sd.worker_grid()
        if self.grid[0] > wy or self.grid[1] > wx:
            # checked here, in the kernel's (rows, cols): ttl's own check would name (x, y)
            raise CompileError(f"grid={self.grid} ({self.grid[0]} rows of {self.grid[1]} cores) does "
                               f"not fit the {wy}x{wx} (rows x cols) worker grid of {sd.name}",
                               self.line)
        mem = host.L1_MEMORY_CONFIG if self.memory_space == "L1" else host.DRAM_MEMORY_CONFIG
        tensors, back = [], []
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                tensors.append(a)
            elif isinstance(a, np.ndarray):
                t = host.from_numpy(a, memory_config=mem)
                tensors.append(t)
                if i >= len(args) - self.num_outs:
                    back.append((a, t))
            else:
                raise CompileError(f"operand {i} of {self.__name__} is a {type(a).__name__}: pass "
                                   "ttl tensors or numpy arrays")
        rep = self.ttl_kernel(*tensors)
        for a, t in back:
            a[...] = t.to_numpy()
        return rep

    def show(self):
        return self.ttl_kernel.show()

    @property
    def last_report(self):
        return self.ttl_kernel.last_report

    # runs as the ttl kernel's body
    def _body(self, *tensors):
        b = _Build(self, tensors)
        _stack.append(b)
        try:
            extra = {"block_factors": self.block_factors, "grid": self.grid}
            self.fn(*tensors, **{k: v for k, v in extra.items() if k in self._extra})
        finally:
            _stack.pop()
        self._finish(b)

    def _blocks(self, b):
        n = len(b.operands)
        bfs = self.block_factors or [(1, 1)] * n
        if len(bfs) != n:
            raise CompileError(f"block_factors has {len(bfs)} entries for {n} operands: give one "
                               "(rows, cols) per operand", self.line)
        gy, gx = self.grid
        for op, bf in zip(b.operands, bfs):
            tiles = op.tensor.device_tensor.tile_shape
            if len(tiles) != 2 and not op.streamed:
                raise CompileError(f"operand {op.index} has {len(tiles)} dimensions: an operand "
                                   "held in L1 is 2-d; wrap it in Stream(...) and move its blocks "
                                   "with dma", self.line)
            r, c = tiles[-2:]
            bf = tuple(bf)
            if len(bf) != 2 or min(bf) < 1:
                raise CompileError(f"block_factors[{op.index}] = {bf}: give (rows, cols), each >= 1",
                                   self.line)
            if op.streamed:
                whole, what = (r, c), "the tensor"
            else:
                if r % gy or c % gx:
                    raise CompileError(f"operand {op.index} is {r}x{c} tiles, which does not split "
                                       f"evenly over the {gy}x{gx} grid: wrap it in Stream(...) and "
                                       "move its blocks with dma, or change the grid", self.line)
                whole, what = (r // gy, c // gx), "its shard on each core"
            if whole[0] % bf[0] or whole[1] % bf[1]:
                raise CompileError(f"block_factors[{op.index}] = {bf} does not divide {what} "
                                   f"({whole[0]}x{whole[1]} tiles)", self.line)
            op.factors = bf
            op.shard = whole
            op.block = (whole[0] // bf[0], whole[1] // bf[1])

    def _finish(self, b):
        self._blocks(b)
        comp = [t for t in b.threads if t.kind == "compute"]
        dms = [t for t in b.threads if t.kind == "datamovement"]
        if len(comp) > 1 or len(dms) > 2:
            raise CompileError(f"{self.__name__} defines {len(comp)} compute and {len(dms)} "
                               "data-movement threads; a core runs at most one and two", self.line)
        n = len(b.operands)
        for t in b.threads:
            try:
                inspect.signature(t.fn).bind(*range(n))
            except TypeError:
                raise CompileError(f"{t.__name__} must take {n} parameters, one CircularBuffer per "
                                   f"operand of {self.__name__}, in order", _def_line(t.fn)) from None
        named = comp[0] if comp else (dms[0] if dms else None)
        names = list(inspect.signature(named.fn).parameters)[:n] if named else []
        names += [f"cb{i}" for i in range(len(names), n)]
        for op, name in zip(b.operands, names):
            factor = 2 if op.streamed else op.factors[0] * op.factors[1]
            op.buf = _make_buffer(op.tensor, shape=op.block, buffer_factor=factor)
            op.buf.name, op.buf.line = name, self.line
        reads = [op for op in b.operands if not op.streamed and not op.is_out]
        writes = [op for op in b.operands if not op.streamed and op.is_out]
        run = _implicit_runner(*self.line) if self.line else (lambda fn, *a: fn(*a))
        ops = b.operands

        def make(kind, thread, pre=(), post=()):
            def body():
                if pre:
                    run(_moves, pre, "read")
                if thread is not None:
                    st = _State(kind)
                    _drive(thread, [CircularBuffer(op, st) for op in ops])
                    st.finish()
                if post:
                    run(_moves, post, "write")
            body.__name__ = thread.__name__ if thread is not None else f"implicit_{kind}"
            return body

        if comp:
            _ttl_compute()(make("compute", comp[0]))
        if len(dms) == 0:
            threads = [make("datamovement", None, pre=reads)] if reads else []
            if writes:
                threads.append(make("datamovement", None, post=writes))
        elif len(dms) == 1:
            threads = [make("datamovement", dms[0], pre=reads)]
            if writes:
                threads.append(make("datamovement", None, post=writes))
        else:
            threads = [make("datamovement", dms[0], pre=reads),
                       make("datamovement", dms[1], post=writes)]
        for t in threads:
            _ttl_datamovement()(t)


def _moves(ops, direction):
    """The implicit movement of operands held in L1: this core's shard, block by block."""
    x, y = _core(dims=2)
    for op in ops:
        (sr, sc), (br, bc) = op.shard, op.block
        for bi in range(op.factors[0]):
            for bj in range(op.factors[1]):
                r0, c0 = y * sr + bi * br, x * sc + bj * bc
                sl = op.tensor[r0:r0 + br, c0:c0 + bc]
                if direction == "read":
                    with op.buf.reserve() as blk:
                        _copy(sl, blk).wait()
                else:
                    with op.buf.wait() as blk:
                        _copy(blk, sl).wait()


def _drive(thread, cbs):
    r = thread.fn(*cbs)
    if inspect.iscoroutine(r):
        try:
            r.send(None)
        except StopIteration:
            return
        r.close()
        raise CompileError(f"{thread.__name__} awaits something: D2M threads here run straight "
                           "through (wait on a transfer with tx.wait(), not await)",
                           _def_line(thread.fn))


def pykernel_gen(grid=(1, 1), block_factors=None, num_outs=1, memory_space="L1", tiled=True,
                 **config):
    """Decorator for a D2M-style kernel: `@pykernel_gen(grid=(rows, cols), block_factors=[...])`.

    `block_factors`: per operand, (rows, cols) blocks its shard (or, for a Stream, the whole
    tensor) is cut into; default one block. `num_outs`: how many of the last operands are
    outputs. `memory_space`: where numpy operands are placed ("L1" or "DRAM"). Other keywords
    (math_fidelity, fp32_dest_acc_en, ...) are ttl.kernel's."""
    if not tiled:
        raise CompileError("tiled=False: only tiled tensors exist here (32x32 tiles)")

    def deco(fn):
        return D2MKernel(fn, grid, block_factors, num_outs, memory_space, config)
    return deco
