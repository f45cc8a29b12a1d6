"""
Workers of one service on one database, with and without preload (fork after attach).

    python -m tests.workers_child preload DB PHASE   # a parent attaches, then forks 2 workers
    python -m tests.workers_child worker DB PHASE N  # one worker started on its own

PHASE ``run``: each worker records its own traffic (N events, N // 10 bad), snapshots
and prints ``{"slot", "events", "bad"}``. PHASE ``restart``: each worker records
nothing, restores, and prints the same figures from what it restored.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import slakit
from slakit.history import History
from slakit.testing import FakeClock

START = 1_700_000_000.0
SLO = slakit.SLO("api", objectives=[slakit.Availability("99%")], window="1h")


def service(db: str, phase: str) -> tuple[slakit.Engine, History, FakeClock]:
    clock = FakeClock(START if phase == "run" else START + 2)
    registry = slakit.Registry(clock)
    registry.register(SLO)
    engine = slakit.Engine(registry)
    history = History(db, flush_interval=3600, snapshot_interval=0)
    history.attach(engine)
    return engine, history, clock


def together(history: History, holders: int) -> None:
    """Wait until ``holders`` processes have taken ring slots: they run side by side."""
    Path(f"{history.path}.up.{os.getpid()}").touch()
    deadline = time.monotonic() + 30  # a watchdog
    while len(list(history.path.parent.glob(f"{history.path.name}.up.*"))) < holders:
        if time.monotonic() > deadline:
            raise SystemExit("the other workers never came up")
        time.sleep(0.01)


def work(
    engine: slakit.Engine, history: History, clock: FakeClock, phase: str, n: int, holders: int
) -> None:
    together(history, holders)
    if phase == "run":
        store = engine.registry.store("api")
        for i in range(n):
            store.record(0.01, ok=i >= n // 10)
    clock.advance(1)
    snap = engine.evaluate_now()["api"]
    history.flush()
    print(json.dumps({"slot": history.slot, "events": snap.events, "bad": snap.bad}), flush=True)
    history.close()


def preload(db: str, phase: str) -> None:
    engine, history, clock = service(db, phase)  # in the parent, before any fork
    children = []
    for n in (300, 500):
        pid = os.fork()
        if pid == 0:  # a worker: the history took a slot of its own and restored it
            try:
                work(engine, history, clock, phase, n, holders=2)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    history.close()


def worker(db: str, phase: str, n: int) -> None:
    engine, history, clock = service(db, phase)
    work(engine, history, clock, phase, n, holders=2)


if __name__ == "__main__":
    if sys.argv[1] == "preload":
        preload(sys.argv[2], sys.argv[3])
    else:
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
