"""
Frozen events the engine emits, and the violation record they carry.

A violation's lifecycle is opened → (acknowledged) → resolved. The engine owns that
state; each event holds a frozen copy of the violation as it was when emitted.
"""

from __future__ import annotations

import attrs

from slakit.spec import Severity, Status


@attrs.frozen
class Action:
    """Something done about a violation (by a remediation hook), with its outcome."""

    time: float
    hook: str
    result: str
    """``ok``, ``error: ...``, ``timed out ...``, ``dry-run`` or ``skipped: ...``."""
    attempt: int = 1


@attrs.frozen
class Violation:
    """One breach of one rule of one objective, from open to resolve."""

    id: str
    slo: str
    objective: str
    rule: str
    severity: Severity
    opened_at: float
    actual: float
    """The measured figure when the violation opened (burn rate, quantile, value)."""
    limit: float
    detail: str
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    actions: tuple[Action, ...] = ()

    @property
    def is_open(self) -> bool:
        """True until resolved."""
        return self.resolved_at is None

    @property
    def duration(self) -> float | None:
        """Seconds from open to resolve (``None`` while open)."""
        return None if self.resolved_at is None else self.resolved_at - self.opened_at


@attrs.frozen
class ViolationOpened:
    """A rule's condition started to hold."""

    time: float
    violation: Violation


@attrs.frozen
class ViolationResolved:
    """A rule's condition stopped holding (past hysteresis)."""

    time: float
    violation: Violation


@attrs.frozen
class ViolationAcknowledged:
    """Someone took ownership of a violation; escalation stops."""

    time: float
    violation: Violation


@attrs.frozen
class ActionTaken:
    """A remediation hook acted on a violation (or failed to): emitted at the next tick."""

    time: float
    violation: Violation
    """The violation as it is with ``action`` attached."""
    action: Action


@attrs.frozen
class StatusChanged:
    """An SLO's overall status changed."""

    time: float
    slo: str
    old: Status
    new: Status


@attrs.frozen
class BudgetExhausted:
    """An objective's error budget over the SLO window reached zero."""

    time: float
    slo: str
    objective: str
    remaining: float


Event = (
    ViolationOpened
    | ViolationResolved
    | ViolationAcknowledged
    | ActionTaken
    | StatusChanged
    | BudgetExhausted
)
"""Any event the engine emits."""
