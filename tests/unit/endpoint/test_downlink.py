"""The downlink poller: queue positions that become visible out of order are each handled once,
a hole that never fills is given up after the wait, and the queue is pruned below what was
handled."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from streamfeat.endpoint._downlink import Downlink, SeqWatermark
from streamfeat.endpoint._release_store import SQLiteReleaseStore
from streamfeat.endpoint._releases import queue_config, queued_after


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


class _Session:
    def __init__(self) -> None:
        self.got: list[int] = []

    def push_if_newer(self, version: int, body: bytes) -> bool:
        self.got.append(version)
        return True


def test_the_queue_is_delivered_to_this_process_and_pruned_below_what_it_handled(
    tmp_path: Path,
) -> None:
    store = SQLiteReleaseStore(tmp_path / "ep.db")
    queue_config(store, "early", 1, b"before the process started")
    session = _Session()
    down = Downlink(
        store, lambda d: [session] if d == "a" else [], clock=lambda: 0.0, keep=2, prune_every=3
    )
    for v in range(1, 6):
        queue_config(store, "a", v, b"cfg")
    assert down.deliver() == 5
    assert session.got == [1, 2, 3, 4, 5]  # not the entry queued before this process started
    assert down.deliver() == 0
    assert len(queued_after(store, 0)) == 6
    down.deliver()  # the third poll prunes: keeps 2 below what was handled (seq 6)
    assert [s for s, _, _, _ in queued_after(store, 0)] == [5, 6]
    store.close()
