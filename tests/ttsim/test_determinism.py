"""Output bits do not depend on the CPU: numpy picks per-CPU code for its transcendentals
(AVX2, AVX-512, the C library) and OpenBLAS picks per-CPU matrix kernels, and either used in
float32 gives different last bits on different machines. Each run below is repeated in a
subprocess with numpy's dispatched CPU features switched off (NPY_DISABLE_CPU_FEATURES) and
with OpenBLAS forced to older kernels (OPENBLAS_CORETYPE); the bits must not move."""
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sha(a):
    return hashlib.sha256(np.ascontiguousarray(a, np.float32).tobytes()).hexdigest()[:16]


def _hashes():
    """The bits of tile products at every fidelity, every numpy-computed SFPU op, a library
    matmul and a flash attention, as hashes."""
    import ttsim
    from ttsim import numerics
    from ttsim.library.matmul import matmul_program
    r = np.random.default_rng(1)
    a = numerics.to_src(r.standard_normal((4, 1, 32, 32)).astype(np.float32) * 3, "fp32")
    b = numerics.to_src(r.standard_normal((1, 3, 32, 32)).astype(np.float32), "fp32")
    out = {f"matmul {f.name}": _sha(numerics.matmul(a, b, f)) for f in numerics.Fidelity}
    x = (r.standard_normal(4096) * 4).astype(np.float32)
    for op, fn in numerics.SFPU_UNARY.items():
        with np.errstate(all="ignore"):
            out[op] = _sha(fn(np.abs(x) if op in ("log", "sqrt", "rsqrt") else x))
    dev = ttsim.Device()
    ta = dev.tensor(r.standard_normal((256, 256)).astype(np.float32), "bf16")
    tb = dev.tensor(r.standard_normal((256, 256)).astype(np.float32), "bf16")
    tc = dev.empty((256, 256), "bf16")
    dev.run(matmul_program(dev, ta, tb, tc, grid=(2, 2), math_fidelity="HiFi2"))
    out["library matmul"] = _sha(tc.to_numpy())
    sys.path.insert(0, str(ROOT / "examples"))
    import flash_attention as fa
    res, _, _ = fa.run(heads=1, seq=256, dim=64, grid=(2, 1), exp="accurate")
    out["flash attention"] = res["out_sha256"]
    return out


def _run(env):
    p = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=300,
                       env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the CPU-feature switches used here are x86 ones")
def test_bits_do_not_depend_on_cpu_specific_code():
    try:
        from numpy._core import _multiarray_umath as m
    except ImportError:                  # numpy 1.x
        from numpy.core import _multiarray_umath as m
    dispatched = [f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)]
    here = _run({})
    variants = {"OpenBLAS Prescott kernels": {"OPENBLAS_CORETYPE": "Prescott"},
                "OpenBLAS Haswell kernels": {"OPENBLAS_CORETYPE": "Haswell"}}
    if dispatched:
        variants["numpy without " + " ".join(dispatched)] = {
            "NPY_DISABLE_CPU_FEATURES": " ".join(dispatched), "OPENBLAS_CORETYPE": "Haswell"}
    for name, env in variants.items():
        other = _run(env)
        moved = [k for k in here if here[k] != other.get(k)]
        assert not moved, f"{name}: the bits of {moved} change"


if __name__ == "__main__":
    print(json.dumps(_hashes()))
