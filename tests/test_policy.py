"""Enforcement policies: hooks by severity, actions on violations, limits."""

from __future__ import annotations

import threading

import pytest

import slakit
from slakit.remediate import CircuitBreaker, CircuitOpenError, Policy, State
from slakit.testing import FakeClock
from tests.waiting import wait_for


class Recorder:
    """A hook that remembers what it saw, and can fail or block on demand."""

    def __init__(self, name="rec", fail_times=0, block: threading.Event | None = None):
        self.name = name
        self.seen = []
        self.fail_times = fail_times
        self.block = block

    def on_event(self, event):
        self.seen.append(event)
        if self.block is not None:
            self.block.wait(30)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("hook failed")


class Scenario:
    """Three clean days, then a total outage driven second by second."""

    def __init__(self, **engine_kwargs):
        self.clock = FakeClock()
        self.registry = slakit.Registry(self.clock)
        self.slo = slakit.SLO("api", objectives=[slakit.Availability("99.9%")])
        self.store = self.registry.register(self.slo)
        self.engine = slakit.Engine(self.registry, **engine_kwargs)
        start = self.clock.time()
        for m in range(3 * 1_440):
            self.store.record_many(start + m * 60, total=600)
        self.clock.advance(3 * 86_400)
        self.engine.evaluate_now()

    def seconds(self, n, bad):
        for _ in range(n):
            self.store.record_many(self.clock.time(), total=10, bad=bad)
            self.clock.advance(1)
            self.engine.evaluate_now()

    def page(self):
        (v,) = [v for v in self.engine.violations(include_resolved=True) if v.rule == "page-1h-5m"]
        return v


@pytest.fixture
def scenario():
    s = Scenario()
    yield s
    s.engine.stop()


class TestActions:
    def test_page_trips_breaker_and_the_action_is_attached(self, scenario):
        """Outage → page → breaker opens via the policy; the violation lists the action."""
        breaker = CircuitBreaker(
            "payments", wait_in_open=30, half_open_calls=2, clock=scenario.clock
        )
        scenario.engine.enforce("api", Policy(critical=[breaker]))
        events = []
        scenario.engine.listen(events.append)

        scenario.seconds(52, bad=10)

        assert wait_for(lambda: scenario.page().actions)
        (action,) = scenario.page().actions
        assert ("CircuitBreaker:payments", "ok", 1) == (action.hook, action.result, action.attempt)
        scenario.engine.evaluate_now()  # the action is announced at the next tick
        taken = [e for e in events if isinstance(e, slakit.ActionTaken)]
        assert [(e.violation.id, e.action) for e in taken] == [(scenario.page().id, action)]
        assert State.OPEN is breaker.state
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)

    def test_recovery_end_to_end(self, scenario):
        """Open → fail fast → recovery → half-open probes → closed → violation resolved."""
        breaker = CircuitBreaker(
            "payments", wait_in_open=30, half_open_calls=2, clock=scenario.clock
        )
        scenario.engine.enforce("api", Policy(critical=[breaker]))
        scenario.seconds(52, bad=10)
        assert wait_for(lambda: breaker.state is State.OPEN)
        scenario.seconds(30, bad=0)
        breaker.call(lambda: "probe")
        breaker.call(lambda: "probe")
        scenario.seconds(300, bad=0)

        page = scenario.page()
        assert State.CLOSED is breaker.state
        assert page.resolved_at is not None
        assert ["ok"] == [a.result for a in page.actions]

    def test_dry_run_calls_nothing(self, scenario, caplog):
        """In dry-run the hook is not called; the violation records what would be done."""
        hook = Recorder()
        scenario.engine.enforce("api", Policy(critical=[hook], dry_run=True))

        scenario.seconds(52, bad=10)

        assert ["dry-run"] == [a.result for a in scenario.page().actions]
        assert [] == hook.seen
        assert "dry run: Recorder:rec would act" in caplog.text

    def test_failing_hook_is_retried_up_to_max_attempts(self, scenario):
        """A hook that fails is retried on later ticks; every attempt is recorded."""
        hook = Recorder(fail_times=5)
        scenario.engine.enforce("api", Policy(critical=[hook], max_attempts=3))

        scenario.seconds(52, bad=10)
        for attempt in (1, 2, 3):  # each failure is retried at the next tick
            assert wait_for(lambda n=attempt: len(scenario.page().actions) == n)
            scenario.seconds(1, bad=10)
        scenario.seconds(5, bad=10)  # no fourth attempt

        actions = scenario.page().actions
        assert [1, 2, 3] == [a.attempt for a in actions]
        assert all(a.result == "error: RuntimeError: hook failed" for a in actions)

    def test_cooldown_skips_a_second_action(self, scenario):
        """Within the cooldown a hook does not act again for the same SLO."""
        hook = Recorder()
        scenario.engine.enforce("api", Policy(critical=[hook], cooldown="1h"))

        scenario.seconds(200, bad=10)  # pages twice: 1h/5m, then 6h/30m

        results = {
            v.rule: [a.result for a in v.actions]
            for v in scenario.engine.violations()
            if v.rule.startswith("page")
        }
        assert wait_for(lambda: len(hook.seen) >= 1)
        assert ["ok"] == results["page-1h-5m"] or ["ok"] == [
            a.result for a in scenario.page().actions
        ]
        assert ["skipped: cooldown (3600s)"] == results["page-6h-30m"]

    def test_hanging_hook_times_out_and_recording_goes_on(self):
        """A hook blocked past its timeout is recorded as timed out; nothing else waits."""
        scenario = Scenario(hook_timeout=0.05)
        release = threading.Event()
        hook = Recorder(block=release)
        scenario.engine.enforce("api", Policy(critical=[hook], max_attempts=1))
        tracked = slakit.track(scenario.slo, registry=scenario.registry)(lambda: "fine")
        try:
            scenario.seconds(52, bad=10)
            assert wait_for(lambda: hook.seen)
            assert "fine" == tracked()
            assert wait_for(lambda: (scenario.engine.evaluate_now(), scenario.page().actions)[1])
        finally:
            release.set()
            scenario.engine.stop()

        assert ["timed out after 0.05s"] == [a.result for a in scenario.page().actions]

    def test_severity_routing_and_notices(self, scenario):
        """Warning hooks act on tickets only; resolutions reach hooks without an action."""
        pager, ticketer = Recorder("pager"), Recorder("ticketer")
        scenario.engine.enforce("api", Policy(critical=[pager], warning=[ticketer]))
        scenario.seconds(60, bad=10)
        scenario.seconds(400, bad=0)

        assert wait_for(lambda: len(pager.seen) >= 2)
        kinds = [type(e).__name__ for e in pager.seen]
        assert ["ViolationOpened", "ViolationResolved"] == kinds[:2]
        assert all(e.violation.severity is slakit.Severity.CRITICAL for e in pager.seen)
        assert all(e.violation.severity is slakit.Severity.WARNING for e in ticketer.seen)
        assert ["ok"] == [a.result for a in scenario.page().actions]


class TestPolicySpec:
    def test_hooks_need_on_event(self):
        """Anything without on_event is refused at construction."""
        with pytest.raises(ValueError, match="needs an on_event"):
            Policy(critical=[object()])

    def test_max_attempts_at_least_one(self):
        """max_attempts must be at least 1."""
        with pytest.raises(ValueError, match="max_attempts"):
            Policy(max_attempts=0)


class TestEndToEndThroughTheCalls:
    @pytest.mark.parametrize("rejected_are_bad", [True, False])
    def test_resolves_either_way(self, rejected_are_bad):
        """
        Real calls through track → shedder → breaker: outage, page, breaker open, fail
        fast, recovery, probes, closed, and the violation resolves — whether refused
        calls count as bad (the default) or not.
        """
        clock = FakeClock()
        registry = slakit.Registry(clock)
        engine = slakit.Engine(registry)
        slo = slakit.SLO(
            "pay",
            objectives=[slakit.Availability("99.9%")],
            rejected_are_bad=rejected_are_bad,
        )
        # opened by the page only: on its own counts it would trip in the first second
        # and, with refused calls not counted, spare the SLO its page altogether
        breaker = CircuitBreaker(
            "payments", wait_in_open=30, half_open_calls=3, minimum_calls=10**6, clock=clock
        )
        shedder = slakit.remediate.LoadShedder(page_step=0.3, recovery="60s", clock=clock)
        engine.enforce(slo, Policy(critical=[breaker, shedder]))
        store = registry.register(slo)
        start = clock.time()
        for m in range(3 * 1_440):
            store.record_many(start + m * 60, total=1_200)
        clock.advance(3 * 86_400)
        down = {"now": False}

        def charge():
            if down["now"]:
                raise ConnectionError
            return "ok"

        @slakit.track(slo, registry=registry)
        def order(i):
            c = "sheddable" if i % 4 == 0 else "critical"
            with shedder.guard(c):
                return breaker.call(charge)

        def run(seconds):
            for _ in range(seconds):
                for i in range(20):
                    try:
                        order(i)
                    except (ConnectionError, slakit.RejectedError):
                        pass
                clock.advance(1)
                engine.evaluate_now()
                assert wait_for(
                    lambda: all(
                        w._queue.empty() and w._busy is None for w in engine._enforcer.workers()
                    )
                )

        try:
            run(30)
            down["now"] = True
            run(60)
            assert State.OPEN is breaker.state
            down["now"] = False
            run(900)
        finally:
            engine.stop()

        page = next(v for v in engine.violations(include_resolved=True) if v.rule == "page-1h-5m")
        assert State.CLOSED is breaker.state
        assert page.resolved_at is not None
        assert ["CircuitBreaker:payments", "LoadShedder:shedder"] == sorted(
            a.hook for a in page.actions
        )
        assert registry.store("pay").read([]).lifetime.rejected > 0
