"""
Per-request overhead of slakit's middleware, side by side with the peers.

    python benchmarks/middleware.py [--quick]

ASGI: one Starlette app (a route ``/orders/{id}`` answering a short text) driven
in-process through the ASGI interface: no server, no socket, so what is measured is
the middleware. Candidates: the bare app; slakit's ``SLOMiddleware``; starlette-exporter's
``PrometheusMiddleware``; prometheus-fastapi-instrumentator; OpenTelemetry's ASGI
middleware with an SDK configured, metrics only and with tracing (spans to an
in-memory exporter). WSGI: a Flask app called directly, bare, with slakit's WSGI
middleware and with OpenTelemetry's WSGI middleware. Overhead = time per request with
the middleware minus the bare app's, median of interleaved rounds. Request paths cycle
through 1,000 order ids, so route matching is not served by one cached path alone.

Last line: RESULT middleware vs_best_peer=<x> slakit_us=<y>
(``vs_best_peer``: slakit's ASGI overhead over the smallest peer overhead.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import tracemalloc
from typing import Any

import flask
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OTelASGI
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OTelWSGI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette_exporter import PrometheusMiddleware

import slakit
from slakit.asgi import SLOMiddleware
from slakit.series import DEFAULT_CAP, Series
from slakit.wsgi import SLOMiddleware as WSGIMiddleware

SLO = slakit.SLO(
    name="orders",
    objectives=[slakit.Availability(target=0.999), slakit.Latency(threshold=0.25, target=0.99)],
    window="30d",
)
IDS = 1_000


async def order(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def starlette() -> Starlette:
    return Starlette(routes=[Route("/orders/{id}", order)])


def asgi_candidates() -> dict[str, Any]:
    bare = starlette()
    ours = starlette()
    ours.add_middleware(SLOMiddleware, slo=SLO)
    exporter = starlette()
    exporter.add_middleware(
        PrometheusMiddleware, app_name="bench", group_paths=True, filter_unhandled_paths=True
    )
    instrumentator = starlette()
    Instrumentator(registry=CollectorRegistry()).instrument(instrumentator)
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    otel_metrics = OTelASGI(
        starlette(), tracer_provider=NoOpTracerProvider(), meter_provider=meters
    )
    traces = TracerProvider()
    traces.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    otel_traces = OTelASGI(starlette(), tracer_provider=traces, meter_provider=meters)
    return {
        "bare Starlette": bare,
        "slakit SLOMiddleware": ours,
        "starlette-exporter": exporter,
        "prometheus-fastapi-instrumentator": instrumentator,
        "OTel ASGI (metrics)": otel_metrics,
        "OTel ASGI (metrics+traces)": otel_traces,
    }


def scopes(app: Any) -> list[dict[str, Any]]:
    return [
        {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/orders/{i}",
            "raw_path": f"/orders/{i}".encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "app": app,
        }
        for i in range(IDS)
    ]


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    return None


async def asgi_us(app: Any, requests: int) -> float:
    """Microseconds per request (a fresh scope per request: apps write into it)."""
    base = scopes(app)
    t0 = time.perf_counter()
    for i in range(requests):
        await app(dict(base[i % IDS]), receive, send)
    return (time.perf_counter() - t0) / requests * 1e6


def flask_app() -> flask.Flask:
    app = flask.Flask("bench")

    @app.get("/orders/<int:order_id>")
    def get_order(order_id: int) -> str:
        return "ok"

    return app


def wsgi_candidates() -> dict[str, Any]:
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return {
        "bare Flask": flask_app().wsgi_app,
        "slakit WSGI SLOMiddleware": WSGIMiddleware(flask_app().wsgi_app, slo=SLO),
        "OTel WSGI (metrics)": OTelWSGI(
            flask_app().wsgi_app, tracer_provider=NoOpTracerProvider(), meter_provider=meters
        ),
    }


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def wsgi_us(app: Any, requests: int) -> float:
    environs = [
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": f"/orders/{i}",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": None,
            "wsgi.errors": None,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for i in range(IDS)
    ]
    t0 = time.perf_counter()
    for i in range(requests):
        body = app(dict(environs[i % IDS]), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - t0) / requests * 1e6


def rounds(
    candidates: dict[str, Any], measure: Any, requests: int, repeat: int
) -> dict[str, float]:
    """Median per-request time of each candidate over interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, app in candidates.items():
            times[name].append(measure(app, requests))
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(title: str, medians: dict[str, float], bare: str) -> dict[str, float]:
    base = medians[bare]
    print(f"\n{title} (µs per request; overhead over {bare} at {base:.1f} µs)")
    overhead = {}
    for name, us in medians.items():
        if name == bare:
            continue
        overhead[name] = us - base
        print(f"  {name:38s} {us:8.1f}   +{us - base:7.2f}")
    return overhead


def series_memory() -> float:
    """Bytes per labelled series, measured with tracemalloc at the default cap."""
    tracemalloc.start()
    table = Series(("route", "method", "tenant"), DEFAULT_CAP)
    before = tracemalloc.get_traced_memory()[0]
    for i in range(DEFAULT_CAP):
        key = table.key(("/orders/{id}", "GET", f"customer-{i:05d}"))
        for outcome in range(5):
            table.add(key, outcome)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / DEFAULT_CAP


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds (under a minute)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    requests, repeat = (2_000, 5) if args.quick else (10_000, 9)

    asgi = asgi_candidates()
    for app in asgi.values():  # warm up: caches, first-use registration
        asyncio.run(asgi_us(app, 500))

    def measure_asgi(app: Any, n: int) -> float:
        return asyncio.run(asgi_us(app, n))

    over = table("ASGI, in-process", rounds(asgi, measure_asgi, requests, repeat), "bare Starlette")
    wsgi = wsgi_candidates()
    for app in wsgi.values():
        wsgi_us(app, 500)
    wover = table("WSGI, in-process", rounds(wsgi, wsgi_us, requests, repeat), "bare Flask")

    per_series = series_memory()
    print(
        f"\nlabelled series: {per_series:.0f} B each, "
        f"{per_series * DEFAULT_CAP / 2**20:.2f} MiB per SLO at the cap of {DEFAULT_CAP}"
    )
    ours = over.pop("slakit SLOMiddleware")
    best_name, best = min(over.items(), key=lambda kv: kv[1])
    print(f"\nbest peer: {best_name} (+{best:.2f} µs)")
    wsgi_ratio = wover["slakit WSGI SLOMiddleware"] / wover["OTel WSGI (metrics)"]
    print(
        f"RESULT middleware vs_best_peer={ours / best:.3f} slakit_us={ours:.2f} "
        f"wsgi_vs_otel={wsgi_ratio:.3f} wsgi_slakit_us={wover['slakit WSGI SLOMiddleware']:.2f}"
    )


if __name__ == "__main__":
    main()
