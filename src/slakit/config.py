"""
Loading SLO definitions from YAML (safe loading), TOML, JSON or dicts, through cattrs.

Every problem is reported, each with the path of its field::

    slos[0].objectives[1].target: must be in (0, 1), got 1.5
    slos[1].window: must be a duration such as 250ms or 30d, got 'soon'

Shape of a file::

    service: shop
    slos:
      - name: checkout
        window: 30d                       # or month, week, {calendar: month, tz: Europe/Paris}
        objectives:
          - availability: {target: 99.9%}
          - latency: {threshold: 250ms, target: 99%}
        alerting: default                 # or none, or {rules: [...], min_events: 10, ...}
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import cattrs
import yaml
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, override

from slakit import spec
from slakit.exceptions import ConfigError, FieldError
from slakit.formula import Formula, FormulaError
from slakit.maintenance import MaintenanceWindow
from slakit.sla import PENALTY_VARIABLES, Contract, Credit

Section = dict[str, dict[str, Any]]
"""Named objects of one kind: ``{name: {option: value}}``."""


@attrs.frozen
class Config:
    """A loaded configuration file: the service, its SLOs and their enforcement."""

    slos: tuple[spec.SLO, ...]
    service: str = "service"
    breakers: Section = attrs.field(factory=dict)
    shedders: Section = attrs.field(factory=dict)
    scalers: Section = attrs.field(factory=dict)
    notifiers: Section = attrs.field(factory=dict)
    """``{name: {kind: {options}}}`` with kind log, webhook, slack, pagerduty,
    alertmanager or email."""
    escalations: Section = attrs.field(factory=dict)
    """``{name: {levels: [{notify: [names], after: 5m}, ...]}}``."""
    contracts: tuple[Contract, ...] = ()
    """``{name: {customer, slo, weights, credits: [{below, percent}], penalty, monthly_fee}}``."""
    maintenance: tuple[MaintenanceWindow, ...] = ()
    """``{name: {start, duration, rrule, tz, slos}}``: scheduled maintenance windows."""

    def __attrs_post_init__(self) -> None:
        names = [s.name for s in self.slos]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"SLO names must be unique, repeated: {', '.join(dupes)}")
        errors = []
        objectives = {s.name: {o.key for o in s.objectives} for s in self.slos}
        for c in self.contracts:
            if c.slo not in objectives:
                errors.append(FieldError(f"contracts.{c.name}.slo", f"no SLO named {c.slo!r}"))
                continue
            errors.extend(
                FieldError(f"contracts.{c.name}.weights.{key}", f"{c.slo} has no such objective")
                for key in c.weights
                if key not in objectives[c.slo]
            )
        for w in self.maintenance:
            errors.extend(
                FieldError(f"maintenance.{w.name}.slos", f"no SLO named {name!r}")
                for name in w.slos
                if name not in objectives
            )
        if errors:
            raise ConfigError(errors)


_ALERTING_KEYS: Final = {"rules", "min_events", "hysteresis", "scale", "page", "ticket"}


def _converter() -> cattrs.Converter:  # noqa: C901 - the one place wiring every hook
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def parsed(fn: Callable[[Any], Any]) -> Any:
        return override(struct_hook=lambda value, _type: fn(value))

    def register(cls: type, **fields: Any) -> None:
        # each converter-carrying field is parsed on its own, so cattrs collects every
        # field's error with its name; the constructor then runs cross-field checks
        for f in attrs.fields(cls):
            if f.converter is not None and f.name not in fields:
                fields[f.name] = parsed(f.converter)
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv, **fields))

    for cls in (spec.Availability, spec.Latency, spec.Percentile, spec.Throughput, spec.Uptime):
        register(cls)
    register(spec.Threshold, source=override(omit=True))
    register(spec.BurnRateRule)
    register(spec.ViolationPolicy)

    def objective(value: Any, _type: Any) -> spec.Objective:
        if not isinstance(value, Mapping) or len(value) != 1:
            raise ValueError(
                "must be a mapping with one key naming the kind, "
                f"one of {', '.join(spec.OBJECTIVE_KINDS)}"
            )
        ((kind, body),) = value.items()
        cls = spec.OBJECTIVE_KINDS.get(kind)
        if cls is None:
            raise ValueError(
                f"unknown objective kind {kind!r}, expected one of "
                f"{', '.join(spec.OBJECTIVE_KINDS)}"
            )
        if not isinstance(body, Mapping):
            raise ValueError(f"{kind}: must be a mapping of its fields, got {body!r}")
        return conv.structure(body, cls)

    def window(value: Any, _type: Any) -> spec.Window:
        if isinstance(value, Mapping):
            extra = set(value) - {"calendar", "rolling", "tz"}
            if extra:
                raise ValueError(f"unknown window keys: {', '.join(sorted(extra))}")
            if "calendar" in value:
                return spec.Window(unit=value["calendar"], tz=value.get("tz", "UTC"))
            return spec.Window(length=value.get("rolling"))
        return spec.to_window(value)

    def alerting(value: Any, _type: Any) -> spec.AlertPolicy:
        if value in (None, "default"):
            return spec.AlertPolicy()
        if value == "none":
            return spec.AlertPolicy.none()
        if not isinstance(value, Mapping):
            raise ValueError(f"must be default, none or a mapping, got {value!r}")
        extra = set(value) - _ALERTING_KEYS
        if extra:
            raise ValueError(f"unknown alerting keys: {', '.join(sorted(extra))}")
        kwargs: dict[str, Any] = {
            k: value[k] for k in ("min_events", "hysteresis", "scale") if k in value
        }
        if "rules" in value:
            try:
                rules = conv.structure(value["rules"], list[spec.BurnRateRule])
            except Exception as exc:  # keep the path below `rules`
                raise ConfigError(_flatten(exc, "rules")) from None
            return spec.AlertPolicy(rules=rules, **kwargs)
        return spec.AlertPolicy.default(
            page=bool(value.get("page", True)), ticket=bool(value.get("ticket", True)), **kwargs
        )

    conv.register_structure_hook_func(lambda t: t == spec.Objective, objective)
    conv.register_structure_hook(spec.Window, window)
    conv.register_structure_hook(spec.AlertPolicy, alerting)
    register(
        spec.SLO,
        window=override(struct_hook=window),
        objectives=override(
            struct_hook=lambda v, _t: tuple(conv.structure(v, list[spec.Objective]))
        ),
    )

    conv.register_structure_hook(
        Config,
        make_dict_structure_fn(
            Config,
            conv,
            slos=override(struct_hook=lambda v, _t: tuple(conv.structure(v, list[spec.SLO]))),
            breakers=override(struct_hook=_section),
            shedders=override(struct_hook=_section),
            scalers=override(struct_hook=_section),
            notifiers=override(struct_hook=_section),
            escalations=override(struct_hook=_section),
            contracts=override(struct_hook=_named(_contract)),
            maintenance=override(struct_hook=_named(MaintenanceWindow)),
        ),
    )
    return conv


def _section(value: Any, _type: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Mapping) for k, v in value.items()
    ):
        raise ValueError("must be a mapping of names to mappings of options")
    return {k: dict(v) for k, v in value.items()}


def _named(kind: Callable[..., Any]) -> Callable[[Any, Any], tuple[Any, ...]]:
    """Build ``kind(name=..., **options)`` per entry; errors carry the field's path."""

    def hook(value: Any, _type: Any) -> tuple[Any, ...]:
        out, errors = [], []
        for name, opts in _section(value, _type).items():
            try:
                out.append(kind(name=name, **opts))
            except TypeError as exc:  # an unknown or missing option
                errors.append(FieldError(name, str(exc).split("__init__() ")[-1]))
            except ValueError as exc:
                field, sep, message = str(exc).partition(": ")
                known = sep and field.replace("_", "").isalnum()
                where = f"{name}.{field}" if known else name
                errors.append(FieldError(where, message if known else str(exc)))
        if errors:
            raise ConfigError(errors)
        return tuple(out)

    return hook


def _contract(**opts: Any) -> Contract:
    schedule = opts.pop("credits", ())
    try:
        steps = [Credit(**c) for c in schedule]
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"credits: each step needs below (0-1] and percent [0-100]: {exc}"
        ) from None
    penalty = opts.pop("penalty", None)
    if penalty is not None:
        try:
            opts["penalty"] = Formula.parse(penalty, PENALTY_VARIABLES)
        except FormulaError as exc:
            raise ValueError(f"penalty: {exc}") from None
    weights = opts.get("weights", {})
    if isinstance(weights, Mapping) and any(
        not isinstance(w, int | float) for w in weights.values()
    ):
        raise ValueError("weights: each weight must be a number")
    return Contract(credits=steps, **opts)


_CONVERTER: Final = _converter()


def load_dict(data: Mapping[str, Any]) -> Config:
    """
    Build a :class:`Config` from plain data.

    Raises:
        ConfigError: listing every invalid field with its path.

    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            [FieldError("", f"the root must be a mapping, got {type(data).__name__}")]
        )
    try:
        return _CONVERTER.structure(dict(data), Config)
    except Exception as exc:  # cattrs groups every field's error
        raise ConfigError(list(_flatten(exc, ""))) from None


def loads(text: str, fmt: str = "yaml") -> Config:
    """Parse ``text`` as ``yaml`` (safe loading), ``toml`` or ``json`` and load it."""
    if fmt not in ("yaml", "toml", "json"):
        raise ValueError(f"unknown format {fmt!r}: use yaml, toml or json")
    if fmt in ("yaml", "json") and _depth(text) > MAX_DEPTH:
        raise ConfigError([FieldError("", f"not valid {fmt}: nested too deeply")])
    try:
        if fmt == "yaml":
            data = yaml.safe_load(text)
        elif fmt == "toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # TOML and JSON errors included
        # PyYAML lets some errors out raw: chr() of an escape like "\U44444444" (the fuzzer)
        raise ConfigError([FieldError("", f"not valid {fmt}: {exc}")]) from None
    except RecursionError:  # found by the fuzzer: [[[[... a thousand levels deep
        raise ConfigError([FieldError("", f"not valid {fmt}: nested too deeply")]) from None
    try:
        return load_dict(data if data is not None else {})
    except RecursionError:
        raise ConfigError([FieldError("", "nested too deeply")]) from None


MAX_DEPTH: Final = 64
"""Brackets a YAML or JSON configuration may nest (real ones use fewer than ten)."""


def _depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting outside quotes (PyYAML is quadratic, then recursive, in it)."""
    depth = deepest = 0
    quote = ""
    escaped = False
    prev = "\n"  # the last character that was not a space
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'" and prev in "\n:[{,-":  # a quoted scalar starts here, not "don't"
            quote = ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
        if ch not in " \t":
            prev = ch
    return deepest


def load(path: str | Path) -> Config:
    """Load a configuration file; the format follows the suffix (.yaml, .yml, .toml, .json)."""
    p = Path(path)
    fmt = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}.get(
        p.suffix.lower(), "yaml"
    )
    return loads(p.read_text(encoding="utf-8"), fmt)


def _join(path: str, note: object) -> str:
    name = getattr(note, "name", None)
    if name is not None:
        return f"{path}.{name}" if path else str(name)
    index = getattr(note, "index", None)
    if index is not None:
        return f"{path}[{index}]"
    return path


def _flatten(exc: BaseException, path: str) -> list[FieldError]:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        out: list[FieldError] = []
        for inner in exc.exceptions:
            notes = getattr(inner, "__notes__", [])
            sub = path
            for note in notes:
                if hasattr(note, "name") or hasattr(note, "index"):
                    sub = _join(path, note)
            out.extend(_flatten(inner, sub))
        return out
    if isinstance(exc, ForbiddenExtraKeysError):
        return [
            FieldError(f"{path}.{k}" if path else str(k), "unknown field")
            for k in sorted(exc.extra_fields, key=str)  # YAML keys may be null or numbers
        ]
    if isinstance(exc, KeyError):
        return [FieldError(path, "required field missing")]
    if isinstance(exc, ConfigError):
        return [FieldError(_prefix(path, e.path), e.message) for e in exc.errors]
    return [FieldError(path, str(exc))]


def _prefix(path: str, sub: str) -> str:
    if not sub:
        return path
    return f"{path}.{sub}" if path else sub
