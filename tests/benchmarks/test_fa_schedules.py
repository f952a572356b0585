"""benchmarks/fa_schedules.py, a wrapper over `ttsim sweep flash_attention`, ranks schedules by
cycles and writes its table and figures."""
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fa_schedules as sweep  # noqa: E402


def test_sweep_ranks_by_cycles_and_writes_csv_and_json(tmp_path, capsys):
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    sweep.main(["--heads", "2", "--seq", "128", "--grids", "2x2,1x1", "--q-chunks", "1,2",
                "--kv-chunks", "2", "--fidelities", "HiFi4", "--kv-dtypes", "bf16", "--jobs", "2",
                "--scheduler", "pool", "--cache", str(tmp_path / "c"),
                "--csv", str(out_csv), "--json", str(out_json)])
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 4
    cycles = [float(r["cycles"]) for r in rows]
    assert cycles == sorted(cycles)
    assert all(float(r["pcc"]) > 0.999 for r in rows)
    assert all(0 < float(r["utilisation.math"]) <= 1 for r in rows)
    # a 2x2 grid beats one core on the same work
    assert rows[0]["grid"] == "2x2"
    figures = json.loads(out_json.read_text())
    assert figures["schedules"] == 4 and figures["simulated"] == 4 and figures["best_cycles"] == cycles[0]
    assert all(isinstance(v, (int, float)) for v in figures.values())
    assert "bottleneck" in capsys.readouterr().out


def test_sweep_takes_exp_modes_share_modes_and_grouped_heads(tmp_path):
    out_csv = tmp_path / "s.csv"
    sweep.main(["--heads", "2", "--kv-heads", "1", "--seq", "128", "--grids", "2x1",
                "--q-chunks", "1", "--kv-chunks", "2", "--fidelities", "HiFi4", "--kv-dtypes", "bf16",
                "--exp", "fast,accurate", "--kv-share", "auto,off", "--jobs", "2",
                "--scheduler", "pool", "--cache", str(tmp_path / "c"), "--csv", str(out_csv)])
    rows = list(csv.DictReader(out_csv.open()))
    assert sorted((r["exp"], r["kv_share"]) for r in rows) == [
        ("accurate", "auto"), ("accurate", "off"), ("fast", "auto"), ("fast", "off")]
    assert all(float(r["pcc"]) > 0.999 for r in rows)
    # the two heads of the group share each K/V chunk only when sharing is on
    assert {r["kv_share"]: int(r["units_shared"]) > 0 for r in rows} == {"auto": True, "off": False}
    by = {(r["exp"], r["kv_share"]): float(r["cycles"]) for r in rows}
    assert by[("accurate", "auto")] > by[("fast", "auto")]    # accurate exp costs more SFPU time
