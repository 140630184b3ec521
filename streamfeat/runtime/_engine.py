"""The asyncio shell around an :class:`~streamfeat.Engine`, for the embedded agent.

Theory of operation
-------------------
Producers call :meth:`AsyncEngine.submit`; events wait in one bounded ``asyncio.Queue`` and one
worker task takes them in arrival order, runs them through the (synchronous) engine in small
batches, and hands the records of each batch to the sinks (store, task runner, uploader). One
worker and one queue keep every device's events in arrival order.

Backpressure policy: when the queue is full, ``await submit(event)`` waits for room (the
producer slows down; nothing is dropped). ``submit_nowait(event)`` never waits: it returns
False when the queue is full and counts the refusal in ``stats["refused"]``, so a caller that
cannot wait (a UI thread) learns at once and keeps the event. Nothing is ever dropped silently.

Idle devices: every ``tick`` seconds of the injected clock the worker calls
``engine.advance(now_ms)``, so windows of devices that went quiet still close on wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streamfeat._event import Event
from streamfeat._log import agent_log
from streamfeat.clock import Clock, SystemClock
from streamfeat.engine import Engine, Record

__all__ = ["AsyncEngine", "Sink"]

Sink = Callable[[list[Record]], Awaitable[None] | None]
_STOP = object()


class AsyncEngine:
    """Feeds an engine from a bounded queue on the running loop.

    Args:
        engine: the engine to run.
        sinks: called with each non-empty list of records, in order; may be async.
        queue_size: how many submitted events may wait.
        batch: at most this many queued events are processed before the sinks run.
        clock: for ``advance`` ticks (wall time, ms since the epoch).
        tick: seconds between ``engine.advance`` calls (0 turns ticks off).
    """

    def __init__(
        self,
        engine: Engine,
        sinks: Sequence[Sink] = (),
        *,
        queue_size: int = 10_000,
        batch: int = 256,
        clock: Clock | None = None,
        tick: float = 1.0,
    ) -> None:
        self.engine = engine
        self.sinks = list(sinks)
        self.clock = clock or SystemClock()
        self.tick = tick
        self._batch = batch
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # engine access: the worker and the ticker
        self.stats = {"submitted": 0, "processed": 0, "refused": 0, "records": 0, "sink_errors": 0}

    async def start(self) -> None:
        """Start the worker (and the ticker) on the running loop."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="streamfeat-engine")
            if self.tick > 0:
                self._ticker = asyncio.create_task(self._tick(), name="streamfeat-ticker")

    async def submit(self, event: Event) -> None:
        """Queue ``event``; waits while the queue is full (backpressure)."""
        await self._queue.put(event)
        self.stats["submitted"] += 1

    def submit_nowait(self, event: Event) -> bool:
        """Queue ``event`` if there is room; return False (and count it) when full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.stats["refused"] += 1
            return False
        self.stats["submitted"] += 1
        return True

    async def drain(self) -> None:
        """Wait until every event submitted so far has been processed and its records sunk."""
        await self._queue.join()

    async def aclose(self, *, close_windows: bool = False) -> None:
        """Process what is queued, then stop.

        Args:
            close_windows: also close every open window / visit (end of input), sinking the
                final records. An agent that will restart from a snapshot leaves them open.
        """
        if self._worker is None:
            return
        await self._queue.put(_STOP)
        await self._worker
        self._worker = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if close_windows:
            async with self._lock:
                await self._sink(self.engine.close())

    async def _run(self) -> None:
        queue = self._queue
        engine = self.engine
        while True:
            item = await queue.get()
            items = [item]
            while len(items) < self._batch and not queue.empty():
                items.append(queue.get_nowait())
            out: list[Record] = []
            stop = False
            async with self._lock:
                for ev in items:
                    if ev is _STOP:
                        stop = True
                        continue
                    engine.process_into(ev, out)
                    self.stats["processed"] += 1
                await self._sink(out)
            for _ in items:
                queue.task_done()
            if stop:
                return

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            async with self._lock:
                await self._sink(self.engine.advance(int(self.clock.time() * 1000)))

    async def _sink(self, records: list[Record]) -> None:
        if not records:
            return
        self.stats["records"] += len(records)
        for sink in self.sinks:
            try:
                result = sink(records)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one broken sink must not stop the engine or the others
                self.stats["sink_errors"] += 1
                agent_log.exception("sink %r failed on %d records", sink, len(records))
