"""
Pure evaluation: counts in, a frozen :class:`Snapshot` out.

The engine asks :func:`plan` which spans to read, reads them from the store, and hands
the counts to :func:`evaluate` together with the previous snapshot (for hysteresis).
Nothing here reads a clock, a store or a lock.

Arithmetic (see ``docs/concepts.md``):

* SLI of a ratio objective over a window = good / (good + bad); 1 with no events.
* Error budget over the SLO window = ``(1 - target) × events``; remaining fraction =
  ``1 - bad / budget``. For a timeslice objective the budget is time:
  ``(1 - target) × window``.
* Burn rate over a window = ``bad_ratio / (1 - target)``.
* A burn-rate rule is active when both its windows burn faster than its rate and the
  long window holds at least ``min_events``; once active it stays active until a
  window's burn drops under ``rate × (1 - hysteresis)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import attrs

from slakit import sketch
from slakit.ring import Counts
from slakit.spec import (
    SLO,
    Availability,
    BurnRateRule,
    Latency,
    Percentile,
    Severity,
    Status,
    Threshold,
    Throughput,
    Uptime,
    format_duration,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


Span = tuple[float, float]
"""A wall-clock span ``(start, end)`` in seconds since the epoch."""

PERCENTILES: Final = (0.5, 0.9, 0.95, 0.99)
"""Quantiles every snapshot reports over the SLO window."""

_SEVERITY_STATUS: Final = {
    Severity.INFO: Status.HEALTHY,
    Severity.WARNING: Status.WARNING,
    Severity.CRITICAL: Status.CRITICAL,
}


@attrs.frozen
class Plan:
    """The spans one evaluation needs, keyed by a label such as ``"slo"`` or ``"5m"``."""

    now: float
    spans: Mapping[str, Span]
    slices: Mapping[str, float]
    """Timeslice objectives (by key) → slice length; the engine judges their slices."""


def plan(slo: SLO, now: float) -> Plan:
    """Return the spans :func:`evaluate` needs for ``slo`` at ``now``."""
    spans: dict[str, Span] = {"slo": slo.window.bounds(now)}
    for rule in slo.alerting.rules_for(slo.window.seconds):
        for length in (rule.long, rule.short):
            spans[format_duration(length)] = (now - length, now)
    slices: dict[str, float] = {}
    for o in slo.objectives:
        if isinstance(o, Throughput):
            spans[format_duration(o.window)] = (now - o.window, now)
        elif isinstance(o, Uptime) or (isinstance(o, Percentile) and o.slice is not None):
            assert o.slice is not None
            slices[o.key] = o.slice
    return Plan(now, spans, slices)


@attrs.frozen
class Inputs:
    """Everything one evaluation reads, gathered by the engine."""

    counts: Mapping[str, Counts]
    """Counts per span label of the :class:`Plan`."""
    lifetime: Counts
    histogram: Mapping[int, int]
    """Latency histogram (bucket → count) of the SLO window."""
    lifetime_histogram: Mapping[int, int] = attrs.field(factory=dict)
    """Latency histogram since the store began (read with ``lifetime``)."""
    bad_slices: Mapping[str, int] = attrs.field(factory=dict)
    """Per timeslice objective, bad slices among the closed slices of the SLO window."""
    values: Mapping[str, float | None] = attrs.field(factory=dict)
    """Per :class:`~slakit.spec.Threshold` objective, its sampled value."""
    age: float = float("inf")
    """Seconds since the SLO's store began: a rate floor is judged only once it has
    seen a whole window (no alert for traffic that could not have arrived yet)."""


@attrs.frozen
class WindowStats:
    """One objective's figures over one window."""

    window: str
    events: int
    bad: int
    sli: float
    burn_rate: float | None
    rate: float
    """Events per second over the span."""

    @property
    def good(self) -> int:
        """Events within the objective."""
        return self.events - self.bad


@attrs.frozen
class Budget:
    """Error budget of an objective over the SLO window."""

    total: float
    """Allowed bad events (or, for a timeslice objective, seconds of bad slices)."""
    spent: float
    unit: str
    """``"events"`` or ``"seconds"``."""

    @property
    def remaining(self) -> float:
        """Fraction left: 1 untouched, 0 exhausted, negative overspent."""
        if self.total <= 0:
            return 1.0 if self.spent <= 0 else -float(self.spent)
        return 1.0 - self.spent / self.total

    @property
    def remaining_amount(self) -> float:
        """Events (or seconds) that may still go bad before the budget is gone."""
        return self.total - self.spent


@attrs.frozen
class Condition:
    """One rule that can open a violation, and whether it holds now."""

    rule: str
    severity: Severity
    active: bool
    value: float
    """The measured figure (burn rate, quantile, rate, sampled value)."""
    limit: float
    """The bound it is held to."""
    detail: str = ""


@attrs.frozen
class ObjectiveStatus:
    """An objective's state in one snapshot."""

    key: str
    kind: str
    target: float | None
    actual: float | None
    """SLI, uptime, quantile, rate or value over the SLO window (``None`` if unknown)."""
    met: bool
    status: Status
    budget: Budget | None
    windows: tuple[WindowStats, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def burn_rate(self, window: str) -> float | None:
        """Return the burn rate over ``window`` (e.g. ``"1h"``), if evaluated."""
        for w in self.windows:
            if w.window == window:
                return w.burn_rate
        return None


@attrs.frozen
class Snapshot:
    """The frozen result of evaluating one SLO at one moment."""

    slo: str
    time: float
    status: Status
    objectives: tuple[ObjectiveStatus, ...]
    events: int
    """Events (good + bad) in the SLO window."""
    bad: int
    lifetime: Counts
    """Counts since the store began (monotonic: what exporters publish as counters)."""
    lifetime_histogram: Mapping[int, int]
    """Latency histogram (bucket → count) since the store began; sums to lifetime.timed."""
    percentiles: Mapping[float, float | None]
    """Latency quantiles over the SLO window, in seconds."""

    def objective(self, key: str) -> ObjectiveStatus:
        """Return the objective named ``key``."""
        for o in self.objectives:
            if o.key == key:
                return o
        raise KeyError(f"{self.slo} has no objective {key!r}")

    def budget_remaining(self, objective: str | None = None) -> float:
        """Return the lowest remaining budget fraction (or that of ``objective``)."""
        if objective is not None:
            b = self.objective(objective).budget
            return 1.0 if b is None else b.remaining
        left = [o.budget.remaining for o in self.objectives if o.budget is not None]
        return min(left, default=1.0)


def evaluate(slo: SLO, the_plan: Plan, inputs: Inputs, previous: Snapshot | None) -> Snapshot:
    """Evaluate ``slo`` from ``inputs``; ``previous`` carries alert hysteresis."""
    rules = slo.alerting.rules_for(slo.window.seconds)
    slow_index = {t: i for i, t in enumerate(slo.thresholds)}
    window_counts = inputs.counts["slo"]
    was_active = _active_rules(previous)
    results = []
    for o in slo.objectives:
        prev = was_active.get(o.key, frozenset())
        if isinstance(o, Availability | Latency):
            bad_of = _bad_of(o, slow_index, slo.rejected_are_bad)
            results.append(_ratio(slo, o, the_plan, inputs, rules, bad_of, prev))
        elif isinstance(o, Uptime) or (isinstance(o, Percentile) and o.slice is not None):
            results.append(_timeslice(slo, o, the_plan, inputs))
        elif isinstance(o, Percentile):
            results.append(_percentile(o, inputs))
        elif isinstance(o, Throughput):
            results.append(_throughput(o, the_plan, inputs))
        else:
            results.append(_threshold(o, inputs, prev, slo.alerting.hysteresis))
    status = max((r.status for r in results), key=lambda s: s.rank, default=Status.HEALTHY)
    return Snapshot(
        slo=slo.name,
        time=the_plan.now,
        status=status,
        objectives=tuple(results),
        events=window_counts.total,
        bad=window_counts.bad,
        lifetime=inputs.lifetime,
        lifetime_histogram=inputs.lifetime_histogram,
        percentiles={q: sketch.quantile(inputs.histogram, q) for q in PERCENTILES},
    )


def _active_rules(previous: Snapshot | None) -> dict[str, frozenset[str]]:
    if previous is None:
        return {}
    return {o.key: frozenset(c.rule for c in o.conditions if c.active) for o in previous.objectives}


def counted(slo: SLO, o: Availability | Latency) -> Callable[[Counts], tuple[int, int]]:
    """Return a function of counts giving ``(events, bad)`` for event objective ``o``."""
    return _bad_of(o, {t: i for i, t in enumerate(slo.thresholds)}, slo.rejected_are_bad)


def _bad_of(
    o: Availability | Latency, slow_index: Mapping[float, int], rejected_are_bad: bool
) -> Callable[[Counts], tuple[int, int]]:
    """Return a function of counts giving ``(events, bad)`` for objective ``o``."""
    if isinstance(o, Availability):
        if rejected_are_bad:
            return lambda c: (c.total + c.rejected, c.bad + c.rejected)
        return lambda c: (c.total, c.bad)
    i = slow_index[o.threshold]
    return lambda c: (c.timed, c.slow[i])


def _stats(
    label: str, events_bad: tuple[int, int], span: tuple[float, float], target: float
) -> WindowStats:
    events, bad = events_bad
    ratio = bad / events if events else 0.0
    length = max(span[1] - span[0], 1e-9)
    return WindowStats(
        window=label,
        events=events,
        bad=bad,
        sli=1.0 - ratio,
        burn_rate=ratio / (1.0 - target),
        rate=events / length,
    )


def _ratio(
    slo: SLO,
    o: Availability | Latency,
    the_plan: Plan,
    inputs: Inputs,
    rules: Sequence[BurnRateRule],
    bad_of: Callable[[Counts], tuple[int, int]],
    prev: frozenset[str],
) -> ObjectiveStatus:
    stats = {
        label: _stats(label, bad_of(inputs.counts[label]), span, o.target)
        for label, span in the_plan.spans.items()
        if label in inputs.counts
    }
    whole = stats["slo"]
    budget = Budget(total=(1.0 - o.target) * whole.events, spent=whole.bad, unit="events")
    conditions = []
    h = slo.alerting.hysteresis
    for rule in rules:
        long_w = stats[format_duration(rule.long)]
        short_w = stats[format_duration(rule.short)]
        assert long_w.burn_rate is not None
        assert short_w.burn_rate is not None
        bar = rule.burn_rate * (1.0 - h) if rule.name in prev else rule.burn_rate
        active = (
            long_w.events >= slo.alerting.min_events
            and long_w.burn_rate > bar
            and short_w.burn_rate > bar
        )
        conditions.append(
            Condition(
                rule=rule.name,
                severity=rule.severity,
                active=active,
                value=min(long_w.burn_rate, short_w.burn_rate),
                limit=rule.burn_rate,
                detail=(
                    f"burn rate {long_w.burn_rate:.2f} over {long_w.window} and "
                    f"{short_w.burn_rate:.2f} over {short_w.window} (limit {rule.burn_rate:g}); "
                    f"SLI {long_w.sli:.5f} vs target {o.target:g}"
                ),
            )
        )
    exhausted = whole.events > 0 and budget.remaining <= 0
    conditions.append(
        Condition(
            rule="budget",
            severity=Severity.CRITICAL,
            active=exhausted,
            value=budget.remaining,
            limit=0.0,
            detail=f"error budget remaining {budget.remaining:.2%} over {slo.window}",
        )
    )
    return ObjectiveStatus(
        key=o.key,
        kind=type(o).__name__.lower(),
        target=o.target,
        actual=whole.sli,
        met=whole.sli >= o.target,
        status=_status(conditions, breached=exhausted),
        budget=budget,
        windows=tuple(stats.values()),
        conditions=tuple(conditions),
    )


def _status(conditions: Sequence[Condition], *, breached: bool) -> Status:
    if breached:
        return Status.BREACHED
    worst = Status.HEALTHY
    for c in conditions:
        if c.active and c.rule != "budget":
            s = _SEVERITY_STATUS[c.severity]
            worst = max(worst, s, key=lambda x: x.rank)
    return worst


def _timeslice(slo: SLO, o: Uptime | Percentile, the_plan: Plan, inputs: Inputs) -> ObjectiveStatus:
    assert o.slice is not None
    assert o.target is not None
    start, end = the_plan.spans["slo"]
    slices = max(1, int((end - start) // o.slice))
    bad = inputs.bad_slices.get(o.key, 0)
    uptime = 1.0 - bad / slices
    period = slo.window.seconds
    budget = Budget(total=(1.0 - o.target) * period, spent=bad * o.slice, unit="seconds")
    exhausted = budget.remaining <= 0
    conditions = (
        Condition(
            rule="budget",
            severity=Severity.CRITICAL,
            active=exhausted,
            value=budget.remaining,
            limit=0.0,
            detail=f"{bad} bad slices of {format_duration(o.slice)}; uptime {uptime:.5f}",
        ),
    )
    return ObjectiveStatus(
        key=o.key,
        kind=type(o).__name__.lower(),
        target=o.target,
        actual=uptime,
        met=uptime >= o.target,
        status=Status.BREACHED if exhausted else Status.HEALTHY,
        budget=budget,
        conditions=conditions,
    )


def _percentile(o: Percentile, inputs: Inputs) -> ObjectiveStatus:
    value = sketch.quantile(inputs.histogram, o.q)
    met = value is None or value <= o.threshold
    return ObjectiveStatus(
        key=o.key,
        kind="percentile",
        target=o.threshold,
        actual=value,
        met=met,
        status=Status.HEALTHY if met else Status.BREACHED,
        budget=None,
        conditions=(
            Condition(
                rule="percentile",
                severity=Severity.CRITICAL,
                active=not met,
                value=-1.0 if value is None else value,
                limit=o.threshold,
                detail=f"p{o.q * 100:g} over the SLO window",
            ),
        ),
    )


def _throughput(o: Throughput, the_plan: Plan, inputs: Inputs) -> ObjectiveStatus:
    label = format_duration(o.window)
    start, end = the_plan.spans[label]
    rate = inputs.counts[label].total / max(end - start, 1e-9)
    active = rate < o.min_rps and inputs.age >= o.window
    return ObjectiveStatus(
        key=o.key,
        kind="throughput",
        target=o.min_rps,
        actual=rate,
        met=not active,
        status=_SEVERITY_STATUS[o.severity] if active else Status.HEALTHY,
        budget=None,
        conditions=(
            Condition(
                rule="throughput",
                severity=o.severity,
                active=active,
                value=rate,
                limit=o.min_rps,
                detail=f"{rate:.3g} req/s over {label}",
            ),
        ),
    )


def _threshold(
    o: Threshold, inputs: Inputs, prev: frozenset[str], hysteresis: float
) -> ObjectiveStatus:
    value = inputs.values.get(o.key)
    conditions = []
    worst: Severity | None = None
    for sev in (Severity.INFO, Severity.WARNING, Severity.CRITICAL):
        bound = o.level(sev)
        if bound is None:
            continue
        rule = f"threshold-{sev}"
        level = bound
        if rule in prev:  # hysteresis: an open violation holds inside the band
            level -= o.bad_sign * hysteresis * abs(bound)
        active = value is not None and o.is_past(value, level)
        if active:
            worst = sev
        conditions.append(
            Condition(
                rule=rule,
                severity=sev,
                active=active,
                value=float("nan") if value is None else value,
                limit=bound,
                detail=f"{o.key} {o.op} {bound:g}",
            )
        )
    status = Status.HEALTHY if worst is None else _SEVERITY_STATUS[worst]
    return ObjectiveStatus(
        key=o.key,
        kind="threshold",
        target=o.target if o.target is not None else (o.warning or o.critical),
        actual=value,
        met=worst is None or worst is Severity.INFO,
        status=status,
        budget=None,
        conditions=tuple(conditions),
    )
