"""The downlink poller's watermark: queue positions that become visible out of order are each
handled once, and a hole that never fills is given up after the wait."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from streamfeat.endpoint._downlink import SeqWatermark


def test_positions_committed_out_of_order_are_each_taken_once() -> None:
    w = SeqWatermark(5, gap_wait=30)
    assert w.take([7], now=0) == [7]  # 6 not committed yet: wait for it
    assert w.since() == 5
    assert w.take([7], now=1) == []  # asked again from 5: 7 is not new
    assert w.take([6, 7, 8], now=2) == [6, 8]
    assert w.since() == 8


def test_a_hole_that_never_fills_is_given_up_after_the_wait() -> None:
    w = SeqWatermark(0, gap_wait=30)
    assert w.take([2, 3], now=0) == [2, 3]
    assert w.since() == 0
    assert w.take([2, 3], now=29) == []
    assert w.since() == 0
    assert w.take([2, 3], now=31) == []
    assert w.since() == 3


@given(st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_every_position_is_taken_exactly_once_whatever_the_commit_order(n: int, seed: int) -> None:
    rng = random.Random(seed)
    order = list(range(1, n + 1))
    rng.shuffle(order)
    committed: set[int] = set()
    w = SeqWatermark(0, gap_wait=1e9)
    taken: list[int] = []
    for s in order:  # one commit, then one poll of everything above the watermark
        committed.add(s)
        taken += w.take(sorted(c for c in committed if c > w.since()), now=0)
    assert sorted(taken) == list(range(1, n + 1))
    assert w.since() == n
