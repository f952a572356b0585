"""Single-op programs over interleaved tensors: read tiles, apply one compute op, write.

Used to test every compute op through the whole machine (NoC, CBs, unpack, math, pack), and
as the smallest example of the three-kernel structure.
"""
from __future__ import annotations

from ..program import Program

CB_IN = (0, 1)
CB_OUT = 16

UNARY_SFPU = ("exp", "exp2", "log", "sqrt", "rsqrt", "recip", "tanh", "sigmoid", "relu", "gelu",
              "silu", "abs", "neg", "square", "sin", "cos")
BINARY_FPU = ("add", "sub", "mul")
BINARY_SFPU = ("max", "min", "div")


def _reader(k):
    n = k.get_arg_val(0)
    gens = [k.interleaved_addr_gen(t) for t in k.args[1:]]
    for t in range(n):
        for cb, g in zip(CB_IN, gens):
            k.cb_reserve_back(cb, 1)
            k.noc_async_read_tile(t, g, k.get_write_ptr(cb))
        k.noc_async_read_barrier()
        for cb, _ in zip(CB_IN, gens):
            k.cb_push_back(cb, 1)


def _writer(k):
    n, out = k.args
    g = k.interleaved_addr_gen(out)
    for t in range(n):
        k.cb_wait_front(CB_OUT, 1)
        k.noc_async_write_tile(t, g, k.get_read_ptr(CB_OUT))
        k.noc_async_write_barrier()
        k.cb_pop_front(CB_OUT, 1)


def _compute(k):
    n = k.get_arg_val(0)
    op, arity, bcast, extra = k.get_compile_time_arg_val(0), k.get_compile_time_arg_val(1), \
        k.get_compile_time_arg_val(2), k.get_compile_time_arg_val(3)
    for _ in range(n):
        for cb in CB_IN[:arity]:
            k.cb_wait_front(cb, 1)
        k.tile_regs_acquire()
        if op in BINARY_FPU:
            k.binary_tiles(op, CB_IN[0], CB_IN[1], 0, 0, 0, bcast)
        elif op == "matmul":
            k.matmul_tiles(CB_IN[0], CB_IN[1], 0, 0, 0, extra)
        elif op in BINARY_SFPU:
            k.copy_tile(CB_IN[0], 0, 0)
            k.copy_tile(CB_IN[1], 0, 1)
            k.sfpu_binary(op, 0, 1)
        elif op.startswith("reduce_"):
            _, rop, dim = op.split("_")
            k.reduce_tile(CB_IN[0], CB_IN[1], 0, 0, 0, rop, dim)
        elif op == "transpose":
            k.transpose_wh_tile(CB_IN[0], 0, 0)
        elif op == "copy":
            k.copy_tile(CB_IN[0], 0, 0)
        else:
            k.copy_tile(CB_IN[0], 0, 0)
            k.sfpu_unary(op, 0)
        k.tile_regs_commit()
        for cb in CB_IN[:arity]:
            k.cb_pop_front(cb, 1)
        k.tile_regs_wait()
        k.cb_reserve_back(CB_OUT, 1)
        k.pack_tile(0, CB_OUT)
        k.cb_push_back(CB_OUT, 1)
        k.tile_regs_release()


def tile_op_program(device, op, inputs, out, core=(0, 0), bcast="none", transpose_b=False,
                    buffers=2, **compute_cfg):
    """Apply `op` tile by tile: out[t] = op(inputs[0][t], inputs[1][t]) on one core.

    Reductions take a scaler tensor as the second input (its [0,0] is the scaler).
    """
    arity = len(inputs)
    prog = Program(device)
    for cb, t in zip(CB_IN, inputs):
        prog.circular_buffer(core, cb, t.dtype, buffers)
    prog.circular_buffer(core, CB_OUT, out.dtype, buffers)
    n = out.num_pages
    prog.reader(core, _reader, args=[n, *inputs])
    prog.compute(core, _compute, args=[n], compile_args=[op, arity, bcast, transpose_b],
                 **compute_cfg)
    prog.writer(core, _writer, args=[n, out])
    return prog
