"""
The example service of the fleet test: run by uvicorn with several workers.

Each worker records with the middleware, ticks its engine every 0.25 s and publishes its
raw series into ``PROMETHEUS_MULTIPROC_DIR``; ``/metrics`` sums every worker's files.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import slakit
from slakit.asgi import SLOMiddleware
from slakit.export.multiprocess import publish

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

API = slakit.SLO(
    "api",
    objectives=[slakit.Availability("99%"), slakit.Latency("250ms", "99%")],
    window="1d",
)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    engine = slakit.Engine(interval=0.25)
    publish(engine)
    engine.start()
    yield
    engine.evaluate_now()  # publish the last counts before the worker exits
    engine.stop()


async def ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def fail(request: Any) -> PlainTextResponse:
    await asyncio.sleep(0.3)  # slow and failed: both objectives burn
    return PlainTextResponse("injected fault", status_code=500)


async def metrics(scope: Any, receive: Any, send: Any) -> None:
    """Every worker's files, summed by prometheus-client (built per scrape: a test app)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    await make_asgi_app(registry)(scope, receive, send)


app = Starlette(
    routes=[Route("/ok", ok), Route("/fail", fail), Mount("/metrics", metrics)],
    lifespan=lifespan,
)
app.add_middleware(SLOMiddleware, slo=API, skip_paths=["/metrics", "/metrics/"])
