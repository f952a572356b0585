"""Host tensors: tiled pages interleaved over DRAM banks or L1s, in the hardware's formats."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import ttsim
from ttsim import formats
from ttsim.errors import TTSimError


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


def test_dram_allocation_beyond_capacity_is_refused_before_host_memory(dev):
    """DRAM holds sd.dram_bank_bytes per bank: a tensor past what is left is a TTSimError
    saying how much was asked, how much is left and on which chip, and nothing is allocated
    on the host (the banks grow only as tensors that fit are allocated)."""
    sd = dev.sd
    n, cap = len(dev.dram), sd.dram_bank_bytes
    assert cap == 1 << 30
    first = dev.empty((32, 32 * n))                     # one page in every bank
    used = dev._dram_next
    sizes = [b.mem.size for b in dev.dram]
    rows = cap // (32 * 32 * 2) + 1                     # one bf16 page per bank past capacity
    with pytest.raises(ttsim.TTSimError) as ei:
        dev.empty((32 * rows, 32 * n))
    msg = str(ei.value)
    assert f"needs {rows * 2048} bytes in each of the {n} DRAM banks" in msg
    assert f"{cap - used} bytes are left in each" in msg and sd.name in msg
    assert [b.mem.size for b in dev.dram] == sizes and dev._dram_next == used
    assert max(sizes) < cap                             # banks grow on demand, not to capacity
    assert first.address == 0


def test_dram_fills_to_capacity_exactly_and_no_further():
    """What is left can still be allocated; one page more cannot."""
    import dataclasses
    sd = dataclasses.replace(ttsim.Device().sd, dram_bank_bytes=64 * 2048)
    dev = ttsim.Device(sd)
    n = len(dev.dram)
    dev.empty((32 * 40, 32 * n))
    dev.empty((32 * 24, 32 * n))                        # exactly the 64 pages a bank holds
    with pytest.raises(ttsim.TTSimError, match="0 bytes are left in each"):
        dev.empty((32, 32))
    huge = ttsim.Device()
    with pytest.raises(ttsim.TTSimError, match="DRAM full"):
        huge.empty((2 ** 40, 2 ** 40))
    assert all(b.mem.size == 0 for b in huge.dram)


@pytest.mark.parametrize("data", [np.ones((32, 32), np.complex64),
                                  np.array([[None] * 32] * 32), np.full((32, 32), "x")])
def test_tensor_data_must_be_real_numbers(dev, data):
    """Complex data lost its imaginary part with a warning; None became NaN silently."""
    with pytest.raises(TTSimError, match=f"tensor data of dtype {data.dtype}: a tensor holds real "
                                         "numbers"):
        dev.tensor(data)
    with pytest.raises(TTSimError, match="a tensor holds real numbers"):
        dev.empty((32, 32)).write(data)


@pytest.mark.parametrize("shape", [(32.0, 32), (32.7, 32), (True, 32, 32), 32])
def test_a_tensor_shape_must_be_whole_numbers(dev, shape):
    """(32.7, 32) used to be truncated to (32, 32)."""
    with pytest.raises(TTSimError, match="a shape is a tuple of whole numbers"):
        dev.empty(shape)


@pytest.mark.parametrize("desc", [3, 1.5, ["wormhole_b0"]])
def test_a_device_description_of_the_wrong_type_is_a_sysdesc_error(desc):
    """Before: TypeError from os.fspath."""
    import sysdesc
    with pytest.raises(sysdesc.SysdescError, match="give a built-in name"):
        ttsim.Device(desc)
