"""Loading configurations, and rejecting bad ones with every field's path."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

import slakit
from slakit import config, spec
from slakit.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent

GOOD_YAML = """
service: shop
slos:
  - name: checkout
    window: 30d
    objectives:
      - availability: {target: 99.9%}
      - latency: {threshold: 250ms, target: 99%}
      - percentile: {q: p99, threshold: 1s}
      - uptime: {target: 99.5%, slice: 5m, max_error_ratio: 2%}
      - throughput: {min_rps: 2, window: 10m}
      - threshold: {name: queue_depth, op: "<=", warning: 100, critical: 500}
    alerting: {min_events: 20, hysteresis: 10%, ticket: false}
  - name: search
    window: {calendar: month, tz: Europe/Paris}
    objectives:
      - availability: {target: 0.99}
    alerting: none
"""

# invalid values per parser, with the message each must produce
BAD_VALUES = {
    spec.parse_target: [
        (1.5, "must be in (0, 1), got 1.5"),
        ("abc", "must be a number or a percentage"),
    ],
    spec.parse_duration: [("soon", "must be a duration"), (-1, "must be a positive duration")],
    spec.parse_quantile: [(1.5, "must be in (0, 1]"), ("px", "must be a number or a percentage")],
    spec.parse_fraction: [("150%", "must be in [0, 1]")],
    spec._opt_duration: [("5x", "must be a duration")],
    spec._opt_target: [(2, "must be in (0, 1), got 2")],
    spec._opt_number: [("lots", "must be a number or a percentage")],
    spec._positive: [(0, "must be > 0, got 0")],
    spec._name: [("9lives", "must start with a letter")],
    spec._op: [("=~", "must be one of <, <=, >, >=")],
    spec.Severity: [("loud", "'loud' is not a valid Severity")],
}

MINIMAL = {
    spec.Availability: {"target": 0.99},
    spec.Latency: {"threshold": "100ms", "target": 0.99},
    spec.Percentile: {"q": 0.99, "threshold": "1s"},
    spec.Throughput: {"min_rps": 1},
    spec.Uptime: {"target": 0.99},
    spec.Threshold: {"name": "cpu", "target": 0.8},
}
KIND = {cls: kind for kind, cls in spec.OBJECTIVE_KINDS.items()}


def generated_cases():
    """One case per objective field and per invalid value of its parser."""
    for cls, minimal in MINIMAL.items():
        for field in attrs.fields(cls):
            for bad, message in BAD_VALUES.get(field.converter, []):
                body = {**minimal, field.name: bad}
                doc = {"slos": [{"name": "s", "objectives": [{KIND[cls]: body}]}]}
                yield pytest.param(
                    doc,
                    f"slos[0].objectives[0].{field.name}",
                    message,
                    id=f"{KIND[cls]}.{field.name}={bad!r}",
                )


HAND_CASES = [
    ({"slos": [{"name": "s", "objectives": []}]}, "slos[0]", "at least one objective"),
    ({"slos": [{"name": "s"}]}, "slos[0].objectives", "required field missing"),
    ({"slos": [{"objectives": [{"availability": {"target": 0.9}}]}]}, "slos[0].name", "required"),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "window": "fortnight",
                    "objectives": [{"availability": {"target": 0.9}}],
                }
            ]
        },
        "slos[0].window",
        "must be a duration",
    ),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "window": {"calendar": "year"},
                    "objectives": [{"availability": {"target": 0.9}}],
                }
            ]
        },
        "slos[0].window",
        "must be one of day, week, month",
    ),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "window": {"calendar": "month", "tz": "Mars/Olympus"},
                    "objectives": [{"availability": {"target": 0.9}}],
                }
            ]
        },
        "slos[0].window",
        "IANA time zone",
    ),
    (
        {"slos": [{"name": "s", "objectives": [{"availabilty": {"target": 0.9}}]}]},
        "slos[0].objectives[0]",
        "unknown objective kind 'availabilty'",
    ),
    (
        {"slos": [{"name": "s", "objectives": [{"availability": {"target": 0.9}, "latency": {}}]}]},
        "slos[0].objectives[0]",
        "one key naming the kind",
    ),
    (
        {"slos": [{"name": "s", "objectives": [{"availability": {"target": 0.9, "tagret": 1}}]}]},
        "slos[0].objectives[0].tagret",
        "unknown field",
    ),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "objectives": [
                        {"availability": {"target": 0.9}},
                        {"availability": {"target": 0.99}},
                    ],
                }
            ]
        },
        "slos[0]",
        "objective names must be unique",
    ),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "objectives": [
                        {"threshold": {"name": "cpu", "op": "<=", "warning": 90, "critical": 80}}
                    ],
                }
            ]
        },
        "slos[0].objectives[0]",
        "critical (80) must be beyond warning (90)",
    ),
    (
        {"slos": [{"name": "s", "objectives": [{"threshold": {"name": "cpu"}}]}]},
        "slos[0].objectives[0]",
        "give warning/critical levels, a target",
    ),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "objectives": [{"percentile": {"q": 0.9, "threshold": "1s", "slice": "1m"}}],
                }
            ]
        },
        "slos[0].objectives[0]",
        "slice and target go together",
    ),
    (
        {"slos": [{"name": "s", "objectives": [{"uptime": {"target": 0.9, "slice": "2h"}}]}]},
        "slos[0].objectives[0]",
        "whole seconds up to 1h",
    ),
    (
        {
            "slos": [
                {"name": "s", "alerting": "loud", "objectives": [{"availability": {"target": 0.9}}]}
            ]
        },
        "slos[0].alerting",
        "must be default, none or a mapping",
    ),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "alerting": {
                        "rules": [
                            {"severity": "critical", "long": "5m", "short": "1h", "burn_rate": 2}
                        ]
                    },
                    "objectives": [{"availability": {"target": 0.9}}],
                }
            ]
        },
        "slos[0].alerting.rules[0]",
        "must be shorter than the long window",
    ),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "alerting": {
                        "rules": [
                            {"severity": "critical", "long": "1h", "short": "5m", "burn_rate": 0}
                        ]
                    },
                    "objectives": [{"availability": {"target": 0.9}}],
                }
            ]
        },
        "slos[0].alerting.rules[0].burn_rate",
        "must be > 0",
    ),
    (
        {
            "slos": [
                {
                    "name": "s",
                    "window": "1h",
                    "objectives": [{"availability": {"target": 0.9}}],
                    "alerting": {"scale": False},
                }
            ]
        },
        "slos[0]",
        "looks back further than the SLO window",
    ),
    (
        {
            "slos": [
                {"name": "a", "objectives": [{"availability": {"target": 0.9}}]},
                {"name": "a", "objectives": [{"availability": {"target": 0.9}}]},
            ]
        },
        "",
        "SLO names must be unique",
    ),
    ({"slos": [], "colour": "blue"}, "colour", "unknown field"),
]


class TestBadConfigs:
    @pytest.mark.parametrize(("doc", "path", "message"), [*generated_cases(), *HAND_CASES])
    def test_error_names_path_and_reason(self, doc, path, message):
        """Each invalid field fails with its path and a reason."""
        with pytest.raises(slakit.ConfigError) as info:
            slakit.load_dict(doc)

        assert any(e.path == path and message in e.message for e in info.value.errors), str(
            info.value
        )

    def test_enough_generated_cases(self):
        """The schema yields a case for every parsed field (at least 20 in all)."""
        assert len(list(generated_cases())) + len(HAND_CASES) >= 40

    def test_every_error_is_collected(self):
        """Errors in several SLOs and fields are all reported, not only the first."""
        doc = {
            "slos": [
                {"name": "a", "objectives": [{"availability": {"target": 1.5}}], "window": "x"},
                {"name": "b", "objectives": [{"latency": {"threshold": "soon", "target": 2}}]},
            ]
        }

        with pytest.raises(slakit.ConfigError) as info:
            slakit.load_dict(doc)

        assert {
            "slos[0].objectives[0].target",
            "slos[0].window",
            "slos[1].objectives[0].threshold",
            "slos[1].objectives[0].target",
        } == {e.path for e in info.value.errors}
        assert str(info.value).startswith("slos[0]")

    def test_message_format(self):
        """str(error) is 'path: reason', one per line."""
        with pytest.raises(slakit.ConfigError) as info:
            slakit.load_dict(
                {"slos": [{"name": "s", "objectives": [{"availability": {"target": 1.5}}]}]}
            )

        assert "slos[0].objectives[0].target: must be in (0, 1), got 1.5" == str(info.value)

    def test_root_must_be_a_mapping(self):
        """A list at the root is refused clearly."""
        with pytest.raises(slakit.ConfigError, match="root must be a mapping"):
            slakit.load_dict([1, 2])  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "tag",
        [
            "!!python/object/apply:os.system",
            "!!python/object/new:os.system",
            "!!python/name:os.system",
        ],
    )
    def test_unsafe_yaml_is_refused_and_runs_nothing(self, tmp_path, tag):
        """YAML is loaded safely: a python tag is an error, and the command never runs."""
        sentinel = tmp_path / "ran"
        text = f"slos: {tag} ['touch {sentinel}']\n"
        (tmp_path / "slos.yaml").write_text(text)
        with pytest.raises(slakit.ConfigError, match="not valid yaml"):
            slakit.loads(text)
        with pytest.raises(slakit.ConfigError, match="not valid yaml"):
            slakit.load(tmp_path / "slos.yaml")
        assert cli(["validate", str(tmp_path / "slos.yaml")]) == 1
        assert not sentinel.exists()

    @pytest.mark.parametrize(
        "code",
        [
            "yaml.load(text, Loader=yaml.SafeLoader)",
            "yaml.full_load(text)",
            "yaml.unsafe_load(text)",
            "yaml.load_all(text, yaml.FullLoader)",
            "yaml.UnsafeLoader",
            "eval(text)",
            "exec(text)",
        ],
    )
    def test_the_lint_bans_unsafe_loaders_and_eval(self, tmp_path, code):
        """CI's ruff run refuses every way to parse text as code (pyproject's banned-api)."""
        module = tmp_path / "unsafe.py"
        module.write_text(f'"""Unsafe."""\n\nimport yaml\n\ntext = ""\n{code}\n')
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                "check",
                "--config",
                str(ROOT / "pyproject.toml"),
                "--select",
                "TID251,S102,S307,S506",
                "--no-cache",
                str(module),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 1, out.stdout
        assert "unsafe.py:6:" in out.stdout


class TestGoodConfigs:
    def test_yaml(self):
        """Every objective kind, calendar windows and alert options load."""
        cfg = slakit.loads(GOOD_YAML)
        checkout, search = cfg.slos

        assert "shop" == cfg.service
        assert [o.key for o in checkout.objectives] == [
            "availability",
            "latency-250ms",
            "p99-1s",
            "uptime",
            "throughput",
            "queue_depth",
        ]
        assert 0.999 == checkout.objectives[0].target
        assert (0.25, 0.99) == (checkout.objectives[1].threshold, checkout.objectives[1].target)
        assert 300 == checkout.objectives[3].slice
        assert ["page-1h-5m", "page-6h-30m"] == [r.name for r in checkout.alerting.rules]
        assert (20, 0.1) == (checkout.alerting.min_events, checkout.alerting.hysteresis)
        assert ("month", "Europe/Paris") == (search.window.unit, search.window.tz)
        assert () == search.alerting.rules

    def test_toml_and_json_equal_yaml(self, tmp_path):
        """The same document as TOML and JSON gives equal SLOs."""
        data = {
            "slos": [
                {
                    "name": "checkout",
                    "objectives": [{"availability": {"target": "99.9%"}}],
                    "window": "7d",
                }
            ]
        }
        toml_text = (
            '[[slos]]\nname = "checkout"\nwindow = "7d"\n'
            '[[slos.objectives]]\navailability = { target = "99.9%" }\n'
        )
        (tmp_path / "a.toml").write_text(toml_text)
        (tmp_path / "a.json").write_text(json.dumps(data))

        assert slakit.load(tmp_path / "a.toml") == slakit.load(tmp_path / "a.json")
        assert slakit.load_dict(data) == slakit.load(tmp_path / "a.json")

    def test_python_and_config_agree(self):
        """Friendly values in code give the same SLO as the config."""
        in_code = slakit.SLO(
            "checkout",
            objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", 0.99)],
            window="30d",
        )
        loaded = slakit.loads(
            "slos: [{name: checkout, objectives: [{availability: {target: 0.999}},"
            " {latency: {threshold: 0.25, target: 99%}}]}]"
        ).slos[0]

        assert in_code == loaded


class TestParsers:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("250ms", 0.25),
            ("30d", 2_592_000),
            ("1h30m", 5_400),
            ("1.5s", 1.5),
            (2, 2.0),
            ("100us", 1e-4),
        ],
    )
    def test_durations(self, text, seconds):
        """Durations read as seconds."""
        assert seconds == pytest.approx(spec.parse_duration(text))

    @pytest.mark.parametrize(("text", "ratio"), [("99.9%", 0.999), (0.95, 0.95), ("0.5", 0.5)])
    def test_targets(self, text, ratio):
        """Targets read as ratios."""
        assert ratio == pytest.approx(spec.parse_target(text))

    def test_calendar_month_in_a_time_zone(self):
        """A calendar month starts at local midnight on the 1st, across DST."""
        window = spec.Window.calendar("month", tz="Europe/Paris")
        now = 1_711_929_600.0 + 3_600 * 30  # 2024-04-02 06:00 UTC

        start, end = window.bounds(now)

        assert 1_711_922_400.0 == start  # 2024-04-01 00:00 CEST = 2024-03-31 22:00 UTC
        assert now == end
        assert 30 * 86_400 == window.period_length(now)


class TestCli:
    def test_validate_ok(self, tmp_path, capsys):
        """validate prints ok and exits 0 for a good file."""
        path = tmp_path / "slos.yaml"
        path.write_text(GOOD_YAML)

        assert 0 == cli(["validate", str(path)])
        assert "ok (2 SLOs: checkout, search)" in capsys.readouterr().out

    def test_validate_errors(self, tmp_path, capsys):
        """validate prints every error with its path and exits 1."""
        path = tmp_path / "slos.yaml"
        path.write_text("slos: [{name: s, objectives: [{availability: {target: 2}}], window: x}]")

        code = cli(["validate", str(path)])
        err = capsys.readouterr().err

        assert 1 == code
        assert "slos[0].objectives[0].target: must be in (0, 1), got 2" in err
        assert "slos[0].window:" in err

    def test_validate_missing_file(self, tmp_path, capsys):
        """A missing file is an error, not a traceback."""
        assert 1 == cli(["validate", str(tmp_path / "nope.yaml")])
        assert "No such file" in capsys.readouterr().err


def test_config_module_exports_config():
    """Config is importable from slakit.config."""
    assert config.Config is type(slakit.loads(GOOD_YAML))


CONTRACT_YAML = """
service: shop
slos:
  - name: checkout
    window: 30d
    objectives:
      - availability: {target: 99.9%}
      - latency: {threshold: 250ms, target: 99%}
contracts:
  acme:
    customer: ACME
    slo: checkout
    weights: {availability: 0.7, latency-250ms: 0.3}
    credits: [{below: 0.999, percent: 10}, {below: 0.99, percent: 25}]
    penalty: max(0, 10 * (target - actual)) * monthly_fee
    monthly_fee: 5000
maintenance:
  sunday patching:
    start: 2026-03-01T02:00
    duration: 2h
    rrule: FREQ=WEEKLY;BYDAY=SU
    tz: Europe/Paris
    slos: [checkout]
"""


class TestContractsAndMaintenance:
    def test_they_load(self):
        cfg = slakit.loads(CONTRACT_YAML)
        (acme,) = cfg.contracts
        assert (acme.name, acme.customer, acme.monthly_fee) == ("acme", "ACME", 5000)
        assert acme.owed(target=0.999, actual=0.995) == pytest.approx(
            5000 * 0.10 + 10 * 0.004 * 5000
        )
        (window,) = cfg.maintenance
        assert (window.name, window.duration, window.tz) == (
            "sunday patching",
            7200,
            "Europe/Paris",
        )

    @pytest.mark.parametrize(
        ("old", "new", "error"),
        [
            (
                "penalty: max(0, 10",
                "penalty: __import__('os').getpid() + max(0, 10",
                "contracts.acme.penalty: only min, max and abs may be called",
            ),
            ("slo: checkout\n", "slo: cart\n", "contracts.acme.slo: no SLO named 'cart'"),
            (
                "latency-250ms: 0.3}",
                "latency-300ms: 0.3}",
                "contracts.acme.weights.latency-300ms: checkout has no such objective",
            ),
            ("{below: 0.99, percent: 25}", "{below: 2, percent: 25}", "contracts.acme.credits:"),
            ("monthly_fee: 5000", "monthly_fee: 5000\n    currency: EUR", "contracts.acme: "),
            ("rrule: FREQ=WEEKLY", "rrule: FREQ=SOMETIMES", "maintenance.sunday patching.rrule:"),
            ("tz: Europe/Paris", "tz: Mars/Olympus", "maintenance.sunday patching.tz: unknown"),
            ("slos: [checkout]", "slos: [search]", "maintenance.sunday patching.slos: no SLO"),
        ],
    )
    def test_errors_name_the_field(self, old, new, error):
        assert old in CONTRACT_YAML
        with pytest.raises(slakit.ConfigError) as info:
            slakit.loads(CONTRACT_YAML.replace(old, new))
        assert error in str(info.value), str(info.value)


def test_null_and_number_keys_are_unknown_fields_not_a_crash():
    """Found by the fuzzer: YAML keys may be null or numbers beside strings."""
    with pytest.raises(slakit.ConfigError) as info:
        slakit.loads("null: 1\nfoo: 2\n3: 4\nslos: []")
    assert str(info.value).splitlines() == [
        "3: unknown field",
        "None: unknown field",
        "foo: unknown field",
    ]


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("yaml", "[" * 3_000),
        ("yaml", "x: " + "{a: " * 900 + "1" + "}" * 900),
        ("json", "[" * 100_000),
        ("toml", "a = " + "[" * 100_000),
    ],
)
def test_deep_nesting_is_a_config_error(fmt, text):
    """Found by the hour-long fuzz run: parsers recurse; that is bad input, not a crash."""
    with pytest.raises(slakit.ConfigError, match="nested too deeply"):
        slakit.loads(text, fmt)


def test_deep_flow_mappings_are_refused_before_the_quadratic_yaml_scanner():
    """Found by the fuzzer: 300 nested {a: took PyYAML over 10 s; real configs nest < 10."""
    began = time.monotonic()
    with pytest.raises(slakit.ConfigError, match="nested too deeply"):
        slakit.loads("x: " + "{a: " * 300)
    assert time.monotonic() - began < 5  # a watchdog: refused at once, not after parsing
    slakit.loads("slos: []\nservice: " + '"' + "[" * 100 + '"')  # quoted brackets: one level


def test_an_impossible_unicode_escape_is_a_config_error():
    """Found by the fuzzer: PyYAML lets chr()'s ValueError out for "\\U44444444"."""
    with pytest.raises(slakit.ConfigError, match="not valid yaml"):
        slakit.loads('x: "\\U44444444"')
