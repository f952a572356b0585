"""The cycle model against measured hardware (benchmarks/fidelity.py): the published accuracy
holds on the calibration CSV, the micro-kernel times what the measurement timed, and rows the
script cannot re-create are refused with the row named."""
import json
import sys
from pathlib import Path

import pytest

from ttsim.noc import Noc

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fidelity  # noqa: E402

HEADER = ",".join(fidelity.COLUMNS)


@pytest.fixture(scope="module")
def calibration():
    for path in fidelity.DEFAULT_CSVS:
        if not path.exists():
            pytest.skip(f"calibration data not found at {path}")
    rows = [r for path in fidelity.DEFAULT_CSVS for r in fidelity.read_rows(path)]
    return fidelity.summarize(fidelity.evaluate(rows))


@pytest.mark.parametrize("figure", sorted(fidelity.PUBLISHED))
def test_calibration_rows_stay_within_the_published_accuracy(calibration, figure):
    assert calibration[figure] <= fidelity.PUBLISHED[figure], (
        f"{figure} is {calibration[figure]:.2f}, published {fidelity.PUBLISHED[figure]}: the "
        f"model got worse (or update the published figure and docs/cycle-model.md)")


def test_every_multicast_group_is_within_ten_percent(calibration):
    groups = [k for k in calibration if k.startswith(("mape_mcast_", "mape_multicast"))]
    assert len(groups) >= 10
    assert all(calibration[g] <= 10.0 for g in groups), {g: calibration[g] for g in groups}


def test_the_split_holds_out_every_other_size_and_all_other_files(calibration):
    assert calibration["rows_unicast_fit_count"] + calibration["rows_unicast_holdout_count"] == 674
    assert calibration["rows_multicast_fit_count"] + calibration["rows_multicast_holdout_count"] == 1210
    assert calibration["rows_unicast_holdout_count"] >= 300
    assert calibration["rows_multicast_holdout_count"] >= 500
    r = fidelity.parse_row(dict(zip(fidelity.COLUMNS, "wormhole_b0 unicast one_to_one l1 0 1 0 0 "
                                    "64 293".split())), fidelity.CALIBRATION_CSV.name, 2)
    sizes = {64: "fit", 128: "holdout", 256: "fit", 65536: "fit", 32768: "holdout", 96: "holdout"}
    for size, split in sizes.items():
        r.nbytes = size
        assert fidelity.fit_split(r) == split
    assert fidelity.fit_split(r, "none") == "holdout"
    r.file = "other.csv"
    r.nbytes = 64
    assert fidelity.fit_split(r) == "holdout"


def _row(text, file="t.csv", line=2):
    return fidelity.parse_row(dict(zip(fidelity.COLUMNS, text.split())), file, line)


def test_the_kernel_times_issue_to_barrier_return():
    """One 64 B write: its issue, the NoC's time to the ack, and the completion latency."""
    bench = fidelity.Bench()
    sim = bench.simulate(_row("wormhole_b0 unicast one_to_one l1 0 1 0 0 64 293"))
    sd = bench.device("wormhole_b0").sd
    issue = sd.value("noc.write_issue_cycles")
    me, partner = sd.worker_noc_xy(0, 0), sd.worker_noc_xy(1, 1)
    _, acked = Noc(sd).write(1000 + issue, 0, me, partner, 64)
    assert sim == acked - 1000 + sd.value("noc.completion_latency")


def test_stateful_issue_costs_more_once_and_less_per_transfer():
    bench = fidelity.Bench()
    sim = {(n, st): bench.simulate(_row(f"wormhole_b0 unicast one_from_one l1 1 {n} 0 {st} 64 1"))
           for n in (1, 256) for st in (0, 1)}
    assert sim[(1, 1)] > sim[(1, 0)]                  # set_state comes first
    assert sim[(256, 1)] < 0.8 * sim[(256, 0)]       # then every issue is cheaper


def test_same_axis_pairs_have_the_shorter_round_trip():
    bench = fidelity.Bench()
    diff = bench.simulate(_row("wormhole_b0 unicast one_from_one l1 1 1 0 0 64 1"))
    same = bench.simulate(_row("wormhole_b0 unicast one_from_one l1 1 1 1 0 64 1"))
    sd = bench.device("wormhole_b0").sd
    assert diff - same == (sd.noc_grid[0]) * sd.value("noc.hop_latency")   # 22 vs 12 hops


def test_other_chips_and_multicast_rows_run():
    bench = fidelity.Bench()
    uni = bench.simulate(_row("blackhole unicast one_to_one l1 0 1 0 0 2048 1"))
    assert bench.device("blackhole").sd.name == "blackhole"
    mc = bench.simulate(_row("blackhole multicast one_to_all l1 0 1 0 0 2048 1"))
    # one multicast to the other 139 cores: slower than one unicast, far faster than 139
    assert uni < mc < 10 * uni
    rect = fidelity.parse_row(dict(zip(fidelity.COLUMNS + fidelity.RECT_COLUMNS,
                                       "wormhole_b0 multicast one_to_all l1 0 1 0 0 2048 1 "
                                       "0 0 7 0".split())), "t.csv", 2)
    row_only = bench.simulate(rect)
    assert row_only < bench.simulate(_row("wormhole_b0 multicast one_to_all l1 0 1 0 0 2048 1"))


MC_COLS = fidelity.COLUMNS + fidelity.MCAST_COLUMNS


def _mrow(text, line=2):
    return fidelity.parse_row(dict(zip(MC_COLS, text.split())), "t.csv", line)


@pytest.mark.parametrize("pattern, subs, loopback, placement, issuer, rect", [
    ("one_to_all", 4, 1, "after", (0, 0), (0, 0, 1, 1)),
    ("one_to_all", 4, 0, "after", (2, 0), (0, 0, 1, 1)),
    ("one_to_all", 25, 0, "after", (5, 0), (0, 0, 4, 4)),
    ("one_to_all", 56, 1, "after", (0, 0), (0, 0, 7, 6)),        # the measured 8x7 grid
    ("one_to_row", 8, 0, "after", (0, 1), (0, 0, 7, 0)),
    ("one_to_column", 7, 0, "after", (1, 0), (0, 0, 0, 6)),
    ("one_to_column", 7, 1, "after", (0, 0), (0, 0, 0, 6)),
    ("one_to_all", 9, 0, "before", (0, 0), (1, 0, 3, 2)),
    ("one_to_row", 8, 0, "before", (0, 0), (0, 1, 7, 1)),
])
def test_multicast_rows_are_placed_as_documented(pattern, subs, loopback, placement, issuer, rect):
    row = _mrow(f"wormhole_b0 multicast {pattern} l1 0 1 1 0 64 1 {subs} {loopback}")
    bench = fidelity.Bench(mcast_placement=placement)
    assert bench.mcast_place(row, bench.device("wormhole_b0").sd) == (issuer, rect)
    assert bench.simulate(row) > 0          # and the kernel's num_dests check agrees


@pytest.mark.parametrize("text, message", [
    ("wormhole_b0 multicast one_to_all l1 0 1 1 0 64 1 56 0", "issuer outside"),
    ("wormhole_b0 multicast one_to_all l1 0 1 1 0 64 1 12 0", "neither a square nor"),
    ("wormhole_b0 multicast one_to_row l1 0 1 1 0 64 1 6 0", "reaches 8 cores"),
])
def test_multicast_rows_the_grid_cannot_hold_are_refused(text, message):
    with pytest.raises(fidelity.RowError, match=f"t.csv:2: .*{message}"):
        fidelity.Bench().simulate(_mrow(text))


def test_linked_multicast_series_link_all_but_the_last():
    """One linked transfer costs what a plain one does (the measurements say so: the last
    transfer releases the path); a long linked series of small ones costs the issue rate."""
    bench = fidelity.Bench()
    sim = {(m, n): bench.simulate(_mrow(f"wormhole_b0 {m} one_to_all l1 0 {n} 1 0 64 1 9 0"))
           for m in ("multicast", "multicast_linked") for n in (1, 64)}
    assert sim[("multicast", 1)] == sim[("multicast_linked", 1)]
    assert sim[("multicast_linked", 64)] < 0.3 * sim[("multicast", 64)]
    issue = bench.device("wormhole_b0").sd.value("noc.write_issue_cycles")
    assert sim[("multicast_linked", 64)] - sim[("multicast_linked", 1)] < 64 * (issue + 2)


@pytest.mark.parametrize("text, message", [
    ("wormhole_b0 unicast zigzag l1 0 1 0 0 64 1", "t.csv:7: unknown pattern 'zigzag'"),
    ("wormhole_b0 broadcast one_to_one l1 0 1 0 0 64 1", "t.csv:7: unknown mechanism"),
    ("grayskull unicast one_to_one l1 0 1 0 0 64 1", "t.csv:7: unknown arch 'grayskull'"),
    ("wormhole_b0 unicast one_to_one sram 0 1 0 0 64 1", "t.csv:7: unknown memory"),
    ("wormhole_b0 unicast one_to_one l1 0 0 0 0 64 1", "num_transactions must be >= 1"),
    ("wormhole_b0 unicast one_to_one l1 0 1 2 0 64 1", "same_axis must be one of"),
    ("wormhole_b0 unicast one_to_one l1 0 1 0 0 6.5 1", "transaction_bytes must be an integer"),
    ("wormhole_b0 unicast one_to_one l1 0 1 0 0 64 -3", "cycles must be > 0"),
    ("wormhole_b0 multicast one_from_all l1 0 1 0 0 64 1", "cannot be multicast"),
    ("wormhole_b0 unicast one_to_one l1 0 1 0 0 64", "missing column(s) cycles"),
    ("wormhole_b0 unicast one_to_row l1 0 1 0 0 64 1", "for multicast rows only"),
    ("wormhole_b0 multicast_linked one_to_all dram_sharded 0 1 0 0 64 1", "cannot be multicast"),
    ("wormhole_b0 multicast all_to_one l1 0 1 0 0 64 1", "cannot be multicast"),
])
def test_bad_rows_are_refused_naming_the_row(text, message):
    with pytest.raises(fidelity.RowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fidelity.parse_row(dict(zip(fidelity.COLUMNS, text.split())), "t.csv", 7)


def test_rows_the_chip_cannot_hold_are_refused():
    with pytest.raises(fidelity.RowError, match="t.csv:2: noc 2 does not exist"):
        fidelity.Bench().simulate(_row("wormhole_b0 unicast one_to_one l1 2 1 0 0 64 1"))


def test_cli_writes_the_table_and_flat_figures(tmp_path, capsys):
    src = tmp_path / "bh.csv"
    src.write_text(HEADER + "\nblackhole,unicast,one_from_all,dram_interleaved,0,16,0,0,2048,900\n"
                            "blackhole,multicast,one_to_all,l1,0,4,0,0,256,900\n")
    out, js = tmp_path / "table.csv", tmp_path / "fig.json"
    assert fidelity.main(["--csv", str(src), "--out", str(out), "--json", str(js)]) == 0
    figures = json.loads(js.read_text())
    assert figures["rows_holdout_count"] == 2 and "rows_fit_count" not in figures
    for key in ("mape_all_pct", "worst_row_pct", "mape_holdout_pct", "mape_dram_pct",
                "mape_multicast_pct", "mape_blackhole_pct", "wall_s"):
        assert key in figures
    assert all(isinstance(v, (int, float)) for v in figures.values())
    assert all(k.endswith(("_pct", "_count", "_s", "_line")) for k in figures)
    lines = out.read_text().splitlines()
    assert lines[0].startswith(HEADER + ",num_subordinates,loopback,simulated_cycles,error_pct")
    assert len(lines) == 3
    assert "worst row: bh.csv:" in capsys.readouterr().out


def test_cli_reports_a_bad_row_and_fails(tmp_path, capsys):
    src = tmp_path / "bad.csv"
    src.write_text(HEADER + "\nwormhole_b0,unicast,one_to_one,l1,0,1,0,0,64,293\n"
                            "wormhole_b0,unicast,all_to_all,l1,0,1,0,0,64,293\n")
    assert fidelity.main(["--csv", str(src)]) == 2
    assert "bad.csv:3: unknown pattern 'all_to_all'" in capsys.readouterr().err
