"""The task runtime: code run when triggers fire, isolated from the engine and from each other.

Theory of operation
-------------------
:class:`TaskRunner` imports every task's ``run = "module:callable"`` when it is built (a bad
target refuses the whole runner with :class:`TaskError`). The engine's shell hands it the
``trigger`` records it produces, on the asyncio loop, through :meth:`TaskRunner.dispatch`, which
only schedules work and returns at once: the engine is never blocked by a task.

**Dispatch order** (deterministic): records in the order they are dispatched (the engine's
processing order: per event, triggers in registration order); for each record, the tasks whose
``on`` names its trigger, in tasks-file order. A task listed under two triggers that fire at
the same event runs twice, once per firing. This is the order in which invocations *start*;
they run concurrently, so the order of their emitted records follows completion.

**Isolation.** Each invocation gets a :class:`TaskContext` and runs under the task's
``timeout``:

* an ``async def`` task is awaited on the loop (it must not block the loop: put blocking work
  in a sync task);
* a sync task runs on its own daemon thread, so a task that hangs holds only its own thread; a
  task with ``max_hung`` invocations still running past their timeout is skipped (counted)
  until they end, so one hanging task cannot pile up threads or delay the others.

An exception is counted (``errors``) and kept with its text in :attr:`TaskRunner.failures`; a
timeout likewise (``timeouts``). Nothing a task does is raised into the engine. Records a task
emits after its timeout are dropped and counted (``late_emits``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamfeat._log import tasks_log
from streamfeat._records import Record
from streamfeat.tasks._context import Reader, TaskContext
from streamfeat.tasks._resolve import resolve_run, resolve_tasks

if TYPE_CHECKING:
    from streamfeat.tasks import TaskConfig, TasksConfig

__all__ = ["TaskContext", "TaskFailure", "TaskRunner", "engine_reader", "load_callable"]

_COUNTERS = ("started", "ok", "errors", "timeouts", "skipped", "late_emits")


def load_callable(task: str, run: str) -> Callable[..., Any]:
    """Import ``run`` (``"package.module:callable"``, the callable may be dotted).

    Kept for callers of the old name; :func:`streamfeat.tasks.resolve_tasks` also looks in the
    tasks file's folder first.

    Raises:
        TaskError: naming the task and the target when the module or attribute is missing or
            the object is not callable (a :class:`~streamfeat.errors.TaskLoadError`).
    """
    return resolve_run(task, run)


def engine_reader(engine: Any, now_ms: Callable[[], int]) -> Reader:
    """Return a reader of a device's latest features and open windows, from a running engine.

    Every stage with a ``view(state, now_ms)`` method contributes ``{stage.name: view}``; a
    device with freed state reads as empty.

    Args:
        engine: the :class:`streamfeat.Engine` the shell runs.
        now_ms: the current time in ms (from the shell's clock), for decay features.
    """

    def read(device: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for stage in engine.stages:
            view = getattr(stage, "view", None)
            if view is None:
                continue
            state = engine.state_of(device, stage.name)
            out[stage.name] = {} if state is None else view(state, now_ms())
        return out

    return read


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """One failed invocation: ``kind`` is ``"error"`` or ``"timeout"``."""

    task: str
    trigger: str
    device: str
    kind: str
    error: str


@dataclass
class _Task:
    config: TaskConfig
    fn: Callable[..., Any]
    is_async: bool
    hung: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))


class TaskRunner:
    """Runs the tasks of a tasks file when their triggers fire.

    Args:
        config: the validated tasks file (its ``[tasks]``).
        output: called on the loop thread with every record a task emits.
        reader: ``reader(device) -> {"features": {...}, "windows": {...}}`` for
            :meth:`TaskContext.features` / :meth:`TaskContext.windows`
            (see :func:`engine_reader`).
        max_hung: a sync task with this many invocations still running past their timeout is
            skipped until one ends.
        max_failures: how many recent failures :attr:`failures` keeps.
        folder: where task modules are looked for first when ``config`` is not a file on disk
            (see :func:`streamfeat.tasks.resolve_tasks`).

    Raises:
        TaskLoadError: if a task's ``run`` target cannot be resolved (a ``TaskError`` and a
            ``ConfigError`` naming the file and ``tasks.NAME.run``); nothing is started.
    """

    def __init__(self, config: TasksConfig, *, output: Callable[[Record], None],
                 reader: Reader | None = None, max_hung: int = 2,
                 max_failures: int = 100, folder: Path | None = None) -> None:  # fmt: skip
        # the tasks file's folder first (else ``folder``); refused with the file and the key
        fns = resolve_tasks(config, folder=folder)
        self._tasks = {
            name: _Task(tc, fns[name], _is_async(fns[name])) for name, tc in config.tasks.items()
        }
        self._by_trigger: dict[str, list[_Task]] = {}
        for task in self._tasks.values():  # tasks-file order within each trigger
            for trig in task.config.on:
                self._by_trigger.setdefault(trig, []).append(task)
        self._output = output
        self._reader = reader
        self._max_hung = max_hung
        self.failures: deque[TaskFailure] = deque(maxlen=max_failures)
        self._inflight: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_tid: int | None = None

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per task: ``started``, ``ok``, ``errors``, ``timeouts``, ``skipped``, ``late_emits``."""
        return {name: dict(t.counts) for name, t in self._tasks.items()}

    def tasks_for(self, trigger: str) -> list[str]:
        """Return the tasks a firing of ``trigger`` runs, in dispatch order."""
        return [t.config.name for t in self._by_trigger.get(trigger, ())]

    def dispatch(self, record: Record) -> int:
        """Start the tasks of a ``trigger`` record (other records are ignored); never blocks.

        Must be called on the running event loop's thread. Returns the number started.
        """
        if record.get("kind") != "trigger":
            return 0
        tasks = self._by_trigger.get(record["trigger"])
        if not tasks:
            return 0
        loop = self._loop = asyncio.get_running_loop()
        self._loop_tid = threading.get_ident()
        started = 0
        for task in tasks:
            if not task.is_async and task.hung >= self._max_hung:
                task.counts["skipped"] += 1
                continue
            ctx = TaskContext(task.config.name, record, self._reader, self._emit)
            task.counts["started"] += 1
            job = loop.create_task(self._run(task, ctx))
            self._inflight.add(job)
            job.add_done_callback(self._inflight.discard)
            started += 1
        return started

    def dispatch_all(self, records: list[Record]) -> int:
        """Dispatch every trigger record of ``records`` in order; return how many tasks started."""
        return sum(self.dispatch(r) for r in records)

    @property
    def pending(self) -> int:
        """Invocations started and not finished (timed-out sync threads not included)."""
        return len(self._inflight)

    async def drain(self) -> None:
        """Wait until every started invocation has finished or timed out."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def aclose(self) -> None:
        """Wait for in-flight invocations (each bounded by its timeout); then stop accepting."""
        await self.drain()
        self._by_trigger = {}

    # -- running one invocation -----------------------------------------------------------

    async def _run(self, task: _Task, ctx: TaskContext) -> None:
        timeout = task.config.timeout / 1000
        try:
            if task.is_async:
                await asyncio.wait_for(task.fn(ctx), timeout)
            else:
                await self._run_thread(task, ctx, timeout)
        except TimeoutError:
            self._fail(task, ctx, "timeout", f"did not finish within {task.config.timeout} ms")
        except Exception as exc:  # a task's failure is recorded, never raised into the engine
            self._fail(task, ctx, "error", f"{type(exc).__name__}: {exc}")
        else:
            task.counts["ok"] += 1
        finally:
            ctx._closed = True

    async def _run_thread(self, task: _Task, ctx: TaskContext, limit_s: float) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(exc: BaseException | None) -> None:
            if done.cancelled():  # timed out: the thread was counted as hung; it is over now
                task.hung -= 1
            elif exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        def body() -> None:
            err: BaseException | None = None
            try:
                task.fn(ctx)
            except Exception as exc:  # carried to the loop, recorded there
                err = exc
            except BaseException as exc:  # SystemExit & co. must not stop the engine's loop
                err = RuntimeError(f"task raised {type(exc).__name__}: {exc}")
            # A task that hung past its timeout may return after the runner's loop has closed
            # (the agent stopped meanwhile): there is nobody left to tell, and its outcome was
            # already counted as a timeout.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, err)

        threading.Thread(
            target=body, name=f"streamfeat-task-{task.config.name}", daemon=True
        ).start()
        try:
            await asyncio.wait_for(asyncio.shield(done), limit_s)
        except TimeoutError:
            task.hung += 1
            done.cancel()
            raise

    def _fail(self, task: _Task, ctx: TaskContext, kind: str, error: str) -> None:
        task.counts["errors" if kind == "error" else "timeouts"] += 1
        self.failures.append(TaskFailure(task.config.name, ctx.trigger, ctx.device, kind, error))
        tasks_log.warning(
            "task %s on %s (%s): %s: %s", task.config.name, ctx.device, ctx.trigger, kind, error
        )

    def _emit(self, ctx: TaskContext, values: dict[str, Any]) -> None:
        record = {
            "kind": "task",
            "task": ctx.task,
            "device": ctx.device,
            "ts": ctx.ts,
            "values": values,
        }
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_tid:
            self._deliver(ctx, record)
        else:
            loop.call_soon_threadsafe(self._deliver, ctx, record)

    def _deliver(self, ctx: TaskContext, record: Record) -> None:
        if ctx._closed:
            self._tasks[ctx.task].counts["late_emits"] += 1
            return
        self._output(record)


def _is_async(fn: Callable[..., Any]) -> bool:
    # a callable object whose __call__ is ``async def`` is an async task too
    call = type(fn).__call__ if not inspect.isroutine(fn) else None
    return inspect.iscoroutinefunction(fn) or (
        call is not None and inspect.iscoroutinefunction(call)
    )
