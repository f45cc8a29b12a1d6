"""
The engine: a background loop that consolidates, evaluates and emits events.

Each tick (default every second) it consolidates every store of its registry,
evaluates every SLO (:mod:`slakit.evaluate`), opens and resolves violations by diffing
against the previous snapshot, and emits frozen events. Subscribers run on worker
threads of their own, each with a bounded queue and a timeout: a subscriber that
raises is logged and counted; one that hangs is abandoned (counted, its worker
replaced) and never delays recording or the next tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
import uuid
import weakref
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import attrs

from slakit import evaluate as ev
from slakit import sketch
from slakit.dispatch import HookStats, Worker
from slakit.events import (
    Action,
    ActionTaken,
    BudgetExhausted,
    Event,
    StatusChanged,
    Violation,
    ViolationAcknowledged,
    ViolationOpened,
    ViolationResolved,
)
from slakit.registry import Registry, default_registry
from slakit.remediate.policy import Enforcer, Policy
from slakit.spec import SLO, Percentile, Status, Threshold, Uptime, Window, to_window
from slakit.typing import Hook

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import TracebackType

    from slakit.maintenance import MaintenanceWindow
    from slakit.typing import Publisher, Subscriber

_log = logging.getLogger("slakit.engine")


class _SliceState:
    """Judged timeslices of one objective: the last judged slice and the bad ones."""

    __slots__ = ("bad", "next")

    def __init__(self) -> None:
        self.next: int | None = None  # index of the first slice not yet judged
        self.bad: deque[int] = deque()


def evaluate_slo(
    registry: Registry,
    slo: SLO,
    previous: ev.Snapshot | None,
    slice_state: dict[str, _SliceState] | None,
    values: Mapping[str, float | None] | None = None,
) -> ev.Snapshot:
    """Consolidate ``slo``'s store, read what :func:`~slakit.evaluate.plan` asks, evaluate."""
    store = registry.store(slo.name)
    store.consolidate()
    now = registry.clock.time()
    the_plan = ev.plan(slo, now)
    labels = list(the_plan.spans)
    view = store.read([the_plan.spans[label] for label in labels])
    counts = dict(zip(labels, view.spans, strict=True))
    start, end = the_plan.spans["slo"]
    histogram = store.histogram(start, end)
    state = slice_state if slice_state is not None else {}
    bad_slices = {}
    for o in slo.objectives:
        if isinstance(o, Uptime | Percentile) and o.slice is not None:
            st = state.setdefault(o.key, _SliceState())
            bad_slices[o.key] = _judge(registry, slo, o, st, start, now)
    inputs = ev.Inputs(
        counts=counts,
        lifetime=view.lifetime,
        lifetime_histogram=view.lifetime_histogram,
        histogram=histogram,
        bad_slices=bad_slices,
        values=dict(values or {}),
        age=now - registry.created(slo.name),
    )
    return ev.evaluate(slo, the_plan, inputs, previous)


def _judge(
    registry: Registry, slo: SLO, o: Uptime | Percentile, st: _SliceState, start: float, now: float
) -> int:
    """Judge the slices closed since last time; return bad slices inside the window."""
    assert o.slice is not None
    size = o.slice
    store = registry.store(slo.name)
    first = int(max(start, registry.created(slo.name)) // size)
    if st.next is None or st.next < first:
        st.next = first
    closed = int(now // size)  # slices before this index are over
    for index in range(st.next, closed):
        s0 = index * size
        s1 = s0 + size - 1  # the slots of the slice, inclusive
        if isinstance(o, Uptime):
            c = store.read([(s0, s1)]).spans[0]
            bad = c.total > 0 and c.bad / c.total > o.max_error_ratio
        else:
            value = sketch.quantile(store.histogram(s0, s1), o.q)
            bad = value is not None and value > o.threshold
        if bad:
            st.bad.append(index)
    st.next = max(st.next, closed)
    window_first = int(start // size) + (1 if start % size else 0)
    while st.bad and st.bad[0] < window_first:
        st.bad.popleft()
    return len(st.bad)


class Engine:
    """
    Evaluates every SLO of a registry on a background thread and emits events.

    Args:
        registry: the SLOs to evaluate (default: the process-wide registry).
        interval: seconds between ticks.
        hook_timeout: seconds a subscriber may take per event before it is abandoned.
        max_queue: events a slow subscriber may fall behind before new ones are dropped.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    :meth:`evaluate_now` runs one tick synchronously (tests, CLIs).

    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        interval: float = 1.0,
        hook_timeout: float = 5.0,
        max_queue: int = 1_000,
    ) -> None:
        if interval <= 0 or hook_timeout <= 0 or max_queue <= 0:
            raise ValueError("interval, hook_timeout and max_queue must be > 0")
        self.registry = registry if registry is not None else default_registry()
        self.interval = interval
        self.hook_timeout = hook_timeout
        self.max_queue = max_queue
        self._tick_lock = threading.Lock()
        self._lock = threading.Lock()
        self._workers: list[Worker] = []
        self._subscribers: list[tuple[Subscriber, Worker]] = []
        self._listeners: list[Callable[[Event], Any]] = []
        self._publishers: list[Publisher] = []
        self._windows: list[MaintenanceWindow] = []
        self._excluded: set[tuple[str, str, float]] = set()
        self.publish_errors = 0
        self._vlock = threading.Lock()  # violations: written by the tick and by hook workers
        self._open: dict[tuple[str, str, str], Violation] = {}
        self._closed: deque[Violation] = deque(maxlen=1_000)
        self._taken: deque[ActionTaken] = deque()  # from hook workers, emitted on the tick
        self._slices: dict[str, dict[str, _SliceState]] = {}
        self._values: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tick_errors = 0
        self.restarts = 0
        """Times the evaluation loop died and was restarted (see :meth:`start`)."""
        self._enforcer = Enforcer(
            self.registry.clock, self._attach, self._is_open, hook_timeout, max_queue
        )
        _ENGINES.add(self)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Start the background loop (a daemon thread). Starting twice is a no-op."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, name="slakit-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the loop and the subscriber workers. Safe to call twice."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        taken = self._taken  # actions since the last tick: to the ledger before we go
        self._emit([taken.popleft() for _ in range(len(taken))])
        with self._lock:
            workers = list(self._workers)
        for w in workers:
            w.stop()

    @property
    def running(self) -> bool:
        """True while the background loop runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _loop(self) -> None:
        """Tick until stopped; if the loop itself dies, restart it with backoff."""
        stop = self._stop
        backoff = self.interval
        while not stop.is_set():
            try:
                while not stop.wait(self.interval):
                    self._tick()
                    backoff = self.interval
            except BaseException:  # a supervisor: nothing may end the loop
                self.restarts += 1
                _log.exception("slakit engine loop died; restarting in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)

    def _tick(self) -> None:
        try:
            self.evaluate_now()
        except Exception:
            self.tick_errors += 1
            _log.exception("slakit engine tick failed")

    async def run(self) -> None:
        """
        Tick on the running event loop instead of a thread, until cancelled.

        For asyncio services that want no extra thread: ``asyncio.create_task(engine.run())``.
        A tick is short (about 0.1 ms per SLO); subscribers still run on their workers.
        """
        while True:
            await asyncio.sleep(self.interval)
            self._tick()

    def _after_fork(self) -> None:
        was_running = self._thread is not None
        self._thread = None
        self._tick_lock = threading.Lock()
        self._lock = threading.Lock()
        self._vlock = threading.Lock()
        for w in (*self._workers, *self._enforcer.workers()):
            w.after_fork()
        if was_running:
            self.start()

    # -- subscribers -----------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber, *, timeout: float | None = None) -> None:
        """Deliver every event to ``subscriber`` (a hook or a function) off the tick thread."""
        call = subscriber.on_event if isinstance(subscriber, Hook) else subscriber
        worker = Worker(repr(subscriber), call, timeout or self.hook_timeout, self.max_queue)
        with self._lock:
            self._workers.append(worker)
            self._subscribers.append((subscriber, worker))

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop delivering events to ``subscriber``."""
        with self._lock:  # == as well as is: each `obj.method` is a new bound method
            gone = [w for s, w in self._subscribers if s == subscriber]
            self._subscribers = [(s, w) for s, w in self._subscribers if w not in gone]
            self._workers = [w for w in self._workers if w not in gone]
        for w in gone:
            w.stop()

    def hook_stats(self) -> dict[str, HookStats]:
        """Return delivery statistics per subscriber and enforcement hook (by name)."""
        with self._lock:
            workers = list(self._workers)
        return {w.name: w.stats for w in (*workers, *self._enforcer.workers())}

    def enforce(self, slo: str | SLO, policy: Policy) -> None:
        """
        Act on ``slo``'s violations as ``policy`` says: hooks by severity, with limits.

        Each action (or failure, timeout, dry run, cooldown skip) is attached to its
        violation; see :class:`~slakit.remediate.policy.Policy`.
        """
        self._enforcer.add(slo if isinstance(slo, str) else slo.name, policy)

    def _attach(self, violation_id: str, action: Action) -> None:
        with self._vlock:
            for key, v in self._open.items():
                if v.id == violation_id:
                    updated = self._open[key] = attrs.evolve(v, actions=(*v.actions, action))
                    break
            else:
                for i, v in enumerate(self._closed):
                    if v.id == violation_id:
                        updated = self._closed[i] = attrs.evolve(v, actions=(*v.actions, action))
                        break
                else:
                    return
        self._taken.append(ActionTaken(action.time, updated, action))

    def _is_open(self, violation_id: str) -> bool:
        with self._vlock:
            return any(v.id == violation_id for v in self._open.values())

    def _emit(self, events: list[Event]) -> None:
        with self._lock:
            subscribers = [w for _, w in self._subscribers]
            listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:  # a listener's fault must not stop evaluation
                    _log.exception("slakit: listener %r failed", listener)
            for w in subscribers:
                w.put(event)
            self._enforcer.handle(event)

    # -- evaluation ------------------------------------------------------------------

    def set_value(self, name: str, value: float) -> None:
        """Set the current value of the :class:`~slakit.spec.Threshold` called ``name``."""
        self._values[name] = float(value)

    def evaluate_now(self) -> dict[str, ev.Snapshot]:
        """Run one tick synchronously and return the new snapshot of every SLO."""
        with self._tick_lock:
            with self._lock:
                workers = list(self._workers)
            for w in (*workers, *self._enforcer.workers()):
                w.check()
            now = self.registry.clock.time()
            self._enforcer.tick(now)
            if self._windows:
                self._apply_windows(now)
            out: dict[str, ev.Snapshot] = {}
            taken = self._taken
            events: list[Event] = [taken.popleft() for _ in range(len(taken))]  # hooks' actions
            for slo in self.registry.slos():
                previous = self.registry.latest(slo.name)
                snap = evaluate_slo(
                    self.registry,
                    slo,
                    previous,
                    self._slices.setdefault(slo.name, {}),
                    self._sample(slo),
                )
                self.registry.publish(snap)
                out[slo.name] = snap
                events.extend(self._diff(slo, previous, snap))
            self._emit(events)
            for publisher in list(self._publishers):
                try:
                    publisher.publish(out)
                except Exception:  # an exporter's fault must not stop evaluation
                    self.publish_errors += 1
                    _log.exception("slakit: publisher %r failed", publisher)
        return out

    def reload(self, slos: Iterable[SLO]) -> list[str]:
        """
        Apply new SLO definitions (``config.slos``) without losing rings.

        Targets, objectives, alerting and windows that fit the rings may change.

        Violations of SLOs or rules that no longer exist resolve at the next tick.
        Returns the names whose definition changed; see :meth:`Registry.replace`.
        """
        new = list(slos)
        now = self.registry.clock.time()
        with self._tick_lock:
            changed = self.registry.replace(new)
            kept = {s.name for s in new}
            gone: list[Event] = []
            with self._vlock:
                for key in [k for k in self._open if k[0] not in kept]:
                    done = attrs.evolve(self._open.pop(key), resolved_at=now)
                    self._closed.append(done)
                    gone.append(ViolationResolved(now, done))
            for name in changed:
                self._slices.pop(name, None)
            self._emit(gone)
        return changed

    def watch(self, path: str | os.PathLike[str], interval: float = 5.0) -> threading.Event:
        """
        Reload the SLOs of a configuration file whenever it changes (checked every interval).

        A file that fails to load is logged with every error and changes nothing; the
        running definitions stay. Set the returned event to stop watching.
        """
        from slakit.config import load  # noqa: PLC0415 - only watchers read files
        from slakit.exceptions import ConfigError  # noqa: PLC0415

        stop = threading.Event()
        file = Path(path)

        def stamp() -> int | None:
            try:
                return file.stat().st_mtime_ns
            except OSError:
                return None

        seen = stamp()  # the definitions already running came from this version

        def run() -> None:
            nonlocal seen
            while not stop.wait(interval):
                now = stamp()
                if now is None or now == seen:
                    continue
                seen = now
                try:
                    changed = self.reload(load(file).slos)
                except (ConfigError, ValueError, OSError) as exc:
                    _log.error("slakit: %s not reloaded: %s", file, exc)
                else:
                    _log.warning("slakit: reloaded %s (changed: %s)", file, changed or "none")

        threading.Thread(target=run, name="slakit-watch", daemon=True).start()
        return stop

    def schedule(self, window: MaintenanceWindow) -> None:
        """Exclude the events of a (recurring) maintenance window from its SLOs' SLIs."""
        with self._lock:
            self._windows.append(window)

    def _apply_windows(self, now: float) -> None:
        """Give the stores the occurrences starting within the next hour (once each)."""
        for window in self._windows:
            names = window.slos or tuple(s.name for s in self.registry.slos())
            for begin, end in window.occurrences(now - 60, now + 3_600):
                for name in names:
                    key = (window.name, name, begin)
                    if key not in self._excluded:
                        self._excluded.add(key)
                        self.registry.store(name).exclude(begin, end)

    def listen(self, listener: Callable[[Event], Any]) -> None:
        """
        Call ``listener(event)`` on the tick thread as each event is emitted, in order.

        For quick, non-blocking consumers that must not miss an event (the history's
        ledger, tests); anything slow belongs in :meth:`subscribe`.
        """
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener: Callable[[Event], Any]) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            self._listeners.remove(listener)

    def drain(self, timeout: float = 5.0) -> bool:
        """
        Wait until every hook and subscriber has handled what it was given (or timeout).

        For scripts and demos that drive the engine with :meth:`evaluate_now` and want a
        tick's actions done before the next. Returns ``False`` on timeout.
        """
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        calm = 0
        while calm < 2:  # idle twice in a row: no job was between get() and start
            with self._lock:
                workers = [*self._workers, *self._enforcer.workers()]
            calm = calm + 1 if all(w.idle for w in workers) else 0
            if time.monotonic() > deadline:
                return False
            pause.wait(0.001)
        return True

    def add_publisher(self, publisher: Publisher) -> None:
        """Hand every tick's snapshots to ``publisher`` (exporters that push, not pull)."""
        with self._lock:
            self._publishers.append(publisher)

    def _sample(self, slo: SLO) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        for o in slo.objectives:
            if not isinstance(o, Threshold):
                continue
            if o.source is None:
                values[o.key] = self._values.get(o.key)
                continue
            try:
                value = float(o.source())
                values[o.key] = value if math.isfinite(value) else None  # NaN: unknown
            except Exception:
                values[o.key] = None
                _log.exception("slakit: sampling %s/%s failed", slo.name, o.key)
        return values

    def _diff(self, slo: SLO, previous: ev.Snapshot | None, snap: ev.Snapshot) -> list[Event]:
        with self._vlock:
            return self._diff_locked(slo, previous, snap)

    def _diff_locked(
        self, slo: SLO, previous: ev.Snapshot | None, snap: ev.Snapshot
    ) -> list[Event]:
        now = snap.time
        events: list[Event] = []
        for o in snap.objectives:
            for c in o.conditions:
                key = (slo.name, o.key, c.rule)
                current = self._open.get(key)
                if c.active and current is None:
                    v = Violation(
                        id=uuid.uuid4().hex[:12],
                        slo=slo.name,
                        objective=o.key,
                        rule=c.rule,
                        severity=c.severity,
                        opened_at=now,
                        actual=c.value,
                        limit=c.limit,
                        detail=c.detail,
                    )
                    self._open[key] = v
                    events.append(ViolationOpened(now, v))
                    if c.rule == "budget":
                        events.append(BudgetExhausted(now, slo.name, o.key, c.value))
                elif not c.active and current is not None:
                    done = attrs.evolve(current, resolved_at=now)
                    del self._open[key]
                    self._closed.append(done)
                    events.append(ViolationResolved(now, done))
        old = previous.status if previous is not None else Status.HEALTHY
        if snap.status is not old:
            events.append(StatusChanged(now, slo.name, old, snap.status))
        return events

    # -- reading ---------------------------------------------------------------------

    def snapshot(self, name: str | SLO) -> ev.Snapshot | None:
        """Return the latest snapshot of an SLO (by name or object), if evaluated."""
        return self.registry.latest(name if isinstance(name, str) else name.name)

    def percentiles(
        self,
        slo: str | SLO,
        window: Window | float | str | None = None,
        qs: Sequence[float] = ev.PERCENTILES,
    ) -> dict[float, float | None]:
        """
        Return latency quantiles (seconds) of ``slo`` over ``window``, read on demand.

        Snapshots carry quantiles over the SLO window only; this reads any window
        (default: the SLO's) from the histogram ring that holds it.
        """
        name = slo if isinstance(slo, str) else slo.name
        spec_window = self.registry.slo(name).window if window is None else to_window(window)
        start, end = spec_window.bounds(self.registry.clock.time())
        hist = self.registry.store(name).histogram(start, end)
        return {q: sketch.quantile(hist, q) for q in qs}

    def violations(self, *, include_resolved: bool = False) -> list[Violation]:
        """Return open violations (and the last 1,000 resolved ones if asked)."""
        with self._vlock:
            out = list(self._open.values())
            if include_resolved:
                out = list(self._closed) + out
        return out

    def restore_violations(self, violations: Iterable[Violation]) -> None:
        """Reopen violations that were open before a restart (no event is emitted)."""
        with self._vlock:
            for v in violations:
                self._open.setdefault((v.slo, v.objective, v.rule), v)

    def acknowledge(self, violation_id: str, by: str | None = None) -> Violation:
        """
        Mark an open violation as acknowledged (escalation stops) and emit the event.

        Raises:
            KeyError: no open violation has that id.

        """
        with self._tick_lock, self._vlock:
            for key, v in self._open.items():
                if v.id == violation_id:
                    now = self.registry.clock.time()
                    acked = attrs.evolve(v, acknowledged_at=now, acknowledged_by=by)
                    self._open[key] = acked
                    break
            else:
                raise KeyError(f"no open violation with id {violation_id!r}")
        self._emit([ViolationAcknowledged(now, acked)])
        return acked


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine._after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
