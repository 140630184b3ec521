"""The device uploader: drains the durable outbox to the endpoint over one tunnel connection.

``Uploader.enqueue(payload)`` is synchronous and fast (one SQLite insert); the engine never
waits on the network. ``Uploader.run()`` is the long-lived task: connect, handshake (the oldest
waiting batch rides in the first message: 0-RTT), keep up to ``window`` batches in flight,
delete each batch when its ``Ack`` arrives, seal partial batches when they get old, and on any
failure reconnect after an exponential backoff with full jitter. Every batch not acknowledged
is sent again on the next connection; the endpoint deduplicates on the batch id.

The backoff starts again from its base only when a batch is acknowledged (a handshake that
completes and then fails does not count as a success, or a device would reconnect many times
a second against an endpoint that accepts and then drops it). Close codes the device acts on:
``window_exceeded`` halves the window it keeps in flight (the endpoint's is smaller);
``quota_exceeded``, ``revoked_device`` and ``unknown_device`` push the backoff to its cap (they
do not go away by retrying sooner).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from streamfeat._log import tunnel_log
from streamfeat.clock import Clock, SystemClock
from streamfeat.errors import StorageError, TunnelClosed, TunnelError, TunnelTimeout
from streamfeat.tunnel._crypto import KeyPair
from streamfeat.tunnel._events import (
    NEED_DATA,
    Ack,
    Batch,
    Close,
    CloseCode,
    Closed,
    Config,
    HandshakeComplete,
    Hello,
    reason_of,
)
from streamfeat.tunnel._protocol import Role, State, TunnelConnection
from streamfeat.upload._outbox import Outbox
from streamfeat.upload._transport import Transport

__all__ = ["Backoff", "Uploader", "UploaderConfig", "UploaderStats", "load_device_file"]


class Backoff:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**attempt))``.

    Args:
        base: first ceiling, seconds.
        cap: largest ceiling, seconds.
        rng: a seedable ``random.Random``.
    """

    def __init__(
        self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self.base, self.cap = base, cap
        self.rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the ceiling up to ``cap``."""
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """After a success: start again from ``base``."""
        self.attempt = 0


@dataclass(frozen=True, slots=True)
class UploaderConfig:
    """How the device reaches the endpoint.

    Attributes:
        url: ``ws://host:port/v1/tunnel`` (or ``wss://`` behind a TLS proxy).
        endpoint_key: the endpoint's pinned static public key (32 bytes).
        window: batches in flight without an acknowledgement.
        backoff_base / backoff_cap: reconnect backoff (seconds).
        connect_timeout: for opening the websocket.
        ack_timeout: with batches in flight and no ack for this long, reconnect.
    """

    url: str
    endpoint_key: bytes
    window: int = 32
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    connect_timeout: float = 10.0
    ack_timeout: float = 30.0


@dataclass
class UploaderStats:
    """What the uploader did since it started (not persisted; the outbox counters are)."""

    connects: int = 0
    handshakes: int = 0
    failures: int = 0
    batches_sent: int = 0
    early_batches: int = 0
    acks: int = 0
    configs: int = 0
    closes: dict[str, int] = field(default_factory=dict)


class Uploader:
    """Upload the outbox to the endpoint.

    Args:
        outbox: the durable outbox (in the device store).
        device_key: this device's static key pair (registered at the endpoint).
        config: endpoint address and pinned key, window, timeouts.
        clock: ``time()`` decides when partial batches are sealed.
        rng: seedable randomness for backoff jitter.
        random_bytes: randomness for ephemeral keys.
        connect: ``async () -> Transport``; default opens an aiohttp websocket to ``config.url``.
        sleep: ``async (seconds)``; tests pass one that advances a manual clock.
        on_config: called with each :class:`Config` the endpoint sends (after it was saved);
            configs also go to :attr:`configs` (an ``asyncio.Queue``).
    """

    def __init__(
        self,
        outbox: Outbox,
        device_key: KeyPair,
        config: UploaderConfig,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        connect: Callable[[], Awaitable[Transport]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_config: Callable[[Config], None] | None = None,
    ) -> None:
        self.outbox, self.key, self.config = outbox, device_key, config
        self._clock = clock or SystemClock()
        self.backoff = Backoff(config.backoff_base, config.backoff_cap, rng)
        self._random_bytes = random_bytes
        self._connect = connect or self._connect_ws
        self._sleep = sleep
        self.on_config = on_config
        self.configs: asyncio.Queue[Config] = asyncio.Queue()
        self.stats = UploaderStats()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._transport: Transport | None = None
        self.connected = asyncio.Event()
        self._last_ack = 0.0
        self.window = config.window  # halved when the endpoint says its window is smaller

    async def _connect_ws(self) -> Transport:
        from streamfeat.upload._aiohttp import connect

        return await connect(self.config.url, connect_timeout=self.config.connect_timeout)

    # ---- producer API ------------------------------------------------------------------

    def enqueue(self, payload: bytes) -> None:
        """Add a payload to the outbox (durable on return) and wake the sender.

        Safe to call from any thread; never waits on the network.
        """
        self.outbox.enqueue(payload)
        self._poke()

    def _poke(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # ---- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and upload until :meth:`aclose`; reconnects with backoff on any failure."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        while not self._stopping:
            try:
                await self._session()
            except (TunnelError, OSError) as exc:
                self.stats.failures += 1
                tunnel_log.info("upload connection failed: %r", exc)
            except StorageError as exc:
                # the device store failed (disk full?): keep the task alive and retry later;
                # nothing was acknowledged without being deleted, nothing deleted unacked
                self.stats.failures += 1
                tunnel_log.error("outbox storage failed: %s", exc)
            self.connected.clear()
            if self._stopping:
                break
            delay = self.backoff.next()
            tunnel_log.debug("reconnecting in %.3f s", delay)
            await self._sleep_or_stop(delay)

    async def _sleep_or_stop(self, delay: float) -> None:
        if self._sleep is not asyncio.sleep:
            await self._sleep(delay)  # injected (tests): it decides how time passes
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_stop(), delay)  # aclose() cuts the wait short

    async def _wait_stop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()

    async def aclose(self) -> None:
        """Stop: close the connection normally; unacknowledged batches stay in the outbox."""
        self._stopping = True
        self._poke()
        if self._transport is not None:
            with contextlib.suppress(Exception):
                await self._transport.aclose()

    async def wait_drained(self, seconds: float) -> bool:
        """Wait until nothing is pending or in the outbox (sealing partial batches first)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            self.outbox.flush()
            self._poke()
            if len(self.outbox) == 0 and self.outbox.pending_items == 0:
                return True
            await asyncio.sleep(0.02)
        return False

    # ---- one connection ----------------------------------------------------------------

    async def _session(self) -> None:
        self.stats.connects += 1
        transport = await self._connect()
        self._transport = transport
        conn = TunnelConnection(
            Role.DEVICE,
            static=self.key,
            remote_static=self.config.endpoint_key,
            random_bytes=self._random_bytes,
        )
        inflight: dict[bytes, int] = {}
        self._last_ack = self._clock.monotonic()
        cursor = 0  # highest outbox seq sent on this connection
        self.outbox.seal_due()
        first = self.outbox.batches(limit=1)
        saved = self.outbox.load_config()
        hello = Hello(
            saved[0] if saved else 0, Batch(first[0].batch_id, first[0].payload) if first else None
        )
        if first:
            inflight[first[0].batch_id] = first[0].seq
            cursor = first[0].seq
            self.stats.early_batches += 1
            self.stats.batches_sent += 1
        try:
            await transport.send(conn.send(hello))
            reader = asyncio.create_task(self._read(conn, transport, inflight))
            reader.add_done_callback(lambda _task: self._wake.set())
            try:
                while not reader.done() and not self._stopping:
                    if conn.state is State.OPEN:
                        cursor = await self._fill(conn, transport, inflight, cursor)
                    await self._wait(reader, inflight)
            finally:
                if not reader.done():
                    if conn.state is State.OPEN:
                        with contextlib.suppress(TunnelError):
                            await transport.send(
                                conn.send(Close(CloseCode.NORMAL, "device stopping"))
                            )
                    reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    exc = await reader
                    if exc is not None:
                        raise exc
        finally:
            self._transport = None
            await transport.aclose()

    async def _fill(
        self, conn: TunnelConnection, transport: Transport, inflight: dict[bytes, int], cursor: int
    ) -> int:
        """Seal what is due and send batches until the window is full."""
        self.outbox.seal_due()
        room = self.window - len(inflight)
        if room <= 0:
            return cursor
        for b in self.outbox.batches(after_seq=cursor, limit=room):
            if not inflight:
                self._last_ack = self._clock.monotonic()  # the ack timer starts at the send
            inflight[b.batch_id] = b.seq
            cursor = b.seq
            await transport.send(conn.send(Batch(b.batch_id, b.payload)))
            self.stats.batches_sent += 1
        return cursor

    async def _wait(
        self, reader: asyncio.Task[TunnelError | None], inflight: dict[bytes, int]
    ) -> None:
        """Sleep until woken (enqueue, ack, handshake), the seal deadline, or the reader ends.

        Raises:
            TunnelTimeout: batches were in flight and no ack came for ``ack_timeout``.
        """
        timeout = self.config.ack_timeout
        deadline = self.outbox.seal_deadline()
        if deadline is not None:
            # a clock that went backwards makes this negative: treat as due now
            timeout = min(timeout, max(0.0, deadline - self._clock.time()))
        if inflight:
            stall = max(0.0, self._clock.monotonic() - self._last_ack)
            if stall >= self.config.ack_timeout:
                msg = f"no acknowledgement for {stall:.1f} s with {len(inflight)} batches in flight"
                raise TunnelTimeout(msg, close_code=CloseCode.ABNORMAL)
            timeout = min(timeout, self.config.ack_timeout - stall)
        self._wake.clear()
        if reader.done():
            return
        # the reader's end sets the same event (a done callback), so one wait covers both; no
        # task and no asyncio.wait per wake-up (one per ack when the window is small)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _read(
        self, conn: TunnelConnection, transport: Transport, inflight: dict[bytes, int]
    ) -> TunnelError | None:
        """Receive until the connection closes; returns the error that ended it, if any."""
        while True:
            data = await transport.receive()
            conn.receive_data(data)
            acked: list[bytes] = []  # deleted from the outbox together, once per message
            while (ev := conn.next_event()) is not NEED_DATA:
                if type(ev) is Ack:
                    self.stats.acks += 1
                    inflight.pop(ev.batch_id, None)
                    acked.append(ev.batch_id)
                    continue
                if acked:
                    self._acked(acked)
                    acked = []
                if isinstance(ev, HandshakeComplete):
                    self.stats.handshakes += 1
                    self.connected.set()
                    self._wake.set()
                elif isinstance(ev, Config):
                    self._on_config(ev)
                elif isinstance(ev, Closed):
                    out = conn.data_to_send()
                    if out:
                        with contextlib.suppress(TunnelClosed):
                            await transport.send(out)
                    reason = reason_of(ev.code)
                    self.stats.closes[reason] = self.stats.closes.get(reason, 0) + 1
                    self._on_close_code(ev.code)
                    if not self._stopping and ev.code not in (
                        CloseCode.NORMAL,
                        CloseCode.GOING_AWAY,
                    ):
                        tunnel_log.warning("tunnel closed: %s (%s)", reason, ev.reason)
                    return conn.error
            if acked:
                self._acked(acked)
            if not data:
                return None

    def _acked(self, batch_ids: list[bytes]) -> None:
        """Batches the endpoint stored: delete them from the outbox and wake the sender."""
        self.backoff.reset()  # only a stored batch proves the path works
        self.outbox.ack_many(batch_ids)
        self._last_ack = self._clock.monotonic()
        self._wake.set()

    def _on_close_code(self, code: int) -> None:
        """Adapt to what the endpoint's close code says (see the module docstring)."""
        if code == CloseCode.WINDOW_EXCEEDED:
            self.window = max(1, self.window // 2)
            tunnel_log.warning(
                "endpoint window is smaller: sending %d batches at most", self.window
            )
        elif code in (
            CloseCode.QUOTA_EXCEEDED,
            CloseCode.REVOKED_DEVICE,
            CloseCode.UNKNOWN_DEVICE,
        ):
            self.backoff.attempt = max(self.backoff.attempt, 30)  # next delays up to the cap

    def _on_config(self, ev: Config) -> None:
        self.stats.configs += 1
        # saved first: a restart must announce the version it really holds
        self.outbox.save_config(ev.version, ev.body)
        self.configs.put_nowait(ev)
        if self.on_config is not None:
            try:
                self.on_config(ev)
            except Exception:  # the callback's failure must not take the uploader down
                tunnel_log.exception("on_config callback failed")


def load_device_file(
    path: str | os.PathLike[str], **overrides: object
) -> tuple[KeyPair, UploaderConfig]:
    """Read a device file written by ``streamfeat device add``.

    Returns:
        The device's key pair and an :class:`UploaderConfig` (``overrides`` replace fields).

    Raises:
        StorageError: the file is missing or malformed.
    """
    from dataclasses import replace

    from streamfeat.upload._keys import read_key_file

    data = read_key_file(path)
    try:
        key = KeyPair.from_private(bytes.fromhex(data["private_key"]))
        cfg = UploaderConfig(
            url=str(data["url"]), endpoint_key=bytes.fromhex(data["endpoint_public_key"])
        )
    except (KeyError, ValueError) as exc:
        msg = f"device file {path} is malformed: {exc!r}"
        raise StorageError(msg) from exc
    return key, replace(cfg, **overrides)  # type: ignore[arg-type]
