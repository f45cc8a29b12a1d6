"""WSGI middleware on real Flask and Django apps, through werkzeug's WSGI test client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flask
import pytest
from werkzeug.test import Client as WerkzeugClient

import slakit
from slakit.remediate import CircuitBreaker
from slakit.wsgi import SLOMiddleware, django_route
from tests.django_app import application as django_application

if TYPE_CHECKING:
    from collections.abc import Iterator

    from slakit.testing import FakeClock

API = slakit.SLO(
    name="api",
    objectives=[slakit.Availability(target=0.99), slakit.Latency(threshold=0.25, target=0.99)],
    window="1h",
)
CHECKOUT = slakit.SLO(name="checkout", objectives=[slakit.Availability(target=0.999)], window="1h")


class Boom(Exception):
    pass


class Client(WerkzeugClient):
    """werkzeug's client, reading each body to the end and closing it as a server does."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["buffered"] = True
        return super().open(*args, **kwargs)


def lifetime(registry: slakit.Registry, name: str) -> slakit.ring.Counts:
    store = registry.store(name)
    store.consolidate()
    return store.read([(0.0, 1.0)]).lifetime


def flask_app(clock: FakeClock) -> flask.Flask:
    app = flask.Flask("shop")

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        return f"order {order_id}"

    @app.post("/checkout")
    def checkout() -> str:
        return "paid"

    @app.get("/fail")
    def fail() -> tuple[str, int]:
        return "down", 503

    @app.get("/boom")
    def boom() -> str:
        raise Boom

    @app.get("/stream")
    def stream() -> flask.Response:
        def chunks() -> Iterator[str]:
            for _ in range(3):
                clock.advance(0.1)
                yield "chunk\n"

        return flask.Response(chunks())

    return app


@pytest.fixture
def app(clock: FakeClock, registry: slakit.Registry) -> flask.Flask:
    app = flask_app(clock)
    app.wsgi_app = SLOMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, slo=API, routes={"POST /checkout": CHECKOUT}, registry=registry
    )
    return app


def test_flask_routes_count_under_their_url_rule(
    app: flask.Flask, registry: slakit.Registry
) -> None:
    client = Client(app)
    for p in ("/orders/1", "/orders/2", "/nowhere"):
        client.get(p)
    assert client.post("/checkout").text == "paid"
    assert client.put("/checkout").status_code == 405
    table = registry.series_of("api")
    assert table is not None
    assert table.counts() == {
        ("/orders/<int:order_id>", "GET"): (2, 0, 0, 0, 0),
        ("__unmatched__", "GET"): (1, 0, 0, 0, 0),
        ("/checkout", "PUT"): (1, 0, 0, 0, 0),
    }
    assert lifetime(registry, "checkout").total == 1


def test_flask_errors_and_exceptions(app: flask.Flask, registry: slakit.Registry) -> None:
    client = Client(app)
    assert client.get("/fail").status_code == 503
    assert client.get("/boom").status_code == 500  # Flask turns it into a 500
    life = lifetime(registry, "api")
    assert (life.total, life.bad) == (2, 2)


def test_an_exception_that_escapes_the_app_is_bad_and_re_raised(
    clock: FakeClock, registry: slakit.Registry
) -> None:
    app = flask_app(clock)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    app.wsgi_app = SLOMiddleware(app.wsgi_app, slo=API, registry=registry)  # type: ignore[method-assign]
    with pytest.raises(Boom):
        Client(app).get("/boom")
    assert lifetime(registry, "api").bad == 1


def test_a_streamed_body_is_timed_until_close(app: flask.Flask, registry: slakit.Registry) -> None:
    assert Client(app).get("/stream").text == "chunk\n" * 3
    life = lifetime(registry, "api")
    assert (life.total, life.slow) == (1, (1,))


def test_a_body_closed_before_the_end_is_disconnected(
    app: flask.Flask, registry: slakit.Registry
) -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/stream",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
    }
    body = app.wsgi_app(environ, lambda status, headers, exc_info=None: lambda data: None)
    chunks = iter(body)
    assert next(chunks) == b"chunk\n"
    body.close()  # type: ignore[attr-defined] - the server gives up: the client went away
    life = lifetime(registry, "api")
    assert (life.total, life.disconnected) == (0, 1)


def test_a_refused_request_is_answered_503_without_running_the_app(
    clock: FakeClock, registry: slakit.Registry
) -> None:
    breaker = CircuitBreaker(name="b", wait_in_open=5, clock=clock)
    app = flask_app(clock)
    app.wsgi_app = SLOMiddleware(app.wsgi_app, slo=API, registry=registry, guards=[breaker])  # type: ignore[method-assign]
    breaker.trip()
    response = Client(app).get("/orders/1")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert lifetime(registry, "api").rejected == 1


def test_tenant_header_under_the_cap(clock: FakeClock, registry: slakit.Registry) -> None:
    app = flask_app(clock)
    app.wsgi_app = SLOMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, slo=API, registry=registry, tenant="X-Tenant", max_series=2
    )
    client = Client(app)
    for tenant in ("a", "b", "c", "a"):
        client.get("/orders/1", headers={"X-Tenant": tenant})
    table = registry.series_of("api")
    assert table is not None
    assert table.counts() == {
        ("/orders/<int:order_id>", "GET", "a"): (2, 0, 0, 0, 0),
        ("/orders/<int:order_id>", "GET", "b"): (1, 0, 0, 0, 0),
        ("__overflow__", "__overflow__", "__overflow__"): (1, 0, 0, 0, 0),
    }


# -- Django ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_app() -> Any:
    return django_application()


def test_django_routes_count_under_their_pattern(
    django_app: Any, registry: slakit.Registry
) -> None:
    mw = SLOMiddleware(django_app, slo=API, registry=registry)
    client = Client(mw)
    assert client.get("/orders/5/").text == "order 5"
    client.get("/orders/6/")
    assert client.get("/fail/").status_code == 502
    assert client.get("/boom/").status_code == 500  # Django's handler answers it
    assert client.get("/stream/").text == "ab"
    assert client.get("/nope/").status_code == 404
    table = registry.series_of("api")
    assert table is not None
    assert table.counts() == {
        ("/orders/<int:pk>/", "GET"): (2, 0, 0, 0, 0),
        ("/fail/", "GET"): (0, 1, 0, 0, 0),
        ("/boom/", "GET"): (0, 1, 0, 0, 0),
        ("/stream/", "GET"): (1, 0, 0, 0, 0),
        ("__unmatched__", "GET"): (1, 0, 0, 0, 0),
    }
    assert django_route({"PATH_INFO": "/orders/1/"}) == "/orders/<int:pk>/"
