"""Data movement through the NoC and DRAM: bandwidth, contention, multicast, semaphores."""
import numpy as np
import pytest

import ttsim
from ttsim.library.stream import copy_program


def test_copy_moves_the_data(dev, rng):
    x = rng.standard_normal((256, 256)).astype(np.float32)
    src, dst = dev.tensor(x), dev.empty(x.shape)
    dev.run(copy_program(dev, src, dst, cores=[(0, 0), (1, 0)], block=4))
    assert np.array_equal(dst.to_numpy(), src.to_numpy())


def test_streaming_one_bank_approaches_its_bandwidth(dev):
    """One core reading a long run of pages from one bank, 32 in flight per barrier, gets
    near the bank's described bandwidth, and never above it. (With 8 in flight the ~500-cycle
    round trip to the bank leaves it idle about 40% of the time, on the chip as in the model:
    the calibration CSV's 4 and 16 x 2 KiB reads from one bank take 750 and 1,914 cycles.)"""
    t = dev.zeros((32 * 12 * 256, 32))          # 12 x 256 pages: every 12th is in bank 0
    n, block = 256, 32

    def reader(k):
        g = k.interleaved_addr_gen(t)
        for b0 in range(0, n, block):
            k.cb_reserve_back(0, block)
            p = k.get_write_ptr(0)
            for i in range(block):
                k.noc_async_read_tile(12 * (b0 + i), g, p + i * 2048)   # every 12th page: bank 0
            k.noc_async_read_barrier()
            k.cb_push_back(0, block)
            k.cb_wait_front(0, block)
            k.cb_pop_front(0, block)

    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=block)
    prog.reader((0, 0), reader)
    rep = dev.run(prog)
    bw = dev.sd.dram_banks[0].bandwidth.value
    achieved = n * 2048 / (rep.cycles - dev.sd.value("cost.api.kernel_launch"))
    assert 0.8 * bw <= achieved <= bw, (achieved, bw)


def test_dram_streaming_on_the_full_grid(dev):
    """64 cores copying over all banks (reads and writes on the chip's preferred NoCs): a
    large share of the aggregate bandwidth, never more. (Measured Wormhole streaming kernels
    reach 57-67%; the model reaches about 78%: docs/cycle-model.md, "Whole programs".)"""
    n_tiles = 64 * 48
    src = dev.zeros((n_tiles * 32, 32))
    dst = dev.empty((n_tiles * 32, 32))
    cores = [(x, y) for y in range(8) for x in range(8)]
    rep = dev.run(copy_program(dev, src, dst, cores=cores, block=4, buffers=3))
    bytes_moved = 2 * n_tiles * 2048               # read and written
    aggregate = sum(b.bandwidth.value for b in dev.sd.dram_banks)
    achieved = bytes_moved / rep.cycles
    assert 0.55 * aggregate <= achieved <= aggregate, (achieved, aggregate)


def _streamer(dst_core, n, block=16, size=8192):
    """n writes of `size` bytes to one core, `block` in flight per barrier: enough that the
    stream is bound by link bandwidth, not by the round trip of each barrier."""
    def writer(k):
        dx, dy = k.logical_to_noc(*dst_core)
        for _ in range(0, n, block):
            for _ in range(block):
                k.noc_async_write(0x40000, k.get_noc_addr(dx, dy, 0x80000), size)
            k.noc_async_write_barrier()
    return writer


def _ends(flows, n=64):
    d = ttsim.Device()
    prog = ttsim.Program(d)
    for src, dst in flows:
        prog.writer(src, _streamer(dst, n), noc=0)
    return {th.core: th.end for th in d.run(prog).threads}


def test_second_transfer_on_the_same_link_slows_both():
    """(0,0)->(3,0) and (1,0)->(2,1) share one NoC-0 link (NoC row y=1, x 2->3) and nothing else."""
    a, b = ((0, 0), (3, 0)), ((1, 0), (2, 1))
    alone_a, alone_b = _ends([a])[(0, 0)], _ends([b])[(1, 0)]
    both = _ends([a, b])
    assert both[(0, 0)] > 1.3 * alone_a and both[(1, 0)] > 1.3 * alone_b


def test_disjoint_routes_do_not_interfere():
    a, b = ((0, 0), (1, 0)), ((0, 2), (1, 2))
    alone = _ends([a])[(0, 0)]
    both = _ends([a, b])
    assert both[(0, 0)] == alone


def test_multicast_with_semaphores(dev, rng):
    """Core (0,0) reads a tile and multicasts it to the rest of row 0; receivers signal back."""
    x = rng.standard_normal((32, 32)).astype(np.float32)
    src = dev.tensor(x)
    out = dev.empty((32, 32 * 8))
    row = [(i, 0) for i in range(8)]
    prog = ttsim.Program(dev)
    prog.circular_buffer(row, 0, num_pages=1)
    ready = prog.semaphore(row, 0)
    valid = prog.semaphore(row, 0)
    n_recv = 7

    def sender(k):
        k.cb_reserve_back(0, 1)
        p = k.get_write_ptr(0)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(src), p)
        k.noc_async_read_barrier()
        r = k.get_semaphore(ready)
        k.noc_semaphore_wait(r, n_recv)                  # every receiver has room
        x0, y0 = k.logical_to_noc(1, 0)
        x1, y1 = k.logical_to_noc(7, 0)
        k.noc_async_write_multicast(p, k.get_noc_multicast_addr(x0, y0, x1, y1, p), 2048, n_recv)
        v = k.get_semaphore(valid)
        k.noc_semaphore_set(v, 1)
        k.noc_semaphore_set_multicast(v, k.get_noc_multicast_addr(x0, y0, x1, y1, v), n_recv)
        k.noc_async_write_barrier()
        k.cb_push_back(0, 1)

    def receiver(k):
        k.cb_reserve_back(0, 1)
        sx, sy = k.logical_to_noc(0, 0)
        k.noc_semaphore_inc(k.get_noc_addr(sx, sy, k.get_semaphore(ready)), 1)
        k.noc_semaphore_wait(k.get_semaphore(valid), 1)
        k.cb_push_back(0, 1)

    def writer(k):
        k.cb_wait_front(0, 1)
        k.noc_async_write_tile(k.core[0], k.interleaved_addr_gen(out), k.get_read_ptr(0))
        k.noc_async_write_barrier()
        k.cb_pop_front(0, 1)

    prog.reader((0, 0), sender)
    prog.reader(row[1:], receiver)
    prog.writer(row, writer)
    rep = dev.run(prog)
    got = out.to_numpy()
    for i in range(8):
        assert np.array_equal(got[:, 32 * i:32 * i + 32], src.to_numpy())
    recv = [t for t in rep.threads if t.kind == "reader" and t.core != (0, 0)]
    assert all(t.stalls.get("semaphore", 0) > 0 for t in recv)


def test_multicast_num_dests_checked(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=1)

    def k_(k):
        x0, y0 = k.logical_to_noc(1, 0)
        x1, y1 = k.logical_to_noc(3, 0)
        k.noc_async_write_multicast(k.get_write_ptr(0), k.get_noc_multicast_addr(x0, y0, x1, y1, 0x20000),
                                    64, num_dests=5)

    prog.reader((0, 0), k_)
    with pytest.raises(ttsim.NocError, match="num_dests=5 but the rectangle"):
        dev.run(prog)


def test_wall_clock_counts_the_issue_cost(dev):
    seen = []

    def k_(k):
        x, y = k.logical_to_noc(1, 0)
        t0 = k.wall_clock()
        k.noc_async_write(k.get_write_ptr(0), k.get_noc_addr(x, y, 0x40000), 64)
        seen.append(k.wall_clock() - t0)
        k.noc_async_write_barrier()
        seen.append(k.wall_clock() - t0)

    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=1)
    prog.writer((0, 0), k_)
    dev.run(prog)
    assert seen[0] == dev.sd.value("noc.write_issue_cycles")
    assert seen[1] > seen[0] + dev.sd.value("noc.completion_latency")


def test_stateful_transfers_move_the_data(dev):
    """set_state names the other core once; with_state calls give only addresses and size."""
    payload = np.arange(64, dtype=np.uint8)
    got = {}

    def k_(k):
        x, y = k.logical_to_noc(1, 0)
        here = k.get_write_ptr(0)
        k.write_l1(here, payload)
        k.noc_async_write_set_state(k.get_noc_addr(x, y, 0))
        k.noc_async_write_with_state(here, 0x40000, 64)
        k.noc_async_write_barrier()
        k.noc_async_read_set_state(k.get_noc_addr(x, y, 0))
        k.noc_async_read_with_state(0x40000, here + 64, 64)
        k.noc_async_read_barrier()
        got["back"] = k.read_l1(here + 64, 64)

    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=1)
    prog.reader((0, 0), k_)
    dev.run(prog)
    assert np.array_equal(got["back"], payload)


@pytest.mark.parametrize("call", ["noc_async_read_with_state", "noc_async_write_with_state"])
def test_with_state_before_set_state_is_an_error(dev, call):
    def k_(k):
        getattr(k, call)(0x40000, 0x40000, 64)

    prog = ttsim.Program(dev)
    prog.reader((0, 0), k_)
    with pytest.raises(ttsim.NocError, match="with_state before noc_async_.*_set_state"):
        dev.run(prog)


# --- multicast: linked, loopback, the command buffer ------------------------------------------

def _mcast_times(dev, n, linked, size=64):
    """Cycles for n multicasts from core (0,0) to (1,0)-(3,1), then one barrier."""
    seen = {}

    def k_(k):
        x0, y0 = k.logical_to_noc(1, 0)
        x1, y1 = k.logical_to_noc(3, 1)
        p = k.get_write_ptr(0)
        dst = k.get_noc_multicast_addr(x0, y0, x1, y1, p)
        t0 = k.wall_clock()
        for i in range(n):
            k.noc_async_write_multicast(p, dst, size, 6, linked=linked and i < n - 1)
            seen[i] = k.wall_clock() - t0
        k.noc_async_write_barrier()
        seen["all"] = k.wall_clock() - t0

    prog = ttsim.Program(dev)
    prog.circular_buffer([(x, y) for x in range(4) for y in range(2)], 0, num_pages=1, page_size=size)
    prog.writer((0, 0), k_)
    dev.run(prog)
    return seen


def test_linked_multicasts_skip_the_reservation_plain_ones_wait_for_it(dev):
    plain, linked = _mcast_times(dev, 16, False), _mcast_times(dev, 16, True)
    assert plain[0] == linked[0]                      # one transfer: the same either way
    issue = dev.sd.value("noc.write_issue_cycles")
    # linked: one issue per transfer after the first one's reservation
    assert linked[15] - linked[1] == 14 * issue
    # plain: the RISC waits for the command buffer, freed once each reservation is done
    assert plain[15] - plain[1] > 14 * (issue + 2 * dev.sd.value("noc.hop_latency"))
    assert plain["all"] > 1.5 * linked["all"]


def _linked_chain(dev, second_rect, second_loopback=False, close=True, first=(1, 0, 3, 1)):
    """Core (0,0) sends a linked multicast to logical rectangle `first`, then (if close) one
    more multicast to `second_rect` (logical corners), plain."""
    def k_(k):
        p = k.get_write_ptr(0)
        rect = lambda r: (*k.logical_to_noc(r[0], r[1]), *k.logical_to_noc(r[2], r[3]))
        k.noc_async_write_multicast(p, k.get_noc_multicast_addr(*rect(first), p), 64,
                                    linked=True)
        if close:
            send = (k.noc_async_write_multicast_loopback_src if second_loopback
                    else k.noc_async_write_multicast)
            send(p, k.get_noc_multicast_addr(*rect(second_rect), p), 64)
        k.noc_async_write_barrier()

    prog = ttsim.Program(dev)
    prog.circular_buffer([(x, y) for x in range(4) for y in range(2)], 0, num_pages=1, page_size=64)
    prog.writer((0, 0), k_)
    return dev.run(prog)


def test_a_linked_multicast_is_followed_by_one_to_the_same_cores(dev):
    same = _linked_chain(dev, (1, 0, 3, 1))
    assert _linked_chain(dev, (3, 1, 1, 0)).cycles == same.cycles    # the corners in either order
    with pytest.raises(ttsim.NocError, match=r"right after a linked multicast to .*\(6 cores\) "
                       r"\(line \d+\) on NoC \d: a linked multicast holds its path"):
        _linked_chain(dev, (1, 0, 2, 1))
    with pytest.raises(ttsim.NocError, match=r"\(8 cores\) right after a linked multicast to "
                       r".*\(7 cores\)"):      # the same rectangle, now with the issuer in it
        _linked_chain(dev, (0, 0, 3, 1), second_loopback=True, first=(0, 0, 3, 1))
    with pytest.raises(ttsim.NocError, match="ended with a linked multicast .* no multicast "
                       "followed") as e:
        _linked_chain(dev, None, close=False)
    assert e.value.core == (0, 0) and e.value.thread == "writer" and e.value.line is not None


def test_loopback_multicast_writes_the_issuer_too(dev, rng):
    data = rng.integers(0, 255, 2048, dtype=np.uint8)
    cores = [(x, 0) for x in range(4)]

    def k_(k):
        p = k.get_write_ptr(0)
        k.write_l1(p + 2048, data)
        x0, y0 = k.logical_to_noc(0, 0)
        x1, y1 = k.logical_to_noc(3, 0)
        k.noc_async_write_multicast_loopback_src(p + 2048, k.get_noc_multicast_addr(x0, y0, x1, y1, p),
                                                 2048, 4)
        k.noc_async_write_barrier()
        got["addr"] = p

    got = {}
    prog = ttsim.Program(dev)
    prog.circular_buffer(cores, 0, num_pages=2)
    prog.writer((0, 0), k_)
    dev.run(prog)
    a = got["addr"]
    for c in cores:
        assert np.array_equal(dev.l1[c].mem[a:a + 2048], data), c


def test_loopback_counts_the_issuer_among_num_dests(dev):
    def k_(k):
        x0, y0 = k.logical_to_noc(0, 0)
        x1, y1 = k.logical_to_noc(3, 0)
        p = k.get_write_ptr(0)
        k.noc_async_write_multicast_loopback_src(p, k.get_noc_multicast_addr(x0, y0, x1, y1, p), 64, 3)

    prog = ttsim.Program(dev)
    prog.circular_buffer([(x, 0) for x in range(4)], 0, num_pages=1)
    prog.writer((0, 0), k_)
    with pytest.raises(ttsim.NocError, match=r"num_dests=3 but .* holds 4 .*loopback"):
        dev.run(prog)


def test_semaphore_multicast_loopback_sets_every_word(dev):
    cores = [(x, 0) for x in range(3)]
    seen = {}

    def sender(k):
        v = k.get_semaphore(sem)
        k.noc_semaphore_set(v, 7)
        x0, y0 = k.logical_to_noc(0, 0)
        x1, y1 = k.logical_to_noc(2, 0)
        k.noc_semaphore_set_multicast_loopback_src(v, k.get_noc_multicast_addr(x0, y0, x1, y1, v), 3)
        k.noc_semaphore_wait(v, 7)

    def receiver(k):
        k.noc_semaphore_wait(k.get_semaphore(sem), 7)
        seen[k.core] = True

    prog = ttsim.Program(dev)
    sem = prog.semaphore(cores, 0)
    prog.writer((0, 0), sender)
    prog.reader(cores[1:], receiver)
    dev.run(prog)
    assert set(seen) == set(cores[1:])


# --- alignment ----------------------------------------------------------------------------------

def _one_call(dev, call):
    prog = ttsim.Program(dev)
    prog.circular_buffer([(0, 0), (1, 0)], 0, num_pages=2)
    t = dev.zeros((64, 32))
    prog.reader((0, 0), lambda k: call(k, t))
    return prog


@pytest.mark.parametrize("arch, call, rule", [
    ("wormhole_b0", lambda k, t: k.noc_async_write(k.get_write_ptr(0) + 8, k.get_noc_addr(
        *k.logical_to_noc(1, 0), k.get_write_ptr(0)), 64), "source address 0x[0-9a-f]+ is not 16-byte"),
    ("wormhole_b0", lambda k, t: k.noc_async_read(k.get_noc_addr(*k.logical_to_noc(1, 0),
        k.get_write_ptr(0) + 4), k.get_write_ptr(0), 64), "L1 addresses must be multiples of 16 B"),
    ("blackhole", lambda k, t: k.noc_async_read(k.get_noc_addr(*k.interleaved_addr_gen(t).banks[0],
        t.address + 32), k.get_write_ptr(0), 64), "DRAM addresses a read must be multiples of 64 B"),
    ("wormhole_b0", lambda k, t: k.noc_async_write(k.get_write_ptr(0), k.get_noc_addr(
        *k.interleaved_addr_gen(t).banks[0], t.address + 16), 64), "DRAM addresses a write must be "
        "multiples of 32 B"),
])
def test_misaligned_noc_addresses_are_errors_naming_the_rule(arch, call, rule):
    dev = ttsim.Device(arch)
    with pytest.raises(ttsim.NocError, match=rule) as e:
        dev.run(_one_call(dev, call))
    msg = str(e.value)
    assert "core (0,0) reader" in msg and "test_dataflow.py" in msg and dev.sd.name in msg


def test_aligned_sub_page_addresses_are_accepted_where_the_rule_allows():
    # Blackhole: DRAM writes need 16 B, reads 64 B; Wormhole reads at 32 B
    for arch, call in (("blackhole", lambda k, t: k.noc_async_write(k.get_write_ptr(0), k.get_noc_addr(
                            *k.interleaved_addr_gen(t).banks[0], t.address + 16), 64)),
                       ("wormhole_b0", lambda k, t: k.noc_async_read(k.get_noc_addr(
                            *k.interleaved_addr_gen(t).banks[0], t.address + 32), k.get_write_ptr(0), 64))):
        dev = ttsim.Device(arch)
        dev.run(_one_call(dev, call))


# --- tt-metal's atomic and full barriers, the producer's poll ------------------------------

def _sem_prog(dev, sender, receiver=None):
    prog = ttsim.Program(dev)
    cores = [(0, 0), (3, 3)]
    prog.semaphore(cores, 0)
    prog.circular_buffer(cores, 0, "bf16", num_pages=2)
    prog.reader([(0, 0)], sender)
    if receiver:
        prog.reader([(3, 3)], receiver)
    return prog


def test_the_atomic_barrier_waits_for_the_increments_ack(dev):
    seen = {}

    def sender(k, barrier=True):
        x, y = k.logical_to_noc(3, 3)
        k.noc_semaphore_inc(k.get_noc_addr(x, y, k.get_semaphore(0)), 1)
        if barrier:
            k.noc_async_atomic_barrier()
        seen["sender"] = k.wall_clock()

    def receiver(k):
        s = k.get_semaphore(0)
        k.noc_semaphore_wait(s, 1)
        seen["applied"] = k.wall_clock()

    rep = dev.run(_sem_prog(dev, sender, receiver))
    stall = next(t for t in rep.threads if t.core == (0, 0)).stalls.get("noc atomic", 0)
    assert stall > 0 and seen["sender"] > seen["applied"]        # the ack comes back after
    dev.run(_sem_prog(dev, lambda k: sender(k, barrier=False), receiver))
    assert seen["sender"] < seen["applied"]                       # without it: fire and forget


def test_the_full_barrier_waits_for_reads_writes_and_atomics(dev):
    t = dev.zeros((32, 32 * 12))
    ends = {}

    def sender(k, full):
        g = k.interleaved_addr_gen(t)
        k.cb_reserve_back(0, 2)
        k.noc_async_read_tile(0, g, k.get_write_ptr(0))
        k.write_l1(k.get_write_ptr(0) + 2048, np.zeros(2048, np.uint8))
        k.noc_async_write_tile(1, g, k.get_write_ptr(0) + 2048)
        x, y = k.logical_to_noc(3, 3)
        k.noc_semaphore_inc(k.get_noc_addr(x, y, k.get_semaphore(0)), 1)
        if full:
            k.noc_async_full_barrier()
        else:
            k.noc_async_read_barrier()
            k.noc_async_write_barrier()
            k.noc_async_atomic_barrier()
        ends[full] = k.wall_clock()
    for full in (True, False):
        dev.run(_sem_prog(dev, lambda k, f=full: sender(k, f)))
    # the same wait, less two barrier calls' cost (10 cycles each, cost.api.barrier)
    assert ends[False] - 20 <= ends[True] <= ends[False]


def test_cb_pages_reservable_at_back_polls_for_free_pages(dev):
    seen = []

    def producer(k):
        k.cb_reserve_back(0, 2)
        k.cb_push_back(0, 2)                       # the CB is full
        while not k.cb_pages_reservable_at_back(0, 1):
            seen.append(False)
        seen.append(True)

    def consumer(k):
        k.cb_wait_front(0, 1)
        for _ in range(50):
            k.wall_clock()
            k.get_arg_val(0)
        k.cb_pop_front(0, 1)

    prog = ttsim.Program(dev)
    prog.circular_buffer([(0, 0)], 0, "bf16", num_pages=2)
    prog.reader([(0, 0)], producer)
    prog.writer([(0, 0)], consumer, args=[0])
    dev.run(prog)
    assert seen[-1] is True and seen.count(False) >= 1
    with pytest.raises(ttsim.errors.LivelockError, match="cb_pages_reservable_at_back"):
        prog = ttsim.Program(dev)
        prog.circular_buffer([(0, 0)], 0, "bf16", num_pages=2)
        prog.reader([(0, 0)], producer)
        dev.run(prog)
