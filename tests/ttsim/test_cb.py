"""CB pages hold only what was written for them: stale or unreserved pages are refused
where they are read or written, naming core, thread, cb and line."""
import numpy as np
import pytest

import ttsim


@pytest.fixture
def x(dev):
    return dev.tensor(np.arange(64 * 32, dtype=np.float32).reshape(64, 32))


def _run(dev, reader=None, compute=None, writer=None, pages=2, cbs=(0, 16), cores=((0, 0),)):
    prog = ttsim.Program(dev)
    for cb in cbs:
        prog.circular_buffer(list(cores), cb, "bf16", num_pages=pages)
    for add, fn in ((prog.reader, reader), (prog.compute, compute), (prog.writer, writer)):
        if fn is not None:
            add(list(cores), fn)
    return dev.run(prog)


def _copy_out(k):
    k.cb_wait_front(0, 1)
    k.tile_regs_acquire()
    k.copy_tile(0, 0, 0)
    k.tile_regs_commit()
    k.cb_pop_front(0, 1)
    k.tile_regs_wait()
    k.cb_reserve_back(16, 1)
    k.pack_tile(0, 16)
    k.cb_push_back(16, 1)
    k.tile_regs_release()


def test_unpacking_a_page_pushed_without_data_is_an_error(dev, x):
    def reader(k):
        g = k.interleaved_addr_gen(x)
        k.cb_reserve_back(0, 2)
        k.noc_async_read_tile(0, g, k.get_write_ptr(0))    # only the first of the two pages
        k.noc_async_read_barrier()
        k.cb_push_back(0, 2)

    def compute(k):
        _copy_out(k)
        _copy_out(k)          # the second page: never written

    with pytest.raises(ttsim.CBError, match="nothing has written") as e:
        _run(dev, reader, compute)
    assert e.value.cb == 0 and e.value.thread == "unpack"
    assert "_copy_out" not in str(e.value) and "copy_tile" in str(e.value)


def test_a_page_reused_after_pop_is_stale_until_written_again(dev, x):
    """Round two pushes the slot round one used without writing it: its old tile is there,
    and reading it would silently repeat round one's data."""
    def reader(k):
        g = k.interleaved_addr_gen(x)
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, g, k.get_write_ptr(0))
        k.noc_async_read_barrier()
        k.cb_push_back(0, 1)
        k.cb_reserve_back(0, 1)
        k.cb_push_back(0, 1)

    def compute(k):
        _copy_out(k)
        _copy_out(k)

    with pytest.raises(ttsim.CBError, match="nothing has written"):
        _run(dev, reader, compute, pages=1)


def test_accumulating_pack_into_a_fresh_page_is_an_error(dev, x):
    def reader(k):
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), k.get_write_ptr(0))
        k.noc_async_read_barrier()
        k.cb_push_back(0, 1)

    def compute(k):
        k.cb_wait_front(0, 1)
        k.tile_regs_acquire()
        k.copy_tile(0, 0, 0)
        k.tile_regs_commit()
        k.tile_regs_wait()
        k.cb_reserve_back(16, 1)
        k.pack_tile(0, 16, accumulate=True)

    with pytest.raises(ttsim.CBError, match=r"pack_tile\(accumulate=True\) reads page 0 of cb 16"):
        _run(dev, reader, compute)


def test_accumulating_pack_after_a_plain_one_sums(dev, x):
    def reader(k):
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), k.get_write_ptr(0))
        k.noc_async_read_barrier()
        k.cb_push_back(0, 1)

    def compute(k):
        k.cb_wait_front(0, 1)
        k.cb_reserve_back(16, 1)
        for acc in (False, True):
            k.tile_regs_acquire()
            k.copy_tile(0, 0, 0)
            k.tile_regs_commit()
            k.tile_regs_wait()
            k.pack_tile(0, 16, 0, accumulate=acc)
            k.tile_regs_release()
        k.cb_push_back(16, 1)

    out = dev.empty((32, 32))

    def writer(k):
        k.cb_wait_front(16, 1)
        k.noc_async_write_tile(0, k.interleaved_addr_gen(out), k.get_read_ptr(16))
        k.noc_async_write_barrier()
        k.cb_pop_front(16, 1)

    _run(dev, reader, compute, writer)
    np.testing.assert_array_equal(out.to_numpy(), 2 * x.to_numpy()[:32])


def test_noc_read_that_runs_past_the_end_of_a_cb_is_an_error(dev, x):
    """Two pages into the last page of a two-page CB: the second would land in the next CB."""
    big = dev.empty((32 * 24, 32))        # two pages in every DRAM bank

    def reader(k):
        k.cb_reserve_back(0, 2)
        x, y = k.interleaved_addr_gen(big).banks[0]       # a raw address: pages 0 and 12
        k.noc_async_read(k.get_noc_addr(x, y, big.address), k.get_write_ptr(0) + 2048, 4096)

    with pytest.raises(ttsim.CBError, match="run outside cb 0") as e:
        _run(dev, reader)
    assert e.value.thread == "reader" and "get_write_ptr(0) + 2048" in str(e.value)


def test_noc_read_that_lands_in_another_cbs_unreserved_page_is_an_error(dev, x):
    """Five pages past the write pointer of a two-page CB is page 1 of the next one."""
    def reader(k):
        k.cb_reserve_back(16, 1)      # cb 16 is in use: its page 1 belongs to its protocol
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), k.get_write_ptr(0) + 3 * 2048)

    with pytest.raises(ttsim.CBError, match="writes page 1 of cb 16, which is not reserved"):
        _run(dev, reader)


def test_noc_read_into_an_unreserved_page_is_an_error(dev, x):
    def reader(k):
        g = k.interleaved_addr_gen(x)
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, g, k.get_write_ptr(0) + 2048)   # page 1: not reserved

    with pytest.raises(ttsim.CBError, match="writes page 1 of cb 0, which is not reserved"):
        _run(dev, reader)


def test_writing_out_a_popped_page_is_an_error(dev, x):
    out = dev.empty((32, 32))

    def reader(k):
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), k.get_write_ptr(0))
        k.noc_async_read_barrier()
        k.cb_push_back(0, 1)

    def writer(k):
        k.cb_wait_front(0, 1)
        p = k.get_read_ptr(0)
        k.cb_pop_front(0, 1)
        k.noc_async_write_tile(0, k.interleaved_addr_gen(out), p)

    with pytest.raises(ttsim.CBError, match="neither reserved nor pushed"):
        _run(dev, reader, writer=writer, pages=1)


def test_multicast_into_a_receiver_that_has_not_reserved_is_an_error(dev, x):
    cores = [(0, 0), (1, 0)]

    def reader(k):
        if k.core != (0, 0):
            return
        k.cb_reserve_back(0, 1)
        p = k.get_write_ptr(0)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), p)
        k.noc_async_read_barrier()
        x1, y1 = k.logical_to_noc(1, 0)
        k.noc_async_write_multicast(p, k.get_noc_multicast_addr(x1, y1, x1, y1, p), 2048, 1)

    def writer(k):           # core (1,0) reserves, so cb 0 there is in use, but not that page
        if k.core == (1, 0):
            k.cb_reserve_back(0, 1)
            k.cb_push_back(0, 1)

    with pytest.raises(ttsim.CBError, match=r"on core \(1,0\)") as e:
        _run(dev, reader, writer=writer, cores=cores, cbs=(0,))
    assert e.value.core == (0, 0)


def test_a_cb_never_reserved_is_scratch_l1(dev, x):
    """tt-metal kernels use an unused CB's address as plain L1: reads and writes are only
    bounds-checked until someone reserves it."""
    def reader(k):
        p = k.get_write_ptr(0)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), p)
        k.noc_async_read_tile(1, k.interleaved_addr_gen(x), p + 2048)
        k.noc_async_read_barrier()
        k.write_l1(p, k.read_l1(p + 2048, 2048))

    _run(dev, reader)
    with pytest.raises(ttsim.CBError, match="run outside cb 0"):
        _run(dev, lambda k: k.write_l1(k.get_write_ptr(0) + 4000, np.zeros(200, np.uint8)))
    with pytest.raises(ttsim.CBError, match="run outside cb 16"):    # from below, into it
        _run(dev, lambda k: k.write_l1(k.get_write_ptr(16) - 8, np.zeros(16, np.uint8)), cbs=(16,))


def test_pushing_a_page_before_its_noc_read_lands_is_an_error(dev, x):
    """No noc_async_read_barrier before cb_push_back: the consumer could read the page
    before the data is in it (the chip would hand on whatever the page held)."""
    def reader(k):
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), k.get_write_ptr(0))
        k.cb_push_back(0, 1)

    with pytest.raises(ttsim.CBError, match=r"cb_push_back pushes page 0 of cb 0 at cycle [\d,]+, "
                       r"before the NoC data written into it lands \(cycle [\d,]+\)") as e:
        _run(dev, reader, _copy_out)
    assert e.value.thread == "reader" and e.value.cb == 0 and "cb_push_back" in str(e.value)
    # with the barrier the same program runs
    def ok(k):
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(x), k.get_write_ptr(0))
        k.noc_async_read_barrier()
        k.cb_push_back(0, 1)
    _run(dev, ok, _copy_out)


def test_rewriting_a_page_a_noc_write_still_reads_out_is_an_error(dev, x):
    """The writer pops a page without waiting for its write to DRAM; the reader reserves the
    slot again and a short read lands in it while the long write is still reading the old
    data out: the chip would send the new bytes."""
    big = 32 * 2048

    def reader(k):
        src = k.get_noc_addr(*k.logical_to_noc(1, 0), 0x30000)
        for _ in range(2):
            k.cb_reserve_back(0, 1)
            k.noc_async_read(src, k.get_write_ptr(0), 64)
            k.noc_async_read_barrier()
            k.cb_push_back(0, 1)

    def writer(k, barrier):
        for i in range(2):
            k.cb_wait_front(0, 1)
            k.noc_async_write(k.get_read_ptr(0), k.get_noc_addr(*k.logical_to_noc(1, 0),
                                                                   0x40000 + i * big), big)
            if barrier:
                k.noc_async_write_barrier()
            k.cb_pop_front(0, 1)
        k.noc_async_write_barrier()

    def run(barrier):
        prog = ttsim.Program(dev)
        prog.circular_buffer([(0, 0)], 0, "bf16", num_pages=1, page_size=big)
        prog.reader([(0, 0)], reader)
        prog.writer([(0, 0)], lambda k: writer(k, barrier))
        return dev.run(prog)

    with pytest.raises(ttsim.CBError, match=r"a NoC transfer writes page 0 of cb 0 \(done at "
                       r"cycle [\d,]+\) while a NoC write still reads its previous data") as e:
        run(False)
    assert e.value.thread == "reader"
    assert run(True).cycles > 0


def test_read_l1_of_a_page_after_its_pop_is_an_error(dev):
    """The page is free once popped: its producer may be writing the next page into it. It
    used to return the old bytes (or the new ones, depending on timing)."""
    def reader(k):
        k.cb_reserve_back(0, 1)
        k.write_l1(k.get_write_ptr(0), np.arange(16, dtype=np.uint8))
        k.cb_push_back(0, 1)

    def writer(k):
        k.cb_wait_front(0, 1)
        p = k.get_read_ptr(0)
        k.read_l1(p, 16)                                  # fine: waited for
        k.cb_pop_front(0, 1)
        k.read_l1(p, 16)

    with pytest.raises(ttsim.CBError, match=r"read_l1 reads page 0 of cb 0, which is free \(popped, "
                                            r"and not reserved again\)") as e:
        _run(dev, reader, writer=writer, cbs=(0,))
    import inspect
    src, first = inspect.getsourcelines(writer)
    assert e.value.thread == "writer" and e.value.line[1] == first + len(src) - 1
