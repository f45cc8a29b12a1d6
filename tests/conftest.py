"""Shared fixtures and the hypothesis profiles (``HYPOTHESIS_PROFILE=ci`` in CI)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import slakit
from slakit.registry import reset_default_registry
from slakit.testing import FakeClock

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile("thorough", max_examples=1_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(clock: FakeClock) -> slakit.Registry:
    return slakit.Registry(clock)


@pytest.fixture
def engine(registry: slakit.Registry):
    eng = slakit.Engine(registry)
    yield eng
    eng.stop()


@pytest.fixture(autouse=True)
def _fresh_default_registry():
    """Every test starts with an empty process-wide registry."""
    reset_default_registry()
    yield
    reset_default_registry()
