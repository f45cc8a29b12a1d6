"""
ASGI middleware: records every HTTP request of any ASGI app (Starlette, FastAPI).

Example::

    app.add_middleware(slakit.asgi.SLOMiddleware, slo=api)
    app.add_middleware(
        slakit.asgi.SLOMiddleware,
        routes={"POST /checkout": checkout, "/orders/{id}": orders},
        guards={"checkout": [breaker, shedder]},
    )

A request is timed from the call to the last body chunk sent (streaming responses
included) and classified by status: 5xx bad by default, an exception bad (and re-raised
unchanged), a client that left before the end ``disconnected``. A guard that refuses a
request answers it ``503`` with ``Retry-After`` before the app runs. ``lifespan`` and
``websocket`` scopes pass through untouched.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from slakit.exceptions import RejectedError
from slakit.faults import internal_error
from slakit.http import (
    TEMPLATE_CACHE,
    UNMATCHED,
    Guards,
    Routing,
    StatusPredicate,
    Target,
    method_label,
    retry_after,
    server_errors,
)
from slakit.ring import BAD, DISCONNECTED, GOOD, REJECTED
from slakit.series import DEFAULT_CAP

if TYPE_CHECKING:
    from slakit.registry import Registry
    from slakit.spec import SLO

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RouteResolver = Callable[[Scope], str | None]
"""Returns the route template of a request, or ``None`` when no route matches."""
TenantResolver = Callable[[Scope], str | None]
"""Returns the tenant of a request (a label value under the cardinality cap)."""

_FULL: Final = 2  # starlette.routing.Match.FULL, duck-typed so starlette stays optional
_PARTIAL: Final = 1


def starlette_route(scope: Scope) -> str | None:
    """
    Find the template of the route a Starlette or FastAPI app will run (mounts included).

    Reads the routes of ``scope["app"]``, which Starlette sets before any middleware.
    A route that matches the path but not the method (a 405) still names the template.
    """
    routes = getattr(scope.get("app"), "routes", None)
    return None if routes is None else _match(_flatten(routes), scope, "")


def _flatten(routes: Iterable[Any]) -> Iterable[Any]:
    """Unfold FastAPI's included routers (0.137+) into routes with their full paths."""
    fastapi = sys.modules.get("fastapi.routing")  # only if the app uses FastAPI
    unfold = getattr(fastapi, "iter_route_contexts", None)
    if unfold is None:
        return routes
    return [getattr(c, "starlette_route", None) or c for c in unfold(routes)]


def _match(routes: Iterable[Any], scope: Scope, prefix: str) -> str | None:
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        level = match.value
        if level == _FULL:
            path = prefix + getattr(route, "path", "")
            sub = getattr(route, "routes", None)
            if sub:  # a Mount or Host: descend for the full template
                return _match(sub, {**scope, **child}, path) or path
            return path
        if level == _PARTIAL and partial is None:
            partial = prefix + getattr(route, "path", "")
    return partial


def header_tenant(name: str) -> TenantResolver:
    """Return a tenant resolver that reads the request header ``name``."""
    wanted = name.lower().encode("latin-1")

    def tenant(scope: Scope) -> str | None:
        for key, value in scope.get("headers", ()):
            if key == wanted:
                return bytes(value).decode("latin-1")
        return None

    return tenant


class SLOMiddleware:
    """
    Records each HTTP request against its SLO; guards admit requests before the app runs.

    Args:
        app: the ASGI app to wrap.
        slo: the SLO of every request that ``routes`` does not name.
        routes: SLOs by ``"METHOD /template"``, ``"/template"`` or ``"METHOD"``.
        guards: breakers, shedders or limiters (any :class:`~slakit.typing.Admission`),
            for every SLO or by SLO name; a refusal is answered ``503`` + ``Retry-After``.
        route: finds a request's route template (default: Starlette/FastAPI routes).
        bad_status: which statuses are failures (default: 5xx; see ``slakit.http``).
        priority_header: request header holding the criticality the shedder reads.
        tenant: a header name or a function of the scope giving the request's tenant.
        tenants: SLOs of their own for some tenants (see :class:`slakit.http.Routing`).
        max_series: label sets per SLO before the rest share an overflow series.
        skip_paths: raw paths never recorded (``/metrics``, health checks).
        registry: where the SLOs' stores live (default: the process-wide one).

    """

    def __init__(
        self,
        app: ASGIApp,
        slo: SLO | None = None,
        *,
        routes: Mapping[str, SLO] | None = None,
        guards: Guards = (),
        route: RouteResolver = starlette_route,
        bad_status: StatusPredicate = server_errors,
        priority_header: str = "x-priority",
        tenant: str | TenantResolver | None = None,
        tenants: Mapping[str, SLO] | None = None,
        max_series: int = DEFAULT_CAP,
        skip_paths: Iterable[str] = (),
        registry: Registry | None = None,
    ) -> None:
        self.app = app
        self.routing = Routing(
            slo,
            routes=routes,
            guards=guards,
            bad_status=bad_status,
            tenant=tenant is not None,
            tenants=tenants,
            max_series=max_series,
            registry=registry,
        )
        self._resolve = route
        self._priority = header_tenant(priority_header)
        self._tenant = header_tenant(tenant) if isinstance(tenant, str) else tenant
        self._skip = frozenset(skip_paths)
        self._hits: dict[tuple[str, str, str], tuple[Target, tuple[str, ...]] | None] = {}
        self._now = self.routing.registry.clock.monotonic_ns

    def _lookup(self, scope: Scope) -> tuple[Target, tuple[str, ...]] | None:
        """Resolve a request's target and series labels (cached per method and raw path)."""
        method = method_label(scope["method"])
        template = self._resolve(scope) or UNMATCHED
        target = self.routing.target(method, template)
        if target is None:
            return None
        labels = (template, method)
        return target, labels if self._tenant is not None else target.series.key(labels)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901, PLR0915 - one request's whole life, kept in one frame for speed
        """Run one ASGI call."""
        if scope["type"] != "http" or scope["path"] in self._skip:
            await self.app(scope, receive, send)
            return
        where = (scope["method"], scope.get("root_path", ""), scope["path"])
        try:
            hit = self._hits[where]
        except KeyError:
            try:
                hit = self._lookup(scope)
            except Exception as err:  # a fault of ours: serve the request unrecorded
                internal_error("asgi route", err)
                await self.app(scope, receive, send)
                return
            if len(self._hits) >= TEMPLATE_CACHE:
                self._hits.clear()
            self._hits[where] = hit
        if hit is None:
            await self.app(scope, receive, send)
            return
        target, key = hit
        tenant = self._tenant
        if tenant is not None:
            who = tenant(scope) or ""
            key = target.series.key((*key, who))
            if self.routing.tenants:
                target = self.routing.for_tenant(target, who)
        record, count = target.record, target.series.add
        now = self._now
        t0 = now()
        tickets = None
        if target.guards:
            try:
                tickets = target.admit(self._priority(scope))
            except RejectedError as exc:
                record(t0, t0, REJECTED)
                count(key, REJECTED)
                await _unavailable(send, exc)
                return
        bad_status = self.routing.bad_status
        status = 0
        done = False
        left = False

        async def receive_tracked() -> Message:
            nonlocal left
            message = await receive()
            if message["type"] == "http.disconnect":
                left = True
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal status, done, left
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif (
                kind == "http.response.body" and not message.get("more_body", False)
            ) or kind == "http.response.pathsend":
                try:
                    await send(message)
                except OSError:  # the client is gone
                    left = True
                    raise
                if not done:  # the last byte is out: the request is over
                    done = True
                    t1 = now()
                    outcome = BAD if bad_status(status) else GOOD
                    if tickets is None:
                        record(t0, t1, outcome)
                        count(key, outcome)
                    else:
                        target.end(key, t0, t1, outcome, tickets)
                return
            try:
                await send(message)
            except OSError:
                left = True
                raise

        try:
            await self.app(scope, receive_tracked, send_tracked)
        except BaseException as exc:
            if not done:
                done = True
                gone = left or isinstance(exc, asyncio.CancelledError)
                target.end(key, t0, now(), DISCONNECTED if gone else BAD, tickets)
            raise
        if not done:  # the app returned without finishing its answer
            outcome = DISCONNECTED if left else (BAD if not status or bad_status(status) else GOOD)
            target.end(key, t0, now(), outcome, tickets)


async def _unavailable(send: Send, exc: RejectedError) -> None:
    """Answer a refused request: 503 with ``Retry-After``, before the app runs."""
    body = b"Service Unavailable\n"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", retry_after(exc).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
