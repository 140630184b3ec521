"""The agent's re-rank shell: pages, re-rank tasks and inference off the event loop.

Theory of operation
-------------------
:class:`RankingShell` wraps the synchronous :class:`~streamfeat.ranking.PageBook` for the
agent. On the loop thread:

* :meth:`observe` gets every valid event the agent accepts, in submission order (before the
  engine sees it: page state needs no engine), and starts the re-rank of every task whose
  policy fired;
* :meth:`add_records` takes the engine's ``ipv`` feature records as page views;
* :meth:`set_page` / :meth:`page` are the app's side (``Agent.set_page`` / ``Agent.page``).

A re-rank runs the model on its own daemon thread (the loop never waits on inference) under the
task's ``timeout``. Per device and task at most one inference runs; a firing while one runs
waits as the *pending* one, and a newer firing replaces it (``coalesced``), so the re-rank that
runs next always sees the latest behaviour. When the inference returns in time, its order is
applied on the loop thread (unless the page was replaced meanwhile: ``stale``) and a ``task``
record is emitted with the new order, the scores, the model version and the latency. A
timeout or an exception leaves the previous order in place and is counted (``timeouts``,
``errors``, with the text kept in :attr:`RankingShell.failures`); the result of an inference
that ends after its timeout is dropped; while :data:`MAX_HUNG` inferences of a task are still
running past their timeout, its firings are skipped (``skipped``), so a hanging model cannot
pile up threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from streamfeat._event import Event
from streamfeat._log import tasks_log
from streamfeat.clock import Clock
from streamfeat.ranking import Firing, Page, PageBook, RerankResult, RerankTask
from streamfeat.tasks import TasksConfig

__all__ = ["RankingShell"]

Record = dict[str, Any]
COUNTERS = ("fired", "started", "done", "applied", "stale", "timeouts", "errors", "coalesced",
            "skipped", "shadow")  # fmt: skip
#: Inferences of one task still running past their timeout before its firings are skipped.
MAX_HUNG = 2


class RankingShell:
    """Re-rank tasks of the running tasks file, driven from the agent's loop.

    Args:
        config: the tasks file (its ``reranks`` and ``loaded_models``).
        clock: where re-rank latency is read (the agent's wall clock).
        output: called on the loop thread with each ``task`` record.
    """

    def __init__(
        self, config: TasksConfig, *, clock: Clock, output: Callable[[Record], None]
    ) -> None:
        self.clock = clock
        self.book = PageBook()
        self._output = output
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.latencies: deque[float] = deque(maxlen=10_000)  # ms, of applied re-ranks
        self.failures: deque[tuple[str, str, str]] = deque(maxlen=100)  # task, kind, text
        self._running: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._pending: dict[tuple[str, str], Firing] = {}
        self._done = asyncio.Event()
        self._hung: dict[str, int] = {}
        self._ipv: frozenset[str] = frozenset()
        self.reconfigure(config)

    def reconfigure(self, config: TasksConfig) -> None:
        """Use the re-rank tasks of ``config``; pages and their state are kept."""
        self.book.tasks = [
            RerankTask.build(cfg, config.loaded_models[cfg.model], self.clock)
            for cfg in config.reranks.values()
        ]
        self._ipv = frozenset(n for n, f in config.features.items() if f.kind == "ipv")

    @property
    def active(self) -> bool:
        return bool(self.book.tasks)

    # -- the app's side -------------------------------------------------------------------

    def set_page(self, device: str, page: Page | Mapping[str, Any]) -> None:
        """Install a page (a :class:`Page` or its JSON form).

        Raises:
            PageError: the page breaks its contract; nothing changes.
        """
        self.book.set_page(device, page if isinstance(page, Page) else Page.from_dict(page))

    def page(self, device: str, feed: str) -> list[str] | None:
        return self.book.order(device, feed)

    # -- events and records ---------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Fold one event into the page state; start the re-ranks it fires."""
        for firing in self.book.observe(event):
            self.counts["fired"] += 1
            key = (firing.device, firing.task.config.name)
            if key in self._running:
                if key in self._pending:
                    self.counts["coalesced"] += 1
                self._pending[key] = firing
            else:
                self._start(key, firing)

    def add_records(self, records: list[Record]) -> None:
        """Take the page views (``ipv`` feature records) out of a batch of engine records."""
        if not self._ipv:
            return
        for r in records:
            if r.get("kind") == "feature" and r.get("feature") in self._ipv:
                self.book.add_page_view(r["device"], r["values"])

    # -- running a re-rank ----------------------------------------------------------------

    def _unhang(self, name: str) -> None:
        self._hung[name] -= 1

    def _start(self, key: tuple[str, str], firing: Firing) -> None:
        if self._hung.get(firing.task.config.name, 0) >= MAX_HUNG:
            self.counts["skipped"] += 1
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._running[key] = fut
        self.counts["started"] += 1

        def work() -> None:
            try:
                res: Any = firing.run()
                ok = True
            except Exception as exc:  # the model's failure is counted, never raised into the agent
                res, ok = exc, False
            # the loop may have closed while the model ran: then there is nobody to report to
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, ok, res)

        threading.Thread(target=work, name="streamfeat-rerank", daemon=True).start()
        task = asyncio.ensure_future(self._finish(key, firing, fut))
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    async def _finish(self, key: tuple[str, str], firing: Firing, fut: asyncio.Future[Any]) -> None:
        cfg = firing.task.config
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), cfg.timeout / 1000.0)
        except TimeoutError:
            self.counts["timeouts"] += 1
            self.failures.append((cfg.name, "timeout", f"no order within {cfg.timeout} ms"))
            tasks_log.warning("re-rank task %r timed out after %d ms", cfg.name, cfg.timeout)
            # the thread may still hold the model; the next firing gets a thread of its own,
            # but past MAX_HUNG such threads of a task its firings are skipped (counted)
            name = cfg.name
            self._hung[name] = self._hung.get(name, 0) + 1
            fut.add_done_callback(lambda _f: self._unhang(name))
        except Exception as exc:
            self.counts["errors"] += 1
            self.failures.append((cfg.name, "error", f"{type(exc).__name__}: {exc}"))
            tasks_log.warning("re-rank task %r failed: %s: %s", cfg.name, type(exc).__name__, exc)
        else:
            self._apply(firing, result)
        finally:
            self._running.pop(key, None)
            nxt = self._pending.pop(key, None)
            if nxt is not None:
                self._start(key, nxt)
            self._done.set()

    def _apply(self, firing: Firing, result: RerankResult) -> None:
        self.counts["done"] += 1
        if firing.task.config.apply:
            if not self.book.apply(firing, result):
                self.counts["stale"] += 1
                return
            self.counts["applied"] += 1
        else:  # a shadow task: recorded (for training), the order shown stays
            self.counts["shadow"] += 1
        self.latencies.append(result.latency_ms)
        self._output({"kind": "task", "task": firing.task.config.name, "device": firing.device,
                      "ts": firing.ts, "values": firing.record_values(result)})  # fmt: skip

    async def drain(self) -> None:
        """Wait until no re-rank is running or pending."""
        while self._running:
            self._done.clear()
            await self._done.wait()

    async def wait_done(self, count: int, within: float) -> bool:
        """Wait until ``counts["done"] + timeouts + errors`` reaches ``count``."""

        def finished() -> int:
            return self.counts["done"] + self.counts["timeouts"] + self.counts["errors"]

        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while finished() < count:
            left = end - loop.time()
            if left <= 0:
                return False
            self._done.clear()
            try:
                await asyncio.wait_for(self._done.wait(), left)
            except TimeoutError:
                return finished() >= count
        return True


def _settle(fut: asyncio.Future[Any], ok: bool, res: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(res)
    else:
        fut.set_exception(res)
