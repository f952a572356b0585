"""CB protocol invariants, driven through real data-movement kernels."""
import numpy as np
from hypothesis import given, strategies as st

import ttsim

PAGE = 64


def _program(dev, pages, cap, prod_chunks, cons_chunks, seen):
    prog = ttsim.Program(dev)
    prog.circular_buffer((0, 0), 0, "bf16", num_pages=cap, page_size=PAGE)

    def producer(k):
        seq = 0
        for n in prod_chunks:
            k.cb_reserve_back(0, n)
            p = k.get_write_ptr(0)
            for i in range(n):
                k.write_l1(p + i * PAGE, np.full(PAGE // 4, seq + i, np.uint32))
            seq += n
            k.cb_push_back(0, n)

    def consumer(k):
        for n in cons_chunks:
            k.cb_wait_front(0, n)
            p = k.get_read_ptr(0)
            for i in range(n):
                seen.append((int(k.read_l1(p + i * PAGE, 4).view(np.uint32)[0]), k._th.t))
            k.cb_pop_front(0, n)

    prog.reader((0, 0), producer)
    prog.writer((0, 0), consumer)
    return prog


@st.composite
def chunking(draw):
    cap = draw(st.sampled_from([1, 2, 4, 8]))
    sizes = [d for d in (1, 2, 4, 8) if d <= cap and cap % d == 0]
    pn = draw(st.sampled_from(sizes))
    cn = draw(st.sampled_from(sizes))
    total = pn * cn * draw(st.integers(1, 6))
    return cap, [pn] * (total // pn), [cn] * (total // cn), total


@given(chunking())
def test_pages_arrive_once_in_order(params):
    cap, prod, cons, total = params
    dev = ttsim.Device("wormhole_b0")
    seen = []
    rep = dev.run(_program(dev, total, cap, prod, cons, seen))
    assert [s for s, _ in seen] == list(range(total))
    assert rep.cycles > 0
    writer = next(t for t in rep.threads if t.kind == "writer")
    assert writer.busy + writer.stalled <= rep.cycles + 1e-6


@given(chunking())
def test_timing_does_not_depend_on_the_order_threads_run_in(params):
    """CB timestamps, not simpy's scheduling order, decide when each side proceeds."""
    cap, prod, cons, total = params
    a, b = [], []
    d1, d2 = ttsim.Device("wormhole_b0"), ttsim.Device("wormhole_b0")
    r1 = d1.run(_program(d1, total, cap, prod, cons, a))
    r2 = d2.run(_program(d2, total, cap, prod, cons, b), _reverse_spawn=True)
    assert a == b and r1.cycles == r2.cycles
