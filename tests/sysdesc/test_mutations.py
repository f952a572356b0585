"""Random mutations of the built-in descriptions (issue 8, item 4): each one is either
refused with a SysdescError naming the field it changed, or it loads and a small program
(DRAM reads and writes, compute, a semaphore and a multicast when the grid has room) runs
on it to the end, or stops with a ttsim error, in bounded time. Nothing hangs, nothing
raises a raw Python exception. And a wider NoC link never makes a transfer slower.
"""
import copy
import math
import signal
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sysdesc
from tests.sysdesc.builtins import BUILTINS, raw
import ttsim
from sysdesc import SysdescError, from_dict
from ttsim.program import dram_nocs

FNAME = "mutant.toml"

# a refusal may name the field that the changed one is checked against instead
COUPLED = {
    "l1.size": ("l1.reserved",),
    "noc.count": ("noc.dram_read_noc", "noc.dram_write_noc"),
    "grid.noc_grid": ("grid.worker_x", "grid.worker_y", "dram.banks"),
    "grid.worker_x": ("dram.banks",),
    "grid.worker_y": ("dram.banks",),
    "dram.bank_bytes": (),
}
WALL_LIMIT_S = 20


def _leaves(d, prefix=()):
    """(path, dotted name) of every value a mutation may change: plain fields, list items
    of coordinates, figure values and bank fields."""
    out = []
    for k, v in d.items():
        p = prefix + (k,)
        name = ".".join(str(x) for x in p)
        if isinstance(v, dict):
            if "value" in v:
                out.append((p + ("value",), name))
            else:
                out += _leaves(v, p)
        elif k == "banks":
            for i, b in enumerate(v):
                for bk in b:
                    out.append((p + (i, bk), f"{name}[{i}].{bk}"))
        else:
            out.append((p, name))
            if isinstance(v, list):
                out += [(p + (i,), name) for i in range(len(v))]
    return out


def _get(d, path):
    for k in path[:-1]:
        d = d[k]
    return d, path[-1]


def _values(orig):
    """Nonsense and near-sense values for a leaf that holds `orig`."""
    base = [st.integers(-2 ** 64, 2 ** 64), st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([0, -1, 1, 2, 3, 2 ** 31, 2 ** 63 - 1, 10 ** 30, 0.5, 1e308, -0.0]),
            st.sampled_from([2 ** 63 - 1, 10 ** 400, 1e308, float("inf"), [1000000, 1000000]]),
            st.booleans(), st.text(max_size=5), st.sampled_from([[], [1], [0, 0], [1, 2, 3],
                                                                 {"value": 1}])]
    if isinstance(orig, (int, float)) and not isinstance(orig, bool):
        base.append(st.sampled_from([0.5, 2, 10, 1000, 1e-3, 1.5]).map(
            lambda f: type(orig)(orig * f) if isinstance(orig, float) else int(orig * f)))
        base.append(st.sampled_from([-1, 1]).map(lambda s: orig + s))
    return st.one_of(*base)


@st.composite
def mutations(draw):
    name = draw(st.sampled_from(BUILTINS))
    d = raw(name)
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "unknown key", "same bank"]))
    leaves = _leaves(d)
    path, field = draw(st.sampled_from(leaves))
    parent, key = _get(d, path)
    if field.startswith("dram.banks["):
        field = "dram.banks"                         # a clash is reported at the later bank
    must = False          # a mutation the loader must refuse: an unknown key, a clash, a type
    if kind == "set":
        old = parent[key]
        parent[key] = new = draw(_values(old))
        must = _kind_of(new) != _kind_of(old)
    elif kind == "delete":
        del parent[key]
    elif kind == "unknown key":
        tables = sorted({p[:-1] for p, _ in leaves if isinstance(_get(d, p)[0], dict)
                         and p[-1] != "value" and "banks" not in p})
        where = draw(st.sampled_from(tables))
        table, _ = _get(d, where + ("",))
        new = draw(st.sampled_from(["sizee", "link_bytes", "reserve", "x", "worker"]))
        if new in table:
            return name, d, None, False
        table[new] = 1
        field = ".".join(where + (new,))
        must = True
    else:                                            # a bank copies another's id or endpoint
        banks = d["dram"]["banks"]
        i, j = draw(st.integers(0, len(banks) - 1)), draw(st.integers(0, len(banks) - 1))
        what = draw(st.sampled_from(["id", "noc_xy"]))
        banks[i][what] = copy.deepcopy(banks[j][what])
        field = "dram.banks" if i != j else None
        must = i != j
    return name, d, field, must


def _kind_of(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


class _Hung(Exception):
    pass


def _alarm(signum, frame):
    raise _Hung()


def _small_program(sd):
    """A 2-tile copy through exp on core (0,0); with a second core, that core waits on a
    semaphore core (0,0) increments and receives the tile by multicast."""
    dev = ttsim.Device(sd)
    gx, gy = dev.grid
    two = gx * gy > 1
    x = dev.tensor(np.linspace(-2, 2, 32 * 64, dtype=np.float32).reshape(32, 64))
    y = dev.empty((32, 64))
    rd, wr = dram_nocs(sd)
    prog = ttsim.Program(dev)
    cores = [(0, 0), (1, 0) if gx > 1 else (0, 1)] if two else [(0, 0)]
    prog.circular_buffer(cores, 0, "bf16", num_pages=2)
    prog.circular_buffer(cores, 16, "bf16", num_pages=2)
    sem = prog.semaphore(cores, 0)

    def reader(k):
        if k.core != (0, 0):
            k.noc_semaphore_wait(k.get_semaphore(sem), 1)
            return
        g = k.interleaved_addr_gen(x)
        for t in range(2):
            k.cb_reserve_back(0, 1)
            k.noc_async_read_tile(t, g, k.get_write_ptr(0))
            k.noc_async_read_barrier()
            if two and t == 0:
                xy = k.logical_to_noc(*cores[1])
                p = k.get_write_ptr(0)
                k.noc_async_write_multicast(p, k.get_noc_multicast_addr(*xy, *xy, k.get_write_ptr(0)),
                                            2048, 1)
                k.noc_async_write_barrier()
                k.noc_semaphore_inc(k.get_noc_addr(*xy, k.get_semaphore(sem)), 1)
            k.cb_push_back(0, 1)

    def compute(k):
        for _ in range(2):
            k.cb_wait_front(0, 1)
            k.tile_regs_acquire()
            k.copy_tile(0, 0, 0)
            k.exp_tile(0)
            k.tile_regs_commit()
            k.cb_pop_front(0, 1)
            k.tile_regs_wait()
            k.cb_reserve_back(16, 1)
            k.pack_tile(0, 16)
            k.cb_push_back(16, 1)
            k.tile_regs_release()

    def writer(k):
        g = k.interleaved_addr_gen(y)
        for t in range(2):
            k.cb_wait_front(16, 1)
            k.noc_async_write_tile(t, g, k.get_read_ptr(16))
            k.noc_async_write_barrier()
            k.cb_pop_front(16, 1)

    prog.reader(cores, reader, noc=rd)
    prog.compute((0, 0), compute)
    prog.writer((0, 0), writer, noc=wr)
    rep = dev.run(prog, max_cycles=1e8)
    assert math.isfinite(rep.cycles) and rep.cycles > 0
    assert np.isfinite(y.to_numpy()).all()
    return rep.cycles


def _names(msg, field):
    ok = (field,) + COUPLED.get(field, ())
    head = msg[len(FNAME) + 2:] if msg.startswith(f"{FNAME}: ") else ""
    return any(head.startswith(f) or f"'{f}" in head or f" {f}" in head for f in ok)


@settings(max_examples=60)
@given(mutations())
def test_every_mutation_is_refused_naming_its_field_or_loads_and_runs(m):
    """Unknown keys, bank ids or endpoints that clash and values of the wrong type must be
    refused; anything else may load, and then the small program must finish (or stop with
    a ttsim error) within WALL_LIMIT_S."""
    name, d, field, must = m
    try:
        sd = from_dict(d, FNAME)
    except SysdescError as e:
        msg = str(e)
        assert msg.startswith(f"{FNAME}: "), msg
        if field is not None:
            assert _names(msg, field), f"mutated {field}, refused as: {msg}"
        return
    assert not must, f"{name} with {field} mutated into nonsense loaded"
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(WALL_LIMIT_S)
    t0 = time.perf_counter()
    try:
        _small_program(sd)
    except ttsim.TTSimError:
        pass                                    # a clean refusal at run time, naming its cause
    except _Hung:
        pytest.fail(f"mutating {field} of {name} loaded, then ran over {WALL_LIMIT_S} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert time.perf_counter() - t0 < WALL_LIMIT_S


def test_the_small_program_runs_on_every_builtin():
    for name in BUILTINS:
        assert _small_program(sysdesc.load(name)) > 500


# --- a wider link ------------------------------------------------------------------------------

def _with(name, **figures):
    d = raw(name)
    for key, v in figures.items():
        table, fig = key.split("__")
        d[table][fig]["value"] = v
    return from_dict(d, FNAME)


def _transfer(sd, kind, size, n, far):
    """Cycles from a kernel's first issue to its barrier's return: n transfers of `size`."""
    dev = ttsim.Device(sd)
    gx, gy = dev.grid
    stride = -(-size // 64) * 64                 # DRAM addresses stay 64-byte aligned
    pages = -(-stride * n // 2048)
    t = dev.zeros((32, 32 * len(dev.dram) * max(1, pages)))
    prog = ttsim.Program(dev)
    other = (gx - 1, gy - 1) if far else (1, 0)
    prog.circular_buffer([(0, 0), other], 0, "bf16", num_pages=max(1, -(-size // 2048)))
    out = {}

    def reader(k):
        p = k.get_write_ptr(0)
        xy = k.logical_to_noc(*other)
        bank = k.interleaved_addr_gen(t).banks[-1]
        t0 = k.wall_clock()
        for i in range(n):
            if kind == "dram read":
                k.noc_async_read(k.get_noc_addr(*bank, t.address + i * stride), p, size)
            elif kind == "l1 read":
                k.noc_async_read(k.get_noc_addr(*xy, p), p, size)
            elif kind == "dram write":
                k.noc_async_write(p, k.get_noc_addr(*bank, t.address + i * stride), size)
            elif kind == "l1 write":
                k.noc_async_write(p, k.get_noc_addr(*xy, p), size)
            else:
                k.noc_async_write_multicast(p, k.get_noc_multicast_addr(*xy, *xy, p), size, 1)
        if kind.endswith("read"):
            k.noc_async_read_barrier()
        else:
            k.noc_async_write_barrier()
        out["c"] = k.wall_clock() - t0

    prog.reader((0, 0), reader, noc=0)
    dev.run(prog)
    return out["c"]


@settings(max_examples=25)
@given(name=st.sampled_from(BUILTINS),
       kind=st.sampled_from(["dram read", "l1 read", "dram write", "l1 write", "multicast"]),
       size=st.sampled_from([32, 64, 512, 2048, 8192, 16384]), n=st.integers(1, 8),
       far=st.booleans(), widths=st.lists(st.sampled_from([8, 16, 24, 32, 48, 64, 128, 512]),
                                          min_size=2, max_size=2, unique=True))
def test_a_wider_link_never_makes_a_transfer_slower(name, kind, size, n, far, widths):
    """noc.link_bytes_per_cycle alone, everything else as built in (the flit stays its
    size): transfers through a real program, RISC costs included."""
    narrow, wide = sorted(widths)
    slow = _transfer(_with(name, noc__link_bytes_per_cycle=narrow), kind, size, n, far)
    fast = _transfer(_with(name, noc__link_bytes_per_cycle=wide), kind, size, n, far)
    assert fast <= slow
