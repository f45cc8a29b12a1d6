"""
SLA reports from the history, as Markdown, HTML (with a chart) or JSON.

A report covers a calendar day, week or month in a time zone, or any range.

Per objective: target and actual over the period (bad events over events, summed over
workers), whether it was met, the error budget spent, and *bad minutes* (minutes whose
own error ratio exceeded the objective's allowance: the downtime figure). Violations
with start, end, duration and actions; MTTD (from the first bad minute of the incident
to the violation opening) and MTTR (opening to resolution) over the pages, or over all
violations when nothing paged; with a contract, the compliance score and what is owed.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import attrs

from slakit.spec import Availability, Latency, Severity

if TYPE_CHECKING:
    from collections.abc import Sequence

    from slakit.events import Violation
    from slakit.history import History, Measurement
    from slakit.sla import Contract
    from slakit.spec import SLO

Period = Literal["day", "week", "month"]


def period_bounds(
    kind: Period, tz: str = "UTC", at: float | None = None, *, previous: bool = False
) -> tuple[float, float]:
    """
    Return ``(start, end)`` of the calendar day, week (Monday) or month holding ``at``.

    With ``previous``, the period before it (last month's report on the 1st).
    """
    zone = ZoneInfo(tz)
    local = dt.datetime.fromtimestamp(
        dt.datetime.now(dt.UTC).timestamp() if at is None else at, zone
    )
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "week":
        start -= dt.timedelta(days=start.weekday())
    elif kind == "month":
        start = start.replace(day=1)
    if previous:
        start = _step(start, kind, -1)
    end = _step(start, kind, 1)
    return start.replace(tzinfo=zone).timestamp(), end.replace(tzinfo=zone).timestamp()


def _step(start: dt.datetime, kind: Period, n: int) -> dt.datetime:
    if kind == "day":
        return (start + dt.timedelta(days=n)).replace(hour=0)
    if kind == "week":
        return (start + dt.timedelta(weeks=n)).replace(hour=0)
    month = start.month - 1 + n
    return start.replace(year=start.year + month // 12, month=month % 12 + 1, day=1)


@attrs.frozen
class ObjectiveReport:
    """One objective over the period."""

    slo: str
    objective: str
    target: float
    events: int
    bad: int
    actual: float | None
    met: bool
    budget_spent: float | None
    """Bad events over allowed bad events (1.0: exactly used up)."""
    bad_minutes: int


@attrs.frozen
class ViolationReport:
    """One violation that overlapped the period."""

    id: str
    slo: str
    objective: str
    rule: str
    severity: str
    opened: float
    resolved: float | None
    duration: float | None
    detected_after: float | None
    """Seconds from the incident's first bad minute to the opening."""
    actions: tuple[str, ...]


@attrs.frozen
class Report:
    """An SLA report: build it with :func:`build`, render it with ``to_*``."""

    service: str
    start: float
    end: float
    tz: str
    objectives: tuple[ObjectiveReport, ...]
    violations: tuple[ViolationReport, ...]
    mttd: float | None
    mttr: float | None
    compliance_score: float | None = None
    credit_percent: float | None = None
    owed: float | None = None
    daily: tuple[tuple[str, float | None], ...] = ()
    """Per local day, the first objective's SLI (for the chart)."""
    corrections: tuple[tuple[str, float, float, str], ...] = ()
    """``(slo, start, end, reason)`` of the time left out after the fact."""
    maintenance: tuple[tuple[str, float, float], ...] = ()
    """``(slo, start, end)`` of the maintenance windows (their events were ignored)."""


def build(
    history: History,
    slos: Sequence[SLO],
    start: float,
    end: float,
    *,
    service: str = "service",
    tz: str = "UTC",
    contract: Contract | None = None,
) -> Report:
    """Compute the report of ``slos`` over ``[start, end)`` from ``history``."""
    objectives: list[ObjectiveReport] = []
    violations: list[ViolationReport] = []
    daily: list[tuple[str, float | None]] = []
    corrections = [
        (slo.name, *c) for slo in slos for c in history.corrections(slo.name, start, end)
    ]
    maintenance = [
        (slo.name, *m) for slo in slos for m in history.maintenance(slo.name, start, end)
    ]
    for slo in slos:
        rows = history.measurements(slo.name, start, end)
        for o in slo.objectives:
            if isinstance(o, Availability | Latency):
                mine = [r for r in rows if r.objective == o.key]
                objectives.append(_objective(slo.name, o.key, o.target, mine))
                if not daily:
                    daily = _daily(mine, tz)
        violations.extend(
            _violation(v, [r for r in rows if r.objective == v.objective], slo)
            for v in history.violations(slo.name, start, end)
        )
    pages = [v for v in violations if v.severity == Severity.CRITICAL.value] or violations
    detected = [v.detected_after for v in pages if v.detected_after is not None]
    durations = [v.duration for v in pages if v.duration is not None]
    report = Report(
        service=service,
        start=start,
        end=end,
        tz=tz,
        objectives=tuple(objectives),
        violations=tuple(violations),
        mttd=sum(detected) / len(detected) if detected else None,
        mttr=sum(durations) / len(durations) if durations else None,
        daily=tuple(daily),
        corrections=tuple(corrections),
        maintenance=tuple(maintenance),
    )
    if contract is None or not contract.in_force(start, end):
        return report
    covered = {o.objective: o for o in objectives if o.slo == contract.slo}
    met = {key: covered[key].met for key in contract.weights if key in covered}
    availability = next(
        (o for o in covered.values() if o.objective.startswith("availability")), None
    )
    percent = owed = None
    if availability is not None and availability.actual is not None:
        percent = contract.credit_percent(availability.actual)
        owed = contract.owed(availability.target, availability.actual)
    return attrs.evolve(
        report,
        compliance_score=contract.compliance_score(met),
        credit_percent=percent,
        owed=owed,
    )


def _objective(slo: str, key: str, target: float, rows: list[Measurement]) -> ObjectiveReport:
    events = sum(r.events for r in rows)
    bad = sum(r.bad for r in rows)
    actual = 1 - bad / events if events else None
    allowed = (1 - target) * events
    bad_minutes = sum(1 for r in rows if r.events and r.bad / r.events > 1 - target)
    return ObjectiveReport(
        slo=slo,
        objective=key,
        target=target,
        events=events,
        bad=bad,
        actual=actual,
        met=actual is None or actual >= target,
        budget_spent=bad / allowed if allowed > 0 else None,
        bad_minutes=bad_minutes,
    )


def _violation(v: Violation, rows: list[Measurement], slo: SLO) -> ViolationReport:
    """Report a violation with its incident's start: the bad minutes running up to it."""
    target = next(
        (
            o.target
            for o in slo.objectives
            if o.key == v.objective and isinstance(o, Availability | Latency)
        ),
        1.0,
    )
    opened_minute = int(v.opened_at // 60)
    bad = {r.minute for r in rows if r.events and r.bad / r.events > 1 - target}
    first = None
    m = opened_minute
    while m in bad or (m == opened_minute and m - 1 in bad):
        first = m
        m -= 1
    return ViolationReport(
        id=v.id,
        slo=v.slo,
        objective=v.objective,
        rule=v.rule,
        severity=v.severity.value,
        opened=v.opened_at,
        resolved=v.resolved_at,
        duration=v.duration,
        detected_after=None if first is None else max(0.0, v.opened_at - first * 60),
        actions=tuple(f"{a.hook}: {a.result}" for a in v.actions),
    )


def _daily(rows: list[Measurement], tz: str) -> list[tuple[str, float | None]]:
    zone = ZoneInfo(tz)
    days: dict[str, list[int]] = {}
    for r in rows:
        day = dt.datetime.fromtimestamp(r.minute * 60, zone).date().isoformat()
        acc = days.setdefault(day, [0, 0])
        acc[0] += r.events
        acc[1] += r.bad
    return [(d, 1 - b / e if e else None) for d, (e, b) in sorted(days.items())]


# -- rendering ------------------------------------------------------------------------------


def _when(t: float | None, tz: str) -> str:
    if t is None:
        return "open"
    return dt.datetime.fromtimestamp(t, ZoneInfo(tz)).isoformat(timespec="seconds")


def _pct(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x * 100:.{digits}f} %"


def _secs(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min"


def to_json(report: Report) -> str:
    """Render the report as JSON (times as Unix seconds and ISO strings)."""
    data: dict[str, Any] = attrs.asdict(report)
    data["start_iso"] = _when(report.start, report.tz)
    data["end_iso"] = _when(report.end, report.tz)
    return json.dumps(data, indent=1)


def to_markdown(report: Report) -> str:
    """Render the report as Markdown."""
    tz = report.tz
    out = [
        f"# SLA report: {report.service}",
        "",
        f"{_when(report.start, tz)} to {_when(report.end, tz)} ({tz})",
        "",
        "| SLO | objective | target | actual | met | budget spent | bad minutes | events |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    out.extend(
        f"| {o.slo} | {o.objective} | {_pct(o.target)} | {_pct(o.actual)} | "
        f"{'yes' if o.met else '**no**'} | {_pct(o.budget_spent, 1)} | {o.bad_minutes} | "
        f"{o.events:,} |"
        for o in report.objectives
    )
    out += ["", f"MTTD {_secs(report.mttd)}, MTTR {_secs(report.mttr)}."]
    if report.compliance_score is not None:
        out += [
            "",
            (
                f"Compliance score: {report.compliance_score:.0f} / 100. "
                f"Credit: {report.credit_percent or 0:g} %. Owed: {report.owed or 0:,.2f}."
            ),
        ]
    if report.corrections:
        out += ["", "## Corrections (left out of the figures)", ""]
        out.extend(
            f"- {slo}: {_when(s, tz)} to {_when(e, tz)}: {reason}"
            for slo, s, e, reason in report.corrections
        )
    if report.maintenance:
        out += ["", "## Maintenance windows (their events were ignored)", ""]
        out.extend(f"- {slo}: {_when(s, tz)} to {_when(e, tz)}" for slo, s, e in report.maintenance)
    out += ["", "## Violations", ""]
    if not report.violations:
        out.append("None.")
    for v in report.violations:
        out.append(
            f"- **{v.slo}/{v.objective}** `{v.rule}` ({v.severity}): {_when(v.opened, tz)} to "
            f"{_when(v.resolved, tz)}, {_secs(v.duration)}"
            f"{'' if v.detected_after is None else f', detected after {_secs(v.detected_after)}'}"
        )
        out.extend(f"  - {a}" for a in v.actions)
    return "\n".join(out) + "\n"


def to_html(report: Report) -> str:
    """Render the report as one HTML page, with a daily SLI chart (inline SVG)."""
    e = html.escape
    md_rows = "".join(
        f"<tr><td>{e(o.slo)}</td><td>{e(o.objective)}</td><td>{_pct(o.target)}</td>"
        f"<td>{_pct(o.actual)}</td><td>{'yes' if o.met else '<b>no</b>'}</td>"
        f"<td>{_pct(o.budget_spent, 1)}</td><td>{o.bad_minutes}</td><td>{o.events:,}</td></tr>"
        for o in report.objectives
    )
    violations = "".join(
        f"<li><b>{e(v.slo)}/{e(v.objective)}</b> {e(v.rule)} ({e(v.severity)}): "
        f"{e(_when(v.opened, report.tz))} to {e(_when(v.resolved, report.tz))}, "
        f"{_secs(v.duration)}<ul>{''.join(f'<li>{e(a)}</li>' for a in v.actions)}</ul></li>"
        for v in report.violations
    )
    score = (
        ""
        if report.compliance_score is None
        else f"<p>Compliance score {report.compliance_score:.0f} / 100; credit "
        f"{report.credit_percent or 0:g} %; owed {report.owed or 0:,.2f}.</p>"
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>SLA report: {e(report.service)}</title><style>"
        "body{font:15px/1.4 system-ui,sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd}"
        f"</style></head><body><h1>SLA report: {e(report.service)}</h1>"
        f"<p>{e(_when(report.start, report.tz))} to {e(_when(report.end, report.tz))}</p>"
        "<table><tr><th>SLO</th><th>objective</th><th>target</th><th>actual</th><th>met</th>"
        f"<th>budget spent</th><th>bad minutes</th><th>events</th></tr>{md_rows}</table>"
        f"<p>MTTD {_secs(report.mttd)}, MTTR {_secs(report.mttr)}.</p>{score}"
        f"{_daily_chart(report)}<h2>Violations</h2><ul>{violations or '<li>None.</li>'}</ul>"
        "</body></html>"
    )


def _daily_chart(report: Report) -> str:
    """Daily SLI of the first objective as SVG bars (red below target)."""
    days = [(d, v) for d, v in report.daily if v is not None]
    if not days or not report.objectives:
        return ""
    target = report.objectives[0].target
    low = min(*(v for _, v in days), target) - (1 - target)
    width, height = 640, 160
    bar = width / len(days)
    bars = []
    for i, (day, value) in enumerate(days):
        h = (value - low) / (1 - low) * (height - 20) if value > low else 1
        colour = "#2e7d32" if value >= target else "#c62828"
        bars.append(
            f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{max(bar - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{day}: {value * 100:.3f} %</title></rect>'
        )
    return (
        f"<h2>Daily {html.escape(report.objectives[0].objective)}</h2>"
        f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        + "".join(bars)
        + "</svg>"
    )
