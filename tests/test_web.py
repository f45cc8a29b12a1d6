"""The status page: its JSON equals the snapshots, its HTML shows the same, in a real browser."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client

import slakit
from slakit.remediate import CircuitBreaker, LoadShedder
from slakit.web import POINTS, StatusPage
from tests.browser import Browser
from tests.servers import free_port, require_binary

if TYPE_CHECKING:
    from collections.abc import Iterator

    from slakit.testing import FakeClock

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"

CHECKOUT = slakit.SLO(
    name="checkout",
    description="Orders <b>placed</b> & paid",
    objectives=[slakit.Availability(target=0.99), slakit.Latency(threshold=0.25, target=0.95)],
    window="1d",
)
SEARCH = slakit.SLO(name="search", objectives=[slakit.Availability(target=0.9)], window="1h")


@pytest.fixture
def page(clock: FakeClock, engine: slakit.Engine) -> StatusPage:
    """Six hours of traffic: healthy, then an outage that pages on checkout."""
    checkout = engine.registry.register(CHECKOUT)
    search = engine.registry.register(SEARCH)
    for minute in range(6 * 60):
        for i in range(10):
            slow = i == 0 and minute % 4 == 0  # 2.5 % slow: within 95 %
            checkout.record(0.3 if slow else 0.05, ok=not (minute >= 350 and i < 3))
            search.record(0.01)
        clock.advance(60)
        if minute % 10 == 0:
            engine.evaluate_now()
    engine.evaluate_now()
    breaker = CircuitBreaker(name="payments", clock=clock)
    breaker.trip()
    shedder = LoadShedder(name="front", clock=clock)
    shedder.set_fraction(0.25)
    return StatusPage(engine, breakers=[breaker], shedders=[shedder])


def test_the_json_holds_the_snapshot_figures(page: StatusPage, engine: slakit.Engine) -> None:
    data = json.loads(page.json())
    by_name = {s["name"]: s for s in data["slos"]}
    assert set(by_name) == {"checkout", "search"}
    checkout = by_name["checkout"]
    snap = engine.snapshot("checkout")
    assert snap is not None
    assert checkout["status"] == snap.status.value == "critical"
    assert checkout["events"] == snap.events
    for shown, o in zip(checkout["objectives"], snap.objectives, strict=True):
        assert o.budget is not None
        assert shown["budget_remaining"] == pytest.approx(o.budget.remaining, abs=1e-6)
        for w_shown, w in zip(shown["windows"], o.windows, strict=True):
            assert w_shown["window"] == w.window
            assert w_shown["burn_rate"] == pytest.approx(w.burn_rate, abs=1e-6)
        line = [p["remaining"] for p in shown["burn_down"]]
        assert len(line) == POINTS
        assert line[0] > 0.99  # nothing went wrong in the first slot but a slow call or two
        assert line[-1] == pytest.approx(o.budget.remaining, abs=1e-6)  # ends where it stands
        assert line == sorted(line, reverse=True)  # spent budget never comes back
    assert {v["severity"] for v in checkout["violations"]} >= {"critical"}
    assert data["breakers"] == [{"name": "payments", "state": "open"}]
    assert data["shedders"][0]["shed_probability"] == pytest.approx(0.25)


def test_text_from_the_config_is_escaped(page: StatusPage) -> None:
    text = page.html().decode()
    assert "<b>placed</b>" not in text
    assert "Orders &lt;b&gt;placed&lt;/b&gt; &amp; paid" in text
    assert "<script" not in text  # the page runs no script at all


def test_read_only_and_auth_hook(page: StatusPage) -> None:
    app = Starlette(routes=[Route("/slo", page), Route("/slo.json", page)])
    client = TestClient(app)
    assert client.get("/slo").headers["content-type"].startswith("text/html")
    assert client.get("/slo.json").json()["slos"]
    assert client.post("/slo.json").status_code == 405
    page.auth = lambda headers: headers.get("authorization") == "Bearer let-me-in"
    assert client.get("/slo.json").status_code == 401
    allowed = client.get("/slo.json", headers={"Authorization": "Bearer let-me-in"})
    assert allowed.status_code == 200


def test_the_wsgi_twin_serves_the_same(page: StatusPage) -> None:
    client = Client(page.wsgi)
    response = client.get("/slo.json")
    assert response.status_code == 200
    assert response.json == json.loads(page.json())
    assert client.get("/slo").text.startswith("<!doctype html>")
    assert client.delete("/slo").status_code == 405


@pytest.fixture
def served(page: StatusPage) -> Iterator[str]:
    """The page behind a real uvicorn server on a free 127.0.0.1 port."""
    app = Starlette(routes=[Route("/slo", page), Route("/slo.json", page)])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # a watchdog
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


READ_DOM = """
[...document.querySelectorAll('section.slo')].map(s => ({
  name: s.dataset.slo,
  status: s.querySelector('[data-field=status]').textContent,
  objectives: [...s.querySelectorAll('tr[data-objective]')].map(r => ({
    key: r.dataset.objective,
    budget: r.querySelector('[data-field=budget]').textContent,
    burns: Object.fromEntries([...r.querySelectorAll('[data-burn]')].map(
      b => [b.dataset.burn, b.textContent.split(': ')[1]])),
  })),
  charts: [...s.querySelectorAll('figure[data-chart] polyline')].map(p => {
    const box = p.getBBox();
    return {points: p.points.numberOfItems, width: box.width, height: box.height};
  }),
}))
"""


def test_the_page_in_headless_chromium_shows_what_the_json_says(served: str) -> None:
    chromium = require_binary("chromium")
    with Browser(chromium) as browser:
        browser.open(f"{served}/slo")
        shown = browser.evaluate(READ_DOM)
        browser.screenshot(ARTIFACTS / "status-page.png")
    data = json.loads(urllib.request.urlopen(f"{served}/slo.json").read())
    assert [s["name"] for s in shown] == [s["name"] for s in data["slos"]]
    for slo_dom, slo in zip(shown, data["slos"], strict=True):
        assert slo_dom["status"] == slo["status"]
        for o_dom, o in zip(slo_dom["objectives"], slo["objectives"], strict=True):
            assert o_dom["key"] == o["key"]
            assert o_dom["budget"] == f"{o['budget_remaining'] * 100:.1f} %"
            expected = {
                w["window"]: "–" if w["burn_rate"] is None else f"{w['burn_rate']:.2f}"
                for w in o["windows"]
                if w["window"] != "slo"
            }
            assert o_dom["burns"] == expected
            assert len(expected) >= 4  # the alert windows of the default policy
        assert len(slo_dom["charts"]) == len(slo["objectives"])
        for chart, o in zip(slo_dom["charts"], slo["objectives"], strict=True):
            assert chart["points"] == POINTS  # laid out and drawn, not just present
            assert chart["width"] > 100
            spent = o["budget_remaining"] < 1
            assert (chart["height"] > 0) == spent  # a line that falls where budget was spent
    png = (ARTIFACTS / "status-page.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert re.search(rb"IHDR", png)
