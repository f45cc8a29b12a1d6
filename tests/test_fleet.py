"""
End to end on 127.0.0.1: a real Prometheus scrapes a two-worker app and runs slakit's rules.

The app (``tests/fleet_app.py``) runs under ``uvicorn --workers 2`` in multiprocess
mode. Prometheus scrapes it every second and evaluates the generated rules every
second. The test injects slow failures until the fast-burn page fires through
Prometheus's own API, stops the traffic, and then checks that the raw counters
Prometheus holds equal, exactly, the requests the test sent, that the fleet SLI it
computes agrees with the exact ratio (``increase()`` extrapolates: within 5 %, the
tolerance ``docs/howto/prometheus.md`` states), and that every panel of the generated
Grafana dashboard returns data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pytest
import yaml

import slakit
from slakit.export.fleet import FleetSignal
from slakit.export.grafana import dashboard, panel_queries
from slakit.export.rules import ALERT, rule_groups
from tests.fleet_app import API
from tests.servers import free_port, require_binary

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parent.parent
WATCHDOG = 120.0  # seconds any one wait may take before the test fails


def wait_until(what: str, check: Callable[[], Any], watchdog: float = WATCHDOG) -> Any:
    """Poll ``check`` until it returns something truthy (a watchdog, not a timing)."""
    deadline = time.monotonic() + watchdog
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def fetch(url: str) -> tuple[int, str]:
    """GET on a new connection: the status and the body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


class Prometheus:
    def __init__(self, binary: str, workdir: Path, target: str, rules: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": "fleet", "static_configs": [{"targets": [target]}]},
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).close()
        except OSError:
            assert self.proc.poll() is None, "prometheus exited; see prometheus.log"
            return False
        return True

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = get(url)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> list[dict[str, Any]]:
        alerts = get(f"{self.url}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``tests/fleet_app.py`` under uvicorn with two workers on a free port."""
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "tests.fleet_app:app",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--log-level", "warning", "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return fetch(f"{url}/metrics/")[0] == 200  # not recorded
        except OSError:
            assert proc.poll() is None, "the app exited"
            return False

    try:
        wait_until("the app", up)
        yield url, multiproc
    finally:
        proc.terminate()
        proc.wait(30)


class Traffic:
    """Four client threads, a new connection per request (so both workers get some)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fail_share = 0.0
        self.sent: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(4)]

    def _run(self, seed: int) -> None:
        n = seed
        while not self._stop.is_set():
            n += 1
            path = "/fail" if (n % 100) < self.fail_share * 100 else "/ok"
            status, _ = fetch(self.url + path)
            with self._lock:
                self.sent[status] = self.sent.get(status, 0) + 1

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def test_prometheus_evaluates_the_fleet_like_the_engine(
    tmp_path: Path, app_url: tuple[str, Path]
) -> None:
    binary = require_binary("prometheus")
    url, multiproc = app_url
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rule_groups([API], service="fleet")))
    prom = Prometheus(binary, tmp_path, url.removeprefix("http://"), rules)
    try:
        wait_until("prometheus", prom.ready)
        # the counters exist (at zero) before any traffic: increase() then sees every request
        wait_until(
            "a first scrape",
            lambda: prom.value('sum(slakit_requests_total{slo="api"})') is not None,
        )
        with Traffic(url) as traffic:
            wait_until("traffic", lambda: prom.value('sum(slakit_requests_total{slo="api"})'))
            traffic.fail_share = 0.5  # half the requests fail, slowly: a fast burn
            pages = wait_until(
                "the fast-burn page",
                lambda: [
                    a
                    for a in prom.firing()
                    if a["labels"]["alertname"] == ALERT and a["labels"]["severity"] == "critical"
                ],
            )
        assert {a["labels"]["objective"] for a in pages} <= {"availability", "latency-250ms"}
        assert len(list(multiproc.glob("counter_*.db"))) == 2  # both workers took traffic

        total = sum(traffic.sent.values())
        failed = traffic.sent.get(500, 0)
        assert set(traffic.sent) == {200, 500}

        def settled() -> bool:  # every worker ticked, Prometheus scraped after it
            got = prom.value('sum(slakit_requests_total{slo="api"})')
            return got == total

        wait_until("Prometheus to hold every request", settled)
        assert prom.value('sum(slakit_errors_total{slo="api"})') == failed
        metrics = fetch(f"{url}/metrics/")[1]
        assert f'slakit_requests_total{{slo="api"}} {float(total)}' in metrics

        exact = failed / total

        sli = 'slo:sli_error:ratio_rate1d{objective="availability"}'
        scraped = prom.value('max(timestamp(slakit_requests_total{slo="api"}))')
        assert scraped is not None
        wait_until(  # a rule evaluation that has seen the last scrape
            "a rule evaluation after the last scrape",
            lambda: (prom.value(f"timestamp({sli})") or 0) > scraped,
        )
        fleet = prom.value(sli)
        assert fleet is not None
        assert abs(fleet - exact) <= 0.05 * exact, (fleet, exact)
        print(f"fleet error ratio {fleet:.5f}, exact {exact:.5f}, {total} requests")

        for expr in panel_queries(dashboard([API], service="fleet")):
            assert prom.query(expr), f"no data for panel query: {expr}"

        # fleet feedback: the fleet's burn rate over the period, as a local signal
        burn = FleetSignal(prom.url, f"{sli} / 0.01", interval=3600)
        value = burn.poll()
        assert value == pytest.approx(exact / 0.01)
        assert burn() == value
        burn.stop()
    finally:
        prom.stop()


def test_a_fleet_signal_that_cannot_reach_prometheus_reads_unknown(clock: Any) -> None:
    signal = FleetSignal(f"http://127.0.0.1:{free_port()}", "up", interval=3600, timeout=1)
    assert signal.poll() is None
    assert signal.errors == 1
    objective = slakit.Threshold("fleet-burn", op="<=", warning=6, critical=14.4, source=signal)
    slo = slakit.SLO("local", objectives=[objective], window="1h")
    registry = slakit.Registry(clock)
    registry.register(slo)
    snap = slakit.Engine(registry).evaluate_now()["local"]
    assert snap.objective("fleet-burn").actual is None  # unknown, not a number
    assert snap.status is slakit.Status.HEALTHY
    signal.stop()
    with pytest.raises(ValueError, match="url: expected"):
        FleetSignal("prometheus:9090", "up")
