"""Host-side program description, after TT-Metalium's host API.

A Program collects circular buffers, semaphores and kernels on ranges of logical cores;
`Device.run(program)` simulates it.
"""
from __future__ import annotations

import inspect

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import formats
from .compute import ComputeConfig
from .errors import CBError, TTSimError


def _whole(v):
    """`v` as an int if it is a whole number (a Python or numpy integer, not a bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        return None
    return int(v)


def dram_nocs(sd):
    """(NoC for DRAM reads, NoC for DRAM writes) that kernels should use on this chip
    (tt-metal's GetPreferredNOCForDRAMRead/Write): the one whose routes leave a DRAM
    column along rows, so many cores' traffic does not pile onto one column's links."""
    f = sd.figures
    nocs = (int(f["noc.dram_read_noc"].value) if "noc.dram_read_noc" in f else 0,
            int(f["noc.dram_write_noc"].value) if "noc.dram_write_noc" in f else 1 % sd.num_nocs)
    for key, n in zip(("noc.dram_read_noc", "noc.dram_write_noc"), nocs):
        if not 0 <= n < sd.num_nocs:
            raise TTSimError(f"{sd.path}: {key} is {n}, but the chip has {sd.num_nocs} NoC(s)")
    return nocs


@dataclass(frozen=True)
class CoreRange:
    """Logical worker cores (x0..x1, y0..y1), inclusive."""
    start: tuple[int, int]
    end: tuple[int, int]

    def cores(self):
        (x0, y0), (x1, y1) = self.start, self.end
        return [(x, y) for y in range(min(y0, y1), max(y0, y1) + 1)
                for x in range(min(x0, x1), max(x0, x1) + 1)]


def as_cores(spec, grid) -> list[tuple[int, int]]:
    """Accept a core, a list of cores, a CoreRange, a (w, h) grid shape via `grid=`, or "all"."""
    if isinstance(spec, str) and spec == "all":
        return CoreRange((0, 0), (grid[0] - 1, grid[1] - 1)).cores()
    if isinstance(spec, CoreRange):
        # the corners first: a range far off the grid would otherwise be listed core by
        # core before any of them is refused (10**9 a side ran the host out of memory)
        for c in (spec.start, spec.end):
            if not (isinstance(c, (tuple, list)) and len(c) == 2 and all(_whole(v) is not None for v in c)):
                raise TTSimError(f"cores {spec!r}: a CoreRange's start and end are cores (x, y) of "
                                 "whole numbers")
            if not (0 <= c[0] < grid[0] and 0 <= c[1] < grid[1]):
                raise TTSimError(f"core ({c[0]},{c[1]}) of {spec!r} is outside the {grid[0]}x{grid[1]} "
                                 "worker grid")
        cores = spec.cores()
    elif isinstance(spec, tuple) and len(spec) == 2 and all(_whole(v) is not None for v in spec):
        cores = [(int(spec[0]), int(spec[1]))]
    else:
        cores = None
        if not isinstance(spec, (str, bytes, dict)):
            try:
                cores = [tuple(c) for c in spec]
            except TypeError:
                pass
        if cores is None or any(len(c) != 2 or _whole(c[0]) is None or _whole(c[1]) is None
                                for c in cores):
            raise TTSimError(f"cores {spec!r}: give a core (x, y) of whole numbers, a list of "
                             "them, a CoreRange or \"all\"")
        cores = [(int(c[0]), int(c[1])) for c in cores]
    for c in cores:
        if not (0 <= c[0] < grid[0] and 0 <= c[1] < grid[1]):
            raise TTSimError(f"core ({c[0]},{c[1]}) is outside the {grid[0]}x{grid[1]} worker grid")
    return cores


def _check_kernel_fn(kind, fn):
    """A kernel is a plain function of one argument, the kernel context: a generator or
    coroutine function would return at once without running its body (a silently empty
    kernel), and a signature that cannot take one argument fails inside the simulator."""
    name = getattr(fn, "__name__", repr(fn))
    if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn) \
            or inspect.isasyncgenfunction(fn):
        what = "a generator" if inspect.isgeneratorfunction(fn) else "an async"
        raise TTSimError(f"{kind} kernel {name} is {what} function: calling it would not run its "
                         "body. A ttsim kernel is a plain function of the kernel context k "
                         "(no yield, no async/await: blocking calls such as cb_wait_front block)")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):      # builtins and the like: let them be
        return
    try:
        sig.bind(object())
    except TypeError:
        raise TTSimError(f"{kind} kernel {name}{sig} cannot be called with the kernel context "
                         "alone: a kernel takes one argument, k (its arguments come from "
                         "k.get_arg_val(i))") from None


def _check_args(kind, fn, args, what):
    """Runtime (or compile-time) args: a list or tuple of values, or (runtime args) a
    function of the core giving one."""
    if args is None or callable(args) and what == "args":
        return args
    if isinstance(args, (str, bytes, dict)) or not hasattr(args, "__iter__"):
        raise TTSimError(f"{kind} kernel {getattr(fn, '__name__', '?')}: {what} must be a list "
                         f"of values" + (" (or a function of the core giving one)"
                                         if what == "args" else "") + f", got {args!r:.60}")
    return list(args)


@dataclass
class CBSpec:
    index: int
    fmt: formats.DataFormat
    num_pages: int
    page_size: int


@dataclass
class KernelSpec:
    kind: str                       # "reader", "writer" or "compute"
    fn: Callable
    cores: list
    args: object                    # list, or callable(core) -> list
    compile_args: list
    noc: int = 0
    config: ComputeConfig | None = None
    per_core_args: dict = field(default_factory=dict)
    name: str = ""

    def args_for(self, core):
        if core in self.per_core_args:
            return self.per_core_args[core]
        return self.args(core) if callable(self.args) else list(self.args)


class Program:
    def __init__(self, device):
        self.device = device
        self.grid = device.sd.worker_grid()
        self.cbs: dict[tuple, dict[int, CBSpec]] = {}
        self.semaphores: dict[tuple, list[int]] = {}
        self.kernels: list[KernelSpec] = []

    def circular_buffer(self, cores, index, dtype="bf16", num_pages=2, page_size=None):
        """CreateCircularBuffer: `num_pages` pages of `page_size` bytes (default: one tile)."""
        fmt = formats.parse_format(dtype)
        n_cbs = self.device.sd.max_cbs
        if _whole(index) is None or not 0 <= index < n_cbs:
            raise CBError(f"cb index {index!r} out of range: a core has {n_cbs} CBs "
                          f"(0..{n_cbs - 1})")
        index = _whole(index)
        pages = _whole(num_pages)
        if pages is None or pages < 1:
            raise CBError(f"cb {index}: num_pages must be a whole number >= 1, got {num_pages!r}",
                          cb=index)
        size = fmt.tile_bytes if page_size is None else _whole(page_size)
        l1 = self.device.sd.l1_size
        if size is None or not 1 <= size <= l1:
            raise CBError(f"cb {index}: page_size must be a whole number of bytes in [1, {l1}] "
                          f"(the L1 of a core), got {page_size!r}", cb=index)
        spec = CBSpec(index, fmt, pages, size)
        for c in as_cores(cores, self.grid):
            cbs = self.cbs.setdefault(c, {})
            if index in cbs:
                raise TTSimError(f"cb {index} is created twice on core ({c[0]},{c[1]})")
            cbs[index] = spec
        return index

    def semaphore(self, cores, initial=0):
        """CreateSemaphore: returns the id to pass to `get_semaphore` in kernels. A semaphore
        is a 32-bit word: its initial value is a whole number in [0, 2**32 - 1]."""
        v = _whole(initial)
        if v is None or not 0 <= v < 1 << 32:
            raise TTSimError(f"semaphore initial value {initial!r}: a semaphore is an unsigned "
                             f"32-bit word, so it must be a whole number in [0, {(1 << 32) - 1}]")
        initial = v
        ids = set()
        for c in as_cores(cores, self.grid):
            lst = self.semaphores.setdefault(c, [])
            ids.add(len(lst))
            lst.append(int(initial))
        if len(ids) != 1:
            raise TTSimError("semaphore ids differ across the core range: create semaphores on the "
                             "same cores in the same order")
        return ids.pop()

    def _kernel(self, kind, cores, fn, args, compile_args, **kw):
        if not callable(fn):
            raise TTSimError(f"{kind} kernel must be a function taking the kernel context, got {fn!r}")
        _check_kernel_fn(kind, fn)
        args = _check_args(kind, fn, args, "args")
        if compile_args is not None:
            compile_args = _check_args(kind, fn, compile_args, "compile_args")
        cs = as_cores(cores, self.grid)
        if "noc" in kw:
            n, nocs = _whole(kw["noc"]), self.device.sd.num_nocs
            if n is None or not 0 <= n < nocs:
                raise TTSimError(f"{kind} kernel on NoC {kw['noc']!r}: {self.device.sd.name} has "
                                 f"NoC 0..{nocs - 1}")
            kw["noc"] = n
        for k in self.kernels:
            if k.kind == kind and set(k.cores) & set(cs):
                both = sorted(set(k.cores) & set(cs))[0]
                raise TTSimError(f"core ({both[0]},{both[1]}) gets two {kind} kernels "
                                 f"({k.name} and {getattr(fn, '__name__', '?')})")
        spec = KernelSpec(kind, fn, cs, args if args is not None else [], list(compile_args or []),
                          name=getattr(fn, "__name__", kind), **kw)
        self.kernels.append(spec)
        return spec

    def reader(self, cores, fn, args=None, compile_args=None, noc=1):
        """Data-movement kernel on RISCV_1 (NCRISC); by default on NoC 1, as tt-metal's readers."""
        return self._kernel("reader", cores, fn, args, compile_args, noc=noc)

    def writer(self, cores, fn, args=None, compile_args=None, noc=0):
        """Data-movement kernel on RISCV_0 (BRISC); by default on NoC 0."""
        return self._kernel("writer", cores, fn, args, compile_args, noc=noc)

    def compute(self, cores, fn, args=None, compile_args=None, math_fidelity="HiFi4",
                fp32_dest_acc_en=False, dst_full_sync_en=False, unpack_to_dest_fp32=None, fused=True,
                math_approx_mode=False):
        """A compute kernel: UNPACK, MATH and PACK each do their share of every call.

        With `fused` (the default) ttsim runs the kernel once and hands each call to the
        roles that act on it, in program order (compute.FusedCompute); fused=False runs
        three copies, one per role, as the hardware does: slower to simulate, same timing,
        needed only by kernels that branch on `k.role` or make a role wait for a sibling's
        later call. `math_approx_mode` is tt-metal's: SFPU ops run their approximate modes
        unless a call names its mode (exp: the fast form)."""
        cfg = ComputeConfig(math_fidelity, fp32_dest_acc_en, dst_full_sync_en, unpack_to_dest_fp32,
                            fused, math_approx_mode)
        return self._kernel("compute", cores, fn, args, compile_args, config=cfg)

    def set_runtime_args(self, kernel: KernelSpec, core, args):
        if not isinstance(kernel, KernelSpec):
            raise TTSimError(f"set_runtime_args takes the kernel Program.reader/writer/compute "
                             f"returned, got {kernel!r:.60}")
        args = _check_args(kernel.kind, kernel.fn, args, "args")
        if callable(args):
            raise TTSimError(f"set_runtime_args of kernel {kernel.name}: args for one core are "
                             "a list, not a function")
        core = as_cores(core, self.grid)
        if len(core) != 1:
            raise TTSimError(f"set_runtime_args of kernel {kernel.name}: one core at a time, got "
                             f"{len(core)}")
        core = core[0]
        if core not in kernel.cores:
            raise TTSimError(f"kernel {kernel.name} does not run on core ({core[0]},{core[1]})")
        kernel.per_core_args[core] = list(args)
