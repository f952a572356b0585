"""Flash attention: right for every drawn problem and schedule, deterministic, and with a
cycle model that behaves (more KV -> proportionally more cycles; more cores -> not slower)."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import flash_attention as fa  # noqa: E402
from ttlang import testing as tt  # noqa: E402

U_BF16 = 2.0 ** -8


def fa_bound(res_inputs, seq, kv_chunk, causal, fidelity="HiFi4", split=1):
    """Error bound from the formats: Q * scale, S, P, alpha, O and the final division each
    round to bf16 (relative u); an error e in S moves exp(S - m) by about |e| relative; the running
    O is rounded once per KV chunk. The output is a convex mix of V rows, so errors scale
    with max|V|. Below HiFi4 each product of QK^T and PV is off by the fidelity's
    truncation (ttlang.testing.FIDELITY_ROUNDOFF). A K/V split over `split` cores rounds
    the combining core's (l, O) once more per part it folds in. The reference uses the inputs
    as stored (bf16 or bfp8_b), so their rounding is not an error."""
    q, k, v, scale = res_inputs
    s_max = np.abs(q).max() * np.abs(k).max() * q.shape[-1] * scale   # loose |S| bound
    s_max = min(s_max, 8.0)
    n_chunks = seq // 32 // kv_chunk + split - 1
    u_fid = tt.FIDELITY_ROUNDOFF[fidelity]
    return (U_BF16 * (4 + 3 * s_max + 2 * n_chunks) + u_fid * (2 * s_max + 1)) * np.abs(v).max()


def run(**kw):
    res, rep, _ = fa.run(**kw)
    return res, rep


@st.composite
def problems(draw):
    dim = draw(st.sampled_from([32, 64, 128]))
    causal = draw(st.booleans())
    q_chunk = draw(st.sampled_from([1, 2]))
    kv_chunk = q_chunk if causal else draw(st.sampled_from([1, 2, 4]))
    lcm = q_chunk * kv_chunk // math.gcd(q_chunk, kv_chunk)
    seq = 32 * lcm * draw(st.integers(1, 3))
    grid = draw(st.sampled_from([(1, 1), (2, 1), (2, 2), (4, 2)]))
    return dict(batch=draw(st.integers(1, 2)), heads=draw(st.integers(1, 2)), seq=seq, dim=dim,
                grid=grid, q_chunk=q_chunk, kv_chunk=kv_chunk, causal=causal,
                buffers=draw(st.sampled_from([1, 2, 3])), seed=draw(st.integers(0, 1000)),
                kv_dtype=draw(st.sampled_from(["bf16", "bfp8_b"])),
                math_fidelity=draw(st.sampled_from(["HiFi4", "HiFi2"])),
                fp32_dest_acc_en=draw(st.booleans()))


@settings(max_examples=12)
@given(problems())
def test_matches_float64_reference(p):
    res, rep = run(**p)
    assert res["pcc"] > 0.999, res
    bound = fa_bound(_inputs(p), p["seq"], p["kv_chunk"], p["causal"], p["math_fidelity"])
    assert res["max_abs_err"] <= bound, (res["max_abs_err"], bound)


def _inputs(p):
    """The run's inputs as fa.run draws them (Q, then K and V of kv_seq rows, kv_heads)."""
    r = np.random.default_rng(p["seed"])
    b, kv_seq = p.get("batch", 1), p.get("kv_seq") or p["seq"]
    q = r.standard_normal((b * p["heads"], p["seq"], p["dim"]))
    k, v = (r.standard_normal((b * (p.get("kv_heads") or p["heads"]), kv_seq, p["dim"]))
            for _ in range(2))
    return q, k, v, 1 / math.sqrt(p["dim"])


@settings(max_examples=6)
@given(st.sampled_from([(1, 1), (1, 2), (2, 2), (2, 4)]), st.sampled_from([(1, 1), (2, 2)]),
       st.sampled_from([1, 2]))
def test_schedule_does_not_change_the_result(chunks, grid, buffers):
    base = dict(batch=1, heads=2, seq=128, dim=64, seed=3)
    ref, _ = run(**base, grid=(1, 1), q_chunk=1, kv_chunk=1)
    got, _ = run(**base, grid=grid, q_chunk=chunks[0], kv_chunk=chunks[1], buffers=buffers)
    bound = fa_bound(_inputs(base), 128, 1, False)
    # both are within the bound of float64, so within twice the bound of each other
    assert abs(got["max_abs_err"] - ref["max_abs_err"]) <= 2 * bound
    assert got["pcc"] > 0.999


def test_deterministic():
    p = dict(batch=1, heads=2, seq=128, dim=64, grid=(2, 2), q_chunk=2, kv_chunk=2, seed=4)
    a, ra = run(**p)
    b, rb = run(**p)
    assert a["max_abs_err"] == b["max_abs_err"] and a["pcc"] == b["pcc"]
    assert ra.cycles == rb.cycles


def test_bfp8_kv_and_fidelity_run_and_stay_accurate():
    p = dict(batch=1, heads=1, seq=128, dim=64, grid=(1, 1), q_chunk=2, kv_chunk=2, seed=5)
    hi, rhi = run(**p)
    lo, rlo = run(**p, kv_dtype="bfp8_b", math_fidelity="HiFi2")
    assert lo["pcc"] > 0.995
    assert rlo.cycles < rhi.cycles        # fewer fidelity phases, smaller K/V tiles


def test_kv_length_adds_compute_bound_cycles_linearly():
    """One Q chunk per core, long KV: every KV chunk costs the same compute, so cycles are
    a fixed start-up and finish plus a part proportional to the KV length."""
    p = dict(batch=1, heads=1, dim=64, seq=64, grid=(1, 1), q_chunk=2, kv_chunk=4, seed=6)
    c1, c2, c4 = (run(**p, kv_seq=256 * n)[1] for n in (1, 2, 4))
    assert c2.bottleneck().startswith("math")
    growth = (c4.cycles - c2.cycles) / (c2.cycles - c1.cycles)     # 512 more rows against 256
    assert 1.9 <= growth <= 2.1, growth
    assert c4.cycles / c2.cycles > 1.7                               # the KV loop dominates


def test_more_cores_do_not_slow_a_parallel_split():
    p = dict(batch=1, heads=4, seq=128, dim=64, q_chunk=2, kv_chunk=2, seed=7)
    cycles = [run(**p, grid=g)[1].cycles for g in ((1, 1), (2, 1), (2, 2), (4, 2))]
    assert all(b <= a * 1.02 for a, b in zip(cycles, cycles[1:])), cycles
    assert cycles[0] / cycles[-1] > 4


def test_blackhole_runs():
    res, rep = run(batch=1, heads=1, seq=128, dim=64, grid=(2, 2), q_chunk=1, kv_chunk=2,
                   sysdesc="blackhole")
    assert rep.sysdesc == "blackhole" and res["pcc"] > 0.999
    import ttlang as ttl
    ttl.set_device("wormhole_b0")


def test_kv_multicast_gives_the_same_bits():
    p = dict(batch=1, heads=2, seq=256, dim=64, grid=(4, 2), q_chunk=2, kv_chunk=2, seed=8)
    a, ra = run(**p, kv_mcast=False)
    b, rb = run(**p, kv_mcast=True)
    assert a["max_abs_err"] == b["max_abs_err"] and a["pcc"] == b["pcc"]
    readers = [t for t in rb.threads if t.kind == "reader"]
    # row senders read K/V from DRAM; receivers only wait for the multicast
    assert any(t.stalls.get("semaphore", 0) > 0 for t in readers)


@given(batch=st.integers(1, 2), kv_heads=st.integers(1, 3), group=st.integers(1, 3),
       n_q=st.integers(1, 9))
def test_work_units_cover_every_q_chunk_once_and_group_streams(batch, kv_heads, group, n_q):
    heads = kv_heads * group
    units = fa.work_units(batch, heads, kv_heads, n_q)
    every = sorted((qr, qi) for _, chunks in units for qr, _, qi in chunks)
    assert every == [(qr, qi) for qr in range(batch * heads) for qi in range(n_q)]
    for key, chunks in units:
        for qr, kv_row, _ in chunks:
            b, h = divmod(qr, heads)
            assert kv_row == b * kv_heads + h // group        # the group's K/V head
    streams = {}                                  # units of one stream key: one K/V head
    for key, chunks in units:
        streams.setdefault(key, set()).update(kv for _, kv, _ in chunks)
    assert all(len(v) == 1 for v in streams.values())


@given(batch=st.integers(1, 2), kv_heads=st.integers(1, 3), group=st.sampled_from([1, 2, 3, 4, 8]),
       n_q=st.integers(1, 12), grid=st.sampled_from([(1, 1), (3, 1), (4, 2), (5, 3), (11, 10)]),
       kv_chunk=st.integers(1, 3), share=st.booleans())
def test_causal_plan_balances_the_work_and_gangs_share_one_stream(batch, kv_heads, group, n_q,
                                                                  grid, kv_chunk, share):
    heads, n_kv = kv_heads * group, -(-n_q // kv_chunk)
    blocks_of = lambda qi: fa.kv_blocks(qi, 1, kv_chunk, n_kv, True)
    sched, pipes = fa.causal_plan(batch, heads, kv_heads, n_q, grid, share, blocks_of)
    every = sorted((qr, qi) for us in sched.values() for u, _ in us for qr, _, qi, *_ in u)
    assert every == [(qr, qi) for qr in range(batch * heads) for qi in range(n_q)]
    cost = lambda qi: blocks_of(qi) + fa.CHUNK_STEPS
    loads = {c: sum(cost(qi) for u, _ in us for _, _, qi, *_ in u) for c, us in sched.items()}
    # list scheduling: a core that finishes early finished at most one item before the end
    # (a pass of it for each of its gang's passes)
    longest = max(loads.values())
    assert all(longest - ld <= cost(0 if n_q == 1 else n_q - 1) * group for ld in loads.values())
    for c, us in sched.items():
        for step, (u, role) in enumerate(us):
            if role is None:
                continue
            assert share
            if role[0] == "recv":
                src, (x0, y0, x1, y1) = pipes[role[1]]
                assert x0 <= c[0] <= x1 and y0 <= c[1] <= y1
                su, srole = sched[src][step]      # the sender runs the same K/V chunks then
                assert srole[0] == "send" and role[1] in srole[1]
                assert su[0][1:] == u[0][1:]


@given(n_units=st.integers(1, 40), n_keys=st.integers(1, 5), grid=st.sampled_from(
    [(1, 1), (3, 1), (4, 2), (5, 3), (11, 10)]), buffers=st.integers(1, 3),
    share=st.booleans(), data=st.data())
def test_plan_deals_every_unit_once_and_every_receiver_has_one_sender(n_units, n_keys, grid,
                                                                       buffers, share, data):
    keys = sorted(data.draw(st.lists(st.integers(0, n_keys - 1), min_size=n_units,
                                     max_size=n_units)))
    units = [(k, ((i, k, k % 3),)) for i, k in enumerate(keys)]   # a key fixes the K/V chunks
    sched, pipes = fa.plan(units, grid, share, lambda qi: qi + 1, buffers)
    dealt = sorted(u[0][0] for us in sched.values() for u, _ in us)
    assert dealt == list(range(n_units))
    counts = [len(v) for v in sched.values()]
    assert max(counts) - min(counts) <= 1                      # dealt in rounds
    cores = list(sched)
    for c in cores:
        for step, (u, role) in enumerate(sched[c]):
            if role is None:
                continue
            assert share
            if role[0] == "recv":
                src, rect = pipes[role[1]]
                x0, y0, x1, y1 = rect
                assert x0 <= c[0] <= x1 and y0 <= c[1] <= y1
                su, srole = sched[src][step]                  # the sender, in the same round
                assert srole[0] == "send" and role[1] in srole[1]
                assert su[0][1] == u[0][1] and su[0][2] == u[0][2]   # the same K/V chunks
            else:
                covered = set()
                for pid in role[1]:
                    src, (x0, y0, x1, y1) = pipes[pid]
                    assert src == c
                    cells = {(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)}
                    assert not cells & covered and c not in cells
                    covered |= cells
                    assert all(sched[d][step][1] == ("recv", pid) for d in cells)


@given(n_units=st.integers(1, 20), n_keys=st.integers(1, 4), grid=st.sampled_from(
    [(2, 1), (3, 1), (4, 2), (5, 3)]), buffers=st.integers(1, 3), share=st.booleans(),
    data=st.data())
def test_a_kv_split_runs_each_q_chunk_side_by_side_and_combines_it_on_one_core(
        n_units, n_keys, grid, buffers, share, data):
    cores = grid[0] * grid[1]
    split = data.draw(st.integers(2, min(cores, 4)))
    keys = sorted(data.draw(st.lists(st.integers(0, n_keys - 1), min_size=n_units, max_size=n_units)))
    units = [(k, ((i, k, 0),)) for i, k in enumerate(keys)]
    n_blocks = split + data.draw(st.integers(0, 5))
    sched, pipes = fa.plan(units, grid, share, lambda qi: n_blocks, buffers, split)
    placed = {}                   # q row -> [(part's j0, j1, core, step, exchange)]
    for c, us in sched.items():
        for step, (u, _) in enumerate(us):
            for q_row, kv_row, qi, j0, j1, x in u:
                placed.setdefault(q_row, []).append((j0, j1, c, step, x))
    assert sorted(placed) == list(range(n_units))
    n_g = cores // split
    for q_row, parts in placed.items():
        parts.sort()
        # the parts tile the K/V range, as evenly as whole blocks go, one core each, one round
        assert [(j0, j1) for j0, j1, *_ in parts] == fa.kv_parts(n_blocks, split)
        assert max(j1 - j0 for j0, j1, *_ in parts) - min(j1 - j0 for j0, j1, *_ in parts) <= 1
        assert len({c for _, _, c, _, _ in parts}) == split
        assert len({step for _, _, _, step, _ in parts}) == 1
        combiner, x0 = parts[0][2], parts[0][4]
        assert x0[0] == "combine" and len(x0[1]) == split - 1
        for (_, _, c, _, x), pid in zip(parts[1:], x0[1]):
            assert x == ("part", pid)
            src, (rx0, ry0, rx1, ry1) = pipes[pid]
            assert src == c and (rx0, ry0) == (rx1, ry1) == combiner
    # the cores a round leaves over (cores % split of them) get nothing
    order = [(x, y) for y in range(grid[1]) for x in range(grid[0])]
    assert all(not sched[c] for c in order[n_g * split:])
    for c, us in sched.items():           # a K/V receiver gets the blocks its sender reads
        for step, (u, role) in enumerate(us):
            if role and role[0] == "recv":
                su, srole = sched[pipes[role[1]][0]][step]
                assert srole[0] == "send" and su[0][1] == u[0][1] and su[0][3:5] == u[0][3:5]


@settings(max_examples=8)
@given(heads=st.integers(1, 2), kv_heads=st.sampled_from([None, 1]), seq=st.sampled_from([32, 64]),
       kv_t=st.sampled_from([4, 6, 8, 16]), grid=st.sampled_from([(2, 1), (2, 2), (4, 2)]),
       kv_chunk=st.sampled_from([1, 2]), kv_dtype=st.sampled_from(["bf16", "bfp8_b"]),
       seed=st.integers(0, 1000), data=st.data())
def test_a_kv_split_matches_float64(heads, kv_heads, seq, kv_t, grid, kv_chunk, kv_dtype, seed,
                                    data):
    n_kv = kv_t // kv_chunk
    split = data.draw(st.integers(2, min(n_kv, grid[0] * grid[1])))
    p = dict(heads=heads, kv_heads=kv_heads, seq=seq, kv_seq=32 * kv_t, dim=64, grid=grid,
             q_chunk=1, kv_chunk=kv_chunk, kv_dtype=kv_dtype, seed=seed)
    res, rep = run(**p, kv_split=split)
    assert res["kv_split"] == split
    assert res["pcc"] > 0.999, res
    assert res["max_abs_err"] <= fa_bound(_inputs(p), 32 * kv_t, kv_chunk, False, split=split), res


def test_a_kv_split_uses_the_cores_a_decode_leaves_idle():
    """Two heads of one query tile against 2,048 K/V rows on 8 cores: without a split 6
    cores idle; auto splits each head's K/V range over 4 and finishes sooner."""
    p = dict(heads=2, seq=32, kv_seq=2048, dim=64, grid=(4, 2), q_chunk=1, kv_chunk=4, seed=2)
    one, r1 = run(**p, kv_split=1)
    auto, ra = run(**p, kv_split="auto")
    assert auto["kv_split"] == 4
    assert ra.cycles < 0.6 * r1.cycles, (ra.cycles, r1.cycles)
    busy = lambda rep: sum(1 for t in rep.threads if t.kind == "math" and t.busy > 0.1 * rep.cycles)
    assert (busy(r1), busy(ra)) == (2, 8)


@given(units_per_core=st.integers(1, 4), n_kv=st.integers(1, 16), cores=st.sampled_from([8, 64]),
       q_chunk=st.sampled_from([1, 4]), kv_chunk=st.sampled_from([1, 4, 16]))
def test_choose_split_keeps_whole_q_chunks_when_they_fill_the_grid(units_per_core, n_kv, cores,
                                                                   q_chunk, kv_chunk):
    assert fa.choose_split(1, units_per_core * cores, 1, n_kv, q_chunk, kv_chunk, 2, cores) == 1


@pytest.mark.parametrize("kw, says", [
    (dict(kv_split=0), "whole number"), (dict(kv_split="x"), "whole number"),
    (dict(kv_split=True), "whole number"), (dict(kv_split=9), "at most 4 cores"),
    (dict(kv_split=5, causal=True), "at most 4 cores")])
def test_bad_kv_splits_are_refused(kw, says):
    with pytest.raises(ValueError, match=says):
        fa.run(heads=1, seq=128, dim=64, grid=(2, 2), q_chunk=1, kv_chunk=1, **kw)


def _dram_bytes(rep):
    return sum(b["bytes"] for b in rep.noc["dram"].values())


def test_grouped_query_heads_read_each_kv_head_and_match_float64():
    p = dict(batch=2, heads=4, seq=128, dim=64, grid=(2, 2), q_chunk=2, kv_chunk=2, seed=9)
    for kv_heads in (1, 2, 4):
        res, rep = run(**p, kv_heads=kv_heads)
        assert res["pcc"] > 0.999, (kv_heads, res)
        assert res["max_abs_err"] <= fa_bound(_inputs(p), 128, 2, False), (kv_heads, res)


def test_grouped_query_reference_repeats_each_kv_head_over_its_group():
    r = np.random.default_rng(0)
    q = r.standard_normal((1, 4, 64, 32))
    k, v = r.standard_normal((2, 1, 2, 64, 32))
    got = fa.reference(q, k, v, 0.3, False)
    for h in range(4):
        s = q[0, h] @ k[0, h // 2].T * 0.3
        pm = np.exp(s - s.max(-1, keepdims=True))
        np.testing.assert_allclose(got[0, h], pm @ v[0, h // 2] / pm.sum(-1, keepdims=True),
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("chunks", [(2, 1), (1, 2), (4, 2), (2, 4)])
def test_causal_with_q_and_kv_chunks_of_different_sizes(chunks):
    p = dict(batch=1, heads=1, seq=256, dim=64, grid=(2, 2), q_chunk=chunks[0],
             kv_chunk=chunks[1], causal=True, seed=10)
    res, _ = run(**p)
    assert res["pcc"] > 0.999, res
    assert res["max_abs_err"] <= fa_bound(_inputs(p), 256, min(chunks), True), res


def test_causal_work_is_balanced_over_the_cores():
    """Longest Q chunks first to whoever finishes first: no core's math idles while others
    finish the long rows."""
    res, rep = run(batch=1, heads=2, seq=1024, dim=64, grid=(2, 2), q_chunk=2, kv_chunk=2,
                   causal=True, seed=11)
    math_idle = [t.idle / rep.cycles for t in rep.threads if t.kind == "math"]
    assert max(math_idle) <= 0.10, math_idle


def test_causal_grouped_query_work_is_balanced_and_shared_over_gangs():
    """8 query heads over 2 K/V heads on 5x2 cores: gangs of 4, 4 and 2 cores (the last
    takes a group in two passes); every thread busy to within 10% of the run, the K/V
    chunks read once per gang, and the numbers those of the unshared run."""
    p = dict(batch=1, heads=8, kv_heads=2, seq=512, dim=64, grid=(5, 2), q_chunk=1,
             kv_chunk=2, causal=True, seed=13)
    res, rep = run(**p)
    off, roff = run(**p, kv_share="off")
    assert max(t.idle for t in rep.threads) / rep.cycles <= 0.10, res["max_idle"]
    assert res["pcc"] == off["pcc"] and res["max_abs_err"] == off["max_abs_err"] and res["pcc"] > 0.999
    assert _dram_bytes(rep) < 0.4 * _dram_bytes(roff)     # K/V 3.3x less; Q and out the same


def test_kv_shared_across_a_split_that_does_not_divide_the_grid_rows():
    """One head over 3x2 cores: the cores of a round read each K/V chunk once between them."""
    p = dict(batch=1, heads=1, seq=192, dim=64, grid=(3, 2), q_chunk=1, kv_chunk=2, seed=12)
    off, roff = run(**p, kv_share="off")
    on, ron = run(**p, kv_share="auto")
    assert on["max_abs_err"] == off["max_abs_err"] and on["pcc"] == off["pcc"]
    assert on["units_shared"] == 5 and off["units_shared"] == 0
    kv = 2 * 192 * 64 * 2                                   # K and V, bf16
    assert _dram_bytes(roff) >= 6 * kv > 3 * kv >= _dram_bytes(ron) - 192 * 64 * 4


def test_chunks_are_given_in_tiles_or_in_rows_as_tt_metal_gives_them():
    assert [fa.chunk(v) for v in ("1", "4", "16", "32", "128", "512")] == [1, 4, 16, 1, 4, 16]


@pytest.mark.parametrize("flags, says", [
    ("--grid 0x0", "at least one core"), ("--grid 3", "WxH"), ("--grid 20x20", "larger than"),
    ("--seq 33", "multiple of 32"), ("--dim 1000", "multiple of 32"), ("--q-chunk 0", "at least 1"),
    ("--kv-dtype foo", "invalid choice"), ("--heads 3 --kv-heads 2", "do not split"),
    ("--sysdesc nope", "unknown sysdesc"), ("--buffers 1.5", "not a whole number"),
    ("--seq 256 --q-chunk 3", "multiple of q_chunk"), ("--kv-chunk 100", "100 rows"),
    ("--kv-split 0", "at least 1"), ("--kv-split two", "not a whole number")])
def test_bad_flags_are_one_line_errors(flags, says, capsys):
    with pytest.raises(SystemExit) as e:
        fa.main(flags.split())
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


@given(sq=st.integers(1, 128), d_t=st.sampled_from([1, 2, 4]), causal=st.booleans(),
       cores=st.sampled_from([1, 64, 110]))
def test_auto_schedule_picks_chunks_that_divide_fit_and_stay_within_16_tiles(sq, d_t, causal, cores):
    qc, kc = fa.auto_schedule(1, 8, 8, sq, sq, d_t, (cores, 1), causal)
    assert 1 <= qc <= 16 and 1 <= kc <= 16 and sq % qc == 0 and sq % kc == 0
    masks = len(fa.mask_offsets(sq // qc, qc, kc, sq // kc)) if causal else 0
    assert fa.l1_bytes_needed(qc, kc, d_t, 2, 2048, masks) <= fa.L1_BYTES


@pytest.mark.parametrize("exp", ["fast", "approx", "accurate"])
def test_every_exp_mode_stays_accurate_and_runs_its_own_algorithm(exp):
    p = dict(batch=1, heads=2, seq=512, dim=64, grid=(2, 2), q_chunk=2, kv_chunk=4, seed=13)
    res, rep = run(**p, exp=exp)
    assert res["pcc"] > 0.999, res
    assert res["alpha_exp"] == ("accurate" if exp == "accurate" else "approx")
    assert rep.numerics["sfpu"].count(("exp", exp)) == 1


def test_a_fast_rescale_exp_biases_earlier_chunks():
    """exp_fast(0) = 0.977: with the fast form for alpha too, every chunk whose row max stays
    put shrinks the earlier chunks' weight; the approx alpha (exp(0) = 1) does not."""
    p = dict(batch=1, heads=1, seq=1024, dim=64, grid=(1, 1), q_chunk=2, kv_chunk=2, seed=14)
    good, _ = run(**p)
    biased, _ = run(**p, alpha_exp="fast")
    assert biased["rel_err"] > 2 * good["rel_err"], (biased["rel_err"], good["rel_err"])


def test_pcc_in_place_is_numpys_corrcoef_bit_for_bit():
    r = np.random.default_rng(3)
    for n in (1024, 65536, 100003):
        x = r.standard_normal(n)
        y = x + r.standard_normal(n) * 0.01
        assert fa.pcc_in_place(np.stack([x, y])) == float(np.corrcoef(x, y)[0, 1])


def test_the_sweep_space_takes_kv_splits_and_prunes_the_impossible_ones():
    """A decode problem swept with `-s kv_split=...`: splits the problem cannot take are pruned
    with their reason; auto resolves as run() does; the estimate ranks a split first."""
    decode = dict(heads=2, seq=32, kv_seq=2048, dim=64)
    space = fa.schedule_space(decode).restrict(grid=[(4, 2)], q_chunk=[1], kv_chunk=[4],
                                               kv_dtype=["bf16"], math_fidelity=["HiFi4"],
                                               kv_split=[1, 2, 4, 9, "auto"])
    why = {s["kv_split"]: space.check(s, space.problem) for s in space}
    assert why[9] == "kv_split 9 > 8 (K/V chunks 16, cores 8)"
    assert all(why[k] is None for k in (1, 2, 4, "auto"))
    p = {**fa.SWEEP_PROBLEM, **decode}
    est = {s["kv_split"]: fa.sweep_estimate(s, p) for s in space if why[s["kv_split"]] is None}
    assert est["auto"] == est[4] < est[2] < est[1]
    assert fa.schedule_space().params["kv_split"] == [1]        # the main job's sweep: no split


@given(batch=st.integers(1, 2), kv_heads=st.integers(1, 2), group=st.sampled_from([1, 2, 3]),
       n_q=st.integers(1, 9), grid=st.sampled_from([(3, 1), (4, 2), (5, 3)]),
       kv_chunk=st.integers(1, 3), share=st.booleans(), data=st.data())
def test_a_causal_kv_split_runs_each_item_side_by_side_and_combines_it_on_one_core(
        batch, kv_heads, group, n_q, grid, kv_chunk, share, data):
    cores = grid[0] * grid[1]
    split = data.draw(st.integers(2, min(cores, 4)))
    heads, n_kv = kv_heads * group, -(-n_q // kv_chunk)
    blocks_of = lambda qi: fa.kv_blocks(qi, 1, kv_chunk, n_kv, True)
    sched, pipes = fa.causal_plan(batch, heads, kv_heads, n_q, grid, share, blocks_of, split,
                                  fa.combine_steps(1, kv_chunk, 2))
    parts = {}                    # (q row, qi) -> [(j0, j1, core, step, exchange)]
    for c, us in sched.items():
        for step, (u, role) in enumerate(us):
            (q_row, kv_row, qi, j0, j1, x), = u
            parts.setdefault((q_row, qi), []).append((j0, j1, c, step, x))
            if role and role[0] == "recv":            # K/V from a sender reading the same blocks
                su, srole = sched[pipes[role[1]][0]][step]
                assert srole[0] == "send" and su[0][1:5] == u[0][1:5]
    assert sorted(parts) == [(qr, qi) for qr in range(batch * heads) for qi in range(n_q)]
    for (q_row, qi), ps in parts.items():
        ps.sort(key=lambda p: (p[0], p[1], p[4][0] != "combine"))
        assert [(j0, j1) for j0, j1, *_ in ps] == fa.kv_parts(blocks_of(qi), split)
        assert len({c for _, _, c, _, _ in ps}) == split and len({st for *_, st, _ in ps}) == 1
        (_, _, combiner, _, x0), rest = ps[0], ps[1:]
        assert x0 == ("combine", [x[1] for *_, x in rest])
        for _, _, c, _, x in rest:
            src, (rx0, ry0, rx1, ry1) = pipes[x[1]]
            assert x[0] == "part" and src == c and (rx0, ry0) == (rx1, ry1) == combiner


@settings(max_examples=8)
@given(heads=st.integers(1, 2), kv_heads=st.sampled_from([None, 1]), q_chunk=st.sampled_from([1, 2, 4]),
       kv_chunk=st.sampled_from([1, 2]), n=st.integers(1, 3), grid=st.sampled_from([(2, 2), (4, 2)]),
       kv_dtype=st.sampled_from(["bf16", "bfp8_b"]), seed=st.integers(0, 1000), data=st.data())
def test_a_causal_kv_split_matches_float64(heads, kv_heads, q_chunk, kv_chunk, n, grid, kv_dtype,
                                           seed, data):
    """Parts of the short Q chunks are empty (fewer K/V chunks than parts), and with Q chunks
    longer than K/V chunks a part can hold rows whose every column is masked: both send a
    running max of PART_M0, l = 0, O = 0, which the fold weighs by 0."""
    seq = 32 * 4 * n
    n_kv = seq // 32 // kv_chunk
    split = data.draw(st.integers(2, min(n_kv, 4)))
    p = dict(heads=heads, kv_heads=kv_heads, seq=seq, dim=64, grid=grid, q_chunk=q_chunk,
             kv_chunk=kv_chunk, kv_dtype=kv_dtype, seed=seed, causal=True)
    res, rep = run(**p, kv_split=split)
    assert res["kv_split"] == split and res["pcc"] > 0.999, res
    assert res["max_abs_err"] <= fa_bound(_inputs(p), seq, kv_chunk, True, split=split), res


def test_a_causal_kv_split_evens_out_long_q_chunks():
    """One head of 4,096 rows in 4-tile chunks on p100a's 110 cores (32 Q chunks, the longest
    32 K/V steps): auto splits each over 4 cores. Where whole Q chunks balance (the README's
    Llama run), auto keeps them whole."""
    n_q = n_kv = 32
    blocks_of = lambda qi: fa.kv_blocks(qi, 4, 4, n_kv, True)
    assert fa.choose_causal_split(1, 1, 1, n_q, n_kv, 110, blocks_of, fa.combine_steps(4, 4, 4)) == 4
    llama = lambda qi: fa.kv_blocks(qi, 4, 4, 32, True)
    assert fa.choose_causal_split(1, 32, 8, 32, 32, 110, llama, fa.combine_steps(4, 4, 4)) == 1
    # one head of 1,024 rows in 8-tile Q chunks on 8 cores: 4 Q chunks, 4 cores idle unsplit
    p = dict(heads=1, seq=1024, dim=64, grid=(4, 2), q_chunk=8, kv_chunk=2, causal=True, seed=1)
    one, r1 = run(**p, kv_split=1)
    auto, ra = run(**p, kv_split="auto")
    assert auto["kv_split"] == 2 and auto["pcc"] > 0.999
    assert ra.cycles < 0.7 * r1.cycles, (ra.cycles, r1.cycles)
