"""Connection admission for the endpoint: deadlines and caps before a device is authenticated.

A connection is *unauthenticated* from the moment it is accepted until its Noise handshake
completes. While unauthenticated it holds a slot, counted per source address and in total;
a connection over either cap is closed at once (the accept already happened: the descriptor is
given back immediately). One deadline covers the HTTP request, the websocket upgrade and the
handshake: a connection still unauthenticated ``handshake_timeout`` seconds after its accept is
aborted. Plain HTTP requests (``/healthz``, ``/metrics``) never authenticate, so a keep-alive
connection of a monitoring client is closed at the deadline too (clients reconnect); having
been answered, it is not counted as a refusal.

This sits *below* aiohttp: :class:`GuardedProtocol` wraps the protocol aiohttp's server makes
for each connection, so that idle sockets and half-sent requests, which aiohttp would keep
forever, are bounded as well.

Running out of file descriptors: the asyncio loop reports a failed ``accept()`` through the
loop's exception handler once per listening socket per second, with a traceback.
:func:`install_accept_error_handler` counts those reports and logs one line at most every
10 seconds instead. asyncio accepts up to ``backlog`` connections per loop pass (and, on a
failed accept, schedules one retry per remaining pass), so the server is created with a small
accept burst (:data:`ACCEPT_BURST`) and the kernel's listen queue is raised afterwards: a burst
of refused connections can then hold at most that many descriptors before they are closed.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from collections.abc import Callable
from typing import Any

from streamfeat._log import server_log

__all__ = [
    "ACCEPT_BURST",
    "LISTEN_BACKLOG",
    "ConnectionGuard",
    "GuardedProtocol",
    "install_accept_error_handler",
]

ACCEPT_BURST = 16  # connections accepted per loop pass (asyncio's ``backlog`` argument)
LISTEN_BACKLOG = 1024  # the kernel's queue of connections not yet accepted


def _nofile_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class ConnectionGuard:
    """Slots of unauthenticated connections, per source and in total, with a deadline each.

    Args:
        timeout: seconds from accept to a completed handshake.
        max_total: cap over all sources (lowered to a quarter of the open-file limit).
        max_per_source: cap per source address.
        on_refuse: called with a reason (``too_many_unauthenticated``, ``handshake_timeout``).
    """

    def __init__(
        self,
        *,
        timeout: float,
        max_total: int,
        max_per_source: int,
        on_refuse: Callable[[str], None],
    ) -> None:
        self.timeout = timeout
        self.max_total = max(1, min(max_total, _nofile_limit() // 4 - ACCEPT_BURST))
        self.max_per_source = max(1, max_per_source)
        self._on_refuse = on_refuse
        self._pending: dict[asyncio.BaseTransport, tuple[str, asyncio.TimerHandle]] = {}
        self._per_source: Counter[str] = Counter()
        self._served: set[asyncio.BaseTransport] = set()

    @property
    def unauthenticated(self) -> int:
        """Connections holding a slot now."""
        return len(self._pending)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Take a slot for a new connection; False (and counted) when a cap is reached."""
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if len(self._pending) >= self.max_total or self._per_source[source] >= self.max_per_source:
            self._on_refuse("too_many_unauthenticated")
            return False
        handle = asyncio.get_running_loop().call_later(self.timeout, self._expire, transport)
        self._pending[transport] = (source, handle)
        self._per_source[source] += 1
        return True

    def served(self, transport: asyncio.BaseTransport | None) -> None:
        """A plain HTTP request was answered on this connection: at its deadline it is closed
        without being counted as a refusal."""
        if transport is not None and transport in self._pending:
            self._served.add(transport)

    def authenticated(self, transport: asyncio.BaseTransport | None) -> None:
        """The connection's handshake completed: it leaves the unauthenticated pool."""
        if transport is not None:
            self._release(transport)

    def closed(self, transport: asyncio.BaseTransport) -> None:
        """The connection ended (whatever its state)."""
        self._release(transport)

    def _release(self, transport: asyncio.BaseTransport) -> None:
        entry = self._pending.pop(transport, None)
        self._served.discard(transport)
        if entry is None:
            return
        source, handle = entry
        handle.cancel()
        self._per_source[source] -= 1
        if self._per_source[source] <= 0:
            del self._per_source[source]

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        if transport in self._pending:
            answered = transport in self._served
            self._release(transport)
            if not answered:
                self._on_refuse("handshake_timeout")
            transport.abort()  # type: ignore[attr-defined]


class GuardedProtocol(asyncio.Protocol):
    """Wraps the protocol aiohttp made for one connection; admits it through the guard."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner, self._guard = inner, guard
        self._transport: asyncio.BaseTransport | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if not self._guard.admit(transport):
            self._refused = True
            transport.abort()  # type: ignore[attr-defined]
            return
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.closed(self._transport)
        if not self._refused:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._refused else self._inner.eof_received()

    def pause_writing(self) -> None:
        if not self._refused:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if not self._refused:
            self._inner.resume_writing()


def install_accept_error_handler(
    loop: asyncio.AbstractEventLoop, on_error: Callable[[], None], every: float = 10.0
) -> None:
    """Count failed accepts (no file descriptor left) and log them at most once per ``every``.

    Other loop errors go to the handler that was there before (or the default one).
    """
    previous = loop.get_exception_handler()
    last = [-every]
    suppressed = [0]

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), ValueError) and "_start_serving" in repr(
            context.get("handle")
        ):
            # a retry asyncio scheduled after a failed accept ran after the server closed
            # its socket (fd -1): harmless, and there may be one per failed accept
            return
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            on_error()
            now = lp.time()
            if now - last[0] >= every:
                exc = context.get("exception")
                server_log.error(
                    "accept failed: %s (%d more since the last report); unauthenticated "
                    "connections are capped, see --max-unauthenticated",
                    exc,
                    suppressed[0],
                )
                last[0], suppressed[0] = now, 0
            else:
                suppressed[0] += 1
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
