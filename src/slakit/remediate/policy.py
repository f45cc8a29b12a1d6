"""
Enforcement policies: which hooks act on which violations, within which limits.

A :class:`Policy` maps severities to hooks for one SLO. When a violation of that
severity opens, each hook's ``on_event`` runs on its own worker (never on the request
path) with a timeout, and what happened is attached to the violation as an
:class:`~slakit.events.Action`: ``ok``, the error, a timeout, ``dry-run`` or a cooldown
skip. A failed attempt is retried on later ticks, up to ``max_attempts``, while the
violation is open. Resolutions and acknowledgements are delivered to the same hooks
(a breaker or shedder may relax) but are not actions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from slakit.dispatch import Worker
from slakit.events import (
    Action,
    Event,
    Violation,
    ViolationAcknowledged,
    ViolationOpened,
    ViolationResolved,
)
from slakit.spec import Severity, parse_duration
from slakit.typing import Hook

if TYPE_CHECKING:
    from collections.abc import Iterable

    from slakit.typing import Clock

_log = logging.getLogger("slakit.enforce")


def _hooks(value: Iterable[Hook]) -> tuple[Hook, ...]:
    hooks = tuple(value)
    for h in hooks:
        if not callable(getattr(h, "on_event", None)):
            raise ValueError(f"a hook needs an on_event(event) method, got {h!r}")
    return hooks


def _cooldown(value: float | str) -> float:
    return 0.0 if value in (0, "0", "0s") else parse_duration(value)


@attrs.frozen
class Policy:
    """
    What to do about an SLO's violations, by severity.

    Args:
        critical: hooks that act when a critical violation (a page) opens.
        warning: hooks for warning violations (tickets).
        info: hooks for info violations.
        dry_run: record and log what would be done, call nothing (for rolling out).
        cooldown: a hook acts at most once per cooldown for this SLO.
        max_attempts: attempts per hook and violation when a hook fails or times out.

    """

    critical: tuple[Hook, ...] = attrs.field(default=(), converter=_hooks)
    warning: tuple[Hook, ...] = attrs.field(default=(), converter=_hooks)
    info: tuple[Hook, ...] = attrs.field(default=(), converter=_hooks)
    dry_run: bool = False
    cooldown: float = attrs.field(default=0.0, converter=_cooldown)
    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))

    def hooks_for(self, severity: Severity) -> tuple[Hook, ...]:
        """Return the hooks that act on violations of ``severity``."""
        return {
            Severity.CRITICAL: self.critical,
            Severity.WARNING: self.warning,
            Severity.INFO: self.info,
        }[severity]


def hook_name(hook: object) -> str:
    """Name a hook for actions and logs: ``CircuitBreaker:payments``."""
    name = getattr(hook, "name", None)
    kind = type(hook).__name__
    return f"{kind}:{name}" if isinstance(name, str) else kind


@attrs.frozen
class _Job:
    event: Event
    hook: Hook
    policy: Policy
    attempt: int = 0  # 0: a notice (resolve/ack), not an action


@attrs.frozen
class _Tick:
    """Let a hook with a ``tick(now, record)`` method move on (escalation)."""

    hook: Hook
    now: float
    record: Callable[[str, str], None]


class Enforcer:
    """
    Runs policies for an engine: dispatches, records actions, retries, cools down.

    Built by the engine; ``attach(violation_id, action)`` stores an action on a violation.
    """

    def __init__(
        self,
        clock: Clock,
        attach: Callable[[str, Action], None],
        is_open: Callable[[str], bool],
        timeout: float,
        max_queue: int,
    ) -> None:
        self._clock = clock
        self._attach = attach
        self._is_open = is_open
        self._timeout = timeout
        self._max_queue = max_queue
        self._lock = threading.Lock()
        self._policies: dict[str, list[Policy]] = {}
        self._workers: dict[int, Worker] = {}
        self._last_action: dict[tuple[str, int], float] = {}
        self._retries: list[_Job] = []

    def add(self, slo: str, policy: Policy) -> None:
        """Enforce ``policy`` for the SLO called ``slo`` (policies add up)."""
        with self._lock:
            self._policies.setdefault(slo, []).append(policy)

    def workers(self) -> list[Worker]:
        """Return the workers of every hook seen so far."""
        with self._lock:
            return list(self._workers.values())

    def handle(self, event: Event) -> None:
        """React to one engine event (called on the ticking thread; never blocks)."""
        if not isinstance(event, ViolationOpened | ViolationResolved | ViolationAcknowledged):
            return
        v = event.violation
        with self._lock:
            policies = list(self._policies.get(v.slo, ()))
        for policy in policies:
            for hook in policy.hooks_for(v.severity):
                if isinstance(event, ViolationOpened):
                    self._act(event, v, hook, policy)
                elif not policy.dry_run:
                    self._worker(hook).put(_Job(event, hook, policy))

    def _act(self, event: Event, v: Violation, hook: Hook, policy: Policy) -> None:
        now = self._clock.time()
        name = hook_name(hook)
        if policy.dry_run:
            _log.warning("dry run: %s would act on %s/%s %s", name, v.slo, v.objective, v.rule)
            self._attach(v.id, Action(now, name, "dry-run"))
            return
        key = (v.slo, id(hook))
        last = self._last_action.get(key)
        if last is not None and now - last < policy.cooldown:
            self._attach(v.id, Action(now, name, f"skipped: cooldown ({policy.cooldown:g}s)"))
            return
        self._last_action[key] = now
        self._worker(hook).put(_Job(event, hook, policy, attempt=1))

    def tick(self, now: float) -> None:
        """Retry failed attempts of open violations; tick hooks that escalate."""
        with self._lock:
            retries, self._retries = self._retries, []
            tickable = {
                id(h): h
                for policies in self._policies.values()
                for p in policies
                if not p.dry_run
                for h in (*p.critical, *p.warning, *p.info)
                if callable(getattr(h, "tick", None))
            }
        for job in retries:
            v = _violation(job.event)
            if v is not None and self._is_open(v.id):
                self._worker(job.hook).put(attrs.evolve(job, attempt=job.attempt + 1))
        for hook in tickable.values():
            name = hook_name(hook)

            def record(violation_id: str, result: str, name: str = name) -> None:
                self._attach(violation_id, Action(self._clock.time(), name, result))

            self._worker(hook).put(_Tick(hook, now, record))

    def _worker(self, hook: Hook) -> Worker:
        with self._lock:
            worker = self._workers.get(id(hook))
            if worker is None:
                worker = self._workers[id(hook)] = Worker(
                    hook_name(hook),
                    _run,
                    self._timeout,
                    self._max_queue,
                    report=self._report,
                )
            return worker

    def _report(self, job: _Job | _Tick, result: str) -> None:
        if isinstance(job, _Tick):
            return
        v = _violation(job.event)
        if job.attempt == 0 or v is None:
            return
        self._attach(v.id, Action(self._clock.time(), hook_name(job.hook), result, job.attempt))
        if result != "ok" and job.attempt < job.policy.max_attempts:
            with self._lock:
                self._retries.append(job)


def _run(job: _Job | _Tick) -> None:
    if isinstance(job, _Tick):
        job.hook.tick(job.now, job.record)  # type: ignore[attr-defined]
    else:
        job.hook.on_event(job.event)


def _violation(event: Event) -> Violation | None:
    return getattr(event, "violation", None)
