"""
What users declare: SLOs, their objectives, windows and alert policies.

Every class here is frozen data. Fields accept friendly forms (``"99.9%"``,
``"250ms"``, ``"30d"``) and are parsed once, at construction; the parsers raise
``ValueError`` with a message that :mod:`slakit.config` prefixes with the field's path.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import operator
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

if TYPE_CHECKING:
    from slakit.evaluate import Snapshot


class Status(enum.StrEnum):
    """Health of an SLO or objective, from best to worst."""

    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"
    BREACHED = "breached"

    @property
    def rank(self) -> int:
        """Order for comparisons: healthy 0 … breached 3."""
        return _STATUS_ORDER.index(self)


_STATUS_ORDER: Final = list(Status)


class Severity(enum.StrEnum):
    """Severity of a violation; ``critical`` pages, ``warning`` opens a ticket."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


# -- parsing -------------------------------------------------------------------------

_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3_600.0,
    "d": 86_400.0,
    "w": 604_800.0,
}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d|w)")


def parse_duration(value: float | str) -> float:
    """
    Parse a positive duration into seconds: ``0.25``, ``"250ms"``, ``"30d"``, ``"1h30m"``.

    Raises:
        ValueError: not a duration, or not positive.

    """
    if isinstance(value, bool):
        raise ValueError(f"must be a duration such as 250ms or 30d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"must be a duration such as 250ms or 30d, got {value!r}")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"must be a duration such as 250ms or 30d, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


def parse_target(value: float | str) -> float:
    """
    Parse a target ratio strictly between 0 and 1: ``0.999`` or ``"99.9%"``.

    Raises:
        ValueError: not a number, or not in (0, 1).

    """
    ratio = _ratio(value)
    if not 0 < ratio < 1:
        raise ValueError(f"must be in (0, 1), got {_show(value)}")
    return ratio


def parse_fraction(value: float | str) -> float:
    """Parse a ratio in [0, 1]: ``0.01`` or ``"1%"``."""
    ratio = _ratio(value)
    if not 0 <= ratio <= 1:
        raise ValueError(f"must be in [0, 1], got {_show(value)}")
    return ratio


def parse_quantile(value: float | str) -> float:
    """Parse a quantile in (0, 1]: ``0.99`` or ``"p99"`` or ``"99%"``."""
    if isinstance(value, str) and value.strip().lower().startswith("p"):
        digits = value.strip()[1:]
        value = f"{digits}%" if digits.replace(".", "", 1).isdigit() else value
    q = _ratio(value)
    if not 0 < q <= 1:
        raise ValueError(f"must be in (0, 1], got {_show(value)}")
    return q


def _ratio(value: float | str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a number or a percentage, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            # through Decimal so "99.9%" is exactly the float 0.999, not 0.9990000000000001
            number = float(Decimal(text[:-1]) / 100) if text.endswith("%") else float(text)
        except (ValueError, ArithmeticError):
            raise ValueError(
                f"must be a number or a percentage such as 99.9%, got {value!r}"
            ) from None
    else:
        raise ValueError(f"must be a number or a percentage, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"must be finite, got {value!r}")
    return number


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else f"{value}"


def _positive(value: float | str) -> float:
    number = _ratio(value)
    if number <= 0:
        raise ValueError(f"must be > 0, got {_show(value)}")
    return number


def _non_negative(value: float | str) -> float:
    number = _ratio(value)
    if number < 0:
        raise ValueError(f"must be >= 0, got {_show(value)}")
    return number


_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")


def _name(value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            "must start with a letter or _ and hold only letters, digits and _ . : - "
            f"(at most 128), got {value!r}"
        )
    return value


def _opt_duration(value: float | str | None) -> float | None:
    return None if value is None else parse_duration(value)


def _opt_target(value: float | str | None) -> float | None:
    return None if value is None else parse_target(value)


def _opt_number(value: float | str | None) -> float | None:
    return None if value is None else _ratio(value)


# -- windows -------------------------------------------------------------------------

DAY: Final = 86_400.0


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"must be an IANA time zone such as Europe/Paris, got {value!r}") from None
    return value


def _calendar_unit(value: str | None) -> Literal["day", "week", "month"] | None:
    if value is None:
        return None
    if value == "day":
        return "day"
    if value == "week":
        return "week"
    if value == "month":
        return "month"
    raise ValueError(f"must be one of day, week, month, got {value!r}")


@attrs.frozen
class Window:
    """
    A rolling window (``Window.rolling("30d")``) or a calendar one (``Window.calendar("month")``).

    Strings convert: ``"30d"`` is rolling, ``"month"``, ``"week"`` and ``"day"`` are
    calendar periods in UTC; use the constructor for another time zone.
    """

    length: float | None = attrs.field(default=None, converter=_opt_duration)
    """Seconds covered by a rolling window; ``None`` for a calendar window."""
    unit: Literal["day", "week", "month"] | None = attrs.field(
        default=None, converter=_calendar_unit
    )
    tz: str = attrs.field(default="UTC", converter=_timezone)

    def __attrs_post_init__(self) -> None:
        if (self.length is None) == (self.unit is None):
            raise ValueError("a window has either a length or a calendar unit, not both")

    @classmethod
    def rolling(cls, length: float | str) -> Window:
        """Return a rolling window of ``length`` (seconds or ``"30d"``)."""
        return cls(length=length)

    @classmethod
    def calendar(cls, unit: Literal["day", "week", "month"], tz: str = "UTC") -> Window:
        """Return a calendar window: the current day, ISO week or month in ``tz``."""
        return cls(unit=unit, tz=tz)

    @property
    def seconds(self) -> float:
        """Nominal length: exact for rolling windows, 1, 7 or 30 days for calendar ones."""
        if self.length is not None:
            return self.length
        return {"day": DAY, "week": 7 * DAY, "month": 30 * DAY}[self.unit or "month"]

    def bounds(self, now: float) -> tuple[float, float]:
        """Return ``(start, now)``: the wall-clock span the window covers at ``now``."""
        if self.length is not None:
            return now - self.length, now
        zone = ZoneInfo(self.tz)
        local = dt.datetime.fromtimestamp(now, zone)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.unit == "week":
            start -= dt.timedelta(days=start.weekday())
        elif self.unit == "month":
            start = start.replace(day=1)
        # re-attach the zone so a DST change inside the period is accounted for
        start = start.replace(tzinfo=zone)
        return start.timestamp(), now

    def period_length(self, now: float) -> float:
        """Length of the whole period containing ``now`` (rolling: the window's length)."""
        if self.length is not None:
            return self.length
        start, _ = self.bounds(now)
        zone = ZoneInfo(self.tz)
        s = dt.datetime.fromtimestamp(start, zone)
        if self.unit == "day":
            end = s + dt.timedelta(days=1)
        elif self.unit == "week":
            end = s + dt.timedelta(days=7)
        else:
            end = (s.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return end.replace(tzinfo=zone).timestamp() - start

    def __str__(self) -> str:
        if self.length is not None:
            return format_duration(self.length)
        unit = self.unit or "month"
        return unit if self.tz == "UTC" else f"{unit}@{self.tz}"


def to_window(value: Window | float | str) -> Window:
    """Convert ``"30d"``, ``3600`` or ``"month"`` into a :class:`Window`."""
    if isinstance(value, Window):
        return value
    if value in ("day", "week", "month"):
        return Window(unit=value)
    return Window(length=value)


def format_duration(seconds: float) -> str:
    """Format seconds the way they are written in configs: ``30d``, ``5m``, ``250ms``."""
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


# -- alerting ------------------------------------------------------------------------


@attrs.frozen
class BurnRateRule:
    """
    One row of the multi-window, multi-burn-rate table.

    Fires when the burn rate over both windows exceeds ``burn_rate``; the windows are
    given for a 30-day SLO and scaled to the SLO's window (see :meth:`scaled`).
    """

    severity: Severity = attrs.field(converter=Severity)
    long: float = attrs.field(converter=parse_duration)
    short: float = attrs.field(converter=parse_duration)
    burn_rate: float = attrs.field(converter=_positive)

    def __attrs_post_init__(self) -> None:
        if self.short >= self.long:
            raise ValueError(
                f"short window ({format_duration(self.short)}) must be shorter than "
                f"the long window ({format_duration(self.long)})"
            )

    @property
    def name(self) -> str:
        """A stable id such as ``page-1h-5m``."""
        kind = "page" if self.severity is Severity.CRITICAL else "ticket"
        return f"{kind}-{format_duration(self.long)}-{format_duration(self.short)}"

    def scaled(self, slo_window: float) -> BurnRateRule:
        """Scale both windows by ``slo_window / 30d``, to whole seconds (at least 1 s)."""
        factor = slo_window / (30 * DAY)
        if factor == 1:
            return self
        return attrs.evolve(
            self,
            long=max(1.0, round(self.long * factor)),
            short=max(1.0, round(self.short * factor)),
        )


DEFAULT_RULES: Final = (
    BurnRateRule(Severity.CRITICAL, "1h", "5m", 14.4),
    BurnRateRule(Severity.CRITICAL, "6h", "30m", 6),
    BurnRateRule(Severity.WARNING, "3d", "6h", 1),
)
"""The SRE workbook's table for a 30-day SLO: 2 % and 5 % of budget page, 10 % tickets."""


def _rules(value: Iterable[BurnRateRule]) -> tuple[BurnRateRule, ...]:
    return tuple(value)


@attrs.frozen
class AlertPolicy:
    """
    How burn-rate alerts are raised for an SLO.

    Args:
        rules: the burn-rate table (defaults to :data:`DEFAULT_RULES`).
        scale: scale the rules' windows to the SLO's window (they are written for 30 d).
        min_events: an alert needs at least this many events in its long window.
        hysteresis: once open, a violation resolves only when the short window's burn
            rate falls below ``burn_rate * (1 - hysteresis)``, so a value hovering at the
            threshold does not flap.

    """

    rules: tuple[BurnRateRule, ...] = attrs.field(default=DEFAULT_RULES, converter=_rules)
    scale: bool = True
    min_events: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    hysteresis: float = attrs.field(default=0.05, converter=parse_fraction)

    @classmethod
    def default(cls, *, page: bool = True, ticket: bool = True, **kwargs: Any) -> AlertPolicy:
        """Return the workbook table with the page or ticket tiers switched off as asked."""
        keep = {Severity.CRITICAL: page, Severity.WARNING: ticket}
        return cls(rules=tuple(r for r in DEFAULT_RULES if keep[r.severity]), **kwargs)

    @classmethod
    def none(cls) -> AlertPolicy:
        """Return a policy with no burn-rate alerts (budget exhaustion still breaches)."""
        return cls(rules=())

    def rules_for(self, slo_window: float) -> tuple[BurnRateRule, ...]:
        """Return the rules as they apply to an SLO window of ``slo_window`` seconds."""
        if not self.scale:
            return self.rules
        return tuple(r.scaled(slo_window) for r in self.rules)


# -- objectives ----------------------------------------------------------------------


def _objective_name() -> Any:
    return attrs.field(default=None, converter=_optional_name, kw_only=True)


def _optional_name(value: str | None) -> str | None:
    if value is None:
        return None
    return _name(value)


@attrs.frozen
class Availability:
    """Ratio SLI: good events / all events must stay at or above ``target``."""

    target: float = attrs.field(converter=parse_target)
    name: str | None = _objective_name()

    @property
    def key(self) -> str:
        """The objective's name within its SLO."""
        return self.name or "availability"


@attrs.frozen
class Latency:
    """Ratio SLI: events that took at most ``threshold`` seconds / all events."""

    threshold: float = attrs.field(converter=parse_duration)
    target: float = attrs.field(converter=parse_target)
    name: str | None = _objective_name()

    @property
    def key(self) -> str:
        """The objective's name within its SLO, e.g. ``latency-250ms``."""
        return self.name or f"latency-{format_duration(self.threshold)}"


@attrs.frozen
class Percentile:
    """
    The ``q`` quantile of latency must stay at or below ``threshold``.

    Without ``slice`` it is judged over the SLO window (met or not, no budget). With
    ``slice`` it becomes a timeslice objective: a slice is good when its quantile
    passes, and good slices / slices must stay at or above ``target``.
    """

    q: float = attrs.field(converter=parse_quantile)
    threshold: float = attrs.field(converter=parse_duration)
    slice: float | None = attrs.field(default=None, converter=_opt_duration)
    target: float | None = attrs.field(default=None, converter=_opt_target)
    name: str | None = _objective_name()

    def __attrs_post_init__(self) -> None:
        if (self.slice is None) != (self.target is None):
            raise ValueError("slice and target go together: give both or neither")
        if self.slice is not None and self.slice % 60:
            raise ValueError(f"slice must be a whole number of minutes, got {self.slice}s")

    @property
    def key(self) -> str:
        """The objective's name within its SLO, e.g. ``p99-250ms``."""
        return self.name or f"p{self.q * 100:g}-{format_duration(self.threshold)}"


@attrs.frozen
class Throughput:
    """The request rate over ``window`` must stay at or above ``min_rps`` (alerting only)."""

    min_rps: float = attrs.field(converter=_positive)
    window: float = attrs.field(default=300.0, converter=parse_duration)
    severity: Severity = attrs.field(default=Severity.WARNING, converter=Severity)
    name: str | None = _objective_name()

    @property
    def key(self) -> str:
        """The objective's name within its SLO."""
        return self.name or "throughput"


@attrs.frozen
class Uptime:
    """
    Timeslice SLI: a slice is good when its error ratio is at most ``max_error_ratio``.

    Uptime = good slices / slices in the window; its budget is time:
    ``(1 - target) × window``. Slices without traffic are good.
    """

    target: float = attrs.field(converter=parse_target)
    slice: float = attrs.field(default=60.0, converter=parse_duration)
    max_error_ratio: float = attrs.field(default=0.01, converter=parse_fraction)
    name: str | None = _objective_name()

    def __attrs_post_init__(self) -> None:
        if self.slice % 1 or self.slice > 3_600:
            raise ValueError(f"slice must be whole seconds up to 1h, got {self.slice}s")

    @property
    def key(self) -> str:
        """The objective's name within its SLO."""
        return self.name or "uptime"


_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _op(value: str) -> str:
    if value not in _OPS:
        raise ValueError(f"must be one of {', '.join(_OPS)}, got {value!r}")
    return value


@attrs.frozen
class Threshold:
    """
    A sampled value (queue depth, cache hit ratio, lag, CPU) held to ``value op level``.

    ``op`` says what is *good*: ``"<="`` means the value should stay at or below the
    levels. With ``warning``/``critical`` levels, crossing one opens a violation of that
    severity. Without levels, severity follows the relative deviation from ``target``
    in the bad direction: > 10 % info, > 20 % warning, > 50 % critical.

    The value comes from ``source`` (called each engine tick) or from
    :meth:`slakit.engine.Engine.set_value` under the objective's name.
    """

    name: str = attrs.field(converter=_name)
    op: str = attrs.field(default="<=", converter=_op)
    target: float | None = attrs.field(default=None, converter=_opt_number)
    warning: float | None = attrs.field(default=None, converter=_opt_number)
    critical: float | None = attrs.field(default=None, converter=_opt_number)
    source: Callable[[], float] | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.warning is None and self.critical is None:
            if self.target is None:
                raise ValueError("give warning/critical levels, a target, or both")
            if self.target == 0:
                raise ValueError("target must not be 0 when severity is by deviation")
        if self.warning is not None and self.critical is not None:
            good = _OPS[self.op]
            if good(self.critical, self.warning) and self.critical != self.warning:
                raise ValueError(
                    f"critical ({self.critical:g}) must be beyond warning "
                    f"({self.warning:g}) for op {self.op!r}"
                )

    @property
    def key(self) -> str:
        """The objective's name within its SLO."""
        return self.name

    def level(self, severity: Severity) -> float | None:
        """
        Return the bound past which ``severity`` applies, or ``None`` if it has none.

        Explicit levels give warning and critical; without levels, info, warning and
        critical sit 10 %, 20 % and 50 % past the target in the bad direction.
        """
        if self.warning is not None or self.critical is not None:
            return {Severity.WARNING: self.warning, Severity.CRITICAL: self.critical}.get(severity)
        assert self.target is not None
        factor = {Severity.INFO: 0.1, Severity.WARNING: 0.2, Severity.CRITICAL: 0.5}[severity]
        return self.target + self.bad_sign * factor * abs(self.target)

    @property
    def bad_sign(self) -> float:
        """+1 when larger values are worse (``<``, ``<=``), -1 otherwise."""
        return 1.0 if self.op in ("<", "<=") else -1.0

    def is_past(self, value: float, level: float) -> bool:
        """Return True when ``value`` is on the bad side of ``level``."""
        return not _OPS[self.op](value, level)

    def severity(self, value: float) -> Severity | None:
        """Return how bad ``value`` is, or ``None`` when it is fine."""
        for sev in (Severity.CRITICAL, Severity.WARNING, Severity.INFO):
            level = self.level(sev)
            if level is not None and self.is_past(value, level):
                return sev
        return None


Objective = Availability | Latency | Percentile | Throughput | Uptime | Threshold
"""Any objective an SLO can hold."""

OBJECTIVE_KINDS: Final[dict[str, type[Objective]]] = {
    "availability": Availability,
    "latency": Latency,
    "percentile": Percentile,
    "throughput": Throughput,
    "uptime": Uptime,
    "threshold": Threshold,
}


HookRef = str | dict[str, dict[str, Any]]
"""A hook named ``"kind:name"`` (``"breaker:payments"``), or ``{kind: {options}}`` inline."""

HOOK_KINDS: Final = ("breaker", "shed", "scale", "notify", "escalate")


def _refs(value: Iterable[HookRef]) -> tuple[HookRef, ...]:
    refs = tuple(value)
    for ref in refs:
        if isinstance(ref, str):
            kind, _, name = ref.partition(":")
            if kind not in HOOK_KINDS or not name:
                raise ValueError(
                    f"must be kind:name with kind one of {', '.join(HOOK_KINDS)}, got {ref!r}"
                )
        elif not (isinstance(ref, dict) and len(ref) == 1 and next(iter(ref)) in HOOK_KINDS):
            raise ValueError(f"must be kind:name or {{kind: {{options}}}}, got {ref!r}")
    return refs


def _attempts(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be an integer >= 1, got {value!r}")
    return value


def _cooldown(value: float | str) -> float:
    return 0.0 if value in (0, "0", "0s") else parse_duration(value)


@attrs.frozen
class ViolationPolicy:
    """
    What to do about an SLO's violations, as configuration: hooks named by reference.

    ``slakit.remediate.build`` turns it into a running
    :class:`~slakit.remediate.policy.Policy` with the named objects.
    """

    critical: tuple[HookRef, ...] = attrs.field(default=(), converter=_refs)
    warning: tuple[HookRef, ...] = attrs.field(default=(), converter=_refs)
    info: tuple[HookRef, ...] = attrs.field(default=(), converter=_refs)
    dry_run: bool = False
    cooldown: float = attrs.field(default=0.0, converter=_cooldown)
    max_attempts: int = attrs.field(default=3, converter=_attempts)


def _objectives(value: Iterable[Objective]) -> tuple[Objective, ...]:
    objectives = tuple(value)
    if not objectives:
        raise ValueError("an SLO needs at least one objective")
    keys = [o.key for o in objectives]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"objective names must be unique, repeated: {', '.join(dupes)}")
    return objectives


@attrs.frozen
class SLO:
    """
    A service level objective: objectives held over a window, with an alert policy.

    Example::

        checkout = SLO(
            "checkout",
            objectives=[Availability("99.9%"), Latency("250ms", "99%")],
            window="30d",
        )
    """

    name: str = attrs.field(converter=_name)
    objectives: tuple[Objective, ...] = attrs.field(converter=_objectives)
    window: Window = attrs.field(default=Window(length=30 * DAY), converter=to_window)
    alerting: AlertPolicy = attrs.field(factory=AlertPolicy)
    description: str = ""
    rejected_are_bad: bool = True
    """Calls refused by a breaker or shedder count as bad for availability (users saw
    an error); set False to leave them out. They never count for latency."""
    on_violation: ViolationPolicy | None = None
    """Enforcement by configuration (see :mod:`slakit.remediate.build`)."""

    def __attrs_post_init__(self) -> None:
        for o in self.objectives:
            slice_ = o.slice if isinstance(o, Percentile | Uptime) else None
            if slice_ is not None and slice_ > self.window.seconds:
                raise ValueError(f"{o.key}: slice is longer than the SLO window")
        for rule in self.alerting.rules_for(self.window.seconds):
            if rule.long > self.window.seconds:
                raise ValueError(f"alert rule {rule.name} looks back further than the SLO window")

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Latency thresholds whose slow counts the store must keep exactly."""
        seen: dict[float, None] = {}
        for o in self.objectives:
            if isinstance(o, Latency):
                seen[o.threshold] = None
        return tuple(seen)

    def budget_remaining(self, objective: str | None = None) -> float:
        """
        Return the fraction of error budget left (1 = untouched, <= 0 = exhausted).

        Reads the last snapshot of the default registry's engine (a dict lookup); with
        no snapshot yet, evaluates once. ``objective`` picks one objective by name;
        by default the lowest remaining budget of all budgeted objectives.
        """
        return self.snapshot().budget_remaining(objective)

    def snapshot(self) -> Snapshot:
        """Return the latest evaluation of this SLO in the default registry."""
        from slakit.registry import default_registry  # noqa: PLC0415 - upstream reads late

        return default_registry().snapshot(self)
