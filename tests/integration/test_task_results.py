"""Task results: replay --run-tasks equals the agent's task records; results reach the app."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from streamfeat.agent import Agent
from streamfeat.cli import main
from streamfeat.clock import ManualClock
from streamfeat.data import default_tasks_text
from streamfeat.gen import generate_events


def _log(path: Path, devices: int = 6, minutes: int = 6, seed: int = 3) -> list[dict[str, Any]]:
    events = list(generate_events(devices=devices, minutes=minutes, seed=seed))
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return events


def _key(rec: dict[str, Any]) -> str:
    return json.dumps(rec, sort_keys=True)


async def _agent_task_records(
    tasks: Path, store: Path, events: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Agent]:
    got: list[dict[str, Any]] = []
    agent = Agent(tasks=tasks, store_path=store, clock=ManualClock(0.0), tick=0,
                  snapshot_every=0, on_result=got.append)  # fmt: skip
    await agent.start()
    streamed: list[dict[str, Any]] = []

    async def read() -> None:
        async for rec in agent.results():
            streamed.append(rec)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)
    for ev in events:  # one event at a time: a task sees the engine right after its firing
        await agent.submit(ev)
        await agent.drain()
    await agent.aclose(close_windows=True)
    await asyncio.wait_for(reader, 10)
    return got, streamed, agent


def test_replay_run_tasks_equals_the_agents_task_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(default_tasks_text(), encoding="utf-8")
    events = _log(tmp_path / "events.jsonl")
    out = tmp_path / "out.jsonl"
    assert main(["replay", str(tmp_path / "events.jsonl"), "--tasks", str(tasks),
                 "--out", str(out), "--run-tasks", "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    replayed = [json.loads(line) for line in out.read_text().splitlines()]
    replay_tasks = [r for r in replayed if r["kind"] == "task"]
    assert summary["tasks"]["rerank"]["ok"] > 0
    assert summary["tasks"]["visit_summary"]["ok"] > 0
    assert {r["task"] for r in replay_tasks} == {"rerank", "visit_summary"}
    # every task record follows its trigger, in event order
    last_trigger: dict[str, int] = {}
    for r in replayed:
        if r["kind"] == "trigger":
            last_trigger[r["device"]] = r["last_ts"]
        elif r["kind"] == "task":
            assert r["ts"] == last_trigger[r["device"]]

    got, streamed, _ = asyncio.run(_agent_task_records(tasks, tmp_path / "dev.sqlite", events))
    assert sorted(map(_key, got)) == sorted(map(_key, replay_tasks))
    assert got == streamed  # the callback and the iterator see the same records, in order
    # the example re-rank boosts categories on the generated log (integer categories)
    reranks = [r["values"] for r in replay_tasks if r["task"] == "rerank"]
    assert any(v["boost_categories"] for v in reranks)


def test_replay_without_run_tasks_writes_no_task_records(tmp_path: Path) -> None:
    _log(tmp_path / "events.jsonl", devices=2, minutes=2)
    out = tmp_path / "out.jsonl"
    assert main(["replay", str(tmp_path / "events.jsonl"), "--out", str(out), "--json"]) == 0
    assert '"kind":"task"' not in out.read_text()


def test_replay_run_tasks_refuses_missing_task_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _log(tmp_path / "events.jsonl", devices=1, minutes=1)
    tasks = tmp_path / "t.toml"
    tasks.write_text('[triggers]\nc = "click"\n[tasks.x]\non = ["c"]\nrun = "sf_gone:f"\n')
    rc = main(["replay", str(tmp_path / "events.jsonl"), "--tasks", str(tasks),
               "--out", str(tmp_path / "o.jsonl"), "--run-tasks"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{tasks}: `tasks.x.run`: task 'x': can't import 'sf_gone'" in err


SLOW_TASKS = """
[triggers]
c = "click"
[tasks.slow]
on = ["c"]
run = "sf_slow_task:run"
timeout = "200ms"
"""


def test_replay_tasks_run_in_event_order_under_their_timeouts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sf_slow_task.py").write_text(
        "import time\n"
        "def run(ctx):\n"
        "    if ctx.events[-1].item == 'hang':\n"
        "        time.sleep(1.0)\n"
        "    ctx.emit({'item': ctx.events[-1].item})\n"
        "    if ctx.events[-1].item == 'boom':\n"
        "        raise ValueError('boom')\n",
        encoding="utf-8",
    )
    (tmp_path / "t.toml").write_text(SLOW_TASKS, encoding="utf-8")
    items = ["a", "hang", "b", "boom", "c"]
    (tmp_path / "e.jsonl").write_text(
        "".join(
            json.dumps({"ts": 1000 + i, "type": "click", "item": it}) + "\n"
            for i, it in enumerate(items)
        )
    )
    out = tmp_path / "o.jsonl"
    assert main(["replay", str(tmp_path / "e.jsonl"), "--tasks", str(tmp_path / "t.toml"),
                 "--out", str(out), "--run-tasks", "--json"]) == 0  # fmt: skip
    stats = json.loads(capsys.readouterr().out)["tasks"]["slow"]
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    # the hanging run is cut at its timeout and its record dropped; the failing run's record
    # emitted before it raised is kept, counted as an error
    assert [r["values"]["item"] for r in recs if r["kind"] == "task"] == ["a", "b", "boom", "c"]
    assert stats["timeouts"] == 1
    assert stats["errors"] == 1
    assert stats["ok"] == 3


def test_results_reach_the_app_in_order_and_the_latest_is_readable(tmp_path: Path) -> None:
    (tmp_path / "sf_count_task.py").write_text(
        "import asyncio\n"
        "async def run(ctx):\n"
        "    ctx.emit({'item': ctx.events[-1].item, 'step': 1})\n"
        "    await asyncio.sleep(0)\n"
        "    ctx.emit({'item': ctx.events[-1].item, 'step': 2})\n",
        encoding="utf-8",
    )
    (tmp_path / "t.toml").write_text(
        '[triggers]\nc = "click"\n[tasks.count]\non = ["c"]\nrun = "sf_count_task:run"\n'
    )

    async def go() -> tuple[list[Any], list[Any], Any, Any]:
        calls: list[Any] = []
        agent = Agent(tasks=tmp_path / "t.toml", store_path=tmp_path / "s.sqlite",
                      clock=ManualClock(0.0), tick=0, snapshot_every=0,
                      on_result=lambda r: calls.append((r["values"]["item"], r["values"]["step"])))  # fmt: skip
        await agent.start()
        it = agent.results()
        before = agent.result("count")
        for i in range(20):
            await agent.submit({"ts": 1000 + i, "type": "click", "item": str(i)})
            await agent.drain()
        latest = agent.result("count")
        await agent.aclose()
        seen = [(r["values"]["item"], r["values"]["step"]) async for r in it]
        return calls, seen, before, latest

    calls, seen, before, latest = asyncio.run(go())
    expected = [(str(i), s) for i in range(20) for s in (1, 2)]
    assert calls == expected
    assert seen == expected
    assert before is None
    assert latest == {"item": "19", "step": 2}


def test_agent_finds_task_code_next_to_its_tasks_file_on_start_restart_and_switch(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "sf_agent_next.py").write_text(
        "def first(ctx):\n    ctx.emit({'v': 1})\ndef second(ctx):\n    ctx.emit({'v': 2})\n",
        encoding="utf-8",
    )
    text = '[triggers]\nc = "click"\n[tasks.t]\non = ["c"]\nrun = "sf_agent_next:{fn}"\n'
    (app / "tasks.toml").write_text(text.format(fn="first"), encoding="utf-8")
    store = tmp_path / "dev.sqlite"

    async def run(events: range, push: str | None = None) -> list[Any]:
        sys.modules.pop("sf_agent_next", None)  # each run as a new process would: not imported
        got: list[Any] = []
        agent = Agent(tasks=app / "tasks.toml", store_path=store, clock=ManualClock(0.0),
                      tick=0, snapshot_every=0, on_result=lambda r: got.append(r["values"]))  # fmt: skip
        await agent.start()
        if push is not None:  # a pushed file has no folder: the agent's own file's is used
            refused = await agent.apply_config(2, text.format(fn="sf_missing_fn"))
            assert refused is None
            assert await agent.apply_config(3, push) is not None
        for i in events:
            await agent.submit({"ts": 1000 + i, "type": "click"})
        await agent.drain()
        history = agent.config_history()
        await agent.aclose()
        if push is not None:
            reasons = [row for row in history if row["version"] == 2]
            assert reasons
            assert "tasks.t.run" in str(reasons[-1])
        return got

    assert asyncio.run(run(range(2))) == [{"v": 1}, {"v": 1}]
    # restart on the same store: the stored tasks file's code is found in the same folder
    assert asyncio.run(run(range(2, 3))) == [{"v": 1}]
    assert asyncio.run(run(range(3, 4), push=text.format(fn="second"))) == [{"v": 2}]


TAOBAO_TASKS = """
[triggers]
cart_after_views = "page_enter@item_detail * add_cart within 1h"

[windows.category_views]
assign = "tumbling 30m"
key = "args.category"
filter = ["page_enter@item_detail"]
aggregate = { n = "count" }

[tasks.rerank]
on = ["cart_after_views"]
run = "streamfeat.tasks.examples:rerank_no_click"
"""


def test_example_rerank_boosts_integer_categories_of_the_converted_taobao_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the converted Taobao slice of the golden cases: categories are integers
    events = Path(__file__).parents[2] / "replay" / "cases" / "taobao" / "events.jsonl"
    first = json.loads(events.read_text().splitlines()[0])
    assert isinstance(first["args"]["category"], int)
    (tmp_path / "t.toml").write_text(TAOBAO_TASKS, encoding="utf-8")
    out = tmp_path / "o.jsonl"
    assert main(["replay", str(events), "--tasks", str(tmp_path / "t.toml"), "--out", str(out),
                 "--run-tasks", "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    reranks = [json.loads(x)["values"] for x in out.read_text().splitlines() if '"task"' in x]
    assert reranks
    assert all(v["boost_categories"] for v in reranks)
    assert all(isinstance(c, str) for v in reranks for c in v["boost_categories"])
