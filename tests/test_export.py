"""Prometheus export: the collector's series, and generated rules checked by promtool."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
import prometheus_client
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from prometheus_client.parser import text_string_to_metric_families

import slakit
from slakit import sketch
from slakit.cli import main as cli
from slakit.evaluate import Snapshot
from slakit.export.grafana import dashboard, panel_queries
from slakit.export.otel import instrument
from slakit.export.prometheus import (
    DEFAULT_BUCKETS,
    SLOCollector,
    _buckets,
    exposition,
    make_asgi_app,
    make_wsgi_app,
    register,
)
from slakit.export.rules import ALERT, rule_groups
from slakit.remediate import CircuitBreaker, LoadShedder, Scaler
from slakit.ring import Counts
from tests.servers import require_binary
from tests.strategies import durations_ns

SNAPSHOT = Snapshot(
    slo="s",
    time=0.0,
    status=slakit.Status.HEALTHY,
    objectives=(),
    events=0,
    bad=0,
    lifetime=Counts(0, 0, 0, 0, 0, ()),
    lifetime_histogram={},
    percentiles={},
)


def scrape(registry) -> dict[tuple[str, tuple], float]:
    text = prometheus_client.generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def exported(clock):
    registry = slakit.Registry(clock)
    slo = slakit.SLO(
        "checkout", objectives=[slakit.Availability("99.9%"), slakit.Latency("250ms", "99%")]
    )
    tracker = slakit.track(slo, registry=registry)
    for i in range(1_000):
        # 0.25 s exactly is within the objective; 0.2501 s is not
        tracker.record(0.25 if i % 10 else 0.2501, ok=i % 100 != 0)
    clock.advance(1)
    engine = slakit.Engine(registry)
    engine.evaluate_now()
    prom = prometheus_client.CollectorRegistry()
    breaker = CircuitBreaker("payments", clock=clock)
    breaker.force_open()
    collector = register(
        engine,
        prom,
        breakers=[breaker],
        shedders=[LoadShedder("api", fraction=0.2, clock=clock)],
        scalers=[Scaler("shop", callback=print, clock=clock)],
    )
    return engine, prom, collector


class TestBuckets:
    @given(st.lists(durations_ns, min_size=1, max_size=200))
    def test_cumulative_counts_are_conservative_and_within_one_percent(self, durations):
        """Each le counts only events at or below it, and all those 1.6 % below it."""
        hist: dict[int, int] = {}
        for d in durations:
            b = sketch.bucket_of(d)
            hist[b] = hist.get(b, 0) + 1
        life = Counts(total=len(durations), bad=0, ignored=0, rejected=0, disconnected=0, slow=())
        snap = attrs.evolve(SNAPSHOT, lifetime=life, lifetime_histogram=hist)

        out = dict(_buckets(snap, DEFAULT_BUCKETS, ()))

        for le in DEFAULT_BUCKETS:
            limit = le * 1e9
            at_most = sum(1 for d in durations if d <= limit)
            surely = sum(1 for d in durations if d <= limit * (1 - 1 / 64))
            assert surely <= out[repr(le)] <= at_most
        assert len(durations) == out["+Inf"]


class TestCollector:
    def test_raw_counters_and_exact_threshold_bucket(self, exported):
        """Counters equal the store; the bucket at a latency threshold is exact."""
        _, prom, _ = exported

        m = scrape(prom)

        slo = (("slo", "checkout"),)
        assert 1_000 == m[("slakit_requests_total", slo)]
        assert 10 == m[("slakit_errors_total", slo)]
        assert 0 == m[("slakit_rejected_total", slo)]
        assert 900 == m[("slakit_request_duration_seconds_bucket", (("le", "0.25"), *slo))]
        assert 1_000 == m[("slakit_request_duration_seconds_bucket", (("le", "+Inf"), *slo))]
        assert 1_000 == m[("slakit_request_duration_seconds_count", slo)]

    def test_derived_gauges_match_the_snapshot(self, exported):
        """SLI, burn rate and budget are the snapshot's, labelled by objective and window."""
        engine, prom, _ = exported
        snap = engine.snapshot("checkout")

        m = scrape(prom)

        avail = snap.objective("availability")
        labels = (("objective", "availability"), ("slo", "checkout"), ("window", "30d"))
        assert avail.actual == pytest.approx(m[("slakit_sli_ratio", labels)])
        burn = (("objective", "availability"), ("slo", "checkout"), ("window", "1h"))
        assert avail.burn_rate("1h") == pytest.approx(m[("slakit_burn_rate", burn)])
        budget = (("objective", "availability"), ("slo", "checkout"))
        assert avail.budget.remaining == pytest.approx(
            m[("slakit_error_budget_remaining_ratio", budget)]
        )
        assert 1 == m[("slakit_status", (("slakit_status", str(snap.status)), ("slo", "checkout")))]

    def test_hook_values(self, exported):
        """Breaker state, shed probability and desired replicas are exported."""
        _, prom, _ = exported

        m = scrape(prom)

        assert (
            1
            == m[
                (
                    "slakit_breaker_state",
                    (("breaker", "payments"), ("slakit_breaker_state", "forced_open")),
                )
            ]
        )
        assert 0.2 == pytest.approx(m[("slakit_shed_probability", (("shedder", "api"),))])
        assert 0 == m[("slakit_desired_replicas_delta", (("service", "shop"),))]

    def test_scrape_does_no_work_per_call(self, exported):
        """A scrape reads the snapshot: calls recorded since the last tick are not in it."""
        engine, prom, _ = exported
        store = engine.registry.store("checkout")
        store.record(0.01)

        before = scrape(prom)[("slakit_requests_total", (("slo", "checkout"),))]
        engine.evaluate_now()
        after = scrape(prom)[("slakit_requests_total", (("slo", "checkout"),))]

        assert (1_000, 1_001) == (before, after)


SLOS_YAML = """
service: shop
slos:
  - name: checkout
    objectives:
      - availability: {target: 99.9%}
      - latency: {threshold: 250ms, target: 99%}
  - name: search
    window: 7d
    objectives: [{availability: {target: 99%}}]
    alerting: {ticket: false}
"""


class TestRules:
    def test_shape(self):
        """One group per SLO: SLIs per window, the period SLI weighted by traffic, alerts."""
        cfg = slakit.loads(SLOS_YAML)

        groups = rule_groups(cfg.slos, cfg.service)["groups"]

        checkout = groups[0]["rules"]
        records = {(r.get("record"), r["labels"].get("window")) for r in checkout if "record" in r}
        assert ("slo:sli_error:ratio_rate5m", "5m") in records
        assert ("slo:sli_error:ratio_rate3d", "3d") in records
        period = next(r for r in checkout if r.get("record") == "slo:sli_error:ratio_rate30d")
        assert "increase(slakit_errors_total" in period["expr"]  # errors over events, not a mean
        alerts = [r for r in checkout if "alert" in r]
        assert {ALERT} == {a["alert"] for a in alerts}
        assert 6 == len(alerts)  # 3 rules x 2 objectives
        search_alerts = [r for r in groups[1]["rules"] if "alert" in r]
        assert ["page-14m-70s", "page-84m-7m"] == [a["labels"]["rule"] for a in search_alerts]

    def test_promtool_checks_and_tests_the_generated_files(self, tmp_path):
        """A real promtool accepts the rules and passes the generated unit tests."""
        promtool = require_binary("promtool")
        slos = tmp_path / "slos.yaml"
        slos.write_text(SLOS_YAML)
        rules, tests = tmp_path / "rules.yaml", tmp_path / "tests.yaml"

        assert 0 == cli(["rules", str(slos), "-o", str(rules), "--tests", str(tests)])
        check = subprocess.run(
            [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
        )
        test = subprocess.run(
            [promtool, "test", "rules", str(tests)],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            timeout=300,
        )

        assert 0 == check.returncode, check.stdout + check.stderr
        assert "SUCCESS" in check.stdout
        assert 0 == test.returncode, test.stdout + test.stderr
        checks = yaml.safe_load(tests.read_text())["tests"]
        assert all(len(t["alert_rule_test"]) >= 3 for t in checks)  # several moments each

    def test_promtool_catches_a_wrong_rate(self, tmp_path):
        """The generated tests are not vacuous: a rule with the wrong rate fails them."""
        promtool = require_binary("promtool")
        slos = tmp_path / "slos.yaml"
        slos.write_text(
            "slos: [{name: s, window: 7d, objectives: [{availability: {target: 99%}}],"
            " alerting: {ticket: false}}]"
        )
        rules, tests = tmp_path / "rules.yaml", tmp_path / "tests.yaml"
        cli(["rules", str(slos), "-o", str(rules), "--tests", str(tests)])
        rules.write_text(rules.read_text().replace("(14.4 * ", "(144.0 * "))

        test = subprocess.run(
            [promtool, "test", "rules", str(tests)],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            timeout=300,
        )

        assert 0 != test.returncode
        assert "FAILED" in test.stdout + test.stderr


class TestOpenTelemetry:
    def test_in_memory_reader_sees_the_snapshot(self, exported):
        """Through the OTel SDK's in-memory reader: counters and gauges equal the snapshot."""
        engine, _, _ = exported
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        keep = instrument(engine, provider.get_meter("test"))
        snap = engine.snapshot("checkout")

        data = reader.get_metrics_data()
        points = {
            (m.name, tuple(sorted(p.attributes.items()))): p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        }
        provider.shutdown()

        assert keep.instruments
        assert 1_000 == points[("slakit.requests", (("slo", "checkout"),))]
        assert 10 == points[("slakit.errors", (("slo", "checkout"),))]
        avail = (("objective", "availability"), ("slo", "checkout"))
        assert snap.objective("availability").actual == pytest.approx(points[("slakit.sli", avail)])
        assert snap.objective("availability").burn_rate("5m") == pytest.approx(
            points[("slakit.burn_rate", (*avail, ("window", "5m")))]
        )
        assert snap.status.rank == points[("slakit.status", (("slo", "checkout"),))]

    def test_otlp_http_exporter_carries_them_to_a_receiver(self, exported):
        """The SDK's OTLP/HTTP exporter posts protobuf to a receiver on 127.0.0.1 we decode."""
        engine, _, _ = exported
        received: list[ExportMetricsServiceRequest] = []

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/metrics"
                assert self.headers["Content-Type"] == "application/x-protobuf"
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                received.append(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(ExportMetricsServiceResponse().SerializeToString())

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            exporter = OTLPMetricExporter(
                endpoint=f"http://127.0.0.1:{server.server_address[1]}/v1/metrics"
            )
            reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
            provider = MeterProvider(metric_readers=[reader])
            keep = instrument(engine, provider.get_meter("test"))
            assert provider.force_flush(10_000)
            provider.shutdown()
        finally:
            server.shutdown()
            server.server_close()

        assert keep.instruments
        points = {
            (m.name, tuple(sorted((a.key, a.value.string_value) for a in p.attributes))): p
            for r in received
            for rm in r.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in (*m.sum.data_points, *m.gauge.data_points)
        }
        snap = engine.snapshot("checkout")
        assert points[("slakit.requests", (("slo", "checkout"),))].as_int == 1_000
        assert points[("slakit.errors", (("slo", "checkout"),))].as_int == 10
        avail = (("objective", "availability"), ("slo", "checkout"))
        assert points[("slakit.sli", avail)].as_double == pytest.approx(
            snap.objective("availability").actual
        )


class TestDashboard:
    def test_cli_writes_a_dashboard(self, tmp_path):
        """slakit dashboard writes Grafana JSON with a row and five panels per objective."""
        slos = tmp_path / "slos.yaml"
        slos.write_text(SLOS_YAML)
        out = tmp_path / "board.json"

        assert 0 == cli(["dashboard", str(slos), "-o", str(out)])
        board = json.loads(out.read_text())

        assert "SLOs: shop" == board["title"]
        assert 3 * 6 == len(board["panels"])  # three ratio objectives
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"])

    def test_every_query_reads_generated_rules_and_parses(self, tmp_path):
        """Each panel reads series the rules record; promtool parses every expression."""
        promtool = require_binary("promtool")
        cfg = slakit.loads(SLOS_YAML)
        board = dashboard(cfg.slos, cfg.service)
        recorded = {
            r["record"]
            for g in rule_groups(cfg.slos, cfg.service)["groups"]
            for r in g["rules"]
            if "record" in r
        }
        queries = panel_queries(board)

        used = {name for q in queries for name in re.findall(r"slo:[a-z_:]+[0-9a-z]*", q)}
        assert used <= recorded, used - recorded
        check = tmp_path / "panels.yaml"
        check.write_text(
            yaml.safe_dump(
                {
                    "groups": [
                        {
                            "name": "panels",
                            "rules": [
                                {"record": f"panel:q{i}", "expr": q} for i, q in enumerate(queries)
                            ],
                        }
                    ]
                }
            )
        )
        result = subprocess.run(
            [promtool, "check", "rules", str(check)], capture_output=True, text=True, check=False
        )
        assert 0 == result.returncode, result.stdout + result.stderr


class TestFastExposition:
    def test_it_writes_exactly_the_samples_prometheus_client_writes(self, exported):
        """Same families, types, help texts, samples and values; parsed by prometheus-client."""
        engine, prom, collector = exported
        registry = engine.registry
        table = registry.series(registry.slo("checkout"), ("route", "method", "tenant"))
        table.add(table.key(('/we"ird\\path\n', "GET", "t")), 0)  # label values to escape
        reference = prometheus_client.generate_latest(prom).decode()
        fast = exposition(collector).decode()

        def parsed(text):
            return sorted(
                (f.name, f.type, f.documentation, s.name, tuple(sorted(s.labels.items())), s.value)
                for f in text_string_to_metric_families(text)
                for s in f.samples
            )

        assert parsed(fast) == parsed(reference)
        assert len(parsed(fast)) > 50

    def test_the_apps_serve_slakit_and_the_rest(self, exported):
        engine, _, _ = exported
        other = prometheus_client.CollectorRegistry()
        prometheus_client.Counter("orders", "Orders placed.", registry=other).inc(3)
        collector = SLOCollector(engine)
        body = b"".join(
            make_wsgi_app(collector, other)({"REQUEST_METHOD": "GET"}, lambda status, headers: None)
        ).decode()
        assert 'slakit_requests_total{slo="checkout"} 1000.0' in body
        assert "orders_total 3.0" in body
        sent = []

        async def send(message):
            sent.append(message)

        asyncio.run(make_asgi_app(collector, other)({"type": "http"}, None, send))
        assert sent[1]["body"].decode() == body
