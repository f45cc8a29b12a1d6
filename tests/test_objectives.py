"""Timeslice, percentile, throughput and threshold objectives."""

from __future__ import annotations

import pytest

import slakit
from slakit.events import ViolationOpened, ViolationResolved
from slakit.testing import capture_events


def minutes(store, clock, engine, n, total, bad=0, durations=()):
    for _ in range(n):
        store.record_many(clock.time(), total=total, bad=bad, durations=durations)
        clock.advance(60)
        engine.evaluate_now()


class TestUptime:
    def test_bad_slices_spend_time_budget(self, clock, registry, engine):
        """A minute over 1 % errors is a bad slice; uptime and budget follow in seconds."""
        slo = slakit.SLO(
            "up", objectives=[slakit.Uptime("99.9%", slice="1m", max_error_ratio="1%")], window="1d"
        )
        store = registry.register(slo)
        minutes(store, clock, engine, 10, total=100)
        minutes(store, clock, engine, 3, total=100, bad=5)  # 5 % errors: bad
        minutes(store, clock, engine, 2, total=100, bad=1)  # 1 %: still good
        minutes(store, clock, engine, 5, total=0)  # no traffic: good

        obj = engine.snapshot("up").objective("uptime")

        assert 3 * 60 == obj.budget.spent
        assert 0.001 * 86_400 == pytest.approx(obj.budget.total)
        assert 1 - 3 / 1_440 == pytest.approx(obj.actual)

    def test_slices_leave_the_window(self, clock, registry, engine):
        """Bad slices older than the window stop counting."""
        slo = slakit.SLO("up", objectives=[slakit.Uptime("99%")], window="1h")
        store = registry.register(slo)
        minutes(store, clock, engine, 2, total=10, bad=10)
        minutes(store, clock, engine, 70, total=10)

        assert 0 == engine.snapshot("up").objective("uptime").budget.spent


class TestPercentile:
    def test_over_the_window(self, clock, registry, engine):
        """p99 over the window breaches when above its threshold."""
        slo = slakit.SLO("p", objectives=[slakit.Percentile("p99", "200ms")], window="1h")
        store = registry.register(slo)
        minutes(store, clock, engine, 5, total=0, durations=[(0.05, 98), (0.5, 2)])

        obj = engine.snapshot("p").objective("p99-200ms")

        assert 0.5 == pytest.approx(obj.actual, rel=0.01)
        assert slakit.Status.BREACHED is obj.status

    def test_per_timeslice(self, clock, registry, engine):
        """With a slice and target, each minute's p95 is judged; good slices / slices."""
        slo = slakit.SLO(
            "p",
            objectives=[slakit.Percentile(0.95, "100ms", slice="1m", target="99%")],
            window="1d",
        )
        store = registry.register(slo)
        minutes(store, clock, engine, 4, total=0, durations=[(0.01, 100)])
        minutes(store, clock, engine, 2, total=0, durations=[(0.3, 100)])

        obj = engine.snapshot("p").objective("p95-100ms")

        assert 120 == obj.budget.spent
        assert "seconds" == obj.budget.unit


class TestThroughput:
    def test_rate_floor(self, clock, registry, engine):
        """Traffic under min_rps over its window opens a warning."""
        slo = slakit.SLO("t", objectives=[slakit.Throughput(min_rps=5, window="5m")])
        store = registry.register(slo)
        with capture_events(engine) as events:
            minutes(store, clock, engine, 6, total=600)
            minutes(store, clock, engine, 6, total=60)

        opened = [e for e in events if isinstance(e, ViolationOpened)]

        assert ["throughput"] == [e.violation.rule for e in opened]
        assert slakit.Status.WARNING is engine.snapshot("t").status


class TestThreshold:
    def test_levels_and_hysteresis(self, registry, engine):
        """Warning and critical levels open violations; hysteresis holds them near the edge."""
        slo = slakit.SLO(
            "q", objectives=[slakit.Threshold("queue_depth", op="<=", warning=100, critical=500)]
        )
        registry.register(slo)
        seen = []
        with capture_events(engine) as events:
            for value in (10, 120, 600, 480, 98, 90):
                engine.set_value("queue_depth", value)
                seen.append(engine.evaluate_now()["q"].status)

        assert [
            slakit.Status.HEALTHY,
            slakit.Status.WARNING,
            slakit.Status.CRITICAL,
            slakit.Status.CRITICAL,  # 480 is within 5 % of 500: held open
            slakit.Status.WARNING,  # 98 is within 5 % of 100: held open
            slakit.Status.HEALTHY,
        ] == seen
        assert ["threshold-warning", "threshold-critical"] == [
            e.violation.rule for e in events if isinstance(e, ViolationOpened)
        ]
        assert 2 == sum(isinstance(e, ViolationResolved) for e in events)

    @pytest.mark.parametrize(
        ("value", "status"),
        [
            (95, slakit.Status.HEALTHY),
            (85, slakit.Status.HEALTHY),  # 15 %: info, a violation but healthy
            (75, slakit.Status.WARNING),  # 25 %
            (40, slakit.Status.CRITICAL),  # 60 %
        ],
    )
    def test_severity_by_deviation(self, registry, engine, value, status):
        """Without levels: > 10 % info, > 20 % warning, > 50 % critical from the target."""
        slo = slakit.SLO("c", objectives=[slakit.Threshold("hit_ratio", op=">=", target=100)])
        registry.register(slo)
        engine.set_value("hit_ratio", value)

        assert status is engine.evaluate_now()["c"].status

    def test_sampled_source_and_failing_source(self, registry, engine, caplog):
        """A source callable is sampled each tick; one that raises is logged, not fatal."""
        values = iter([700.0])

        def lag():
            return next(values)

        slo = slakit.SLO(
            "r", objectives=[slakit.Threshold("lag", op="<", warning=5, critical=10, source=lag)]
        )
        registry.register(slo)

        first = engine.evaluate_now()["r"]
        second = engine.evaluate_now()["r"]

        assert slakit.Status.CRITICAL is first.status
        assert second.objective("lag").actual is None
        assert "sampling r/lag failed" in caplog.text
