"""What a run reports: cycles, per-thread busy/stalled/idle, per-line cycles, NoC use.

The JSON form (`RunReport.to_dict`) is documented in docs/report.md.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

from .errors import format_line

THREAD_KINDS = ("reader", "unpack", "math", "pack", "writer")
SCHEMA_VERSION = 1


@dataclass
class ThreadStats:
    core: tuple
    kind: str
    busy: float
    stalls: dict
    end: float
    idle: float = 0.0

    @property
    def stalled(self):
        return sum(self.stalls.values())


@dataclass
class LineStats:
    file: str
    line: int
    kind: str
    count: int
    busy: float
    stall: float


@dataclass
class RunReport:
    sysdesc: str
    clock_ghz: float
    cycles: float
    threads: list
    lines: list
    noc: dict = field(default_factory=dict)
    trace_events: list | None = None      # kept in memory (run with trace=True)
    cores: int = 0
    # the numeric path the run's values took: DST modes, fidelities and SFPU (op, mode)s that
    # ran (ttlang.testing derives error bounds from it)
    numerics: dict = field(default_factory=dict)
    trace_path: str | None = None          # the file the trace streamed to (trace=PATH)
    # what the run did that the chip does silently and is most likely a bug (Engine.warn)
    warnings: list = field(default_factory=list)

    @classmethod
    def from_engine(cls, e):
        cycles = max((th.end for th in e.threads), default=0.0)
        threads, agg = [], {}
        for th in e.threads:
            ts = ThreadStats(th.core, th.kind, th.busy, dict(th.stalls), th.end)
            ts.idle = cycles - ts.busy - ts.stalled
            threads.append(ts)
            for ln, (cnt, busy, stall) in th.lines.items():
                if ln is None:
                    continue
                key = (ln[0], ln[1], th.kind)
                a = agg.setdefault(key, [0, 0.0, 0.0])
                a[0] += cnt
                a[1] += busy
                a[2] += stall
        lines = [LineStats(f, n, k, c, b, s) for (f, n, k), (c, b, s) in agg.items()]
        lines.sort(key=lambda l: (l.file, l.line, THREAD_KINDS.index(l.kind)
                                  if l.kind in THREAD_KINDS else 9))
        events = None
        if e.trace is True:
            events = [(th.core, th.kind, th.trace) for th in e.threads]
        path = getattr(e, "numeric_path", {})
        numerics = {"dst": sorted(path.get("dst", ())), "fidelity": sorted(path.get("fidelity", ())),
                    "sfpu": sorted(path.get("sfpu", ()), key=lambda om: (om[0], om[1] or "")),
                    "src": sorted(path.get("src", ()))}
        stream = e.trace_stream
        return cls(e.sd.name, e.sd.clock_ghz.value, cycles, threads, lines, e.noc.stats(), events,
                   len({th.core for th in e.threads}), numerics,
                   stream.path if stream is not None else None,
                   [m if n == 1 else f"{m}\n  ({n} times)" for m, n in e.warnings.values()])

    # --- figures ------------------------------------------------------------------------
    @property
    def us(self):
        return self.cycles / (self.clock_ghz * 1e3)

    def per_kind(self):
        """Mean busy/stalled/idle fractions per thread kind over the cores that ran it."""
        out = {}
        for kind in THREAD_KINDS:
            ts = [t for t in self.threads if t.kind == kind]
            if not ts or self.cycles <= 0:
                continue
            n, c = len(ts), self.cycles
            stalls = {}
            for t in ts:
                for r, v in t.stalls.items():
                    stalls[r] = stalls.get(r, 0.0) + v / (n * c)
            out[kind] = {"busy": sum(t.busy for t in ts) / (n * c),
                         "stalled": sum(t.stalled for t in ts) / (n * c),
                         "idle": sum(t.idle for t in ts) / (n * c),
                         "max_busy": max(t.busy for t in ts) / c,
                         "stalls": dict(sorted(stalls.items(), key=lambda kv: -kv[1]))}
        return out

    def bottleneck(self):
        """The thread kind with the highest mean busy fraction: what bounds the run."""
        pk = self.per_kind()
        if not pk:
            return "nothing ran"
        kind = max(pk, key=lambda k: pk[k]["busy"])
        b = pk[kind]
        if b["busy"] >= 0.6:
            return f"{kind} ({b['busy']:.0%} busy)"
        top = max(((k, r, v) for k, d in pk.items() for r, v in d["stalls"].items()),
                  key=lambda x: x[2], default=None)
        wait = f"; most waiting: {top[0]} on {top[1]} ({top[2]:.0%})" if top else ""
        return f"{kind} ({b['busy']:.0%} busy){wait}"

    # --- text ---------------------------------------------------------------------------
    def summary(self):
        out = [f"{self.sysdesc}: {self.cycles:,.0f} cycles = {self.us:,.2f} us at {self.clock_ghz} GHz "
               f"on {self.cores} core(s)",
               f"bottleneck: {self.bottleneck()}",
               f"{'thread':8s} {'busy':>6s} {'stalled':>8s} {'idle':>6s}  top stalls"]
        for kind, d in self.per_kind().items():
            st = ", ".join(f"{r} {v:.0%}" for r, v in list(d["stalls"].items())[:3] if v >= 0.005)
            out.append(f"{kind:8s} {d['busy']:6.1%} {d['stalled']:8.1%} {d['idle']:6.1%}  {st}")
        out += [f"warning: {w}" for w in self.warnings]
        return "\n".join(out)

    def line_table(self, kinds=None, top=None, line_map=None, by_thread=False):
        """Profiler-style table: each kernel line, its thread, count, total and mean cycles, share.

        `line_map` maps (file, line) of generated code to what to print instead. With
        `by_thread`, one section per thread kind, each with its own `top` lines.
        """
        if by_thread:
            return "\n\n".join(self.line_table([k], top, line_map) for k in THREAD_KINDS
                             if (kinds is None or k in kinds) and any(l.kind == k for l in self.lines))
        totals = {}
        for t in self.threads:
            totals[t.kind] = totals.get(t.kind, 0.0) + t.busy + t.stalled
        rows = [l for l in self.lines if kinds is None or l.kind in kinds]
        if top:
            rows = sorted(rows, key=lambda l: -(l.busy + l.stall))[:top]
        out = [f"{'thread':7s} {'count':>9s} {'busy':>12s} {'stalled':>12s} {'avg':>8s} {'share':>6s}  line"]
        for l in rows:
            tot = l.busy + l.stall
            share = tot / totals[l.kind] if totals.get(l.kind) else 0.0
            where = line_map.get((l.file, l.line)) if line_map else None
            where = where or format_line((l.file, l.line)).replace(os.getcwd() + os.sep, "")
            out.append(f"{l.kind:7s} {l.count:9,d} {l.busy:12,.0f} {l.stall:12,.0f} "
                       f"{tot / max(l.count, 1):8,.1f} {share:6.1%}  {where}")
        return "\n".join(out)

    # --- machine-readable -----------------------------------------------------------------
    def to_dict(self):
        return {
            "schema_version": SCHEMA_VERSION,
            "sysdesc": self.sysdesc,
            "clock_ghz": self.clock_ghz,
            "cycles": self.cycles,
            "us": self.us,
            "cores": self.cores,
            "bottleneck": self.bottleneck(),
            "per_kind": self.per_kind(),
            "threads": [{"core": list(t.core), "kind": t.kind, "busy": t.busy, "stalled": t.stalled,
                         "idle": t.idle, "end": t.end, "stalls": t.stalls} for t in self.threads],
            "lines": [{"file": l.file, "line": l.line, "kind": l.kind, "count": l.count,
                       "busy": l.busy, "stall": l.stall} for l in self.lines],
            "noc": self.noc,
            "numerics": {"dst": self.numerics.get("dst", []),
                         "fidelity": self.numerics.get("fidelity", []),
                         "sfpu": [list(om) for om in self.numerics.get("sfpu", [])],
                         "src": self.numerics.get("src", [])},
            "warnings": self.warnings,
        }

    def write_json(self, path, extra=None):
        d = self.to_dict()
        if extra:
            d.update(extra)
        with open(path, "w") as f:
            json.dump(d, f, indent=1, default=str)

    def write_trace(self, path):
        """The run's Chrome/Perfetto trace to `path` (a copy of the file it streamed to, if
        it was run with trace=PATH)."""
        from .trace import write_chrome_trace
        if self.trace_path is not None:
            if os.path.abspath(path) != os.path.abspath(self.trace_path):
                shutil.copyfile(self.trace_path, path)
            return
        if self.trace_events is None:
            raise ValueError("this run kept no trace: run with trace=True or trace=PATH")
        write_chrome_trace(path, self.trace_events, self.clock_ghz)
