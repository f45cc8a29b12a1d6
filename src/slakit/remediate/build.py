"""
Building enforcement from configuration: named hooks, and each SLO's policy.

:func:`build` reads a :class:`~slakit.config.Config`'s ``breakers``, ``shedders``,
``scalers``, ``notifiers`` and ``escalations`` sections, constructs each object with
its options, resolves every SLO's ``on_violation`` references (``"breaker:payments"``,
``"notify:oncall"``, or inline ``{shed: {fraction: 0.2}}``) and, given an engine,
enforces the resulting policies. Every problem is reported with its path, so
``slakit validate`` catches a misspelt reference before deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from slakit.clock import SYSTEM
from slakit.exceptions import ConfigError, FieldError
from slakit.remediate.breaker import CircuitBreaker
from slakit.remediate.escalate import Escalation, Level
from slakit.remediate.notify import (
    AlertmanagerNotifier,
    EmailNotifier,
    HttpSettings,
    LogNotifier,
    Notifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from slakit.remediate.policy import Policy
from slakit.remediate.scale import Scaler
from slakit.remediate.shed import LoadShedder
from slakit.spec import parse_duration

if TYPE_CHECKING:
    from slakit.config import Config
    from slakit.engine import Engine
    from slakit.spec import SLO, ViolationPolicy
    from slakit.typing import Clock, Hook

T = TypeVar("T")

_NOTIFIER_KINDS: dict[str, type[Notifier]] = {
    "log": LogNotifier,
    "email": EmailNotifier,
    "webhook": WebhookNotifier,
    "slack": SlackNotifier,
    "alertmanager": AlertmanagerNotifier,
    "pagerduty": PagerDutyNotifier,
}
_HTTP_OPTIONS = ("timeout", "retries", "backoff", "allow_link_local")


@attrs.frozen
class Enforcement:
    """The objects built from a configuration, by name, and each SLO's policy."""

    breakers: dict[str, CircuitBreaker]
    shedders: dict[str, LoadShedder]
    scalers: dict[str, Scaler]
    notifiers: dict[str, Notifier]
    escalations: dict[str, Escalation]
    policies: dict[str, Policy]
    """Per SLO name."""


def build(config: Config, engine: Engine | None = None, *, clock: Clock = SYSTEM) -> Enforcement:
    """
    Construct the configured hooks and policies; with ``engine``, enforce them.

    The engine also gets the configured maintenance windows.

    Raises:
        ConfigError: listing every invalid option and unknown reference with its path.

    """
    b = _Builder(config.service, clock)
    breakers = b.section("breakers", config.breakers, CircuitBreaker, "name")
    shedders = b.section("shedders", config.shedders, LoadShedder, "name")
    scalers = b.section("scalers", config.scalers, Scaler, "service", by_service=True)
    notifiers = {
        name: n
        for name, opts in config.notifiers.items()
        if (n := b.notifier(f"notifiers.{name}", name, opts)) is not None
    }
    escalations = {
        name: e
        for name, opts in config.escalations.items()
        if (e := b.escalation(f"escalations.{name}", name, opts, config.notifiers, notifiers))
        is not None
    }
    named: dict[str, Mapping[str, Hook]] = {
        "breaker": breakers,
        "shed": shedders,
        "scale": scalers,
        "notify": notifiers,
        "escalate": escalations,
    }
    known = {
        "breaker": config.breakers,
        "shed": config.shedders,
        "scale": config.scalers,
        "notify": config.notifiers,
        "escalate": config.escalations,
    }
    policies = {
        slo.name: b.policy(f"slos[{i}].on_violation", slo, slo.on_violation, named, known)
        for i, slo in enumerate(config.slos)
        if slo.on_violation is not None
    }
    if b.errors:
        raise ConfigError(b.errors)
    if engine is not None:
        for name, policy in policies.items():
            engine.enforce(name, policy)
        for window in config.maintenance:
            engine.schedule(window)
    return Enforcement(breakers, shedders, scalers, notifiers, escalations, policies)


class _Builder:
    """Constructs objects, collecting every error with its path."""

    def __init__(self, service: str, clock: Clock) -> None:
        self.service = service
        self.clock = clock
        self.errors: list[FieldError] = []

    def make(self, path: str, factory: Callable[..., T], options: Mapping[str, Any]) -> T | None:
        try:
            return factory(**options)
        except (TypeError, ValueError) as exc:
            self.errors.append(FieldError(path, str(exc)))
            return None

    def section(
        self,
        title: str,
        entries: Mapping[str, Mapping[str, Any]],
        factory: Callable[..., T],
        first: str,
        *,
        by_service: bool = False,
    ) -> dict[str, T]:
        out = {}
        for name, options in entries.items():
            defaults = {first: self.service if by_service else name, "clock": self.clock}
            built = self.make(f"{title}.{name}", factory, {**defaults, **options})
            if built is not None:
                out[name] = built
        return out

    def notifier(self, path: str, name: str, options: Mapping[str, Any]) -> Notifier | None:
        if len(options) != 1 or next(iter(options)) not in _NOTIFIER_KINDS:
            self.errors.append(
                FieldError(
                    path, f"must be {{kind: {{options}}}}, kind one of {', '.join(_NOTIFIER_KINDS)}"
                )
            )
            return None
        ((kind, raw),) = options.items()
        opts = {"name": name, "service": self.service, **(raw or {})}
        cls = _NOTIFIER_KINDS[kind]
        if issubclass(cls, LogNotifier | EmailNotifier):
            return self.make(f"{path}.{kind}", cls, opts)
        http = {k: opts.pop(k) for k in _HTTP_OPTIONS if k in opts}
        try:
            if "timeout" in http:
                http["timeout"] = parse_duration(http["timeout"])
            opts["settings"] = HttpSettings(**http)
        except (TypeError, ValueError) as exc:
            self.errors.append(FieldError(f"{path}.{kind}", str(exc)))
            return None
        return self.make(f"{path}.{kind}", cls, opts)

    def escalation(
        self,
        path: str,
        name: str,
        options: Mapping[str, Any],
        declared: Mapping[str, Any],
        notifiers: Mapping[str, Notifier],
    ) -> Escalation | None:
        raw_levels = options.get("levels")
        if not isinstance(raw_levels, list) or not raw_levels:
            self.errors.append(FieldError(f"{path}.levels", "must be a non-empty list of levels"))
            return None
        levels = []
        for k, raw in enumerate(raw_levels):
            here = f"{path}.levels[{k}]"
            if not isinstance(raw, Mapping):
                self.errors.append(FieldError(here, "must be {notify: [names], after: delay}"))
                continue
            chosen: list[Hook] = []
            for m, ref in enumerate(raw.get("notify", [])):
                if ref not in declared:
                    self.errors.append(
                        FieldError(f"{here}.notify[{m}]", _unknown("notifier", ref, declared))
                    )
                elif ref in notifiers:
                    chosen.append(notifiers[ref])
            level = self.make(here, Level, {"notifiers": chosen, "after": raw.get("after", 0)})
            if level is not None:
                levels.append(level)
        return self.make(path, Escalation, {"levels": levels, "name": name})

    def policy(
        self,
        path: str,
        slo: SLO,
        spec: ViolationPolicy,
        named: Mapping[str, Mapping[str, Hook]],
        declared: Mapping[str, Mapping[str, Any]],
    ) -> Policy:
        inline: dict[str, tuple[Callable[..., Hook], dict[str, Any]]] = {
            "breaker": (CircuitBreaker, {"name": slo.name}),
            "shed": (LoadShedder, {"name": slo.name}),
            "scale": (Scaler, {"service": self.service}),
        }
        hooks: dict[str, list[Hook]] = {"critical": [], "warning": [], "info": []}
        for severity, chosen in hooks.items():
            for j, ref in enumerate(getattr(spec, severity)):
                here = f"{path}.{severity}[{j}]"
                hook: Hook | None = None
                if isinstance(ref, str):
                    kind, _, name = ref.partition(":")
                    if name not in declared[kind]:
                        self.errors.append(FieldError(here, _unknown(kind, name, declared[kind])))
                    hook = named[kind].get(name)
                else:
                    ((kind, options),) = ref.items()
                    if kind not in inline:
                        self.errors.append(FieldError(here, f"{kind} cannot be defined inline"))
                        continue
                    factory, defaults = inline[kind]
                    hook = self.make(here, factory, {**defaults, "clock": self.clock, **options})
                if hook is not None:
                    chosen.append(hook)
        return Policy(
            critical=hooks["critical"],
            warning=hooks["warning"],
            info=hooks["info"],
            dry_run=spec.dry_run,
            cooldown=spec.cooldown,
            max_attempts=spec.max_attempts,
        )


def _unknown(kind: str, name: str, declared: Mapping[str, Any]) -> str:
    return f"unknown {kind} {name!r} (known: {', '.join(sorted(declared)) or 'none'})"
