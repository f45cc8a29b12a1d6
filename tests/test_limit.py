"""Adaptive concurrency limits against a simulated server, on a fake clock."""

from __future__ import annotations

import heapq
import random

import pytest

from slakit.remediate.limit import AIMD, ConcurrencyLimiter, Gradient2
from slakit.remediate.shed import RequestShedError
from slakit.testing import FakeClock

BASE = 0.010  # service time of one request when the server is not saturated


def simulate(limiter, clock, capacity, duration, clients=100, seed=1, start=0.0, t0=0.0):
    """
    Closed-loop clients against a server that serves `capacity(t)` requests at once in
    BASE seconds; past that, requests queue and take BASE × inflight / capacity.

    Returns (time, limit) samples and completed requests per second.
    """
    rng = random.Random(seed)
    events = [(t0 + rng.uniform(0, 0.01), 0, 0.0) for _ in range(clients)]
    heapq.heapify(events)
    t, inflight, done, samples = t0, 0, 0, []
    while events:
        when, kind, started = heapq.heappop(events)
        if when > t0 + duration:
            break
        clock.advance(when - t)
        t = when
        if kind == 0:  # a client sends
            if limiter.try_acquire():
                inflight += 1
                c = capacity(t)
                rtt = BASE * max(1.0, inflight / c) * rng.uniform(0.9, 1.1)
                heapq.heappush(events, (t + rtt, 1, t))
            else:
                heapq.heappush(events, (t + 0.002, 0, 0.0))  # rejected: retry shortly
        else:  # a request completes
            inflight -= 1
            done += 1
            limiter.release(t - started, started=round(started * 1e9 + start))
            heapq.heappush(events, (t + 0.0001, 0, 0.0))
        samples.append((t, limiter.limit))
    return samples, done / duration


def between(samples, start, end=float("inf")):
    return [limit for t, limit in samples if start < t <= end]


@pytest.mark.parametrize(
    ("algorithm", "timeout", "low", "high"),
    [
        (AIMD(), 0.015, 20, 30),  # the 15 ms timeout sits at 1.5 × capacity
        (Gradient2(), None, 30, 50),  # tolerance 1.5 plus the sqrt queue: ~2 × capacity
    ],
    ids=["aimd", "gradient2"],
)
class TestConvergence:
    def test_converges_to_capacity(self, algorithm, timeout, low, high):
        """The limit settles in a narrow band above capacity; throughput is capacity."""
        clock = FakeClock()
        limiter = ConcurrencyLimiter(algorithm, timeout=timeout, clock=clock)

        samples, throughput = simulate(limiter, clock, lambda t: 20, duration=40)
        settled = between(samples, 20)

        assert 2_000 == pytest.approx(throughput, rel=0.02)
        assert low <= min(settled) <= max(settled) <= high
        assert max(settled) / min(settled) < 1.25

    def test_follows_a_capacity_drop(self, algorithm, timeout, low, high):
        """When the server halves its capacity, the limit comes down with it."""
        clock = FakeClock()
        limiter = ConcurrencyLimiter(algorithm, timeout=timeout, clock=clock)

        samples, _ = simulate(limiter, clock, lambda t: 20 if t < 25 else 10, duration=55)
        before, after = between(samples, 15, 25), between(samples, 40)

        assert max(after) < min(before)
        assert low / 2 <= min(after)
        assert max(after) <= high / 2 + 5


class TestWhyTheChanges:
    def test_per_sample_drops_collapse_aimd(self):
        """Backing off on every drop (Netflix's AIMD) collapses; once per event does not."""
        clock = FakeClock()
        per_sample = ConcurrencyLimiter(
            AIMD(), timeout=0.015, window_size=1, min_window=0, clock=clock
        )
        per_sample._last_decrease = float("-inf")  # disable the once-per-event rule
        per_sample.release = _every_drop(per_sample)  # type: ignore[method-assign]

        samples, _ = simulate(per_sample, clock, lambda t: 20, duration=30)

        assert min(between(samples, 10)) <= 2

    def test_cancelled_requests_are_not_samples(self):
        """A cancelled request frees its slot and moves nothing."""
        clock = FakeClock()
        limiter = ConcurrencyLimiter(AIMD(initial=5), window_size=1, min_window=0, clock=clock)
        assert limiter.try_acquire()

        limiter.release(None)

        assert (0, 5.0) == (limiter.inflight, limiter.limit)

    def test_drop_lowers_gradient2(self):
        """A drop lowers Gradient2's limit (Netflix's version ignores it)."""
        g = Gradient2(initial=50)

        assert 45 == pytest.approx(g.update(50, 0.01, 50, dropped=True))


class TestGuard:
    def test_rejects_past_the_limit(self):
        """At the limit the guard raises RequestShedError; a timeout error is a drop."""
        clock = FakeClock()
        limiter = ConcurrencyLimiter(
            AIMD(initial=1, min_limit=0.5), window_size=1, min_window=0, clock=clock
        )

        with limiter.guard():
            with pytest.raises(RequestShedError):
                limiter.guard().__enter__()

        def times_out():
            with limiter.guard():
                clock.advance(1)
                raise TimeoutError

        with pytest.raises(TimeoutError):
            times_out()

        assert 1 == limiter.rejected
        assert 1.8 == pytest.approx(limiter.limit)  # +1 for the success, x 0.9 for the drop


def _every_drop(limiter):
    """A release that applies every drop immediately, as Netflix's AIMD does."""

    def release(rtt, *, dropped=False, started=None):
        limiter.inflight -= 1
        if rtt is None:
            return
        dropped = dropped or rtt > (limiter.timeout or float("inf"))
        limiter.limit = limiter.algorithm.update(limiter.limit, rtt, limiter.inflight + 1, dropped)

    return release
