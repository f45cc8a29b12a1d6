"""
slakit: enforce SLAs inside a running service.

Declare :class:`SLO` objects, decorate handlers with :func:`track`, and run an
:class:`Engine` that evaluates compliance, error budgets and burn-rate alerts every
second and emits violation events.
"""

from __future__ import annotations

from typing import Any

from slakit.config import load, load_dict, loads
from slakit.engine import Engine
from slakit.evaluate import Snapshot
from slakit.events import (
    ActionTaken,
    BudgetExhausted,
    StatusChanged,
    Violation,
    ViolationAcknowledged,
    ViolationOpened,
    ViolationResolved,
)
from slakit.exceptions import ConfigError, RejectedError, SlakitError
from slakit.maintenance import MaintenanceWindow, maintenance
from slakit.registry import Registry, default_registry
from slakit.spec import (
    SLO,
    AlertPolicy,
    Availability,
    BurnRateRule,
    Latency,
    Percentile,
    Severity,
    Status,
    Threshold,
    Throughput,
    Uptime,
    Window,
)
from slakit.track import Tracker, record, track

__all__ = [
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


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - only when asked

        return version("slakit")
    raise AttributeError(f"module 'slakit' has no attribute {name!r}")
