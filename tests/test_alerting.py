"""
Multi-window, multi-burn-rate alerting and SLO status, on a fake clock.

Traffic is simulated per slot with ``record_many``: steady 10 events a second (1,000 a
minute for the long scenarios) after three days of clean history.
"""

from __future__ import annotations

import pytest

import slakit
from slakit.events import BudgetExhausted, StatusChanged, ViolationOpened, ViolationResolved
from slakit.testing import FakeClock, capture_events

RPS = 10
DAY = 86_400


class Sim:
    """A 99.9 % / 30 d SLO with steady traffic and a clock we drive."""

    def __init__(self, target: float = 0.999, **slo_kwargs) -> None:
        self.clock = FakeClock(1_700_000_000)
        self.registry = slakit.Registry(self.clock)
        self.slo = slakit.SLO("api", objectives=[slakit.Availability(target)], **slo_kwargs)
        self.store = self.registry.register(self.slo)
        self.engine = slakit.Engine(self.registry)

    def history(self, days: float = 3, per_minute: int = RPS * 60, fine: bool = True) -> None:
        """Clean traffic, one slot a minute, then (if fine) one slot a second for 2 h."""
        start = self.clock.time()
        minutes = int(days * 1440) - (120 if fine else 0)
        for m in range(minutes):
            self.store.record_many(start + m * 60, total=per_minute)
        self.clock.advance(minutes * 60)
        self.engine.evaluate_now()
        if fine:
            self.seconds(7_200, bad=0)

    def seconds(self, n: int, bad: int, tick: bool = False) -> list[float]:
        """Record n seconds of traffic with `bad` failures a second; tick after each."""
        times = []
        for _ in range(n):
            self.store.record_many(self.clock.time(), total=RPS, bad=bad)
            self.clock.advance(1)
            if tick:
                self.engine.evaluate_now()
                times.append(self.clock.time())
        if not tick:
            self.engine.evaluate_now()
        return times


def opened(events, rule):
    return [e for e in events if isinstance(e, ViolationOpened) and e.violation.rule == rule]


def resolved(events, rule):
    return [e for e in events if isinstance(e, ViolationResolved) and e.violation.rule == rule]


@pytest.fixture(scope="module")
def short_outage():
    """A 60 s total outage after three clean days, followed for 10 minutes."""
    sim = Sim()
    sim.history()
    start = sim.clock.time()
    with capture_events(sim.engine) as events:
        sim.seconds(60, bad=RPS, tick=True)
        recovery = sim.clock.time()
        sim.seconds(600, bad=0, tick=True)
    return sim, events, start, recovery


class TestFastBurnPage:
    def test_opens_after_52_seconds(self, short_outage):
        """1 h / 5 m at 14.4: 1.44 % of an hour is 51.84 s of total outage."""
        _, events, start, _ = short_outage

        (page,) = opened(events, "page-1h-5m")

        assert 52 == pytest.approx(page.time - start, abs=1)
        assert slakit.Severity.CRITICAL is page.violation.severity

    def test_resolves_about_4_9_minutes_after_recovery(self, short_outage):
        """The 5 m window drops under the rate (less 5 % hysteresis) after ~296 s."""
        _, events, _, recovery = short_outage

        (done,) = resolved(events, "page-1h-5m")

        assert 296 == pytest.approx(done.time - recovery, abs=1)
        assert done.violation.duration == pytest.approx(
            done.time - opened(events, "page-1h-5m")[0].time
        )

    def test_slow_page_does_not_fire_for_60_seconds(self, short_outage):
        """60 s is under the 6 h / 30 m threshold of 129.6 s."""
        _, events, _, _ = short_outage

        assert [] == opened(events, "page-6h-30m")

    def test_status_goes_critical_and_back(self, short_outage):
        """Status follows the page: healthy → critical → healthy."""
        _, events, _, _ = short_outage

        changes = [(e.old, e.new) for e in events if isinstance(e, StatusChanged)]

        assert [
            (slakit.Status.HEALTHY, slakit.Status.CRITICAL),
            (slakit.Status.CRITICAL, slakit.Status.HEALTHY),
        ] == changes


class TestSlowPage:
    def test_long_outage_trips_6h_and_clears_after_30_minutes(self):
        """A 180 s outage opens 6 h / 30 m at ~130 s; it clears ~1,790 s after recovery."""
        sim = Sim()
        sim.history()
        start = sim.clock.time()
        with capture_events(sim.engine) as events:
            sim.seconds(180, bad=RPS, tick=True)
            recovery = sim.clock.time()
            sim.seconds(1_900, bad=0, tick=True)

        (page,) = opened(events, "page-6h-30m")
        (done,) = resolved(events, "page-6h-30m")

        assert 130 == pytest.approx(page.time - start, abs=1)
        assert 1_790 == pytest.approx(done.time - recovery, abs=1)


class TestPartialErrors:
    def test_ten_percent_errors_page_after_8_6_minutes(self):
        """1 h at 14.4 with 10 % errors: 518.4 s."""
        sim = Sim()
        sim.history()
        start = sim.clock.time()
        with capture_events(sim.engine) as events:
            sim.seconds(600, bad=1, tick=True)

        (page,) = opened(events, "page-1h-5m")

        assert 519 == pytest.approx(page.time - start, abs=1)

    def test_point_two_percent_tickets_after_36_hours_and_never_pages(self):
        """Burn rate 2: under both pages; the 3 d / 6 h ticket at 1 opens after 36 h."""
        sim = Sim()
        sim.history(per_minute=1_000, fine=False)
        start = sim.clock.time()
        with capture_events(sim.engine) as events:
            for _ in range(40 * 60):
                sim.store.record_many(sim.clock.time(), total=1_000, bad=2)
                sim.clock.advance(60)
                sim.engine.evaluate_now()

        (ticket,) = opened(events, "ticket-3d-6h")

        assert 36 * 3_600 == pytest.approx(ticket.time - start, abs=120)
        assert slakit.Severity.WARNING is ticket.violation.severity
        assert [] == opened(events, "page-1h-5m") + opened(events, "page-6h-30m")
        assert slakit.Status.WARNING is sim.engine.snapshot("api").status


class TestGuardsAndPolicies:
    def test_low_traffic_guard(self):
        """One failed request alone does not page: the long window needs min_events."""
        sim = Sim()
        with capture_events(sim.engine) as events:
            sim.store.record_many(sim.clock.time(), total=3, bad=3)
            sim.clock.advance(1)
            sim.engine.evaluate_now()

        assert [] == opened(events, "page-1h-5m")

    def test_disabled_tier(self):
        """AlertPolicy.default(page=False) keeps only the ticket rule."""
        policy = slakit.AlertPolicy.default(page=False)

        assert ["ticket-3d-6h"] == [r.name for r in policy.rules]

    def test_rules_scale_with_the_slo_window(self):
        """A 7-day SLO scales 1 h / 5 m to 14 m / 70 s; burn rates stay."""
        rules = slakit.AlertPolicy().rules_for(7 * DAY)

        assert (840.0, 70.0, 14.4) == (rules[0].long, rules[0].short, rules[0].burn_rate)

    def test_custom_rules(self):
        """Rules can be replaced outright."""
        rule = slakit.BurnRateRule("critical", "10m", "1m", 10)
        sim = Sim(alerting=slakit.AlertPolicy(rules=(rule,), scale=False))
        sim.seconds(30, bad=0)
        with capture_events(sim.engine) as events:
            sim.seconds(20, bad=RPS, tick=True)

        assert 1 == len(opened(events, "page-10m-1m"))


class TestBudget:
    def test_budget_figures(self):
        """99.99 % over 30 d leaves 4.32 min; 99.9 % over 365 d leaves 8.76 h."""
        clock = FakeClock()
        registry = slakit.Registry(clock)
        month = slakit.SLO("m", objectives=[slakit.Uptime("99.99%")], window="30d")
        year = slakit.SLO(
            "y",
            objectives=[slakit.Uptime("99.9%")],
            window="365d",
            alerting=slakit.AlertPolicy.none(),
        )

        m = registry.snapshot(month).objective("uptime").budget
        y = registry.snapshot(year).objective("uptime").budget

        assert 4.32 * 60 == pytest.approx(m.total)
        assert 8.76 * 3_600 == pytest.approx(y.total)
        assert ("seconds", "seconds") == (m.unit, y.unit)

    def test_exhaustion_breaches_and_emits(self):
        """Spending the whole budget breaches the SLO and emits BudgetExhausted once."""
        sim = Sim(target=0.99, alerting=slakit.AlertPolicy.none())
        with capture_events(sim.engine) as events:
            sim.seconds(100, bad=0)
            sim.seconds(2, bad=RPS, tick=True)
            sim.seconds(2, bad=RPS, tick=True)

        snap = sim.engine.snapshot("api")

        assert slakit.Status.BREACHED is snap.status
        assert snap.budget_remaining() < 0
        assert 1 == sum(isinstance(e, BudgetExhausted) for e in events)

    def test_budget_remaining_as_events(self):
        """Remaining budget is reported as a fraction and as events."""
        sim = Sim(target=0.99)
        sim.store.record_many(sim.clock.time(), total=1_000, bad=4)
        sim.clock.advance(1)

        obj = sim.engine.evaluate_now()["api"].objective("availability")

        assert 0.6 == pytest.approx(obj.budget.remaining)
        assert 6 == pytest.approx(obj.budget.remaining_amount)


class TestRejected:
    @pytest.mark.parametrize(("bad", "expected_sli"), [(True, 0.9), (False, 1.0)])
    def test_rejected_count_for_availability_unless_told(self, bad, expected_sli):
        """Rejected calls count as bad for availability by default, never for latency."""
        clock = FakeClock()
        registry = slakit.Registry(clock)
        slo = slakit.SLO(
            "r",
            objectives=[slakit.Availability("99%"), slakit.Latency("1ms", "99%")],
            rejected_are_bad=bad,
        )
        tracker = slakit.track(slo, registry=registry)

        @tracker
        def refused():
            raise slakit.RejectedError

        for _ in range(90):
            tracker.record(0.0001)
        for _ in range(10):
            with pytest.raises(slakit.RejectedError):
                refused()
        snap = slakit.Engine(registry).evaluate_now()["r"]

        assert expected_sli == pytest.approx(snap.objective("availability").actual)
        assert 1.0 == snap.objective("latency-1ms").actual
        assert 10 == snap.lifetime.rejected
