"""
Maintenance windows: time during which events are recorded but left out of every SLI.

At run time, around planned work::

    with slakit.maintenance("checkout", reason="database failover"):
        failover()

or on a schedule, one-off or recurring (an RFC 5545 ``RRULE``, in a time zone, so a
weekly 02:00 window stays at 02:00 local across daylight-saving changes)::

    engine.schedule(MaintenanceWindow(
        "sunday patching", start="2026-03-01T02:00", duration="2h",
        rrule="FREQ=WEEKLY;BYDAY=SU", tz="Europe/Paris",
    ))

Events of excluded seconds count as *ignored* (visible, never against a budget).
Exclusion is applied when the store consolidates its slots, by wall-clock second, so
recording pays nothing for it and a second that straddles a boundary is wholly in or
out by its middle.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import attrs
from dateutil.rrule import rrulestr

from slakit.registry import Registry, default_registry
from slakit.spec import parse_duration

if TYPE_CHECKING:
    from collections.abc import Iterator

    from slakit.spec import SLO


def _start(value: str | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=None)
    except ValueError:
        msg = f"start: expected a local date and time like 2026-03-01T02:00, got {value!r}"
        raise ValueError(msg) from None


def _rrule(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        rrulestr(value, dtstart=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"rrule: {exc}") from None
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"tz: unknown time zone {value!r}") from exc
    return value


@attrs.frozen
class MaintenanceWindow:
    """
    A scheduled maintenance window, one-off or recurring.

    Args:
        name: what it is for (shown in logs and the history).
        start: the first occurrence's local start (``2026-03-01T02:00``).
        duration: how long each occurrence lasts.
        rrule: an RFC 5545 recurrence rule (``FREQ=WEEKLY;BYDAY=SU``); none: one-off.
        tz: the time zone ``start`` and the rule are in.
        slos: the SLOs it applies to (by name); none: every SLO.

    """

    name: str
    start: dt.datetime = attrs.field(converter=_start)
    duration: float = attrs.field(converter=parse_duration)
    rrule: str | None = attrs.field(default=None, converter=_rrule)
    tz: str = attrs.field(default="UTC", converter=_zone)
    slos: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def occurrences(self, since: float, until: float) -> list[tuple[float, float]]:
        """Return the ``(start, end)`` wall-clock spans that overlap ``[since, until)``."""
        zone = ZoneInfo(self.tz)
        first = self.start.replace(tzinfo=zone)
        if self.rrule is None:
            starts = [first]
        else:
            rule = rrulestr(self.rrule, dtstart=first)
            lo = dt.datetime.fromtimestamp(since - self.duration, zone)
            hi = dt.datetime.fromtimestamp(until, zone)
            starts = rule.between(lo, hi, inc=True)
        out = []
        for s in starts:
            begin = s.replace(tzinfo=zone).timestamp()  # wall-clock time, DST applied
            if begin < until and begin + self.duration > since:
                out.append((begin, begin + self.duration))
        return out


@contextlib.contextmanager
def maintenance(*slos: SLO | str, registry: Registry | None = None) -> Iterator[None]:
    """Leave the events of the block out of the named SLOs (all SLOs if none named)."""
    reg = registry if registry is not None else default_registry()
    names = [s if isinstance(s, str) else s.name for s in slos] or [s.name for s in reg.slos()]
    stores = [reg.store(name) for name in names]
    began = reg.clock.time()
    for store in stores:
        store.exclude(began)
    try:
        yield
    finally:
        ended = reg.clock.time()
        for store in stores:
            store.end_exclusion(began, ended)
