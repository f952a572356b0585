"""ttlang threads that never end are errors, not hangs: a thread looping in Python without
a ttlang call (in the build's dry run or in the run) is a SpinError after the watchdog's
limit; a compute loop over ttlang calls that never ends fails the build's dry run (where
nothing waits) past its call budget."""
import numpy as np
import pytest

import ttlang as ttl
from ttlang import runtime
from ttlang.errors import CompileError
from ttsim import watchdog
from ttsim.errors import SpinError


@pytest.fixture(autouse=True)
def short_limit(monkeypatch):
    monkeypatch.setattr(watchdog, "SPIN_SECONDS", 0.6)


def _ttl_kernel(compute_spins):
    x = ttl.from_numpy(np.ones((32, 32), np.float32))

    @ttl.kernel(grid=(1, 1))
    def k(x):
        ttl.make_dataflow_buffer_like(x, shape=(1, 1), buffer_factor=2)

        @ttl.compute()
        def c():
            while compute_spins:
                pass

        @ttl.datamovement()
        def r():
            while not compute_spins:
                pass

        @ttl.datamovement()
        def w():
            pass
    return k, x


@pytest.mark.parametrize("where", ["compute (build's dry run)", "data movement"])
def test_ttlang_threads_that_spin_are_spin_errors(where):
    k, x = _ttl_kernel(where.startswith("compute"))
    with pytest.raises(SpinError) as e:
        k(x)
    msg = str(e.value)
    if where.startswith("compute"):
        assert e.value.thread == "compute" and "in ttlang's build without a ttlang call" in msg
    else:
        assert e.value.thread == "reader" and "kernel r has run" in msg
    assert "test_runaway.py" in e.value.line[0]


def test_a_ttlang_compute_loop_that_never_ends_fails_the_build(monkeypatch):
    """Nothing waits in the build's dry run, so `while True` over buffer calls never ends
    there: past the call budget it is a CompileError at the loop's line."""
    monkeypatch.setattr(runtime, "MAX_DRY_CALLS", 3000)
    x = ttl.from_numpy(np.ones((32, 32), np.float32))

    @ttl.kernel(grid=(1, 1))
    def k(x):
        xb = ttl.make_dataflow_buffer_like(x, shape=(1, 1), buffer_factor=2)

        @ttl.compute()
        def c():
            while True:
                with xb.wait():
                    pass

        @ttl.datamovement()
        def r():
            pass

        @ttl.datamovement()
        def w():
            pass
    with pytest.raises(CompileError, match="more than 3,000 ttlang calls in the build") as e:
        k(x)
    assert "with xb.wait()" in str(e.value)
