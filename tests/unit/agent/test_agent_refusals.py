"""A pushed tasks file that cannot run is refused whole; a switch failing halfway rolls back."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from streamfeat.clock import ManualClock
from streamfeat.encoders import decode_batch, schemas_for
from streamfeat.tasks import parse_tasks

from .conftest import BASE, MemoryEndpoint
from .test_agent_core import agent_for, all_count, events

BROKEN = (
    BASE
    + """
[tasks.missing]
on = ["two_clicks"]
run = "missing.module:f"
"""
)


async def _wait(cond: Any, within: float = 5.0) -> None:
    end = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_pushed_file_with_missing_task_code_is_refused_and_the_old_one_runs_on(
    tmp_path: Path,
    endpoint: MemoryEndpoint,
    manual_clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    queued: list[dict[str, Any]] = []
    agent = agent_for(
        tmp_path, endpoint, manual_clock, key=endpoint.device("phone"), on_upload=queued.extend
    )
    await agent.start()
    await asyncio.wait_for(agent.uploader.connected.wait(), 5)
    evs = events(600, seed=21)
    for ev in evs[:200]:
        await agent.submit(ev)
    assert endpoint.server.push_config("phone", 1, BROKEN.encode()) == 1
    await _wait(lambda: len(agent.config_history()) == 2)
    for ev in evs[200:]:
        await agent.submit(ev)
    await agent.drain()
    history = agent.config_history()
    counters = agent.store.counters()
    await agent.aclose(close_windows=True, drain_timeout=10)
    assert agent.version == 0
    assert all_count(queued) == len(evs)  # every event processed by the old file
    assert history[1]["version"] == 1
    assert history[1]["status"].startswith("refused: ")
    assert "missing.module" in history[1]["status"]
    assert counters.get("agent.configs_refused") == 1
    assert agent.stats.configs_refused == 1
    assert "never retrieved" not in caplog.text
    # reported to the endpoint through the normal upload path
    stored = [
        r
        for p in endpoint.payloads("phone")
        for r in decode_batch(p, schemas_for(parse_tasks(BASE)))
    ]
    reports = [r for r in stored if r["kind"] == "config"]
    assert [(r["version"], r["status"]) for r in reports] == [(1, "refused")]
    assert "missing.module" in reports[0]["reason"]
    # a restart on the same store runs the old file (nothing of the refused one stays)
    again = agent_for(tmp_path, None, manual_clock)
    await again.start()
    assert again.version == 0
    for ev in events(50, seed=22):
        assert await again.submit(ev)
    await again.aclose()


async def test_a_switch_failing_halfway_rolls_back_to_the_old_file(
    tmp_path: Path, manual_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[dict[str, Any]] = []
    agent = agent_for(tmp_path, None, manual_clock, on_upload=queued.extend)
    await agent.start()
    evs = events(400, seed=23)
    for ev in evs[:200]:
        await agent.submit(ev)
    real = agent._task_runner

    def failing(config: Any) -> Any:
        if "scrolls_1m" in config.text:
            msg = "the new file's task runner broke"
            raise RuntimeError(msg)
        return real(config)

    monkeypatch.setattr(agent, "_task_runner", failing)
    new = BASE + '\n[windows.scrolls_1m]\nassign = "tumbling 1m"\naggregate = { n = "count" }\n'
    assert await agent.apply_config(1, new, source="api") is None
    assert agent.version == 0
    assert agent.config.text == BASE
    for ev in evs[200:]:
        await agent.submit(ev)
    history = agent.config_history()
    await agent.aclose(close_windows=True)
    assert all_count(queued) == len(evs)
    assert history[-1]["status"].startswith("refused: switch failed")
    assert not any(r.get("window") == "scrolls_1m" for r in queued)
