"""
Where SLOs meet their stores: the one piece of global state, with a reset for tests.

``track(slo)`` asks the registry for the SLO's store once, at decoration time; the
engine evaluates every SLO of its registry. Most programs use the default registry;
tests build their own with a :class:`~slakit.testing.FakeClock`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from slakit.clock import SYSTEM
from slakit.ring import Store
from slakit.series import DEFAULT_CAP, Series

if TYPE_CHECKING:
    from collections.abc import Sequence

    from slakit.evaluate import Snapshot
    from slakit.spec import SLO
    from slakit.typing import Clock


class Registry:
    """
    SLOs by name, each with its :class:`~slakit.ring.Store` and latest snapshot.

    Args:
        clock: the clock every store of this registry (and its engine) reads.

    """

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._slos: dict[str, SLO] = {}
        self._stores: dict[str, Store] = {}
        self._created: dict[str, float] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._series: dict[str, Series] = {}

    def register(self, slo: SLO) -> Store:
        """
        Return the store of ``slo``, creating it on first use.

        Raises:
            ValueError: another, different SLO is registered under the same name.

        """
        store = self._stores.get(slo.name)
        if store is not None and self._slos[slo.name] == slo:
            return store
        with self._lock:
            known = self._slos.get(slo.name)
            if known is not None and known != slo:
                raise ValueError(f"another SLO named {slo.name!r} is already registered")
            if known is None:
                self._stores[slo.name] = Store(
                    self.clock, thresholds=slo.thresholds, longest=slo.window.seconds
                )
                self._created[slo.name] = self.clock.time()
                self._slos[slo.name] = slo
            return self._stores[slo.name]

    def series(self, slo: SLO, labels: tuple[str, ...], cap: int = DEFAULT_CAP) -> Series:
        """
        Return the labelled series of ``slo`` (see :mod:`slakit.series`), made on first use.

        Raises:
            ValueError: the SLO already has series with other label names.

        """
        self.register(slo)
        with self._lock:
            table = self._series.get(slo.name)
            if table is None:
                table = self._series[slo.name] = Series(labels, cap)
            elif table.labels != labels:
                raise ValueError(
                    f"SLO {slo.name!r} already has series labelled {table.labels}, not {labels}"
                )
            return table

    def series_of(self, name: str) -> Series | None:
        """Return the labelled series of the SLO called ``name``, if it has any."""
        return self._series.get(name)

    def replace(self, slos: Sequence[SLO]) -> list[str]:
        """
        Make ``slos`` the registered SLOs, keeping each store whose SLO kept its name.

        A changed SLO keeps its store (and every count in it) when its latency
        thresholds are the same and its window fits the store's rings; SLOs not in
        ``slos`` stop being evaluated. Returns the names whose definition changed.

        Raises:
            ValueError: an SLO changed its thresholds or outgrew its rings (nothing is
                replaced then): its recorders hold its store, so restart for that.

        """
        with self._lock:
            for slo in slos:
                store = self._stores.get(slo.name)
                if store is not None and not store.holds(slo.thresholds, slo.window.seconds):
                    raise ValueError(
                        f"slos.{slo.name}: its latency thresholds or window changed beyond "
                        "what its store holds; restart to apply it"
                    )
            changed = [s.name for s in slos if s.name in self._slos and self._slos[s.name] != s]
            keep = {s.name for s in slos}
            for name in [n for n in self._slos if n not in keep]:
                del self._slos[name]
                self._snapshots.pop(name, None)
            for slo in slos:
                if slo.name not in self._stores:
                    self._stores[slo.name] = Store(
                        self.clock, thresholds=slo.thresholds, longest=slo.window.seconds
                    )
                    self._created[slo.name] = self.clock.time()
                self._slos[slo.name] = slo
        return changed

    def slos(self) -> tuple[SLO, ...]:
        """Return the registered SLOs in registration order."""
        return tuple(self._slos.values())

    def slo(self, name: str) -> SLO:
        """Return the registered SLO called ``name``."""
        return self._slos[name]

    def store(self, name: str) -> Store:
        """Return the store of the SLO called ``name``."""
        return self._stores[name]

    def created(self, name: str) -> float:
        """Return when the SLO called ``name`` was registered (wall clock)."""
        return self._created[name]

    def publish(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` as the latest evaluation of its SLO (the engine calls this)."""
        self._snapshots[snapshot.slo] = snapshot

    def latest(self, name: str) -> Snapshot | None:
        """Return the latest published snapshot of ``name``, if any."""
        return self._snapshots.get(name)

    def snapshot(self, slo: SLO) -> Snapshot:
        """Return the latest snapshot of ``slo``, evaluating once if there is none."""
        snap = self._snapshots.get(slo.name)
        if snap is not None:
            return snap
        from slakit.engine import evaluate_slo  # noqa: PLC0415 - the engine is downstream

        self.register(slo)
        return evaluate_slo(self, slo, previous=None, slice_state=None)


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """Return the process-wide registry, creating it on first use."""
    global _default  # noqa: PLW0603 - the one global, see reset_default_registry
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Registry()
    return _default


def reset_default_registry(clock: Clock = SYSTEM) -> Registry:
    """Replace the process-wide registry with a fresh one (for tests) and return it."""
    global _default  # noqa: PLW0603
    with _default_lock:
        _default = Registry(clock)
    return _default
