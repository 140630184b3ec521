"""The agent runs ``[store] retention`` and ``max_mb`` on a schedule; every eviction is counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streamfeat.clock import ManualClock

from .conftest import BASE
from .test_agent_core import agent_for, events


def with_store(retention: str, max_mb: float) -> str:
    tasks = BASE.replace('batch_max_age = "50ms"', 'batch_max_age = "50ms"\noutbox_max_mb = 0.25')
    return tasks + f'\n[store]\nretention = "{retention}"\nmax_mb = {max_mb}\n'


async def test_records_older_than_retention_are_evicted_on_schedule(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    agent = agent_for(tmp_path, None, manual_clock, tasks=with_store("1s", 0), retention_every=0.02)
    await agent.start()
    for i, ev in enumerate(events(3000, seed=31)):
        await agent.submit(ev)
        if i % 300 == 299:
            await agent.drain()
            manual_clock.advance(0.6)
            await asyncio.sleep(0.05)  # the retention loop runs
    await agent.drain()
    counters = agent.store.counters()
    kept = agent.store.db.execute("SELECT count(*) FROM records").fetchone()[0]
    produced = sum(agent.stats.records.values())
    await agent.aclose()
    assert counters.get("evicted.age.records", 0) > 0
    assert kept + counters["evicted.age.records"] == produced  # evicted, never lost unseen
    assert agent.stats.evicted == counters["evicted.age.records"]


async def test_the_store_is_held_under_max_mb(tmp_path: Path, manual_clock: ManualClock) -> None:
    agent = agent_for(tmp_path, None, manual_clock, tasks=with_store("0s", 1), retention_every=0.02)
    await agent.start()
    for i, ev in enumerate(events(30000, seed=32)):
        await agent.submit(ev)
        if i % 1000 == 999:
            await agent.drain()
            await asyncio.sleep(0.03)
    await agent.drain()
    agent.apply_retention()
    counters = agent.store.counters()
    size = agent.store.size_bytes()
    await agent.aclose()
    assert counters.get("evicted.size.records", 0) > 0
    assert size <= 1024 * 1024
