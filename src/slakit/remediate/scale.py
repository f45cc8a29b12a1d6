"""
Scale requests: ask for capacity when an SLO pages, within a cooldown and a max step.

A :class:`Scaler` is a hook. On a violation it computes how many replicas to add —
``step``, times the page's burn rate over its limit when that is known, capped at
``max_step`` per request and ``max_total`` outstanding — and hands a frozen
:class:`ScaleRequest` to a callback and/or POSTs it as JSON to a webhook (through the
same careful HTTP sender as the notifiers). Within ``cooldown`` of the last request it
asks for nothing. :attr:`Scaler.desired_replicas_delta` is what it has asked for and
not yet given back; exporters publish it as ``slakit_desired_replicas_delta`` for an
autoscaler (KEDA, an HPA on external metrics) to read. It returns to 0 when every
violation it acted on has resolved.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any

import attrs

from slakit.clock import SYSTEM
from slakit.events import ViolationOpened, ViolationResolved
from slakit.remediate.notify import HttpSender, HttpSettings
from slakit.spec import parse_duration

if TYPE_CHECKING:
    from collections.abc import Callable

    from slakit.events import Event
    from slakit.typing import Clock

_log = logging.getLogger("slakit.scale")


@attrs.frozen
class ScaleRequest:
    """A request for more (or, with a negative delta, fewer) replicas."""

    service: str
    delta: int
    reason: str
    slo: str
    time: float


class Scaler:
    """
    Asks for capacity when a violation opens.

    Args:
        service: the service to scale (in every request).
        callback: called with each :class:`ScaleRequest` (e.g. your cloud API).
        webhook: URL to POST each request to as JSON.
        step: replicas to ask for per violation (scaled by burn rate / limit).
        max_step: at most this many replicas in one request.
        max_total: at most this many replicas outstanding at once.
        cooldown: no new request within this long of the last one.
        slo: act only on pages of this SLO when subscribed directly; in a
            :class:`~slakit.remediate.policy.Policy` the policy decides.

    """

    def __init__(
        self,
        service: str,
        *,
        callback: Callable[[ScaleRequest], Any] | None = None,
        webhook: str | None = None,
        step: int = 1,
        max_step: int = 5,
        max_total: int = 20,
        cooldown: float | str = "5m",
        slo: str | None = None,
        settings: HttpSettings | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        if callback is None and webhook is None:
            raise ValueError("Scaler needs a callback, a webhook, or both")
        if not 1 <= step <= max_step <= max_total:
            raise ValueError("need 1 <= step <= max_step <= max_total")
        self.name = service
        self.service = service
        self.callback = callback
        self._webhook = (
            None if webhook is None else HttpSender("Scaler", service, webhook, settings=settings)
        )
        self.step, self.max_step, self.max_total = step, max_step, max_total
        self.cooldown = parse_duration(cooldown)
        self.slo = slo
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._granted: dict[str, int] = {}  # violation id -> replicas asked for it
        self.requests: list[ScaleRequest] = []

    def __repr__(self) -> str:
        return f"Scaler({self.service!r}, desired_replicas_delta={self.desired_replicas_delta})"

    @property
    def desired_replicas_delta(self) -> int:
        """Replicas asked for and not yet given back (what exporters publish)."""
        with self._lock:
            return sum(self._granted.values())

    def on_event(self, event: Event) -> None:
        """Ask for capacity on an opening; give it back when the violation resolves."""
        if isinstance(event, ViolationResolved):
            with self._lock:
                self._granted.pop(event.violation.id, None)
            return
        if not isinstance(event, ViolationOpened):
            return
        v = event.violation
        if v.rule == "budget" or (self.slo is not None and v.slo != self.slo):
            return  # capacity does not bring back a spent monthly budget
        now = self._clock.time()
        with self._lock:
            if self._last is not None and now - self._last < self.cooldown:
                _log.info("scaler %s: in cooldown, no request for %s", self.service, v.rule)
                return
            factor = v.actual / v.limit if v.limit > 0 and v.actual > v.limit else 1.0
            # floor: a page just over its limit (14.44 / 14.4) asks for `step`, not step + 1
            want = min(self.max_step, max(self.step, math.floor(self.step * factor)))
            room = self.max_total - sum(self._granted.values())
            delta = min(want, room)
            if delta <= 0:
                _log.warning(
                    "scaler %s: already asked for max_total=%d", self.service, self.max_total
                )
                return
            self._last = now
            self._granted[v.id] = delta
        request = ScaleRequest(
            service=self.service,
            delta=delta,
            reason=f"{v.slo}/{v.objective} {v.rule}: {v.detail}",
            slo=v.slo,
            time=now,
        )
        self.requests.append(request)
        if self.callback is not None:
            self.callback(request)
        if self._webhook is not None:
            self._webhook.post(attrs.asdict(request))
