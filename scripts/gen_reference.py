"""
Write docs/reference.md from the public API's signatures and docstrings.

    python scripts/gen_reference.py          # rewrite the file
    python scripts/gen_reference.py --check  # exit 1 if it is out of date (tests do this)
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path

import attrs

import slakit
import slakit.asgi
import slakit.composite
import slakit.config
import slakit.engine
import slakit.evaluate
import slakit.events
import slakit.export.fleet
import slakit.export.grafana
import slakit.export.multiprocess
import slakit.export.openslo
import slakit.export.otel
import slakit.export.prometheus
import slakit.export.rules
import slakit.formula
import slakit.history
import slakit.remediate
import slakit.remediate.build
import slakit.report
import slakit.ring
import slakit.series
import slakit.simulate
import slakit.sla
import slakit.spec
import slakit.testing
import slakit.typing
import slakit.web
import slakit.wsgi

OUT = Path(__file__).resolve().parent.parent / "docs" / "reference.md"

SECTIONS = {
    "Declaring SLOs (`slakit.spec`)": [
        slakit.SLO,
        slakit.Availability,
        slakit.Latency,
        slakit.Percentile,
        slakit.Uptime,
        slakit.Throughput,
        slakit.Threshold,
        slakit.Window,
        slakit.AlertPolicy,
        slakit.BurnRateRule,
        slakit.Status,
        slakit.Severity,
    ],
    "Loading configuration (`slakit.config`)": [
        slakit.load,
        slakit.loads,
        slakit.load_dict,
        slakit.config.Config,
        slakit.spec.ViolationPolicy,
    ],
    "Recording (`slakit.track`)": [slakit.track, slakit.Tracker, slakit.record],
    "Web middleware (`slakit.asgi`, `slakit.wsgi`)": [
        slakit.asgi.SLOMiddleware,
        slakit.asgi.starlette_route,
        slakit.wsgi.SLOMiddleware,
        slakit.wsgi.flask_route,
        slakit.wsgi.django_route,
        slakit.typing.Admission,
        slakit.typing.Publisher,
        slakit.series.Series,
    ],
    "Status page (`slakit.web`)": [slakit.web.StatusPage, slakit.web.serve],
    "Store (`slakit.ring`)": [slakit.ring.Store, slakit.ring.Counts, slakit.ring.View],
    "Engine (`slakit.engine`)": [slakit.Engine, slakit.Registry, slakit.default_registry],
    "Snapshots (`slakit.evaluate`)": [
        slakit.evaluate.Snapshot,
        slakit.evaluate.ObjectiveStatus,
        slakit.evaluate.WindowStats,
        slakit.evaluate.Budget,
        slakit.evaluate.Condition,
    ],
    "Events (`slakit.events`)": [
        slakit.Violation,
        slakit.ViolationOpened,
        slakit.ViolationResolved,
        slakit.ViolationAcknowledged,
        slakit.ActionTaken,
        slakit.StatusChanged,
        slakit.BudgetExhausted,
        slakit.events.Action,
    ],
    "Remediation (`slakit.remediate`)": [
        slakit.remediate.CircuitBreaker,
        slakit.remediate.CircuitBreakerListener,
        slakit.remediate.CircuitOpenError,
        slakit.remediate.State,
        slakit.remediate.Policy,
        slakit.remediate.LoadShedder,
        slakit.remediate.Criticality,
        slakit.remediate.RequestShedError,
        slakit.remediate.ConcurrencyLimiter,
        slakit.remediate.AIMD,
        slakit.remediate.Gradient2,
        slakit.remediate.Scaler,
        slakit.remediate.ScaleRequest,
        slakit.remediate.Escalation,
        slakit.remediate.Level,
        slakit.remediate.Notifier,
        slakit.remediate.LogNotifier,
        slakit.remediate.WebhookNotifier,
        slakit.remediate.SlackNotifier,
        slakit.remediate.PagerDutyNotifier,
        slakit.remediate.AlertmanagerNotifier,
        slakit.remediate.EmailNotifier,
        slakit.remediate.HttpSettings,
        slakit.remediate.NotifyError,
        slakit.remediate.build.build,
        slakit.remediate.build.Enforcement,
    ],
    "Export (`slakit.export`)": [
        slakit.export.prometheus.register,
        slakit.export.prometheus.SLOCollector,
        slakit.export.prometheus.exposition,
        slakit.export.prometheus.make_asgi_app,
        slakit.export.prometheus.make_wsgi_app,
        slakit.export.multiprocess.publish,
        slakit.export.fleet.FleetSignal,
        slakit.export.multiprocess.MultiProcessPublisher,
        slakit.export.rules.rule_groups,
        slakit.export.rules.rule_tests,
        slakit.export.grafana.dashboard,
        slakit.export.openslo.export_slo,
        slakit.export.openslo.import_documents,
        slakit.export.otel.instrument,
        slakit.export.otel.OTelInstruments,
    ],
    "History and SLAs (`slakit.history`, `slakit.sla`, `slakit.report`)": [
        slakit.history.History,
        slakit.history.Measurement,
        slakit.sla.Contract,
        slakit.sla.Credit,
        slakit.sla.Tier,
        slakit.composite.Composite,
        slakit.composite.CompositeStatus,
        slakit.formula.Formula,
        slakit.formula.FormulaError,
        slakit.report.build,
        slakit.report.period_bounds,
        slakit.report.Report,
        slakit.report.to_markdown,
        slakit.report.to_html,
        slakit.report.to_json,
        slakit.simulate.simulate,
        slakit.simulate.Profile,
        slakit.simulate.Phase,
        slakit.simulate.Result,
        slakit.simulate.Incident,
    ],
    "Maintenance (`slakit.maintenance`)": [slakit.maintenance, slakit.MaintenanceWindow],
    "Errors (`slakit.exceptions`)": [slakit.ConfigError, slakit.SlakitError],
    "Testing (`slakit.testing`)": [slakit.testing.FakeClock, slakit.testing.capture_events],
}


def doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def signature(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    text = re.sub(r"<function (\w+) at 0x[0-9a-f]+>", r"\1", text)
    return re.sub(r" object at 0x[0-9a-f]+", "", text)  # addresses differ per process


def render() -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `python scripts/gen_reference.py`;",
        "a test fails when this file and the code disagree.",
        "",
    ]
    for title, objects in SECTIONS.items():
        lines += [f"## {title}", ""]
        for obj in objects:
            name = obj.__name__
            kind = "class" if inspect.isclass(obj) else "function"
            sig = "" if inspect.isclass(obj) and issubclass(obj, Exception) else signature(obj)
            lines += [f"### `{name}`", "", f"```python\n{kind} {name}{sig}\n```", ""]
            if doc(obj):
                lines += [doc(obj), ""]
            if inspect.isclass(obj):
                lines += members(obj)
    return "\n".join(lines).rstrip() + "\n"


def members(cls: type) -> list[str]:
    out = []
    fields = {f.name for f in attrs.fields(cls)} if attrs.has(cls) else set()
    for name, member in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        target = member.fget if isinstance(member, property) else member
        if isinstance(target, staticmethod | classmethod):
            target = target.__func__
        if not callable(target) or not doc(target):
            continue
        sig = "" if isinstance(member, property) else signature(target)
        summary = doc(target).split("\n\n")[0].replace("\n", " ")
        out.append(f"- `{name}{sig}` — {summary}")
    return [*out, ""] if out else []


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    text = render()
    if parser.parse_args().check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python scripts/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
