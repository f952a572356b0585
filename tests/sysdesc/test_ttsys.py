"""tt-mlir system descriptors (.ttsys): the three real files map field by field onto the
values /work/shared/TTSYS.md says they hold, every entry point reaches them, and a file that
is not a descriptor, truncated or corrupt is a SysdescError naming the file and the field."""
import pathlib
import shutil
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sysdesc
from sysdesc import SysdescError, load, ttsys

SHARED = pathlib.Path(__file__).resolve().parent / "data"     # copies of shared/ttsys/
N150, N300, P150 = (SHARED / f"{n}_system_desc.ttsys" for n in ("n150", "n300", "p150"))
REAL = (N150, N300, P150)
_BYTES = {p: p.read_bytes() for p in REAL}


# --- the real files, field by field --------------------------------------------------------

# What TTSYS.md and a byte-by-byte decoding of the samples say each file holds.
EXPECT = {
    "n150": dict(builtin="wormhole_b0", grid=(8, 8), l1=1499136, reserved=103840, banks=12,
                 bank_bytes=1 << 30, l1_align=16, dram_align=32, dst=16, cbs=64),
    "n300": dict(builtin="wormhole_b0", grid=(8, 8), l1=1499136, reserved=103840, banks=12,
                 bank_bytes=1 << 30, l1_align=16, dram_align=32, dst=16, cbs=64),
    "p150": dict(builtin="blackhole", grid=(11, 10), l1=1572864, reserved=111104, banks=8,
                 bank_bytes=4278190080, l1_align=16, dram_align=64, dst=16, cbs=64),
}


@pytest.mark.parametrize("board", ["n150", "n300", "p150"])
def test_real_file_maps_every_field(board):
    path = SHARED / f"{board}_system_desc.ttsys"
    e = EXPECT[board]
    sd = load(path)
    base = load(e["builtin"])
    assert sd.path == str(path) and e["builtin"] in sd.name and path.name in sd.name
    assert f"from the built-in {e['builtin']}" in sd.description
    assert sd.worker_grid() == e["grid"]
    assert sd.l1_size == e["l1"] and sd.l1_reserved == e["reserved"] and sd.max_cbs == e["cbs"]
    assert len(sd.dram_banks) == e["banks"] and sd.dram_bank_bytes == e["bank_bytes"]
    assert sd.value("dst.tiles_16bit") == e["dst"]
    assert sd.value("noc.l1_align_bytes") == e["l1_align"]
    assert sd.value("noc.dram_read_align_bytes") == e["dram_align"]
    assert sd.value("noc.dram_write_align_bytes") <= e["dram_align"]
    for k in ("dram.bank_bytes", "dst.tiles_16bit", "noc.l1_align_bytes"):
        assert path.name in sd.figure(k).source and not sd.figure(k).estimate
    # what the file does not say comes from the built-in, unchanged
    assert sd.clock_ghz == base.clock_ghz and sd.noc_grid == base.noc_grid
    assert sd.num_nocs == base.num_nocs and sd.torus == base.torus
    for k in ("cost.math.matmul", "noc.hop_latency", "dram.latency", "cost.sfpu.exp"):
        assert sd.figure(k) == base.figure(k)
    assert [b.noc_xy for b in sd.dram_banks] == [b.noc_xy for b in base.dram_banks][:e["banks"]]
    # the grid sits on the die's Tensix columns and rows, as the built-ins place theirs
    cols, rows = ttsys.DIE[e["builtin"]]
    assert sd.worker_x == cols[:e["grid"][0]] and sd.worker_y == rows[:e["grid"][1]]
    assert sd.worker_x[:len(base.worker_x)] == base.worker_x[:len(sd.worker_x)]


def test_raw_fields_match_ttsys_md():
    """read() gives the raw ChipDesc values TTSYS.md quotes (n300: arch 0, grid (8,8), l1
    1499136, 12 DRAM channels of 1 GiB; p150: arch Blackhole, grid 10x11, 8 channels)."""
    n300 = ttsys.read(N300, 0)
    assert (n300["arch"], n300["grid_y"], n300["grid_x"], n300["l1_size"], n300["channels"],
            n300["dram_channel_size"]) == ("wormhole_b0", 8, 8, 1499136, 12, 1 << 30)
    assert n300["chips"] == 2 and n300["version"] == (0, 0, 3758)
    assert n300["git"].startswith("464a5f3419")
    p150 = ttsys.read(P150, 0)
    assert (p150["arch"], p150["grid_y"], p150["grid_x"], p150["channels"]) == ("blackhole", 10, 11, 8)
    assert (p150["noc_l1_address_align_bytes"], p150["noc_dram_address_align_bytes"]) == (16, 64)


def test_n300_chips():
    """chip=N picks device N of a multi-chip file (default 0); a chip the file lacks is named."""
    c0, c1 = load(N300), load(N300, chip=1)
    assert load(N300, chip=0) is c0 and c1 is not c0
    assert "chip 0" in c0.name and "chip 1" in c1.name
    assert c1.worker_grid() == (8, 8) and c1.dram_bank_bytes == 1 << 30
    for bad in (2, -1, "1"):
        with pytest.raises(SysdescError) as ei:
            load(N300, chip=bad)
        assert str(ei.value).startswith(f"n300_system_desc.ttsys: chip {bad!r}: the file describes "
                                        f"2 chips (0..1)")
    with pytest.raises(SysdescError, match="1 chip "):
        load(N150, chip=1)
    with pytest.raises(SysdescError, match="applies to tt-mlir system descriptors"):
        load("wormhole_b0", chip=1)


def test_blackhole_builtin_is_chosen_by_dram_channels(tmp_path):
    """The p150 file's grid is the 11x10 a p100a exposes too, so the grid cannot tell them
    apart; its 8 DRAM channels do. The same file with 7 channels maps onto blackhole_p100a."""
    assert ttsys.builtin_for(ttsys.read(P150)) == "blackhole"
    raw = bytearray(_BYTES[P150])
    at = _field_pos(raw, slot=4)                     # ChipDesc.num_dram_channels
    struct.pack_into("<I", raw, at, 7)
    at19 = _field_pos(raw, slot=19)                  # dram_grid_size (y, x) must agree
    struct.pack_into("<ii", raw, at19, 1, 7)
    p = tmp_path / "p100a.ttsys"
    p.write_bytes(bytes(raw))
    sd = load(p)
    assert sd.name.startswith("blackhole_p100a") and len(sd.dram_banks) == 7
    assert sd.figure("cost.math.matmul") == load("blackhole_p100a").figure("cost.math.matmul")


def _field_pos(raw, slot, chip=0):
    """Byte offset in the file of a ChipDesc field (for tests that edit one)."""
    b = memoryview(raw)[4:]
    u32 = lambda at: struct.unpack_from("<I", b, at)[0]
    def field(t, s):
        vt = t - struct.unpack_from("<i", b, t)[0]
        return t + struct.unpack_from("<H", b, vt + 4 + 2 * s)[0]
    root = u32(0)
    sd_at = field(root, 4)
    sd_t = sd_at + u32(sd_at)
    vec_at = field(sd_t, 1)
    vec = vec_at + u32(vec_at)
    chip_t = vec + 4 + 4 * chip + u32(vec + 4 + 4 * chip)
    return 4 + field(chip_t, slot)


@pytest.mark.parametrize("slot,value,field", [
    (3, 0, "l1_size"), (3, 1 << 40, "l1_size"), (9, 1 << 31, "l1_unreserved_base"),
    (4, 0, "num_dram_channels"), (4, 200, "num_dram_channels"), (5, 0, "dram_channel_size"),
    (5, 1 << 50, "dram_channel_size"), (6, 24, "noc_l1_address_align_bytes"),
    (8, 0, "noc_dram_address_align_bytes"), (15, 6, "dst_physical_size_tiles"),
    (15, 1 << 20, "dst_physical_size_tiles"), (16, 0, "num_cbs"), (16, 100000, "num_cbs"),
    (0, 2, "arch"), (0, 77, "arch"), (1, 0, "grid_size.y"), (1, 11, "grid_size.y"),
])
def test_field_out_of_range_is_named(tmp_path, slot, value, field):
    raw = bytearray(_BYTES[P150])
    at = _field_pos(raw, slot)
    fmt = {3: "<Q", 5: "<Q", 1: "<i"}.get(slot, "<I")
    struct.pack_into(fmt, raw, at, value)
    p = tmp_path / "bad.ttsys"
    p.write_bytes(bytes(raw))
    with pytest.raises(SysdescError) as ei:
        load(p)
    msg = str(ei.value)
    assert msg.startswith("bad.ttsys: SystemDescRoot.system_desc.chip_descs[0]."
                          f"{field}: "), msg


# --- every entry point ----------------------------------------------------------------------

def test_system_desc_path_is_the_default_when_set(monkeypatch):
    """No name: $SYSTEM_DESC_PATH if set (as tt-mlir's tools read it), else wormhole_b0."""
    assert load().name == "wormhole_b0"
    monkeypatch.setenv("SYSTEM_DESC_PATH", str(P150))
    assert load() is load(P150) and load(None).path == str(P150)
    assert load("wormhole_b0").name == "wormhole_b0"       # a name given still wins
    import ttsim
    assert ttsim.Device().sd is load(P150)
    monkeypatch.setenv("SYSTEM_DESC_PATH", "")
    assert load().name == "wormhole_b0"
    monkeypatch.setenv("SYSTEM_DESC_PATH", "/nonexistent/system_desc.ttsys")
    with pytest.raises(SysdescError, match="/nonexistent/system_desc.ttsys: no such file"):
        load()


def test_device_and_cli_take_a_ttsys(capsys):
    import ttsim
    from ttsim.cli import main
    dev = ttsim.Device(str(P150))
    assert dev.grid == (11, 10) and len(dev.dram) == 8 and dev.sd.path == str(P150)
    assert main(["sysdesc", str(N300), "--chip", "1"]) == 0
    out = capsys.readouterr().out
    assert "n300_system_desc.ttsys chip 1" in out and "12 DRAM banks of 1 GiB" in out
    assert main(["sysdesc", str(N300), "--chip", "5"]) == 2
    assert "chip 5: the file describes 2 chips" in capsys.readouterr().err


def test_ttsim_run_with_a_ttsys(tmp_path, capsys):
    from ttsim.cli import main
    script = tmp_path / "one.py"
    script.write_text("import ttsim\n"
                      "dev = ttsim.Device()\n"
                      "print('grid', dev.grid, dev.sd.name)\n")
    assert main(["run", str(script), "--sysdesc", str(P150)]) == 1   # ran no program
    out = capsys.readouterr().out
    assert "grid (11, 10) blackhole (p150_system_desc.ttsys)" in out


def test_a_file_without_the_extension_is_recognised(tmp_path):
    """tt-mlir writes `current.ttsys`, users rename: the TTSY identifier is what counts."""
    p = tmp_path / "system_desc"
    shutil.copy(N150, p)
    assert load(str(p)).worker_grid() == (8, 8)


# --- not a descriptor, truncated, corrupt ---------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"TTSY", b"format_version = 1\n" * 4,
                                     b"\x00" * 64, bytes(range(256))])
def test_not_a_system_descriptor(tmp_path, content):
    p = tmp_path / "x.ttsys"
    p.write_bytes(content)
    with pytest.raises(SysdescError) as ei:
        load(p)
    assert str(ei.value).startswith("x.ttsys: not a tt-mlir system descriptor: no 'TTSY'")


def test_old_layout_is_named(tmp_path):
    """A root table of four fields (before schema_hash, 2025-06) is refused with a hint."""
    raw = bytearray(_BYTES[N150])
    root = 4 + struct.unpack_from("<I", raw, 4)[0]
    vt = root - struct.unpack_from("<i", raw, root)[0]
    struct.pack_into("<H", raw, vt, 4 + 2 * 4)
    p = tmp_path / "old.ttsys"
    p.write_bytes(bytes(raw))
    with pytest.raises(SysdescError, match=r"^old.ttsys: SystemDescRoot: 4 fields: written by a "
                                           r"tt-mlir older than 2025-06-09"):
        load(p)


@given(which=st.sampled_from(REAL), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_file_is_named(tmp_path_factory, which, cut):
    raw = _BYTES[which]
    n = int(cut * len(raw))
    p = tmp_path_factory.mktemp("cut") / "cut.ttsys"
    p.write_bytes(raw[:n])
    with pytest.raises(SysdescError) as ei:
        load(p)
    msg = str(ei.value)
    assert msg.startswith("cut.ttsys: "), msg
    assert "not a tt-mlir system descriptor" in msg or "size prefix" in msg, msg


@given(which=st.sampled_from(REAL), cut=st.floats(0.05, 1, exclude_max=True))
def test_truncated_file_with_its_size_prefix_mended_is_named(tmp_path_factory, which, cut):
    """Past the size prefix, the reader itself must not run off the end of the buffer: a
    SysdescError naming the file, or (when every byte it reads survived the cut: the tail
    holds strings and vectors ttsim does not use) the same description as the whole file."""
    raw = bytearray(_BYTES[which][:max(12, int(cut * len(_BYTES[which])))])
    struct.pack_into("<I", raw, 0, len(raw) - 4)
    p = tmp_path_factory.mktemp("cut") / "cut.ttsys"
    p.write_bytes(bytes(raw))
    try:
        sd = ttsys.parse(str(p))
    except SysdescError as e:
        assert str(e).startswith("cut.ttsys: "), str(e)
        return
    whole = load(which)
    assert (sd.worker_x, sd.worker_y, sd.l1_size, sd.l1_reserved, sd.max_cbs, sd.dram_bank_bytes,
            len(sd.dram_banks)) == (whole.worker_x, whole.worker_y, whole.l1_size,
                                    whole.l1_reserved, whole.max_cbs, whole.dram_bank_bytes,
                                    len(whole.dram_banks))


@given(which=st.sampled_from(REAL),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=8))
def test_random_byte_mutations_load_or_are_named(tmp_path_factory, which, edits):
    """Any bytes at all: a valid description whose structure is within bounds, or a
    SysdescError naming the file; never a struct, flatbuffers or IndexError."""
    raw = bytearray(_BYTES[which])
    for at, byte in edits:
        raw[4 + int(at * (len(raw) - 4))] = byte      # keep the size prefix: reach the reader
    p = tmp_path_factory.mktemp("mut") / "mut.ttsys"
    p.write_bytes(bytes(raw))
    try:
        sd = sysdesc.ttsys.parse(str(p))
    except SysdescError as e:
        assert str(e).startswith("mut.ttsys: "), str(e)
        return
    assert 1 <= sd.l1_size <= sysdesc.schema.MAX_L1_BYTES and 0 <= sd.l1_reserved < sd.l1_size
    assert 1 <= len(sd.dram_banks) <= 12 and 1 <= sd.dram_bank_bytes <= sysdesc.schema.MAX_BANK_BYTES
    assert sd.value("dst.tiles_16bit") % 4 == 0 and 1 <= sd.max_cbs <= sysdesc.schema.MAX_CBS


def test_mutations_reach_the_fields_that_matter(tmp_path):
    """The mutation test is not vacuous: one byte of l1_size changed loads that size."""
    raw = bytearray(_BYTES[N150])
    raw[_field_pos(raw, 3) + 2] ^= 0x01
    p = tmp_path / "l1.ttsys"
    p.write_bytes(bytes(raw))
    assert ttsys.parse(str(p)).l1_size == 1499136 ^ (1 << 16)
