"""
Type-checked by mypy in CI (never run): the public API keeps users' types.

The ``type: ignore`` lines are the proof: if ``track`` lost a signature, the call would
type-check and mypy (strict: warn_unused_ignores) would fail on an unused ignore.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import slakit
import slakit.asgi
import slakit.remediate
import slakit.typing
import slakit.web
import slakit.wsgi

checkout = slakit.SLO("checkout", objectives=[slakit.Availability("99.9%")])
tracker = slakit.track(checkout)


@tracker
def add(a: int, b: int = 1) -> int:
    return a + b


@tracker
async def fetch(url: str) -> bytes:
    return url.encode()


@tracker
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@tracker
async def stream(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


total: int = add(1, b=2)
add("one")  # type: ignore[arg-type]
numbers(n="3")  # type: ignore[arg-type]
gen: Iterator[int] = numbers(3)
agen: AsyncIterator[int] = stream(3)


async def use() -> None:
    data: bytes = await fetch("x")
    assert data


with tracker.time() as timing:
    timing.fail()

engine = slakit.Engine(interval=1.0)
snapshot: slakit.Snapshot | None = engine.snapshot("checkout")
left: float = checkout.budget_remaining()
config = slakit.loads("slos: []")
slos: tuple[slakit.SLO, ...] = config.slos


async def asgi_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    return None


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return [b""]


breaker = slakit.remediate.CircuitBreaker(name="payments")
guard: slakit.typing.Admission = breaker  # breakers, shedders and limiters admit requests
asgi = slakit.asgi.SLOMiddleware(asgi_app, checkout, guards={"checkout": [breaker]})
wsgi = slakit.wsgi.SLOMiddleware(wsgi_app, routes={"POST /pay": checkout}, tenant="x-tenant")
page = slakit.web.StatusPage(engine, breakers=[breaker])
