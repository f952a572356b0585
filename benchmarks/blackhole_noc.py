"""Blackhole's NoC and DRAM figures against the only Blackhole figures there are.

There are no Blackhole transfer measurements here (the calibration CSVs are Wormhole's), so
the Blackhole sysdesc takes its NoC and DRAM figures from HARDWARE.md ("Blackhole (p100a /
p150) figures"): tt-npe's device model, tt-metal's ideal data-movement rates and the DRAM
bandwidth report. This script simulates what each of those figures describes and prints
the model's value next to it, on Blackhole and, for the same tables, on Wormhole (whose
model is calibrated, so its column shows how closely a calibrated model meets the tables):

- per-transfer peak bandwidth by size (tt-npe, Blackhole): 256 back-to-back one-to-one L1
  writes of each size, bytes over cycles (the micro-kernel of benchmarks/fidelity.py, RISC
  issue costs included);
- read latency by placement (tt-npe): one 64 B read, NoC only (no RISC costs, which tt-npe's
  fixed part holds), same core, same column, same row, otherwise; what should agree is the
  growth with placement, not the fixed part;
- write latency per hop (tt-npe: 40 + 11 per hop on Blackhole, 40 + 10 on Wormhole);
- ideal data-movement rates (tt-metal's data-movement test documentation): 64 transfers of
  16 KiB (8 KiB on Wormhole, its largest packet) per pattern;
- DRAM aggregate bandwidth (Blackhole report): one reader next to each bank, 64 reads of
  16 KB each, and the same readers placed across the grid.

    python benchmarks/blackhole_noc.py [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity  # noqa: E402
import sysdesc  # noqa: E402
import ttsim  # noqa: E402
from ttsim.noc import Noc  # noqa: E402

# HARDWARE.md "Blackhole (p100a / p150) figures"
TTNPE_BW = {128: 6.0, 256: 12.1, 512: 24.2, 1024: 48.0, 2048: 57.7, 4096: 58.7, 8192: 60.4,
            16384: 60.9}
TTNPE_READ = {"blackhole": {"same core": 65, "same column": 177, "same row": 217, "otherwise": 329},
              "wormhole_b0": {"same core": 70, "same column": 154, "same row": 170, "otherwise": 270}}
TTNPE_WRITE_PER_HOP = {"blackhole": 11, "wormhole_b0": 10}
# pattern -> (fidelity row text, ideal B/cycle Wormhole, Blackhole)
IDEAL = {
    "DRAM read": ("unicast one_from_one dram_sharded 0 {n} 0 0 {b}", 22, 33),
    "DRAM write": ("unicast one_to_one dram_sharded 1 {n} 0 0 {b}", 21, 34),
    "one-to-one": ("unicast one_to_one l1 0 {n} 0 0 {b}", 29, 60),
    "one-from-one": ("unicast one_from_one l1 0 {n} 0 0 {b}", 28, 60),
    "one-to-all unicast": ("unicast one_to_all l1 0 {n} 0 0 {b}", 31, 62),
    "one-from-all": ("unicast one_from_all l1 0 {n} 0 0 {b}", 30, 60),
    "multicast": ("multicast one_to_all l1 0 {n} 0 0 {b}", 15, 24),
    "linked multicast": ("multicast_linked one_to_all l1 0 {n} 0 0 {b}", 22, 41),
}
DRAM_GBS = {"next to the bank": 500, "across the grid": 344}
ARCHES = ("wormhole_b0", "blackhole")


def _row(arch, text, n, nbytes, loopback=False):
    cols = fidelity.COLUMNS + fidelity.MCAST_COLUMNS
    vals = f"{arch} {text.format(n=n, b=nbytes)} 1".split() + ["", str(int(loopback))]
    return fidelity.parse_row(dict(zip(cols, vals)), "blackhole_noc", 0)


def per_transfer_bandwidth(bench, arch, n=256):
    out = {}
    for size in TTNPE_BW:
        cyc = bench.simulate(_row(arch, "unicast one_to_one l1 0 {n} 0 0 {b}", n, size))
        out[size] = n * size / cyc
    return out


def read_latency(arch):
    """Unloaded 64 B read, NoC only, from worker (0, 0) by placement of the other core."""
    sd = sysdesc.load(arch)
    me = sd.worker_noc_xy(0, 0)
    other = {"same core": me, "same column": sd.worker_noc_xy(0, 1),
             "same row": sd.worker_noc_xy(1, 0), "otherwise": sd.worker_noc_xy(1, 1)}
    return {k: Noc(sd).read(0, 0, me, xy, 64) for k, xy in other.items()}


def write_latency_per_hop(arch):
    sd = sysdesc.load(arch)
    me = sd.worker_noc_xy(0, 0)
    t = [Noc(sd).write(0, 0, me, sd.worker_noc_xy(i, 0), 64)[0] for i in (1, 2)]
    return t[1] - t[0]


def ideal_rates(bench, arch):
    size = 16384 if arch == "blackhole" else 8192
    out = {}
    for name, (text, *_) in IDEAL.items():
        r = _row(arch, text, 64, size, loopback=name.endswith("multicast"))
        out[name] = 64 * size / bench.simulate(r)
    return out


def dram_aggregate(arch="blackhole", n=64, size=16384):
    """One reader per bank, n reads of `size` back to back from its bank: GB/s together."""
    dev = ttsim.Device(sysdesc.load(arch))
    sd = dev.sd
    gx, gy = sd.worker_grid()
    banks = [tuple(b.noc_xy) for b in sd.dram_banks]
    buf = dev.zeros((32 * len(banks) * n * size // 2048, 32))
    res = {}
    for how in DRAM_GBS:
        readers = {}
        for i, (bx, by) in enumerate(banks):
            if how == "next to the bank":
                # the worker column next to the bank's, the nearest row
                col = min(range(gx), key=lambda c: abs(sd.worker_x[c] - bx))
                row = min(range(gy), key=lambda r: abs(sd.worker_y[r] - by))
                while (col, row) in readers:
                    row = (row + 1) % gy
            else:
                col, row = (gx // 2 + i) % gx, (i * 3) % gy
            readers[(col, row)] = (bx, by)
        prog = ttsim.Program(dev)
        prog.circular_buffer(sorted(readers), 0, num_pages=1, page_size=size)
        out = {}

        def kernel(k, readers=readers, out=out):
            bx, by = readers[k.core]
            local = k.get_write_ptr(0)
            src = k.get_noc_addr(bx, by, buf.address)
            t0 = k.wall_clock()
            for _ in range(n):
                k.noc_async_read(src, local, size)
            k.noc_async_read_barrier()
            out[k.core] = k.wall_clock() - t0
        prog.reader(sorted(readers), kernel, noc=int(sd.value("noc.dram_read_noc")))
        dev.run(prog)
        cycles = max(out.values())
        res[how] = len(banks) * n * size / cycles * sd.clock_ghz.value
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="write every figure printed here")
    a = ap.parse_args(argv)
    bench = fidelity.Bench()
    fig = {}

    bw = per_transfer_bandwidth(bench, "blackhole")
    print("per-transfer peak bandwidth, Blackhole (256 back-to-back one-to-one writes)")
    print(f"{'bytes':>7} {'tt-npe':>8} {'model':>8} {'err %':>7}")
    for size, want in TTNPE_BW.items():
        err = 100 * (bw[size] - want) / want
        fig[f"bh_bw_{size}_err_pct"] = err
        print(f"{size:>7} {want:>8.1f} {bw[size]:>8.1f} {err:>+7.1f}")
    mape = sum(abs(fig[f"bh_bw_{s}_err_pct"]) for s in TTNPE_BW) / len(TTNPE_BW)
    fig["bh_bw_mape_pct"] = mape
    print(f"MAPE {mape:.1f}%\n")

    print("read latency by placement, one 64 B read, NoC only (tt-npe includes fixed costs)")
    print(f"{'':<12} {'placement':<12} {'tt-npe':>7} {'model':>6} {'tt-npe - model':>15}")
    for arch in ARCHES:
        lat = read_latency(arch)
        for k, want in TTNPE_READ[arch].items():
            fig[f"{arch}_read_{k.replace(' ', '_')}_cycles"] = lat[k]
            print(f"{arch:<12} {k:<12} {want:>7} {lat[k]:>6} {want - lat[k]:>15}")
    print()
    for arch in ARCHES:
        per_hop = write_latency_per_hop(arch)
        fig[f"{arch}_write_per_hop_cycles"] = per_hop
        print(f"write latency per hop, {arch}: tt-npe {TTNPE_WRITE_PER_HOP[arch]}, model {per_hop}")
    print()

    print("ideal data-movement rates, B/cycle (64 transfers of the largest packet; multicast "
          "to the whole grid, loopback)")
    print(f"{'pattern':<20} {'WH ideal':>9} {'WH model':>9} {'BH ideal':>9} {'BH model':>9}")
    rates = {arch: ideal_rates(bench, arch) for arch in ARCHES}
    for name, (_, wh, bh) in IDEAL.items():
        key = name.replace(" ", "_").replace("-", "_")
        fig[f"wh_ideal_{key}"] = rates["wormhole_b0"][name]
        fig[f"bh_ideal_{key}"] = rates["blackhole"][name]
        print(f"{name:<20} {wh:>9} {rates['wormhole_b0'][name]:>9.1f} {bh:>9} "
              f"{rates['blackhole'][name]:>9.1f}")
    print()

    agg = dram_aggregate()
    print("DRAM, Blackhole p150, one reader per bank, 64 x 16 KB reads each")
    for how, want in DRAM_GBS.items():
        fig[f"bh_dram_{how.replace(' ', '_')}_gbs"] = agg[how]
        print(f"  readers {how:<17} measured {want} GB/s, model {agg[how]:.0f} GB/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(fig, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
