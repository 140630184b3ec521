"""The agent's durable path: what reaches the store, in which transaction, and how it comes back.

Theory of operation
-------------------
:class:`DurablePath` owns the state a crash must not lose or double and every write of it:

* **commit** (:meth:`DurablePath.commit`): a batch's records, their outbox items, the running
  count of engine records, a journaled tick and (when due) the engine snapshot with the
  trimming of the journal it covers go in **one** transaction. A store failure rolls it back and
  stops the agent (:meth:`DurablePath.fail`): submits raise one line, the journal keeps the
  events, a restart with room processes them.
* **recovery** (:meth:`DurablePath.recover`): after a restart the journal since the restored
  snapshot is processed again; records committed before the crash are skipped by count, the
  rest committed (see :mod:`streamfeat.agent._journal`).
* **the sink** (:meth:`DurablePath.sink`): the engine shell's callback; after the commit,
  re-ranking sees the records and ``trigger`` records start their tasks.
* **task records** (:meth:`DurablePath.task_output`): published to the app at once, then
  coalesced into one commit per loop turn.
* the loops the agent spawns: ticks for idle devices (journaled), periodic snapshots and the
  store's retention.

Everything here is synchronous except the loops, so any other task of the loop sees the engine
between batches with every record of the last batch stored: a snapshot needs no lock.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamfeat._log import agent_log
from streamfeat.agent._journal import Journal
from streamfeat.agent._outbox import TimedOutbox
from streamfeat.agent._ports import TaskDispatcher
from streamfeat.agent._ranking import RankingShell
from streamfeat.agent._results import ResultFeed
from streamfeat.agent._sink import RecordSink
from streamfeat.agent._support import AgentStats
from streamfeat.agent._switcher import CHECKPOINT, ConfigSwitcher
from streamfeat.encoders import Encoder
from streamfeat.engine._engine import Engine, Record
from streamfeat.errors import StorageError
from streamfeat.io._store import Store
from streamfeat.runtime._engine import AsyncEngine

__all__ = ["DurablePath", "Live"]

_SNAPSHOT_IDLE = 30.0  # seconds between snapshots while records flow when snapshot_every is 0


@dataclass(slots=True)
class Live:
    """What a started agent runs (built by :meth:`streamfeat.agent.Agent.start`)."""

    store: Store
    outbox: TimedOutbox
    switcher: ConfigSwitcher
    sink: RecordSink
    shell: AsyncEngine
    journal: Journal


class DurablePath:
    """The commits, snapshots, recovery, retention and ticks of one agent (module docstring).

    Args:
        stats: the agent's counters, updated in place.
        results: where task records go to the app.
        store_path: the device store (named in the failure message).
        snapshot_every: seconds between engine snapshots (0: 30 s while records flow).
        now_ms: the agent's event-side clock.

    Attributes:
        live: the running parts (None until started).
        failure: the store failure that stopped the agent, or None.
        accepted: index of the last event accepted (journaled), across restarts.
        emitted: engine records committed in all (see ``_journal``).
        closed: the agent is closing or closed.
        tasks: the task runner of the running tasks file, if it has tasks.
        ranking: the re-rank shell (built at start).
        switch_lock: held while the tasks file is switched (the loops skip a turn).
    """

    def __init__(self, stats: AgentStats, results: ResultFeed, *, store_path: Path,
                 snapshot_every: float, now_ms: Callable[[], int]) -> None:  # fmt: skip
        self.stats = stats
        self.results = results
        self.store_path = store_path
        self.snapshot_every = snapshot_every
        self._now_ms = now_ms
        self.live: Live | None = None
        self.failure: StorageError | None = None
        self.accepted = 0
        self.emitted = 0
        self.closed = False
        self.tasks: TaskDispatcher | None = None
        self.ranking: RankingShell | None = None
        self.switch_lock = asyncio.Lock()
        self._snapshot_at = time.monotonic()
        self._task_buffer: list[Record] = []
        self._tasks_flush: asyncio.Handle | None = None

    @property
    def running(self) -> Live:
        """The running parts.

        Raises:
            RuntimeError: the agent is not started.
        """
        if self.live is None:
            msg = "the agent is not started"
            raise RuntimeError(msg)
        return self.live

    def fail(self, exc: BaseException) -> StorageError:
        """Stop intake after a store failure; return the one-line error submits raise now."""
        if self.failure is None:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.failure = StorageError(
                f"the store {self.store_path} failed ({detail}); intake stopped after "
                f"{self.accepted} accepted events, every one kept (a restart with room "
                "processes those not committed)"
            )
            self.stats.store_failures += 1
            agent_log.error("%s", self.failure)
        return self.failure

    def dispatch(self, records: list[Record]) -> None:
        """Start the tasks of the ``trigger`` records among committed ``records``."""
        if self.tasks is not None and records:
            self.stats.tasks_started += self.tasks.dispatch_all(records)

    # -- commits --------------------------------------------------------------------------

    def sink(self, records: list[Record], tick: tuple[int, int] | None = None) -> None:
        """The engine shell's sink: commit the batch (records, outbox items, count: one
        transaction), then re-ranking and tasks see it."""
        if self.failure is not None or not self.commit(records, tick=tick):
            return
        if self.ranking is not None:
            self.ranking.add_records(records)
        self.dispatch(records)

    def commit(self, records: list[Record], encoder: Encoder | None = None, *,
               engine_records: bool = True, tick: tuple[int, int] | None = None,
               snapshot: bool | None = None) -> bool:  # fmt: skip
        """Store and enqueue ``records`` and count them (engine records), journal ``tick``,
        and snapshot the engine (when ``snapshot``, or None and the last is a second old), in
        one transaction.

        Returns:
            False after a store failure (rolled back, the agent stopped: :meth:`fail`).
        """
        live = self.running
        before = self.emitted
        due = snapshot
        if due is None:  # a snapshot bounds the journal a restart replays
            every = self.snapshot_every or _SNAPSHOT_IDLE
            due = time.monotonic() - self._snapshot_at >= every
        try:
            with live.store.transaction():
                if records:
                    live.sink.handle(records, encoder)
                    if engine_records:
                        self.emitted += len(records)
                        live.journal.set_emitted(self.emitted)
                if tick is not None:
                    live.journal.tick(*tick)
                if due:
                    engine = live.shell.engine
                    live.switcher.snapshot(engine, self.stats.submitted, self.emitted)
                    live.journal.trim(engine.events)
        except (StorageError, sqlite3.Error) as exc:
            self.emitted = before
            live.outbox.reload()
            self.fail(exc)
            return False
        if due:
            self._snapshot_at = time.monotonic()
        return True

    def task_output(self, record: Record) -> None:
        """A task's record: to the app at once, stored with the others of this loop turn."""
        self.results.publish(record)  # to the app at once, before it is stored
        # task records arrive one by one from finished tasks: coalesce them into one commit
        self._task_buffer.append(record)
        if self._tasks_flush is None:
            self._tasks_flush = asyncio.get_running_loop().call_soon(self.flush_task_records)

    def flush_task_records(self) -> None:
        """Commit the task records waiting (no snapshot)."""
        self._tasks_flush = None
        records, self._task_buffer = self._task_buffer, []
        if records and self.live is not None and self.failure is None:
            self.commit(records, engine_records=False, snapshot=False)

    def snapshot(self) -> None:
        """Write the engine snapshot with its tasks file and version to the store (atomic)."""
        if self.failure is None:
            self.commit([], snapshot=True)

    # -- recovery -------------------------------------------------------------------------

    def recover(self, engine: Engine) -> None:
        """Process the journal after the restored snapshot again (see ``_journal``): records
        committed before a crash are skipped, the rest committed; then a snapshot."""
        live = self.running
        journal = live.journal
        cp = live.store.load_checkpoint(CHECKPOINT)
        self.emitted = journal.emitted() or 0
        # what the engine we start from already produced: nothing if it is the first one, the
        # snapshot's count if restored; if a snapshot could not be used, skip nothing (logged)
        trusted = cp is None or live.switcher.restored
        covered = 0 if cp is None else cp.out_offset if trusted else self.emitted
        backlog = journal.since(engine.events)
        ticks = journal.ticks() if trusted else []
        self.accepted = max(engine.events, journal.last())
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
        skip = self.emitted - covered
        if skip > len(out):  # never expected: the engine is deterministic
            agent_log.warning("journal replay made %d records, %d were committed", len(out), skip)
        self.stats.replayed += len(backlog)
        fresh = out[max(0, skip) :]
        if self.commit(fresh, snapshot=True):
            self.dispatch(fresh)

    # -- retention ------------------------------------------------------------------------

    def apply_retention(self) -> dict[str, int]:
        """Run ``[store] retention`` and ``max_mb`` of the running tasks file on the store now.

        Returns:
            What was evicted, per counter name (also added to the store's counters).
        """
        live = self.running
        cfg = live.switcher.config.store
        if self.failure is not None or not (cfg.retention or cfg.max_mb):
            return {}
        if not self.switch_lock.locked():  # the journal a snapshot covers is dropped first
            self.snapshot()
        try:
            evicted = live.store.apply_retention(max_age_ms=cfg.retention, max_mb=cfg.max_mb)
        except (StorageError, sqlite3.Error) as exc:  # not fatal: the next run tries again
            agent_log.warning("store retention failed: %s", exc)
            return {}
        self.stats.evicted += sum(evicted.values())
        return evicted

    # -- the loops ------------------------------------------------------------------------

    async def tick_loop(self, every: float) -> None:
        """Advance idle devices' windows on wall time; each tick is journaled with its records."""
        while True:
            await asyncio.sleep(every)
            if self.switch_lock.locked() or self.failure is not None:
                continue
            # between engine batches here (the shell's worker never yields inside one)
            engine = self.running.shell.engine
            now = self._now_ms()
            self.sink(engine.advance(now), tick=(engine.events, now))

    async def snapshot_loop(self) -> None:
        """Snapshot every ``snapshot_every`` seconds (skipping a turn during a switch)."""
        # a random phase: a fleet of agents started together must not snapshot all at once
        await asyncio.sleep(random.uniform(0.0, self.snapshot_every))
        while True:
            await asyncio.sleep(self.snapshot_every)
            if not self.switch_lock.locked():
                self.snapshot()

    async def retention_loop(self, every: float) -> None:
        """Run the store's retention every ``every`` seconds."""
        while True:
            await asyncio.sleep(every)
            self.apply_retention()
