"""SQLite history: exact measurements, the violation ledger, restore after a restart."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

import slakit
from slakit.history import SCHEMA_VERSION, History
from slakit.testing import FakeClock

if TYPE_CHECKING:
    from pathlib import Path

CHECKOUT = slakit.SLO(
    "checkout",
    objectives=[slakit.Availability("99%"), slakit.Latency("250ms", "95%")],
    window="1d",
)


def service(path: Path, clock: FakeClock) -> tuple[slakit.Engine, History]:
    registry = slakit.Registry(clock)
    registry.register(CHECKOUT)
    engine = slakit.Engine(registry)
    history = History(path, flush_interval=3600)  # flushed by hand in tests
    history.attach(engine)
    return engine, history


def traffic(engine: slakit.Engine, clock: FakeClock, seconds: int, bad_every: int = 0) -> None:
    store = engine.registry.store("checkout")
    for s in range(seconds):
        for i in range(10):
            ok = not (bad_every and (s * 10 + i) % bad_every == 0)
            store.record(0.3 if i == 0 else 0.05, ok=ok)
        clock.advance(1)
        engine.evaluate_now()


def test_the_schema_is_created_and_versioned(tmp_path: Path) -> None:
    History(tmp_path / "h.db")
    conn = sqlite3.connect(tmp_path / "h.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    History(tmp_path / "h.db")  # opening again migrates nothing
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer than this slakit"):
        History(tmp_path / "h.db")


def test_measurements_per_minute_are_exact(tmp_path: Path, clock: FakeClock) -> None:
    clock.jump(60 - clock.time() % 60)  # start on a minute boundary
    engine, history = service(tmp_path / "h.db", clock)
    traffic(engine, clock, 1)  # the first tick only sets the starting minute
    start = clock.time()
    traffic(engine, clock, 179, bad_every=7)
    traffic(engine, clock, 2)  # close the third minute
    history.flush()
    rows = history.measurements("checkout", start - 1, clock.time())
    availability = [r for r in rows if r.objective == "availability"]
    latency = [r for r in rows if r.objective == "latency-250ms"]
    assert [r.events for r in availability] == [600, 600, 600]
    assert sum(r.bad for r in availability) == sum(
        1 for n in range(10, 1_800) if n % 7 == 0
    )  # events 10 .. 1,799 of the run, every 7th bad
    assert [r.bad for r in latency] == [60, 60, 60]  # one in ten is slow
    history.close()


def test_definitions_are_versioned_and_audited(tmp_path: Path, clock: FakeClock) -> None:
    history = History(tmp_path / "h.db")
    history.record_definitions([CHECKOUT])
    history.record_definitions([CHECKOUT])
    changed = slakit.SLO("checkout", objectives=[slakit.Availability("99.9%")], window="1d")
    history.record_definitions([changed])
    conn = sqlite3.connect(tmp_path / "h.db")
    assert conn.execute("SELECT version FROM slo_versions").fetchall() == [(1,), (2,)]
    assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'definition'").fetchone()[0] == 2


def test_violations_are_written_with_their_lifecycle(tmp_path: Path, clock: FakeClock) -> None:
    engine, history = service(tmp_path / "h.db", clock)
    traffic(engine, clock, 600)
    traffic(engine, clock, 120, bad_every=2)  # a fast burn: pages
    opened = [v for v in engine.violations() if v.severity is slakit.Severity.CRITICAL]
    assert opened
    engine.stop()  # delivers the queued events to the history's on_event
    history.flush()
    stored = {v.id: v for v in history.violations("checkout")}
    assert {v.id for v in opened} <= set(stored)
    assert all(stored[v.id].resolved_at is None for v in opened)
    history.close()


def test_a_restart_restores_the_budget_and_open_violations(tmp_path: Path) -> None:
    clock = FakeClock()
    engine, history = service(tmp_path / "h.db", clock)
    traffic(engine, clock, 3_600)
    traffic(engine, clock, 120, bad_every=2)
    history.snapshot_interval = 0  # snapshot at the next tick
    traffic(engine, clock, 1)
    before = engine.snapshot("checkout")
    assert before is not None
    open_before = {(v.slo, v.objective, v.rule): v.id for v in engine.violations()}
    assert open_before
    engine.stop()
    history.flush()  # a crash here loses nothing that was flushed
    history._conn = None  # the process is gone: no orderly close

    restarted = FakeClock(clock.time())  # the new process starts where the old one stopped
    engine2, history2 = service(tmp_path / "h.db", restarted)
    after = engine2.evaluate_now()["checkout"]
    for o_before, o_after in zip(before.objectives, after.objectives, strict=True):
        assert o_before.budget is not None
        assert o_after.budget is not None
        assert o_after.budget.remaining == pytest.approx(o_before.budget.remaining, abs=0.02)
    assert {(v.slo, v.objective, v.rule): v.id for v in engine2.violations()} == open_before
    history2.close()


def test_acknowledging_through_the_database_reaches_the_engine(
    tmp_path: Path, clock: FakeClock
) -> None:
    engine, history = service(tmp_path / "h.db", clock)
    traffic(engine, clock, 300)
    traffic(engine, clock, 120, bad_every=2)
    assert all(v.acknowledged_at is None for v in engine.violations())
    History(tmp_path / "h.db").acknowledge("checkout/availability", by="alice")  # slakit ack
    history.flush()  # the writer thread's next round
    acked = [v for v in engine.violations() if v.objective == "availability"]
    assert acked
    assert all(v.acknowledged_by == "alice" for v in acked)
    history.close()


def test_each_worker_claims_its_own_ring_slot_and_one_holds_a_lease(
    tmp_path: Path, clock: FakeClock
) -> None:
    first = History(tmp_path / "h.db")
    second = History(tmp_path / "h.db")
    second.worker = "other-host:1"
    assert (first._claim_slot(), second._claim_slot()) == (0, 1)
    assert first.holds("notify")
    assert not second.holds("notify")
    assert first.holds("notify")  # renewing is holding
