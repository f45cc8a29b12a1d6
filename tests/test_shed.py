"""The load shedder: lowest criticality first, adaptive strategies, SLO-bound levels."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import slakit
from slakit.remediate.shed import Criticality, LoadShedder, RequestShedError, cascade
from slakit.testing import FakeClock

C = Criticality


def traffic(shedder, clock, mix, seconds=10, per_second=1_000, success=1.0):
    """Send `mix` (class -> share) for some seconds; return admitted share per class.

    Each admitted request succeeds with probability `success`.
    """
    rng = random.Random(3)
    classes = list(mix)
    weights = [mix[c] for c in classes]
    sent = dict.fromkeys(classes, 0)
    admitted = dict.fromkeys(classes, 0)
    for _ in range(seconds):
        for _ in range(per_second):
            c = rng.choices(classes, weights)[0]
            sent[c] += 1
            if shedder.admit(c):
                admitted[c] += 1
                shedder.record(rng.random() < success, c)
            clock.advance(1 / per_second)
    return {c: admitted[c] / sent[c] for c in classes}


class TestCascade:
    @given(
        st.floats(0, 1),
        st.lists(st.floats(0.01, 1), min_size=4, max_size=4),
    )
    def test_lowest_first_and_totals(self, p, raw):
        """Rejections add up to p, and a class is touched only when all lower ones are gone."""
        total = sum(raw)
        shares = [r / total for r in raw]

        out = cascade(p, shares)

        shed = sum(o * s for o, s in zip(out, shares, strict=True))
        assert shed == pytest.approx(min(p, sum(shares[:3])), abs=1e-9)
        for c in range(1, 4):
            if out[c] > 0:
                assert all(out[lower] == pytest.approx(1.0) for lower in range(c))
        assert 0.0 == out[C.CRITICAL_PLUS]  # never while the others remain


class TestFixedFraction:
    def test_sheds_sheddable_first(self, clock):
        """Shedding 30 % of a mix with 40 % SHEDDABLE takes only SHEDDABLE traffic."""
        s = LoadShedder(fraction=0.3, clock=clock, rng=random.Random(1))
        mix = {C.SHEDDABLE: 0.4, C.CRITICAL: 0.5, C.CRITICAL_PLUS: 0.1}

        admitted = traffic(s, clock, mix)

        assert 0.25 == pytest.approx(admitted[C.SHEDDABLE], abs=0.05)
        assert 1.0 == admitted[C.CRITICAL]
        assert 1.0 == admitted[C.CRITICAL_PLUS]

    def test_check_raises_with_retry_after(self, clock):
        """check() raises RequestShedError naming the class and the wait."""
        s = LoadShedder("api", fraction=1.0, retry_after=2, clock=clock)

        with pytest.raises(
            RequestShedError, match="rejected a SHEDDABLE request; retry after 2s"
        ) as info:
            s.check("sheddable")

        assert 2 == info.value.retry_after
        assert 1 == s.shed_counts[C.SHEDDABLE]

    def test_criticality_parsing(self):
        """Header values parse case-insensitively; unknown values take the default."""
        assert C.SHEDDABLE_PLUS == C.parse("sheddable-plus", C.CRITICAL)
        assert C.CRITICAL_PLUS == C.parse(3, C.CRITICAL)
        assert C.CRITICAL == C.parse("bogus", C.CRITICAL)
        assert C.CRITICAL == C.parse(None, C.CRITICAL)


class TestAdaptive:
    def test_throttling_formula(self, clock):
        """max(0, (requests - K × accepts) / (requests + 1)) over the window."""
        s = LoadShedder(adaptive=True, k=2, clock=clock)
        for _ in range(100):
            s.admit(C.CRITICAL)
        for _ in range(30):
            s.record(True, C.CRITICAL)

        assert (100 - 60) / 101 == pytest.approx(s.rejection_probability())

    def test_healthy_backend_sheds_nothing(self, clock):
        """When most requests succeed, adaptive throttling rejects nothing."""
        s = LoadShedder(adaptive=True, clock=clock, rng=random.Random(2))

        admitted = traffic(s, clock, {C.SHEDDABLE: 0.5, C.CRITICAL: 0.5})

        assert {C.SHEDDABLE: 1.0, C.CRITICAL: 1.0} == admitted

    def test_failing_backend_sheds_sheddable_first(self, clock):
        """
        With 75 % of requests failing, throttling rejects SHEDDABLE before CRITICAL.

        (With K = 2 and fewer than half succeeding, the formula's fixed point rejects
        nearly everything in the end; the order is what matters on the way.)
        """
        s = LoadShedder(adaptive=True, clock=clock, rng=random.Random(2))

        traffic(s, clock, {C.SHEDDABLE: 0.5, C.CRITICAL: 0.5}, seconds=3, success=0.25)
        admitted = traffic(s, clock, {C.SHEDDABLE: 0.5, C.CRITICAL: 0.5}, success=0.25)

        assert admitted[C.SHEDDABLE] < 0.05
        assert admitted[C.CRITICAL] > 2 * admitted[C.SHEDDABLE]

    def test_admission_control_formula(self, clock):
        """Envoy: ((requests - successes / threshold) / (requests + 1)) ** (1 / aggression)."""
        s = LoadShedder(success_threshold=0.95, aggression=2.0, clock=clock)
        for _ in range(100):
            s.admit(C.CRITICAL)
        for _ in range(80):
            s.record(True, C.CRITICAL)

        expected = ((100 - 80 / 0.95) / 101) ** (1 / 2.0)
        assert expected == pytest.approx(s.rejection_probability())


class TestBoundToAnSLO:
    def page(self, slo="api", burn=100.0, rule="page-1h-5m"):
        v = slakit.Violation(
            "v1", slo, "availability", rule, slakit.Severity.CRITICAL, 0.0, burn, 14.4, ""
        )
        return slakit.ViolationOpened(0.0, v), slakit.ViolationResolved(0.0, v)

    def test_page_sheds_then_recovery_lowers_gradually(self, clock):
        """A page raises the level; after resolve it falls linearly over `recovery`."""
        s = LoadShedder(slo="api", page_step=0.4, recovery="10m", clock=clock)
        opened, resolved = self.page(burn=0.0)

        s.on_event(opened)
        assert 0.4 == pytest.approx(s.rejection_probability())
        s.on_event(resolved)
        clock.advance(300)
        assert 0.2 == pytest.approx(s.rejection_probability())
        clock.advance(300)
        assert 0.0 == s.rejection_probability()

    def test_relaxes_when_admitted_work_is_healthy(self, clock):
        """
        While the page is still open, healthy admitted work lets the level fall.

        Shed requests count as bad by default, so waiting for the page to resolve would
        keep it burning for ever.
        """
        s = LoadShedder(slo="api", page_step=0.5, recovery="100s", clock=clock)
        s.on_event(self.page()[0])
        for _ in range(20):  # 20 successes a second for 10 s
            for _ in range(20):
                s.record(True)
            clock.advance(0.5)
        s.rejection_probability()  # the shedder notices health when it next decides
        s.admit()
        clock.advance(50)

        assert 0.25 == pytest.approx(s.rejection_probability(), abs=0.01)

    def test_holds_while_admitted_work_fails(self, clock):
        """Failing admitted work keeps the level where it is."""
        s = LoadShedder(slo="api", page_step=0.5, recovery="100s", clock=clock)
        s.on_event(self.page()[0])
        for _ in range(20):
            for _ in range(20):
                s.record(False)
            clock.advance(0.5)
            s.admit()

        assert 0.5 == pytest.approx(s.rejection_probability())

    def test_without_outcomes_holds_one_recovery_period_then_relaxes(self, clock):
        """A caller that never records outcomes is not locked in for ever."""
        s = LoadShedder(slo="api", page_step=0.5, recovery="100s", clock=clock)
        s.on_event(self.page()[0])
        clock.advance(99)
        s.admit()
        assert 0.5 == pytest.approx(s.rejection_probability())
        clock.advance(1)
        s.admit()
        clock.advance(50)

        assert 0.25 == pytest.approx(s.rejection_probability(), abs=0.01)

    def test_fast_burn_sheds_sheddable_keeps_critical(self, clock):
        """During a page, SHEDDABLE traffic goes and CRITICAL stays."""
        s = LoadShedder(slo="api", page_step=0.25, clock=clock, rng=random.Random(5))
        s.on_event(self.page()[0])

        admitted = traffic(s, clock, {C.SHEDDABLE: 0.3, C.CRITICAL: 0.6, C.CRITICAL_PLUS: 0.1})

        assert admitted[C.SHEDDABLE] < 0.25
        assert (1.0, 1.0) == (admitted[C.CRITICAL], admitted[C.CRITICAL_PLUS])

    def test_burn_rate_raises_admission_aggression(self, clock):
        """A page at 10× its rate makes admission control more aggressive."""
        s = LoadShedder(slo="api", success_threshold=0.99, page_step=0.0, clock=clock)
        for _ in range(100):
            s.admit(C.CRITICAL)
        for _ in range(90):
            s.record(True, C.CRITICAL)
        calm = s.rejection_probability()

        s.on_event(self.page(burn=144.0)[0])

        assert s.rejection_probability() > calm > 0

    def test_threshold_from_the_slo_target(self, clock):
        """Bound to an SLO object, admission control uses its availability target."""
        slo = slakit.SLO("api", objectives=[slakit.Availability("99.5%")])

        s = LoadShedder(slo=slo, clock=clock)

        assert (0.995, "api") == (s.success_threshold, s.slo)

    def test_ignores_other_slos_and_budget(self, clock):
        """Only its own SLO's pages count; budget exhaustion is not a page."""
        s = LoadShedder(slo="api", clock=clock)
        s.on_event(self.page(slo="other")[0])
        s.on_event(self.page(rule="budget")[0])

        assert 0.0 == s.rejection_probability()


class TestUse:
    def test_decorator_and_guard(self, clock):
        """The decorator admits and records; a shed call never runs."""
        s = LoadShedder(clock=clock)
        ran = []

        @s
        def work():
            ran.append(1)
            return "done"

        @s
        async def awork():
            return "async done"

        assert "done" == work()
        assert "async done" == asyncio.run(awork())
        s.set_fraction(1.0)
        s.default_criticality = C.SHEDDABLE
        with pytest.raises(RequestShedError):
            work()
        with pytest.raises(RequestShedError), s.guard("sheddable"):
            ran.append("never")

        assert [1] == ran

    def test_bad_options(self):
        """k below 1 is refused."""
        with pytest.raises(ValueError, match="k must be >= 1"):
            LoadShedder(k=0.5)


def test_fake_clock_fixture_type(clock):
    assert isinstance(clock, FakeClock)
