"""The schedule sweep ranks schedules by cycles and writes its table and figures."""
import csv
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sweep_ranks_by_cycles_and_writes_csv_and_json(tmp_path, capsys):
    sweep = _load("fa_schedules")
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    sweep.main(["--heads", "2", "--seq", "128", "--grids", "2x2,1x1", "--q-chunks", "1,2",
                "--kv-chunks", "2", "--fidelities", "HiFi4", "--kv-dtypes", "bf16", "--jobs", "2",
                "--csv", str(out_csv), "--json", str(out_json)])
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 4
    cycles = [float(r["cycles"]) for r in rows]
    assert cycles == sorted(cycles)
    assert all(float(r["pcc"]) > 0.999 for r in rows)
    assert all(0 < float(r["math_busy"]) <= 1 for r in rows)
    # a 2x2 grid beats one core on the same work
    assert rows[0]["grid"] == "2x2"
    figures = json.loads(out_json.read_text())
    assert figures["schedules"] == 4 and figures["best_cycles"] == cycles[0]
    assert all(isinstance(v, (int, float)) for v in figures.values())
    assert "bottleneck" in capsys.readouterr().out
