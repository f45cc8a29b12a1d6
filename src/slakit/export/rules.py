"""
Prometheus recording and alerting rules, and promtool unit tests, from SLO definitions.

The fleet view: Prometheus (or Thanos, Mimir) evaluates the same SLOs over every
process's ``slakit_*`` counters, with the same arithmetic and the same alert table as
the in-process engine. Names follow the style Sloth made common:

* ``slo:sli_error:ratio_rate<w>``: the error ratio over each alert window, plus the
  SLO period, weighted by traffic (errors over events for the whole window, not a mean
  of 5-minute ratios);
* ``slo:objective:ratio``, ``slo:error_budget:ratio``, ``slo:time_period:days``,
  ``slo:current_burn_rate:ratio``, ``slo:period_burn_rate:ratio`` and
  ``slo:period_error_budget_remaining:ratio``;
* one alert per burn-rate rule, ``SLOErrorBudgetBurn``, labelled with the rule and a
  ``severity`` matching the engine's (critical pages, warning tickets), firing when
  both windows burn faster than the rule's rate and the long window holds at least
  ``min_events`` events.

Calendar windows use their nominal length (a month is 30 days): Prometheus has no
calendar ranges. ``rate()`` extrapolates at the edges of a series, so fleet and
in-process figures agree within that; the generated promtool tests use series that
cover every window, where both are exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import attrs

from slakit.spec import (
    SLO,
    Availability,
    BurnRateRule,
    Latency,
    Severity,
    format_duration,
    parse_duration,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

ALERT: Final = "SLOErrorBudgetBurn"


@attrs.frozen
class _Target:
    """One ratio objective, as the rules see it."""

    slo: SLO
    key: str
    target: float
    bad: str
    """PromQL for bad events over ``{w}``."""
    total: str
    """PromQL for all events over ``{w}``."""


def _targets(slo: SLO) -> list[_Target]:
    sel = f'slo="{slo.name}"'
    out = []
    for o in slo.objectives:
        if isinstance(o, Availability):
            errors = f"sum(rate(slakit_errors_total{{{sel}}}[{{w}}]))"
            total = f"sum(rate(slakit_requests_total{{{sel}}}[{{w}}]))"
            if slo.rejected_are_bad:
                rejected = f"sum(rate(slakit_rejected_total{{{sel}}}[{{w}}]))"
                errors, total = f"({errors} + {rejected})", f"({total} + {rejected})"
            out.append(_Target(slo, o.key, o.target, errors, total))
        elif isinstance(o, Latency):
            le = repr(float(o.threshold))
            count = f"sum(rate(slakit_request_duration_seconds_count{{{sel}}}[{{w}}]))"
            fast = f'sum(rate(slakit_request_duration_seconds_bucket{{{sel},le="{le}"}}[{{w}}]))'
            out.append(_Target(slo, o.key, o.target, f"({count} - {fast})", count))
    return out


def _at(template: str, window: str, fn: str = "rate") -> str:
    """Fill a PromQL template's ``{w}`` with ``window`` (and ``rate`` with ``fn``)."""
    return template.replace("[{w}]", f"[{window}]").replace("rate(", f"{fn}(")


def _labels(t: _Target, service: str) -> dict[str, str]:
    return {"service": service, "slo": t.slo.name, "objective": t.key}


def _selector(labels: dict[str, str]) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in labels.items())


def _windows(slo: SLO) -> list[str]:
    seen: dict[str, None] = {}
    for rule in slo.alerting.rules_for(slo.window.seconds):
        seen[format_duration(rule.short)] = None
        seen[format_duration(rule.long)] = None
    return sorted(seen, key=parse_duration)


def rule_groups(slos: Iterable[SLO], service: str = "service") -> dict[str, Any]:
    """Return a Prometheus rules file (as data) for ``slos``."""
    groups: list[dict[str, Any]] = []
    for slo in slos:
        targets = _targets(slo)
        if not targets:
            continue
        period = format_duration(slo.window.seconds)
        recordings: list[dict[str, Any]] = []
        meta: list[dict[str, Any]] = []
        alerts: list[dict[str, Any]] = []
        for t in targets:
            labels = _labels(t, service)
            sel = _selector(labels)
            recordings.extend(
                {
                    "record": f"slo:sli_error:ratio_rate{w}",
                    "expr": f"{_at(t.bad, w)}\n/\n{_at(t.total, w)}",
                    "labels": {**labels, "window": w},
                }
                for w in _windows(slo)
            )
            bad = _at(t.bad, period, "increase")
            total = _at(t.total, period, "increase")
            recordings.append(
                {
                    "record": f"slo:sli_error:ratio_rate{period}",
                    "expr": f"{bad}\n/\n{total}",
                    "labels": {**labels, "window": period},
                }
            )
            budget = 1.0 - t.target
            meta += [
                {"record": "slo:objective:ratio", "expr": repr(t.target), "labels": labels},
                {"record": "slo:error_budget:ratio", "expr": repr(budget), "labels": labels},
                {
                    "record": "slo:time_period:days",
                    "expr": repr(slo.window.seconds / 86_400),
                    "labels": labels,
                },
                {
                    "record": "slo:current_burn_rate:ratio",
                    "expr": f"slo:sli_error:ratio_rate5m{{{sel}}} / on(service, slo, objective) "
                    f"group_left slo:error_budget:ratio{{{sel}}}"
                    if "5m" in _windows(slo)
                    else f"slo:sli_error:ratio_rate{_windows(slo)[0]}{{{sel}}} / {budget!r}",
                    "labels": labels,
                },
                {
                    "record": "slo:period_burn_rate:ratio",
                    "expr": f"slo:sli_error:ratio_rate{period}{{{sel}}} / {budget!r}",
                    "labels": labels,
                },
                {
                    "record": "slo:period_error_budget_remaining:ratio",
                    "expr": f"1 - slo:period_burn_rate:ratio{{{sel}}}",
                    "labels": labels,
                },
            ]
            alerts.extend(
                _alert(t, rule, labels, slo.alerting.min_events)
                for rule in slo.alerting.rules_for(slo.window.seconds)
            )
        # one group, in order: Prometheus runs a group's rules one after another, so the
        # alerts see this evaluation's SLIs; across groups the order is not defined and
        # an alert could read the previous minute's (promtool showed it flip)
        groups.append({"name": f"slakit-{slo.name}", "rules": [*recordings, *meta, *alerts]})
    return {"groups": groups}


def _alert(
    t: _Target, rule: BurnRateRule, labels: dict[str, str], min_events: int
) -> dict[str, Any]:
    sel = _selector(labels)
    long_w, short_w = format_duration(rule.long), format_duration(rule.short)
    bar = f"({rule.burn_rate!r} * {1.0 - t.target!r})"
    expr = (
        f"max(slo:sli_error:ratio_rate{long_w}{{{sel}}} > {bar}) without (window)\n"
        f"and\n"
        f"max(slo:sli_error:ratio_rate{short_w}{{{sel}}} > {bar}) without (window)"
    )
    if min_events > 0:  # the engine's low-traffic guard
        events = _at(t.total, long_w, "increase")
        expr += f"\nand on()\n({events}) >= {min_events}"
    kind = "page" if rule.severity is Severity.CRITICAL else "ticket"
    return {
        "alert": ALERT,
        "expr": expr,
        "labels": {**labels, "rule": rule.name, "severity": str(rule.severity), "kind": kind},
        "annotations": {
            "summary": f"{t.slo.name}/{t.key} is burning its error budget ({rule.name})",
            "description": (
                f"Error rate over {long_w} and {short_w} exceeds {rule.burn_rate:g}x the "
                f"budget of a {1.0 - t.target:.4%} error target."
            ),
            "runbook": f"Check {t.slo.name}: recent deploys, dependencies, saturation.",
        },
    }


# -- promtool unit tests -------------------------------------------------------------


def rule_tests(slos: Sequence[SLO], rules_file: str, service: str = "service") -> dict[str, Any]:
    """
    Return a promtool unit-test file for the rules of ``slos``.

    Each ratio objective gets a scenario: clean traffic over the longest alert window,
    then a 2-hour total outage. The expected alerts are computed with slakit's own
    arithmetic from the same series, so promtool checks the rules against the engine.
    """
    tests = [_scenario(slo, t, service) for slo in slos for t in _targets(slo)]
    return {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests}


def _scenario(slo: SLO, t: _Target, service: str) -> dict[str, Any]:
    rules = slo.alerting.rules_for(slo.window.seconds)
    longest = max((int(r.long // 60) for r in rules), default=60)
    minutes = longest + 180  # every window is covered by data
    outage = 120
    per_minute = 600
    clean = minutes - outage
    sel = f'slo="{slo.name}"'
    # promtool expands "a+bxn" to n + 1 samples (minutes 0..n): both segments below
    # together hold minutes 0..minutes, and the failures grow from minute clean + 1 on
    total = f"0+{per_minute}x{minutes}"
    failing = f"0+0x{clean} {per_minute}+{per_minute}x{outage - 1}"
    series = [{"series": f"slakit_requests_total{{{sel}}}", "values": total}]
    if isinstance(next(o for o in slo.objectives if o.key == t.key), Latency):
        le = repr(float(next(o.threshold for o in slo.objectives if o.key == t.key)))  # type: ignore[union-attr]
        # the outage makes every call slow: the bucket at the threshold stops growing
        fast = f"0+{per_minute}x{clean} {clean * per_minute}+0x{outage - 1}"
        series += [
            {"series": f"slakit_request_duration_seconds_count{{{sel}}}", "values": total},
            {
                "series": f'slakit_request_duration_seconds_bucket{{{sel},le="{le}"}}',
                "values": fast,
            },
        ]
    else:
        series += [
            {"series": f"slakit_errors_total{{{sel}}}", "values": failing},
            {"series": f"slakit_rejected_total{{{sel}}}", "values": f"0+0x{minutes}"},
        ]
    checks = []
    for minute in _eval_minutes(rules, t.target, clean, outage):
        expected = []
        for rule in rules:
            if _fires(rule, t.target, clean, clean + minute, per_minute, slo.alerting.min_events):
                alert = _alert(t, rule, _labels(t, service), slo.alerting.min_events)
                labels = {"alertname": ALERT, **alert["labels"]}
                expected.append({"exp_labels": labels, "exp_annotations": alert["annotations"]})
        checks.append(
            {"eval_time": f"{clean + minute}m", "alertname": ALERT, "exp_alerts": expected}
        )
    return {
        "name": f"{slo.name}/{t.key}: a two-hour outage after clean traffic",
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": checks,
    }


def _ratio(window_s: float, clean: int, end: float) -> float:
    """Share of the window [end - w, end] (minutes) that falls in the outage."""
    start = end - window_s / 60
    return max(0.0, end - max(start, clean)) / (window_s / 60)


def _eval_minutes(
    rules: Sequence[BurnRateRule], target: float, clean: int, outage: int
) -> list[int]:
    """
    Minutes into the outage to check, each at least 25 % away from every rule's threshold.

    Prometheus's ``rate()`` sees one sample less than the ideal window; a margin keeps
    that from flipping an expected alert. Picks the first safe minute of each distinct
    set of firing rules, plus the last minute.
    """
    chosen: dict[frozenset[str], int] = {}
    for minute in range(outage + 1):
        end = clean + minute
        safe = True
        firing = []
        for rule in rules:
            bar = rule.burn_rate * (1.0 - target)
            ratios = (_ratio(rule.long, clean, end), _ratio(rule.short, clean, end))
            if any(abs(r - bar) < 0.25 * bar for r in ratios):
                safe = False
                break
            if all(r > bar for r in ratios):
                firing.append(rule.name)
        if safe:
            chosen.setdefault(frozenset(firing), minute)
    return sorted({*chosen.values(), outage})


def _fires(
    rule: BurnRateRule, target: float, clean: int, end: int, per_minute: int, min_events: int
) -> bool:
    """Apply the engine's rule to the test's series: both windows over, enough events."""
    bar = rule.burn_rate * (1.0 - target)
    enough = per_minute * rule.long / 60 >= min_events
    return enough and _ratio(rule.long, clean, end) > bar and _ratio(rule.short, clean, end) > bar
