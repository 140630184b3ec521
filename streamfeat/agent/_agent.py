"""The embedded agent: engine, store, tasks, encoder and uploader on one asyncio loop.

Theory of operation
-------------------
``await agent.submit(event)`` validates the event (an invalid one goes to the store's
quarantine with its bytes and reason, counted, and processing goes on), journals it in the
store and queues it on an :class:`~streamfeat.runtime.AsyncEngine`, whose worker runs the engine
in small batches. Each batch's records go to the synchronous
:class:`~streamfeat.agent._sink.RecordSink`, which stores them, encodes the kinds of
``[upload] records`` with the configured codec and puts the payloads in the durable outbox,
which the :class:`~streamfeat.upload.Uploader` drains; then ``trigger`` records are dispatched
to the :class:`~streamfeat.runtime._tasks.TaskRunner` (tasks run beside the engine; their
``task`` records come back through the same sink).

This module is the thin asyncio shell that wires the parts and keeps the public API. It owns
two collaborators and calls them:

* :class:`~streamfeat.agent._durable.DurablePath`: every commit (records, outbox items, engine
  snapshot and journal trimming in one transaction), the recovery of the journal after a
  restart, retention, ticks and task-record flushes, and the store failure that stops intake;
* :class:`~streamfeat.agent._downlink.ConfigPath`: tasks files and release announcements that
  come down, and the live switch to a new tasks file (through the
  :class:`~streamfeat.agent._switcher.ConfigSwitcher`).

Nothing on the sink's path waits on the network: enqueueing is one SQLite insert. The sink is
synchronous on purpose: any other task of the loop then sees the engine between batches with
every record of the last batch already stored, which is what makes the periodic snapshot (every
``snapshot_every`` seconds, and on close) consistent without a lock.

Restart (effectively-once, see :mod:`streamfeat.agent._journal`): a new agent on the same store
(after a clean stop or a ``kill -9``) restores the last snapshot with its tasks file and version
and processes the journal again: every record is uploaded once and no accepted event is lost.
A tasks file the endpoint sent that was not applied yet (saved in the outbox) is applied at
start. A store that fails (a full disk) stops the agent: the failing commit rolls back (its
events stay journaled), later submits raise a one-line :class:`~streamfeat.errors.StorageError`,
and a restart with room processes them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamfeat._event import Event
from streamfeat.agent._downlink import ConfigPath
from streamfeat.agent._durable import DurablePath, Live
from streamfeat.agent._intake import Intake
from streamfeat.agent._journal import Journal
from streamfeat.agent._outbox import TimedOutbox
from streamfeat.agent._ports import TaskDispatcher, UploaderLike
from streamfeat.agent._ranking import RankingShell
from streamfeat.agent._results import ResultFeed, ResultIterator
from streamfeat.agent._sink import RecordSink
from streamfeat.agent._support import AgentStats, device_seed, key_bytes, load_config
from streamfeat.agent._switch import SwitchReport
from streamfeat.agent._switcher import ConfigSwitcher
from streamfeat.agent._views import feature_view, window_view
from streamfeat.clock import Clock, SystemClock
from streamfeat.encoders import Encoder
from streamfeat.encoders.admission import AdmissionFilter
from streamfeat.engine._engine import Engine, Record
from streamfeat.errors import ConfigError, StorageError, TunnelError
from streamfeat.io._store import Store
from streamfeat.ranking import Page
from streamfeat.runtime._engine import AsyncEngine
from streamfeat.tasks import TasksConfig, tasks_folder
from streamfeat.tunnel import KeyPair
from streamfeat.upload._outbox import OutboxConfig
from streamfeat.upload._transport import Transport

if TYPE_CHECKING:
    from streamfeat.agent._bundles import BundleFetcher

__all__ = ["Agent", "AgentStats", "load_config"]


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
        self._results = ResultFeed(on_result)
        self._durable = DurablePath(self.stats, self._results, store_path=self.store_path,
                                    snapshot_every=snapshot_every, now_ms=self._now_ms)  # fmt: skip
        self._intake = Intake(self._durable)
        self._downlink = ConfigPath(
            self._durable, device=device, sizes=sizes, new_shell=self._new_shell,
            task_runner=lambda config: self._task_runner(config), spawn=self._spawn,
            intake_quiet=self._intake.quiet, now_ms=self._now_ms,
        )  # fmt: skip
        self._background: set[asyncio.Task[Any]] = set()
        self.uploader: UploaderLike | None = None
        self._upload_task: asyncio.Task[None] | None = None
        self._early_pages: list[tuple[str, Page]] = []
        self.outbox_waiting = 0  # batches and items not acknowledged when the agent closed

    # -- the parts a started agent runs ---------------------------------------------------

    @property
    def _running(self) -> Live:
        return self._durable.running

    @property
    def failure(self) -> StorageError | None:
        """The store failure that stopped the agent (a full disk), or None."""
        return self._durable.failure

    @property
    def tasks(self) -> TaskDispatcher | None:
        """The task runner of the running tasks file (None: it has no tasks)."""
        return self._durable.tasks

    @property
    def ranking(self) -> RankingShell | None:
        """The re-rank shell (built at start from the running tasks file)."""
        return self._durable.ranking

    @property
    def bundles(self) -> BundleFetcher | None:
        """The release bundle fetcher (started with an endpoint and a release key)."""
        return self._downlink.bundles

    @property
    def on_upload(self) -> Callable[[list[Record]], None] | None:
        """Called with each list of records put in the outbox (for audits), or None."""
        return self._on_upload

    @on_upload.setter
    def on_upload(self, callback: Callable[[list[Record]], None] | None) -> None:
        self._on_upload = callback
        if self._durable.live is not None:
            self._durable.live.sink.on_upload = callback

    @property
    def accepted(self) -> int:
        """How many valid events this store's agent accepted in all (across restarts): a
        producer resumes its input after that many (see :func:`accepted_events`)."""
        return self._durable.accepted

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
        live = self._durable.live
        return live.switcher.config if live is not None else self.given

    @property
    def version(self) -> int:
        """The running tasks file's version (0: a local file)."""
        live = self._durable.live
        return live.switcher.version if live is not None else 0

    @property
    def encoder(self) -> Encoder:
        """The codec of the running tasks file."""
        return self._running.switcher.encoder

    @property
    def admission(self) -> AdmissionFilter | None:
        """The id admission filter of ``[upload] admission``, if any."""
        live = self._durable.live
        return live.switcher.admission if live is not None else None

    @property
    def switches(self) -> list[SwitchReport]:
        """The report of every tasks-file switch applied since start."""
        live = self._durable.live
        return live.switcher.switches if live is not None else []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, restore the last snapshot, start the engine, the tasks and the uploader.

        Raises:
            StorageError: the store cannot be opened.
            TaskError: a task's ``run`` target cannot be imported.
        """
        durable = self._durable
        if durable.live is not None:
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
        sink = RecordSink(store, outbox, switcher.encoder, switcher.config.upload.records,
                          self.stats, on_upload=self._on_upload, strict=True)  # fmt: skip
        durable.tasks = self._task_runner(switcher.config)
        durable.ranking = RankingShell(switcher.config, clock=self.upload_clock,
                                       output=durable.task_output)  # fmt: skip
        for device, page in self._early_pages:
            durable.ranking.set_page(device, page)
        self._early_pages.clear()
        durable.live = Live(store, outbox, switcher, sink, self._new_shell(engine), Journal(store))
        durable.recover(engine)
        await durable.live.shell.start()
        if self._tick > 0:
            self._spawn(durable.tick_loop(self._tick))
        if self.endpoint_url is not None:
            sink.queue = self._start_uploader(outbox)
            if self._release_key is not None:
                assert self._device_key is not None
                assert self._endpoint_key is not None
                self._downlink.start_bundles(
                    store, endpoint_url=self.endpoint_url, device_key=self._device_key,
                    endpoint_key=self._endpoint_key, release_key=self._release_key,
                    folder=self.store_path.with_name(self.store_path.name + ".bundles"),
                    clock=self.upload_clock, current_text=lambda: self.config.text,
                    health_every=self.release_health_every,
                )  # fmt: skip
        if self._snapshot_every > 0:
            self._spawn(durable.snapshot_loop())
        if self._retention_every > 0:
            durable.apply_retention()
            self._spawn(durable.retention_loop(self._retention_every))
        # a tasks file the endpoint sent that was not applied before the agent stopped
        desired = outbox.load_config()
        if desired is not None and desired[0] > switcher.version:
            await self._downlink.downlink(desired[0], bytes(desired[1]))
        elif desired is None and switcher.version == 0 and self.given.text != switcher.config.text:
            await self.apply_config(0, self.given.text, source="local")

    def _new_shell(self, engine: Engine) -> AsyncEngine:
        # ticks are the agent's (journaled: see DurablePath.tick_loop), not the shell's
        return AsyncEngine(engine, [self._durable.sink], queue_size=self._queue_size,
                           batch=self._batch, clock=self.clock, tick=0)  # fmt: skip

    def _task_runner(self, config: TasksConfig) -> TaskDispatcher | None:
        from streamfeat.runtime._tasks import TaskRunner

        if not config.tasks:
            return None
        return TaskRunner(config, output=self._durable.task_output, reader=self._read,
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
                            on_config=self._downlink.on_config, **extra)  # fmt: skip
        self.uploader = uploader
        self._upload_task = asyncio.create_task(uploader.run(), name="streamfeat-uploader")
        return uploader

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self, *, close_windows: bool = False, drain_timeout: float = 0.0) -> None:
        """Process what is queued, snapshot, and stop.

        A tasks file that came down and is being applied is applied first; one that comes down
        while closing is saved and applied at the next start.

        Args:
            close_windows: also close every open window and visit (end of input), uploading
                the final records; a device that will restart leaves them open (the default).
            drain_timeout: wait up to this many seconds for the outbox to be acknowledged.
        """
        durable = self._durable
        live = durable.live
        if live is None or durable.closed:
            return
        await self._downlink.finish_applying()
        durable.closed = True
        async with durable.switch_lock:
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await live.shell.aclose()
            if close_windows and durable.failure is None:
                # the final records and the snapshot after them: one commit (a crash between
                # the two would close the windows again at the next end)
                final = live.shell.engine.close()
                if durable.commit(final, snapshot=True):
                    durable.dispatch(final)
            if durable.tasks is not None:
                await durable.tasks.aclose()
            if durable.ranking is not None:  # each re-rank ends within its task's timeout
                await durable.ranking.drain()
            durable.flush_task_records()
            durable.snapshot()
        self._results.close()
        if self.uploader is not None:
            if drain_timeout > 0 and durable.failure is None:
                try:
                    await self.uploader.wait_drained(drain_timeout)
                except (StorageError, sqlite3.Error) as exc:  # sealing failed: a full disk
                    durable.fail(exc)
            await self.uploader.aclose()
            if self._upload_task is not None:
                try:
                    await self._upload_task
                except (StorageError, sqlite3.Error) as exc:  # its outbox write failed
                    durable.fail(exc)
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
        return await self._intake.submit(event, source, position)

    async def submit_line(self, line: bytes, *, source: str = "stdin", position: int = 0) -> bool:
        """Parse one JSONL line and submit it; bad JSON or a bad event is quarantined."""
        event = self._intake.parse_line(line, source, position)
        return False if event is None else await self.submit(event)

    async def drain(self) -> None:
        """Wait until every event submitted so far is processed and its records are stored."""
        await self._intake.drain()

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

    def features(self, device: str | None = None) -> dict[str, Any]:
        """Return the device's latest feature values and open visits.

        ``{NAME: {"ts", "since_ms", "records": [values, ...], ...open state}}``; the latest
        records are kept by the agent, so they outlive the engine freeing an idle device.
        """
        live = self._running
        return feature_view(live.shell.engine, live.sink, device or self.device, self._now_ms())

    def windows(self, device: str | None = None) -> dict[str, Any]:
        """Return the device's open windows: ``{NAME: {"watermark", "open": [...]}}``."""
        return window_view(self.engine, device or self.device, self._now_ms())

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

    # -- the durable path and the configuration path (delegates) -------------------------

    def snapshot(self) -> None:
        """Write the engine snapshot with its tasks file and version to the store (atomic)."""
        self._durable.snapshot()

    def apply_retention(self) -> dict[str, int]:
        """Run ``[store] retention`` and ``max_mb`` of the running tasks file on the store now.

        Returns:
            What was evicted, per counter name (also added to the store's counters).
        """
        return self._durable.apply_retention()

    async def wait_connected(self, within: float, *, settle: float = 0.2) -> bool:
        """Wait until the uploader is connected, then ``settle`` seconds for a tasks file the
        endpoint holds for this device to arrive and be applied.

        Returns:
            False if there is no endpoint or no connection came in time.
        """
        return await self._downlink.wait_settled(self.uploader, within, settle)

    async def apply_config(
        self, version: int, text: str, *, source: str = "api"
    ) -> SwitchReport | None:
        """Switch to the tasks file ``text`` at ``version`` without a restart or a lost event.

        A version not above the running one (except version 0 from a local file) is ignored; a
        file that does not load is refused, recorded with its reason, and the running one stays.

        Returns:
            What changed, or None when nothing was applied.
        """
        return await self._downlink.apply_config(version, text, source=source)

    def _release_health(self) -> dict[str, Any]:
        return self._downlink.release_health()

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    def _read(self, device: str) -> dict[str, Any]:
        return {"features": self.features(device), "windows": self.windows(device)}
