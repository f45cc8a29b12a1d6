"""
Concurrent recording: nothing lost, nothing torn, no lock on the hot path.

The heavy tests here run without coverage in CI (``-m heavy``): coverage tracing slows
every line and hides the races they exist to provoke.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time

import pytest

import slakit
import slakit.remediate

N_THREADS = 8
PER_THREAD = 250_000


@pytest.fixture
def tiny_switch_interval():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def availability_slo(name="c"):
    return slakit.SLO(name, objectives=[slakit.Availability("99.9%"), slakit.Latency("1ms", "99%")])


@pytest.mark.heavy
@pytest.mark.usefixtures("tiny_switch_interval")
class TestNoEventLost:
    @pytest.mark.parametrize("run", range(20))
    def test_eight_threads_quarter_million_each(self, run):
        """8 × 250,000 recordings released together: exactly 2,000,000, bad exact."""
        registry = slakit.Registry()
        store = registry.register(availability_slo())
        barrier = threading.Barrier(N_THREADS, timeout=30)

        def writer(i):
            rec = store.record_ns
            barrier.wait()
            for k in range(PER_THREAD):
                rec(0, k, 1 if k % 97 == i else 0)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(N_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        store.consolidate()
        life = store.read([]).lifetime
        expected_bad = sum(len(range(i, PER_THREAD, 97)) for i in range(N_THREADS))

        assert (N_THREADS * PER_THREAD, expected_bad) == (life.total, life.bad)


@pytest.mark.heavy
class TestNoTornReads:
    def test_snapshots_are_never_torn(self):
        """10,000 reads while 4 threads write: good ≤ total, histogram sums to count."""
        registry = slakit.Registry()
        slo = availability_slo()
        store = registry.register(slo)
        stop = threading.Event()

        def writer(i):
            rec = store.record_ns
            k = 0
            while not stop.is_set():
                k += 1
                rec(0, (k % 40) * 50_000, 1 if k % 13 == 0 else 0)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        engine = slakit.Engine(registry)
        problems = []
        try:
            for n in range(10_000):
                if n % 100 == 0:
                    snap = engine.evaluate_now()["c"]
                    for o in snap.objectives:
                        for w in o.windows:
                            if not (0 <= w.bad <= w.events and 0.0 <= w.sli <= 1.0):
                                problems.append(("window", o.key, w))
                    view_total, view_hist = snap.lifetime.total, snap.lifetime_histogram
                else:
                    view = store.read([(time.time() - 60, time.time())])
                    view_total, view_hist = view.lifetime.total, view.lifetime_histogram
                    c = view.spans[0]
                    if not (0 <= c.bad <= c.total and all(0 <= s <= c.total for s in c.slow)):
                        problems.append(("span", c))
                if sum(view_hist.values()) != view_total:
                    problems.append(("histogram", sum(view_hist.values()), view_total))
        finally:
            stop.set()
            for t in threads:
                t.join(10)

        assert [] == problems[:5]


class TestNoLockOnTheHotPath:
    def test_recording_calls_no_lock(self, clock):
        """Audited with sys.setprofile: registering takes the lock, recording never does."""
        registry = slakit.Registry(clock)
        store = registry.register(availability_slo())
        tracked = slakit.track(availability_slo(), registry=registry)(lambda: None)
        calls: list[str] = []

        def audit(frame, event, arg):
            if event == "c_call":
                calls.append(f"{type(getattr(arg, '__self__', None)).__name__}.{arg.__name__}")

        def locks():
            return [c for c in calls if "acquire" in c or c.startswith(("lock.", "RLock."))]

        sys.setprofile(audit)
        try:
            store.record(0.001)  # first event of this thread: registers its shard
        finally:
            sys.setprofile(None)
        registering = locks()
        calls.clear()
        for _ in range(10):
            clock.advance(1)  # (the fake clock has a lock of its own: move it unaudited)
            sys.setprofile(audit)
            try:
                for i in range(500):  # the first event after the move rolls the slot
                    store.record(0.0001 * (i % 50), ok=i % 3 != 0)
                    tracked()
            finally:
                sys.setprofile(None)

        assert registering, "the audit must see the registration's lock"
        assert [] == locks()
        assert any(c.endswith(".append") for c in calls), "slot rolls were exercised"

    def test_recording_dispatches_nothing(self, clock):
        """With hooks subscribed, recording runs Python code from the store only."""
        registry = slakit.Registry(clock)
        engine = slakit.Engine(registry)
        engine.subscribe(lambda event: None)
        slo = availability_slo()
        engine.enforce(slo, slakit.remediate.Policy(critical=[slakit.remediate.LogNotifier()]))
        tracked = slakit.track(slo, registry=registry)(lambda: None)
        tracked()  # register this thread's shard
        modules: set[str] = set()

        def audit(frame, event, arg):
            if event == "call":
                modules.add(frame.f_globals.get("__name__", "?"))

        sys.setprofile(audit)
        try:
            for _ in range(1_000):
                tracked()
        finally:
            sys.setprofile(None)
        engine.stop()

        # the store, the fake clock it reads, and this test's lambda: no engine, no dispatch
        assert {"slakit.ring", "slakit.testing", "tests.test_concurrency"} >= modules
        assert "slakit.ring" in modules


class TestShortLivedThreads:
    def test_shards_of_exited_threads_are_retired(self, clock):
        """10,000 threads that record once and exit leave no shard behind, lose no event."""
        registry = slakit.Registry(clock)
        store = registry.register(availability_slo())

        def once():
            store.record(0.001)

        for _ in range(100):
            batch = [threading.Thread(target=once) for _ in range(100)]
            for t in batch:
                t.start()
            for t in batch:
                t.join()
            store.consolidate()

        assert 0 == store.shard_count
        assert 10_000 == store.read([]).lifetime.total


@pytest.mark.heavy
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
class TestFork:
    def test_child_starts_empty_with_its_own_engine(self):
        """After fork the child counts only its own 1,000 events; the parent is unchanged."""
        registry = slakit.Registry()
        slo = availability_slo("forked")
        tracked = slakit.track(slo, registry=registry)(lambda: None)
        for _ in range(500):
            tracked()
        engine = slakit.Engine(registry, interval=0.05).start()
        read_fd, write_fd = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report through the pipe, never return into pytest
            code = 1
            try:
                os.dup2(err_w, 2)
                for _ in range(1_000):
                    tracked()
                deadline = time.monotonic() + 20
                total = -1
                while time.monotonic() < deadline:  # the child's own engine thread ticks
                    snap = engine.snapshot("forked")
                    total = -1 if snap is None else snap.lifetime.total
                    if total == 1_000:
                        break
                    time.sleep(0.01)
                os.write(write_fd, f"{total} {engine.running}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        os.close(err_w)
        try:
            ready, _, _ = select.select([read_fd], [], [], 30)
            assert ready, "the child did not answer within 30 s"
            answer = os.read(read_fd, 100).decode()
            _, status = os.waitpid(pid, 0)
            stderr = os.read(err_r, 10_000).decode()
        finally:
            if not ready:
                os.kill(pid, signal.SIGKILL)
            engine.stop()
            os.close(read_fd)
            os.close(err_r)
        store = registry.store("forked")
        store.consolidate()

        assert ("1000 True", 0, "") == (answer, status, stderr)
        assert 500 == store.read([]).lifetime.total
