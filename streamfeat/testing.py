"""Test tools: the message transport interface, its in-memory twin, and a conformance check.

The upload shell and the endpoint talk to a :class:`Transport` (defined in
:mod:`streamfeat.upload`, re-exported here; one websocket in production,
:class:`MemoryTransportPair` in tests), in the manner of ``trio.testing.memory_stream_pair``
and ``httpcore``'s mock backend. :func:`check_transport` is the one conformance suite every
implementation must pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from streamfeat.errors import TunnelClosed
from streamfeat.upload._transport import Transport

__all__ = ["MemoryTransport", "MemoryTransportPair", "Transport", "check_transport"]


_EOF = b""


class MemoryTransport:
    """One end of an in-memory transport; see :class:`MemoryTransportPair`."""

    def __init__(self, inbox: asyncio.Queue[bytes], name: str) -> None:
        self._inbox = inbox
        self.peer: MemoryTransport | None = None
        self.closed = False
        self.name = name
        self.sent_bytes = 0

    async def send(self, data: bytes) -> None:
        if self.closed or self.peer is None or self.peer.closed:
            msg = f"can't send on closed memory transport {self.name}"
            raise TunnelClosed(msg)
        if not data:
            return  # an empty message would read as eof on the other side
        self.sent_bytes += len(data)
        self.peer._inbox.put_nowait(bytes(data))

    async def receive(self) -> bytes:
        if self.closed and self._inbox.empty():
            return _EOF
        data = await self._inbox.get()
        if not data:
            self._inbox.put_nowait(_EOF)  # keep reporting eof to later calls
        return data

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._inbox.put_nowait(_EOF)
        if self.peer is not None:
            self.peer._inbox.put_nowait(_EOF)


class MemoryTransportPair:
    """Two connected :class:`MemoryTransport` ends: ``pair.a`` (device), ``pair.b`` (endpoint)."""

    def __init__(self) -> None:
        self.a = MemoryTransport(asyncio.Queue(), "a")
        self.b = MemoryTransport(asyncio.Queue(), "b")
        self.a.peer, self.b.peer = self.b, self.a

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.a, self.b))


async def check_transport(make_pair: Callable[[], Awaitable[tuple[Transport, Transport]]]) -> None:
    """Check that a transport implementation behaves as :class:`Transport` says.

    ``make_pair()`` returns two connected ends; it is called once per scenario.

    Raises:
        AssertionError: naming the scenario that failed.
    """
    # order and message boundaries, both directions
    a, b = await make_pair()
    msgs = [b"x", bytes(range(256)), b"y" * 70_000, b"\x00"]
    for m in msgs:
        await a.send(m)
    for m in msgs:
        got = await asyncio.wait_for(b.receive(), 5)
        assert got == m, f"message boundaries/order: sent {len(m)} bytes, got {len(got)}"
    await b.send(b"back")
    assert await asyncio.wait_for(a.receive(), 5) == b"back", "reverse direction"
    # close: the peer sees eof, repeatedly; sending after close raises TunnelClosed
    await a.aclose()
    assert await asyncio.wait_for(b.receive(), 5) == b"", "peer must see eof after aclose"
    assert await asyncio.wait_for(b.receive(), 5) == b"", "eof must repeat"
    for end in (a, b):
        try:
            await end.send(b"late")
        except TunnelClosed:
            pass
        else:
            msg = "send after close must raise TunnelClosed"
            raise AssertionError(msg)
    await a.aclose()  # idempotent
    await b.aclose()
    # the closing side's own receive ends too
    a, b = await make_pair()
    await b.aclose()
    assert await asyncio.wait_for(a.receive(), 5) == b"", "eof after peer aclose"
    assert await asyncio.wait_for(b.receive(), 5) == b"", "eof on the closed end"
    await a.aclose()
