"""The aiohttp websocket as a :class:`streamfeat.upload.Transport`.

Deliberately thin: one websocket message in, ``bytes`` out; aiohttp's errors become
:class:`TunnelClosed` at this boundary (chained with ``from exc``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:  # the device never loads aiohttp's server side; the endpoint passes its ws
    from aiohttp import web

from streamfeat.errors import TunnelClosed

__all__ = ["WebSocketTransport", "connect"]

# tunnel records are at most 64 KiB + 3 bytes; a message may hold a few
MAX_MESSAGE = 1 << 20


class WebSocketTransport:
    """Adapts a client or server aiohttp websocket to the Transport interface.

    Args:
        ws: the websocket (``ClientWebSocketResponse`` or ``web.WebSocketResponse``).
        session: a client session to close with the transport, if we own it.
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._ws = ws
        self._session = session
        self._eof = False
        # the websocket error that ended the stream, if any (the endpoint counts an oversized
        # message: aiohttp reports it as WebSocketError with code 1009)
        self.error: BaseException | None = None

    async def send(self, data: bytes) -> None:
        # aiohttp may accept a write on a closing socket silently; check first so the
        # caller learns at once that nothing will arrive
        if self._eof or self._ws.closed:
            msg = "can't send on a closed websocket"
            raise TunnelClosed(msg)
        try:
            await self._ws.send_bytes(data)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            msg = f"websocket send failed: {exc!r}"
            raise TunnelClosed(msg) from exc

    async def receive(self) -> bytes:
        if self._eof:
            return b""
        while True:
            try:
                msg = await self._ws.receive()
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                # a reset is an end of stream for the protocol, which decides what it means
                msg = None
            # an empty message carries nothing, and b"" means eof to our callers: skip it
            if msg is None or msg.type is not aiohttp.WSMsgType.BINARY or msg.data:
                break
        if msg is not None and msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        if msg is not None and msg.type is aiohttp.WSMsgType.TEXT:
            # the tunnel never sends text; hand the bytes in and let the protocol refuse them
            return str(msg.data).encode() or b"\xff"
        if msg is not None and msg.type is aiohttp.WSMsgType.ERROR:
            self.error = msg.data
        self._eof = True  # CLOSE, CLOSING, CLOSED, ERROR
        return b""

    async def aclose(self) -> None:
        self._eof = True
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await self._ws.close()  # already gone: closing is best effort
        if self._session is not None:
            await self._session.close()
            self._session = None


async def connect(
    url: str, *, session: aiohttp.ClientSession | None = None, connect_timeout: float = 10.0
) -> WebSocketTransport:
    """Open a websocket to ``url``.

    Raises:
        TunnelClosed: the connection could not be made.
    """
    own = session is None
    sess = session or aiohttp.ClientSession()
    try:
        ws = await asyncio.wait_for(
            sess.ws_connect(
                url,
                max_msg_size=MAX_MESSAGE,
                heartbeat=30.0,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                compress=0,
            ),
            connect_timeout,
        )
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        if own:
            await sess.close()
        msg = f"can't connect to {url}: {exc!r}"
        raise TunnelClosed(msg) from exc
    return WebSocketTransport(ws, sess if own else None)
