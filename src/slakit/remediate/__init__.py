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
from slakit.remediate.limit import AIMD, ConcurrencyLimiter, Gradient2
from slakit.remediate.policy import Policy
from slakit.remediate.shed import Criticality, LoadShedder, RequestShedError

__all__ = [
    "AIMD",
    "CircuitBreaker",
    "CircuitBreakerListener",
    "CircuitOpenError",
    "ConcurrencyLimiter",
    "Criticality",
    "Gradient2",
    "LoadShedder",
    "Policy",
    "RequestShedError",
    "State",
]
