"""
A FastAPI service with slakit: per-route SLOs, a load shedder guard, /metrics and /slo.

    pip install slakit fastapi uvicorn
    python examples/fastapi_app.py            # serves on http://127.0.0.1:8000
    python examples/fastapi_app.py --selftest # drives it in-process and prints /slo.json

Routes: ``GET /orders/{order_id}`` counts towards the ``orders`` SLO, ``POST /checkout``
towards ``checkout``, which a load shedder guards: when ``checkout`` pages, low-priority
requests (header ``x-priority: sheddable``) are answered 503 + Retry-After first.
``/metrics`` is Prometheus, ``/slo`` the status page and ``/slo.json`` its data.
"""

from __future__ import annotations

import argparse
import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException
from prometheus_client import make_asgi_app

import slakit
from slakit.asgi import SLOMiddleware
from slakit.export import prometheus
from slakit.remediate import LoadShedder
from slakit.web import StatusPage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

orders = slakit.SLO(
    "orders",
    objectives=[slakit.Availability("99.5%"), slakit.Latency("300ms", "99%")],
    window="30d",
)
checkout = slakit.SLO(
    "checkout",
    objectives=[slakit.Availability("99.9%"), slakit.Latency("500ms", "99%")],
    window="30d",
)

engine = slakit.Engine()  # the process-wide registry the middleware records into
shedder = LoadShedder(name="checkout", slo="checkout")  # raises its level when checkout pages
engine.subscribe(shedder)
prometheus.register(engine, shedders=[shedder])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:  # noqa: ARG001 - the lifespan signature
    engine.start()
    yield
    engine.stop()


app = FastAPI(lifespan=lifespan)
app.add_middleware(
    SLOMiddleware,
    routes={"GET /orders/{order_id}": orders, "POST /checkout": checkout},
    guards={"checkout": [shedder]},
)
page = StatusPage(engine, shedders=[shedder], title="Shop: service levels")
app.add_route("/slo", page, include_in_schema=False)
app.add_route("/slo.json", page, include_in_schema=False)
app.mount("/metrics", make_asgi_app())


@app.get("/orders/{order_id}")
async def get_order(order_id: int) -> dict[str, object]:
    if order_id == 0:
        raise HTTPException(status_code=404, detail="no such order")  # the caller's fault
    return {"id": order_id, "status": "placed"}


@app.post("/checkout")
async def place_order() -> dict[str, str]:
    return {"status": "paid"}


def selftest() -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415 - only for the self-test

    with TestClient(app) as client:
        for i in range(50):
            assert client.get(f"/orders/{i}").status_code == (404 if i == 0 else 200)
            assert client.post("/checkout").status_code == 200
        engine.evaluate_now()
        data = client.get("/slo.json").json()
        metrics = client.get("/metrics/").text
    by_name = {s["name"]: s for s in data["slos"]}
    assert by_name["orders"]["events"] == 50
    assert by_name["checkout"]["events"] == 50
    assert 'slakit_requests_total{slo="orders"} 50.0' in metrics
    print(
        json.dumps({n: {"status": s["status"], "events": s["events"]} for n, s in by_name.items()})
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--selftest", action="store_true", help="run in-process and exit")
    parser.add_argument("--port", type=int, default=8000)
    if parser.parse_args().selftest:
        selftest()
    else:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port)
