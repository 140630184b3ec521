"""Task results to the app: a callback, async iterators, and the latest value per task.

The agent hands every ``task`` record to :meth:`ResultFeed.publish` on its loop, as the task
emits it (before it is stored and uploaded). The feed then, in that order:

1. keeps it as the latest result of its (task, device): :meth:`ResultFeed.latest`;
2. calls the ``on_result`` callback, if any (on the loop thread: it must not block; an
   exception it raises is logged and counted in ``callback_errors``, never raised into the
   agent);
3. puts it on the queue of every open :meth:`ResultFeed.subscribe` iterator.

An iterator sees the results made after it was opened, in the order they were made, and ends
when the agent closes. Its queue holds at most ``maxsize`` results: when the app reads slower
than tasks emit, the oldest waiting result is dropped and counted in ``dropped`` (the latest
values stay readable through :meth:`ResultFeed.latest`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from streamfeat._log import agent_log
from streamfeat._records import Record

__all__ = ["ResultFeed", "ResultIterator"]


class _Subscription:
    __slots__ = ("buffer", "closed", "maxsize", "wakeup")

    def __init__(self, maxsize: int) -> None:
        self.buffer: deque[Record] = deque()
        self.maxsize = maxsize
        self.wakeup = asyncio.Event()
        self.closed = False


class ResultIterator:
    """``async for record in it``: the task records made since it was opened, in order.

    Ends when the agent closes; :meth:`aclose` stops it earlier (``async with`` does too).
    """

    def __init__(self, sub: _Subscription, subs: set[_Subscription]) -> None:
        self._sub = sub
        self._subs = subs

    def __aiter__(self) -> ResultIterator:
        return self

    async def __anext__(self) -> Record:
        sub = self._sub
        while not sub.buffer:
            if sub.closed:
                self._subs.discard(sub)
                raise StopAsyncIteration
            sub.wakeup.clear()
            await sub.wakeup.wait()
        return sub.buffer.popleft()

    async def aclose(self) -> None:
        """Stop receiving results (what is buffered is dropped)."""
        self._sub.closed = True
        self._sub.buffer.clear()
        self._subs.discard(self._sub)

    async def __aenter__(self) -> ResultIterator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ResultFeed:
    """Fans task records out to the app (see the module docstring).

    Args:
        on_result: called with every task record as it is made, or None.
    """

    def __init__(self, on_result: Callable[[Record], None] | None = None) -> None:
        self.on_result = on_result
        self._latest: dict[tuple[str, str], Record] = {}
        self._subs: set[_Subscription] = set()
        self._closed = False
        self.published = 0
        self.dropped = 0
        self.callback_errors = 0

    def publish(self, record: Record) -> None:
        """Hand one ``task`` record to the app (on the loop thread)."""
        self.published += 1
        self._latest[(record["task"], record["device"])] = record
        if self.on_result is not None:
            try:
                self.on_result(record)
            except Exception:  # the app's callback must not break the agent
                self.callback_errors += 1
                agent_log.exception("on_result callback failed for task %s", record["task"])
        for sub in self._subs:
            if len(sub.buffer) >= sub.maxsize:
                sub.buffer.popleft()
                self.dropped += 1
            sub.buffer.append(record)
            sub.wakeup.set()

    def latest(self, task: str, device: str) -> Record | None:
        """Return the latest ``task`` record of ``task`` on ``device``, or None."""
        return self._latest.get((task, device))

    def latest_all(self) -> dict[tuple[str, str], Record]:
        """Return the latest record of every (task, device) seen."""
        return dict(self._latest)

    def subscribe(self, maxsize: int = 10_000) -> ResultIterator:
        """Return an iterator of every task record made from now on (registered at once)."""
        sub = _Subscription(max(1, maxsize))
        sub.closed = self._closed
        self._subs.add(sub)
        return ResultIterator(sub, self._subs)

    def close(self) -> None:
        """End every iterator once it has yielded what it holds."""
        self._closed = True
        for sub in self._subs:
            sub.closed = True
            sub.wakeup.set()

    @property
    def stats(self) -> dict[str, Any]:
        """``published``, ``dropped`` (slow iterators) and ``callback_errors``."""
        return {
            "published": self.published,
            "dropped": self.dropped,
            "callback_errors": self.callback_errors,
        }
