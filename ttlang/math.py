"""`ttl.math`: block operations. Each returns an expression node; nothing runs until a
`store` lowers the whole expression."""
from __future__ import annotations

from .errors import CompileError
from .expr import APPROX_MODES, UNARY_OPS, Bcast, Binary, Fill, Matmul, Reduce, Transpose, Unary, as_node


def _unary(op):
    def f(x, approx=None):
        return Unary.make(op, x, approx)
    f.__name__ = op
    f.__doc__ = f"Elementwise {op} on the SFPU." + (
        f" approx= picks the chip's algorithm ({', '.join(repr(k) for k in APPROX_MODES[op])}; "
        "default: the kernel's)." if op in APPROX_MODES else "")
    return f


for _op in UNARY_OPS:
    globals()[_op] = _unary(_op)
reciprocal = globals()["recip"]
negative = globals()["neg"]


def max(a, b):  # noqa: A001 - TT-Lang's name
    return Binary.make("max", a, b)


def min(a, b):  # noqa: A001
    return Binary.make("min", a, b)


def matmul(a, b):
    return Matmul.make(a, b)


def reduce_max(x, dims=(1,)):
    return Reduce.make("max", x, dims)


def reduce_sum(x, dims=(1,)):
    return Reduce.make("sum", x, dims)


def broadcast(x, dims=(1,)):
    """Spread x along `dims` to the shape of the other operand: dims=[1] spreads column 0
    across columns (a row reduction's result), dims=[0] spreads row 0 down, [0, 1] a scalar."""
    x = as_node(x)
    dims = tuple(sorted(dims))
    dim = {(1,): "col", (0,): "row", (0, 1): "scalar"}.get(dims)
    if dim is None:
        raise CompileError(f"broadcast dims must be [0], [1] or [0, 1]; got {list(dims)}")
    return Bcast(x, None, dim)


def transpose(x):
    return Transpose.make(x)


def fill(shape_like, value):
    shape = shape_like.shape if hasattr(shape_like, "shape") else tuple(shape_like)
    return Fill(shape, value)


def __getattr__(name):
    raise CompileError(f"ttl.math has no op '{name}'. Unary: {', '.join(UNARY_OPS)}; binary: max, "
                       "min, matmul; reduce_max, reduce_sum, broadcast, transpose, fill")
