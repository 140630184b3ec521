"""The cloud endpoint: an aiohttp app around :class:`TunnelConnection` (responder side).

Per connection: feed websocket messages into the connection, answer ``DeviceHello`` from the
registry and the replay cache, hand every ``Batch`` to the group-commit writer, and send the
``Ack`` only once the writer's transaction committed. One writer thread stores the batches of
all connections in shared transactions (group commit), so 200 devices cost one fsync per
group rather than one per batch.

Replay of a first message: a captured handshake message 1 decrypts again (IK's first
message is not fresh), so (a) its ephemeral key is remembered in a bounded in-memory replay
cache and a second use is refused as ``replayed_handshake``, and (b) independently of the
cache, and across restarts, the storage is idempotent on ``(device, batch_id)``: the 0-RTT
batch of a replayed message is never stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from streamfeat._log import server_log
from streamfeat.clock import Clock, SystemClock
from streamfeat.endpoint._admin import AdminGuard
from streamfeat.endpoint._dashboard import Dashboard
from streamfeat.endpoint._guard import (
    ACCEPT_BURST,
    LISTEN_BACKLOG,
    ConnectionGuard,
    GuardedProtocol,
    install_accept_error_handler,
)
from streamfeat.endpoint._limits import Limits
from streamfeat.endpoint._metrics import CONTENT_TYPE_LATEST, NOT_REFUSALS, TunnelMetrics
from streamfeat.endpoint._pages import PAGES_PATH, CandidateSource, CatalogueSource, PagesRoute
from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._storage import Storage, StoredBatch
from streamfeat.errors import StorageError, TunnelClosed
from streamfeat.tunnel._crypto import KeyPair
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
from streamfeat.tunnel._items import split_items
from streamfeat.tunnel._protocol import Role, State, TunnelConnection
from streamfeat.upload._aiohttp import MAX_MESSAGE, WebSocketTransport
from streamfeat.upload._transport import Transport

__all__ = ["Decoder", "Limits", "ReplayCache", "TunnelServer"]

Decoder = Callable[[bytes], list[dict[str, Any]]]


class ReplayCache:
    """First-message ephemeral keys seen recently (bounded, oldest forgotten first)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._max = max_entries

    def seen(self, ephemeral: bytes) -> bool:
        """Record ``ephemeral``; True if it was already there."""
        if ephemeral in self._seen:
            return True
        self._seen[ephemeral] = None
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return False


@dataclass
class _Pending:
    batch: StoredBatch
    done: asyncio.Future[bool]


class _Writer:
    """Group commit: one worker thread stores whatever batches queued up since the last commit."""

    def __init__(
        self, storage: Storage, metrics: TunnelMetrics, decoder: Decoder | None, clock: Clock
    ) -> None:
        self._storage, self._metrics, self._decoder, self._clock = storage, metrics, decoder, clock
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="streamfeat-store")
        self._task: asyncio.Task[None] | None = None
        # a storage that never blocks (in memory, or a non-blocking client) runs in the loop
        self._inline = bool(getattr(storage, "non_blocking", False))
        self.last_error: str | None = None  # the last store failed (health says degraded)
        self._decode_logged = -60.0

    def _failed(self, exc: Exception) -> None:
        self._metrics.storage_failures.inc()
        if self.last_error is None:
            server_log.error("storage failed: %s", exc)  # once per failing spell: no log storm
        self.last_error = str(exc)[:300]

    def _succeeded(self) -> None:
        if self.last_error is not None:
            server_log.warning("storage works again")
        self.last_error = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, device: str, batch: Batch) -> asyncio.Future[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        sb = StoredBatch(device, batch.batch_id, batch.payload, self._clock.time())
        if self._inline:
            # nothing to wait for and nothing to group: store now, skip the queue's hop
            # (no store-latency histogram here: it measures blocking commits)
            try:
                decoded = self._decode(sb)
                new = self._storage.store_batches([decoded])[0]
            except StorageError as exc:
                self._failed(exc)
                fut.set_exception(exc)
            else:
                self._succeeded()
                (self._metrics.stored if new else self._metrics.duplicates).inc()
                if new:
                    self._metrics.count_records(decoded.records)
                fut.set_result(new)
            return fut
        self._queue.put_nowait(_Pending(sb, fut))
        return fut

    def _decode(self, b: StoredBatch) -> StoredBatch:
        if self._decoder is None:
            return b
        try:
            records = [r for item in split_items(b.payload) for r in self._decoder(item)]
        except Exception as exc:  # a bad batch is still stored raw and acknowledged: never lost
            self._metrics.decode_errors.inc()
            # one line, at most once a minute: a device sending garbage must not flood the log
            now = self._clock.monotonic()
            if now - self._decode_logged >= 60.0:
                self._decode_logged = now
                server_log.warning(
                    "decoder failed on batch %s of %s: %s (stored raw; counted in "
                    "streamfeat_tunnel_decode_errors_total, logged once a minute)",
                    b.batch_id.hex(),
                    b.device,
                    exc,
                )
            return b
        return StoredBatch(b.device, b.batch_id, b.payload, b.received, records)

    def _store(self, group: list[_Pending]) -> list[bool]:
        batches = [self._decode(p.batch) for p in group]
        with self._metrics.store_seconds.time():
            results = self._storage.store_batches(batches)
        for b, new in zip(batches, results, strict=True):
            if new:
                self._metrics.count_records(b.records)
        return results

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            if first is None:
                return
            group, stop = [first], False
            while not self._queue.empty() and len(group) < 512:
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            try:
                results = await loop.run_in_executor(self._pool, self._store, group)
            except Exception as exc:  # any failure: nothing stored, nothing acked
                self._failed(exc)
                err = exc if isinstance(exc, StorageError) else StorageError(str(exc))
                for p in group:
                    if not p.done.done():
                        p.done.set_exception(err)
            else:
                self._succeeded()
                for p, new in zip(group, results, strict=True):
                    (self._metrics.stored if new else self._metrics.duplicates).inc()
                    if not p.done.done():
                        p.done.set_result(new)
            if stop:
                return

    async def aclose(self) -> None:
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task
        self._pool.shutdown(wait=True)


class _Outgoing:
    """Bytes to write, in the order ``conn.send`` produced them (the frame nonces must not
    reorder). The reader flushes right after handling a message, so an ack stored inline
    goes out without a task switch; the writer task flushes what completes later (acks of
    group commits)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._q: deque[bytes] = deque()
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._finishing = False
        self.broken = False
        self.reader_active = False  # the reader flushes when done: no need to wake the task

    def put(self, data: bytes) -> None:
        if data and not self.broken:
            self._q.append(data)
            if not self.reader_active:
                self._ready.set()

    def finish(self) -> None:
        """Write what is queued, then stop the writer task."""
        self._finishing = True
        self._ready.set()

    async def flush(self) -> None:
        async with self._lock:
            while self._q:
                data = self._q.popleft()
                try:
                    await self._transport.send(data)
                except TunnelClosed:
                    self._q.clear()
                    self.broken = True
                    return

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            await self.flush()
            if (self._finishing and not self._q) or self.broken:
                return


class _Session:
    """One device connection on the endpoint."""

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
        self._out = _Outgoing(transport)
        self.pending: set[asyncio.Future[bool]] = set()  # stores not yet acknowledged
        self.unacked = 0  # batches received on this connection and not yet acknowledged
        self._on_authenticated = on_authenticated
        self._writer_task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

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
        try:
            await self._read_loop()
        finally:
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
            if isinstance(ev, DeviceHello):
                self._on_hello(ev)
            elif isinstance(ev, HandshakeComplete):
                srv.metrics.handshakes.inc()
                if self._on_authenticated is not None:
                    self._on_authenticated()
                srv._device_online(self)
                self._send_config_if_newer()
            elif isinstance(ev, Batch):
                assert self.device is not None
                refusal = self._over_limits(ev)
                if refusal is not None:
                    srv.metrics.refused(refusal[0].reason)
                    server_log.info("closed %s: %s", self.device, refusal[1])
                    self.close_now(*refusal, end_transport=False)
                    return True
                self.unacked += 1
                srv.metrics.bytes.inc(len(ev.payload))
                srv.last_batch[self.device] = srv._clock.time()
                fut = srv._writer.submit(self.device, ev)
                arrived = srv._clock.monotonic()
                if fut.done():  # stored inline: ack now rather than one loop turn later
                    self._stored(ev.batch_id, len(ev.payload), fut, arrived)
                else:
                    self.pending.add(fut)
                    fut.add_done_callback(
                        functools.partial(
                            self._stored, ev.batch_id, len(ev.payload), arrived=arrived
                        )
                    )
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

    def _stored(
        self, batch_id: bytes, size: int, fut: asyncio.Future[bool], arrived: float | None = None
    ) -> None:
        """Done callback of a store: acknowledge (callbacks run in submission order)."""
        self.pending.discard(fut)
        if not fut.cancelled() and fut.exception() is None and not fut.result():
            # a duplicate takes no room: give its bytes back to the quota
            self.server.quota_release(self.device, size)
        if fut.cancelled() or self.conn.state is not State.OPEN:
            return
        if fut.exception() is not None:
            # not stored, so not acknowledged: close; the device resends it later
            self.server.quota_release(self.device, size)
            self.send(Close(CloseCode.INTERNAL_ERROR, "storage failed"))
            self._out.finish()
            return
        self.unacked -= 1
        self.send(Ack(batch_id))
        if arrived is not None:
            self.server.metrics.ack_seconds.observe(
                max(0.0, self.server._clock.monotonic() - arrived)
            )


class TunnelServer:
    """The endpoint.

    Args:
        key: the endpoint's static key pair (devices pin its public half).
        registry: known devices.
        storage: where batches go (``SQLiteStorage`` by default in ``serve``).
        decoder: optional ``bytes -> list[dict]`` applied to every item of a batch; the
            records are stored next to the raw batch.
        metrics: counters to update (a fresh :class:`TunnelMetrics` by default).
        random_bytes: randomness for ephemeral keys.
        clock: ``time()`` stamps stored batches and checks the freshness of page requests;
            ``monotonic()`` times acknowledgements.
        candidates: where ``GET /v1/pages`` takes pages from (default: the shared catalogue,
            :class:`~streamfeat.endpoint._pages.CatalogueSource`).
        limits: deadlines, caps, window and quota (:class:`Limits` defaults).
        admin_token: the token the operator routes (dashboard, ``/metrics``) require; None:
            loopback clients only (see ``_admin``).
        dashboard: serve ``/dashboard``.
    """

    def __init__(
        self,
        *,
        key: KeyPair,
        registry: Registry,
        storage: Storage,
        decoder: Decoder | None = None,
        metrics: TunnelMetrics | None = None,
        replay_cache: ReplayCache | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        clock: Clock | None = None,
        candidates: CandidateSource | None = None,
        limits: Limits | None = None,
        admin_token: str | None = None,
        dashboard: bool = True,
    ) -> None:
        self.key, self.registry, self.storage = key, registry, storage
        self.limits = limits or Limits()
        self.metrics = metrics or TunnelMetrics()
        self.replay_cache = replay_cache or ReplayCache()
        self.random_bytes = random_bytes
        self.closing = False
        self._clock = clock or SystemClock()
        self._pages = PagesRoute(self, candidates or CatalogueSource())
        self._decoder = decoder
        self._writer: _Writer = _Writer(storage, self.metrics, decoder, self._clock)
        self._live: dict[str, set[_Session]] = {}
        # device -> the tasks-file version it announced on its (latest) open connection
        self.device_versions: dict[str, int] = {}
        # devices with a completed handshake (``_live`` also holds sessions just accepted)
        self._authenticated: dict[str, set[_Session]] = {}
        self.last_batch: dict[str, float] = {}  # device -> when its latest batch arrived
        self.admin = AdminGuard(admin_token, self.metrics)
        self.dashboard = Dashboard(self) if dashboard else None
        size = getattr(storage, "size_bytes", None)
        if callable(size):
            self.metrics.storage_bytes.set_function(size)
        self._sessions: set[_Session] = set()
        self._started = False
        self._quota_used: dict[str, int] = {}
        self._poller: asyncio.Task[None] | None = None
        self.guard = ConnectionGuard(
            timeout=self.limits.handshake_timeout,
            max_total=self.limits.max_unauthenticated,
            max_per_source=self.limits.max_unauthenticated_per_source,
            on_refuse=self.metrics.refused,
        )

    def _ensure_started(self) -> None:
        if not self._started:
            self._writer.start()
            self._poller = asyncio.get_running_loop().create_task(self._poll_revocations())
            self._started = True

    # ---- quota ---------------------------------------------------------------------------

    def quota_used(self, device: str) -> int:
        """Payload bytes counted against ``device``'s quota (read from storage once)."""
        used = self._quota_used.get(device)
        if used is None:
            counter = getattr(self.storage, "device_bytes", None)
            used = int(counter(device)) if counter is not None else 0
            self._quota_used[device] = used
        return used

    def quota_release(self, device: str | None, size: int) -> None:
        """A batch counted at receipt was not stored (duplicate or failure): uncount it."""
        if device is not None and device in self._quota_used:
            self._quota_used[device] = max(0, self._quota_used[device] - size)

    # ---- revocation ----------------------------------------------------------------------

    def revoke(self, name: str) -> int:
        """Close every open connection of device ``name`` now (after it was revoked).

        Returns:
            The number of connections closed.
        """
        live = list(self._live.get(name, ()))
        for s in live:
            s.close_now(CloseCode.REVOKED_DEVICE, "device revoked")
        if live:
            self.metrics.refused(CloseCode.REVOKED_DEVICE.reason)
            server_log.warning("device %s revoked: %d connection(s) closed", name, len(live))
        return len(live)

    def check_revocations(self) -> int:
        """Close the connections of live devices the registry now says are revoked."""
        names = [n for n, sessions in self._live.items() if sessions]
        return sum(self.revoke(n) for n in self.registry.revoked_among(names)) if names else 0

    async def _poll_revocations(self) -> None:
        """Notice ``device revoke`` run by another process: SQLite's data_version changes when
        another connection commits (our own storage connection included), so a quiet poll costs
        one PRAGMA and any other one indexed query over the live devices."""
        seen = -1
        while True:
            await asyncio.sleep(self.limits.revocation_poll)
            try:
                version = self.registry.data_version()
                if version != seen:
                    seen = version
                    self.check_revocations()
            except Exception:  # a failing poll must not end the endpoint
                server_log.warning("revocation check failed", exc_info=True)

    async def handle_transport(
        self, transport: Transport, on_authenticated: Callable[[], None] | None = None
    ) -> None:
        """Serve one device connection over any transport until it closes.

        Args:
            transport: the connection.
            on_authenticated: called when the device's handshake completes.
        """
        self._ensure_started()
        session = _Session(self, transport, on_authenticated)
        self._sessions.add(session)
        self.metrics.connections.inc()
        try:
            await session.run()
        finally:
            self.metrics.connections.dec()
            self._sessions.discard(session)
            if session.device is not None:
                self._device_offline(session)

    def _device_online(self, session: _Session) -> None:
        """A session completed its handshake: count the device online, note its version."""
        device = session.device or ""
        authed = self._authenticated.setdefault(device, set())
        if not authed:
            self.metrics.devices_online.inc()
        authed.add(session)
        version = session.conn.config_version
        old = self.device_versions.get(device)
        if old != version:
            if old is not None:
                self.metrics.device_config_version.labels(str(old)).dec()
            self.metrics.device_config_version.labels(str(version)).inc()
            self.device_versions[device] = version

    def _device_offline(self, session: _Session) -> None:
        """A session of a known device ended (accepted, maybe never authenticated)."""
        device = session.device or ""
        live = self._live.get(device)
        if live is not None:
            live.discard(session)
            if not live:
                del self._live[device]
        authed = self._authenticated.get(device)
        if authed is None or session not in authed:
            return
        authed.discard(session)
        if not authed:
            del self._authenticated[device]
            self.metrics.devices_online.dec()
            old = self.device_versions.pop(device, None)
            if old is not None:
                self.metrics.device_config_version.labels(str(old)).dec()

    @property
    def clock(self) -> Clock:
        """The endpoint's clock (stamps, request freshness)."""
        return self._clock

    def push_config(self, device: str, version: int, body: bytes) -> int:
        """Store a config for ``device`` and send it down its open connections now.

        Returns:
            The number of open connections it was sent on (0: it goes at the next connect).
        """
        self.storage.set_config(device, version, body)
        live = list(self._live.get(device, ()))
        for s in live:
            s.push(version, body)
        return len(live)

    # ---- aiohttp -----------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        # timeout: how long our close waits for the device's close reply (shutdown speed)
        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE, heartbeat=30.0, compress=False, timeout=2.0
        )
        await ws.prepare(request)
        raw = request.transport
        transport = WebSocketTransport(ws)
        await self.handle_transport(transport, functools.partial(self.guard.authenticated, raw))
        err = transport.error
        if getattr(err, "code", None) == 1009:  # aiohttp closed it: a message over MAX_MESSAGE
            self.metrics.refused("message_too_large")
            server_log.info("closed a connection: websocket message over %d bytes", MAX_MESSAGE)
        return ws

    def health(self) -> tuple[int, str]:
        """``/healthz``: 200 ``ok``; 503 ``degraded: ...`` while storage fails; 503 when
        shutting down."""
        if self.closing:
            return 503, "shutting down"
        if self._writer.last_error is not None:
            return 503, f"degraded: storage failing: {self._writer.last_error}"
        return 200, "ok"

    async def _healthz(self, request: web.Request) -> web.Response:
        self.guard.served(request.transport)
        status, text = self.health()
        return web.Response(status=status, text=text + "\n")

    def protocol_factory(
        self, inner: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """Wrap aiohttp's per-connection protocol factory with the admission guard."""
        return lambda: GuardedProtocol(inner(), self.guard)

    async def _metrics(self, request: web.Request) -> web.Response:
        self.guard.served(request.transport)
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    def app(self) -> web.Application:
        """The aiohttp application: ``/v1/tunnel``, ``/healthz``, ``/metrics``, ``/v1/pages``,
        ``/dashboard`` (operator routes guarded by :class:`AdminGuard`)."""
        app = web.Application(middlewares=[self.admin.middleware])
        app.router.add_get("/v1/tunnel", self._ws_handler)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get(PAGES_PATH, self._pages.handle)  # candidate pages (docs/ranking.md)
        if self.dashboard is not None:
            self.dashboard.add_routes(app)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(lambda _app: self.aclose())
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop taking devices and close every connection with GOING_AWAY once its stored
        batches are acknowledged."""
        self.closing = True
        pending = [f for s in self._sessions for f in s.pending]
        if pending:
            # batches already handed to the writer get stored and acknowledged first
            await asyncio.wait(pending, timeout=10)
        await asyncio.sleep(0)  # let the done callbacks queue their acks
        for s in list(self._sessions):
            if s.conn.state is State.OPEN:
                with contextlib.suppress(Exception):
                    s.send(Close(CloseCode.GOING_AWAY, "endpoint shutting down"))
            s._out.finish()
        for s in list(self._sessions):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.transport.aclose(), 2)

    async def aclose(self) -> None:
        """Finish pending stores and close the storage and registry."""
        if self._started:
            if self._poller is not None:
                self._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poller
            await self._writer.aclose()
            self._started = False
        self.storage.close()
        self.registry.close()


async def serve(
    *,
    host: str,
    port: int,
    db: Path,
    key_path: Path,
    decoder: Decoder | None = None,
    ready: Callable[[str, int], None] | None = None,
    limits: Limits | None = None,
    admin_token: str | None = None,
) -> None:
    """Run the endpoint until SIGINT/SIGTERM, then shut down gracefully.

    The database and key are created when missing (the command line checks first and refuses
    unless ``--init``). Raises OSError when the address can't be bound.
    """
    from streamfeat.endpoint._registry import endpoint_keypair
    from streamfeat.endpoint._storage import SQLiteStorage

    key = endpoint_keypair(key_path)
    registry = Registry(db)  # runs quick_check on an existing file
    server = TunnelServer(
        key=key,
        registry=registry,
        storage=SQLiteStorage(db, check=False),
        decoder=decoder,
        limits=limits,
        admin_token=admin_token,
    )
    from streamfeat.endpoint._release_routes import ReleaseRoutes

    install_accept_error_handler(asyncio.get_running_loop(), server.metrics.accept_errors.inc)
    app = server.app()
    ReleaseRoutes(server, db).install(app)  # bundle pulls, device reports, announcements
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = _GuardedSite(runner, host, port, server=server)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    server_log.warning("serving on http://%s:%d (endpoint key %s)", host, bound, key.public.hex())
    if ready is not None:
        ready(host, bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


class _GuardedSite(web.TCPSite):
    """A TCP site whose connections pass through the server's admission guard."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, *, server: TunnelServer
    ) -> None:
        super().__init__(runner, host, port, backlog=ACCEPT_BURST)
        self._tunnel_server = server

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does
        loop = asyncio.get_running_loop()
        inner = self._runner.server
        assert inner is not None
        sock = socket.create_server((self._host, self._port), backlog=LISTEN_BACKLOG)
        sock.setblocking(False)
        try:
            self._server = await loop.create_server(
                self._tunnel_server.protocol_factory(inner), sock=sock, backlog=ACCEPT_BURST
            )
        except BaseException:
            sock.close()
            raise
        # asyncio listened with the accept burst as the queue length; make the kernel's
        # queue of not-yet-accepted connections longer again (same socket object)
        sock.listen(LISTEN_BACKLOG)
