"""The agent's configuration path: tasks files and releases that come down, and live switches.

Theory of operation
-------------------
The uploader calls :meth:`ConfigPath.on_config` (on the loop) with each tunnel ``Config`` the
endpoint sends, after saving it in the outbox (so a restart announces, and applies, the version
it really holds). The body is either a release announcement, handed to the
:class:`~streamfeat.agent._bundles.BundleFetcher` (pulled, verified against the pinned release
key, then applied), or a tasks file, applied by :meth:`ConfigPath.apply_config` in the
background:

1. under the switch lock, the :class:`~streamfeat.agent._switcher.ConfigSwitcher` decides
   whether the version replaces the running one and validates the file whole (a refused file
   is recorded, counted and reported to the endpoint as a ``config`` record; the running one
   stays);
2. new submissions go to a fresh, not yet started engine shell; submits still holding the old
   shell queue there first; the old shell is drained through the old engine, so no event is
   lost or reordered across the switch;
3. the switcher builds the new engine carrying over the state of what did not change; the old
   file's closing records, the new snapshot and the history row commit in one transaction;
4. on any failure the old file is rebuilt from the drained engine's snapshot and goes on.

A config that comes down while the agent closes is saved (the outbox) but not applied: the
agent's next start applies it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamfeat._log import agent_log
from streamfeat.agent._durable import DurablePath
from streamfeat.agent._ports import TaskDispatcher, UploaderLike
from streamfeat.agent._release import bundle_fetcher, release_health
from streamfeat.agent._switch import SwitchReport
from streamfeat.clock import Clock
from streamfeat.engine._build import build_engine
from streamfeat.engine._engine import Engine, Record
from streamfeat.errors import StorageError
from streamfeat.io._store import Store
from streamfeat.runtime._engine import AsyncEngine
from streamfeat.tasks import TasksConfig
from streamfeat.tunnel import Config, KeyPair

if TYPE_CHECKING:
    from streamfeat.agent._bundles import BundleFetcher

__all__ = ["ConfigPath"]


class ConfigPath:
    """Applies what the endpoint sends down (see the module docstring).

    Args:
        durable: the agent's durable path (running parts, commits, failure, tasks, ranking).
        device: the device name of refusal records.
        sizes: attach ``_raw_bytes`` to window and feature records (rebuilt engines).
        new_shell: builds a not yet started engine shell around an engine.
        task_runner: builds the task runner of a tasks file (None: it has no tasks).
        spawn: runs a coroutine in the background until the agent closes.
        intake_quiet: waits until no submit holds the shell replaced by a switch.
        now_ms: the agent's event-side clock.

    Attributes:
        applying: the downlink configs being applied.
        bundles: the release bundle fetcher (with an endpoint and a pinned release key).
    """

    def __init__(self, durable: DurablePath, *, device: str, sizes: bool,
                 new_shell: Callable[[Engine], AsyncEngine],
                 task_runner: Callable[[TasksConfig], TaskDispatcher | None],
                 spawn: Callable[[Coroutine[Any, Any, Any]], None],
                 intake_quiet: Callable[[], Awaitable[None]],
                 now_ms: Callable[[], int]) -> None:  # fmt: skip
        self.durable = durable
        self.device = device
        self.sizes = sizes
        self._new_shell = new_shell
        self._task_runner = task_runner
        self._spawn = spawn
        self._intake_quiet = intake_quiet
        self._now_ms = now_ms
        self.applying: set[asyncio.Task[Any]] = set()
        self.bundles: BundleFetcher | None = None

    # -- what comes down ------------------------------------------------------------------

    def on_config(self, ev: Config) -> None:
        """Uploader callback (on the loop): a tasks file or a release announcement came down;
        act on it in the background."""
        task = asyncio.create_task(self.downlink(ev.version, bytes(ev.body)))
        self.applying.add(task)
        task.add_done_callback(self._applied)

    def _applied(self, task: asyncio.Task[Any]) -> None:
        self.applying.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:  # retrieved: logged
            agent_log.error("applying a tasks file failed: %s: %s", type(exc).__name__, exc)

    async def downlink(self, version: int, body: bytes) -> None:
        """Apply a tasks file, or hand a release announcement to the bundle fetcher."""
        from streamfeat.agent._bundles import ANNOUNCE_MAGIC

        if body.startswith(ANNOUNCE_MAGIC):
            if self.bundles is None:  # no pinned release key: a release cannot be verified
                self.durable.running.store.incr("release.refused.no_release_key")
                return
            await self.bundles.handle(version, body)
            return
        await self.apply_config(version, body.decode("utf-8", "replace"), source="downlink")

    async def wait_settled(self, uploader: UploaderLike | None, within: float,
                           settle: float) -> bool:  # fmt: skip
        """Wait for a connection, then ``settle`` seconds and the configs that came down."""
        if uploader is None:
            return False
        try:
            await asyncio.wait_for(uploader.connected.wait(), within)
        except TimeoutError:
            return False
        await asyncio.sleep(settle)
        await self.finish_applying()
        return True

    async def finish_applying(self) -> None:
        """Wait for the configs that came down to be applied (or refused)."""
        if self.applying:
            await asyncio.gather(*self.applying, return_exceptions=True)

    # -- releases -------------------------------------------------------------------------

    def start_bundles(self, store: Store, *, endpoint_url: str, device_key: KeyPair,
                      endpoint_key: bytes, release_key: bytes, folder: Path, clock: Clock,
                      current_text: Callable[[], str], health_every: float) -> None:  # fmt: skip
        """Build the release bundle fetcher and start its grading report and health loop."""
        from streamfeat.agent._grading import grade, hardware_id

        self.bundles = bundle_fetcher(
            store, endpoint_url=endpoint_url, device_key=device_key, endpoint_key=endpoint_key,
            release_key=release_key, folder=folder, clock=clock, current_text=current_text,
            apply=lambda v, text, source: self.apply_config(v, text, source=source),
            health=self.release_health,
        )  # fmt: skip
        self._spawn(self.bundles.grade_and_report(hardware_id(), grade))
        self._spawn(self.bundles.health_loop(health_every))

    def release_health(self) -> dict[str, Any]:
        """The running tasks file's task runs, errors and timeouts, and the re-rank p99."""
        return release_health(self.durable.tasks, self.durable.ranking)

    # -- switching ------------------------------------------------------------------------

    async def apply_config(
        self, version: int, text: str, *, source: str = "api"
    ) -> SwitchReport | None:
        """Switch to ``text`` at ``version`` (see :meth:`streamfeat.agent.Agent.apply_config`)."""
        durable = self.durable
        async with durable.switch_lock:
            switcher = durable.running.switcher
            if durable.closed or not switcher.wants(version, source):
                return None
            new = switcher.parse(version, text, source)
            report = None if new is None else await self._switch(version, new, source)
            if report is None and switcher.refusal and durable.failure is None:
                self._report_refusal(version, switcher.refusal)
            return report

    def _report_refusal(self, version: int, reason: str) -> None:
        """Upload a ``config`` record saying the file was refused, through the normal path
        (stored, queued durably, sent on the next connection)."""
        live = self.durable.running
        record: Record = {"kind": "config", "device": self.device, "ts": self._now_ms(),
                          "version": version, "status": "refused", "reason": reason[:500]}  # fmt: skip
        live.switcher.refusal = ""
        try:
            with live.store.transaction():
                live.sink.send([record])
        except (StorageError, sqlite3.Error) as exc:
            live.outbox.reload()
            self.durable.fail(exc)

    async def _switch(self, version: int, new: TasksConfig, source: str) -> SwitchReport | None:
        durable = self.durable
        live = durable.running
        old_shell = live.shell
        live.shell = self._new_shell(old_shell.engine)
        await self._intake_quiet()  # submits still holding the old shell queue there first
        await old_shell.aclose()
        switcher, sink = live.switcher, live.sink
        before = old_shell.engine.snapshot()  # drained: what the old file goes on from on failure
        saved = switcher.save()
        emitted = durable.emitted
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
                    durable.emitted += len(closed)
                    live.journal.set_emitted(durable.emitted)
                sink.use(switcher.encoder, new.upload.records)
                switcher.snapshot(engine, durable.stats.submitted, durable.emitted)
                live.journal.trim(engine.events)
                switcher.applied(version, source, report)
        except Exception as exc:  # roll back to the old file: nothing of the new one stays
            durable.emitted = emitted
            live.outbox.reload()
            switcher.restore_saved(saved)
            sink.use(switcher.encoder, old_kinds)
            old = build_engine(switcher.config, sizes=self.sizes)
            old.restore(before)
            live.shell.engine = old
            await live.shell.start()
            if isinstance(exc, StorageError | sqlite3.Error):
                durable.fail(exc)
            else:
                switcher.refuse(version, new.text, source, f"switch failed: {exc}")
            return None
        if durable.tasks is not None:
            self._spawn(durable.tasks.aclose())
        durable.tasks = tasks
        if durable.ranking is not None:
            durable.ranking.reconfigure(new)
        await live.shell.start()
        return report
