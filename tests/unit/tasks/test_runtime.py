"""The task runtime: loading targets, dispatch order, isolation (raise, hang, slow), emit."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from streamfeat._event import Event
from streamfeat.engine import Engine
from streamfeat.errors import TaskError
from streamfeat.runtime import TaskRunner, engine_reader
from streamfeat.tasks import TaskConfig, TaskContext, TasksConfig
from streamfeat.tasks.examples import rerank_no_click, visit_summary
from streamfeat.triggers import TriggerStage

HERE = __name__
RELEASE = threading.Event()  # lets the hanging task's thread end when a test is done
CALLS: list[str] = []


def ok(ctx: TaskContext) -> None:
    CALLS.append(f"ok:{ctx.trigger}")
    ctx.emit({"n": len(ctx.events), "first": ctx.first, "last": ctx.last})


def boom(ctx: TaskContext) -> None:
    CALLS.append("boom")
    msg = "model file missing"
    raise ValueError(msg)


def hang(ctx: TaskContext) -> None:
    CALLS.append("hang")
    RELEASE.wait(5)
    ctx.emit({"late": True})


async def slow(ctx: TaskContext) -> None:
    CALLS.append("slow")
    await asyncio.sleep(0.05)
    ctx.emit({"slow": True})


async def async_boom(ctx: TaskContext) -> None:
    await asyncio.sleep(0)
    msg = "async failure"
    raise RuntimeError(msg)


def reads(ctx: TaskContext) -> None:
    ctx.emit({"features": ctx.features(), "windows": ctx.windows()})


NOT_CALLABLE = 42


def config(*tasks: tuple[str, tuple[str, ...], str, int]) -> TasksConfig:
    return TasksConfig(
        triggers={"t": "A", "u": "B"},
        tasks={
            name: TaskConfig(name, on, f"{HERE}:{fn}", timeout) for name, on, fn, timeout in tasks
        },
    )


def record(trigger: str = "t", device: str = "d", events: tuple[Event, ...] = ()) -> dict[str, Any]:
    return {"kind": "trigger", "trigger": trigger, "device": device, "first": 3, "last": 4,
            "first_ts": 10, "last_ts": 20, "_events": events}  # fmt: skip


@pytest.fixture(autouse=True)
def _reset() -> Any:
    CALLS.clear()
    RELEASE.clear()
    yield
    RELEASE.set()


@pytest.mark.parametrize(
    "target", ["no_such_module_xyz:f", f"{HERE}:missing", f"{HERE}:NOT_CALLABLE"]
)
def test_a_bad_target_refuses_the_runner_naming_the_task(target: str) -> None:
    cfg = TasksConfig(triggers={"t": "A"}, tasks={"rank": TaskConfig("rank", ("t",), target)})
    with pytest.raises(TaskError, match="task 'rank'"):
        TaskRunner(cfg, output=lambda r: None)


async def test_dispatch_order_is_tasks_file_order_per_trigger() -> None:
    out: list[dict[str, Any]] = []
    cfg = config(
        ("b", ("t",), "ok", 1000), ("a", ("u", "t"), "ok", 1000), ("c", ("u",), "ok", 1000)
    )
    runner = TaskRunner(cfg, output=out.append)
    assert runner.tasks_for("t") == ["b", "a"]
    assert runner.tasks_for("u") == ["a", "c"]
    assert runner.tasks_for("nope") == []
    assert runner.dispatch_all([record("t"), {"kind": "window"}, record("u")]) == 4
    await runner.drain()
    assert [r["task"] for r in out] == ["b", "a", "a", "c"]
    assert out[0] == {
        "kind": "task",
        "task": "b",
        "device": "d",
        "ts": 20,
        "values": {"n": 0, "first": 3, "last": 4},
    }


async def test_raise_hang_and_slow_are_isolated_and_counted() -> None:
    out: list[dict[str, Any]] = []
    cfg = config(("boom", ("t",), "boom", 1000), ("hang", ("t",), "hang", 100),
                 ("slow", ("t",), "slow", 1000), ("ok", ("t",), "ok", 1000),
                 ("aboom", ("t",), "async_boom", 1000))  # fmt: skip
    runner = TaskRunner(cfg, output=out.append)
    t0 = time.perf_counter()
    assert runner.dispatch(record()) == 5
    assert time.perf_counter() - t0 < 0.05  # dispatch only schedules
    ticks = 0

    async def engine_keeps_going() -> None:
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1

    await asyncio.gather(engine_keeps_going(), runner.drain())
    elapsed = time.perf_counter() - t0
    assert ticks == 10
    assert 0.1 <= elapsed < 1.0  # bounded by the hanging task's timeout, not by its sleep
    stats = runner.stats
    assert stats["boom"] == {
        "started": 1,
        "ok": 0,
        "errors": 1,
        "timeouts": 0,
        "skipped": 0,
        "late_emits": 0,
    }
    assert stats["hang"]["timeouts"] == 1
    assert stats["slow"]["ok"] == 1
    assert stats["ok"]["ok"] == 1
    assert stats["aboom"]["errors"] == 1
    kinds = {(f.task, f.kind) for f in runner.failures}
    assert kinds == {("boom", "error"), ("hang", "timeout"), ("aboom", "error")}
    assert any("model file missing" in f.error for f in runner.failures)
    assert sorted(r["task"] for r in out) == ["ok", "slow"]
    RELEASE.set()  # the hung thread ends now; what it emits is late and dropped
    for _ in range(100):
        if runner.stats["hang"]["late_emits"]:
            break
        await asyncio.sleep(0.01)
    assert runner.stats["hang"]["late_emits"] == 1
    assert sorted(r["task"] for r in out) == ["ok", "slow"]


async def test_a_task_that_keeps_hanging_is_skipped_not_piled_up() -> None:
    cfg = config(("hang", ("t",), "hang", 20), ("ok", ("t",), "ok", 1000))
    runner = TaskRunner(cfg, output=lambda r: None, max_hung=1)
    runner.dispatch(record())
    await runner.drain()
    assert runner.dispatch(record()) == 1  # only `ok`: `hang` still holds its thread
    await runner.drain()
    assert runner.stats["hang"] == {
        "started": 1,
        "ok": 0,
        "errors": 0,
        "timeouts": 1,
        "skipped": 1,
        "late_emits": 0,
    }
    assert runner.stats["ok"]["ok"] == 2
    RELEASE.set()
    for _ in range(100):
        if runner.stats["hang"]["late_emits"]:
            break
        await asyncio.sleep(0.01)
    assert runner.dispatch(record()) == 2  # its thread ended: it runs again


async def test_reader_gives_features_and_windows() -> None:
    out: list[dict[str, Any]] = []
    cfg = config(("reads", ("t",), "reads", 1000))
    views = {"d": {"features": {"ipv": {"dwell_ms": 5}}, "windows": {"w": [1]}}}
    runner = TaskRunner(cfg, output=out.append, reader=lambda dev: views.get(dev, {}))
    runner.dispatch(record())
    runner.dispatch(record(device="other"))
    await runner.drain()
    assert [r["values"] for r in out] == [views["d"], {"features": {}, "windows": {}}]


class _ViewStage:
    name = "features"

    def view(self, state: Any, now_ms: int) -> dict[str, Any]:
        return {"seen": state, "now": now_ms}


class _FakeEngine:
    stages = (_ViewStage(), object())

    def state_of(self, device: str, stage: str) -> Any:
        return 7 if device == "d" else None


def test_engine_reader_collects_views() -> None:
    read = engine_reader(_FakeEngine(), lambda: 99)
    assert read("d") == {"features": {"seen": 7, "now": 99}}
    assert read("gone") == {"features": {}}


async def test_example_tasks_on_real_firings() -> None:
    cfg = TasksConfig(
        triggers={"no_click": "exposure * exposure * exposure without click",
                  "ipv_done": "page_enter@item_detail * page_exit@item_detail within 30m"},
        tasks={"rerank": TaskConfig("rerank", ("no_click",), "streamfeat.tasks.examples:rerank_no_click"),
               "visit": TaskConfig("visit", ("ipv_done",), "streamfeat.tasks.examples:visit_summary")},
    )  # fmt: skip
    engine = Engine([TriggerStage(cfg)])
    evs = [
        Event(1, "exposure", "d", "home_feed", "i1"), Event(2, "exposure", "d", "home_feed", "i2"),
        Event(3, "exposure", "d", "home_feed", "i1"),
        Event(4, "page_enter", "d", "item_detail", "i9"), Event(5, "add_cart", "d", "item_detail", "i9"),
        Event(9, "page_exit", "d", "item_detail", "i9"),
    ]  # fmt: skip
    out: list[dict[str, Any]] = []
    runner = TaskRunner(cfg, output=out.append)
    for ev in evs:
        runner.dispatch_all(engine.process(ev))
    await runner.drain()
    by_task = {r["task"]: r["values"] for r in out}
    assert by_task["rerank"] == {
        "action": "rerank",
        "demote": ["i1", "i2"],
        "boost_categories": [],
        "exposures": 3,
    }
    assert by_task["visit"] == {"item": "i9", "dwell_ms": 5, "events": 3, "types": {"add_cart": 1}}
    assert callable(rerank_no_click)
    assert asyncio.iscoroutinefunction(visit_summary)


LATE = threading.Event()


def hang_until_late(ctx: TaskContext) -> None:
    LATE.wait(5)


def test_a_hung_task_returning_after_the_loop_closed_stays_quiet() -> None:
    errors: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        cfg = config(("late", ("t",), "hang_until_late", 20))

        async def run_once() -> TaskRunner:
            runner = TaskRunner(cfg, output=lambda r: None)
            runner.dispatch(record())
            await runner.drain()
            return runner

        runner = asyncio.run(run_once())  # the loop is closed; the task's thread still waits
        assert runner.stats["late"]["timeouts"] == 1
        threads = [t for t in threading.enumerate() if t.name == "streamfeat-task-late"]
        assert threads
        LATE.set()
        for t in threads:
            t.join(5)
        assert errors == []
    finally:
        threading.excepthook = previous
