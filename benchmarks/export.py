"""
Cost of exporting: one Prometheus scrape over 100 SLOs, and recording with exporters on.

    python benchmarks/export.py [--quick]

The scrape renders the text exposition of a registry holding slakit's collector over
100 SLOs (two objectives each, traffic recorded, one engine tick). Recording cost is
slakit.track's overhead on a no-op function with no exporter registered, then with the
Prometheus collector registered and scraped in the background; exporters only read
snapshots, so the change should be noise.

``scrape_ms`` is one scrape through slakit's exposition (``exposition()``, served by
``make_asgi_app``/``make_wsgi_app``); ``prometheus_client_ms`` the same samples through
prometheus-client's ``generate_latest`` (a test checks both give the same samples).

Last line: RESULT export scrape_ms=<x> record_overhead_change=<y>
"""

from __future__ import annotations

import argparse
import threading
import time
import timeit

import prometheus_client

import slakit
from slakit.export.prometheus import SLOCollector, exposition, register
from slakit.testing import FakeClock


def noop(x):
    return x


def build(n):
    clock = FakeClock()
    registry = slakit.Registry(clock)
    for i in range(n):
        slo = slakit.SLO(
            f"slo{i}", objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", "99%")]
        )
        tracker = slakit.track(slo, registry=registry)
        for k in range(200):
            tracker.record(0.001 * (k % 300), ok=k % 50 != 0)
    clock.advance(1)
    engine = slakit.Engine(registry)
    engine.evaluate_now()
    return engine


def scrape_ms(engine, repeat):
    """Best of `repeat`: (the collector's collect(), the full text exposition), in ms."""
    prom = prometheus_client.CollectorRegistry()
    collector = register(engine, prom)
    best_collect = best_full = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        list(collector.collect())
        t1 = time.perf_counter()
        prometheus_client.generate_latest(prom)
        t2 = time.perf_counter()
        best_collect, best_full = min(best_collect, t1 - t0), min(best_full, t2 - t1)
    text = prometheus_client.generate_latest(prom).decode()
    samples = sum(1 for line in text.splitlines() if not line.startswith("#"))
    return best_collect * 1e3, best_full * 1e3, samples


def fast_ms(engine, repeat):
    """Best of `repeat`: slakit's own exposition of the same samples."""
    collector = SLOCollector(engine)
    return min(timeit.repeat(lambda: exposition(collector), number=1, repeat=repeat)) * 1e3


def overhead(fn, number):
    bare = min(timeit.repeat(lambda: noop(1), number=number, repeat=5))
    wrapped = min(timeit.repeat(lambda: fn(1), number=number, repeat=5))
    return (wrapped - bare) / number * 1e9


def record_change(number):
    slo = slakit.SLO("rec", objectives=[slakit.Availability("99.9%")])
    registry = slakit.Registry()
    fn = slakit.track(slo, registry=registry)(noop)
    alone = overhead(fn, number)
    engine = slakit.Engine(registry, interval=0.05).start()
    prom = prometheus_client.CollectorRegistry()
    register(engine, prom)
    stop = threading.Event()

    def scraper():
        while not stop.wait(0.05):
            prometheus_client.generate_latest(prom)

    t = threading.Thread(target=scraper, daemon=True)
    t.start()
    try:
        exported = overhead(fn, number)
    finally:
        stop.set()
        t.join()
        engine.stop()
    return alone, exported


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="finish in well under 60 s")
    args = parser.parse_args()
    engine = build(100)
    collect_ms, ms, samples = scrape_ms(engine, 5 if args.quick else 20)
    print(
        f"one scrape of 100 SLOs ({samples} samples): {ms:.2f} ms, of which the collector "
        f"{collect_ms:.2f} ms and prometheus-client's text rendering the rest"
    )
    fast = fast_ms(engine, 5 if args.quick else 20)
    print(f"the same samples through slakit.export.prometheus.exposition: {fast:.2f} ms")
    alone, exported = record_change(50_000 if args.quick else 300_000)
    print(
        f"slakit.track overhead: {alone:.0f} ns alone, {exported:.0f} ns while exported and scraped"
    )
    print(
        f"RESULT export scrape_ms={fast:.2f} record_overhead_change={exported / alone:.2f} "
        f"collect_ms={collect_ms:.2f} prometheus_client_ms={ms:.2f}"
    )


if __name__ == "__main__":
    main()
