"""
Composite SLOs: one health figure from weighted objectives of several SLOs.

The overall health score of an SLA (availability 40 %, reliability 30 %, performance
20 %, efficiency 10 %) is a composite::

    health = Composite("shop health", target="99%", parts={
        "checkout/availability": 0.4, "checkout/error-rate": 0.3,
        "checkout/latency-250ms": 0.2, "search/availability": 0.1,
    })
    status = health.evaluate(registry)        # from the latest snapshots

The composite SLI is the weighted mean of the parts' SLIs over their SLO windows, and
its budget is measured against its own target: ``1 - (1 - SLI) / (1 - target)``.
A part that has no SLI yet (no traffic) is left out and the other weights renormalised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from slakit.spec import parse_target

if TYPE_CHECKING:
    from slakit.registry import Registry


def _parts(value: Mapping[str, float]) -> Mapping[str, float]:
    parts = dict(value)
    if not parts:
        raise ValueError("parts: name at least one 'slo/objective' with a weight")
    for key, weight in parts.items():
        if key.count("/") != 1:
            raise ValueError(f"parts.{key}: expected 'slo/objective'")
        if weight <= 0:
            raise ValueError(f"parts.{key}: the weight must be > 0, got {weight}")
    return parts


@attrs.frozen
class CompositeStatus:
    """A composite's figures at one moment."""

    name: str
    sli: float | None
    target: float
    met: bool
    budget_remaining: float | None
    parts: Mapping[str, float | None]
    """Each part's SLI (``None``: not evaluated yet)."""


@attrs.frozen
class Composite:
    """A weighted combination of objectives, with its own target and budget."""

    name: str
    parts: Mapping[str, float] = attrs.field(converter=_parts)
    target: float = attrs.field(converter=parse_target)

    def evaluate(self, registry: Registry) -> CompositeStatus:
        """Combine the latest snapshots of the parts' SLOs."""
        slis: dict[str, float | None] = {}
        for key in self.parts:
            slo, objective = key.split("/")
            snap = registry.latest(slo)
            found = None
            if snap is not None:
                found = next((o.actual for o in snap.objectives if o.key == objective), None)
            slis[key] = found
        return self.combine(slis)

    def combine(self, slis: Mapping[str, float | None]) -> CompositeStatus:
        """Combine SLIs by part: their weighted mean, and the budget against the target."""
        known = {k: v for k, v in slis.items() if v is not None and k in self.parts}
        weight = sum(self.parts[k] for k in known)
        sli = sum(self.parts[k] * v for k, v in known.items()) / weight if weight else None
        budget = None if sli is None else 1 - (1 - sli) / (1 - self.target)
        return CompositeStatus(
            name=self.name,
            sli=sli,
            target=self.target,
            met=sli is None or sli >= self.target,
            budget_remaining=budget,
            parts=dict(slis),
        )
