"""
Enforcement in one file: a page opens a breaker, sheds sheddable load, asks for
capacity and escalates, then everything relaxes after recovery.

    python examples/enforcement.py

Time is simulated (a FakeClock): three days of history replay in a second, then the
outage runs second by second through the real engine and hooks.
"""

from __future__ import annotations

import logging
import random
import sys
import threading

import slakit
from slakit.remediate import (
    CircuitBreaker,
    CircuitOpenError,
    Criticality,
    Escalation,
    Level,
    LoadShedder,
    LogNotifier,
    Policy,
    RequestShedError,
    Scaler,
    State,
)
from slakit.testing import FakeClock

logging.basicConfig(level=logging.WARNING, format="    log: %(message).90s", stream=sys.stdout)

clock = FakeClock()
registry = slakit.Registry(clock)
engine = slakit.Engine(registry)
checkout = slakit.SLO("checkout", objectives=[slakit.Availability("99.9%")])

payments = CircuitBreaker("payments", wait_in_open="30s", half_open_calls=3, clock=clock)
shedder = LoadShedder("api", page_step=0.5, recovery="2m", clock=clock, rng=random.Random(1))
scaler = Scaler(
    "shop", callback=lambda r: print(f"    scale request: +{r.delta} ({r.slo})"), clock=clock
)
oncall = Escalation([Level([LogNotifier("chat")]), Level([LogNotifier("pager")], after="2m")])
engine.enforce(checkout, Policy(critical=[payments, shedder, scaler, oncall]))

tracker = slakit.track(checkout, registry=registry)
DOWN = {"payments": False}


@tracker
def place_order(criticality: Criticality) -> str:
    with shedder.guard(criticality):  # shed work never runs; outcomes feed the shedder
        return payments.call(charge)


def charge() -> str:
    if DOWN["payments"]:
        raise ConnectionError("payments is down")
    return "charged"


def second(report: dict[str, int]) -> None:
    for i in range(20):
        c = Criticality.SHEDDABLE if i % 4 == 0 else Criticality.CRITICAL
        try:
            place_order(c)
            report["ok"] += 1
        except RequestShedError:
            report["shed"] += 1
        except CircuitOpenError:
            report["fail fast"] += 1
        except ConnectionError:
            report["error"] += 1
    clock.advance(1)
    engine.evaluate_now()
    settle()


def settle() -> None:
    """Let the hook workers finish what this tick gave them (a demo, not a test)."""
    pause = threading.Event()
    for _ in range(200):
        if all(w._queue.empty() and w._busy is None for w in engine._enforcer.workers()):
            return
        pause.wait(0.005)


def phase(title: str, seconds: int) -> None:
    report = {"ok": 0, "error": 0, "fail fast": 0, "shed": 0}
    for _ in range(seconds):
        second(report)
    snap = engine.snapshot(checkout)
    assert snap is not None
    print(
        f"{title:<28} {report}  status={snap.status}  breaker={payments.state}  "
        f"shed p={shedder.rejection_probability():.2f}"
    )


def main() -> None:
    store = registry.store(checkout.name)
    start = clock.time()
    for m in range(3 * 1_440):  # three clean days
        store.record_many(start + m * 60, total=1_200)
    clock.advance(3 * 86_400)
    engine.evaluate_now()

    phase("healthy", 30)
    DOWN["payments"] = True
    phase("payments down", 60)
    DOWN["payments"] = False
    phase("recovering", 60)
    phase("after the wait", 600)
    assert payments.state is State.CLOSED
    engine.stop()

    print("\nviolations and what was done about them:")
    for v in engine.violations(include_resolved=True):
        end = "open" if v.resolved_at is None else f"resolved after {v.duration:.0f}s"
        print(f"  {v.objective}/{v.rule} ({v.severity}) {end}")
        for a in v.actions:
            print(f"    +{a.time - v.opened_at:5.0f}s  {a.hook}: {a.result}")


if __name__ == "__main__":
    main()
