"""Fit the NoC/DRAM figures of a sysdesc to measured rows, by simulation.

Runs the micro-kernels of benchmarks/fidelity.py on the fit rows of the calibration CSV (see
fidelity.fit_split) and moves one figure at a time (coordinate descent in jumps of 1 to 64
whole cycles, or tenths of a byte per cycle for rates) while the mean absolute percentage
error falls. Prints
the figures it ends with; copying them into the sysdesc is left to a person, who also writes
each one's source. Figures HARDWARE.md gives (link width, hop and NIU latency, packet size,
DRAM bandwidth) are not fitted.

    python benchmarks/calibrate.py [--arch wormhole_b0] [--csv PATH ...] [--split size|count]
                                   [--figures NAME,...] [--from-scratch] [--rounds 3]
                                   [--json PATH] [--mcast-placement after|before]

By default it fits the unicast and DRAM figures (UNICAST) on the unicast CSV's fit rows;
`--csv .../wormhole_noc_multicast.csv --figures multicast` fits the multicast figures
(MULTICAST) on that file's fit rows, the others held at the sysdesc's values.

It ends by simulating every row with the fitted figures and printing the error on the fit
rows and on the held-out rows, so another split (--split count: fit on 1, 16 and 256
transactions, hold out 4 and 64) shows how well a fit on part of the data generalises.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity  # noqa: E402
import sysdesc  # noqa: E402

# figure -> step of the search
UNICAST = {
    "noc.read_issue_cycles": 1, "noc.write_issue_cycles": 1,
    "noc.stateful_read_issue_cycles": 1, "noc.stateful_write_issue_cycles": 1,
    "noc.set_state_cycles": 1, "noc.addrgen_cycles": 1, "noc.completion_latency": 1,
    "noc.l1_port_bytes_per_cycle": 0.1, "noc.read_response_bytes_per_cycle": 0.1,
    "dram.latency": 1, "dram.write_request_cycles": 1, "dram.partial_write_cycles": 1,
}
MULTICAST = {"noc.mcast_setup_cycles": 1, "noc.mcast_reserve_cycles_per_hop": 0.5}
FITTED = dict(UNICAST, **MULTICAST)
FIGURE_SETS = {"unicast": UNICAST, "multicast": MULTICAST, "all": FITTED}


# --from-scratch start: no software overhead, no DRAM write penalty, ports at link speed, and
# HARDWARE.md's only issue figure before calibration (22 cycles) for every issue.
SCRATCH = {
    "noc.read_issue_cycles": 22, "noc.write_issue_cycles": 22,
    "noc.stateful_read_issue_cycles": 22, "noc.stateful_write_issue_cycles": 22,
    "noc.set_state_cycles": 0, "noc.addrgen_cycles": 0, "noc.completion_latency": 0,
    "noc.l1_port_bytes_per_cycle": None, "noc.read_response_bytes_per_cycle": None,
    "dram.latency": 100, "dram.write_request_cycles": 0, "dram.partial_write_cycles": 0,
    "noc.mcast_setup_cycles": 0, "noc.mcast_reserve_cycles_per_hop": 0,
}


def with_figures(sd, values):
    """A copy of `sd` with some figures replaced (bank latencies follow dram.latency)."""
    figs = dict(sd.figures)
    for k, v in values.items():
        figs[k] = dataclasses.replace(figs[k], value=float(v))
    banks = sd.dram_banks
    if "dram.latency" in values:
        banks = tuple(dataclasses.replace(b, latency=figs["dram.latency"]) for b in banks)
    return dataclasses.replace(sd, figures=figs, dram_banks=banks)


def mape(rows, sd, arch, placement=None):
    res = fidelity.evaluate(rows, "none", fidelity.Bench({arch: sd}, placement))
    return sum(abs(r["error_pct"]) for r in res) / len(res)


def fit(rows, sd, arch, rounds=3, log=print, scratch=False, figures=None, placement=None):
    """Coordinate descent on `figures` (figure -> step; default UNICAST) from sd's values
    (or from SCRATCH); returns (values, MAPE)."""
    figures = UNICAST if figures is None else figures
    link = sd.value("noc.link_bytes_per_cycle")
    values = {k: ((link if SCRATCH[k] is None else SCRATCH[k]) if scratch else sd.value(k))
              for k in figures}
    best = mape(rows, with_figures(sd, values), arch, placement)
    log(f"start: MAPE {best:.3f}% on {len(rows)} fit rows")
    for rnd in range(rounds):
        moved = False
        for k, step in figures.items():
            while True:              # jumps of 1..64 steps either way cross flat stretches
                trials = [round(values[k] + sign * mult * step, 3)
                          for mult in (1, 2, 4, 8, 16, 32, 64) for sign in (1, -1)]
                scored = [(mape(rows, with_figures(sd, dict(values, **{k: v})), arch,
                                placement), v)
                          for v in trials if (v > 0 if k.endswith("bytes_per_cycle") else v >= 0)]
                m, v = min(scored)
                if m < best - 1e-9:
                    values, best, moved = dict(values, **{k: v}), m, True
                else:
                    break
        log(f"round {rnd + 1}: MAPE {best:.3f}%")
        if not moved:
            break
    return values, best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="wormhole_b0", choices=sorted(fidelity.ARCH_SYSDESC))
    ap.add_argument("--csv", action="append", default=None,
                    help=f"measurement CSV (repeatable; default {fidelity.CALIBRATION_CSV.name}, "
                         f"or {fidelity.MULTICAST_CSV.name} with --figures multicast)")
    ap.add_argument("--figures", default="unicast",
                    help="figures to fit: unicast, multicast, all, or comma-separated names")
    ap.add_argument("--mcast-placement", default=None, choices=fidelity.MCAST_PLACEMENTS)
    ap.add_argument("--split", default="size", choices=("size", "count"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--from-scratch", action="store_true",
                    help="start from neutral figures (SCRATCH) instead of the sysdesc's")
    ap.add_argument("--json", default=None,
                    help="write the fitted figures (by sysdesc name) and the errors here")
    a = ap.parse_args(argv)
    # the multicast figures are fitted on the multicast measurements, the rest on unicast ones
    csvs = a.csv or [str(fidelity.MULTICAST_CSV if a.figures == "multicast" else
                         fidelity.CALIBRATION_CSV)]
    every = [r for c in csvs for r in fidelity.read_rows(c) if r.arch == a.arch]
    rows = [r for r in every if fidelity.fit_split(r, a.split) == "fit"]
    if not rows:
        print(f"calibrate: no fit rows for {a.arch} in {', '.join(csvs)}", file=sys.stderr)
        return 2
    if a.figures in FIGURE_SETS:
        figures = FIGURE_SETS[a.figures]
    else:
        figures = {k: FITTED[k] for k in a.figures.split(",")}
    sd = sysdesc.load(fidelity.ARCH_SYSDESC[a.arch])
    values, best = fit(rows, sd, a.arch, a.rounds, scratch=a.from_scratch, figures=figures,
                       placement=a.mcast_placement)
    for k, v in values.items():
        print(f"{k} = {v:g}    (was {sd.value(k):g})")
    res = fidelity.evaluate(every, a.split, fidelity.Bench({a.arch: with_figures(sd, values)},
                                                           a.mcast_placement))
    s = fidelity.summarize(res)
    print(f"with these figures, split {a.split}: MAPE fit {s['mape_fit_pct']:.2f}% "
          f"({s['rows_fit_count']} rows), holdout {s.get('mape_holdout_pct', float('nan')):.2f}% "
          f"({s.get('rows_holdout_count', 0)} rows), worst {s['worst_row_pct']:.1f}%")
    if a.json:
        out = dict(values)
        out.update({k: s[k] for k in ("mape_fit_pct", "mape_holdout_pct", "worst_row_pct")
                    if k in s})
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
