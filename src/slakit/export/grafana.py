"""
A Grafana dashboard for the SLOs, over the recording rules of :mod:`slakit.export.rules`.

Per ratio objective: the SLI over the SLO period against its target, the error budget
left, burn rates over every alert window against their thresholds, a budget burn-down
(the budget left over time), and the ``SLOErrorBudgetBurn`` alerts firing. A
``service`` variable and the ``datasource`` input let one JSON serve any Prometheus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slakit.export.rules import ALERT, _labels, _selector, _targets, _windows
from slakit.spec import SLO, format_duration

if TYPE_CHECKING:
    from collections.abc import Iterable

_WIDTH = 24
_firing = f'alertname="{ALERT}", alertstate="firing"'


def dashboard(
    slos: Iterable[SLO], service: str = "service", title: str | None = None
) -> dict[str, Any]:
    """Return a Grafana dashboard (as data) for ``slos``."""
    panels: list[dict[str, Any]] = []
    y = 0
    for slo in slos:
        for t in _targets(slo):
            sel = _selector(_labels(t, service))
            period = format_duration(slo.window.seconds)
            budget = 1.0 - t.target
            panels.append(_row(f"{slo.name} / {t.key} (target {t.target:.4%} over {period})", y))
            y += 1
            panels += [
                _stat(
                    "SLI over the period",
                    f"1 - slo:sli_error:ratio_rate{period}{{{sel}}}",
                    x=0,
                    y=y,
                    unit="percentunit",
                    thresholds=[("red", None), ("green", t.target)],
                ),
                _stat(
                    "Error budget left",
                    f"slo:period_error_budget_remaining:ratio{{{sel}}}",
                    x=6,
                    y=y,
                    unit="percentunit",
                    thresholds=[("red", None), ("orange", 0.25), ("green", 0.5)],
                ),
                _timeseries(
                    "Burn rate by window",
                    [
                        (f"slo:sli_error:ratio_rate{w}{{{sel}}} / {budget!r}", w)
                        for w in _windows(slo)
                    ],
                    x=12,
                    y=y,
                    width=12,
                ),
            ]
            y += 8
            panels += [
                _timeseries(
                    "Error budget burn-down",
                    [(f"slo:period_error_budget_remaining:ratio{{{sel}}}", "budget left")],
                    x=0,
                    y=y,
                    width=12,
                    unit="percentunit",
                ),
                _timeseries(
                    "Burn-rate alerts firing",
                    [
                        (f"count by (rule) (ALERTS{{{_firing}, {sel}}})", "{{rule}}"),
                    ],
                    x=12,
                    y=y,
                    width=12,
                ),
            ]
            y += 8
    return {
        "title": title or f"SLOs: {service}",
        "uid": f"slakit-{service}"[:40],
        "tags": ["slakit", "slo"],
        "timezone": "utc",
        "schemaVersion": 39,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "templating": {"list": [_datasource_variable()]},
        "panels": _numbered(panels),
    }


def panel_queries(board: dict[str, Any]) -> list[str]:
    """Return every PromQL expression of a dashboard's panels (for checking them)."""
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def _numbered(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return panels


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "type": "datasource",
        "query": "prometheus",
        "label": "Prometheus",
    }


_DS = {"type": "prometheus", "uid": "${datasource}"}


def _row(title: str, y: int) -> dict[str, Any]:
    return {
        "type": "row",
        "title": title,
        "gridPos": {"x": 0, "y": y, "w": _WIDTH, "h": 1},
        "collapsed": False,
    }


def _stat(
    title: str, expr: str, *, x: int, y: int, unit: str, thresholds: list[tuple[str, float | None]]
) -> dict[str, Any]:
    return {
        "type": "stat",
        "title": title,
        "datasource": _DS,
        "gridPos": {"x": x, "y": y, "w": 6, "h": 8},
        "targets": [{"refId": "A", "expr": expr, "datasource": _DS}],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "decimals": 3,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": c, "value": v} for c, v in thresholds],
                },
            }
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
    }


def _timeseries(
    title: str,
    queries: list[tuple[str, str]],
    *,
    x: int,
    y: int,
    width: int,
    unit: str = "none",
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": _DS,
        "gridPos": {"x": x, "y": y, "w": width, "h": 8},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": _DS}
            for i, (expr, legend) in enumerate(queries)
        ],
        "fieldConfig": {"defaults": {"unit": unit}},
    }
