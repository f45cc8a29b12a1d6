"""Notifiers and escalation against real local servers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
import urllib.request

import pytest

import slakit
from slakit.events import ViolationAcknowledged, ViolationOpened, ViolationResolved
from slakit.remediate.escalate import Escalation, Level
from slakit.remediate.notify import (
    AlertmanagerNotifier,
    EmailNotifier,
    HttpSettings,
    LogNotifier,
    NotifyError,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from tests.servers import Endpoint, free_port, require_binary

SECRET = "/services/T000/B000/sekret-token"


def violation(**kw):
    base = {
        "id": "v123",
        "slo": "checkout",
        "objective": "availability",
        "rule": "page-1h-5m",
        "severity": slakit.Severity.CRITICAL,
        "opened_at": 1_700_000_000.0,
        "actual": 20.0,
        "limit": 14.4,
        "detail": "burn rate 20 over 1h",
    }
    base.update(kw)
    return slakit.Violation(**base)


def opened(v=None):
    return ViolationOpened(1_700_000_000.0, v or violation())


def resolved(v=None):
    v = v or violation(resolved_at=1_700_000_600.0)
    return ViolationResolved(1_700_000_600.0, v)


@pytest.fixture
def endpoint():
    e = Endpoint()
    yield e
    e.close()


FAST = HttpSettings(timeout=2, retries=2, backoff=0.01)


class TestWebhooks:
    def test_generic_json(self, endpoint):
        """The generic webhook POSTs the violation as JSON."""
        WebhookNotifier("hook", endpoint.url + "/hook", service="shop").on_event(opened())

        (req,) = endpoint.requests
        assert "/hook" == req["path"]
        assert "firing" == req["json"]["status"]
        assert {"slo": "checkout", "rule": "page-1h-5m", "severity": "critical"}.items() <= req[
            "json"
        ]["violation"].items()
        assert "[CRITICAL] checkout/availability page-1h-5m firing" == req["json"]["title"]

    def test_slack_shape(self, endpoint):
        """Slack gets text plus a coloured attachment."""
        SlackNotifier("slack", endpoint.url + SECRET).on_event(resolved())

        body = endpoint.requests[0]["json"]
        assert body["text"].endswith("resolved")
        assert "#2ca02c" == body["attachments"][0]["color"]

    def test_pagerduty_lifecycle(self, endpoint):
        """PagerDuty: trigger, acknowledge, resolve with one dedup key."""
        pd = PagerDutyNotifier("pd", routing_key="R0UTING", url=endpoint.url + "/v2/enqueue")
        v = violation()
        pd.on_event(ViolationOpened(0, v))
        pd.on_event(ViolationAcknowledged(0, v))
        pd.on_event(ViolationResolved(0, v))

        actions = [(r["json"]["event_action"], r["json"]["dedup_key"]) for r in endpoint.requests]
        assert [("trigger", "v123"), ("acknowledge", "v123"), ("resolve", "v123")] == actions
        assert "critical" == endpoint.requests[0]["json"]["payload"]["severity"]

    def test_retries_server_errors_with_backoff(self, endpoint):
        """Two 503s then a 200: delivered on the third attempt."""
        endpoint.script = [(503, 0, {}), (503, 0, {})]

        WebhookNotifier("hook", endpoint.url, settings=FAST).on_event(opened())

        assert 3 == len(endpoint.requests)

    def test_client_errors_are_not_retried(self, endpoint):
        """A 400 fails at once."""
        endpoint.script = [(400, 0, {})]

        with pytest.raises(NotifyError, match="HTTP 400"):
            WebhookNotifier("hook", endpoint.url, settings=FAST).on_event(opened())
        assert 1 == len(endpoint.requests)

    def test_redirects_are_not_followed(self, endpoint):
        """A 302 is a failure; the target is never called."""
        target = Endpoint()
        try:
            endpoint.script = [(302, 0, {"Location": target.url})]
            with pytest.raises(NotifyError, match="HTTP 302"):
                WebhookNotifier("hook", endpoint.url, settings=FAST).on_event(opened())
            assert [] == target.requests
        finally:
            target.close()

    def test_hung_endpoint_is_abandoned_on_time(self, endpoint):
        """An endpoint that never answers fails after the timeout (watchdog 30 s)."""
        endpoint.script = [(200, 30, {})]
        notifier = WebhookNotifier(
            "hook", endpoint.url, settings=HttpSettings(timeout=0.2, retries=0)
        )
        started = time.monotonic()

        with pytest.raises(NotifyError, match="delivery failed"):
            notifier.on_event(opened())

        assert time.monotonic() - started < 30

    def test_link_local_is_refused(self):
        """The cloud metadata address is refused before any connection."""
        notifier = WebhookNotifier("meta", "http://169.254.169.254/latest/meta-data")

        with pytest.raises(NotifyError, match="link-local"):
            notifier.on_event(opened())

    def test_secrets_never_leak(self, endpoint, caplog):
        """URL paths, tokens and routing keys appear in no error, log or repr."""
        endpoint.script = [(500, 0, {})] * 3
        slack = SlackNotifier("slack", endpoint.url + SECRET, settings=FAST)
        pd = PagerDutyNotifier("pd", routing_key="R0UTING-KEY", url=endpoint.url + SECRET)

        with pytest.raises(NotifyError) as info:
            slack.on_event(opened())

        for text in (str(info.value), caplog.text, repr(slack), repr(pd)):
            assert "sekret" not in text
            assert "R0UTING" not in text
            assert endpoint.url not in text

    def test_bad_url(self):
        """A URL without http(s) scheme is refused at construction."""
        with pytest.raises(ValueError, match="must be http"):
            WebhookNotifier("x", "ftp://example")


class TestLogAndEmail:
    def test_log(self, caplog):
        """The log notifier writes the message."""
        with caplog.at_level(logging.INFO, logger="slakit.notify"):
            LogNotifier().on_event(opened())

        assert "checkout/availability page-1h-5m firing" in caplog.text

    def test_smtp(self):
        """A real SMTP server (aiosmtpd) receives the email."""
        aiosmtpd = pytest.importorskip("aiosmtpd.controller")
        received = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                received.append(envelope)
                return "250 OK"

        port = free_port()
        controller = aiosmtpd.Controller(Handler(), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            EmailNotifier(
                "mail", host="127.0.0.1", port=port, sender="slo@shop", to=["oncall@shop"]
            ).on_event(opened())
        finally:
            controller.stop()

        (mail,) = received
        assert ["oncall@shop"] == mail.rcpt_tos
        assert b"Subject: [CRITICAL] checkout/availability page-1h-5m firing" in mail.content

    def test_smtp_down(self):
        """No server: a NotifyError, not a hang."""
        notifier = EmailNotifier(
            "mail", host="127.0.0.1", port=free_port(), sender="a@b", to=["c@d"], timeout=2
        )

        with pytest.raises(NotifyError, match="delivery failed"):
            notifier.on_event(opened())


@pytest.fixture
def alertmanager(tmp_path):
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    config = tmp_path / "am.yml"
    config.write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # watchdog: 30 s
            try:
                urllib.request.urlopen(url + "/-/ready", timeout=1).read()
                break
            except OSError:
                threading.Event().wait(0.1)
        else:
            pytest.fail("alertmanager did not become ready within 30 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def am_alerts(url):
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=5) as r:
        return json.loads(r.read())


class TestAlertmanager:
    def test_active_then_resolved(self, alertmanager):
        """A real Alertmanager shows the alert active, then no longer active after resolve."""
        am = AlertmanagerNotifier("am", alertmanager, service="shop")
        now = time.time()
        v = violation(opened_at=now)

        am.on_event(ViolationOpened(now, v))
        alerts = am_alerts(alertmanager)

        (alert,) = alerts
        assert "active" == alert["status"]["state"]
        assert {
            "alertname": "SLOViolation",
            "slo": "checkout",
            "severity": "critical",
        }.items() <= alert["labels"].items()

        am.on_event(ViolationResolved(now + 1, violation(opened_at=now, resolved_at=now + 1)))
        for _ in range(100):  # watchdog: 10 s for its state to move
            if all(a["status"]["state"] != "active" for a in am_alerts(alertmanager)):
                break
            threading.Event().wait(0.1)

        assert all(a["status"]["state"] != "active" for a in am_alerts(alertmanager))


class Recording:
    """A notifier that remembers what it was told."""

    def __init__(self, name):
        self.name = name
        self.seen = []

    def on_event(self, event):
        self.seen.append(type(event).__name__)

    def __repr__(self):
        return self.name


class TestEscalation:
    def test_levels_fire_at_their_delays_and_stop_on_ack(self, clock, registry):
        """Level 1 at once, level 2 after 5 min, level 3 never: acknowledged at 10 min."""
        chat, pager, boss = Recording("chat"), Recording("pager"), Recording("boss")
        esc = Escalation([Level([chat]), Level([pager], after="5m"), Level([boss], after="15m")])
        engine = slakit.Engine(registry)
        slo = slakit.SLO(
            "api", objectives=[slakit.Availability("99%")], alerting=slakit.AlertPolicy.none()
        )
        engine.enforce(slo, slakit.remediate.Policy(critical=[esc]))
        store = registry.register(slo)
        try:
            store.record_many(clock.time(), total=10, bad=10)  # budget gone: critical
            clock.advance(1)
            engine.evaluate_now()
            (v,) = engine.violations()
            for minute in range(1, 21):
                clock.advance(60)
                engine.evaluate_now()
                if minute == 10:
                    engine.acknowledge(v.id, by="alice")
                wait_idle(engine)
        finally:
            engine.stop()

        assert ["ViolationOpened", "ViolationAcknowledged"] == chat.seen
        assert ["ViolationOpened", "ViolationAcknowledged"] == pager.seen
        assert [] == boss.seen
        results = [a.result for a in engine.violations()[0].actions]
        assert "level 1: chat ok" in results
        assert "level 2: pager ok" in results
        assert not any("level 3" in r for r in results)

    def test_resolve_stops_escalation(self):
        """A resolution before the next delay stops it and tells those reached."""
        first, second = Recording("first"), Recording("second")
        esc = Escalation([Level([first]), Level([second], after="10m")])
        v = violation(opened_at=0.0)

        esc.on_event(ViolationOpened(0.0, v))
        esc.tick(300.0)
        esc.on_event(ViolationResolved(400.0, violation(opened_at=0.0, resolved_at=400.0)))
        esc.tick(10_000.0)

        assert ["ViolationOpened", "ViolationResolved"] == first.seen
        assert [] == second.seen
        assert [] == esc.pending()

    def test_levels_must_be_ordered(self):
        """Delays must not go backwards."""
        with pytest.raises(ValueError, match="in order of delay"):
            Escalation([Level([], after="10m"), Level([], after="5m")])


def wait_idle(engine, timeout=30.0):
    """Wait until every hook worker has drained its queue (watchdog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = engine._enforcer.workers()
        if all(w._queue.empty() and w._busy is None for w in workers):
            return
        threading.Event().wait(0.005)
