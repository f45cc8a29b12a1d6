"""OpenSLO v1: export, import, round trip, and the schema written from the spec."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import slakit
from slakit.export.openslo import export_slo, import_documents

HERE = Path(__file__).parent / "openslo"
SCHEMA = json.loads((HERE / "slo-v1.schema.json").read_text())

targets = st.sampled_from(["99%", "99.5%", "99.9%", "99.99%", 0.95])
objectives = st.one_of(
    st.builds(slakit.Availability, targets),
    st.builds(slakit.Latency, st.sampled_from(["50ms", "250ms", "1s"]), targets),
    st.builds(
        slakit.Uptime,
        targets,
        slice=st.sampled_from(["1m", "5m"]),
        max_error_ratio=st.sampled_from(["1%", "5%", 0.0]),
    ),
    st.builds(
        slakit.Percentile,
        st.sampled_from([0.5, 0.95, 0.99]),
        st.sampled_from(["100ms", "2s"]),
        slice=st.just("1m"),
        target=targets,
    ),
)
windows = st.sampled_from(
    ["30d", "7d", "28d", "month", "week", slakit.Window.calendar("month", "Asia/Tokyo")]
)


@st.composite
def slos(draw):
    objs = draw(st.lists(objectives, min_size=1, max_size=4, unique_by=lambda o: o.key))
    return slakit.SLO(
        draw(st.sampled_from(["checkout", "search_api", "Pay.Ments"])),
        objectives=objs,
        window=draw(windows),
    )


class TestRoundTrip:
    @given(slos())
    def test_export_then_import_is_equal(self, slo):
        """Every supported field survives export → import, and exports meet the schema."""
        docs, skipped = export_slo(slo, "shop")
        for doc in docs:
            jsonschema.validate(doc, SCHEMA)

        result = import_documents(yaml.safe_load_all(yaml.safe_dump_all(docs)))

        assert [] == skipped
        assert () == result.problems
        assert (slo,) == result.slos

    def test_unsupported_objectives_are_reported(self):
        """Throughput, Threshold and a window Percentile have no OpenSLO form."""
        slo = slakit.SLO(
            "s",
            objectives=[
                slakit.Availability("99%"),
                slakit.Throughput(5),
                slakit.Threshold("queue", warning=10),
                slakit.Percentile("p99", "1s"),
            ],
        )

        docs, skipped = export_slo(slo)

        assert 1 == len(docs)
        assert [
            "s/throughput: Throughput has no OpenSLO form",
            "s/queue: Threshold has no OpenSLO form",
            "s/p99-1s: Percentile has no OpenSLO form",
        ] == skipped


class TestImport:
    def test_six_documents_from_the_spec_examples(self):
        """The spec-shaped documents import, each with the objective it describes."""
        docs = list(yaml.safe_load_all((HERE / "documents.yaml").read_text()))
        for doc in docs:
            jsonschema.validate(doc, SCHEMA)

        result = import_documents(docs)
        by_name = {s.name: s for s in result.slos}

        assert 6 == len(result.slos)
        web = by_name["web-availability"]
        assert (slakit.Availability(0.999), 28 * 86_400) == (web.objectives[0], web.window.seconds)
        assert slakit.Latency(0.5, 0.99) == by_name["search-latency"].objectives[0]
        isp = by_name["isp-uptime"]
        assert ("month", "America/New_York") == (isp.window.unit, isp.window.tz)
        assert (60.0, pytest.approx(0.01)) == (
            isp.objectives[0].slice,
            isp.objectives[0].max_error_ratio,
        )
        assert ("week", "Europe/Paris") == (
            by_name["api-weekly"].window.unit,
            by_name["api-weekly"].window.tz,
        )
        assert 300.0 == by_name["low-traffic"].objectives[0].slice
        p95 = by_name["checkout-p95"].objectives[0]
        assert (0.95, 0.3, 60.0, 0.99) == (p95.q, p95.threshold, p95.slice, p95.target)
        assert [("[5].spec.alertPolicies", "not supported by slakit; ignored")] == [
            (p.path, p.message) for p in result.problems
        ]

    def test_problems_are_reported_with_paths(self):
        """Unsupported shapes are skipped with a reason and a path; the rest imports."""
        good = {
            "apiVersion": "openslo/v1",
            "kind": "SLO",
            "metadata": {"name": "ok"},
            "spec": {
                "service": "s",
                "indicator": {
                    "metadata": {"name": "i"},
                    "spec": {"ratioMetric": {"good": {}, "total": {}}},
                },
                "timeWindow": [{"duration": "30d", "isRolling": True}],
                "budgetingMethod": "Occurrences",
                "objectives": [{"target": 0.99}, {"target": 0.9}],
            },
        }
        ratio_slices = {
            **good,
            "metadata": {"name": "rts"},
            "spec": {**good["spec"], "budgetingMethod": "RatioTimeslices"},
        }
        quarter = {
            **good,
            "metadata": {"name": "q"},
            "spec": {**good["spec"], "timeWindow": [{"duration": "1Q", "isRolling": False}]},
        }

        result = import_documents([good, ratio_slices, quarter, {"kind": "Service"}])

        assert ["ok"] == [s.name for s in result.slos]
        messages = {p.path: p.message for p in result.problems}
        assert "the first is used" in messages["[0].spec.objectives"]
        assert "RatioTimeslices budgeting is not supported" in messages["[1]"]
        assert "calendar windows of '1Q' are not supported" in messages["[2]"]
        assert "not an openslo/v1 SLO document" in messages["[3]"]
