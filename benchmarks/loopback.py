"""
Requests per second through a real server on loopback, with and without middleware.

    python benchmarks/loopback.py [--quick] [--passes N] [--seconds S]

uvicorn serves one Starlette app, pinned to core 0; wrk (Debian package) loads it from
core 1 with one thread and 32 connections on 127.0.0.1. Variants: bare, slakit's
``SLOMiddleware`` (with its engine ticking), starlette-exporter and
prometheus-fastapi-instrumentator. Passes are interleaved; each variant reports the
median rate and its spread (min–max), and its share of the bare rate. The bare rate
varies ~12 % between runs here, so this is a benchmark figure, not a test gate.

Run as ``python benchmarks/loopback.py``; the server side is this same file imported
by uvicorn as ``loopback:app`` with ``SLAKIT_BENCH_VARIANT`` set.

Last line: RESULT loopback slakit_share=<x> best_peer_share=<y> bare_rps=<z>
"""

# ruff: noqa: PLC0415 - each server process imports only the variant it measures
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ("bare", "slakit", "starlette-exporter", "prometheus-fastapi-instrumentator")


def build(variant: str) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def order(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/orders/{id}", order)])
    if variant == "slakit":
        import slakit
        from slakit.asgi import SLOMiddleware

        slo = slakit.SLO(
            "orders",
            objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", "99%")],
        )
        app.add_middleware(SLOMiddleware, slo=slo)
        slakit.Engine().start()
    elif variant == "starlette-exporter":
        from starlette_exporter import PrometheusMiddleware

        app.add_middleware(PrometheusMiddleware, app_name="bench", group_paths=True)
    elif variant == "prometheus-fastapi-instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app)
    return app


if "SLAKIT_BENCH_VARIANT" in os.environ:  # imported by uvicorn: the server side
    app = build(os.environ["SLAKIT_BENCH_VARIANT"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError("the server did not start")


def one_pass(variant: str, seconds: int) -> float:
    port = free_port()
    env = {**os.environ, "SLAKIT_BENCH_VARIANT": variant}
    server = subprocess.Popen(
        [
            "taskset", "-c", "0", sys.executable, "-m", "uvicorn", "loopback:app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--app-dir", str(Path(__file__).parent),
        ],
        env=env,
    )  # fmt: skip
    try:
        wait_for(port, server)
        url = f"http://127.0.0.1:{port}/orders/1"
        subprocess.run(["wrk", "-t1", "-c32", "-d1s", url], capture_output=True, check=True)
        out = subprocess.run(
            ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        server.terminate()
        server.wait(30)
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"no rate in wrk's output:\n{out}")
    if re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"errors under load:\n{out}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one pass of 3 s per variant")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    passes, seconds = (1, 3) if args.quick else (args.passes, args.seconds)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian packages wrk and util-linux)")
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(passes):
        for variant in VARIANTS:
            rates[variant].append(one_pass(variant, seconds))
    bare = statistics.median(rates["bare"])
    print(f"uvicorn on core 0, wrk -t1 -c32 -d{seconds}s on core 1, {passes} pass(es)")
    shares = {}
    for variant, rs in rates.items():
        med = statistics.median(rs)
        shares[variant] = med / bare
        print(
            f"  {variant:36s} {med:9.0f} req/s  (min {min(rs):.0f}, max {max(rs):.0f})"
            f"  {med / bare:5.2f} of bare"
        )
    best_peer = max(shares["starlette-exporter"], shares["prometheus-fastapi-instrumentator"])
    print(
        f"RESULT loopback slakit_share={shares['slakit']:.3f} "
        f"best_peer_share={best_peer:.3f} bare_rps={bare:.0f}"
    )


if __name__ == "__main__":
    main()
