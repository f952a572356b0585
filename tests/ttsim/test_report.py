"""What a run reports: per-thread accounting, per-line attribution, JSON, trace."""
import json

import numpy as np

import ttsim
from ttsim.library.matmul import matmul


def _run(trace=False):
    dev = ttsim.Device()
    r = np.random.default_rng(0)
    a = dev.tensor(r.standard_normal((64, 128)).astype(np.float32))
    b = dev.tensor(r.standard_normal((128, 64)).astype(np.float32))
    c = dev.empty((64, 64))
    from ttsim.library.matmul import matmul_program
    return dev.run(matmul_program(dev, a, b, c, grid=(2, 1)), trace=trace)


def test_thread_accounting_adds_up():
    rep = _run()
    assert {t.kind for t in rep.threads} == {"reader", "writer", "unpack", "math", "pack"}
    assert len(rep.threads) == 2 * 5
    for t in rep.threads:
        assert t.busy > 0
        assert abs(t.busy + t.stalled + t.idle - rep.cycles) < 1e-6
        assert t.idle >= -1e-6


def test_lines_account_for_all_busy_cycles():
    rep = _run()
    for kind in ("reader", "math", "pack"):
        busy_threads = sum(t.busy for t in rep.threads if t.kind == kind)
        busy_lines = sum(l.busy for l in rep.lines if l.kind == kind)
        assert abs(busy_threads - busy_lines) < 1e-6 * busy_threads
    mm = [l for l in rep.lines if l.kind == "math" and l.busy > 0]
    assert any("matmul_block" in open(l.file).read().splitlines()[l.line - 1] for l in mm)
    table = rep.line_table(top=5)
    assert "matmul_block" in table


def test_json_report_schema(tmp_path):
    rep = _run()
    p = tmp_path / "r.json"
    rep.write_json(p)
    d = json.loads(p.read_text())
    for key in ("schema_version", "sysdesc", "clock_ghz", "cycles", "us", "bottleneck", "per_kind",
                "threads", "lines", "noc"):
        assert key in d
    assert d["us"] == d["cycles"] / 1000.0
    assert set(d["per_kind"]) == {"reader", "unpack", "math", "pack", "writer"}


def test_trace_opens_as_chrome_trace(tmp_path):
    rep = _run(trace=True)
    p = tmp_path / "t.json"
    rep.write_trace(p)
    d = json.loads(p.read_text())
    ev = d["traceEvents"]
    slices = [e for e in ev if e["ph"] == "X"]
    names = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"reader", "writer", "unpack", "math", "pack"}
    assert any(e["name"] == "matmul_block" for e in slices)
    assert any(e["cat"] == "wait" for e in slices)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in slices)
    assert len({e["pid"] for e in slices}) == 2


def test_line_table_by_thread_has_a_section_per_thread_kind():
    rep = _run()
    text = rep.line_table(top=2, by_thread=True)
    sections = text.split("\n\n")
    assert len(sections) == 5
    for sec, kind in zip(sections, ("reader", "unpack", "math", "pack", "writer")):
        rows = sec.splitlines()[1:]
        assert 1 <= len(rows) <= 2 and all(r.startswith(kind) for r in rows)


def _slices(path):
    ev = json.loads(path.read_text())["traceEvents"]
    return sorted((e["pid"], e["tid"], e["name"], e["args"]["start_cycle"], e["args"]["cycles"],
                   e["args"].get("line")) for e in ev if e["ph"] == "X")


def test_streamed_trace_is_the_in_memory_trace_with_bounded_buffers(tmp_path, monkeypatch):
    from ttsim import trace
    kept = _run(trace=True)
    kept.write_trace(tmp_path / "kept.json")
    monkeypatch.setattr(trace, "CHUNK", 8)
    held = []
    flush = trace.TraceStream.flush
    monkeypatch.setattr(trace.TraceStream, "flush",
                        lambda self, buf: (held.append(len(buf)), flush(self, buf))[1])
    streamed = _run(trace=str(tmp_path / "streamed.json"))
    assert streamed.trace_events is None and streamed.trace_path == str(tmp_path / "streamed.json")
    assert streamed.cycles == kept.cycles
    assert _slices(tmp_path / "streamed.json") == _slices(tmp_path / "kept.json")
    assert max(held) <= 8 and sum(held) > 8 * len(streamed.threads)   # written as it came
    streamed.write_trace(tmp_path / "copy.json")
    assert _slices(tmp_path / "copy.json") == _slices(tmp_path / "kept.json")


def test_a_failed_run_leaves_a_complete_trace_up_to_the_failure(tmp_path):
    import pytest
    from ttsim.errors import DeadlockError
    dev = ttsim.Device("wormhole_b0")
    prog = ttsim.Program(dev)
    prog.circular_buffer([(0, 0)], 0, "bf16", 2)

    def reader(k):
        k.cb_reserve_back(0, 1)
        k.cb_push_back(0, 1)
        k.cb_wait_front(0, 2)      # nothing pushes the second page

    prog.reader([(0, 0)], reader)
    with pytest.raises(DeadlockError):
        dev.run(prog, trace=str(tmp_path / "t.json"))
    names = [s[2] for s in _slices(tmp_path / "t.json")]
    assert "cb_reserve_back" in names and "cb_push_back" in names


def test_trace_must_be_a_flag_or_a_writable_path(tmp_path):
    import pytest
    with pytest.raises(ttsim.TTSimError, match="trace must be"):
        _run(trace=3)
    with pytest.raises(ttsim.TTSimError, match="trace: cannot write .*no_such_dir"):
        _run(trace=str(tmp_path / "no_such_dir" / "t.json"))



def test_tracing_streams_each_run_in_the_block_to_its_own_file(tmp_path):
    path = tmp_path / "t.json"
    with ttsim.tracing(path):
        first, second = _run(), _run()
    after = _run()
    assert (first.trace_path, second.trace_path) == (str(path), f"{path}.1")
    assert after.trace_path is None and after.trace_events is None
    assert _slices(path) == _slices(tmp_path / "t.json.1") != []
