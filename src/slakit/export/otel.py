"""
OpenTelemetry: slakit's values through the OTel metrics API.

``instrument(engine)`` creates observable instruments on a meter (the global meter
provider's by default). Their callbacks read the engine's latest snapshots when the
user's SDK collects, so whatever reader and exporter the user configured (OTLP, a
Prometheus reader, the console) carries them, and recording a call does no OTel work:

* ``slakit.requests``, ``slakit.errors``, ``slakit.rejected``: observable counters
  (cumulative, monotonic), attribute ``slo``;
* ``slakit.sli``, ``slakit.burn_rate`` (attribute ``window``), ``slakit.error_budget.remaining``
  and ``slakit.status`` (0 healthy … 3 breached): observable gauges, attributes ``slo``
  and ``objective``.

Latency distributions stay in the Prometheus histogram (``slakit_request_duration_seconds``):
the OTel API has no observable histogram, and recording one value per call would put
OTel on the request path, which costs 4 µs a call (``benchmarks/hotpath.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

if TYPE_CHECKING:
    from collections.abc import Iterable

    from slakit.engine import Engine
    from slakit.evaluate import Snapshot


class OTelInstruments:
    """The observable instruments made by :func:`instrument`; keep it alive."""

    def __init__(self, engine: Engine, meter: metrics.Meter) -> None:
        self.engine = engine
        self.instruments = [
            meter.create_observable_counter(
                "slakit.requests",
                [self._counter("total")],
                unit="{call}",
                description="Calls that ran, by SLO.",
            ),
            meter.create_observable_counter(
                "slakit.errors",
                [self._counter("bad")],
                unit="{call}",
                description="Calls that failed, by SLO.",
            ),
            meter.create_observable_counter(
                "slakit.rejected",
                [self._counter("rejected")],
                unit="{call}",
                description="Calls refused by a breaker or shedder, by SLO.",
            ),
            meter.create_observable_gauge(
                "slakit.sli", [self._sli], unit="1", description="SLI over the SLO window."
            ),
            meter.create_observable_gauge(
                "slakit.burn_rate",
                [self._burn],
                unit="1",
                description="Error budget burn rate per window.",
            ),
            meter.create_observable_gauge(
                "slakit.error_budget.remaining",
                [self._budget],
                unit="1",
                description="Share of the error budget left over the SLO window.",
            ),
            meter.create_observable_gauge(
                "slakit.status",
                [self._status],
                unit="1",
                description="SLO status: 0 healthy, 1 warning, 2 critical, 3 breached.",
            ),
        ]

    def _snapshots(self) -> list[Snapshot]:
        registry = self.engine.registry
        return [s for slo in registry.slos() if (s := registry.latest(slo.name)) is not None]

    def _counter(self, field: str) -> metrics.CallbackT:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            for snap in self._snapshots():
                yield Observation(getattr(snap.lifetime, field), {"slo": snap.slo})

        return observe

    def _sli(self, _options: CallbackOptions) -> Iterable[Observation]:
        for snap in self._snapshots():
            for o in snap.objectives:
                if o.actual is not None and o.budget is not None:
                    yield Observation(o.actual, {"slo": snap.slo, "objective": o.key})

    def _burn(self, _options: CallbackOptions) -> Iterable[Observation]:
        for snap in self._snapshots():
            period = str(self.engine.registry.slo(snap.slo).window)
            for o in snap.objectives:
                for w in o.windows:
                    if w.burn_rate is not None:
                        window = period if w.window == "slo" else w.window
                        yield Observation(
                            w.burn_rate, {"slo": snap.slo, "objective": o.key, "window": window}
                        )

    def _budget(self, _options: CallbackOptions) -> Iterable[Observation]:
        for snap in self._snapshots():
            for o in snap.objectives:
                if o.budget is not None:
                    yield Observation(o.budget.remaining, {"slo": snap.slo, "objective": o.key})

    def _status(self, _options: CallbackOptions) -> Iterable[Observation]:
        for snap in self._snapshots():
            yield Observation(snap.status.rank, {"slo": snap.slo})


def instrument(engine: Engine, meter: metrics.Meter | None = None) -> OTelInstruments:
    """Create slakit's observable instruments for ``engine`` (on the global meter by default)."""
    return OTelInstruments(engine, meter or metrics.get_meter("slakit"))
