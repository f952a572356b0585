"""The seed document's D2M-style API (`ttlang.d2m`): its programs, scaled down, run through
the same compiler and match float64 numpy; misuse gives errors that name the line."""
import inspect

import numpy as np
import pytest
from hypothesis import given, strategies as st

import ttlang as ttl
from ttlang import testing as tt
from ttlang.d2m import (CircularBuffer, Program, Stream, compute, core_index, datamovement, dma,
                        pykernel_gen)



@pytest.fixture(autouse=True)
def _wormhole():
    ttl.set_device("wormhole_b0")


def _line(fn, text):
    src, start = inspect.getsourcelines(fn)
    return start + next(i for i, l in enumerate(src) if text in l)


def q64(a):
    """What a bf16 tensor holds of `a`, as float64."""
    return tt.quantize(a, "bf16").astype(np.float64)


def blocks_of(a, grid):
    """The shards of a 2-d array over a (rows, cols) grid, by (y, x)."""
    gy, gx = grid
    r, c = a.shape[0] // gy, a.shape[1] // gx
    return {(y, x): (slice(y * r, (y + 1) * r), slice(x * c, (x + 1) * c))
            for y in range(gy) for x in range(gx)}


# --- the seed's 6-operation kernel --------------------------------------------------------------
@pykernel_gen(grid=(1, 1), block_factors=[(1, 1), (1, 1), (1, 1)])
def six_ops_1x1(Q, K, out, block_factors=None, grid=None):
    @compute()
    async def attention_compute(Q_cb: CircularBuffer, K_cb: CircularBuffer, out_cb: CircularBuffer):
        Q_block = Q_cb.pop()
        K_block = K_cb.pop()
        out_block = out_cb.reserve()
        K_T = K_block.transpose()      # 1
        S = Q_block @ K_T              # 2
        S_stable = S - Q_block         # 3
        P = S_stable.exp()             # 4
        P_norm = P.sqrt()              # 5
        result = P_norm.recip()        # 6
        out_block.store(result)

    return Program(attention_compute)(Q, K, out)


def _six_ops_ref(q, k, grid):
    ref = np.zeros(q.shape)
    for sl in blocks_of(q, grid).values():
        Qb, Kb = q[sl], k[sl]
        ref[sl] = 1 / np.sqrt(np.exp(Qb @ Kb.T - Qb))
    return ref


@pytest.mark.parametrize("grid,shape", [((1, 1), (64, 64)),     # 1x1 grid, one block of 2x2 tiles
                                        ((2, 2), (64, 64))])    # 2x2 grid, 1x1 tiles per core
def test_the_seeds_six_op_kernel(grid, shape):
    six_ops = pykernel_gen(grid=grid)(six_ops_1x1.fn)
    q = tt.array(shape, "bf16", 1, -0.25, 0.25)
    k = tt.array(shape, "bf16", 2, -0.25, 0.25)
    out = np.zeros(shape, np.float32)
    rep = six_ops(q, k, out)                       # numpy output: filled in place
    assert rep.cores == grid[0] * grid[1]
    ref = _six_ops_ref(q.astype(np.float64), k.astype(np.float64), grid)
    # S (fp32 sum of bf16 products) and the four ops after it each round to the bf16 DST
    tt.assert_close(out, ref, "bf16", ops=5)
    assert six_ops.show().count("k.matmul_block(") == 1


def test_the_seed_kernels_compute_reads_as_one_statement():
    q, k = tt.array((64, 64), "bf16", 1, -0.25, 0.25), tt.array((64, 64), "bf16", 2, -0.25, 0.25)
    six_ops_1x1(q, k, np.zeros((64, 64), np.float32))
    code = six_ops_1x1.show()
    n = _line(six_ops_1x1.fn, "out_block.store(result)")
    assert f"test_d2m.py:{n}: out_block.store(result)" in code
    assert "Q_cb = cb 0" in code and "out_cb = cb 2" in code


# --- the seed's reductions, standalone ---------------------------------------------------------
@pykernel_gen(grid=(2, 1))
def rowmax_kernel(S, m):
    @compute()
    async def comp(S_cb: CircularBuffer, m_cb: CircularBuffer):
        m_cb.reserve().store(S_cb.pop().rowmax())
    return Program(comp)(S, m)


@pykernel_gen(grid=(2, 1))
def rowsum_kernel(P, l):
    @compute()
    async def comp(P_cb: CircularBuffer, l_cb: CircularBuffer):
        P_block = P_cb.pop()
        l_block = l_cb.reserve()
        l_block.store(P_block.rowsum())
    return Program(comp)(P, l)


@given(rows=st.integers(1, 2), cols=st.integers(1, 3), seed=tt.seeds())
def test_the_seeds_reductions(rows, cols, seed):
    s = tt.array((64 * rows, 32 * cols), "bf16", seed)
    m = ttl.empty((64 * rows, 32), "fp32")
    lo = ttl.empty((64 * rows, 32), "fp32")
    rowmax_kernel(s, m)
    rowsum_kernel(s, lo)
    sq = s.astype(np.float64)
    tt.assert_close(m.to_numpy()[:, 0], sq.max(1), "bf16", ops=1)
    # fp32 sums of bf16 values packed to fp32; one bf16 rounding of the row's magnitude covers
    # the DST rounding of the 16-bit DST
    tt.assert_close(lo.to_numpy()[:, 0], sq.sum(1), "bf16", ops=2, scale=np.abs(sq).sum(1))


# --- a matmul: operands streamed by the data-movement thread -----------------------------------
@given(mt=st.integers(1, 2), kt=st.integers(1, 3), nt=st.integers(1, 2),
       grid=st.sampled_from([(1, 1), (2, 1), (2, 2)]), seed=tt.seeds())
def test_matmul_with_streams_and_dma(mt, kt, nt, grid, seed):
    """C = A @ B, core (y, x) computing C's block (y, x): A's row of blocks and B's column
    come through Streams and dma, C stays the core's shard (written back by itself)."""
    gy, gx = grid
    a = tt.array((32 * mt * gy, 32 * kt), "bf16", seed)
    b = tt.array((32 * kt, 32 * nt * gx), "bf16", seed + 1)

    @pykernel_gen(grid=grid, block_factors=[(gy, 1), (1, gx), (1, 1)], math_fidelity="HiFi4")
    def matmul(A, B, C):
        A_stream, B_stream = Stream(A), Stream(B)

        @compute()
        async def mm(A_cb: CircularBuffer, B_cb: CircularBuffer, C_cb: CircularBuffer):
            C_cb.reserve().store(A_cb.pop() @ B_cb.pop())

        @datamovement()
        async def reader(A_cb: CircularBuffer, B_cb: CircularBuffer, C_cb: CircularBuffer):
            cy, cx = core_index(0), core_index(1)
            ta = dma(A_stream[cy, 0], A_cb.reserve())
            tb = dma(B_stream[0, cx], B_cb.reserve())
            ta.wait()
            tb.wait()

        return Program(mm, reader)(A, B, C)

    out = ttl.empty((a.shape[0], b.shape[1]), "fp32")
    matmul(ttl.from_numpy(a), ttl.from_numpy(b), out)
    aq, bq = a.astype(np.float64), b.astype(np.float64)
    # fp32 products of bf16 values summed in the DST, which rounds to bf16
    tt.assert_close(out.to_numpy(), aq @ bq, "bf16", ops=2, scale=np.abs(aq) @ np.abs(bq))


# --- flash attention, one K/V block (the seed's "Test 1" and "Test 2", scaled down) -------------
@pykernel_gen(grid=(2, 1), block_factors=[(1, 1), (1, 1), (1, 1), (1, 1)])
def flash_attention(Q, K, V, out):
    K_stream, V_stream = Stream(K), Stream(V)

    @compute()
    async def attention(Q_cb: CircularBuffer, K_cb: CircularBuffer, V_cb: CircularBuffer,
                        out_cb: CircularBuffer):
        Q_block, K_block, V_block = Q_cb.pop(), K_cb.pop(), V_cb.pop()
        out_block = out_cb.reserve()
        K_T = K_block.transpose()
        S = (Q_block @ K_T) * 0.125                 # 1/sqrt(head dim 64)
        m = S.rowmax()
        P = (S - m).exp()
        l = P.rowsum()
        out_block.store((P @ V_block) / l)

    @datamovement()
    async def read_kv(Q_cb: CircularBuffer, K_cb: CircularBuffer, V_cb: CircularBuffer,
                      out_cb: CircularBuffer):
        tk = dma(K_stream[0, 0], K_cb.reserve())
        tv = dma(V_stream[0, 0], V_cb.reserve())
        tk.wait()
        tv.wait()

    return Program(attention, read_kv)(Q, K, V, out)


@pytest.mark.parametrize("grid,seq,d", [((1, 1), 64, 64), ((2, 1), 128, 64), ((2, 2), 128, 128)])
def test_flash_attention_single_kv_block(grid, seq, d):
    """softmax(Q K^T / 8) V, each core its rows of Q against all of K and V. On a 2x2 grid
    the columns of Q and out split too: each core then attends with its half of the head
    dimension, which the reference does the same way. (One tile per core: the next test.)"""
    fa = pykernel_gen(grid=grid, block_factors=[(1, 1)] * 4)(flash_attention.fn)
    q, k, v = (tt.array((seq, d), "bf16", s) for s in (3, 4, 5))
    if grid[1] == 2:                            # K and V: the half each core pairs with
        k, v = (tt.array((seq, d // 2), "bf16", s) for s in (4, 5))
    out = np.zeros((seq, d), np.float32)
    fa(q, k, v, out)
    qq, kq, vq = (x.astype(np.float64) for x in (q, k, v))
    ref = np.zeros(out.shape)
    for sl in blocks_of(qq, grid).values():
        s = qq[sl] @ kq.T * 0.125
        p = np.exp(s - s.max(1, keepdims=True))
        ref[sl] = (p @ vq) / p.sum(1, keepdims=True)
    # P is rounded to bf16 (a spill), P @ V and l each round to the bf16 DST, the divide once
    # more: a few bf16 units of the largest |V| the weights average
    tt.assert_close(out, ref, "bf16", ops=6, scale=np.abs(vq).max())
    tt.assert_pcc(out, ref, 0.999)


def test_flash_attention_one_tile_per_core():
    """The seed's "Test 2: 2x2 grid, 1x1 tiles/core": S, P and P @ V are one tile each, so
    `S - S.rowmax()` and `(P @ V) / P.rowsum()` combine equal shapes; the statistics still
    broadcast across the tile's columns (elementwise, the output was inf)."""
    @pykernel_gen(grid=(2, 2), block_factors=[(1, 1)] * 4)
    def fa(Q, K, V, out):
        @compute()
        async def attention(Q_cb: CircularBuffer, K_cb: CircularBuffer, V_cb: CircularBuffer,
                            out_cb: CircularBuffer):
            Q_block, K_block, V_block = Q_cb.pop(), K_cb.pop(), V_cb.pop()
            out_block = out_cb.reserve()
            S = Q_block @ K_block.transpose()
            P = (S - S.rowmax()).exp()
            out_block.store((P @ V_block) / P.rowsum())
        return Program(attention)(Q, K, V, out)

    q, k, v = (tt.array((64, 64), "bf16", s) for s in (1, 2, 3))
    out = np.zeros((64, 64), np.float32)
    fa(q, k, v, out)
    qq, kq, vq = (x.astype(np.float64) for x in (q, k, v))
    ref = np.zeros(out.shape)
    for sl in blocks_of(qq, (2, 2)).values():
        s = qq[sl] @ kq[sl].T
        p = np.exp(s - s.max(1, keepdims=True))
        ref[sl] = (p @ vq[sl]) / p.sum(1, keepdims=True)
    # as the single-K/V-block test: P rounds to bf16, P @ V, l and the divide to the DST
    tt.assert_close(out, ref, "bf16", ops=6, scale=np.abs(vq).max())


# --- several blocks per core, loops, streamed output ------------------------------------------
@given(grid=st.sampled_from([(1, 1), (2, 1), (1, 2), (2, 2)]),
       bf=st.sampled_from([(1, 1), (2, 1), (1, 2), (2, 2)]), stream_out=st.booleans(),
       seed=tt.seeds())
def test_blocks_per_core_with_a_loop(grid, bf, stream_out, seed):
    """Each core's 2x2-tile shard in bf blocks: the compute thread pops and reserves one
    block per iteration; the output is either written back by itself or streamed out by a
    data-movement thread with dma(out_cb.pop(), stream[i, j])."""
    gy, gx = grid
    shape = (64 * gy, 64 * gx)
    a, b = tt.array(shape, "bf16", seed), tt.array(shape, "bf16", seed + 1, 0.5, 2.0)
    nb = bf[0] * bf[1]
    out_bf = (gy * bf[0], gx * bf[1]) if stream_out else bf

    @pykernel_gen(grid=grid, block_factors=[bf, bf, out_bf])
    def kern(A, B, O):
        O_stream = Stream(O) if stream_out else None

        @compute()
        async def comp(A_cb, B_cb, O_cb):
            for _ in range(nb):
                x, y = A_cb.pop(), B_cb.pop()
                O_cb.reserve().store((x - y).exp() * y)

        @datamovement()
        def write(A_cb, B_cb, O_cb):            # a plain def works too
            if O_stream is None:
                return
            cy, cx = core_index(0), core_index(1)
            for bi in range(bf[0]):
                for bj in range(bf[1]):
                    dma(O_cb.pop(), O_stream[cy * bf[0] + bi, cx * bf[1] + bj]).wait()

        return Program(comp, write)(A, B, O)

    out = np.zeros(shape, np.float32)
    kern(a, b, out)
    aq, bq = a.astype(np.float64), b.astype(np.float64)
    ref = np.exp(aq - bq) * bq
    # the FPU subtract rounds once, exp and the multiply are each truncated to the 16-bit DST
    # (one bf16 unit, two roundings' worth)
    tt.assert_close(out, ref, "bf16", ops=5)


def test_the_older_module_name():
    import ttlang.d2m_api as old
    assert old.pykernel_gen is pykernel_gen and old.Stream is Stream and "dma" in old.__all__


# --- misuse ----------------------------------------------------------------------------------
def _run(kern, *shapes):
    arrays = [np.ones(s, np.float32) for s in shapes]
    with pytest.raises(ttl.CompileError) as e:
        kern(*arrays)
    return str(e.value)


def test_a_thread_that_awaits():
    import asyncio

    @pykernel_gen()
    def k(A, O):
        @compute()
        async def comp(A_cb, O_cb):
            await asyncio.sleep(0)
            O_cb.reserve().store(A_cb.pop())
        return Program(comp)(A, O)

    msg = _run(k, (32, 32), (32, 32))
    assert "comp awaits something" in msg and "async def comp(A_cb, O_cb):" in msg


def test_a_thread_with_the_wrong_parameters():
    @pykernel_gen()
    def k(A, O):
        @compute()
        async def comp(A_cb):
            pass
        return Program(comp)(A, O)

    msg = _run(k, (32, 32), (32, 32))
    assert "comp must take 2 parameters, one CircularBuffer per operand" in msg


def test_a_stream_of_something_else():
    @pykernel_gen()
    def k(A, O):
        s = Stream(np.zeros((32, 32)))   # noqa: F841

    msg = _run(k, (32, 32), (32, 32))
    assert "stream an operand of the kernel" in msg and "s = Stream(np.zeros((32, 32)))" in msg


def test_moving_an_operand_that_is_not_a_stream():
    @pykernel_gen()
    def k(A, O):
        @compute()
        async def comp(A_cb, O_cb):
            O_cb.reserve().store(A_cb.pop())

        @datamovement()
        async def dm(A_cb, O_cb):
            A_cb.reserve()
        return Program(comp, dm)(A, O)

    msg = _run(k, (32, 32), (32, 32))
    assert "A_cb.reserve() on a data-movement thread" in msg and "Stream(" in msg
    assert f":{_line(k.fn, 'A_cb.reserve()')}:" in msg


def test_reserving_an_input_on_the_compute_thread():
    @pykernel_gen()
    def k(A, O):
        @compute()
        async def comp(A_cb, O_cb):
            A_cb.reserve()
        return Program(comp)(A, O)

    assert "A_cb holds an input; pop() its blocks" in _run(k, (32, 32), (32, 32))


def test_a_dma_never_waited_on():
    @pykernel_gen()
    def k(A, O):
        s = Stream(A)

        @compute()
        async def comp(A_cb, O_cb):
            O_cb.reserve().store(A_cb.pop())

        @datamovement()
        async def dm(A_cb, O_cb):
            dma(s[0, 0], A_cb.reserve())
        return Program(comp, dm)(A, O)

    msg = _run(k, (32, 32), (32, 32))
    assert "never waited on" in msg and "dma(s[0, 0], A_cb.reserve())" in msg


def test_a_block_used_after_the_next_pop():
    """A buffer holds one popped block: the earlier one is released, and reading it is an
    error rather than a read of the next block's pages."""
    @pykernel_gen(block_factors=[(1, 2), (1, 1)])
    def k(A, O):
        @compute()
        async def comp(A_cb, O_cb):
            first = A_cb.pop()
            second = A_cb.pop()
            O_cb.reserve().store(first + second)
        return Program(comp)(A, O)

    msg = _run(k, (32, 64), (32, 32))
    assert "after it was released (when A_cb.pop() was called again)" in msg
    assert "first + second" in msg


def test_block_factors_that_do_not_divide():
    @pykernel_gen(grid=(2, 1))
    def k(A, O):
        pass

    assert "does not split evenly over the 2x1 grid" in _run(k, (96, 32), (96, 32))


def test_core_index_in_the_kernel_body():
    @pykernel_gen()
    def k(A, O):
        core_index(0)

    assert "call it inside a @compute() or @datamovement() function" in _run(k, (32, 32), (32, 32))


def test_a_grid_larger_than_the_chip_is_named_in_rows_and_cols():
    """The seed's "8x10" grid is (rows, cols): on wormhole_b0's 8x8 workers the error says so
    in the kernel's terms (ttl's check would name the transposed (x, y) = (10, 8)), at its def."""
    @pykernel_gen(grid=(8, 10))
    def k(A, O):
        @compute()
        async def comp(A_cb, O_cb):
            O_cb.reserve().store(A_cb.pop().exp())
        return Program(comp)(A, O)

    msg = _run(k, (256, 320), (256, 320))
    assert "grid=(8, 10) (8 rows of 10 cores) does not fit the 8x8 (rows x cols) worker grid" in msg
    assert f":{_line(k.fn, 'def k(A, O):')}:" in msg
