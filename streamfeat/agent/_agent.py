"""The embedded agent: engine, store, tasks, encoder and uploader on one asyncio loop.

Theory of operation
-------------------
``await agent.submit(event)`` validates the event (an invalid one goes to the store's
quarantine with its bytes and reason, counted, and processing goes on) and queues it on an
:class:`~streamfeat._shell.AsyncEngine`, whose worker runs the engine in small batches. Each
batch's records go to one synchronous sink that

1. stores them (``records`` table of the device store),
2. dispatches ``trigger`` records to the :class:`~streamfeat.tasks._runtime.TaskRunner`
   (tasks run beside the engine; their ``task`` records come back through the same path),
3. encodes the kinds of ``[upload] records`` with the configured codec (one
   :class:`~streamfeat.encoders.SchemaSet` per tasks-file version) and puts the payload in
   the durable outbox, which the :class:`~streamfeat.upload._client.Uploader` drains.

Nothing on that path waits on the network: enqueueing is one SQLite insert. The sink is
synchronous on purpose: any other task of the loop then sees the engine between batches with
every record of the last batch already stored, which is what makes the periodic snapshot (every
``snapshot_every`` seconds, and on close) consistent without a lock.

Restart: the engine snapshot, the tasks file it was taken with and its version are in the
store; a new agent on the same store restores them and goes on.

Downlink configuration: when the endpoint sends a new tasks file (a tunnel ``Config``), the
agent switches live (:meth:`Agent.apply_config`): new submissions go to a fresh, not yet
started queue; the old queue is drained through the old engine (so no event is lost or
reordered across the switch); :func:`~streamfeat.agent._switch.switch_engine` builds the new
engine carrying over the state of unchanged triggers, windows and features; then the new queue
starts. Each applied (or refused) version is recorded in the store's ``agent_configs`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import orjson

from streamfeat._engine import Engine, Record
from streamfeat._event import Event, event_from_obj
from streamfeat._log import agent_log
from streamfeat._pipeline import build_engine
from streamfeat._records import public, raw_size
from streamfeat._shell import AsyncEngine
from streamfeat._store import Checkpoint, QuarantineEntry, Store
from streamfeat.agent._outbox import TimedOutbox
from streamfeat.agent._support import (
    ADMISSION_KEY,
    ADMISSION_SPEC_KEY,
    AgentStats,
    device_seed,
    key_bytes,
    load_config,
    new_admission,
    raw_of,
    schemas,
)
from streamfeat.agent._switch import SwitchReport, switch_engine
from streamfeat.agent._versions import VersionHistory
from streamfeat.clock import Clock, SystemClock
from streamfeat.encoders import Encoder, decode_batch, encoder_for, schemas_for
from streamfeat.errors import ConfigError, EventError, StorageError, StreamfeatError, TunnelError
from streamfeat.tasks import TasksConfig, parse_tasks
from streamfeat.tunnel._crypto import KeyPair
from streamfeat.upload._outbox import OutboxConfig

__all__ = ["Agent", "AgentStats", "load_config"]

_CHECKPOINT = "agent"
_CONFIG_KEY = "agent.config"
_MAX_PAYLOAD_RECORDS = 200  # records per payload: keeps each well under the tunnel's batch limit


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
        snapshot_every: seconds between engine snapshots to the store (0: only on close).
        uploader_options: extra :class:`~streamfeat.upload._client.UploaderConfig` fields.
        connect: ``async () -> Transport`` replacing the websocket (tests).
        on_upload: called with each list of records put in the outbox (for audits).
        sizes: attach ``_raw_bytes`` to window and feature records (size reports).

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
        uploader_options: dict[str, Any] | None = None,
        connect: Callable[[], Any] | None = None,
        on_upload: Callable[[list[Record]], None] | None = None,
        sizes: bool = False,
    ) -> None:
        self.given = load_config(tasks)
        self.store_path = Path(store_path)
        self.endpoint_url = endpoint_url
        self._endpoint_key = key_bytes(endpoint_public_key, "endpoint_public_key")
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
        self._shell_args = {
            "queue_size": queue_size,
            "batch": batch,
            "clock": self.clock,
            "tick": tick,
        }
        self._snapshot_every = snapshot_every
        self._uploader_options = dict(uploader_options or {})
        self._connect = connect
        self.on_upload = on_upload
        self._sizes = sizes
        self.stats = AgentStats()
        self.config: TasksConfig = self.given
        self.version = 0
        self._started = False
        self._closed = False
        self._inflight = 0  # submits that hold a reference to the current shell
        self._switch_lock = asyncio.Lock()
        self._intake_idle = asyncio.Event()
        self._latest: dict[tuple[str, str], list[Any]] = {}
        self._task_buffer: list[Record] = []
        self._tasks_flush: asyncio.Handle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._applying: set[asyncio.Task[Any]] = set()
        self.switches: list[SwitchReport] = []
        self.uploader: Any = None
        self.tasks: Any = None
        self.admission: Any = None  # the id admission filter of [upload] admission, if any
        self._admission_spec: str | None = None
        self.outbox_waiting = 0  # batches and items not acknowledged when the agent closed

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, restore the last snapshot, start the engine, the tasks and the uploader.

        Raises:
            StorageError: the store cannot be opened.
            TaskError: a task's ``run`` target cannot be imported.
        """
        if self._started:
            return
        self.store = Store(self.store_path, now_ms=self._now_ms)
        self._versions = VersionHistory(self.store)
        self.outbox = TimedOutbox(
            self.store, OutboxConfig.from_upload(self.given.upload), clock=self.upload_clock
        )
        engine = self._restore()
        self._set_config(self.config, engine)
        self._shell = AsyncEngine(engine, [self._sink], **self._shell_args)  # type: ignore[arg-type]
        await self._shell.start()
        if self.endpoint_url is not None:
            self._start_uploader()
        if self._snapshot_every > 0:
            self._spawn(self._snapshot_loop())
        self._started = True
        desired = self._downlinked()
        if desired is not None and desired[0] > self.version:
            await self.apply_config(desired[0], desired[1], source="downlink")
        elif desired is None and self.version == 0 and self.given.text != self.config.text:
            await self.apply_config(0, self.given.text, source="local")

    def _restore(self) -> Engine:
        """Return the engine of the last snapshot (with its config), or a fresh one."""
        saved = self.store.get_state(_CONFIG_KEY)
        cp = self.store.load_checkpoint(_CHECKPOINT)
        if saved is not None:
            version, text = msgpack.unpackb(saved, raw=False)
            try:
                self.config = parse_tasks(text, source=f"<stored tasks v{version}>")
                self.version = int(version)
            except ConfigError:
                agent_log.warning(
                    "stored tasks file v%s no longer loads; starting from the given one", version
                )
                self.store.incr("agent.restore_failed")
                cp = None
        engine = build_engine(self.config, sizes=self._sizes)
        if cp is not None and saved is not None:
            try:
                engine.restore(cp.snapshot)
            except StorageError:
                agent_log.warning(
                    "engine snapshot does not fit the stored tasks file; starting fresh"
                )
                self.store.incr("agent.restore_failed")
                engine = build_engine(self.config, sizes=self._sizes)
        else:
            self._record_version(0, self.config, "local", "applied", None)
        self.stats.config_version = self.version
        return engine

    def _downlinked(self) -> tuple[int, str] | None:
        saved = self.outbox.load_config()
        if saved is None:
            return None
        return saved[0], saved[1].decode("utf-8", "replace")

    def _start_uploader(self) -> None:
        from streamfeat.upload._client import Uploader, UploaderConfig

        assert self.endpoint_url is not None
        assert self._endpoint_key is not None
        assert self._device_key is not None
        cfg = UploaderConfig(
            url=self.endpoint_url, endpoint_key=self._endpoint_key, **self._uploader_options
        )
        extra: dict[str, Any] = {} if self._connect is None else {"connect": self._connect}
        self.uploader = Uploader(
            self.outbox,
            self._device_key,
            cfg,
            clock=self.upload_clock,
            on_config=self._on_config,
            **extra,
        )
        self._upload_task = asyncio.create_task(self.uploader.run(), name="streamfeat-uploader")

    def _spawn(self, coro: Any) -> None:
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
        if not self._started or self._closed:
            return
        if self._applying:  # a tasks file that already came down is applied before closing
            await asyncio.gather(*self._applying, return_exceptions=True)
        self._closed = True
        async with self._switch_lock:
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self._shell.aclose(close_windows=close_windows)
            if self.tasks is not None:
                await self.tasks.aclose()
            self._flush_task_records()
            self.snapshot()
        if self.uploader is not None:
            if drain_timeout > 0:
                await self.uploader.wait_drained(drain_timeout)
            await self.uploader.aclose()
            with contextlib.suppress(asyncio.CancelledError, TunnelError, OSError):
                await self._upload_task
        self.outbox_waiting = len(self.outbox) + self.outbox.pending_items
        self.store.close()

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

        Raises:
            RuntimeError: the agent is not started, or closed.
        """
        if not self._started or self._closed:
            msg = f"can't submit to an agent that is {'closed' if self._closed else 'not started'}"
            raise RuntimeError(msg)
        if type(event) is not Event:
            try:
                event = event_from_obj(event)
            except EventError as exc:
                self._quarantine(raw_of(event), str(exc), source, position)
                return False
        self.stats.submitted += 1
        self.stats.events_raw_bytes += raw_size(event)
        shell = self._shell
        self._inflight += 1
        try:
            await shell.submit(event)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._intake_idle.set()
        return True

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

    def _quarantine(self, raw: bytes, reason: str, source: str, position: int) -> None:
        self.stats.quarantined += 1
        with self.store.transaction():
            self.store.add_quarantine([QuarantineEntry(source, position, raw, reason)])

    async def drain(self) -> None:
        """Wait until every event submitted so far is processed and its records are stored."""
        while True:
            shell = self._shell
            await shell.drain()
            if shell is self._shell and not self._switch_lock.locked():
                break
            await asyncio.sleep(0.01)
        if self.tasks is not None:
            await self.tasks.drain()
        self._flush_task_records()

    # -- reading --------------------------------------------------------------------------

    def _view(self, stage: str, device: str | None) -> dict[str, Any]:
        dev = device or self.device
        engine = self._shell.engine
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
        for (d, name), (ts, vals) in self._latest.items():
            if d == dev:
                out[name] = {"ts": ts, "since_ms": now - ts, "records": vals}
        for name, entry in self._view("features", dev).get("features", {}).items():
            if entry.get("ts") is None and name in out:
                entry = {**entry, **out[name]}
            out[name] = entry
        return out

    def windows(self, device: str | None = None) -> dict[str, Any]:
        """Return the device's open windows: ``{NAME: {"watermark", "open": [...]}}``."""
        return dict(self._view("windows", device).get("windows", {}))

    @property
    def engine(self) -> Engine:
        """The engine currently running (replaced by a configuration switch)."""
        return self._shell.engine

    def latencies(self) -> list[float]:
        """Seal-to-ack seconds of the batches acknowledged since start."""
        return list(self.outbox.latencies)

    # -- the sink -------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    def _set_config(self, config: TasksConfig, engine: Engine) -> None:
        from streamfeat.tasks._runtime import TaskRunner

        self.config = config
        self._upload_kinds = frozenset(config.upload.records)
        self.admission = self._admission_for(config.upload.admission)
        self.encoder: Encoder = encoder_for(
            config.upload.encoding, schemas(config), admission=self.admission
        )
        self.tasks = (
            TaskRunner(config, output=self._task_output, reader=self._read)
            if config.tasks
            else None
        )

    def _admission_for(self, spec: str | None) -> Any:
        """The id admission filter of ``[upload] admission``: the running one if the spec is
        unchanged, else the one saved in the store with that spec, else a new one per device."""
        if spec is None:
            self._admission_spec = None
            return None
        if spec == self._admission_spec and self.admission is not None:
            return self.admission
        self._admission_spec = spec
        key = self._device_key.public if self._device_key is not None else None
        return new_admission(self.store, spec, device_seed(key, self.device))

    def _read(self, device: str) -> dict[str, Any]:
        return {"features": self.features(device), "windows": self.windows(device)}

    def _sink(self, records: list[Record]) -> None:
        self._handle(records, self.encoder)
        if self.tasks is not None:
            self.stats.tasks_started += self.tasks.dispatch_all(records)

    def _handle(self, records: list[Record], encoder: Encoder) -> None:
        counts = self.stats.records
        for r in records:
            kind = r["kind"]
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "feature":
                self._latest[(r["device"], r["feature"])] = [r["ts"], [r["values"]]]
        try:
            with self.store.transaction():
                self.store.add_records(records)
        except (StorageError, sqlite3.Error):  # a full or broken disk must not stop the uploads
            self.stats.store_errors += len(records)
            agent_log.exception("could not store %d records", len(records))
        upload = [public(r) for r in records if r["kind"] in self._upload_kinds]
        for i in range(0, len(upload), _MAX_PAYLOAD_RECORDS):
            self._enqueue(upload[i : i + _MAX_PAYLOAD_RECORDS], encoder)

    def _enqueue(self, records: list[Record], encoder: Encoder) -> None:
        try:
            payload = encoder.encode_batch(records)
            if self.uploader is not None:
                self.uploader.enqueue(payload)  # durable on return, and wakes the sender
            else:
                self.outbox.enqueue(payload)
        except TunnelError:  # too large for one batch: halve (a single record never is)
            if len(records) > 1:
                half = len(records) // 2
                self._enqueue(records[:half], encoder)
                self._enqueue(records[half:], encoder)
                return
            self._encode_failed(records)
            return
        except StorageError:
            self.stats.queue_errors += len(records)
            agent_log.exception("could not queue %d records in the outbox", len(records))
            return
        except StreamfeatError:
            self._encode_failed(records)
            return
        self.stats.payloads += 1
        self.stats.payload_bytes += len(payload)
        self.stats.uploaded_records += len(records)
        self.stats.uploaded_json_bytes += sum(len(orjson.dumps(r)) + 1 for r in records)
        if self.on_upload is not None:
            # with an admission filter the ids sent are not the ids produced: report what was sent
            sent = records if encoder.admission is None else decode_batch(payload, encoder.schemas)
            self.on_upload(sent)

    def _encode_failed(self, records: list[Record]) -> None:
        self.stats.encode_errors += len(records)
        with contextlib.suppress(StorageError, sqlite3.Error):
            self.store.incr("agent.encode_errors", len(records))
        agent_log.warning("could not encode %d records; they stay in the store only", len(records))

    def _task_output(self, record: Record) -> None:
        # task records arrive one by one from finished tasks: coalesce them into one sink call
        self._task_buffer.append(record)
        if self._tasks_flush is None:
            self._tasks_flush = asyncio.get_running_loop().call_soon(self._flush_task_records)

    def _flush_task_records(self) -> None:
        self._tasks_flush = None
        records, self._task_buffer = self._task_buffer, []
        if records and self._started:
            self._handle(records, self.encoder)

    # -- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> None:
        """Write the engine snapshot with its tasks file and version to the store (atomic)."""
        engine = self._shell.engine
        cp = Checkpoint(_CHECKPOINT, engine.snapshot(), self.stats.submitted, 0, engine.events)
        with self.store.transaction():
            self.store.save_checkpoint(cp)
            self.store.put_state(
                _CONFIG_KEY, msgpack.packb([self.version, self.config.text], use_bin_type=True)
            )
            if self.admission is not None and self._admission_spec is not None:
                self.store.put_state(ADMISSION_KEY, self.admission.dump())
                self.store.put_state(ADMISSION_SPEC_KEY, self._admission_spec.encode())
        self.stats.snapshots += 1

    async def _snapshot_loop(self) -> None:
        # a random phase: a fleet of agents started together must not snapshot all at once
        await asyncio.sleep(random.uniform(0.0, self._snapshot_every))
        while True:
            await asyncio.sleep(self._snapshot_every)
            if not self._switch_lock.locked():
                self.snapshot()

    # -- configuration --------------------------------------------------------------------

    def _on_config(self, ev: Any) -> None:
        """Uploader callback (on the loop): a tasks file came down; apply it in the background."""
        text = bytes(ev.body).decode("utf-8", "replace")
        task = asyncio.create_task(self.apply_config(ev.version, text, source="downlink"))
        self._applying.add(task)
        task.add_done_callback(self._applying.discard)

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
            if self._closed or (
                version <= self.version and not (version == 0 and source == "local")
            ):
                return None
            try:
                new = parse_tasks(text, source=f"<tasks v{version}>")
                schemas_for(new)
            except (ConfigError, StreamfeatError) as exc:
                self.stats.configs_refused += 1
                self._record_version(version, None, source, f"refused: {exc}", None, text=text)
                agent_log.warning("tasks file v%d refused: %s", version, exc)
                return None
            return await self._switch(version, new, source)

    async def _switch(self, version: int, new: TasksConfig, source: str) -> SwitchReport:
        old_shell, old_config, old_encoder = self._shell, self.config, self.encoder
        self._shell = AsyncEngine(old_shell.engine, [self._sink], **self._shell_args)  # type: ignore[arg-type]
        if self._inflight:  # submits still holding the old shell: let them queue there first
            self._intake_idle.clear()
            await self._intake_idle.wait()
        await old_shell.aclose()
        if self.tasks is not None:
            old_tasks = self.tasks
            self._spawn(old_tasks.aclose())
        try:
            engine, closed, report = switch_engine(
                old_shell.engine, old_config, new, sizes=self._sizes
            )
        except StreamfeatError:
            snapshot = old_shell.engine.snapshot()
            engine = build_engine(new, sizes=self._sizes)
            closed, report = [], SwitchReport()
            agent_log.warning(
                "could not carry the engine state over; %d bytes of state dropped", len(snapshot)
            )
        if closed:
            self._handle(closed, old_encoder)
        self._set_config(new, engine)
        self.version = version
        self._shell.engine = engine
        await self._shell.start()
        self.snapshot()
        self._record_version(version, new, source, "applied", report)
        self.stats.configs_applied += 1
        self.stats.config_version = version
        self.switches.append(report)
        agent_log.info("tasks file v%d applied: %s", version, report.as_dict())
        return report

    def _record_version(self, version: int, config: TasksConfig | None, source: str, status: str,
                        report: SwitchReport | None, *, text: str = "") -> None:  # fmt: skip
        changes = report.as_dict() if report is not None else {}
        self._versions.record(
            version,
            config.text if config is not None else text,
            source,
            status,
            changes,
            self._now_ms(),
        )

    def config_history(self) -> list[dict[str, Any]]:
        """Every tasks-file version applied or refused, oldest first (see ``_versions``)."""
        return self._versions.rows()
