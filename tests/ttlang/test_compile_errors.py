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


@pytest.mark.parametrize("shape", [(1.5, 1), (1, True), (0, 1), (1, 1, 1), 2])
def test_buffer_shape_must_be_two_whole_tile_counts(shape):
    """(1.5, 1) used to be accepted, and failed later as a '1.5x1-tile expression'."""
    k, args = _kernel(_add, shapes=(shape, (1, 1), (1, 1)))
    with pytest.raises(ttl.CompileError, match=r"buffer shape .* must be two positive tile "
                                               r"counts \(whole numbers\)") as e:
        k(*args)
    assert "make_dataflow_buffer_like" in str(e.value)


def test_a_buffer_shape_of_numpy_ints_is_fine():
    k, args = _kernel(_add, shapes=((np.int64(1), np.int32(1)), (1, 1), (1, 1)))
    k(*args)
    np.testing.assert_array_equal(args[2].to_numpy()[:32, :32], 2.0)


@pytest.mark.parametrize("grid", [(1.5, 1), "huge", (1, 1, 1), 4, (True, 1)])
def test_a_grid_that_is_not_two_whole_numbers_is_a_compile_error(grid):
    """(1.5, 1) used to be a TypeError from range(), "huge" a grid ('h', 'u', 'g', 'e')."""
    a, o = ttl.from_numpy(np.ones((32, 32), np.float32)), ttl.empty((32, 32))

    @ttl.kernel(grid=grid)
    def k(a, o):
        @ttl.compute()
        def c():
            pass
    with pytest.raises(ttl.CompileError, match=r"a grid is two whole numbers of cores \(x, y\), "
                                               r"or \"auto\""):
        k(a, o)


def test_an_exception_in_the_compute_thread_names_core_thread_and_line():
    """The compute thread's dry run (at build) let the user's exception out raw; the
    data-movement threads' exceptions were KernelErrors already."""
    import ttsim

    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(x + y)
        raise ValueError("mine")                    # the kernel's own bug
    k, args = _kernel(body)
    with pytest.raises(ttsim.KernelError, match="ValueError in kernel compute: mine") as e:
        k(*args)
    assert e.value.core == (0, 0) and e.value.thread == "compute"
    assert e.value.line[1] == _line(body, 'raise ValueError("mine")')


def test_two_reserves_of_one_buffer_on_a_thread_are_a_compile_error():
    """The second cb_reserve_back gave the same pages as the first: both blocks were one;
    the error came later as 'a block ... pushed with nothing stored', at the wrong line."""
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y:
            with s["ob"].reserve() as z1:
                with s["ob"].reserve() as z2:       # same pages as z1
                    z1.store(x)
                    z2.store(y)
    k, args = _kernel(body)
    with pytest.raises(ttl.CompileError, match=r"ob.reserve\(\) while a block of ob reserved "
                                               r"earlier on this thread is not yet pushed: the new "
                                               r"block would be the same pages") as e:
        k(*args)
    assert f":{_line(body, 'same pages as z1')}:" in str(e.value)


def test_two_waits_on_one_buffer_on_a_thread_are_a_compile_error():
    """The second cb_wait_front gave the same pages as the first (x + x2 read one block
    twice); the error came later as 'pop of 1 pages but only 0 waited for'."""
    def read(s):
        for _ in range(2):
            with s["ab"].reserve() as x:
                ttl.copy(s["a"][0:1, 0:1], x).wait()
        with s["bb"].reserve() as y:
            ttl.copy(s["b"][0:1, 0:1], y).wait()

    def body(s):
        with s["ab"].wait() as x, s["ab"].wait() as x2, s["ob"].reserve() as z:
            z.store(x + x2)
    k, args = _kernel(body, read_body=read)
    with pytest.raises(ttl.CompileError, match=r"ab.wait\(\) while a block of ab waited for "
                                               r"earlier on this thread is not yet popped"):
        k(*args)


def test_a_reserve_after_the_previous_block_is_pushed_is_fine():
    def read(s):
        for j in range(2):
            with s["ab"].reserve() as x:
                ttl.copy(s["a"][0:1, j:j + 1], x).wait()
            with s["bb"].reserve() as y:
                ttl.copy(s["b"][0:1, j:j + 1], y).wait()

    def body(s):
        for _ in range(2):
            with s["ab"].wait() as x, s["bb"].wait() as y:
                z = s["ob"].reserve()
                z.store(x + y)
                z.push()

    def write(s):
        for j in range(2):
            with s["ob"].wait() as z:
                ttl.copy(z, s["o"][0:1, j:j + 1]).wait()
    k, (a, b, o) = _kernel(body, read_body=read, write_body=write)
    k(a, b, o)
    np.testing.assert_array_equal(o.to_numpy()[:32, :64], 2.0)


@pytest.mark.parametrize("value", [2.0, None, True])
def test_a_store_of_something_that_is_not_a_block_expression(value):
    """Before: AttributeError: 'float' object has no attribute 'shape' (x == x, which is
    True, too)."""
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(value)
    k, args = _kernel(body)
    with pytest.raises(ttl.CompileError, match=f"store of {type(value).__name__} {value!r} into ob: "
                                               "store a block expression") as e:
        k(*args)
    assert f":{_line(body, 'z.store(value)')}:" in str(e.value)


@pytest.mark.parametrize("make, what", [
    (lambda x: ttl.math.fill(x, None), "ttl.math.fill value None: a fill value is a real number"),
    (lambda x: ttl.math.fill(x, "1"), "ttl.math.fill value '1'"),
    (lambda x: ttl.math.reduce_sum(x, dims=1.5), r"reduce_sum dims must be \[0\], \[1\] or "
                                                 r"\[0, 1\]; got 1.5"),
    (lambda x: ttl.math.reduce_max(x, dims="1"), r"reduce_max dims must be .*; got '1'"),
])
def test_op_arguments_of_the_wrong_kind_are_compile_errors(make, what):
    """Before: ValueError / TypeError from float() or tuple() inside ttlang."""
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(make(x) + y)
    k, args = _kernel(body)
    with pytest.raises(ttl.CompileError, match=what):
        k(*args)


def test_numpy_scalars_are_numbers_in_block_expressions():
    """np.float32(0.5) was refused ('cannot use float32 in a block expression')."""
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(x * np.float32(0.5) + y * np.int64(2))
    k, (a, b, o) = _kernel(body)
    k(a, b, o)
    np.testing.assert_array_equal(o.to_numpy()[:32, :32], 2.5)


def test_dividing_by_the_constant_zero_gives_inf_as_the_chip_would():
    """It was a ZeroDivisionError from the compiler (1.0 / 0 for the SFPU scale)."""
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait() as y, s["ob"].reserve() as z:
            z.store(x / 0 - y)
    k, (a, b, o) = _kernel(body)
    k(a, b, o)
    assert np.isposinf(o.to_numpy()[:32, :32]).all()


def test_a_tensor_of_a_replaced_device_is_refused_at_the_call():
    """ttl.set_device makes a new device; a tensor made before it used to be read at its
    address on the new device: whatever another tensor held there (silently)."""
    k, (a, b, o) = _kernel(_add)
    ttl.set_device("wormhole_b0")
    ttl.from_numpy(np.full((64, 64), 7.0, np.float32))       # what a's address holds now
    with pytest.raises(ttl.CompileError, match="kernel k: argument 0 .* lives on another device "
                                               "than the one kernels run on now"):
        k(a, b, o)


def _one_thread_kernel(deco, fn):
    ttl.set_device("wormhole_b0")
    a = ttl.from_numpy(np.ones((32, 32), np.float32))

    @ttl.kernel(grid=(1, 1))
    def k(a):
        deco(fn)
    return lambda: k(a)


def _gen_thread():
    yield


async def _async_thread():
    pass


def _thread_with_a_parameter(x):
    pass


@pytest.mark.parametrize("deco", [ttl.compute(), ttl.datamovement()])
@pytest.mark.parametrize("fn, what", [
    (_gen_thread, "thread _gen_thread is a generator function: calling it would not run its body"),
    (_async_thread, "thread _async_thread is an async function"),
    (_thread_with_a_parameter, r"thread _thread_with_a_parameter\(x\) takes arguments"),
])
def test_a_thread_must_be_a_plain_function_of_no_arguments(deco, fn, what):
    """A generator or async thread returned at once: the kernel ran with the thread empty,
    silently. A thread with a parameter failed with a TypeError located in ttlang."""
    with pytest.raises(ttl.CompileError, match=what) as e:
        _one_thread_kernel(deco, fn)()
    assert f":{fn.__code__.co_firstlineno}:" in str(e.value)


def test_kernel_without_parentheses_is_the_auto_grid_and_a_bad_fidelity_is_refused_at_once():
    """@ttl.kernel without () made the kernel function the decorator, so the call built a
    Kernel of the first tensor; math_fidelity='HiFi9' passed unnoticed without a compute thread."""
    ttl.set_device("wormhole_b0")

    @ttl.kernel
    def k(a):
        assert ttl.grid_size() == (8, 8)
    k(ttl.from_numpy(np.ones((32, 32), np.float32)))
    with pytest.raises(ttl.CompileError, match="unknown math fidelity 'HiFi9'"):
        ttl.kernel(grid=(1, 1), math_fidelity="HiFi9")(lambda a: None)


@pytest.mark.parametrize("acc", ["yes", 1.0, None])
def test_store_acc_is_true_or_false(acc):
    """Before: acc='yes' (any truthy value) was taken as True."""
    def body(s):
        with s["ab"].wait() as x, s["bb"].wait(), s["ob"].reserve() as z:
            z.store(x, acc=acc)
    k, args = _kernel(body)
    with pytest.raises(ttl.CompileError, match=r"acc is True \(add onto the block\) or False") as e:
        k(*args)
    assert f":{_line(body, 'z.store(x, acc=acc)')}:" in str(e.value)
