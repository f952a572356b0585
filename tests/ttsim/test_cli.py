"""`ttsim run SCRIPT.py` runs a script's programs under the chosen sysdesc and reports them."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ttsim.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_run_script_with_json_and_trace(tmp_path):
    j, t = tmp_path / "r.json", tmp_path / "t.json"
    p = _run("run", "examples/matmul.py", "--json", str(j), "--trace", str(t), "--",
             "--m", "64", "--k", "64", "--n", "64", "--grid", "2x2")
    assert p.returncode == 0, p.stderr
    assert "bottleneck" in p.stdout and "cycles" in p.stdout
    d = json.loads(j.read_text())
    assert d["runs"][0]["sysdesc"] == "wormhole_b0"
    assert json.loads(t.read_text())["traceEvents"]


def test_sysdesc_flag_selects_blackhole():
    p = _run("run", "examples/matmul.py", "--sysdesc", "blackhole", "--",
             "--m", "64", "--k", "64", "--n", "64", "--grid", "2x2")
    assert p.returncode == 0, p.stderr
    assert "blackhole" in p.stdout


def test_bad_sysdesc_is_a_clear_error():
    p = _run("run", "examples/matmul.py", "--sysdesc", "no_such_chip")
    assert p.returncode == 2
    assert "no_such_chip" in p.stderr and "wormhole_b0" in p.stderr
