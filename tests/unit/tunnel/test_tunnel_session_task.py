"""The endpoint session reads in a task of its own (a message resumes a short chain of
coroutines, not aiohttp's request handler): cancelling the connection's handler, as a
shutdown does, still ends that reader, closes the transport and leaves no task behind; an
error in the reader still reaches the handler."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._server import TunnelServer
from streamfeat.testing import MemoryTransportPair
from streamfeat.tunnel import Ack, Batch, Hello, Role, TunnelConnection

from .test_tunnel_inline_ack import MemoryStorage, _events
from .tunnel_helpers import DEVICE, ENDPOINT, bid, det_random


def _session_tasks() -> list[asyncio.Task[object]]:
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and "_read_loop" in repr(t.get_coro())  # type: ignore[misc]
    ]


async def _open(tmp_path: Path) -> tuple[TunnelServer, MemoryTransportPair, TunnelConnection]:
    registry = Registry(tmp_path / "ep.db")
    registry.add("dev", DEVICE.public, now=1.0)
    server = TunnelServer(key=ENDPOINT, registry=registry, storage=MemoryStorage())
    pair = MemoryTransportPair()
    conn = TunnelConnection(
        Role.DEVICE, static=DEVICE, remote_static=ENDPOINT.public, random_bytes=det_random("t")
    )
    return server, pair, conn


async def test_cancelling_the_handler_ends_the_reader_and_closes(tmp_path: Path) -> None:
    server, pair, conn = await _open(tmp_path)
    handler = asyncio.create_task(server.handle_transport(pair.b))
    await pair.a.send(conn.send(Hello(0, Batch(bid(1), b"first"))))
    assert any(isinstance(e, Ack) for e in await _events(conn, pair))
    assert len(_session_tasks()) == 1  # the reader runs beside the handler
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler
    assert _session_tasks() == []
    assert await asyncio.wait_for(pair.a.receive(), 5) == b""  # the transport was closed
    assert server.metrics.connections._value.get() == 0


async def test_an_error_in_the_reader_reaches_the_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, pair, conn = await _open(tmp_path)

    def boom(self: object) -> bool:
        msg = "a bug in the session"
        raise RuntimeError(msg)

    from streamfeat.endpoint._session import Session

    monkeypatch.setattr(Session, "_drain", boom)
    handler = asyncio.create_task(server.handle_transport(pair.b))
    await pair.a.send(conn.send(Hello(0)))
    with pytest.raises(RuntimeError, match="a bug in the session"):
        await asyncio.wait_for(handler, 5)
    assert _session_tasks() == []
