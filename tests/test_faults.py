"""Never break the host: faults inside slakit leave the wrapped calls' results unchanged."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import slakit
from slakit import engine as engine_module
from slakit import faults, ring
from slakit.asgi import SLOMiddleware
from slakit.history import History
from slakit.remediate import Policy

SLO = slakit.SLO("api", objectives=[slakit.Availability("99%")], window="1h")


class Boom(Exception):
    pass


@pytest.fixture
def broken_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every slot roll fails, as if memory ran out inside the store."""

    def roll(self: Any, mono_ns: int, offset_ns: int) -> Any:
        raise MemoryError("injected")

    monkeypatch.setattr(ring._Shard, "roll", roll)


def test_a_failing_store_changes_no_result_or_exception(
    registry: slakit.Registry, broken_store: None, caplog: pytest.LogCaptureFixture
) -> None:
    before = faults.counts().get("record", 0)
    track = slakit.track(SLO, registry=registry)

    @track
    def add(a: int, b: int) -> int:
        return a + b

    @track
    def fail() -> None:
        raise Boom

    @track
    async def later(x: int) -> int:
        return x * 2

    @track
    def numbers() -> Any:
        yield from range(3)

    with caplog.at_level(logging.ERROR, logger="slakit.faults"):
        assert [add(1, 2) for _ in range(20)] == [3] * 20
        with pytest.raises(Boom):
            fail()
        assert asyncio.run(later(4)) == 8
        assert list(numbers()) == [0, 1, 2]
        with track.time():
            pass
    assert faults.counts()["record"] - before == 24
    logged = [r for r in caplog.records if "internal error in record" in r.getMessage()]
    assert 1 <= len(logged) <= 3  # rate-limited: 1st, 10th, 100th ... not one per call


def test_a_failing_result_predicate_is_counted_not_raised(registry: slakit.Registry) -> None:
    def judge(result: object) -> bool:
        raise ValueError("the predicate has a bug")

    @slakit.track(SLO, registry=registry, ok=judge)
    def handler() -> str:
        return "done"

    assert handler() == "done"
    assert faults.counts()["result predicate"] >= 1
    store = registry.store("api")
    store.consolidate()
    assert store.read([(0.0, 1.0)]).lifetime.ignored == 1


def test_a_failing_route_lookup_serves_the_request_unrecorded(registry: slakit.Registry) -> None:
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    def broken(scope: Any) -> str:
        raise RuntimeError("router bug")

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(SLOMiddleware, slo=SLO, registry=registry, route=broken)
    assert TestClient(app).get("/").text == "home"
    assert faults.counts()["asgi route"] >= 1


class Die(BaseException):
    """Escapes the tick's own error handling: the loop itself dies."""


def test_the_engine_loop_is_restarted_after_it_dies(caplog: pytest.LogCaptureFixture) -> None:
    registry = slakit.Registry()
    store = registry.register(SLO)
    engine = slakit.Engine(registry, interval=0.01)
    real = engine._tick
    deaths = []

    def tick() -> None:
        if len(deaths) < 2:
            deaths.append(1)
            raise Die
        real()

    engine._tick = tick  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="slakit.engine"):
        engine.start()
        try:
            store.record(0.01)  # recording goes on meanwhile
            deadline = time.monotonic() + 30  # a watchdog
            while registry.latest("api") is None:
                assert time.monotonic() < deadline, "evaluations never resumed"
                time.sleep(0.01)
        finally:
            engine.stop()
    assert engine.restarts == 2
    assert registry.latest("api").lifetime.total == 1  # type: ignore[union-attr]
    assert "engine loop died" in caplog.text


def test_faults_in_every_later_stage_leave_calls_alone(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, clock: Any
) -> None:
    """Evaluator, exporter, history and hooks all fail; calls and recording carry on."""
    registry = slakit.Registry(clock)
    store = registry.register(SLO)
    engine = slakit.Engine(registry)

    class BrokenHook:
        def on_event(self, event: object) -> None:
            raise RuntimeError("hook fault")

    class BrokenPublisher:
        def publish(self, snapshots: object) -> None:
            raise RuntimeError("exporter fault")

    engine.enforce(SLO, Policy(critical=[BrokenHook()]))
    engine.add_publisher(BrokenPublisher())
    history = History(tmp_path / "h.db", flush_interval=3600)
    history.attach(engine)
    history._connect().execute("PRAGMA busy_timeout = 0")
    blocker = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the history can no longer write

    @slakit.track(SLO, registry=registry)
    def handler(x: int) -> int:
        if x < 0:
            raise Boom
        return x + 1

    real = engine_module.evaluate_slo
    broken = {"on": False}

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        if broken["on"]:
            raise RuntimeError("evaluator fault")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "evaluate_slo", evaluate)
    results = []
    for second in range(120):
        broken["on"] = 60 <= second < 70
        for i in range(10):
            results.append(handler(i))
            with pytest.raises(Boom):
                handler(-1)
        clock.advance(1)
        engine._tick()  # the loop's tick: its faults are counted, not raised
        engine.drain()
        history.flush()
    assert results == [i + 1 for i in range(10)] * 120
    assert engine.tick_errors == 10
    assert engine.publish_errors == 110
    assert sum(s.errors for s in engine.hook_stats().values()) >= 1
    store.consolidate()
    life = store.read([(0.0, 1.0)]).lifetime
    assert (life.total, life.bad) == (2_400, 1_200)  # every call recorded all along
    assert history.write_errors > 0
    engine.stop()
    blocker.execute("ROLLBACK")
    blocker.close()
    history._queue.clear()
