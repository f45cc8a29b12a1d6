"""The track decorator, the timing context manager and manual record."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

import slakit
from slakit import ring
from slakit.remediate import CircuitBreaker, LoadShedder
from slakit.testing import FakeClock
from tests.strategies import durations_ns


def slo(name: str = "t") -> slakit.SLO:
    return slakit.SLO(name, objectives=[slakit.Availability("99%"), slakit.Latency("100ms", "90%")])


def counts(registry: slakit.Registry, name: str = "t") -> ring.Counts:
    store = registry.store(name)
    store.consolidate()
    return store.read([(0, 4e9)]).lifetime


class Boom(Exception):
    pass


class NotFound(Exception):
    pass


class TestDecoratedKeepsItsIdentity:
    def test_sync(self, registry):
        """Result, exception, name, docstring and signature are unchanged."""

        def handler(a: int, b: str = "x", *, c: float = 1.0) -> str:
            """Handle things."""
            if a < 0:
                raise Boom(a)
            return f"{a}{b}{c}"

        wrapped = slakit.track(slo(), registry=registry)(handler)

        assert "1x1.0" == wrapped(1)
        with pytest.raises(Boom) as info:
            wrapped(-1)
        assert (-1,) == info.value.args
        assert "handler" == wrapped.__name__
        assert "Handle things." == wrapped.__doc__
        assert inspect.signature(handler) == inspect.signature(wrapped)
        assert handler is wrapped.__wrapped__

    def test_methods_static_and_class_methods(self, registry):
        """Methods bind; staticmethod and classmethod can be decorated either way round."""
        t = slakit.track(slo(), registry=registry)

        class Service:
            factor = 3

            @t
            def method(self, x):
                return x * 2

            @t
            @staticmethod
            def static(x):
                return x + 1

            @staticmethod
            @t
            def static_outer(x):
                return x + 2

            @t
            @classmethod
            def klass(cls, x):
                return x * cls.factor

        s = Service()

        assert (4, 2, 3, 6, 9) == (
            s.method(2),
            Service.static(1),
            s.static_outer(1),
            Service.klass(2),
            s.klass(3),
        )
        assert 5 == counts(registry).total

    def test_async(self, registry):
        """Coroutines stay coroutines and are timed to completion."""
        t = slakit.track(slo(), registry=registry)

        @t
        async def fetch(x):
            await asyncio.sleep(0)
            if x is None:
                raise Boom
            return x

        async def main():
            assert 7 == await fetch(7)
            with pytest.raises(Boom):
                await fetch(None)

        asyncio.run(main())

        assert inspect.iscoroutinefunction(fetch)
        assert (2, 1) == (counts(registry).total, counts(registry).bad)

    def test_generator(self, registry):
        """Generators yield the same items, take sends, return their value, record once."""
        t = slakit.track(slo(), registry=registry)

        @t
        def gen(n):
            total = 0
            for i in range(n):
                total += (yield i) or 0
            return total

        g = gen(3)
        items = [next(g), g.send(10), g.send(20)]
        with pytest.raises(StopIteration) as stop:
            g.send(30)

        assert [0, 1, 2] == items
        assert 60 == stop.value.value
        assert inspect.isgeneratorfunction(gen)
        assert 1 == counts(registry).total

    def test_generator_closed_early_is_ignored(self, registry):
        """A consumer that stops early is not the service's failure."""
        t = slakit.track(slo(), registry=registry)

        @t
        def gen():
            yield 1
            yield 2

        g = gen()
        next(g)
        g.close()

        c = counts(registry)
        assert (0, 1) == (c.total, c.ignored)

    def test_async_generator(self, registry):
        """Async generators yield, take asend and athrow, and record their failure."""
        t = slakit.track(slo(), registry=registry)

        @t
        async def agen():
            got = yield 1
            try:
                yield got
            except Boom:
                yield "caught"
            raise NotFound

        async def main():
            a = agen()
            first = await a.__anext__()
            second = await a.asend("sent")
            third = await a.athrow(Boom())
            with pytest.raises(NotFound):
                await a.__anext__()
            return first, second, third

        assert (1, "sent", "caught") == asyncio.run(main())
        assert inspect.isasyncgenfunction(agen)
        assert (1, 1) == (counts(registry).total, counts(registry).bad)


class TestClassification:
    def test_exceptions_are_bad_unless_listed(self, registry):
        """Raised: bad; ignored types: left out; expected types: good."""
        t = slakit.track(slo(), registry=registry, ignore=(KeyError,), expected=(NotFound,))

        @t
        def f(exc):
            if exc:
                raise exc

        for exc in (None, Boom, KeyError, NotFound, Boom):
            try:
                f(exc)
            except Exception:
                pass

        c = counts(registry)
        assert (4, 2, 1) == (c.total, c.bad, c.ignored)

    def test_cancellation_and_interrupts_are_ignored(self, registry):
        """A cancelled task or KeyboardInterrupt is not the service's failure."""
        t = slakit.track(slo(), registry=registry)

        @t
        def f(exc):
            raise exc

        for exc in (KeyboardInterrupt, asyncio.CancelledError, SystemExit):
            with pytest.raises(exc):
                f(exc)

        c = counts(registry)
        assert (0, 3) == (c.total, c.ignored)

    def test_rejected_calls_are_their_own_outcome(self, registry, clock):
        """A breaker's or shedder's refusal is recorded as rejected, not as a failure."""
        breaker = CircuitBreaker("b", clock=clock)
        breaker.force_open()
        shedder = LoadShedder(fraction=1.0, clock=clock)
        t = slakit.track(slo(), registry=registry)

        @t
        def guarded():
            return breaker.call(lambda: "never")

        @t
        def shed():
            with shedder.guard("sheddable"):
                return "never"

        for fn in (guarded, shed):
            with pytest.raises(slakit.RejectedError):
                fn()

        c = counts(registry)
        assert (0, 0, 2) == (c.total, c.bad, c.rejected)

    def test_result_predicate(self, registry):
        """A result the predicate rejects counts as bad; the result is still returned."""
        t = slakit.track(slo(), registry=registry, ok=lambda r: r["status"] < 500)

        @t
        def f(status):
            return {"status": status}

        assert {"status": 503} == f(503)
        f(200)

        c = counts(registry)
        assert (2, 1) == (c.total, c.bad)


class TestTimingAndRecord:
    def test_context_manager_times_the_block(self, clock, registry):
        """The block's duration comes from the registry's clock."""
        t = slakit.track(slo(), registry=registry)

        with t.time():
            clock.advance(0.3)
        with t.time() as timing:
            timing.fail()
        with pytest.raises(Boom), t.time():
            raise Boom

        c = counts(registry)
        assert (3, 2, (1,)) == (c.total, c.bad, c.slow)

    def test_async_context_manager(self, registry):
        """``async with`` works the same."""
        t = slakit.track(slo(), registry=registry)

        async def main():
            async with t.time():
                await asyncio.sleep(0)

        asyncio.run(main())

        assert 1 == counts(registry).total

    def test_manual_record(self, registry):
        """record(duration, ok) counts one call; slow when above the threshold."""
        s = slo()
        slakit.record(s, 0.5, ok=True, registry=registry)
        slakit.track(s, registry=registry).record(0.01, ok=False)

        c = counts(registry)
        assert (2, 1, (1,)) == (c.total, c.bad, c.slow)

    def test_default_registry(self):
        """Without a registry, tracking and reading go through the process-wide one."""
        s = slo("defaulted")

        @slakit.track(s)
        def f():
            return 1

        f()

        assert 1 == s.snapshot().lifetime.total
        assert 1.0 == s.budget_remaining()

    def test_same_name_different_slo_is_refused(self, registry):
        """Two different SLOs may not share a name in one registry."""
        slakit.track(slo("x"), registry=registry)
        other = slakit.SLO("x", objectives=[slakit.Availability("90%")])

        with pytest.raises(ValueError, match="already registered"):
            slakit.track(other, registry=registry)


class TestInlinedPathMatchesRecordNs:
    @given(st.lists(durations_ns, min_size=1, max_size=40))
    def test_same_keys(self, durations):
        """The wrapper's inlined record and record_ns write identical keys."""
        clock = FakeClock()
        a = ring.Store(clock, thresholds=[0.25, 1.0])
        b = ring.Store(clock, thresholds=[0.25, 1.0])
        pending = iter(durations)

        def work():
            clock.advance(next(pending) / 1e9)

        wrapped = a.timed(work, lambda exc: ring.BAD)
        for d in durations:
            wrapped()
            t1 = clock.monotonic_ns()
            b.record_ns(t1 - d, t1, ring.GOOD)

        def slots(store):
            shard = store._local.shard
            return [(s.epoch, s.hist) for s in (*shard.pending, shard.cur)]

        assert slots(b) == slots(a)
