"""The agent: intake, quarantine, store, uploads, snapshots and restarts, reading features."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson

from streamfeat.agent import Agent
from streamfeat.clock import ManualClock
from streamfeat.encoders import decode_batch, schemas_for
from streamfeat.tasks import parse_tasks

from .conftest import BASE, MemoryEndpoint

T0 = 1_767_225_600_000


def events(n: int, seed: int = 1, device: str = "phone") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out, ts = [], T0
    for i in range(n):
        ts += rng.randrange(100, 15_000)
        kind = rng.choice(["click", "exposure", "scroll", "page_enter", "page_exit"])
        ev: dict[str, Any] = {
            "device": device,
            "ts": ts,
            "type": kind,
            "page": "item_detail",
            "item": str(i % 3),
        }
        out.append(ev)
    return out


def all_count(records: list[dict[str, Any]]) -> int:
    return sum(
        r["values"]["n"] for r in records if r["kind"] == "window" and r["window"] == "all_1m"
    )


def agent_for(
    tmp_path: Path, ep: MemoryEndpoint | None, clock: ManualClock, tasks: str = BASE, **kw: Any
) -> Agent:
    if ep is None:
        return Agent(
            tasks=tasks,
            store_path=tmp_path / "dev.sqlite",
            clock=clock,
            device="phone",
            tick=0,
            **kw,
        )
    key = kw.pop("key")
    return Agent(
        tasks=tasks,
        store_path=tmp_path / "dev.sqlite",
        endpoint_url="ws://memory/v1/tunnel",
        endpoint_public_key=ep.key.public,
        device_key=key,
        clock=clock,
        device="phone",
        tick=0,
        connect=ep.connect,
        **kw,
    )


async def test_uploads_reach_the_endpoint_exactly_and_bad_events_are_quarantined(
    tmp_path: Path, endpoint: MemoryEndpoint, manual_clock: ManualClock
) -> None:
    queued: list[dict[str, Any]] = []
    agent = agent_for(
        tmp_path, endpoint, manual_clock, key=endpoint.device("phone"), on_upload=queued.extend
    )
    await agent.start()
    evs = events(200)
    for ev in evs:
        assert await agent.submit(ev)
    assert not await agent.submit({"ts": "soon", "type": "click"})
    assert not await agent.submit_line(b'{"ts": 1, "type": "click", "colour": "red"}\n', position=7)
    assert not await agent.submit_line(b"{not json\n", position=8)
    # an unhashable type (once a TypeError out of submit) is quarantined like any bad type
    assert not await agent.submit({"ts": 1, "type": ["click"]})
    assert not await agent.submit_line(b'{"ts": 1, "type": {"a": 1}}\n', position=10)
    await agent.drain()
    assert "ipv" in agent.features()
    assert set(agent.windows()) <= {"all_1m", "clicks_1m"}
    await agent.aclose(close_windows=True, drain_timeout=10)
    assert agent.outbox_waiting == 0
    assert agent.stats.quarantined == 5
    assert all_count(queued) == len(evs)
    schemas = schemas_for(parse_tasks(BASE))
    stored = [r for p in endpoint.payloads("phone") for r in decode_batch(p, schemas)]
    key = lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    assert sorted(map(key, stored)) == sorted(map(key, queued))
    assert {r["kind"] for r in stored} <= {"feature", "window", "trigger"}
    # the store kept every record and the quarantined inputs with their reasons
    from streamfeat.io._store import Store

    store = Store(tmp_path / "dev.sqlite")
    quarantine = list(store.quarantine())
    assert [q.position for q in quarantine] == [0, 7, 8, 0, 10]
    assert "`ts`" in quarantine[0].reason
    assert b"colour" in quarantine[1].raw
    assert sum(1 for _ in store.records()) == sum(agent.stats.records.values())
    store.close()


async def test_restart_resumes_from_the_snapshot_without_losing_or_doubling(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    evs = events(300, seed=2)
    got: list[dict[str, Any]] = []
    first = agent_for(tmp_path, None, manual_clock, on_upload=got.extend)
    await first.start()
    for ev in evs[:170]:
        await first.submit(ev)
    await first.aclose()  # windows stay open in the snapshot
    second = agent_for(tmp_path, None, manual_clock, on_upload=got.extend)
    await second.start()
    assert second.engine.event_count("phone") == 170
    for ev in evs[170:]:
        await second.submit(ev)
    await second.aclose(close_windows=True)
    assert all_count(got) == len(evs)
    assert second.outbox_waiting > 0  # offline: the payloads wait in the durable outbox


async def test_periodic_snapshot_is_written_while_running(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    agent = agent_for(tmp_path, None, manual_clock, snapshot_every=0.05)
    await agent.start()
    for ev in events(20):
        await agent.submit(ev)
    await agent.drain()
    await asyncio.sleep(0.2)
    assert agent.stats.snapshots >= 1
    snap = agent.store.load_checkpoint("agent")
    assert snap is not None
    assert snap.events == 20
    await agent.aclose()


async def test_a_changed_local_tasks_file_is_switched_to_at_start(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    evs = events(200, seed=4)
    got: list[dict[str, Any]] = []
    agent = agent_for(tmp_path, None, manual_clock, on_upload=got.extend)
    await agent.start()
    for ev in evs[:100]:
        await agent.submit(ev)
    await agent.aclose()
    changed = BASE.replace('[features.ipv]\nkind = "ipv"\n', "")
    agent = agent_for(tmp_path, None, manual_clock, tasks=changed, on_upload=got.extend)
    await agent.start()
    assert agent.config.text == changed
    assert not agent.config.features
    for ev in evs[100:]:
        await agent.submit(ev)
    history = agent.config_history()
    await agent.aclose(close_windows=True)
    assert all_count(got) == len(evs)
    assert [(h["version"], h["source"], h["status"]) for h in history] == [
        (0, "local", "applied"),
        (0, "local", "applied"),
    ]
    assert history[-1]["changes"]["removed"] == {"features": ["ipv"]}


async def test_submit_needs_a_started_agent(tmp_path: Path, manual_clock: ManualClock) -> None:
    import pytest

    agent = agent_for(tmp_path, None, manual_clock)
    with pytest.raises(RuntimeError):
        await agent.submit(events(1)[0])
    await agent.start()
    assert await agent.submit(events(1)[0])
    await agent.aclose()
    with pytest.raises(RuntimeError):
        await agent.submit(events(1)[0])


async def test_a_failing_store_stops_intake_and_a_restart_loses_nothing(
    tmp_path: Path, manual_clock: ManualClock, monkeypatch: Any
) -> None:
    import pytest

    from streamfeat.errors import StorageError

    evs = events(200, seed=6)
    clean: list[dict[str, Any]] = []
    whole = agent_for(tmp_path / "clean", None, manual_clock, on_upload=clean.extend)
    await whole.start()
    for ev in evs:
        await whole.submit(ev)
    await whole.aclose(close_windows=True)

    queued: list[dict[str, Any]] = []
    agent = agent_for(tmp_path, None, manual_clock, on_upload=queued.extend)
    await agent.start()

    def broken(*_: Any, **__: Any) -> None:
        msg = "disk full"
        raise StorageError(msg)

    for ev in evs[:100]:
        await agent.submit(ev)
    await agent.drain()
    committed = len(queued)
    monkeypatch.setattr(agent.store, "add_records", broken)
    accepted = 100
    while agent.failure is None:
        await agent.submit(evs[accepted])
        accepted += 1
        await agent.drain()
    with pytest.raises(StorageError, match="intake stopped"):
        await agent.submit(evs[accepted])
    assert "\n" not in str(agent.failure)
    del queued[committed:]  # sent inside the commit that rolled back: not in the store
    await agent.aclose()
    monkeypatch.undo()
    again = agent_for(tmp_path, None, manual_clock, on_upload=queued.extend)
    await again.start()
    for ev in evs[accepted:]:
        await again.submit(ev)
    await again.aclose(close_windows=True)
    key_of = lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    assert sorted(map(key_of, queued)) == sorted(map(key_of, clean))


async def test_admission_filter_relabels_ids_and_survives_a_restart(
    tmp_path: Path, endpoint: MemoryEndpoint, manual_clock: ManualClock
) -> None:
    from streamfeat.encoders import BUCKET_PREFIX

    tasks = BASE.replace('encoding = "compact"', 'encoding = "compact"\nadmission = "bloom 2"')
    key = endpoint.device("phone")
    queued: list[dict[str, Any]] = []
    agent = agent_for(
        tmp_path, endpoint, manual_clock, tasks=tasks, key=key, on_upload=queued.extend
    )
    await agent.start()
    assert agent.admission is not None
    for ev in events(300, seed=8):
        await agent.submit(ev)
    await agent.aclose(close_windows=True, drain_timeout=10)
    items = [r["values"]["item"] for r in queued if r["kind"] == "feature"]
    assert any(str(i).startswith(BUCKET_PREFIX) for i in items)  # first sightings go out hashed
    schemas = schemas_for(parse_tasks(tasks))
    stored = [r for p in endpoint.payloads("phone") for r in decode_batch(p, schemas)]
    key_of = lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    assert sorted(map(key_of, stored)) == sorted(map(key_of, queued))  # the ledger is what was sent
    again = agent_for(tmp_path, None, manual_clock, tasks=tasks)
    await again.start()
    assert again.store.get_state("admission") is not None
    assert again.admission.dump() == again.store.get_state("admission")  # restored, not new
    await again.aclose()
