"""Block expressions: the tree a compute statement builds before it is lowered to tile ops.

Shapes are in tiles, (rows, cols). Broadcasting follows the hardware's convention: a block
of one tile column (a row reduction's result) carries its values in column 0 of each tile
and broadcasts across columns; one tile row (a column reduction) carries row 0 and
broadcasts down; a single tile carries [0, 0] and broadcasts everywhere.
"""
from __future__ import annotations

import numpy as np

from .errors import CompileError

UNARY_OPS = ("exp", "exp2", "log", "sqrt", "rsqrt", "recip", "tanh", "sigmoid", "relu", "gelu",
             "silu", "abs", "neg", "square", "sin", "cos")
BINARY_OPS = ("add", "sub", "mul", "div", "max", "min")


class Node:
    shape: tuple

    def __add__(self, o): return Binary.make("add", self, o)
    def __radd__(self, o): return Binary.make("add", o, self)
    def __sub__(self, o): return Binary.make("sub", self, o)
    def __rsub__(self, o): return Binary.make("sub", o, self)
    def __mul__(self, o): return Binary.make("mul", self, o)
    def __rmul__(self, o): return Binary.make("mul", o, self)
    def __truediv__(self, o): return Binary.make("div", self, o)
    def __rtruediv__(self, o): return Binary.make("div", o, self)
    def __neg__(self): return Unary("neg", self)
    def __abs__(self): return Unary("abs", self)
    def __matmul__(self, o): return Matmul.make(self, o)

    def __pow__(self, p):
        if p.__class__ is int and p == 2:
            return Unary("square", self)
        if p.__class__ is int and p == 1:
            return self
        raise CompileError(f"x ** {p!r}: the SFPU has square (x ** 2); other powers are not "
                           "ops of ttl.math (write x * x * x, or exp(p * log(x)) for x > 0)")

    def _compare(self, o):
        raise CompileError("comparing blocks (<, <=, >, >=, ==, !=) is not a ttl.math op: their "
                           "values exist only on the device; use ttl.math.max / min, or relu of a "
                           "difference, for a data-dependent choice")

    __lt__ = __le__ = __gt__ = __ge__ = _compare
    __eq__ = __ne__ = _compare
    __hash__ = object.__hash__

    # the seed's method forms
    def transpose(self): return Transpose.make(self)
    def exp(self): return Unary("exp", self)
    def sqrt(self): return Unary("sqrt", self)
    def recip(self): return Unary("recip", self)
    def rowmax(self): return Reduce.make("max", self, (1,))
    def rowsum(self): return Reduce.make("sum", self, (1,))
    def colmax(self): return Reduce.make("max", self, (0,))
    def colsum(self): return Reduce.make("sum", self, (0,))

    def __bool__(self):
        raise CompileError("a block expression has no truth value (its values exist only on the "
                           "device); use Python conditions on indices, not on data")

    @property
    def T(self): return self.transpose()


def as_node(x, like=None):
    if isinstance(x, Node):
        dead = getattr(x, "dead", None)
        if dead:
            raise CompileError(dead)
        if not getattr(x, "readable", True):
            raise CompileError(f"reads {x.name}, a block that was reserved, not waited for: its "
                               "data is not there yet (use a block from .wait())")
        return x
    if isinstance(x, (int, float, np.integer, np.floating)):     # numpy scalars too
        return Const(float(x))
    raise CompileError(f"cannot use {type(x).__name__} in a block expression "
                       "(use blocks from buffers, Python numbers, or ttl.math ops)")


class Leaf(Node):
    """A block waited for in a dataflow buffer: tiles live in CB `cb`, row-major."""

    def __init__(self, cb, shape, name):
        self.cb, self.shape, self.name = cb, tuple(shape), name

    def key(self):
        return f"L{self.cb}{self.shape}"


class Const(Node):
    shape = None   # broadcasts to anything

    def __init__(self, value):
        self.value = value

    def key(self):
        return f"C{self.value!r}"


class Fill(Node):
    def __init__(self, shape, value):
        if value.__class__ is bool or not isinstance(value, (int, float, np.integer, np.floating)):
            raise CompileError(f"ttl.math.fill value {value!r}: a fill value is a real number")
        self.shape, self.value = tuple(shape), float(value)

    def key(self):
        return f"F{self.shape}{self.value!r}"


# ops the SFPU runs in several modes (ttsim.compute.SFPU_MODES); `approx=` picks one
APPROX_MODES = {"exp": {True: "fast", False: "accurate", "fast": "fast", "approx": "approx",
                        "accurate": "accurate"}}
for _op in ("recip", "sqrt", "rsqrt", "sigmoid"):
    APPROX_MODES[_op] = {True: "approx", False: "accurate", "approx": "approx", "accurate": "accurate"}


def need_shape(x, what):
    """x's block shape, or a CompileError saying why it has none (a number, an open broadcast)."""
    if x.shape is not None:
        return x.shape
    if isinstance(x, Bcast):
        raise CompileError(f"{what} of a broadcast whose shape is still open: ttl.math.broadcast(x, "
                           "dims=...) takes its shape from the other operand of a binary op or the "
                           f"block it is stored into; apply {what} before broadcasting, or give the "
                           "broadcast a shape with ttl.math.broadcast(x, like, dims)")
    raise CompileError(f"{what} of a plain number: compute it in Python instead")


class Unary(Node):
    """An SFPU op; `mode` is the chip's algorithm for ops that have several (None: the
    kernel's default, fixed when the statement is compiled)."""

    def __init__(self, op, x, mode=None):
        if op not in UNARY_OPS:
            raise CompileError(f"unknown unary op '{op}'; the hardware has: {', '.join(UNARY_OPS)}")
        self.op, self.x, self.mode = op, as_node(x), mode
        self.shape = need_shape(self.x, op)

    @classmethod
    def make(cls, op, x, approx=None):
        if approx is None:
            return cls(op, x)
        modes = APPROX_MODES.get(op)
        if modes is None:
            raise CompileError(f"{op} has one mode on the chip; approx= applies to "
                               f"{', '.join(APPROX_MODES)}")
        try:
            return cls(op, x, modes[approx])
        except (KeyError, TypeError):
            raise CompileError(f"{op}(approx={approx!r}): use one of "
                               f"{', '.join(repr(k) for k in modes)}") from None

    def key(self):
        return f"{self.op}{'<' + self.mode + '>' if self.mode else ''}({self.x.key()})"


def _partial(n):
    """What n fixes of a binary op's shape: its shape; for an open broadcast its extent along
    the dimensions it does not broadcast (None along the ones it does); (None, None) for a number."""
    if n.shape is not None:
        return n.shape
    if isinstance(n, Bcast):
        r, c = n.x.shape
        return {"col": (r, None), "row": (None, c)}.get(n.dim, (None, None))
    return (None, None)


def _bshape(x, y, what):
    """Result shape of an elementwise op between nodes x and y, or a CompileError. Along each
    dimension: an open broadcast takes the other operand's extent; otherwise the extents must
    match or one must be 1 tile. So a column broadcast times a row broadcast is their outer
    product."""
    a, b = _partial(x), _partial(y)
    out = []
    for d, (p, q) in enumerate(zip(a, b)):
        if p is None or q is None:
            out.append(q if p is None else p)
        elif p == q or q == 1:
            out.append(p)
        elif p == 1:
            out.append(q)
        else:
            raise CompileError(f"{what}: block shapes {x.shape or a} and {y.shape or b} (in tiles) do "
                               "not match and cannot broadcast (one must be 1 tile along each "
                               "differing dimension)")
    if None in out:
        if isinstance(x, Const) and isinstance(y, Const):
            raise CompileError(f"{what} of two plain numbers: compute it in Python instead")
        d = "rows" if out[0] is None else "columns"
        raise CompileError(f"{what}: cannot tell the block's number of tile {d}: both operands "
                           "broadcast along it (or one is a plain number); give one of them a shape "
                           "with ttl.math.broadcast(x, like, dims), like= a block of the shape you want")
    return tuple(out)


def _stat(n):
    """(dims, reduced operand) if n is a reduction's result (a Reduce, or a unary op or a
    number applied to one), else None."""
    while True:
        if isinstance(n, Reduce):
            return n.dims, n.x
        if isinstance(n, Unary):
            n = n.x
        elif isinstance(n, Binary) and isinstance(n.y, Const):
            n = n.x
        elif isinstance(n, Binary) and isinstance(n.x, Const):
            n = n.y
        else:
            return None


def _is_data_of(n, src):
    """Whether n computes from data rather than statistics: it holds a matmul, or the block
    `src` a statistic was reduced from (reductions inside n not counted)."""
    key, stack = src.key(), [n]
    while stack:
        m = stack.pop()
        if isinstance(m, Reduce):
            continue
        if isinstance(m, Matmul) or m.key() == key:
            return True
        stack.extend(c for c in (getattr(m, "x", None), getattr(m, "y", None)) if c is not None)
    return False


def _stat_bcast(s, other):
    """A reduction's result s combined with data of its own shape (a block one tile wide
    for a row reduction, `S - S.rowmax()` with S one tile): the statistic broadcasts, as it
    does against a wider block. Elementwise, its other columns (rows) would meet the data."""
    st = _stat(s)
    if st is None or _stat(other) is not None or not _is_data_of(other, st[1]):
        return s
    dim = {(1,): "col", (0,): "row", (0, 1): "scalar"}[st[0]]
    return Bcast(s, s.shape, dim)


class Binary(Node):
    def __init__(self, op, x, y, shape):
        self.op, self.x, self.y, self.shape = op, x, y, shape

    @classmethod
    def make(cls, op, x, y):
        x, y = as_node(x), as_node(y)
        if isinstance(x, Const) and isinstance(y, Const):
            raise CompileError(f"{op} of two plain numbers: compute it in Python instead")
        shape = _bshape(x, y, op)
        x, y = Bcast.to(x, shape), Bcast.to(y, shape)
        if x.shape == y.shape:
            x, y = _stat_bcast(x, y), _stat_bcast(y, x)
        return cls(op, x, y, shape)

    def key(self):
        return f"{self.op}({self.x.key()},{self.y.key()})"


class Bcast(Node):
    """x broadcast to `shape`: "col" spreads column 0 across columns, "row" spreads row 0
    down, "scalar" spreads element [0, 0]. An explicit `ttl.math.broadcast` leaves the shape
    open (None) until a binary op fixes it."""

    def __init__(self, x, shape, dim):
        self.x, self.shape, self.dim = x, (tuple(shape) if shape else None), dim

    @staticmethod
    def dim_for(x, shape):
        if isinstance(x, Reduce):
            return {(1,): "col", (0,): "row", (0, 1): "scalar"}[x.dims]
        (r, c), (R, C) = x.shape, shape
        if r == 1 and c == 1:
            return "col" if R == 1 else ("row" if C == 1 else "scalar")
        return "col" if c == 1 else "row"

    @staticmethod
    def to(x, shape):
        if isinstance(x, Bcast) and x.shape is None:
            return Bcast(x.x, shape, x.dim)      # _bshape checked it fits
        if x.shape is None or x.shape == shape:
            return x
        return Bcast(x, shape, Bcast.dim_for(x, shape))

    def key(self):
        return f"B{self.dim}{self.shape}({self.x.key()})"


class Matmul(Node):
    def __init__(self, x, y):
        self.x, self.y = x, y
        self.shape = (x.shape[0], y.shape[1])

    @classmethod
    def make(cls, x, y):
        x, y = as_node(x), as_node(y)
        if isinstance(x, Const) or isinstance(y, Const):
            raise CompileError("@ needs two blocks, not a number")
        need_shape(x, "matmul"), need_shape(y, "matmul")
        if x.shape[1] != y.shape[0]:
            raise CompileError(f"matmul of blocks {x.shape} @ {y.shape} (in tiles): inner "
                               f"dimensions {x.shape[1]} and {y.shape[0]} differ")
        return cls(x, y)

    def key(self):
        return f"mm({self.x.key()},{self.y.key()})"


def norm_dims(dims):
    """dims as a tuple of 0 and 1; -1 is the last dim (1) and -2 the one before, as torch
    counts; an int is one dim."""
    if isinstance(dims, int) and not isinstance(dims, bool):
        dims = (dims,)
    return tuple(d + 2 if isinstance(d, int) and -2 <= d < 0 else d for d in dims)


class Reduce(Node):
    """A reduction of x; `y`, if given, is the scaler block (TT-Lang's reduce_sum(x, scaler,
    dims)): the FPU reduces x times its tile 0's element [0, 0], as reduce_tile does with its
    scaler CB. Without one the compiler's own scaler tile of 1.0 is used."""

    def __init__(self, op, x, dims, y=None):
        self.op, self.x, self.dims = op, x, tuple(sorted(dims))
        if y is not None:
            self.y = y
        r, c = x.shape
        self.shape = (1 if 0 in self.dims else r, 1 if 1 in self.dims else c)

    @classmethod
    def make(cls, op, x, dims, scaler=None):
        x = as_node(x)
        if isinstance(dims, (str, bytes)) or not (hasattr(dims, "__iter__") or
                                                  isinstance(dims, int) and not isinstance(dims, bool)):
            raise CompileError(f"reduce_{op} dims must be [0], [1] or [0, 1]; got {dims!r}")
        dims = norm_dims(dims)
        if not dims or any(d not in (0, 1) or d.__class__ is bool for d in dims):
            raise CompileError(f"reduce_{op} dims must be [0], [1] or [0, 1]; got {list(dims)}")
        need_shape(x, f"reduce_{op}")
        if scaler is None:
            return cls(op, x, dims)
        s = as_node(scaler)
        if isinstance(s, Const):
            # a number: scale the result (max of x * s for s < 0 is s times x's minimum)
            if op == "max" and s.value < 0:
                return Unary("neg", cls(op, Unary("neg", x), dims)) * s.value
            return cls(op, x, dims) * s.value
        need_shape(s, f"reduce_{op}'s scaler")
        return cls(op, x, dims, s)

    def key(self):
        sc = f",s={self.y.key()}" if hasattr(self, "y") else ""
        return f"r{self.op}{self.dims}({self.x.key()}{sc})"


class Transpose(Node):
    def __init__(self, x):
        self.x = x
        self.shape = (x.shape[1], x.shape[0])

    @classmethod
    def make(cls, x):
        x = as_node(x)
        if isinstance(x, Transpose):
            return x.x
        need_shape(x, "transpose")
        return cls(x)

    def key(self):
        return f"T({self.x.key()})"


def children(n):
    return [getattr(n, a) for a in ("x", "y") if hasattr(n, a)]
