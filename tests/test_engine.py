"""The engine: lifecycle, event dispatch, subscriber isolation, acknowledgement."""

from __future__ import annotations

import asyncio
import threading

import pytest

import slakit
from slakit.events import ViolationAcknowledged, ViolationOpened
from slakit.testing import capture_events
from tests.waiting import wait_for


def outage(registry, clock, engine, seconds=60):
    """A minute of total outage after an hour of clean traffic: pages."""
    slo = slakit.SLO("api", objectives=[slakit.Availability("99.9%")])
    store = registry.register(slo)
    for s in range(3_600):
        store.record_many(clock.time() + s, total=10)
    clock.advance(3_600)
    engine.evaluate_now()
    for _ in range(seconds):
        store.record_many(clock.time(), total=10, bad=10)
        clock.advance(1)
        engine.evaluate_now()
    return slo


class TestLifecycle:
    def test_start_stop_leaves_no_thread(self, registry):
        """The loop is a daemon thread; stop() joins it and is safe to call twice."""
        engine = slakit.Engine(registry, interval=0.01)
        engine.start()
        engine.start()  # no second thread
        names = [t.name for t in threading.enumerate() if t.name == "slakit-engine"]

        engine.stop()
        engine.stop()

        assert ["slakit-engine"] == names
        assert not engine.running
        assert all(t.daemon for t in threading.enumerate() if t.name.startswith("slakit"))
        assert not any(t.name == "slakit-engine" for t in threading.enumerate())

    def test_context_manager_ticks_in_the_background(self, registry):
        """Inside ``with engine:`` snapshots appear without calling evaluate_now."""
        slo = slakit.SLO("bg", objectives=[slakit.Availability("99%")])
        slakit.record(slo, 0.01, registry=registry)

        with slakit.Engine(registry, interval=0.01) as engine:
            assert wait_for(lambda: engine.snapshot("bg") is not None)

        assert not engine.running

    def test_asyncio_task_mode(self, registry):
        """engine.run() ticks on the event loop until cancelled; no thread is started."""
        slo = slakit.SLO("aio", objectives=[slakit.Availability("99%")])
        slakit.record(slo, 0.01, registry=registry)
        engine = slakit.Engine(registry, interval=0.01)

        async def main():
            task = asyncio.create_task(engine.run())
            for _ in range(3_000):  # watchdog: 30 s
                if engine.snapshot("aio") is not None:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())

        assert 1 == engine.snapshot("aio").lifetime.total
        assert not engine.running

    def test_invalid_settings(self, registry):
        """Non-positive interval or timeout is refused."""
        with pytest.raises(ValueError, match="must be > 0"):
            slakit.Engine(registry, interval=0)

    def test_failing_tick_is_counted_and_the_loop_goes_on(self, registry, monkeypatch):
        """An exception in a tick is logged and counted; the next tick still runs."""
        engine = slakit.Engine(registry, interval=0.01)
        real = engine.evaluate_now
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("boom")
            return real()

        monkeypatch.setattr(engine, "evaluate_now", flaky)
        with engine:
            assert wait_for(lambda: len(calls) >= 3)

        assert 1 == engine.tick_errors


class TestSubscribers:
    def test_events_reach_functions_and_hooks(self, clock, registry, engine):
        """A plain function and an object with on_event both receive events, in order."""
        got_fn, got_hook = [], []

        class Hook:
            def on_event(self, event):
                got_hook.append(event)

        emitted = []
        engine.listen(emitted.append)  # on the tick: every event, as emitted
        engine.subscribe(got_fn.append)
        engine.subscribe(Hook())
        outage(registry, clock, engine)

        assert len(emitted) >= 2
        assert wait_for(lambda: len(got_fn) == len(got_hook) == len(emitted))
        assert got_fn == got_hook == emitted
        assert isinstance(got_fn[0], ViolationOpened)

    def test_raising_subscriber_is_isolated(self, clock, registry, engine, caplog):
        """A subscriber that raises is logged and counted; others still get the event."""
        got = []

        def bad(event):
            raise RuntimeError("hook exploded")

        engine.subscribe(bad)
        engine.subscribe(got.append)
        outage(registry, clock, engine)

        assert wait_for(lambda: got and engine.hook_stats()[repr(bad)].errors >= 1)
        assert wait_for(lambda: "hook exploded" in caplog.text)

    def test_hanging_subscriber_never_blocks_recording_or_ticks(self, clock, registry):
        """A subscriber blocked on an Event is abandoned after its timeout; ticks go on."""
        engine = slakit.Engine(registry, hook_timeout=0.05)
        release = threading.Event()
        entered = threading.Event()
        got = []

        def hang(event):
            entered.set()
            release.wait(30)

        engine.subscribe(hang)
        engine.subscribe(got.append)
        try:
            slo = outage(registry, clock, engine)  # ticks while the hook hangs
            assert entered.wait(30)
            tracked = slakit.track(slo, registry=registry)(lambda: 1)
            assert 1 == tracked()  # recording is untouched
            assert wait_for(lambda: len(got) >= 2)
            engine.evaluate_now()
            assert wait_for(
                lambda: (engine.evaluate_now(), engine.hook_stats()[repr(hang)].timeouts)[1] >= 1
            )
        finally:
            release.set()
            engine.stop()

    def test_unsubscribe(self, clock, registry, engine):
        """After unsubscribe a subscriber gets nothing more."""
        got = []
        engine.subscribe(got.append)
        engine.unsubscribe(got.append)
        outage(registry, clock, engine)
        engine.stop()

        assert [] == got


class TestAcknowledge:
    def test_acknowledge_open_violation(self, clock, registry, engine):
        """Acknowledging stamps the violation and emits ViolationAcknowledged."""
        with capture_events(engine) as events:
            outage(registry, clock, engine)
            (v,) = [v for v in engine.violations() if v.rule == "page-1h-5m"]
            acked = engine.acknowledge(v.id, by="alice")

        assert "alice" == acked.acknowledged_by
        assert clock.time() == acked.acknowledged_at
        assert isinstance(events[-1], ViolationAcknowledged)
        assert acked in engine.violations()

    def test_unknown_violation(self, engine):
        """Acknowledging an unknown id is a KeyError naming it."""
        with pytest.raises(KeyError, match="nope"):
            engine.acknowledge("nope")

    def test_resolved_violations_are_kept(self, clock, registry, engine):
        """Resolved violations stay readable with their end time."""
        slo = outage(registry, clock, engine)
        store = registry.store(slo.name)
        for _ in range(400):
            store.record_many(clock.time(), total=10)
            clock.advance(1)
            engine.evaluate_now()

        done = [v for v in engine.violations(include_resolved=True) if not v.is_open]

        assert any(v.rule == "page-1h-5m" and v.resolved_at is not None for v in done)
        assert [] == [v for v in engine.violations() if v.rule == "page-1h-5m"]


class TestPercentilesOnDemand:
    def test_any_window(self, clock, registry, engine):
        """Quantiles over the last 5 minutes differ from those over the hour."""
        slo = slakit.SLO("lat", objectives=[slakit.Availability("99%")], window="1h")
        store = registry.register(slo)
        store.record_many(clock.time(), durations=[(0.5, 100)])
        clock.advance(1_200)
        store.record_many(clock.time(), durations=[(0.01, 100)])
        clock.advance(1)

        recent = engine.percentiles("lat", "5m", qs=(0.5,))
        hour = engine.percentiles(slo, qs=(0.99,))

        assert 0.01 == pytest.approx(recent[0.5], rel=0.01)
        assert 0.5 == pytest.approx(hour[0.99], rel=0.01)
