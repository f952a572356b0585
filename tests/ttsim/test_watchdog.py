"""A kernel that loops in Python without an API call that waits is a SpinError at its line
after the watchdog's limit (ttsim.watchdog), not a hang; runs that keep making progress,
however long, and a real Ctrl-C are left alone. (ttlang's threads: tests/ttlang/test_runaway.py.)"""
import inspect
import time

import numpy as np
import pytest

import ttsim
from ttsim import watchdog
from ttsim.errors import SpinError

LIMIT = 0.6


@pytest.fixture(autouse=True)
def short_limit(monkeypatch):
    monkeypatch.setattr(watchdog, "SPIN_SECONDS", LIMIT)


def _line_of(fn, text):
    src, first = inspect.getsourcelines(fn)
    return first + next(i for i, s in enumerate(src) if text in s)


def _prog(dev, reader=None, writer=None, compute=None):
    prog = ttsim.Program(dev)
    prog.circular_buffer([(0, 0)], 0, "bf16", num_pages=2)
    if reader:
        prog.reader([(0, 0)], reader)
    if writer:
        prog.writer([(0, 0)], writer)
    if compute:
        prog.compute([(0, 0)], compute)
    return prog


def _spin(k):
    n = 0
    while n >= 0:
        n += 1


def test_a_kernel_spinning_without_api_calls_is_a_spin_error_at_its_line(dev):
    def writer(k):
        k.cb_wait_front(0, 1)           # waits for the reader, which never pushes
    t0 = time.monotonic()
    with pytest.raises(SpinError) as e:
        dev.run(_prog(dev, reader=_spin, writer=writer))
    assert time.monotonic() - t0 < LIMIT + 5
    assert e.value.core == (0, 0) and e.value.thread == "reader"
    assert e.value.line[1] in (_line_of(_spin, "while n"), _line_of(_spin, "n += 1"))
    assert "kernel _spin has run 0.6 s of wall time without an API call that waits" in str(e.value)
    # the process goes on: no interrupt is left pending, and the next run is normal
    rep = dev.run(_prog(dev, reader=lambda k: (k.cb_reserve_back(0, 1), k.cb_push_back(0, 1)),
                        writer=lambda k: (k.cb_wait_front(0, 1), k.cb_pop_front(0, 1))))
    assert rep.cycles > 0


def test_a_compute_kernel_spinning_is_named_too(dev):
    with pytest.raises(SpinError) as e:
        dev.run(_prog(dev, compute=_spin))
    assert e.value.thread == "compute" and e.value.core == (0, 0)


def _ping_pong(dev, pages):
    def reader(k):
        for _ in range(pages):
            k.cb_reserve_back(0, 1)
            k.cb_push_back(0, 1)

    def writer(k):
        for _ in range(pages):
            k.cb_wait_front(0, 1)
            k.cb_pop_front(0, 1)
    t0 = time.monotonic()
    dev.run(_prog(dev, reader, writer), max_cycles=1e12)
    return time.monotonic() - t0


def test_a_run_that_makes_progress_for_longer_than_the_limit_is_not_stopped(dev):
    rate = 4000 / _ping_pong(dev, 4000)                   # pages a second on this machine
    assert _ping_pong(dev, int(rate * LIMIT * 3)) > LIMIT * 1.5, "must outlast the limit"


def test_a_real_keyboard_interrupt_stays_one(dev):
    def reader(k):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        dev.run(_prog(dev, reader=reader))
