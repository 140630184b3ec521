"""The durable outbox: batching by size and age, acks, restart, bounded with counted eviction."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from streamfeat.clock import ManualClock
from streamfeat.errors import TunnelError
from streamfeat.tunnel import join_items, split_items
from streamfeat.upload import AckedBatch, Backoff, Outbox, OutboxConfig

from .tunnel_helpers import det_random


def make(path: Path, clock: ManualClock, **kw: float) -> Outbox:
    cfg = OutboxConfig(**{"batch_max_bytes": 100, "batch_max_age": 1.0, "max_bytes": 10_000, **kw})  # type: ignore[arg-type]
    return Outbox(path, cfg, clock=clock, random_bytes=det_random(str(path)))


def items_of(ob: Outbox) -> list[bytes]:
    return [it for b in ob.batches(limit=10_000) for it in split_items(b.payload)]


def test_seals_by_size(tmp_path: Path, manual_clock: ManualClock) -> None:
    ob = make(tmp_path / "s.db", manual_clock)
    for i in range(10):
        ob.enqueue(bytes([i]) * 30)
    # 31 framed bytes each: three fit under 100, the fourth seals the first three
    assert len(ob) == 3
    assert ob.pending_items == 1
    assert all(len(b.payload) <= 100 for b in ob.batches())
    assert items_of(ob) == [bytes([i]) * 30 for i in range(9)]


def test_seals_by_age_with_the_injected_clock(tmp_path: Path, manual_clock: ManualClock) -> None:
    ob = make(tmp_path / "a.db", manual_clock)
    ob.enqueue(b"x")
    assert not ob.seal_due()
    assert len(ob) == 0
    assert ob.seal_deadline() == manual_clock.time() + 1.0
    manual_clock.advance(0.999)
    assert not ob.seal_due()
    manual_clock.advance(0.001)
    assert ob.seal_due()
    assert len(ob) == 1
    assert ob.pending_items == 0
    assert ob.seal_deadline() is None


def test_batches_stay_until_acked_and_survive_restart(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    path = tmp_path / "r.db"
    ob = make(path, manual_clock)
    for i in range(7):
        ob.enqueue(b"item%d" % i + b"." * 40)
    ob.flush()
    first = ob.batches()
    assert ob.ack(first[0].batch_id)
    assert not ob.ack(first[0].batch_id)
    ob2 = make(path, manual_clock)  # a restart: a new connection to the same file
    assert [b.batch_id for b in ob2.batches()] == [b.batch_id for b in first[1:]]
    assert ob2.counters()["acked_batches"] == 1
    assert ob2.counters()["enqueued_items"] == 7
    assert ob2.batches(after_seq=first[1].seq) == first[2:]


def test_bound_evicts_oldest_first_and_counts(tmp_path: Path, manual_clock: ManualClock) -> None:
    ob = make(tmp_path / "b.db", manual_clock, max_bytes=300)
    for i in range(20):
        ob.enqueue(i.to_bytes(2, "big") * 20)  # 41 framed bytes
    c = ob.counters()
    kept = items_of(ob)
    assert c["evicted_items"] > 0
    assert c["evicted_batches"] > 0
    assert c["evicted_items"] + len(kept) + ob.pending_items == 20
    # the survivors are the newest ones, in order
    assert kept == [
        i.to_bytes(2, "big") * 20
        for i in range(20 - len(kept) - ob.pending_items, 20 - ob.pending_items)
    ]
    assert sum(len(b.payload) for b in ob.batches()) <= 300


def test_too_large_payload_is_refused(tmp_path: Path, manual_clock: ManualClock) -> None:
    ob = make(tmp_path / "l.db", manual_clock)
    with pytest.raises(TunnelError) as info:
        ob.enqueue(b"x" * 70_000)
    assert info.value.close_code == 4009
    assert ob.counters()["enqueued_items"] == 0


def test_accepts_a_sqlite3_connection_and_the_store(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    conn = sqlite3.connect(tmp_path / "c.db")
    ob = Outbox(conn, OutboxConfig(batch_max_bytes=10), clock=manual_clock)
    ob.enqueue(b"x" * 20)
    assert len(ob) == 1
    from streamfeat.io._store import Store

    store = Store(tmp_path / "store.db")
    ob2 = Outbox(store, clock=manual_clock)
    ob2.enqueue(b"y")
    ob2.flush()
    assert len(ob2) == 1
    assert store.db["outbox"].count == 1


def test_config_is_kept(tmp_path: Path, manual_clock: ManualClock) -> None:
    ob = make(tmp_path / "k.db", manual_clock)
    assert ob.load_config() is None
    ob.save_config(4, b"tasks")
    assert make(tmp_path / "k.db", manual_clock).load_config() == (4, b"tasks")


@pytest.mark.parametrize("items", [[], [b""], [b"a", b"", b"x" * 300], [bytes(range(256)) * 3]])
def test_join_split_round_trip(items: list[bytes]) -> None:
    assert split_items(join_items(items)) == items


def test_split_rejects_a_cut_body() -> None:
    with pytest.raises(ValueError, match="runs past"):
        split_items(join_items([b"abcdef"])[:-1])


def test_backoff_doubles_with_full_jitter_and_resets() -> None:
    b = Backoff(0.5, 8.0, random.Random(3))
    ref = random.Random(3)
    delays = [b.next() for _ in range(8)]
    ceilings = [min(8.0, 0.5 * 2**i) for i in range(8)]
    assert delays == [ref.uniform(0, c) for c in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    b.reset()
    assert b.next() <= 0.5


def test_enqueue_from_threads_while_acking(tmp_path: Path, manual_clock: ManualClock) -> None:
    import threading

    ob = make(tmp_path / "t.db", manual_clock, batch_max_bytes=64, max_bytes=10**9)
    stop = threading.Event()

    def producer(k: int) -> None:
        for i in range(200):
            ob.enqueue(b"%d-%d" % (k, i))

    def acker() -> None:
        while not stop.is_set():
            for b in ob.batches(limit=5):
                ob.ack(b.batch_id)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(3)]
    a = threading.Thread(target=acker)
    a.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    a.join()
    ob.flush()
    c = ob.counters()
    assert c["enqueued_items"] == 600
    assert c["sealed_batches"] == c["acked_batches"] + len(ob)


def test_reports_seals_and_acks_through_callbacks(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    sealed: list[bytes] = []
    acked: list[AckedBatch] = []
    cfg = OutboxConfig(batch_max_bytes=100, batch_max_age=1.0, max_bytes=10_000)
    ob = Outbox(tmp_path / "cb.db", cfg, clock=manual_clock, random_bytes=det_random("cb"),
                on_seal=sealed.append, on_ack=acked.append)  # fmt: skip
    ob.enqueue(b"a" * 10)
    manual_clock.advance(2.0)
    ob.enqueue(b"b" * 10)
    ob.flush()
    assert sealed == [b.batch_id for b in ob.batches()]
    (batch,) = ob.batches()
    assert ob.ack(batch.batch_id)
    assert not ob.ack(batch.batch_id)  # a second ack of the same id reports nothing
    assert acked == [AckedBatch(batch.batch_id, len(batch.payload), manual_clock.time() - 2.0)]
