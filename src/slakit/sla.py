"""
SLA contracts: weighted objectives, a compliance score, credits and penalties.

A contract is the promise with money attached: which objectives of an SLO it covers
and how much each weighs, the credit schedule (``availability below 99.9 % → 10 %``)
and optionally a penalty formula checked by :mod:`slakit.formula`::

    Contract(
        name="acme-gold", customer="ACME", slo="checkout",
        weights={"availability": 0.7, "latency-250ms": 0.3},
        credits=[Credit(below=0.999, percent=10), Credit(below=0.99, percent=25)],
        penalty="10 * (target - actual) * monthly_fee", monthly_fee=5_000,
    )
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from slakit.formula import Formula
from slakit.spec import SLO, Availability, Percentile, Uptime

PENALTY_VARIABLES: Final = frozenset({"target", "actual", "monthly_fee", "credit_percent"})
"""What a penalty formula may use: the covered availability target and actual (ratios),
the monthly fee and the credit percent the schedule gives."""


@attrs.frozen
class Credit:
    """One step of a credit schedule: compliance below ``below`` earns ``percent``."""

    below: float = attrs.field(validator=[attrs.validators.gt(0), attrs.validators.le(1)])
    percent: float = attrs.field(validator=[attrs.validators.ge(0), attrs.validators.le(100)])


def _credits(value: Sequence[Credit]) -> tuple[Credit, ...]:
    return tuple(sorted(value, key=lambda c: c.below, reverse=True))


def _weights(value: Mapping[str, float]) -> Mapping[str, float]:
    weights = dict(value)
    if not weights or any(w <= 0 for w in weights.values()):
        raise ValueError("weights: give each covered objective a weight > 0")
    return weights


def _period(value: object) -> tuple[str, str | None] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = (value.get("from"), value.get("until"))
    if not isinstance(value, tuple | list) or len(value) != 2 or value[0] is None:
        raise ValueError("effective: expected {from: YYYY-MM-DD, until: YYYY-MM-DD or none}")
    begin, until = (None if v is None else str(v) for v in value)
    try:
        for v in (begin, until):
            if v is not None:
                dt.date.fromisoformat(v)
    except ValueError as exc:
        raise ValueError(f"effective: {exc}") from None
    assert begin is not None
    return begin, until


def _penalty(value: str | Formula | None) -> Formula | None:
    if value is None or isinstance(value, Formula):
        return value
    return Formula.parse(value, PENALTY_VARIABLES)


@attrs.frozen
class Contract:
    """
    An SLA contract over one SLO's objectives.

    Args:
        name: the contract's name.
        customer: who it is with.
        slo: the name of the SLO it covers.
        weights: covered objectives (by key) and their weights (normalised to 1).
        credits: the credit schedule on the first covered availability objective.
        penalty: a formula over :data:`PENALTY_VARIABLES`, checked when the contract is made.
        monthly_fee: the fee penalties and credits are computed on.

    """

    name: str
    customer: str
    slo: str
    weights: Mapping[str, float] = attrs.field(converter=_weights)
    credits: tuple[Credit, ...] = attrs.field(default=(), converter=_credits)
    penalty: Formula | None = attrs.field(default=None, converter=_penalty)
    monthly_fee: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    effective: tuple[str, str | None] | None = attrs.field(default=None, converter=_period)
    """``(from, until)`` ISO dates the contract is in force (``until`` ``None``: open)."""

    def in_force(self, start: float, end: float) -> bool:
        """Whether the contract covers any of ``[start, end)`` (Unix seconds, UTC dates)."""
        if self.effective is None:
            return True
        begin, until = self.effective
        first = dt.datetime.fromisoformat(begin).replace(tzinfo=dt.UTC).timestamp()
        last = (
            float("inf")
            if until is None
            else dt.datetime.fromisoformat(until).replace(tzinfo=dt.UTC).timestamp()
        )
        return first < end and start < last

    def compliance_score(self, met: Mapping[str, bool]) -> float:
        """Σ weight of the met objectives × 100, weights normalised (0 … 100)."""
        total = sum(self.weights.values())
        return 100.0 * sum(w for key, w in self.weights.items() if met.get(key, False)) / total

    def credit_percent(self, actual: float) -> float:
        """Credit earned when the covered availability was ``actual`` (a ratio)."""
        earned = 0.0
        for step in self.credits:
            if actual < step.below:
                earned = max(earned, step.percent)
        return earned

    def owed(self, target: float, actual: float) -> float:
        """Money owed for a period: the credit on the fee, plus the penalty formula."""
        percent = self.credit_percent(actual)
        amount = self.monthly_fee * percent / 100
        if self.penalty is not None:
            amount += max(
                0.0,
                self.penalty(
                    target=target,
                    actual=actual,
                    monthly_fee=self.monthly_fee,
                    credit_percent=percent,
                ),
            )
        return amount


DOWN_RATIO: Final = 0.05
"""A minute is down, for a tier's uptime, when more than 5 % of its requests fail."""


@attrs.frozen
class Tier:
    """
    A service tier: availability (uptime), p99 latency and error rate, as sold.

    Availability is promised as time ("up 99.99 % of the minutes"), so it is an
    :class:`~slakit.spec.Uptime` objective over one-minute slices: a minute is down when
    more than :data:`DOWN_RATIO` of its requests fail. The error-rate figure is a promise
    about requests, so it is also an event objective (:class:`~slakit.spec.Availability`
    at ``1 - error_ratio``) over the same window. Neither implies the other: a steady
    0.5 % of failures never takes a minute down, yet breaks a 0.1 % error-rate promise;
    and a minute down at a quiet hour is downtime even though its few requests barely
    move the error rate. Customers are promised both.
    """

    name: str
    uptime: float
    p99: float
    """Seconds."""
    error_ratio: float

    def slo(self, name: str, window: str = "30d") -> SLO:
        """Return an SLO holding this tier's three promises."""
        return SLO(
            name,
            objectives=[
                Uptime(target=self.uptime, slice="1m", max_error_ratio=DOWN_RATIO),
                Percentile(q=0.99, threshold=self.p99, slice="1m", target=self.uptime),
                Availability(target=1 - self.error_ratio, name="error-rate"),
            ],
            window=window,
            description=f"{self.name.title()} tier",
        )


TIERS: Final[Mapping[str, Tier]] = {
    "enterprise": Tier("enterprise", uptime=0.99999, p99=0.100, error_ratio=0.001),
    "business": Tier("business", uptime=0.9999, p99=0.200, error_ratio=0.005),
    "standard": Tier("standard", uptime=0.999, p99=0.500, error_ratio=0.01),
}
"""The presets: Enterprise 99.999 % / p99 < 100 ms / errors < 0.1 %, Business 99.99 % /
200 ms / 0.5 %, Standard 99.9 % / 500 ms / 1 %."""
