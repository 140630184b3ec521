"""Running a tasks file's ``[tasks]`` code inside a replay (``streamfeat replay --run-tasks``).

Theory of operation
-------------------
The replay is synchronous, so tasks run one at a time, deterministically: after each input
event has gone through the engine, every ``trigger`` record it produced (in the engine's
order) runs the tasks whose ``on`` names its trigger (in tasks-file order), each to its end or
its ``timeout``, before the next event is read. The ``task`` records they emit follow the
trigger record's event in OUT, in that order. That is the agent's dispatch order
(:class:`streamfeat.runtime.TaskRunner`); on the agent, invocations run concurrently, so its
``task`` records of one firing may arrive in another order, but they are the same records.

What a task sees: the matched events (``ctx.events``), and through ``ctx.features()`` /
``ctx.windows()`` the device's engine state right after the firing event (event time: the
decay fields' "now" is that event's ``ts``).

Isolation, as on the agent: an exception or a timeout is counted and logged, never stops the
replay; a sync task runs on a worker thread of its own (reused from one invocation to the
next), abandoned when an invocation passes its timeout (a new one takes its place; records the
late invocation emits are dropped and counted); an ``async def`` task runs on a private event
loop under ``asyncio.wait_for``. A sync task with ``max_hung`` invocations still running
past their timeout is skipped (counted) until one ends.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamfeat._log import tasks_log
from streamfeat._records import Record
from streamfeat.tasks import TasksConfig, resolve_tasks
from streamfeat.tasks._context import TaskContext

__all__ = ["ReplayTasks"]

_COUNTERS = ("started", "ok", "errors", "timeouts", "skipped", "late_emits")


class _Job:
    __slots__ = ("ctx", "done", "error", "fn")

    def __init__(self, fn: Callable[..., Any], ctx: TaskContext) -> None:
        self.fn = fn
        self.ctx = ctx
        self.done = threading.Event()
        self.error: BaseException | None = None


class _Worker:
    """A daemon thread running one task's sync invocations, one at a time."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.abandoned = False
        self._thread = threading.Thread(
            target=self._loop, name=f"streamfeat-task-{name}", daemon=True
        )
        self._thread.start()
        self._busy = False

    def submit(self, fn: Callable[..., Any], ctx: TaskContext) -> _Job:
        job = _Job(fn, ctx)
        self._busy = True
        self._jobs.put(job)
        return job

    def is_alive(self) -> bool:
        """True while an abandoned invocation is still running."""
        return self._busy

    def stop(self) -> None:
        """End the thread once its current invocation (if any) returns."""
        self._jobs.put(None)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.fn(job.ctx)
            except BaseException as exc:  # carried to the replay's thread, counted there
                job.error = exc
            self._busy = False
            job.done.set()
            if self.abandoned:  # it passed its timeout: a new worker took its place
                return


@dataclass
class _Task:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    timeout_s: float
    worker: _Worker | None = None
    hung: list[_Worker] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))


class ReplayTasks:
    """Runs ``[tasks]`` on the trigger records of a replay (see the module docstring).

    Args:
        config: the tasks file; every task is resolved now (the file's folder first).
        engine: the replay's engine, read for ``ctx.features()`` / ``ctx.windows()``.
        max_hung: a sync task with this many abandoned invocations still running is skipped.

    Raises:
        TaskLoadError: a task's ``run`` does not resolve (file, ``tasks.NAME.run``, reason).
    """

    def __init__(self, config: TasksConfig, engine: Any, *, max_hung: int = 2) -> None:
        fns = resolve_tasks(config)
        self._tasks = {
            name: _Task(name, fns[name], _is_async(fns[name]), tc.timeout / 1000)
            for name, tc in config.tasks.items()
        }
        self._by_trigger: dict[str, list[_Task]] = {}
        for name, tc in config.tasks.items():
            for trig in tc.on:
                self._by_trigger.setdefault(trig, []).append(self._tasks[name])
        self._engine = engine
        self._max_hung = max_hung
        self._now = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per task: ``started``, ``ok``, ``errors``, ``timeouts``, ``skipped``, ``late_emits``."""
        return {name: dict(t.counts) for name, t in self._tasks.items()}

    def run(self, records: list[Record]) -> list[Record]:
        """Run the tasks of every trigger record of ``records``; return their ``task`` records."""
        out: list[Record] = []
        for rec in records:
            if rec["kind"] != "trigger":
                continue
            for task in self._by_trigger.get(rec["trigger"], ()):
                self._now = rec["last_ts"]
                self._invoke(task, rec, out)
        return out

    def close(self) -> None:
        """Stop the worker threads of sync tasks; close the private loop of async tasks."""
        for task in self._tasks.values():
            if task.worker is not None:
                task.worker.stop()
                task.worker = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    # -- one invocation -------------------------------------------------------------------

    def _read(self, device: str) -> dict[str, Any]:
        view: dict[str, Any] = {"features": {}, "windows": {}}
        for stage in self._engine.stages:
            fn = getattr(stage, "view", None)
            state = self._engine.state_of(device, stage.name) if fn is not None else None
            if fn is not None and state is not None:
                got = fn(state, self._now)
                for part in ("features", "windows"):
                    view[part].update(got.get(part, {}))
        return view

    def _invoke(self, task: _Task, rec: Record, out: list[Record]) -> None:
        task.hung = [t for t in task.hung if t.is_alive()]
        if not task.is_async and len(task.hung) >= self._max_hung:
            task.counts["skipped"] += 1
            return
        emitted: list[Record] = []

        def emit(ctx: TaskContext, values: dict[str, Any]) -> None:
            if ctx._closed:
                task.counts["late_emits"] += 1
                return
            emitted.append({"kind": "task", "task": ctx.task, "device": ctx.device,
                            "ts": ctx.ts, "values": values})  # fmt: skip

        ctx = TaskContext(task.name, rec, self._read, emit)
        task.counts["started"] += 1
        try:
            if task.is_async:
                self._run_async(task, ctx)
            else:
                self._run_thread(task, ctx)
        except TimeoutError:
            self._fail(task, ctx, "timeouts", f"did not finish within {task.timeout_s:g} s")
        except Exception as exc:  # a task's failure is counted, never raised into the replay
            self._fail(task, ctx, "errors", f"{type(exc).__name__}: {exc}")
        else:
            task.counts["ok"] += 1
        finally:
            ctx._closed = True
        out.extend(emitted)

    def _run_async(self, task: _Task, ctx: TaskContext) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(asyncio.wait_for(task.fn(ctx), task.timeout_s))

    def _run_thread(self, task: _Task, ctx: TaskContext) -> None:
        # one reusable worker thread per task: a thread per invocation costs more than most
        # tasks; a worker that passes the timeout is abandoned (kept in ``hung``), a new one
        # takes its place
        if task.worker is None:
            task.worker = _Worker(task.name)
        job = task.worker.submit(task.fn, ctx)
        if not job.done.wait(task.timeout_s):
            task.worker.abandoned = True
            task.hung.append(task.worker)
            task.worker = None
            raise TimeoutError
        if job.error is not None:
            exc = job.error
            if isinstance(exc, Exception):
                raise exc
            msg = f"task raised {type(exc).__name__}: {exc}"
            raise RuntimeError(msg)

    def _fail(self, task: _Task, ctx: TaskContext, counter: str, error: str) -> None:
        task.counts[counter] += 1
        tasks_log.warning("task %s on %s (%s): %s", task.name, ctx.device, ctx.trigger, error)


def _is_async(fn: Callable[..., Any]) -> bool:
    call = type(fn).__call__ if not inspect.isroutine(fn) else None
    return inspect.iscoroutinefunction(fn) or (
        call is not None and inspect.iscoroutinefunction(call)
    )
