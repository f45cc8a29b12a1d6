"""The log-linear histogram: exact monotonic buckets, ≤ 1 % relative error."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from slakit import sketch
from tests.strategies import durations_ns


class TestBuckets:
    @given(durations_ns)
    def test_value_lies_in_its_bucket(self, d):
        """Every duration falls inside the bounds of the bucket it maps to."""
        low, high = sketch.bucket_bounds(sketch.bucket_of(d))

        assert low <= d < high

    @given(durations_ns, durations_ns)
    def test_monotonic(self, a, b):
        """A longer duration never maps to a lower bucket."""
        if a <= b:
            assert sketch.bucket_of(a) <= sketch.bucket_of(b)

    @given(durations_ns)
    def test_relative_error(self, d):
        """The bucket's representative value is within 1/128 of the duration."""
        value = sketch.bucket_value(sketch.bucket_of(d)) * 1e9

        assert abs(value - d) <= max(d * sketch.RELATIVE_ERROR, 0.5)

    def test_bucket_count_over_the_usual_range(self):
        """100 µs to 60 s needs a bounded, small number of buckets."""
        n = sketch.bucket_of(60_000_000_000) - sketch.bucket_of(100_000) + 1

        assert n < 1_300


class TestQuantile:
    @given(st.lists(durations_ns, min_size=1, max_size=300), st.floats(0.0, 1.0))
    def test_nearest_rank_within_one_percent(self, values, q):
        """The sketch's quantile is within 1 % of the exact nearest-rank quantile."""
        counts: dict[int, int] = {}
        for v in values:
            b = sketch.bucket_of(v)
            counts[b] = counts.get(b, 0) + 1
        exact = sorted(values)[max(1, math.ceil(q * len(values) - 1e-9)) - 1]

        got = sketch.quantile(counts, q)

        assert got is not None
        assert abs(got * 1e9 - exact) <= max(exact * 0.01, 0.5)

    def test_empty(self):
        """An empty histogram has no quantile."""
        assert sketch.quantile({}, 0.99) is None

    def test_merge_adds(self):
        """Merging adds counts bucket by bucket."""
        a = {1: 2, 5: 1}

        sketch.merge(a, {5: 3, 9: 1})

        assert {1: 2, 5: 4, 9: 1} == a
