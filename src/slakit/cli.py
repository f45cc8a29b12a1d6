"""
The ``slakit`` command line.

``slakit validate FILE`` checks a configuration and prints every error with its path.
``slakit rules FILE [-o OUT] [--tests TESTS]`` writes Prometheus recording and alerting
rules (and promtool unit tests) for its SLOs; ``slakit dashboard FILE`` a Grafana
dashboard. ``slakit demo [--duration S]`` runs the whole loop on a simulated shop.
``slakit report FILE --db DB`` writes an SLA report from a service's history;
``slakit status`` and ``slakit gate --min-budget 0.25`` read budgets from the history
or a running service's ``/slo.json``; ``slakit ack SELECTOR --db DB`` acknowledges.
``slakit simulate FILE PROFILE`` replays a traffic profile against an SLO's alerting and
reports detection, reset, precision and recall.

Exit codes: 0 success, 1 invalid input (or, for ``gate``, a budget below the bar),
2 usage error, 3 a report with an objective not met.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from slakit.config import Config, load
from slakit.exceptions import ConfigError
from slakit.remediate.build import build

if TYPE_CHECKING:
    from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    exit_codes = "exit codes:" + __doc__.split("Exit codes:")[1].replace("``", "").rstrip()
    parser = argparse.ArgumentParser(
        prog="slakit", description=__doc__.splitlines()[1], epilog=" ".join(exit_codes.split())
    )
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check an SLO configuration file")
    validate.add_argument("path", help="a .yaml, .toml or .json file")
    rules = sub.add_parser("rules", help="write Prometheus rules for the SLOs of a file")
    rules.add_argument("path", help="a .yaml, .toml or .json file")
    rules.add_argument("-o", "--output", help="rules file to write (default: stdout)")
    rules.add_argument("--tests", help="also write promtool unit tests to this file")
    board = sub.add_parser("dashboard", help="write a Grafana dashboard for the SLOs of a file")
    board.add_argument("path", help="a .yaml, .toml or .json file")
    board.add_argument("-o", "--output", help="JSON file to write (default: stdout)")
    demo = sub.add_parser("demo", help="run the whole loop on a simulated shop (about a minute)")
    demo.add_argument("--duration", type=float, default=60.0, help="real seconds (default 60)")
    demo.add_argument("--db", help="SQLite history to write (default: a temporary directory)")
    demo.add_argument("--report", help="report file to write (.md; .html and .json beside it)")
    demo.add_argument("--format", choices=["text", "json"], default="text")
    report = sub.add_parser("report", help="write an SLA report from a service's history")
    report.add_argument("path", help="the service's SLO configuration")
    report.add_argument("--db", required=True, help="the service's SQLite history")
    report.add_argument("--period", choices=["day", "week", "month"], default="month")
    report.add_argument("--previous", action="store_true", help="the period before this one")
    report.add_argument("--tz", default="UTC", help="time zone of the calendar (IANA name)")
    report.add_argument("--from", dest="start", help="start (Unix seconds), with --to")
    report.add_argument("--to", dest="end", help="end (Unix seconds), with --from")
    report.add_argument("--format", choices=["markdown", "html", "json"], default="markdown")
    report.add_argument("-o", "--output", help="file to write (default: stdout)")
    report.add_argument("--contract", help="the contract to score (default: the only one)")
    for name, text in (("status", "print SLIs and budgets"), ("gate", "fail below a budget")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("path", nargs="?", help="the service's SLO configuration (with --db)")
        source = cmd.add_mutually_exclusive_group(required=True)
        source.add_argument("--db", help="the service's SQLite history")
        source.add_argument("--url", help="a running service's /slo.json")
        if name == "gate":
            cmd.add_argument("--min-budget", type=float, required=True, help="e.g. 0.25")
        else:
            cmd.add_argument("--format", choices=["text", "json"], default="text")
    sim = sub.add_parser("simulate", help="replay a traffic profile against an SLO's alerts")
    sim.add_argument("path", help="the SLO configuration")
    sim.add_argument("profile", help="a traffic profile (.yaml, or .csv of phases)")
    sim.add_argument("--slo", help="which SLO (default: the first)")
    sim.add_argument("--format", choices=["text", "json"], default="text")
    sim.add_argument("--duration", help="the run's length, for a CSV profile (e.g. 30d)")
    sim.add_argument("--rate", type=float, help="requests per second, for a CSV profile")
    acknowledge = sub.add_parser("ack", help="acknowledge violations in every worker")
    acknowledge.add_argument("selector", help="a violation id, or slo[/objective[/rule]]")
    acknowledge.add_argument("--db", required=True, help="the service's SQLite history")
    acknowledge.add_argument("--by", help="who acknowledges")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("report", "status", "gate", "ack"):
        return _history_command(parser, args)
    if args.command == "simulate":
        from slakit.commands import simulate  # noqa: PLC0415 - only this command needs it

        cfg = _load(args.path)
        return 1 if cfg is None else simulate(args, cfg)
    if args.command == "demo":
        from slakit.demo import run  # noqa: PLC0415 - only this command needs it

        return run(args.duration, args.db, args.report, args.format)
    if args.command == "rules":
        return _rules(args.path, args.output, args.tests)
    if args.command == "dashboard":
        return _dashboard(args.path, args.output)
    if args.command == "validate":
        try:
            cfg = load(args.path)
            build(cfg)  # constructs every hook and resolves every reference; starts nothing
        except ConfigError as exc:
            for err in exc.errors:
                print(f"{args.path}: {err}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"{args.path}: {exc.strerror}", file=sys.stderr)
            return 1
        names = ", ".join(s.name for s in cfg.slos)
        print(f"{args.path}: ok ({len(cfg.slos)} SLOs: {names})")
    return 0


def _history_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from slakit import commands  # noqa: PLC0415 - only these commands need it

    if args.command == "ack":
        return commands.ack(args)
    cfg = None
    if args.command == "report" or args.db:
        if args.path is None:
            parser.error(f"{args.command} --db needs the service's SLO configuration file")
        cfg = _load(args.path)
        if cfg is None:
            return 1
    if args.command == "report":
        assert cfg is not None
        return commands.report(args, cfg)
    if args.command == "status":
        return commands.status(args, cfg)
    return commands.gate(args, cfg)


def _load(path: str) -> Config | None:
    try:
        return load(path)
    except ConfigError as exc:
        for err in exc.errors:
            print(f"{path}: {err}", file=sys.stderr)
    except OSError as exc:
        print(f"{path}: {exc.strerror}", file=sys.stderr)
    return None


def _dashboard(path: str, output: str | None) -> int:
    from slakit.export.grafana import dashboard  # noqa: PLC0415

    cfg = _load(path)
    if cfg is None:
        return 1
    text = json.dumps(dashboard(cfg.slos, cfg.service), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
    return 0


def _rules(path: str, output: str | None, tests: str | None) -> int:
    import yaml  # noqa: PLC0415 - only this command writes YAML

    from slakit.export.rules import rule_groups, rule_tests  # noqa: PLC0415

    cfg = _load(path)
    if cfg is None:
        return 1
    header = f"# Generated by slakit from {Path(path).name}; do not edit.\n"
    text = header + yaml.safe_dump(rule_groups(cfg.slos, cfg.service), sort_keys=False, width=200)
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
    if tests is not None:
        rules_file = Path(output).name if output else "rules.yaml"
        data = rule_tests(cfg.slos, rules_file, cfg.service)
        Path(tests).write_text(header + yaml.safe_dump(data, sort_keys=False, width=200))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
