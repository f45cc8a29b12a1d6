"""Multiprocess export: worker processes publish, one scrape sums them exactly."""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

import slakit
from slakit.export.multiprocess import MultiProcessPublisher, publish
from slakit.ring import BAD, GOOD

if TYPE_CHECKING:
    from pathlib import Path

    from slakit.series import Series

SLO = slakit.SLO(
    "api",
    objectives=[slakit.Availability("99%"), slakit.Latency("250ms", "99%")],
    window="1h",
)


def worker(n_good: int, n_bad: int, slow: int) -> None:
    """One worker: record, tick (which publishes), exit."""
    registry = slakit.Registry()
    engine = slakit.Engine(registry)
    publish(engine)
    store = registry.register(SLO)
    table: Series = registry.series(SLO, ("route", "method"))
    key = table.key(("/orders/{id}", "GET"))
    for i in range(n_good + n_bad):
        outcome = BAD if i < n_bad else GOOD
        duration = 300_000_000 if i < slow else 10_000_000
        store.record_ns(0, duration, outcome)
        table.add(key, outcome)
    engine.evaluate_now()


def scrape(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_one_scrape_sums_every_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    ctx = multiprocessing.get_context("spawn")
    plans = [(700, 30, 12), (250, 20, 5), (40, 0, 0)]
    procs = [ctx.Process(target=worker, args=plan) for plan in plans]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = scrape(tmp_path)
    total = sum(g + b for g, b, _ in plans)
    bad = sum(b for _, b, _ in plans)
    slow = sum(s for *_, s in plans)
    slo = (("slo", "api"),)
    assert got["slakit_requests_total"][slo] == total
    assert got["slakit_errors_total"][slo] == bad
    assert got["slakit_request_duration_seconds_count"][slo] == total
    buckets = got["slakit_request_duration_seconds_bucket"]
    assert buckets[("le", "0.25"), *slo] == total - slow  # exact at the threshold
    assert buckets[("le", "+Inf"), *slo] == total
    series = got["slakit_series_requests_total"]
    labels = {"method": "GET", "route": "/orders/{id}", "slo": "api", "tenant": ""}
    assert series[tuple(sorted({**labels, "outcome": "good"}.items()))] == total - bad
    assert series[tuple(sorted({**labels, "outcome": "bad"}.items()))] == bad
    assert "slakit_sli_ratio" not in got  # derived gauges are left to the fleet rules


def test_a_worker_publishes_cumulative_counts_each_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: slakit.testing.FakeClock
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    registry = slakit.Registry(clock)
    engine = slakit.Engine(registry)
    publish(engine)
    store = registry.register(SLO)
    for n in (5, 7, 0, 3):
        for _ in range(n):
            store.record(0.01)
        clock.advance(1)
        engine.evaluate_now()
        assert (
            scrape(tmp_path)["slakit_requests_total"][(("slo", "api"),)]
            == store.read([(0.0, 1.0)]).lifetime.total
        )
    assert scrape(tmp_path)["slakit_requests_total"][(("slo", "api"),)] == 15


def test_a_failing_publisher_does_not_stop_the_engine(registry: slakit.Registry) -> None:
    class Broken:
        def publish(self, snapshots: object) -> None:
            raise RuntimeError("disk full")

    engine = slakit.Engine(registry)
    engine.add_publisher(Broken())
    registry.register(SLO)
    assert "api" in engine.evaluate_now()
    assert engine.publish_errors == 1


def test_the_directory_must_exist(
    monkeypatch: pytest.MonkeyPatch, registry: slakit.Registry
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR must name"):
        MultiProcessPublisher(slakit.Engine(registry))
