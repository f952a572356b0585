"""Fidelity of the NoC and DRAM cycle model against measured hardware.

Re-creates every row of the calibration CSVs (default: ../shared/calibration/
wormhole_noc_latency.csv and wormhole_noc_multicast.csv) as a micro-kernel on the simulator:
a ttsim Program on the row's
chip in which one data-movement kernel issues `num_transactions` transfers of
`transaction_bytes` back to back on the row's NoC, then one barrier, timed with the RISC's
wall clock from just before the first issue to the barrier's return (as the tt-metal test
times its zone). Prints measured cycles, simulated cycles and the error per row, then the
mean absolute percentage error (MAPE) and the worst row per group.

    python benchmarks/fidelity.py [--csv PATH ...] [--out table.csv] [--json figures.json]
                                  [--fit-split size|count|none] [--sysdesc ARCH=PATH]
                                  [--mcast-placement after|before] [--quiet]

Placement (the CSVs do not record cores): the issuing core is logical worker (0, 0); an L1
partner is worker (1, 1), or (0, 1) (same column) when `same_axis`; a sharded DRAM buffer
lives in the first bank (by id) whose endpoint differs from the issuer in both coordinates
(or shares one when `same_axis`); an interleaved buffer has page i in bank i mod banks;
`*_all` patterns go round-robin over every other worker (L1) or every bank (DRAM); multicast
(`multicast`, or `multicast_linked`: every transfer but the last linked) goes to the logical
rectangle in the optional columns dest_x0, dest_y0, dest_x1, dest_y1, or, with the optional
columns num_subordinates and loopback, to a rectangle at the origin of MEASURED_GRID (see
Bench.mcast_place, MCAST_PLACEMENT), or else to the whole worker grid but the issuer.
`all_*` patterns run the same kernel on every worker but the target (cycles: the slowest
one). See docs/cycle-model.md, "Accuracy".
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sysdesc  # noqa: E402
import ttsim  # noqa: E402

CALIBRATION_CSV = ROOT.parent / "shared" / "calibration" / "wormhole_noc_latency.csv"
MULTICAST_CSV = ROOT.parent / "shared" / "calibration" / "wormhole_noc_multicast.csv"
DEFAULT_CSVS = (CALIBRATION_CSV, MULTICAST_CSV)
# The figures in sysdesc were fitted on rows of these files only (see fit_split): the unicast
# and DRAM figures on the first, the multicast ones on the second.
FIT_FILES = {CALIBRATION_CSV.name, MULTICAST_CSV.name}

# Published accuracy on DEFAULT_CSVS (docs/cycle-model.md, "Accuracy"); the test
# tests/ttsim/test_fidelity.py keeps the model within it. Rounded up from what this script
# prints, so a change that makes the model worse fails the test.
PUBLISHED = {"mape_all_pct": 3.3, "mape_fit_pct": 3.2, "mape_holdout_pct": 3.4,
             "mape_unicast_fit_pct": 2.6, "mape_unicast_holdout_pct": 2.7,
             "mape_unicast_l1_pct": 2.0, "mape_dram_pct": 3.8,
             "mape_multicast_pct": 3.7, "mape_multicast_fit_pct": 3.6,
             "mape_multicast_holdout_pct": 3.7, "mape_mcast_plain_pct": 4.2,
             "mape_mcast_linked_pct": 3.1, "mape_mcast_one_to_all_pct": 3.9,
             "mape_mcast_one_to_row_pct": 3.7, "mape_mcast_one_to_column_pct": 2.8,
             "mape_mcast_loopback_pct": 4.1, "mape_mcast_no_loopback_pct": 3.2,
             "worst_multicast_pct": 16.5, "worst_row_pct": 34.2}

COLUMNS = ("arch", "mechanism", "pattern", "memory", "noc", "num_transactions", "same_axis",
           "stateful", "transaction_bytes", "cycles")
RECT_COLUMNS = ("dest_x0", "dest_y0", "dest_x1", "dest_y1")
MCAST_COLUMNS = ("num_subordinates", "loopback")      # optional; multicast rows only
ARCH_SYSDESC = {"wormhole_b0": "wormhole_b0", "blackhole": "blackhole"}
MECHANISMS = ("unicast", "multicast", "multicast_linked")
MEMORIES = ("l1", "dram_sharded", "dram_interleaved")
# pattern -> (who issues, read or write, to one target, to all, or (multicast) a row / column)
PATTERNS = {
    "one_to_one": ("one", "write", "one"), "one_from_one": ("one", "read", "one"),
    "one_to_all": ("one", "write", "all"), "one_from_all": ("one", "read", "all"),
    "all_to_one": ("all", "write", "one"), "all_from_one": ("all", "read", "one"),
    "one_to_row": ("one", "write", "row"), "one_to_column": ("one", "write", "column"),
}
ISSUER = (0, 0)
# The worker grid multicast rows with num_subordinates were measured on (calibration/README:
# "a chip with a 56-core worker grid"; a row holds 8 of them, a column 7): the first seven
# rows of the 8x8 wormhole_b0 description. Other chips: their whole grid.
MEASURED_GRID = {"wormhole_b0": (8, 7)}
# Where a multicast that does not loop back is issued from (the CSV does not record it):
# "after": the rectangle sits at the grid's origin and the issuer just past its far side
# (the next column; for a whole row, the next row), so on NoC 0 the tree wraps round the
# torus to reach it; "before": the issuer at the origin and the rectangle starting next to
# it in NoC 0's direction. See docs/cycle-model.md, "Accuracy".
MCAST_PLACEMENTS = ("after", "before")
MCAST_PLACEMENT = "after"


class RowError(ValueError):
    """A row the script cannot re-create; the message names the file and line."""


@dataclass
class Row:
    file: str
    line: int
    arch: str
    mechanism: str
    pattern: str
    memory: str
    noc: int
    n: int
    same_axis: bool
    stateful: bool
    nbytes: int
    cycles: float
    rect: tuple | None = None               # logical (x0, y0, x1, y1) for multicast
    raw: dict = field(default_factory=dict, repr=False)
    subs: int | None = None                 # multicast: destination cores (loopback: with the issuer)
    loopback: bool = False                  # multicast: the issuer receives too

    @property
    def multicast(self):
        return self.mechanism.startswith("multicast")

    @property
    def linked(self):
        return self.mechanism == "multicast_linked"

    @property
    def where(self):
        return f"{self.file}:{self.line}"

    def describe(self):
        return (f"{self.arch} {self.mechanism} {self.pattern} {self.memory} noc{self.noc} "
                f"{self.n} x {self.nbytes} B{' same-axis' if self.same_axis else ''}"
                f"{' stateful' if self.stateful else ''}"
                f"{f' to {self.subs}' if self.subs else ''}{' loopback' if self.loopback else ''}")


# --- reading --------------------------------------------------------------------------------
def _int(raw, col, where, lo=None, allowed=None):
    try:
        v = int(raw[col])
    except (TypeError, ValueError):
        raise RowError(f"{where}: column {col} must be an integer, got {raw[col]!r}") from None
    if lo is not None and v < lo:
        raise RowError(f"{where}: column {col} must be >= {lo}, got {v}")
    if allowed is not None and v not in allowed:
        raise RowError(f"{where}: column {col} must be one of {sorted(allowed)}, got {v}")
    return v


def parse_row(raw, file, line) -> Row:
    """One CSV record -> Row, or a RowError naming the file, line and the bad column."""
    where = f"{file}:{line}"
    missing = [c for c in COLUMNS if raw.get(c) in (None, "")]
    if missing:
        raise RowError(f"{where}: missing column(s) {', '.join(missing)}")
    arch, mech, pattern, memory = (raw[c].strip() for c in ("arch", "mechanism", "pattern",
                                                            "memory"))
    if arch not in ARCH_SYSDESC:
        raise RowError(f"{where}: unknown arch {arch!r} (known: {', '.join(ARCH_SYSDESC)})")
    if mech not in MECHANISMS:
        raise RowError(f"{where}: unknown mechanism {mech!r} (known: {', '.join(MECHANISMS)})")
    if pattern not in PATTERNS:
        raise RowError(f"{where}: unknown pattern {pattern!r} (known: {', '.join(PATTERNS)})")
    if memory not in MEMORIES:
        raise RowError(f"{where}: unknown memory {memory!r} (known: {', '.join(MEMORIES)})")
    try:
        cycles = float(raw["cycles"])
    except ValueError:
        raise RowError(f"{where}: column cycles must be a number, got {raw['cycles']!r}") from None
    if not cycles > 0:
        raise RowError(f"{where}: column cycles must be > 0, got {raw['cycles']!r}")
    rect = None
    if any(raw.get(c) not in (None, "") for c in RECT_COLUMNS):
        rect = tuple(_int(raw, c, where, lo=0) for c in RECT_COLUMNS)
    subs = _int(raw, "num_subordinates", where, lo=1) \
        if raw.get("num_subordinates") not in (None, "") else None
    loopback = bool(_int(raw, "loopback", where, allowed={0, 1})) \
        if raw.get("loopback") not in (None, "") else False
    row = Row(file, line, arch, mech, pattern, memory, _int(raw, "noc", where, lo=0),
              _int(raw, "num_transactions", where, lo=1),
              bool(_int(raw, "same_axis", where, allowed={0, 1})),
              bool(_int(raw, "stateful", where, allowed={0, 1})),
              _int(raw, "transaction_bytes", where, lo=1), cycles, rect, dict(raw), subs,
              loopback)
    direction, scope = PATTERNS[pattern][1:]
    if row.multicast:
        if direction != "write" or memory != "l1" or PATTERNS[pattern][0] != "one":
            raise RowError(f"{where}: multicast writes from one core to cores' L1: pattern "
                           f"{pattern!r} with memory {memory!r} cannot be multicast")
        if row.stateful:
            raise RowError(f"{where}: stateful multicast is not modelled")
        if rect is not None and subs is not None:
            raise RowError(f"{where}: give either dest_x0..dest_y1 or num_subordinates, not both")
        if scope in ("row", "column") and subs is None and rect is None:
            raise RowError(f"{where}: pattern {pattern!r} needs num_subordinates")
    else:
        if rect is not None:
            raise RowError(f"{where}: dest_x0..dest_y1 are for multicast rows only")
        if scope in ("row", "column"):
            raise RowError(f"{where}: pattern {pattern!r} is for multicast rows only")
        if loopback or subs not in (None, 1):
            raise RowError(f"{where}: num_subordinates and loopback are for multicast rows only")
    return row


def read_rows(path) -> list[Row]:
    path = Path(path)
    if not path.exists():
        raise RowError(f"{path}: no such file")
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        absent = [c for c in COLUMNS if c not in (rd.fieldnames or [])]
        if absent:
            raise RowError(f"{path}: header lacks column(s) {', '.join(absent)} "
                           f"(expected {', '.join(COLUMNS)})")
        return [parse_row(raw, path.name, i) for i, raw in enumerate(rd, start=2)]


SPLITS = ("size", "count", "none")


def _even_power(v, base_log2):
    return v & (v - 1) == 0 and (v.bit_length() - 1) % base_log2 == 0


def fit_split(row: Row, rule="size") -> str:
    """'fit' or 'holdout'. Rule 'size' (what the sysdesc figures were fitted with): rows of
    the calibration CSV whose transfer size is an even power of two (64 B, 256 B, 1 KiB ...
    64 KiB) are fit rows; the others (128 B, 512 B ... 32 KiB) and every row of another file
    are held out. Rule 'count' (a second experiment, benchmarks/calibrate.py --split count):
    fit on 1, 16 and 256 transactions, hold out 4 and 64. Rule 'none': all held out. The
    same rules hold for the multicast file."""
    if rule not in SPLITS:
        raise ValueError(f"unknown fit split {rule!r} (known: {', '.join(SPLITS)})")
    if rule == "none" or row.file not in FIT_FILES:
        return "holdout"
    if rule == "count":
        return "fit" if _even_power(row.n, 4) else "holdout"
    return "fit" if _even_power(row.nbytes, 2) else "holdout"


# --- the micro-kernel ---------------------------------------------------------------------------
class Bench:
    """One simulated device per arch, reused across rows; a fresh Program for each row."""

    def __init__(self, sysdescs=None, mcast_placement=None):
        self._names = dict(ARCH_SYSDESC, **(sysdescs or {}))
        self.mcast_placement = mcast_placement or MCAST_PLACEMENT
        if self.mcast_placement not in MCAST_PLACEMENTS:
            raise ValueError(f"unknown multicast placement {self.mcast_placement!r} "
                             f"(known: {', '.join(MCAST_PLACEMENTS)})")
        self._devs = {}
        self._dram = {}                  # arch -> (base address, bytes per bank available)

    def device(self, arch):
        d = self._devs.get(arch)
        if d is None:
            d = self._devs[arch] = ttsim.Device(sysdesc.load(self._names[arch]))
        return d

    def _dram_base(self, arch, per_bank):
        have = self._dram.get(arch)
        if have is None or have[1] < per_bank:
            dev = self.device(arch)
            pages = -(-max(per_bank, 1 << 16) // 2048) * len(dev.sd.dram_banks)
            t = dev.zeros((pages * 32, 32))
            have = self._dram[arch] = (t.address, -(-pages // len(dev.sd.dram_banks)) * 2048)
        return have[0]

    def mcast_place(self, row: Row, sd):
        """(issuer, logical rectangle (x0, y0, x1, y1)) of a multicast row: from its
        dest_x0..dest_y1, or from num_subordinates and the pattern on MEASURED_GRID (a
        rectangle at the origin: w x w for one_to_all, the whole grid, row 0 or column 0;
        the issuer at the origin inside it for loopback, else placed as
        `self.mcast_placement` says), or the whole grid but the issuer."""
        gw, gh = sd.worker_grid()
        if row.rect is not None:
            return ISSUER, row.rect
        if row.subs is None:
            return ISSUER, (0, 0, gw - 1, gh - 1)
        mw, mh = MEASURED_GRID.get(row.arch, (gw, gh))
        mw, mh = min(mw, gw), min(mh, gh)
        n, scope = row.subs, PATTERNS[row.pattern][2]
        if scope == "row":
            w, h = mw, 1
        elif scope == "column":
            w, h = 1, mh
        elif n == mw * mh:
            w, h = mw, mh
        else:
            w = math.isqrt(n)
            if w * w != n:
                raise RowError(f"{row.where}: one_to_all to {n} cores: neither a square nor the "
                               f"{mw}x{mh} grid")
            h = w
        if w * h != n:
            raise RowError(f"{row.where}: {row.pattern} reaches {w * h} cores on the {mw}x{mh} "
                           f"grid, the row says {n}")
        if row.loopback:
            return ISSUER, (0, 0, w - 1, h - 1)
        if self.mcast_placement == "after":
            issuer = (0, 1) if scope == "row" else (w, 0)
            rect = (0, 0, w - 1, h - 1)
        else:
            rect = (0, 1, w - 1, 1) if scope == "row" else (1, 0, w, h - 1)
            issuer = ISSUER
        if issuer[0] >= gw or issuer[1] >= gh or rect[2] >= gw or rect[3] >= gh:
            raise RowError(f"{row.where}: {row.pattern} to {n} cores without loopback does not "
                           f"fit the {gw}x{gh} grid of {sd.name} with the issuer outside")
        return issuer, rect

    def plan(self, row: Row, dev):
        """(issuers, targets, kind, api): logical issuing cores; per issuer the NoC endpoints
        (x, y) its transactions go to, round-robin (for a multicast, the NoC rectangle);
        'read' / 'write' / 'mcast'; and the issue API ('plain', 'state' or 'addrgen')."""
        sd = dev.sd
        who, direction, scope = PATTERNS[row.pattern]
        workers = [(x, y) for y in range(sd.worker_grid()[1]) for x in range(sd.worker_grid()[0])]
        if len(workers) < 2:
            raise RowError(f"{row.where}: {sd.name} has one worker core; the pattern needs two")
        me = sd.worker_noc_xy(*ISSUER)
        banks = [tuple(b.noc_xy) for b in sd.dram_banks]
        if row.multicast:
            issuer, (x0, y0, x1, y1) = self.mcast_place(row, sd)
            try:
                a, b = sd.worker_noc_xy(x0, y0), sd.worker_noc_xy(x1, y1)
            except sysdesc.SysdescError as e:
                raise RowError(f"{row.where}: multicast rectangle: {e}") from None
            if (x0, y0) == (x1, y1) == issuer and not row.loopback:
                raise RowError(f"{row.where}: the multicast rectangle holds only the issuer")
            return [issuer], [(a[0], a[1], b[0], b[1])], "mcast", "plain"
        if row.memory == "dram_interleaved":
            targets, api = banks, "addrgen"
        elif row.memory == "dram_sharded":
            if scope == "all":
                targets = banks
            else:
                want = [xy for xy in banks if (xy[0] == me[0] or xy[1] == me[1]) == row.same_axis]
                if not want:
                    how = ("shares a row or column with" if row.same_axis
                           else "differs in both coordinates from")
                    raise RowError(f"{row.where}: no DRAM bank on {sd.name} {how} core {me}")
                targets = [want[0]]
            api = "plain"
        else:
            partner = (0, 1) if row.same_axis else (1, 1)
            if scope == "all":
                targets = [sd.worker_noc_xy(*c) for c in workers if c != ISSUER]
            else:
                targets = [sd.worker_noc_xy(*partner)]
            api = "plain"
        if row.stateful:
            if api == "addrgen":
                raise RowError(f"{row.where}: stateful issue to an interleaved buffer is not "
                               f"modelled (the state fixes one bank)")
            api = "state"
        issuers = [ISSUER]
        if who == "all":
            # every worker but the one target issues; the target is the partner core or bank
            if scope != "one" or row.memory == "dram_interleaved":
                raise RowError(f"{row.where}: pattern {row.pattern} needs one target")
            tgt = targets[0]
            issuers = [c for c in workers if sd.worker_noc_xy(*c) != tgt]
        return issuers, targets, ("read" if direction == "read" else "write"), api

    def simulate(self, row: Row) -> float:
        """Simulated cycles for the row: the slowest issuer's timed region."""
        dev = self.device(row.arch)
        if row.noc >= dev.sd.num_nocs:
            raise RowError(f"{row.where}: noc {row.noc} does not exist on {dev.sd.name} "
                           f"({dev.sd.num_nocs} NoCs)")
        issuers, targets, kind, api = self.plan(row, dev)
        n, size = row.n, row.nbytes
        per_bank = size * (-(-n // len(targets)) if api == "addrgen" else 1)
        dram_addr = self._dram_base(row.arch, per_bank) if row.memory != "l1" else None
        prog = ttsim.Program(dev)
        cores = set(issuers)
        if row.memory == "l1":
            cores |= {c for c in dev.cores if dev.sd.worker_noc_xy(*c) in set(targets)}
            if kind == "mcast":
                cores = set(dev.cores)
        try:
            prog.circular_buffer(sorted(cores), 0, num_pages=1, page_size=size)
        except ttsim.TTSimError as e:
            raise RowError(f"{row.where}: {e}") from None
        out = {}
        mc = (row.linked, row.loopback, row.subs) if kind == "mcast" else None
        fn = _kernel(kind, api, targets, n, size, dram_addr, out, mc)
        if kind == "read":
            prog.reader(issuers, fn, noc=row.noc)
        else:
            prog.writer(issuers, fn, noc=row.noc)
        try:
            dev.run(prog)
        except ttsim.L1OverflowError as e:
            raise RowError(f"{row.where}: {str(e).splitlines()[0]}") from None
        return float(max(out.values()))


def _kernel(kind, api, targets, n, size, dram_addr, out, mc=None):
    """The timed micro-kernel: n transfers back to back, then one barrier. A linked
    multicast series links every transfer but the last, which releases the path (as the
    measurements show: one linked transfer costs what a plain one does)."""
    def kernel(k):
        local = k.get_write_ptr(0)
        remote = local if dram_addr is None else dram_addr
        nt = len(targets)
        if kind == "mcast":
            linked, loopback, subs = mc
            x0, y0, x1, y1 = targets[0]
            dst = k.get_noc_multicast_addr(x0, y0, x1, y1, remote)
            send = (k.noc_async_write_multicast_loopback_src if loopback
                    else k.noc_async_write_multicast)
            t0 = k.wall_clock()
            for i in range(n):
                send(local, dst, size, subs, linked=linked and i < n - 1)
            k.noc_async_write_barrier()
        elif api == "addrgen":
            g = k.interleaved_addr_gen(dram_addr, page_size=size)
            t0 = k.wall_clock()
            if kind == "read":
                for i in range(n):
                    k.noc_async_read_tile(i, g, local)
                k.noc_async_read_barrier()
            else:
                for i in range(n):
                    k.noc_async_write_tile(i, g, local)
                k.noc_async_write_barrier()
        elif api == "state":
            t0 = k.wall_clock()
            cur = None
            for i in range(n):
                xy = targets[i % nt]
                if kind == "read":
                    if xy != cur:
                        k.noc_async_read_set_state(k.get_noc_addr(xy[0], xy[1], remote))
                    k.noc_async_read_with_state(remote, local, size)
                else:
                    if xy != cur:
                        k.noc_async_write_set_state(k.get_noc_addr(xy[0], xy[1], remote))
                    k.noc_async_write_with_state(local, remote, size)
                cur = xy
            if kind == "read":
                k.noc_async_read_barrier()
            else:
                k.noc_async_write_barrier()
        else:
            addrs = [k.get_noc_addr(x, y, remote) for x, y in targets]
            t0 = k.wall_clock()
            if kind == "read":
                for i in range(n):
                    k.noc_async_read(addrs[i % nt], local, size)
                k.noc_async_read_barrier()
            else:
                for i in range(n):
                    k.noc_async_write(local, addrs[i % nt], size)
                k.noc_async_write_barrier()
        out[k.core] = k.wall_clock() - t0
    return kernel


# --- evaluating and summarising ----------------------------------------------------------------
def groups(row: Row, split=None) -> list[str]:
    """The summary groups a row belongs to (besides 'all' and its fit/holdout split):
    unicast rows by memory; multicast rows by mechanism, pattern and loopback; each kind's
    own fit/holdout split; the arch."""
    if row.multicast:
        g = ["multicast", "mcast_linked" if row.linked else "mcast_plain",
             f"mcast_{row.pattern}", "mcast_loopback" if row.loopback else "mcast_no_loopback"]
        kind = "multicast"
    else:
        g = ["unicast_l1" if row.memory == "l1" else "dram"]
        kind = "unicast"
    if split is not None:
        g.append(f"{kind}_{split}")
    g.append(row.arch)
    return g


def evaluate(rows, split="size", bench=None) -> list[dict]:
    """Simulate every row: dicts with the row, simulated cycles, signed error (%) and split."""
    bench = bench or Bench()
    out = []
    for r in rows:
        sim = bench.simulate(r)
        out.append({"row": r, "simulated": sim, "error_pct": 100.0 * (sim - r.cycles) / r.cycles,
                    "split": fit_split(r, split)})
    return out


GROUP_ORDER = ("all", "fit", "holdout", "unicast_fit", "unicast_holdout", "unicast_l1", "dram",
               "multicast", "multicast_fit", "multicast_holdout", "mcast_plain", "mcast_linked",
               "mcast_one_to_all", "mcast_one_to_row", "mcast_one_to_column", "mcast_loopback",
               "mcast_no_loopback")


def _p95(errs):
    """95th percentile (nearest rank): the error 95% of the rows stay within."""
    e = sorted(errs)
    return e[max(0, math.ceil(0.95 * len(e)) - 1)]


def summarize(results) -> dict:
    """Flat figures, units in the names: MAPE, 95th percentile, worst row and row count per
    group."""
    by: dict[str, list] = {}
    for res in results:
        for g in ["all", res["split"]] + groups(res["row"], res["split"]):
            by.setdefault(g, []).append(res)
    fig = {}
    order = [g for g in GROUP_ORDER if g in by] + sorted(set(by) - set(GROUP_ORDER))
    for g in order:
        errs = [abs(r["error_pct"]) for r in by[g]]
        fig[f"mape_{g}_pct"] = sum(errs) / len(errs)
        fig[f"p95_{g}_pct"] = _p95(errs)
        fig[f"worst_{g}_pct"] = max(errs)
        fig[f"worst_{g}_line"] = worst(by[g])["row"].line
        fig[f"rows_{g}_count"] = len(errs)
    w = worst(results)
    fig["worst_row_pct"] = abs(w["error_pct"])
    fig["worst_row_line"] = w["row"].line
    return fig


def worst(results):
    """The result with the largest absolute error."""
    return max(results, key=lambda r: abs(r["error_pct"]))


def write_table(results, path):
    cols = list(COLUMNS + MCAST_COLUMNS) + ["simulated_cycles", "error_pct", "split", "file",
                                             "line"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for res in results:
            r = res["row"]
            w.writerow([r.raw.get(c, "") for c in COLUMNS + MCAST_COLUMNS] +
                       [f"{res['simulated']:.0f}", f"{res['error_pct']:.2f}", res["split"],
                        r.file, r.line])


def print_table(results, summary, file=None, rows=True):
    p = lambda *a: print(*a, file=file or sys.stdout)  # noqa: E731
    if rows:
        p(f"{'file:line':<32} {'arch':<11} {'mech':<16} {'pattern':<13} {'memory':<16} noc "
          f"{'n':>4} {'bytes':>6} ax st {'to':>3} lb {'split':<7} {'measured':>9} "
          f"{'simulated':>9} {'err%':>7}")
        for res in results:
            r = res["row"]
            p(f"{r.where:<32} {r.arch:<11} {r.mechanism:<16} {r.pattern:<13} {r.memory:<16} "
              f"{r.noc:>3} {r.n:>4} {r.nbytes:>6} {int(r.same_axis):>2} {int(r.stateful):>2} "
              f"{r.subs or '':>3} {int(r.loopback):>2} "
              f"{res['split']:<7} {r.cycles:>9.0f} {res['simulated']:>9.0f} "
              f"{res['error_pct']:>+7.1f}")
        p("")
    p(f"{'group':<20} {'rows':>5} {'MAPE %':>8} {'p95 %':>8} {'worst %':>8}  worst row (line)")
    names = [k[len("rows_"):-len("_count")] for k in summary if k.startswith("rows_")]
    for g in names:
        p(f"{g:<20} {summary[f'rows_{g}_count']:>5} {summary[f'mape_{g}_pct']:>8.2f} "
          f"{summary[f'p95_{g}_pct']:>8.2f} {summary[f'worst_{g}_pct']:>8.2f}  "
          f"{summary[f'worst_{g}_line']}")
    w = worst(results)
    p(f"worst row: {w['row'].where} {w['row'].describe()}: measured {w['row'].cycles:.0f}, "
      f"simulated {w['simulated']:.0f} ({w['error_pct']:+.1f}%)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", action="append", default=None,
                    help=f"a measurement CSV (repeatable; default {CALIBRATION_CSV} and "
                         f"{MULTICAST_CSV})")
    ap.add_argument("--mcast-placement", default=MCAST_PLACEMENT, choices=MCAST_PLACEMENTS,
                    help="where a multicast without loopback is issued from (see "
                         "MCAST_PLACEMENT; default %(default)s)")
    ap.add_argument("--out", default=None, help="write the per-row table to this CSV")
    ap.add_argument("--json", default=None, help="write every reported figure to this JSON")
    ap.add_argument("--fit-split", default="size", choices=SPLITS,
                    help="which calibration rows count as fitted (default 'size': the split "
                         "the sysdesc figures were fitted with; see fit_split)")
    ap.add_argument("--sysdesc", action="append", default=[], metavar="ARCH=PATH",
                    help="simulate ARCH rows on this sysdesc (a built-in name or a .toml path)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    a = ap.parse_args(argv)
    over = {}
    for s in a.sysdesc:
        arch, sep, path = s.partition("=")
        if not sep or arch not in ARCH_SYSDESC:
            ap.error(f"--sysdesc wants ARCH=PATH with ARCH one of {', '.join(ARCH_SYSDESC)}, "
                     f"got {s!r}")
        over[arch] = path
    t0 = time.perf_counter()
    try:
        rows = [r for path in (a.csv or DEFAULT_CSVS) for r in read_rows(path)]
        if not rows:
            raise RowError("no rows to simulate")
        results = evaluate(rows, a.fit_split, Bench(over, a.mcast_placement))
    except (RowError, sysdesc.SysdescError) as e:
        print(f"fidelity: {e}", file=sys.stderr)
        return 2
    summary = summarize(results)
    summary["wall_s"] = time.perf_counter() - t0
    print_table(results, summary, rows=not a.quiet)
    print(f"{len(rows)} rows simulated in {summary['wall_s']:.1f} s")
    if a.out:
        write_table(results, a.out)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
