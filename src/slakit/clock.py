"""The system clock: ``perf_counter_ns`` for durations, ``time_ns`` for wall time."""

from __future__ import annotations

import time
from typing import Final


class SystemClock:
    """The real clock. Stateless; :data:`SYSTEM` is the shared instance."""

    __slots__ = ()

    monotonic_ns = staticmethod(time.perf_counter_ns)
    time_ns = staticmethod(time.time_ns)
    time = staticmethod(time.time)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM: Final = SystemClock()
