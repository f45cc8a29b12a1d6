"""Hot reload: new targets and alerting apply at the next tick, and no count is lost."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

import slakit
from slakit.events import ViolationResolved
from slakit.testing import FakeClock, capture_events
from tests.waiting import wait_for

if TYPE_CHECKING:
    from pathlib import Path

OLD = slakit.SLO(
    "api", objectives=[slakit.Availability("99%"), slakit.Latency("250ms", "99%")], window="1d"
)
TIGHTER = slakit.SLO(
    "api", objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", "99%")], window="1d"
)


def traffic(engine: slakit.Engine, clock: FakeClock, seconds: int, bad_every: int) -> None:
    store = engine.registry.store("api")
    for s in range(seconds):
        for i in range(10):
            store.record(0.01, ok=(s * 10 + i) % bad_every != 0)
        clock.advance(1)
        engine.evaluate_now()


def test_a_tighter_target_applies_to_the_counts_already_kept(clock: FakeClock) -> None:
    registry = slakit.Registry(clock)
    registry.register(OLD)
    engine = slakit.Engine(registry)
    store = registry.store("api")
    traffic(engine, clock, 600, bad_every=200)  # 0.5 % errors: fine at 99 %
    before = engine.snapshot("api")
    assert before is not None
    assert before.objective("availability").met
    assert engine.reload([TIGHTER]) == ["api"]
    after = engine.evaluate_now()["api"]
    assert registry.store("api") is store  # the same rings, nothing lost
    assert after.events == before.events
    assert not after.objective("availability").met  # 0.5 % breaks 99.9 %
    assert after.objective("availability").budget.remaining < 0  # type: ignore[union-attr]


def test_removed_slos_stop_and_their_violations_resolve(clock: FakeClock) -> None:
    registry = slakit.Registry(clock)
    registry.register(OLD)
    other = slakit.SLO("other", objectives=[slakit.Availability("99%")], window="1d")
    registry.register(other)
    engine = slakit.Engine(registry)
    traffic(engine, clock, 300, bad_every=2)  # pages
    assert engine.violations()
    with capture_events(engine) as events:
        engine.reload([other])
    assert [s.name for s in registry.slos()] == ["other"]
    assert not [v for v in engine.violations() if v.slo == "api"]
    assert any(isinstance(e, ViolationResolved) and e.violation.slo == "api" for e in events)


def test_a_threshold_change_is_refused_and_nothing_changes(clock: FakeClock) -> None:
    registry = slakit.Registry(clock)
    registry.register(OLD)
    engine = slakit.Engine(registry)
    moved = slakit.SLO("api", objectives=[slakit.Latency("300ms", "99%")], window="1d")
    with pytest.raises(ValueError, match=r"slos\.api: its latency thresholds or window changed"):
        engine.reload([moved])
    assert registry.slo("api") == OLD
    longer = slakit.SLO("api", objectives=OLD.objectives, window="90d")
    with pytest.raises(ValueError, match="restart to apply it"):
        engine.reload([longer])


def test_watching_the_file_reloads_it_and_keeps_going_on_a_bad_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "slos.yaml"
    text = "slos:\n  - name: api\n    window: 1d\n    objectives:\n      - availability: {target: 99%}\n"
    path.write_text(text)
    registry = slakit.Registry()
    registry.replace(slakit.load(path).slos)
    engine = slakit.Engine(registry)
    stop = engine.watch(path, interval=0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="slakit.engine"):
            path.write_text("slos: [{name: api, objectives: [{availability: {target: 2}}]}]\n")
            assert wait_for(lambda: "not reloaded" in caplog.text)
            assert registry.slo("api").objectives[0].target == 0.99  # the bad edit changed nothing
            path.write_text(text.replace("99%", "99.9%"))
            assert wait_for(lambda: registry.slo("api").objectives[0].target == 0.999)
    finally:
        stop.set()
