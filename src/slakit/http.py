"""
What the ASGI and WSGI middleware share.

That is: which SLO a request counts towards, its series labels, its admission, and how
its status becomes an outcome.

A request is identified by its method and its route *template* (never the raw path,
which would make label values, and memory, unbounded). :class:`Routing` turns that
pair into a :class:`Target` once and caches it: the SLO's recorder, its labelled
series and the guards (breakers, shedders, limiters) that admit requests for it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from slakit.exceptions import RejectedError
from slakit.registry import Registry, default_registry
from slakit.ring import BAD, DISCONNECTED, GOOD, IGNORED
from slakit.series import DEFAULT_CAP

if TYPE_CHECKING:
    from slakit.series import Series
    from slakit.spec import SLO
    from slakit.typing import Admission

UNMATCHED: Final = "__unmatched__"
"""Route label of requests no route of the app matched (a 404): one series, not one per path."""

TEMPLATE_CACHE: Final = 4_096
"""Raw paths whose route template the middleware remembers (then the cache starts over)."""

METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""Methods kept as label values; any other becomes ``_OTHER`` (as OpenTelemetry does)."""

StatusPredicate = Callable[[int], bool]
"""Returns ``True`` when a response status counts as a failure."""

Recorder = Callable[[int, int, int], None]
"""Records one request: ``(start_ns, end_ns, outcome)``."""

Guards = Sequence["Admission"] | Mapping[str, Sequence["Admission"]]
"""Admission guards for every SLO, or per SLO name."""


def server_errors(status: int) -> bool:
    """Judge a status as the default does: 5xx is a failure, anything else is not."""
    return status >= 500


def server_and_client_errors(status: int) -> bool:
    """Judge 4xx and 5xx statuses failures (for services whose callers are trusted)."""
    return status >= 400


class Target:
    """Where one (method, route) pair's requests go: an SLO, its series and guards."""

    __slots__ = ("guards", "record", "series", "slo")

    def __init__(
        self,
        slo: SLO,
        registry: Registry,
        labels: tuple[str, ...],
        cap: int,
        guards: tuple[Admission, ...],
    ) -> None:
        self.slo = slo
        self.record: Recorder = registry.register(slo).record_ns
        self.series: Series = registry.series(slo, labels, cap)
        self.guards = guards

    def admit(self, criticality: str | None) -> list[tuple[Admission, object]]:
        """Pass every guard or raise the first refusal (earlier passes are handed back)."""
        tickets: list[tuple[Admission, object]] = []
        for guard in self.guards:
            try:
                tickets.append((guard, guard.admit_request(criticality)))
            except RejectedError:
                for g, ticket in tickets:
                    g.finish_request(ticket, None, 0)
                raise
        return tickets

    def end(
        self,
        key: tuple[str, ...],
        t0: int,
        t1: int,
        outcome: int,
        tickets: list[tuple[Admission, object]] | None,
    ) -> None:
        """Record one request that ran, and tell its guards how it went."""
        self.record(t0, t1, outcome)
        self.series.add(key, outcome)
        if tickets:
            success = None if outcome in (DISCONNECTED, IGNORED) else outcome == GOOD
            for guard, ticket in tickets:
                guard.finish_request(ticket, success, t1 - t0)


class Routing:
    """
    Chooses the SLO of each request by route template and method.

    Args:
        slo: the SLO of every request not matched by ``routes`` (``None``: not recorded).
        routes: SLOs by ``"METHOD /template"``, ``"/template"`` or ``"METHOD"``; the
            most specific key wins, then ``slo``.
        guards: breakers, shedders or limiters that admit requests before the app runs,
            for every SLO or per SLO name.
        bad_status: which response statuses are failures (default: 5xx).
        tenant: whether requests carry a tenant label.
        tenants: SLOs by tenant: a listed tenant's requests are recorded in its own SLO
            too (windows, budget, alerts and history of its own, for a customer's SLA
            contract), besides the route's SLO.
        max_series: distinct (route, method[, tenant]) series per SLO before the rest
            share one overflow series.
        registry: where the SLOs' stores live (default: the process-wide one).

    """

    def __init__(
        self,
        slo: SLO | None = None,
        *,
        routes: Mapping[str, SLO] | None = None,
        guards: Guards = (),
        bad_status: StatusPredicate = server_errors,
        tenant: bool = False,
        tenants: Mapping[str, SLO] | None = None,
        max_series: int = DEFAULT_CAP,
        registry: Registry | None = None,
    ) -> None:
        if slo is None and not routes:
            raise ValueError("give an SLO for every request (slo=) or per route (routes=)")
        if tenants and not tenant:
            raise ValueError("tenants= needs a tenant resolver (tenant=) to tell requests apart")
        self.registry = registry if registry is not None else default_registry()
        self.default = slo
        self.routes = dict(routes or {})
        for key in self.routes:
            method, _, template = ("", "", key) if key.startswith("/") else key.partition(" ")
            if method and method not in METHODS:
                raise ValueError(f"route key {key!r}: {method!r} is not an HTTP method")
            if template and not template.startswith("/"):
                raise ValueError(f"route key {key!r}: the template must start with '/'")
        self.guards = guards
        self.bad_status = bad_status
        self.labels = ("route", "method", "tenant") if tenant else ("route", "method")
        self.max_series = max_series
        self._targets: dict[tuple[str, str], Target | None] = {}
        for s in {*self.routes.values(), *([slo] if slo is not None else [])}:
            self.registry.series(s, self.labels, max_series)  # fail early on a label clash
        self.tenants = {t: self.registry.register(s).record_ns for t, s in (tenants or {}).items()}
        self._tenant_targets: dict[tuple[Target, str], Target] = {}

    def target(self, method: str, template: str) -> Target | None:
        """Return the target of a request (cached per method and template)."""
        found = self._targets.get((method, template), False)
        if found is not False:
            return found  # type: ignore[return-value]
        routes = self.routes
        slo = (
            routes.get(f"{method} {template}")
            or routes.get(template)
            or routes.get(method)
            or self.default
        )
        target = None
        if slo is not None:
            guards = self.guards
            mine = guards.get(slo.name, ()) if isinstance(guards, Mapping) else guards
            target = Target(slo, self.registry, self.labels, self.max_series, tuple(mine))
        if len(self._targets) < 4 * self.max_series:  # templates are bounded; stay so
            self._targets[method, template] = target
        return target

    def for_tenant(self, target: Target, tenant: str) -> Target:
        """Return ``target``, recording into ``tenant``'s own SLO too when it has one."""
        record = self.tenants.get(tenant)
        if record is None:
            return target
        found = self._tenant_targets.get((target, tenant))
        if found is None:
            found = copy.copy(target)
            found.record = _both(target.record, record)
            if len(self._tenant_targets) < 4 * self.max_series:
                self._tenant_targets[target, tenant] = found
        return found

    def outcome(self, status: int) -> int:
        """Outcome of a response that was sent in full."""
        return BAD if self.bad_status(status) else GOOD


def _both(first: Recorder, second: Recorder) -> Recorder:
    """Return a recorder that records each request in ``first`` and ``second``."""

    def record(t0: int, t1: int, outcome: int) -> None:
        first(t0, t1, outcome)
        second(t0, t1, outcome)

    return record


def method_label(method: str) -> str:
    """Return ``method`` if it is a standard method, else ``_OTHER``."""
    return method if method in METHODS else "_OTHER"


def retry_after(exc: RejectedError) -> str:
    """Value of the ``Retry-After`` header for a refused request (whole seconds, >= 1)."""
    wait = getattr(exc, "retry_after", None)
    return str(max(1, math.ceil(wait))) if isinstance(wait, int | float) else "1"
