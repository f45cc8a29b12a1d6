"""
The store: per-thread shards written without a lock, and multi-resolution rings.

Writers
    Each thread owns a :class:`_Shard` found through a ``threading.local``.
    A shard holds one open :class:`_Slot` (the current wall-clock epoch) whose
    histogram is a sparse ``dict`` of *key* → count. A key packs the latency bucket,
    the outcome and one bit that says whether the duration exceeds the latency
    threshold that falls inside that bucket, so counts, bad counts and slow counts
    for every threshold are all derived from one dict: a reader can never see
    ``bad > total`` or ``slow > total``, and no event is kept.
    When the epoch changes the writer swaps in a fresh slot and appends the closed
    one to a ``deque`` (an atomic operation): once a second at most, never per event.

Readers
    :meth:`Store.consolidate` (the engine, under the store's lock) drains the closed
    slots into *levels*: rings of cumulative count vectors at 1 s, 1 min and 1 h,
    so the counts of any window are one subtraction, and histogram rings at 1 min,
    1 h and 1 day for percentiles. Open slots are read in place and added on top.

Alignment
    A slot covers ``[epoch * r, (epoch + 1) * r)`` of wall-clock time. The epoch of an
    event is taken from the monotonic clock at its end plus a wall-clock offset that
    the store re-reads at every consolidation (so a step of the wall clock is followed
    within one engine tick, and the hot path reads one clock only).
    A rolling window of length ``W`` read at a level of resolution ``r`` covers epochs
    ``[E - W / r, E]`` where ``E`` is the current epoch: ``W / r`` closed slots plus the
    current one.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import threading
import weakref
import zlib
from array import array
from collections import deque
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar

import attrs

from slakit import sketch
from slakit.faults import internal_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from slakit.typing import Clock

GOOD: Final = 0
"""Outcome code of an event that met the objective's definition of success."""
BAD: Final = 1
"""Outcome code of a failed event."""
IGNORED: Final = 2
"""Outcome code of an event excluded from every SLI (counted for visibility)."""
REJECTED: Final = 3
"""Outcome code of a call a breaker or shedder refused: it never ran. Kept apart from
latency; the SLO decides whether it counts as bad for availability."""
DISCONNECTED: Final = 4
"""Outcome code of a request whose client went away before the answer was complete:
not the service's fault, so not in availability, but its wait counts for latency."""

_OUTCOME_MASK = 0b111
_ABOVE = 0b1000  # duration is above the threshold that lives in this key's bucket
_BUCKET_SHIFT = 4

_NS = 1_000_000_000

P = ParamSpec("P")
R = TypeVar("R")


@attrs.frozen
class LevelSpec:
    """One ring of the store: ``slots`` slots of ``resolution`` seconds each."""

    resolution: int
    slots: int


REPLAY_BATCH: Final = 1_024
"""Slots :meth:`Store.record_many` lets wait before it consolidates them itself: a month
of minutes replayed at once would otherwise hold ~2 KiB per slot until the next tick."""

COUNT_LEVELS: Final = (LevelSpec(1, 3_700), LevelSpec(60, 4_400), LevelSpec(3_600, 900))
"""Count rings: 1 s over ~1 h, 1 min over ~3 d, 1 h over ~37 d (grown for longer SLOs)."""
HIST_LEVELS: Final = (LevelSpec(60, 70), LevelSpec(3_600, 80), LevelSpec(86_400, 40))
"""Histogram rings: 1 min over ~1 h, 1 h over ~3 d, 1 day over ~40 d (grown likewise)."""


@attrs.frozen
class Counts:
    """Event counts over a span of slots."""

    total: int
    """Events that ran and count towards SLIs (good + bad); rejected ones are apart."""
    bad: int
    ignored: int
    rejected: int
    disconnected: int
    """Requests whose client left early: apart from ``total``, but in ``slow`` and the
    latency histogram (a client that gave up waiting is a latency signal)."""
    slow: tuple[int, ...]
    """Per latency threshold of the store, events (and disconnects) that exceeded it."""

    @property
    def timed(self) -> int:
        """Events whose latency counts: ``total`` plus ``disconnected``."""
        return self.total + self.disconnected

    @property
    def good(self) -> int:
        """Events that succeeded."""
        return self.total - self.bad


class _Slot:
    __slots__ = ("end", "epoch", "hist")

    def __init__(self, epoch: int, end: int = 0) -> None:
        self.epoch = epoch
        self.end = end  # monotonic ns at which the slot closes; 0 forces a roll
        self.hist: dict[int, int] = {}


class _Shard:
    """One writer's state. Only its own thread writes ``cur``; readers only read."""

    __slots__ = ("__weakref__", "alive", "cur", "pending")

    def __init__(self) -> None:
        self.cur = _Slot(-1)
        self.pending: deque[_Slot] = deque()
        self.alive = True

    def roll(self, mono_ns: int, offset_ns: int) -> _Slot:
        """Open the slot that holds ``mono_ns``; hand the closed one to the readers."""
        epoch = (mono_ns + offset_ns) // _NS
        old = self.cur
        new = self.cur = _Slot(epoch, (epoch + 1) * _NS - offset_ns)
        if old.hist:
            self.pending.append(old)
        return new

    def died(self) -> None:
        self.alive = False


class _Token:
    """Lives in the thread-local; its finalizer tells the shard its thread has exited."""

    __slots__ = ("__weakref__",)


class _CountLevel:
    """Ring of cumulative count vectors: ``C[e]`` = sum of all data at epochs ``<= e``."""

    __slots__ = ("base", "cum", "floor", "head", "res", "size", "width")

    def __init__(self, spec: LevelSpec, width: int, epoch: int) -> None:
        self.res = spec.resolution
        self.size = spec.slots
        self.width = width
        self.cum = array("q", bytes(8 * spec.slots * width))
        self.head = epoch
        self.floor = epoch - spec.slots + 1
        self.base = [0] * width  # C[floor - 1]

    def _at(self, epoch: int) -> list[int]:
        if epoch >= self.head:
            epoch = self.head
        elif epoch < self.floor:
            return self.base
        i = (epoch % self.size) * self.width
        return self.cum[i : i + self.width].tolist()

    def advance(self, epoch: int) -> None:
        if epoch <= self.head:
            return
        w, size, cum = self.width, self.size, self.cum
        h = (self.head % size) * w
        last = cum[h : h + w]
        if epoch - self.head >= size:
            self.base = last.tolist()
            cum[:] = last * size
        else:
            for ep in range(self.head + 1, epoch + 1):
                i = (ep % size) * w
                self.base = cum[i : i + w].tolist()  # epoch ep - size leaves the ring
                cum[i : i + w] = last
        self.head = epoch
        self.floor = epoch - size + 1

    def add(self, deltas: dict[int, list[int]]) -> None:
        """
        Add count vectors by epoch, in one sweep from the oldest epoch to the head.

        One consolidation costs O(head - oldest epoch) whatever the number of slots,
        so a replay of old data is linear, not quadratic.
        """
        newest = max(deltas)
        if newest > self.head:
            self.advance(newest)
        w, size, cum = self.width, self.size, self.cum
        run = [0] * w
        for epoch in [e for e in deltas if e < self.floor]:  # older than the ring
            run = [a + b for a, b in zip(run, deltas.pop(epoch), strict=True)]
        self.base = [a + b for a, b in zip(self.base, run, strict=True)]
        start = min(deltas, default=self.floor) if not any(run) else self.floor
        for ep in range(start, self.head + 1):
            vec = deltas.get(ep)
            if vec is not None:
                run = [a + b for a, b in zip(run, vec, strict=True)]
            i = (ep % size) * w
            for f in range(w):
                cum[i + f] += run[f]

    def span(self, first: int, last: int) -> list[int]:
        """Sum of epochs ``first..last`` inclusive."""
        hi = self._at(last)
        lo = self._at(first - 1)
        return [a - b for a, b in zip(hi, lo, strict=True)]


class _Packed:
    """A closed histogram slot packed into two arrays: 16 bytes per bucket, not ~100."""

    __slots__ = ("counts", "keys")

    def __init__(self, hist: dict[int, int]) -> None:
        self.keys = array("q", hist.keys())
        self.counts = array("q", hist.values())

    def items(self) -> Iterable[tuple[int, int]]:
        return zip(self.keys, self.counts, strict=True)

    def unpack(self) -> dict[int, int]:
        return dict(self.items())


class _HistLevel:
    """Ring of per-slot latency histograms (bucket → count), sparse; closed slots packed."""

    __slots__ = ("floor", "head", "late", "res", "size", "slots")

    def __init__(self, spec: LevelSpec, epoch: int) -> None:
        self.res = spec.resolution
        self.size = spec.slots
        self.slots: dict[int, dict[int, int] | _Packed] = {}
        self.head = epoch
        self.floor = epoch - spec.slots + 1
        self.late = False  # a closed slot was added to since the last pack()

    def advance(self, epoch: int) -> None:
        if epoch <= self.head:
            return
        self.head = epoch
        self.floor = epoch - self.size + 1
        for ep in [ep for ep in self.slots if ep < self.floor]:
            del self.slots[ep]
        self.pack()

    def pack(self) -> None:
        """Pack every closed slot still held as a dict: only the open one stays a dict."""
        for ep, hist in self.slots.items():
            if ep < self.head and isinstance(hist, dict):
                self.slots[ep] = _Packed(hist)
        self.late = False

    def add(self, epoch: int, hist: dict[int, int]) -> None:
        if epoch > self.head:
            self.advance(epoch)
        if epoch < self.floor:
            return
        self.late = self.late or epoch < self.head
        slot = self.slots.get(epoch)
        if slot is None:
            self.slots[epoch] = dict(hist)
            return
        if isinstance(slot, _Packed):  # late data for a closed slot: packed again after
            slot = self.slots[epoch] = slot.unpack()
        sketch.merge(slot, hist)

    def span(self, first: int, last: int) -> dict[int, int]:
        out: dict[int, int] = {}
        get = out.get
        for ep, hist in self.slots.items():
            if first <= ep <= last:
                for key, count in hist.items():
                    out[key] = get(key, 0) + count
        return out


@attrs.frozen
class _Decoded:
    epoch: int
    vec: list[int]
    hist: dict[int, int]


class Store:
    """
    Rolling counts and latency histograms of one SLO, written lock-free per thread.

    Args:
        clock: where time comes from.
        thresholds: latency thresholds in seconds whose slow counts must be exact.
        longest: the longest window (seconds) the store must answer for.

    """

    def __init__(
        self,
        clock: Clock,
        *,
        thresholds: Sequence[float] = (),
        longest: float = 0.0,
    ) -> None:
        self._clock = clock
        self._thresholds_ns = tuple(round(t * _NS) for t in thresholds)
        self._tbuckets = tuple(sketch.bucket_of(t) for t in self._thresholds_ns)
        if len(set(self._tbuckets)) != len(self._tbuckets):
            raise ValueError(
                "latency thresholds must differ by more than 1 % "
                f"(got {sorted(thresholds)}): they would share a histogram bucket"
            )
        self._split = dict(zip(self._tbuckets, self._thresholds_ns, strict=True))
        self._width = 5 + len(self._thresholds_ns)
        self._count_specs = _grow(COUNT_LEVELS, longest)
        self._hist_specs = _grow(HIST_LEVELS, longest)
        self._lock = threading.Lock()
        self._local = threading.local()  # kept for life: wrappers hold it
        self._reset()
        _STORES.add(self)

    def _reset(self) -> None:
        for attr in ("shard", "token"):  # after a fork: the surviving thread's shard goes
            self._local.__dict__.pop(attr, None)
        self._shards: list[_Shard] = []
        self._retired: list[_Slot] = []
        self.sync_clock()
        now = self._clock.time()
        self._levels = [
            _CountLevel(s, self._width, int(now // s.resolution)) for s in self._count_specs
        ]
        self._hists = [_HistLevel(s, int(now // s.resolution)) for s in self._hist_specs]
        self._totals = [0] * self._width  # since the store was created
        self._exclusions: list[list[float]] = []  # [start, end) wall-clock seconds
        self._total_hist: dict[int, int] = {}

    # -- writing -------------------------------------------------------------------

    def sync_clock(self) -> None:
        """
        Re-read the offset between the wall clock and the monotonic clock.

        Writers use it when they open a slot. When it moved by more than a millisecond
        (the wall clock was stepped), every open slot is told to close, so the next
        event of each thread lands in the slot of the new wall-clock time.
        """
        offset = self._clock.time_ns() - self._clock.monotonic_ns()
        previous = getattr(self, "_offset_ns", offset)
        self._offset_ns = offset
        if abs(offset - previous) > 1_000_000:
            for shard in self._shards:
                shard.cur.end = 0

    def record_ns(self, start_ns: int, end_ns: int, outcome: int) -> None:
        """
        Record one event from two monotonic readings. This is the hot path.

        No lock, no I/O, no allocation except a new slot once per second per thread.
        :meth:`timed` inlines the same steps; keep the two identical.
        """
        d = end_ns - start_ns
        if d < 0:  # time can go backwards
            d = 0
        try:  # free when nothing raises (3.11): a fault of ours never reaches the caller
            try:
                shard = self._local.shard
            except AttributeError:
                shard = self._register()
            slot = shard.cur
            if end_ns >= slot.end:
                slot = shard.roll(end_ns, self._offset_ns)
            bl = d.bit_length()  # inlined sketch.bucket_of
            b = d if bl <= 7 else (bl << 6) + (d >> (bl - 7)) - 64
            key = (b << 4) | outcome
            split = self._split
            if b in split and d > split[b]:
                key |= 8
            h = slot.hist
            h[key] = h.get(key, 0) + 1
        except Exception as err:  # counted and logged by faults
            internal_error("record", err)

    def timed(self, fn: Callable[P, R], classify: Callable[[BaseException], int]) -> Callable[P, R]:
        """
        Return ``fn`` wrapped so every call is timed and recorded; exceptions re-raise.

        The success path inlines :meth:`record_ns` (a Python call costs ~60 ns, a third
        of the whole budget); the exception path calls it.
        """
        now = self._clock.monotonic_ns
        local, split, register, rec = self._local, self._split, self._register, self.record_ns
        store = self

        def timed_call(*args: P.args, **kwargs: P.kwargs) -> R:
            t0 = now()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                rec(t0, now(), classify(exc))
                raise
            t1 = now()
            d = t1 - t0
            if d < 0:  # time can go backwards
                d = 0
            try:
                try:
                    shard = local.shard
                except AttributeError:
                    shard = register()
                slot = shard.cur
                if t1 >= slot.end:
                    slot = shard.roll(t1, store._offset_ns)
                bl = d.bit_length()
                b = d if bl <= 7 else (bl << 6) + (d >> (bl - 7)) - 64
                key = b << 4
                if b in split and d > split[b]:
                    key |= 8
                h = slot.hist
                h[key] = h.get(key, 0) + 1
            except Exception as err:  # counted and logged by faults
                internal_error("record", err)
            return result

        return timed_call

    def record(self, duration: float, ok: bool = True) -> None:
        """Record one event that ended now and lasted ``duration`` seconds."""
        end = self._clock.monotonic_ns()
        self.record_ns(end - round(duration * _NS), end, GOOD if ok else BAD)

    def record_many(
        self,
        slot_time: float,
        *,
        total: int = 0,
        bad: int = 0,
        durations: Iterable[tuple[float, int]] = (),
    ) -> None:
        """
        Record a whole slot's worth of events at once (replays, simulations).

        Args:
            slot_time: a wall-clock time inside the slot.
            total: events that are not in ``durations`` (counted at zero latency).
            bad: how many of all the events failed (taken from ``total`` first).
            durations: ``(seconds, count)`` pairs of events with a known latency.

        """
        pairs = [(round(s * _NS), n) for s, n in durations]
        timed = sum(n for _, n in pairs)
        if bad > total + timed or min([total, bad, *(n for _, n in pairs)]) < 0:
            raise ValueError("record_many: counts must be >= 0 and bad <= all events")
        hist: dict[int, int] = {}
        plain_bad = min(bad, total)
        extra_bad = bad - plain_bad
        self._pack(hist, 0, total - plain_bad, GOOD)
        self._pack(hist, 0, plain_bad, BAD)
        for d, n in pairs:
            now_bad = min(extra_bad, n)
            extra_bad -= now_bad
            self._pack(hist, d, n - now_bad, GOOD)
            self._pack(hist, d, now_bad, BAD)
        slot = _Slot(int(slot_time * _NS) // _NS)
        slot.hist = hist
        with self._lock:
            self._retired.append(slot)
            backlog = len(self._retired)
        if backlog >= REPLAY_BATCH:  # a long replay: keep what waits for the rings small
            self.consolidate()

    def _pack(self, hist: dict[int, int], d: int, n: int, outcome: int) -> None:
        if n <= 0:
            return
        b = sketch.bucket_of(d)
        key = (b << _BUCKET_SHIFT) | outcome
        t = self._split.get(b)
        if t is not None and d > t:
            key |= _ABOVE
        hist[key] = hist.get(key, 0) + n

    def _register(self) -> _Shard:
        """Give the calling thread its shard: the only locked step of recording."""
        shard = _Shard()
        token = _Token()
        weakref.finalize(token, shard.died)
        with self._lock:
            self._shards.append(shard)
        self._local.shard = shard
        self._local.token = token
        return shard

    # -- reading ---------------------------------------------------------------------

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Latency thresholds (seconds) whose slow counts the store keeps exactly."""
        return tuple(t / _NS for t in self._thresholds_ns)

    def holds(self, thresholds: Sequence[float], longest: float) -> bool:
        """Whether this store can serve an SLO with these thresholds and longest window."""
        same = tuple(round(t * _NS) for t in thresholds) == self._thresholds_ns
        return same and _grow(COUNT_LEVELS, longest)[-1].slots <= self._count_specs[-1].slots

    @property
    def shard_count(self) -> int:
        """Shards currently registered (one per live recording thread)."""
        return len(self._shards)

    def consolidate(self) -> None:
        """Move closed slots into the rings and release shards of exited threads."""
        with self._lock:
            self.sync_clock()
            closed = self._retired
            self._retired = []
            live = []
            for shard in self._shards:
                pending = shard.pending
                while pending:
                    closed.append(pending.popleft())
                if shard.alive:
                    live.append(shard)
                else:  # its thread has exited: nobody writes it any more
                    closed.append(shard.cur)
            self._shards = live
            # rings are anchored at the newest second seen: now, or later data written
            # before the wall clock was stepped back
            newest = int(self._clock.time())
            for slot in (*closed, *(s.cur for s in live)):
                if slot.hist and slot.epoch > newest:
                    newest = slot.epoch
            for level in self._levels:
                level.advance(newest // level.res)
            for hl in self._hists:
                hl.advance(newest // hl.res)
            self._absorb([self._decode(slot) for slot in closed])

    def _absorb(self, decoded: list[_Decoded]) -> None:
        if not decoded:
            return
        _apply(self._levels, self._hists, decoded)
        for hl in self._hists:
            if hl.late:  # the last second of a minute, a replay, a restore: keep it packed
                hl.pack()
        for d in decoded:
            self._totals = _plus(self._totals, d.vec)
            sketch.merge(self._total_hist, d.hist)

    def exclude(self, start: float, end: float = float("inf")) -> None:
        """
        Leave out of every SLI the events of wall-clock seconds ``[start, end)``.

        For maintenance windows: their events count as ignored. Applied when slots are
        consolidated (within a tick), so the hot path pays nothing; a window may be
        opened with no end and closed later with :meth:`end_exclusion`.
        """
        with self._lock:
            self._exclusions.append([start, end])

    def end_exclusion(self, start: float, end: float) -> None:
        """Close the open-ended exclusion that began at ``start``."""
        with self._lock:
            for window in self._exclusions:
                if window[0] == start and window[1] == float("inf"):
                    window[1] = end

    def exclusions(self) -> list[tuple[float, float]]:
        """Return the excluded wall-clock spans, ``(start, end)``; an open one ends at inf."""
        with self._lock:
            return [(s, e) for s, e in self._exclusions]

    def _excluded(self, epoch: int) -> bool:
        return any(s <= epoch + 0.5 < e for s, e in self._exclusions)

    def _decode(self, slot: _Slot) -> _Decoded:
        if self._exclusions and self._excluded(slot.epoch):
            return _Decoded(
                slot.epoch,
                [0, 0, sum(slot.hist.copy().values()), 0, 0] + [0] * len(self._tbuckets),
                {},
            )
        total = bad = ignored = rejected = disconnected = 0
        slow = [0] * len(self._tbuckets)
        hist: dict[int, int] = {}
        tb = self._tbuckets
        for key, n in slot.hist.copy().items():
            outcome = key & _OUTCOME_MASK
            if outcome == IGNORED:
                ignored += n
                continue
            if outcome == REJECTED:  # never ran: no latency
                rejected += n
                continue
            if outcome == DISCONNECTED:
                disconnected += n
            else:
                total += n
                if outcome == BAD:
                    bad += n
            b = key >> _BUCKET_SHIFT
            above = key & _ABOVE
            for i, t in enumerate(tb):
                if b > t or (b == t and above):
                    slow[i] += n
            hist[b] = hist.get(b, 0) + n
        return _Decoded(slot.epoch, [total, bad, ignored, rejected, disconnected, *slow], hist)

    def _open(self) -> list[_Decoded]:
        """Decode the slots writers still hold open (or hold but no longer write)."""
        seen: set[int] = set()
        out = []
        for shard in list(self._shards):
            slot = shard.cur
            pending = list(shard.pending)
            for s in (slot, *pending):  # a slot rolled since consolidation is pending
                if id(s) not in seen and s.hist:
                    seen.add(id(s))
                    out.append(self._decode(s))
        out.extend(self._decode(s) for s in self._retired)
        return out

    def read(self, spans: Sequence[tuple[float, float]]) -> View:
        """
        Read the counts of several spans of wall-clock time at once.

        Each span ``(start, end)`` is widened to the slots of the finest level that
        holds it; see the module docstring for the alignment.
        """
        with self._lock:
            open_slots = self._open()
            out = []
            for start, end in spans:
                level = self._count_level_for(start, end)
                first = int(start // level.res)
                last = int(end // level.res)
                vec = level.span(first, last)
                for d in open_slots:
                    if first <= d.epoch // level.res <= last:
                        vec = [a + b for a, b in zip(vec, d.vec, strict=True)]
                out.append(_counts(vec))
            totals = list(self._totals)
            hist = dict(self._total_hist)
            for d in open_slots:
                totals = _plus(totals, d.vec)
                sketch.merge(hist, d.hist)
        return View(tuple(out), _counts(totals), hist)

    def histogram(self, start: float, end: float) -> dict[int, int]:
        """Latency histogram (bucket → count) of a span, aligned to the histogram rings."""
        with self._lock:
            hl = self._hist_level_for(start, end)
            first, last = int(start // hl.res), int(end // hl.res)
            out = hl.span(first, last)
            for d in self._open():
                if first <= d.epoch // hl.res <= last:
                    sketch.merge(out, d.hist)
        return out

    def _count_level_for(self, start: float, end: float) -> _CountLevel:
        """Pick the finest ring that holds the span (its start is not older than the ring)."""
        for level in self._levels:
            if (end - start) / level.res + 2 <= level.size and (
                int(start // level.res) - 1 >= level.floor
            ):
                return level
        return self._levels[-1]

    def _hist_level_for(self, start: float, end: float) -> _HistLevel:
        for hl in self._hists:
            if (end - start) / hl.res + 2 <= hl.size and int(start // hl.res) >= hl.floor:
                return hl
        return self._hists[-1]

    # -- snapshots (restart recovery) ------------------------------------------------------

    def dump(self) -> bytes:
        """
        Serialise the rings (counts and histograms, every resolution) for a restore.

        Slots writers still hold open are included; lifetime totals are not: lifetime
        counters restart with the process, as Prometheus expects of counters.
        """
        with self._lock:
            levels, hists = self._levels, self._hists
            still_open = self._open()
            if still_open:  # what writers hold open goes in too, on copies of the rings
                levels = [copy.deepcopy(lvl) for lvl in levels]
                hists = [copy.deepcopy(hl) for hl in hists]
                _apply(levels, hists, still_open)
            state = {
                "format": 1,
                "thresholds": list(self._thresholds_ns),
                "counts": [
                    {
                        "res": lvl.res,
                        "size": lvl.size,
                        "head": lvl.head,
                        "base": lvl.base,
                        "cum": base64.b64encode(zlib.compress(lvl.cum.tobytes())).decode(),
                    }
                    for lvl in levels
                ],
                "hists": [
                    {
                        "res": hl.res,
                        "size": hl.size,
                        "head": hl.head,
                        "slots": {str(ep): list(h.items()) for ep, h in hl.slots.items()},
                    }
                    for hl in hists
                ],
            }
        return zlib.compress(json.dumps(state, separators=(",", ":")).encode())

    def load(self, data: bytes) -> bool:
        """
        Restore rings saved by :meth:`dump` into this (fresh) store.

        Returns ``False``, restoring nothing, when the snapshot was taken with other
        thresholds or ring sizes (the SLO changed). Restore before recording starts:
        data already consolidated here is replaced.
        """
        state = json.loads(zlib.decompress(data))
        same = (
            state.get("format") == 1
            and tuple(state["thresholds"]) == self._thresholds_ns
            and [(c["res"], c["size"]) for c in state["counts"]]
            == [(lvl.res, lvl.size) for lvl in self._levels]
            and [(h["res"], h["size"]) for h in state["hists"]]
            == [(hl.res, hl.size) for hl in self._hists]
        )
        if not same:
            return False
        with self._lock:
            for lvl, saved in zip(self._levels, state["counts"], strict=True):
                now_head = lvl.head
                lvl.cum = array("q")
                lvl.cum.frombytes(zlib.decompress(base64.b64decode(saved["cum"])))
                lvl.head = saved["head"]
                lvl.floor = lvl.head - lvl.size + 1
                lvl.base = list(saved["base"])
                lvl.advance(now_head)
            for hl, saved in zip(self._hists, state["hists"], strict=True):
                now_head = hl.head
                hl.head = saved["head"]
                hl.floor = hl.head - hl.size + 1
                hl.slots = {int(ep): dict(items) for ep, items in saved["slots"].items()}
                hl.advance(now_head)
                hl.pack()
        return True

    def memory(self) -> int:
        """Approximate bytes held by the store's rings (for benchmarks and docs)."""
        import sys  # noqa: PLC0415 - only benchmarks ask

        size = sum(sys.getsizeof(level.cum) for level in self._levels)
        for hl in self._hists:
            size += sys.getsizeof(hl.slots)
            for hist in hl.slots.values():
                if isinstance(hist, _Packed):
                    size += sys.getsizeof(hist.keys) + sys.getsizeof(hist.counts)
                else:
                    size += sys.getsizeof(hist) + 32 * len(hist)
        return size


@attrs.frozen
class View:
    """What :meth:`Store.read` returns, all from one consistent read."""

    spans: tuple[Counts, ...]
    """Counts per requested span."""
    lifetime: Counts
    """Counts since the store began."""
    lifetime_histogram: dict[int, int]
    """Latency histogram (bucket → count) since the store began; sums to ``lifetime.timed``."""


def _apply(
    levels: Sequence[_CountLevel], hists: Sequence[_HistLevel], decoded: list[_Decoded]
) -> None:
    """Add decoded slots to count and histogram rings."""
    for level in levels:
        deltas: dict[int, list[int]] = {}
        for d in decoded:
            epoch = d.epoch // level.res
            have = deltas.get(epoch)
            deltas[epoch] = d.vec if have is None else _plus(have, d.vec)
        level.add(deltas)
    for d in decoded:
        for hl in hists:
            hl.add(d.epoch // hl.res, d.hist)


def _plus(a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _counts(vec: Sequence[int]) -> Counts:
    total, bad, ignored, rejected, disconnected, *slow = vec
    return Counts(total, bad, ignored, rejected, disconnected, tuple(slow))


def _grow(levels: Sequence[LevelSpec], longest: float) -> tuple[LevelSpec, ...]:
    """Make the coarsest ring long enough for ``longest`` seconds."""
    *fine, coarse = levels
    need = int(longest // coarse.resolution) + 3
    return (*fine, LevelSpec(coarse.resolution, max(coarse.slots, need)))


_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Give a forked child empty stores: its parent's events are not its own."""
    for store in list(_STORES):
        store._lock = threading.Lock()
        store._reset()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
