"""A customer's own SLO: its requests, windows, budget and SLA report, apart from the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flask
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client as WerkzeugClient

import slakit
from slakit import asgi, wsgi
from slakit.history import History
from slakit.remediate import CircuitBreaker
from slakit.report import build
from slakit.sla import Contract, Credit

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.requests import Request

    from slakit.testing import FakeClock

API = slakit.SLO("api", objectives=[slakit.Availability("99%")], window="1h")
ACME = slakit.SLO("api-acme", objectives=[slakit.Availability("99%")], window="1h")
GLOBEX = slakit.SLO("api-globex", objectives=[slakit.Availability("99%")], window="1h")


class Client(WerkzeugClient):
    """werkzeug's client, reading each body to the end and closing it as a server does."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["buffered"] = True
        return super().open(*args, **kwargs)


def lifetime(registry: slakit.Registry, name: str) -> tuple[int, int, int]:
    store = registry.store(name)
    store.consolidate()
    c = store.read([(0.0, 1.0)]).lifetime
    return c.total, c.bad, c.rejected


def starlette_app(**middleware: object) -> Starlette:
    async def order(request: Request) -> PlainTextResponse:
        fail = request.query_params.get("fail") == "1"
        return PlainTextResponse("", status_code=500 if fail else 200)

    app = Starlette(routes=[Route("/orders/{id}", order)])
    app.add_middleware(asgi.SLOMiddleware, **middleware)  # type: ignore[arg-type]
    return app


def flask_app(**middleware: object) -> flask.Flask:
    app = flask.Flask("shop")

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> tuple[str, int]:
        return "", 500 if flask.request.args.get("fail") == "1" else 200

    app.wsgi_app = wsgi.SLOMiddleware(app.wsgi_app, **middleware)  # type: ignore[method-assign, arg-type]
    return app


# (tenant header, fail) for 10 ACME requests (2 fail), 10 Globex ones (all fail), 5 anonymous
TRAFFIC = [("acme", i < 2) for i in range(10)] + [("globex", True)] * 10 + [(None, False)] * 5


def test_asgi_records_a_listed_tenant_in_its_own_slo_too(registry: slakit.Registry) -> None:
    app = starlette_app(slo=API, registry=registry, tenant="x-tenant", tenants={"acme": ACME})
    with TestClient(app) as client:
        for who, fail in TRAFFIC:
            headers = {"x-tenant": who} if who else {}
            client.get(f"/orders/{len(who or '')}?fail={int(fail)}", headers=headers)
    assert lifetime(registry, "api") == (25, 12, 0)
    assert lifetime(registry, "api-acme") == (10, 2, 0)
    assert "api-globex" not in {s.name for s in registry.slos()}


def test_wsgi_records_a_listed_tenant_in_its_own_slo_too(registry: slakit.Registry) -> None:
    app = flask_app(
        slo=API, registry=registry, tenant="X-Tenant", tenants={"acme": ACME, "globex": GLOBEX}
    )
    client = Client(app)
    for who, fail in TRAFFIC:
        client.get(f"/orders/7?fail={int(fail)}", headers={"X-Tenant": who} if who else {})
    assert lifetime(registry, "api") == (25, 12, 0)
    assert lifetime(registry, "api-acme") == (10, 2, 0)
    assert lifetime(registry, "api-globex") == (10, 10, 0)


def test_a_refused_request_counts_for_its_tenant_too(registry: slakit.Registry) -> None:
    breaker = CircuitBreaker("api", window=10)
    app = starlette_app(
        slo=API, registry=registry, tenant="x-tenant", tenants={"acme": ACME}, guards=[breaker]
    )
    breaker.trip()
    with TestClient(app) as client:
        assert client.get("/orders/1", headers={"x-tenant": "acme"}).status_code == 503
    assert lifetime(registry, "api-acme") == (0, 0, 1)  # refused: apart from the SLI


def test_tenant_slos_need_a_tenant_resolver(registry: slakit.Registry) -> None:
    with pytest.raises(ValueError, match="tenant resolver"):
        asgi.SLOMiddleware(starlette_app(slo=API), slo=API, tenants={"acme": ACME})


def test_a_customer_contract_is_reported_on_that_customer_s_requests(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Globex's outage costs ACME nothing: the contract reads ACME's SLO."""
    clock.jump(3600 - clock.time() % 3600)
    registry = slakit.Registry(clock)
    engine = slakit.Engine(registry)
    history = History(tmp_path / "h.db", flush_interval=3600)
    history.attach(engine)
    app = flask_app(slo=API, registry=registry, tenant="X-Tenant", tenants={"acme": ACME})
    client = Client(app)
    start = clock.time()
    for second in range(600):  # ten minutes; Globex fails throughout, ACME one request in 200
        acme_fails = second % 200 == 0
        client.get(f"/orders/1?fail={int(acme_fails)}", headers={"X-Tenant": "acme"})
        client.get("/orders/1?fail=1", headers={"X-Tenant": "globex"})
        clock.advance(1)
        engine.evaluate_now()
    clock.advance(60)
    engine.evaluate_now()  # close the last minute
    history.flush()
    contract = Contract(
        name="acme-gold",
        customer="ACME",
        slo="api-acme",
        weights={"availability": 1},
        credits=[Credit(below=0.999, percent=10), Credit(below=0.99, percent=25)],
        monthly_fee=1_000,
    )
    report = build(history, [ACME], start, clock.time(), contract=contract)
    (availability,) = report.objectives
    assert (availability.events, availability.bad) == (600, 3)  # seconds 0, 200 and 400
    assert availability.actual == pytest.approx(0.995)
    assert report.credit_percent == 10  # below 99.9 %, not below 99 %
    assert report.owed == pytest.approx(100)
    shop = build(history, [API], start, clock.time())
    assert (shop.objectives[0].events, shop.objectives[0].bad) == (1_200, 603)
    history.close()
    engine.stop()
