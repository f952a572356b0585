"""Property-based testing of kernels: hypothesis strategies and format-aware assertions.

    from hypothesis import given
    from ttlang import testing as tt

    @given(tt.tile_shapes(max_tiles=4), tt.formats(), tt.seeds())
    def test_my_kernel(shape, fmt, seed):
        x = tt.array(shape, fmt, seed)
        out = run_my_kernel(x, fmt)
        tt.assert_close(out, reference(x), fmt, ops=2)

Tolerances come from the formats involved: a value stored in a format with unit roundoff
u (bf16 2^-8, fp32 2^-24; bfp8_b 2^-7 relative to the largest magnitude of its block of
16) is off by at most u relative to itself; a result that went through `ops` roundings
is off by about ops * u relative to the magnitude of what was summed.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ttsim import formats as _formats

UNIT_ROUNDOFF = {"bf16": 2.0 ** -8, "fp32": 2.0 ** -24, "bfp8_b": 2.0 ** -7,
                 "tf32": 2.0 ** -11}   # what a source register keeps of an fp32 value
# Relative error of one product at each math fidelity: the phases drop the low mantissa
# slices (SrcA keeps 5 significant bits per phase, SrcB 7), truncating: LoFi loses up to
# 2^-4 of A and 2^-6 of B, HiFi2 2^-6 of B, HiFi3 the product of both low slices.
FIDELITY_ROUNDOFF = {"LoFi": 2.0 ** -4 + 2.0 ** -6 + 2.0 ** -10, "HiFi2": 2.0 ** -6,
                     "HiFi3": 2.0 ** -10, "HiFi4": 0.0}


def unit_roundoff(fmt):
    """u of a storage format, or of "tf32" (an fp32 value after a trip through SrcA/SrcB)."""
    if fmt == "tf32":
        return UNIT_ROUNDOFF[fmt]
    return UNIT_ROUNDOFF[_formats.parse_format(fmt).value]


# float64 references of the unary ops (ttl.math.<name>, ttsim's sfpu_unary names)
UNARY_REFERENCE = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
    "recip": lambda x: 1 / x, "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0), "abs": np.abs, "neg": np.negative, "square": np.square,
    "sin": np.sin, "cos": np.cos, "silu": lambda x: x / (1 + np.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
}


# --- strategies ---------------------------------------------------------------------------
def formats(allowed=("bf16", "fp32", "bfp8_b")):
    return st.sampled_from(list(allowed))


def fidelities(allowed=("LoFi", "HiFi2", "HiFi3", "HiFi4")):
    return st.sampled_from(list(allowed))


def seeds():
    return st.integers(0, 2 ** 32 - 1)


def tile_shapes(max_tiles=4, min_tiles=1):
    """(rows, cols) in elements, each a multiple of 32."""
    t = st.integers(min_tiles, max_tiles)
    return st.tuples(t, t).map(lambda rc: (32 * rc[0], 32 * rc[1]))


def grids(max_grid=(8, 8)):
    return st.tuples(st.integers(1, max_grid[0]), st.integers(1, max_grid[1]))


def block_shapes(shape_tiles, max_tiles=8):
    """Block shapes (in tiles) that divide a tensor of `shape_tiles` tiles."""
    r, c = shape_tiles
    divs = lambda n: [d for d in range(1, n + 1) if n % d == 0]
    return st.tuples(st.sampled_from(divs(r)), st.sampled_from(divs(c))).filter(
        lambda b: b[0] * b[1] <= max_tiles)


def array(shape, fmt="bf16", seed=0, low=-2.0, high=2.0):
    """Uniform values in [low, high), already rounded to `fmt` (what the device will hold)."""
    x = np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)
    return quantize(x, fmt)


def arrays(shape, fmt="bf16", low=-2.0, high=2.0):
    return seeds().map(lambda s: array(shape, fmt, s, low, high))


def quantize(x, fmt):
    return _formats.quantize(np.asarray(x, np.float32), _formats.parse_format(fmt))


# --- assertions ---------------------------------------------------------------------------
def pcc(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if np.all(a == b):
        return 1.0
    return float(np.corrcoef(a, b)[0, 1])


def assert_pcc(out, ref, min_pcc=0.999, rtol=None, atol=None):
    """PCC of out against ref at least `min_pcc`; with `rtol`/`atol` (TT-Lang's form) also
    |out - ref| <= atol + rtol * |ref| everywhere."""
    p = pcc(out, ref)
    assert p >= min_pcc, f"PCC {p:.6f} < {min_pcc}"
    if rtol is not None or atol is not None:
        out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
        bound = (atol or 0.0) + (rtol or 0.0) * np.abs(ref)
        bad = ~(np.abs(out - ref) <= bound)
        assert not bad.any(), (f"{bad.sum()} of {bad.size} values outside atol={atol}, rtol={rtol} "
                               f"(PCC {p:.6f})")


def numeric_path(kernel):
    """What the last run of a ttlang kernel did to its numbers, and the unit roundoff of one
    of its ops: DST modes, fidelities, the SFPU ops and modes that ran (each with the relative
    error it adds, ttsim.sfpu.error_bound), and `u`, the largest relative error one op adds
    (a 16-bit DST rounds every FPU result to bf16, 2^-8; fp32 data through the 19-bit source
    registers keeps 11 bits, 2^-11; an SFPU op adds its own bound)."""
    from ttsim import sfpu
    rep = getattr(kernel, "last_report", None)
    if rep is None:
        raise ValueError("run the kernel first: its numeric path comes from the run")
    path = rep.numerics
    fp32 = path["dst"] == ["fp32"]
    ops = {f"{op}({mode})" if mode else op: sfpu.error_bound(op, mode, fp32)
           for op, mode in path["sfpu"]}
    src = "tf32" if "tf32" in path.get("src", ()) else None
    u = max([UNIT_ROUNDOFF["fp32" if fp32 else "bf16"], UNIT_ROUNDOFF[src] if src else 0.0,
             *ops.values()])
    fid = max((FIDELITY_ROUNDOFF[f] for f in path["fidelity"]), default=0.0)
    return {"dst": "fp32" if fp32 else "bf16", "fidelity": path["fidelity"], "sfpu": ops,
            "source_registers": src or "exact", "u": u, "fidelity_roundoff": fid}


def tolerance(ref_scale, fmt, ops=1, fidelity="HiFi4"):
    """Absolute error bound for a result of magnitude `ref_scale` after `ops` roundings."""
    u = unit_roundoff(fmt)
    return (ops * u + FIDELITY_ROUNDOFF[fidelity]) * np.asarray(ref_scale, np.float64)


def assert_close(out, ref, fmt="bf16", ops=1, scale=None, fidelity="HiFi4", atol=0.0, kernel=None):
    """|out - ref| <= tolerance(scale, fmt, ops) + atol everywhere, with a readable failure.

    `scale` is the magnitude the error is relative to: |ref| by default; pass the sum of
    absolute terms for sums and dot products (cancellation makes |ref| too small).
    With `kernel=` (a ttlang kernel that has run), the bound comes from what it did
    (numeric_path): each of the `ops` roundings adds the larger of the output format's u and
    the kernel's u (its DST mode, its SFPU ops in their modes), plus its fidelity's loss.
    """
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if out.shape != ref.shape:
        raise AssertionError(f"shape {out.shape} != reference shape {ref.shape}")
    s = np.abs(ref) if scale is None else np.broadcast_to(np.asarray(scale, np.float64), ref.shape)
    if kernel is None:
        bound = tolerance(s, fmt, ops, fidelity) + atol
    else:
        path = numeric_path(kernel)
        u = max(unit_roundoff(fmt), path["u"])
        bound = (ops * u + path["fidelity_roundoff"]) * s + atol
        fmt = f"{fmt} output, {path['dst']} DST" + (f", {', '.join(path['sfpu'])}" if path["sfpu"] else "")
    err = np.abs(out - ref)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(f"{bad.sum()} of {bad.size} values off by more than the {fmt} bound "
                             f"({ops} rounding(s)): at {i}: got {out[i]}, expected {ref[i]}, error "
                             f"{err[i]:.3g} > bound {bound[i]:.3g}")
