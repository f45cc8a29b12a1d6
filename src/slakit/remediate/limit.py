"""
Adaptive concurrency limits, after Netflix's concurrency-limits: AIMD and Gradient2.

A :class:`ConcurrencyLimiter` admits a request while fewer than ``limit`` are in flight
and feeds each finished request's round-trip time to its algorithm, which moves the
limit: AIMD adds one while the limit is in use and multiplies by ``backoff`` on a drop;
Gradient2 compares a long-term RTT average with the latest RTT and shrinks the limit
as queueing shows up. Unlike Netflix's Gradient2, a drop (an error of ``drop_on``, or
a request slower than ``timeout``) always lowers the limit here.

As in Netflix's ``WindowedLimit``, samples are gathered into windows (at least
``window_size`` samples and ``min_window`` seconds) and the algorithm moves the limit
once per window, from the window's mean RTT, its peak in-flight count and whether any
request in it was dropped: per-sample updates react before the latency they caused
can be seen and oscillate between the minimum and several times the capacity.

As in TCP, one congestion event lowers the limit once: a drop counts only if its
request started after the previous decrease. Netflix's AIMD backs off on every drop,
so the 30 requests in flight when a server saturates cut the limit by 0.9 ** 30 and
it collapses to its minimum (``tests/test_limit.py`` simulates this). A cancelled
request is neither a drop nor a sample.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import TYPE_CHECKING, Protocol, Self

from slakit.clock import SYSTEM
from slakit.remediate.shed import Criticality, RequestShedError
from slakit.spec import parse_duration

if TYPE_CHECKING:
    from types import TracebackType

    from slakit.typing import Clock

_NS = 1_000_000_000


class LimitAlgorithm(Protocol):
    """Moves a concurrency limit from each finished request."""

    initial: float

    def update(self, limit: float, rtt: float, inflight: int, dropped: bool) -> float:
        """Return the new limit after a request that took ``rtt`` seconds."""
        ...


class AIMD:
    """
    Additive increase, multiplicative decrease.

    Args:
        initial: the starting limit.
        min_limit: the limit never goes below this.
        max_limit: nor above this.
        backoff: the factor applied on a drop.

    """

    def __init__(
        self,
        initial: float = 20,
        min_limit: float = 1,
        max_limit: float = 1_000,
        backoff: float = 0.9,
    ) -> None:
        if not 0 < backoff < 1 or not 0 < min_limit <= initial <= max_limit:
            raise ValueError("need 0 < backoff < 1 and 0 < min_limit <= initial <= max_limit")
        self.initial = initial
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.backoff = backoff

    def update(self, limit: float, rtt: float, inflight: int, dropped: bool) -> float:  # noqa: ARG002 - the protocol's signature
        """Multiply by ``backoff`` on a drop; add one while at least half the limit is used."""
        if dropped:
            return max(self.min_limit, limit * self.backoff)
        if inflight * 2 >= limit:
            return min(self.max_limit, limit + 1)
        return limit


class Gradient2:
    """
    Netflix's Gradient2: limit × min(1, tolerance × long RTT / short RTT) + queue.

    Two changes from Netflix's version, both found by ``tests/test_limit.py``: a drop
    lowers the limit, and the long-term RTT (the no-load baseline) follows a faster
    sample at once but learns slower ones only while the limit is not saturated. Netflix
    averages every sample, so under sustained overload the queueing delay becomes the
    baseline, the gradient returns to 1 and the limit grows without bound (to 200 for a
    server of capacity 20 in the simulation).

    Args:
        initial: the starting limit.
        min_limit: the limit never goes below this.
        max_limit: nor above this.
        smoothing: how far each update moves towards the new estimate.
        rtt_tolerance: how much slower than the long-term RTT is still fine.
        long_window: samples in the long-term RTT average.
        backoff: the factor applied on a drop (Netflix's version ignores drops).

    """

    def __init__(
        self,
        initial: float = 20,
        min_limit: float = 1,
        max_limit: float = 1_000,
        smoothing: float = 0.2,
        rtt_tolerance: float = 1.5,
        long_window: int = 600,
        backoff: float = 0.9,
    ) -> None:
        if not 0 < min_limit <= initial <= max_limit or rtt_tolerance < 1 or long_window < 1:
            raise ValueError("need 0 < min_limit <= initial <= max_limit and rtt_tolerance >= 1")
        self.initial = initial
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.smoothing = smoothing
        self.rtt_tolerance = rtt_tolerance
        self.backoff = backoff
        self._alpha = 2 / (long_window + 1)
        self._warmup = min(10, long_window)
        self._samples = 0
        self.long_rtt = 0.0

    def update(self, limit: float, rtt: float, inflight: int, dropped: bool) -> float:
        """Move towards ``limit × gradient + sqrt(limit)``; a drop backs off."""
        if dropped:
            return max(self.min_limit, limit * self.backoff)
        self._samples += 1
        saturated = inflight >= int(limit)
        if self._samples <= self._warmup:  # a plain mean first, then the moving average
            self.long_rtt += (rtt - self.long_rtt) / self._samples
        elif rtt < self.long_rtt or not saturated:  # queueing never becomes the baseline
            self.long_rtt += (rtt - self.long_rtt) * self._alpha
        if self.long_rtt / rtt > 2:  # load went away: let the long average recover fast
            self.long_rtt *= 0.95
        if inflight < limit / 2:  # not using the limit: no evidence to raise it
            return limit
        gradient = max(0.5, min(1.0, self.rtt_tolerance * self.long_rtt / rtt))
        estimate = limit * gradient + math.sqrt(limit)
        new = limit * (1 - self.smoothing) + estimate * self.smoothing
        return max(self.min_limit, min(self.max_limit, new))


class ConcurrencyLimiter:
    """
    Admits a request while fewer than ``limit`` are in flight; the limit adapts.

    Use ``with limiter.guard():`` (or ``async with``): a rejected request raises
    :class:`~slakit.remediate.shed.RequestShedError`; a request that raises one of
    ``drop_on``, or runs past ``timeout`` seconds, counts as a drop; cancellation
    counts as nothing.
    """

    def __init__(
        self,
        algorithm: LimitAlgorithm | None = None,
        *,
        name: str = "limiter",
        timeout: float | str | None = None,
        drop_on: tuple[type[BaseException], ...] = (TimeoutError,),
        window_size: int = 10,
        min_window: float = 0.1,
        clock: Clock = SYSTEM,
    ) -> None:
        if window_size < 1 or min_window < 0:
            raise ValueError("window_size must be >= 1 and min_window >= 0")
        self.algorithm = algorithm if algorithm is not None else Gradient2()
        self.name = name
        self.timeout = None if timeout is None else parse_duration(timeout)
        self.drop_on = drop_on
        self.window_size = window_size
        self.min_window_ns = round(min_window * _NS)
        self._clock = clock
        self._lock = threading.Lock()
        self._last_decrease = -1
        self._window_start = clock.monotonic_ns()
        self._samples = 0
        self._rtt_sum = 0.0
        self._peak = 0
        self._dropped = False
        self.limit = float(self.algorithm.initial)
        self.inflight = 0
        self.rejected = 0

    def __repr__(self) -> str:
        return (
            f"ConcurrencyLimiter({self.name!r}, limit={self.limit:.1f}, inflight={self.inflight})"
        )

    def try_acquire(self) -> bool:
        """Take a slot if one is free (then call :meth:`release`)."""
        with self._lock:
            if self.inflight >= int(self.limit):
                self.rejected += 1
                return False
            self.inflight += 1
            return True

    def release(
        self, rtt: float | None, *, dropped: bool = False, started: int | None = None
    ) -> None:
        """
        Free a slot and let the algorithm move the limit.

        Args:
            rtt: the request's duration in seconds; ``None`` for a cancelled request.
            dropped: the request was dropped (overload answer, timeout).
            started: monotonic ns when the request started (default: now - rtt).

        """
        now = self._clock.monotonic_ns()
        with self._lock:
            inflight = self.inflight
            self.inflight -= 1
            if rtt is None:
                return
            dropped = dropped or (self.timeout is not None and rtt > self.timeout)
            if dropped:
                begun = now - round(rtt * _NS) if started is None else started
                if begun <= self._last_decrease:
                    dropped = False  # this congestion event already lowered the limit
                else:
                    self._dropped = True
            self._samples += 1
            self._rtt_sum += rtt
            self._peak = max(self._peak, inflight)
            if self._dropped or (
                self._samples >= self.window_size and now - self._window_start >= self.min_window_ns
            ):
                mean = self._rtt_sum / self._samples
                self.limit = self.algorithm.update(self.limit, mean, self._peak, self._dropped)
                if self._dropped:
                    self._last_decrease = now
                self._window_start, self._samples, self._rtt_sum = now, 0, 0.0
                self._peak, self._dropped = 0, False

    def admit_request(self, criticality: str | None = None) -> int:  # noqa: ARG002 - the protocol's signature
        """Take a slot or raise :class:`RequestShedError`; returns the start time."""
        if not self.try_acquire():
            raise RequestShedError(self.name, Criticality.CRITICAL, retry_after=1.0)
        return self._clock.monotonic_ns()

    def finish_request(self, ticket: object, success: bool | None, duration_ns: int) -> None:
        """Free the slot taken by :meth:`admit_request`; ``None`` counts as cancelled."""
        if success is None:
            self.release(None)
        else:
            self.release(duration_ns / _NS, started=ticket if isinstance(ticket, int) else None)

    def guard(self) -> LimitGuard:
        """Return a context manager that holds a slot for its block, or raises."""
        return LimitGuard(self)


class LimitGuard:
    """Context manager made by :meth:`ConcurrencyLimiter.guard`."""

    __slots__ = ("_limiter", "_t0")

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self._limiter = limiter
        self._t0 = 0

    def __enter__(self) -> Self:
        lim = self._limiter
        if not lim.try_acquire():
            raise RequestShedError(lim.name, Criticality.CRITICAL, retry_after=1.0)
        self._t0 = lim._clock.monotonic_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lim = self._limiter
        rtt = (lim._clock.monotonic_ns() - self._t0) / _NS
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | GeneratorExit):
            lim.release(None)
        else:
            lim.release(rtt, dropped=isinstance(exc, lim.drop_on), started=self._t0)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
