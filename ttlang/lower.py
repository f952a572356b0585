"""Lowering a block statement (`blk.store(expr)`) to low-level ttsim compute code.

The compiler decides, per statement:
- which unit runs each op: FPU for matmul, reductions, transposes and add/sub/mul whose
  operands sit in buffers; SFPU for unary ops and for binary ops between DST registers;
- what must be materialised first: the FPU reads its operands from circular buffers, so an
  operand of a matmul, reduction, transpose or broadcast that is itself an expression is
  computed into a compiler-owned spill buffer in L1 and read back;
- DST allocation: each output tile needs a window of registers (one per value the tree
  produces); as many output tiles as fit share one tile_regs_acquire; a tree that needs
  more registers than DST has gets its largest subtree spilled until it fits;
- the tile-register handshake between MATH and PACK around each group.

It returns Python source for a function of the kernel context `k`, so the user can read
exactly what their statement became (`ttlang show`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ttsim.group import GroupPlan

from .errors import CompileError
from .expr import (Bcast, Binary, Const, Fill, Leaf, Matmul, Node, Reduce, Transpose, Unary, _bshape,
                   children)

FPU_BINARY = ("add", "sub", "mul")


@dataclass
class Lowered:
    source: str
    fn_name: str
    spill_pages: list = field(default_factory=list)   # pages of each intermediate
    uses_scaler: bool = False
    plans: list = field(default_factory=list)         # the source's _plans: its DST groups' ops


def _is_leaf(n):
    return isinstance(n, Leaf)


def _fpu_pair(n):
    """Binary op the FPU does straight from two buffers (B optionally broadcast)."""
    return (isinstance(n, Binary) and n.op in FPU_BINARY and _is_leaf(n.x) and
            (_is_leaf(n.y) or (isinstance(n.y, Bcast) and _is_leaf(n.y.x))))


def regs(n):
    """DST registers one output tile of n needs (every produced value gets a fresh one)."""
    if isinstance(n, (Leaf, Fill, Matmul, Reduce, Bcast, Transpose)):
        return 1
    if isinstance(n, Const):
        return 1
    if isinstance(n, Unary):
        return regs(n.x)
    if isinstance(n, Binary):
        if _fpu_pair(n):
            return 1
        if isinstance(n.y, Const) and n.op in ("mul", "div"):
            return regs(n.x)
        if n.op in FPU_BINARY and _is_leaf(n.y):
            return regs(n.x)
        if n.op in FPU_BINARY and _is_leaf(n.x):
            return regs(n.y)
        return regs(n.x) + regs(n.y)
    raise CompileError(f"cannot lower {type(n).__name__}")


class Compiler:
    """Lowers statements for one kernel; spill buffers and the scaler buffer are shared."""

    def __init__(self, dst_tiles, scaler_cb, spill_base, max_cbs, modes=None):
        self.dst_tiles, self.scaler_cb, self.spill_base, self.max_cbs = \
            dst_tiles, scaler_cb, spill_base, max_cbs
        self.modes = dict(modes or {})     # op -> the kernel's default SFPU mode
        self.cache: dict[str, Lowered] = {}
        self.spill_pages: list[int] = []
        self.uses_scaler = False
        self.count = 0

    # --- preparing the tree -------------------------------------------------------------
    def _spill(self, n, spills):
        key = n.key()
        for slot, sub in enumerate(spills):     # the same value spilled once (CSE)
            if sub.key() == key:
                return Leaf(self.spill_base + slot, n.shape, f"spill{slot}")
        slot = len(spills)
        if self.spill_base + slot >= self.max_cbs:
            raise CompileError(f"the statement needs {slot + 1} intermediate buffers but only "
                               f"{self.max_cbs - self.spill_base} CBs are left on the core: "
                               "split it into several statements through your own buffers")
        spills.append(n)
        return Leaf(self.spill_base + slot, n.shape, f"spill{slot}")

    def _spill_cbs(self, pages):
        """The spill CB of each of a statement's intermediates (`pages` tiles each). A spill CB
        holds intermediates of one size only: a CB's pointer is where its last statement left
        it, and a reservation must not run past the CB's end (tt-metal's CBs wrap only
        between pushes), so a 2-tile intermediate cannot follow a 1-tile one in a 2-page CB.
        Each intermediate takes the lowest spill CB of its size this statement does not use
        yet, or a new one."""
        used, cbs = set(), []
        for pg in pages:
            i = next((i for i, p in enumerate(self.spill_pages) if p == pg and i not in used), None)
            if i is None:
                i = len(self.spill_pages)
                if self.spill_base + i >= self.max_cbs:
                    raise CompileError(
                        f"the kernel's statements need {i + 1} intermediate buffers (one per "
                        "intermediate a statement holds at once, for each size of intermediate) but "
                        f"only {self.max_cbs - self.spill_base} CBs are left on the core: split the "
                        "statements through your own buffers")
                self.spill_pages.append(pg)
            used.add(i)
            cbs.append(self.spill_base + i)
        return cbs

    def _prepare(self, n, spills):
        """Rewrite n so every FPU operand that must come from L1 is a Leaf (spilling if not)."""
        if isinstance(n, (Leaf, Const, Fill)):
            return n
        if isinstance(n, Unary):
            return Unary(n.op, self._prepare(n.x, spills), n.mode or self.modes.get(n.op))
        if isinstance(n, Binary):
            return Binary(n.op, self._prepare(n.x, spills), self._prepare(n.y, spills), n.shape)
        if isinstance(n, Matmul):
            x = self._prepare(n.x, spills)
            y = self._prepare(n.y, spills)
            if not _is_leaf(x):
                x = self._spill(x, spills)
            if not (_is_leaf(y) or (isinstance(y, Transpose) and _is_leaf(y.x))):
                y = self._spill(y, spills)
            return Matmul(x, y)
        if isinstance(n, (Reduce, Transpose, Bcast)):
            x = self._prepare(n.x, spills)
            if not _is_leaf(x):
                x = self._spill(x, spills)
            if isinstance(n, Reduce):
                y = getattr(n, "y", None)
                if y is not None:
                    y = self._prepare(y, spills)
                    if not _is_leaf(y):
                        y = self._spill(y, spills)
                return Reduce(n.op, x, n.dims, y)
            if isinstance(n, Transpose):
                return Transpose(x)
            return Bcast(x, n.shape, n.dim)
        raise CompileError(f"cannot lower {type(n).__name__}")

    def _fit(self, n, spills):
        """Spill the largest subtrees until one output tile fits in DST."""
        while regs(n) > self.dst_tiles:
            best, path = None, None
            stack = [(n, None, None)]
            while stack:
                m, parent, attr = stack.pop()
                if m is not n and not isinstance(m, (Leaf, Const)) and regs(m) > 1:
                    if best is None or regs(m) > regs(best):
                        best, path = m, (parent, attr)
                for a in ("x", "y"):
                    if hasattr(m, a):
                        stack.append((getattr(m, a), m, a))
            if best is None:
                raise CompileError(f"an output tile needs {regs(n)} DST registers and DST holds "
                                   f"{self.dst_tiles}; no subtree can be spilled")
            sub = self._fit(best, spills)
            setattr(path[0], path[1], self._spill(sub, spills))
        return n

    # --- code generation ----------------------------------------------------------------
    def _gen(self, n, out, base, lines, ind):
        """Emit code leaving n's value for output tile (i, j) in register b+base; returns
        the next free register offset. `out` is the output shape (R, C)."""
        p = " " * ind
        off, ops = base * self._per, self._ops
        if isinstance(n, Leaf):
            lines.append(f"{p}k.copy_tile({n.cb}, {_idx(n, 'i', 'j')}, {self._reg(base)})")
            ops.append(("copy", n.cb, _form(n), off))
            return base + 1
        if isinstance(n, (Const, Fill)):
            lines.append(f"{p}k.fill_tile({self._reg(base)}, {_num(n.value)})")
            ops.append(("fill", float(n.value), off))
            return base + 1
        if isinstance(n, Bcast):
            lines.append(f"{p}k.unary_bcast({n.x.cb}, {_bidx(n)}, {self._reg(base)}, {n.dim!r})")
            ops.append(("bcast", n.x.cb, _BIDX_FORM[_bidx(n)], off, n.dim))
            return base + 1
        if isinstance(n, Transpose):
            lines.append(f"{p}k.transpose_wh_tile({n.x.cb}, {n.x.shape[1]} * j + i, {self._reg(base)})")
            ops.append(("transpose", n.x.cb, (1, n.x.shape[1], 0, 0), off))
            return base + 1
        if isinstance(n, Matmul):
            self._matmuls.append((n, base))       # computed for the whole group: _matmul_block
            return base + 1
        if isinstance(n, Reduce):
            sc = getattr(n, "y", None)
            if sc is None:
                self.uses_scaler = True
            scaler_cb = self.scaler_cb if sc is None else sc.cb
            r, c = n.x.shape
            dim = {(1,): "row", (0,): "col", (0, 1): "scalar"}[n.dims]
            if dim == "row":
                lines.append(f"{p}for kk in range({c}):")
                idx, count, form = f"i * {c} + kk", c, (c, 0, 1, 0)
            elif dim == "col":
                lines.append(f"{p}for kk in range({r}):")
                idx, count, form = f"kk * {c} + j", r, (0, 1, c, 0)
            else:
                lines.append(f"{p}for kk in range({r * c}):")
                idx, count, form = "kk", r * c, (0, 0, 1, 0)
            lines.append(f"{p}    k.reduce_tile({n.x.cb}, {scaler_cb}, {idx}, 0, {self._reg(base)}, "
                         f"{n.op!r}, {dim!r})")
            ops.append(("reduce", n.x.cb, scaler_cb, count, form, off, n.op, dim))
            return base + 1
        if isinstance(n, Unary):
            nxt = self._gen(n.x, out, base, lines, ind)
            mode = f", mode={n.mode!r}" if n.mode else ""
            lines.append(f"{p}k.sfpu_unary({n.op!r}, {self._reg(base)}{mode})")
            ops.append(("sfpu", n.op, off, n.mode or None, ()))
            return nxt
        if isinstance(n, Binary):
            return self._gen_binary(n, out, base, lines, ind)
        raise CompileError(f"cannot lower {type(n).__name__}")

    def _gen_binary(self, n, out, base, lines, ind):
        p = " " * ind
        x, y, op = n.x, n.y, n.op
        off, ops = base * self._per, self._ops
        if _fpu_pair(n):
            if isinstance(y, Bcast):
                lines.append(f"{p}k.binary_tiles({op!r}, {x.cb}, {y.x.cb}, {_idx(x, 'i', 'j')}, "
                             f"{_bidx(y)}, {self._reg(base)}, {y.dim!r})")
                ops.append(("binary", op, x.cb, y.x.cb, _form(x), _BIDX_FORM[_bidx(y)], off, y.dim))
            else:
                lines.append(f"{p}k.binary_tiles({op!r}, {x.cb}, {y.cb}, {_idx(x, 'i', 'j')}, "
                             f"{_idx(y, 'i', 'j')}, {self._reg(base)})")
                ops.append(("binary", op, x.cb, y.cb, _form(x), _form(y), off, "none"))
            return base + 1
        if isinstance(y, Const) and op in ("mul", "div"):
            nxt = self._gen(x, out, base, lines, ind)
            # x / 0 is x * inf on the SFPU too (+-inf, NaN for 0), not a Python error
            if op == "mul":
                s = y.value
            else:
                with np.errstate(divide="ignore"):
                    s = float(np.float64(1.0) / np.float64(y.value))
            lines.append(f"{p}k.sfpu_unary('scale', {self._reg(base)}, {_num(s)})")
            ops.append(("sfpu", "scale", off, None, (s,)))
            return nxt
        if op in FPU_BINARY and _is_leaf(y):
            nxt = self._gen(x, out, base, lines, ind)
            lines.append(f"{p}k.binary_dest_reuse_tiles({op!r}, {y.cb}, {_idx(y, 'i', 'j')}, "
                         f"{self._reg(base)}, 'a')")
            ops.append(("reuse", op, y.cb, _form(y), off, "a"))
            return nxt
        if op in FPU_BINARY and _is_leaf(x):
            nxt = self._gen(y, out, base, lines, ind)
            lines.append(f"{p}k.binary_dest_reuse_tiles({op!r}, {x.cb}, {_idx(x, 'i', 'j')}, "
                         f"{self._reg(base)}, 'b')")
            ops.append(("reuse", op, x.cb, _form(x), off, "b"))
            return nxt
        mid = self._gen(x, out, base, lines, ind)
        nxt = self._gen(y, out, mid, lines, ind)
        lines.append(f"{p}k.sfpu_binary({op!r}, {self._reg(base)}, {self._reg(mid)}, {self._reg(base)})")
        ops.append(("sfpu_binary", op, off, mid * self._per, off))
        return nxt

    def _reg(self, slot):
        """DST register of value `slot` for the current tile: slot-major ("planes"), so a
        value's registers for the group's tiles are consecutive (what matmul_block fills)."""
        off = slot * self._per
        return f"b + {off}" if off else "b"

    def _matmul_block(self, n, slot, c, lines, ind):
        """One matmul for the group's whole rectangle of output tiles: per K step, one
        matmul_block that unpacks each operand tile once for the rectangle."""
        p = " " * ind
        x, y = n.x, n.y
        kt = x.shape[1]
        rt, ct = (f"min({self._per // c}, {x.shape[0]} - i0)", c) if self._per >= c else ("1", self._per)
        lines.append(f"{p}for kk in range({kt}):")
        if isinstance(y, Transpose):     # in1 holds the tiles of B^T's rows: column j is row j
            lines.append(f"{p}    k.matmul_block({x.cb}, {y.x.cb}, i0 * {kt} + kk, j0 * {kt} + kk, "
                         f"{slot * self._per}, True, {ct}, {rt}, {kt}, in1_stride={kt})")
            self._mm_ops.append(("matmul", x.cb, y.x.cb, kt, True, (kt, 1, 0), (kt, 1, 0),
                                 slot * self._per, kt))
        else:
            lines.append(f"{p}    k.matmul_block({x.cb}, {y.cb}, i0 * {kt} + kk, kk * {y.shape[1]} + j0, "
                         f"{slot * self._per}, False, {ct}, {rt}, {kt})")
            self._mm_ops.append(("matmul", x.cb, y.cb, kt, False, (kt, 1, 0), (1, y.shape[1], 0),
                                 slot * self._per, 1))

    def _store_code(self, n, cb, shape, acc, lines, spill):
        r, c = shape
        ntiles = r * c
        w = regs(n)
        per = max(1, min(ntiles, self.dst_tiles // w))
        if _has_matmul(n):      # groups must be rectangles of output tiles for matmul_block
            per = per // c * c if per >= c else max(d for d in range(1, per + 1) if c % d == 0)
        self._per, self._matmuls, self._ops, self._mm_ops = per, [], [], []
        body = []
        self._gen(n, shape, 0, body, 12)
        if spill:
            lines.append(f"    k.cb_reserve_back({cb}, {ntiles})")
        # the groups as one call (ttsim.group); the loop below is what it stands for, and
        # what runs where the call cannot (a trace, a kernel run per thread)
        lines.append(f"    if not k.run_groups(_plans[{len(self._plans)}]):")
        loop = [f"for t0 in range(0, {ntiles}, {per}):", "    k.tile_regs_acquire()"]
        if self._matmuls:
            loop.append(f"    i0, j0 = divmod(t0, {c})")
            for mm, slot in self._matmuls:
                self._matmul_block(mm, slot, c, loop, 4)
        if any(not ln.lstrip().startswith("#") for ln in body):
            loop.append(f"    for t in range(t0, min(t0 + {per}, {ntiles})):")
            loop.append(f"        i, j = divmod(t, {c})")
            loop.append("        b = t - t0")
            loop.extend(ln[4:] for ln in body)
        loop.append("    k.tile_regs_commit()")
        loop.append("    k.tile_regs_wait()")
        loop.append(f"    for t in range(t0, min(t0 + {per}, {ntiles})):")
        loop.append(f"        k.pack_tile(t - t0, {cb}, t{', accumulate=True' if acc else ''})")
        loop.append("    k.tile_regs_release()")
        lines.extend(" " * 8 + ln for ln in loop)
        self._plans.append(GroupPlan(ntiles, c, per, self._mm_ops, self._ops, cb, acc))
        if spill:
            lines.append(f"    k.cb_push_back({cb}, {ntiles})")
            lines.append(f"    k.cb_wait_front({cb}, {ntiles})")

    def lower_store(self, expr: Node, out_cb, out_shape, acc=False) -> Lowered:
        if isinstance(expr, Bcast) and expr.shape is None:
            # an open broadcast stored as it is takes the shape of the block it goes into
            expr = Bcast.to(expr, _bshape(expr, Fill(out_shape, 0.0), "store"))
        if expr.shape is None:
            raise CompileError("store of a plain number: use ttl.math.fill(block, value)")
        if tuple(expr.shape) != tuple(out_shape):
            raise CompileError(f"store of a {expr.shape[0]}x{expr.shape[1]}-tile expression into a "
                               f"{out_shape[0]}x{out_shape[1]}-tile block: shapes must match")
        key = f"{expr.key()}->{out_cb}{tuple(out_shape)}{acc}"
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        spills: list[Node] = []
        self._plans = []
        n = self._prepare(expr, spills)
        n = self._fit(n, spills)
        for s, sub in enumerate(spills):
            _reuse(sub, spills[:s], self.spill_base)
        _reuse(n, spills, self.spill_base)
        pages = [sub.shape[0] * sub.shape[1] for sub in spills]
        cbs = self._spill_cbs(pages)
        _renumber([n, *spills], self.spill_base, cbs)
        self.count += 1
        name = f"_store_{self.count}"
        lines = [f"def {name}(k):"]
        for s, sub in enumerate(spills):
            lines.append(f"    # intermediate {s}: {sub.shape[0]}x{sub.shape[1]} tiles into spill cb "
                         f"{cbs[s]}")
            self._store_code(sub, cbs[s], sub.shape, False, lines, True)
        lines.append(f"    # result into cb {out_cb}")
        self._store_code(n, out_cb, tuple(out_shape), acc, lines, False)
        for s, sub in enumerate(spills):
            lines.append(f"    k.cb_pop_front({cbs[s]}, {sub.shape[0] * sub.shape[1]})")
        low = Lowered("\n".join(lines) + "\n", name, pages, self.uses_scaler, self._plans)
        self.cache[key] = low
        return low


def _renumber(roots, base, cbs):
    """Point the spill leaves of the trees at `roots` (numbered base + slot while the
    statement was prepared) at their spill CBs `cbs[slot]`."""
    if all(cb == base + s for s, cb in enumerate(cbs)):
        return
    seen, stack = set(), list(roots)
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        if isinstance(m, Leaf):
            if base <= m.cb < base + len(cbs):
                m.cb = cbs[m.cb - base]
            continue
        stack.extend(c for c in (getattr(m, "x", None), getattr(m, "y", None)) if c is not None)


def _reuse(n, spills, base):
    """Common subexpressions: every operand of n (in place) that computes a value already
    spilled reads the spill buffer instead of computing it again."""
    keys = {sub.key(): slot for slot, sub in enumerate(spills)}
    if not keys:
        return
    stack = [n]
    while stack:
        m = stack.pop()
        for a in ("x", "y"):
            c = getattr(m, a, None)
            if c is None or isinstance(c, (Leaf, Const)):
                continue
            slot = keys.get(c.key())
            if slot is not None:
                setattr(m, a, Leaf(base + slot, c.shape, f"spill{slot}"))
            else:
                stack.append(c)


def _has_matmul(n):
    return isinstance(n, Matmul) or any(_has_matmul(m) for m in children(n))


def _num(v):
    """A float as Python source, infinities and NaN included."""
    return f"float('{v}')" if v != v or v in (float("inf"), float("-inf")) else repr(v)


def _idx(leaf, i, j):
    return f"{i} * {leaf.shape[1]} + {j}"


def _form(leaf):
    """_idx(leaf, 'i', 'j') as a GroupPlan index form."""
    return (leaf.shape[1], 1, 0, 0)


_BIDX_FORM = {"i": (1, 0, 0, 0), "j": (0, 1, 0, 0), "0": (0, 0, 0, 0)}


def _bidx(b):
    """Tile index inside a broadcast leaf for output tile (i, j)."""
    r, c = b.x.shape
    if b.dim == "col":
        return "i" if c == 1 and r > 1 else ("0" if r == 1 else "i")
    if b.dim == "row":
        return "j" if r == 1 and c > 1 else "0"
    return "0"
