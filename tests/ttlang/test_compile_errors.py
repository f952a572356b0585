"""Compile errors name the user's line, show it with a caret, and say what to change."""
import inspect

import numpy as np
import pytest

import ttlang as ttl


def _line(fn, text):
    src, start = inspect.getsourcelines(fn)
    return start + next(i for i, l in enumerate(src) if text in l)


def _kernel(compute_body=None, read_body=None, write_body=None, shapes=((1, 1), (1, 1), (1, 1)),
            factor=2):
    ttl.set_device("wormhole_b0")
    a = ttl.from_numpy(np.ones((64, 64), np.float32))
    b = ttl.from_numpy(np.ones((64, 64), np.float32))
    o = ttl.empty((64, 64))

    @ttl.kernel(grid=(1, 1))
    def k(a, b, o):
        ab = ttl.make_dataflow_buffer_like(a, shape=shapes[0], buffer_factor=factor)
        bb = ttl.make_dataflow_buffer_like(b, shape=shapes[1], buffer_factor=factor)
        ob = ttl.make_dataflow_buffer_like(o, shape=shapes[2], buffer_factor=factor)
        bufs = dict(a=a, b=b, o=o, ab=ab, bb=bb, ob=ob)

        @ttl.datamovement()
        def read():
            (read_body or _default_read)(bufs)

        @ttl.compute()
        def compute():
            compute_body(bufs)

        @ttl.datamovement()
        def write():
            (write_body or _default_write)(bufs)

    return k, (a, b, o)


def _default_read(s):
    with s["ab"].reserve() as x, s["bb"].reserve() as y:
        h1 = ttl.copy(s["a"][0:s["ab"].shape[0], 0:s["ab"].shape[1]], x)
        h2 = ttl.copy(s["b"][0:s["bb"].shape[0], 0:s["bb"].shape[1]], y)
        h1.wait()
        h2.wait()


def _default_write(s):
    with s["ob"].wait() as z:
        ttl.copy(z, s["o"][0:s["ob"].shape[0], 0:s["ob"].shape[1]]).wait()


def _add(s):
    with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
        z.store(x + y)


def test_wrong_block_shapes():
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(x + y)                       # (1,2) + (2,3): no broadcast
    k, args = _kernel(body, shapes=((1, 2), (2, 3), (1, 1)))
    with pytest.raises(ttl.CompileError) as e:
        k(*args)
    msg = str(e.value)
    assert f":{_line(body, 'z.store(x + y)')}:" in msg
    assert "(1, 2) and (2, 3)" in msg and "^^^" in msg and "z.store(x + y)" in msg


def test_store_shape_mismatch():
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(x @ y)                       # (1,2) @ (2,1) -> (1,1) into (1,2)
    k, args = _kernel(body, shapes=((1, 2), (2, 1), (1, 2)))
    with pytest.raises(ttl.CompileError, match="1x1-tile expression into a 1x2-tile block") as e:
        k(*args)
    assert f":{_line(body, 'z.store(x @ y)')}:" in str(e.value)


@pytest.mark.parametrize("value,match", [
    (0.5, "store of a plain number: use ttl.math.fill"),
    ("x", "cannot use str in a block expression"),
])
def test_store_of_a_plain_value(value, match):
    """A number (or another non-block) stored as it is is a CompileError at its line, not a
    crash inside the compiler."""
    def body(s):
        with s["ab"].wait(), s["bb"].wait(), s["ob"].reserve() as z:
            z.store(value)
    k, args = _kernel(body)
    with pytest.raises(ttl.CompileError, match=match) as e:
        k(*args)
    assert f":{_line(body, 'z.store(value)')}:" in str(e.value)


def test_copy_never_waited():
    def read(s):
        with s["ab"].reserve() as x, s["bb"].reserve() as y:
            ttl.copy(s["a"][0:1, 0:1], x)        # handle dropped
            ttl.copy(s["b"][0:1, 0:1], y).wait()
    k, args = _kernel(_add, read_body=read)
    with pytest.raises(ttl.CompileError, match="never waited") as e:
        k(*args)
    n = _line(read, "handle dropped")
    assert f":{n}:" in str(e.value)


def test_reading_a_block_not_waited_for():
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(x + z)                       # z is reserved, not waited
    k, args = _kernel(body)
    with pytest.raises(ttl.CompileError, match="reserved, not waited for") as e:
        k(*args)
    assert f":{_line(body, 'z.store(x + z)')}:" in str(e.value)


def test_unknown_op():
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(ttl.math.softplus(x))
    k, args = _kernel(body)
    with pytest.raises(ttl.CompileError, match="no op 'softplus'") as e:
        k(*args)
    assert f":{_line(body, 'softplus')}:" in str(e.value)


def test_buffer_larger_than_l1():
    k, args = _kernel(_add, shapes=((16, 16), (16, 16), (16, 16)), factor=4)
    with pytest.raises(ttl.CompileError, match="bytes of L1") as e:
        k(*args)
    assert "make_dataflow_buffer_like" in str(e.value)


def test_data_condition_is_an_error():
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            if x:
                z.store(y)
    k, args = _kernel(body)
    with pytest.raises(ttl.CompileError, match="no truth value"):
        k(*args)


@pytest.mark.parametrize("factor", [0, 1.5, True, "2"])
def test_buffer_factor_must_be_a_whole_number_of_blocks(factor):
    k, args = _kernel(_add, factor=factor)
    with pytest.raises(ttl.CompileError, match="buffer_factor must be a whole number"):
        k(*args)
