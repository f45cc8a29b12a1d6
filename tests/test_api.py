"""The public surface: what `import slakit` exports, pinned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import slakit

EXPORTED = [
    "SLO",
    "ActionTaken",
    "AlertPolicy",
    "Availability",
    "BudgetExhausted",
    "BurnRateRule",
    "ConfigError",
    "Engine",
    "Latency",
    "MaintenanceWindow",
    "Percentile",
    "Registry",
    "RejectedError",
    "Severity",
    "SlakitError",
    "Snapshot",
    "Status",
    "StatusChanged",
    "Threshold",
    "Throughput",
    "Tracker",
    "Uptime",
    "Violation",
    "ViolationAcknowledged",
    "ViolationOpened",
    "ViolationResolved",
    "Window",
    "default_registry",
    "load",
    "load_dict",
    "loads",
    "maintenance",
    "record",
    "track",
]


def test_all_is_pinned_and_sorted():
    """__all__ is exactly the documented names (ruff RUF022 keeps its order) and resolves."""
    assert EXPORTED == slakit.__all__
    assert all(hasattr(slakit, name) for name in slakit.__all__)


def test_version():
    """__version__ comes from the installed metadata."""
    assert slakit.__version__.startswith("0.")


def test_import_is_cheap():
    """`import slakit` pulls in neither the OTel SDK nor asyncio web frameworks."""
    code = "import sys, slakit; print(sorted(m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'starlette', 'flask')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "[]" == out.stdout.strip()


def test_reference_docs_are_current():
    """docs/reference.md is what scripts/gen_reference.py writes from the code."""
    out = subprocess.run(
        [sys.executable, "scripts/gen_reference.py", "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )

    assert 0 == out.returncode, out.stderr
