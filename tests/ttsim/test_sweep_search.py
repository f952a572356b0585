"""The Optuna search over a Space: seeded from the estimate's cheapest schedule, pruned
schedules never simulated, the same cache (a repeated search simulates nothing), and a
space too big to enumerate searched within its budget."""
import pytest

from ttsim.sweep import Space, Sweep, for_kernel, main
from ttsim.sweep.search import seeds

from .test_sweep import _calls, _kernel, _space, log  # noqa: F401  (log is a fixture)

pytest.importorskip("optuna")


def test_search_seeded_from_the_estimate_pruned_never_run_cache_shared(tmp_path, log):
    sw = for_kernel(str(_kernel(tmp_path)), cache=tmp_path / "c")
    res = sw.search(6, jobs=1, progress=False, n_seeds=1)
    calls = _calls(log)
    # the first schedule simulated is the one the estimate ranks cheapest: a=1, b=2
    assert calls[0] == "1,2"
    admissible = {f"{a},{b}" for a in (1, 2, 3) for b in (1, 2)}
    assert set(calls) <= admissible and len(calls) == len(set(calls))
    assert res.ran == len(calls) and res.admissible == len(calls)
    assert res.ranked[0]["schedule"] == {"a": 1, "b": 2}
    assert all(why in ("b=5 does not divide n (4)", "L1: needs 4,000 bytes > 3,500")
               for _, why in res.pruned)
    assert "optuna search" in res.summary()
    again = sw.search(6, jobs=1, progress=False, n_seeds=1)
    assert again.ran == 0 and again.cached == again.admissible > 0
    assert len(_calls(log)) == len(calls)
    # and the grid sweep over the same cache reuses what the search simulated
    full = sw.run(jobs=1, progress=False)
    assert full.cached == len(calls) and full.ran == 6 - len(calls)


def test_search_of_a_space_too_big_to_enumerate(tmp_path, log):
    k = _kernel(tmp_path, body='''
def run(x, y, z):
    return {"cycles": float((x - 37) ** 2 + (y - 60) ** 2 + z)}
''')
    space = Space({"x": list(range(100)), "y": list(range(100)), "z": list(range(100))},
                  constraints=[lambda s, p: "x + y too big" if s["x"] + s["y"] > 150 else None],
                  estimate=lambda s, p: (s["x"] - 37) ** 2 + (s["y"] - 60) ** 2 + s["z"])
    assert space.size == 10 ** 6
    top = seeds(space, {}, 3, sample=5000)
    assert len(top) == 3 and all(space.check(s, {}) is None for s in top)
    res = Sweep(f"{k}:run", space, {}, cache=tmp_path / "c").search(12, jobs=1, progress=False, n_seeds=2)
    assert res.ran == 12 and len(res.ranked) == 12
    # the seeds are among the estimate's best of a 20,000-sample: the best found is close
    assert res.ranked[0]["result"]["cycles"] < 100
    assert all(s["x"] + s["y"] <= 150 for s in (r["schedule"] for r in res.ranked))


def test_cli_search(tmp_path, log, capsys):
    k = _kernel(tmp_path)
    args = [str(k), "--search", "optuna", "--trials", "3", "--jobs", "1", "--quiet",
            "--cache", str(tmp_path / "c")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "optuna search" in out and "3 admissible: 0 cached, 3 simulated" in out
    assert main(args) == 0
    assert "0 simulated" in capsys.readouterr().out
