"""sysdesc refuses nonsense: a hostile user's mutations of the built-ins (duplicate banks,
huge or non-finite values, misspelt keys) are errors naming the file and the dotted field,
never a description that loads and then hangs or exhausts the host."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sysdesc
from tests.sysdesc.builtins import BUILTINS, raw
from sysdesc import SysdescError, from_dict, schema
from sysdesc.load import FIGURE_KEYS, KNOWN_FIGURES, PLAIN_KEYS

FNAME = "hostile.toml"


def _figure_paths(d, prefix=()):
    """Paths (tuples of keys) of every figure inline table in raw TOML (banks excluded)."""
    out = []
    for k, x in d.items():
        if isinstance(x, dict):
            out += [prefix + (k,)] if "value" in x else _figure_paths(x, prefix + (k,))
    return out


def _error(d):
    with pytest.raises(SysdescError) as ei:
        from_dict(d, FNAME)
    return str(ei.value)


def _at(d, path):
    for k in path[:-1]:
        d = d[k]
    return d, path[-1]


HUGE = [2 ** 63 - 1, 2 ** 64, 10 ** 400, 1e308, float("inf"), float("nan"), -1, -(2 ** 63)]


# --- plain fields ----------------------------------------------------------------------------

# (path in the TOML, nonsense values, the dotted field the error must name)
PLAIN = [
    (("grid", "noc_grid"), [[1000000, 1000000], [65, 12], [10, 2 ** 63 - 1], [0, 12], [10, -1],
                            [10.0, 12], [10, 12, 1]], "grid.noc_grid"),
    (("l1", "size"), [2 ** 63 - 1, (16 << 20) + 1, 0, -1, 1e308, 1.5], "l1.size"),
    (("l1", "reserved"), [2 ** 63 - 1, -1, 1e308], "l1.reserved"),
    (("l1", "max_cbs"), [2 ** 63 - 1, 257, 0, -1, 1e308, True], "l1.max_cbs"),
    (("noc", "count"), [2 ** 63 - 1, 9, 0, -1, 1e308], "noc.count"),
]


@given(name=st.sampled_from(BUILTINS),
       case=st.sampled_from([(p, v, f) for p, vals, f in PLAIN for v in vals]))
def test_nonsense_plain_value_is_refused_naming_the_field(name, case):
    path, value, field = case
    d = raw(name)
    p, k = _at(d, path)
    p[k] = value
    assert _error(d).startswith(f"{FNAME}: {field}: ")


def test_a_huge_noc_grid_is_refused_not_simulated():
    """The case that hung the simulator: a million-by-million NoC."""
    d = raw("wormhole_b0")
    d["grid"]["noc_grid"] = [1000000, 1000000]
    assert _error(d) == (f"{FNAME}: grid.noc_grid: 1000000x1000000 is past the physical bound "
                         f"of 64 a side (Blackhole's NoC is 17x12)")


def test_the_bounds_admit_the_largest_sane_chip():
    """The ceilings are bounds, not the built-ins' values: a 64x64 NoC, 16 MiB L1, 256 CBs and
    a 1 TiB bank load."""
    d = raw("wormhole_b0")
    d["grid"]["noc_grid"] = [64, 64]
    d["l1"].update(size=16 << 20, max_cbs=256)
    d["dram"]["bank_bytes"]["value"] = 1 << 40
    sd = from_dict(d, FNAME)
    assert (sd.noc_grid, sd.l1_size, sd.max_cbs, sd.dram_bank_bytes) == ((64, 64), 16 << 20, 256, 1 << 40)


# --- figures ---------------------------------------------------------------------------------

@given(name=st.sampled_from(BUILTINS), data=st.data(), value=st.sampled_from(HUGE))
def test_nonsense_figure_value_is_refused_naming_the_figure(name, data, value):
    """2^63-1, 1e308, inf, nan, negatives: past every figure's bound, wherever it is."""
    d = raw(name)
    path = data.draw(st.sampled_from(_figure_paths(d)))
    p, k = _at(d, path)
    p[k]["value"] = value
    assert _error(d).startswith(f"{FNAME}: {'.'.join(path)}: ")


@given(name=st.sampled_from(BUILTINS), key=st.sampled_from(schema.POSITIVE_FIGURES))
def test_zero_is_refused_where_a_figure_must_be_positive(name, key):
    d = raw(name)
    p, k = _at(d, tuple(key.split(".")))
    p[k]["value"] = 0
    assert _error(d) == f"{FNAME}: {key}: must be > 0, got 0"


@given(name=st.sampled_from(BUILTINS), key=st.sampled_from(schema.INTEGER_FIGURES),
       frac=st.floats(0.01, 0.99))
def test_fractions_are_refused_where_the_simulator_counts_whole_units(name, key, frac):
    """header_flits = 1.5 would be truncated to 1 without a word: refused instead."""
    d = raw(name)
    p, k = _at(d, tuple(key.split(".")))
    if k not in p:
        p[k] = {"value": 0, "estimate": "test"}
    p[k]["value"] = 1 + frac
    msg = _error(d)
    assert msg.startswith(f"{FNAME}: {key}: "), msg


@pytest.mark.parametrize("key", schema.POWER_OF_TWO_FIGURES)
@pytest.mark.parametrize("value", [3, 24, 0])
def test_alignments_must_be_powers_of_two(key, value):
    d = raw("wormhole_b0")
    d["noc"][key.split(".")[1]] = {"value": value, "estimate": "test"}
    assert _error(d) == f"{FNAME}: {key}: must be a power of two (an address alignment), got {value}"


@pytest.mark.parametrize("key", ["noc.dram_read_noc", "noc.dram_write_noc"])
def test_dram_nocs_must_exist(key):
    d = raw("wormhole_b0")
    d["noc"][key.split(".")[1]]["value"] = 2
    assert _error(d) == f"{FNAME}: {key}: NoC 2 does not exist (noc.count is 2)"


# --- unknown keys ----------------------------------------------------------------------------

def _misspell(k, i):
    """k with one character doubled: close enough for a did-you-mean."""
    i %= len(k)
    return k[:i] + k[i] + k[i:]


@given(name=st.sampled_from(BUILTINS), table=st.sampled_from(["grid", "l1"]), i=st.integers(0, 20),
       data=st.data())
def test_misspelt_plain_key_is_refused_with_did_you_mean(name, table, i, data):
    """A misspelt key in [grid] or [l1] was silently ignored; now it is named, with the key
    it most likely meant."""
    d = raw(name)
    key = data.draw(st.sampled_from(PLAIN_KEYS[table]))
    bad = _misspell(key, i)
    d[table][bad] = d[table][key]
    msg = _error(d)
    assert msg.startswith(f"{FNAME}: {table}.{bad}: unknown key; did you mean '{key}'?"), msg


@given(name=st.sampled_from(BUILTINS), i=st.integers(0, 30), data=st.data())
def test_misspelt_figure_is_refused_with_did_you_mean(name, i, data):
    """A misspelt figure name (a copy of a real figure under a near name) is refused."""
    d = raw(name)
    path = data.draw(st.sampled_from(_figure_paths(d)))
    p, k = _at(d, path)
    bad = _misspell(k, i)
    p[bad] = dict(p[k])
    dotted = ".".join(path[:-1] + (bad,))
    msg = _error(d)
    assert msg.startswith(f"{FNAME}: {dotted}: unknown key; did you mean "), msg


@pytest.mark.parametrize("where,key", [((), "colour"), (("grid",), "harvested_rows"),
                                       (("l1",), "banks"), (("chip",), "vendor"),
                                       (("cost", "math"), "matmull")])
def test_unknown_key_anywhere_is_named(where, key):
    d = raw("wormhole_b0")
    t = d
    for w in where:
        t = t[w]
    t[key] = {"value": 1, "source": "x"} if where[:1] in (("cost",), ("chip",)) else 1
    dotted = ".".join(where + (key,))
    msg = _error(d)
    assert msg.startswith(f"{FNAME}: {dotted}: unknown "), msg
    if key == "matmull":
        assert "did you mean 'cost.math.matmul'?" in msg


def test_unknown_key_inside_a_figure_or_bank_is_named():
    d = raw("wormhole_b0")
    d["noc"]["hop_latency"]["note"] = "x"
    assert _error(d).startswith(f"{FNAME}: noc.hop_latency: unknown keys ['note'] (known: "
                                f"{', '.join(FIGURE_KEYS)})")
    d = raw("wormhole_b0")
    d["dram"]["banks"][4]["nocxy"] = [0, 0]
    assert _error(d).startswith(f"{FNAME}: dram.banks[4]: unknown keys ['nocxy'] "
                                f"(did you mean 'noc_xy'?")


# --- DRAM banks ------------------------------------------------------------------------------

@given(name=st.sampled_from(BUILTINS), data=st.data())
def test_duplicate_bank_id_is_refused_at_the_later_bank(name, data):
    d = raw(name)
    banks = d["dram"]["banks"]
    i, j = sorted(data.draw(st.lists(st.integers(0, len(banks) - 1), min_size=2, max_size=2,
                                     unique=True)))
    banks[j]["id"] = banks[i]["id"]
    assert _error(d) == f"{FNAME}: dram.banks[{j}].id: id {banks[i]['id']} is also dram.banks[{i}]'s"


@given(name=st.sampled_from(BUILTINS), data=st.data())
def test_duplicate_bank_endpoint_is_refused(name, data):
    d = raw(name)
    banks = d["dram"]["banks"]
    i, j = sorted(data.draw(st.lists(st.integers(0, len(banks) - 1), min_size=2, max_size=2,
                                     unique=True)))
    banks[j]["noc_xy"] = list(banks[i]["noc_xy"])
    xy = banks[i]["noc_xy"]
    assert _error(d) == f"{FNAME}: dram.banks[{j}].noc_xy: ({xy[0]},{xy[1]}) is used by another bank"


@given(name=st.sampled_from(BUILTINS), data=st.data(),
       case=st.sampled_from([("id", 2 ** 63 - 1), ("id", 1024), ("id", -1), ("id", 1.0),
                             ("bandwidth", {"value": 1e308, "source": "x"}),
                             ("bandwidth", {"value": 0, "source": "x"}),
                             ("latency", {"value": float("inf"), "source": "x"}),
                             ("latency", {"value": 2 ** 63 - 1, "source": "x"})]))
def test_nonsense_bank_field_is_refused(name, data, case):
    d = raw(name)
    banks = d["dram"]["banks"]
    i = data.draw(st.integers(0, len(banks) - 1))
    key, value = case
    banks[i][key] = value
    assert _error(d).startswith(f"{FNAME}: dram.banks[{i}].{key}: ")


def test_too_many_banks_is_refused():
    d = raw("wormhole_b0")
    d["grid"]["noc_grid"] = [64, 64]
    d["dram"]["banks"] = [{"id": i, "noc_xy": [20 + i % 40, 20 + i // 40]} for i in range(65)]
    assert _error(d).startswith(f"{FNAME}: dram.banks: 65 banks is past the physical bound 64")


# --- DRAM capacity ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,bank_bytes,banks", [("wormhole_b0", 1 << 30, 12),
                                                    ("blackhole", 4278190080, 8),
                                                    ("blackhole_p100a", 4278190080, 7)])
def test_builtins_say_how_much_dram_each_bank_holds(name, bank_bytes, banks):
    """n150/n300: 12 GiB over 12 banks; p150: 32 GB over 8 (4 GiB less 16 MiB each, as its
    tt-mlir descriptor says); p100a the same channels, 7 of them."""
    sd = sysdesc.load(name)
    assert sd.dram_bank_bytes == bank_bytes and len(sd.dram_banks) == banks
    assert sd.figure("dram.bank_bytes").source
    assert f"{banks} DRAM banks of" in sd.describe()


def test_bank_bytes_is_required_and_whole():
    d = raw("wormhole_b0")
    del d["dram"]["bank_bytes"]
    assert _error(d).startswith(f"{FNAME}: dram.bank_bytes: missing")
    d["dram"]["bank_bytes"] = {"value": 1073741824.5, "source": "x"}
    assert _error(d).startswith(f"{FNAME}: dram.bank_bytes: must be a whole number")
    d["dram"]["bank_bytes"] = {"value": 2 ** 41, "source": "x"}
    assert _error(d) == f"{FNAME}: dram.bank_bytes: {2 ** 41:g} is past the physical bound {2 ** 40:g}"


# --- every built-in stays valid --------------------------------------------------------------

@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_are_within_every_bound(name):
    sd = sysdesc.load(name)
    assert max(sd.noc_grid) <= schema.MAX_NOC_DIM and sd.l1_size <= schema.MAX_L1_BYTES
    assert sd.max_cbs <= schema.MAX_CBS and len(sd.dram_banks) <= schema.MAX_DRAM_BANKS
    assert len({b.id for b in sd.dram_banks}) == len(sd.dram_banks)
    for k, f in sd.figures.items():
        assert math.isfinite(f.value) and 0 <= f.value <= schema.FIGURE_CEILINGS.get(k, schema.MAX_FIGURE)
        assert k in KNOWN_FIGURES
