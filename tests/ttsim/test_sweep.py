"""ttsim.sweep: pruning with reasons, a content-addressed cache that survives restarts and is
invalidated per kernel source, failures recorded without stopping the sweep, ranking and the
Pareto fronts, kernels that declare their own space, the process pool and (when installed)
Dask through the same path."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ttsim.sweep import Cache, Space, Sweep, divides, fits, for_kernel, group_reasons, main, pareto

ROOT = Path(__file__).resolve().parents[2]

KERNEL = textwrap.dedent('''
    import os

    def run(n, a, b, tag="v1"):
        CALLS = os.environ.get("SWEEP_TEST_LOG")
        if CALLS:
            with open(CALLS, "a") as f:
                f.write(f"{a},{b}\\n")
        if a == 3:
            raise RuntimeError("a=3 is broken")
        return {"cycles": float(n * 10 + a * 100 - b), "tag": tag, "bottleneck": "math",
                "max_abs_err": 0.01 * b, "utilisation": {"math": 0.5}}

    from ttsim.sweep import Space, divides, fits

    # the kernel's own space: the sweep finds it from the kernel (`ttsim sweep kern.py`)
    SPACE = Space({"a": [1, 2, 3, 4], "b": [1, 2, 5]},
                  constraints=[divides("b", "n"), fits(lambda s, p: s["a"] * 1000, 3500, what="L1")],
                  problem={"n": 4}, figures={"l1_bytes": lambda s, p: s["a"] * 1000},
                  estimate=lambda s, p: s["a"] * 100 - s["b"])
''')


def _kernel(tmp_path, name="kern.py", body=KERNEL):
    p = tmp_path / name
    p.write_text(body)
    return p


def _space():
    return Space({"a": [1, 2, 3, 4], "b": [1, 2, 5]},
                 constraints=[divides("b", "n"),
                              fits(lambda s, p: s["a"] * 1000, 3500, what="L1")])


def _calls(log):
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def log(tmp_path, monkeypatch):
    p = tmp_path / "calls.log"
    monkeypatch.setenv("SWEEP_TEST_LOG", str(p))
    return p


def test_pruning_counts_and_reasons_and_pruned_never_run(tmp_path, log):
    k = _kernel(tmp_path)
    res = Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c").run(jobs=1, progress=False)
    # b=5 does not divide 4 (4 schedules), a=4 needs 4000 > 3500 (the other 2 of a=4)
    assert res.prune_reasons == {"b=5 does not divide n (4)": 4, "L1: needs 4,000 bytes > 3,500": 2}
    assert len(res.pruned) == 6 and res.admissible == 6
    assert sorted(_calls(log)) == sorted(f"{a},{b}" for a in (1, 2, 3) for b in (1, 2))
    assert "pruned    4: b=5 does not divide n (4)" in res.summary()


def test_prune_reasons_group_by_wording_with_the_range_of_each_number():
    got = group_reasons(["L1: needs 1,572,864 bytes > 1,396,736", "b=5 does not divide n (4)",
                         "L1: needs 2,490,368 bytes > 1,396,736", "L1: needs 1,511,424 bytes > 1,396,736",
                         "b=3 does not divide n (4)"])
    assert got == [(3, "L1: needs 1,511,424..2,490,368 bytes > 1,396,736"),
                   (2, "b=3..5 does not divide n (4)")]


def test_ranked_failures_recorded_and_outputs(tmp_path, log):
    k = _kernel(tmp_path)
    res = Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c").run(jobs=1, progress=False)
    cyc = [r["result"]["cycles"] for r in res.ranked]
    assert cyc == sorted(cyc) and len(cyc) == 4
    assert res.ranked[0]["schedule"] == {"a": 1, "b": 2}
    assert len(res.failed) == 2 and all("RuntimeError: a=3 is broken" in r["error"] for r in res.failed)
    table = res.table()
    assert table.splitlines()[1].split()[:3] == ["1", "1", "2"] and "failed" in table
    res.to_csv(tmp_path / "o.csv")
    res.to_json(tmp_path / "o.json")
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[0].startswith("rank,a,b,cycles") and len(lines) == 7
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["results"][0]["rank"] == 1 and data["results"][-1]["error"]


def test_second_run_hits_cache_failures_included_retry_reruns_them(tmp_path, log):
    k = _kernel(tmp_path)
    sw = Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c")
    first = sw.run(jobs=1, progress=False)
    assert first.ran == 6 and len(_calls(log)) == 6
    again = sw.run(jobs=1, progress=False)
    assert again.ran == 0 and again.cached == 6 and len(_calls(log)) == 6
    assert [r["result"] for r in again.ranked] == [r["result"] for r in first.ranked]
    assert len(again.failed) == 2
    retry = Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c", retry_failed=True)
    assert retry.run(jobs=1, progress=False).ran == 2


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, log):
    k = _kernel(tmp_path)
    sw = Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c")
    part = sw.run(jobs=1, progress=False, limit=4)
    assert part.ran == 4 and "; 2 not run (--limit)" in part.summary()
    rest = sw.run(jobs=1, progress=False)
    assert rest.ran == 2 and rest.cached == 4 and len(_calls(log)) == 6


def test_changed_kernel_source_invalidates_only_its_entries(tmp_path, log):
    ka, kb = _kernel(tmp_path, "ka.py"), _kernel(tmp_path, "kb.py")
    cache = tmp_path / "c"
    sa = Sweep(f"{ka}:run", _space(), {"n": 4}, cache=cache)
    sb = Sweep(f"{kb}:run", _space(), {"n": 4}, cache=cache)
    assert sa.run(jobs=1, progress=False).ran == 6 and sb.run(jobs=1, progress=False).ran == 6
    ka.write_text(KERNEL.replace('tag="v1"', 'tag="v2"'))
    ra = sa.run(jobs=1, progress=False)
    rb = sb.run(jobs=1, progress=False)
    assert ra.ran == 6 and rb.ran == 0
    assert {r["result"]["tag"] for r in ra.ranked} == {"v2"}
    # the problem and the sysdesc are in the key too
    assert Sweep(f"{kb}:run", _space(), {"n": 2}, cache=cache).run(jobs=1, progress=False).ran > 0
    s1 = Sweep(f"{kb}:run", _space(), {"n": 4}, cache=cache, sysdesc="blackhole")
    assert s1.run(jobs=1, progress=False).ran == 6


def test_process_pool_same_results(tmp_path, log):
    k = _kernel(tmp_path)
    serial = Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c1").run(jobs=1, progress=False)
    pool = Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c2").run(
        jobs=2, scheduler="pool", progress=False)
    assert pool.ran == 6
    assert [r["result"] for r in pool.ranked] == [r["result"] for r in serial.ranked]


def test_cache_entries_are_plain_json(tmp_path, log):
    k = _kernel(tmp_path)
    Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c").run(jobs=1, progress=False)
    files = list((tmp_path / "c").rglob("*.json"))
    assert len(files) == 6
    e = json.loads(files[0].read_text())
    assert {"ok", "schedule", "problem"} <= set(e)
    assert Cache(tmp_path / "c").get("0" * 64) is None


def test_flash_attention_declares_its_space_small_problem(tmp_path):
    sw = for_kernel("examples/flash_attention.py:run", {"heads": 1, "seq": 64}, cache=tmp_path / "c")
    assert sw.name == "flash_attention" and sw.sources == [str(ROOT / "examples" / "flash_attention.py")]
    sw.space = sw.space.restrict(grid=[(1, 1), (2, 1)], q_chunk=[1, 2], kv_chunk=[2, 4],
                                 kv_dtype=["bf16"], math_fidelity=["HiFi4"])
    res = sw.run(jobs=1, progress=False)
    assert res.prune_reasons == {"kv_chunk=4 does not divide K/V seq tiles (2)": 4}
    assert res.ran == 4 and not res.failed
    top = res.ranked[0]["result"]
    assert top["pcc"] > 0.999 and top["cycles"] > 0
    # L1 is the space's static figure: the bigger Q chunk takes more
    l1 = {r["schedule"]["q_chunk"]: r["result"]["l1_bytes"] for r in res.ranked}
    assert l1[2] > l1[1] > 0
    assert sw.run(jobs=1, progress=False).ran == 0


def test_flash_attention_l1_and_grid_pruning():
    sw = for_kernel("flash_attention", {"heads": 8, "seq": 2048, "dim": 128})
    sw.space = sw.space.restrict(grid=[(8, 8), (16, 16)])
    ok, pruned = sw.plan()
    reasons = {w for _, w in pruned}
    assert any(w.startswith("L1: needs") for w in reasons)
    assert any("exceeds the chip's 8x8 workers" in w for w in reasons)


def test_matmul_declares_its_space_and_prunes_by_the_library_rule(tmp_path):
    sw = for_kernel("matmul", {"M": 64, "K": 64, "N": 64}, cache=tmp_path / "c")
    assert sw.run_fn == "ttsim.library.matmul:run" and sw.sources[0].endswith("library/matmul.py")
    ok, pruned = sw.plan()
    reasons = {w for _, w in pruned}
    assert any("DST tiles" in w for w in reasons)       # choose_blocking's own message
    assert "the 1x2 subblock does not divide every core's 1x1 output tiles" in reasons
    default = {w for _, w in for_kernel("matmul").plan()[1]}    # M = K = N = 512
    assert "the 4x4 subblock exceeds the 8 DST tiles" in default
    assert any(w.endswith("kb=4") and "K=2 tiles" in w for w in reasons)
    sw.space = sw.space.restrict(grid=[(1, 1), (2, 2)], sm=[None], sn=[None], kb=[None, 1],
                                 math_fidelity=["HiFi4"])
    res = sw.run(jobs=1, progress=False)
    assert res.ran == 4 and not res.failed
    assert all(r["result"]["pcc"] > 0.999 and r["result"]["l1_bytes"] > 0 for r in res.ranked)


def test_a_module_without_a_space_and_a_problem_the_kernel_cannot_take_are_named(tmp_path):
    bare = tmp_path / "bare.py"
    bare.write_text("def run(n):\n    return {'cycles': n}\n")
    with pytest.raises(ValueError, match="declares no schedule space"):
        for_kernel(str(bare))
    with pytest.raises(ValueError, match="unknown kernel 'no_such_kernel'"):
        for_kernel("no_such_kernel")
    sw = for_kernel(str(_kernel(tmp_path)), {"typo": 1}, cache=tmp_path / "c")
    with pytest.raises(ValueError, match="typo"):
        sw.run(jobs=1, progress=False)


def test_pareto_front():
    pts = [(1, 9), (2, 5), (3, 7), (4, 1), (5, 1), (2, 5.5)]
    assert sorted(pareto(pts)) == [0, 1, 3]


def test_fronts_of_a_sweep(tmp_path, log):
    res = for_kernel(str(_kernel(tmp_path)), cache=tmp_path / "c").run(jobs=1, progress=False)
    # ranked: (a, b) = (1, 2) 138, (1, 1) 139, (2, 2) 238, (2, 1) 239; L1 = 1000 a, error = 0.01 b
    by = lambda name: [(r["schedule"]["a"], r["schedule"]["b"]) for r in res.fronts[name]]
    assert by("l1") == [(1, 2)]
    assert by("error") == [(1, 2), (1, 1)]          # in rank order
    assert "Pareto front of cycles against L1 bytes: ranks 1" in res.summary()
    recs = res.records()
    assert recs[0]["pareto"] == "l1,error" and recs[1]["pareto"] == "error" and recs[2]["pareto"] == ""


def test_cli_dry_run_and_run(tmp_path, capsys):
    assert main(["matmul", "-p", "M=64", "-p", "K=64", "-p", "N=64", "--dry-run"]) == 0
    assert "would run" in capsys.readouterr().out
    args = ["matmul", "-p", "M=64", "-p", "K=64", "-p", "N=64", "-s", "grid=1x1,2x2", "-s", "sm=None",
            "-s", "sn=None", "-s", "kb=None,1", "-s", "math_fidelity=HiFi4", "--jobs", "1",
            "--cache", str(tmp_path / "c"), "--quiet", "--csv", str(tmp_path / "o.csv")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 simulated" in out and (tmp_path / "o.csv").exists()
    assert main(args) == 0
    assert "4 cached, 0 simulated" in capsys.readouterr().out


def test_ttsim_sweep_is_a_subcommand_of_ttsim(tmp_path, log):
    k = _kernel(tmp_path)
    p = subprocess.run([sys.executable, "-m", "ttsim", "sweep", str(k), "--jobs", "1", "--quiet",
                        "--cache", str(tmp_path / "c"), "--json", str(tmp_path / "o.json")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "6 pruned, 6 admissible: 0 cached, 6 simulated, 2 failed, 4 ranked" in p.stdout
    assert "pruned    4: b=5 does not divide n (4)" in p.stdout
    assert json.loads((tmp_path / "o.json").read_text())["pareto"] == {"l1": [1], "error": [1, 2]}
    h = subprocess.run([sys.executable, "-m", "ttsim", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert "sweep" in h.stdout
    bad = subprocess.run([sys.executable, "-m", "ttsim", "sweep", str(k), "-s", "zz=1"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "no schedule parameter 'zz': the space has a, b" in bad.stderr


def test_dask_local_cluster_same_path(tmp_path, log):
    pytest.importorskip("dask.distributed")
    k = _kernel(tmp_path)
    res = Sweep(f"{k}:run", _space(), {"n": 4}, cache=tmp_path / "c").run(
        jobs=2, scheduler="local", progress=False)
    assert res.ran == 6 and len(res.ranked) == 4 and len(res.failed) == 2


def _dask_cli():
    import shutil
    return shutil.which("dask") or str(Path(sys.executable).parent / "dask")


def test_dask_scheduler_and_workers_from_the_command_line(tmp_path, log):
    """`dask scheduler` and two `dask worker ADDRESS`, started as a user would, and
    `ttsim sweep KERNEL --scheduler ADDRESS` against them."""
    pytest.importorskip("dask.distributed")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([_dask_cli(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], **quiet)]
    try:
        procs += [subprocess.Popen([_dask_cli(), "worker", addr, "--nthreads", "1", "--nworkers", "1",
                                    "--dashboard-address", ":0"], **quiet) for _ in range(2)]
        from dask.distributed import Client
        with Client(addr, timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
            assert len(c.scheduler_info()["workers"]) == 2
        cmd = [sys.executable, "-m", "ttsim", "sweep", str(_kernel(tmp_path)), "--scheduler", addr,
               "--cache", str(tmp_path / "c"), "--quiet"]
        first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert first.returncode == 0, first.stderr
        assert "6 admissible: 0 cached, 6 simulated, 2 failed, 4 ranked" in first.stdout
        assert sorted(_calls(log)) == sorted(f"{a},{b}" for a in (1, 2, 3) for b in (1, 2))
        again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert "6 cached, 0 simulated" in again.stdout and len(_calls(log)) == 6
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_flash_attention_sweep_on_local_dask_killed_and_restarted(tmp_path):
    """128 flash attention schedules of a small problem on a local Dask cluster: the sweep
    is killed (SIGKILL, with its workers) once some results have landed, and the same
    command run again simulates only the rest: every entry already cached is left as it was."""
    pytest.importorskip("dask.distributed")
    cache = tmp_path / "c"
    cmd = [sys.executable, "-m", "ttsim", "sweep", "flash_attention", "-p", "heads=1", "-p", "seq=64",
           "-s", "grid=1x1,2x1", "-s", "q_chunk=1,2", "-s", "kv_chunk=1,2", "-s", "exp=fast,accurate",
           "-s", "kv_share=auto,off", "--scheduler", "local", "--jobs", "2", "--cache", str(cache),
           "--quiet"]   # 2 grids x 2 x 2 chunks x 2 K/V formats x 2 fidelities x 2 exp x 2 shares
    total, kill_at = 128, 16
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(list(cache.rglob("*.json"))) < kill_at:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no results landed in 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    landed = {p: (p.stat().st_mtime_ns, p.read_text()) for p in cache.rglob("*.json")}
    assert kill_at <= len(landed) < total
    rest = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert rest.returncode == 0, rest.stderr
    assert (f"{total} admissible: {len(landed)} cached, {total - len(landed)} simulated, 0 failed, "
            f"{total} ranked") in rest.stdout
    assert all((p.stat().st_mtime_ns, p.read_text()) == v for p, v in landed.items())
    assert len(list(cache.rglob("*.json"))) == total


def test_declared_estimates_rank_more_cores_and_lower_fidelity_faster():
    """The estimates that seed the search: flash attention's is auto_schedule's, matmul's
    the longer of its tile products and its DRAM reads."""
    fa = for_kernel("flash_attention").space
    base = {"grid": (8, 8), "q_chunk": 8, "kv_chunk": 8, "buffers": 2, "kv_dtype": "bf16"}
    assert fa.estimate(base, fa.problem) < fa.estimate({**base, "grid": (4, 4)}, fa.problem)
    mm = for_kernel("matmul", {"M": 1024, "K": 1024, "N": 1024}).space
    s = {"grid": (8, 8), "math_fidelity": "HiFi4"}
    e = lambda **kw: mm.estimate({**s, **kw}, mm.problem)
    assert e() < e(grid=(2, 2)) and e(math_fidelity="HiFi2") < e()
