"""
Soak: a service with slakit at full speed for a while, with reloads and a fault phase.

    python benchmarks/soak.py [--minutes 10] [--quick]

An ASGI app behind ``SLOMiddleware`` is called in-process as fast as one thread can
(the other core runs the engine, hook workers and the history writer): a breaker guard
bound to the SLO, a webhook notifier to a closed port (every delivery fails), a SQLite
history with retention. Ten seconds of real traffic (some of it failing) give the shape
of one minute; the rings are pre-filled with 30 days of minutes like it, so every
histogram slot holds about what the run will write into it, and memory is sampled every
few seconds after a warm-up minute: what is measured is the steady state. Every minute
the configuration is reloaded (the target alternates); in the middle third of the run
30 % of requests fail (the SLO pages, the breaker opens).

Reported: requests served and the rate, RSS growth (the least-squares slope of the
samples) scaled to 10 minutes, the change in threads and open file descriptors from the
first sample to the last (and their range), the non-daemon threads left after stop,
and the age of the oldest measurement left in the history.

Last line: RESULT soak rss_mib_per_10min=<x> threads_delta=<y> fds_delta=<z> rate=<r>
oldest_row_days=<d> (the history starts with a month of rows; retention is one day)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import slakit
from slakit import sketch
from slakit.asgi import SLOMiddleware
from slakit.history import History
from slakit.remediate import CircuitBreaker, HttpSettings, Policy, WebhookNotifier


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` samples."""
    n = len(samples)
    mx = sum(x for x, _ in samples) / n
    my = sum(y for _, y in samples) / n
    var = sum((x - mx) ** 2 for x, _ in samples)
    return sum((x - mx) * (y - my) for x, y in samples) / var if var else 0.0


def minute_like(store: slakit.ring.Store, seconds: float) -> tuple[list[tuple[float, int]], int]:
    """Scale the last ``seconds`` of a store's histogram to one minute: (durations, bad)."""
    now = time.time()
    hist = store.histogram(now - seconds, now)
    scale = 60 / seconds
    durations: dict[float, int] = {}
    bad = 0
    for key, count in hist.items():
        n = max(1, round(count * scale))
        value = sketch.bucket_value(key >> 4)  # a key is bucket << 4 | flags
        durations[value] = durations.get(value, 0) + n
        bad += n if key & 0b111 == slakit.ring.BAD else 0
    return list(durations.items()), bad


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slo(target: str) -> slakit.SLO:
    return slakit.SLO(
        "soak",
        objectives=[slakit.Availability(target), slakit.Latency("250ms", "99%")],
        window="30d",
    )


class App:
    def __init__(self) -> None:
        self.failing = False
        self.n = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.n += 1
        status = 500 if self.failing and self.n % 10 < 3 else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def send(message: Any) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="2 minutes")
    args = parser.parse_args()
    seconds = 120.0 if args.quick else args.minutes * 60
    workdir = Path(tempfile.mkdtemp(prefix="slakit-soak-"))

    registry = slakit.Registry()
    store = registry.register(slo("99.9%"))
    engine = slakit.Engine(registry)
    breaker = CircuitBreaker("backend", slo="soak", wait_in_open="20s")
    webhook = WebhookNotifier(
        "ops", f"http://127.0.0.1:{closed_port()}/", settings=HttpSettings(retries=0, timeout=1)
    )
    engine.enforce("soak", Policy(critical=[breaker, webhook]))
    history = History(workdir / "soak.db", retention=1)
    month_ago = int(time.time() // 60) - 30 * 1_440
    for o in ("availability", "latency-250ms"):  # a month of rows the retention must prune
        history.backfill("soak", o, ((month_ago + m, 600, 0) for m in range(30 * 1_440)))
    history.attach(engine)
    app = App()
    mw = SLOMiddleware(
        app, slo=registry.slo("soak"), guards=[breaker], route=lambda s: "/x", registry=registry
    )
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}

    def one() -> None:
        coro = mw(dict(scope), receive, send)
        try:
            coro.send(None)
        except StopIteration:
            return
        asyncio.run(coro)  # pragma: no cover - the app never awaits

    calibrate = time.monotonic()
    while (elapsed := time.monotonic() - calibrate) < 10:
        app.failing = elapsed >= 7  # some failures too, as the fault phase will write
        for _ in range(1_000):
            one()
    app.failing = False
    durations, bad = minute_like(store, 10)
    now = time.time()
    for minute in range(30 * 1_440):  # pre-fill a month of minutes like the real one
        store.record_many(now - 30 * 86_400 + minute * 60, bad=bad, durations=durations)
    engine.start()

    began = time.monotonic()
    warm = min(60.0, seconds / 4)
    samples: list[tuple[float, float, int, int]] = []  # elapsed, RSS, threads, fds
    next_sample = began + warm
    served = 0
    next_reload = began + 60
    target = "99.9%"
    while (elapsed := time.monotonic() - began) < seconds:
        for _ in range(1_000):
            one()
        served += 1_000
        app.failing = seconds / 3 <= elapsed < 2 * seconds / 3
        if time.monotonic() >= next_reload:
            target = "99.5%" if target == "99.9%" else "99.9%"
            engine.reload([slo(target)])
            next_reload += 60
        if time.monotonic() >= next_sample:  # every 5 s: the samples stay few
            next_sample += 5
            samples.append((elapsed, rss_mib(), threading.active_count(), fds()))
    engine.stop()
    history.close()
    left = [
        t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()
    ]
    first, last = samples[0], samples[-1]
    growth = slope([(t, rss) for t, rss, _, _ in samples]) * 600
    threads = [n for _, _, n, _ in samples]
    files = [n for _, _, _, n in samples]
    db_mib = sum(p.stat().st_size for p in workdir.glob("soak.db*")) / 2**20
    with contextlib.closing(sqlite3.connect(workdir / "soak.db")) as db:
        (oldest,) = db.execute("SELECT min(minute) FROM measurements").fetchone()
    oldest_days = (time.time() - oldest * 60) / 86_400
    print(f"served {served:,} requests in {seconds:.0f} s: {served / seconds:,.0f}/s")
    print(f"RSS {first[1]:.1f} -> {last[1]:.1f} MiB after warm-up ({len(samples)} samples)")
    print(f"database {db_mib:.1f} MiB, oldest measurement {oldest_days:.2f} days old (retention 1)")
    print(
        f"threads {min(threads)}..{max(threads)}, fds {min(files)}..{max(files)} after warm-up; "
        f"non-daemon threads left after stop: {left or 'none'}"
    )
    print(
        f"engine tick errors {engine.tick_errors}, restarts {engine.restarts}, violations "
        f"{len(engine.violations(include_resolved=True))}"
    )
    print(
        f"RESULT soak rss_mib_per_10min={growth:.2f} threads_delta={last[2] - first[2]} "
        f"fds_delta={last[3] - first[3]} rate={served / seconds:.0f} "
        f"oldest_row_days={oldest_days:.2f}"
    )


if __name__ == "__main__":
    main()
