"""
The store against a brute-force oracle over the raw event list.

A hypothesis state machine records events from several threads (each its own shard),
moves and steps the clock, ticks the engine, and checks that every window's counts,
SLI, budget, burn rate and percentiles equal what the oracle computes from the events,
with the alignment the store documents: a span read at resolution ``r`` covers the
epochs ``floor(start / r) .. floor(end / r)``.
"""

from __future__ import annotations

import math
import queue
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import slakit
from slakit import ring, sketch
from slakit.testing import FakeClock
from tests.strategies import durations_ns, outcomes

TIMED = (ring.GOOD, ring.BAD, ring.DISCONNECTED)  # outcomes whose latency counts

THRESHOLD_NS = 250_000_000
TARGET = 0.999
WINDOWS = (1.0, 5.0, 300.0, 1_800.0, 3_600.0, 21_600.0, 259_200.0, 30 * 86_400.0, 35 * 86_400.0)


class ShardThreads:
    """Persistent threads that run recording jobs on request: one shard each."""

    def __init__(self, n: int) -> None:
        self.jobs: list[queue.Queue] = []
        self.threads = []
        for i in range(n):
            q: queue.Queue = queue.Queue()
            t = threading.Thread(target=self._run, args=(q,), name=f"shard-{i}", daemon=True)
            t.start()
            self.jobs.append(q)
            self.threads.append(t)

    @staticmethod
    def _run(q: queue.Queue) -> None:
        while True:
            job = q.get()
            if job is None:
                return
            fn, done = job
            fn()
            done.set()

    def run(self, i: int, fn) -> None:
        done = threading.Event()
        self.jobs[i].put((fn, done))
        assert done.wait(10)

    def close(self) -> None:
        for q in self.jobs:
            q.put(None)
        for t in self.threads:
            t.join(5)


def level_for(start: float, end: float, specs, newest: int, *, hist: bool = False) -> int:
    """The store's rule: the finest ring whose span holds ``start`` (rings end at ``newest``)."""
    for s in specs:
        floor = newest // s.resolution - s.slots + 1
        first = int(start // s.resolution) - (0 if hist else 1)
        if (end - start) / s.resolution + 2 <= s.slots and first >= floor:
            return s.resolution
    return specs[-1].resolution


class Oracle:
    """The raw events: (wall-clock second, duration ns, outcome)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, int, int]] = []

    def select(self, start: float, end: float, res: int):
        first, last = int(start // res), int(end // res)
        return [e for e in self.events if first <= e[0] // res <= last]

    def counts(self, start: float, end: float, res: int) -> tuple[int, ...]:
        sel = self.select(start, end, res)
        ran = [e for e in sel if e[2] in (ring.GOOD, ring.BAD)]
        total = len(ran)
        bad = sum(1 for e in ran if e[2] == ring.BAD)
        ignored = sum(1 for e in sel if e[2] == ring.IGNORED)
        rejected = sum(1 for e in sel if e[2] == ring.REJECTED)
        timed = [e for e in sel if e[2] in TIMED]
        slow = sum(1 for e in timed if e[1] > THRESHOLD_NS)
        return total, bad, ignored, rejected, len(timed) - total, slow

    def quantile(self, start: float, end: float, res: int, q: float) -> int | None:
        values = sorted(e[1] for e in self.select(start, end, res) if e[2] in TIMED)
        if not values:
            return None
        return values[max(1, math.ceil(q * len(values) - 1e-9)) - 1]


class StoreMachine(RuleBasedStateMachine):
    """Recording, clock moves and engine ticks against the oracle."""

    @initialize()
    def setup(self) -> None:
        self.clock = FakeClock()
        self.registry = slakit.Registry(self.clock)
        self.slo = slakit.SLO(
            "m",
            objectives=[slakit.Availability(TARGET), slakit.Latency(THRESHOLD_NS / 1e9, "99%")],
            alerting=slakit.AlertPolicy(min_events=0),
        )
        self.store = self.registry.register(self.slo)
        self.engine = slakit.Engine(self.registry)
        self.threads = ShardThreads(3)
        self.oracle = Oracle()
        self.newest = int(self.clock.time())  # the second the store's rings end at

    def teardown(self) -> None:
        self.threads.close()

    @rule(
        shard=st.integers(0, 2),
        d=durations_ns,
        outcome=outcomes,
        count=st.integers(1, 4),
    )
    def record(self, shard: int, d: int, outcome: int, count: int) -> None:
        def job() -> None:
            for _ in range(count):
                t1 = self.clock.monotonic_ns()
                self.store.record_ns(t1 - d, t1, outcome)

        self.threads.run(shard, job)
        sec = self.clock.time_ns() // 1_000_000_000
        self.oracle.events.extend([(sec, d, outcome)] * count)

    @rule(
        seconds=st.sampled_from(
            [0.25, 0.5, 1, 1, 7, 59, 61, 600, 3_599, 3_600, 86_400, 10 * 86_400]
        )
    )
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def _consolidate(self) -> None:
        self.store.consolidate()
        latest = max((e[0] for e in self.oracle.events), default=self.newest)
        self.newest = max(self.newest, int(self.clock.time()), latest)

    @rule(seconds=st.sampled_from([-7_200, -30, -1, 1, 45, 3_600]))
    def jump(self, seconds: float) -> None:
        """A step of the wall clock; the store follows at its next consolidation."""
        self.clock.jump(seconds)
        self._consolidate()

    @rule()
    def consolidate(self) -> None:
        self._consolidate()

    @invariant()
    def counts_match(self) -> None:
        now = self.clock.time()
        spans = [(now - w, now) for w in WINDOWS]
        view = self.store.read(spans)
        for (start, end), got in zip(spans, view.spans, strict=True):
            res = level_for(start, end, self.store._count_specs, self.newest)
            total, bad, ignored, rejected, disconnected, slow = self.oracle.counts(start, end, res)

            assert (total, bad, ignored, rejected, disconnected, (slow,)) == (
                got.total,
                got.bad,
                got.ignored,
                got.rejected,
                got.disconnected,
                got.slow,
            )

    @invariant()
    def percentiles_match(self) -> None:
        now = self.clock.time()
        for w in (60.0, 3_600.0, 86_400.0, 30 * 86_400.0):
            start = now - w
            res = level_for(start, now, self.store._hist_specs, self.newest, hist=True)
            hist = self.store.histogram(start, now)
            for q in (0.5, 0.99):
                exact = self.oracle.quantile(start, now, res, q)
                got = sketch.quantile(hist, q)
                if exact is None:
                    assert got is None
                else:
                    assert got is not None
                    assert abs(got * 1e9 - exact) <= max(exact * 0.01, 0.5)

    @invariant()
    def memory_is_bounded(self) -> None:
        """Open slots hold one entry per distinct key, never one per event."""
        for shard in self.store._shards:
            for slot in (shard.cur, *shard.pending):
                assert len(slot.hist) <= len(self.oracle.events)
                assert sum(slot.hist.values()) >= len(slot.hist)
        assert self.store.memory() < 4 * 2**20

    @precondition(lambda self: self.oracle.events)
    @rule()
    def tick(self) -> None:
        snap = self.engine.evaluate_now()["m"]
        latest = max((e[0] for e in self.oracle.events), default=self.newest)
        self.newest = max(self.newest, int(self.clock.time()), latest)
        now = self.clock.time()
        avail = snap.objective("availability")
        latency = snap.objective("latency-250ms")
        plan_spans = slakit.evaluate.plan(self.slo, now).spans
        for label, (start, end) in plan_spans.items():
            res = level_for(start, end, self.store._count_specs, self.newest)
            total, bad, _, rejected, disconnected, slow = self.oracle.counts(start, end, res)
            # rejected calls count as bad for availability (the default), never for latency;
            # disconnects count for latency only
            timed = total + disconnected
            for obj, n, nbad in ((avail, total + rejected, bad + rejected), (latency, timed, slow)):
                stats = next(w for w in obj.windows if w.window == label)
                ratio = nbad / n if n else 0.0

                assert (n, nbad) == (stats.events, stats.bad)
                assert abs(stats.sli - (1 - ratio)) <= 1e-9
                target = obj.target
                assert abs(stats.burn_rate - ratio / (1 - target)) <= 1e-9
                if label == "slo":
                    allowed = (1 - target) * n
                    expect = 1.0 if allowed == 0 else 1 - nbad / allowed
                    if allowed == 0 and nbad:
                        expect = -float(nbad)
                    assert abs(obj.budget.remaining - expect) <= 1e-9


StoreMachine.TestCase.settings = settings(
    max_examples=settings().max_examples, stateful_step_count=40, deadline=None
)
TestStoreMachine = StoreMachine.TestCase


class TestRecordMany:
    @given(
        st.lists(
            st.tuples(
                st.integers(0, 40 * 86_400),  # seconds after start, beyond 30 days
                st.integers(0, 50),
                st.integers(0, 50),
                st.lists(
                    st.tuples(st.sampled_from([0.001, 0.2, 0.25, 0.3, 2.0]), st.integers(0, 9)),
                    max_size=3,
                ),
            ),
            max_size=25,
        )
    )
    def test_whole_slots_match_brute_force(self, slots):
        """record_many adds exactly its counts to the slot's epoch, at every level."""
        clock = FakeClock()
        store = ring.Store(clock, thresholds=[0.25], longest=35 * 86_400)
        start = clock.time()
        events = []
        for offset, total, bad_extra, durations in slots:
            timed = sum(n for _, n in durations)
            bad = min(bad_extra, total + timed)
            store.record_many(start + offset, total=total, bad=bad, durations=durations)
            events.append(
                (int(start + offset), total, bad, sum(n for d, n in durations if d > 0.25))
            )
        clock.advance(40 * 86_400)
        store.consolidate()
        now = clock.time()
        for w in WINDOWS:
            res = level_for(now - w, now, store._count_specs, int(now))
            first, last = int((now - w) // res), int(now // res)
            sel = [e for e in events if first <= e[0] // res <= last]
            got = store.read([(now - w, now)]).spans[0]

            assert (sum(e[1] for e in sel) + sum(0 for _ in sel), sum(e[2] for e in sel)) == (
                got.total
                - sum(
                    n for e in slots if first <= int(start + e[0]) // res <= last for _, n in e[3]
                ),
                got.bad,
            )
            assert sum(e[3] for e in sel) == got.slow[0]

    def test_a_long_replay_is_consolidated_as_it_goes(self, clock):
        """A month of minutes never waits all at once, and loses nothing on the way."""
        store = ring.Store(clock, longest=30 * 86_400)
        start = clock.time() - 30 * 86_400
        for minute in range(30 * 1_440):
            store.record_many(start + minute * 60, total=10, bad=minute % 2)
            assert len(store._retired) < ring.REPLAY_BATCH
        store.consolidate()
        month = store.read([(start, clock.time())])
        assert (month.spans[0].total, month.spans[0].bad) == (432_000, 21_600)

    def test_closed_histogram_slots_stay_packed_after_a_replay_and_a_restore(self, clock):
        """Only the open slot of each histogram ring is a dict (~6x the bytes of packed)."""

        def unpacked(store):  # closed slots held as dicts
            return [
                ep
                for hl in store._hists
                for ep, h in hl.slots.items()
                if isinstance(h, dict) and ep != hl.head
            ]

        store = ring.Store(clock, longest=30 * 86_400)
        start = clock.time() - 3 * 86_400
        for minute in range(3 * 1_440):
            store.record_many(start + minute * 60, durations=[(0.001 * (minute % 97 + 1), 5)])
        store.consolidate()
        assert unpacked(store) == []
        restored = ring.Store(clock, longest=30 * 86_400)
        assert restored.load(store.dump())
        assert unpacked(restored) == []
        now = clock.time()
        for since in (3_600, 86_400, 3 * 86_400):
            assert restored.histogram(now - since, now) == store.histogram(now - since, now)

    def test_the_last_second_of_a_minute_arrives_late_and_is_packed(self, clock):
        """At a minute boundary the closing second reaches a ring already advanced."""
        store = ring.Store(clock)
        clock.jump(60 - clock.time() % 60 - 0.5)  # half a second before the minute ends
        store.record(0.01)
        clock.advance(1)
        store.record(0.02)  # this thread's slot rolls: the old second is closed
        store.consolidate()
        minutes = store._hists[0]
        assert isinstance(minutes.slots[minutes.head - 1], ring._Packed)
        assert sum(store.histogram(clock.time() - 120, clock.time()).values()) == 2

    def test_rejects_impossible_counts(self, clock):
        """More bad events than events is an error, not a silent clamp."""
        store = ring.Store(clock)

        with pytest.raises(ValueError, match="bad <= all events"):
            store.record_many(clock.time(), total=1, bad=2)


class TestAlignment:
    def test_window_covers_closed_slots_plus_current(self, clock):
        """A 5 s window at 1 s resolution holds 5 closed slots and the current one."""
        store = ring.Store(clock)
        for _ in range(8):
            store.record(0.001)
            clock.advance(1)
        clock.advance(0.5)
        store.record(0.001)
        now = clock.time()

        got = store.read([(now - 5, now)]).spans[0]

        assert 6 == got.total

    def test_wall_clock_step_is_followed_after_consolidation(self, clock):
        """After the wall clock is stepped back an hour, new events land an hour earlier."""
        store = ring.Store(clock)
        store.record(0.001)
        clock.jump(-3_600)
        store.consolidate()
        store.record(0.001)
        now = clock.time()

        recent, later = store.read([(now - 1, now), (now + 3_599, now + 3_601)]).spans

        assert (1, 1) == (recent.total, later.total)

    def test_thresholds_within_one_percent_are_rejected(self, clock):
        """Two thresholds in one bucket could not both be exact: refuse them clearly."""
        with pytest.raises(ValueError, match="differ by more than 1 %"):
            ring.Store(clock, thresholds=[0.250, 0.2501])


def test_a_disconnect_counts_for_latency_but_not_for_availability(clock: FakeClock) -> None:
    store = ring.Store(clock, thresholds=(0.25,))
    t = clock.monotonic_ns()
    store.record_ns(t, t + 400_000_000, ring.DISCONNECTED)  # the client gave up after 0.4 s
    store.record_ns(t, t + 100_000_000, ring.GOOD)
    store.consolidate()
    life = store.read([(0.0, 1.0)]).lifetime
    assert (life.total, life.bad, life.disconnected, life.timed, life.slow) == (1, 0, 1, 2, (1,))
    assert sum(store.read([(0.0, 1.0)]).lifetime_histogram.values()) == life.timed
