"""Bad kernels and bad programs give errors that name core, thread, buffer and line."""
import numpy as np
import pytest

import ttsim


def _line_of(fn, text):
    import inspect
    src, start = inspect.getsourcelines(fn)
    for i, l in enumerate(src):
        if text in l:
            return start + i
    raise AssertionError(text)


def test_deadlock_names_every_blocked_thread_and_line(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((1, 2), 0, num_pages=2)
    prog.circular_buffer((1, 2), 1, num_pages=2)

    def reader(k):
        k.cb_wait_front(1, 1)          # nobody ever pushes cb 1

    def writer(k):
        k.cb_wait_front(0, 1)          # nobody ever pushes cb 0

    prog.reader((1, 2), reader)
    prog.writer((1, 2), writer)
    with pytest.raises(ttsim.DeadlockError) as e:
        dev.run(prog)
    msg = str(e.value)
    assert "core (1,2) reader" in msg and "core (1,2) writer" in msg
    assert "cb 1" in msg and "cb 0" in msg
    assert f":{_line_of(reader, 'cb_wait_front(1, 1)')}" in msg
    assert f":{_line_of(writer, 'cb_wait_front(0, 1)')}" in msg


def test_deadlock_on_semaphore(dev):
    prog = ttsim.Program(dev)
    sem = prog.semaphore((0, 0), initial=0)

    def reader(k):
        k.noc_semaphore_wait(k.get_semaphore(sem), 1)

    prog.reader((0, 0), reader)
    with pytest.raises(ttsim.DeadlockError, match=r"semaphore .* == 1"):
        dev.run(prog)


def test_pop_without_wait(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 3, num_pages=2)

    def writer(k):
        k.cb_pop_front(3, 1)

    prog.writer((0, 0), writer)
    with pytest.raises(ttsim.CBError) as e:
        dev.run(prog)
    assert "cb 3" in str(e.value) and "waited" in str(e.value)
    assert e.value.core == (0, 0) and e.value.thread == "writer"
    assert e.value.line[1] == _line_of(writer, "cb_pop_front")


def test_push_without_reserve(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=2)
    prog.reader((0, 0), lambda k: k.cb_push_back(0, 1))
    with pytest.raises(ttsim.CBError, match="reserved"):
        dev.run(prog)


def test_reserve_more_than_capacity(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=2)
    prog.reader((0, 0), lambda k: k.cb_reserve_back(0, 3))
    with pytest.raises(ttsim.CBError, match="holds only 2"):
        dev.run(prog)


def test_two_threads_on_one_cb_end(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=2)
    prog.reader((0, 0), lambda k: (k.cb_reserve_back(0, 1), k.cb_push_back(0, 1)))
    prog.writer((0, 0), lambda k: (k.cb_reserve_back(0, 1), k.cb_push_back(0, 1)))
    with pytest.raises(ttsim.CBError, match="producer"):
        dev.run(prog)


def test_unallocated_cb(dev):
    prog = ttsim.Program(dev)
    prog.reader((0, 0), lambda k: k.cb_reserve_back(5, 1))
    with pytest.raises(ttsim.CBError, match="cb 5 is not allocated"):
        dev.run(prog)


def test_l1_overflow_names_core_and_buffer(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((2, 3), 0, "fp32", num_pages=200)
    prog.circular_buffer((2, 3), 1, "fp32", num_pages=200)
    prog.reader((2, 3), lambda k: None)
    with pytest.raises(ttsim.L1OverflowError) as e:
        dev.run(prog)
    assert "core (2,3)" in str(e.value) and "cb 1" in str(e.value)


def test_dst_overflow_names_line(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=1)
    a = dev.tensor(np.ones((32, 32), np.float32))

    def reader(k):
        k.cb_reserve_back(0, 1)
        k.noc_async_read_tile(0, k.interleaved_addr_gen(a), k.get_write_ptr(0))
        k.noc_async_read_barrier()
        k.cb_push_back(0, 1)

    def compute(k):
        k.cb_wait_front(0, 1)
        k.tile_regs_acquire()
        k.copy_tile(0, 0, 8)           # half-sync 16-bit DST holds 8 tiles: 0..7

    prog.reader((0, 0), reader)
    prog.compute((0, 0), compute)
    with pytest.raises(ttsim.DstOverflowError) as e:
        dev.run(prog)
    assert "DST index 8" in str(e.value) and "8 tiles" in str(e.value)
    assert e.value.line[1] == _line_of(compute, "copy_tile(0, 0, 8)")


def test_full_sync_doubles_dst(dev):
    """In full-sync mode index 8 is legal (16 tiles); 16 is not."""
    for d, ok in ((8, True), (16, False)):
        prog = ttsim.Program(dev)

        def compute(k, d=d):
            k.tile_regs_acquire()
            k.fill_tile(d, 1.0)
            k.tile_regs_commit()
            k.tile_regs_wait()
            k.tile_regs_release()

        prog.compute((0, 0), compute, dst_full_sync_en=True)
        if ok:
            dev.run(prog)
        else:
            with pytest.raises(ttsim.DstOverflowError, match="full-sync"):
                dev.run(prog)


def test_kernel_exception_names_core_thread_and_line(dev):
    prog = ttsim.Program(dev)

    def writer(k):
        x = {}
        return x["missing"]

    prog.writer((3, 1), writer)
    with pytest.raises(ttsim.KernelError) as e:
        dev.run(prog)
    assert "KeyError" in str(e.value) and "core (3,1) writer" in str(e.value)
    assert e.value.line[1] == _line_of(writer, 'x["missing"]')


def test_endless_kernel_hits_the_cycle_limit(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=2)

    def reader(k):
        while True:
            k.cb_reserve_back(0, 1)

    prog.reader((0, 0), reader)
    with pytest.raises(ttsim.SimLimitError):
        dev.run(prog, max_cycles=1e5)


def test_noc_read_off_the_grid(dev):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=1)
    prog.reader((0, 0), lambda k: k.noc_async_read(k.get_noc_addr(7, 6, 0), k.get_write_ptr(0), 64))
    with pytest.raises(ttsim.NocError, match="neither a worker core nor a DRAM bank"):
        dev.run(prog)


def test_core_outside_grid(dev):
    prog = ttsim.Program(dev)
    with pytest.raises(ttsim.TTSimError, match="outside the 8x8 worker grid"):
        prog.reader((8, 0), lambda k: None)


def test_unknown_sfpu_op_names_the_op_and_line(dev):
    prog = ttsim.Program(dev)

    def compute(k):
        k.tile_regs_acquire()
        k.fill_tile(0, 1.0)
        k.sfpu_unary("cosh", 0)

    prog.compute((0, 0), compute)
    with pytest.raises(ttsim.TTSimError, match="unknown SFPU unary op 'cosh'") as e:
        dev.run(prog)
    assert f":{_line_of(compute, 'cosh')}" in str(e.value) and "core (0,0) math" in str(e.value)


@pytest.mark.parametrize("exc", [SystemExit(3), GeneratorExit()])
def test_sys_exit_in_a_kernel_is_a_kernel_error_not_the_end_of_the_process(dev, exc):
    """SystemExit and GeneratorExit went straight through the engine."""
    def reader(k):
        raise exc
    prog = ttsim.Program(dev)
    prog.reader((0, 0), reader)
    with pytest.raises(ttsim.KernelError, match=f"{type(exc).__name__} in kernel reader") as e:
        dev.run(prog)
    assert e.value.line[1] == _line_of(reader, "raise exc")


def test_a_kernel_context_kept_past_its_kernel_is_refused(dev):
    """A reader's k kept and used by the writer made the reader's CB calls (on the finished
    reader's clock); kept past the run, it changed the CB state of a run that is over."""
    kept = {}

    def reader(k):
        kept["k"] = k
        k.cb_reserve_back(0, 1)

    def writer(k):
        for _ in range(5):
            k.wall_clock()
        kept["k"].cb_push_back(0, 1)

    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, num_pages=2)
    prog.reader((0, 0), reader)
    prog.writer((0, 0), writer)
    with pytest.raises(ttsim.TTSimError, match=r"the kernel context k of core \(0,0\) reader is "
                                               r"used after that kernel returned") as e:
        dev.run(prog)
    assert e.value.thread == "writer" and e.value.line[1] == _line_of(writer, 'kept["k"]')
    with pytest.raises(ttsim.TTSimError, match="used after that kernel returned"):
        kept["k"].cb_reserve_back(0, 1)
