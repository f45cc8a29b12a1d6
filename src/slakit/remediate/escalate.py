"""
Escalation: notify in levels until someone acknowledges or the violation resolves.

An :class:`Escalation` is a hook for a :class:`~slakit.remediate.policy.Policy`. When a
violation opens it notifies the first level; each later level is notified once its
delay (counted from the violation's opening, on the engine's clock) has passed, unless
the violation was acknowledged (``engine.acknowledge(id)``) or resolved first. The
notifiers already reached hear about the acknowledgement or resolution. Every level
notified is recorded on the violation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from slakit.events import Violation, ViolationAcknowledged, ViolationOpened, ViolationResolved
from slakit.spec import parse_duration
from slakit.typing import Hook

if TYPE_CHECKING:
    from slakit.events import Event

_log = logging.getLogger("slakit.escalate")

Record = Callable[[str, str], None]
"""``record(violation_id, result)``: attach what a level did to the violation."""


def _delay(value: float | str) -> float:
    return 0.0 if value in (0, "0", "0s") else parse_duration(value)


def _notifiers(value: Iterable[Hook]) -> tuple[Hook, ...]:
    return tuple(value)


@attrs.frozen
class Level:
    """Who is told, and how long after the violation opened."""

    notifiers: tuple[Hook, ...] = attrs.field(converter=_notifiers)
    after: float = attrs.field(default=0.0, converter=_delay)


@attrs.define
class _Tracked:
    violation: Violation
    next_level: int = 0
    reached: list[Hook] = attrs.field(factory=list)


class Escalation:
    """
    Notifies level after level until a violation is acknowledged or resolved.

    Example::

        Escalation([
            Level([slack]),
            Level([pagerduty], after="5m"),
            Level([email_to_managers], after="30m"),
        ])
    """

    def __init__(self, levels: Iterable[Level], *, name: str = "escalation") -> None:
        self.levels = tuple(levels)
        if not self.levels:
            raise ValueError("an escalation needs at least one level")
        delays = [lvl.after for lvl in self.levels]
        if delays != sorted(delays):
            raise ValueError(f"escalation levels must be in order of delay, got {delays}")
        self.name = name
        self._lock = threading.Lock()
        self._tracked: dict[str, _Tracked] = {}
        self._unrecorded: list[tuple[str, str]] = []  # levels fired with no one to tell

    def __repr__(self) -> str:
        return f"Escalation({self.name!r}, levels={len(self.levels)})"

    def on_event(self, event: Event) -> None:
        """Start on an opening (first levels now); stop on acknowledgement or resolution."""
        if isinstance(event, ViolationOpened):
            with self._lock:
                self._tracked[event.violation.id] = _Tracked(event.violation)
            self.tick(event.time)
        elif isinstance(event, ViolationAcknowledged | ViolationResolved):
            with self._lock:
                tracked = self._tracked.pop(event.violation.id, None)
            if tracked is not None:
                for notifier in tracked.reached:  # those who were told hear the end
                    _deliver(notifier, event)

    def tick(self, now: float, record: Record | None = None) -> None:
        """Notify every level whose delay has passed (the engine calls this each tick)."""
        with self._lock:
            if record is not None:  # levels fired by on_event are recorded now
                earlier, self._unrecorded = self._unrecorded, []
                for violation_id, result in earlier:
                    record(violation_id, result)
            due = []
            for tracked in self._tracked.values():
                v = tracked.violation
                while (
                    tracked.next_level < len(self.levels)
                    and v.opened_at + self.levels[tracked.next_level].after <= now
                ):
                    due.append((tracked, tracked.next_level))
                    tracked.next_level += 1
        for tracked, index in due:
            level = self.levels[index]
            results = []
            for notifier in level.notifiers:
                ok = _deliver(notifier, ViolationOpened(now, tracked.violation))
                tracked.reached.append(notifier)
                results.append(f"{notifier!r} {'ok' if ok else 'failed'}")
            result = f"level {index + 1}: {', '.join(results)}"
            if record is not None:
                record(tracked.violation.id, result)
            else:
                with self._lock:
                    self._unrecorded.append((tracked.violation.id, result))

    def pending(self) -> list[str]:
        """Return the ids of violations still escalating."""
        with self._lock:
            return [vid for vid, t in self._tracked.items() if t.next_level < len(self.levels)]


def _deliver(notifier: Hook, event: Event) -> bool:
    try:
        notifier.on_event(event)
    except Exception:
        _log.exception("escalation: %r failed", notifier)
        return False
    return True
