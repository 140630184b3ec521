"""Tasks files pushed by the endpoint are applied live, versions recorded, nothing lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from streamfeat.clock import ManualClock
from streamfeat.encoders import decode_batch, index_schemas, schemas_for
from streamfeat.tasks import parse_tasks

from .conftest import BASE, MemoryEndpoint
from .test_agent_core import agent_for, all_count, events

NEW = (
    BASE.replace(
        'two_clicks = "click click"',
        'two_clicks = "click click"\nscroll_then_click = "scroll click"',
    )
    + """
[windows.scrolls_1m]
assign = "tumbling 1m"
filter = ["scroll"]
aggregate = { n = "count" }
"""
)


async def _wait(cond: Any, within: float = 5.0) -> None:
    end = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_pushed_tasks_file_changes_what_the_device_emits_with_no_event_lost(
    tmp_path: Path, endpoint: MemoryEndpoint, manual_clock: ManualClock
) -> None:
    queued: list[dict[str, Any]] = []
    agent = agent_for(
        tmp_path, endpoint, manual_clock, key=endpoint.device("phone"), on_upload=queued.extend
    )
    await agent.start()
    await asyncio.wait_for(agent.uploader.connected.wait(), 5)
    evs = events(400, seed=5)
    for ev in evs[:200]:
        await agent.submit(ev)
    assert endpoint.server.push_config("phone", 1, NEW.encode()) == 1  # sent on the open connection
    # events keep arriving while the switch happens: none may be lost or reordered
    for ev in evs[200:260]:
        await agent.submit(ev)
    await _wait(lambda: agent.version == 1)
    for ev in evs[260:]:
        await agent.submit(ev)
    history = agent.config_history()
    await agent.aclose(close_windows=True, drain_timeout=10)
    assert all_count(queued) == len(evs)
    assert agent.engine.event_count("phone") == len(evs)
    assert [(h["version"], h["source"], h["status"]) for h in history] == [
        (0, "local", "applied"),
        (1, "downlink", "applied"),
    ]
    assert history[1]["changes"]["added"] == {
        "triggers": ["scroll_then_click"],
        "windows": ["scrolls_1m"],
    }
    schemas = index_schemas(schemas_for(parse_tasks(BASE)), schemas_for(parse_tasks(NEW)))
    stored = [r for p in endpoint.payloads("phone") for r in decode_batch(p, schemas)]
    assert len(stored) == len(queued)
    new_windows = [r for r in stored if r.get("window") == "scrolls_1m"]
    new_triggers = [r for r in stored if r.get("trigger") == "scroll_then_click"]
    assert new_windows
    assert new_triggers
    switch_ts = evs[199]["ts"]
    assert all(r["end"] > switch_ts for r in new_windows)
    assert all(r["first"] >= 200 for r in new_triggers)
    assert sum(r["values"]["n"] for r in new_windows) <= sum(
        1 for e in evs[200:] if e["type"] == "scroll"
    )


async def test_pushed_file_is_applied_at_the_next_start_when_it_came_while_offline(
    tmp_path: Path, endpoint: MemoryEndpoint, manual_clock: ManualClock
) -> None:
    key = endpoint.device("phone")
    endpoint.server.push_config("phone", 3, NEW.encode())  # not connected: sent at connect
    agent = agent_for(tmp_path, endpoint, manual_clock, key=key)
    await agent.start()
    await _wait(lambda: agent.version == 3)
    assert "scrolls_1m" in agent.config.windows
    await agent.aclose()
    again = agent_for(tmp_path, None, manual_clock)  # offline restart keeps the applied version
    await again.start()
    assert again.version == 3
    assert "scrolls_1m" in again.config.windows
    await again.aclose()


async def test_a_bad_pushed_file_is_refused_and_recorded(
    tmp_path: Path, endpoint: MemoryEndpoint, manual_clock: ManualClock
) -> None:
    agent = agent_for(tmp_path, endpoint, manual_clock, key=endpoint.device("phone"))
    await agent.start()
    await asyncio.wait_for(agent.uploader.connected.wait(), 5)
    endpoint.server.push_config("phone", 2, b'[windows.bad]\nassign = "hopping 5m"\n')
    await _wait(lambda: agent.stats.configs_refused == 1)
    assert agent.version == 0
    history = agent.config_history()
    assert history[-1]["version"] == 2
    assert history[-1]["status"].startswith("refused")
    for ev in events(30):
        assert await agent.submit(ev)  # still running the old file
    await agent.aclose()
