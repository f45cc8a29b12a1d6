"""Secrets stay secret: a canary in URLs, headers and passwords appears nowhere slakit writes."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import slakit
from slakit.history import History
from slakit.remediate import (
    EmailNotifier,
    HttpSettings,
    PagerDutyNotifier,
    Policy,
    SlackNotifier,
    WebhookNotifier,
)
from slakit.report import build, to_html, to_json, to_markdown
from slakit.web import StatusPage
from tests.servers import free_port

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from slakit.testing import FakeClock

CANARY = "c4n4ry-7f3e9d"
SLO = slakit.SLO("api", objectives=[slakit.Availability("99%")], window="1h")


def test_a_canary_never_leaks(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    closed = free_port()  # nothing listens: every delivery fails
    fast = HttpSettings(retries=1, backoff=0.01, timeout=1)
    hooks = [
        WebhookNotifier(
            "ops",
            f"http://127.0.0.1:{closed}/hook/{CANARY}?token={CANARY}",
            headers={"Authorization": f"Bearer {CANARY}"},
            settings=fast,
        ),
        SlackNotifier("chat", f"http://127.0.0.1:{closed}/services/{CANARY}", settings=fast),
        PagerDutyNotifier(
            "pager", routing_key=CANARY, url=f"http://127.0.0.1:{closed}/v2", settings=fast
        ),
        EmailNotifier(
            "mail",
            host="127.0.0.1",
            port=closed,
            sender="slo@example.com",
            to=["oncall@example.com"],
            username="slo",
            password=CANARY,
            timeout=1,
        ),
    ]
    registry = slakit.Registry(clock)
    store = registry.register(SLO)
    engine = slakit.Engine(registry)
    engine.enforce(SLO, Policy(critical=hooks, max_attempts=1))
    history = History(tmp_path / "h.db", flush_interval=3600)
    history.attach(engine)
    with caplog.at_level(logging.DEBUG):
        for _ in range(300):
            for i in range(10):
                store.record(0.01, ok=i % 2 == 0)
            clock.advance(1)
            engine.evaluate_now()
            engine.drain()
        history.flush()
    violations = engine.violations()
    results = [a.result for v in violations for a in v.actions]
    assert any(r.startswith("error") for r in results)  # the deliveries did fail

    page = StatusPage(engine)
    report = build(history, [SLO], clock.time() - 3600, clock.time() + 60)
    written = {
        "logs": caplog.text,
        "actions": json.dumps(results),
        "reprs": " ".join(repr(h) for h in hooks),
        "violations": repr(violations),
        "slo.json": page.json().decode(),
        "status page": page.html().decode(),
        "report": to_markdown(report) + to_html(report) + to_json(report),
        "database": b"".join(p.read_bytes() for p in tmp_path.glob("h.db*")).decode("latin-1"),
    }
    for where, text in written.items():
        assert CANARY not in text, f"the canary leaked into the {where}"
    history.close()
