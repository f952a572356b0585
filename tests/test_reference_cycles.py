"""Cycles change only on purpose: a set of programs against a stored table of their cycles
and their output bits (a hash of the output; tests/data/reference_cycles.json). The bits are
the same on every machine (tests/ttsim/test_determinism.py checks that numpy's and the BLAS
library's CPU-specific code paths do not change them), so the table holds on any CPU.

A commit that changes the model on purpose regenerates the table and says why:

    TTSIM_UPDATE_REFERENCE=1 python -m pytest -q tests/test_reference_cycles.py
"""
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import ttsim
from ttsim.library.matmul import matmul_program

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "data" / "reference_cycles.json"
sys.path.insert(0, str(ROOT / "examples"))
import flash_attention as fa  # noqa: E402


def _bits(a):
    return hashlib.sha256(np.ascontiguousarray(a, np.float32).tobytes()).hexdigest()[:16]


def _fa(**kw):
    res, rep, _ = fa.run(**kw)
    return rep.cycles, res["out_sha256"]


def _matmul(m, k, n, grid, **kw):
    dev = ttsim.Device()
    r = np.random.default_rng(0)
    a = dev.tensor(r.standard_normal((m, k)).astype(np.float32), "bf16")
    b = dev.tensor(r.standard_normal((k, n)).astype(np.float32), "bf16")
    c = dev.empty((m, n), "bf16")
    rep = dev.run(matmul_program(dev, a, b, c, grid=grid, **kw))
    return rep.cycles, _bits(c.to_numpy())


PROGRAMS = {
    "fa_h2_s256_d64_2x2": lambda: _fa(heads=2, seq=256, dim=64, grid=(2, 2), q_chunk=2, kv_chunk=2),
    "fa_causal_gqa_4x2": lambda: _fa(heads=4, kv_heads=2, seq=512, dim=64, grid=(4, 2),
                                     q_chunk=2, kv_chunk=1, causal=True),
    "fa_exp_accurate_bfp8_hifi2": lambda: _fa(heads=1, seq=256, dim=128, grid=(2, 1),
                                              exp="accurate", kv_dtype="bfp8_b",
                                              math_fidelity="HiFi2"),
    "fa_blackhole_p100a": lambda: _fa(heads=1, seq=512, dim=64, grid=(4, 2),
                                      sysdesc="blackhole_p100a"),
    "matmul_mcast_256_4x4": lambda: _matmul(256, 256, 256, (4, 4)),
    "matmul_no_l1acc_256x512x128_2x2": lambda: _matmul(256, 512, 128, (2, 2), l1_acc=False,
                                                       math_fidelity="HiFi2"),
}


def _load():
    return json.loads(TABLE.read_text()) if TABLE.exists() else {}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_cycles_and_bits_match_the_reference_table(name):
    import ttlang as ttl
    try:
        cycles, bits = PROGRAMS[name]()
    finally:
        ttl.set_device("wormhole_b0")
    if os.environ.get("TTSIM_UPDATE_REFERENCE"):
        table = _load()
        table[name] = {"cycles": cycles, "bits": bits}
        TABLE.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
        return
    ref = _load().get(name)
    assert ref is not None, f"{name} is not in {TABLE.name}: regenerate it (see the docstring)"
    assert (cycles, bits) == (ref["cycles"], ref["bits"]), (
        f"{name}: {cycles:,.0f} cycles, bits {bits}; the table has {ref['cycles']:,.0f}, "
        f"{ref['bits']}. If the model changed on purpose, regenerate the table and say why")
