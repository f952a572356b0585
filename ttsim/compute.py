"""The compute kernel API, whose every call is shared by UNPACK, MATH and PACK.

As on the hardware, one compute kernel source runs on the three compute RISCs; each call
does that thread's share (ttsim runs the source once and hands each call to the threads
that act on it, FusedCompute, or, with fused=False, three times). `matmul_tiles` unpacks both operands on UNPACK (waiting for the
source registers to be free), multiplies on MATH (waiting for the operands), and is a no-op
on PACK. UNPACK hands operands to MATH through a two-deep source-register FIFO; MATH and
PACK share DST through tile_regs_acquire/commit/wait/release, half of DST each in the
default half-sync mode. Values are computed on MATH, where the hardware computes them.
"""
from __future__ import annotations

import numpy as np

from . import formats, group, numerics, sfpu
from .errors import ArgumentError, DstOverflowError, TTSimError
from .dataflow import KernelContext, as_int
from .thread import caller_line

_FP32, _BF16 = formats.DataFormat.FP32, formats.DataFormat.BF16
_BINARY_MATH_COST = {"add": "cost.math.eltwise_add", "sub": "cost.math.eltwise_sub",
                     "mul": "cost.math.eltwise_mul"}
_BCAST = ("none", "row", "col", "scalar")
_REDUCE_OPS = ("sum", "max")
_REDUCE_DIMS = ("row", "col", "scalar")


class ComputeConfig:
    """Per-kernel compute settings (TT-Metalium's ComputeConfig)."""

    def __init__(self, math_fidelity="HiFi4", fp32_dest_acc_en=False, dst_full_sync_en=False,
                 unpack_to_dest_fp32=None, fused=True, math_approx_mode=False):
        self.fidelity = numerics.parse_fidelity(math_fidelity)
        for name, v in (("math_approx_mode", math_approx_mode), ("fp32_dest_acc_en", fp32_dest_acc_en),
                        ("dst_full_sync_en", dst_full_sync_en), ("fused", fused),
                        ("unpack_to_dest_fp32", unpack_to_dest_fp32)):
            if not (v is None and name == "unpack_to_dest_fp32") and \
                    not isinstance(v, (bool, np.bool_)) and v not in (0, 1):
                raise TTSimError(f"{name}={v!r}: a compute setting is True or False")
        # tt-metal's math_approx_mode: the APPROX template of every SFPU op; exp then runs
        # its fast Schraudolph form (exp_tile's fast_and_approx defaults to true)
        self.approx = bool(math_approx_mode)
        self.fp32_acc = bool(fp32_dest_acc_en)
        self.full_sync = bool(dst_full_sync_en)
        # copy_tile of an fp32 CB straight into an fp32 DST, past the 19-bit source registers
        # (tt-metal's UnpackToDestFp32); on by default whenever DST is fp32, as TT-Lang does.
        self.unpack_to_dest = self.fp32_acc if unpack_to_dest_fp32 is None else \
            bool(unpack_to_dest_fp32) and self.fp32_acc
        self.fused = bool(fused)      # run once for the three threads (see FusedCompute)

    def sfpu_mode(self, op):
        """The mode an SFPU op runs in when the call does not name one."""
        modes = SFPU_MODES.get(op)
        if modes is None:
            return None
        return modes[0] if self.approx else "accurate"


# SFPU ops with more than one algorithm on the chip; the first mode is what the op's APPROX
# template gives (tt-metal's exp_tile<true> is the fast form), "accurate" is APPROX=false.
SFPU_MODES = {"exp": ("fast", "approx", "accurate"), "recip": ("approx", "accurate"),
              "sqrt": ("approx", "accurate"), "rsqrt": ("approx", "accurate"),
              "sigmoid": ("approx", "accurate")}
_ALL = object()
_VECTOR_MODES = {"rc": _ALL,
                 "c": np.arange(32)[None, :] < 16,      # faces 0 and 2: columns 0-15
                 "r": np.arange(32)[:, None] < 16}      # faces 0 and 1: rows 0-15


# The ops whose algorithm SFPU.md gives, bit for bit (ttsim.sfpu): (DST values, mode, fp32 DST)
# -> the values as they land in DST, rounding included. Every other SFPU op computes in
# float64 with numpy, rounded once to float32 (numerics._in_f64), and is stored as SFPSTORE stores (fp32 exactly; a 16-bit DST truncates,
# SFPU.md §4, as every kernel that inserts no rounding instruction gets): their algorithms are
# not modelled, so their values are float32-accurate before the store (docs/numerics.md).
CHIP_SFPU = {
    "exp": lambda x, mode, fp32: sfpu.exp(x, mode, fp32),
    "recip": lambda x, mode, fp32: sfpu.recip(x, mode == "approx", fp32),
    "sqrt": lambda x, mode, fp32: sfpu.sqrt(x, mode == "approx", fp32),
    "rsqrt": lambda x, mode, fp32: sfpu.rsqrt(x, mode == "approx", fp32),
}


def sfpu_ops(c, cfg):
    """(kind, op, mode) -> (cost per tile, trace name, function of the DST tile giving the
    value stored back into DST), for every SFPU op and mode the kernel may call."""
    fp32 = cfg.fp32_acc

    def stored(fn):
        def run(x, *p):
            with np.errstate(all="ignore"):       # inf and NaN land in DST as on the chip
                return sfpu.store(fn(x, *p), fp32)
        return run

    def chip(fn, mode):
        return lambda x: fn(x, mode, fp32)

    table = {}
    unary = dict(numerics.SFPU_UNARY, scale=lambda x, s: x * np.float32(s))
    for op, fn in unary.items():
        for mode in SFPU_MODES.get(op, (None,)):
            key = f"cost.sfpu.{op}" if mode in (None, "accurate") else f"cost.sfpu.{op}_{mode}"
            if fp32 and mode == "accurate" and f"{key}_fp32" in c:
                key += "_fp32"
            name = f"{op}_tile" if mode in (None, "accurate") else f"{op}_tile({mode})"
            value = chip(CHIP_SFPU[op], mode) if op in CHIP_SFPU else stored(fn)
            if not fp32 and op != "scale":
                value = _tabulated((op, mode, sfpu.CLAMP_NEGATIVE, sfpu.EXP_ACCURATE), value)
            table[("unary", op, mode)] = (c[key], name, value)
    for op, fn in numerics.SFPU_BINARY.items():
        table[("binary", op, None)] = (c[f"cost.sfpu.{op}"], f"{op}_binary_tile", stored(fn))
    return table


_BF16_TABLES = {}      # (op, mode, exp settings) -> the op's 16-bit DST value of each bf16 pattern


def _tabulated(key, fn):
    """An SFPU op on a 16-bit DST as a lookup: the DST's values are bf16 (every write to it
    rounds or truncates to bf16), so the op's result on each of the 65,536 bf16 patterns,
    computed once by the op's own algorithm, is its result everywhere: the same bits per
    element, at one table lookup instead of the algorithm's few dozen instructions. A value
    with low bits set (none is expected) takes the algorithm."""
    def run(x):
        b = x.view(np.uint32)
        if (b & 0xFFFF).any():
            return fn(x)
        t = _BF16_TABLES.get(key)
        if t is None:
            every = (np.arange(65536, dtype=np.uint32) << 16).view(np.float32).reshape(64, 32, 32)
            with np.errstate(all="ignore"):
                t = _BF16_TABLES[key] = np.asarray(fn(every), np.float32).reshape(-1)
        return t[b >> 16]
    run.algorithm = fn
    return run


class _ComputeShared:
    """State the three compute threads of one core share: operand and DST hand-offs."""

    def __init__(self, engine, core, cfg):
        from .fifo import Fifo
        self.cfg = cfg
        # what the run's numbers went through, for bounds derived from it (RunReport.numerics)
        path = engine.__dict__.setdefault("numeric_path", {"dst": set(), "fidelity": set(),
                                                           "sfpu": set(), "src": set()})
        self.src_used = path["src"]
        path["dst"].add("fp32" if cfg.fp32_acc else "bf16")
        path["fidelity"].add(cfg.fidelity.name)
        self.sfpu_used = path["sfpu"]
        self.dst_tiles = engine.sd.dst_tiles(cfg.fp32_acc, cfg.full_sync)
        self.src = Fifo(engine.env, 2, "source registers", core,
                        stall_full="src regs busy (math)", stall_empty="operands (unpack)")
        self.dst = Fifo(engine.env, 1 if cfg.full_sync else 2, "dst", core,
                        stall_full="dst busy (pack)", stall_empty="dst (math)")


class ComputeContext(KernelContext):
    """Names shared by the three roles; each role overrides what it does."""

    role = "?"

    def __init__(self, engine, core, kind, args, compile_args, shared):
        super().__init__(engine, core, kind, args, compile_args)
        self._s = shared
        self.cfg = shared.cfg
        c = self._c
        self._c_tile_regs = c["cost.api.tile_regs"]

    def _dst_index(self, d, ln):
        if d.__class__ is not int and as_int(d) is None:
            raise ArgumentError(f"DST index {d!r} is not an integer (a DST register is named by "
                                f"its index, 0..{self._s.dst_tiles - 1})", core=self.core,
                                thread=self._th.kind, line=ln)
        if not 0 <= d < self._s.dst_tiles:
            mode = ("fp32" if self.cfg.fp32_acc else "16-bit") + \
                   (" full-sync" if self.cfg.full_sync else " half-sync")
            raise DstOverflowError(f"DST index {d} out of range: {mode} DST holds "
                                   f"{self._s.dst_tiles} tiles (indices 0..{self._s.dst_tiles - 1})",
                                   core=self.core, thread=self._th.kind, line=ln)

    # Every API name exists on every role; the defaults do nothing.
    def cb_wait_front(self, cb, n): pass
    def cb_pop_front(self, cb, n): pass
    def cb_reserve_back(self, cb, n): pass
    def cb_push_back(self, cb, n): pass
    def tile_regs_acquire(self): pass
    def tile_regs_commit(self): pass
    def tile_regs_wait(self): pass
    def tile_regs_release(self): pass
    def copy_tile(self, cb, i, d): self._dst_index(d, None)
    def copy_block_matmul_partials(self, cb, i, d, n): self._dst_index(d + n - 1, None)
    def matmul_tiles(self, cb_a, cb_b, ia, ib, d, transpose=False): self._dst_index(d, None)
    def matmul_block(self, cb_a, cb_b, ia, ib, d, transpose=False, ct_dim=1, rt_dim=1, kt_dim=1,
                     in1_stride=1):
        self._block_dims(ct_dim, rt_dim, kt_dim, in1_stride, None)
        self._dst_index(d + rt_dim * ct_dim - 1, None)

    def _block_dims(self, ct_dim, rt_dim, kt_dim, in1_stride, ln):
        """matmul_block's block: rt_dim x ct_dim output tiles, in0 rows kt_dim tiles apart,
        in1 columns in1_stride apart, each a whole number >= 1."""
        for name, v in (("ct_dim", ct_dim), ("rt_dim", rt_dim), ("kt_dim", kt_dim),
                        ("in1_stride", in1_stride)):
            if v.__class__ is not int or v < 1:
                self._count(v, f"matmul_block: {name}", ln)
    def binary_tiles(self, op, cb_a, cb_b, ia, ib, d, bcast="none"): self._dst_index(d, None)
    def binary_dest_reuse_tiles(self, op, cb, i, d, dst_as="a"): self._dst_index(d, None)
    def reduce_tile(self, cb, cb_scaler, i, i_scaler, d, op="sum", dim="row"): self._dst_index(d, None)
    def transpose_wh_tile(self, cb, i, d): self._dst_index(d, None)
    def unary_bcast(self, cb, i, d, dim): self._dst_index(d, None)
    def sfpu_unary(self, op, d, *params, mode=None, vector_mode="rc"): pass
    def sfpu_binary(self, op, d0, d1, d_out=None): pass
    def fill_tile(self, d, value): pass
    def copy_dest_values(self, d_dst, d_src): pass
    def pack_tile(self, d, cb, out_index=None, accumulate=False): pass

    def run_groups(self, plan):
        """The DST groups of a compiler's statement as one call (ttsim.group); False: the
        caller runs their tile ops instead (a kernel run per role runs them one by one)."""
        return False

    # tt-metal names built on the generic calls
    def acquire_dst(self): self.tile_regs_acquire(); self.tile_regs_wait()
    def release_dst(self): self.tile_regs_commit(); self.tile_regs_release()
    def add_tiles(self, a, b, ia, ib, d): self.binary_tiles("add", a, b, ia, ib, d)
    def sub_tiles(self, a, b, ia, ib, d): self.binary_tiles("sub", a, b, ia, ib, d)
    def mul_tiles(self, a, b, ia, ib, d): self.binary_tiles("mul", a, b, ia, ib, d)
    def add_tiles_bcast(self, a, b, ia, ib, d, dim): self.binary_tiles("add", a, b, ia, ib, d, dim)
    def sub_tiles_bcast(self, a, b, ia, ib, d, dim): self.binary_tiles("sub", a, b, ia, ib, d, dim)
    def mul_tiles_bcast(self, a, b, ia, ib, d, dim): self.binary_tiles("mul", a, b, ia, ib, d, dim)
    def add_tiles_bcast_rows(self, a, b, ia, ib, d): self.binary_tiles("add", a, b, ia, ib, d, "row")
    def add_tiles_bcast_cols(self, a, b, ia, ib, d): self.binary_tiles("add", a, b, ia, ib, d, "col")
    def add_tiles_bcast_scalar(self, a, b, ia, ib, d): self.binary_tiles("add", a, b, ia, ib, d, "scalar")
    def sub_tiles_bcast_rows(self, a, b, ia, ib, d): self.binary_tiles("sub", a, b, ia, ib, d, "row")
    def sub_tiles_bcast_cols(self, a, b, ia, ib, d): self.binary_tiles("sub", a, b, ia, ib, d, "col")
    def sub_tiles_bcast_scalar(self, a, b, ia, ib, d): self.binary_tiles("sub", a, b, ia, ib, d, "scalar")
    def mul_tiles_bcast_rows(self, a, b, ia, ib, d): self.binary_tiles("mul", a, b, ia, ib, d, "row")
    def mul_tiles_bcast_cols(self, a, b, ia, ib, d): self.binary_tiles("mul", a, b, ia, ib, d, "col")
    def mul_tiles_bcast_scalar(self, a, b, ia, ib, d): self.binary_tiles("mul", a, b, ia, ib, d, "scalar")
    # tt-metal's template arguments as keywords: approx=None takes the kernel's
    # math_approx_mode; exp with approx runs the fast form unless fast_and_approx=False
    def exp_tile(self, d, approx=None, fast_and_approx=True, vector_mode="rc"):
        mode = None if approx is None else ("accurate" if not approx else
                                            "fast" if fast_and_approx else "approx")
        self.sfpu_unary("exp", d, mode=mode, vector_mode=vector_mode)
    def exp2_tile(self, d): self.sfpu_unary("exp2", d)
    def log_tile(self, d): self.sfpu_unary("log", d)
    def sqrt_tile(self, d, approx=None): self.sfpu_unary("sqrt", d, mode=_approx_mode(approx))
    def rsqrt_tile(self, d, approx=None): self.sfpu_unary("rsqrt", d, mode=_approx_mode(approx))
    def recip_tile(self, d, approx=None, vector_mode="rc"):
        self.sfpu_unary("recip", d, mode=_approx_mode(approx), vector_mode=vector_mode)
    def tanh_tile(self, d): self.sfpu_unary("tanh", d)
    def sigmoid_tile(self, d, approx=None): self.sfpu_unary("sigmoid", d, mode=_approx_mode(approx))
    def relu_tile(self, d): self.sfpu_unary("relu", d)
    def gelu_tile(self, d): self.sfpu_unary("gelu", d)
    def silu_tile(self, d): self.sfpu_unary("silu", d)
    def abs_tile(self, d): self.sfpu_unary("abs", d)
    def negative_tile(self, d): self.sfpu_unary("neg", d)
    def square_tile(self, d): self.sfpu_unary("square", d)
    def sin_tile(self, d): self.sfpu_unary("sin", d)
    def cos_tile(self, d): self.sfpu_unary("cos", d)
    def mul_unary_tile(self, d, s): self.sfpu_unary("scale", d, s)
    def add_binary_tile(self, d0, d1, d_out=None): self.sfpu_binary("add", d0, d1, d_out)
    def sub_binary_tile(self, d0, d1, d_out=None): self.sfpu_binary("sub", d0, d1, d_out)
    def mul_binary_tile(self, d0, d1, d_out=None): self.sfpu_binary("mul", d0, d1, d_out)
    def div_binary_tile(self, d0, d1, d_out=None): self.sfpu_binary("div", d0, d1, d_out)
    def max_tile(self, d0, d1, d_out=None): self.sfpu_binary("max", d0, d1, d_out)
    def min_tile(self, d0, d1, d_out=None): self.sfpu_binary("min", d0, d1, d_out)

    def __getattr__(self, name):
        # tt-metal's *_init calls reconfigure the units; their cost is not modelled.
        if name.endswith("_init") or "_init_" in name or name.startswith("init_"):
            return lambda *a, **kw: None
        return super().__getattr__(name)        # a data-movement call says so


def _approx_mode(approx):
    return None if approx is None else ("approx" if approx else "accurate")


def _real(v):
    """A real number a kernel may put into DST (not None, a string, a bool or an array)."""
    return v.__class__ is float or v.__class__ is int or \
        (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool))


def _check_choice(value, choices, what, ctx, ln):
    if value not in choices:
        raise TTSimError(f"{what} must be one of {', '.join(choices)}; got {value!r}",
                         core=ctx.core, thread=ctx._th.kind, line=ln)


class _Setup:
    """What a compute thread's hardware is configured for, and what changing it costs.

    The unpacker, the FPU and the packer are programmed per op kind (a MOP, address modes:
    tt-metal's `*_init` calls) and per data format (`reconfig_data_format`); the SFPU loads
    its constants per op (`*_tile_init`). A kernel that switches between op kinds or formats
    pays for reprogramming on the thread that does it, once per change; ttsim charges it
    when an op needs another configuration than the current one, so explicit `*_init`
    calls are free (they would pay twice)."""
    __slots__ = ("kind", "fmts", "c_init", "c_reconfig")

    def __init__(self, c_init, c_reconfig):
        self.kind = self.fmts = None
        self.c_init, self.c_reconfig = c_init, c_reconfig

    def change(self, th, kind, fmts, ln):
        """`fmts`: the formats the op needs, one per configured operand (the unpacker's
        SrcA and SrcB, the packer's output and L1 accumulation), None where it needs none."""
        if kind is not None and kind != self.kind:
            th.charge(self.c_init, f"init {kind if isinstance(kind, str) else '_'.join(map(str, kind))}",
                      ln, 0)
            self.kind = kind
        if fmts is not None and fmts != self.fmts:      # the same formats: nothing to do
            cur = self.fmts
            if cur is None or any(f is not None and f != c for f, c in zip(fmts, cur)):
                th.charge(self.c_reconfig, "reconfig_data_format", ln, 0)
                self.fmts = fmts if cur is None else tuple(c if f is None else f
                                                           for f, c in zip(fmts, cur))


class UnpackContext(ComputeContext):
    """TRISC0: waits on input CBs, reads tiles from L1 into the source registers."""

    role = "unpack"

    def __init__(self, *a):
        super().__init__(*a)
        c = self._c
        self._c_unpack = {f: c[f"cost.unpack.{f.value}"] for f in formats.DataFormat}
        self._dual_bw = c["cost.unpack.dual_bytes_per_cycle"]
        self._c_call = c["cost.unpack.call"]
        self._setup = _Setup(c["cost.unpack.init"], c["cost.unpack.reconfig"])
        self._l1 = self._e.l1[self.core]

    def cb_wait_front(self, cb, n):
        ln = self._th.pinned or caller_line()
        self._cb(cb, ln).wait(self._th, n, ln)
        self._th.charge(self._c["cost.api.cb_wait_front"], "cb_wait_front", ln)

    def cb_pop_front(self, cb, n):
        ln = self._th.pinned or caller_line()
        self._th.charge(self._c["cost.api.cb_pop_front"], "cb_pop_front", ln)
        self._cb(cb, ln).pop(self._th, n, ln)

    def _read(self, cb, i, ln, to_dest=False):
        """The i-th waited-for tile of cb as it sits in a source register (or, with
        `to_dest`, as unpacked straight to DST: fp32 keeps all its bits).

        A page does not change between its push and the reuse of its slot (writing a pushed
        page is a race on hardware too), so the decoded value is kept per page: a tile that
        feeds many matmuls is decoded once.
        """
        c = self._cb(cb, ln)
        seq = c.front_seq(i, self._th, ln)
        slot = seq % c.capacity
        hit = c.decoded.get(slot)
        if hit is None or hit[0] != seq:
            c.check_fresh(slot, seq, self._th, ln, "UNPACK")
            hit = self._decode_run(c, slot, seq)
        if not to_dest and c.fmt is formats.DataFormat.FP32:
            self._s.src_used.add("tf32")          # 19-bit source registers keep 11 bits
        return hit[1 if to_dest else 2], c.fmt

    def _hand_over(self, payload, cost, name, ln, kind, fmts, first=None):
        """Configure for `kind` and formats, wait for a free source register, unpack into
        it (the LLK call's own front-end plus the tiles' cost), hand it to MATH.

        A block of products streams: MATH may start once the `first` cycles of its operands
        are unpacked, and the payload's last element says when the rest is (MathContext._take)."""
        th, src = self._th, self._s.src
        self._setup.change(th, kind, fmts, ln)
        src.reserve(th, 1, ln)
        th.charge(cost + self._c_call, name, ln)
        if first is None:
            src.push(th, 1, ln, payload)
        else:
            src.push(th, 1, ln, payload + (th.t,), t=th.t - (cost - first))

    def _cost2(self, fa, fb):
        return max(self._c_unpack[fa], self._c_unpack[fb], (fa.tile_bytes + fb.tile_bytes) / self._dual_bw)

    @staticmethod
    def _decode_run(c, slot, seq):
        """Decode page `seq` and, in the same call, the waited-for pages after it in the next
        slots that hold their own data and are not decoded yet (numpy's per-call cost is
        most of a page's decode); returns page seq's cache entry."""
        dec, wseq = c.decoded, c.wseq
        n, limit = 1, min(c.waited_upto - seq, c.capacity - slot)
        while n < limit:
            h = dec.get(slot + n)
            if h is not None and h[0] == seq + n or wseq[slot + n] != seq + n:
                break
            n += 1
        addr, ps = c.base + slot * c.page_size, c.page_size
        raw = formats.decode_tiles(c.l1.mem[addr:addr + n * ps], c.fmt, n)
        src = numerics.to_src(raw, c.fmt)
        for t in range(n):
            dec[slot + t] = (seq + t, raw[t], src[t])
        return dec[slot]

    def copy_tile(self, cb, i, d):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        v, f = self._read(cb, i, ln, to_dest=self.cfg.unpack_to_dest)
        self._hand_over(("copy", v, f), self._c_unpack[f], "unpack copy_tile", ln, "copy", (f, None))

    def copy_block_matmul_partials(self, cb, i, d, n):
        """Tiles i..i+n-1 of cb into DST d..d+n-1 in one LLK call (tt-metal's reload of a
        matmul's partial sums): one call's front-end for the block, the tiles streamed."""
        ln = self._th.pinned or caller_line()
        n = self._count(n, "copy_block_matmul_partials: ntiles", ln)
        self._dst_index(d + n - 1, ln)
        tiles = [self._read(cb, i + t, ln, to_dest=self.cfg.unpack_to_dest) for t in range(n)]
        f = tiles[0][1]
        self._hand_over(("copy_block", [v for v, _ in tiles], f), n * self._c_unpack[f],
                        "unpack copy_block_matmul_partials", ln, "copy", (f, None),
                        first=self._c_unpack[f])

    def matmul_tiles(self, cb_a, cb_b, ia, ib, d, transpose=False):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        a, fa = self._read(cb_a, ia, ln)
        b, fb = self._read(cb_b, ib, ln)
        if transpose:
            b = numerics.transpose(b)
        self._hand_over(("matmul", a, b), self._cost2(fa, fb), "unpack matmul_tiles", ln,
                        ("matmul", transpose), (fb, fa))        # in1 in SrcA, in0 in SrcB

    def matmul_block(self, cb_a, cb_b, ia, ib, d, transpose=False, ct_dim=1, rt_dim=1, kt_dim=1,
                     in1_stride=1):
        """One k step of an rt_dim x ct_dim output block: in0 tiles ia + r * kt_dim, in1
        tiles ib + c * in1_stride (tt-metal's matmul_block; in1_stride is ttsim's, for an
        in1 whose tiles are stored transposed, K^T from K); DST[d + r * ct_dim + c] +=
        in0[r] @ in1[c]. The operand along the longer side is unpacked once per product,
        the other once per row or column."""
        ln = self._th.pinned or caller_line()
        self._block_dims(ct_dim, rt_dim, kt_dim, in1_stride, ln)
        self._dst_index(d + rt_dim * ct_dim - 1, ln)
        rows, fa = self._stack(cb_a, ia, kt_dim, rt_dim, False, ln)
        cols, fb = self._stack(cb_b, ib, in1_stride, ct_dim, transpose, ln)
        # Source registers hold one tile each: along the block's longer side the other
        # operand's tile stays in place, so one operand is unpacked once per row (or
        # column) and the other once per product (the LLK's reuse of in0 or in1).
        na, nb = (rt_dim, rt_dim * ct_dim) if ct_dim >= rt_dim else (rt_dim * ct_dim, ct_dim)
        cost = max(na * self._c_unpack[fa], nb * self._c_unpack[fb],
                   (na * fa.tile_bytes + nb * fb.tile_bytes) / self._dual_bw)
        self._hand_over(("matmul_block", rows, cols), cost, "unpack matmul_block", ln,
                        ("matmul", transpose), (fb, fa), first=self._cost2(fa, fb))

    def _stack(self, cb, first, stride, n, transpose, ln):
        """Tiles first, first + stride, ... (n of them) of cb as one (n, 32, 32) array of
        source-register values, each transposed if asked (what MATH multiplies at once)."""
        if n == 1:      # a view of the one (cached, never written) tile: no copy
            v, fmt = self._read(cb, first, ln)
            tiles = v[None]
        else:
            tiles = np.stack([self._read(cb, first + r * stride, ln)[0] for r in range(n)])
            fmt = self._cb(cb, ln).fmt
        return (np.ascontiguousarray(tiles.transpose(0, 2, 1)) if transpose else tiles), fmt

    def binary_tiles(self, op, cb_a, cb_b, ia, ib, d, bcast="none"):
        ln = self._th.pinned or caller_line()
        _check_choice(op, tuple(_BINARY_MATH_COST), "binary op", self, ln)
        _check_choice(bcast, _BCAST, "broadcast", self, ln)
        self._dst_index(d, ln)
        a, fa = self._read(cb_a, ia, ln)
        b, fb = self._read(cb_b, ib, ln)
        if bcast != "none":
            b = numerics.bcast(b, bcast)
        self._hand_over((op, a, b), self._cost2(fa, fb), f"unpack {op}_tiles", ln,
                        ("binary", bcast), (fa, fb))

    def binary_dest_reuse_tiles(self, op, cb, i, d, dst_as="a"):
        ln = self._th.pinned or caller_line()
        _check_choice(op, tuple(_BINARY_MATH_COST), "binary op", self, ln)
        _check_choice(dst_as, ("a", "b"), "dst_as (the operand DST stands for)", self, ln)
        self._dst_index(d, ln)
        v, f = self._read(cb, i, ln)
        self._hand_over((op + "_reuse", v), self._c_unpack[f], f"unpack {op}_dest_reuse", ln,
                        ("dest_reuse", dst_as), (None, f) if dst_as == "a" else (f, None))

    def reduce_tile(self, cb, cb_scaler, i, i_scaler, d, op="sum", dim="row"):
        ln = self._th.pinned or caller_line()
        _check_choice(op, _REDUCE_OPS, "reduce op", self, ln)
        _check_choice(dim, _REDUCE_DIMS, "reduce dim", self, ln)
        self._dst_index(d, ln)
        a, fa = self._read(cb, i, ln)
        s, fs = self._read(cb_scaler, i_scaler, ln)
        self._hand_over(("reduce", a, float(s[0, 0]), fa), self._cost2(fa, fs), "unpack reduce_tile",
                        ln, ("reduce", dim), (fa, fs))

    def transpose_wh_tile(self, cb, i, d):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        v, f = self._read(cb, i, ln)
        self._hand_over(("transpose", numerics.transpose(v), f), self._c_unpack[f], "unpack transpose",
                        ln, "transpose", (f, None))

    def unary_bcast(self, cb, i, d, dim):
        ln = self._th.pinned or caller_line()
        _check_choice(dim, _BCAST[1:], "broadcast", self, ln)
        self._dst_index(d, ln)
        v, f = self._read(cb, i, ln)
        self._hand_over(("copy", numerics.bcast(v, dim), f), self._c_unpack[f], f"unpack bcast {dim}",
                        ln, ("bcast", dim), (None, f))          # unary broadcasts unpack to SrcB


class MathContext(ComputeContext):
    """TRISC1: drives the FPU and SFPU on the DST register file."""

    role = "math"

    def __init__(self, *a):
        super().__init__(*a)
        c, cfg = self._c, self.cfg
        acc = c["cost.math.fp32_acc_factor"] if cfg.fp32_acc else 1.0
        ph = int(cfg.fidelity)
        self._c_mm = c["cost.math.matmul"] * ph * acc + c["cost.math.matmul_tile_overhead"]
        self._c_mm_call = c["cost.math.matmul_block_call"]
        self._c_bin = {"add": c["cost.math.eltwise_add"] * acc, "sub": c["cost.math.eltwise_sub"] * acc,
                       "mul": c["cost.math.eltwise_mul"] * ph * acc}
        self._c_copy = c["cost.math.datacopy"] * acc
        self._c_reduce = c["cost.math.reduce"] * acc
        self._c_transpose = c["cost.math.transpose"] * acc
        self._fpu = _Setup(c["cost.math.init"], None)
        self._sfpu_op = _Setup(c["cost.sfpu.init"], None)
        self._sfpu_table = sfpu_ops(c, cfg)
        self._c_fill, self._c_dcopy = c["cost.sfpu.fill"], c["cost.sfpu.copy"]
        self._dst = None
        self._written = None

    def tile_regs_acquire(self):
        ln = self._th.pinned or caller_line()
        th = self._th
        if self._dst is not None:
            raise TTSimError("tile_regs_acquire while MATH already holds DST: each acquire needs "
                             "its tile_regs_commit before the next (a second acquire would start "
                             "from an empty DST, losing what the first one computed)",
                             core=self.core, thread=th.kind, line=ln)
        self._s.dst.reserve(th, 1, ln)
        th.charge(self._c_tile_regs, "tile_regs_acquire", ln)
        self._dst = np.zeros((self._s.dst_tiles, 32, 32), np.float32)
        self._written = np.zeros(self._s.dst_tiles, bool)

    def tile_regs_commit(self):
        ln = self._th.pinned or caller_line()
        th = self._th
        self._need_dst(ln)
        th.charge(self._c_tile_regs, "tile_regs_commit", ln)
        self._s.dst.push(th, 1, ln, self._dst)
        self._dst = None

    def _need_dst(self, ln):
        if self._dst is None:
            raise TTSimError("MATH uses DST without holding it: call tile_regs_acquire() first",
                             core=self.core, thread=self._th.kind, line=ln)

    def _take(self, kind, cost, name, ln, setup, last=0.0):
        """Wait for UNPACK's operands of a `kind` op, configure the FPU for `setup`, run.
        A streamed block (UnpackContext._hand_over's `first`) cannot end before its last
        operands are unpacked plus `last` cycles of MATH work on them."""
        th, src = self._th, self._s.src
        self._need_dst(ln)
        src.wait(th, 1, ln)
        p = src.front()
        if p[0] != kind:
            raise TTSimError(f"UNPACK and MATH disagree: MATH runs {kind} but UNPACK prepared {p[0]} "
                             "(the compute kernel must make the same calls on every thread)",
                             core=self.core, thread=th.kind, line=ln)
        self._fpu.change(th, setup, None, ln)
        th.charge(cost, name, ln)
        if last:
            th.stall_until(p[-1] + last, self._s.src.stall_empty, ln)
        src.pop(th, 1, ln)
        return p

    def _put(self, d, value):
        self._dst[d] = numerics.dst_round(value, self.cfg.fp32_acc)
        self._written[d] = True

    def _put_moved(self, d, value, fmt):
        """A tile moved into DST unchanged (copy, transpose, broadcast): bf16 and bfp8_b
        values already fit a 16-bit DST, so only fp32 ones need rounding."""
        if fmt is _FP32:
            self._put(d, value)
        else:
            self._dst[d] = value
            self._written[d] = True

    def copy_tile(self, cb, i, d):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        p = self._take("copy", self._c_copy, "copy_tile", ln, "datacopy")
        self._put_moved(d, p[1], p[2])

    def copy_block_matmul_partials(self, cb, i, d, n):
        ln = self._th.pinned or caller_line()
        n = self._count(n, "copy_block_matmul_partials: ntiles", ln)
        self._dst_index(d + n - 1, ln)
        p = self._take("copy_block", self._c_copy * n, "copy_block_matmul_partials", ln, "datacopy",
                       last=self._c_copy)
        for t, v in enumerate(p[1]):
            self._put_moved(d + t, v, p[2])

    def matmul_tiles(self, cb_a, cb_b, ia, ib, d, transpose=False):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        p = self._take("matmul", self._c_mm + self._c_mm_call, "matmul_tiles", ln, "matmul")
        self._put(d, self._dst[d] + numerics.matmul(p[1], p[2], self.cfg.fidelity))

    def matmul_block(self, cb_a, cb_b, ia, ib, d, transpose=False, ct_dim=1, rt_dim=1, kt_dim=1,
                     in1_stride=1):
        ln = self._th.pinned or caller_line()
        self._block_dims(ct_dim, rt_dim, kt_dim, in1_stride, ln)
        n = rt_dim * ct_dim
        self._dst_index(d + n - 1, ln)
        p = self._take("matmul_block", self._c_mm * n + self._c_mm_call, "matmul_block", ln, "matmul",
                       last=self._c_mm)
        self._matmul_into(d, n, p[1], p[2])

    def _matmul_into(self, d, n, rows, cols):
        """DST[d + r * ct + c] += rows[r] @ cols[c], all rt x ct products in one batched call
        (bit-identical to one matmul per pair). rows and cols may hold several K steps,
        (kt, rt, 32, 32) and (kt, ct, 32, 32): their products are added in K order, with a
        rounding into DST after each, as one call per step would."""
        if rows.ndim == 3:
            rows, cols = rows[None], cols[None]
        prod = numerics.matmul(rows[:, :, None], cols[:, None, :], self.cfg.fidelity)
        for p in prod:
            self._dst[d:d + n] = numerics.dst_round(self._dst[d:d + n] + p.reshape(n, 32, 32),
                                                    self.cfg.fp32_acc)
        self._written[d:d + n] = True

    def binary_tiles(self, op, cb_a, cb_b, ia, ib, d, bcast="none"):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        p = self._take(op, self._c_bin[op], f"{op}_tiles", ln, ("eltwise", op, bcast))
        self._put(d, numerics.eltwise(op, p[1], p[2], self.cfg.fidelity))

    def binary_dest_reuse_tiles(self, op, cb, i, d, dst_as="a"):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        p = self._take(op + "_reuse", self._c_bin[op], f"{op}_dest_reuse", ln, ("dest_reuse", op, dst_as))
        self._reuse_into(d, op, p[1], dst_as)

    def _reuse_into(self, d, op, v, dst_as):
        a, b = (self._dst[d], v) if dst_as == "a" else (v, self._dst[d])
        self._put(d, numerics.eltwise(op, a, b, self.cfg.fidelity))

    def reduce_tile(self, cb, cb_scaler, i, i_scaler, d, op="sum", dim="row"):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        p = self._take("reduce", self._c_reduce, f"reduce_{op}_{dim}", ln, ("reduce", op, dim))
        self._reduce_into(d, p[1], op, dim, p[2])

    def _reduce_into(self, d, tiles, op, dim, scaler):
        """A reduce into DST d (a register, or a slice of them for a stack of tiles), onto
        what it holds if it was written since tile_regs_acquire."""
        self._reduced_into(d, numerics.reduce(tiles, op, dim, scaler), op)

    def _reduced_into(self, d, r, op):
        if self._written[d].any() if d.__class__ is slice else self._written[d]:
            r = numerics.reduce_accumulate(self._dst[d], r, op)
        self._put(d, r)

    def transpose_wh_tile(self, cb, i, d):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        p = self._take("transpose", self._c_transpose, "transpose_wh_tile", ln, "transpose")
        self._put_moved(d, p[1], p[2])

    def unary_bcast(self, cb, i, d, dim):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        p = self._take("copy", self._c_copy, f"unary_bcast_{dim}", ln, ("bcast", dim))
        self._put_moved(d, p[1], p[2])

    def _sfpu(self, op, mode, ln, kind):
        entry = self._sfpu_table.get((kind, op, mode))
        if entry is None:
            modes = sorted(m for k, o, m in self._sfpu_table if k == kind and o == op)
            if not modes:
                known = sorted({o for k, o, _ in self._sfpu_table if k == kind})
                raise TTSimError(f"unknown SFPU {kind} op '{op}' (known: {', '.join(known)})",
                                 core=self.core, thread=self._th.kind, line=ln)
            raise TTSimError(f"SFPU {op} has no mode {mode!r} (modes: {', '.join(modes)})",
                             core=self.core, thread=self._th.kind, line=ln)
        self._sfpu_op.change(self._th, (op, mode), None, ln)
        self._s.sfpu_used.add((op, mode))
        return entry

    def sfpu_unary(self, op, d, *params, mode=None, vector_mode="rc"):
        """An SFPU op on DST tile d in place. `mode` picks the chip's algorithm where it has
        several (exp: fast, approx, accurate; recip, sqrt, rsqrt, sigmoid: approx, accurate;
        default: the kernel's math_approx_mode). vector_mode "c" works on the two left faces
        only (columns 0-15, where a row statistic lives: tt-metal's VectorMode::C), "r" on
        the two top faces, at half the cost; the other faces keep their values."""
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        self._need_dst(ln)
        if mode is None:
            mode = self.cfg.sfpu_mode(op)
        cost, name, fn = self._sfpu(op, mode, ln, "unary")
        if params or op == "scale":
            self._params(op, params, ln)
        faces = _VECTOR_MODES.get(vector_mode)
        if faces is None:
            raise TTSimError(f"vector_mode must be one of {', '.join(_VECTOR_MODES)}; got {vector_mode!r}",
                             core=self.core, thread=self._th.kind, line=ln)
        self._th.charge(cost if faces is _ALL else cost / 2, name, ln)
        self._sfpu_into(d, fn, params, faces)

    def _sfpu_into(self, d, fn, params, faces=_ALL):
        x = self._dst[d]
        y = fn(x, *params)
        if faces is not _ALL:
            y = np.where(faces, y, x)
        self._dst[d] = y
        self._written[d] = True

    def _params(self, op, params, ln):
        """An SFPU op's scalar parameters: as many as it takes (scale: one), real numbers."""
        want = 1 if op == "scale" else 0
        if len(params) != want:
            raise ArgumentError(f"SFPU {op} takes {want} scalar parameter(s), got {len(params)}: "
                                f"{params!r}", core=self.core, thread=self._th.kind, line=ln)
        for v in params:
            if not _real(v):
                raise ArgumentError(f"SFPU {op}: parameter {v!r} is not a real number",
                                    core=self.core, thread=self._th.kind, line=ln)

    def sfpu_binary(self, op, d0, d1, d_out=None):
        ln = self._th.pinned or caller_line()
        d_out = d0 if d_out is None else d_out
        for d in (d0, d1, d_out):
            self._dst_index(d, ln)
        self._need_dst(ln)
        cost, name, fn = self._sfpu(op, None, ln, "binary")
        self._th.charge(cost, name, ln)
        self._dst[d_out] = fn(self._dst[d0], self._dst[d1])
        self._written[d_out] = True

    def fill_tile(self, d, value):
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        self._need_dst(ln)
        if not _real(value):
            raise ArgumentError(f"fill_tile: value {value!r} is not a real number",
                                core=self.core, thread=self._th.kind, line=ln)
        self._th.charge(self._c_fill, "fill_tile", ln)
        self._put(d, np.full((32, 32), value, np.float32))

    def copy_dest_values(self, d_dst, d_src):
        ln = self._th.pinned or caller_line()
        self._dst_index(d_dst, ln)
        self._dst_index(d_src, ln)
        self._need_dst(ln)
        self._th.charge(self._c_dcopy, "copy_dest_values", ln)
        self._dst[d_dst] = self._dst[d_src]
        self._written[d_dst] = True


class PackContext(ComputeContext):
    """TRISC2: waits for DST from MATH, packs tiles into output CBs in their format."""

    role = "pack"

    def __init__(self, *a):
        super().__init__(*a)
        self._c_pack = {f: self._c[f"cost.pack.{f.value}"] for f in formats.DataFormat}
        self._setup = _Setup(None, self._c["cost.pack.reconfig"])
        self._dst = None
        self._l1 = self._e.l1[self.core]

    def cb_reserve_back(self, cb, n):
        ln = self._th.pinned or caller_line()
        self._cb(cb, ln).reserve(self._th, n, ln)
        self._th.charge(self._c["cost.api.cb_reserve_back"], "cb_reserve_back", ln)

    def cb_push_back(self, cb, n):
        ln = self._th.pinned or caller_line()
        self._th.charge(self._c["cost.api.cb_push_back"], "cb_push_back", ln)
        self._cb(cb, ln).push(self._th, n, ln)

    def tile_regs_wait(self):
        ln = self._th.pinned or caller_line()
        th = self._th
        self._s.dst.wait(th, 1, ln)
        th.charge(self._c_tile_regs, "tile_regs_wait", ln)
        self._dst = self._s.dst.front()

    def tile_regs_release(self):
        ln = self._th.pinned or caller_line()
        th = self._th
        th.charge(self._c_tile_regs, "tile_regs_release", ln)
        self._s.dst.pop(th, 1, ln)
        self._dst = None

    def pack_tile(self, d, cb, out_index=None, accumulate=False):
        """Pack DST tile d into the next (or the out_index-th) reserved page of cb.

        With accumulate=True the packer adds to what the page holds (L1 accumulation).
        """
        ln = self._th.pinned or caller_line()
        self._dst_index(d, ln)
        if self._dst is None:
            raise TTSimError("pack_tile without DST: call tile_regs_wait() first",
                             core=self.core, thread=self._th.kind, line=ln)
        c = self._cb(cb, ln)
        k = c.pack_offset if out_index is None else out_index
        if k.__class__ is not int:
            k = c._page_index(k, self._th, ln, "pack_tile output index")
        addr = c.back_addr(k, self._th, ln)
        # the output format and L1 accumulation are packer configuration (pack_reconfig_*)
        self._setup.change(self._th, None, (c.fmt, accumulate), ln)
        self._th.charge(self._c_pack[c.fmt], "pack_tile", ln)
        tile = self._dst[d]
        seq = c.pushed + k
        slot = seq % c.capacity
        if accumulate:
            c.check_fresh(slot, seq, self._th, ln, "pack_tile(accumulate=True)")
            old = formats.decode_tiles(self._l1.mem[addr:addr + c.page_size], c.fmt, 1)[0]
            tile = old + tile
        c.check_overwrite(slot, self._th.t, self._th, ln, "pack_tile")
        self._l1.mem[addr:addr + c.page_size] = formats.encode_tiles(tile[None], c.fmt)
        c.wseq[slot] = seq
        if c.fmt is _BF16 and not (accumulate or self.cfg.fp32_acc):
            # a 16-bit DST tile packs to bf16 exactly: hand UNPACK the value with the page
            # (its decode cache, see UnpackContext._read) instead of making it decode it
            v = tile.copy()
            c.decoded[slot] = (seq, v, v)
        else:       # the page is new data (an accumulation keeps the page's number)
            c.decoded.pop(slot, None)
        if out_index is None:
            c.pack_offset += 1


class FusedCompute(ComputeContext):
    """The context a compute kernel sees when ttsim runs it once for all three threads.

    Each API call goes straight to the roles that act on it (cb_wait_front to UNPACK,
    matmul_tiles to UNPACK then MATH, pack_tile to PACK, ...), in program order, each role
    on its own clock with its own accounting. Timing is the same as running three copies of
    the kernel (the hand-offs between the roles are timestamped FIFOs), but the kernel runs
    once and never switches between the roles. The one difference: a role can never wait
    for a sibling that reaches a point later in program order (fifo.Fifo._self_wait).
    """

    def __init__(self, unpack, math, pack):
        self._e, self.core, self.my_x, self.my_y = unpack._e, unpack.core, unpack.my_x, unpack.my_y
        self._args, self._ct_args, self._cbs, self._c = unpack._args, unpack._ct_args, unpack._cbs, unpack._c
        self._th = unpack._th
        self._s, self.cfg = unpack._s, unpack.cfg
        self._roles = (unpack._th, math._th, pack._th)
        self._roles_ctx = (unpack, math, pack)
        self._groups = {}        # plan -> its groups resolved for this core (ttsim.group)
        for name in _API:
            acts = [ctx for ctx in (unpack, math, pack) if name in type(ctx).__dict__]
            setattr(self, name, _fan_out(*(getattr(c, name) for c in acts)))

    @property
    def kind(self):
        return "compute"

    def run_groups(self, plan):
        return group.run(self, plan)

    def _pin_threads(self):
        return self._roles

    @property
    def role(self):
        raise TTSimError("k.role: this compute kernel runs once for UNPACK, MATH and PACK together; "
                         "a kernel that does per-thread work needs Program.compute(..., fused=False)",
                         core=self.core, thread="compute", line=caller_line())


_API = ("cb_wait_front", "cb_pop_front", "cb_reserve_back", "cb_push_back", "tile_regs_acquire",
        "tile_regs_commit", "tile_regs_wait", "tile_regs_release", "copy_tile",
        "copy_block_matmul_partials", "matmul_tiles",
        "matmul_block", "binary_tiles", "binary_dest_reuse_tiles", "reduce_tile", "transpose_wh_tile",
        "unary_bcast", "sfpu_unary", "sfpu_binary", "fill_tile", "copy_dest_values", "pack_tile")


def _fan_out(*fns):
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f0, f1 = fns

        def both(*a, **kw):
            f0(*a, **kw)
            return f1(*a, **kw)
        return both
    raise AssertionError(fns)
