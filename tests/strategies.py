"""Hypothesis strategies shared by the store and evaluation tests."""

from __future__ import annotations

from hypothesis import strategies as st

# latencies: exact small values, bucket edges, and a realistic spread up to a minute
durations_ns = st.one_of(
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=60_000_000_000),
    st.sampled_from([127, 128, 129, 249_999_999, 250_000_000, 250_000_001, 1_000_000_000]),
)
outcomes = st.sampled_from([0, 0, 0, 1, 2, 3, 4])  # good, bad, ignored, rejected, disconnected
