"""A process that must exit promptly: a hung hook, an unreachable webhook, a locked database."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time

import slakit
from slakit.history import History
from slakit.remediate import HttpSettings, Policy, WebhookNotifier


class Hung:
    def on_event(self, event: object) -> None:
        threading.Event().wait()  # never returns


def main(db: str, port: int) -> None:
    slo = slakit.SLO("api", objectives=[slakit.Availability("99%")], window="1h")
    registry = slakit.Registry()
    store = registry.register(slo)
    engine = slakit.Engine(registry, interval=0.05, hook_timeout=60)
    hooks = [
        Hung(),
        WebhookNotifier(
            "ops",
            f"http://127.0.0.1:{port}/",
            settings=HttpSettings(retries=5, backoff=1, timeout=5),
        ),
    ]
    engine.enforce(slo, Policy(critical=hooks))
    engine.subscribe(Hung())
    history = History(db, flush_interval=0.05)
    history.attach(engine)
    engine.start()
    for _ in range(2_000):
        store.record(0.01, ok=False)
    deadline = time.monotonic() + 30
    while not engine.violations() and time.monotonic() < deadline:
        time.sleep(0.05)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the database
    for _ in range(100):
        store.record(0.01, ok=False)
    began = time.monotonic()
    engine.stop(timeout=1.5)
    history.close(timeout=1.5)
    print(f"{time.monotonic() - began:.3f} {history.dropped}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
