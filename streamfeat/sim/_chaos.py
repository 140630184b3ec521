"""A TCP proxy that cuts connections at random: the simulator's ``--chaos`` for the network.

Devices connect to the proxy, which connects each to the endpoint and pipes bytes both ways.
:meth:`ChaosProxy.cut` aborts a random share of the live connections (a TCP reset to both
sides, mid-frame or not), as a flaky mobile network would. While the endpoint is down, new
connections are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

__all__ = ["ChaosProxy"]

_CHUNK = 65536


class ChaosProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``.

    Args:
        upstream_host, upstream_port: the endpoint.
        rng: a seedable random source for :meth:`cut`.

    Attributes:
        port: the bound port (after :meth:`start`).
        cuts: connections aborted by :meth:`cut`.
        refused: connections closed because the endpoint could not be reached.
    """

    def __init__(
        self, upstream_host: str, upstream_port: int, *, rng: random.Random | None = None
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rng = rng or random.Random()
        self.port = 0
        self.cuts = 0
        self.refused = 0
        self.connections = 0
        self._live: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1, port 0."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def live(self) -> int:
        """Connections open through the proxy."""
        return len(self._live)

    def cut(self, share: float) -> int:
        """Abort about ``share`` of the live connections; return how many."""
        victims = [pair for pair in self._live if self.rng.random() < share]
        for down, up in victims:
            for w in (down, up):
                w.transport.abort()
        self.cuts += len(victims)
        return len(victims)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._live.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._live.discard(pair)
            for w in pair:
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            writer.transport.abort()  # a reset on one side resets the other, as on a real path
            return
        # a clean end of one direction is passed on as a half-close; the other may finish
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()

    async def aclose(self) -> None:
        """Stop listening and abort every connection."""
        if self._server is not None:
            self._server.close()
            for down, up in list(self._live):
                down.transport.abort()
                up.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
