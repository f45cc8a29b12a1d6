"""Maintenance windows: excluded from every SLI, counted as ignored, DST-proof schedules."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

import slakit

if TYPE_CHECKING:
    from slakit.testing import FakeClock

API = slakit.SLO("api", objectives=[slakit.Availability("99%")], window="1d")
PARIS = ZoneInfo("Europe/Paris")


def lifetime(registry: slakit.Registry) -> slakit.ring.Counts:
    store = registry.store("api")
    store.consolidate()
    return store.read([(0.0, 1.0)]).lifetime


def test_the_runtime_switch_excludes_its_block(registry: slakit.Registry, clock: FakeClock) -> None:
    store = registry.register(API)
    for _ in range(10):
        store.record(0.01, ok=True)
    clock.advance(1)
    with slakit.maintenance("api", registry=registry):
        for _ in range(5):
            store.record(0.01, ok=False)  # the failover hurts, but it was planned
        clock.advance(3)
    clock.advance(1)
    store.record(0.01, ok=False)
    clock.advance(1)
    life = lifetime(registry)
    assert (life.total, life.bad, life.ignored) == (11, 1, 5)
    snap = slakit.Engine(registry).evaluate_now()["api"]
    assert snap.objective("availability").actual == pytest.approx(10 / 11)


def test_a_weekly_window_keeps_its_local_time_across_dst() -> None:
    window = slakit.MaintenanceWindow(
        "sunday patching",
        start="2026-03-01T02:00",
        duration="2h",
        rrule="FREQ=WEEKLY;BYDAY=SU",
        tz="Europe/Paris",
    )
    since = dt.datetime(2026, 3, 20, tzinfo=PARIS).timestamp()
    until = dt.datetime(2026, 4, 10, tzinfo=PARIS).timestamp()
    spans = window.occurrences(since, until)
    local = [dt.datetime.fromtimestamp(s, PARIS) for s, _ in spans]
    assert [d.date().isoformat() for d in local] == ["2026-03-22", "2026-03-29", "2026-04-05"]
    # 29 March: 02:00 does not exist in Paris; the window starts when the clocks jump,
    # 01:00 UTC, which reads 03:00 summer time. The other Sundays start at 02:00 local.
    assert [(d.hour, d.minute) for d in local] == [(2, 0), (3, 0), (2, 0)]
    assert [d.utcoffset() for d in local] == [
        dt.timedelta(hours=1),
        dt.timedelta(hours=2),
        dt.timedelta(hours=2),
    ]
    assert all(e - s == 7_200 for s, e in spans)


def test_the_engine_applies_scheduled_windows(clock: FakeClock) -> None:
    start = dt.datetime.fromtimestamp(clock.time() + 60, dt.UTC)
    window = slakit.MaintenanceWindow(
        "deploy", start=start.strftime("%Y-%m-%dT%H:%M:%S"), duration="30s", slos=["api"]
    )
    registry = slakit.Registry(clock)
    store = registry.register(API)
    engine = slakit.Engine(registry)
    engine.schedule(window)
    for _ in range(120):
        store.record(0.01, ok=False)
        clock.advance(1)
        engine.evaluate_now()
    life = lifetime(registry)
    assert (life.ignored, life.total, life.bad) == (30, 90, 90)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("start", "next sunday", "start: expected a local date"),
        ("rrule", "FREQ=SOMETIMES", "rrule:"),
        ("tz", "Mars/Olympus", "tz: unknown time zone"),
    ],
)
def test_bad_windows_say_which_field(field: str, value: str, reason: str) -> None:
    args = {"start": "2026-03-01T02:00", "duration": "1h", field: value}
    with pytest.raises(ValueError, match=reason):
        slakit.MaintenanceWindow("w", **args)
