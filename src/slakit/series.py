"""
Labelled series under an SLO: light per-label counters with a cardinality cap.

Middleware breaks an SLO's requests down by route, method or tenant. Those values
come from requests, so they are unbounded: a :class:`Series` admits at most ``cap``
distinct label sets and sends the rest to one overflow series, so nothing is dropped
and the totals across series always equal the requests recorded.

A series is five counters (one per outcome), not a ring store: rolling windows and
latency live in the SLO's store, per-series rates come from Prometheus (``rate()`` over
``slakit_series_requests_total``). Writers are lock-free, one dict per thread, like
the store's shards; admitting a new label set takes a lock once.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Final

OVERFLOW: Final = "__overflow__"
"""Label value of the series that takes every label set beyond the cap."""

DEFAULT_CAP: Final = 2_000
"""Distinct label sets per SLO before the overflow series takes over."""

_OUTCOMES = 5  # GOOD, BAD, IGNORED, REJECTED, DISCONNECTED (slakit.ring)


class _Shard:
    __slots__ = ("__weakref__", "alive", "counts")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.alive = True

    def died(self) -> None:
        self.alive = False


class _Token:
    __slots__ = ("__weakref__",)


class Series:
    """
    Per-label outcome counters for one SLO, capped at ``cap`` distinct label sets.

    Args:
        labels: the label names, e.g. ``("route", "method")``.
        cap: distinct label sets kept apart; the rest share the overflow series.

    """

    def __init__(self, labels: tuple[str, ...], cap: int = DEFAULT_CAP) -> None:
        if cap < 1:
            raise ValueError(f"the cardinality cap must be >= 1, got {cap}")
        self.labels = labels
        self.cap = cap
        self.overflow: tuple[str, ...] = (OVERFLOW,) * len(labels)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._reset()
        _TABLES.add(self)

    def _reset(self) -> None:
        self._local.__dict__.pop("shard", None)
        self._local.__dict__.pop("token", None)
        self._known: set[tuple[str, ...]] = set()
        self._shards: list[_Shard] = []
        self._retired: dict[tuple[str, ...], list[int]] = {}

    def key(self, values: tuple[str, ...]) -> tuple[str, ...]:
        """Return ``values`` if admitted (now or before), else the overflow key."""
        if values in self._known:
            return values
        with self._lock:
            if len(self._known) < self.cap:
                self._known.add(values)
                return values
        return self.overflow

    def add(self, key: tuple[str, ...], outcome: int) -> None:
        """Count one event of ``outcome`` under ``key`` (from :meth:`key`). Lock-free."""
        try:
            counts = self._local.shard.counts
        except AttributeError:
            counts = self._register().counts
        c = counts.get(key)
        if c is None:
            c = counts[key] = [0] * _OUTCOMES
        c[outcome] += 1

    def _register(self) -> _Shard:
        shard = _Shard()
        token = _Token()
        weakref.finalize(token, shard.died)
        with self._lock:
            self._shards.append(shard)
        self._local.shard = shard
        self._local.token = token
        return shard

    def __len__(self) -> int:
        """Distinct label sets admitted (the overflow series not included)."""
        return len(self._known)

    def counts(self) -> dict[tuple[str, ...], tuple[int, ...]]:
        """Return the counters of every series, summed over threads (one per outcome)."""
        with self._lock:
            out = _merge({}, self._retired)
            live = []
            for shard in self._shards:
                snapshot = shard.counts.copy()  # atomic under the GIL
                if shard.alive:
                    live.append(shard)
                else:  # its thread exited and nobody writes it any more: keep the counts
                    _merge(self._retired, snapshot)
                _merge(out, snapshot)
            self._shards = live
        return {k: tuple(v) for k, v in out.items()}


def _merge(
    into: dict[tuple[str, ...], list[int]], more: dict[tuple[str, ...], list[int]]
) -> dict[tuple[str, ...], list[int]]:
    for k, v in more.items():
        have = into.get(k)
        into[k] = list(v) if have is None else [a + b for a, b in zip(have, v, strict=True)]
    return into


_TABLES: weakref.WeakSet[Series] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Give a forked child empty counters: its parent's requests are not its own."""
    for table in list(_TABLES):
        table._lock = threading.Lock()
        table._reset()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
