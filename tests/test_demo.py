"""``slakit demo``: the story happens in order, and the report agrees with the database."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from slakit.demo import run

if TYPE_CHECKING:
    from pathlib import Path

STORY = ["outage", "page", "breaker-open", "shed", "repair", "recovery", "resolved"]


def check(lines: list[dict[str, Any]], tmp_path: Path) -> None:
    events = [line["event"] for line in lines if "event" in line]
    assert events == STORY
    statuses = [line for line in lines if "status" in line]
    assert statuses[0]["breaker"] == "closed"
    assert any(s["breaker"] == "open" for s in statuses)
    assert statuses[-1]["breaker"] == "closed"
    assert statuses[-1]["shed"] == 0
    paths = lines[-1]
    report = json.loads((tmp_path / "report.json").read_text())
    assert paths["report"] == str(tmp_path / "report.md")
    conn = sqlite3.connect(paths["db"])
    for o in report["objectives"]:
        events_db, bad_db = conn.execute(
            "SELECT sum(events), sum(bad) FROM measurements "
            "WHERE slo = ? AND objective = ? AND minute >= ? AND minute < ?",
            (o["slo"], o["objective"], int(report["start"] // 60), int(report["end"] // 60)),
        ).fetchone()
        assert (o["events"], o["bad"]) == (events_db, bad_db)
    pages = conn.execute(
        "SELECT count(*) FROM violations WHERE slo = 'checkout' AND severity = 'critical'"
    ).fetchone()[0]
    assert pages == sum(1 for v in report["violations"] if v["severity"] == "critical") >= 1
    conn.close()
    assert "| checkout | availability | 99.900 % |" in (tmp_path / "report.md").read_text()


def test_the_story_in_process(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run(0, str(tmp_path / "h.db"), str(tmp_path / "report.md"), "json", out) == 0
    check([json.loads(line) for line in out.getvalue().splitlines()], tmp_path)


@pytest.mark.heavy
def test_slakit_demo_duration_20_from_the_command_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "slakit.cli", "demo", "--duration", "20", "--format", "json",
            "--db", str(tmp_path / "h.db"), "--report", str(tmp_path / "report.md"),
        ],
        capture_output=True,
        text=True,
        timeout=120,  # a watchdog: the demo paces itself to 20 s
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    check([json.loads(line) for line in done.stdout.splitlines()], tmp_path)
