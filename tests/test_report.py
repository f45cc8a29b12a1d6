"""Reports against hand-computed figures: March 2026 in Paris (a DST change inside)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import TYPE_CHECKING

import pytest

import slakit
from slakit.history import MIGRATIONS, History
from slakit.report import build, period_bounds, to_html, to_json, to_markdown
from slakit.sla import Contract, Credit

if TYPE_CHECKING:
    from pathlib import Path

API = slakit.SLO("api", objectives=[slakit.Availability("99.9%")], window="month")
UTC = dt.UTC


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


@pytest.fixture
def history(tmp_path: Path) -> History:
    """100 requests a minute from 27 Feb to 2 Apr (UTC), with three scripted incidents."""
    h = History(tmp_path / "h.db")
    first, last = int(ts(2026, 2, 27) // 60), int(ts(2026, 4, 2) // 60)
    bad = {}
    for m in range(int(ts(2026, 3, 10, 10) // 60), int(ts(2026, 3, 10, 10, 30) // 60)):
        bad[m] = 100  # 30 minutes down on 10 March
    for m in range(int(ts(2026, 2, 28, 23, 30) // 60), int(ts(2026, 2, 28, 23, 40) // 60)):
        bad[m] = 50  # 1 March 00:30 in Paris: inside March
    for m in range(int(ts(2026, 3, 31, 22, 30) // 60), int(ts(2026, 3, 31, 22, 40) // 60)):
        bad[m] = 100  # 1 April 00:30 in Paris (summer time): outside March
    conn = sqlite3.connect(h.path)
    conn.executemany(
        "INSERT INTO measurements VALUES ('api', 'availability', ?, 'slot-0', 100, ?, NULL, NULL, 'healthy')",
        [(m, bad.get(m, 0)) for m in range(first, last)],
    )
    conn.execute(
        "INSERT INTO violations VALUES ('v1', 'api', 'availability', 'page-1h-5m', 'critical', "
        "?, ?, NULL, NULL, 20.0, 14.4, '', 'slot-0')",
        (ts(2026, 3, 10, 10, 2, 30), ts(2026, 3, 10, 10, 40)),
    )
    conn.execute(
        "INSERT INTO actions VALUES ('v1', ?, 'CircuitBreaker(payments)', 'ok', 1)",
        (ts(2026, 3, 10, 10, 2, 31),),
    )
    conn.commit()
    conn.close()
    return h


def test_calendar_month_in_paris() -> None:
    start, end = period_bounds("month", "Europe/Paris", ts(2026, 3, 15))
    assert (start, end) == (ts(2026, 2, 28, 23), ts(2026, 3, 31, 22))  # CET, then CEST
    assert period_bounds("month", "Europe/Paris", ts(2026, 4, 1, 12), previous=True) == (start, end)
    day = period_bounds("day", "Europe/Paris", ts(2026, 3, 29, 12))
    assert day[1] - day[0] == 23 * 3600  # the day the clocks go forward
    week = period_bounds("week", "UTC", ts(2026, 3, 12))  # a Thursday
    assert week == (ts(2026, 3, 9), ts(2026, 3, 16))


def test_the_month_report_matches_hand_computed_figures(history: History) -> None:
    start, end = period_bounds("month", "Europe/Paris", ts(2026, 3, 15))
    contract = Contract(
        name="acme",
        customer="ACME",
        slo="api",
        weights={"availability": 1},
        credits=[Credit(below=0.9995, percent=5), Credit(below=0.999, percent=10)],
        penalty="max(0, 1000 * (target - actual)) * monthly_fee",
        monthly_fee=2_000,
    )
    report = build(history, [API], start, end, service="shop", tz="Europe/Paris", contract=contract)

    minutes = 31 * 1_440 - 60  # March in Paris loses an hour to summer time
    events, bad = minutes * 100, 30 * 100 + 10 * 50
    (o,) = report.objectives
    assert (o.events, o.bad) == (events, bad)
    assert o.actual == pytest.approx(1 - bad / events)
    assert o.met  # 99.9215 % >= 99.9 %
    assert o.budget_spent == pytest.approx(bad / (0.001 * events))
    assert o.bad_minutes == 40
    (v,) = report.violations
    assert v.detected_after == 150  # first bad minute 10:00, paged 10:02:30
    assert v.duration == 37.5 * 60
    assert v.actions == ("CircuitBreaker(payments): ok",)
    assert (report.mttd, report.mttr) == (150, 37.5 * 60)
    assert report.compliance_score == 100
    assert report.credit_percent == 5  # below 99.95 %
    assert report.owed == pytest.approx(2_000 * 0.05)  # the penalty is 0: target met
    assert len(report.daily) == 31
    worst = min(report.daily, key=lambda d: d[1] or 1)
    assert worst[0] == "2026-03-10"

    text = to_markdown(report)
    assert "| api | availability | 99.900 % | 99.921 % | yes |" in text
    assert "Compliance score: 100 / 100. Credit: 5 %. Owed: 100.00." in text
    data = json.loads(to_json(report))
    assert data["objectives"][0]["bad"] == bad
    assert data["start_iso"] == "2026-03-01T00:00:00+01:00"
    page = to_html(report)
    assert page.count("<rect") == 31
    assert "#c62828" in page  # 10 March is below target


def test_a_contract_checks_its_penalty_formula_when_made() -> None:
    with pytest.raises(slakit.formula.FormulaError, match="unknown variable 'fee'"):
        Contract(name="x", customer="y", slo="api", weights={"availability": 1}, penalty="fee * 2")
    with pytest.raises(ValueError, match="weight > 0"):
        Contract(name="x", customer="y", slo="api", weights={})
    c = Contract(
        name="x", customer="y", slo="api", weights={"availability": 0.75, "latency-250ms": 0.25}
    )
    assert c.compliance_score({"availability": True, "latency-250ms": False}) == 75


def test_a_correction_leaves_its_minutes_out_and_is_listed(history: History) -> None:
    start, end = period_bounds("month", "Europe/Paris", ts(2026, 3, 15))
    history.correct(
        "api", ts(2026, 3, 10, 10), ts(2026, 3, 10, 10, 30), "the probe was broken", by="bob"
    )
    report = build(history, [API], start, end, tz="Europe/Paris")
    (o,) = report.objectives
    minutes = 31 * 1_440 - 60 - 30  # the 30 corrected minutes are out
    assert (o.events, o.bad) == (minutes * 100, 10 * 50)
    assert o.bad_minutes == 10
    assert report.corrections == (
        ("api", ts(2026, 3, 10, 10), ts(2026, 3, 10, 10, 30), "the probe was broken"),
    )
    assert "the probe was broken" in to_markdown(report)
    with pytest.raises(ValueError, match="must end after it starts"):
        history.correct("api", 10.0, 5.0, "backwards")


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    """A database written by the first schema gains the corrections table, data intact."""
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO measurements VALUES ('api', 'availability', 1, 'slot-0', 10, 1, NULL, NULL, '')"
    )
    conn.commit()
    conn.close()
    history = History(tmp_path / "old.db")
    assert history.measurements("api", 0, 600) == [
        slakit.history.Measurement("api", "availability", 1, 10, 1)
    ]
    history.correct("api", 0, 120, "migrated and usable")
    assert history.measurements("api", 0, 600) == []


def test_a_contract_outside_its_effective_period_scores_nothing(history: History) -> None:
    start, end = period_bounds("month", "Europe/Paris", ts(2026, 3, 15))
    later = Contract(
        name="renewal",
        customer="ACME",
        slo="api",
        weights={"availability": 1},
        effective={"from": "2026-04-01", "until": None},
    )
    assert build(history, [API], start, end, contract=later).compliance_score is None
    current = Contract(
        name="current",
        customer="ACME",
        slo="api",
        weights={"availability": 1},
        effective=("2026-01-01", "2026-03-31"),
    )
    assert build(history, [API], start, end, contract=current).compliance_score == 100
    with pytest.raises(ValueError, match="effective:"):
        Contract(name="x", customer="y", slo="api", weights={"a": 1}, effective=("soon", None))
