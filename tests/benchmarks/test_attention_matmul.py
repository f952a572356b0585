"""The tt-metal-structured Q K^T of benchmarks/attention_matmul.py: SDPA's subblocks, and
MATH cycles that are exactly the modelled charges of its calls."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import attention_matmul as am  # noqa: E402
import ttsim  # noqa: E402


@pytest.mark.parametrize("sk, sub", [(2, (4, 2)), (4, (2, 4)), (8, (1, 8)), (16, (1, 8))])
def test_ttmetal_qk_uses_sdpas_subblocks_and_charges_each_call(sk, sub):
    cyc, prods, got = am.ttmetal_qk(sk)
    assert got == sub and prods == sk * 4
    v = ttsim.Device("blackhole_p100a").sd.value
    sh, sw = sub
    per_call = sh * sw * (2 * v("cost.math.matmul") + v("cost.math.matmul_tile_overhead")) \
        + v("cost.math.matmul_block_call")
    subblocks_per_q_tile = (sk // sw) / sh
    expected = subblocks_per_q_tile * (4 * per_call + 2 * v("cost.api.tile_regs"))
    # plus the one matmul init of the run, shared over its 4 Q tiles x 4 K/V steps
    assert cyc == pytest.approx(expected + v("cost.math.init") / 16, abs=1e-6)
