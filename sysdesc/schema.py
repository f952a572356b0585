"""The data model of a system description: structure plus figures with provenance."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


class SysdescError(ValueError):
    """A malformed system description; the message names the file and the field."""


@dataclass(frozen=True)
class Figure:
    """One hardware or cost figure and where it comes from."""
    value: float
    source: str
    estimate: bool

    def __float__(self):
        return float(self.value)


@dataclass(frozen=True)
class DramBank:
    id: int
    noc_xy: tuple
    bandwidth: Figure      # bytes per cycle, read or write
    latency: Figure        # cycles from request arrival at the bank to first data


SFPU_OPS = ("exp", "exp2", "log", "sqrt", "rsqrt", "recip", "tanh", "sigmoid", "relu", "gelu",
            "silu", "abs", "neg", "square", "sin", "cos", "max", "min", "fill", "add", "sub",
            "mul", "div", "copy", "scale")
FORMATS = ("bf16", "fp32", "bfp8_b")
# SFPU ops' other modes: `cost.sfpu.<op>` is the accurate mode with a 16-bit DST
SFPU_MODE_FIGURES = ("exp_fast", "exp_approx", "exp_fp32", "recip_approx", "recip_fp32",
                     "sqrt_approx", "rsqrt_approx", "sigmoid_approx")
# what whole programs pay besides their ops: per-call front-ends and reprogramming the units
COMPUTE_OVERHEADS = ("cost.unpack.call", "cost.unpack.init", "cost.unpack.reconfig",
                     "cost.math.matmul_tile_overhead", "cost.math.matmul_block_call",
                     "cost.math.init", "cost.sfpu.init", "cost.pack.reconfig")

REQUIRED_FIGURES = (
    ["chip.clock_ghz",
     "noc.link_bytes_per_cycle", "noc.hop_latency", "noc.niu_latency", "noc.max_packet_bytes",
     "noc.l1_port_bytes_per_cycle", "noc.read_response_bytes_per_cycle", "noc.header_flits",
     "noc.read_issue_cycles", "noc.write_issue_cycles", "noc.stateful_read_issue_cycles",
     "noc.stateful_write_issue_cycles", "noc.set_state_cycles", "noc.addrgen_cycles",
     "noc.completion_latency", "noc.flit_bytes", "noc.mcast_setup_cycles",
     "noc.mcast_reserve_cycles_per_hop", "noc.l1_align_bytes", "noc.dram_read_align_bytes",
     "noc.dram_write_align_bytes",
     "dram.bandwidth_bytes_per_cycle", "dram.latency", "dram.write_request_cycles",
     "dram.write_burst_bytes", "dram.partial_write_cycles",
     "dst.tiles_16bit",
     "cost.unpack.dual_bytes_per_cycle",
     "cost.math.matmul", "cost.math.eltwise_mul", "cost.math.eltwise_add", "cost.math.eltwise_sub",
     "cost.math.datacopy", "cost.math.reduce", "cost.math.transpose", "cost.math.fp32_acc_factor",
     "cost.api.cb_wait_front", "cost.api.cb_pop_front", "cost.api.cb_reserve_back",
     "cost.api.cb_push_back", "cost.api.tile_regs", "cost.api.semaphore", "cost.api.barrier",
     "cost.api.get_arg", "cost.api.kernel_launch"]
    + [f"cost.unpack.{f}" for f in FORMATS]
    + [f"cost.pack.{f}" for f in FORMATS]
    + [f"cost.sfpu.{op}" for op in SFPU_OPS]
    + [f"cost.sfpu.{op}" for op in SFPU_MODE_FIGURES]
    + list(COMPUTE_OVERHEADS)
    + ["dram.bank_bytes"]
)

# Figures a description may have beyond the required ones. Any other name is an error (a
# misspelt optional figure would otherwise be silently ignored): a new figure the simulator
# reads is added here or to REQUIRED_FIGURES.
OPTIONAL_FIGURES = ("noc.dram_read_noc", "noc.dram_write_noc", "noc.flit_bytes",
                    "noc.mcast_setup_cycles", "noc.mcast_reserve_cycles_per_hop",
                    "noc.l1_align_bytes", "noc.dram_read_align_bytes", "noc.dram_write_align_bytes")

# Physical bounds. A value past one is a typo or an attack, not a chip: each is several times
# what any Tensix chip has, and small enough that the simulator stays fast and host memory safe.
MAX_NOC_DIM = 64               # NoC grid width/height; Blackhole's is 17x12 (routes are w+h hops)
MAX_NOCS = 8                   # NoCs per chip; Wormhole and Blackhole have 2
MAX_L1_BYTES = 16 << 20        # L1 per core, allocated in full on the host; WH/BH have 1464 KiB
MAX_CBS = 256                  # CB ids are 8-bit (tt-metal's tt::CBIndex is a uint8_t)
MAX_DST_TILES = 64             # dst.tiles_16bit; WH/BH hold 16
MAX_DRAM_BANKS = 64            # Wormhole has 12, Blackhole 8
MAX_BANK_ID = 1023             # ids name banks in statistics; real ones are 0..11
MAX_BANK_BYTES = 1 << 40       # 1 TiB per bank; Blackhole's GDDR6 channels hold 4 GiB
MAX_FIGURE = 1e9               # any other figure: a billion cycles is a second of a chip's time
# figures with a tighter ceiling than MAX_FIGURE (bytes per cycle, GHz, bytes, counts)
FIGURE_CEILINGS = {"chip.clock_ghz": 10, "dram.bank_bytes": MAX_BANK_BYTES,
                   "noc.link_bytes_per_cycle": 4096, "noc.l1_port_bytes_per_cycle": 4096,
                   "noc.read_response_bytes_per_cycle": 4096, "noc.flit_bytes": 4096,
                   "dram.bandwidth_bytes_per_cycle": 4096, "cost.unpack.dual_bytes_per_cycle": 4096,
                   "noc.max_packet_bytes": 1 << 20, "noc.header_flits": 64,
                   "dram.write_burst_bytes": 1 << 20, "dst.tiles_16bit": MAX_DST_TILES,
                   "noc.l1_align_bytes": 4096, "noc.dram_read_align_bytes": 4096,
                   "noc.dram_write_align_bytes": 4096}
# figures that must be > 0 (zero would divide by zero or make no sense)
POSITIVE_FIGURES = ("chip.clock_ghz", "noc.link_bytes_per_cycle", "noc.max_packet_bytes",
                    "noc.l1_port_bytes_per_cycle", "noc.read_response_bytes_per_cycle",
                    "noc.header_flits", "noc.flit_bytes", "dram.bandwidth_bytes_per_cycle",
                    "dst.tiles_16bit", "cost.unpack.dual_bytes_per_cycle", "dram.bank_bytes")
# figures the simulator uses as whole numbers: a fraction would be silently truncated
INTEGER_FIGURES = ("noc.max_packet_bytes", "noc.header_flits", "noc.flit_bytes",
                   "dram.write_burst_bytes", "dst.tiles_16bit", "dram.bank_bytes",
                   "noc.dram_read_noc", "noc.dram_write_noc")
# alignments: the NoC checks addresses against them, so a power of two
POWER_OF_TWO_FIGURES = ("noc.l1_align_bytes", "noc.dram_read_align_bytes", "noc.dram_write_align_bytes")


def _bytes(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.4g} {unit}"
    return f"{n} B"


@dataclass(frozen=True, eq=False)
class SysDesc:
    """A chip: its grid, memories, NoC, DST rules and cost figures (see docs/sysdesc.md)."""
    name: str
    format_version: int
    path: str
    description: str
    clock_ghz: Figure
    noc_grid: tuple
    torus: bool
    worker_x: tuple
    worker_y: tuple
    dram_banks: tuple
    l1_size: int
    l1_reserved: int
    max_cbs: int
    num_nocs: int
    dram_bank_bytes: int   # capacity of each DRAM bank (dram.bank_bytes)
    figures: Mapping[str, Figure] = field(repr=False)

    def figure(self, key) -> Figure:
        try:
            return self.figures[key]
        except KeyError:
            raise SysdescError(f"{self.path}: no figure '{key}'") from None

    def value(self, key) -> float:
        return self.figure(key).value

    def worker_grid(self):
        return (len(self.worker_x), len(self.worker_y))

    def worker_noc_xy(self, x, y):
        gx, gy = self.worker_grid()
        if not (0 <= x < gx and 0 <= y < gy):
            raise SysdescError(f"{self.name}: logical core ({x},{y}) is outside the {gx}x{gy} worker grid")
        return (self.worker_x[x], self.worker_y[y])

    def is_worker(self, xy):
        return xy[0] in self.worker_x and xy[1] in self.worker_y

    def dram_bank_at(self, xy):
        for b in self.dram_banks:
            if tuple(b.noc_xy) == tuple(xy):
                return b
        return None

    def dst_tiles(self, fp32_acc=False, full_sync=False):
        """DST tiles math may use: 16 16-bit tiles, halved by fp32 and by half-sync."""
        n = int(self.value("dst.tiles_16bit"))
        if fp32_acc:
            n //= 2
        if not full_sync:
            n //= 2
        return n

    def describe(self):
        gx, gy = self.worker_grid()
        est = sum(f.estimate for f in self.figures.values())
        return "\n".join([
            f"{self.name} (format {self.format_version}, {self.path})",
            f"  {self.description}",
            f"  clock {self.clock_ghz.value} GHz; worker grid {gx}x{gy} on a {self.noc_grid[0]}x"
            f"{self.noc_grid[1]} NoC{' torus' if self.torus else ''}; {self.num_nocs} NoCs of "
            f"{self.value('noc.link_bytes_per_cycle'):g} B/cycle links",
            f"  L1 {self.l1_size // 1024} KiB per core ({self.l1_reserved // 1024} KiB reserved); "
            f"DST {int(self.value('dst.tiles_16bit'))} 16-bit tiles",
            f"  {len(self.dram_banks)} DRAM banks of {_bytes(self.dram_bank_bytes)} "
            f"({_bytes(self.dram_bank_bytes * len(self.dram_banks))}), "
            f"{sum(b.bandwidth.value for b in self.dram_banks):g} B/cycle together",
            f"  {len(self.figures)} figures, {est} of them estimates",
        ])
