"""
A process for the crash tests to kill with SIGKILL.

    python -m tests.crash_child service DB   # records traffic, prints each snapshot taken
    python -m tests.crash_child ledger DB    # writes violations, prints each committed id
    python -m tests.crash_child writer DB    # writes 10,000 audit rows, prints its errors
"""

from __future__ import annotations

import json
import sys
import uuid

import slakit
from slakit.events import Violation, ViolationOpened
from slakit.history import History
from slakit.testing import FakeClock
from tests.test_history import CHECKOUT, START


def service(db: str) -> None:
    clock = FakeClock(START)
    registry = slakit.Registry(clock)
    store = registry.register(CHECKOUT)
    engine = slakit.Engine(registry)
    history = History(db, flush_interval=3600, snapshot_interval=60)
    history.attach(engine)
    second = 0
    while True:
        for i in range(10):
            failing = 1_800 <= second < 1_900 and i < 5  # a 100 s outage after 30 min
            store.record(0.3 if i == 0 else 0.05, ok=not failing)
        clock.advance(1)
        second += 1
        before = history._last_snapshot
        snap = engine.evaluate_now()["checkout"]
        if history._last_snapshot != before:  # a snapshot was taken at this tick
            history.flush()
            line = {
                "t": clock.time(),
                "budget": {o.key: o.budget.remaining for o in snap.objectives if o.budget},
                "open": sorted(f"{v.objective}/{v.rule}" for v in engine.violations()),
            }
            print(json.dumps(line), flush=True)


def ledger(db: str) -> None:
    history = History(db, flush_interval=3600)
    while True:
        ids = [uuid.uuid4().hex[:12] for _ in range(5)]
        for ident in ids:
            v = Violation(
                id=ident,
                slo="checkout",
                objective="availability",
                rule="page-1h-5m",
                severity=slakit.Severity.CRITICAL,
                opened_at=0.0,
                actual=20.0,
                limit=14.4,
                detail="",
            )
            history.on_event(ViolationOpened(0.0, v))
        history.flush()
        print(" ".join(ids), flush=True)


def writer(db: str) -> None:
    """10,000 audit rows through the batched writer, while the test holds a write lock."""
    history = History(db, flush_interval=0.05)
    history._start()
    for i in range(10_000):
        history.audit("load", str(i))
    history.close()
    print(json.dumps({"write_errors": history.write_errors}), flush=True)


if __name__ == "__main__":
    {"service": service, "ledger": ledger, "writer": writer}[sys.argv[1]](sys.argv[2])
