"""The circuit breaker: its state machine, concurrency, cancellation and SLO binding."""

from __future__ import annotations

import asyncio
import threading
from collections import deque

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import slakit
from slakit.remediate import CircuitBreaker, CircuitBreakerListener, CircuitOpenError, State
from slakit.testing import FakeClock, capture_events


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


WINDOW, MINIMUM, HALF, WAIT = 5, 3, 2, 10.0


class BreakerMachine(RuleBasedStateMachine):
    """A breaker driven call by call against a plain model of resilience4j's rules."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            "m",
            window=WINDOW,
            minimum_calls=MINIMUM,
            failure_rate=0.5,
            slow_call_duration=1.0,
            slow_call_rate=0.5,
            half_open_calls=HALF,
            wait_in_open=WAIT,
            ignore=(Ignored,),
            clock=self.clock,
        )
        self.state = State.CLOSED
        self.window: deque[tuple[int, int]] = deque(maxlen=WINDOW)
        self.opened_at = 0.0
        self.probes: list[tuple[int, int]] = []

    def _open(self) -> None:
        self.state = State.OPEN
        self.opened_at = self.clock.time()
        self.probes = []

    def _expect(self, kind: str) -> str:
        """What the model says happens to a call of this kind: 'run' or 'reject'."""
        if self.state is State.OPEN and self.clock.time() - self.opened_at >= WAIT:
            self.state, self.probes = State.HALF_OPEN, []
        if self.state in (State.OPEN, State.FORCED_OPEN):
            return "reject"
        if self.state is State.HALF_OPEN and len(self.probes) >= HALF:
            return "reject"  # sequential calls: every earlier probe has finished
        return "run"

    def _count(self, fail: int, slow: int) -> None:
        if self.state is State.DISABLED:
            return
        if self.state is State.HALF_OPEN:
            self.probes.append((fail, slow))
            if len(self.probes) == HALF:
                f = sum(p[0] for p in self.probes) / HALF
                s = sum(p[1] for p in self.probes) / HALF
                if f >= 0.5 or s >= 0.5:
                    self._open()
                else:
                    self.state, self.probes = State.CLOSED, []
                    self.window.clear()
            return
        self.window.append((fail, slow))
        if self.state is State.CLOSED and (fail or slow) and len(self.window) >= MINIMUM:
            n = len(self.window)
            if (
                sum(w[0] for w in self.window) / n >= 0.5
                or sum(w[1] for w in self.window) / n >= 0.5
            ):
                self._open()

    @rule(kind=st.sampled_from(["ok", "ok", "fail", "slow", "slow_fail", "ignored", "cancelled"]))
    def call(self, kind: str) -> None:
        expected = self._expect(kind)

        def work() -> str:
            if "slow" in kind:
                self.clock.advance(2)
            if kind in ("fail", "slow_fail"):
                raise Boom
            if kind == "ignored":
                raise Ignored
            if kind == "cancelled":
                raise asyncio.CancelledError
            return "done"

        try:
            result = self.breaker.call(work)
        except CircuitOpenError:
            assert "reject" == expected
            return
        except (Boom, Ignored, asyncio.CancelledError):
            outcome = "raised"
        else:
            assert "done" == result
            outcome = "returned"
        assert "run" == expected, kind
        assert ("raised" if kind not in ("ok", "slow") else "returned") == outcome
        if kind in ("ok", "slow", "fail", "slow_fail"):
            self._count(int("fail" in kind), int("slow" in kind))

    @rule(seconds=st.sampled_from([1.0, 5.0, 10.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(action=st.sampled_from(["force_open", "disable", "metrics_only", "reset", "trip"]))
    def operate(self, action: str) -> None:
        getattr(self.breaker, action)()
        if action == "trip":
            if self.state in (State.CLOSED, State.HALF_OPEN):
                self._open()
            return
        new = {
            "force_open": State.FORCED_OPEN,
            "disable": State.DISABLED,
            "metrics_only": State.METRICS_ONLY,
            "reset": State.CLOSED,
        }[action]
        if new is not self.state or action == "reset":
            if new in (State.CLOSED, State.METRICS_ONLY):
                self.window.clear()
            self.probes = []
        self.state = new

    @invariant()
    def same_state(self) -> None:
        assert self.state is self.breaker._state

    @invariant()
    def same_rates(self) -> None:
        if self.state in (State.CLOSED, State.METRICS_ONLY):
            n = len(self.window)
            calls, fail, slow = self.breaker.metrics()
            assert n == calls
            if n:
                assert sum(w[0] for w in self.window) / n == pytest.approx(fail)
                assert sum(w[1] for w in self.window) / n == pytest.approx(slow)


BreakerMachine.TestCase.settings = settings(
    max_examples=settings().max_examples * 2, stateful_step_count=50, deadline=None
)
TestBreakerMachine = BreakerMachine.TestCase


class TimeWindowMachine(RuleBasedStateMachine):
    """A time-based window: rates over the last 10 s of calls, on a fake clock."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            "t", window=10, window_type="time", minimum_calls=1_000_000, clock=self.clock
        )
        self.calls: list[tuple[float, int]] = []

    @rule(fail=st.booleans())
    def call(self, fail: bool) -> None:
        def work() -> None:
            if fail:
                raise Boom

        with pytest.raises(Boom) if fail else _nothing():
            self.breaker.call(work)
        self.calls.append((self.clock.monotonic_ns() // 1_000_000_000, int(fail)))

    @rule(seconds=st.sampled_from([0.4, 1.0, 3.0, 9.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def rates(self) -> None:
        now = self.clock.monotonic_ns() // 1_000_000_000
        recent = [f for sec, f in self.calls if sec > now - 10]
        calls, fail, _ = self.breaker.metrics()
        assert len(recent) == calls
        if recent:
            assert sum(recent) / len(recent) == pytest.approx(fail)


TestTimeWindowMachine = TimeWindowMachine.TestCase


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def half_open(clock: FakeClock, **kwargs) -> CircuitBreaker:
    """A breaker tripped by failures and moved to half-open with one permit."""
    b = CircuitBreaker(
        "h", minimum_calls=2, half_open_calls=1, wait_in_open=5, clock=clock, **kwargs
    )
    for _ in range(2):
        with pytest.raises(Boom):
            b.call(_raise)
    assert State.OPEN is b.state
    clock.advance(5)
    return b


def _raise() -> None:
    raise Boom


class TestHalfOpenPermits:
    def test_hundred_callers_one_probe(self, clock):
        """With one permit held by a blocked probe, 99 callers fail fast; one reaches it."""
        b = half_open(clock)
        entered, release = threading.Event(), threading.Event()
        reached, rejected = [], []

        def probe():
            reached.append(1)
            entered.set()
            release.wait(30)
            return "ok"

        def caller():
            try:
                b.call(probe)
            except CircuitOpenError:
                rejected.append(1)

        first = threading.Thread(target=caller)
        first.start()
        assert entered.wait(30)
        threads = [threading.Thread(target=caller) for _ in range(49)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

        async def tasks():
            async def acall():
                try:
                    await b.call_async(_async_probe(reached))
                except CircuitOpenError:
                    rejected.append(1)

            await asyncio.gather(*(acall() for _ in range(50)))

        asyncio.run(tasks())
        release.set()
        first.join(30)

        assert (1, 99) == (len(reached), len(rejected))
        assert State.CLOSED is b.state

    def test_cancelled_probe_returns_its_permit(self, clock):
        """A cancelled probe propagates CancelledError, is not counted, frees the permit."""
        b = half_open(clock)

        async def main():
            started = asyncio.Event()

            async def slow():
                started.set()
                await asyncio.sleep(30)

            task = asyncio.create_task(b.call_async(slow))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())

        assert State.HALF_OPEN is b.state
        assert "ok" == b.call(lambda: "ok")  # the permit came back: this probe runs
        assert State.CLOSED is b.state

    def test_keyboard_interrupt_is_not_a_failure(self, clock):
        """KeyboardInterrupt inside a probe propagates unchanged and frees the permit."""
        b = half_open(clock)

        def interrupted():
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            b.call(interrupted)

        assert State.HALF_OPEN is b.state
        b.call(lambda: None)
        assert State.CLOSED is b.state

    def test_hung_probe_gives_its_permit_back_after_max_wait(self, clock):
        """A probe running past max_wait_in_half_open lets the next caller probe."""
        b = half_open(clock, max_wait_in_half_open=2)
        entered, release = threading.Event(), threading.Event()

        def hang():
            entered.set()
            release.wait(30)

        t = threading.Thread(target=b.call, args=(hang,))
        t.start()
        assert entered.wait(30)
        with pytest.raises(CircuitOpenError):
            b.call(lambda: None)
        clock.advance(3)
        b.call(lambda: None)  # reclaimed the hung probe's permit
        release.set()
        t.join(30)

        assert State.CLOSED is b.state

    def test_failed_probe_reopens(self, clock):
        """A failing probe sends the breaker back to open for another wait."""
        b = half_open(clock)

        with pytest.raises(Boom):
            b.call(_raise)

        assert State.OPEN is b.state
        assert 5 == pytest.approx(b.retry_after())


async def _async_probe_impl(reached):
    reached.append(1)
    return "ok"


def _async_probe(reached):
    return lambda: _async_probe_impl(reached)


class TestNoLockAroundTheCall:
    def test_eight_threads_meet_inside(self):
        """Eight callers meet at a barrier inside the protected function."""
        b = CircuitBreaker("barrier")
        barrier = threading.Barrier(8, timeout=5)
        errors = []

        def meet():
            barrier.wait()

        def caller():
            try:
                b.call(meet)
                b(meet)()
            except threading.BrokenBarrierError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=caller) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

        assert [] == errors

    def test_raising_listener_changes_nothing(self, clock, caplog):
        """A listener that raises is logged; the call's result and exception stand."""

        class Bad(CircuitBreakerListener):
            def success(self, breaker, duration):
                raise RuntimeError("listener boom")

            def failure(self, breaker, exc, duration):
                raise RuntimeError("listener boom")

            def state_change(self, breaker, old, new):
                raise RuntimeError("listener boom")

        b = CircuitBreaker("l", minimum_calls=1, listeners=(Bad(),), clock=clock)

        assert 42 == b.call(lambda: 42)
        with pytest.raises(Boom):
            b.call(_raise)
        assert State.OPEN is b.state
        assert "listener boom" in caplog.text


class TestOptions:
    def test_trips_on_failure_rate_after_minimum_calls(self, clock):
        """No trip before minimum_calls; then at the failure rate."""
        b = CircuitBreaker("f", minimum_calls=4, failure_rate="50%", clock=clock)
        b.call(lambda: 1)
        for _ in range(2):
            with pytest.raises(Boom):
                b.call(_raise)
        assert State.CLOSED is b.state
        with pytest.raises(Boom):
            b.call(_raise)

        assert State.OPEN is b.state
        with pytest.raises(CircuitOpenError, match=r"'f' is open; retry in 60\.0s"):
            b.call(lambda: 1)

    def test_slow_calls_trip(self, clock):
        """Calls at or over slow_call_duration trip at slow_call_rate."""
        b = CircuitBreaker(
            "s", minimum_calls=2, slow_call_duration="100ms", slow_call_rate=1.0, clock=clock
        )

        def slow():
            clock.advance(0.2)

        b.call(slow)
        b.call(slow)

        assert State.OPEN is b.state

    def test_exception_filters_and_predicate(self, clock):
        """Ignored exceptions do not count; unrecorded ones count as success; predicate fails."""
        b = CircuitBreaker(
            "x",
            minimum_calls=1,
            record=(Boom,),
            ignore=(Ignored,),
            failure_if=lambda r: r == "bad",
            clock=clock,
        )
        with pytest.raises(Ignored):
            b.call(_raise_ignored)
        with pytest.raises(ValueError):
            b.call(_raise_value)
        assert (1, 0.0, 0.0) == b.metrics()

        assert "bad" == b.call(lambda: "bad")
        assert State.OPEN is b.state

    def test_fallback(self, clock):
        """When rejected, the fallback answers instead of the error."""
        b = CircuitBreaker("fb", fallback=lambda exc, x: f"cached {x}", clock=clock)
        b.force_open()

        assert "cached 3" == b.call(lambda x: x, 3)

    def test_forced_disabled_metrics_only(self, clock):
        """force_open rejects, disable lets through unrecorded, metrics_only never trips."""
        b = CircuitBreaker("o", minimum_calls=1, clock=clock)
        b.force_open()
        with pytest.raises(CircuitOpenError, match="forced_open"):
            b.call(lambda: 1)
        b.disable()
        with pytest.raises(Boom):
            b.call(_raise)
        assert (0, 0.0, 0.0) == b.metrics()
        b.metrics_only()
        for _ in range(5):
            with pytest.raises(Boom):
                b.call(_raise)

        assert State.METRICS_ONLY is b.state
        assert (5, 1.0, 0.0) == b.metrics()
        b.reset()
        assert State.CLOSED is b.state

    def test_automatic_half_open(self, clock):
        """With automatic_half_open the state reads half-open once the wait is over."""
        b = CircuitBreaker("a", automatic_half_open=True, wait_in_open=5, clock=clock)
        b.trip()
        clock.advance(5)

        assert State.HALF_OPEN is b.state

    def test_guard_and_decorator(self, clock):
        """guard() and the decorator record like call(), sync and async."""
        b = CircuitBreaker("g", minimum_calls=3, clock=clock)

        @b
        async def afail():
            raise Boom

        with pytest.raises(Boom), b.guard():
            raise Boom

        async def main():
            with pytest.raises(Boom):
                await afail()
            with pytest.raises(Boom):
                async with b.guard():
                    raise Boom

        asyncio.run(main())

        assert State.OPEN is b.state
        with pytest.raises(CircuitOpenError), b.guard():
            pass

    def test_bad_options(self):
        """Invalid settings are refused with a clear error."""
        with pytest.raises(ValueError, match="window_type"):
            CircuitBreaker("b", window_type="sliding")
        with pytest.raises(ValueError, match="must be in"):
            CircuitBreaker("b", failure_rate=1.5)


def _raise_ignored():
    raise Ignored


def _raise_value():
    raise ValueError


class TestBoundToAnSLO:
    def test_page_opens_and_probes_close(self, clock, registry):
        """Outage → page → open → fail fast → recovery → half-open probes → closed."""
        slo = slakit.SLO("payments", objectives=[slakit.Availability("99.9%")])
        store = registry.register(slo)
        breaker = CircuitBreaker(
            "payments", slo="payments", wait_in_open=30, half_open_calls=3, clock=clock
        )
        engine = slakit.Engine(registry)
        start = clock.time()
        for m in range(3 * 1_440):  # three clean days
            store.record_many(start + m * 60, total=600)
        clock.advance(3 * 86_400)
        engine.evaluate_now()
        with capture_events(engine) as events:
            engine._listeners.append(breaker.on_event)  # synchronous, for the test
            seconds = 0
            while breaker.state is State.CLOSED and seconds < 120:
                store.record_many(clock.time(), total=10, bad=10)
                clock.advance(1)
                engine.evaluate_now()
                seconds += 1

            assert 52 == pytest.approx(seconds, abs=1)  # opened by the page itself
            with pytest.raises(CircuitOpenError):
                breaker.call(lambda: "payment")
            clock.advance(30)
            for _ in range(3):
                assert "payment" == breaker.call(lambda: "payment")
            assert State.CLOSED is breaker.state

        pages = [e for e in events if isinstance(e, slakit.ViolationOpened)]
        assert any(e.violation.rule == "page-1h-5m" for e in pages)

    def test_other_slos_warnings_and_budget_are_ignored(self, clock):
        """Only a page of its own SLO trips the breaker, not a warning or an empty budget."""
        b = CircuitBreaker("b", slo="mine", clock=clock)

        def opened(slo, severity):
            v = slakit.Violation("v", slo, "availability", "r", severity, 0.0, 1.0, 1.0, "")
            return slakit.ViolationOpened(0.0, v)

        b.on_event(opened("other", slakit.Severity.CRITICAL))
        b.on_event(opened("mine", slakit.Severity.WARNING))
        budget = opened("mine", slakit.Severity.CRITICAL)
        b.on_event(slakit.ViolationOpened(0.0, attrs.evolve(budget.violation, rule="budget")))
        assert State.CLOSED is b.state
        b.on_event(opened("mine", slakit.Severity.CRITICAL))
        assert State.OPEN is b.state
