"""
Public protocols and aliases: the seams where users plug their own parts in.

Stages depend on these small protocols instead of on each other's classes, so the
data flow of record → store → evaluate → act → export stays one-way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from slakit.evaluate import Snapshot
    from slakit.events import Event


@runtime_checkable
class Clock(Protocol):
    """
    Where slakit reads time: a monotonic clock for durations, a wall clock for slots.

    :class:`slakit.clock.SystemClock` is the default; :class:`slakit.testing.FakeClock`
    is the one tests drive by hand.
    """

    def monotonic_ns(self) -> int:
        """Nanoseconds of a clock that never goes backwards."""
        ...

    def time_ns(self) -> int:
        """Nanoseconds since the Unix epoch."""
        ...

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        ...


@runtime_checkable
class Hook(Protocol):
    """Anything that reacts to engine events: remediation, notification, export."""

    def on_event(self, event: Event) -> None:
        """Handle one event. Runs on a worker thread, never on the request path."""
        ...


@runtime_checkable
class Admission(Protocol):
    """
    Decides, before a request runs, whether it may run: a breaker, shedder or limiter.

    Middleware calls :meth:`admit_request` first and, for an admitted request,
    :meth:`finish_request` exactly once with how it ended.
    """

    def admit_request(self, criticality: str | None) -> object:
        """Admit one request and return a ticket, or raise ``RejectedError``."""
        ...

    def finish_request(self, ticket: object, success: bool | None, duration_ns: int) -> None:
        """Report how an admitted request ended; ``None``: not judged (client left)."""
        ...


@runtime_checkable
class Publisher(Protocol):
    """Receives every SLO's new snapshot after each engine tick, on the engine's thread."""

    def publish(self, snapshots: Mapping[str, Snapshot]) -> None:
        """Publish one tick's snapshots by SLO name; keep it short (it delays the tick)."""
        ...


Subscriber = Hook | Callable[["Event"], Any]
"""An engine subscriber: a :class:`Hook` or a plain function of one event."""

ResultPredicate = Callable[[Any], bool]
"""Returns ``True`` when a call's result counts as a success."""
