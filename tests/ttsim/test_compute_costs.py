"""What a compute kernel pays besides its ops: reprogramming a unit when the op kind or the
data format changes, per-call front-ends, SFPU modes and vector modes, each at its sysdesc
figure."""
import numpy as np
import pytest

import ttsim


def _events(rep, kind, name):
    return [e for c, k, tr in rep.trace_events if k == kind for e in tr if e[0] == name]


def _program(dev, compute, cbs=(("bf16", 0), ("fp32", 1)), ntiles=4, **cfg):
    """One core: a reader fills each input CB with `ntiles` tiles, `compute` runs, its
    output CB 16 (bf16) is drained by a writer."""
    ins = {cb: dev.tensor(np.random.default_rng(cb).uniform(1, 2, (32 * ntiles, 32)).astype(np.float32),
                          fmt) for fmt, cb in cbs}
    out = dev.empty((32 * ntiles, 32))

    def reader(k):
        for cb, t in ins.items():
            g = k.interleaved_addr_gen(t)
            k.cb_reserve_back(cb, ntiles)
            for i in range(ntiles):
                k.noc_async_read_tile(i, g, k.get_write_ptr(cb) + i * t.page_size)
            k.noc_async_read_barrier()
            k.cb_push_back(cb, ntiles)

    def writer(k):
        g = k.interleaved_addr_gen(out)
        for i in range(ntiles):
            k.cb_wait_front(16, 1)
            k.noc_async_write_tile(i, g, k.get_read_ptr(16))
            k.noc_async_write_barrier()
            k.cb_pop_front(16, 1)

    prog = ttsim.Program(dev)
    for fmt, cb in cbs:
        prog.circular_buffer((0, 0), cb, fmt, num_pages=ntiles)
    prog.circular_buffer((0, 0), 16, "bf16", num_pages=2)
    prog.reader((0, 0), reader)
    prog.writer((0, 0), writer)
    prog.compute((0, 0), compute, **cfg)
    return dev.run(prog, trace=True), out


def _one(k, body, i):
    k.tile_regs_acquire()
    body(k, i)
    k.tile_regs_commit()
    k.tile_regs_wait()
    k.cb_reserve_back(16, 1)
    k.pack_tile(0, 16)
    k.cb_push_back(16, 1)
    k.tile_regs_release()


def _waiting(*cbs, n=4):
    def start(k):
        for cb in cbs:
            k.cb_wait_front(cb, n)
    return start


def test_unpack_reconfigures_only_when_the_format_changes(dev):
    def same(k):
        _waiting(0, 1)(k)
        for i in range(4):
            _one(k, lambda k, i: k.copy_tile(0, i, 0), i)

    def alternate(k):
        _waiting(0, 1)(k)
        for i in range(4):
            _one(k, lambda k, i: k.copy_tile(i % 2, i, 0), i)

    r_same, _ = _program(dev, same)
    r_alt, _ = _program(dev, alternate)
    assert len(_events(r_same, "unpack", "reconfig_data_format")) == 1     # the first configuration
    assert len(_events(r_alt, "unpack", "reconfig_data_format")) == 4      # bf16, fp32, bf16, fp32
    cost = dev.sd.value("cost.unpack.reconfig")
    assert all(e[2] == cost for e in _events(r_alt, "unpack", "reconfig_data_format"))


def test_switching_op_kinds_reinitialises_unpack_and_math(dev):
    def switching(k):
        _waiting(0, 1)(k)
        for i in range(4):
            if i % 2:
                _one(k, lambda k, i: k.binary_tiles("add", 0, 1, i, i, 0), i)
            else:
                _one(k, lambda k, i: k.copy_tile(0, i, 0), i)

    rep, _ = _program(dev, switching)
    math_inits = [e for c, k, tr in rep.trace_events if k == "math" for e in tr
                  if e[0].startswith("init ")]
    assert [e[0] for e in math_inits] == ["init datacopy", "init eltwise_add_none"] * 2
    assert all(e[2] == dev.sd.value("cost.math.init") for e in math_inits)
    unpack_inits = [e for c, k, tr in rep.trace_events if k == "unpack" for e in tr
                    if e[0].startswith("init ")]
    assert len(unpack_inits) == 4


def test_explicit_init_calls_cost_nothing_more(dev):
    """ttsim charges a unit's reprogramming when an op needs it, so tt-metal's *_init calls
    (which a kernel makes exactly there) must not pay a second time."""
    def plain(k):
        _waiting(0, 1)(k)
        for i in range(4):
            _one(k, lambda k, i: k.copy_tile(0, i, 0), i)

    def with_inits(k):
        _waiting(0, 1)(k)
        k.copy_tile_to_dst_init_short()
        for i in range(4):
            k.copy_tile_init()
            _one(k, lambda k, i: k.copy_tile(0, i, 0), i)

    assert _program(dev, plain)[0].cycles == _program(dev, with_inits)[0].cycles


def test_pack_reconfigures_for_l1_accumulation(dev):
    def compute(k):
        _waiting(0, 1)(k)
        k.cb_reserve_back(16, 1)
        for i in range(3):
            k.tile_regs_acquire()
            k.copy_tile(0, i, 0)
            k.tile_regs_commit()
            k.tile_regs_wait()
            k.pack_tile(0, 16, 0, accumulate=i > 0)
            k.tile_regs_release()
        k.cb_push_back(16, 1)
        for i in range(3):
            _one(k, lambda k, i: k.copy_tile(0, i, 0), i)

    rep, _ = _program(dev, compute)
    # plain, then accumulating (one change), then plain again for the rest (another)
    assert len(_events(rep, "pack", "reconfig_data_format")) == 3


@pytest.mark.parametrize("mode,key", [("fast", "cost.sfpu.exp_fast"), ("approx", "cost.sfpu.exp_approx"),
                                      ("accurate", "cost.sfpu.exp")])
def test_each_exp_mode_costs_its_figure(dev, mode, key):
    rep, _ = _program(dev, lambda k: [_waiting(0, 1)(k)] + [
        _one(k, lambda k, i: (k.copy_tile(0, i, 0), k.sfpu_unary("exp", 0, mode=mode)), i)
        for i in range(4)])
    name = "exp_tile" if mode == "accurate" else f"exp_tile({mode})"
    ev = _events(rep, "math", name)
    assert len(ev) == 4 and all(e[2] == dev.sd.value(key) for e in ev)
    inits = [e for c, k, tr in rep.trace_events if k == "math" for e in tr if e[0] == f"init exp_{mode}"]
    assert len(inits) == 1 and inits[0][2] == dev.sd.value("cost.sfpu.init")


def test_fp32_dst_runs_the_fp32_accurate_exp(dev):
    rep, _ = _program(dev, lambda k: [_waiting(0, 1)(k)] + [
        _one(k, lambda k, i: (k.copy_tile(0, i, 0), k.exp_tile(0)), i) for i in range(4)],
        fp32_dest_acc_en=True)
    assert {e[2] for e in _events(rep, "math", "exp_tile")} == {dev.sd.value("cost.sfpu.exp_fp32")}


def test_math_approx_mode_makes_exp_fast_and_recip_approximate(dev):
    def compute(k):
        _waiting(0, 1)(k)
        for i in range(4):
            _one(k, lambda k, i: (k.copy_tile(0, i, 0), k.exp_tile(0), k.recip_tile(0)), i)

    rep, _ = _program(dev, compute, math_approx_mode=True)
    assert len(_events(rep, "math", "exp_tile(fast)")) == 4
    assert {e[2] for e in _events(rep, "math", "recip_tile(approx)")} == {dev.sd.value("cost.sfpu.recip_approx")}
    # exp_tile<false> names the accurate mode whatever the kernel's default
    rep, _ = _program(dev, lambda k: [_waiting(0, 1)(k)] + [
        _one(k, lambda k, i: (k.copy_tile(0, i, 0), k.exp_tile(0, approx=False)), i) for i in range(4)],
        math_approx_mode=True)
    assert len(_events(rep, "math", "exp_tile")) == 4


def test_column_vector_mode_does_the_left_faces_at_half_the_cost(dev):
    def compute(k):
        _waiting(0, 1)(k)
        for i in range(4):
            _one(k, lambda k, i: (k.copy_tile(0, i, 0), k.sfpu_unary("square", 0, vector_mode="c")), i)

    rep, out = _program(dev, compute)
    x = dev.tensor(np.random.default_rng(0).uniform(1, 2, (128, 32)).astype(np.float32)).to_numpy()
    got = out.to_numpy()
    assert np.array_equal(got[:, 16:], x[:, 16:])                 # right faces untouched
    np.testing.assert_allclose(got[:, :16], x[:, :16] ** 2, rtol=2 ** -7)
    assert {e[2] for e in _events(rep, "math", "square_tile")} == {dev.sd.value("cost.sfpu.square") / 2}


def test_an_unknown_mode_names_the_modes(dev):
    with pytest.raises(ttsim.TTSimError, match="exp has no mode 'turbo'.*accurate, approx, fast"):
        _program(dev, lambda k: [_waiting(0, 1)(k),
                                 _one(k, lambda k, i: (k.copy_tile(0, 0, 0),
                                                       k.sfpu_unary("exp", 0, mode="turbo")), 0)])
    with pytest.raises(ttsim.TTSimError, match="vector_mode must be one of rc, c, r"):
        _program(dev, lambda k: [_waiting(0, 1)(k),
                                 _one(k, lambda k, i: (k.copy_tile(0, 0, 0),
                                                       k.sfpu_unary("abs", 0, vector_mode="x")), 0)])


def test_unpack_pays_its_call_front_end_per_tile(dev):
    rep, _ = _program(dev, lambda k: [_waiting(0, 1)(k)] + [
        _one(k, lambda k, i: k.copy_tile(0, i, 0), i) for i in range(4)])
    ev = _events(rep, "unpack", "unpack copy_tile")
    assert {e[2] for e in ev} == {dev.sd.value("cost.unpack.bf16") + dev.sd.value("cost.unpack.call")}


def test_a_matmul_block_streams_from_unpack_into_math(dev):
    """MATH starts a block's products once the first operand pair is unpacked, as the
    double-banked source registers let it, and ends no earlier than one product after the
    last pair."""
    def compute(k):
        k.cb_wait_front(0, 4)
        k.cb_wait_front(1, 4)
        k.tile_regs_acquire()
        k.matmul_block(0, 1, 0, 0, 0, False, 2, 4, 1)      # 4 x 2 block, one K step
        k.tile_regs_commit()
        k.tile_regs_wait()
        k.cb_reserve_back(16, 1)
        k.pack_tile(0, 16)
        k.cb_push_back(16, 1)
        k.tile_regs_release()
        for _ in range(3):
            _one(k, lambda k, i: k.copy_tile(0, 0, 0), 0)

    # LoFi: MATH's products are faster than UNPACK's tiles, so MATH catches up and waits
    rep, _ = _program(dev, compute, cbs=(("bf16", 0), ("bf16", 1)), math_fidelity="LoFi")
    (_, u0, ud, _), = _events(rep, "unpack", "unpack matmul_block")
    (_, m0, md, _), = _events(rep, "math", "matmul_block")
    per_product = dev.sd.value("cost.math.matmul") + dev.sd.value("cost.math.matmul_tile_overhead")
    assert m0 < u0 + ud                                    # started before the unpack ended
    assert m0 + md < u0 + ud                               # its own work is shorter
    (wait,) = [e for c, k, tr in rep.trace_events if k == "math" for e in tr
               if e[0].startswith("wait") and e[1] == m0 + md]
    assert wait[1] + wait[2] == pytest.approx(u0 + ud + per_product)


def _reload(block):
    """Four tiles of CB 0 into DST 0..3 (one block call, or a copy_tile each), packed."""
    def compute(k):
        k.cb_wait_front(0, 4)
        k.tile_regs_acquire()
        if block:
            k.copy_block_matmul_partials(0, 0, 0, 4)
        else:
            for d in range(4):
                k.copy_tile(0, d, d)
        k.tile_regs_commit()
        k.tile_regs_wait()
        for d in range(4):
            k.cb_reserve_back(16, 1)
            k.pack_tile(d, 16)
            k.cb_push_back(16, 1)
        k.tile_regs_release()
    return compute


def test_a_block_reload_pays_one_call_front_end_and_moves_the_same_values(dev):
    rep_b, out_b = _program(dev, _reload(True), cbs=(("bf16", 0),))
    rep_t, out_t = _program(dev, _reload(False), cbs=(("bf16", 0),))
    np.testing.assert_array_equal(out_b.to_numpy(), out_t.to_numpy())
    (ev,) = _events(rep_b, "unpack", "unpack copy_block_matmul_partials")
    assert ev[2] == 4 * dev.sd.value("cost.unpack.bf16") + dev.sd.value("cost.unpack.call")
    (m,) = _events(rep_b, "math", "copy_block_matmul_partials")
    assert m[2] == 4 * dev.sd.value("cost.math.datacopy")
    per_tile = _events(rep_t, "unpack", "unpack copy_tile")
    assert sum(e[2] for e in per_tile) - ev[2] == 3 * dev.sd.value("cost.unpack.call")


def test_a_block_reload_of_no_tiles_is_refused(dev):
    def compute(k):
        k.copy_block_matmul_partials(0, 0, 0, 0)
    with pytest.raises(ttsim.TTSimError, match="ntiles must be a whole number >= 1"):
        _program(dev, compute, cbs=(("bf16", 0),))
