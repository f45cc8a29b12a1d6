"""
Load shedding: reject work before it runs, lowest criticality first.

Every strategy yields an overall rejection probability ``p``:

* a fixed fraction (:meth:`LoadShedder.set_fraction`, or ``fraction=``);
* Google SRE adaptive throttling, ``max(0, (requests - K * accepts) / (requests + 1))``
  over a trailing window (``adaptive=True``);
* Envoy's admission control, ``max(0, (requests - successes / threshold) /
  (requests + 1)) ** (1 / aggression)``, with the threshold taken from the SLO target
  (``success_threshold=``);
* an SLO page (``slo=``, or in a :class:`~slakit.remediate.policy.Policy`): each page
  raises a shed level by ``page_step``, and admission control's aggression follows the
  page's burn rate. The level falls linearly to zero over ``recovery`` once the work
  it admits is healthy again (a success ratio of at least ``healthy`` over the last
  ten seconds) or the page resolves. Relaxing on the admitted work's health, not only
  on the page, matters: shed requests count as bad for availability by default, so a
  shedder waiting for the page to resolve would keep it burning for ever. Budget
  exhaustion never raises the level. A caller that reports no outcomes (``check()``
  without ``record()``) gets the level held for one ``recovery`` period, then relaxed.

The largest wins. ``p`` is then spread over the criticality classes using their
measured share of traffic, lowest class first: a fast burn sheds SHEDDABLE traffic
before SHEDDABLE_PLUS, CRITICAL only when both are gone, and CRITICAL_PLUS never
while any other class remains. Per-class rates are recomputed every 100 ms, so a
decision costs a bucket increment and one ``random()``. As in Google's client-side
throttling, a request is decided on the counts before it, then counted.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import random
import threading
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast

from slakit.clock import SYSTEM
from slakit.events import ViolationOpened, ViolationResolved
from slakit.exceptions import RejectedError
from slakit.spec import (
    SLO,
    Availability,
    Severity,
    parse_duration,
    parse_fraction,
    parse_target,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from slakit.events import Event
    from slakit.typing import Clock

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("slakit.shed")
_NS = 1_000_000_000
_REFRESH_NS = 100_000_000  # how often per-class rejection rates are recomputed


class Criticality(enum.IntEnum):
    """How much a request matters, lowest first (Google's classes)."""

    SHEDDABLE = 0
    SHEDDABLE_PLUS = 1
    CRITICAL = 2
    CRITICAL_PLUS = 3

    @classmethod
    def parse(cls, value: str | int | Criticality | None, default: Criticality) -> Criticality:
        """Read a header or argument value (``"sheddable"``, ``"CRITICAL_PLUS"``, ``2``)."""
        if value is None or value == "":
            return default
        if isinstance(value, Criticality):
            return value
        if isinstance(value, int):
            return cls(value) if 0 <= value <= 3 else default
        name = value.strip().upper().replace("-", "_")
        return cls.__members__.get(name, default)


class RequestShedError(RejectedError):
    """Raised instead of running work the shedder rejected; answer 503 + Retry-After."""

    def __init__(self, name: str, criticality: Criticality, retry_after: float) -> None:
        self.name = name
        self.criticality = criticality
        self.retry_after = retry_after
        super().__init__(
            f"load shedder {name!r} rejected a {criticality.name} request; "
            f"retry after {retry_after:g}s"
        )


class _Buckets:
    """Per-second request and success counts by class over a trailing window."""

    __slots__ = ("epochs", "failures", "requests", "seconds", "successes")

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.epochs = [-1] * seconds
        self.requests = [[0, 0, 0, 0] for _ in range(seconds)]
        self.successes = [[0, 0, 0, 0] for _ in range(seconds)]
        self.failures = [0] * seconds

    def _slot(self, epoch: int) -> int:
        i = epoch % self.seconds
        if self.epochs[i] != epoch:  # statistics: a racing reset may drop a count
            self.requests[i] = [0, 0, 0, 0]
            self.successes[i] = [0, 0, 0, 0]
            self.failures[i] = 0
            self.epochs[i] = epoch
        return i

    def failure(self, epoch: int) -> None:
        self.failures[self._slot(epoch)] += 1

    def outcomes(self, epoch: int, seconds: int) -> tuple[int, int]:
        """Successes and failures of admitted requests over the last ``seconds``."""
        oldest = epoch - min(seconds, self.seconds) + 1
        ok = failed = 0
        for i, e in enumerate(self.epochs):
            if e >= oldest:
                ok += sum(self.successes[i])
                failed += self.failures[i]
        return ok, failed

    def request(self, epoch: int, c: int) -> None:
        self.requests[self._slot(epoch)][c] += 1

    def success(self, epoch: int, c: int) -> None:
        self.successes[self._slot(epoch)][c] += 1

    def totals(self, epoch: int) -> tuple[list[int], list[int]]:
        req, ok = [0, 0, 0, 0], [0, 0, 0, 0]
        oldest = epoch - self.seconds + 1
        for i, e in enumerate(self.epochs):
            if e >= oldest:
                for c in range(4):
                    req[c] += self.requests[i][c]
                    ok[c] += self.successes[i][c]
        return req, ok


def cascade(p: float, shares: list[float], sheddable_below: int = 3) -> list[float]:
    """
    Spread an overall rejection probability over classes, lowest first.

    Returns per-class rejection probabilities whose traffic-weighted sum is ``p``
    (as far as the classes below ``sheddable_below`` allow).
    """
    out = [0.0, 0.0, 0.0, 0.0]
    left = max(0.0, min(1.0, p))
    for c in range(min(4, sheddable_below)):
        share = shares[c]
        if left <= 0:
            break
        if share <= 0:
            out[c] = 1.0 if left > 0 else 0.0  # no traffic seen: shed it if it comes
            continue
        take = min(share, left)
        out[c] = take / share
        left -= take
    return out


class LoadShedder:
    """
    Rejects work before it runs, lowest criticality first.

    Args:
        name: shown in errors and logs.
        fraction: a fixed share of all traffic to shed.
        adaptive: use Google SRE adaptive throttling with multiplier ``k``.
        k: accepts multiplier for adaptive throttling (2 sheds only when more than
            half the requests fail).
        success_threshold: Envoy admission control's success-rate threshold (e.g.
            the SLO target); ``None`` disables it.
        aggression: admission control's aggression (1 is linear).
        window: seconds of history for the adaptive strategies.
        sheddable_below: classes below this are sheddable (default: all but
            CRITICAL_PLUS, which is shed only if set to 4).
        slo: shed when this SLO pages (subscribe the shedder to the engine); given as
            an :class:`~slakit.spec.SLO`, its availability target is also admission
            control's success threshold unless ``success_threshold`` is set.
        page_step: how much each page raises the shed level.
        max_level: the shed level a page may reach.
        recovery: how long the level takes to fall to zero once admitted work is
            healthy or the page resolves.
        healthy: the admitted success ratio that counts as recovered (default: the
            success threshold, else 0.99).
        retry_after: seconds suggested to rejected callers.
        default_criticality: for requests that say nothing.

    """

    def __init__(
        self,
        name: str = "shedder",
        *,
        fraction: float | str = 0.0,
        adaptive: bool = False,
        k: float = 2.0,
        success_threshold: float | str | None = None,
        aggression: float = 1.0,
        window: int = 120,
        sheddable_below: Criticality | int = Criticality.CRITICAL_PLUS,
        slo: str | SLO | None = None,
        page_step: float | str = 0.25,
        max_level: float | str = 0.9,
        recovery: float | str = "5m",
        healthy: float | str | None = None,
        retry_after: float = 1.0,
        default_criticality: Criticality = Criticality.CRITICAL,
        clock: Clock = SYSTEM,
        rng: random.Random | None = None,
    ) -> None:
        if k < 1 or aggression <= 0 or window < 1:
            raise ValueError("k must be >= 1, aggression > 0 and window >= 1")
        self.name = name
        self.fraction = parse_fraction(fraction)
        self.adaptive = adaptive
        self.k = k
        if success_threshold is None and isinstance(slo, SLO):
            targets = [o.target for o in slo.objectives if isinstance(o, Availability)]
            success_threshold = targets[0] if targets else None
        self.success_threshold = (
            None if success_threshold is None else parse_target(success_threshold)
        )
        self.aggression = aggression
        self.sheddable_below = int(sheddable_below)
        self.slo = slo.name if isinstance(slo, SLO) else slo
        self.page_step = parse_fraction(page_step)
        self.max_level = parse_fraction(max_level)
        self.recovery = parse_duration(recovery)
        self.healthy = (
            parse_fraction(healthy)
            if healthy is not None
            else (self.success_threshold if self.success_threshold is not None else 0.99)
        )
        self.retry_after = retry_after
        self.default_criticality = default_criticality
        self._clock = clock
        self._random = (rng or random.Random()).random  # noqa: S311 - sampling, not secrets
        self._buckets = _Buckets(window)
        self._lock = threading.Lock()
        self._page_level = 0.0
        self._paging = 0  # open pages of the bound SLO
        self._relax_from: float | None = None  # when the level started to fall
        self._raised_at = 0.0
        self._burn_aggression = 1.0
        self._epoch = -1
        self._reject = [0.0, 0.0, 0.0, 0.0]
        self.shed_counts = [0, 0, 0, 0]
        """Requests rejected so far, by class."""

    def __repr__(self) -> str:
        return f"LoadShedder({self.name!r}, p={self.rejection_probability():.3f})"

    # -- the level -------------------------------------------------------------------

    def set_fraction(self, fraction: float | str) -> None:
        """Shed a fixed share of all traffic (lowest class first) until changed."""
        self.fraction = parse_fraction(fraction)
        self._epoch = -1  # recompute at the next decision

    def page_level(self) -> float:
        """Return the shed level pages ask for now (it falls once things are healthy)."""
        if self._relax_from is None:
            return self._page_level
        elapsed = self._clock.time() - self._relax_from
        return self._page_level * max(0.0, 1.0 - elapsed / self.recovery)

    def _follow_health(self, now_ns: int) -> None:
        """Start relaxing when admitted work is healthy; hold the level when it is not."""
        if self._page_level <= 0:
            return
        ok, failed = self._buckets.outcomes(now_ns // _NS, seconds=10)
        if ok + failed < 10:  # no outcomes reported: hold one recovery period, then relax
            if self._relax_from is None and self._clock.time() - self._raised_at >= self.recovery:
                with self._lock:
                    self._relax_from = self._clock.time()
            return
        healthy = ok / (ok + failed) >= self.healthy
        with self._lock:
            if healthy and self._relax_from is None:
                self._relax_from = self._clock.time()
            elif not healthy and self._relax_from is not None and self._paging:
                self._page_level = self.page_level()  # hold where it got to
                self._relax_from = None

    def rejection_probability(self) -> float:
        """Return the share of all traffic to reject now (before it is spread over classes)."""
        req, ok = self._buckets.totals(self._now_epoch())
        return self._probability(sum(req), sum(ok))

    def _probability(self, requests: int, accepts: int) -> float:
        p = max(self.fraction, self.page_level())
        if self.adaptive:
            p = max(p, (requests - self.k * accepts) / (requests + 1))
        if self.success_threshold is not None:
            base = (requests - accepts / self.success_threshold) / (requests + 1)
            if base > 0:
                p = max(p, base ** (1.0 / (self.aggression * self._burn_aggression)))
        return max(0.0, min(1.0, p))

    def _now_epoch(self) -> int:
        return self._clock.monotonic_ns() // _NS

    def _refresh(self, now_ns: int) -> list[float]:
        self._follow_health(now_ns)
        req, ok = self._buckets.totals(now_ns // _NS)
        total = sum(req)
        p = self._probability(total, sum(ok))
        shares = [r / total for r in req] if total else [0.25, 0.25, 0.25, 0.25]
        reject = cascade(p, shares, self.sheddable_below)
        self._reject = reject
        self._epoch = now_ns // _REFRESH_NS
        return reject

    def class_rejection(self, criticality: Criticality) -> float:
        """Return the probability that a request of ``criticality`` is rejected now."""
        return self._refresh(self._clock.monotonic_ns())[criticality]

    # -- deciding --------------------------------------------------------------------

    def admit(self, criticality: Criticality | str | int | None = None) -> bool:
        """Decide one request: ``True`` to run it, ``False`` to reject it (counted)."""
        c = (
            criticality
            if type(criticality) is Criticality
            else Criticality.parse(criticality, self.default_criticality)
        )
        now = self._clock.monotonic_ns()
        reject = self._reject if now // _REFRESH_NS == self._epoch else self._refresh(now)
        self._buckets.request(now // _NS, c)  # decided on the counts before it, then counted
        p = reject[c]
        if p > 0 and (p >= 1 or self._random() < p):
            self.shed_counts[c] += 1
            return False
        return True

    def check(self, criticality: Criticality | str | int | None = None) -> Criticality:
        """Admit or raise :class:`RequestShedError`; returns the request's class."""
        c = Criticality.parse(criticality, self.default_criticality)
        if not self.admit(c):
            raise RequestShedError(self.name, c, self.retry_after)
        return c

    def record(self, success: bool, criticality: Criticality | int | None = None) -> None:
        """Report how an admitted request ended (feeds the adaptive strategies)."""
        c = self.default_criticality if criticality is None else Criticality(criticality)
        if success:
            self._buckets.success(self._now_epoch(), c)
        else:
            self._buckets.failure(self._now_epoch())

    def admit_request(self, criticality: str | None = None) -> Criticality:
        """Admit a request (its class from a header value) or raise; returns its class."""
        return self.check(criticality)

    def finish_request(self, ticket: object, success: bool | None, duration_ns: int) -> None:  # noqa: ARG002 - the protocol's signature
        """Report how a request admitted by :meth:`admit_request` ended."""
        if success is not None:
            self.record(success, ticket if isinstance(ticket, Criticality) else None)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn``: each call is admitted (default class) and its outcome recorded."""
        if inspect.iscoroutinefunction(fn):
            afn = cast("Callable[P, Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with self.guard():
                    return await afn(*args, **kwargs)

            return cast("Callable[P, R]", awrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.guard():
                return fn(*args, **kwargs)

        return wrapper

    def guard(self, criticality: Criticality | str | int | None = None) -> ShedGuard:
        """Return a context manager that admits its block (or raises) and records it."""
        return ShedGuard(self, criticality)

    # -- SLO binding -----------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Raise the shed level on a page; let it fall gradually once things recover."""
        if not isinstance(event, ViolationOpened | ViolationResolved):
            return
        v = event.violation
        if v.rule == "budget":  # shedding does not bring back a spent monthly budget
            return
        if self.slo is not None and (v.slo != self.slo or v.severity is not Severity.CRITICAL):
            return
        with self._lock:
            if isinstance(event, ViolationOpened):
                self._page_level = min(self.max_level, self.page_level() + self.page_step)
                self._paging += 1
                self._relax_from = None
                self._raised_at = self._clock.time()
                if v.limit > 0 and v.actual > 0:  # a burn-rate page: aggression follows it
                    self._burn_aggression = max(self._burn_aggression, v.actual / v.limit)
                _log.warning(
                    "load shedder %r: %s/%s pages, shed level %.2f",
                    self.name,
                    v.slo,
                    v.rule,
                    self._page_level,
                )
            else:
                self._paging = max(0, self._paging - 1)
                if not self._paging:
                    if self._relax_from is None:
                        self._relax_from = self._clock.time()
                    self._burn_aggression = 1.0
        self._epoch = -1


class ShedGuard:
    """Context manager made by :meth:`LoadShedder.guard`."""

    __slots__ = ("_c", "_criticality", "_shedder")

    def __init__(self, shedder: LoadShedder, criticality: Criticality | str | int | None) -> None:
        self._shedder = shedder
        self._criticality = criticality
        self._c = Criticality.CRITICAL

    def __enter__(self) -> Self:
        self._c = self._shedder.check(self._criticality)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self._shedder.record(success=True, criticality=self._c)
        # a failure or cancellation is simply not an accept

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
