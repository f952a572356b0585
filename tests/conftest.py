"""Shared fixtures: a fresh device per test, seeded randomness, and hypothesis profiles."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# the default profile is derandomized so a run of the suite (CI) is reproducible; the
# thorough profile (HYPOTHESIS_PROFILE=thorough) searches afresh each time
settings.register_profile("default", deadline=None, max_examples=15, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _no_system_desc_path(monkeypatch):
    """sysdesc.load() honours $SYSTEM_DESC_PATH: a user's setting must not change what tests see."""
    monkeypatch.delenv("SYSTEM_DESC_PATH", raising=False)


@pytest.fixture
def dev():
    import ttsim
    return ttsim.Device("wormhole_b0")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
