"""
WSGI middleware: records every request of a WSGI app (Flask, Django, any other).

Example::

    app.wsgi_app = slakit.wsgi.SLOMiddleware(app.wsgi_app, slo=api)  # Flask
    application = slakit.wsgi.SLOMiddleware(get_wsgi_application(), slo=api)  # Django

Same behaviour as :class:`slakit.asgi.SLOMiddleware`: a request is timed until the
server closes its response iterable (so streamed bodies are timed to the end), a
response closed before it was consumed counts as ``disconnected``, an exception is bad
and re-raised unchanged, and a refused request is answered ``503`` + ``Retry-After``
without calling the app. Route templates come from Flask's URL map or Django's
resolver, found automatically, or from ``route=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

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
from slakit.ring import BAD, DISCONNECTED, REJECTED
from slakit.series import DEFAULT_CAP

if TYPE_CHECKING:
    from types import TracebackType

    from slakit.registry import Registry
    from slakit.spec import SLO
    from slakit.typing import Admission

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, "TracebackType"] | tuple[None, None, None]


class StartResponse(Protocol):
    """The ``start_response`` callable of PEP 3333."""

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]:
        """Begin the response."""
        ...


WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
RouteResolver = Callable[[Environ], str | None]
"""Returns the route template of a request, or ``None`` when no route matches."""
TenantResolver = Callable[[Environ], str | None]


def flask_route(app: Any) -> RouteResolver:
    """Return a resolver that reads the URL rule a Flask app will run (``/orders/<int:id>``)."""

    def route(environ: Environ) -> str | None:
        adapter = app.url_map.bind_to_environ(environ)
        try:
            rule, _ = adapter.match(return_rule=True)
        except Exception as exc:
            allowed = getattr(exc, "valid_methods", None)  # a 405 still names its rule
            if not allowed:
                return None
            try:
                rule, _ = adapter.match(return_rule=True, method=next(iter(allowed)))
            except Exception:
                return None
        return str(rule.rule)

    return route


def django_route(environ: Environ) -> str | None:
    """Return the route pattern Django's resolver matches (``orders/<int:pk>/``)."""
    from django.urls import Resolver404, resolve  # noqa: PLC0415 - Django stays optional

    try:
        match = resolve(environ.get("PATH_INFO", "/") or "/")
    except Resolver404:
        return None
    return "/" + str(match.route)


def _detect(app: Any) -> RouteResolver | None:
    owner = getattr(app, "__self__", app)  # Flask: app.wsgi_app is a bound method
    if hasattr(owner, "url_map"):
        return flask_route(owner)
    if type(owner).__name__ == "WSGIHandler" and type(owner).__module__.startswith("django."):
        return django_route
    return None


class SLOMiddleware:
    """
    Records each WSGI request against its SLO; guards admit requests before the app runs.

    Takes the arguments of :class:`slakit.asgi.SLOMiddleware`; ``route`` and ``tenant``
    are functions of the WSGI environ, and a ``tenant`` string names a header.
    """

    def __init__(
        self,
        app: WSGIApp,
        slo: SLO | None = None,
        *,
        routes: Mapping[str, SLO] | None = None,
        guards: Guards = (),
        route: RouteResolver | None = None,
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
        resolver = route if route is not None else _detect(app)
        self._resolve: RouteResolver = resolver if resolver is not None else _no_route
        self._priority = _header(priority_header)
        self._tenant = _header(tenant) if isinstance(tenant, str) else tenant
        self._skip = frozenset(skip_paths)
        self._templates: dict[tuple[str, str], str] = {}
        self._now = self.routing.registry.clock.monotonic_ns

    def template(self, environ: Environ) -> str:
        """Return the route template of a request (``__unmatched__`` when none matches)."""
        key = (environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", ""))
        found = self._templates.get(key)
        if found is None:
            found = self._resolve(environ) or UNMATCHED
            if len(self._templates) >= TEMPLATE_CACHE:
                self._templates.clear()
            self._templates[key] = found
        return found

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Run one WSGI call."""
        if environ.get("PATH_INFO") in self._skip:
            return self.app(environ, start_response)
        method = method_label(environ.get("REQUEST_METHOD", "GET"))
        try:
            template = self.template(environ)
            target = self.routing.target(method, template)
        except Exception as err:  # a fault of ours: serve the request unrecorded
            internal_error("wsgi route", err)
            return self.app(environ, start_response)
        if target is None:
            return self.app(environ, start_response)
        tenant = self._tenant
        if tenant is None:
            key = target.series.key((template, method))
        else:
            who = tenant(environ) or ""
            key = target.series.key((template, method, who))
            if self.routing.tenants:
                target = self.routing.for_tenant(target, who)
        t0 = self._now()
        tickets = None
        if target.guards:
            try:
                tickets = target.admit(self._priority(environ))
            except RejectedError as exc:
                target.record(t0, t0, REJECTED)
                target.series.add(key, REJECTED)
                start_response(
                    "503 Service Unavailable",
                    [
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("Retry-After", retry_after(exc)),
                    ],
                )
                return [b"Service Unavailable\n"]
        status = [0]

        def start(
            status_line: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            status[0] = int(status_line[:3])
            return start_response(status_line, headers, exc_info)

        try:
            body = self.app(environ, start)
        except BaseException:
            target.end(key, t0, self._now(), BAD, tickets)
            raise
        return _Body(body, self, target, key, t0, status, tickets)


class _Body:
    """The app's response iterable, timed until the server closes it."""

    __slots__ = ("_body", "_done", "_key", "_mw", "_status", "_t0", "_target", "_tickets", "_whole")

    def __init__(
        self,
        body: Iterable[bytes],
        mw: SLOMiddleware,
        target: Target,
        key: tuple[str, ...],
        t0: int,
        status: list[int],
        tickets: list[tuple[Admission, object]] | None,
    ) -> None:
        self._body = body
        self._mw = mw
        self._target = target
        self._key = key
        self._t0 = t0
        self._status = status
        self._tickets = tickets
        self._done = False
        self._whole = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except GeneratorExit:  # the server stopped pulling: the client went away
            raise
        except BaseException:
            self._end(BAD)
            raise
        self._whole = True

    def _end(self, outcome: int) -> None:
        if not self._done:
            self._done = True
            self._target.end(self._key, self._t0, self._mw._now(), outcome, self._tickets)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            status = self._status[0]
            if not self._whole:
                self._end(DISCONNECTED)
            else:
                self._end(self._mw.routing.outcome(status) if status else BAD)


def _no_route(environ: Environ) -> str | None:  # noqa: ARG001 - a RouteResolver
    return None


def _header(name: str) -> TenantResolver:
    """Return a function reading request header ``name`` from the environ."""
    key = "HTTP_" + name.upper().replace("-", "_")

    def read(environ: Environ) -> str | None:
        value = environ.get(key)
        return None if value is None else str(value)

    return read
