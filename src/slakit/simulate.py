"""
``slakit simulate``: replay a traffic profile against an SLO's alerting, on a simulated clock.

A profile is a steady rate with phases (errors, slowness, spikes)::

    duration: 30d
    rate: 50                # requests per second
    step: 60s               # one evaluation per step (default: 1 min)
    phases:
      - {name: outage, start: 10d, duration: 15m, error_rate: 100%}
      - {name: slow burn, start: 20d, duration: 6h, error_rate: 0.5%}
      - {name: slow disk, start: 25d, duration: 1h, slow_rate: 30%, latency: 800ms}
      - {name: spike, start: 27d, duration: 5m, rate: 400}

Traffic is recorded per step (a slot's counts at once), the engine evaluates once per
step, and each phase that burns an objective's budget faster than it refills (its error
or slow ratio above ``1 - target``) is an *incident*. The result gives, per incident,
the detection time (phase start to the first alert), reset time (phase end to the last
of its alerts resolving) and the budget it spent; and for the run, precision (alerts
that belong to an incident) and recall (incidents alerted on).
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import attrs

from slakit.engine import Engine
from slakit.events import Event, ViolationOpened, ViolationResolved
from slakit.registry import Registry
from slakit.spec import Availability, Latency, parse_duration, parse_fraction
from slakit.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from slakit.spec import SLO


def _optional_duration(value: float | str | None) -> float | None:
    return None if value is None else parse_duration(value)


@attrs.frozen
class Phase:
    """A stretch of the profile that differs from the steady traffic."""

    name: str
    start: float = attrs.field(converter=parse_duration)
    duration: float = attrs.field(converter=parse_duration)
    error_rate: float = attrs.field(default=0.0, converter=parse_fraction)
    slow_rate: float = attrs.field(default=0.0, converter=parse_fraction)
    latency: float | None = attrs.field(default=None, converter=_optional_duration)
    """How long the slow requests take (with ``slow_rate``)."""
    rate: float | None = None
    """Requests per second during the phase (default: the profile's rate)."""

    @property
    def end(self) -> float:
        """Seconds from the start of the run when the phase ends."""
        return self.start + self.duration


@attrs.frozen
class Profile:
    """A traffic profile: a steady rate over a duration, with phases."""

    duration: float = attrs.field(converter=parse_duration)
    rate: float
    phases: tuple[Phase, ...] = ()
    step: float = attrs.field(default=60.0, converter=parse_duration)
    latency: float = attrs.field(default=0.05, converter=parse_duration)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Build a profile from parsed YAML; a phase may omit its name."""
        phases = tuple(
            Phase(**{"name": f"phase {i + 1}", **p}) for i, p in enumerate(data.get("phases", ()))
        )
        return cls(**{**data, "phases": phases})

    @classmethod
    def from_csv(cls, text: str, *, duration: str | float, rate: float) -> Profile:
        """
        Build a profile from a CSV of phases (a header row names the columns).

        Columns are the fields of :class:`Phase` (``name,start,duration,error_rate,...``);
        empty cells take the defaults. The run's duration and rate are given apart.
        """
        phases = []
        for i, row in enumerate(csv.DictReader(io.StringIO(text))):
            fields: dict[str, Any] = {
                k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()
            }
            if "rate" in fields:
                fields["rate"] = float(fields["rate"])
            phases.append(Phase(**{"name": f"phase {i + 1}", **fields}))
        return cls(duration=duration, rate=rate, phases=tuple(phases))

    def at(self, t: float) -> Phase | None:
        """Return the phase in force at ``t`` seconds into the run (the last listed wins)."""
        found = None
        for p in self.phases:
            if p.start <= t < p.end:
                found = p
        return found


@attrs.frozen
class Incident:
    """One phase that burned an objective's budget, and how the alerts answered it."""

    phase: str
    objective: str
    start: float
    end: float
    detected_after: float | None
    """Seconds from the phase start to the first alert (``None``: missed)."""
    reset_after: float | None
    """Seconds from the phase end to the last of its alerts resolving."""
    budget_spent: float
    """Bad events of the phase over the budget of a whole SLO window at the base rate."""
    alerts: tuple[str, ...]


@attrs.frozen
class Result:
    """What a simulation found."""

    incidents: tuple[Incident, ...]
    alerts: int
    false_alerts: int
    precision: float | None
    recall: float | None


def simulate(slo: SLO, profile: Profile, progress: Callable[[float], None] | None = None) -> Result:
    """Replay ``profile`` against ``slo``'s alerting; ``progress`` gets the share done."""
    clock = FakeClock()
    registry = Registry(clock)
    store = registry.register(slo)
    engine = Engine(registry)
    opened: list[tuple[float, str, str, str]] = []  # time, objective, rule, id
    resolved: dict[str, float] = {}
    start = clock.time()

    def listen(event: Event) -> None:
        if isinstance(event, ViolationOpened) and event.violation.rule != "budget":
            v = event.violation
            opened.append((v.opened_at - start, v.objective, v.rule, v.id))
        elif isinstance(event, ViolationResolved):
            resolved[event.violation.id] = event.violation.resolved_at or 0.0

    engine.listen(listen)
    steps = int(profile.duration // profile.step)
    for n in range(steps):
        t = n * profile.step
        phase = profile.at(t)
        rate = profile.rate if phase is None or phase.rate is None else phase.rate
        total = round(rate * profile.step)
        bad = round(total * (phase.error_rate if phase else 0.0))
        slow = round(total * (phase.slow_rate if phase else 0.0))
        slow_latency = phase.latency if phase and phase.latency else profile.latency
        store.record_many(
            clock.time(),
            bad=bad,
            durations=[(profile.latency, total - slow), (slow_latency, slow)],
        )
        clock.advance(profile.step)
        engine.evaluate_now()
        if progress is not None and n % 500 == 0:
            progress(n / steps)
    engine.stop()
    return _judge(slo, profile, opened, {k: v - start for k, v in resolved.items()})


def _judge(
    slo: SLO,
    profile: Profile,
    opened: list[tuple[float, str, str, str]],
    resolved: Mapping[str, float],
) -> Result:
    incidents = []
    claimed: set[str] = set()
    longest = max((r.long for r in slo.alerting.rules_for(slo.window.seconds)), default=0.0)
    for phase in profile.phases:
        for o in slo.objectives:
            if not isinstance(o, Availability | Latency):
                continue
            ratio = phase.error_rate if isinstance(o, Availability) else phase.slow_rate
            if isinstance(o, Latency) and (phase.latency or 0.0) <= o.threshold:
                ratio = 0.0
            if ratio <= 1 - o.target:
                continue  # sustainable: not an incident
            mine = [
                (t, rule, ident)
                for t, key, rule, ident in opened
                if key == o.key and phase.start <= t < phase.end + longest
            ]
            claimed.update(ident for *_, ident in mine)
            rate = phase.rate if phase.rate is not None else profile.rate
            allowed = (1 - o.target) * profile.rate * slo.window.seconds
            ends = [resolved.get(ident) for *_, ident in mine]
            incidents.append(
                Incident(
                    phase=phase.name,
                    objective=o.key,
                    start=phase.start,
                    end=phase.end,
                    detected_after=min(t for t, *_ in mine) - phase.start if mine else None,
                    reset_after=(
                        max(e for e in ends if e is not None) - phase.end
                        if ends and all(e is not None for e in ends)
                        else None
                    ),
                    budget_spent=ratio * rate * phase.duration / allowed if allowed else 0.0,
                    alerts=tuple(rule for _, rule, _ in mine),
                )
            )
    false_alerts = sum(1 for *_, ident in opened if ident not in claimed)
    return Result(
        incidents=tuple(incidents),
        alerts=len(opened),
        false_alerts=false_alerts,
        precision=(len(opened) - false_alerts) / len(opened) if opened else None,
        recall=(
            sum(1 for i in incidents if i.detected_after is not None) / len(incidents)
            if incidents
            else None
        ),
    )
