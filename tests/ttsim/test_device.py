"""Host tensors: tiled pages interleaved over DRAM banks or L1s, in the hardware's formats."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import ttsim
from ttsim import formats


@given(lead=st.lists(st.integers(1, 3), max_size=2), rows=st.integers(1, 3), cols=st.integers(1, 3),
       fmt=st.sampled_from(["bf16", "fp32", "bfp8_b"]), memory=st.sampled_from(["dram", "l1"]),
       seed=st.integers(0, 2 ** 31))
def test_round_trip_holds_the_values_as_the_format_stores_them(lead, rows, cols, fmt, memory, seed):
    shape = (*lead, 32 * rows, 32 * cols)
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    dev = ttsim.Device()
    t = dev.tensor(a, fmt, memory)
    assert t.num_pages == int(np.prod(lead, dtype=int)) * rows * cols
    assert np.array_equal(t.to_numpy(), formats.quantize(a, fmt))


def test_pages_interleave_round_robin_over_the_dram_banks(dev):
    """Page i of a DRAM tensor sits in bank i mod banks, at the tensor's address plus
    (i div banks) pages: what interleaved_addr_gen assumes."""
    n_banks = len(dev.dram)
    a = np.arange(32 * 32 * 2 * n_banks, dtype=np.float32).reshape(64, 32 * n_banks)
    t = dev.tensor(a, "fp32")
    tiles = formats.tilize(a)
    for page in range(t.num_pages):
        bank = dev.dram[page % n_banks]
        at = t.address + (page // n_banks) * t.page_size
        raw = bank.mem[at:at + t.page_size]
        assert np.array_equal(formats.decode_tiles(raw, "fp32", 1)[0], tiles[page])


def test_l1_tensors_take_space_from_the_top_of_every_l1(dev):
    t = dev.tensor(np.ones((64, 64 * 64), np.float32), memory="l1")
    assert t.memory == "l1"
    for l1 in dev.l1.values():
        assert l1.high <= l1.size - 2048            # 64 pages over 64 cores: one page each
    assert np.array_equal(t.to_numpy(), np.ones((64, 64 * 64), np.float32))


@pytest.mark.parametrize("shape,memory,match", [
    ((31, 32), "dram", "multiples of 32"),
    ((32,), "dram", "multiples of 32"),
    ((32, 32), "sram", "memory must be 'dram' or 'l1'"),
])
def test_bad_tensors_are_refused(dev, shape, memory, match):
    with pytest.raises(ttsim.TTSimError, match=match):
        dev.empty(shape, memory=memory)


def test_writing_the_wrong_shape_is_refused(dev):
    t = dev.empty((32, 64))
    with pytest.raises(ttsim.TTSimError, match="shape"):
        t.write(np.zeros((64, 32), np.float32))


def test_unknown_format_is_refused(dev):
    with pytest.raises(ttsim.TTSimError, match="unknown data format 'int8'"):
        dev.empty((32, 32), "int8")
