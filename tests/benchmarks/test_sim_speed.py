"""The speed benchmark's ttlang matmul computes the product, and its floor the same one."""
import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import sim_speed  # noqa: E402


def test_numpy_floor_is_the_tile_products_rounded_per_k_step():
    r = np.random.default_rng(0)
    a, b = (r.standard_normal((64, 96)).astype(np.float32),
            r.standard_normal((96, 64)).astype(np.float32))
    y = sim_speed.numpy_tile_matmul(a, b)
    full = y.transpose(0, 2, 1, 3).reshape(64, 64)
    assert np.array_equal(full, full.astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_allclose(full, a @ b, rtol=0.05, atol=0.1)


def test_ttlang_matmul_figures_in_json(tmp_path):
    out = tmp_path / "s.json"
    sim_speed.main(["--size", "0", "--ttlang-sizes", "64", "--json", str(out)])
    d = json.loads(out.read_text())
    assert d["ttlang_tile_matmul_64_sim_cycles"] > 0
    assert d["ttlang_tile_matmul_64_over_floor"] > 1
