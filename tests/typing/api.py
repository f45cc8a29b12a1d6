"""
Type-checked by mypy in CI (never run): the public API keeps users' types.

The ``type: ignore`` lines are the proof: if ``track`` lost a signature, the call would
type-check and mypy (strict: warn_unused_ignores) would fail on an unused ignore.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import slakit

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
