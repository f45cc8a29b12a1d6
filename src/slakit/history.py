"""
Durable history in SQLite: what reports are made from and what a restart restores.

One :class:`History` per process writes, off the request path, to a database file that
several processes of a service may share (WAL, a busy timeout, retries):

* ``slo_versions``, ``contract_versions`` — each SLO and SLA contract definition, a
  new version whenever it changes (at attach, and when the engine reloads);
* ``measurements`` — per SLO, objective, minute and worker: events and bad events in
  that minute (exact, from the 1 s ring), and the SLI, budget and status at its end;
* ``violations`` and their ``actions`` — the ledger, written with ``synchronous=FULL``,
  each action as it is taken;
* ``audit`` — append-only: definitions, acknowledgements, enforcement actions, restores;
* ``acks`` — acknowledgements from outside (``slakit ack``), applied by every worker;
* ``corrections`` — time ranges excluded after the fact (a bad deploy of the probe,
  a provider's admitted outage), left out of reports and listed in them;
* ``snapshots`` — the coarse rings of each SLO per *ring slot*, every minute;
* ``leases`` — which worker holds which ring slot (so a restored budget is restored
  into exactly one worker, never lost and never doubled).

Writes are queued and committed by a writer thread every ``flush_interval`` in one
``BEGIN IMMEDIATE`` transaction; the connection belongs to the process that opened it
and is reopened after ``fork()``. A crash loses at most one flush interval of rows and
one snapshot interval of ring data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from slakit.clock import SYSTEM
from slakit.evaluate import counted
from slakit.events import (
    Action,
    ActionTaken,
    Event,
    Violation,
    ViolationAcknowledged,
    ViolationOpened,
    ViolationResolved,
)
from slakit.spec import Availability, Latency, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from slakit.engine import Engine
    from slakit.evaluate import Snapshot
    from slakit.sla import Contract
    from slakit.spec import SLO
    from slakit.typing import Clock, Hook

_log = logging.getLogger("slakit.history")

PRUNE_EVERY: Final = 3_600.0
"""Seconds between the writer's retention passes."""

SCHEMA_VERSION: Final = 3
MIGRATIONS: Final[Sequence[str]] = (
    # 0 -> 1
    """
    CREATE TABLE slo_versions (
        slo TEXT NOT NULL, version INTEGER NOT NULL, definition TEXT NOT NULL,
        created REAL NOT NULL, PRIMARY KEY (slo, version));
    CREATE TABLE measurements (
        slo TEXT NOT NULL, objective TEXT NOT NULL, minute INTEGER NOT NULL,
        worker TEXT NOT NULL, events INTEGER NOT NULL, bad INTEGER NOT NULL,
        sli REAL, budget_remaining REAL, status TEXT NOT NULL,
        PRIMARY KEY (slo, objective, minute, worker));
    CREATE TABLE violations (
        id TEXT PRIMARY KEY, slo TEXT NOT NULL, objective TEXT NOT NULL,
        rule TEXT NOT NULL, severity TEXT NOT NULL, opened_at REAL NOT NULL,
        resolved_at REAL, acknowledged_at REAL, acknowledged_by TEXT,
        actual REAL NOT NULL, limit_value REAL NOT NULL, detail TEXT NOT NULL,
        worker TEXT NOT NULL);
    CREATE INDEX violations_by_time ON violations (slo, opened_at);
    CREATE TABLE actions (
        violation TEXT NOT NULL, t REAL NOT NULL, hook TEXT NOT NULL,
        result TEXT NOT NULL, attempt INTEGER NOT NULL,
        PRIMARY KEY (violation, hook, attempt));
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL NOT NULL, kind TEXT NOT NULL,
        subject TEXT NOT NULL, detail TEXT NOT NULL, worker TEXT NOT NULL);
    CREATE TABLE acks (
        id INTEGER PRIMARY KEY AUTOINCREMENT, selector TEXT NOT NULL,
        t REAL NOT NULL, by TEXT);
    CREATE TABLE snapshots (
        slo TEXT NOT NULL, slot INTEGER NOT NULL, t REAL NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (slo, slot));
    CREATE TABLE leases (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL NOT NULL);
    """,
    # 1 -> 2: corrections after the fact
    """
    CREATE TABLE corrections (
        id INTEGER PRIMARY KEY AUTOINCREMENT, slo TEXT NOT NULL, start REAL NOT NULL,
        end REAL NOT NULL, reason TEXT NOT NULL, t REAL NOT NULL, by TEXT);
    """,
    # 2 -> 3: SLA contracts are versioned like SLOs
    """
    CREATE TABLE contract_versions (
        contract TEXT NOT NULL, version INTEGER NOT NULL, definition TEXT NOT NULL,
        created REAL NOT NULL, PRIMARY KEY (contract, version));
    """,
)
"""Schema migrations, oldest first; ``PRAGMA user_version`` records how many ran."""


_NEW_VERSION: Final = """
    INSERT INTO {table} SELECT ?1, coalesce(max(version), 0) + 1, ?2, ?3
    FROM {table} WHERE {key} = ?1
    HAVING coalesce((SELECT definition FROM {table} WHERE {key} = ?1
                     ORDER BY version DESC LIMIT 1), '') <> ?2"""
"""Insert a definition as the next version of its name, unless it is the latest one."""
_NEW_VERSION_AUDIT: Final = """
    INSERT INTO audit (t, kind, subject, detail, worker)
    SELECT ?3, ?4, ?1, '{{"version": ' || max(version) || '}}', ?5
    FROM {table} WHERE {key} = ?1 HAVING changes() > 0"""
"""Audit the version the statement before inserted, if it inserted one."""


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@attrs.frozen
class Measurement:
    """One row of ``measurements``, summed over workers."""

    slo: str
    objective: str
    minute: int
    """Unix time of the minute's start, divided by 60."""
    events: int
    bad: int


class History:
    """
    The SQLite history of one service.

    Args:
        path: the database file (created with its schema when missing).
        clock: wall clock for timestamps (the engine's registry clock by default).
        flush_interval: seconds between batched commits.
        snapshot_interval: seconds between ring snapshots.
        lease: seconds a worker's claim on its ring slot lasts without renewal.
        retention: days of measurements and audit rows kept (``None``: forever).

    Use :meth:`attach` to record an engine, :meth:`close` to flush and stop.

    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = SYSTEM,
        flush_interval: float = 1.0,
        snapshot_interval: float = 60.0,
        lease: float = 120.0,
        retention: float | None = 400,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.flush_interval = flush_interval
        self.snapshot_interval = snapshot_interval
        self.lease = lease
        self.retention = retention
        self._lock = threading.Lock()
        self._queue: deque[tuple[bool, str, tuple[Any, ...]]] = deque()
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._engine: Engine | None = None
        self._last_minute: dict[str, int] = {}
        self._defined: tuple[SLO, ...] = ()
        self._maintenance_seen: set[tuple[str, float]] = set()
        self._last_snapshot = float("-inf")
        self._last_ack = 0
        self.slot: int | None = None
        self.worker = _worker_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restores = False
        self.write_errors = 0
        self.dropped = 0
        """Rows left unwritten at :meth:`close` (the database stayed locked)."""
        self._connect()  # create or migrate the schema now: errors surface here
        _HISTORIES.add(self)

    # -- connection ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Return this process's connection (a forked child opens its own)."""
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            _migrate(conn)
            self._conn, self._pid = conn, os.getpid()
            self.worker = _worker_id()
        return self._conn

    def _forked(self) -> None:
        """
        In a forked child (gunicorn ``--preload``): a connection, a slot and rings of its own.

        The parent's rows, connection and writer stay the parent's. The child claims
        the lowest free ring slot (the parent, alive, keeps its own) and restores that
        slot's snapshot into its stores, which the fork left empty.
        """
        self._conn, self._pid = None, -1
        self._lock = threading.Lock()
        self._queue = deque()
        self._stop = threading.Event()
        self._thread = None
        self._last_minute = {}
        self._last_snapshot = float("-inf")
        self.worker = _worker_id()
        if self._engine is None:
            return
        try:
            self.slot = self._claim_slot()
            if self._restores:
                self._restore(self._engine)
            self._start()
        except sqlite3.Error as exc:  # the child must come up even if the database cannot
            self.write_errors += 1
            _log.error("slakit history: could not take a ring slot after fork: %s", exc)

    # -- wiring ---------------------------------------------------------------------------

    def attach(self, engine: Engine, *, restore: bool = True) -> None:
        """
        Record ``engine``: definitions now, then measurements, violations and snapshots.

        With ``restore`` (the default), first claim a ring slot and load its snapshots
        into the engine's stores, and reopen the violations that were open.
        Call it before the engine starts and before traffic is recorded.
        """
        self._engine = engine
        self._restores = restore
        self.clock = engine.registry.clock
        self._defined = engine.registry.slos()
        self.record_definitions(self._defined)
        self.slot = self._claim_slot()
        if restore:
            self._restore(engine)
        engine.add_publisher(self)
        engine.listen(self.on_event)  # in order, on the tick: the ledger misses nothing
        self._start()

    def record_definitions(
        self, slos: Iterable[SLO] = (), contracts: Iterable[Contract] = ()
    ) -> None:
        """
        Store SLO and contract definitions, each as a new version when it changed.

        Every new version is audited. Queued, written with the next flush; an attached
        history records the engine's SLOs itself, at attach and after each reload.
        """
        now = self.clock.time()
        for table, key, kind, items in (
            ("slo_versions", "slo", "definition", slos),
            ("contract_versions", "contract", "contract", contracts),
        ):
            for item in items:
                self._put(_NEW_VERSION.format(table=table, key=key), (item.name, repr(item), now))
                self._put(
                    _NEW_VERSION_AUDIT.format(table=table, key=key),
                    (item.name, repr(item), now, kind, self.worker),
                )

    # -- leases and ring slots ------------------------------------------------------------

    def _claim_slot(self) -> int:
        """
        Take the lowest ring slot whose lease is free, expired or held by a dead process.

        The lease is renewed at each flush.
        """
        conn = self._connect()
        now = self.clock.time()
        with _transaction(conn):
            slot = 0
            while True:
                name = f"ring-slot-{slot}"
                row = conn.execute("SELECT holder, expires FROM leases WHERE name = ?", (name,))
                found = row.fetchone()
                if found is None or found[1] < now or not _alive(found[0], self.worker):
                    conn.execute(
                        "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                        (name, self.worker, now + self.lease),
                    )
                    return slot
                slot += 1

    def holds(self, name: str) -> bool:
        """
        Take or renew the lease ``name`` (e.g. ``"notify"``); ``True`` if this worker holds it.

        One worker per service sends notifications and scale requests; the others still
        enforce locally. A holder that stops renewing loses the lease after ``lease`` s.
        """
        conn = self._connect()
        now = self.clock.time()
        with _transaction(conn):
            found = conn.execute(
                "SELECT holder, expires FROM leases WHERE name = ?", (name,)
            ).fetchone()
            if found is not None and found[1] >= now and _alive(found[0], self.worker):
                return False
            conn.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                (name, self.worker, now + self.lease),
            )
        return True

    def leader_only(self, hook: Hook, lease: str = "notify") -> Hook:
        """
        Wrap ``hook`` so it acts only in the worker holding ``lease``.

        For notifiers and scalers: one incident seen by N workers pages once and asks
        for capacity once. Breakers and shedders stay local: every worker enforces.
        """
        return _LeaderOnly(self, hook, lease)

    def _restore(self, engine: Engine) -> None:
        conn = self._connect()
        registry = engine.registry
        restored = []
        for slo in registry.slos():
            row = conn.execute(
                "SELECT data, t FROM snapshots WHERE slo = ? AND slot = ?", (slo.name, self.slot)
            ).fetchone()
            if row is not None and registry.store(slo.name).load(bytes(row[0])):
                restored.append({"slo": slo.name, "taken": row[1]})
        open_rows = conn.execute(
            "SELECT id, slo, objective, rule, severity, opened_at, actual, limit_value, detail, "
            "acknowledged_at, acknowledged_by FROM violations "
            "WHERE resolved_at IS NULL AND worker = ?",
            (f"slot-{self.slot}",),
        ).fetchall()
        violations = [_with_actions(conn, _violation(r)) for r in open_rows]
        engine.restore_violations(violations)
        self._last_ack = conn.execute("SELECT coalesce(max(id), 0) FROM acks").fetchone()[0]
        self.audit(
            "restore",
            f"slot-{self.slot}",
            {"rings": restored, "open_violations": [v.id for v in violations]},
        )

    # -- publishing (engine thread) and events (a worker thread) --------------------------

    def publish(self, snapshots: Mapping[str, Snapshot]) -> None:
        """Queue the minutes that ended since the last tick, and a snapshot when due."""
        engine = self._engine
        if engine is None:
            return
        now = self.clock.time()
        slos = engine.registry.slos()
        if slos != self._defined:  # reloaded: the new definitions and the change
            self._defined = slos
            self.record_definitions(slos)
        minute = int(now // 60)
        for name, snap in snapshots.items():
            last = self._last_minute.get(name)
            if last is None:
                self._last_minute[name] = minute
                continue
            if minute > last:
                self._measure(engine, name, snap, max(last, minute - 60), minute)
                self._last_minute[name] = minute
        self._audit_maintenance(engine, snapshots, now)
        if now - self._last_snapshot >= self.snapshot_interval:
            self._last_snapshot = now
            for name in snapshots:
                data = engine.registry.store(name).dump()
                self._put(
                    "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?)",
                    (name, self.slot, now, data),
                )

    def _audit_maintenance(self, engine: Engine, names: Iterable[str], now: float) -> None:
        """Put the maintenance windows that ended into the audit trail, once each."""
        for name in names:
            for begin, end in engine.registry.store(name).exclusions():
                if end <= now and (name, begin) not in self._maintenance_seen:
                    self._maintenance_seen.add((name, begin))
                    self.audit("maintenance", name, {"start": begin, "end": end})

    def _measure(self, engine: Engine, name: str, snap: Snapshot, first: int, end: int) -> None:
        slo = engine.registry.slo(name)
        store = engine.registry.store(name)
        minutes = range(first, end)
        view = store.read([(m * 60.0, m * 60.0 + 59.999) for m in minutes])
        for o in slo.objectives:
            if not isinstance(o, Availability | Latency):
                continue
            judge = counted(slo, o)
            status = snap.objective(o.key)
            budget = status.budget.remaining if status.budget is not None else None
            for m, counts in zip(minutes, view.spans, strict=True):
                events, bad = judge(counts)
                self._put(
                    "INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        o.key,
                        m,
                        f"slot-{self.slot}",
                        events,
                        bad,
                        status.actual,
                        budget,
                        status.status.value,
                    ),
                )

    def on_event(self, event: Event) -> None:
        """Write violations to the ledger as they open, are acted on, acknowledged, resolve."""
        if isinstance(event, ActionTaken):
            a = event.action
            self._put(
                "INSERT OR REPLACE INTO actions VALUES (?, ?, ?, ?, ?)",
                (event.violation.id, a.time, a.hook, a.result, a.attempt),
                ledger=True,
            )
            self.audit("action", event.violation.id, {"hook": a.hook, "result": a.result})
        elif isinstance(event, ViolationOpened | ViolationResolved | ViolationAcknowledged):
            v = event.violation
            self._put(
                "INSERT OR REPLACE INTO violations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    v.id,
                    v.slo,
                    v.objective,
                    v.rule,
                    v.severity.value,
                    v.opened_at,
                    v.resolved_at,
                    v.acknowledged_at,
                    v.acknowledged_by,
                    v.actual,
                    v.limit,
                    v.detail,
                    f"slot-{self.slot}",
                ),
                ledger=True,
            )
            if isinstance(event, ViolationAcknowledged):
                self.audit("acknowledge", v.id, {"by": v.acknowledged_by})

    def backfill(self, slo: str, objective: str, rows: Iterable[tuple[int, int, int]]) -> int:
        """
        Write past measurements, ``(minute, events, bad)`` each, for an SLO's objective.

        For imports from another system, and simulations; rows already present for the
        same minute and worker are replaced. Returns the rows written.
        """
        conn = self._connect()
        worker = f"slot-{self.slot if self.slot is not None else 0}"
        data = [(slo, objective, m, worker, e, b, None, None, "") for m, e, b in rows]
        with _transaction(conn):
            conn.executemany(
                "INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", data
            )
        return len(data)

    def acknowledge(self, selector: str, by: str | None = None) -> None:
        """
        Acknowledge from anywhere: a violation id, or ``slo[/objective[/rule]]``.

        Every worker attached to this database applies it at its next flush (1 s).
        """
        conn = self._connect()
        now = time.time()
        with _transaction(conn):
            conn.execute("INSERT INTO acks (selector, t, by) VALUES (?, ?, ?)", (selector, now, by))
            self._audit(conn, now, "acknowledge-request", selector, {"by": by})

    def _apply_acks(self, engine: Engine) -> None:
        rows = (
            self._connect()
            .execute(
                "SELECT id, selector, by FROM acks WHERE id > ? ORDER BY id", (self._last_ack,)
            )
            .fetchall()
        )
        for ident, selector, by in rows:
            self._last_ack = ident
            for v in engine.violations():
                if v.acknowledged_at is None and _selects(selector, v):
                    engine.acknowledge(v.id, by=by)

    def audit(self, kind: str, subject: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append one row to the audit trail (queued, written with the next flush)."""
        self._put(
            "INSERT INTO audit (t, kind, subject, detail, worker) VALUES (?, ?, ?, ?, ?)",
            (self.clock.time(), kind, subject, json.dumps(detail or {}), self.worker),
        )

    def _audit(
        self, conn: sqlite3.Connection, t: float, kind: str, subject: str, detail: Mapping[str, Any]
    ) -> None:
        conn.execute(
            "INSERT INTO audit (t, kind, subject, detail, worker) VALUES (?, ?, ?, ?, ?)",
            (t, kind, subject, json.dumps(detail), self.worker),
        )

    # -- the writer -------------------------------------------------------------------------

    def _put(self, sql: str, params: tuple[Any, ...], *, ledger: bool = False) -> None:
        self._queue.append((ledger, sql, params))

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="slakit-history", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        pruned = float("-inf")  # the first round prunes: a restart finds the file in bounds
        while not self._stop.wait(self.flush_interval):
            self.flush()
            if time.monotonic() - pruned >= PRUNE_EVERY:
                pruned = time.monotonic()
                try:
                    self.prune()
                except sqlite3.Error:  # locked: the next round will do it
                    self.write_errors += 1

    def flush(self) -> int:
        """
        Commit everything queued now, in one transaction; return the rows written.

        Then apply acknowledgements other processes wrote (off the engine's tick).
        """
        written = self._write()
        if self._engine is not None:
            self._apply_acks(self._engine)
        return written

    def _write(self) -> int:
        with self._lock:
            batch = []
            while self._queue:
                batch.append(self._queue.popleft())
            if not batch:
                self._renew()
                return 0
            try:
                conn = self._connect()
                ledger = any(item[0] for item in batch)
                if ledger:  # the violation ledger survives a power cut
                    conn.execute("PRAGMA synchronous=FULL")
                with _transaction(conn):
                    for _, sql, params in batch:
                        conn.execute(sql, params)
                if ledger:
                    conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error:
                self.write_errors += 1
                self._queue.extendleft(reversed(batch))  # kept for the next flush
                _log.exception("slakit history: write failed; %d rows kept", len(batch))
                return 0
            self._renew()
        return len(batch)

    def _renew(self) -> None:
        if self.slot is None:
            return
        try:
            self._connect().execute(
                "UPDATE leases SET expires = ? WHERE name = ? AND holder = ?",
                (self.clock.time() + self.lease, f"ring-slot-{self.slot}", self.worker),
            )
        except sqlite3.Error:  # locked for longer than the busy timeout: try next flush
            self.write_errors += 1

    def prune(self) -> int:
        """Delete measurements and audit rows older than ``retention`` days."""
        if self.retention is None:
            return 0
        cutoff = self.clock.time() - self.retention * 86_400
        conn = self._connect()
        with _transaction(conn):
            gone = conn.execute("DELETE FROM measurements WHERE minute < ?", (int(cutoff // 60),))
            n = gone.rowcount
            n += conn.execute("DELETE FROM audit WHERE t < ?", (cutoff,)).rowcount
        return n

    def close(self, timeout: float = 10.0) -> None:
        """
        Stop the writer, flush what is queued, give up the ring slot and close.

        Returns within about ``timeout`` seconds even if another process holds the
        database locked; rows that could not be written are counted in :attr:`dropped`.
        """
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._conn is not None and self._pid == os.getpid():
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            self._conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        self._write()
        self.dropped = len(self._queue)
        self._queue.clear()
        if self._conn is not None and self._pid == os.getpid():
            if self.slot is not None:
                with contextlib.suppress(sqlite3.Error):  # the lease expires by itself
                    self._conn.execute(
                        "DELETE FROM leases WHERE name = ? AND holder = ?",
                        (f"ring-slot-{self.slot}", self.worker),
                    )
            self._conn.close()
        self._conn = None

    # -- reading (reports, the CLI) -----------------------------------------------------------

    def correct(
        self, slo: str, start: float, end: float, reason: str, by: str | None = None
    ) -> None:
        """
        Exclude ``[start, end)`` of ``slo`` after the fact, with a reason (and audit it).

        Reports leave the minutes of a correction out and list it; the rings (and the
        live budget) are not rewritten.
        """
        if end <= start:
            raise ValueError(f"a correction must end after it starts ({start} >= {end})")
        conn = self._connect()
        now = time.time()
        with _transaction(conn):
            conn.execute(
                "INSERT INTO corrections (slo, start, end, reason, t, by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (slo, start, end, reason, now, by),
            )
            self._audit(
                conn, now, "correction", slo, {"start": start, "end": end, "reason": reason}
            )

    def maintenance(self, slo: str, start: float, end: float) -> list[tuple[float, float]]:
        """Maintenance windows of ``slo`` that overlap ``[start, end)`` (from the audit)."""
        rows = self._connect().execute(
            "SELECT DISTINCT detail FROM audit WHERE kind = 'maintenance' AND subject = ?",
            (slo,),
        )
        spans = [(d["start"], d["end"]) for d in (json.loads(r[0]) for r in rows.fetchall())]
        return sorted((b, e) for b, e in spans if b < end and e > start)

    def corrections(self, slo: str, start: float, end: float) -> list[tuple[float, float, str]]:
        """Corrections of ``slo`` overlapping ``[start, end)``: ``(start, end, reason)``."""
        rows = self._connect().execute(
            "SELECT start, end, reason FROM corrections WHERE slo = ? AND start < ? AND end > ? "
            "ORDER BY start",
            (slo, end, start),
        )
        return [(r[0], r[1], r[2]) for r in rows.fetchall()]

    def measurements(self, slo: str, start: float, end: float) -> list[Measurement]:
        """Per objective and minute in ``[start, end)``, summed over workers, corrections out."""
        rows = (
            self._connect()
            .execute(
                "SELECT slo, objective, minute, sum(events), sum(bad) FROM measurements m "
                "WHERE slo = ? AND minute >= ? AND minute < ? AND NOT EXISTS ("
                "  SELECT 1 FROM corrections c WHERE c.slo = m.slo"
                "  AND c.start <= m.minute * 60 AND m.minute * 60 < c.end) "
                "GROUP BY slo, objective, minute ORDER BY minute",
                (slo, int(start // 60), int(end // 60)),
            )
            .fetchall()
        )
        return [Measurement(*r) for r in rows]

    def violations(
        self, slo: str | None = None, start: float = 0, end: float = 2**62
    ) -> list[Violation]:
        """Violations that overlap ``[start, end)``, with their actions, oldest first."""
        conn = self._connect()
        rows = conn.execute(
            "SELECT id, slo, objective, rule, severity, opened_at, actual, limit_value, detail, "
            "acknowledged_at, acknowledged_by, resolved_at FROM violations "
            "WHERE (? IS NULL OR slo = ?) AND opened_at < ? "
            "AND (resolved_at IS NULL OR resolved_at >= ?) ORDER BY opened_at",
            (slo, slo, end, start),
        ).fetchall()
        return [_with_actions(conn, attrs.evolve(_violation(r), resolved_at=r[11])) for r in rows]

    def slos(self) -> list[str]:
        """Names of the SLOs with a stored definition."""
        rows = self._connect().execute("SELECT DISTINCT slo FROM slo_versions ORDER BY slo")
        return [r[0] for r in rows.fetchall()]


class _LeaderOnly:
    """A hook that forwards events only while its history holds a lease."""

    def __init__(self, history: History, hook: Hook, lease: str) -> None:
        self.history = history
        self.hook = hook
        self.lease = lease

    def on_event(self, event: Event) -> None:
        if self.history.holds(self.lease):
            self.hook.on_event(event)

    def __repr__(self) -> str:
        return f"{self.hook!r} (leader only)"


def _violation(r: Sequence[Any]) -> Violation:
    return Violation(
        id=r[0],
        slo=r[1],
        objective=r[2],
        rule=r[3],
        severity=Severity(r[4]),
        opened_at=r[5],
        actual=r[6],
        limit=r[7],
        detail=r[8],
        acknowledged_at=r[9],
        acknowledged_by=r[10],
    )


def _with_actions(conn: sqlite3.Connection, v: Violation) -> Violation:
    rows = conn.execute(
        "SELECT t, hook, result, attempt FROM actions WHERE violation = ? ORDER BY t", (v.id,)
    ).fetchall()
    return attrs.evolve(v, actions=tuple(Action(*r) for r in rows))


_HISTORIES: weakref.WeakSet[History] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for history in list(_HISTORIES):
        history._forked()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)  # after the stores reset


def _alive(holder: str, me: str) -> bool:
    """Whether a lease holder other than ``me`` may still be running (``host:pid``)."""
    if holder == me:
        return False
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: trust the lease's expiry
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False  # it died (a crash, SIGKILL): its lease is free now
    except PermissionError:
        return True
    return True


def _selects(selector: str, v: Violation) -> bool:
    if selector == v.id:
        return True
    parts = selector.split("/")
    return [v.slo, v.objective, v.rule][: len(parts)] == parts


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, one migration per transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        msg = f"the database has schema {version}, newer than this slakit's {SCHEMA_VERSION}"
        raise sqlite3.DatabaseError(msg)
    for i in range(version, SCHEMA_VERSION):
        with _transaction(conn):
            if conn.execute("PRAGMA user_version").fetchone()[0] != i:
                continue  # another process migrated it meanwhile
            for statement in MIGRATIONS[i].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {i + 1}")


class _transaction:  # noqa: N801 - used like a function: with _transaction(conn)
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
