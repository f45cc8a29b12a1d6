"""The history commands: report, status, gate and ack, on a real database."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

import slakit
from slakit.cli import main as cli
from slakit.history import History
from slakit.testing import FakeClock
from slakit.web import StatusPage

SLOS = """
service: shop
slos:
  - name: api
    window: 30d
    objectives:
      - availability: {target: 99.9%}
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    config = tmp_path / "slos.yaml"
    config.write_text(SLOS)
    db = tmp_path / "history.db"
    now = int(time.time() // 60)
    History(db).backfill("api", "availability", [(now - m, 1_000, 0) for m in range(1, 600)])
    return str(config), str(db)


def test_gate_passes_then_fails_when_the_budget_is_spent(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = files
    assert cli(["gate", config, "--db", db, "--min-budget", "0.25"]) == 0
    assert "ok: every budget is at least 25.0 %" in capsys.readouterr().out
    now = int(time.time() // 60)
    # 599,000 events allow 599 bad: 500 bad leave 16.5 %
    History(db).backfill("api", "availability", [(now - 700, 1_000, 500)])
    assert cli(["gate", config, "--db", db, "--min-budget", "0.25"]) == 1
    assert "api/availability: budget" in capsys.readouterr().err


def test_status_as_json(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, db = files
    assert cli(["status", config, "--db", db, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["slo"], row["events"], row["bad"], row["budget_remaining"]) == (
        "api",
        599_000,
        0,
        1.0,
    )


def test_report_for_the_month(files: tuple[str, str], tmp_path: Path) -> None:
    config, db = files
    out = tmp_path / "report.json"
    code = cli(
        ["report", config, "--db", db, "--period", "month", "--format", "json", "-o", str(out)]
    )
    data = json.loads(out.read_text())
    assert code == 0  # every objective met
    assert data["objectives"][0]["objective"] == "availability"
    assert data["service"] == "shop"


def test_ack_writes_what_every_worker_applies(files: tuple[str, str]) -> None:
    _, db = files
    assert cli(["ack", "api/availability", "--db", db, "--by", "alice"]) == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT selector, by FROM acks").fetchall() == [
        ("api/availability", "alice")
    ]


def test_status_needs_a_config_with_a_database(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, db = files
    with pytest.raises(SystemExit):
        cli(["status", "--db", db])
    assert "needs the service's SLO configuration" in capsys.readouterr().err


def test_gate_reads_a_running_service(capsys: pytest.CaptureFixture[str]) -> None:
    registry = slakit.Registry(FakeClock())
    slo = slakit.SLO("api", objectives=[slakit.Availability("99%")], window="1h")
    store = registry.register(slo)
    for _ in range(1_000):
        store.record(0.01, ok=True)
    for _ in range(8):
        store.record(0.01, ok=False)  # 8 of 10 allowed: 20 % left
    engine = slakit.Engine(registry)
    engine.evaluate_now()
    server = make_server("127.0.0.1", 0, StatusPage(engine).wsgi, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/slo.json"
        assert cli(["gate", "--url", url, "--min-budget", "0.1"]) == 0
        assert cli(["gate", "--url", url, "--min-budget", "0.25"]) == 1
        assert cli(["status", "--url", url]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert "api                  availability         SLI   99.206 %  budget   20.63 %" in (
        capsys.readouterr().out
    )


class Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_report_scores_the_configured_contract(files: tuple[str, str], tmp_path: Path) -> None:
    config, db = files
    with Path(config).open("a") as f:
        f.write(
            "contracts:\n  acme:\n    customer: ACME\n    slo: api\n"
            "    weights: {availability: 1}\n    credits: [{below: 0.9999, percent: 5}]\n"
            "    monthly_fee: 1000\n"
        )
    out = tmp_path / "r.json"
    assert cli(["report", config, "--db", db, "--format", "json", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert (data["compliance_score"], data["credit_percent"], data["owed"]) == (100.0, 0.0, 0.0)
    assert cli(["report", config, "--db", db, "--contract", "other"]) == 1


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli(["--help"])
    assert done.value.code == 0
    assert "exit codes: 0 success, 1 invalid input" in capsys.readouterr().out
