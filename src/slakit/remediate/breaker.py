"""
A circuit breaker in the manner of resilience4j, usable on its own or bound to an SLO.

States: ``closed`` (calls pass, outcomes are recorded in a sliding window), ``open``
(calls fail fast with :class:`CircuitOpenError`), ``half_open`` (a bounded number of
probe calls decide whether to close again), plus ``forced_open``, ``disabled`` and
``metrics_only``.

No lock is held around the protected call. In the closed state a count-based window
records a call lock-free: an ``itertools.count`` hands out ring positions atomically
and a success only writes a zero; failure and slow counts are summed only when a call
fails or is slow, because only those can trip the breaker. State changes and half-open
permits take a short lock. Cancellation, ``KeyboardInterrupt`` and ``SystemExit`` in a
guarded call return its permit, propagate unchanged and are not counted.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import itertools
import logging
import threading
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast

from slakit.clock import SYSTEM
from slakit.events import ViolationOpened
from slakit.exceptions import RejectedError
from slakit.spec import Severity, parse_duration, parse_fraction

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from slakit.events import Event
    from slakit.typing import Clock, ResultPredicate

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("slakit.breaker")
_NS = 1_000_000_000
_NOT_COUNTED: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    GeneratorExit,
    KeyboardInterrupt,
    SystemExit,
)


class State(enum.StrEnum):
    """States of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


class CircuitOpenError(RejectedError):
    """Raised instead of calling the protected function while the breaker rejects calls."""

    def __init__(self, name: str, state: State, retry_after: float | None) -> None:
        self.name = name
        self.state = state
        self.retry_after = retry_after
        wait = "" if retry_after is None else f"; retry in {retry_after:.1f}s"
        super().__init__(f"circuit breaker {name!r} is {state}{wait}")


class CircuitBreakerListener:
    """Base class for listeners: override the methods you need. Errors are logged."""

    def state_change(self, breaker: CircuitBreaker, old: State, new: State) -> None:
        """React to the breaker moving from ``old`` to ``new``."""

    def success(self, breaker: CircuitBreaker, duration: float) -> None:
        """React to a success (``duration`` is 0 unless slow calls are measured)."""

    def failure(self, breaker: CircuitBreaker, exc: BaseException | None, duration: float) -> None:
        """React to a failure (``exc`` is ``None`` when the result predicate failed it)."""

    def rejected(self, breaker: CircuitBreaker) -> None:
        """React to a call that was not permitted."""


class _CountWindow:
    """The last ``size`` outcomes, written lock-free: one ring slot per call."""

    __slots__ = ("counter", "fail", "size", "slow")

    def __init__(self, size: int) -> None:
        self.size = size
        self.counter = itertools.count()  # next() is atomic: each call gets its own slot
        self.fail = [-1] * size  # -1: no call yet in this slot
        self.slow = [0] * size

    def record(self, failed: int, slow: int) -> None:
        """Record one call (the breaker's decorator inlines this; keep them identical)."""
        i = next(self.counter) % self.size
        self.fail[i] = failed
        self.slow[i] = slow

    def rates(self) -> tuple[int, float, float]:
        fail = self.fail
        calls = self.size - fail.count(-1)  # list.count runs in C: ~0.3 µs for 100
        if calls == 0:
            return 0, 0.0, 0.0
        return calls, fail.count(1) / calls, self.slow.count(1) / calls


class _TimeWindow:
    """Per-second partial aggregates over the last ``seconds`` seconds (O(1) a call)."""

    __slots__ = ("buckets", "clock", "lock", "seconds")

    def __init__(self, seconds: int, clock: Clock) -> None:
        self.seconds = seconds
        self.clock = clock
        self.lock = threading.Lock()
        self.buckets = [[-1, 0, 0, 0] for _ in range(seconds)]  # epoch, calls, fail, slow

    def record(self, failed: int, slow: int) -> None:
        epoch = self.clock.monotonic_ns() // _NS
        with self.lock:  # a few integer additions: never around the protected call
            b = self.buckets[epoch % self.seconds]
            if b[0] != epoch:
                b[0], b[1], b[2], b[3] = epoch, 0, 0, 0
            b[1] += 1
            b[2] += failed
            b[3] += slow

    def rates(self) -> tuple[int, float, float]:
        oldest = self.clock.monotonic_ns() // _NS - self.seconds + 1
        calls = fail = slow = 0
        with self.lock:
            for epoch, c, f, s in self.buckets:
                if epoch >= oldest:
                    calls, fail, slow = calls + c, fail + f, slow + s
        if calls == 0:
            return 0, 0.0, 0.0
        return calls, fail / calls, slow / calls


class _Permit:
    """One half-open probe: valid while its generation is current."""

    __slots__ = ("generation", "started")

    def __init__(self, generation: int, started: int) -> None:
        self.generation = generation
        self.started = started


class CircuitBreaker:
    """
    Stops calling a failing dependency, then probes it carefully before trusting it again.

    Args:
        name: shown in errors, logs and metrics.
        failure_rate: trip when at least this share of recorded calls failed.
        slow_call_rate: trip when at least this share of calls were slow (needs
            ``slow_call_duration``).
        slow_call_duration: a call lasting at least this long is slow.
        window: calls (``window_type="count"``) or seconds (``"time"``) the rates cover.
        minimum_calls: no trip before this many calls are in the window.
        wait_in_open: how long the breaker stays open before probing.
        half_open_calls: probe calls allowed in half-open; their outcome decides.
        max_wait_in_half_open: a probe running longer gives its permit back to the next
            caller (0: never).
        automatic_half_open: move to half-open when the wait is over, without a call.
        record: exception types that count as failures.
        ignore: exception types that count as neither (checked first).
        failure_if: a predicate on the result; ``True`` counts the call as failed.
        fallback: called with ``(error, *args, **kwargs)`` instead of raising
            :class:`CircuitOpenError` when a call is rejected.
        listeners: :class:`CircuitBreakerListener` objects.
        slo: the name of an SLO; a page (critical violation) of it opens the breaker.
        clock: where time comes from.

    """

    def __init__(
        self,
        name: str,
        *,
        failure_rate: float | str = 0.5,
        slow_call_rate: float | str = 1.0,
        slow_call_duration: float | str | None = None,
        window: int = 100,
        window_type: str = "count",
        minimum_calls: int = 10,
        wait_in_open: float | str = 60.0,
        half_open_calls: int = 10,
        max_wait_in_half_open: float | str = 0.0,
        automatic_half_open: bool = False,
        record: tuple[type[BaseException], ...] = (Exception,),
        ignore: tuple[type[BaseException], ...] = (),
        failure_if: ResultPredicate | None = None,
        fallback: Callable[..., Any] | None = None,
        listeners: tuple[CircuitBreakerListener, ...] = (),
        slo: str | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        if window_type not in ("count", "time"):
            raise ValueError(f"window_type must be count or time, got {window_type!r}")
        if window < 1 or minimum_calls < 1 or half_open_calls < 1:
            raise ValueError("window, minimum_calls and half_open_calls must be >= 1")
        self.name = name
        self.failure_rate = parse_fraction(failure_rate)
        self.slow_call_rate = parse_fraction(slow_call_rate)
        self.slow_call_ns = (
            None if slow_call_duration is None else round(parse_duration(slow_call_duration) * _NS)
        )
        self.window = window
        self.window_type = window_type
        self.minimum_calls = minimum_calls
        self.wait_in_open = parse_duration(wait_in_open)
        self.half_open_calls = half_open_calls
        self.max_wait_in_half_open = (
            parse_duration(max_wait_in_half_open) if max_wait_in_half_open else 0.0
        )
        self.automatic_half_open = automatic_half_open
        self.record_types = record
        self.ignore_types = (*_NOT_COUNTED, *ignore)
        self.failure_if = failure_if
        self.fallback = fallback
        self.listeners = tuple(listeners)
        self.slo = slo
        self._plain = self.slow_call_ns is None and failure_if is None and not listeners
        self._fast = self._plain and window_type == "count"  # closed and nothing to measure
        self._clock = clock
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._generation = 0
        self._opened_at = 0
        self._permits: list[_Permit] = []
        self._probes_started = 0
        self._probe_results: list[tuple[int, int]] = []
        self._timer: threading.Timer | None = None
        self.rejected_calls = 0
        self._win: _CountWindow | _TimeWindow = self._new_window()

    def _new_window(self) -> _CountWindow | _TimeWindow:
        if self.window_type == "count":
            return _CountWindow(self.window)
        return _TimeWindow(self.window, self._clock)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state})"

    # -- state -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state (an open breaker past its wait reads as half-open if automatic)."""
        if self._state is State.OPEN and self.automatic_half_open and self._wait_over():
            self._to_half_open()
        return self._state

    def metrics(self) -> tuple[int, float, float]:
        """Return ``(calls, failure rate, slow-call rate)`` of the current window."""
        return self._win.rates()

    def _wait_over(self) -> bool:
        return self._clock.monotonic_ns() - self._opened_at >= self.wait_in_open * _NS

    def retry_after(self) -> float | None:
        """Seconds until an open breaker lets a probe through (``None`` if not open)."""
        if self._state is not State.OPEN:
            return None
        left = self.wait_in_open - (self._clock.monotonic_ns() - self._opened_at) / _NS
        return max(0.0, left)

    def _transition(self, new: State, *, expect: tuple[State, ...] | None = None) -> bool:
        with self._lock:
            old = self._state
            if old is new or (expect is not None and old not in expect):
                return False
            self._state = new
            self._generation += 1
            self._permits = []
            self._probes_started = 0
            self._probe_results = []
            if new is State.OPEN:
                self._opened_at = self._clock.monotonic_ns()
            if new in (State.CLOSED, State.METRICS_ONLY):
                self._win = self._new_window()
            self._fast = new is State.CLOSED and self._plain and self.window_type == "count"
        if new is State.OPEN and self.automatic_half_open:
            self._schedule_half_open()
        self._notify("state_change", old, new)
        return True

    def _schedule_half_open(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        timer = threading.Timer(self.wait_in_open, self._automatic_half_open)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _automatic_half_open(self) -> None:
        if self._wait_over():
            self._to_half_open()

    def _to_half_open(self) -> None:
        self._transition(State.HALF_OPEN, expect=(State.OPEN,))

    def trip(self) -> None:
        """Open the breaker now (as a page of its SLO does); it probes after the wait."""
        self._transition(State.OPEN, expect=(State.CLOSED, State.HALF_OPEN))

    def force_open(self) -> None:
        """Reject every call until :meth:`reset`."""
        self._transition(State.FORCED_OPEN)

    def disable(self) -> None:
        """Let every call through and record nothing until :meth:`reset`."""
        self._transition(State.DISABLED)

    def metrics_only(self) -> None:
        """Record and compute rates but never trip, until :meth:`reset`."""
        self._transition(State.METRICS_ONLY)

    def reset(self) -> None:
        """Close the breaker with an empty window."""
        if not self._transition(State.CLOSED):
            with self._lock:
                self._win = self._new_window()

    # -- admission -----------------------------------------------------------------------

    def _admit(self) -> _Permit | None:
        """Return a half-open permit, ``None`` to go ahead unpermitted, or raise."""
        state = self._state
        if state is State.OPEN and self._wait_over():
            self._to_half_open()
            state = self._state
        if state is State.HALF_OPEN:
            permit = self._take_permit()
            if permit is not None:
                return permit
        elif state in (State.DISABLED, State.METRICS_ONLY, State.CLOSED):
            return None
        self.rejected_calls += 1
        self._notify("rejected")
        raise CircuitOpenError(self.name, state, self.retry_after())

    def _take_permit(self) -> _Permit | None:
        now = self._clock.monotonic_ns()
        with self._lock:
            if self._state is not State.HALF_OPEN:
                return None
            if self._probes_started >= self.half_open_calls and self.max_wait_in_half_open:
                hung = [
                    p for p in self._permits if now - p.started > self.max_wait_in_half_open * _NS
                ]
                if hung:  # a probe that overran gives its permit to this caller
                    self._permits.remove(hung[0])
                    self._probes_started -= 1
            if self._probes_started >= self.half_open_calls:
                return None
            permit = _Permit(self._generation, now)
            self._permits.append(permit)
            self._probes_started += 1
            return permit

    def _release(self, permit: _Permit) -> None:
        """Give a permit back without a result (cancelled, interrupted, ignored)."""
        with self._lock:
            if permit.generation == self._generation and permit in self._permits:
                self._permits.remove(permit)
                self._probes_started -= 1

    # -- recording -----------------------------------------------------------------------

    def _on_success(self, permit: _Permit | None, duration_ns: int) -> None:
        slow = self.slow_call_ns is not None and duration_ns >= self.slow_call_ns
        self._record(permit, 0, int(slow))
        if self.listeners:
            self._notify("success", duration_ns / _NS)

    def _on_failure(self, permit: _Permit | None, exc: BaseException | None, d_ns: int) -> None:
        slow = self.slow_call_ns is not None and d_ns >= self.slow_call_ns
        self._record(permit, 1, int(slow))
        if self.listeners:
            self._notify("failure", exc, d_ns / _NS)

    def _on_exception(self, permit: _Permit | None, exc: BaseException, d_ns: int) -> None:
        if isinstance(exc, self.ignore_types):  # neither success nor failure
            if permit is not None:
                self._release(permit)
        elif isinstance(exc, self.record_types):
            self._on_failure(permit, exc, d_ns)
        else:  # an exception we were not asked to record: the dependency answered
            self._on_success(permit, d_ns)

    def _record(self, permit: _Permit | None, failed: int, slow: int) -> None:
        state = self._state
        if permit is not None:
            self._probe_result(permit, failed, slow)
            return
        if state is State.DISABLED:
            return
        self._win.record(failed, slow)
        if (failed or slow) and state is State.CLOSED:
            calls, fail_rate, slow_rate = self._win.rates()
            if calls >= self.minimum_calls and (
                fail_rate >= self.failure_rate or slow_rate >= self.slow_call_rate
            ):
                self._transition(State.OPEN, expect=(State.CLOSED,))

    def _probe_result(self, permit: _Permit, failed: int, slow: int) -> None:
        with self._lock:
            if permit.generation != self._generation or permit not in self._permits:
                return  # a probe that outlived its half-open period
            self._permits.remove(permit)
            self._probe_results.append((failed, slow))
            results = list(self._probe_results)
        if len(results) < self.half_open_calls:
            return
        n = len(results)
        fail_rate = sum(f for f, _ in results) / n
        slow_rate = sum(s for _, s in results) / n
        if fail_rate >= self.failure_rate or slow_rate >= self.slow_call_rate:
            self._transition(State.OPEN, expect=(State.HALF_OPEN,))
        else:
            self._transition(State.CLOSED, expect=(State.HALF_OPEN,))

    def _judge(self, permit: _Permit | None, result: object, d_ns: int) -> None:
        predicate = self.failure_if
        if predicate is not None and predicate(result):
            self._on_failure(permit, None, d_ns)
        else:
            self._on_success(permit, d_ns)

    def _notify(self, method: str, *args: Any) -> None:
        for listener in list(self.listeners):
            try:
                getattr(listener, method)(self, *args)
            except Exception:
                _log.exception("circuit breaker %r listener %r failed", self.name, listener)

    # -- admission (slakit.typing.Admission, for middleware) ------------------------------

    def admit_request(self, criticality: str | None = None) -> _Permit | None:  # noqa: ARG002 - the protocol's signature
        """Let a request through or raise :class:`CircuitOpenError`; returns its permit."""
        return None if self._state is State.CLOSED else self._admit()

    def finish_request(self, ticket: object, success: bool | None, duration_ns: int) -> None:
        """Count a request let through by :meth:`admit_request`; ``None`` frees its permit."""
        permit = ticket if isinstance(ticket, _Permit) else None
        if success is None:
            if permit is not None:
                self._release(permit)
        elif success:
            self._on_success(permit, duration_ns)
        else:
            self._on_failure(permit, None, duration_ns)

    # -- calling -------------------------------------------------------------------------

    def _rejected(self, exc: CircuitOpenError, args: Any, kwargs: Any) -> Any:
        if self.fallback is None:
            raise exc
        return self.fallback(exc, *args, **kwargs)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn`` through the breaker; raises :class:`CircuitOpenError` when rejected."""
        permit = None
        if self._state is not State.CLOSED:
            try:
                permit = self._admit()
            except CircuitOpenError as exc:
                return cast("R", self._rejected(exc, args, kwargs))
        timed = self.slow_call_ns is not None
        now = self._clock.monotonic_ns
        t0 = now() if timed else 0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(permit, exc, now() - t0 if timed else 0)
            raise
        if permit is None and self._plain:
            if self._state is not State.DISABLED:  # the closed fast path, lock-free
                self._win.record(0, 0)
            return result
        self._judge(permit, result, now() - t0 if timed else 0)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        permit = None
        if self._state is not State.CLOSED:
            try:
                permit = self._admit()
            except CircuitOpenError as exc:
                out = self._rejected(exc, args, kwargs)
                return cast("R", await out if inspect.isawaitable(out) else out)
        now = self._clock.monotonic_ns
        t0 = now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(permit, exc, now() - t0)
            raise
        self._judge(permit, result, now() - t0)
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn`` (sync or async) so every call goes through the breaker."""
        if inspect.iscoroutinefunction(fn):
            async_fn = cast("Callable[P, Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.call_async(async_fn, *args, **kwargs)

            return cast("Callable[P, R]", async_wrapper)

        breaker = self

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not breaker._fast:
                return breaker.call(fn, *args, **kwargs)
            # closed, count window, nothing to measure: _CountWindow.record inlined
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                breaker._on_exception(None, exc, 0)
                raise
            w = breaker._win
            i = next(w.counter) % w.size  # type: ignore[union-attr]
            w.fail[i] = 0  # type: ignore[union-attr]
            w.slow[i] = 0  # type: ignore[union-attr]
            return result

        return wrapper

    def add_listener(self, listener: CircuitBreakerListener) -> None:
        """Add a listener (listeners see every call, so the fast path is left)."""
        self.listeners = (*self.listeners, listener)
        self._plain = self._fast = False

    def guard(self) -> Guard:
        """Return a context manager that guards its block like a call (sync or async)."""
        return Guard(self)

    # -- SLO binding ---------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """
        Open on a violation; half-open probes close the breaker again.

        Bound with ``slo=`` (subscribed to the engine directly), it opens when that SLO
        pages (a critical violation). In a :class:`~slakit.remediate.policy.Policy` it
        opens on the violations the policy hands it. Budget exhaustion never opens it:
        an exhausted monthly budget must not hold the breaker open for the month.
        """
        if not isinstance(event, ViolationOpened) or event.violation.rule == "budget":
            return
        v = event.violation
        if self.slo is not None and (v.slo != self.slo or v.severity is not Severity.CRITICAL):
            return
        _log.warning("circuit breaker %r opened: %s/%s %s", self.name, v.slo, v.objective, v.rule)
        self.trip()


class Guard:
    """Context manager made by :meth:`CircuitBreaker.guard`; one per block."""

    __slots__ = ("_breaker", "_permit", "_t0")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._permit: _Permit | None = None
        self._t0 = 0

    def __enter__(self) -> Self:
        b = self._breaker
        self._permit = b._admit() if b._state is not State.CLOSED else None
        self._t0 = b._clock.monotonic_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        b = self._breaker
        d = b._clock.monotonic_ns() - self._t0
        if exc is None:
            b._on_success(self._permit, d)
        else:
            b._on_exception(self._permit, exc, d)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
