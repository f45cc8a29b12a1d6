"""
Prometheus: a custom collector over the engine's snapshots.

``register()`` adds a collector to a prometheus-client registry. A scrape reads the
latest snapshot of every SLO (refreshed each engine tick) and yields:

* ``slakit_requests_total``, ``slakit_errors_total``, ``slakit_rejected_total``,
  ``slakit_disconnected_total`` and the ``slakit_request_duration_seconds`` histogram
  (calls that ran plus disconnects, whose wait counts for latency), per SLO: the raw
  series that fleet rules (``slakit rules``) evaluate across processes. The histogram's
  buckets include every latency threshold of the SLO, and the count at a threshold is
  exact (the store keeps a bit per event for it); other buckets are within the sketch's
  1 %.
* ``slakit_series_requests_total`` by SLO, route, method (and tenant) and outcome, for
  requests recorded by the middleware (capped per SLO, see :mod:`slakit.series`).
* ``slakit_sli_ratio`` over the SLO window, ``slakit_burn_rate`` per window (over an alert
  window the SLI is ``1 - burn × budget``), ``slakit_error_budget_remaining_ratio``,
  ``slakit_objective_ratio`` and ``slakit_status`` per objective and SLO.
* ``slakit_breaker_state``, ``slakit_shed_probability``, ``slakit_shed_total`` and
  ``slakit_desired_replicas_delta`` for the breakers, shedders and scalers passed in.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from typing import TYPE_CHECKING, Any, Final, cast

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    StateSetMetricFamily,
)
from prometheus_client.utils import floatToGoString

from slakit import sketch
from slakit.spec import Status

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from slakit.engine import Engine
    from slakit.evaluate import Snapshot
    from slakit.remediate.breaker import CircuitBreaker
    from slakit.remediate.scale import Scaler
    from slakit.remediate.shed import LoadShedder

DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency buckets (seconds) every SLO exposes, besides its own thresholds."""


_OUTCOMES: Final = ("good", "bad", "ignored", "rejected", "disconnected")


class SLOCollector:
    """Yields slakit's metric families from the engine's latest snapshots."""

    def __init__(
        self,
        engine: Engine,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        breakers: Iterable[CircuitBreaker] = (),
        shedders: Iterable[LoadShedder] = (),
        scalers: Iterable[Scaler] = (),
    ) -> None:
        self.engine = engine
        self._label_cache: dict[tuple[tuple[str, str], ...], str] = {}
        self.buckets = tuple(sorted(buckets))
        self.breakers = tuple(breakers)
        self.shedders = tuple(shedders)
        self.scalers = tuple(scalers)

    def describe(self) -> list[Metric]:
        """Nothing up front: the families depend on the SLOs registered at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every family for one scrape."""
        registry = self.engine.registry
        snaps = [s for slo in registry.slos() if (s := registry.latest(slo.name)) is not None]
        yield from self.raw(snaps)
        yield from self._derived(snaps)
        yield from self.series(snaps)
        yield from self._hooks()

    def raw(self, snaps: list[Snapshot]) -> Iterator[Metric]:
        """Yield the raw counters and the latency histogram (what fleet rules sum)."""
        requests = CounterMetricFamily(
            "slakit_requests", "Calls that ran, by SLO (rejected ones are apart).", labels=["slo"]
        )
        errors = CounterMetricFamily("slakit_errors", "Calls that failed, by SLO.", labels=["slo"])
        rejected = CounterMetricFamily(
            "slakit_rejected",
            "Calls refused by a breaker or shedder before they ran, by SLO.",
            labels=["slo"],
        )
        disconnected = CounterMetricFamily(
            "slakit_disconnected",
            "Requests whose client left before the answer was complete, by SLO.",
            labels=["slo"],
        )
        duration = HistogramMetricFamily(
            "slakit_request_duration_seconds",
            "Duration of calls that ran and of disconnected requests, by SLO.",
            labels=["slo"],
            unit="seconds",
        )
        for snap in snaps:
            life = snap.lifetime
            requests.add_metric([snap.slo], life.total)
            errors.add_metric([snap.slo], life.bad)
            rejected.add_metric([snap.slo], life.rejected)
            disconnected.add_metric([snap.slo], life.disconnected)
            slo = self.engine.registry.slo(snap.slo)
            duration.add_metric(
                [snap.slo],
                _buckets(snap, self.buckets, slo.thresholds),
                sum_value=_sum(snap.lifetime_histogram),
            )
        yield from (requests, errors, rejected, disconnected, duration)

    def _derived(self, snaps: list[Snapshot]) -> Iterator[Metric]:
        sli = GaugeMetricFamily(
            "slakit_sli_ratio",
            "SLI over a window (1 is perfect).",
            labels=["slo", "objective", "window"],
        )
        burn = GaugeMetricFamily(
            "slakit_burn_rate",
            "Error budget burn rate over a window (1 spends the budget over the SLO window).",
            labels=["slo", "objective", "window"],
        )
        budget = GaugeMetricFamily(
            "slakit_error_budget_remaining_ratio",
            "Share of the error budget left over the SLO window (negative: overspent).",
            labels=["slo", "objective"],
        )
        target = GaugeMetricFamily(
            "slakit_objective_ratio", "The objective's target.", labels=["slo", "objective"]
        )
        status = StateSetMetricFamily("slakit_status", "SLO status.", labels=["slo"])
        for snap in snaps:
            period = str(self.engine.registry.slo(snap.slo).window)
            for o in snap.objectives:
                for w in o.windows:
                    window = period if w.window == "slo" else w.window
                    if w.window == "slo":  # over alert windows the SLI is burn x budget
                        sli.add_metric([snap.slo, o.key, window], w.sli)
                    if w.burn_rate is not None:
                        burn.add_metric([snap.slo, o.key, window], w.burn_rate)
                if o.budget is not None:
                    budget.add_metric([snap.slo, o.key], o.budget.remaining)
                if o.target is not None and o.budget is not None:
                    target.add_metric([snap.slo, o.key], o.target)
            status.add_metric([snap.slo], {s.value: snap.status is s for s in Status})
        yield from (sli, burn, budget, target, status)

    def series(self, snaps: list[Snapshot]) -> Iterator[Metric]:
        """Yield the middleware's per-route, per-method (per-tenant) counters."""
        family = CounterMetricFamily(
            "slakit_series_requests",
            "Requests by SLO, route, method, tenant and outcome (capped; see slakit.series).",
            labels=["slo", "route", "method", "tenant", "outcome"],
        )
        for snap in snaps:
            table = self.engine.registry.series_of(snap.slo)
            if table is None:
                continue
            for key, counts in table.counts().items():
                named = dict(zip(table.labels, key, strict=True))
                labels = [snap.slo, named["route"], named["method"], named.get("tenant", "")]
                for outcome, n in zip(_OUTCOMES, counts, strict=True):
                    if n:
                        family.add_metric([*labels, outcome], n)
        yield family

    def _hooks(self) -> Iterator[Metric]:
        if self.breakers:
            from slakit.remediate.breaker import State  # noqa: PLC0415 - only if used

            state = StateSetMetricFamily(
                "slakit_breaker_state", "Circuit breaker state.", labels=["breaker"]
            )
            for b in self.breakers:
                now = b.state
                state.add_metric([b.name], {s.value: now is s for s in State})
            yield state
        if self.shedders:
            p = GaugeMetricFamily(
                "slakit_shed_probability", "Share of traffic being shed.", labels=["shedder"]
            )
            shed = CounterMetricFamily(
                "slakit_shed", "Requests shed, by class.", labels=["shedder", "criticality"]
            )
            from slakit.remediate.shed import Criticality  # noqa: PLC0415 - only if used

            for s in self.shedders:
                p.add_metric([s.name], s.rejection_probability())
                for c in Criticality:
                    shed.add_metric([s.name, c.name.lower()], s.shed_counts[c])
            yield from (p, shed)
        if self.scalers:
            delta = GaugeMetricFamily(
                "slakit_desired_replicas_delta",
                "Replicas asked for and not yet given back (for an autoscaler).",
                labels=["service"],
            )
            for sc in self.scalers:
                delta.add_metric([sc.service], sc.desired_replicas_delta)
            yield delta


def _buckets(
    snap: Snapshot, bounds: Sequence[float], thresholds: Sequence[float]
) -> list[tuple[str, float]]:
    """Cumulative counts per ``le`` (a bisect each); exact at the SLO's latency thresholds."""
    exact = {t: snap.lifetime.timed - snap.lifetime.slow[i] for i, t in enumerate(thresholds)}
    hist = snap.lifetime_histogram
    keys = sorted(hist)
    cumulative = list(itertools.accumulate(map(hist.__getitem__, keys)))
    out = []
    for le in sorted({*bounds, *thresholds}):
        if le in exact:
            out.append((repr(float(le)), float(exact[le])))
            continue
        limit = round(le * 1e9)
        b = sketch.bucket_of(limit)
        if sketch.bucket_bounds(b)[1] - 1 <= limit:  # le's own bucket lies wholly below it
            b += 1
        i = bisect.bisect_left(keys, b)  # buckets below b are wholly at or below le
        out.append((repr(float(le)), float(cumulative[i - 1] if i else 0)))
    out.append(("+Inf", float(snap.lifetime.timed)))
    return out


def _sum(hist: Mapping[int, int]) -> float:
    """Sum of durations, from bucket midpoints (within the sketch's 1 %)."""
    return float(sum(map(operator.mul, map(sketch.bucket_value, hist.keys()), hist.values())))


def exposition(collector: SLOCollector) -> bytes:
    """
    Render the collector's families in the Prometheus text format, fast.

    The same samples ``generate_latest`` would write for this collector (a test compares
    them), at a fraction of the cost: label strings are escaped once and cached, values
    formatted once. Serve it with :func:`make_asgi_app`/:func:`make_wsgi_app`, which
    append prometheus-client's rendering of everything else in a registry.
    """
    out: list[str] = []
    cache = collector._label_cache
    for family in collector.collect():
        name = family.name
        kind = _TEXT_TYPES.get(family.type, family.type)
        shown = f"{name}_total" if kind == "counter" else name
        out.append(f"# HELP {shown} {_help(family.documentation)}\n# TYPE {shown} {kind}\n")
        for sample in family.samples:
            labels = sample.labels
            if labels:
                key = tuple(labels.items())
                text = cache.get(key)
                if text is None:
                    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
                    text = cache[key] = "{" + inner + "}"
                    if len(cache) > _LABEL_CACHE:
                        cache.clear()
            else:
                text = ""
            out.append(f"{sample.name}{text} {_go_float(sample.value)}\n")
    return "".join(out).encode()


_LABEL_CACHE: Final = 100_000
_TEXT_TYPES: Final = {"stateset": "gauge", "info": "gauge", "unknown": "untyped"}
"""OpenMetrics types the classic text format writes as others (as prometheus-client does)."""
_go_float: Final = cast("Callable[[float], str]", floatToGoString)  # untyped upstream


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def make_asgi_app(collector: SLOCollector, registry: CollectorRegistry = REGISTRY) -> Any:
    """
    Return an ASGI ``/metrics`` app: slakit's series fast, then the rest of ``registry``.

    Use an unregistered ``SLOCollector(engine, ...)``: a collector also registered in
    ``registry`` would be rendered twice.
    """

    async def app(scope: Any, receive: Any, send: Any) -> None:  # noqa: ARG001 - ASGI
        if scope["type"] != "http":
            return
        body = exposition(collector) + generate_latest(registry)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def make_wsgi_app(collector: SLOCollector, registry: CollectorRegistry = REGISTRY) -> Any:
    """Return the WSGI twin of :func:`make_asgi_app`."""

    def app(environ: Any, start_response: Any) -> list[bytes]:  # noqa: ARG001 - WSGI
        body = exposition(collector) + generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]

    return app


def register(
    engine: Engine,
    registry: CollectorRegistry = REGISTRY,
    *,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
    breakers: Iterable[CircuitBreaker] = (),
    shedders: Iterable[LoadShedder] = (),
    scalers: Iterable[Scaler] = (),
) -> SLOCollector:
    """
    Register an :class:`SLOCollector` for ``engine`` with a prometheus-client registry.

    Returns the collector, so it can be unregistered (``registry.unregister(c)``).
    """
    collector = SLOCollector(
        engine, buckets=buckets, breakers=breakers, shedders=shedders, scalers=scalers
    )
    registry.register(collector)
    return collector
