"""The library matmul: right numbers on any grid, same bits everywhere, math-bound timing."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import ttsim
from ttsim.library.matmul import matmul


def _mm(grid, a, b, **kw):
    dev = ttsim.Device()
    ta, tb = dev.tensor(a), dev.tensor(b)
    c, rep = matmul(dev, ta, tb, grid=grid, **kw)
    return ta.to_numpy().astype(np.float64), tb.to_numpy().astype(np.float64), c.to_numpy(), rep


@given(mt=st.integers(1, 4), kt=st.integers(1, 4), nt=st.integers(1, 4),
       grid=st.sampled_from([(1, 1), (2, 2), (4, 2), (8, 8)]), seed=st.integers(0, 2 ** 31))
def test_matmul_matches_reference(mt, kt, nt, grid, seed):
    r = np.random.default_rng(seed)
    a = r.standard_normal((32 * mt, 32 * kt)).astype(np.float32)
    b = r.standard_normal((32 * kt, 32 * nt)).astype(np.float32)
    aq, bq, c, _ = _mm(grid, a, b)
    ref = aq @ bq
    # bf16 DST rounds after each of kt accumulations, then the bf16 pack: (kt + 1) roundings
    bound = (kt + 1) * 2.0 ** -8 * (np.abs(aq) @ np.abs(bq)) + 1e-6
    assert np.all(np.abs(c - ref) <= bound)


def test_same_bits_on_1x1_and_8x8(rng):
    a = rng.standard_normal((256, 128)).astype(np.float32)
    b = rng.standard_normal((128, 256)).astype(np.float32)
    c1 = _mm((1, 1), a, b)[2]
    c8 = _mm((8, 8), a, b)[2]
    assert np.array_equal(c1, c8)


def test_deterministic_bits_and_cycles(rng):
    a = rng.standard_normal((128, 128)).astype(np.float32)
    b = rng.standard_normal((128, 128)).astype(np.float32)
    r1, r2 = _mm((2, 2), a, b), _mm((2, 2), a, b)
    assert np.array_equal(r1[2], r2[2])
    assert r1[3].cycles == r2[3].cycles
    assert [t.busy for t in r1[3].threads] == [t.busy for t in r2[3].threads]


@pytest.mark.parametrize("fidelity", ["HiFi4", "HiFi2"])
def test_single_core_matmul_is_math_bound(fidelity, rng):
    """With ample buffering MATH never waits for long: the run is within 10% of MATH's busy
    time (the rest is the first K step's read and the last block's write), and MATH's busy
    time within 6% of tiles x its cost per tile product (fidelity phases plus the measured
    per-tile overhead; the rest is per-call front-ends and DST handshakes)."""
    mt, kt, nt = 16, 32, 16
    a = rng.standard_normal((32 * mt, 32 * kt)).astype(np.float32)
    b = rng.standard_normal((32 * kt, 32 * nt)).astype(np.float32)
    _, _, _, rep = _mm((1, 1), a, b, buffers=4, math_fidelity=fidelity)
    sd = ttsim.Device().sd
    phases = {"HiFi4": 4, "HiFi2": 2}[fidelity]
    ideal = mt * kt * nt * (sd.value("cost.math.matmul") * phases
                            + sd.value("cost.math.matmul_tile_overhead"))
    math_busy = next(t.busy for t in rep.threads if t.kind == "math")
    assert ideal <= math_busy <= 1.06 * ideal, (math_busy, ideal)
    assert math_busy <= rep.cycles <= 1.10 * math_busy, (rep.cycles, math_busy, rep.summary())
    assert rep.bottleneck().startswith("math")


def test_more_cores_are_faster(rng):
    a = rng.standard_normal((512, 512)).astype(np.float32)
    b = rng.standard_normal((512, 512)).astype(np.float32)
    c1, c4, c16, c64 = (_mm(g, a, b)[3].cycles for g in ((1, 1), (2, 2), (4, 4), (8, 8)))
    assert c64 < c16 < c4 < c1
    assert c1 / c4 > 2.5


def test_multicast_reads_each_operand_once_per_grid_row_and_column(rng):
    """2-D multicast: DRAM serves A once per grid row and B once per column, instead of once
    per core, and the full grid gets faster for it."""
    a = rng.standard_normal((512, 512)).astype(np.float32)
    b = rng.standard_normal((512, 512)).astype(np.float32)
    runs = {m: _mm((8, 8), a, b, mcast=m) for m in (False, True)}
    dram = {m: sum(u["bytes"] for u in r[3].noc["dram"].values()) for m, r in runs.items()}
    out_bytes = 512 * 512 * 2
    assert dram[False] - out_bytes == 2 * 8 * 512 * 512 * 2      # every core: its A rows, B columns
    assert dram[True] - out_bytes == 2 * 512 * 512 * 2           # each operand once
    assert np.array_equal(runs[False][2], runs[True][2])
    assert runs[True][3].cycles < 0.5 * runs[False][3].cycles


@pytest.mark.parametrize("l1_acc", [True, False])
def test_partials_through_l1_or_an_intermediate_cb_are_right(l1_acc, rng):
    """K in steps of 2 tiles: partial sums carried by the packer in L1 or through an
    intermediate CB and back into DST; both within the roundings they make, and the second
    costs the copies back (more cycles)."""
    a = rng.standard_normal((128, 256)).astype(np.float32)
    b = rng.standard_normal((256, 128)).astype(np.float32)
    aq, bq, c, rep = _mm((2, 2), a, b, kb=2, l1_acc=l1_acc)
    kt, steps = 8, 4
    bound = (kt + steps + 1) * 2.0 ** -8 * (np.abs(aq) @ np.abs(bq)) + 1e-6
    assert np.all(np.abs(c - aq @ bq) <= bound)
    reload = [l for l in rep.lines if l.kind == "math" and "copy_block_matmul_partials" in
              open(l.file).read().splitlines()[l.line - 1]]
    # 4 cores, each one 2x2 subblock reloaded in one call, at 3 of the 4 K steps
    assert sum(l.count for l in reload) == (0 if l1_acc else 4 * (steps - 1))
