"""
Helpers for testing code that uses slakit: a fake clock and event capture.

.. versionadded:: 0.1
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from slakit.engine import Engine
    from slakit.events import Event

_NS = 1_000_000_000


class FakeClock:
    """
    A clock that moves only when told to.

    :meth:`advance` moves the monotonic and the wall clock together, as real time does;
    :meth:`jump` moves only the wall clock, as an NTP step or a manual change does.

    Args:
        start: the initial wall-clock time in seconds since the Unix epoch.

    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall_ns = round(start * _NS)
        self._mono_ns = 0
        self._lock = threading.Lock()

    def monotonic_ns(self) -> int:
        """Return the fake monotonic clock in nanoseconds."""
        return self._mono_ns

    def time_ns(self) -> int:
        """Return the fake wall clock in nanoseconds since the epoch."""
        return self._wall_ns

    def time(self) -> float:
        """Return the fake wall clock in seconds since the epoch."""
        return self._wall_ns / _NS

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (must not be negative)."""
        if seconds < 0:
            raise ValueError(f"FakeClock.advance: seconds must be >= 0, got {seconds}")
        step = round(seconds * _NS)
        with self._lock:
            self._mono_ns += step
            self._wall_ns += step

    def jump(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (either sign); the monotonic clock stays."""
        with self._lock:
            self._wall_ns += round(seconds * _NS)

    def __repr__(self) -> str:
        return f"FakeClock(time={self.time()!r})"


@contextmanager
def capture_events(engine: Engine) -> Iterator[list[Event]]:
    """
    Collect every event the engine emits inside the ``with`` block, synchronously.

    Events are appended as the engine emits them (on the ticking thread), so after
    ``engine.evaluate_now()`` the list is complete without waiting for hook workers.
    """
    events: list[Event] = []
    engine.listen(events.append)
    try:
        yield events
    finally:
        engine.unlisten(events.append)
