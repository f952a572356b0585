"""A kernel that misuses the API gets an error naming core, thread, line, address and the
region it falls outside, where the chip would silently corrupt something (issue 8).

Every test here failed before the checks existed: the access went through (and corrupted
the neighbour), or the error was a raw TypeError / OverflowError from a simpy callback.
"""
import numpy as np
import pytest

import ttsim
from ttsim.errors import AccessError, ArgumentError, CBError, LivelockError, NocError, \
    SimLimitError, TTSimError

HERE = "test_misuse.py"


def _line_of(fn, text):
    import inspect
    src, first = inspect.getsourcelines(fn)
    return first + next(i for i, s in enumerate(src) if text in s)


def _run(dev, reader=None, writer=None, cbs=((0, 2), (1, 2)), cores=((0, 0),), sems=(), **kw):
    prog = ttsim.Program(dev)
    for idx, pages in cbs:
        prog.circular_buffer(list(cores), idx, "bf16", num_pages=pages)
    for v in sems:
        prog.semaphore(list(cores), v)
    if reader is not None:
        prog.reader(list(cores), reader)
    if writer is not None:
        prog.writer(list(cores), writer)
    return dev.run(prog, **kw)


def _located(e, thread="reader", core=(0, 0)):
    msg = str(e.value)
    assert e.value.core == core and e.value.thread == thread, msg
    assert HERE in msg and e.value.line is not None and HERE in e.value.line[0], msg
    return msg


# --- tensor pages and DRAM allocations ---------------------------------------------------------

def test_a_tile_write_past_a_tensors_pages_is_refused_and_the_next_tensor_survives(dev):
    small = dev.empty((64, 64))                           # 4 pages
    after = dev.tensor(np.full((32, 32 * 24), 3.0, np.float32))
    before = after.to_numpy().copy()

    def writer(k):
        k.noc_async_write_tile(20, k.interleaved_addr_gen(small), k.get_read_ptr(0))

    with pytest.raises(AccessError) as e:
        _run(dev, writer=writer)
    msg = _located(e, "writer")
    assert "page 20 of tensor (64, 64) bf16 (4 pages" in msg and "pages 0..3" in msg
    assert e.value.line[1] == _line_of(writer, "noc_async_write_tile")
    np.testing.assert_array_equal(after.to_numpy(), before)


def test_a_negative_or_fractional_page_is_refused(dev):
    t = dev.empty((64, 64))
    with pytest.raises(AccessError, match="page -1 of tensor .*start at 0"):
        _run(dev, lambda k: k.noc_async_read_tile(-1, k.interleaved_addr_gen(t), k.get_write_ptr(0)))
    with pytest.raises(AccessError, match="page index 1.5 is not an integer"):
        _run(dev, lambda k: k.noc_async_read_tile(1.5, k.interleaved_addr_gen(t), k.get_write_ptr(0)))


def test_a_raw_dram_read_running_into_the_next_tensor_names_both(dev):
    a = dev.empty((32, 32 * 12))                          # one page per bank
    b = dev.empty((32, 32 * 12))

    def reader(k, a=a, b=b):
        x, y = k.interleaved_addr_gen(a).banks[0]
        k.cb_reserve_back(0, 2)
        k.noc_async_read(k.get_noc_addr(x, y, a.address), k.get_write_ptr(0), 4096)

    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, "bf16", num_pages=2)
    prog.reader((0, 0), reader, args=[a, b])
    with pytest.raises(AccessError) as e:
        dev.run(prog)
    msg = _located(e)
    assert "run past the end of tensor (32, 384) bf16" in msg
    assert f"into tensor (32, 384) bf16 (12 pages of 2048 B at {b.address:#x}" in msg


def test_a_dram_address_past_every_allocation_is_refused(dev):
    dev.empty((32, 32 * 12))
    with pytest.raises(AccessError, match=r"DRAM bank 0 at \(0,0\) are outside every DRAM "
                                          r"allocation \(bank 0 holds buffers in \[0x0, 0x800\)\)"):
        _run(dev, lambda k: k.noc_async_read(k.get_noc_addr(0, 0, 1 << 20), k.get_write_ptr(0), 64))


def test_a_tile_read_with_an_offset_past_the_page_is_refused(dev):
    t = dev.empty((64, 64))
    with pytest.raises(AccessError, match="offset 2048 into page 0 .* outside the page"):
        _run(dev, lambda k: k.noc_async_read(k.interleaved_addr_gen(t).get_noc_addr(0, 2048),
                                             k.get_write_ptr(0), 64))


# --- CB pointers and L1 regions ----------------------------------------------------------------

def test_a_read_five_pages_past_a_two_page_cbs_write_pointer_is_refused(dev):
    """The issue's case: the address lands in the next CB, which nobody has reserved (so its
    page rules do not apply): the pointer came from cb 0 and must stay in cb 0."""
    x = dev.tensor(np.ones((32, 32), np.float32))

    def reader(k):
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), k.get_write_ptr(0) + 5 * 2048)

    with pytest.raises(AccessError) as e:
        _run(dev, reader, cbs=((0, 2), (1, 4)))
    msg = _located(e)
    assert "addressed from cb 0's pointer" in msg and "fall outside cb 0, whose pages span" in msg
    assert "they land in cb 1 (4 x 2048 B bf16)" in msg


def test_a_write_pointer_carries_its_cb_through_arithmetic_only(dev):
    def reader(k):
        p = k.get_write_ptr(0)
        assert (p + 64).cb == 0 and (64 + p).cb == 0 and (p - 0).cb == 0
        assert not hasattr(p - k.get_write_ptr(0), "cb") and not hasattr(p * 1, "cb")
        assert (p + np.int64(32)).cb == 0
    _run(dev, reader)


@pytest.mark.parametrize("addr, region", [
    (0x100, r"start in the firmware region \[0x0, 0x19000\)"),
    (-64, r"are outside the L1 of core \(0,0\)"),
    (1499136 - 32, r"are outside the L1 of core \(0,0\), which spans \[0x0, 0x16e000\)"),
])
def test_write_l1_outside_what_a_kernel_may_touch(dev, addr, region):
    with pytest.raises(AccessError, match=region) as e:
        _run(dev, lambda k: k.write_l1(addr, np.zeros(64, np.uint8)))
    _located(e)


def test_read_l1_is_bounds_checked(dev):
    with pytest.raises(AccessError, match="read_l1: bytes .* outside the L1"):
        _run(dev, lambda k: k.read_l1(1499136 - 8, 16))
    with pytest.raises(ArgumentError, match="read_l1: the size in bytes must be a whole number "
                                            ">= 1, got -4"):
        _run(dev, lambda k: k.read_l1(k.get_write_ptr(0), -4))


def test_an_access_from_a_semaphore_into_the_cb_after_it_is_refused(dev):
    def reader(k):
        k.write_l1(k.get_semaphore(0), np.zeros(64, np.uint8))

    prog = ttsim.Program(dev)
    prog.semaphore((0, 0), 0)
    prog.circular_buffer((0, 0), 0, "bf16", num_pages=2)   # allocated before the semaphore
    prog.circular_buffer((0, 0), 3, "bf16", num_pages=2)
    prog.reader((0, 0), reader)
    with pytest.raises(AccessError, match=r"run past the end of semaphore 0 \[0x[0-9a-f]+, "
                                          r"0x[0-9a-f]+\) into unallocated L1"):
        dev.run(prog)


def test_a_multicast_into_another_cores_firmware_region_is_refused(dev):
    def writer(k):
        x0, y0 = k.logical_to_noc(1, 0)
        x1, y1 = k.logical_to_noc(3, 0)
        k.noc_async_write_multicast(k.get_read_ptr(0), k.get_noc_multicast_addr(x0, y0, x1, y1, 0x40),
                                    64, 3)

    with pytest.raises(AccessError, match=r"of core \(1,0\)'s L1 start in the firmware region"):
        _run(dev, writer=writer)


# --- counts, sizes and CB protocol -------------------------------------------------------------

@pytest.mark.parametrize("call, what", [
    (lambda k: k.cb_push_back(0, -1), r"push of -1 pages on cb 0: .* \(not positive\)"),
    (lambda k: k.cb_reserve_back(0, -1), "reserve of -1 pages on cb 0"),
    (lambda k: k.cb_reserve_back(0, 0), "reserve of 0 pages"),
    (lambda k: k.cb_reserve_back(0, 1.5), r"reserve of 1.5 pages .*\(not an integer\)"),
    (lambda k: k.cb_wait_front(0, -2), "wait of -2 pages"),
    (lambda k: k.cb_pop_front(0, -1), "pop of -1 pages"),
])
def test_non_positive_or_fractional_page_counts_are_refused(dev, call, what):
    with pytest.raises(CBError, match=what) as e:
        _run(dev, call)
    _located(e)


def test_negative_or_absurd_cb_sizes_are_refused_when_the_program_is_built(dev):
    prog = ttsim.Program(dev)
    with pytest.raises(CBError, match="page_size must be a whole number of bytes in"):
        prog.circular_buffer((0, 0), 0, "bf16", num_pages=2, page_size=-2048)
    with pytest.raises(CBError, match="num_pages must be a whole number >= 1, got 1.5"):
        prog.circular_buffer((0, 0), 0, "bf16", num_pages=1.5)
    with pytest.raises(CBError, match="cb index 2.0 out of range"):
        prog.circular_buffer((0, 0), 2.0, "bf16")
    assert not prog.cbs


def test_transfer_sizes_must_be_positive_whole_numbers(dev):
    t = dev.empty((32, 32 * 12))
    for size, kind in ((0, "out of range"), (-64, "out of range"), (64.0, "not an integer")):
        with pytest.raises(ArgumentError, match=f"noc_async_read: the size in bytes .*{kind}") as e:
            _run(dev, lambda k: k.noc_async_read(k.get_noc_addr(0, 0, t.address),
                                                 k.get_write_ptr(0), size))
        _located(e)


def test_a_noc_index_the_chip_lacks_names_the_line(dev):
    t = dev.empty((32, 32 * 12))
    with pytest.raises(NocError, match="NoC index 2 does not exist: wormhole_b0 has NoC 0..1") as e:
        _run(dev, lambda k: k.noc_async_read(k.get_noc_addr(0, 0, t.address), k.get_write_ptr(0),
                                             64, noc=2))
    _located(e)
    with pytest.raises(TTSimError, match="NoC 3"):
        ttsim.Program(dev).reader((0, 0), lambda k: None, noc=3)


# --- semaphores --------------------------------------------------------------------------------

def test_a_semaphore_increment_aimed_at_dram_is_refused_and_dram_keeps_its_data(dev):
    t = dev.tensor(np.full((32, 32 * 12), 2.0, np.float32))

    def writer(k):
        k.noc_semaphore_inc(k.get_noc_addr(0, 0, t.address), 1)

    with pytest.raises(AccessError, match=r"noc_semaphore_inc to \(0,0\), which is DRAM bank 0: "
                                          "semaphores live in a worker core's L1") as e:
        _run(dev, writer=writer)
    _located(e, "writer")
    assert (t.to_numpy() == 2.0).all()


def test_semaphore_set_remote_to_a_non_worker_or_out_of_range_is_an_error_at_the_call(dev):
    def to(x, y, addr):
        def writer(k):
            s = k.get_semaphore(0)
            k.noc_semaphore_set_remote(s, k.get_noc_addr(x, y, addr))
        return writer

    with pytest.raises(NocError, match=r"NoC address \(0,3\) is neither a worker core nor a DRAM"):
        _run(dev, writer=to(0, 3, 0x19000), sems=(1,))
    with pytest.raises(AccessError, match="are outside the L1 of core"):
        _run(dev, writer=to(1, 1, 1 << 40), sems=(1,))
    with pytest.raises(AccessError, match="semaphores live in a worker core's L1"):
        _run(dev, writer=to(5, 0, 0), sems=(1,))
    with pytest.raises(AccessError, match="firmware region"):
        _run(dev, writer=to(2, 1, 0x40), sems=(1,), cores=((0, 0), (1, 0)))


@pytest.mark.parametrize("initial", [-1, 1 << 32, 1.5])
def test_semaphore_initial_values_must_fit_a_32_bit_word(dev, initial):
    with pytest.raises(TTSimError, match="semaphore initial value .* unsigned 32-bit word"):
        ttsim.Program(dev).semaphore((0, 0), initial)


def test_semaphore_values_and_addresses_are_checked(dev):
    with pytest.raises(ArgumentError, match=r"noc_semaphore_set: the value must be a whole number "
                                            r"in \[0, 4294967295\], got -1"):
        _run(dev, lambda k: k.noc_semaphore_set(k.get_semaphore(0), -1), sems=(0,))
    with pytest.raises(AccessError, match="semaphore address 0x[0-9a-f]+ is not 4-byte aligned"):
        _run(dev, lambda k: k.noc_semaphore_wait(k.get_semaphore(0) + 2, 1), sems=(0,))
    with pytest.raises(NocError, match="semaphore -1 is not created"):
        _run(dev, lambda k: k.get_semaphore(-1), sems=(0,))


# --- no hangs ----------------------------------------------------------------------------------

def test_spinning_on_cb_pages_nobody_will_push_is_a_livelock_naming_the_line(dev):
    def writer(k):
        while not k.cb_pages_available_at_front(0, 1):
            pass

    with pytest.raises(LivelockError) as e:
        _run(dev, writer=writer)
    msg = _located(e, "writer")
    assert e.value.line[1] == _line_of(writer, "cb_pages_available_at_front")
    assert "spins on cb_pages_available_at_front(0, 1): 0 of 2 pages there" in msg


def test_spinning_on_a_semaphore_word_nobody_writes_is_a_livelock(dev):
    def reader(k):
        s = k.get_semaphore(0)
        k.cb_wait_front(1, 1)                 # a thread that waits forever too

    def writer(k):
        s = k.get_semaphore(0)
        while k.read_l1(s, 4).view(np.uint32)[0] == 0:
            pass

    with pytest.raises(LivelockError) as e:
        _run(dev, reader, writer, sems=(0,))
    msg = str(e.value)
    assert "core (0,0) writer: spins on read_l1(0x" in msg and "(in semaphore 0)" in msg
    assert "core (0,0) reader: waiting for data in cb 1" in msg
    assert e.value.line[1] == _line_of(writer, "read_l1")


def test_two_threads_spinning_on_each_other_are_a_livelock(dev):
    def spin(k):
        while not k.cb_pages_available_at_front(0 if k.kind == "reader" else 1, 1):
            pass

    with pytest.raises(LivelockError) as e:
        _run(dev, spin, spin)
    msg = str(e.value)
    assert "core (0,0) reader: spins on" in msg and "core (0,0) writer: spins on" in msg


def test_a_poll_loop_doing_the_same_work_between_polls_is_a_livelock(dev):
    """A loop that reads a remote semaphore into L1 (or sets a word) before each poll did
    other work between polls, so it never counted as spinning: it ran towards the default
    limit of 10**12 cycles, for ever in wall time."""
    def remote(k):
        s = k.get_semaphore(0)
        x, y = k.logical_to_noc(1, 0)
        while True:
            k.noc_async_read(k.get_noc_addr(x, y, s), s, 4)
            k.noc_async_read_barrier()
            if k.read_l1(s, 4).view(np.uint32)[0]:
                break

    def reset(k):
        s = k.get_semaphore(0)
        while k.read_l1(s, 4).view(np.uint32)[0] == 0:
            k.noc_semaphore_set(s, 0)

    with pytest.raises(LivelockError, match=r"core \(0,0\) reader: spins on read_l1\(0x[0-9a-f]+, 4\) "
                                            r"= 0x00000000 \(in semaphore 0\)") as e:
        _run(dev, remote, sems=(0,))
    assert e.value.line[1] == _line_of(remote, "read_l1")
    with pytest.raises(LivelockError):
        _run(dev, reset, sems=(0,))


def test_a_poll_loop_with_work_waiting_for_a_late_value_is_not_a_livelock(dev):
    seen = {}

    def reader(k):
        for _ in range(3000):
            k.noc_semaphore_set(k.get_semaphore(1), 0)
        x, y = k.logical_to_noc(0, 0)
        k.noc_semaphore_inc(k.get_noc_addr(x, y, k.get_semaphore(0)), 1)

    def writer(k):
        n = 0
        while k.read_l1(k.get_semaphore(0), 4).view(np.uint32)[0] == 0:
            k.noc_semaphore_set(k.get_semaphore(2), 0)
            n += 1
        seen["n"] = n

    _run(dev, reader, writer, sems=(0, 0, 0))
    assert seen["n"] > 2048

def test_polling_what_another_thread_will_write_works_and_is_timed(dev):
    """The poll loops that must not be mistaken for livelocks: the value arrives."""
    seen = {}

    def reader(k):                             # the producer takes its time
        for _ in range(3):
            k.noc_semaphore_set(k.get_semaphore(1), 0)
        k.cb_reserve_back(0, 1)
        k.write_l1(k.get_write_ptr(0), np.arange(16, dtype=np.uint32))
        k.cb_push_back(0, 1)
        x, y = k.logical_to_noc(0, 0)
        k.noc_semaphore_inc(k.get_noc_addr(x, y, k.get_semaphore(0)), 1)

    def writer(k):
        n = 0
        while not k.cb_pages_available_at_front(0, 1):
            n += 1
        s = k.get_semaphore(0)
        while k.read_l1(s, 4).view(np.uint32)[0] != 1:
            n += 1
        seen["polls"], seen["t"] = n, k.wall_clock()
        k.cb_wait_front(0, 1)
        seen["data"] = k.read_l1(k.get_read_ptr(0), 64).view(np.uint32).tolist()
        k.cb_pop_front(0, 1)

    _run(dev, reader, writer, sems=(0, 0))
    assert seen["data"] == list(range(16)) and seen["polls"] > 3
    assert seen["t"] > 500 + 3 * 10 + 22


def test_the_cycle_limit_holds_while_a_thread_waits(dev):
    """A wait (a barrier on a slow transfer) past max_cycles is refused, as busy work is."""
    t = dev.zeros((32 * 64, 32 * 12))

    def reader(k):
        g = k.interleaved_addr_gen(t)
        k.cb_reserve_back(0, 2)
        k.noc_async_read_tile(0, g, k.get_write_ptr(0))
        k.noc_async_read_barrier()

    _run(dev, reader, max_cycles=5000)
    with pytest.raises(SimLimitError, match=r"waited \(noc read\) past the cycle limit of 700") as e:
        _run(dev, reader, max_cycles=700)
    _located(e)


def test_a_spin_on_a_value_that_changes_too_late_hits_the_cycle_limit(dev):
    def reader(k):
        k.cb_reserve_back(0, 1)
        for _ in range(1000):
            k.noc_semaphore_set(k.get_semaphore(0), 0)     # busy for 10,000 cycles
        k.cb_push_back(0, 1)

    def writer(k):
        while not k.cb_pages_available_at_front(0, 1):
            pass

    with pytest.raises(SimLimitError) as e:
        _run(dev, reader, writer, sems=(0,), max_cycles=3000)
    assert e.value.thread in ("reader", "writer")


def test_max_cycles_must_be_a_positive_number(dev):
    with pytest.raises(TTSimError, match="max_cycles must be a positive number"):
        _run(dev, lambda k: None, max_cycles=0)


def test_a_ttlang_semaphore_must_fit_a_32_bit_word():
    import ttlang as ttl
    ttl.set_device("wormhole_b0")
    x = ttl.from_numpy(np.ones((32, 32), np.float32))

    @ttl.kernel(grid=(1, 1))
    def k(x):
        ttl.Semaphore(initial_value=1 << 32)

        @ttl.datamovement()
        def dm():
            pass

    with pytest.raises(ttl.CompileError, match=r"whole number in \[0, 2\*\*32 - 1\]"):
        k(x)


def test_a_loop_waiting_on_the_wall_clock_ends(dev):
    seen = {}

    def reader(k):
        t0 = k.wall_clock()
        while k.wall_clock() < t0 + 1000:
            pass
        seen["t"] = k.wall_clock() - t0

    _run(dev, reader)
    assert 1000 <= seen["t"] <= 1002
    with pytest.raises(SimLimitError):
        _run(dev, lambda k: [k.wall_clock() for _ in iter(int, 1)], max_cycles=5000)


# --- arguments of the wrong kind (issue: misuse hunt) ------------------------------------------

def test_a_push_of_an_absurd_page_count_is_refused_at_once(dev):
    """It used to check the NoC landing time of every page up to the count first: a count
    of 2**70 never finished."""
    with pytest.raises(CBError, match=r"push of 1180591620717411303424 pages but only 1 reserved"):
        _run(dev, lambda k: (k.cb_reserve_back(0, 1), k.cb_push_back(0, 1 << 70)))


@pytest.mark.parametrize("cb", [1.0, True, "0", None])
def test_a_cb_index_that_is_not_an_integer_names_no_other_cb(dev, cb):
    """1.0 and True used to find cb 1 (a dict lookup equates them)."""
    with pytest.raises(CBError, match=f"cb index {cb!r} is not an integer") as e:
        _run(dev, lambda k: k.cb_reserve_back(cb, 1))
    _located(e)
    with pytest.raises(CBError, match="is not an integer"):
        _run(dev, lambda k: k.get_write_ptr(cb))


def _one_tile_compute(dev, d=0, i=0, out_index=None, math=None):
    """One tile in, copied into DST d (from page i), `math(k)` before the commit, DST 0
    packed out (at out_index)."""
    x = dev.tensor(np.ones((32, 32), np.float32))

    def reader(k):
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), k.get_write_ptr(0))
        k.noc_async_read_barrier()
        k.cb_push_back(0, 1)

    def compute(k):
        k.cb_wait_front(0, 1)
        k.tile_regs_acquire()
        k.copy_tile(0, i, d)
        if math is not None:
            math(k)
        k.tile_regs_commit()
        k.tile_regs_wait()
        k.cb_reserve_back(16, 1)
        k.pack_tile(0, 16, out_index)
        k.tile_regs_release()

    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, "bf16", num_pages=2)
    prog.circular_buffer((0, 0), 16, "bf16", num_pages=2)
    prog.reader((0, 0), reader)
    prog.compute((0, 0), compute)
    return dev.run(prog)


@pytest.mark.parametrize("d", [1.5, 1.0, None, "0", True])
def test_a_dst_index_that_is_not_an_integer_is_refused(dev, d):
    """Before: an IndexError or TypeError from numpy inside MATH, or (True) a ValueError
    from the packer's broadcast of all eight DST tiles into one page."""
    with pytest.raises(ArgumentError, match=f"DST index {d!r} is not an integer") as e:
        _one_tile_compute(dev, d=d)
    assert e.value.core == (0, 0) and HERE in e.value.line[0]


@pytest.mark.parametrize("i", [0.0, 1.5, None, True])
def test_a_tile_index_that_is_not_an_integer_is_refused(dev, i):
    with pytest.raises(CBError, match=f"tile index {i!r} into cb 0 is not an integer") as e:
        _one_tile_compute(dev, i=i)
    assert e.value.thread == "unpack" and HERE in e.value.line[0]


def test_a_numpy_tile_index_is_taken_as_its_value(dev):
    """np.int8(0) used to make the page's address an int8 (OverflowError)."""
    _one_tile_compute(dev, i=np.int8(0), out_index=np.int8(0))


@pytest.mark.parametrize("out_index", [0.5, 0.0, "0", True])
def test_a_pack_output_index_that_is_not_an_integer_is_refused(dev, out_index):
    with pytest.raises(CBError, match=f"pack_tile output index {out_index!r} into cb 16 is not "
                                      "an integer") as e:
        _one_tile_compute(dev, out_index=out_index)
    assert e.value.thread == "pack"


@pytest.mark.parametrize("call, what", [
    (lambda k: k.noc_async_read(0x20000, k.get_write_ptr(0), 32),
     r"noc_async_read source: 131072 is not a NoC address: make one with get_noc_addr"),
    (lambda k: k.noc_async_read((1, 1, 0x20000), k.get_write_ptr(0), 32),
     r"noc_async_read source: \(1, 1, 131072\) is not a NoC address"),
    (lambda k: k.noc_async_write(k.get_read_ptr(0), 0x20000, 32),
     r"noc_async_write destination: 131072 is not a NoC address"),
    (lambda k: k.noc_async_write(0x20000, k.get_noc_multicast_addr(1, 1, 2, 2, 0x30000), 32),
     r"noc_async_write destination: McastAddr\(.*\) is a multicast address"),
    (lambda k: k.noc_async_write_multicast(0x20000, k.get_noc_addr(1, 1, 0x30000), 32, 1),
     r"multicast destination: NocAddr\(.*\) is a unicast address \(get_noc_addr\): a multicast "
     r"takes one from get_noc_multicast_addr"),
    (lambda k: k.noc_semaphore_set_multicast(k.get_semaphore(0), 0x30000, 1),
     r"multicast destination: 196608 is not a multicast address"),
    (lambda k: k.noc_semaphore_inc(k.get_semaphore(0), 1),
     r"noc_semaphore_inc: \d+ is not a NoC address"),
    (lambda k: k.noc_semaphore_set_remote(k.get_semaphore(0), k.get_semaphore(0)),
     r"noc_semaphore_set_remote: \d+ is not a NoC address"),
    (lambda k: k.noc_async_read_set_state(123),
     r"noc_async_read_set_state source: 123 is not a NoC address"),
    (lambda k: k.noc_async_write_set_state(None),
     r"noc_async_write_set_state destination: None is not a NoC address"),
    (lambda k: k.noc_async_read_tile(0, 0x20000, k.get_write_ptr(0)),
     r"noc_async_read_tile: 131072 is not an address generator: make one with "
     r"interleaved_addr_gen"),
    (lambda k: k.noc_async_write_tile(0, None, k.get_read_ptr(0)),
     r"noc_async_write_tile: None is not an address generator"),
])
def test_an_endpoint_that_is_not_a_noc_address_is_refused_naming_the_call(dev, call, what):
    """Before: AttributeError ('int' object has no attribute 'x') out of ttsim's NoC code."""
    with pytest.raises(ArgumentError, match=what) as e:
        _run(dev, call, sems=(0,))
    _located(e)


def test_kernel_args_out_of_range_are_argument_errors_at_the_call(dev):
    def reader(k):
        k.get_arg_val(2)
    prog = ttsim.Program(dev)
    prog.reader((0, 0), reader, args=[1, 2])
    with pytest.raises(ArgumentError, match=r"runtime arg 2 asked for, but this kernel on core "
                                            r"\(0,0\) has 2 \(indices 0..1\)") as e:
        dev.run(prog)
    _located(e)
    with pytest.raises(ArgumentError, match=r"runtime arg 1.0 asked for"):
        _run(dev, lambda k: k.get_arg_val(1.0))
    with pytest.raises(ArgumentError, match=r"compile-time arg 0 asked for, but the kernel has none"):
        _run(dev, lambda k: k.get_compile_time_arg_val(0))


def test_logical_to_noc_off_the_grid_names_the_kernel_line(dev):
    """Before: a SysdescError whose line was in sysdesc/schema.py."""
    with pytest.raises(NocError, match=r"logical core \(8,0\) is not on the 8x8 worker grid of "
                                       r"wormhole_b0") as e:
        _run(dev, lambda k: k.logical_to_noc(8, 0))
    _located(e)
    with pytest.raises(NocError, match=r"logical core \(0.5,0\)"):
        _run(dev, lambda k: k.logical_to_noc(0.5, 0))


def test_write_l1_of_something_that_is_not_numbers_is_refused(dev):
    with pytest.raises(ArgumentError, match="write_l1: data must be a numpy array .* got str") as e:
        _run(dev, lambda k: k.write_l1(0x20000, "abcd"))
    _located(e)


# --- programs built wrong ----------------------------------------------------------------------

@pytest.mark.parametrize("cores", ["0,0", (0.5, 0), None, (0, 0, 0), [(0, 0, 1)], 7])
def test_cores_that_are_not_cores_are_refused_when_the_program_is_built(dev, cores):
    """Before: TypeError from program.py (str compared with int, float not iterable)."""
    with pytest.raises(TTSimError, match=r"cores .*: give a core \(x, y\) of whole numbers, a list "
                                         r"of them, a CoreRange or \"all\""):
        ttsim.Program(dev).reader(cores, lambda k: None)


def test_numpy_core_coordinates_are_taken_as_their_value(dev):
    prog = ttsim.Program(dev)
    prog.reader((np.int64(1), np.int32(0)), lambda k: None)
    assert prog.kernels[0].cores == [(1, 0)]


def test_a_generator_kernel_is_refused_rather_than_run_as_nothing(dev):
    """A kernel with a `yield` (as in a simpy-style or ported async kernel) returned a
    generator at once: the run 'succeeded' with nothing done."""
    def reader(k):
        k.cb_reserve_back(0, 1)
        yield

    async def writer(k):
        k.cb_wait_front(0, 1)

    with pytest.raises(TTSimError, match="reader kernel reader is a generator function: calling it "
                                         "would not run its body"):
        ttsim.Program(dev).reader((0, 0), reader)
    with pytest.raises(TTSimError, match="writer kernel writer is an async function"):
        ttsim.Program(dev).writer((0, 0), writer)


def test_a_kernel_that_cannot_take_the_context_is_refused_when_built(dev):
    """Before: a KernelError located in ttsim/thread.py."""
    with pytest.raises(TTSimError, match=r"reader kernel r\(k, n\) cannot be called with the "
                                         r"kernel context alone"):
        def r(k, n):
            pass
        ttsim.Program(dev).reader((0, 0), r)
    with pytest.raises(TTSimError, match=r"cannot be called with the kernel context alone"):
        ttsim.Program(dev).writer((0, 0), lambda: None)
    ttsim.Program(dev).writer((0, 0), lambda k, n=1, *rest: None)   # these are fine


@pytest.mark.parametrize("args", [5, "ab", {"a": 1}])
def test_kernel_args_must_be_a_list(dev, args):
    """5 was a TypeError at run; "ab" and a dict became ['a', 'b'] and ['a'] silently."""
    with pytest.raises(TTSimError, match=r"reader kernel <lambda>: args must be a list of values"):
        ttsim.Program(dev).reader((0, 0), lambda k: None, args=args)
    prog = ttsim.Program(dev)
    spec = prog.reader((0, 0), lambda k: None)
    with pytest.raises(TTSimError, match="args must be a list"):
        prog.set_runtime_args(spec, (0, 0), args)


def test_set_runtime_args_and_run_check_what_they_are_given(dev):
    prog = ttsim.Program(dev)
    with pytest.raises(TTSimError, match="set_runtime_args takes the kernel Program.reader/writer/"
                                         "compute returned, got 'reader'"):
        prog.set_runtime_args("reader", (0, 0), [1])
    with pytest.raises(TTSimError, match="Device.run takes a ttsim.Program, got str"):
        dev.run("prog")


@pytest.mark.parametrize("flag", ["fp32_dest_acc_en", "dst_full_sync_en", "math_approx_mode"])
def test_compute_settings_are_true_or_false(dev, flag):
    """fp32_dest_acc_en="no" used to turn fp32 accumulation on (a non-empty string is true)."""
    with pytest.raises(TTSimError, match=f"{flag}='no': a compute setting is True or False"):
        ttsim.Program(dev).compute((0, 0), lambda k: None, **{flag: "no"})


# --- compute calls with wrong arguments --------------------------------------------------------

def _compute_with(dev, math):
    """One tile in, `math(k)` between acquire and commit (a copy_tile into DST 0 first),
    DST 0 packed out."""
    return _one_tile_compute(dev, math=math)


def test_a_second_acquire_before_commit_is_refused(dev):
    """It used to start DST afresh: the copy_tile's tile was silently lost (zeros packed)."""
    with pytest.raises(TTSimError, match="tile_regs_acquire while MATH already holds DST") as e:
        _compute_with(dev, lambda k: k.tile_regs_acquire())
    assert e.value.thread == "math" and HERE in e.value.line[0]


@pytest.mark.parametrize("kw, what", [
    (dict(rt_dim=0), "rt_dim must be a whole number >= 1, got 0"),
    (dict(ct_dim=-1), "ct_dim must be a whole number >= 1, got -1"),
    (dict(kt_dim=0), "kt_dim must be a whole number >= 1, got 0"),
    (dict(ct_dim=1.5), r"ct_dim must be a whole number >= 1, got 1.5 \(not an integer\)"),
    (dict(in1_stride=-1), "in1_stride must be a whole number >= 1, got -1"),
])
def test_matmul_block_dimensions_are_whole_numbers(dev, kw, what):
    """rt_dim=0 was 'DST index -1 out of range'; kt_dim=0 and in1_stride=-1 ran."""
    with pytest.raises(ArgumentError, match=f"matmul_block: {what}"):
        _compute_with(dev, lambda k: k.matmul_block(0, 0, 0, 0, 0, **kw))


@pytest.mark.parametrize("call, what", [
    (lambda k: k.fill_tile(0, None), "fill_tile: value None is not a real number"),
    (lambda k: k.fill_tile(0, "1"), "fill_tile: value '1' is not a real number"),
    (lambda k: k.mul_unary_tile(0, None), r"SFPU scale: parameter None is not a real number"),
    (lambda k: k.sfpu_unary("exp", 0, 1, 2), r"SFPU exp takes 0 scalar parameter\(s\), got 2"),
    (lambda k: k.sfpu_unary("scale", 0), r"SFPU scale takes 1 scalar parameter\(s\), got 0"),
])
def test_sfpu_values_and_parameters_are_checked(dev, call, what):
    """None filled DST with NaN (np.float32(None)) silently; a str or a wrong parameter
    count was a ValueError or TypeError from inside the SFPU model."""
    with pytest.raises(ArgumentError, match=what):
        _compute_with(dev, call)


def test_dest_reuse_names_its_operand_a_or_b(dev):
    """'c' used to be taken as 'b'."""
    with pytest.raises(TTSimError, match=r"dst_as \(the operand DST stands for\) must be one of "
                                         r"a, b; got 'c'"):
        _compute_with(dev, lambda k: k.binary_dest_reuse_tiles("add", 0, 0, 0, "c"))


def test_a_tensor_of_another_device_is_refused_not_read_at_its_address(dev):
    """Its address on this device held another tensor: the kernel read 7.0 for 3.0."""
    other = ttsim.Device("wormhole_b0")
    t = other.tensor(np.full((32, 32), 3.0, np.float32))
    dev.tensor(np.full((32, 32), 7.0, np.float32))
    with pytest.raises(AccessError, match=r"interleaved_addr_gen: tensor \(32, 32\) bf16 .* was "
                                          r"made on another ttsim.Device") as e:
        _run(dev, lambda k: k.interleaved_addr_gen(t))
    _located(e)


def test_a_call_of_the_other_kernel_kind_says_which_kind_it_belongs_to(dev):
    """Before: KernelError wrapping AttributeError ('DataMovementContext' has no
    'tile_regs_acquire'; 'compute kernel API has no noc_async_read_barrier')."""
    def reader(k):
        k.tile_regs_acquire()
    with pytest.raises(TTSimError, match="k.tile_regs_acquire is an API call of the compute kernel; "
                                         "this k belongs to a data-movement kernel") as e:
        _run(dev, reader)
    _located(e)

    def compute(k):
        k.noc_async_read_barrier()
    prog = ttsim.Program(dev)
    prog.compute((0, 0), compute)
    with pytest.raises(TTSimError, match="k.noc_async_read_barrier is an API call of data-movement "
                                         "kernels.*belongs to the compute kernel") as e:
        dev.run(prog)
    _located(e, thread="compute")

    def typo(k):
        k.noc_async_read_barier()
    with pytest.raises(ttsim.KernelError, match="data-movement kernel API has no 'noc_async_read_barier'"):
        _run(dev, typo)


# --- data movement and synchronisation (misuse hunt, round 2) ----------------------------------

def test_a_semaphore_has_one_address_on_every_core_even_when_their_cbs_differ(dev):
    """tt-metal kernels send to a remote semaphore at the address get_semaphore gives them
    locally. Semaphores were allocated after each core's own CBs: with a bigger cb 0 on (1,0)
    its semaphore 0 was 4 KiB higher, the increment landed in (1,0)'s cb 0 and the wait hung
    (a deadlock)."""
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, "bf16", num_pages=2)
    prog.circular_buffer((1, 0), 0, "bf16", num_pages=4)
    s = prog.semaphore([(0, 0), (1, 0)], 0)
    seen = {}

    def writer(k):
        seen[k.core] = k.get_semaphore(s)
        if k.core == (0, 0):
            x, y = k.logical_to_noc(1, 0)
            k.noc_semaphore_inc(k.get_noc_addr(x, y, k.get_semaphore(s)), 1)
        else:
            k.noc_semaphore_wait(k.get_semaphore(s), 1)

    prog.writer([(0, 0), (1, 0)], writer)
    dev.run(prog)
    assert seen[(0, 0)] == seen[(1, 0)]


@pytest.mark.parametrize("op", ["inc", "set_remote", "set_multicast"])
def test_a_remote_semaphore_op_to_a_core_without_that_semaphore_is_refused(dev, op):
    """Core (1,0) runs nothing and has no semaphores: the increment used to go into its
    unallocated L1, silently."""
    def writer(k):
        s = k.get_semaphore(0)
        x, y = k.logical_to_noc(1, 0)
        if op == "inc":
            k.noc_semaphore_inc(k.get_noc_addr(x, y, s), 1)
        elif op == "set_remote":
            k.noc_semaphore_set_remote(s, k.get_noc_addr(x, y, s))
        else:
            x0, y0 = k.logical_to_noc(0, 0)
            k.noc_semaphore_set_multicast(s, k.get_noc_multicast_addr(x0, y0, x, y, s), 1)

    with pytest.raises(AccessError, match=r"to core \(1,0\) at 0x[0-9a-f]+, the address of semaphore "
                                          r"0 here, but core \(1,0\) has no semaphore 0 \(it runs "
                                          r"no kernel of this program\)") as e:
        _run(dev, writer=writer, sems=(0,))
    _located(e, "writer")


def test_a_semaphore_wait_that_can_never_end_names_the_semaphore(dev):
    def reader(k):
        k.noc_semaphore_wait_min(k.get_semaphore(1), 3)

    with pytest.raises(ttsim.DeadlockError, match=r"core \(0,0\) reader: waiting for semaphore 1 "
                                                  r"\(0x[0-9a-f]+\) >= 3 \(now 0\)\n.*test_misuse"):
        _run(dev, reader, sems=(0, 0))


def test_a_transfer_from_a_pages_address_may_not_run_into_the_next_page_in_its_bank(dev):
    """Page 0's address read for two pages gave page 0 and page 12 (the next page in bank 0),
    not pages 0 and 1; the AddrGen said it refused this but checked only the tensor's end."""
    t = dev.empty((32, 32 * 24))                          # two pages in every bank

    def reader(k):
        k.cb_reserve_back(0, 2)
        k.noc_async_read(k.interleaved_addr_gen(t).get_noc_addr(0, 1024), k.get_write_ptr(0), 2048)

    with pytest.raises(AccessError, match=r"from page 0 of tensor \(32, 768\) bf16 .* run past the "
                                          r"end of that page \(0x[0-9a-f]+ in DRAM bank 0\) into "
                                          r"page 12 of the tensor") as e:
        _run(dev, reader)
    _located(e)

    def writer(k):
        k.noc_async_write(k.get_read_ptr(0), k.interleaved_addr_gen(t).get_noc_addr(23), 4096)
    with pytest.raises(AccessError, match="into past the tensor's pages in that bank"):
        _run(dev, writer=writer)


def test_an_address_generator_of_a_tensor_with_another_page_size_is_refused(dev):
    """It silently became a raw generator: page 12 of 1024-B pages is the second half of
    page 0 of the tensor."""
    t = dev.empty((32, 32 * 24))
    with pytest.raises(ArgumentError, match=r"interleaved_addr_gen\(tensor \(32, 768\) bf16 .*, "
                                            r"page_size=1024\): the tensor is interleaved in pages "
                                            r"of 2048 B") as e:
        _run(dev, lambda k: k.interleaved_addr_gen(t, page_size=1024))
    _located(e)
    _run(dev, lambda k: k.interleaved_addr_gen(t, page_size=2048))


def test_a_core_range_far_off_the_grid_is_refused_without_listing_it(dev):
    """CoreRange((0, 0), (10**9, 10**9)) was listed core by core first: out of memory."""
    with pytest.raises(TTSimError, match=r"core \(1000000000,1000000000\) of CoreRange.* is outside "
                                         r"the 8x8 worker grid"):
        ttsim.Program(dev).reader(ttsim.program.CoreRange((0, 0), (10**9, 10**9)), lambda k: None)
    with pytest.raises(TTSimError, match="a CoreRange's start and end are cores"):
        ttsim.Program(dev).reader(ttsim.program.CoreRange((0, 0), 7), lambda k: None)


def test_a_program_run_from_inside_a_running_program_is_refused(dev):
    """The inner run reset every L1's allocations and put its CBs over the outer program's."""
    inner = ttsim.Program(dev)
    inner.circular_buffer((0, 0), 1, "bf16", num_pages=2)
    inner.reader((0, 0), lambda k: None)

    def reader(k):
        dev.run(inner)

    with pytest.raises(TTSimError, match="Device.run while another program is running on this "
                                         "device") as e:
        _run(dev, reader)
    _located(e)
    dev.run(inner)                                        # the device is free again


def test_multicast_to_the_sender_alone_or_with_a_non_integer_count_says_so(dev):
    def to(nd, rect):
        def writer(k):
            x0, y0 = k.logical_to_noc(*rect[0])
            x1, y1 = k.logical_to_noc(*rect[1])
            k.noc_async_write_multicast(k.get_read_ptr(0), k.get_noc_multicast_addr(
                x0, y0, x1, y1, k.get_read_ptr(0)), 64, nd)
        return writer

    with pytest.raises(NocError, match=r"holds no worker core but the sender, which a multicast "
                                       r"without loopback skips") as e:
        _run(dev, writer=to(1, ((0, 0), (0, 0))))
    _located(e, "writer")
    with pytest.raises(ArgumentError, match=r"multicast num_dests 2.0 is not an integer \(the "
                                            r"rectangle holds 2 destination cores\)"):
        _run(dev, writer=to(2.0, ((0, 0), (2, 0))), cores=((0, 0), (1, 0), (2, 0)))


# --- DRAM nothing wrote ---------------------------------------------------------------------

def _copy_pages(src, dst, pages):
    """A reader/writer pair moving `pages` of src to the same pages of dst through CB 0."""
    def reader(k):
        g = k.interleaved_addr_gen(src)
        for p in pages:
            k.cb_reserve_back(0, 1)
            k.noc_async_read_tile(p, g, k.get_write_ptr(0))
            k.noc_async_read_barrier()
            k.cb_push_back(0, 1)

    def writer(k):
        g = k.interleaved_addr_gen(dst)
        for p in pages:
            k.cb_wait_front(0, 1)
            k.noc_async_write_tile(p, g, k.get_read_ptr(0))
            k.noc_async_write_barrier()
            k.cb_pop_front(0, 1)
    return reader, writer


def test_a_read_of_dram_nothing_wrote_gives_nan_and_a_warning_naming_where(dev):
    """The chip does not clear DRAM: an empty tensor read by a kernel gives garbage there. The
    run goes on (timing-only programs read such buffers on purpose), the values are NaN, not
    plausible zeros, and the report and a TTSimWarning say which core, thread, line, page."""
    src, dst = dev.empty((32, 32 * 3)), dev.empty((32, 32 * 3))
    reader, writer = _copy_pages(src, dst, [0, 1, 1])
    with pytest.warns(ttsim.errors.TTSimWarning, match="page 0 of tensor"):
        rep = _run(dev, reader, writer)
    assert len(rep.warnings) == 2                            # pages 0 and 1, same line
    w0, w1 = rep.warnings
    assert "page 0 of tensor (32, 96) bf16" in w0 and "nothing has written" in w0
    assert "core (0,0) reader, " in w0 and f"{HERE}:{_line_of(reader, 'noc_async_read_tile')}" in w0
    assert "page 1 of tensor" in w1 and "(2 times)" in w1
    assert "warning: noc_async_read_tile reads page 0" in rep.summary()
    assert rep.to_dict()["warnings"] == rep.warnings
    out = dst.to_numpy()
    assert np.isnan(out[:, :64]).all()                       # copied garbage: NaN
    assert np.isnan(out[:, 64:]).all()                       # never written at all: NaN


def test_dram_the_host_or_a_kernel_wrote_reads_without_a_warning(dev, recwarn):
    x = np.arange(32 * 96, dtype=np.float32).reshape(32, 96)
    src, mid, dst = dev.tensor(x), dev.empty((32, 96)), dev.empty((32, 96))
    rep = _run(dev, *_copy_pages(src, mid, [0, 1, 2]))
    rep2 = _run(dev, *_copy_pages(mid, dst, [0, 1, 2]))       # a later run reads what one wrote
    assert rep.warnings == rep2.warnings == []
    assert not [w for w in recwarn if issubclass(w.category, ttsim.errors.TTSimWarning)]
    np.testing.assert_array_equal(dst.to_numpy(), ttsim.formats.quantize(x, "bf16"))


@pytest.mark.parametrize("fmt", ["bf16", "fp32", "bfp8_b"])
def test_pages_nothing_wrote_read_back_as_nan_on_the_host(dev, fmt):
    x = np.ones((32, 32 * 4), np.float32)
    src, dst = dev.tensor(x, fmt), dev.empty((32, 32 * 4), fmt)
    reader, writer = _copy_pages(src, dst, [2])
    prog = ttsim.Program(dev)
    prog.circular_buffer([(0, 0)], 0, fmt, num_pages=2)
    prog.reader([(0, 0)], reader)
    prog.writer([(0, 0)], writer)
    dev.run(prog)
    out = dst.to_numpy()
    np.testing.assert_array_equal(out[:, 64:96], 1.0)
    assert np.isnan(np.delete(out, np.s_[64:96], axis=1)).all()


def test_warnings_are_kept_once_per_place_and_capped(dev):
    src = dev.empty((32, 32 * 40))

    def reader(k):
        g = k.interleaved_addr_gen(src)
        k.cb_reserve_back(0, 1)
        for p in range(40):
            k.noc_async_read_tile(p, g, k.get_write_ptr(0))
        k.noc_async_read_barrier()

    with pytest.warns(ttsim.errors.TTSimWarning, match=r"and 19 more in RunReport.warnings"):
        rep = _run(dev, reader)
    assert len(rep.warnings) == 20 and "page 19 of" in rep.warnings[-1]


# --- read_l1 of CB pages ---------------------------------------------------------------------

def _peek_run(dev, consumer_peek):
    """The reader fills CB 0 one page at a time from a written tensor (it may read its own
    reserved page); the writer runs consumer_peek(k, addr) around its wait and pop."""
    t = dev.tensor(np.full((32, 64), 2.0, np.float32))
    seen = []

    def reader(k):
        g = k.interleaved_addr_gen(t)
        for p in range(2):
            k.cb_reserve_back(0, 1)
            k.noc_async_read_tile(p, g, k.get_write_ptr(0))
            k.noc_async_read_barrier()
            seen.append(k.read_l1(k.get_write_ptr(0), 16))      # the producer's own page
            k.cb_push_back(0, 1)

    def writer(k):
        consumer_peek(k, seen)
    _run(dev, reader, writer, cbs=((0, 2),))
    return seen


def test_read_l1_of_a_waited_page_and_of_the_producers_own_page_are_fine(dev):
    def writer(k, seen):
        for _ in range(2):
            k.cb_wait_front(0, 1)
            seen.append(k.read_l1(k.get_read_ptr(0), 16))
            k.cb_pop_front(0, 1)
    seen = _peek_run(dev, writer)
    assert len(seen) == 4 and all(s.view(np.uint16)[0] == 0x4000 for s in seen)   # bf16 2.0


@pytest.mark.parametrize("when", ["before any push", "after the push, before the wait"])
def test_read_l1_of_a_cb_page_the_consumer_has_not_waited_for_is_refused(dev, when):
    def writer(k, seen):
        if when != "before any push":
            k.cb_wait_front(0, 1)        # page 0 waited; page 1 is pushed later
            while not k.cb_pages_available_at_front(0, 2):
                pass
            addr = k.get_read_ptr(0) + 2048
        else:
            addr = k.get_read_ptr(0)
        k.read_l1(addr, 16)
    with pytest.raises(CBError, match="by reader but not waited for: only cb_wait_front") as e:
        _peek_run(dev, writer)
    msg = _located(e, "writer")
    assert ("reserved and not yet pushed" if when == "before any push" else "which is pushed") in msg


def test_read_l1_of_a_popped_page_is_refused(dev):
    def writer(k, seen):
        k.cb_wait_front(0, 1)
        addr = k.get_read_ptr(0)
        k.cb_pop_front(0, 1)
        k.cb_wait_front(0, 1)
        k.cb_pop_front(0, 1)
        k.read_l1(addr, 16)
    with pytest.raises(CBError, match="which is free \\(popped, and not reserved again\\)"):
        _peek_run(dev, writer)


def test_a_k_used_by_another_running_kernel_is_refused(dev):
    """The writer calls the reader's k while the reader still runs: the call would charge the
    reader's clock and act as the reader; it is refused, naming both."""
    shared = {}

    def reader(k):
        shared["k"] = k
        k.cb_wait_front(1, 1)            # stays alive: nothing ever pushes cb 1

    def writer(k):
        shared["k"].cb_reserve_back(0, 1)

    with pytest.raises(TTSimError, match=r"k of core \(0,0\) reader is used by core \(0,0\) writer") as e:
        _run(dev, reader, writer)
    _located(e, "writer")
    assert e.value.line[1] == _line_of(writer, "cb_reserve_back")


def _writers_of(dev, out, pages_of, reps=1):
    """Every core writes pages_of(core) of `out` (from its CB 0) `reps` times."""
    def writer(k):
        g = k.interleaved_addr_gen(out)
        k.cb_reserve_back(0, 1)
        k.write_l1(k.get_write_ptr(0), np.zeros(2048, np.uint8))
        for _ in range(reps):
            for p in pages_of(k.core):
                k.noc_async_write_tile(p, g, k.get_write_ptr(0))
                k.noc_async_write_barrier()
    return writer


def test_two_kernels_writing_the_same_dram_bytes_get_a_warning_naming_both(dev):
    out = dev.zeros((32, 32 * 4))
    w = _writers_of(dev, out, lambda c: [0, c[0] + 1])          # page 0 on both cores
    with pytest.warns(ttsim.errors.TTSimWarning, match="also wrote in this run"):
        rep = _run(dev, writer=w, cores=((0, 0), (1, 0)))
    assert len(rep.warnings) == 1
    assert "writes page 0 of tensor (32, 128) bf16" in rep.warnings[0]
    assert "which core (0,0) writer also wrote" in rep.warnings[0]
    assert "at core (1,0) writer" in rep.warnings[0]


def test_own_rewrites_distinct_pages_and_a_later_run_are_not_races(dev, recwarn):
    out = dev.zeros((32, 32 * 4))
    w = _writers_of(dev, out, lambda c: [c[0]], reps=2)          # each core its own page, twice
    reps = [_run(dev, writer=w, cores=((0, 0), (1, 0))) for _ in range(2)]
    assert [r.warnings for r in reps] == [[], []]
    assert not [x for x in recwarn if issubclass(x.category, ttsim.errors.TTSimWarning)]


def test_a_fractional_cycle_limit_is_printed_as_given(dev):
    with pytest.raises(SimLimitError, match=r"cycle limit of 700\.5 cycles"):
        _run(dev, lambda k: [k.noc_async_read_barrier() for _ in range(1000)], max_cycles=700.5)


@pytest.mark.parametrize("fmt", ["bf16", "fp32"])
def test_an_l1_tensor_nothing_wrote_holds_nan(dev, fmt):
    """L1 is not cleared either: an empty L1 tensor's pages hold NaN, on the host and as a
    kernel reads them."""
    src, dst = dev.empty((32, 32 * 4), fmt, memory="l1"), dev.empty((32, 32 * 4), fmt)
    assert np.isnan(src.to_numpy()).all()
    reader, writer = _copy_pages(src, dst, [0, 1, 2, 3])
    prog = ttsim.Program(dev)
    prog.circular_buffer([(0, 0)], 0, fmt, num_pages=2)
    prog.reader([(0, 0)], reader)
    prog.writer([(0, 0)], writer)
    dev.run(prog)
    assert np.isnan(dst.to_numpy()).all()


def test_a_dram_read_before_another_kernels_write_lands_is_a_warning(dev):
    """Core (1,0) reads a page core (0,0) is still writing (no barrier, no semaphore between
    them): the chip may return the old data; the simulator warns, naming both. With the
    writer's barrier and a semaphore in between, no warning."""
    out = dev.zeros((32, 32 * 4))

    def writer(k, ordered):
        k.cb_reserve_back(0, 1)
        k.write_l1(k.get_write_ptr(0), np.zeros(2048, np.uint8))
        k.noc_async_write_tile(0, k.interleaved_addr_gen(out), k.get_write_ptr(0))
        if ordered:
            k.noc_async_write_barrier()
            x, y = k.logical_to_noc(1, 0)
            k.noc_semaphore_inc(k.get_noc_addr(x, y, k.get_semaphore(0)), 1)

    def reader(k, ordered):
        if ordered:
            k.noc_semaphore_wait(k.get_semaphore(0), 1)
        else:
            for _ in range(3):
                k.get_arg_val(0)                    # a few cycles: the write is under way
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(out), k.get_write_ptr(0))
        k.noc_async_read_barrier()

    def run(ordered):
        prog = ttsim.Program(dev)
        prog.circular_buffer([(0, 0), (1, 0)], 0, "bf16", num_pages=2)
        prog.semaphore([(0, 0), (1, 0)], 0)
        prog.writer([(0, 0)], lambda k: writer(k, ordered))
        prog.reader([(1, 0)], lambda k: reader(k, ordered), args=[0])
        return dev.run(prog)
    with pytest.warns(ttsim.errors.TTSimWarning, match="before core \\(0,0\\) writer's write of it"):
        rep = run(False)
    assert len(rep.warnings) == 1 and "reads page 0 of tensor (32, 128) bf16" in rep.warnings[0]
    assert "at core (1,0) reader" in rep.warnings[0]
    assert run(True).warnings == []


def test_a_read_l1_of_scratch_before_a_remote_write_lands_is_a_warning(dev):
    """Core (0,0) writes into core (1,0)'s unallocated L1 over the NoC while core (1,0) reads
    those bytes now and then: the reads between the write's issue and its landing may see
    the old bytes on the chip (the simulator has the new ones). (A CB page read that early
    is an error of its own; this is scratch L1.)"""
    scratch = 0x60000
    seen = []

    def writer(k):
        k.cb_reserve_back(0, 1)
        k.write_l1(k.get_write_ptr(0), np.full(2048, 0xFF, np.uint8))
        x, y = k.logical_to_noc(1, 0)
        k.noc_async_write(k.get_write_ptr(0), k.get_noc_addr(x, y, scratch), 2048)
        k.noc_async_write_barrier()

    def reader(k):
        while not seen or not seen[-1]:
            seen.append(int(k.read_l1(scratch, 4)[0]))

    prog = ttsim.Program(dev)
    prog.circular_buffer([(0, 0), (1, 0)], 0, "bf16", num_pages=2)
    prog.writer([(0, 0)], writer)
    prog.reader([(1, 0)], reader, args=[0])
    with pytest.warns(ttsim.errors.TTSimWarning, match="before core \\(0,0\\) writer's NoC write there lands"):
        rep = dev.run(prog)
    assert len(rep.warnings) == 1 and "read_l1 at cycle" in rep.warnings[0]
    assert "of core (1,0)'s L1 (in unallocated L1)" in rep.warnings[0]
    assert "at core (1,0) reader" in rep.warnings[0]
    assert seen[0] == 0 and seen[-1] == 0xFF
