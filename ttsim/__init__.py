"""ttsim: a cycle-approximate simulator of Tenstorrent Tensix chips.

The host API follows TT-Metalium: build a Device, put tensors in DRAM, describe a Program
(circular buffers, semaphores, reader/compute/writer kernels on core ranges) and run it.
"""
from .device import Device, Tensor
from .errors import (AccessError, ArgumentError, CBError, DeadlockError, DstOverflowError,
                     KernelError, L1OverflowError, LivelockError, NocError, SimLimitError,
                     TTSimError)
from .formats import DataFormat
from .program import CoreRange, Program
from .report import RunReport
from .session import tracing

__all__ = ["Device", "Tensor", "Program", "CoreRange", "RunReport", "DataFormat", "TTSimError",
           "CBError", "DeadlockError", "DstOverflowError", "KernelError", "L1OverflowError",
           "NocError", "SimLimitError", "AccessError", "ArgumentError", "LivelockError",
           "tracing"]
