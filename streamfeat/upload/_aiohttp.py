"""The aiohttp websocket as a :class:`streamfeat.upload.Transport`.

Deliberately thin: one websocket message in, ``bytes`` out; aiohttp's errors become
:class:`TunnelClosed` at this boundary (chained with ``from exc``).

Liveness is checked here rather than by aiohttp's ``heartbeat`` option, which re-arms a timer
for every message received (a scheduled callback, a clock read and a timer computation per
message on both ends). :class:`WebSocketTransport` only counts what it receives; a timer that
fires every ``heartbeat / 2`` seconds compares the count with the last one. After two quiet
ticks (nothing received for at least ``heartbeat`` seconds) it sends a PING; after a third (no
PONG, nor anything else) it closes the websocket, so :meth:`WebSocketTransport.receive` returns
``b""`` and :attr:`WebSocketTransport.error` says why. A silent peer is thus noticed after 1.5
to 2 times ``heartbeat`` (aiohttp's option: 1.5 times). PINGs from the peer are answered with a
PONG by ``receive`` (the websocket's own ``autoping`` is off, so that PONGs count as heard too);
a peer that uses aiohttp's heartbeat is answered the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:  # the device never loads aiohttp's server side; the endpoint passes its ws
    from aiohttp import web

from streamfeat.errors import TunnelClosed, TunnelTimeout

__all__ = ["HEARTBEAT", "MAX_MESSAGE", "WebSocketTransport", "connect"]

# tunnel records are at most 64 KiB + 3 bytes; a message may hold a few
MAX_MESSAGE = 1 << 20
#: seconds of silence before a PING (see the module docstring)
HEARTBEAT = 30.0

_BINARY, _PING, _PONG = aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG


class WebSocketTransport:
    """Adapts a client or server aiohttp websocket to the Transport interface.

    Args:
        ws: the websocket (``ClientWebSocketResponse`` or ``web.WebSocketResponse``), opened
            with ``autoping=False`` when ``heartbeat`` is set (PONGs then reach :meth:`receive`,
            which answers PINGs itself).
        session: a client session to close with the transport, if we own it.
        heartbeat: seconds of silence before a PING; ``None``: no liveness check.
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        session: aiohttp.ClientSession | None = None,
        *,
        heartbeat: float | None = None,
    ) -> None:
        self._ws = ws
        self._session = session
        self._eof = False
        # the websocket error that ended the stream, if any (the endpoint counts an oversized
        # message: aiohttp reports it as WebSocketError with code 1009)
        self.error: BaseException | None = None
        self._heard = 0  # messages received (data and control): the liveness check reads it
        self._seen = 0  # ... as the last tick saw it
        self._quiet = 0  # ticks in a row with nothing received
        self._tick = heartbeat / 2 if heartbeat else 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # pings and the closing (kept referenced)
        if heartbeat:
            self._timer = asyncio.get_running_loop().call_later(self._tick, self._check)

    def _check(self) -> None:
        """The liveness tick (every ``heartbeat / 2`` s): ping after two quiet ticks, close
        after three."""
        self._timer = None
        if self._eof or self._ws.closed:
            return
        if self._heard != self._seen:
            self._seen, self._quiet = self._heard, 0
        else:
            self._quiet += 1
        if self._quiet >= 3:
            silent = self._quiet * self._tick
            msg = f"nothing received for {silent:.1f} s, not even a pong: the peer is gone"
            self.error = TunnelTimeout(msg)
            self._spawn(self._close_silent())
            return
        if self._quiet == 2:
            self._spawn(self._ping())
        self._timer = asyncio.get_running_loop().call_later(self._tick, self._check)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ping(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await self._ws.ping()

    async def _close_silent(self) -> None:
        # a receive() waiting on the websocket returns a CLOSED message: b"" to our caller
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await self._ws.close()

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
        ws = self._ws
        while True:
            try:
                msg = await ws.receive()
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                # a reset is an end of stream for the protocol, which decides what it means
                return self._end(None)
            self._heard += 1
            kind = msg.type
            if kind is _BINARY:
                data = msg.data
                if data:
                    return data if type(data) is bytes else bytes(data)
                # an empty message carries nothing, and b"" means eof to our callers: skip it
            elif kind is _PING:
                with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                    await ws.pong(msg.data)
            elif kind is not _PONG:
                return self._end(msg)

    def _end(self, msg: aiohttp.WSMessage | None) -> bytes:
        """What receive returns for anything but a binary message."""
        if msg is not None and msg.type is aiohttp.WSMsgType.TEXT:
            # the tunnel never sends text; hand the bytes in and let the protocol refuse them
            return str(msg.data).encode() or b"\xff"
        if msg is not None and msg.type is aiohttp.WSMsgType.ERROR:
            self.error = msg.data
        self._eof = True  # CLOSE, CLOSING, CLOSED, ERROR
        self._stop_timer()
        return b""

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def aclose(self) -> None:
        self._eof = True
        self._stop_timer()
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await self._ws.close()  # already gone: closing is best effort
        if self._session is not None:
            await self._session.close()
            self._session = None


async def connect(
    url: str,
    *,
    session: aiohttp.ClientSession | None = None,
    connect_timeout: float = 10.0,
    heartbeat: float | None = HEARTBEAT,
) -> WebSocketTransport:
    """Open a websocket to ``url``.

    Args:
        heartbeat: seconds of silence before a PING; the connection closes when nothing
            answers (see the module docstring). ``None``: no liveness check.

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
                autoping=heartbeat is None,  # with a heartbeat, receive() answers PINGs
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
    return WebSocketTransport(ws, sess if own else None, heartbeat=heartbeat)
