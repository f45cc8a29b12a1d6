"""Enforcement from configuration: hooks by name, policies, every error with its path."""

from __future__ import annotations

import pytest

import slakit
import slakit.cli
from slakit.remediate import CircuitBreaker, LoadShedder, State
from slakit.remediate.build import build
from slakit.testing import FakeClock
from tests.servers import Endpoint
from tests.waiting import wait_for

CONFIG = """
service: shop
slos:
  - name: checkout
    objectives: [{{availability: {{target: 99.9%}}}}]
    on_violation:
      critical: ['breaker:payments', {{shed: {{fraction: 0.2}}}}, 'escalate:oncall', 'scale:web']
      warning: ['notify:team']
      cooldown: 1m
      max_attempts: 2
breakers:
  payments: {{failure_rate: 50%, wait_in_open: 30s, minimum_calls: 5}}
scalers:
  web: {{webhook: '{url}/scale', max_step: 3}}
notifiers:
  team: {{log: {{}}}}
  oncall-hook: {{webhook: {{url: '{url}/page', timeout: 2s, retries: 1}}}}
escalations:
  oncall: {{levels: [{{notify: [oncall-hook]}}, {{notify: [team], after: 10m}}]}}
"""


class TestBuild:
    def test_builds_named_and_inline_hooks(self):
        """Every section builds; the policy holds the hooks in order."""
        config = slakit.loads(CONFIG.format(url="http://127.0.0.1:9"))

        e = build(config)

        policy = e.policies["checkout"]
        assert isinstance(policy.critical[0], CircuitBreaker)
        assert policy.critical[0] is e.breakers["payments"]
        assert isinstance(policy.critical[1], LoadShedder)
        assert 0.2 == policy.critical[1].fraction
        assert policy.critical[2] is e.escalations["oncall"]
        assert policy.critical[3] is e.scalers["web"]
        assert [e.notifiers["team"]] == list(policy.warning)
        assert (60.0, 2) == (policy.cooldown, policy.max_attempts)
        assert 30.0 == e.breakers["payments"].wait_in_open

    def test_page_end_to_end_from_config(self):
        """A page from the engine trips the breaker and reaches the webhook and scaler."""
        endpoint = Endpoint()
        clock = FakeClock()
        registry = slakit.Registry(clock)
        engine = slakit.Engine(registry)
        try:
            config = slakit.loads(CONFIG.format(url=endpoint.url))
            enforcement = build(config, engine, clock=clock)
            store = registry.register(config.slos[0])
            start = clock.time()
            for m in range(3 * 1_440):
                store.record_many(start + m * 60, total=600)
            clock.advance(3 * 86_400)
            for _ in range(53):
                store.record_many(clock.time(), total=10, bad=10)
                clock.advance(1)
                engine.evaluate_now()
            assert wait_for(lambda: len(endpoint.requests) >= 2)
            engine.evaluate_now()  # the escalation's first level is recorded on the next tick
            assert wait_for(
                lambda: any("level 1" in a.result for v in engine.violations() for a in v.actions)
            )
        finally:
            engine.stop()
            endpoint.close()

        assert State.OPEN is enforcement.breakers["payments"].state
        paths = sorted(r["path"] for r in endpoint.requests)
        assert ["/page", "/scale"] == paths
        assert 1 == enforcement.scalers["web"].desired_replicas_delta


class TestErrors:
    def test_every_problem_with_its_path(self):
        """Unknown references, bad options and bad kinds are all reported."""
        config = slakit.loads(
            """
slos:
  - name: s
    objectives: [{availability: {target: 0.99}}]
    on_violation:
      critical: ['breaker:paymnts', {notify: {}}, {shed: {fraction: 2}}]
breakers:
  payments: {failure_rate: 50%, bogus: 1}
notifiers:
  team: {carrier-pigeon: {}}
  hook: {webhook: {url: 'ftp://nope'}}
escalations:
  esc: {levels: [{notify: [nobody]}]}
"""
        )

        with pytest.raises(slakit.ConfigError) as info:
            build(config)

        errors = {e.path: e.message for e in info.value.errors}
        assert "unexpected keyword argument 'bogus'" in errors["breakers.payments"]
        assert errors["notifiers.team"].startswith("must be {kind: {options}}")
        assert "url must be http(s)" in errors["notifiers.hook.webhook"]
        assert "unknown notifier 'nobody'" in errors["escalations.esc.levels[0].notify[0]"]
        assert (
            "unknown breaker 'paymnts' (known: payments)"
            == errors["slos[0].on_violation.critical[0]"]
        )
        assert "notify cannot be defined inline" == errors["slos[0].on_violation.critical[1]"]
        assert "must be in [0, 1]" in errors["slos[0].on_violation.critical[2]"]

    def test_bad_reference_syntax_is_a_load_error(self):
        """A reference that is not kind:name fails at load time with its path."""
        with pytest.raises(slakit.ConfigError) as info:
            slakit.loads(
                "slos: [{name: s, objectives: [{availability: {target: 0.9}}],"
                " on_violation: {critical: ['pager']}}]"
            )

        assert "slos[0].on_violation.critical" == info.value.errors[0].path
        assert "must be kind:name" in info.value.errors[0].message

    def test_validate_cli_reports_unknown_reference(self, tmp_path, capsys):
        """slakit validate catches a misspelt hook before deployment."""
        path = tmp_path / "slos.yaml"
        path.write_text(
            "slos: [{name: s, objectives: [{availability: {target: 0.9}}],"
            " on_violation: {critical: ['breaker:nope']}}]"
        )

        assert 1 == slakit.cli.main(["validate", str(path)])
        assert "slos[0].on_violation.critical[0]: unknown breaker 'nope'" in capsys.readouterr().err
