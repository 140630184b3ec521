"""The uploader's loop sleeps on one event between sends: no task is created per wake-up (one per
ack with a window of 1), and it still wakes for an ack, for new data and when the reader ends."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._server import TunnelServer
from streamfeat.endpoint._storage import SQLiteStorage
from streamfeat.testing import MemoryTransportPair
from streamfeat.tunnel import split_items
from streamfeat.upload._client import Uploader, UploaderConfig
from streamfeat.upload._outbox import Outbox, OutboxConfig

from .tunnel_helpers import DEVICE, ENDPOINT


async def test_one_batch_in_flight_needs_no_task_per_ack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(tmp_path / "ep.db")
    registry.add("dev", DEVICE.public, now=1.0)
    storage = SQLiteStorage(tmp_path / "ep.db")
    server = TunnelServer(key=ENDPOINT, registry=registry, storage=storage)
    served: list[asyncio.Task[None]] = []
    pairs: list[MemoryTransportPair] = []

    async def connect() -> object:
        pair = MemoryTransportPair()
        pairs.append(pair)
        served.append(asyncio.create_task(server.handle_transport(pair.b)))
        return pair.a

    waits: list[str] = []
    real_create_task = asyncio.create_task

    def counting_create_task(coro: Coroutine[Any, Any, Any], **kw: Any) -> asyncio.Task[Any]:
        if getattr(coro, "__qualname__", "") == "Event.wait":
            waits.append(coro.__qualname__)
        return real_create_task(coro, **kw)

    monkeypatch.setattr(asyncio, "create_task", counting_create_task)
    ob = Outbox(tmp_path / "dev.db", OutboxConfig(batch_max_bytes=10, batch_max_age=60))
    up = Uploader(
        ob,
        DEVICE,
        UploaderConfig(url="memory", endpoint_key=ENDPOINT.public, window=1),
        connect=connect,  # type: ignore[arg-type]
        rng=random.Random(0),
    )
    task = real_create_task(up.run())
    sent = [b"item-%02d" % i for i in range(30)]
    for s in sent:
        up.enqueue(s)  # 10-byte batches: one sealed batch per item, one round trip each
    assert await up.wait_drained(20)
    assert up.stats.acks == 30
    assert waits == []  # old loop: one Event.wait task per wake-up, at least one per ack
    # the reader ending (the endpoint goes away) still wakes the loop: it reconnects
    await pairs[0].b.aclose()
    up.enqueue(b"after")
    assert await up.wait_drained(20)
    assert len(pairs) == 2
    await up.aclose()
    await asyncio.wait_for(task, 10)
    stored = [it for _, _, p in storage.batches() for it in split_items(p)]
    assert stored == [*sent, b"after"]
    await asyncio.gather(*served, return_exceptions=True)
    await server.aclose()


def test_ack_many_deletes_in_one_call_and_reports_each(tmp_path: Path) -> None:
    seen: list[bytes] = []
    ob = Outbox(
        tmp_path / "dev.db",
        OutboxConfig(batch_max_bytes=10, batch_max_age=60),
        on_ack=lambda a: seen.append(a.batch_id),
    )
    for i in range(4):
        ob.enqueue(b"item-%05d" % i)
    ids = [b.batch_id for b in ob.batches(limit=10)]
    assert len(ids) == 4
    assert ob.ack_many([ids[0], ids[2], b"\x00" * 16]) == 2  # an unknown id is skipped
    assert seen == [ids[0], ids[2]]
    assert [b.batch_id for b in ob.batches(limit=10)] == [ids[1], ids[3]]
    assert ob.counters()["acked_batches"] == 2
    assert ob.ack(ids[0]) is False  # acked before
    assert ob.ack(ids[1]) is True
