"""Reading and validating system descriptions (TOML, format version 1)."""
from __future__ import annotations

import difflib
import math
import os
import tomllib

from . import schema
from .schema import OPTIONAL_FIGURES, REQUIRED_FIGURES, DramBank, Figure, SysDesc, SysdescError

FORMAT_VERSION = 1
BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin")
DEFAULT = "wormhole_b0"
TOP_LEVEL = {"format_version", "chip", "grid", "l1", "noc", "dram", "dst", "cost"}
PLAIN_KEYS = {"chip": ("name", "description"), "grid": ("noc_grid", "torus", "worker_x", "worker_y"),
              "l1": ("size", "reserved", "max_cbs"), "noc": ("count",), "dram": ("banks",)}
BANK_KEYS = ("id", "noc_xy", "bandwidth", "latency")
FIGURE_KEYS = ("value", "source", "estimate", "unit")
KNOWN_FIGURES = frozenset(REQUIRED_FIGURES) | frozenset(OPTIONAL_FIGURES)
_cache: dict = {}


def builtin_names():
    return sorted(f[:-5] for f in os.listdir(BUILTIN_DIR) if f.endswith(".toml"))


def load(name_or_path=None, chip=None) -> SysDesc:
    """A built-in description by name, a TOML file, or a tt-mlir system descriptor (.ttsys)
    by path; `chip` picks a chip of a multi-chip .ttsys (default 0). No name means
    $SYSTEM_DESC_PATH if it is set, else the default wormhole_b0."""
    if not name_or_path:
        name_or_path = os.environ.get("SYSTEM_DESC_PATH") or DEFAULT
    if isinstance(name_or_path, SysDesc):
        if chip is not None:
            raise SysdescError(f"{name_or_path.path}: chip={chip!r} applies when loading a .ttsys file")
        return name_or_path
    try:
        path = name_or_path = os.fspath(name_or_path)
    except TypeError:
        raise SysdescError(f"sysdesc {name_or_path!r:.60}: give a built-in name "
                           f"({', '.join(builtin_names())}), a path to a .toml or .ttsys file, "
                           f"or a loaded SysDesc") from None
    if isinstance(path, bytes):
        path = name_or_path = os.fsdecode(path)
    if not os.path.exists(path):
        if os.sep in path or path.endswith((".toml", ".ttsys")):
            raise SysdescError(f"{path}: no such file")
        path = os.path.join(BUILTIN_DIR, f"{name_or_path}.toml")
        if not os.path.exists(path):
            raise SysdescError(f"unknown sysdesc '{name_or_path}': built-ins are "
                               f"{', '.join(builtin_names())}, or give a path to a .toml or "
                               f".ttsys file")
    path = os.path.abspath(path)
    from . import ttsys
    is_ttsys = ttsys.is_ttsys(path)
    if chip is not None and not is_ttsys:
        raise SysdescError(f"{path}: chip={chip!r} applies to tt-mlir system descriptors "
                           f"(.ttsys); this is a TOML description of one chip")
    if is_ttsys and chip is None:
        chip = 0
    key = (path, os.path.getmtime(path), chip)
    if key not in _cache:
        _cache[key] = ttsys.parse(path, chip=chip) if is_ttsys else parse(path)
    return _cache[key]


def parse(path) -> SysDesc:
    """A TOML description read from `path`, without the cache."""
    return from_dict(read_toml(path), os.path.basename(path), path)


def read_toml(path) -> dict:
    """A TOML file as a dict, any failure to read or parse it a SysdescError."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SysdescError(f"{os.path.basename(path)}: not valid TOML: {e}") from None
    except OSError as e:
        raise SysdescError(f"{path}: cannot read: {e.strerror}") from None


def _did_you_mean(key, known):
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


class _V:
    """Field access with errors that name the file and the dotted field."""

    def __init__(self, fname):
        self.fname = fname

    def err(self, field, msg):
        return SysdescError(f"{self.fname}: {field}: {msg}")

    def get(self, d, key, field, types, positive=False, nonneg=False, hi=None):
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
        if hi is not None and v > hi:
            raise self.err(field, f"{v} is past the physical bound {hi}")
        return v

    def table(self, d, key, field):
        if key in d and not isinstance(d[key], dict):
            raise self.err(field, f"must be a table ([{field}] or {{ ... }}), "
                                  f"got {type(d[key]).__name__} {d[key]!r}")
        return self.get(d, key, field, (dict,))

    def keys(self, d, known, field):
        """Every key of d is one of `known`: a misspelt key is an error, never ignored."""
        for k in d:
            if k not in known:
                f = f"{field}.{k}" if field else k
                raise self.err(f, f"unknown key; {_did_you_mean(k, known)}"
                                  f"known: {', '.join(known)}")

    def figure(self, v, field, ceiling=schema.MAX_FIGURE):
        if not isinstance(v, dict):
            raise self.err(field, f"a figure is written {{ value = ..., source = \"...\" }} or "
                                  f"{{ value = ..., estimate = \"why\" }}, got {v!r}")
        extra = set(v) - set(FIGURE_KEYS)
        if extra:
            raise self.err(field, f"unknown keys {sorted(extra)} (known: {', '.join(FIGURE_KEYS)})")
        val = self.get(v, "value", f"{field}.value", (int, float))
        try:
            finite = math.isfinite(val)
        except OverflowError:
            finite = False
        if not finite or val < 0:
            raise self.err(field, f"must be a finite number >= 0, got {val}")
        if val > ceiling:
            raise self.err(field, f"{val:g} is past the physical bound {ceiling:g}")
        has_s, has_e = "source" in v, "estimate" in v
        if has_s == has_e:
            raise self.err(field, "needs exactly one of 'source' (where the figure comes from) "
                                  "or 'estimate' (why this number)")
        text = v["source"] if has_s else v["estimate"]
        if not isinstance(text, str) or not text.strip():
            raise self.err(field, "source/estimate must be a non-empty string")
        return Figure(float(val), text.strip(), has_e)


def _is_int(c):
    return isinstance(c, int) and not isinstance(c, bool)


def _is_figure(x):
    """A figure is an inline table with any of its keys (so a figure that lacks `value` is
    reported as such, not taken for a table of figures)."""
    return not isinstance(x, dict) or bool({"value", "source", "estimate"} & set(x))


def _figures(v: _V, d, prefix, out):
    """Every figure under d into out by dotted key; a name no one reads is an error."""
    for k, x in d.items():
        key = f"{prefix}.{k}"
        if not _is_figure(x):
            _figures(v, x, key, out)
            continue
        if key not in KNOWN_FIGURES:
            top = prefix.split(".")[0]
            plain = [f"{top}.{p}" for p in PLAIN_KEYS.get(top, ())]
            raise v.err(key, f"unknown key; {_did_you_mean(key, list(KNOWN_FIGURES) + plain)}"
                             f"the figures a description may hold are sysdesc.REQUIRED_FIGURES "
                             f"and sysdesc.schema.OPTIONAL_FIGURES")
        out[key] = v.figure(x, key, schema.FIGURE_CEILINGS.get(key, schema.MAX_FIGURE))


def from_dict(data, fname="<dict>", path="<dict>") -> SysDesc:
    v = _V(fname)
    unknown = set(data) - TOP_LEVEL
    if unknown:
        k = sorted(unknown)[0]
        raise v.err(k, f"unknown top-level table; {_did_you_mean(k, TOP_LEVEL)}"
                       f"known: {', '.join(sorted(TOP_LEVEL))}")
    ver = v.get(data, "format_version", "format_version", (int,))
    if ver != FORMAT_VERSION:
        raise v.err("format_version", f"version {ver} is not supported (this ttsim reads {FORMAT_VERSION})")
    chip = v.table(data, "chip", "chip")
    name = v.get(chip, "name", "chip.name", (str,))
    desc = v.get(chip, "description", "chip.description", (str,)) if "description" in chip else ""
    grid = v.table(data, "grid", "grid")
    v.keys(grid, PLAIN_KEYS["grid"], "grid")
    ng = v.get(grid, "noc_grid", "grid.noc_grid", (list,))
    if len(ng) != 2 or not all(_is_int(n) and n > 0 for n in ng):
        raise v.err("grid.noc_grid", f"must be [width, height] of positive ints, got {ng}")
    if max(ng) > schema.MAX_NOC_DIM:
        raise v.err("grid.noc_grid", f"{ng[0]}x{ng[1]} is past the physical bound of "
                                     f"{schema.MAX_NOC_DIM} a side (Blackhole's NoC is 17x12)")
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
    v.keys(l1, PLAIN_KEYS["l1"], "l1")
    size = v.get(l1, "size", "l1.size", (int,), positive=True, hi=schema.MAX_L1_BYTES)
    reserved = v.get(l1, "reserved", "l1.reserved", (int,), nonneg=True)
    if reserved >= size:
        raise v.err("l1.reserved", f"{reserved} leaves nothing of the {size}-byte L1")
    max_cbs = v.get(l1, "max_cbs", "l1.max_cbs", (int,), positive=True, hi=schema.MAX_CBS)
    noc = v.table(data, "noc", "noc")
    num_nocs = v.get(noc, "count", "noc.count", (int,), positive=True, hi=schema.MAX_NOCS)

    for t in ("dram", "dst", "cost"):
        v.table(data, t, t)
    figures = {}
    for top in ("chip", "noc", "dram", "dst", "cost"):
        sect = {k: x for k, x in data[top].items() if k not in PLAIN_KEYS.get(top, ())}
        _figures(v, sect, top, figures)
    missing = [k for k in REQUIRED_FIGURES if k not in figures]
    if missing:
        also = f"; also missing: {', '.join(missing[1:])}" if len(missing) > 1 else ""
        raise v.err(missing[0], f"missing (a required figure, see sysdesc.REQUIRED_FIGURES){also}")
    for k in schema.POSITIVE_FIGURES:
        if k in figures and figures[k].value <= 0:
            raise v.err(k, f"must be > 0, got {figures[k].value:g}")
    for k in schema.INTEGER_FIGURES:
        if k in figures and figures[k].value != int(figures[k].value):
            raise v.err(k, f"must be a whole number (the simulator counts it in units), "
                           f"got {figures[k].value:g}")
    for k in schema.POWER_OF_TWO_FIGURES:
        a = figures[k].value if k in figures else 1
        if a < 1 or a != int(a) or int(a) & (int(a) - 1):
            raise v.err(k, f"must be a power of two (an address alignment), got {a:g}")
    for k in ("noc.dram_read_noc", "noc.dram_write_noc"):
        if k in figures and figures[k].value >= num_nocs:
            raise v.err(k, f"NoC {figures[k].value:g} does not exist (noc.count is {num_nocs})")
    dst16 = figures["dst.tiles_16bit"].value
    if dst16 % 4:
        raise v.err("dst.tiles_16bit", f"must be a multiple of 4 (halved for fp32 and again for "
                                       f"half-sync), got {dst16:g}")

    dram = data["dram"]
    banks_raw = v.get(dram, "banks", "dram.banks", (list,))
    if not banks_raw:
        raise v.err("dram.banks", "at least one DRAM bank is needed")
    if len(banks_raw) > schema.MAX_DRAM_BANKS:
        raise v.err("dram.banks", f"{len(banks_raw)} banks is past the physical bound "
                                  f"{schema.MAX_DRAM_BANKS} (Wormhole has 12)")
    workers = {(x, y) for x in wx for y in wy}
    bw_ceiling = schema.FIGURE_CEILINGS["dram.bandwidth_bytes_per_cycle"]
    banks, seen, ids = [], set(), {}
    for i, b in enumerate(banks_raw):
        f = f"dram.banks[{i}]"
        if not isinstance(b, dict):
            raise v.err(f, "must be a table { id = ..., noc_xy = [x, y] }")
        extra = set(b) - set(BANK_KEYS)
        if extra:
            k = sorted(extra)[0]
            raise v.err(f, f"unknown keys {sorted(extra)} ({_did_you_mean(k, BANK_KEYS)}"
                           f"known: {', '.join(BANK_KEYS)})")
        bid = v.get(b, "id", f"{f}.id", (int,), nonneg=True, hi=schema.MAX_BANK_ID)
        if bid in ids:
            raise v.err(f"{f}.id", f"id {bid} is also dram.banks[{ids[bid]}]'s")
        ids[bid] = i
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
        bw = (v.figure(b["bandwidth"], f"{f}.bandwidth", bw_ceiling) if "bandwidth" in b
              else figures["dram.bandwidth_bytes_per_cycle"])
        if bw.value <= 0:
            raise v.err(f"{f}.bandwidth", f"must be > 0, got {bw.value:g}")
        lat = v.figure(b["latency"], f"{f}.latency") if "latency" in b else figures["dram.latency"]
        banks.append(DramBank(bid, tuple(xy), bw, lat))
    return SysDesc(name=name, format_version=ver, path=path, description=desc,
                   clock_ghz=figures["chip.clock_ghz"], noc_grid=tuple(ng), torus=torus,
                   worker_x=tuple(wx), worker_y=tuple(wy), dram_banks=tuple(banks), l1_size=size,
                   l1_reserved=reserved, max_cbs=max_cbs, num_nocs=num_nocs,
                   dram_bank_bytes=int(figures["dram.bank_bytes"].value), figures=figures)
