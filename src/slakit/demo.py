"""
``slakit demo``: the whole loop on embedded defaults, in about a minute.

A small ASGI shop (pure ASGI: nothing to install) runs in-process behind
:class:`~slakit.asgi.SLOMiddleware`. Synthetic traffic calls it directly on a simulated
clock, so 25 minutes of service pass in ``--duration`` seconds: healthy traffic, then
the payments dependency fails, the ``checkout`` SLO pages, its policy opens the
payments breaker and raises the load shedder's level (sheddable browsing is answered
503 + Retry-After first), payments recovers, the breaker's half-open probes close it,
and the page resolves. Everything goes to a SQLite history, from which the SLA report
is written at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import slakit
from slakit.asgi import SLOMiddleware
from slakit.events import Event, ViolationOpened, ViolationResolved
from slakit.history import History
from slakit.remediate import CircuitBreaker, CircuitBreakerListener, LoadShedder, Policy, State
from slakit.report import build, to_html, to_json, to_markdown
from slakit.sla import Contract, Credit
from slakit.spec import Severity
from slakit.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

HEALTHY, OUTAGE, RECOVERY = 300, 420, 780
"""Simulated seconds of each phase."""
RATE = 20
"""Requests per simulated second: a quarter sheddable browsing, the rest checkouts."""

CHECKOUT = slakit.SLO(
    "checkout",
    description="Orders placed",
    objectives=[slakit.Availability("99.9%"), slakit.Latency("300ms", "99%")],
    window="30d",
)
BROWSE = slakit.SLO("browse", objectives=[slakit.Availability("99%")], window="30d")
CONTRACT = Contract(
    name="demo",
    customer="Example Corp",
    slo="checkout",
    weights={"availability": 0.7, "latency-300ms": 0.3},
    credits=[Credit(below=0.999, percent=10), Credit(below=0.99, percent=25)],
    monthly_fee=10_000,
)


class Shop:
    """The demo service: ``/checkout`` calls payments, ``/browse`` does not."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.payments_down = False
        self.rng = random.Random(7)  # noqa: S311 - simulated latency, not secrets

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # noqa: ARG002 - ASGI
        """Answer one request."""
        status, body = 200, b"ok"
        work = self.rng.uniform(0.01, 0.07)  # 40 ms on average: RATE of them fit a second
        if scope["path"] == "/checkout" and self.payments_down:
            status, body = 502, b"payments refused the connection"
        self.clock.advance(work)  # the work takes simulated time
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Output:
    """Live lines for a person, or JSON lines for a program (``--format json``)."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream = stream
        self.json = fmt == "json"
        self.events: list[str] = []

    def event(self, kind: str, t: float, text: str) -> None:
        """Print one step of the story."""
        self.events.append(kind)
        if self.json:
            self.stream.write(json.dumps({"event": kind, "t": t, "text": text}) + "\n")
        else:
            self.stream.write(f"  {_clock(t)}  >> {text}\n")
        self.stream.flush()

    def status(self, t: float, phase: str, figures: dict[str, Any]) -> None:
        """Print the figures of the moment."""
        if self.json:
            self.stream.write(json.dumps({"status": phase, "t": t, **figures}) + "\n")
        else:
            f = figures
            self.stream.write(
                f"  {_clock(t)}  {phase:<10} SLI(5m) {f['sli_5m'] * 100:7.3f} %  "
                f"burn(5m) {f['burn_5m']:6.1f}x  budget {f['budget'] * 100:6.2f} %  "
                f"breaker {f['breaker']:<9} shed {f['shed'] * 100:4.0f} %  "
                f"503s {f['rejected']}\n"
            )
        self.stream.flush()


def _clock(t: float) -> str:
    return f"T+{int(t) // 60:02d}:{int(t) % 60:02d}"


class _BreakerEvents(CircuitBreakerListener):
    def __init__(self, report: Callable[[str, str], None]) -> None:
        self.report = report

    def state_change(self, breaker: CircuitBreaker, old: State, new: State) -> None:
        """Tell the story of the breaker: it opens, and closes once payments answer."""
        if new is State.OPEN and old is State.CLOSED:
            self.report("breaker-open", f"breaker {breaker.name!r} opened: checkouts fail fast")
        elif new is State.CLOSED:
            self.report("recovery", f"breaker {breaker.name!r} closed: payments answer again")


class Demo:
    """One run of the demo: the service, its engine and history, and the story so far."""

    def __init__(self, out: Output, db_path: Path) -> None:
        self.out = out
        self.db_path = db_path
        month = 30 * 86_400
        self.clock = clock = FakeClock(float(int(time.time() // 60 * 60) - month))
        self.registry = registry = slakit.Registry(clock)
        self.engine = slakit.Engine(registry)
        self.history = History(db_path, flush_interval=0.5, snapshot_interval=60)
        first = int(clock.time() // 60)
        for slo in (CHECKOUT, BROWSE):  # a healthy month before the demo starts
            store = registry.register(slo)
            for minute in range(30 * 1_440):
                store.record_many((first + minute) * 60.0, durations=[(0.04, RATE * 60)])
            for o in slo.objectives:
                rows = ((first + m, RATE * 60, 0) for m in range(30 * 1_440))
                self.history.backfill(slo.name, o.key, rows)
        clock.advance(month)
        self.start = clock.time()
        self.payments = CircuitBreaker(
            "payments",
            wait_in_open="60s",
            half_open_calls=5,
            minimum_calls=10**9,  # opened by the SLO's page, not by its own window
            clock=clock,
            listeners=(_BreakerEvents(self.report),),
        )
        self.shedder = LoadShedder(
            "front",
            page_step=0.6,
            recovery="3m",
            clock=clock,
            rng=random.Random(3),  # noqa: S311 - sampling, not secrets
        )
        self.engine.enforce(CHECKOUT, Policy(critical=[self.payments, self.shedder]))
        self.history.attach(self.engine, restore=False)
        self.history.record_definitions(contracts=[CONTRACT])
        self.engine.listen(self._on_event)
        self.shop = Shop(clock)
        self.app = SLOMiddleware(
            self.shop,
            routes={"/checkout": CHECKOUT, "/browse": BROWSE},
            guards={"checkout": [self.shedder, self.payments], "browse": [self.shedder]},
            route=lambda scope: scope["path"],
            registry=registry,
        )
        self.rejected = 0
        self.paged: str | None = None

    def at(self) -> float:
        """Return the simulated seconds since the demo began."""
        return self.clock.time() - self.start

    def report(self, kind: str, text: str) -> None:
        """Tell one step of the story."""
        self.out.event(kind, self.at(), text)

    def _on_event(self, event: Event) -> None:
        v = getattr(event, "violation", None)
        if v is None or v.severity is not Severity.CRITICAL:
            return
        if isinstance(event, ViolationOpened) and self.paged is None:
            self.paged = v.id
            self.report("page", f"PAGE: {v.slo}/{v.objective} {v.rule} burning {v.actual:.0f}x")
        elif isinstance(event, ViolationResolved) and v.id == self.paged:
            self.report(
                "resolved", f"resolved: {v.slo}/{v.objective} {v.rule} after {v.duration:.0f} s"
            )

    async def _receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] == 503:
            self.rejected += 1
            if "shed" not in self.out.events and self.shedder.rejection_probability() > 0:
                self.report("shed", "load shed: sheddable browsing answered 503 + Retry-After")

    def second(self, n: int) -> None:
        """One simulated second: the script's fault, RATE requests, one engine tick."""
        if n == HEALTHY:
            self.shop.payments_down = True
            self.report("outage", "fault injected: payments refuses connections (checkout 502)")
        elif n == HEALTHY + OUTAGE:
            self.shop.payments_down = False
            self.report("repair", "payments is back")
        for i in range(RATE):
            browse = i % 4 == 0
            scope = {
                "type": "http",
                "method": "GET" if browse else "POST",
                "path": "/browse" if browse else "/checkout",
                "headers": [(b"x-priority", b"sheddable" if browse else b"critical")],
            }
            coro = self.app(scope, self._receive, self._send)
            with contextlib.suppress(StopIteration):
                coro.send(None)  # the shop never awaits for real: one step runs a request
        self.clock.advance(max(0.0, 1 - self.clock.time() % 1))
        self.engine.evaluate_now()
        self.engine.drain()
        if n % 30 == 29:
            self.out.status(self.at(), _phase(n), self.figures())

    def figures(self) -> dict[str, Any]:
        """Return the numbers of the status line."""
        snap = self.engine.snapshot("checkout")
        assert snap is not None
        availability = snap.objective("availability")
        window = next(w for w in availability.windows if w.window == "5m")
        return {
            "sli_5m": window.sli,
            "burn_5m": window.burn_rate or 0.0,
            "budget": availability.budget.remaining if availability.budget else 1.0,
            "breaker": self.payments.state.value,
            "shed": self.shedder.rejection_probability(),
            "rejected": self.rejected,
        }

    def finish(self, report_file: Path) -> None:
        """Stop, then write the SLA report from the history (Markdown, HTML, JSON)."""
        self.engine.stop()
        self.history.close()
        reading = History(self.db_path)
        end = self.clock.time()
        month = end - 30 * 86_400  # the SLO window: the month before, and the demo
        result = build(
            reading, [CHECKOUT, BROWSE], month, end, service="demo shop", contract=CONTRACT
        )
        report_file.write_text(to_markdown(result), encoding="utf-8")
        report_file.with_suffix(".html").write_text(to_html(result), encoding="utf-8")
        report_file.with_suffix(".json").write_text(to_json(result), encoding="utf-8")
        reading.close()


def run(
    duration: float = 60.0,
    db: str | None = None,
    report_path: str | None = None,
    fmt: str = "text",
    stream: TextIO = sys.stdout,
) -> int:
    """Run the demo; ``duration`` real seconds for the whole story. Returns an exit code."""
    out = Output(stream, fmt)
    log = logging.getLogger("slakit")
    level = log.level
    log.setLevel(logging.ERROR)  # the demo tells the story itself
    try:
        return _run(out, duration, db, report_path)
    finally:
        log.setLevel(level)


def _run(out: Output, duration: float, db: str | None, report_path: str | None) -> int:
    stream = out.stream
    workdir = Path(tempfile.mkdtemp(prefix="slakit-demo-"))
    db_path = Path(db) if db else workdir / "history.db"
    report_file = Path(report_path) if report_path else workdir / "report.md"
    demo = Demo(out, db_path)
    total = HEALTHY + OUTAGE + RECOVERY
    if not out.json:
        stream.write(
            f"slakit demo: {total // 60} simulated minutes in ~{duration:.0f} s; "
            "checkout promises 99.9 % availability and 99 % under 300 ms.\n"
        )
    pace = threading.Event()
    began = time.monotonic()
    for n in range(total):
        demo.second(n)
        lag = began + (n + 1) * duration / total - time.monotonic()
        if lag > 0:
            pace.wait(lag)  # a live show, not a test: keep to the announced duration
    demo.finish(report_file)
    if out.json:
        stream.write(json.dumps({"report": str(report_file), "db": str(db_path)}) + "\n")
    else:
        stream.write(f"\nSLA report: {report_file} (and .html, .json)\nHistory: {db_path}\n")
    return 0


def _phase(second: int) -> str:
    if second < HEALTHY:
        return "healthy"
    return "outage" if second < HEALTHY + OUTAGE else "recovery"
