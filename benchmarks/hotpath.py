"""
Per-call cost of recording, side by side with the peers, in one process.

    python benchmarks/hotpath.py [--quick]

Wraps a no-op function five ways — bare, a plain timing closure (two perf_counter_ns
calls: the floor of any latency recorder), slakit.track, prometheus-client's
Histogram.time() and an OpenTelemetry SDK histogram record — and reports each one's
overhead (wrapped minus bare, best of N repeats). Also reports the store's memory per
SLO after 10,000,000 events spread over a simulated 30 days, and the cost of one
engine tick over 100 SLOs.

Last line: RESULT hotpath track_vs_prometheus=<x> track_vs_floor=<y> track_ns=<z>
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import time
import timeit
import tracemalloc

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import slakit
from slakit.testing import FakeClock


def noop(x):
    return x


def floor_wrapper(fn):
    pc = time.perf_counter_ns
    sink = [0]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = pc()
        result = fn(*args, **kwargs)
        sink[0] += pc() - t0
        return result

    return wrapper


def otel_wrapper(fn):
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("bench")
    hist = meter.create_histogram("latency", unit="s")
    attrs = {"slo": "checkout"}
    pc = time.perf_counter

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = pc()
        result = fn(*args, **kwargs)
        hist.record(pc() - t0, attrs)
        return result

    return wrapper


def per_call_ns(fn, number, repeat):
    timer = timeit.Timer(lambda: fn(1))
    best = min(timer.repeat(repeat=repeat, number=number))
    # subtract the cost of the lambda + loop measured on an empty lambda
    return best / number * 1e9


def hotpath(number, repeat):
    registry = slakit.Registry()
    slo = slakit.SLO(
        "checkout",
        objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", "99%")],
    )
    prom = prometheus_client.Histogram(
        "bench_seconds", "bench", registry=prometheus_client.CollectorRegistry()
    )
    candidates = {
        "bare": noop,
        "floor": floor_wrapper(noop),
        "slakit": slakit.track(slo, registry=registry)(noop),
        "prometheus": prom.time()(noop),
        "otel": otel_wrapper(noop),
    }
    results = {name: float("inf") for name in candidates}
    gc.collect()
    for _ in range(repeat):  # interleave so drift hits every candidate alike
        for name, fn in candidates.items():
            results[name] = min(results[name], per_call_ns(fn, number, 1))
    return results


def memory_per_slo(events, quick):
    """Bytes the store holds after `events` events spread over 30 simulated days."""
    clock = FakeClock()
    registry = slakit.Registry(clock)
    slo = slakit.SLO(
        "mem",
        objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", "99%")],
    )
    store = registry.register(slo)
    engine = slakit.Engine(registry)
    rng = random.Random(7)
    seconds = 30 * 86_400
    step = 60  # one record_many per simulated minute
    per_step = events // (seconds // step)
    tracemalloc.start()
    base = None
    samples = []
    for minute in range(seconds // step):
        durations: dict[float, int] = {}
        for i in range(64):  # a realistic spread of latencies, lognormal around 40 ms
            d = round(rng.lognormvariate(-3.2, 0.6), 4)
            n = per_step // 64 + (1 if i < per_step % 64 else 0)
            durations[d] = durations.get(d, 0) + n
        clock.advance(step)
        store.record_many(clock.time(), bad=per_step // 1000, durations=durations.items())
        if minute % 60 == 0:
            store.consolidate()
        if minute % 1440 == 0 or minute == seconds // step - 1:
            engine.evaluate_now()
            current = tracemalloc.get_traced_memory()[0]
            base = current if base is None else base
            samples.append(current)
        if quick and minute > 3 * 1440:
            break
    engine.evaluate_now()
    peak_now = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return peak_now, samples


def tick_100(quick):
    clock = FakeClock()
    registry = slakit.Registry(clock)
    trackers = []
    for i in range(100):
        slo = slakit.SLO(
            f"slo{i}",
            objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", "99%")],
        )
        trackers.append(slakit.track(slo, registry=registry))
    engine = slakit.Engine(registry)
    # an hour of warm history, then traffic every second
    for t in trackers:
        t.store.record_many(clock.time() - 1800, total=1000, bad=1)
    best = float("inf")
    for _ in range(10 if quick else 60):
        clock.advance(1)
        for t in trackers:
            for _ in range(20):
                t.record(0.05)
        t0 = time.perf_counter()
        engine.evaluate_now()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="finish in well under 60 s")
    args = parser.parse_args()
    number, repeat = (50_000, 5) if args.quick else (300_000, 9)
    r = hotpath(number, repeat)
    over = {k: v - r["bare"] for k, v in r.items() if k != "bare"}
    print(f"bare call: {r['bare']:.0f} ns")
    for name, ns in over.items():
        print(f"  {name:<11} +{ns:6.0f} ns per call")
    mem, samples = memory_per_slo(10_000_000, args.quick)
    mem_1m, _ = memory_per_slo(1_000_000, args.quick)
    days = "3 d (--quick)" if args.quick else "30 d"
    print(f"store memory per SLO after 10M events over {days}: {mem / 2**20:.2f} MiB")
    print(f"  the same {days} with 1M events: {mem_1m / 2**20:.2f} MiB (follows time, not events)")
    print("  traced MiB, daily: " + " ".join(f"{s / 2**20:.2f}" for s in samples))
    tick = tick_100(args.quick)
    print(f"one engine tick over 100 SLOs: {tick:.1f} ms")
    vs_prom = over["slakit"] / over["prometheus"]
    vs_floor = over["slakit"] / over["floor"]
    print(
        f"RESULT hotpath track_vs_prometheus={vs_prom:.3f} track_vs_floor={vs_floor:.2f} "
        f"track_ns={over['slakit']:.0f} mem_mib={mem / 2**20:.2f} "
        f"mem_10m_vs_1m={mem / mem_1m:.2f} tick100_ms={tick:.1f}"
    )


if __name__ == "__main__":
    main()
