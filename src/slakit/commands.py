"""
The history commands of the CLI: ``report``, ``status``, ``gate`` and ``ack``.

They read the SQLite history a service writes (``--db``) with the SLO definitions of
its configuration file, or a running service's ``/slo.json`` (``--url``).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from slakit.clock import SYSTEM
from slakit.history import History
from slakit.report import build, period_bounds, to_html, to_json, to_markdown
from slakit.spec import Availability, Latency

if TYPE_CHECKING:
    import argparse

    from slakit.config import Config


def budgets(history: History, cfg: Config, now: float) -> list[dict[str, Any]]:
    """Budget remaining of every event objective over its SLO's window, from the history."""
    out = []
    for slo in cfg.slos:
        start, end = slo.window.bounds(now)
        rows = history.measurements(slo.name, start, end + 60)
        for o in slo.objectives:
            if not isinstance(o, Availability | Latency):
                continue
            events = sum(r.events for r in rows if r.objective == o.key)
            bad = sum(r.bad for r in rows if r.objective == o.key)
            allowed = (1 - o.target) * events
            remaining = 1.0 - bad / allowed if allowed > 0 else 1.0
            out.append(
                {
                    "slo": slo.name,
                    "objective": o.key,
                    "events": events,
                    "bad": bad,
                    "sli": 1 - bad / events if events else None,
                    "budget_remaining": remaining,
                }
            )
    return out


def from_url(url: str) -> list[dict[str, Any]]:
    """Budget rows from a running service's status page JSON (``/slo.json``)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the user's URL
        data = json.loads(response.read())
    return [
        {
            "slo": s["name"],
            "objective": o["key"],
            "status": s["status"],
            "sli": o["actual"],
            "budget_remaining": o["budget_remaining"],
        }
        for s in data["slos"]
        for o in s["objectives"]
        if o["budget_remaining"] is not None
    ]


def status(args: argparse.Namespace, cfg: Config | None) -> int:
    """Print each objective's SLI and budget; exit 0."""
    rows = _rows(args, cfg)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        sli = "–" if r["sli"] is None else f"{r['sli'] * 100:.3f} %"
        budget = f"{r['budget_remaining'] * 100:7.2f} %"
        print(f"{r['slo']:<20} {r['objective']:<20} SLI {sli:>10}  budget {budget}")
    return 0


def gate(args: argparse.Namespace, cfg: Config | None) -> int:
    """Exit 1 when any objective's budget is below ``--min-budget`` (deploy freezes)."""
    rows = _rows(args, cfg)
    low = [r for r in rows if r["budget_remaining"] < args.min_budget]
    for r in low:
        print(
            f"{r['slo']}/{r['objective']}: budget {r['budget_remaining'] * 100:.1f} % "
            f"< {args.min_budget * 100:.1f} %",
            file=sys.stderr,
        )
    if not rows:
        print("no objective with a budget found", file=sys.stderr)
        return 1
    if not low:
        print(f"ok: every budget is at least {args.min_budget * 100:.1f} %")
    return 1 if low else 0


def _rows(args: argparse.Namespace, cfg: Config | None) -> list[dict[str, Any]]:
    if args.url:
        return from_url(args.url)
    assert cfg is not None
    history = History(args.db)
    try:
        return budgets(history, cfg, SYSTEM.time())
    finally:
        history.close()


def ack(args: argparse.Namespace) -> int:
    """Write an acknowledgement every worker on the database applies within a second."""
    history = History(args.db)
    try:
        history.acknowledge(args.selector, by=args.by)
    finally:
        history.close()
    print(f"acknowledged {args.selector}")
    return 0


def simulate(args: argparse.Namespace, cfg: Config) -> int:
    """Replay a profile against one SLO; print incidents, precision and recall."""
    import yaml  # noqa: PLC0415 - only this command reads a profile

    from slakit.simulate import Profile  # noqa: PLC0415
    from slakit.simulate import simulate as run  # noqa: PLC0415

    slos = [s for s in cfg.slos if args.slo in (None, s.name)]
    if not slos:
        print(f"no SLO named {args.slo!r} in {args.path}", file=sys.stderr)
        return 1
    try:
        text = Path(args.profile).read_text()
        if args.profile.endswith(".csv"):
            if args.duration is None or args.rate is None:
                print("a CSV profile needs --duration and --rate", file=sys.stderr)
                return 2
            profile = Profile.from_csv(text, duration=args.duration, rate=args.rate)
        else:
            profile = Profile.from_dict(yaml.safe_load(text))
    except (OSError, TypeError, ValueError, yaml.YAMLError) as exc:
        print(f"{args.profile}: {exc}", file=sys.stderr)
        return 1
    show = sys.stderr.isatty() and args.format == "text"

    def progress(done: float) -> None:
        if show:
            bar = "#" * int(done * 30)
            sys.stderr.write(f"\rsimulating {slos[0].name}: [{bar:<30}] {done:4.0%}")

    result = run(slos[0], profile, progress)
    if show:
        sys.stderr.write("\r" + " " * 60 + "\r")
    if args.format == "json":
        print(json.dumps(attrs.asdict(result), indent=1))
        return 0
    for i in result.incidents:
        found = (
            "MISSED" if i.detected_after is None else f"detected after {_span(i.detected_after)}"
        )
        reset = "" if i.reset_after is None else f", reset {_span(i.reset_after)} after it ended"
        print(
            f"{i.phase} ({i.objective}): {found}{reset}; spent {i.budget_spent:.1%} of the "
            f"budget; alerts: {', '.join(i.alerts) or 'none'}"
        )
    precision = "–" if result.precision is None else f"{result.precision:.0%}"
    recall = "–" if result.recall is None else f"{result.recall:.0%}"
    alerts = f"{result.alerts} alerts, {result.false_alerts} false"
    print(f"{alerts}; precision {precision}, recall {recall}")
    return 0


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def report(args: argparse.Namespace, cfg: Config) -> int:
    """Write the report of a calendar period, or of ``--from``/``--to`` (Unix seconds)."""
    if args.start is not None and args.end is not None:
        start, end = float(args.start), float(args.end)
    else:
        start, end = period_bounds(args.period, args.tz, previous=args.previous)
    contracts = {c.name: c for c in cfg.contracts}
    if args.contract is not None and args.contract not in contracts:
        print(f"no contract named {args.contract!r} in {args.path}", file=sys.stderr)
        return 1
    name = args.contract or (next(iter(contracts)) if len(contracts) == 1 else None)
    contract = contracts.get(name) if name else None
    history = History(args.db)
    try:
        result = build(
            history, cfg.slos, start, end, service=cfg.service, tz=args.tz, contract=contract
        )
    finally:
        history.close()
    render = {"markdown": to_markdown, "html": to_html, "json": to_json}[args.format]
    text = render(result)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0 if all(o.met for o in result.objectives) else 3
