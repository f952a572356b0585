"""tt-mlir system descriptors (`system_desc.ttsys`) as sysdesc descriptions.

A .ttsys file is a size-prefixed FlatBuffer (root `tt.target.SystemDescRoot`, identifier
`TTSY`; /work/shared/TTSYS.md has the schema). It tells what a real device reported: its
worker grid, L1, DRAM channels, alignments, DST and CB counts. It has no clock, NoC or cost
figures, so those come from the built-in description of the same architecture. Tables are
read with the flatbuffers runtime's `Table` at the schema's slot offsets; every position is
checked against the file first, so a truncated or corrupt file is a SysdescError naming the
file and the field, never a struct or IndexError.
"""
from __future__ import annotations

import copy
import os
import struct

from flatbuffers import number_types as N
from flatbuffers.table import Table

from .load import BUILTIN_DIR, from_dict, read_toml
from . import schema
from .schema import SysDesc, SysdescError

IDENTIFIER = b"TTSY"

# Arch enum: tt-mlir renumbered it on 2026-02-06 (Grayskull removed). A ChipDesc that has
# dram_grid_size (slot 19, added 2026-04-23) is newer, so uses the current numbering.
ARCH_NOW = {0: "wormhole_b0", 1: "blackhole", 2: "quasar"}
ARCH_OLD = {0: "grayskull", 1: "wormhole_b0", 2: "blackhole"}

# Tensix columns (NoC x) and rows (NoC y) of each die, from tt-metal's soc descriptors
# (wormhole_b0_80_arch.yaml, blackhole_140_arch.yaml), as the built-ins' [grid] comments
# say. The file gives only the harvested grid's size (its coordinates are tt-metal's
# translated ones, not NoC positions, and it has no harvesting mask), so logical column i
# is the die's i-th Tensix column, as the built-ins place their grids.
DIE = {"wormhole_b0": ((1, 2, 3, 4, 6, 7, 8, 9), (1, 2, 3, 4, 5, 7, 8, 9, 10, 11)),
       "blackhole": ((1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16),
                     (2, 3, 4, 5, 6, 7, 8, 9, 10, 11))}
# DRAM channels a chip has: tells a p150 (8) from a p100a (7 enabled). The grid cannot: the
# real p150 descriptor reports the 11x10 grid the p100a built-in models.
CHANNELS = {"wormhole_b0": (12,), "blackhole": (7, 8)}

_U16, _U32, _U64, _I32 = N.Uint16Flags, N.Uint32Flags, N.Uint64Flags, N.Int32Flags


def is_ttsys(path) -> bool:
    """A .ttsys name, or any file that carries the TTSY identifier at byte 8."""
    if str(path).endswith(".ttsys"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(12)[8:12] == IDENTIFIER
    except OSError:
        return False


class _Tbl:
    """A FlatBuffers table whose every read is bounds-checked and named."""

    def __init__(self, r, pos, field):
        self.r, self.field = r, field
        r.need(pos, 4, field)
        self.t = Table(r.buf, pos)
        vt = pos - self.t.Get(N.SOffsetTFlags, pos)
        r.need(vt, 4, f"{field} (vtable)")
        self.vt_len = self.t.Get(N.VOffsetTFlags, vt)
        self.size = self.t.Get(N.VOffsetTFlags, vt + 2)
        if self.vt_len < 4 or self.vt_len % 2 or self.size < 4:
            raise r.err(field, f"vtable of {self.vt_len} bytes for a {self.size}-byte table "
                               "is not a FlatBuffers table")
        r.need(vt, self.vt_len, f"{field} (vtable)")
        r.need(pos, self.size, field)
        self.slots = (self.vt_len - 4) // 2

    def _at(self, slot, width, name):
        """Position of a field's inline bytes, or None when the field is absent (zero)."""
        o = self.t.Offset(4 + 2 * slot)
        if not o:
            return None
        if o < 4 or o + width > self.size:
            raise self.r.err(f"{self.field}.{name}", f"field at byte {o} (+{width}) lies outside "
                                                     f"its {self.size}-byte table")
        return self.t.Pos + o

    def scalar(self, slot, flags, name):
        pos = self._at(slot, flags.bytewidth, name)
        return 0 if pos is None else self.t.Get(flags, pos)

    def dim2d(self, slot, name):
        """A Dim2d struct as (y, x), or None when absent."""
        pos = self._at(slot, 8, name)
        return None if pos is None else struct.unpack_from("<ii", self.r.buf, pos)

    def _ref(self, slot, name):
        """Where a uoffset field points, or None when absent."""
        pos = self._at(slot, 4, name)
        if pos is None:
            return None
        target = self.t.Indirect(pos)
        self.r.need(target, 4, f"{self.field}.{name}")
        return target

    def table(self, slot, name):
        pos = self._ref(slot, name)
        if pos is None:
            raise self.r.err(f"{self.field}.{name}", "missing")
        return _Tbl(self.r, pos, f"{self.field}.{name}")

    def vector(self, slot, name, width):
        """(start, length) of a vector of `width`-byte elements; (0, 0) when absent."""
        pos = self._ref(slot, name)
        if pos is None:
            return 0, 0
        n = self.t.Get(_U32, pos)
        self.r.need(pos + 4, n * width, f"{self.field}.{name} ({n} elements)")
        return pos + 4, n

    def tables(self, slot, name):
        start, n = self.vector(slot, name, 4)
        out = []
        for i in range(n):
            at = start + 4 * i
            out.append(_Tbl(self.r, self.t.Indirect(at), f"{self.field}.{name}[{i}]"))
        return out

    def scalars(self, slot, name, flags):
        start, n = self.vector(slot, name, flags.bytewidth)
        return [self.t.Get(flags, start + flags.bytewidth * i) for i in range(n)]

    def string(self, slot, name):
        start, n = self.vector(slot, name, 1)
        try:
            return bytes(self.r.buf[start:start + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.r.err(f"{self.field}.{name}", "is not UTF-8 text") from None


class _Reader:
    def __init__(self, buf, fname):
        self.buf, self.fname = buf, fname

    def err(self, field, msg):
        return SysdescError(f"{self.fname}: {field}: {msg}")

    def need(self, pos, size, field):
        if pos < 0 or size < 0 or pos + size > len(self.buf):
            raise self.err(field, f"bytes {pos}..{pos + size} lie outside the "
                                  f"{len(self.buf)}-byte buffer (file truncated or corrupt)")


def _check(r, field, v, lo, hi, what=""):
    if not lo <= v <= hi:
        raise r.err(field, f"{v} is out of range ({lo}..{hi}{what})")
    return v


def read(path, chip=0) -> dict:
    """The fields of chip `chip` (a device id) of a .ttsys file, checked, as a dict."""
    fname = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SysdescError(f"{path}: cannot read: {e.strerror}") from None
    if len(raw) < 12 or raw[8:12] != IDENTIFIER:
        raise SysdescError(f"{fname}: not a tt-mlir system descriptor: no '{IDENTIFIER.decode()}' "
                           f"file identifier at byte 8 ({len(raw)}-byte file)")
    (size,) = struct.unpack_from("<I", raw, 0)
    if size != len(raw) - 4:
        raise SysdescError(f"{fname}: size prefix: says {size} bytes follow, the file has "
                           f"{len(raw) - 4} (truncated or not a .ttsys file)")
    r = _Reader(raw[4:], fname)
    (root_at,) = struct.unpack_from("<I", r.buf, 0)
    root = _Tbl(r, root_at, "SystemDescRoot")
    if root.slots < 5:
        raise r.err("SystemDescRoot", f"{root.slots} fields: written by a tt-mlir older than "
                                      "2025-06-09 (no schema_hash); regenerate it with a current "
                                      "tt-mlir (ttrt query --save-artifacts)")
    vpos = root._at(0, 8, "version")
    version = struct.unpack_from("<HHI", r.buf, vpos) if vpos is not None else (0, 0, 0)
    git = root.string(2, "ttmlir_git_hash")
    sd = root.table(4, "system_desc")
    chips = sd.tables(1, "chip_descs")
    if not chips:
        raise r.err(f"{sd.field}.chip_descs", "no chips")
    indices = sd.scalars(2, "chip_desc_indices", _U32) or list(range(len(chips)))
    if not (isinstance(chip, int) and not isinstance(chip, bool) and 0 <= chip < len(indices)):
        raise SysdescError(f"{fname}: chip {chip!r}: the file describes {len(indices)} chip"
                           f"{'s' if len(indices) > 1 else ''} (0..{len(indices) - 1})")
    idx = _check(r, f"{sd.field}.chip_desc_indices[{chip}]", indices[chip], 0, len(chips) - 1)
    c = chips[idx]
    f = c.field
    if c.slots < 19:
        raise r.err(f, f"{c.slots} fields: an older ChipDesc layout (before 2025-08-01); "
                       "regenerate the file with a current tt-mlir")
    out = {"fname": fname, "chip": chip, "chips": len(indices), "version": version, "git": git}
    channels = _check(r, f"{f}.num_dram_channels", c.scalar(4, _U32, "num_dram_channels"), 1,
                      schema.MAX_DRAM_BANKS)
    dram_grid = c.dim2d(19, "dram_grid_size")
    if dram_grid is not None and dram_grid[0] * dram_grid[1] != channels:
        raise r.err(f"{f}.dram_grid_size", f"{dram_grid[0]}x{dram_grid[1]} does not hold the "
                                           f"{channels} num_dram_channels")
    arch_v = c.scalar(0, _U32, "arch")
    if dram_grid is not None:
        arch = ARCH_NOW.get(arch_v)
    else:   # written 2025-08..2026-04: either numbering; the channel count tells which
        fits = {a for a in (ARCH_NOW.get(arch_v), ARCH_OLD.get(arch_v))
                if channels in CHANNELS.get(a, ())}
        arch = fits.pop() if len(fits) == 1 else ARCH_NOW.get(arch_v)
    if arch not in DIE:
        raise r.err(f"{f}.arch", f"{arch_v} ({arch or 'unknown'}): ttsim has built-in "
                                 f"descriptions for Wormhole B0 (0) and Blackhole (1) only")
    if channels not in CHANNELS[arch]:
        raise r.err(f"{f}.num_dram_channels", f"{channels}: a {arch} chip has "
                                              f"{' or '.join(map(str, CHANNELS[arch]))}")
    grid = c.dim2d(1, "grid_size")
    if grid is None:
        raise r.err(f"{f}.grid_size", "missing")
    cols, rows = DIE[arch]
    out["arch"] = arch
    out["grid_y"] = _check(r, f"{f}.grid_size.y", grid[0], 1, len(rows), f": the {arch} die's Tensix rows")
    out["grid_x"] = _check(r, f"{f}.grid_size.x", grid[1], 1, len(cols), f": the {arch} die's Tensix columns")
    out["channels"] = channels
    out["l1_size"] = _check(r, f"{f}.l1_size", c.scalar(3, _U64, "l1_size"), 1, schema.MAX_L1_BYTES)
    out["l1_unreserved_base"] = _check(r, f"{f}.l1_unreserved_base",
                                       c.scalar(9, _U32, "l1_unreserved_base"), 0, out["l1_size"] - 1)
    out["dram_channel_size"] = _check(r, f"{f}.dram_channel_size", c.scalar(5, _U64, "dram_channel_size"),
                                      1, schema.MAX_BANK_BYTES)
    for slot, key in ((6, "noc_l1_address_align_bytes"), (8, "noc_dram_address_align_bytes")):
        a = _check(r, f"{f}.{key}", c.scalar(slot, _U32, key), 1, 4096)
        if a & (a - 1):
            raise r.err(f"{f}.{key}", f"{a} is not a power of two")
        out[key] = a
    dst = _check(r, f"{f}.dst_physical_size_tiles", c.scalar(15, _U32, "dst_physical_size_tiles"),
                 4, schema.MAX_DST_TILES)
    if dst % 4:
        raise r.err(f"{f}.dst_physical_size_tiles", f"{dst} is not a multiple of 4")
    out["dst_physical_size_tiles"] = dst
    out["num_cbs"] = _check(r, f"{f}.num_cbs", c.scalar(16, _U32, "num_cbs"), 1, schema.MAX_CBS)
    return out


def builtin_for(fields) -> str:
    """The built-in whose figures a chip gets: wormhole_b0 for Wormhole, blackhole for an
    8-channel Blackhole (p150), blackhole_p100a for a 7-channel one."""
    if fields["arch"] == "wormhole_b0":
        return "wormhole_b0"
    return "blackhole" if fields["channels"] == 8 else "blackhole_p100a"


def parse(path, chip=0) -> SysDesc:
    """A SysDesc for chip `chip` of a .ttsys file: its structure from the file, its clock,
    NoC, DRAM timing and cost figures from the built-in of the same architecture."""
    x = read(path, chip)
    base = builtin_for(x)
    data = copy.deepcopy(read_toml(os.path.join(BUILTIN_DIR, f"{base}.toml")))
    where = f"{x['fname']}" + (f" chip {chip}" if x["chips"] > 1 else "")

    def fig(value, field):
        return {"value": value, "source": f"{where}: ChipDesc.{field} (tt-mlir system descriptor)"}

    cols, rows = DIE[x["arch"]]
    ver = ".".join(map(str, x["version"]))
    data["chip"]["name"] = f"{base} ({where})"
    data["chip"]["description"] = (
        f"{where}, written by tt-mlir {ver} ({x['git'][:10] or 'unknown commit'}): "
        f"{x['grid_x']}x{x['grid_y']} grid, {x['channels']} DRAM channels; "
        f"clock, NoC, DRAM timing and cost figures from the built-in {base}")
    data["grid"]["worker_x"] = list(cols[:x["grid_x"]])
    data["grid"]["worker_y"] = list(rows[:x["grid_y"]])
    data["l1"].update(size=x["l1_size"], reserved=x["l1_unreserved_base"], max_cbs=x["num_cbs"])
    data["dram"]["banks"] = data["dram"]["banks"][:x["channels"]]
    data["dram"]["bank_bytes"] = fig(x["dram_channel_size"], "dram_channel_size")
    data["dst"]["tiles_16bit"] = fig(x["dst_physical_size_tiles"], "dst_physical_size_tiles")
    noc = data["noc"]
    noc["l1_align_bytes"] = fig(x["noc_l1_address_align_bytes"], "noc_l1_address_align_bytes")
    # The file's DRAM alignment is the allocator's, which every DRAM buffer address meets: a
    # read rule; a write rule may be looser (Blackhole: 16 B) but never stricter.
    dram_align = x["noc_dram_address_align_bytes"]
    noc["dram_read_align_bytes"] = fig(dram_align, "noc_dram_address_align_bytes")
    w = noc.get("dram_write_align_bytes")
    if w is None or w.get("value", 0) > dram_align:
        noc["dram_write_align_bytes"] = fig(dram_align, "noc_dram_address_align_bytes")
    return from_dict(data, x["fname"], os.path.abspath(path))
