"""The NoC and DRAM timing model (ttsim.noc): routing, latency, contention, DRAM, multicast.

Most tests run on a tiny stand-in system description (a 4x4 torus with 3x3 workers and two
DRAM banks), built in one place (`stand_in`) so every expected time can be worked out by
hand. Tests marked "wormhole" also run against the real `sysdesc.load("wormhole_b0")` when
the sysdesc package is importable, and are skipped otherwise.
"""
import math
import random
import time
from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from ttsim.errors import NocError
from ttsim.noc import Noc, estimate_batch

# --- the stand-in system description ---------------------------------------------------------

FIGURES = {
    "noc.link_bytes_per_cycle": 16,
    "noc.flit_bytes": 16,
    "noc.mcast_setup_cycles": 0,        # no multicast path reservation unless a test asks
    "noc.mcast_reserve_cycles_per_hop": 0,
    "noc.l1_align_bytes": 16,
    "noc.dram_read_align_bytes": 32,
    "noc.dram_write_align_bytes": 32,
    "noc.hop_latency": 3,
    "noc.niu_latency": 2,
    "noc.max_packet_bytes": 256,
    "noc.l1_port_bytes_per_cycle": 16,
    "noc.read_response_bytes_per_cycle": 16,
    "noc.header_flits": 1,
    "dram.write_request_cycles": 0,     # no minimum bank occupancy per write ...
    "dram.write_burst_bytes": 0,        # ... and no read-modify-write of small writes
    "dram.partial_write_cycles": 0,
}
BANK_BW = 8        # bytes/cycle: half a link, so one bank cannot keep a link busy
BANK_LAT = 20
BANK_XY = ((3, 0), (3, 2))


def stand_in(torus=True, grid=(4, 4), banks=BANK_XY, bank_bw=BANK_BW, bank_lat=BANK_LAT,
             **figures):
    """A duck-typed SysDesc: what ttsim.noc reads, and nothing else."""
    fig = dict(FIGURES)
    fig.update({k.replace("__", "."): v for k, v in figures.items()})
    dram = tuple(SimpleNamespace(id=i, noc_xy=xy, bandwidth=SimpleNamespace(value=bank_bw),
                                 latency=SimpleNamespace(value=bank_lat))
                 for i, xy in enumerate(banks))
    sd = SimpleNamespace(name="stand-in", noc_grid=grid, torus=torus, worker_x=(0, 1, 2),
                         worker_y=(0, 1, 2), dram_banks=dram, num_nocs=2)
    sd.value = fig.__getitem__
    return sd


@pytest.fixture
def sd():
    return stand_in()


def _load_wormhole():
    try:
        import sysdesc
        return sysdesc.load("wormhole_b0")
    except Exception as e:  # not written yet, or broken: these tests wait for it
        pytest.skip(f"sysdesc.load('wormhole_b0') unavailable: {type(e).__name__}: {e}")


@pytest.fixture(scope="module")
def wormhole():
    return _load_wormhole()


# Hand-computed figures for the stand-in: latency of a packet = 2 * niu + hops * hop + flits.
NIU, HOP, LINK, MAXP = 2, 3, 16, 256


def flits(nbytes):
    return 1 + math.ceil(nbytes / LINK)


# --- routing ---------------------------------------------------------------------------------

def test_noc0_goes_x_first_in_plus_directions(sd):
    assert Noc(sd).route(0, (0, 0), (2, 1)) == ((0, 0, 0, "+x"), (0, 1, 0, "+x"), (0, 2, 0, "+y"))


def test_noc1_goes_y_first_in_minus_directions(sd):
    assert Noc(sd).route(1, (2, 1), (0, 0)) == ((1, 2, 1, "-y"), (1, 2, 0, "-x"), (1, 1, 0, "-x"))


def test_torus_routes_wrap_and_keep_their_direction(sd):
    m = Noc(sd)
    assert m.route(0, (3, 0), (0, 0)) == ((0, 3, 0, "+x"),)            # one hop, wrapping
    assert m.route(0, (1, 0), (0, 0)) == ((0, 1, 0, "+x"), (0, 2, 0, "+x"), (0, 3, 0, "+x"))
    r = m.route(1, (0, 0), (2, 1))                                     # -y 0->3->2->1, -x 0->3->2
    assert [(x, y, d) for _, x, y, d in r] == [(0, 0, "-y"), (0, 3, "-y"), (0, 2, "-y"),
                                               (0, 1, "-x"), (3, 1, "-x")]


def test_mesh_routes_move_towards_the_destination():
    m = Noc(stand_in(torus=False))
    assert m.route(0, (2, 1), (0, 0)) == ((0, 2, 1, "-x"), (0, 1, 1, "-x"), (0, 0, 1, "-y"))
    assert m.route(1, (0, 0), (2, 1)) == ((1, 0, 0, "+y"), (1, 0, 1, "+x"), (1, 1, 1, "+x"))
    assert m.route(0, (1, 1), (1, 1)) == ()


@pytest.mark.parametrize("torus", [True, False])
@pytest.mark.parametrize("noc", [0, 1])
def test_routes_are_contiguous_dimension_ordered_and_of_the_right_length(torus, noc):
    w, h = 4, 5
    m = Noc(stand_in(torus=torus, grid=(w, h)))
    step = {"+x": (1, 0), "-x": (-1, 0), "+y": (0, 1), "-y": (0, -1)}
    for a in [(x, y) for x in range(w) for y in range(h)]:
        for b in [(x, y) for x in range(w) for y in range(h)]:
            r = m.route(noc, a, b)
            pos = a
            for n, x, y, d in r:
                assert n == noc and (x, y) == pos
                pos = ((x + step[d][0]) % w, (y + step[d][1]) % h)
            assert pos == b
            dims = [d[1] for _, _, _, d in r]
            first = "x" if noc == 0 else "y"
            assert dims == sorted(dims, key=lambda c: c != first)      # one dimension, then the other
            if torus:
                assert {d[0] for *_, d in r} <= ({"+"} if noc == 0 else {"-"})
                back = m.route(noc, b, a)
                assert len(r) + len(back) == (w if a[0] != b[0] else 0) + (h if a[1] != b[1] else 0)
            else:
                assert len(r) == abs(a[0] - b[0]) + abs(a[1] - b[1])
            assert m.route(noc, a, b) is r                             # cached


def test_off_grid_and_unknown_noc_are_errors(sd):
    m = Noc(sd)
    with pytest.raises(NocError, match="outside"):
        m.write(0, 0, (0, 0), (4, 0), 64)
    with pytest.raises(NocError, match="NoC index 2"):
        m.read(0, 2, (0, 0), (1, 0), 64)
    with pytest.raises(NocError, match="no destination"):
        m.multicast_write(0, 0, (0, 0), (0, 0, 0, 0), 64)


# --- single transfers, worked out by hand -----------------------------------------------------

def test_single_write_and_read_times_by_hand(sd):
    # (0,0) -> (2,1) on NoC 0 is 3 hops; the way back (2,1) -> (0,0) is 2 + 3 = 5 hops.
    landed, acked = Noc(sd).write(0, 0, (0, 0), (2, 1), 64)
    assert landed == 2 * NIU + 3 * HOP + flits(64) == 18
    assert acked == landed + 2 * NIU + 5 * HOP + 1 == 38
    # read: header-only request out (3 hops), data back (5 hops)
    assert Noc(sd).read(0, 0, (0, 0), (2, 1), 64) == (2 * NIU + 3 * HOP + 1) + (2 * NIU + 5 * HOP + flits(64)) == 38
    # issue time shifts everything
    assert Noc(sd).write(100, 0, (0, 0), (2, 1), 64) == (118, 138)
    # non-integer issue times round up
    assert Noc(sd).write(99.2, 0, (0, 0), (2, 1), 64) == (118, 138)


def test_single_transfer_is_latency_plus_size_over_bandwidth(sd):
    # 1000 B = packets of 256, 256, 256, 232 B = 17, 17, 17, 16 flits, back to back
    landed, acked = Noc(sd).write(0, 0, (0, 0), (2, 1), 1000)
    assert landed == 3 * 17 + 16 + 2 * NIU + 3 * HOP
    assert acked == landed + 2 * NIU + 5 * HOP + 1
    for n in (1, 255, 256, 257, 4096, 10000):
        packets = math.ceil(n / MAXP)
        wire = packets + math.ceil(n / LINK)                            # header flit per packet
        assert Noc(sd).write(0, 0, (0, 0), (1, 0), n)[0] == 2 * NIU + HOP + wire


def test_narrow_resources_hold_packets_longer():
    # an L1 port half as wide as a link makes a packet take twice its flits there
    landed, _ = Noc(stand_in(noc__l1_port_bytes_per_cycle=8)).write(0, 0, (0, 0), (1, 0), 64)
    assert landed == 2 * NIU + HOP + 2 * flits(64)


def test_dram_read_and_write_by_hand(sd):
    # (0,0) reads 64 B from the bank at (3,0) on NoC 0: request 3 hops, bank latency,
    # data 1 hop back, held by the bank twice as long as by a link (8 vs 16 B/cycle).
    req = 2 * NIU + 3 * HOP + 1
    assert Noc(sd).read(0, 0, (0, 0), (3, 0), 64) == req + BANK_LAT + 2 * NIU + HOP + 2 * flits(64)
    landed, acked = Noc(sd).write(0, 0, (0, 0), (3, 0), 64)
    assert landed == 2 * NIU + 3 * HOP + 2 * flits(64) + BANK_LAT
    assert acked == landed + 2 * NIU + HOP + 1


def test_self_transfer_has_no_hops(sd):
    assert Noc(sd).write(0, 0, (1, 1), (1, 1), 64)[0] == 2 * NIU + flits(64)


def test_atomic_inc_is_a_small_packet(sd):
    assert Noc(sd).atomic_inc(10, 0, (0, 0), (2, 1)) == 10 + 2 * NIU + 3 * HOP + 2


# --- contention --------------------------------------------------------------------------------

def test_transfers_sharing_a_link_queue(sd):
    n = 64 * 256                                                       # bandwidth-bound
    alone = Noc(sd).write(0, 0, (1, 1), (3, 1), n)[0]
    m = Noc(sd)
    first = m.write(0, 0, (0, 1), (2, 1), n)[0]                       # shares link (1,1) +x
    second = m.write(0, 0, (1, 1), (3, 1), n)[0]
    assert first == Noc(sd).write(0, 0, (0, 1), (2, 1), n)[0]         # first come, first served
    assert second > alone
    assert 1.9 * alone <= second <= 2.1 * alone


def test_transfers_on_disjoint_links_do_not_interfere(sd):
    n = 8192
    alone_a = Noc(sd).write(0, 0, (0, 0), (1, 0), n)
    alone_b = Noc(sd).write(0, 0, (1, 2), (2, 2), n)
    m = Noc(sd)
    assert m.write(0, 0, (0, 0), (1, 0), n) == alone_a
    assert m.write(0, 0, (1, 2), (2, 2), n) == alone_b


def test_noc0_and_noc1_do_not_interfere(sd):
    n = 8192
    for noc in (0, 1):
        alone = Noc(sd).write(0, noc, (0, 0), (2, 1), n)
        m = Noc(sd)
        m.write(0, 1 - noc, (0, 0), (2, 1), n)                        # same cores, other NoC
        m.read(0, 1 - noc, (0, 0), (2, 1), n)
        assert m.write(0, noc, (0, 0), (2, 1), n) == alone


def test_back_to_back_transfers_approach_link_bandwidth(sd):
    m = Noc(sd)
    n, size = 64, 1024
    done = max(m.write(i, 0, (0, 0), (1, 0), size)[0] for i in range(n))
    rate = n * size / done
    ideal = LINK * size / (size + LINK * math.ceil(size / MAXP))       # header flits cost a little
    assert 0.95 * ideal <= rate <= ideal


def test_a_later_call_can_use_a_gap_before_an_earlier_calls_future_reservation(sd):
    # A DRAM read reserves its data path for the future (after the bank latency); a write
    # issued later over one of the same links, which needs it sooner, is not held back.
    m = Noc(sd)
    m.read(0, 0, (2, 0), (3, 0), 256)        # data: bank (3,0) -> link (3,0)+x -> (0,0)... -> (2,0)
    assert m.write(1, 0, (0, 0), (1, 0), 64) == Noc(sd).write(1, 0, (0, 0), (1, 0), 64)


# --- DRAM ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("readers", [1, 2, 4, 8])
def test_dram_bank_bandwidth_limits_many_readers(sd, readers):
    cores = [(x, y) for y in (0, 1, 2) for x in (0, 1, 2)][:readers]
    m = Noc(sd)
    size = 16384 // readers * 4
    done = max(m.read(0, c[0] % 2, c, (3, 0), size) for c in cores)
    rate = readers * size / done
    assert 0.85 * BANK_BW <= rate <= BANK_BW                           # aggregate ~ one bank
    st_ = m.stats()["dram"]
    bank = next(v for v in st_.values() if v["xy"] == [3, 0])
    assert bank["bytes"] == readers * size
    assert not any(v["bytes"] for v in st_.values() if v["xy"] != [3, 0])


def test_reads_spread_over_banks_beat_one_bank(sd):
    one, two = Noc(sd), Noc(sd)
    size = 4096
    t_one = max(one.read(0, 0, c, (3, 0), size) for c in [(0, 0), (1, 1)])
    t_two = max(two.read(0, 0, c, b, size) for c, b in [((0, 0), (3, 0)), ((1, 1), (3, 2))])
    assert t_two < 0.7 * t_one


# --- multicast ---------------------------------------------------------------------------------

def test_multicast_reaches_every_core_and_beats_unicasts(sd):
    size = 2048
    m = Noc(sd)
    landed, acked, _ = m.multicast_write(0, 0, (0, 0), (0, 0, 2, 2), size)
    dests = [(x, y) for x in range(3) for y in range(3) if (x, y) != (0, 0)]
    ports = m.stats()["ports"]
    for x, y in dests:
        assert ports[f"noc0 ({x},{y}) ej"]["bytes"] == size
    assert "noc0 (0,0) ej" not in ports or ports["noc0 (0,0) ej"]["bytes"] == 0
    assert m.stats()["acks"] == len(dests)
    # each destination no earlier than a unicast to it alone
    for d in dests:
        assert landed >= Noc(sd).write(0, 0, (0, 0), d, size)[0]
    u = Noc(sd)
    uni = [u.write(0, 0, (0, 0), d, size) for d in dests]
    assert landed < max(l for l, _ in uni)
    assert acked < max(a for _, a in uni)
    # every link of the tree carried the data once
    assert all(v["bytes"] == size for v in m.stats()["links"].values())


def test_multicast_include_src_and_rectangle_order(sd):
    a = Noc(sd).multicast_write(0, 1, (1, 1), (2, 2, 0, 0), 512, include_src=True)
    m = Noc(sd)
    b = m.multicast_write(0, 1, (1, 1), (0, 0, 2, 2), 512, include_src=True)
    assert a == b
    assert m.stats()["ports"]["noc1 (1,1) ej"]["bytes"] == 512
    assert m.stats()["acks"] == 9


# --- stats and determinism ---------------------------------------------------------------------

def test_stats_count_bytes_and_busy_cycles(sd):
    m = Noc(sd)
    m.write(0, 0, (0, 0), (2, 1), 1000)
    s = m.stats()
    assert s["write"] == 1 and s["bytes"] == 1000 and s["acks"] == 4 and s["packets"] == 8
    link = s["links"]["noc0 (0,0) +x"]
    assert link == {"bytes": 1000, "busy": 3 * 17 + 16, "packets": 4}
    assert set(s["links"]) == {"noc0 (0,0) +x", "noc0 (1,0) +x", "noc0 (2,0) +y"}
    assert s["ports"]["noc0 (0,0) inj"]["busy"] == 67
    assert s["ports"]["noc0 (0,0) ej"] == {"bytes": 0, "busy": 4, "packets": 4}   # acks
    import json
    json.dumps(s)


def _random_traffic(sd, seed, n=300):
    rnd = random.Random(seed)
    cores = [(x, y) for x in range(3) for y in range(3)]
    m = Noc(sd)
    t, out = 0, []
    for _ in range(n):
        t += rnd.randrange(0, 40)
        kind = rnd.randrange(4)
        noc, c = rnd.randrange(2), rnd.choice(cores)
        size = rnd.choice([32, 64, 1024, 2048, 5000])
        if kind == 0:
            out.append(m.read(t, noc, c, rnd.choice(cores + list(BANK_XY)), size))
        elif kind == 1:
            out.append(m.write(t, noc, c, rnd.choice(cores + list(BANK_XY)), size))
        elif kind == 2:
            rect = (0, 0, rnd.randrange(3), rnd.randrange(3))
            alone = rect[2:] == (0, 0) and c == (0, 0)
            out.append(m.multicast_write(t, noc, c, rect, size,
                                         include_src=alone or rnd.random() < 0.5,
                                         linked=rnd.random() < 0.5))
        else:
            out.append(m.atomic_inc(t, noc, c, rnd.choice(cores)))
    return out, m.stats()


def test_deterministic(sd):
    assert _random_traffic(sd, 7) == _random_traffic(sd, 7)
    assert _random_traffic(sd, 7) != _random_traffic(sd, 8)
    mc = stand_in(noc__mcast_setup_cycles=10, noc__mcast_reserve_cycles_per_hop=6)
    assert _random_traffic(mc, 7) == _random_traffic(mc, 7)


# --- properties --------------------------------------------------------------------------------

ENDPOINTS = [(x, y) for x in range(3) for y in range(3)] + list(BANK_XY)
CORES = [(x, y) for x in range(3) for y in range(3)]
transfer = st.tuples(st.integers(0, 60),                   # gap since the previous issue
                     st.sampled_from(["read", "write"]),
                     st.integers(0, 1),                    # noc
                     st.sampled_from(CORES),
                     st.sampled_from(ENDPOINTS),
                     st.integers(1, 3000))


def _do(m, t, kind, noc, a, b, size):
    """(landed,) for a read, (landed, acked) for a write."""
    if kind == "read":
        return (m.read(t, noc, a, b, size),)
    return m.write(t, noc, a, b, size)


@given(st.lists(transfer, min_size=1, max_size=40))
def test_never_earlier_than_issue_plus_unloaded_latency(ops):
    sd = stand_in()
    m = Noc(sd)
    t = 0
    for gap, kind, noc, a, b, size in ops:
        t += gap
        got = _do(m, t, kind, noc, a, b, size)
        alone = _do(Noc(sd), t, kind, noc, a, b, size)
        assert all(g >= u for g, u in zip(got, alone))
        assert t < got[0] <= got[-1]


@given(st.sampled_from(["read", "write"]), st.integers(0, 1), st.sampled_from(CORES),
       st.sampled_from(ENDPOINTS), st.integers(1, 3000), st.integers(0, 200),
       st.lists(transfer, max_size=25))
def test_fcfs_later_identical_transfer_never_finishes_first(kind, noc, a, b, size, later, ops):
    sd = stand_in()
    m = Noc(sd)
    t0 = 5
    first = _do(m, t0, kind, noc, a, b, size)
    t = t0
    for gap, k2, n2, a2, b2, s2 in ops:        # other traffic in between, in time order
        if t + gap > t0 + later:
            break
        t += gap
        _do(m, t, k2, n2, a2, b2, s2)
    second = _do(m, t0 + later, kind, noc, a, b, size)
    assert all(s >= f for s, f in zip(second, first))


# --- calibration shape on Wormhole figures -----------------------------------------------------

def _wormhole_like():
    """Wormhole's NoC figures (HARDWARE.md) on its 10x12 torus, used until sysdesc lands."""
    sd = stand_in(grid=(10, 12), banks=((0, 0), (0, 5), (5, 0), (5, 3), (5, 6), (5, 9)),
                  bank_bw=22.2, bank_lat=100, noc__link_bytes_per_cycle=32, noc__flit_bytes=32,
                  noc__hop_latency=9,
                  noc__niu_latency=5, noc__max_packet_bytes=8192,
                  noc__l1_port_bytes_per_cycle=32, noc__read_response_bytes_per_cycle=32)
    sd.worker_x, sd.worker_y = (1, 2, 3, 4, 6, 7, 8, 9), (1, 2, 3, 4, 5, 7, 8, 9, 10, 11)
    return sd


@pytest.fixture(params=["stand-in", "sysdesc"])
def wh(request):
    return _wormhole_like() if request.param == "stand-in" else _load_wormhole()


def test_wormhole_torus_round_trip_is_width_plus_height(wh):
    m = Noc(wh)
    w, h = wh.noc_grid
    a = (wh.worker_x[0], wh.worker_y[0])
    b = (wh.worker_x[1], wh.worker_y[1])
    for noc in (0, 1):
        assert len(m.route(noc, a, b)) + len(m.route(noc, b, a)) == w + h


def test_wormhole_latency_vs_size_shape(wh):
    sizes = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
    t = {s: estimate_batch(Noc, wh, "one_to_one", "l1", 0, 1, s) for s in sizes}
    assert all(t[a] <= t[b] for a, b in zip(sizes, sizes[1:]))
    assert t[512] <= 1.15 * t[64]                                       # flat: latency-bound
    slope = 32768 / (t[65536] - t[32768])                              # bytes per cycle
    assert 25 <= slope <= 32.5
    r = {s: estimate_batch(Noc, wh, "one_from_one", "l1", 1, 1, s) for s in sizes}
    assert r[512] <= 1.15 * r[64] and 25 <= 32768 / (r[65536] - r[32768]) <= 32.5


def test_wormhole_back_to_back_approaches_link_bandwidth(wh):
    """Many large transfers in flight run at the narrowest resource on their path: the link
    or the NIU's L1 port, and for reads the rate a core answers read requests at."""
    link = wh.value("noc.link_bytes_per_cycle")
    port = min(link, wh.value("noc.l1_port_bytes_per_cycle"))
    for pattern, noc, limit in (("one_to_one", 0, port),
                                ("one_from_one", 1,
                                 min(port, wh.value("noc.read_response_bytes_per_cycle")))):
        cyc = estimate_batch(Noc, wh, pattern, "l1", noc, 64, 8192, issue_cycles=25)
        assert 0.9 * limit <= 64 * 8192 / cyc <= limit
        # small transfers: the issue rate, not the NoC, sets the pace
        small = estimate_batch(Noc, wh, pattern, "l1", noc, 256, 64, issue_cycles=25)
        assert 255 * 25 <= small <= 255 * 25 + 600


def test_wormhole_dram_bank_is_the_limit_for_one_bank(wh):
    bw = wh.dram_banks[0].bandwidth.value
    cyc = estimate_batch(Noc, wh, "one_from_one", "dram_sharded", 0, 64, 8192, issue_cycles=25)
    assert 0.85 * bw <= 64 * 8192 / cyc <= bw
    inter = estimate_batch(Noc, wh, "one_from_all", "dram_interleaved", 0, 64, 8192,
                           issue_cycles=25)
    assert inter < 0.85 * cyc                                          # many banks: link-bound


def test_speed_per_call():
    """A 2 KB write over 8 hops should cost a few microseconds of wall time (guard only)."""
    m = Noc(_wormhole_like())
    src, dst = (1, 1), (6, 4)
    assert len(m.route(0, src, dst)) == 8
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        m.write(70 * i, 0, src, dst, 2048)
        m.read(70 * i, 0, src, dst, 2048)
    per_call = (time.perf_counter() - t0) / (2 * n)
    assert per_call < 100e-6


# --- calibrated mechanisms (figures set on the stand-in, times by hand) -------------------------

def test_read_responses_leave_a_core_at_the_read_response_rate():
    # a core answering a read streams at 8 B/cycle, half the link: the data holds it twice
    # as long; the same core writing is not slowed
    sd = stand_in(noc__read_response_bytes_per_cycle=8)
    req = 2 * NIU + 3 * HOP + 1
    assert Noc(sd).read(0, 0, (0, 0), (2, 1), 64) == req + 2 * NIU + 5 * HOP + 2 * flits(64)
    assert Noc(sd).write(0, 0, (2, 1), (0, 0), 64) == \
        Noc(stand_in()).write(0, 0, (2, 1), (0, 0), 64)


def test_a_dram_write_holds_its_bank_at_least_the_write_request_time():
    sd = stand_in(dram__write_request_cycles=50)
    alone = Noc(stand_in()).write(0, 0, (0, 0), (3, 0), 64)
    m = Noc(sd)
    first = m.write(0, 0, (0, 0), (3, 0), 64)
    assert first == alone                                    # the packet itself is not later
    second = m.write(0, 0, (0, 0), (3, 0), 64)
    assert second[0] - first[0] == 50                        # the next waits for the bank
    assert m.stats()["dram"]["dram 0 (3,0)"]["busy"] == 100


def test_writes_smaller_than_a_burst_are_read_modify_writes():
    sd = stand_in(dram__write_burst_bytes=128, dram__partial_write_cycles=80)
    for size, gap in ((64, 80), (128, 2 * flits(128))):      # bank: 8 B/cycle, half a link
        m = Noc(sd)
        t = [m.write(0, 0, (0, 0), (3, 0), size)[0] for _ in range(3)]
        assert t[2] - t[1] == t[1] - t[0] == gap
    # reads are not affected
    assert Noc(sd).read(0, 0, (0, 0), (3, 0), 64) == Noc(stand_in()).read(0, 0, (0, 0), (3, 0), 64)


def test_holds_round_to_the_nearest_cycle():
    # ports 1% narrower than the link: a one-flit ack holds one cycle, not two; a 16-flit
    # packet 16, not 17; at 2/3 of the link, 16 flits hold 24 and the ack 2 (1.5 rounds up)
    for port, data, ack in ((15.84, 16, 1), (16 * 2 / 3, 24, 2)):
        m = Noc(stand_in(noc__l1_port_bytes_per_cycle=port))
        m.write(0, 0, (0, 0), (1, 0), 15 * LINK)                  # 15 + 1 header flits
        ports = m.stats()["ports"]
        assert (ports["noc0 (0,0) inj"]["busy"], ports["noc0 (0,0) ej"]["busy"]) == (data, ack)


# --- multicast: path reservation, linked, loopback, acks (stand-in, times by hand) -------------
# setup 10 + 6 per hop of tree depth; (0,0) -> (1,0), (2,0) on NoC 0 is a tree of depth 2, so
# every unlinked packet first holds the tree R = 10 + 2 * 6 = 22 cycles.
MC = dict(noc__mcast_setup_cycles=10, noc__mcast_reserve_cycles_per_hop=6)
ROW = (1, 0, 2, 0)
R = 22


def test_an_unlinked_multicast_reserves_its_tree_before_its_data_leaves():
    landed, acked, sent = Noc(stand_in(**MC)).multicast_write(0, 0, (0, 0), ROW, 64)
    assert landed == R + 2 * NIU + 2 * HOP + flits(64) == 37
    assert sent == R + flits(64)                              # the data has left the source
    # acks from (1,0) (3 hops back) and (2,0) (2 hops) both arrive at 45, counted one a cycle
    assert acked == 45 + 2 + NIU
    assert Noc(stand_in()).multicast_write(0, 0, (0, 0), ROW, 64)[0] == landed - R


def test_plain_multicasts_back_to_back_pay_the_reservation_each_linked_ones_once():
    plain, linked = Noc(stand_in(**MC)), Noc(stand_in(**MC))
    p = [plain.multicast_write(0, 0, (0, 0), ROW, 64)[0] for _ in range(3)]
    k = [linked.multicast_write(0, 0, (0, 0), ROW, 64, linked=True)[0] for _ in range(3)]
    assert [b - a for a, b in zip(p, p[1:])] == [R + flits(64)] * 2
    assert k[0] == p[0]                                      # the first one reserves too
    assert [b - a for a, b in zip(k, k[1:])] == [flits(64)] * 2
    assert plain.stats()["mcast_reservations"] == 3 and linked.stats()["mcast_reservations"] == 1


def test_a_linked_path_serves_only_the_same_rectangle_and_the_next_transfer():
    m = Noc(stand_in(**MC))
    first = m.multicast_write(0, 0, (0, 0), ROW, 64, linked=True)
    other = m.multicast_write(0, 0, (0, 0), (0, 1, 0, 2), 64)        # another tree: reserves
    assert m.stats()["mcast_reservations"] == 2
    m.multicast_write(other[2], 0, (0, 0), ROW, 64)                   # the link was released
    assert m.stats()["mcast_reservations"] == 3
    assert first[0] < other[0]


def test_every_packet_of_a_plain_multicast_reserves_a_linked_transfer_once():
    # 600 B = packets of 256, 256, 88 B: 17, 17, 7 flits
    plain = Noc(stand_in(**MC)).multicast_write(0, 0, (0, 0), ROW, 600)[0]
    linked = Noc(stand_in(**MC)).multicast_write(0, 0, (0, 0), ROW, 600, linked=True)[0]
    assert plain == 3 * R + 17 + 17 + 7 + 2 * NIU + 2 * HOP
    assert linked == R + 17 + 17 + 7 + 2 * NIU + 2 * HOP


def test_a_reservation_holds_the_tree_links_against_other_traffic():
    # The tree's second link (1,0)+x is held from the head (t=5) until the data's tail has
    # passed (5 + R + 5 = 32). A write (1,0) -> (2,0) needs that link 2 cycles after it
    # starts, so it starts at 30 and lands 30 + 4 + 3 + 5 = 42 (alone: 12).
    m = Noc(stand_in(**MC))
    m.multicast_write(0, 0, (0, 0), ROW, 64)
    assert m.write(0, 0, (1, 0), (2, 0), 64)[0] == 42
    assert Noc(stand_in(**MC)).write(0, 0, (1, 0), (2, 0), 64)[0] == 12


def test_loopback_copies_share_the_source_port_with_the_acks():
    # (0,0) -> (0,0)-(1,0) with loopback: depth 1, R = 16. The source's ejection port takes
    # the 5-flit copy plus one cycle per ack (two destinations): held [18, 25) for the first
    # transfer, so the second (linked: no reservation, head at the port 2 cycles after its
    # start) starts at 23 instead of 21 and lands 2 cycles later than without loopback.
    sd = stand_in(**MC)
    m = Noc(sd)
    m.multicast_write(0, 0, (0, 0), (0, 0, 1, 0), 64, include_src=True, linked=True)
    second = m.multicast_write(0, 0, (0, 0), (0, 0, 1, 0), 64, include_src=True)[0]
    assert second == 23 + 2 * NIU + HOP + flits(64)
    n = Noc(sd)
    n.multicast_write(0, 0, (0, 0), (1, 0, 1, 0), 64, linked=True)
    assert n.multicast_write(0, 0, (0, 0), (1, 0, 1, 0), 64)[0] == 21 + 2 * NIU + HOP + flits(64)
    assert m.stats()["acks"] == 4 and m.stats()["ports"]["noc0 (0,0) ej"]["bytes"] == 128


def test_a_multicast_is_dearer_than_a_unicast_and_deeper_trees_dearer():
    sd = stand_in(**MC)
    uni = Noc(sd).write(0, 0, (0, 0), (1, 0), 64)
    one = Noc(sd).multicast_write(0, 0, (0, 0), (1, 0, 1, 0), 64)
    deep = Noc(sd).multicast_write(0, 0, (0, 0), (1, 0, 2, 2), 64)
    assert uni[0] < one[0] < deep[0] and uni[1] < one[1] < deep[1]


# --- flits and link bandwidth ----------------------------------------------------------------

def test_a_flit_is_its_bytes_whatever_the_link_rate():
    # a link half as fast as a flit per cycle holds each flit two cycles
    landed, _ = Noc(stand_in(noc__link_bytes_per_cycle=8)).write(0, 0, (0, 0), (1, 0), 64)
    assert landed == 2 * NIU + HOP + 2 * flits(64)


@pytest.mark.parametrize("size", [1, 64, 255, 1000, 5000])
def test_a_faster_link_never_makes_a_transfer_slower(size):
    slow, fast = stand_in(), stand_in(noc__link_bytes_per_cycle=32, noc__l1_port_bytes_per_cycle=32)
    for noc in (0, 1):
        a = Noc(slow).write(0, noc, (0, 0), (2, 1), size)
        b = Noc(fast).write(0, noc, (0, 0), (2, 1), size)
        assert b[0] <= a[0] and b[1] <= a[1]
        assert Noc(fast).read(0, noc, (0, 0), (2, 1), size) <= Noc(slow).read(0, noc, (0, 0), (2, 1), size)
