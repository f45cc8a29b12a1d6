"""SQLite history: exact measurements, the violation ledger, restore after a restart."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import pytest

import slakit
from slakit.history import SCHEMA_VERSION, History
from slakit.remediate import CircuitBreaker, Policy
from slakit.report import build, to_markdown
from slakit.sla import Contract
from slakit.testing import FakeClock
from tests.servers import free_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

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
    acme = Contract(name="acme", customer="ACME", slo="checkout", weights={"availability": 1})
    history.record_definitions([CHECKOUT], [acme])
    history.record_definitions([CHECKOUT], [acme])  # unchanged: no new version
    changed = slakit.SLO("checkout", objectives=[slakit.Availability("99.9%")], window="1d")
    history.record_definitions([changed], [attrs.evolve(acme, monthly_fee=5_000)])
    history.flush()
    conn = sqlite3.connect(tmp_path / "h.db")
    assert conn.execute("SELECT version FROM slo_versions").fetchall() == [(1,), (2,)]
    versions = conn.execute("SELECT version, definition FROM contract_versions").fetchall()
    assert [(v, "monthly_fee=5000" in d) for v, d in versions] == [(1, False), (2, True)]
    audit = conn.execute("SELECT kind, subject, detail FROM audit ORDER BY id").fetchall()
    assert [(k, s, json.loads(d)["version"]) for k, s, d in audit] == [
        ("definition", "checkout", 1),
        ("contract", "acme", 1),
        ("definition", "checkout", 2),
        ("contract", "acme", 2),
    ]


def test_a_reload_is_a_new_definition_in_the_history(tmp_path: Path, clock: FakeClock) -> None:
    engine, history = service(tmp_path / "h.db", clock)
    engine.evaluate_now()
    engine.reload([attrs.evolve(CHECKOUT, description="tighter")])
    engine.evaluate_now()
    engine.evaluate_now()  # nothing changed since: no third version
    history.flush()
    conn = sqlite3.connect(tmp_path / "h.db")
    rows = conn.execute("SELECT version, definition FROM slo_versions ORDER BY version").fetchall()
    assert [(v, "tighter" in d) for v, d in rows] == [(1, False), (2, True)]
    assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'definition'").fetchone()[0] == 2
    history.close()


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


def test_actions_reach_the_ledger_as_they_are_taken_and_survive_a_restart(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A breaker opened for a page is in the ledger and the audit while the page is open."""
    engine, history = service(tmp_path / "h.db", clock)
    breaker = CircuitBreaker("payments", clock=clock)
    engine.enforce("checkout", Policy(critical=[breaker]))
    traffic(engine, clock, 600)
    traffic(engine, clock, 120, bad_every=2)  # pages; the policy opens the breaker
    assert wait_for(lambda: any(v.actions for v in engine.violations()))
    engine.evaluate_now()  # the next tick hands the action to the history
    history.flush()
    acted = {v.id: v.actions for v in engine.violations() if v.actions}
    ledger = history.violations("checkout")
    assert {v.id: v.actions for v in ledger if v.actions} == acted
    assert all(v.resolved_at is None for v in ledger)  # written before any resolution
    conn = sqlite3.connect(tmp_path / "h.db")
    audited = conn.execute("SELECT subject, detail FROM audit WHERE kind = 'action'").fetchall()
    assert sorted(s for s, _ in audited) == sorted(
        vid for vid, actions in acted.items() for _ in actions
    )
    assert all(json.loads(d)["hook"] == "CircuitBreaker:payments" for _, d in audited)
    engine.stop()
    history.flush()
    history._conn = None  # the process is gone: no orderly close

    engine2, history2 = service(tmp_path / "h.db", FakeClock(clock.time()))
    assert {v.id: v.actions for v in engine2.violations() if v.actions} == acted
    history2.close()


def test_retention_prunes_measurements_and_audit_from_the_first_round_and_keeps_the_ledger(
    tmp_path: Path, clock: FakeClock
) -> None:
    now = clock.time()
    history = History(tmp_path / "h.db", retention=7, flush_interval=0.01)
    minute = int(now // 60)
    history.backfill("checkout", "availability", [(minute - 10 * 1_440, 5, 1), (minute - 60, 5, 0)])
    conn = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    conn.execute("INSERT INTO audit VALUES (NULL, ?, 'old', 'x', '{}', 'w')", (now - 8 * 86_400,))
    conn.execute(
        "INSERT INTO violations VALUES ('v1', 'checkout', 'availability', 'page', 'critical', "
        "?, ?, NULL, NULL, 1.0, 1.0, '', 'slot-0')",
        (now - 30 * 86_400, now - 30 * 86_400 + 60),
    )
    registry = slakit.Registry(clock)
    registry.register(CHECKOUT)
    history.attach(slakit.Engine(registry))  # starts the writer: its first round prunes

    def minutes() -> list[int]:
        return [r[0] for r in conn.execute("SELECT minute FROM measurements").fetchall()]

    assert wait_for(lambda: minutes() == [minute - 60])
    assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'old'").fetchone()[0] == 0
    assert [v.id for v in history.violations("checkout")] == ["v1"]  # the ledger is kept
    history.close()


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


START = 1_700_000_000.0


def spawn(mode: str, db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_child", mode, str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.heavy
def test_sigkill_mid_run_then_restart_restores_what_was_snapshotted(tmp_path: Path) -> None:
    """Killed after its 35th snapshot (in the outage), a restart restores that snapshot."""
    db = tmp_path / "h.db"
    child = spawn("service", db)
    assert child.stdout is not None
    lines = []
    for line in child.stdout:  # one line per snapshot (60 simulated seconds)
        lines.append(json.loads(line))
        if len(lines) == 35:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    child.stdout.close()
    last = lines[-1]
    assert last["open"]  # the outage has paged

    clock = FakeClock(last["t"])  # the new process starts at the snapshot's time
    engine, history = service(db, clock)
    restored = sorted(f"{v.objective}/{v.rule}" for v in engine.violations())
    assert restored == last["open"]
    snap = engine.evaluate_now()["checkout"]
    for key, budget in last["budget"].items():
        got = snap.objective(key).budget
        assert got is not None
        assert got.remaining == pytest.approx(budget, abs=1e-9), key  # snapshots hold it all
    history.close()


@pytest.mark.heavy
def test_kill_9_at_random_points_never_corrupts_or_loses_a_committed_violation(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    rng = random.Random(7)
    committed: set[str] = set()
    for _ in range(50):
        child = spawn("ledger", db)
        assert child.stdout is not None
        for _ in range(rng.randrange(1, 40)):  # let it commit a random number of batches
            line = child.stdout.readline()
            if not line:
                break
            committed.update(line.split())
        child.send_signal(signal.SIGKILL)  # mid-write, mid-commit or idle: wherever it is
        child.wait(30)
        child.stdout.close()
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT id FROM violations")}
        conn.close()
        assert committed <= stored
    assert len(committed) > 500


def test_only_the_lease_holder_notifies(tmp_path: Path) -> None:
    calls: list[str] = []

    class Pager:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_event(self, event: object) -> None:
            calls.append(self.name)

    first, second = History(tmp_path / "h.db"), History(tmp_path / "h.db")
    second.worker = "other-host:1"
    hooks = [first.leader_only(Pager("first")), second.leader_only(Pager("second"))]
    for _ in range(3):  # the same incident, seen by both workers
        for hook in hooks:
            hook.on_event(object())
    assert calls == ["first"] * 3
    assert "leader only" in repr(hooks[0])


@pytest.mark.heavy
def test_eight_writers_and_a_lock_held_for_two_seconds(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "shared.db"
    History(db)  # schema first
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    children = [spawn("writer", db) for _ in range(8)]
    # meanwhile, recording with a history attached only queues: it never waits for the lock
    registry = slakit.Registry(clock)
    engine = slakit.Engine(registry)
    registry.register(CHECKOUT)
    history = History(db, flush_interval=3600)
    store = registry.store("checkout")
    deadline = time.monotonic() + 1.0  # a watchdog well under the 2 s the lock is held
    for i in range(10_000):
        store.record(0.01)
        history.audit("recorded", str(i))
    assert time.monotonic() < deadline, "recording waited for the database"
    threading.Event().wait(2.0)  # the lock holder's 2 s
    blocker.execute("COMMIT")
    blocker.close()
    reports = []
    for child in children:
        assert child.stdout is not None
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        reports.append(json.loads(out))
    assert reports == [{"write_errors": 0}] * 8  # no "database is locked" reached a caller
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM audit WHERE kind = 'load'").fetchone()[0] == 80_000
    conn.close()
    history._queue.clear()
    engine.stop()


@pytest.mark.heavy
def test_shutdown_is_bounded_with_a_hung_hook_a_dead_webhook_and_a_locked_database(
    tmp_path: Path,
) -> None:
    """stop(1.5) + close(1.5) return within 3 s + 1, and the interpreter exits."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tests.shutdown_child", str(tmp_path / "h.db"), str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # a watchdog: a thread left behind would keep the process alive
        check=False,
    )
    assert done.returncode == 0, done.stderr
    took, dropped = done.stdout.split()
    assert float(took) <= 3 + 1
    assert int(dropped) >= 0
    assert time.monotonic() - began < 45


def _figures(out: str) -> list[dict[str, int]]:
    return sorted((json.loads(line) for line in out.splitlines()), key=lambda d: d["slot"])


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tests.workers_child", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.heavy
def test_workers_started_on_their_own_restore_one_slot_each(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    History(db)
    first = [spawn_worker(db, "run", n) for n in (300, 500)]  # side by side
    before = _figures("".join(p.communicate(timeout=120)[0] for p in first))
    assert {d["slot"] for d in before} == {0, 1}
    assert sorted(d["events"] for d in before) == [300, 500]
    for marker in tmp_path.glob("h.db.up.*"):
        marker.unlink()
    again = [spawn_worker(db, "restart", 0) for _ in range(2)]
    after = _figures("".join(p.communicate(timeout=120)[0] for p in again))
    assert after == before  # each slot restored once: nothing lost, nothing doubled


@pytest.mark.heavy
def test_preloaded_workers_restore_one_slot_each(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    before = _figures(_run("preload", db, "run"))
    assert len({d["slot"] for d in before}) == 2
    assert 0 not in {d["slot"] for d in before}  # the parent holds slot 0 while alive
    assert sorted(d["events"] for d in before) == [300, 500]
    for marker in tmp_path.glob("h.db.up.*"):
        marker.unlink()
    after = _figures(_run("preload", db, "restart"))
    assert after == before


def spawn_worker(db: str, phase: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers_child", "worker", db, phase, str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_maintenance_windows_go_to_the_history_and_the_report(
    tmp_path: Path, clock: FakeClock
) -> None:
    engine, history = service(tmp_path / "h.db", clock)
    traffic(engine, clock, 60)
    began = clock.time()
    with slakit.maintenance("checkout", registry=engine.registry):
        traffic(engine, clock, 120, bad_every=2)  # planned: does not count
    ended = clock.time()
    traffic(engine, clock, 60)
    history.flush()
    assert history.maintenance("checkout", began - 10, ended + 10) == [(began, ended)]
    report = build(history, [CHECKOUT], began - 600, clock.time() + 60)
    assert report.maintenance == (("checkout", began, ended),)
    assert "Maintenance windows" in to_markdown(report)
    (availability, _) = report.objectives
    assert availability.bad == 0  # the failures inside the window were ignored
    history.close()
