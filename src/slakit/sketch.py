"""
Mergeable log-linear latency histogram with a fixed relative error.

Durations are integer nanoseconds.
Values below 128 ns have a bucket each (exact).
Above that, every power of two is split into 64 equal sub-buckets, so a bucket spans
at most 1/64 of its lower bound and its midpoint is within 1/128 (0.78 %) of any value
in it — the same guarantee as DDSketch's log buckets, computed with integer shifts
instead of a logarithm so the hot path stays cheap and the bucket function is exactly
monotonic (a latency threshold never lands on the wrong side of a bucket).

A histogram is a plain ``dict`` of bucket → count: sparse, mergeable by addition.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

SUB_BITS = 6
"""Sub-buckets per power of two are ``2**SUB_BITS``."""

_EXACT_BITS = SUB_BITS + 1  # values under 2**7 ns get a bucket each
RELATIVE_ERROR = 1 / 2 ** (SUB_BITS + 1)
"""Worst relative error of a bucket's midpoint against any value in the bucket."""


def bucket_of(duration_ns: int) -> int:
    """
    Return the bucket index of a non-negative duration in nanoseconds.

    The hot path inlines this expression; keep both identical.
    """
    bl = duration_ns.bit_length()
    if bl <= _EXACT_BITS:
        return duration_ns
    return (bl << SUB_BITS) + (duration_ns >> (bl - _EXACT_BITS)) - (1 << SUB_BITS)


@functools.cache  # a bounded set (~1,300 buckets from 100 µs to 60 s): exporters ask often
def bucket_bounds(bucket: int) -> tuple[int, int]:
    """Return the half-open range ``[low, high)`` of nanoseconds a bucket covers."""
    if bucket < 1 << _EXACT_BITS:
        return bucket, bucket + 1
    bl = bucket >> SUB_BITS
    mantissa = (bucket & ((1 << SUB_BITS) - 1)) + (1 << SUB_BITS)
    shift = bl - _EXACT_BITS
    return mantissa << shift, (mantissa + 1) << shift


@functools.cache
def bucket_value(bucket: int) -> float:
    """Return a bucket's representative value in seconds (its midpoint)."""
    low, high = bucket_bounds(bucket)
    if high - low == 1:
        return low / 1e9
    return (low + high) / 2e9


def merge(into: dict[int, int], other: Mapping[int, int]) -> None:
    """Add the counts of ``other`` into ``into``."""
    get = into.get
    for key, count in other.items():
        into[key] = get(key, 0) + count


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """
    Return the nearest-rank ``q``-quantile in seconds, or ``None`` when empty.

    Nearest rank: the smallest value whose rank is at least ``ceil(q * n)`` (rank 1
    for ``q == 0``).
    """
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, _ceil(q * total))
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    raise AssertionError("unreachable: rank <= total")  # pragma: no cover


def _ceil(x: float) -> int:
    n = int(x)
    # guard float noise: 0.95 * 100 is 95.00000000000001
    if x - n > 1e-9:
        return n + 1
    return n
