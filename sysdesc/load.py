"""Reading and validating system descriptions (TOML, format version 1)."""
from __future__ import annotations

import math
import os
import tomllib

from .schema import REQUIRED_FIGURES, DramBank, Figure, SysDesc, SysdescError

FORMAT_VERSION = 1
BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin")
DEFAULT = "wormhole_b0"
TOP_LEVEL = {"format_version", "chip", "grid", "l1", "noc", "dram", "dst", "cost"}
_cache: dict = {}


def builtin_names():
    return sorted(f[:-5] for f in os.listdir(BUILTIN_DIR) if f.endswith(".toml"))


def load(name_or_path=None) -> SysDesc:
    """A built-in description by name (default wormhole_b0), or a TOML file by path."""
    name_or_path = name_or_path or DEFAULT
    if isinstance(name_or_path, SysDesc):
        return name_or_path
    path = name_or_path = os.fspath(name_or_path)
    if not os.path.exists(path):
        if os.sep in path or path.endswith(".toml"):
            raise SysdescError(f"{path}: no such file")
        path = os.path.join(BUILTIN_DIR, f"{name_or_path}.toml")
        if not os.path.exists(path):
            raise SysdescError(f"unknown sysdesc '{name_or_path}': built-ins are "
                               f"{', '.join(builtin_names())}, or give a path to a .toml file")
    path = os.path.abspath(path)
    key = (path, os.path.getmtime(path))
    if key not in _cache:
        _cache[key] = parse(path)
    return _cache[key]


def parse(path) -> SysDesc:
    fname = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SysdescError(f"{fname}: not valid TOML: {e}") from None
    except OSError as e:
        raise SysdescError(f"{path}: cannot read: {e.strerror}") from None
    return from_dict(data, fname, path)


class _V:
    """Field access with errors that name the file and the dotted field."""

    def __init__(self, fname):
        self.fname = fname

    def err(self, field, msg):
        return SysdescError(f"{self.fname}: {field}: {msg}")

    def get(self, d, key, field, types, positive=False, nonneg=False):
        if key not in d:
            raise self.err(field, "missing")
        v = d[key]
        if isinstance(v, bool) and bool not in types or not isinstance(v, types):
            names = "/".join(t.__name__ for t in types)
            raise self.err(field, f"must be {names}, got {type(v).__name__} {v!r}")
        if positive and v <= 0:
            raise self.err(field, f"must be > 0, got {v}")
        if nonneg and v < 0:
            raise self.err(field, f"must be >= 0, got {v}")
        return v

    def table(self, d, key, field):
        if key in d and not isinstance(d[key], dict):
            raise self.err(field, f"must be a table ([{field}] or {{ ... }}), "
                                  f"got {type(d[key]).__name__} {d[key]!r}")
        return self.get(d, key, field, (dict,))

    def figure(self, v, field):
        if not isinstance(v, dict):
            raise self.err(field, f"a figure is written {{ value = ..., source = \"...\" }} or "
                                  f"{{ value = ..., estimate = \"why\" }}, got {v!r}")
        val = self.get(v, "value", f"{field}.value", (int, float))
        if not math.isfinite(val) or val < 0:
            raise self.err(field, f"must be a finite number >= 0, got {val}")
        has_s, has_e = "source" in v, "estimate" in v
        if has_s == has_e:
            raise self.err(field, "needs exactly one of 'source' (where the figure comes from) "
                                  "or 'estimate' (why this number)")
        text = v["source"] if has_s else v["estimate"]
        if not isinstance(text, str) or not text.strip():
            raise self.err(field, "source/estimate must be a non-empty string")
        extra = set(v) - {"value", "source", "estimate", "unit"}
        if extra:
            raise self.err(field, f"unknown keys {sorted(extra)}")
        return Figure(float(val), text.strip(), has_e)


def _is_int(c):
    return isinstance(c, int) and not isinstance(c, bool)


def _is_figure(x):
    """A figure is an inline table with any of its keys (so a figure that lacks `value` is
    reported as such, not taken for a table of figures)."""
    return not isinstance(x, dict) or bool({"value", "source", "estimate"} & set(x))


def _flatten(v: _V, d, prefix, out):
    """Every leaf inline table under d (a figure) into out by dotted key."""
    for k, x in d.items():
        key = f"{prefix}.{k}"
        if not _is_figure(x):
            _flatten(v, x, key, out)
        else:
            out[key] = v.figure(x, key)


def from_dict(data, fname="<dict>", path="<dict>") -> SysDesc:
    v = _V(fname)
    unknown = set(data) - TOP_LEVEL
    if unknown:
        raise v.err(sorted(unknown)[0], f"unknown top-level table (known: {', '.join(sorted(TOP_LEVEL))})")
    ver = v.get(data, "format_version", "format_version", (int,))
    if ver != FORMAT_VERSION:
        raise v.err("format_version", f"version {ver} is not supported (this ttsim reads {FORMAT_VERSION})")
    chip = v.table(data, "chip", "chip")
    name = v.get(chip, "name", "chip.name", (str,))
    desc = v.get(chip, "description", "chip.description", (str,)) if "description" in chip else ""
    grid = v.table(data, "grid", "grid")
    ng = v.get(grid, "noc_grid", "grid.noc_grid", (list,))
    if len(ng) != 2 or not all(_is_int(n) and n > 0 for n in ng):
        raise v.err("grid.noc_grid", f"must be [width, height] of positive ints, got {ng}")
    torus = v.get(grid, "torus", "grid.torus", (bool,))
    wx = v.get(grid, "worker_x", "grid.worker_x", (list,))
    wy = v.get(grid, "worker_y", "grid.worker_y", (list,))
    for f, vals, lim in (("grid.worker_x", wx, ng[0]), ("grid.worker_y", wy, ng[1])):
        if not vals:
            raise v.err(f, "must list at least one coordinate")
        for c in vals:
            if not _is_int(c):
                raise v.err(f, f"coordinate {c!r} must be an int")
            if not 0 <= c < lim:
                raise v.err(f, f"coordinate {c!r} is off the {ng[0]}x{ng[1]} NoC grid")
        if len(set(vals)) != len(vals):
            raise v.err(f, f"duplicate coordinates in {vals}")
    l1 = v.table(data, "l1", "l1")
    size = v.get(l1, "size", "l1.size", (int,), positive=True)
    reserved = v.get(l1, "reserved", "l1.reserved", (int,), nonneg=True)
    if reserved >= size:
        raise v.err("l1.reserved", f"{reserved} leaves nothing of the {size}-byte L1")
    max_cbs = v.get(l1, "max_cbs", "l1.max_cbs", (int,), positive=True)
    noc = v.table(data, "noc", "noc")
    num_nocs = v.get(noc, "count", "noc.count", (int,), positive=True)

    for t in ("dram", "dst", "cost"):
        v.table(data, t, t)
    figures = {}
    for top in ("chip", "noc", "dram", "dst", "cost"):
        sect = data.get(top, {})
        for k, x in sect.items():
            if top == "chip" and k in ("name", "description"):
                continue
            if top == "noc" and k == "count":
                continue
            if top == "dram" and k == "banks":
                continue
            key = f"{top}.{k}"
            if not _is_figure(x):
                _flatten(v, x, key, figures)
            else:
                figures[key] = v.figure(x, key)
    missing = [k for k in REQUIRED_FIGURES if k not in figures]
    if missing:
        also = f"; also missing: {', '.join(missing[1:])}" if len(missing) > 1 else ""
        raise v.err(missing[0], f"missing (a required figure, see sysdesc.REQUIRED_FIGURES){also}")
    for k in ("noc.link_bytes_per_cycle", "noc.max_packet_bytes", "noc.l1_port_bytes_per_cycle",
              "noc.read_response_bytes_per_cycle", "noc.header_flits", "dram.bandwidth_bytes_per_cycle", "chip.clock_ghz",
              "dst.tiles_16bit", "cost.unpack.dual_bytes_per_cycle"):
        if figures[k].value <= 0:
            raise v.err(k, f"must be > 0, got {figures[k].value:g}")
    dst16 = figures["dst.tiles_16bit"].value
    if dst16 % 4:
        raise v.err("dst.tiles_16bit", f"must be a multiple of 4 (halved for fp32 and again for "
                                       f"half-sync), got {dst16:g}")

    dram = v.table(data, "dram", "dram")
    banks_raw = v.get(dram, "banks", "dram.banks", (list,))
    if not banks_raw:
        raise v.err("dram.banks", "at least one DRAM bank is needed")
    workers = {(x, y) for x in wx for y in wy}
    banks, seen = [], set()
    for i, b in enumerate(banks_raw):
        f = f"dram.banks[{i}]"
        if not isinstance(b, dict):
            raise v.err(f, "must be a table { id = ..., noc_xy = [x, y] }")
        extra = set(b) - {"id", "noc_xy", "bandwidth", "latency"}
        if extra:
            raise v.err(f, f"unknown keys {sorted(extra)} (known: id, noc_xy, bandwidth, latency)")
        bid = v.get(b, "id", f"{f}.id", (int,), nonneg=True)
        xy = v.get(b, "noc_xy", f"{f}.noc_xy", (list,))
        if len(xy) != 2 or not all(_is_int(c) for c in xy):
            raise v.err(f"{f}.noc_xy", f"must be [x, y], got {xy}")
        if not (0 <= xy[0] < ng[0] and 0 <= xy[1] < ng[1]):
            raise v.err(f"{f}.noc_xy", f"({xy[0]},{xy[1]}) is off the {ng[0]}x{ng[1]} NoC grid")
        if tuple(xy) in workers:
            raise v.err(f"{f}.noc_xy", f"({xy[0]},{xy[1]}) is a worker core")
        if tuple(xy) in seen:
            raise v.err(f"{f}.noc_xy", f"({xy[0]},{xy[1]}) is used by another bank")
        seen.add(tuple(xy))
        bw = v.figure(b["bandwidth"], f"{f}.bandwidth") if "bandwidth" in b else figures["dram.bandwidth_bytes_per_cycle"]
        if bw.value <= 0:
            raise v.err(f"{f}.bandwidth", f"must be > 0, got {bw.value:g}")
        lat = v.figure(b["latency"], f"{f}.latency") if "latency" in b else figures["dram.latency"]
        banks.append(DramBank(bid, tuple(xy), bw, lat))
    return SysDesc(name=name, format_version=ver, path=path, description=desc,
                   clock_ghz=figures["chip.clock_ghz"], noc_grid=tuple(ng), torus=torus,
                   worker_x=tuple(wx), worker_y=tuple(wy), dram_banks=tuple(banks), l1_size=size,
                   l1_reserved=reserved, max_cbs=max_cbs, num_nocs=num_nocs, figures=figures)
