"""One device connection on the endpoint: the tunnel's responder side, and its write queue.

:class:`Session` feeds websocket messages into a :class:`TunnelConnection`, answers
``DeviceHello`` from the registry and the replay cache, enforces the window and the quota,
hands every ``Batch`` to the server's group-commit writer and sends the ``Ack`` only once the
writer's transaction committed. :class:`Outgoing` keeps the bytes to send in the order the
connection produced them (frame nonces must not reorder).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from streamfeat._log import server_log
from streamfeat.clock import SystemClock
from streamfeat.endpoint._metrics import NOT_REFUSALS
from streamfeat.errors import StorageError, TunnelClosed
from streamfeat.tunnel._events import (
    NEED_DATA,
    Accept,
    Ack,
    Batch,
    Close,
    CloseCode,
    Closed,
    Config,
    DeviceHello,
    HandshakeComplete,
    Refuse,
)
from streamfeat.tunnel._protocol import Role, State, TunnelConnection
from streamfeat.upload._transport import Transport

if TYPE_CHECKING:
    from streamfeat.endpoint._server import TunnelServer

__all__ = ["JOIN_BYTES", "Outgoing", "Session"]

#: queued records are joined into one websocket message up to this size (the device takes
#: messages up to 1 MiB; one record is at most 64 KiB)
JOIN_BYTES = 256 * 1024


class Outgoing:
    """Bytes to write, in the order ``conn.send`` produced them (the frame nonces must not
    reorder). The reader flushes right after handling a message, so an ack stored inline
    goes out without a task switch; the writer task flushes what completes later (acks of
    group commits).

    One flush writes at a time: a flush that finds another one writing waits until it is
    done, then writes what is left (what an ``asyncio.Lock`` would do, without its three
    coroutines per message on the uncontended path).
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._q: deque[bytes] = deque()
        self._writing = False
        self._waiters: list[asyncio.Future[None]] = []
        self._ready = asyncio.Event()
        self._finishing = False
        self.broken = False
        self.reader_active = False  # the reader flushes when done: no need to wake the task

    def put(self, data: bytes) -> None:
        if data and not self.broken:
            self._q.append(data)
            if not self.reader_active:
                self._ready.set()

    @property
    def queued(self) -> bool:
        """Bytes wait to be written."""
        return bool(self._q)

    def finish(self) -> None:
        """Write what is queued, then stop the writer task."""
        self._finishing = True
        self._ready.set()

    async def flush(self) -> None:
        while self._writing:  # another flush is writing: wait for it, then write what is left
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self._writing = True
        try:
            q = self._q
            while q:
                data = q.popleft() if len(q) == 1 else self._take()
                try:
                    await self._transport.send(data)
                except TunnelClosed:
                    self._q.clear()
                    self.broken = True
                    return
        finally:
            self._writing = False
            if self._waiters:
                waiters, self._waiters = self._waiters, []
                for w in waiters:
                    if not w.done():
                        w.set_result(None)

    def _take(self) -> bytes:
        """The next websocket message: every queued record up to ``JOIN_BYTES``, in order (a
        message may carry several records: the acks of one group commit go out together)."""
        q = self._q
        if len(q) == 1 or len(q[0]) >= JOIN_BYTES:
            return q.popleft()
        parts = [q.popleft()]
        size = len(parts[0])
        while q and size + len(q[0]) <= JOIN_BYTES:
            size += len(q[0])
            parts.append(q.popleft())
        return b"".join(parts)

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            await self.flush()
            if (self._finishing and not self._q) or self.broken:
                return


class Session:
    """One device connection on the endpoint.

    Args:
        server: the endpoint (registry, replay cache, writer, limits, metrics, live devices).
        transport: the connection's message transport.
        on_authenticated: called when the device's handshake completes.

    :meth:`run` serves the connection until it closes; :meth:`push` sends a config down it;
    :meth:`close_now` closes it from the endpoint's side (revocation, window, quota).
    """

    def __init__(
        self,
        server: TunnelServer,
        transport: Transport,
        on_authenticated: Callable[[], None] | None = None,
    ) -> None:
        self.server, self.transport = server, transport
        self.conn = TunnelConnection(
            Role.ENDPOINT, static=server.key, random_bytes=server.random_bytes
        )
        self.device: str | None = None
        self._out = Outgoing(transport)
        self.pending: set[asyncio.Future[bool]] = set()  # stores not yet acknowledged
        self.unacked = 0  # batches received on this connection and not yet acknowledged
        self.sent_version = 0  # the newest config version sent down this connection
        self._on_authenticated = on_authenticated
        self._writer_task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        # the clock reads of every batch (the builtins themselves for the system clock)
        clock = server.clock
        system = type(clock) is SystemClock
        self._time = time.time if system else clock.time
        self._monotonic = time.monotonic if system else clock.monotonic

    def send(self, event: Ack | Config | Close | Accept | Refuse) -> None:
        # bytes go out in the order conn.send produced them: frame counters must not reorder
        self._out.put(self.conn.send(event))

    def close_now(self, code: CloseCode, reason: str, *, end_transport: bool = True) -> None:
        """Close an open connection from the endpoint's side (revocation, window, quota):
        send CLOSE, then, with ``end_transport`` (called from outside the read loop), end the
        transport once it is written, whatever the device does. From inside the read loop,
        the loop's own exit closes the transport (a websocket close handshake, which reads
        and drops what the device still sends, so the device receives our CLOSE rather
        than a reset)."""
        if self.conn.state is State.OPEN:
            with contextlib.suppress(Exception):
                self.send(Close(code, reason))
        self._out.finish()
        if end_transport and self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(self._close_after_flush())

    async def _close_after_flush(self) -> None:
        if self._writer_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer_task), 2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.transport.aclose(), 2)

    async def run(self) -> None:
        writer = self._writer_task = asyncio.create_task(self._out.run())
        # the read loop runs in a task of its own: a message then resumes a short chain of
        # coroutines (loop, transport, websocket), not also the ten or so frames of aiohttp's
        # request handler, the middlewares and the route that await this one
        reader = asyncio.create_task(self._read_loop())
        try:
            await reader
        finally:
            if not reader.done():  # we were cancelled (the server is shutting down)
                reader.cancel()
                await asyncio.wait([reader])
            if self.pending:
                await asyncio.wait(self.pending, timeout=10)  # ack what was stored before leaving
            self._out.finish()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 5)
            await self.transport.aclose()

    async def _read_loop(self) -> None:
        conn = self.conn
        while True:
            data = await self.transport.receive()
            conn.receive_data(data)
            self._out.reader_active = True
            try:
                closed = self._drain()
                # a websocket message carries whole records: bytes left over mean one was cut
                if (
                    not closed
                    and data
                    and conn.pending_bytes
                    and conn.state in (State.IDLE, State.OPEN)
                ):
                    conn.receive_data(b"")
                    closed = self._drain()
            finally:
                self._out.reader_active = False
            if self._out.queued:
                await self._out.flush()
            if closed or not data:
                return

    def _drain(self) -> bool:
        """Handle every event available; True once the connection is closed."""
        srv = self.server
        while True:
            ev = self.conn.next_event()
            if ev is NEED_DATA:
                break
            if type(ev) is Batch:  # the hot event first
                if self._on_batch(ev):
                    return True
            elif isinstance(ev, DeviceHello):
                self._on_hello(ev)
            elif isinstance(ev, HandshakeComplete):
                srv.metrics.handshakes.inc()
                if self._on_authenticated is not None:
                    self._on_authenticated()
                srv._device_online(self)
                self._send_config_if_newer()
            elif isinstance(ev, Batch):
                if self._on_batch(ev):
                    return True
            elif isinstance(ev, Closed):
                # peer misbehaviour the core detected (refusals we decided were counted
                # where we decided them)
                if not ev.remote and self.conn.error is not None and ev.code not in NOT_REFUSALS:
                    srv.metrics.refused(CloseCode(ev.code).reason)
                    server_log.info("closed %s: %s", self.device or "unknown device", ev.reason)
                out = self.conn.data_to_send()
                if out:
                    self._out.put(out)
                return True
        out = self.conn.data_to_send()
        if out:
            self._out.put(out)
        return False

    def _on_batch(self, ev: Batch) -> bool:
        """Check the limits, store, acknowledge once stored; True when this closed."""
        srv, device, size = self.server, self.device, len(ev.payload)
        assert device is not None
        limits = srv.limits
        if self.unacked >= limits.window or limits.quota_bytes:
            refusal = self._over_limits(ev)
            if refusal is not None:
                srv.metrics.refused(refusal[0].reason)
                server_log.info("closed %s: %s", device, refusal[1])
                self.close_now(*refusal, end_transport=False)
                return True
        self.unacked += 1
        metrics = srv.metrics
        metrics.bytes_tally.value += size
        writer = srv._writer
        now = srv.last_batch[device] = self._time()
        if writer.inline:
            # stored now, in the loop: acknowledge in the same step (no future, no callback;
            # what _acknowledge does, written out for the usual case: new, connection open)
            arrived = self._monotonic()
            try:
                new = writer.store_now(device, ev, now)
            except StorageError:
                self._store_failed(size)
                return False
            if not new or self.conn.state is not State.OPEN:
                self._acknowledge(ev.batch_id, size, new, arrived)
                return False
            self.unacked -= 1
            self._out.put(self.conn.send(Ack(ev.batch_id)))
            metrics.observe_ack(max(0.0, self._monotonic() - arrived))
            return False
        fut = srv._writer.submit(device, ev)
        self.pending.add(fut)
        fut.add_done_callback(
            functools.partial(self._stored, ev.batch_id, size, arrived=self._monotonic())
        )
        return False

    def _over_limits(self, ev: Batch) -> tuple[CloseCode, str] | None:
        """The window and the quota: a close code and a reason when this batch breaks one."""
        srv, limits = self.server, self.server.limits
        assert self.device is not None
        if self.unacked >= limits.window:
            return (
                CloseCode.WINDOW_EXCEEDED,
                f"more than {limits.window} batches unacknowledged",
            )
        if limits.quota_bytes:
            used = srv.quota_used(self.device)
            if used + len(ev.payload) > limits.quota_bytes:
                return (
                    CloseCode.QUOTA_EXCEEDED,
                    f"storage quota of {limits.quota_bytes} bytes used up ({used} stored)",
                )
            srv._quota_used[self.device] = used + len(ev.payload)
        return None

    def _on_hello(self, ev: DeviceHello) -> None:
        srv = self.server
        entry = srv.registry.lookup(ev.device_key)
        code = None
        if srv.closing:
            code = CloseCode.GOING_AWAY
        elif entry is None:
            code = CloseCode.UNKNOWN_DEVICE
        elif not entry.active:
            code = CloseCode.REVOKED_DEVICE
        elif srv.replay_cache.seen(ev.ephemeral):
            code = CloseCode.REPLAYED_HANDSHAKE
        if code is not None:
            # refused before the handshake completes: a plaintext REFUSE, and the Closed
            # event that follows counts it
            if code is not CloseCode.GOING_AWAY:
                srv.metrics.refused(code.reason)
            self._out.put(self.conn.send(Refuse(code, code.reason)))
            return
        assert entry is not None
        self.device = entry.name
        # live from the registry lookup on (same loop step, no await in between): a revocation
        # committed after the lookup changes data_version, and the next poll finds this session
        srv._live.setdefault(entry.name, set()).add(self)
        self.send(Accept())

    def _send_config_if_newer(self) -> None:
        assert self.device is not None
        cfg = self.server.storage.get_config(self.device)
        if cfg is not None and cfg[0] > self.conn.config_version:
            self.push(cfg[0], cfg[1])

    def push(self, version: int, body: bytes) -> None:
        """Send a config to this device if the connection is open."""
        if self.conn.state is State.OPEN:
            self.send(Config(version, body))
            self.server.metrics.configs.inc()
            self.sent_version = max(self.sent_version, version)

    def push_if_newer(self, version: int, body: bytes) -> bool:
        """Send a config only if it is newer than what this connection was sent or said it
        holds (the downlink poller: a version pushed here already is not sent twice)."""
        if version <= max(self.sent_version, self.conn.config_version):
            return False
        if self.conn.state is not State.OPEN:
            return False
        self.push(version, body)
        return True

    def _stored(
        self, batch_id: bytes, size: int, fut: asyncio.Future[bool], arrived: float | None = None
    ) -> None:
        """Done callback of a store: acknowledge (callbacks run in submission order)."""
        self.pending.discard(fut)
        if fut.cancelled():
            return
        if fut.exception() is not None:
            self._store_failed(size)
            return
        self._acknowledge(batch_id, size, fut.result(), arrived)

    def _store_failed(self, size: int) -> None:
        """Not stored, so not acknowledged: close; the device resends it later."""
        self.server.quota_release(self.device, size)
        if self.conn.state is State.OPEN:
            self.send(Close(CloseCode.INTERNAL_ERROR, "storage failed"))
            self._out.finish()

    def _acknowledge(self, batch_id: bytes, size: int, new: bool, arrived: float | None) -> None:
        """A batch is stored (``new``) or was already (a duplicate): acknowledge it."""
        if not new:
            # a duplicate takes no room: give its bytes back to the quota
            self.server.quota_release(self.device, size)
        if self.conn.state is not State.OPEN:
            return
        self.unacked -= 1
        self._out.put(self.conn.send(Ack(batch_id)))
        if arrived is not None:
            self.server.metrics.observe_ack(max(0.0, self._monotonic() - arrived))
