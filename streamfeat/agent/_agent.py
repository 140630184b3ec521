"""The embedded agent: engine, store, tasks, encoder and uploader on one asyncio loop.

Theory of operation
-------------------
``await agent.submit(event)`` validates the event (an invalid one goes to the store's
quarantine with its bytes and reason, counted, and processing goes on) and queues it on an
:class:`~streamfeat.runtime.AsyncEngine`, whose worker runs the engine in small batches. Each
batch's records go to the synchronous :class:`~streamfeat.agent._sink.RecordSink`, which
stores them, encodes the kinds of ``[upload] records`` with the configured codec and puts the
payloads in the durable outbox, which the :class:`~streamfeat.upload.Uploader` drains; then
``trigger`` records are dispatched to the :class:`~streamfeat.runtime._tasks.TaskRunner`
(tasks run beside the engine; their ``task`` records come back through the same sink).

This module is the thin asyncio shell that wires those parts: the sink, the
:class:`~streamfeat.agent._switcher.ConfigSwitcher` (the running tasks file, snapshots and
switches), the engine's queue, the tasks and the uploader.

Nothing on the sink's path waits on the network: enqueueing is one SQLite insert. The sink is
synchronous on purpose: any other task of the loop then sees the engine between batches with
every record of the last batch already stored, which is what makes the periodic snapshot (every
``snapshot_every`` seconds, and on close) consistent without a lock.

Restart (effectively-once, see :mod:`streamfeat.agent._journal`): ``submit`` journals each
accepted event in the store before queueing it; after each engine batch the batch's records,
their outbox items, the engine snapshot and the trimming of the journal commit in one
transaction. A new agent on the same store (after a clean stop or a ``kill -9``) restores that
snapshot with its tasks file and version and processes the journal again: every record is
uploaded once and no accepted event is lost.

A store that fails (a full disk) stops the agent: the failing commit rolls back (its events
stay journaled), later submits raise a one-line :class:`~streamfeat.errors.StorageError`, and a
restart with room processes them.

Downlink configuration: when the endpoint sends a new tasks file (a tunnel ``Config``), the
agent switches live (:meth:`Agent.apply_config`): new submissions go to a fresh, not yet
started queue; the old queue is drained through the old engine (so no event is lost or
reordered across the switch); the switcher builds the new engine carrying over the state of
unchanged triggers, windows and features; then the new queue starts. Each applied (or refused) version is recorded in the store's ``agent_configs`` table.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streamfeat._event import Event, event_from_obj
from streamfeat._log import agent_log
from streamfeat._records import raw_size
from streamfeat.agent._journal import Journal
from streamfeat.agent._outbox import TimedOutbox
from streamfeat.agent._ports import TaskDispatcher, UploaderLike
from streamfeat.agent._ranking import RankingShell
from streamfeat.agent._results import ResultFeed, ResultIterator
from streamfeat.agent._sink import RecordSink
from streamfeat.agent._support import AgentStats, device_seed, key_bytes, load_config, raw_of
from streamfeat.agent._switch import SwitchReport
from streamfeat.agent._switcher import CHECKPOINT, ConfigSwitcher
from streamfeat.clock import Clock, SystemClock
from streamfeat.encoders import Encoder
from streamfeat.encoders.admission import AdmissionFilter
from streamfeat.engine._build import build_engine
from streamfeat.engine._engine import Engine, Record
from streamfeat.errors import ConfigError, EventError, StorageError, TunnelError
from streamfeat.io._store import Store
from streamfeat.ranking import Page
from streamfeat.runtime._engine import AsyncEngine
from streamfeat.tasks import TasksConfig, tasks_folder
from streamfeat.tunnel import Config, KeyPair
from streamfeat.upload._outbox import OutboxConfig
from streamfeat.upload._transport import Transport

__all__ = ["Agent", "AgentStats", "load_config"]

_SNAPSHOT_IDLE = 30.0  # seconds between snapshots while records flow when snapshot_every is 0


@dataclass(slots=True)
class _Live:
    """What a started agent runs (built by :meth:`Agent.start`)."""

    store: Store
    outbox: TimedOutbox
    switcher: ConfigSwitcher
    sink: RecordSink
    shell: AsyncEngine
    journal: Journal


class Agent:
    """The on-device agent (see the module docstring).

    Args:
        tasks: the tasks file (a :class:`TasksConfig`, a path, or TOML text).
        store_path: the device's SQLite store (created 0600 if absent).
        endpoint_url: ``ws://host:port/v1/tunnel``; None runs offline (payloads wait in the outbox).
        endpoint_public_key: the endpoint's static key (32 bytes or hex), pinned.
        device_key: this device's key pair (or its 32-byte private key, bytes or hex).
        clock: event-side time: engine ticks for idle devices, store stamps, task decay fields.
        upload_clock: wall time for upload batching, backoff and latency (default: the system's).
        device: the device name read by :meth:`features` / :meth:`windows` by default.
        queue_size, batch, tick: of the :class:`AsyncEngine` (``tick`` seconds between engine
            advances for idle devices; 0 turns them off).
        snapshot_every: seconds between engine snapshots to the store (0: 30 s while records
            flow, else only on close); a restart replays the journal since the last one.
        retention_every: seconds between runs of the store's ``[store]`` retention and size
            bound (evictions counted in the store's ``evicted.*`` counters; 0: never).
        uploader_options: extra :class:`~streamfeat.upload.UploaderConfig` fields.
        connect: ``async () -> Transport`` replacing the websocket (tests).
        on_upload: called with each list of records put in the outbox (for audits).
        on_result: called on the loop with every ``task`` record as the task makes it (see
            :meth:`results` and :meth:`result`; ``agent/_results.py``).
        sizes: attach ``_raw_bytes`` to window and feature records (size reports).
        release_key: the pinned Ed25519 release public key (32 bytes or hex); with an
            endpoint, announced bundles are pulled, verified against it, and switched to
            (docs/release.md). Without it, announcements are refused and counted.

    Raises:
        ConfigError: the tasks file or a key is invalid (at construction).
    """

    def __init__(
        self,
        *,
        tasks: TasksConfig | str | Path,
        store_path: str | Path,
        endpoint_url: str | None = None,
        endpoint_public_key: bytes | str | None = None,
        device_key: KeyPair | bytes | str | None = None,
        clock: Clock | None = None,
        upload_clock: Clock | None = None,
        device: str = "local",
        queue_size: int = 10_000,
        batch: int = 256,
        tick: float = 1.0,
        snapshot_every: float = 30.0,
        retention_every: float = 60.0,
        uploader_options: dict[str, Any] | None = None,
        connect: Callable[[], Awaitable[Transport]] | None = None,
        on_upload: Callable[[list[Record]], None] | None = None,
        on_result: Callable[[Record], None] | None = None,
        sizes: bool = False,
        release_key: bytes | str | None = None,
    ) -> None:
        self.given = load_config(tasks)
        # the pinned Ed25519 release key: announced bundles are pulled and verified against it
        self._release_key = key_bytes(release_key, "release_key")
        self.bundles: Any = None  # a BundleFetcher while started with an endpoint and a key
        self.release_health_every = 10.0  # seconds between health reports of a live release
        self.store_path = Path(store_path)
        self.endpoint_url = endpoint_url
        self._endpoint_key = key_bytes(endpoint_public_key, "endpoint_public_key")
        self._device_key: KeyPair | None
        if isinstance(device_key, KeyPair) or device_key is None:
            self._device_key = device_key
        else:
            self._device_key = KeyPair.from_private(key_bytes(device_key, "device_key") or b"")
        if endpoint_url is not None and (self._endpoint_key is None or self._device_key is None):
            msg = "an endpoint_url needs endpoint_public_key and device_key"
            raise ConfigError(msg)
        self.clock = clock or SystemClock()
        self.upload_clock = upload_clock or SystemClock()
        self.device = device
        self._queue_size, self._batch, self._tick = queue_size, batch, tick
        self._snapshot_every = snapshot_every
        self._retention_every = retention_every
        self._uploader_options = dict(uploader_options or {})
        self._connect = connect
        self._on_upload = on_upload
        self._sizes = sizes
        self.stats = AgentStats()
        self._live: _Live | None = None
        self._closed = False
        self._inflight = 0  # submits that hold a reference to the current shell
        self._switch_lock = asyncio.Lock()
        self._intake_lock = asyncio.Lock()  # journal order == queue order
        self._accepted = 0  # index of the last event accepted (journaled)
        self._emitted = 0  # engine records committed in all (see _journal)
        self._snapshot_at = time.monotonic()
        self.failure: StorageError | None = None  # the store failure that stopped the agent
        self._intake_idle = asyncio.Event()
        self._results = ResultFeed(on_result)
        self._task_buffer: list[Record] = []
        self._tasks_flush: asyncio.Handle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._applying: set[asyncio.Task[Any]] = set()
        self.uploader: UploaderLike | None = None
        self._upload_task: asyncio.Task[None] | None = None
        self.tasks: TaskDispatcher | None = None
        self.ranking: RankingShell | None = None  # built at start from the running tasks file
        self._early_pages: list[tuple[str, Page]] = []
        self.outbox_waiting = 0  # batches and items not acknowledged when the agent closed

    # -- the parts a started agent runs ---------------------------------------------------

    @property
    def _running(self) -> _Live:
        if self._live is None:
            msg = "the agent is not started"
            raise RuntimeError(msg)
        return self._live

    @property
    def on_upload(self) -> Callable[[list[Record]], None] | None:
        """Called with each list of records put in the outbox (for audits), or None."""
        return self._on_upload

    @on_upload.setter
    def on_upload(self, callback: Callable[[list[Record]], None] | None) -> None:
        self._on_upload = callback
        if self._live is not None:
            self._live.sink.on_upload = callback

    @property
    def accepted(self) -> int:
        """How many valid events this store's agent accepted in all (across restarts): a
        producer resumes its input after that many (see :func:`accepted_events`)."""
        return self._accepted

    @property
    def store(self) -> Store:
        """The device store (open while the agent runs)."""
        return self._running.store

    @property
    def outbox(self) -> TimedOutbox:
        """The durable upload outbox in the device store."""
        return self._running.outbox

    @property
    def engine(self) -> Engine:
        """The engine currently running (replaced by a configuration switch)."""
        return self._running.shell.engine

    @property
    def config(self) -> TasksConfig:
        """The tasks file running (the given one until the agent started)."""
        return self._live.switcher.config if self._live is not None else self.given

    @property
    def version(self) -> int:
        """The running tasks file's version (0: a local file)."""
        return self._live.switcher.version if self._live is not None else 0

    @property
    def encoder(self) -> Encoder:
        """The codec of the running tasks file."""
        return self._running.switcher.encoder

    @property
    def admission(self) -> AdmissionFilter | None:
        """The id admission filter of ``[upload] admission``, if any."""
        return self._live.switcher.admission if self._live is not None else None

    @property
    def switches(self) -> list[SwitchReport]:
        """The report of every tasks-file switch applied since start."""
        return self._live.switcher.switches if self._live is not None else []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, restore the last snapshot, start the engine, the tasks and the uploader.

        Raises:
            StorageError: the store cannot be opened.
            TaskError: a task's ``run`` target cannot be imported.
        """
        if self._live is not None:
            return
        store = Store(self.store_path, now_ms=self._now_ms)
        outbox = TimedOutbox(
            store, OutboxConfig.from_upload(self.given.upload), clock=self.upload_clock
        )
        key = self._device_key.public if self._device_key is not None else None
        switcher = ConfigSwitcher(store, self.given, self.stats, now_ms=self._now_ms,
                                  admission_seed=device_seed(key, self.device),
                                  sizes=self._sizes)  # fmt: skip
        engine = switcher.restore()
        journal = Journal(store)
        sink = RecordSink(store, outbox, switcher.encoder, switcher.config.upload.records,
                          self.stats, on_upload=self._on_upload, strict=True)  # fmt: skip
        self.tasks = self._task_runner(switcher.config)
        self.ranking = RankingShell(switcher.config, clock=self.upload_clock,
                                    output=self._task_output)  # fmt: skip
        for device, page in self._early_pages:
            self.ranking.set_page(device, page)
        self._early_pages.clear()
        self._live = _Live(store, outbox, switcher, sink, self._new_shell(engine), journal)
        self._recover(engine)
        await self._live.shell.start()
        if self._tick > 0:
            self._spawn(self._tick_loop())
        if self.endpoint_url is not None:
            sink.queue = self._start_uploader(outbox)
            if self._release_key is not None:
                from streamfeat.agent._grading import grade, hardware_id

                self.bundles = self._bundle_fetcher(store)
                self._spawn(self.bundles.grade_and_report(hardware_id(), grade))
                self._spawn(self.bundles.health_loop(self.release_health_every))
        if self._snapshot_every > 0:
            self._spawn(self._snapshot_loop())
        if self._retention_every > 0:
            self.apply_retention()
            self._spawn(self._retention_loop())
        desired = outbox.load_config()
        if desired is not None and desired[0] > switcher.version:
            await self._downlink(desired[0], bytes(desired[1]))
        elif desired is None and switcher.version == 0 and self.given.text != switcher.config.text:
            await self.apply_config(0, self.given.text, source="local")

    def _new_shell(self, engine: Engine) -> AsyncEngine:
        # ticks are the agent's (journaled: see _tick_loop), not the shell's
        return AsyncEngine(engine, [self._sink], queue_size=self._queue_size, batch=self._batch,
                           clock=self.clock, tick=0)  # fmt: skip

    def _recover(self, engine: Engine) -> None:
        """Process the journal after the restored snapshot again (see ``_journal``): records
        committed before a crash are skipped, the rest committed; then a snapshot."""
        live = self._running
        journal = live.journal
        cp = live.store.load_checkpoint(CHECKPOINT)
        self._emitted = journal.emitted() or 0
        # what the engine we start from already produced: nothing if it is the first one, the
        # snapshot's count if restored; if a snapshot could not be used, skip nothing (logged)
        trusted = cp is None or live.switcher.restored
        covered = 0 if cp is None else cp.out_offset if trusted else self._emitted
        backlog = journal.since(engine.events)
        ticks = journal.ticks() if trusted else []
        self._accepted = max(engine.events, journal.last())
        if not backlog and not ticks:
            return
        out: list[Record] = []
        pending = iter(ticks)
        tick = next(pending, None)
        for idx, event in backlog:
            while tick is not None and tick[0] < idx:
                out.extend(engine.advance(tick[1]))
                tick = next(pending, None)
            engine.process_into(event, out)
        while tick is not None:
            out.extend(engine.advance(tick[1]))
            tick = next(pending, None)
        skip = self._emitted - covered
        if skip > len(out):  # never expected: the engine is deterministic
            agent_log.warning("journal replay made %d records, %d were committed", len(out), skip)
        self.stats.replayed += len(backlog)
        fresh = out[max(0, skip) :]
        if self._commit(fresh, snapshot=True) and fresh and self.tasks is not None:
            self.stats.tasks_started += self.tasks.dispatch_all(fresh)

    def _task_runner(self, config: TasksConfig) -> TaskDispatcher | None:
        from streamfeat.runtime._tasks import TaskRunner

        if not config.tasks:
            return None
        return TaskRunner(config, output=self._task_output, reader=self._read,
                          folder=tasks_folder(self.given.source))  # fmt: skip

    def _start_uploader(self, outbox: TimedOutbox) -> UploaderLike:
        from streamfeat.upload._client import Uploader, UploaderConfig

        assert self.endpoint_url is not None
        assert self._endpoint_key is not None
        assert self._device_key is not None
        cfg = UploaderConfig(
            url=self.endpoint_url, endpoint_key=self._endpoint_key, **self._uploader_options
        )
        extra: dict[str, Any] = {} if self._connect is None else {"connect": self._connect}
        uploader = Uploader(outbox, self._device_key, cfg, clock=self.upload_clock,
                            on_config=self._on_config, **extra)  # fmt: skip
        self.uploader = uploader
        self._upload_task = asyncio.create_task(uploader.run(), name="streamfeat-uploader")
        return uploader

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self, *, close_windows: bool = False, drain_timeout: float = 0.0) -> None:
        """Process what is queued, snapshot, and stop.

        Args:
            close_windows: also close every open window and visit (end of input), uploading
                the final records; a device that will restart leaves them open (the default).
            drain_timeout: wait up to this many seconds for the outbox to be acknowledged.
        """
        if self._live is None or self._closed:
            return
        live = self._live
        if self._applying:  # a tasks file that already came down is applied before closing
            await asyncio.gather(*self._applying, return_exceptions=True)
        self._closed = True
        async with self._switch_lock:
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await live.shell.aclose()
            if close_windows and self.failure is None:
                # the final records and the snapshot after them: one commit (a crash between
                # the two would close the windows again at the next end)
                final = live.shell.engine.close()
                if self._commit(final, snapshot=True) and final and self.tasks is not None:
                    self.stats.tasks_started += self.tasks.dispatch_all(final)
            if self.tasks is not None:
                await self.tasks.aclose()
            if self.ranking is not None:  # each re-rank ends within its task's timeout
                await self.ranking.drain()
            self._flush_task_records()
            self.snapshot()
        self._results.close()
        if self.uploader is not None:
            if drain_timeout > 0 and self.failure is None:
                try:
                    await self.uploader.wait_drained(drain_timeout)
                except (StorageError, sqlite3.Error) as exc:  # sealing failed: a full disk
                    self._fail(exc)
            await self.uploader.aclose()
            if self._upload_task is not None:
                try:
                    await self._upload_task
                except (StorageError, sqlite3.Error) as exc:  # its outbox write failed
                    self._fail(exc)
                except (asyncio.CancelledError, TunnelError, OSError):
                    pass
        self.outbox_waiting = len(live.outbox) + live.outbox.pending_items
        live.store.close()

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- intake ---------------------------------------------------------------------------

    async def submit(
        self, event: Event | dict[str, Any], *, source: str = "agent", position: int = 0
    ) -> bool:
        """Queue one event; an invalid one is quarantined (counted) and False is returned.

        Waits only while the engine's queue is full (backpressure), never on the network.
        An event for which True was returned is in the store (journaled): it survives a crash.

        Raises:
            RuntimeError: the agent is not started, or closed.
            StorageError: the store cannot take the event (a full disk) or failed before: the
                event is not accepted (see :attr:`failure`).
        """
        if self._live is None or self._closed:
            msg = f"can't submit to an agent that is {'closed' if self._closed else 'not started'}"
            raise RuntimeError(msg)
        if self.failure is not None:
            raise self.failure
        if type(event) is not Event:
            try:
                event = event_from_obj(event)
            except EventError as exc:
                self._quarantine(raw_of(event), str(exc), source, position)
                return False
        async with self._intake_lock:
            live = self._live
            try:
                live.journal.append(self._accepted + 1, event)
            except (StorageError, sqlite3.Error) as exc:
                raise self._fail(exc) from exc
            self._accepted += 1
            self.stats.submitted += 1
            self.stats.events_raw_bytes += raw_size(event)
            if self.ranking is not None and self.ranking.active:
                self.ranking.observe(event)  # page state first: a re-rank never waits on the engine
            shell = live.shell
            self._inflight += 1
            try:
                await shell.submit(event)
            finally:
                self._inflight -= 1
                if not self._inflight:
                    self._intake_idle.set()
        return True

    def _quarantine(self, raw: bytes, reason: str, source: str, position: int) -> None:
        try:
            self._running.sink.quarantine(raw, reason, source, position)
        except (StorageError, sqlite3.Error) as exc:
            raise self._fail(exc) from exc

    def _fail(self, exc: BaseException) -> StorageError:
        """Stop intake after a store failure; return the one-line error submits raise now."""
        if self.failure is None:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.failure = StorageError(
                f"the store {self.store_path} failed ({detail}); intake stopped after "
                f"{self._accepted} accepted events, every one kept (a restart with room "
                "processes those not committed)"
            )
            self.stats.store_failures += 1
            agent_log.error("%s", self.failure)
        return self.failure

    async def submit_line(self, line: bytes, *, source: str = "stdin", position: int = 0) -> bool:
        """Parse one JSONL line and submit it; bad JSON or a bad event is quarantined."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self._quarantine(line.rstrip(b"\n"), f"not valid JSON: {exc}", source, position)
            return False
        try:
            event = event_from_obj(obj)
        except EventError as exc:
            self._quarantine(line.rstrip(b"\n"), str(exc), source, position)
            return False
        return await self.submit(event)

    async def drain(self) -> None:
        """Wait until every event submitted so far is processed and its records are stored."""
        live = self._running
        while True:
            shell = live.shell
            await shell.drain()
            if shell is live.shell and not self._switch_lock.locked():
                break
            await asyncio.sleep(0.01)
        if self.tasks is not None:
            await self.tasks.drain()
        if self.ranking is not None:
            await self.ranking.drain()
        self._flush_task_records()

    # -- pages and re-ranking -------------------------------------------------------------

    def set_page(self, page: Page | Mapping[str, Any], *, device: str | None = None) -> None:
        """Give the agent a page of candidates for its feed (an app that fetches pages itself).

        A later page of the same feed replaces it, carrying over the feed's deletions and
        exposure history. Works before :meth:`start` too.

        Raises:
            PageError: the page breaks its contract (docs/ranking.md); nothing changes.
        """
        dev = device or self.device
        if self.ranking is None:
            self._early_pages.append(
                (dev, page if isinstance(page, Page) else Page.from_dict(page))
            )
        else:
            self.ranking.set_page(dev, page)

    def page(self, feed: str = "home_feed", *, device: str | None = None) -> list[str] | None:
        """Return the order the app should show for ``feed`` (None: no page yet)."""
        if self.ranking is None:
            for dev, p in reversed(self._early_pages):
                if p.feed == feed and dev == (device or self.device):
                    return list(p.items)
            return None
        return self.ranking.page(device or self.device, feed)

    async def fetch_page(self, feed: str = "home_feed", *, cursor: int = 0) -> Page:
        """Fetch page ``cursor`` of ``feed`` from the endpoint (``GET /v1/pages``, signed with
        the device key; the answer's MAC is checked) and install it (:meth:`set_page`).

        Raises:
            ConfigError: the agent has no endpoint.
            TunnelError: the endpoint refused or could not be reached; the page is unchanged.
            PageError: the endpoint sent a page that breaks the contract.
        """
        from streamfeat.upload._pages import fetch_page, pages_url

        if self.endpoint_url is None or self._endpoint_key is None or self._device_key is None:
            msg = "fetch_page needs an endpoint_url, endpoint_public_key and device_key"
            raise ConfigError(msg)
        page = await fetch_page(pages_url(self.endpoint_url), endpoint_key=self._endpoint_key,
                                device_key=self._device_key, feed=feed, cursor=cursor,
                                clock=self.upload_clock)  # fmt: skip
        self.set_page(page)
        return page

    async def wait_reranks(self, count: int, within: float) -> bool:
        """Wait up to ``within`` seconds until ``count`` re-ranks ended (applied, stale, timed
        out, failed, or recorded by a shadow task) since start; False if they did not."""
        return self.ranking is not None and await self.ranking.wait_done(count, within)

    # -- reading --------------------------------------------------------------------------

    def _view(self, stage: str, device: str | None) -> dict[str, Any]:
        dev = device or self.device
        engine = self.engine
        try:
            state = engine.state_of(dev, stage)
            view = engine.stage(stage).view  # type: ignore[attr-defined]
        except KeyError:
            return {}
        return {} if state is None else dict(view(state, self._now_ms()))

    def features(self, device: str | None = None) -> dict[str, Any]:
        """Return the device's latest feature values and open visits.

        ``{NAME: {"ts", "since_ms", "records": [values, ...], ...open state}}``; the latest
        records are kept by the agent, so they outlive the engine freeing an idle device.
        """
        dev = device or self.device
        now = self._now_ms()
        out: dict[str, Any] = {}
        for name, ts, vals in self._running.sink.latest_of(dev):
            out[name] = {"ts": ts, "since_ms": now - ts, "records": vals}
        for name, entry in self._view("features", dev).get("features", {}).items():
            if entry.get("ts") is None and name in out:
                entry = {**entry, **out[name]}
            out[name] = entry
        return out

    def windows(self, device: str | None = None) -> dict[str, Any]:
        """Return the device's open windows: ``{NAME: {"watermark", "open": [...]}}``."""
        return dict(self._view("windows", device).get("windows", {}))

    def results(self, *, maxsize: int = 10_000) -> ResultIterator:
        """Iterate over every ``task`` record made from now on, in order, until the agent closes.

        ``async for rec in agent.results(): rec["task"], rec["device"], rec["values"]``. It
        receives from the call on: call it before submitting the events whose results it must
        see (``aclose()`` or ``async with`` stops it earlier). A reader slower than the
        tasks loses the oldest waiting records beyond ``maxsize`` (counted in
        ``agent.result_stats["dropped"]``).
        """
        return self._results.subscribe(maxsize)

    def result(self, task: str, device: str | None = None) -> dict[str, Any] | None:
        """Return the ``values`` of the latest result of ``task`` on ``device``, or None."""
        rec = self._results.latest(task, device or self.device)
        return None if rec is None else dict(rec["values"])

    @property
    def result_stats(self) -> dict[str, Any]:
        """Task results handed to the app: ``published``, ``dropped``, ``callback_errors``."""
        return self._results.stats

    def latencies(self) -> list[float]:
        """Seal-to-ack seconds of the batches acknowledged since start."""
        return list(self.outbox.latencies)

    def config_history(self) -> list[dict[str, Any]]:
        """Every tasks-file version applied or refused, oldest first (see ``_versions``)."""
        return self._running.switcher.versions.rows()

    # -- wiring the sink ------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    def _read(self, device: str) -> dict[str, Any]:
        return {"features": self.features(device), "windows": self.windows(device)}

    def _sink(self, records: list[Record], tick: tuple[int, int] | None = None) -> None:
        # the batch's records, their outbox items and the record count: one commit
        if self.failure is not None or not self._commit(records, tick=tick):
            return
        if self.ranking is not None:
            self.ranking.add_records(records)
        if self.tasks is not None and records:
            self.stats.tasks_started += self.tasks.dispatch_all(records)

    async def _tick_loop(self) -> None:
        """Advance idle devices' windows on wall time; each tick is journaled with its records."""
        while True:
            await asyncio.sleep(self._tick)
            if self._switch_lock.locked() or self.failure is not None:
                continue
            # between engine batches here (the shell's worker never yields inside one)
            engine = self._running.shell.engine
            now = self._now_ms()
            self._sink(engine.advance(now), tick=(engine.events, now))

    def _commit(self, records: list[Record], encoder: Encoder | None = None, *,
                engine_records: bool = True, tick: tuple[int, int] | None = None,
                snapshot: bool | None = None) -> bool:  # fmt: skip
        """Store and enqueue ``records`` and count them (engine records), journal ``tick``,
        and snapshot the engine (when ``snapshot``, or None and the last is a second old), in
        one transaction.

        Returns:
            False after a store failure (rolled back, the agent stopped: :meth:`_fail`).
        """
        live = self._running
        before = self._emitted
        due = snapshot
        if due is None:  # a snapshot bounds the journal a restart replays
            every = self._snapshot_every or _SNAPSHOT_IDLE
            due = time.monotonic() - self._snapshot_at >= every
        try:
            with live.store.transaction():
                if records:
                    live.sink.handle(records, encoder)
                    if engine_records:
                        self._emitted += len(records)
                        live.journal.set_emitted(self._emitted)
                if tick is not None:
                    live.journal.tick(*tick)
                if due:
                    engine = live.shell.engine
                    live.switcher.snapshot(engine, self.stats.submitted, self._emitted)
                    live.journal.trim(engine.events)
        except (StorageError, sqlite3.Error) as exc:
            self._emitted = before
            live.outbox.reload()
            self._fail(exc)
            return False
        if due:
            self._snapshot_at = time.monotonic()
        return True

    def _task_output(self, record: Record) -> None:
        self._results.publish(record)  # to the app at once, before it is stored
        # task records arrive one by one from finished tasks: coalesce them into one sink call
        self._task_buffer.append(record)
        if self._tasks_flush is None:
            self._tasks_flush = asyncio.get_running_loop().call_soon(self._flush_task_records)

    def _flush_task_records(self) -> None:
        self._tasks_flush = None
        records, self._task_buffer = self._task_buffer, []
        if records and self._live is not None and self.failure is None:
            self._commit(records, engine_records=False, snapshot=False)

    # -- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> None:
        """Write the engine snapshot with its tasks file and version to the store (atomic)."""
        if self.failure is None:
            self._commit([], snapshot=True)

    async def _snapshot_loop(self) -> None:
        # a random phase: a fleet of agents started together must not snapshot all at once
        await asyncio.sleep(random.uniform(0.0, self._snapshot_every))
        while True:
            await asyncio.sleep(self._snapshot_every)
            if not self._switch_lock.locked():
                self.snapshot()

    # -- retention ------------------------------------------------------------------------

    def apply_retention(self) -> dict[str, int]:
        """Run ``[store] retention`` and ``max_mb`` of the running tasks file on the store now.

        Returns:
            What was evicted, per counter name (also added to the store's counters).
        """
        live = self._running
        cfg = live.switcher.config.store
        if self.failure is not None or not (cfg.retention or cfg.max_mb):
            return {}
        if not self._switch_lock.locked():  # the journal a snapshot covers is dropped first
            self.snapshot()
        try:
            evicted = live.store.apply_retention(max_age_ms=cfg.retention, max_mb=cfg.max_mb)
        except (StorageError, sqlite3.Error) as exc:  # not fatal: the next run tries again
            agent_log.warning("store retention failed: %s", exc)
            return {}
        self.stats.evicted += sum(evicted.values())
        return evicted

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self._retention_every)
            self.apply_retention()

    # -- configuration --------------------------------------------------------------------

    def _on_config(self, ev: Config) -> None:
        """Uploader callback (on the loop): a tasks file or a release announcement came down;
        act on it in the background."""
        task = asyncio.create_task(self._downlink(ev.version, bytes(ev.body)))
        self._applying.add(task)
        task.add_done_callback(self._applied)

    def _applied(self, task: asyncio.Task[Any]) -> None:
        self._applying.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:  # retrieved: logged
            agent_log.error("applying a tasks file failed: %s: %s", type(exc).__name__, exc)

    async def _downlink(self, version: int, body: bytes) -> None:
        from streamfeat.agent._bundles import ANNOUNCE_MAGIC

        if body.startswith(ANNOUNCE_MAGIC):
            if self.bundles is None:  # no pinned release key: a release cannot be verified
                self._running.store.incr("release.refused.no_release_key")
                return
            await self.bundles.handle(version, body)
            return
        await self.apply_config(version, body.decode("utf-8", "replace"), source="downlink")

    def _bundle_fetcher(self, store: Store) -> Any:
        from streamfeat.agent._bundles import BundleFetcher, http_base

        assert self.endpoint_url is not None
        assert self._endpoint_key is not None
        assert self._device_key is not None
        assert self._release_key is not None
        return BundleFetcher(
            base_url=http_base(self.endpoint_url),
            device_key=self._device_key,
            endpoint_key=self._endpoint_key,
            release_key=self._release_key,
            store=store,
            folder=self.store_path.with_name(self.store_path.name + ".bundles"),
            apply=lambda v, text, source: self.apply_config(v, text, source=source),
            current_text=lambda: self.config.text,
            clock=self.upload_clock,
            health=self._release_health,
        )

    def _release_health(self) -> dict[str, Any]:
        """The running tasks file's task runs, errors and timeouts, and the re-rank p99."""
        runs = errors = timeouts = 0
        stats: dict[str, dict[str, int]] = getattr(self.tasks, "stats", {})
        for counts in stats.values():
            runs += counts.get("started", 0)
            errors += counts.get("errors", 0)
            timeouts += counts.get("timeouts", 0)
        p99 = 0.0
        if self.ranking is not None and self.ranking.latencies:
            lat = sorted(self.ranking.latencies)
            p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
        return {"task_runs": runs, "task_errors": errors, "timeouts": timeouts,
                "rerank_p99_ms": p99}  # fmt: skip

    async def wait_connected(self, within: float, *, settle: float = 0.2) -> bool:
        """Wait until the uploader is connected, then ``settle`` seconds for a tasks file the
        endpoint holds for this device to arrive and be applied.

        Returns:
            False if there is no endpoint or no connection came in time.
        """
        if self.uploader is None:
            return False
        try:
            await asyncio.wait_for(self.uploader.connected.wait(), within)
        except TimeoutError:
            return False
        await asyncio.sleep(settle)
        if self._applying:
            await asyncio.gather(*self._applying, return_exceptions=True)
        return True

    async def apply_config(
        self, version: int, text: str, *, source: str = "api"
    ) -> SwitchReport | None:
        """Switch to the tasks file ``text`` at ``version`` without a restart or a lost event.

        A version not above the running one (except version 0 from a local file) is ignored; a
        file that does not load is refused, recorded with its reason, and the running one stays.

        Returns:
            What changed, or None when nothing was applied.
        """
        async with self._switch_lock:
            switcher = self._running.switcher
            if self._closed or not switcher.wants(version, source):
                return None
            new = switcher.parse(version, text, source)
            report = None if new is None else await self._switch(version, new, source)
            if report is None and switcher.refusal and self.failure is None:
                self._report_refusal(version, switcher.refusal)
            return report

    def _report_refusal(self, version: int, reason: str) -> None:
        """Upload a ``config`` record saying the file was refused, through the normal path
        (stored, queued durably, sent on the next connection)."""
        live = self._running
        record: Record = {"kind": "config", "device": self.device, "ts": self._now_ms(),
                          "version": version, "status": "refused", "reason": reason[:500]}  # fmt: skip
        live.switcher.refusal = ""
        try:
            with live.store.transaction():
                live.sink.send([record])
        except (StorageError, sqlite3.Error) as exc:
            live.outbox.reload()
            self._fail(exc)

    async def _switch(self, version: int, new: TasksConfig, source: str) -> SwitchReport | None:
        live = self._running
        old_shell = live.shell
        live.shell = self._new_shell(old_shell.engine)
        if self._inflight:  # submits still holding the old shell: let them queue there first
            self._intake_idle.clear()
            await self._intake_idle.wait()
        await old_shell.aclose()
        switcher, sink = live.switcher, live.sink
        before = old_shell.engine.snapshot()  # drained: what the old file goes on from on failure
        saved = switcher.save()
        emitted = self._emitted
        old_kinds = sink.upload_kinds
        try:
            engine, closed, report, old_encoder = switcher.switch(old_shell.engine, new, version)
            tasks = self._task_runner(new)
            live.shell.engine = engine
            # the old file's closing records (its encoder, its [upload] records), the new
            # file's first snapshot and its history row: one commit
            with live.store.transaction():
                if closed:
                    sink.handle(closed, old_encoder)
                    self._emitted += len(closed)
                    live.journal.set_emitted(self._emitted)
                sink.use(switcher.encoder, new.upload.records)
                switcher.snapshot(engine, self.stats.submitted, self._emitted)
                live.journal.trim(engine.events)
                switcher.applied(version, source, report)
        except Exception as exc:  # roll back to the old file: nothing of the new one stays
            self._emitted = emitted
            live.outbox.reload()
            switcher.restore_saved(saved)
            sink.use(switcher.encoder, old_kinds)
            old = build_engine(switcher.config, sizes=self._sizes)
            old.restore(before)
            live.shell.engine = old
            await live.shell.start()
            if isinstance(exc, StorageError | sqlite3.Error):
                self._fail(exc)
            else:
                switcher.refuse(version, new.text, source, f"switch failed: {exc}")
            return None
        if self.tasks is not None:
            self._spawn(self.tasks.aclose())
        self.tasks = tasks
        if self.ranking is not None:
            self.ranking.reconfigure(new)
        await live.shell.start()
        return report
