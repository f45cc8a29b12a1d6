"""Scale requests: burn-scaled steps, caps, cooldown, give-back, webhook."""

from __future__ import annotations

import pytest

import slakit
from slakit.events import ViolationOpened, ViolationResolved
from slakit.remediate import Scaler, ScaleRequest
from tests.servers import Endpoint


def violation(vid="v1", actual=14.4, limit=14.4, rule="page-1h-5m", slo="api"):
    return slakit.Violation(
        vid, slo, "availability", rule, slakit.Severity.CRITICAL, 0.0, actual, limit, "burning"
    )


class TestScaler:
    def test_cooldown_and_max_step(self, clock):
        """One request per cooldown; each capped at max_step; total capped at max_total."""
        got: list[ScaleRequest] = []
        s = Scaler(
            "shop", callback=got.append, step=2, max_step=3, max_total=5, cooldown="5m", clock=clock
        )

        s.on_event(ViolationOpened(0, violation("a", actual=144.0)))  # 10x: capped at 3
        s.on_event(ViolationOpened(0, violation("b")))  # in cooldown
        clock.advance(299)
        s.on_event(ViolationOpened(0, violation("c")))  # still in cooldown
        clock.advance(1)
        s.on_event(ViolationOpened(0, violation("d")))  # 2 wanted, room for 2
        clock.advance(300)
        s.on_event(ViolationOpened(0, violation("e")))  # max_total reached

        assert [3, 2] == [r.delta for r in got]
        assert 5 == s.desired_replicas_delta
        assert ("shop", "api") == (got[0].service, got[0].slo)

    def test_resolution_gives_back(self, clock):
        """desired_replicas_delta returns to 0 once the violations acted on resolve."""
        s = Scaler("shop", callback=lambda r: None, cooldown="1s", clock=clock)
        s.on_event(ViolationOpened(0, violation("a")))
        clock.advance(2)
        s.on_event(ViolationOpened(0, violation("b")))
        assert 2 == s.desired_replicas_delta

        s.on_event(ViolationResolved(0, violation("a")))
        s.on_event(ViolationResolved(0, violation("b")))

        assert 0 == s.desired_replicas_delta

    def test_bound_slo_ignores_others_and_budget(self, clock):
        """Bound to an SLO, other SLOs and budget exhaustion ask for nothing."""
        got = []
        s = Scaler("shop", callback=got.append, slo="api", clock=clock)

        s.on_event(ViolationOpened(0, violation(slo="other")))
        s.on_event(ViolationOpened(0, violation(rule="budget")))

        assert [] == got

    def test_webhook(self, clock):
        """The request is POSTed as JSON to a real local endpoint."""
        endpoint = Endpoint()
        try:
            s = Scaler("shop", webhook=endpoint.url + "/scale", clock=clock)
            s.on_event(ViolationOpened(0, violation()))
        finally:
            endpoint.close()

        (req,) = endpoint.requests
        assert {"service": "shop", "delta": 1, "slo": "api"}.items() <= req["json"].items()

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [({}, "needs a callback, a webhook"), ({"callback": print, "step": 0}, "1 <= step")],
    )
    def test_bad_options(self, kwargs, message):
        """Missing outputs and impossible steps are refused."""
        with pytest.raises(ValueError, match=message):
            Scaler("shop", **kwargs)
