"""Labelled series: the cap holds and nothing is lost, whatever the labels and threads."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slakit.series import OVERFLOW, Series

labels = st.tuples(st.sampled_from(["/a", "/b/{id}", "/c"]), st.text(max_size=3))
events = st.lists(st.tuples(labels, st.integers(0, 4)), max_size=200)


@given(events=events, cap=st.integers(1, 6))
def test_the_cap_holds_and_every_event_is_counted(
    events: list[tuple[tuple[str, str], int]], cap: int
) -> None:
    table = Series(("route", "tenant"), cap)
    for values, outcome in events:
        table.add(table.key(values), outcome)
    counts = table.counts()
    assert len([k for k in counts if k != table.overflow]) <= cap
    per_outcome = Counter(o for _, o in events)
    for outcome in range(5):
        assert sum(c[outcome] for c in counts.values()) == per_outcome[outcome]
    first = list(dict.fromkeys(v for v, _ in events))[:cap]  # admitted in order of arrival
    assert {k for k in counts if k != table.overflow} == set(first)


def test_threads_that_exit_keep_their_counts() -> None:
    table = Series(("route",), cap=10)
    per_thread = 5_000

    def work(i: int) -> None:
        key = table.key((f"/r{i % 3}",))
        for _ in range(per_thread):
            table.add(key, 0)

    for round_ in range(3):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(c[0] for c in table.counts().values())  # reading retires dead shards
        assert total == (round_ + 1) * 8 * per_thread
    assert table._shards == []  # every writer is gone, its counts kept


def test_overflow_key_and_cap_validation() -> None:
    table = Series(("route", "method"), cap=1)
    assert table.key(("/a", "GET")) == ("/a", "GET")
    assert table.key(("/b", "GET")) == (OVERFLOW, OVERFLOW)
    assert len(table) == 1
    with pytest.raises(ValueError, match="cap must be >= 1"):
        Series(("route",), cap=0)
