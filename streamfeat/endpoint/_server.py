"""The cloud endpoint: :class:`TunnelServer`, an aiohttp app serving devices over the tunnel.

The parts live in modules of their own: one connection is a
:class:`~streamfeat.endpoint._session.Session`; batches go through the group-commit
:class:`~streamfeat.endpoint._writer.GroupWriter` (a ``Batch`` is acknowledged only once its
transaction committed); first messages are checked against a replay cache
(:class:`~streamfeat.endpoint._replay_cache.ReplayCache` in one process, the PostgreSQL one
shared by several). This module keeps the server itself: the devices online, revocation,
config pushes, health, the routes, graceful shutdown, and :func:`serve`.

Replay of a first message: a captured handshake message 1 decrypts again (IK's first
message is not fresh), so (a) its ephemeral key is remembered in the replay cache and a
second use is refused as ``replayed_handshake``, and (b) independently of the cache, and
across restarts, the storage is idempotent on ``(device, batch_id)``: the 0-RTT batch of a
replayed message is never stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

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
from streamfeat.endpoint._metrics import CONTENT_TYPE_LATEST, TunnelMetrics
from streamfeat.endpoint._pages import PAGES_PATH, CandidateSource, CatalogueSource, PagesRoute
from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._replay_cache import ReplayCache
from streamfeat.endpoint._session import Session
from streamfeat.endpoint._storage import Storage
from streamfeat.endpoint._writer import Decoder, GroupWriter
from streamfeat.tunnel._crypto import KeyPair
from streamfeat.tunnel._events import Close, CloseCode
from streamfeat.tunnel._protocol import State
from streamfeat.upload._aiohttp import HEARTBEAT, MAX_MESSAGE, WebSocketTransport
from streamfeat.upload._transport import Transport

__all__ = ["Decoder", "GuardedSite", "Limits", "ReplayCache", "TunnelServer"]


class ConfigQueue(Protocol):
    """Where :meth:`TunnelServer.push_config` queues a config for the other processes."""

    def queue(self, device: str, version: int, body: bytes) -> None:
        """Store ``device``'s config and queue it for every endpoint process."""
        ...


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
        heartbeat: seconds a device connection may be silent before a PING; one that answers
            nothing is closed after 1.5 to 2 times this (``None``: no liveness check).
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
        heartbeat: float | None = HEARTBEAT,
    ) -> None:
        self.key, self.registry, self.storage = key, registry, storage
        self.heartbeat = heartbeat  # seconds of silence before a PING (upload/_aiohttp.py)
        self.limits = limits or Limits()
        self.metrics = metrics or TunnelMetrics()
        self.replay_cache = replay_cache or ReplayCache()
        self.random_bytes = random_bytes
        self.closing = False
        self._clock = clock or SystemClock()
        self._pages = PagesRoute(self, candidates or CatalogueSource())
        self._decoder = decoder
        self._writer: GroupWriter = GroupWriter(storage, self.metrics, decoder, self._clock)
        self._live: dict[str, set[Session]] = {}
        # device -> the tasks-file version it announced on its (latest) open connection
        self.device_versions: dict[str, int] = {}
        # devices with a completed handshake (``_live`` also holds sessions just accepted)
        self._authenticated: dict[str, set[Session]] = {}
        self.last_batch: dict[str, float] = {}  # device -> when its latest batch arrived
        self.admin = AdminGuard(admin_token, self.metrics)
        self.dashboard = Dashboard(self) if dashboard else None
        size = getattr(storage, "size_bytes", None)
        if callable(size):
            self.metrics.storage_bytes.set_function(size)
        self._sessions: set[Session] = set()
        self._started = False
        self._quota_used: dict[str, int] = {}
        self._poller: asyncio.Task[None] | None = None
        #: the downlink queue shared by the endpoint processes (set by the release routes)
        self.downlink: ConfigQueue | None = None
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
        session = Session(self, transport, on_authenticated)
        self._sessions.add(session)
        self.metrics.connections.inc()
        try:
            await session.run()
        finally:
            self.metrics.connections.dec()
            self._sessions.discard(session)
            if session.device is not None:
                self._device_offline(session)

    def _device_online(self, session: Session) -> None:
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

    def _device_offline(self, session: Session) -> None:
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

        With a :attr:`downlink` (``serve`` installs one), the config is also queued, so every
        other endpoint process on the database pushes it down its own connections.

        Returns:
            The number of open connections of this process it was sent on (0: it goes at the
            next connect, or through another process).
        """
        if self.downlink is not None:
            self.downlink.queue(device, version, body)
        else:
            self.storage.set_config(device, version, body)
        live = list(self._live.get(device, ()))
        for s in live:
            s.push(version, body)
        return len(live)

    def live_sessions(self, device: str) -> list[Session]:
        """The open connections of ``device`` in this process."""
        return list(self._live.get(device, ()))

    # ---- aiohttp -----------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        # timeout: how long our close waits for the device's close reply (shutdown speed)
        # liveness: the transport's own check, which answers PINGs itself (autoping off)
        ws = web.WebSocketResponse(
            max_msg_size=MAX_MESSAGE,
            autoping=self.heartbeat is None,
            compress=False,
            timeout=2.0,
        )
        await ws.prepare(request)
        raw = request.transport
        transport = WebSocketTransport(ws, heartbeat=self.heartbeat)
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
    site = GuardedSite(runner, host, port, server=server)
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


class GuardedSite(web.TCPSite):
    """A TCP site whose connections pass through the server's admission guard.

    Args:
        reuse_port: listen with ``SO_REUSEPORT`` (sibling processes share the port).
    """

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        server: TunnelServer,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, host, port, backlog=ACCEPT_BURST)
        self._tunnel_server = server
        self._reuse = reuse_port

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does
        loop = asyncio.get_running_loop()
        inner = self._runner.server
        assert inner is not None
        sock = socket.create_server(
            (self._host, self._port), backlog=LISTEN_BACKLOG, reuse_port=self._reuse
        )
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
