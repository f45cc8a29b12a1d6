"""Tier presets: uptime and error rate are different promises, and both are kept."""

from __future__ import annotations

import pytest

import slakit
from slakit.sla import TIERS
from slakit.testing import FakeClock


def run(fails: callable, quiet_minute: int | None = None) -> dict[str, bool]:  # type: ignore[valid-type]
    clock = FakeClock()
    clock.jump(60 - clock.time() % 60)  # minutes of the test are the uptime slices
    registry = slakit.Registry(clock)
    slo = TIERS["enterprise"].slo("api", window="1d")
    store = registry.register(slo)
    engine = slakit.Engine(registry)
    for minute in range(120):
        per_second = 1 if minute == quiet_minute else 10
        for second in range(60):
            for i in range(per_second if minute != quiet_minute or second < 6 else 0):
                store.record(0.01, ok=not fails(minute, second * per_second + i))
            clock.advance(1)
        engine.evaluate_now()
    snap = engine.evaluate_now()["api"]
    return {o.key: o.met for o in snap.objectives}


def test_the_presets() -> None:
    assert [(t.uptime, t.p99, t.error_ratio) for t in TIERS.values()] == [
        (0.99999, 0.1, 0.001),
        (0.9999, 0.2, 0.005),
        (0.999, 0.5, 0.01),
    ]
    assert [o.key for o in TIERS["business"].slo("api").objectives] == [
        "uptime",
        "p99-200ms",
        "error-rate",
    ]


def test_steady_errors_break_the_error_rate_but_no_minute_goes_down() -> None:
    met = run(lambda minute, n: n % 200 == 0)  # 0.5 % of requests, every minute
    assert met == {"uptime": True, "p99-100ms": True, "error-rate": False}


def test_a_minute_down_at_a_quiet_hour_breaks_uptime_not_the_error_rate() -> None:
    met = run(lambda minute, n: minute == 30, quiet_minute=30)  # 6 requests, all failed
    assert met == {"uptime": False, "p99-100ms": True, "error-rate": True}


@pytest.mark.parametrize("name", sorted(TIERS))
def test_every_tier_builds_a_valid_slo(name: str) -> None:
    slo = TIERS[name].slo(f"{name}-api")
    assert slo.description == f"{name.title()} tier"
    assert len(slo.objectives) == 3
