"""`@ttl.kernel`: build a program from a ttlang kernel, compile its statements, run it."""
from __future__ import annotations

import inspect
import os
import traceback

import numpy as np

import ttsim
from ttsim.errors import KernelError, SpinError, TTSimError
from ttsim.thread import register_api_file
from ttsim.watchdog import Watchdog
from ttsim import formats

from . import tensor as host
from .errors import CompileError, user_line
from .expr import APPROX_MODES
from .lower import Compiler
from .runtime import CALLS as runtime_calls, DataflowBuffer, ThreadEnv

_HERE = os.path.dirname(os.path.abspath(__file__))
_SKIP = {os.path.join(_HERE, f) for f in ("runtime.py", "kernel.py", "expr.py", "math.py",
                                          "lower.py", "tensor.py", "errors.py", "__init__.py",
                                          "pipe.py", "semaphore.py", "d2m.py", "d2m_api.py")}
for _f in _SKIP:
    register_api_file(_f)
_TTSIM_DIR = os.path.dirname(os.path.abspath(ttsim.__file__)) + os.sep

_building = []   # the Build being defined (outer kernel function running)
build_hooks = []  # called with each finished Build (`ttlang show` prints it)


def _current_build():
    if not _building:
        raise CompileError("this call belongs inside a @ttl.kernel function")
    return _building[-1]


class Build:
    """One call of a kernel: its buffers, threads, compiler and program."""

    def __init__(self, kernel, grid, dev):
        self.kernel, self.grid, self.dev = kernel, grid, dev
        self.buffers: list[DataflowBuffer] = []
        self.pipes: list = []
        self.semaphores: list = []
        self.scratch_sems: dict = {}
        self.threads: list[tuple] = []       # (kind, fn, options)
        self.compiler = None
        self.gen_files: dict = {}
        self.skip = set(_SKIP)               # frames user_line steps over: these and gen_files

    def user_line(self):
        return user_line(self.skip)

    def lower(self, expr, cb, shape, acc):
        try:
            low = self.compiler.lower_store(expr, cb, shape, acc)
        except CompileError as e:
            raise e.locate(self.user_line())
        if getattr(low, "fn", None) is None:
            fname = f"<ttlang {low.fn_name}>"
            ns = {"_plans": low.plans}
            exec(compile(low.source, fname, "exec"), ns)
            low.fn = ns[low.fn_name]
            low.file = fname
            low.user_line = self.user_line()
            import linecache
            linecache.cache[fname] = (len(low.source), None, low.source.splitlines(True), fname)
            register_api_file(fname)
            self.gen_files[fname] = low
            self.skip.add(fname)
        return low


def _whole(v):
    """An integer (a numpy one will do), not a bool or a float."""
    return v.__class__ is not bool and isinstance(v, (int, np.integer))


def make_dataflow_buffer_like(like, shape=(1, 1), buffer_factor=2, dtype=None):
    """A buffer of `buffer_factor` blocks of `shape` tiles, in the format of `like`."""
    b = _current_build()
    line = b.user_line()
    fmt = formats.parse_format(dtype or (like.dtype if like is not None else "bf16"))
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if len(shape) != 2 or not all(_whole(v) and v >= 1 for v in shape):
        raise CompileError(f"buffer shape {shape} must be two positive tile counts (whole "
                           "numbers)", line)
    shape = tuple(int(v) for v in shape)
    if isinstance(buffer_factor, bool) or not isinstance(buffer_factor, int) or buffer_factor < 1:
        raise CompileError(f"buffer_factor must be a whole number >= 1 (blocks in the buffer), "
                           f"got {buffer_factor!r}", line)
    text = open(line[0]).read().splitlines()[line[1] - 1] if line and os.path.exists(line[0]) else ""
    name = text.split("=")[0].strip() if "=" in text else f"buffer {len(b.buffers)}"
    buf = DataflowBuffer(b, len(b.buffers), shape, buffer_factor, fmt, name, line)
    b.buffers.append(buf)
    return buf


make_circular_buffer_like = make_dataflow_buffer_like


def _check_thread_fn(kind, fn):
    """A thread is a plain function of no arguments: a generator or coroutine function
    would return at once without running its body (an empty thread, silently), and one
    with parameters fails when the core calls it."""
    code = getattr(fn, "__code__", None)
    line = (code.co_filename, code.co_firstlineno) if code is not None else None
    name = getattr(fn, "__name__", repr(fn))
    if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn) \
            or inspect.isasyncgenfunction(fn):
        what = "a generator" if inspect.isgeneratorfunction(fn) else "an async"
        raise CompileError(f"@ttl.{kind}() thread {name} is {what} function: calling it would "
                           "not run its body. A thread is a plain def that runs straight through "
                           "(reserve, wait and copy(...).wait() block by themselves)", line)
    try:
        inspect.signature(fn).bind()
    except TypeError:
        raise CompileError(f"@ttl.{kind}() thread {name}{inspect.signature(fn)} takes arguments: "
                           "a thread is called with none (it sees the kernel's tensors and "
                           "buffers through its closure)", line) from None
    except ValueError:
        pass


def _thread_decorator(kind, **opts):
    def deco(fn):
        _check_thread_fn(kind, fn)
        b = _current_build()
        b.threads.append((kind, fn, opts))
        return fn
    return deco


def datamovement(**opts):
    return _thread_decorator("datamovement", **opts)


def compute(math_fidelity=None, fp32_dest_acc_en=None, dst_full_sync_en=None, math_approx_mode=None):
    return _thread_decorator("compute", math_fidelity=math_fidelity,
                             fp32_dest_acc_en=fp32_dest_acc_en, dst_full_sync_en=dst_full_sync_en,
                             math_approx_mode=math_approx_mode)


def sfpu_modes(math_approx_mode=False, exp_approx=None):
    """The mode each multi-mode SFPU op runs in when a statement does not name one:
    tt-metal's math_approx_mode sets them all (exp: the fast form), `exp_approx` overrides
    exp alone (True or "fast", "approx", False or "accurate")."""
    modes = {op: m[bool(math_approx_mode)] for op, m in APPROX_MODES.items()}
    if exp_approx is not None:
        if exp_approx not in APPROX_MODES["exp"]:
            raise CompileError(f"exp_approx={exp_approx!r}: use one of "
                               f"{', '.join(repr(k) for k in APPROX_MODES['exp'])}")
        modes["exp"] = APPROX_MODES["exp"][exp_approx]
    return modes


class Kernel:
    def __init__(self, fn, grid, math_fidelity="HiFi4", fp32_dest_acc_en=False,
                 dst_full_sync_en=False, math_approx_mode=False, exp_approx=None):
        self.fn, self.grid_spec = fn, grid
        self.config = dict(math_fidelity=math_fidelity, fp32_dest_acc_en=fp32_dest_acc_en,
                           dst_full_sync_en=dst_full_sync_en, math_approx_mode=math_approx_mode)
        self.exp_approx = exp_approx
        sfpu_modes(math_approx_mode, exp_approx)      # refuse a bad value at decoration
        try:
            ttsim.numerics.parse_fidelity(math_fidelity)
        except ttsim.TTSimError as e:
            raise CompileError(f"kernel {getattr(fn, '__name__', '?')}: {e.message}") from None
        self.last_build = None
        self.last_report = None
        self.__name__ = getattr(fn, "__name__", "kernel")

    def _grid(self, dev):
        g = self.grid_spec
        if g is None or g == "auto":
            return dev.sd.worker_grid()
        full = dev.sd.worker_grid()
        if isinstance(g, str) or not isinstance(g, (tuple, list)) or len(g) != 2 \
                or not all(_whole(v) for v in g):
            raise CompileError(f"grid={g!r}: a grid is two whole numbers of cores (x, y), or "
                               f"\"auto\" for the {full[0]}x{full[1]} worker grid of {dev.sd.name}")
        g = tuple(int(v) for v in g)
        if not (1 <= g[0] <= full[0] and 1 <= g[1] <= full[1]):
            raise CompileError(f"grid {g} does not fit the {full[0]}x{full[1]} worker grid of "
                               f"{dev.sd.name}")
        return g

    def build(self, *args, **kwargs):
        dev = host.device()
        for i, a in enumerate(list(args) + list(kwargs.values())):
            if isinstance(a, host.Tensor) and a._t.device is not dev:
                what = f"argument {i}" if i < len(args) else f"argument {list(kwargs)[i - len(args)]}"
                raise CompileError(f"kernel {self.__name__}: {what} ({a!r}) lives on another device "
                                   f"than the one kernels run on now ({dev.sd.name}): ttl.set_device "
                                   "(or ttnn.open_device) made a new device since the tensor was "
                                   "made, and its address there holds other data. Make the "
                                   "tensor after choosing the device")
        b = Build(self, self._grid(dev), dev)
        _building.append(b)
        try:
            self.fn(*args, **kwargs)
        except CompileError as e:      # a misuse in the kernel body: point at its line
            raise e.locate(_innermost_user_line(e.__traceback__, b))
        finally:
            _building.pop()
        dm = [t for t in b.threads if t[0] == "datamovement"]
        cp = [t for t in b.threads if t[0] == "compute"]
        if len(dm) > 2 or len(cp) > 1:
            raise CompileError(f"kernel {self.__name__} defines {len(dm)} data-movement and {len(cp)} "
                               "compute threads; a core runs at most two and one")
        cfg = dict(self.config)
        if cp:
            cfg.update({k: v for k, v in cp[0][2].items() if v is not None})
        b.cfg = cfg
        nb = len(b.buffers)
        max_cbs = dev.sd.max_cbs
        if nb + 1 > max_cbs:
            raise CompileError(f"{nb} buffers: a core has {max_cbs} CBs", b.buffers[-1].line)
        dst = dev.sd.dst_tiles(bool(cfg["fp32_dest_acc_en"]), bool(cfg["dst_full_sync_en"]))
        b.compiler = Compiler(dst, scaler_cb=nb, spill_base=nb + 1, max_cbs=max_cbs,
                              modes=sfpu_modes(cfg["math_approx_mode"], self.exp_approx))
        cores = [(x, y) for y in range(b.grid[1]) for x in range(b.grid[0])]
        if cp:   # dry run on every core: compiles every statement and sizes the spill buffers
            for c in cores:
                dog = Watchdog(lambda: runtime_calls[0])
                with ThreadEnv(b, "compute", c):
                    try:
                        try:
                            with dog:
                                self._call(cp[0][1], b)
                        except KeyboardInterrupt as e:
                            if not dog.fired:
                                raise
                            raise SpinError(
                                f"the compute thread {getattr(cp[0][1], '__name__', '?')} has run "
                                f"{dog.limit:g} s of wall time in ttlang's build without a ttlang "
                                "call (the build runs it once per core to compile its "
                                "statements): a Python loop that makes none cannot end; end it, "
                                "or loop over ttlang calls (TTSIM_SPIN_SECONDS sets the limit)",
                                core=c, thread="compute",
                                line=_innermost_user_line(e.__traceback__, b)) from None
                    except (CompileError, TTSimError):
                        raise
                    except (Exception, SystemExit, GeneratorExit) as e:   # the thread's own bug
                        fn = cp[0][1]
                        raise KernelError(f"{type(e).__name__} in kernel "
                                          f"{getattr(fn, '__name__', '?')}: {e}", core=c,
                                          thread="compute",
                                          line=_innermost_user_line(e.__traceback__, b)) from e
        b.dm, b.cp, b.cores = dm, cp, cores
        self._check_l1(b)
        for hook in build_hooks:
            hook(b)
        return b

    @staticmethod
    def _call(fn, b):
        try:
            fn()
        except CompileError as e:
            raise e.locate(_innermost_user_line(e.__traceback__, b))

    def _check_l1(self, b):
        sd = b.dev.sd
        free = sd.l1_size - sd.l1_reserved
        total, acc = 0, []
        spill_fmt = formats.parse_format("fp32" if b.cfg["fp32_dest_acc_en"] else "bf16")
        for buf in b.buffers:
            size = buf.tiles * buf.factor * buf.dtype.tile_bytes
            total += size
            acc.append(f"{buf.name}: {size} B")
            if total > free:
                raise CompileError(f"buffers need {total} bytes of L1 but a core has {free} free "
                                   f"({'; '.join(acc)}): use smaller blocks or a lower buffer_factor",
                                   buf.line)
        spills = sum(p * spill_fmt.tile_bytes for p in b.compiler.spill_pages)
        if total + spills > free:
            raise CompileError(f"buffers ({total} B) and the compiler's intermediate buffers "
                               f"({spills} B) need more than the {free} B of L1 a core has: use "
                               "smaller blocks or split statements", b.buffers[0].line if b.buffers else None)

    def program(self, b):
        dev = b.dev
        prog = ttsim.Program(dev)
        cores = b.cores
        for buf in b.buffers:
            prog.circular_buffer(cores, buf.cb, buf.dtype, buf.tiles * buf.factor)
        for pipe in b.pipes:
            pipe.sems = (prog.semaphore(cores, 0), prog.semaphore(cores, 0))
        for sem in b.semaphores:
            sem.id = prog.semaphore(cores, sem.initial)
        if b.semaphores:
            b.scratch_sems = {kind: prog.semaphore(cores, 0) for kind in ("reader", "writer")}
        comp = b.compiler
        spill_fmt = "fp32" if b.cfg["fp32_dest_acc_en"] else "bf16"
        if comp.uses_scaler:
            prog.circular_buffer(cores, comp.scaler_cb, "bf16", 1)
        for s, pages in enumerate(comp.spill_pages):
            prog.circular_buffer(cores, comp.spill_base + s, spill_fmt, pages)
        # the first data-movement thread (by convention the one that reads) gets the NoC this
        # chip prefers for DRAM reads, the second the other one (ttsim.program.dram_nocs)
        rd, wr = ttsim.program.dram_nocs(dev.sd)
        for (kind, fn, _), add, noc in zip(b.dm, (prog.reader, prog.writer), (rd, wr)):
            add(cores, _dm_kernel(b, fn), noc=noc)
        if b.cp:
            prog.compute(cores, _compute_kernel(b, b.cp[0][1]), **b.cfg)
        return prog

    def __call__(self, *args, **kwargs):
        b = self.build(*args, **kwargs)
        self.last_build = b
        try:
            rep = b.dev.run(self.program(b))
        except KernelError as e:
            if isinstance(e.__cause__, CompileError):
                raise e.__cause__ from None
            raise
        self.last_report = rep
        return rep

    def numerics(self):
        """What the last run did to its numbers (DST mode, fidelity, SFPU ops and modes, each
        op's relative error); ttlang.testing.assert_close(..., kernel=k) bounds by it."""
        from .testing import numeric_path
        return numeric_path(self)

    def show(self, *args, **kwargs):
        """The low-level code each compute statement became, under its source line."""
        b = self.last_build if not args else self.build(*args, **kwargs)
        if b is None:
            raise ValueError("call the kernel (or pass its arguments to show) first")
        return render(b)


def render(b):
    out = [f"# kernel {b.kernel.__name__} on a {b.grid[0]}x{b.grid[1]} grid of {b.dev.sd.name}",
           f"# buffers: " + ", ".join(f"{x.name} = cb {x.cb} ({x.shape[0]}x{x.shape[1]} tiles x "
                                      f"{x.factor}, {x.dtype.value})" for x in b.buffers)]
    comp = b.compiler
    if comp.uses_scaler:
        out.append(f"# cb {comp.scaler_cb}: reduction scaler (one tile of 1.0, made by the compute thread)")
    for s, p in enumerate(comp.spill_pages):
        out.append(f"# cb {comp.spill_base + s}: compiler intermediate, {p} tiles")
    import linecache
    for low in b.gen_files.values():
        f, n = low.user_line
        out.append(f"\n# {os.path.relpath(f)}:{n}: {linecache.getline(f, n).strip()}")
        out.append(low.source.rstrip())
    return "\n".join(out)


def _innermost_user_line(tb, b):
    frames = [fr for fr in traceback.extract_tb(tb) if fr.filename not in _SKIP
              and fr.filename not in b.gen_files and not fr.filename.startswith(_TTSIM_DIR)]
    return (frames[-1].filename, frames[-1].lineno) if frames else None


def _dm_kernel(b, fn):
    def kernel(k):
        with ThreadEnv(b, "datamovement", k.core, k) as e:
            Kernel._call(fn, b)
            if e.pending:
                h = e.pending[0]
                raise CompileError("this copy is never waited on: call .wait() on the handle "
                                   "ttl.copy returns", h.line)
    kernel.__name__ = fn.__name__
    return kernel


def _compute_kernel(b, fn):
    comp = b.compiler

    def kernel(k):
        if comp.uses_scaler:
            k.cb_reserve_back(comp.scaler_cb, 1)
            k.tile_regs_acquire()
            k.fill_tile(0, 1.0)
            k.tile_regs_commit()
            k.tile_regs_wait()
            k.pack_tile(0, comp.scaler_cb)
            k.tile_regs_release()
            k.cb_push_back(comp.scaler_cb, 1)
            k.cb_wait_front(comp.scaler_cb, 1)
        with ThreadEnv(b, "compute", k.core, k):
            Kernel._call(fn, b)
    kernel.__name__ = fn.__name__
    return kernel


class Program:
    """TT-Lang's `return ttl.Program(compute, dm0, dm1)(*args)` at the end of a kernel body.

    ttlang already knows a kernel's threads from their decorators, so this only checks that
    the functions named are among them; calling it does nothing (the kernel call runs)."""

    def __init__(self, *threads):
        b = _current_build()
        known = {fn for _, fn, _ in b.threads}
        for fn in threads:
            if fn not in known:
                raise CompileError(f"ttl.Program got {getattr(fn, '__name__', fn)!r}, which is not "
                                   "a @ttl.compute() or @ttl.datamovement() thread of this kernel",
                                   b.user_line())

    def __call__(self, *args, **kwargs):
        return None


def kernel(grid=None, **config):
    """Decorator: `@ttl.kernel(grid=(8, 8))` (or grid="auto" for the whole worker grid)."""
    if callable(grid) and not config:      # @ttl.kernel without parentheses: the auto grid
        return Kernel(grid, None)

    def deco(fn):
        return Kernel(fn, grid, **config)
    return deco
