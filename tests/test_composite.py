"""Composite SLOs: the seeds' health score, by hand and from live snapshots."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import slakit
from slakit.composite import Composite

HEALTH = Composite(
    "health",
    target="99%",
    parts={
        "api/availability": 0.4,
        "api/errors": 0.3,
        "api/latency-250ms": 0.2,
        "batch/availability": 0.1,
    },
)


def test_the_health_score_by_hand() -> None:
    status = HEALTH.combine(
        {
            "api/availability": 0.999,
            "api/errors": 0.995,
            "api/latency-250ms": 0.98,
            "batch/availability": 0.9,
        }
    )
    sli = 0.4 * 0.999 + 0.3 * 0.995 + 0.2 * 0.98 + 0.1 * 0.9  # 0.9841
    assert status.sli == pytest.approx(sli)
    assert not status.met
    assert status.budget_remaining == pytest.approx(1 - (1 - sli) / 0.01)  # -0.59


def test_a_part_without_data_is_left_out() -> None:
    status = HEALTH.combine({"api/availability": 1.0, "api/errors": 0.99})
    assert status.sli == pytest.approx((0.4 * 1.0 + 0.3 * 0.99) / 0.7)
    assert HEALTH.combine({}).sli is None


@given(st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_the_composite_lies_between_its_parts(slis: list[float]) -> None:
    status = HEALTH.combine(dict(zip(HEALTH.parts, slis, strict=True)))
    assert status.sli is not None
    assert min(slis) - 1e-12 <= status.sli <= max(slis) + 1e-12


def test_from_live_snapshots(registry: slakit.Registry) -> None:
    api = slakit.SLO(
        "api",
        objectives=[slakit.Availability("99%"), slakit.Availability("99.5%", name="errors")],
        window="1h",
    )
    store = registry.register(api)
    for i in range(1_000):
        store.record(0.01, ok=i % 100 != 0)  # 99 %
    slakit.Engine(registry).evaluate_now()
    status = Composite("c", target="98%", parts={"api/availability": 1, "api/errors": 3}).evaluate(
        registry
    )
    assert status.sli == pytest.approx(0.99)
    assert status.met
    assert status.parts == {
        "api/availability": pytest.approx(0.99),
        "api/errors": pytest.approx(0.99),
    }


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ({}, "name at least one"),
        ({"api": 1}, "expected 'slo/objective'"),
        ({"a/b": 0}, "must be > 0"),
    ],
)
def test_bad_parts_say_which(parts: dict[str, float], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Composite("c", target="99%", parts=parts)
