"""slakit simulate: detection, budget, precision and recall against hand-computed values."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import yaml

import slakit
from slakit.cli import main as cli
from slakit.simulate import Profile, simulate

if TYPE_CHECKING:
    from pathlib import Path

API = slakit.SLO(
    "api",
    objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", "99%")],
    window="30d",
)
PROFILE = {
    "duration": "4d",
    "rate": 50,
    "phases": [
        {"name": "outage", "start": "1d", "duration": "15m", "error_rate": "100%"},
        {"name": "slow burn", "start": "2d", "duration": "6h", "error_rate": "0.5%"},
        {
            "name": "slow disk",
            "start": "3d",
            "duration": "1h",
            "slow_rate": "30%",
            "latency": "800ms",
        },
        {"name": "blip", "start": "3d12h", "duration": "2m", "error_rate": "0.05%"},
    ],
}


def test_hand_computed_detection_budget_precision_recall() -> None:
    result = simulate(API, Profile.from_dict(PROFILE))
    by_phase = {i.phase: i for i in result.incidents}
    assert set(by_phase) == {"outage", "slow burn", "slow disk"}  # the blip is sustainable

    outage = by_phase["outage"]
    # 100 % errors: the 1 h window passes 14.4 x 0.1 % = 1.44 % after 52 s; one step is 60 s
    assert outage.detected_after == 60
    # 15 min x 50/s bad over a 30-day budget of 0.1 % x 50/s x 30 days
    assert outage.budget_spent == pytest.approx(15 * 60 * 50 / (0.001 * 50 * 30 * 86_400))
    assert "page-1h-5m" in outage.alerts

    disk = by_phase["slow disk"]
    # 30 % slow: the 1 h window reaches 14.4 x 1 % after 0.144 / 0.3 x 60 = 28.8 min
    assert disk.detected_after == 29 * 60
    assert disk.alerts == ("page-1h-5m",)

    burn = by_phase["slow burn"]
    # 0.5 % is 5x: under both pages. The 3 d ticket's long window still holds the day-1
    # outage (45,000 bad in ~8.9 M: 0.5 % > 0.1 %), so it fires once the 6 h window's
    # 0.5 % x t / 360 min exceeds 0.1 %: strictly after 72 min, at the 73rd
    assert burn.detected_after == 73 * 60
    assert burn.alerts == ("ticket-3d-6h",)
    assert result.recall == 1.0
    assert result.false_alerts == 0
    assert result.precision == 1.0


def test_a_slow_burn_alone_is_missed_by_the_default_windows() -> None:
    """0.5 % for 6 h on a clean history: 5x under the pages, and the 3 d window's share
    0.5 % x 6 / 72 = 0.042 % stays under the ticket's 0.1 %."""
    alone = {**PROFILE, "phases": [PROFILE["phases"][1]]}
    result = simulate(API, Profile.from_dict(alone))
    (burn,) = result.incidents
    assert burn.detected_after is None
    assert (result.alerts, result.recall, result.precision) == (0, 0.0, None)


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "slos.yaml"
    config.write_text(
        "slos:\n  - name: api\n    window: 30d\n    objectives:\n"
        "      - availability: {target: 99.9%}\n"
    )
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        yaml.safe_dump({**PROFILE, "duration": "2d", "phases": PROFILE["phases"][:1]})
    )
    assert cli(["simulate", str(config), str(profile)]) == 0
    out = capsys.readouterr().out
    assert "outage (availability): detected after 60 s" in out
    assert "precision 100%, recall 100%" in out
    assert cli(["simulate", str(config), str(profile), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["recall"] == 1.0
    profile.write_text("duration: 1d\nrate: 10\nphases: [{start: 1h}]\n")
    assert cli(["simulate", str(config), str(profile)]) == 1
    assert "duration" in capsys.readouterr().err


def test_a_csv_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    phases = tmp_path / "phases.csv"
    phases.write_text(
        "name,start,duration,error_rate,slow_rate,latency\noutage,1d,15m,100%,,\n"
        "slow disk,3d,1h,,30%,800ms\n"
    )
    profile = Profile.from_csv(phases.read_text(), duration="4d", rate=50)
    assert [p.name for p in profile.phases] == ["outage", "slow disk"]
    assert profile.phases[1].latency == 0.8
    config = tmp_path / "slos.yaml"
    config.write_text(
        "slos:\n  - name: api\n    window: 30d\n    objectives:\n"
        "      - availability: {target: 99.9%}\n"
    )
    assert cli(["simulate", str(config), str(phases)]) == 2
    assert "needs --duration and --rate" in capsys.readouterr().err
    assert cli(["simulate", str(config), str(phases), "--duration", "2d", "--rate", "50"]) == 0
    assert "outage (availability): detected after 60 s" in capsys.readouterr().out
