"""
Remediation hooks: what slakit does about a violation, each usable on its own.

.. versionadded:: 0.1
"""

from __future__ import annotations

from slakit.remediate.breaker import (
    CircuitBreaker,
    CircuitBreakerListener,
    CircuitOpenError,
    State,
)
from slakit.remediate.escalate import Escalation, Level
from slakit.remediate.limit import AIMD, ConcurrencyLimiter, Gradient2
from slakit.remediate.notify import (
    AlertmanagerNotifier,
    EmailNotifier,
    HttpSettings,
    LogNotifier,
    Notifier,
    NotifyError,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from slakit.remediate.policy import Policy
from slakit.remediate.scale import Scaler, ScaleRequest
from slakit.remediate.shed import Criticality, LoadShedder, RequestShedError

__all__ = [
    "AIMD",
    "AlertmanagerNotifier",
    "CircuitBreaker",
    "CircuitBreakerListener",
    "CircuitOpenError",
    "ConcurrencyLimiter",
    "Criticality",
    "EmailNotifier",
    "Escalation",
    "Gradient2",
    "HttpSettings",
    "Level",
    "LoadShedder",
    "LogNotifier",
    "Notifier",
    "NotifyError",
    "PagerDutyNotifier",
    "Policy",
    "RequestShedError",
    "ScaleRequest",
    "Scaler",
    "SlackNotifier",
    "State",
    "WebhookNotifier",
]
