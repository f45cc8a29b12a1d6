"""
Recording: the ``track`` decorator, a timing context manager and manual ``record``.

One :class:`Tracker` per SLO holds the classification rules; thin drivers for plain,
async, generator and async-generator functions are chosen once, at decoration time.
The sync driver is a plain closure: measured, it costs a third of a generic
``wrapt`` wrapper, and a function defined in a class body stays a function, so
methods bind as usual (``benchmarks/hotpath.py``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast

from slakit.exceptions import RejectedError
from slakit.faults import internal_error
from slakit.registry import Registry, default_registry
from slakit.ring import BAD, GOOD, IGNORED, REJECTED

if TYPE_CHECKING:
    from types import TracebackType

    from slakit.spec import SLO
    from slakit.typing import ResultPredicate

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

_NEVER_BAD: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    GeneratorExit,
    KeyboardInterrupt,
    SystemExit,
)
"""Not the service's fault: a caller went away or the process is stopping."""


class Tracker:
    """
    Records calls against one SLO.

    Made by :func:`track`; use it as a decorator, through :meth:`time`, or with
    :meth:`record`.

    Args:
        slo: the SLO the calls count towards.
        ignore: exception types whose calls are left out of every SLI.
        expected: exception types that count as success (e.g. a "not found").
        ok: a predicate on the result; ``False`` makes the call bad.
        registry: where the SLO's store lives (default: the process-wide one).

    """

    __slots__ = ("_expected", "_ignore", "_mono", "_ok", "_rec", "slo", "store")

    def __init__(
        self,
        slo: SLO,
        *,
        ignore: tuple[type[BaseException], ...] = (),
        expected: tuple[type[BaseException], ...] = (),
        ok: ResultPredicate | None = None,
        registry: Registry | None = None,
    ) -> None:
        reg = registry if registry is not None else default_registry()
        self.slo = slo
        self.store = reg.register(slo)
        self._ignore = (*_NEVER_BAD, *ignore)
        self._expected = expected
        self._ok = ok
        self._mono = reg.clock.monotonic_ns
        self._rec = self.store.record_ns

    def classify(self, exc: BaseException) -> int:
        """Return the outcome code of a call that raised ``exc``."""
        if isinstance(exc, RejectedError):  # a breaker or shedder refused it
            return REJECTED
        if isinstance(exc, self._ignore):
            return IGNORED
        if isinstance(exc, self._expected):
            return GOOD
        return BAD

    def _result(self, result: object) -> int:
        ok = self._ok
        if ok is None:
            return GOOD
        try:
            return GOOD if ok(result) else BAD
        except Exception as err:  # the predicate failed: the call's result is still returned
            internal_error("result predicate", err)
            return IGNORED

    def __call__(self, fn: F) -> F:
        """Decorate ``fn``; its result, exceptions, name, docstring and signature are kept."""
        if isinstance(fn, staticmethod | classmethod):
            return cast("F", type(fn)(self(fn.__func__)))
        if inspect.isasyncgenfunction(fn):
            wrapped: Callable[..., Any] = self._async_gen(fn)
        elif inspect.iscoroutinefunction(fn):
            wrapped = self._async(fn)
        elif inspect.isgeneratorfunction(fn):
            wrapped = self._gen(fn)
        else:
            wrapped = self._sync(fn)
        return cast("F", functools.wraps(fn)(wrapped))

    def _sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        if self._ok is None:
            return self.store.timed(fn, self.classify)
        now, rec, classify, judge = self._mono, self._rec, self.classify, self._result

        def call_checked(*args: P.args, **kwargs: P.kwargs) -> R:
            t0 = now()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                rec(t0, now(), classify(exc))
                raise
            rec(t0, now(), judge(result))
            return result

        return call_checked

    def _async(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        now, rec, classify, judge = self._mono, self._rec, self.classify, self._result

        async def call(*args: P.args, **kwargs: P.kwargs) -> Any:
            t0 = now()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                rec(t0, now(), classify(exc))
                raise
            rec(t0, now(), judge(result))
            return result

        return call

    def _gen(self, fn: Callable[P, Generator[Any, Any, Any]]) -> Callable[P, Any]:
        now, rec, classify, judge = self._mono, self._rec, self.classify, self._result

        def call(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
            t0 = now()
            try:
                result = yield from fn(*args, **kwargs)
            except BaseException as exc:
                rec(t0, now(), classify(exc))
                raise
            rec(t0, now(), judge(result))
            return result

        return call

    def _async_gen(self, fn: Callable[P, AsyncGenerator[Any, Any]]) -> Callable[P, Any]:
        now, rec, classify = self._mono, self._rec, self.classify

        async def call(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Any, Any]:
            agen = fn(*args, **kwargs)
            t0 = now()
            try:
                sent: Any = None
                while True:
                    try:
                        item = await agen.asend(sent)
                    except StopAsyncIteration:
                        break
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await agen.aclose()
                        raise
                    except BaseException as thrown:  # delegate throw() like `yield from`
                        try:
                            item = await agen.athrow(thrown)
                        except StopAsyncIteration:
                            break
                        sent = yield item
            except BaseException as exc:
                rec(t0, now(), classify(exc))
                raise
            rec(t0, now(), GOOD)

        return call

    def time(self) -> Timing:
        """Return a context manager that records the block it guards as one call."""
        return Timing(self)

    def record(self, duration: float, ok: bool = True) -> None:
        """Record a call that ended now and lasted ``duration`` seconds."""
        self.store.record(duration, ok)


class Timing:
    """
    Context manager made by :meth:`Tracker.time`: times its block as one call.

    An exception is classified as by the decorator; :meth:`fail` marks the block bad
    without raising.
    """

    __slots__ = ("_failed", "_t0", "_tracker")

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._t0 = 0
        self._failed = False

    def fail(self) -> None:
        """Count this block as bad even if it does not raise."""
        self._failed = True

    def __enter__(self) -> Self:
        self._t0 = self._tracker._mono()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        t = self._tracker
        outcome = t.classify(exc) if exc is not None else BAD if self._failed else GOOD
        t._rec(self._t0, t._mono(), outcome)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def track(
    slo: SLO,
    *,
    ignore: tuple[type[BaseException], ...] = (),
    expected: tuple[type[BaseException], ...] = (),
    ok: ResultPredicate | None = None,
    registry: Registry | None = None,
) -> Tracker:
    """
    Return a :class:`Tracker` for ``slo``: decorate functions with it, or time blocks.

    Example::

        @slakit.track(checkout)
        async def place_order(request): ...

        with slakit.track(checkout).time():
            charge_card()
    """
    return Tracker(slo, ignore=ignore, expected=expected, ok=ok, registry=registry)


def record(slo: SLO, duration: float, ok: bool = True, *, registry: Registry | None = None) -> None:
    """Record one call of ``duration`` seconds that ended now."""
    reg = registry if registry is not None else default_registry()
    reg.register(slo).record(duration, ok)
