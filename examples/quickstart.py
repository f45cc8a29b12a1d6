"""
slakit in one file: declare an SLO, decorate a handler, inject a fault, watch the page.

    python examples/quickstart.py

Time is simulated (a FakeClock) so a month of traffic runs in a few seconds; the last
hours go call by call through the real decorator, store, evaluator and engine.
"""

from __future__ import annotations

import contextlib
import random

import slakit
from slakit.events import StatusChanged, ViolationOpened, ViolationResolved
from slakit.testing import FakeClock

clock = FakeClock()
registry = slakit.Registry(clock)  # production code uses the default registry and clock

checkout = slakit.SLO(
    "checkout",
    objectives=[
        slakit.Availability("99.9%"),  # 99.9 % of calls succeed
        slakit.Latency("250ms", "99%"),  # 99 % of calls finish within 250 ms
    ],
    window="30d",
)

FAULT = {"on": False}
rng = random.Random(42)


@slakit.track(checkout, registry=registry)
def place_order(order_id: int) -> dict[str, object]:
    """Pretend to place an order: ~40 ms, and failing while the fault is on."""
    clock.advance(rng.uniform(0.02, 0.06))  # the work takes simulated time
    if FAULT["on"]:
        raise ConnectionError("payments is down")
    return {"id": order_id, "status": "placed"}


def main() -> None:
    engine = slakit.Engine(registry)
    events: list[object] = []
    engine.subscribe(events.append)  # hooks run off the request path

    def second(calls: int = 20) -> None:
        for i in range(calls):
            with contextlib.suppress(ConnectionError):
                place_order(i)
        clock.advance(max(0.0, 1 - calls * 0.04))
        engine.evaluate_now()

    print("30 days of history (replayed per minute), then an hour of live traffic ...")
    store = registry.store(checkout.name)
    start = clock.time()
    for minute in range(30 * 1_440 - 60):
        store.record_many(start + minute * 60, durations=[(0.04, 1_200)])
    clock.advance((30 * 1_440 - 60) * 60)
    for _ in range(3_600):
        second()
    show(engine, "before the fault")

    print("\npayments goes down for 90 seconds ...")
    FAULT["on"] = True
    for _ in range(90):
        second()
    FAULT["on"] = False
    show(engine, "after the fault")

    print("\nrecovery: ten more minutes ...")
    for _ in range(600):
        second()
    show(engine, "after recovery")
    engine.stop()

    print("\nevents:")
    for e in events:
        if isinstance(e, ViolationOpened | ViolationResolved):
            v = e.violation
            print(f"  {type(e).__name__:<18} {v.objective}/{v.rule} ({v.severity}): {v.detail}")
        elif isinstance(e, StatusChanged):
            print(f"  {type(e).__name__:<18} {e.slo}: {e.old} -> {e.new}")


def show(engine: slakit.Engine, when: str) -> None:
    snap = engine.snapshot(checkout)
    assert snap is not None
    avail = snap.objective("availability")
    assert avail.budget is not None
    print(f"  [{when}] status={snap.status}  events(30d)={snap.events}  bad={snap.bad}")
    print(
        f"  availability {avail.actual:.5f}  budget left {avail.budget.remaining:.1%} "
        f"({avail.budget.remaining_amount:.0f} events)  burn 5m={avail.burn_rate('5m'):.1f} "
        f"1h={avail.burn_rate('1h'):.1f}  p99={snap.percentiles[0.99]:.3f}s"
    )
    for v in engine.violations():
        print(
            f"  open violation {v.id}: {v.objective}/{v.rule} {v.severity} since {v.opened_at:.0f}"
        )


if __name__ == "__main__":
    main()
