"""`ttl.math`: block operations. Each returns an expression node; nothing runs until a
`store` lowers the whole expression."""
from __future__ import annotations

from .errors import CompileError
from .expr import (APPROX_MODES, UNARY_OPS, Bcast, Binary, Fill, Matmul, Reduce, Transpose, Unary, as_node,
                   norm_dims)


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


def _reduce(op, x, scaler, dims):
    """reduce_<op>(x, dims=[..]), or TT-Lang's reduce_<op>(x, scaler, dims): the second
    argument is dims when it is a list of ints, else the scaler (a block whose first
    element scales x, as the hardware's scaler tile does, or a number)."""
    if dims is None and (isinstance(scaler, (list, tuple)) or
                         (isinstance(scaler, int) and not isinstance(scaler, bool))):
        scaler, dims = None, scaler
    return Reduce.make(op, x, (1,) if dims is None else dims, scaler)


def reduce_max(x, scaler=None, dims=None):
    """Maximum of x along dims ([1]: each row's, into column 0; [0]: each column's, into
    row 0; [0, 1]: the tile's, at [0, 0]), of x times the scaler when one is given."""
    return _reduce("max", x, scaler, dims)


def reduce_sum(x, scaler=None, dims=None):
    """Sum of x along dims (as reduce_max), of x times the scaler when one is given."""
    return _reduce("sum", x, scaler, dims)


_BCAST_DIMS = {(1,): "col", (0,): "row", (0, 1): "scalar"}


def broadcast(x, like=None, dims=None):
    """Spread x along `dims`: dims=[1] spreads column 0 across columns (a row reduction's
    result, an (N, 1) tensor), dims=[0] spreads row 0 down (a (1, N) tensor), [0, 1] element
    [0, 0] (a (1, 1) tensor).

    `broadcast(x, dims=...)` takes its shape from the other operand of the binary op it is
    used in (or the block it is stored into); `broadcast(x, like, dims)`, TT-Lang's general
    form, broadcasts to the shape of the block `like` (any block, a reserved one included:
    only its shape is used). x must be one tile along each of `dims` and match `like` along
    the others."""
    if dims is None and isinstance(like, (list, tuple)) and all(isinstance(d, int) for d in like) \
            and not hasattr(like, "shape"):
        like, dims = None, like            # broadcast(x, [1]): dims given positionally
    dims = norm_dims((1,) if dims is None else dims)
    x = as_node(x)
    key = tuple(sorted(set(dims)))
    dim = _BCAST_DIMS.get(key)
    if dim is None:
        raise CompileError(f"broadcast dims must be [0], [1] or [0, 1]; got {list(dims)}")
    if like is None:
        if x.shape is None:
            raise CompileError("broadcast of a plain number: use it as it is (numbers broadcast "
                               "by themselves) or ttl.math.fill(block, value)")
        return Bcast(x, None, dim)
    shape = getattr(like, "shape", like)
    try:
        shape = tuple(int(v) for v in shape)
    except TypeError:
        shape = ()
    if len(shape) != 2:
        raise CompileError(f"broadcast(x, like, dims): like must be a block (or a (rows, cols) "
                           f"shape in tiles); got {type(like).__name__}")
    if x.shape is None:
        raise CompileError("broadcast of a plain number: use ttl.math.fill(like, value)")
    names = ("rows", "columns")
    for d in (0, 1):
        if d in key and x.shape[d] != 1:
            raise CompileError(f"broadcast along dim {d}: x is {x.shape[d]} tiles along it ({names[d]}) "
                               f"and must be 1 (x is {x.shape[0]}x{x.shape[1]} tiles)")
        if d not in key and x.shape[d] != shape[d]:
            hint = f"; add {d} to dims" if x.shape[d] == 1 else ""
            raise CompileError(f"broadcast(x, like, dims={list(key)}): x is {x.shape[d]} tiles along "
                               f"dim {d} ({names[d]}) and like is {shape[d]}; along dims it does not "
                               f"broadcast they must match{hint}")
    return Bcast(x, shape, dim)


def transpose(x):
    return Transpose.make(x)


def fill(shape_like, value):
    shape = shape_like.shape if hasattr(shape_like, "shape") else tuple(shape_like)
    return Fill(shape, value)


def __getattr__(name):
    raise CompileError(f"ttl.math has no op '{name}'. Unary: {', '.join(UNARY_OPS)}; binary: max, "
                       "min, matmul; reduce_max, reduce_sum, broadcast, transpose, fill")
