"""ASGI middleware on real Starlette and FastAPI apps, through their test clients."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

import slakit
from slakit.asgi import SLOMiddleware
from slakit.export.prometheus import register
from slakit.remediate import CircuitBreaker, Criticality, LoadShedder
from slakit.series import OVERFLOW

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.websockets import WebSocket

    from slakit.testing import FakeClock

API = slakit.SLO(
    name="api",
    objectives=[slakit.Availability(target=0.99), slakit.Latency(threshold=0.25, target=0.99)],
    window="1h",
)
CHECKOUT = slakit.SLO(name="checkout", objectives=[slakit.Availability(target=0.999)], window="1h")

# outcome columns of Series.counts()
GOOD, BAD, IGNORED, REJECTED, DISCONNECTED = range(5)


class Boom(Exception):
    pass


def lifetime(registry: slakit.Registry, name: str) -> slakit.ring.Counts:
    store = registry.store(name)
    store.consolidate()
    return store.read([(0.0, 1.0)]).lifetime


def starlette_app(clock: FakeClock, started: list[str]) -> Starlette:
    async def order(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"order {request.path_params['id']}")

    async def checkout(request: Request) -> PlainTextResponse:
        return PlainTextResponse("paid")

    async def fail(request: Request) -> PlainTextResponse:
        return PlainTextResponse("down", status_code=503)

    async def boom(request: Request) -> PlainTextResponse:
        raise Boom

    async def missing(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no such order", status_code=404)

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                clock.advance(0.1)  # the body takes 0.3 s in all: slow for a 0.25 s objective
                yield b"chunk\n"

        return StreamingResponse(chunks())

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())
        await ws.close()

    async def startup() -> None:
        started.append("up")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await startup()
        yield
        started.append("down")

    return Starlette(
        routes=[
            Route("/orders/{id}", order),
            Route("/checkout", checkout, methods=["POST"]),
            Route("/fail", fail),
            Route("/boom", boom),
            Route("/missing", missing),
            Route("/stream", stream),
            WebSocketRoute("/ws", echo),
            Mount("/v1", routes=[Route("/items/{id}", order)]),
        ],
        lifespan=lifespan,
    )


@pytest.fixture
def started() -> list[str]:
    return []


@pytest.fixture
def app(clock: FakeClock, registry: slakit.Registry, started: list[str]) -> Starlette:
    app = starlette_app(clock, started)
    app.add_middleware(
        SLOMiddleware,
        slo=API,
        routes={"POST /checkout": CHECKOUT},
        registry=registry,
        skip_paths=["/metrics"],
    )
    return app


def test_each_route_counts_towards_its_slo_under_its_template(
    app: Starlette, registry: slakit.Registry
) -> None:
    client = TestClient(app)
    for path in ("/orders/1", "/orders/2", "/v1/items/9", "/nowhere/at/all"):
        client.get(path)
    assert client.post("/checkout").text == "paid"
    assert client.put("/checkout").status_code == 405  # the template, the API SLO

    api = registry.series_of("api")
    assert api is not None
    assert api.counts() == {
        ("/orders/{id}", "GET"): (2, 0, 0, 0, 0),
        ("/v1/items/{id}", "GET"): (1, 0, 0, 0, 0),
        ("__unmatched__", "GET"): (1, 0, 0, 0, 0),
        ("/checkout", "PUT"): (1, 0, 0, 0, 0),
    }
    assert lifetime(registry, "api").total == 5
    assert lifetime(registry, "checkout").total == 1


def test_server_errors_are_bad_and_client_errors_are_not(
    app: Starlette, registry: slakit.Registry
) -> None:
    client = TestClient(app)
    assert client.get("/fail").status_code == 503
    assert client.get("/missing").status_code == 404
    life = lifetime(registry, "api")
    assert (life.total, life.bad) == (2, 1)


def test_client_errors_can_be_configured_bad(clock: FakeClock, registry: slakit.Registry) -> None:
    app = starlette_app(clock, [])
    app.add_middleware(
        SLOMiddleware, slo=API, registry=registry, bad_status=slakit.http.server_and_client_errors
    )
    TestClient(app).get("/missing")
    assert lifetime(registry, "api").bad == 1


def test_an_exception_is_bad_and_re_raised_unchanged(
    app: Starlette, registry: slakit.Registry
) -> None:
    with pytest.raises(Boom):
        TestClient(app).get("/boom")
    assert TestClient(app, raise_server_exceptions=False).get("/boom").status_code == 500
    life = lifetime(registry, "api")
    assert (life.total, life.bad) == (2, 2)


def test_a_streaming_response_is_timed_to_its_last_chunk(
    app: Starlette, registry: slakit.Registry
) -> None:
    assert TestClient(app).get("/stream").text == "chunk\n" * 3
    life = lifetime(registry, "api")
    assert (life.total, life.bad, life.slow) == (1, 0, (1,))  # 0.3 s > 0.25 s


def test_websocket_and_lifespan_pass_through_untouched(
    app: Starlette, registry: slakit.Registry, started: list[str]
) -> None:
    with TestClient(app) as client:
        assert started == ["up"]
        with client.websocket_connect("/ws") as ws:
            ws.send_text("hello")
            assert ws.receive_text() == "hello"
    assert started == ["up", "down"]
    assert lifetime(registry, "api").total == 0


def test_skipped_paths_are_not_recorded(app: Starlette, registry: slakit.Registry) -> None:
    TestClient(app).get("/metrics")
    assert lifetime(registry, "api").total == 0


async def call(app: Any, path: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drive an ASGI app directly: ``messages`` are what ``receive`` returns, in order."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
        "app": app,
    }
    sent: list[dict[str, Any]] = []
    pending = list(messages)
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if pending:
            message = pending.pop(0)
            if message["type"] == "http.disconnect":
                gone.set()
            return message
        await asyncio.sleep(3600)  # a client that stays and says nothing
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_a_client_that_leaves_mid_stream_is_disconnected_not_bad(
    clock: FakeClock, registry: slakit.Registry
) -> None:
    async def endless(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                clock.advance(0.2)
                yield b"tick\n"
                await asyncio.sleep(0)

        return StreamingResponse(chunks())

    app = Starlette(routes=[Route("/feed", endless)])
    app.add_middleware(SLOMiddleware, slo=API, registry=registry)
    sent = asyncio.run(
        call(app, "/feed", [{"type": "http.request", "body": b""}, {"type": "http.disconnect"}])
    )
    assert sent[0]["status"] == 200
    life = lifetime(registry, "api")
    assert (life.total, life.bad, life.disconnected) == (0, 0, 1)
    assert life.timed == 1  # its wait is observed for latency
    assert sum(registry.store("api").read([(0.0, 1.0)]).lifetime_histogram.values()) == 1


def test_a_send_to_a_gone_client_counts_as_disconnected(registry: slakit.Registry) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    async def broken_send(message: Any) -> None:
        if message["type"] == "http.response.body":
            raise ConnectionResetError

    mw = SLOMiddleware(app, slo=API, registry=registry, route=lambda scope: "/x")
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    with pytest.raises(ConnectionResetError):
        asyncio.run(mw(scope, receive, broken_send))
    life = lifetime(registry, "api")
    assert (life.total, life.disconnected) == (0, 1)


def test_an_open_breaker_answers_503_before_the_app_runs(
    clock: FakeClock, registry: slakit.Registry
) -> None:
    breaker = CircuitBreaker(name="payments", wait_in_open=30, clock=clock)
    ran: list[str] = []

    async def pay(request: Request) -> PlainTextResponse:
        ran.append("pay")
        return PlainTextResponse("paid")

    app = Starlette(routes=[Route("/pay", pay)])
    app.add_middleware(SLOMiddleware, slo=API, registry=registry, guards={"api": [breaker]})
    client = TestClient(app)
    assert client.get("/pay").status_code == 200
    breaker.trip()
    refused = client.get("/pay")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "30"  # the breaker's wait in open state
    breaker.force_open()  # no end in sight: the client is asked to come back in 1 s
    assert client.get("/pay").headers["retry-after"] == "1"
    assert ran == ["pay"]
    life = lifetime(registry, "api")
    assert (life.total, life.rejected) == (1, 2)


def test_the_breaker_learns_from_the_requests_it_admits(
    clock: FakeClock, registry: slakit.Registry
) -> None:
    breaker = CircuitBreaker(name="b", minimum_calls=4, failure_rate=0.5, clock=clock)

    async def fail(request: Request) -> PlainTextResponse:
        return PlainTextResponse("down", status_code=500)

    app = Starlette(routes=[Route("/fail", fail)])
    app.add_middleware(SLOMiddleware, slo=API, registry=registry, guards=[breaker])
    client = TestClient(app)
    codes = [client.get("/fail").status_code for _ in range(6)]
    assert codes == [500, 500, 500, 500, 503, 503]
    assert breaker.state is slakit.remediate.State.OPEN


def test_the_shedder_reads_the_priority_header(clock: FakeClock, registry: slakit.Registry) -> None:
    shedder = LoadShedder(name="front", clock=clock)
    shedder.set_fraction(0.5)  # half the traffic: all of it sheddable, the lowest class

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(SLOMiddleware, slo=API, registry=registry, guards=[shedder])
    client = TestClient(app)
    codes = []
    for i in range(40):
        level = "sheddable" if i % 2 else "critical"
        codes.append((level, client.get("/", headers={"x-priority": level}).status_code))
    assert {c for level, c in codes if level == "critical"} == {200}
    assert 503 in {c for level, c in codes if level == "sheddable"}
    assert shedder.shed_counts[Criticality.CRITICAL] == 0


def test_tenants_beyond_the_cap_share_one_overflow_series(registry: slakit.Registry) -> None:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(SLOMiddleware, slo=API, registry=registry, tenant="x-tenant", max_series=3)
    client = TestClient(app)
    for i in range(10):
        client.get("/", headers={"x-tenant": f"customer-{i}"})
    table = registry.series_of("api")
    assert table is not None
    counts = table.counts()
    assert len(counts) == 4
    assert counts[OVERFLOW, OVERFLOW, OVERFLOW] == (7, 0, 0, 0, 0)
    assert sum(c[GOOD] for c in counts.values()) == 10 == lifetime(registry, "api").total


def test_route_keys_are_checked(registry: slakit.Registry) -> None:
    async def noop(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(ValueError, match="'FETCH' is not an HTTP method"):
        SLOMiddleware(noop, routes={"FETCH /x": API}, registry=registry)
    with pytest.raises(ValueError, match="must start with '/'"):
        SLOMiddleware(noop, routes={"GET x": API}, registry=registry)
    with pytest.raises(ValueError, match="give an SLO"):
        SLOMiddleware(noop, registry=registry)


def test_fastapi_routers_and_http_exceptions(registry: slakit.Registry) -> None:
    app = FastAPI()
    router = APIRouter(prefix="/users")

    @router.get("/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        if user_id == 0:
            raise HTTPException(status_code=404)
        if user_id < 0:
            raise HTTPException(status_code=502)
        return {"id": user_id}

    @app.post("/checkout")
    async def checkout() -> dict[str, str]:
        return {"status": "paid"}

    app.include_router(router)
    app.add_middleware(
        SLOMiddleware, slo=API, routes={"POST /checkout": CHECKOUT}, registry=registry
    )
    client = TestClient(app)
    assert client.get("/users/7").json() == {"id": 7}
    assert client.get("/users/0").status_code == 404
    assert client.get("/users/-1").status_code == 502
    assert client.get("/users/x").status_code == 422  # validation: the caller's fault
    assert client.post("/checkout").status_code == 200
    table = registry.series_of("api")
    assert table is not None
    assert table.counts() == {("/users/{user_id}", "GET"): (3, 1, 0, 0, 0)}
    assert lifetime(registry, "checkout").total == 1


def test_fastapi_endpoints_can_use_the_decorator_instead(registry: slakit.Registry) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    @slakit.track(CHECKOUT, registry=registry)
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    assert TestClient(app).get("/items/3").json() == {"id": 3}  # the signature survives
    assert lifetime(registry, "checkout").total == 1


def test_the_exporter_shows_the_series(app: Starlette, registry: slakit.Registry) -> None:
    client = TestClient(app)
    client.get("/orders/1")
    client.get("/fail")
    engine = slakit.Engine(registry)
    engine.evaluate_now()
    prom = CollectorRegistry()
    register(engine, prom)
    text = generate_latest(prom).decode()
    assert (
        'slakit_series_requests_total{method="GET",outcome="good",route="/orders/{id}",'
        'slo="api",tenant=""} 1.0'
    ) in text
    assert 'outcome="bad",route="/fail"' in text
