"""sysdesc: the built-in descriptions, how a description is found, and a clear error (naming
the file and the dotted field) for every way a description can be malformed."""
import copy
import os
import pathlib
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sysdesc
from sysdesc import REQUIRED_FIGURES, SysDesc, SysdescError, from_dict, load

BUILTINS = ("wormhole_b0", "blackhole", "blackhole_p100a")
FNAME = "mine.toml"


def _read(name):
    with open(os.path.join(sysdesc.BUILTIN_DIR, f"{name}.toml"), "rb") as f:
        return tomllib.load(f)


_RAW = {n: _read(n) for n in BUILTINS}


def _data(name="wormhole_b0"):
    return copy.deepcopy(_RAW[name])


def _error(mutate, name="wormhole_b0"):
    """The message from_dict gives for a built-in's data after one mutation."""
    d = _data(name)
    mutate(d)
    with pytest.raises(SysdescError) as ei:
        from_dict(d, FNAME)
    return str(ei.value)


def _parent(d, dotted):
    *path, last = dotted.split(".")
    for p in path:
        d = d[p]
    return d, last


def _set(dotted, value):
    def m(d):
        p, k = _parent(d, dotted)
        p[k] = value
    return m


def _pop(dotted):
    def m(d):
        p, k = _parent(d, dotted)
        del p[k]
    return m


def _set_value(dotted, value):
    def m(d):
        p, k = _parent(d, dotted)
        p[k]["value"] = value
    return m


def _raw_figures(d, prefix=""):
    """Every { value = ... } inline table in the raw TOML by dotted key (banks excluded)."""
    out = {}
    for k, x in d.items():
        key = f"{prefix}{k}"
        if isinstance(x, dict):
            if "value" in x:
                out[key] = x
            else:
                out.update(_raw_figures(x, key + "."))
    return out


# --- the built-ins ------------------------------------------------------------------------

def test_builtin_names_lists_both_chips():
    """Users pick chips by these names; both required built-ins must be found."""
    assert set(BUILTINS) <= set(sysdesc.builtin_names())


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_and_is_consistent(name):
    """A built-in loads, carries every required figure, and its structure is self-consistent."""
    sd = load(name)
    assert sd.name == name and sd.format_version == sysdesc.FORMAT_VERSION == 1
    assert set(REQUIRED_FIGURES) <= set(sd.figures)
    assert 0 <= sd.l1_reserved < sd.l1_size
    assert sd.num_nocs >= 1 and sd.max_cbs >= 1
    workers = {sd.worker_noc_xy(x, y) for x in range(sd.worker_grid()[0])
               for y in range(sd.worker_grid()[1])}
    assert len(workers) == sd.worker_grid()[0] * sd.worker_grid()[1]
    bank_xys = [b.noc_xy for b in sd.dram_banks]
    assert len(set(bank_xys)) == len(bank_xys) and not workers & set(bank_xys)
    for xy in workers | set(bank_xys):
        assert 0 <= xy[0] < sd.noc_grid[0] and 0 <= xy[1] < sd.noc_grid[1]


@pytest.mark.parametrize("name", BUILTINS)
def test_every_figure_has_provenance(name):
    """Invariant 3: every figure, bank figures included, says where it comes from."""
    sd = load(name)
    figs = list(sd.figures.values()) + [f for b in sd.dram_banks for f in (b.bandwidth, b.latency)]
    for f in figs:
        assert isinstance(f.source, str) and f.source.strip(), f
        assert isinstance(f.estimate, bool)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_figure_in_the_file_is_loaded_with_its_text(name):
    """No figure in the TOML is dropped or mislabelled: source vs estimate survive loading."""
    sd = load(name)
    raw = _raw_figures(_RAW[name])
    assert set(raw) == set(sd.figures)
    for k, x in raw.items():
        f = sd.figures[k]
        assert f.value == x["value"]
        assert f.estimate == ("estimate" in x)
        assert f.source == (x["estimate"] if f.estimate else x["source"]).strip()


def test_wormhole_figures_the_docs_quote():
    """The figures docs/sysdesc.md and HARDWARE.md quote for Wormhole B0 are what loads."""
    sd = load("wormhole_b0")
    assert sd.clock_ghz.value == 1.0
    assert sd.worker_grid() == (8, 8) and sd.noc_grid == (10, 12) and sd.torus
    assert len(sd.dram_banks) == 12
    assert sd.value("cost.math.matmul") == 16
    assert sd.value("dst.tiles_16bit") == 16


# --- finding a description ----------------------------------------------------------------

def test_default_is_wormhole_b0():
    """No name means the default chip, wormhole_b0."""
    assert sysdesc.DEFAULT == "wormhole_b0"
    assert load().name == "wormhole_b0"
    assert load(None) is load("wormhole_b0")


def test_load_by_path_matches_load_by_name():
    """A path to a built-in's file (str or pathlib) gives the same description as its name."""
    path = os.path.join(sysdesc.BUILTIN_DIR, "blackhole.toml")
    by_name = load("blackhole")
    assert load(path) is by_name
    assert load(pathlib.Path(path)) is by_name
    assert by_name.path == os.path.abspath(path)


def test_load_caches_and_passes_a_sysdesc_through():
    """Loading twice is free (same object); a SysDesc given to load() is returned as is."""
    a = load("blackhole")
    assert load("blackhole") is a
    assert load(a) is a
    assert load("wormhole_b0") is not a


def test_user_file_is_reread_when_it_changes(tmp_path):
    """The cache is keyed on the file's mtime, so an edited file is not served stale."""
    p = tmp_path / "chip.toml"
    text = (pathlib.Path(sysdesc.BUILTIN_DIR) / "wormhole_b0.toml").read_text()
    p.write_text(text.replace('name = "wormhole_b0"', 'name = "my_chip"'))
    first = load(str(p))
    assert first.name == "my_chip" and first.path == str(p)
    assert load(str(p)) is first
    p.write_text(text.replace('name = "wormhole_b0"', 'name = "my_chip_v2"'))
    st_ = os.stat(p)
    os.utime(p, (st_.st_atime, st_.st_mtime + 10))
    second = load(str(p))
    assert second.name == "my_chip_v2" and second is not first


def test_user_file_via_cli_and_device(tmp_path, capsys):
    """The workflow docs/sysdesc.md gives: copy a built-in, check it with `ttsim sysdesc`,
    use it with ttsim.Device(path)."""
    import ttsim
    from ttsim.cli import main
    p = tmp_path / "half_l1.toml"
    text = (pathlib.Path(sysdesc.BUILTIN_DIR) / "wormhole_b0.toml").read_text()
    p.write_text(text.replace('name = "wormhole_b0"', 'name = "half_l1"')
                     .replace("size = 1499136", "size = 749568"))
    assert main(["sysdesc", str(p)]) == 0
    out = capsys.readouterr().out
    assert "half_l1" in out and "732 KiB" in out
    dev = ttsim.Device(str(p))
    assert dev.sd.name == "half_l1" and dev.sd.l1_size == 749568
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("size = 1499136", "size = -1"))
    assert main(["sysdesc", str(bad)]) == 2
    assert "bad.toml: l1.size: must be > 0" in capsys.readouterr().err


def test_unknown_builtin_name_lists_the_builtins():
    """A mistyped chip name says so and lists what exists."""
    with pytest.raises(SysdescError) as ei:
        load("wormhole_c0")
    msg = str(ei.value)
    assert "unknown sysdesc 'wormhole_c0'" in msg
    assert "blackhole" in msg and "wormhole_b0" in msg


@pytest.mark.parametrize("rel", ["nope.toml", "sub/nope"])
def test_nonexistent_path(tmp_path, rel):
    """A path (ends in .toml or contains a separator) that does not exist is named."""
    p = str(tmp_path / rel)
    with pytest.raises(SysdescError, match="no such file") as ei:
        load(p)
    assert p in str(ei.value)
    with pytest.raises(SysdescError, match="no such file"):
        load(pathlib.Path(p))


def test_directory_is_not_a_traceback(tmp_path):
    """A directory given as the path is a SysdescError, not an OSError from deep inside."""
    with pytest.raises(SysdescError, match="cannot read"):
        load(str(tmp_path))


@pytest.mark.parametrize("text", ["format_version = 1\n[chip\nname = 'x'\n", "x = = 1\n",
                                  b"\xff\xfe = 1\n"])
def test_invalid_toml_names_the_file(tmp_path, text):
    """Broken TOML (or bytes that are not UTF-8) is reported against the file."""
    p = tmp_path / "broken.toml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    with pytest.raises(SysdescError) as ei:
        load(str(p))
    assert str(ei.value).startswith("broken.toml: not valid TOML")


def test_file_errors_name_the_file(tmp_path):
    """A validation error in a file names that file, not '<dict>'."""
    p = tmp_path / "chip_b.toml"
    text = (pathlib.Path(sysdesc.BUILTIN_DIR) / "blackhole.toml").read_text()
    p.write_text(text.replace("max_cbs = 32", 'max_cbs = "32"'))
    with pytest.raises(SysdescError) as ei:
        load(str(p))
    assert str(ei.value) == "chip_b.toml: l1.max_cbs: must be int, got str '32'"


# --- validation: one mutation, one error naming the field --------------------------------

def test_unmutated_data_is_valid_and_from_dict_defaults_the_name():
    """The baseline the mutation tests start from loads; without a file name errors say <dict>."""
    for name in BUILTINS:
        assert isinstance(from_dict(_data(name), FNAME), SysDesc)
    d = _data()
    del d["l1"]["size"]
    with pytest.raises(SysdescError, match=r"^<dict>: l1.size: missing$"):
        from_dict(d)


CASES = [
    # (mutation, field the message must name, fragment of the message)
    (_pop("cost.math.matmul"), "cost.math.matmul", "missing"),
    (_pop("cost.math"), "cost.math.matmul", "missing"),
    (_pop("format_version"), "format_version", "missing"),
    (_pop("chip.name"), "chip.name", "missing"),
    (_pop("grid.torus"), "grid.torus", "missing"),
    (_pop("l1.size"), "l1.size", "missing"),
    (_pop("noc.count"), "noc.count", "missing"),
    (_pop("dram.banks"), "dram.banks", "missing"),
    (_set("dram", 5), "dram", "must be a table"),
    (_set("cost", "cheap"), "cost", "must be a table"),
    # wrong types
    (_set("l1.size", "1464 KiB"), "l1.size", "must be int, got str"),
    (_set("l1.size", 1.5e6), "l1.size", "must be int, got float"),
    (_set("l1.max_cbs", True), "l1.max_cbs", "must be int, got bool"),
    (_set("noc.count", True), "noc.count", "must be int, got bool"),
    (_set("grid.torus", 1), "grid.torus", "must be bool, got int"),
    (_set("chip.name", 7), "chip.name", "must be str"),
    (_set("chip.description", 7), "chip.description", "must be str"),
    (_set("format_version", "1"), "format_version", "must be int, got str"),
    (_set_value("cost.math.matmul", "16"), "cost.math.matmul.value", "must be int/float, got str"),
    (_set_value("noc.hop_latency", True), "noc.hop_latency.value", "must be int/float, got bool"),
    (_set("cost.math.matmul", 16), "cost.math.matmul", "a figure is written"),
    (_set("grid.noc_grid", [10]), "grid.noc_grid", "[width, height]"),
    (_set("grid.noc_grid", [True, 12]), "grid.noc_grid", "[width, height]"),
    (_set("grid.worker_x", [1, True]), "grid.worker_x", "must be an int"),
    (_set("dram.banks", [5]), "dram.banks[0]", "must be a table"),
    # negative / zero sizes and figures
    (_set("l1.size", -1), "l1.size", "must be > 0, got -1"),
    (_set("l1.size", 0), "l1.size", "must be > 0, got 0"),
    (_set("l1.reserved", -4), "l1.reserved", "must be >= 0, got -4"),
    (_set("noc.count", 0), "noc.count", "must be > 0"),
    (_set_value("cost.sfpu.exp", -1), "cost.sfpu.exp", "must be a finite number >= 0, got -1"),
    (_set_value("cost.math.matmul", float("nan")), "cost.math.matmul", "finite"),
    (_set_value("dram.latency", float("inf")), "dram.latency", "finite"),
    (_set_value("noc.link_bytes_per_cycle", 0), "noc.link_bytes_per_cycle", "must be > 0"),
    (_set_value("chip.clock_ghz", 0), "chip.clock_ghz", "must be > 0"),
    (_set_value("noc.header_flits", 0), "noc.header_flits", "must be > 0"),
    (_set_value("dst.tiles_16bit", 6), "dst.tiles_16bit", "multiple of 4"),
    # L1
    (_set("l1.reserved", 1499136), "l1.reserved", "leaves nothing"),
    (_set("l1.reserved", 2_000_000), "l1.reserved", "leaves nothing"),
    # grid
    (_set("grid.worker_x", [1, 10]), "grid.worker_x", "coordinate 10 is off the 10x12 NoC grid"),
    (_set("grid.worker_y", [-1]), "grid.worker_y", "coordinate -1 is off the 10x12 NoC grid"),
    (_set("grid.worker_y", [1, 2, 1]), "grid.worker_y", "duplicate coordinates"),
    (_set("grid.worker_x", []), "grid.worker_x", "at least one"),
    # DRAM banks
    (_set("dram.banks", []), "dram.banks", "at least one DRAM bank"),
    (lambda d: d["dram"]["banks"][0].update(noc_xy=[10, 0]), "dram.banks[0].noc_xy",
     "(10,0) is off the 10x12 NoC grid"),
    (lambda d: d["dram"]["banks"][3].update(noc_xy=[0, -1]), "dram.banks[3].noc_xy",
     "(0,-1) is off the 10x12 NoC grid"),
    (lambda d: d["dram"]["banks"][0].update(noc_xy=[1, 1]), "dram.banks[0].noc_xy",
     "(1,1) is a worker core"),
    (lambda d: d["dram"]["banks"][1].update(noc_xy=[0, 0]), "dram.banks[1].noc_xy",
     "(0,0) is used by another bank"),
    (lambda d: d["dram"]["banks"][0].update(noc_xy=[0, 0, 0]), "dram.banks[0].noc_xy", "[x, y]"),
    (lambda d: d["dram"]["banks"][0].update(noc_xy=[False, 0]), "dram.banks[0].noc_xy", "[x, y]"),
    (lambda d: d["dram"]["banks"][0].update(id=-1), "dram.banks[0].id", "must be >= 0"),
    (lambda d: d["dram"]["banks"][2].pop("id"), "dram.banks[2].id", "missing"),
    (lambda d: d["dram"]["banks"][0].update(bandwith={"value": 5, "source": "x"}),
     "dram.banks[0]", "unknown keys ['bandwith']"),
    (lambda d: d["dram"]["banks"][0].update(bandwidth={"value": 0, "source": "x"}),
     "dram.banks[0].bandwidth", "must be > 0"),
    (lambda d: d["dram"]["banks"][0].update(latency={"value": 5}),
     "dram.banks[0].latency", "exactly one of 'source'"),
    # figure syntax
    (_set("cost.math.matmul", {"value": 16, "source": "a", "estimate": "b"}), "cost.math.matmul",
     "exactly one of 'source'"),
    (_set("cost.math.matmul", {"value": 16}), "cost.math.matmul", "exactly one of 'source'"),
    (_set("cost.math.matmul", {"source": "x"}), "cost.math.matmul.value", "missing"),
    (_set("cost.math.matmul", {"value": 16, "source": "  "}), "cost.math.matmul", "non-empty"),
    (_set("cost.math.matmul", {"value": 16, "estimate": 3}), "cost.math.matmul", "non-empty string"),
    (_set("cost.math.matmul", {"value": 16, "source": "x", "units": "cycles"}), "cost.math.matmul",
     "unknown keys ['units']"),
    (_set("chip.vendor", "tenstorrent"), "chip.vendor", "unknown key"),
    (_set("chip.clock_ghz", 1), "chip.clock_ghz", "a figure is written"),
    # top level
    (_set("memory", {}), "memory", "unknown top-level table"),
    (_set("format_version", 2), "format_version", "version 2 is not supported (this ttsim reads 1)"),
]


@pytest.mark.parametrize("mutate,field,fragment", CASES,
                         ids=[f"{i}-{c[1]}" for i, c in enumerate(CASES)])
def test_one_mutation_one_clear_error(mutate, field, fragment):
    """Each malformation is a SysdescError starting '<file>: <dotted field>:' and saying what
    is wrong."""
    msg = _error(mutate)
    assert msg.startswith(f"{FNAME}: {field}: "), msg
    assert fragment in msg, msg


@pytest.mark.parametrize("table", ["chip", "grid", "l1", "noc", "dram", "dst", "cost"])
def test_missing_table_is_named(table):
    """Dropping a whole table names that table, not some figure inside it."""
    assert _error(_pop(table)) == f"{FNAME}: {table}: missing"


@given(key=st.sampled_from(REQUIRED_FIGURES), name=st.sampled_from(BUILTINS))
def test_any_required_figure_removed_is_named(key, name):
    """Whichever required figure is missing, the error names it first."""
    msg = _error(_pop(key), name)
    assert msg.startswith(f"{FNAME}: {key}: missing"), msg


def test_all_missing_figures_are_listed():
    """Dropping a whole sub-table lists every required figure it held, so one run fixes all."""
    msg = _error(_pop("cost.math"))
    want = [k for k in REQUIRED_FIGURES if k.startswith("cost.math.")]
    assert msg.startswith(f"{FNAME}: {want[0]}: missing")
    assert all(k in msg for k in want)
    assert "cost.api" not in msg


@given(key=st.sampled_from(REQUIRED_FIGURES), value=st.floats(max_value=-1e-9, allow_nan=False))
def test_any_required_figure_negative_is_named(key, value):
    """A negative figure anywhere is rejected with that figure's name."""
    msg = _error(_set_value(key, value))
    assert msg.startswith(f"{FNAME}: {key}: must be"), msg


@given(xy=st.tuples(st.integers(-3, 13), st.integers(-3, 15)))
def test_bank_position_accepted_iff_free_endpoint_on_grid(xy):
    """A DRAM bank may sit on any NoC endpoint that is on the grid, not a worker and not
    another bank's; exactly those positions load, and the bank is then where it was put."""
    sd0 = load("wormhole_b0")
    others = {b.noc_xy: i for i, b in enumerate(sd0.dram_banks) if i}
    d = _data()
    d["dram"]["banks"][0]["noc_xy"] = list(xy)
    on_grid = 0 <= xy[0] < 10 and 0 <= xy[1] < 12
    if on_grid and not sd0.is_worker(xy) and xy not in others:
        assert from_dict(d, FNAME).dram_banks[0].noc_xy == xy
        return
    with pytest.raises(SysdescError) as ei:
        from_dict(d, FNAME)
    if not on_grid:
        want = f"dram.banks[0].noc_xy: ({xy[0]},{xy[1]}) is off the 10x12 NoC grid"
    elif sd0.is_worker(xy):
        want = f"dram.banks[0].noc_xy: ({xy[0]},{xy[1]}) is a worker core"
    else:  # the clash is found at the later of the two banks
        want = f"dram.banks[{others[xy]}].noc_xy: ({xy[0]},{xy[1]}) is used by another bank"
    assert str(ei.value) == f"{FNAME}: {want}"


def test_figure_may_carry_a_unit_but_unknown_figures_are_refused():
    """`unit` is an allowed figure key; a figure name the schema does not know (a misspelling,
    or a figure no code reads) is refused with the nearest known name, not silently kept."""
    d = _data()
    d["cost"]["math"]["matmul"]["unit"] = "cycles per fidelity phase"
    assert from_dict(d, FNAME).value("cost.math.matmul") == 16
    d["noc"]["dram_raed_noc"] = {"value": 0, "source": "x"}
    msg = _error(lambda x: x.update(d))
    assert msg.startswith(f"{FNAME}: noc.dram_raed_noc: unknown key; did you mean "
                          f"'noc.dram_read_noc'?"), msg


def test_per_bank_overrides():
    """A bank's own bandwidth/latency replace dram.* for that bank only."""
    d = _data()
    d["dram"]["banks"][2]["bandwidth"] = {"value": 11.1, "source": "measured"}
    d["dram"]["banks"][2]["latency"] = {"value": 250, "estimate": "slow bank"}
    sd = from_dict(d, FNAME)
    b2 = sd.dram_banks[2]
    assert (b2.bandwidth.value, b2.bandwidth.source, b2.bandwidth.estimate) == (11.1, "measured", False)
    assert (b2.latency.value, b2.latency.estimate) == (250, True)
    for b in sd.dram_banks[:2] + sd.dram_banks[3:]:
        assert b.bandwidth is sd.figure("dram.bandwidth_bytes_per_cycle")
        assert b.latency is sd.figure("dram.latency")


# --- the SysDesc API ----------------------------------------------------------------------

@pytest.mark.parametrize("fp32_acc,full_sync,tiles", [(False, True, 16), (False, False, 8),
                                                      (True, True, 8), (True, False, 4)])
def test_dst_tiles_rules(fp32_acc, full_sync, tiles):
    """DST: 16 16-bit tiles, halved by fp32 accumulation and again by half-sync."""
    assert load("wormhole_b0").dst_tiles(fp32_acc, full_sync) == tiles


def test_dst_tiles_default_is_16bit_half_sync():
    """The defaults are the hardware's default mode: 16-bit DST, half-sync."""
    assert load("wormhole_b0").dst_tiles() == 8


def test_dst_tiles_follow_the_figure():
    """dst_tiles is computed from dst.tiles_16bit, not hard-coded."""
    d = _data()
    d["dst"]["tiles_16bit"]["value"] = 32
    sd = from_dict(d, FNAME)
    assert [sd.dst_tiles(a, s) for a, s in ((0, 1), (0, 0), (1, 1), (1, 0))] == [32, 16, 16, 8]


def test_worker_noc_xy():
    """Logical cores map through worker_x/worker_y; outside the worker grid is an error."""
    sd = load("wormhole_b0")
    assert sd.worker_noc_xy(0, 0) == (1, 1)
    assert sd.worker_noc_xy(4, 5) == (6, 7)
    assert sd.worker_noc_xy(7, 7) == (9, 9)
    for xy in ((8, 0), (0, 8), (-1, 0)):
        with pytest.raises(SysdescError) as ei:
            sd.worker_noc_xy(*xy)
        msg = str(ei.value)
        assert "wormhole_b0" in msg and f"({xy[0]},{xy[1]})" in msg and "8x8 worker grid" in msg


def test_value_of_unknown_figure_names_it():
    """Asking for a figure the description lacks names the figure and the file."""
    sd = load("blackhole")
    with pytest.raises(SysdescError) as ei:
        sd.value("cost.sfpu.erf")
    assert "cost.sfpu.erf" in str(ei.value) and "blackhole.toml" in str(ei.value)


def test_dram_bank_at_and_is_worker():
    """Endpoint lookups agree with the bank list and the worker grid."""
    sd = load("wormhole_b0")
    b = sd.dram_banks[7]
    assert sd.dram_bank_at(b.noc_xy) is b
    assert sd.dram_bank_at((1, 1)) is None
    assert sd.is_worker((1, 1)) and not sd.is_worker((0, 0)) and not sd.is_worker((5, 1))


@pytest.mark.parametrize("name,grid,noc", [("wormhole_b0", "8x8", "10x12"),
                                           ("blackhole", "14x10", "17x12"),
                                           ("blackhole_p100a", "11x10", "17x12")])
def test_describe_mentions_name_and_grid(name, grid, noc):
    """`ttsim sysdesc` prints describe(): it must say which chip and what grid."""
    text = load(name).describe()
    assert text.splitlines()[0].startswith(name)
    assert f"worker grid {grid}" in text and f"{noc} NoC" in text
    assert f"{len(load(name).dram_banks)} DRAM banks" in text
