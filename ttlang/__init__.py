"""ttlang: a Python kernel language for Tensix, compiled onto the ttsim simulator.

The surface follows Tenstorrent's TT-Lang (see LANGUAGE.md in the project's shared docs):

    import ttlang as ttl

    @ttl.kernel(grid=(2, 2))
    def scale_exp(a, out):
        a_buf = ttl.make_dataflow_buffer_like(a, shape=(1, 1), buffer_factor=2)
        ...
"""
from . import math
from . import d2m   # the seed's D2M-style API: from ttlang.d2m import *
from .errors import CompileError
from .kernel import (Kernel, Program, compute, datamovement, kernel, make_circular_buffer_like,
                     make_dataflow_buffer_like)
from .pipe import Pipe, PipeNet
from .runtime import copy, core, grid_size
from .semaphore import Semaphore
from .tensor import (DRAM_MEMORY_CONFIG, L1_MEMORY_CONFIG, ROW_MAJOR_LAYOUT, TILE_LAYOUT, Tensor,
                     bfloat8_b, bfloat16, close_device, device, empty, float32, from_numpy, full,
                     open_device, rand, randn, set_device, to_numpy, zeros)

__all__ = ["math", "d2m", "CompileError", "Kernel", "Program", "compute", "datamovement", "kernel",
           "make_circular_buffer_like", "make_dataflow_buffer_like", "Pipe", "PipeNet", "Semaphore",
           "copy", "core", "grid_size", "Tensor", "bfloat16", "float32", "bfloat8_b", "device",
           "empty", "from_numpy", "full", "rand", "randn", "set_device", "zeros", "to_numpy",
           "open_device", "close_device", "TILE_LAYOUT", "ROW_MAJOR_LAYOUT", "DRAM_MEMORY_CONFIG",
           "L1_MEMORY_CONFIG"]
