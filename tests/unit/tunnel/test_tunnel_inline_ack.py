"""An endpoint whose storage never blocks stores and acknowledges a batch in the loop step that
read it: no group-writer queue, no future, no done callback (the round trip's latency), and
still every guarantee: acknowledged only once stored, a duplicate acknowledged and not stored
twice, a failed store closes without an ack, the counters and the ack histogram agree."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._server import TunnelServer
from streamfeat.endpoint._storage import StoredBatch
from streamfeat.endpoint._writer import GroupWriter
from streamfeat.errors import StorageError
from streamfeat.testing import MemoryTransportPair
from streamfeat.tunnel import Ack, Batch, CloseCode, Closed, Hello, Role, TunnelConnection

from .tunnel_helpers import DEVICE, ENDPOINT, bid, det_random, drain


class MemoryStorage:
    """Batches in a dict; ``fail`` makes the next store raise."""

    non_blocking = True

    def __init__(self) -> None:
        self.batches: dict[tuple[str, bytes], bytes] = {}
        self.fail = False

    def store_batches(self, batches: list[StoredBatch]) -> list[bool]:
        if self.fail:
            msg = "disk full"
            raise StorageError(msg)
        out = []
        for b in batches:
            k = (b.device, b.batch_id)
            out.append(k not in self.batches)
            self.batches.setdefault(k, b.payload)
        return out

    def get_config(self, device: str) -> tuple[int, bytes] | None:
        return None

    def set_config(self, device: str, version: int, body: bytes) -> None:
        pass

    def close(self) -> None:
        pass


async def _events(conn: TunnelConnection, pair: MemoryTransportPair) -> list[object]:
    data = await asyncio.wait_for(pair.a.receive(), 5)
    conn.receive_data(data)
    return drain(conn)


async def test_inline_storage_acknowledges_without_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[object] = []
    real_submit = GroupWriter.submit

    def counting_submit(self, device, batch):  # type: ignore[no-untyped-def]
        submitted.append(batch)
        return real_submit(self, device, batch)

    monkeypatch.setattr(GroupWriter, "submit", counting_submit)
    registry = Registry(tmp_path / "ep.db")
    registry.add("dev", DEVICE.public, now=1.0)
    storage = MemoryStorage()
    server = TunnelServer(key=ENDPOINT, registry=registry, storage=storage)
    pair = MemoryTransportPair()
    task = asyncio.create_task(server.handle_transport(pair.b))
    conn = TunnelConnection(
        Role.DEVICE, static=DEVICE, remote_static=ENDPOINT.public, random_bytes=det_random("i")
    )
    await pair.a.send(conn.send(Hello(0)))
    await _events(conn, pair)  # HandshakeComplete
    for i in range(1, 6):
        await pair.a.send(conn.send(Batch(bid(i), b"p%d" % i)))
        assert await _events(conn, pair) == [Ack(bid(i))]
        assert storage.batches[("dev", bid(i))] == b"p%d" % i  # stored before the ack
    # a batch sent again on this connection is acknowledged, not stored twice
    await pair.a.send(conn.send(Batch(bid(1), b"other")))
    assert await _events(conn, pair) == [Ack(bid(1))]
    assert storage.batches[("dev", bid(1))] == b"p1"
    m = server.metrics
    assert m.stored._value.get() == 5
    assert m.duplicates._value.get() == 1
    assert m.bytes._value.get() == sum(len(b"p%d" % i) for i in range(1, 6)) + len(b"other")
    assert sum(b.get() for b in m.ack_seconds._buckets) == 6  # one observation per ack
    assert submitted == []  # the queue and its future were never used
    # a store that fails: no ack, the connection closes with internal_error
    storage.fail = True
    await pair.a.send(conn.send(Batch(bid(7), b"lost?")))
    got = await _events(conn, pair)
    assert len(got) == 1
    assert isinstance(got[0], Closed)
    assert got[0].code == CloseCode.INTERNAL_ERROR
    assert ("dev", bid(7)) not in storage.batches
    assert m.storage_failures._value.get() == 1
    await pair.a.aclose()
    await asyncio.wait_for(task, 10)
    await server.aclose()


class _Recorder:
    """A transport that records each websocket message sent."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def send(self, data: bytes) -> None:
        self.messages.append(data)

    async def receive(self) -> bytes:
        return b""

    async def aclose(self) -> None:
        pass


async def test_queued_records_go_out_in_one_message_in_order() -> None:
    from streamfeat.endpoint._session import JOIN_BYTES, Outgoing

    t = _Recorder()
    out = Outgoing(t)  # type: ignore[arg-type]
    for r in (b"ack-1", b"ack-2", b"ack-3"):  # the acks of one group commit
        out.put(r)
    await out.flush()
    assert t.messages == [b"ack-1ack-2ack-3"]
    # never more than JOIN_BYTES in one message, and a lone big record alone
    big = b"x" * (JOIN_BYTES // 2 + 1)
    for r in (big, big, b"tail"):
        out.put(r)
    await out.flush()
    assert t.messages[1:] == [big, big + b"tail"]
