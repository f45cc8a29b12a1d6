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
from slakit.remediate.policy import Policy

__all__ = ["CircuitBreaker", "CircuitBreakerListener", "CircuitOpenError", "Policy", "State"]
