"""The agent's intake: validate, journal and queue each event, in order, with backpressure.

An invalid event (or a JSON line that is not one) goes to the store's quarantine with its bytes
and reason. A valid one is journaled in the store (so it survives a crash: see
:mod:`streamfeat.agent._journal`) and then queued on the running engine shell, under one lock so
that the journal's order is the queue's order. Submits wait only while the shell's queue is
full, never on the network. A live switch replaces the shell; :meth:`Intake.quiet` lets it wait
until no submit still holds the old one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import orjson

from streamfeat._event import Event, event_from_obj
from streamfeat._records import raw_size
from streamfeat.agent._durable import DurablePath
from streamfeat.agent._support import raw_of
from streamfeat.errors import EventError, StorageError

__all__ = ["Intake"]


class Intake:
    """Event intake of one agent (see the module docstring).

    Args:
        durable: the agent's durable path (running parts, accepted count, failure, ranking).
    """

    def __init__(self, durable: DurablePath) -> None:
        self.durable = durable
        self._inflight = 0  # submits that hold a reference to the current shell
        self._idle = asyncio.Event()
        self._lock = asyncio.Lock()  # journal order == queue order

    async def submit(self, event: Event | dict[str, Any], source: str, position: int) -> bool:
        """Queue one event; quarantine an invalid one and return False (see ``Agent.submit``)."""
        durable = self.durable
        if durable.live is None or durable.closed:
            state = "closed" if durable.closed else "not started"
            msg = f"can't submit to an agent that is {state}"
            raise RuntimeError(msg)
        if durable.failure is not None:
            raise durable.failure
        if type(event) is not Event:
            try:
                event = event_from_obj(event)
            except EventError as exc:
                self.quarantine(raw_of(event), str(exc), source, position)
                return False
        async with self._lock:
            live = durable.running
            try:
                live.journal.append(durable.accepted + 1, event)
            except (StorageError, sqlite3.Error) as exc:
                raise durable.fail(exc) from exc
            durable.accepted += 1
            durable.stats.submitted += 1
            durable.stats.events_raw_bytes += raw_size(event)
            ranking = durable.ranking
            if ranking is not None and ranking.active:
                ranking.observe(event)  # page state first: a re-rank never waits on the engine
            shell = live.shell
            self._inflight += 1
            try:
                await shell.submit(event)
            finally:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.set()
        return True

    def parse_line(self, line: bytes, source: str, position: int) -> Event | None:
        """The event of one JSONL line, or None after quarantining a bad line."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self.quarantine(line.rstrip(b"\n"), f"not valid JSON: {exc}", source, position)
            return None
        try:
            return event_from_obj(obj)
        except EventError as exc:
            self.quarantine(line.rstrip(b"\n"), str(exc), source, position)
            return None

    def quarantine(self, raw: bytes, reason: str, source: str, position: int) -> None:
        """Keep a bad input's bytes with its reason (counted); a store failure stops intake."""
        try:
            self.durable.running.sink.quarantine(raw, reason, source, position)
        except (StorageError, sqlite3.Error) as exc:
            raise self.durable.fail(exc) from exc

    async def drain(self) -> None:
        """Wait until every event submitted so far is processed and its records are stored,
        the tasks they started ended and the re-ranks too."""
        durable = self.durable
        live = durable.running
        while True:
            shell = live.shell
            await shell.drain()
            if shell is live.shell and not durable.switch_lock.locked():
                break
            await asyncio.sleep(0.01)
        if durable.tasks is not None:
            await durable.tasks.drain()
        if durable.ranking is not None:
            await durable.ranking.drain()
        durable.flush_task_records()

    async def quiet(self) -> None:
        """Wait until no submit holds a reference to the shell a switch just replaced."""
        if self._inflight:
            self._idle.clear()
            await self._idle.wait()
