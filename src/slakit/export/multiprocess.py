"""
Prometheus under gunicorn-style workers that share one port.

prometheus-client's multiprocess mode sums what every worker wrote to its files in
``PROMETHEUS_MULTIPROC_DIR``, but it cannot run custom collectors, so the usual
``register()`` would show one random worker per scrape. Here each worker's engine
(never the hot path) writes, after every tick, its raw series into prometheus-client's
multiprocess values, and one scrape through ``MultiProcessCollector`` sees the sum::

    # in each worker, after fork
    engine = slakit.Engine().start()
    slakit.export.multiprocess.publish(engine)

    # the /metrics endpoint
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.multiprocess.MultiProcessCollector(registry)

Published: ``slakit_requests_total``, ``slakit_errors_total``, ``slakit_rejected_total``,
``slakit_disconnected_total``, the ``slakit_request_duration_seconds`` histogram and
``slakit_series_requests_total``: counters, summed over workers, dead ones included
(their files stay, so a sum never goes backwards). Each worker writes its own
cumulative counts, so nothing is lost between ticks: at most one tick is not yet
visible. The derived gauges (SLI, burn rates, budget, status) are *not* published per
worker: a mean of per-worker ratios is not the fleet's ratio. They come from the fleet
rules (``slakit rules``), which compute them from these counters exactly as the engine
does (see ``docs/howto/prometheus.md``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import values

from slakit.export.prometheus import DEFAULT_BUCKETS, SLOCollector

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from prometheus_client.metrics_core import Metric

    from slakit.engine import Engine
    from slakit.evaluate import Snapshot


class MultiProcessPublisher:
    """
    Writes an engine's raw series into prometheus-client's multiprocess files each tick.

    Args:
        engine: the engine of this worker.
        buckets: latency buckets (seconds), besides every SLO's thresholds.

    Raises:
        ValueError: ``PROMETHEUS_MULTIPROC_DIR`` is not set to a directory.

    """

    def __init__(self, engine: Engine, *, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
        if not path or not Path(path).is_dir():
            raise ValueError(
                "PROMETHEUS_MULTIPROC_DIR must name an existing directory shared by the "
                f"workers (got {path!r}); see prometheus-client's multiprocess mode"
            )
        self._families = SLOCollector(engine, buckets=buckets)
        self._value_class = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self._cells: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}

    def publish(self, snapshots: Mapping[str, Snapshot]) -> None:
        """Write the raw series of one tick (cumulative, this worker's own)."""
        snaps = list(snapshots.values())
        for family in (*self._families.raw(snaps), *self._families.series(snaps)):
            if family.type == "counter":
                for s in family.samples:
                    if s.name.endswith("_total"):
                        self._set(family, s.name, s.labels, s.value)
            elif family.type == "histogram":
                self._histogram(family)

    def _histogram(self, family: Metric) -> None:
        """Write per-bucket counts: prometheus-client adds them up into ``le`` buckets."""
        previous: dict[tuple[tuple[str, str], ...], float] = {}
        for s in family.samples:
            if s.name.endswith("_bucket"):
                rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                below = previous.get(rest, 0.0)
                previous[rest] = s.value
                self._set(family, s.name, s.labels, s.value - below)
            elif s.name.endswith("_sum"):
                self._set(family, s.name, s.labels, s.value)

    def _set(self, family: Metric, name: str, labels: dict[str, str], value: float) -> None:
        key = (name, tuple(sorted(labels.items())))
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = self._value_class(
                family.type,
                family.name,
                name,
                list(labels),
                list(labels.values()),
                family.documentation,
            )
        cell.set(value)


def publish(engine: Engine, *, buckets: Sequence[float] = DEFAULT_BUCKETS) -> MultiProcessPublisher:
    """Publish ``engine``'s raw series to the multiprocess files after each of its ticks."""
    publisher = MultiProcessPublisher(engine, buckets=buckets)
    engine.add_publisher(publisher)
    return publisher
