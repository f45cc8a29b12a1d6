"""
Memory stays flat under unbounded raw paths: one template, a million distinct paths.

The fake clock moves 1 ms per request and the store is consolidated every simulated
second, as the engine's tick would. Memory is read with tracemalloc after a warm-up
that fills the caches; growth over the rest must stay under 1 MiB with no upward trend.
"""

from __future__ import annotations

import asyncio
import gc
import io
import tracemalloc
from typing import TYPE_CHECKING, Any

import flask
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import slakit
from slakit.asgi import SLOMiddleware
from slakit.wsgi import SLOMiddleware as WSGIMiddleware
from tests.django_app import application as django_application

if TYPE_CHECKING:
    from collections.abc import Callable

    from slakit.testing import FakeClock

pytestmark = pytest.mark.heavy

SLO = slakit.SLO(name="items", objectives=[slakit.Availability(target=0.999)], window="30d")
MIB = 2**20


def flat(
    send_one: Callable[[int], None],
    total: int,
    clock: FakeClock,
    registry: slakit.Registry,
    checkpoints: int = 10,
) -> list[int]:
    """Send ``total`` requests; return traced memory at each checkpoint after warm-up."""
    store = registry.store(SLO.name)
    warm = total // 10
    step = (total - warm) // checkpoints
    samples = []
    tracemalloc.start()
    try:
        for i in range(total):
            send_one(i)
            clock.advance(0.001)
            if i % 1_000 == 999:
                store.consolidate()
            if i >= warm and (i - warm) % step == step - 1:
                gc.collect()
                samples.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    return samples


def assert_flat(samples: list[int]) -> None:
    growth = samples[-1] - samples[0]
    assert growth <= MIB, f"grew {growth / MIB:.2f} MiB: {samples}"
    n = len(samples)  # least-squares slope, in bytes per checkpoint
    mean_x, mean_y = (n - 1) / 2, sum(samples) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(samples)) / sum(
        (x - mean_x) ** 2 for x in range(n)
    )
    assert slope * n <= MIB / 4, f"upward trend {slope:.0f} B per checkpoint: {samples}"


def test_asgi_a_million_distinct_paths(clock: FakeClock, registry: slakit.Registry) -> None:
    async def item(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/items/{id}", item)])
    app.add_middleware(SLOMiddleware, slo=SLO, registry=registry)
    app.build_middleware_stack()
    sent = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        sent += message["type"] == "http.response.start"

    loop = asyncio.new_event_loop()

    def one(i: int) -> None:
        path = f"/items/{i}"
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "app": app}
        scope |= {"headers": [], "query_string": b"", "raw_path": path.encode()}
        coro = app(scope, receive, send)
        try:
            coro.send(None)  # nothing awaits for real: the whole request runs in one step
        except StopIteration:
            return
        loop.run_until_complete(coro)

    total = 1_000_000
    try:
        samples = flat(one, total, clock, registry)
    finally:
        loop.close()
    assert sent == total
    assert_flat(samples)
    table = registry.series_of(SLO.name)
    assert table is not None
    assert table.counts() == {("/items/{id}", "GET"): (total, 0, 0, 0, 0)}


def flask_items() -> tuple[Any, str]:
    app = flask.Flask("memory")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return "ok"

    return app.wsgi_app, "/items/<int:item_id>"


def django_orders() -> tuple[Any, str]:
    return django_application(), "/orders/<int:pk>/"


@pytest.mark.parametrize("make", [flask_items, django_orders], ids=["flask", "django"])
def test_wsgi_a_hundred_thousand_distinct_paths(
    make: Callable[[], tuple[Any, str]], clock: FakeClock, registry: slakit.Registry
) -> None:
    inner, template = make()
    wsgi = WSGIMiddleware(inner, slo=SLO, registry=registry)
    base = {"REQUEST_METHOD": "GET", "SERVER_NAME": "localhost", "SERVER_PORT": "80"}
    base |= {"wsgi.url_scheme": "http", "SCRIPT_NAME": "", "wsgi.input": io.BytesIO()}
    prefix = template.split("<")[0]

    def one(i: int) -> None:
        path = f"{prefix}{i}/" if template.endswith("/") else f"{prefix}{i}"
        body = wsgi({**base, "PATH_INFO": path}, lambda s, h, e=None: None)
        for _ in body:
            pass
        body.close()  # type: ignore[attr-defined]

    total = 100_000
    assert_flat(flat(one, total, clock, registry))
    table = registry.series_of(SLO.name)
    assert table is not None
    assert table.counts() == {(template, "GET"): (total, 0, 0, 0, 0)}
