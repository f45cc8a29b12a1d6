"""
Overhead of a call through a closed circuit breaker, side by side with the peers.

    python benchmarks/breaker.py [--quick]

Configuration: slakit with a count-based window of 100 calls (exact counts across
threads, lock-free) and with a 10-second time-based window; pybreaker with fail_max=5
(it holds its lock around every call); circuitbreaker with failure_threshold=5 (no
window, no lock, no half-open limit). Each wraps a no-op function with its decorator;
overhead = wrapped minus bare, best of N repeats, candidates interleaved.
Also: the cost of a rejected call while open, and 4 threads calling at once.

Last line: RESULT breaker vs_pybreaker=<x> vs_circuitbreaker=<y> slakit_ns=<z>
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
import timeit

import circuitbreaker
import pybreaker

from slakit.remediate import (
    AIMD,
    CircuitBreaker,
    CircuitOpenError,
    ConcurrencyLimiter,
    Criticality,
    LoadShedder,
)


def noop(x):
    return x


def best_ns(fn, number, repeat):
    return min(timeit.repeat(lambda: fn(1), number=number, repeat=repeat)) / number * 1e9


def closed(number, repeat):
    candidates = {
        "bare": noop,
        "slakit (count 100)": CircuitBreaker("bench", window=100)(noop),
        "slakit (time 10s)": CircuitBreaker("bench", window=10, window_type="time")(noop),
        "pybreaker": pybreaker.CircuitBreaker(fail_max=5)(noop),
        "circuitbreaker": circuitbreaker.CircuitBreaker(failure_threshold=5)(noop),
    }
    results = dict.fromkeys(candidates, float("inf"))
    for _ in range(repeat):
        for name, fn in candidates.items():
            results[name] = min(results[name], best_ns(fn, number, 1))
    return {k: v - results["bare"] for k, v in results.items() if k != "bare"}


def rejected(number):
    b = CircuitBreaker("open")
    b.force_open()

    def call():
        with contextlib.suppress(CircuitOpenError):
            b.call(noop, 1)

    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e9


def threaded(fn, calls_per_thread=50_000, threads=4):
    barrier = threading.Barrier(threads)

    def work():
        barrier.wait()
        for _ in range(calls_per_thread):
            fn(1)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return (time.perf_counter() - t0) / (calls_per_thread * threads) * 1e9


def _fail():
    raise RuntimeError


def recording_with_hooks(number):
    """Recording overhead with no engine vs an engine ticking with hooks (one blocked)."""
    import slakit  # noqa: PLC0415
    from slakit.remediate import LogNotifier, Policy  # noqa: PLC0415

    slo = slakit.SLO("hooks", objectives=[slakit.Availability("99.9%")])
    quiet = slakit.track(slo, registry=slakit.Registry())(noop)
    registry = slakit.Registry()
    busy = slakit.track(slo, registry=registry)(noop)
    release = threading.Event()
    engine = slakit.Engine(registry, interval=0.01, hook_timeout=0.05)
    hung = threading.Event()

    def hang(_event):
        hung.set()
        release.wait(30)

    engine.subscribe(hang)  # a hook that hangs
    engine.subscribe(lambda _event: None)
    engine.enforce(slo, Policy(critical=[LogNotifier(logger=logging.getLogger("bench"))]))
    failing = slakit.track(slo, registry=registry)(_fail)
    for _ in range(1_000):  # violations open, so the hooks have work and one is stuck
        with contextlib.suppress(RuntimeError):
            failing()
    engine.start()
    hung.wait(30)
    try:
        base = min(best_ns(noop, number, 1) for _ in range(5))
        without = min(best_ns(quiet, number, 1) for _ in range(5)) - base
        with_hooks = min(best_ns(busy, number, 1) for _ in range(5)) - base
    finally:
        release.set()
        engine.stop()
    return without, with_hooks


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="finish in well under 60 s")
    args = parser.parse_args()
    number, repeat = (50_000, 5) if args.quick else (300_000, 9)
    over = closed(number, repeat)
    print("overhead of a call through a closed breaker:")
    for name, ns in over.items():
        print(f"  {name:<20} +{ns:6.0f} ns")
    print(f"a rejected call (open, raising CircuitOpenError): {rejected(number // 5):.0f} ns")
    slakit_b = CircuitBreaker("mt", window=100)
    wrapped = slakit_b(noop)
    per = threaded(wrapped)
    calls, _, _ = slakit_b.metrics()
    print(f"4 threads through one slakit breaker: {per:.0f} ns a call, window holds {calls}")
    print(
        f"  pybreaker, same: {threaded(pybreaker.CircuitBreaker(fail_max=5)(noop)):.0f} ns a call"
    )
    shedder = LoadShedder(fraction=0.2)
    admit = shedder.admit
    decide = (
        min(timeit.repeat(lambda: admit(Criticality.SHEDDABLE), number=number, repeat=5))
        / number
        * 1e9
    )
    print(f"load shedder, one admission decision: {decide:.0f} ns")
    limiter = ConcurrencyLimiter(AIMD(initial=1_000, max_limit=10_000))

    def limited():
        with limiter.guard():
            pass

    guard_ns = min(timeit.repeat(limited, number=number, repeat=5)) / number * 1e9
    print(f"concurrency limiter, acquire + release: {guard_ns:.0f} ns")
    without, with_hooks = recording_with_hooks(number)
    print(
        f"slakit.track overhead: {without:.0f} ns alone, {with_hooks:.0f} ns with an engine "
        f"ticking every 10 ms and 3 hooks, one hung ({with_hooks / without:.2f}x)"
    )
    s = over["slakit (count 100)"]
    print(
        f"RESULT breaker vs_pybreaker={s / over['pybreaker']:.3f} "
        f"vs_circuitbreaker={s / over['circuitbreaker']:.3f} slakit_ns={s:.0f} "
        f"time_window_ns={over['slakit (time 10s)']:.0f} shed_decision_ns={decide:.0f} "
        f"record_with_hooks_vs_alone={with_hooks / without:.2f}"
    )


if __name__ == "__main__":
    main()
