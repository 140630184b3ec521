"""The agent's synchronous parts without an event loop: the record sink and the switcher."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streamfeat._event import event_from_obj
from streamfeat.agent._sink import MAX_PAYLOAD_RECORDS, RecordSink
from streamfeat.agent._support import AgentStats
from streamfeat.agent._switcher import ConfigSwitcher
from streamfeat.encoders import decode_batch, encoder_for, schemas_for
from streamfeat.engine._build import build_engine
from streamfeat.errors import StorageError
from streamfeat.io._store import Store
from streamfeat.tasks import parse_tasks

from .conftest import BASE

T0 = 1_767_225_600_000


class ListQueue:
    """A payload queue that keeps what it is given (or refuses, when told to)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.broken = False

    def enqueue(self, payload: bytes) -> None:
        if self.broken:
            msg = "outbox is full"
            raise StorageError(msg)
        self.payloads.append(payload)


_TYPES = ["page_enter", "exposure", "click", "click", "page_exit"]


def clicks(n: int) -> list[dict[str, Any]]:
    return [
        {"device": "phone", "ts": T0 + i * 1000, "type": _TYPES[i % 5], "page": "item_detail",
         "item": str(i // 5 % 3)}
        for i in range(n)
    ]  # fmt: skip


def test_sink_stores_encodes_and_enqueues_without_a_loop(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # nothing below needs one
    config = parse_tasks(BASE, source="<test>")
    schemas = schemas_for(config)
    store = Store(tmp_path / "s.db")
    queue, stats, sent = ListQueue(), AgentStats(), []
    sink = RecordSink(store, queue, encoder_for(config.upload.encoding, schemas),
                      config.upload.records, stats, on_upload=sent.append)  # fmt: skip
    engine = build_engine(config)
    records = [r for ev in clicks(500) for r in engine.process(event_from_obj(ev))]
    records += engine.close()
    sink.handle(records)

    assert sum(1 for _ in store.records()) == len(records)
    uploaded = [r for r in records if r["kind"] in config.upload.records]
    decoded = [r for p in queue.payloads for r in decode_batch(p, schemas)]
    assert len(decoded) == len(uploaded) > MAX_PAYLOAD_RECORDS  # more than one payload
    assert len(queue.payloads) == -(-len(uploaded) // MAX_PAYLOAD_RECORDS)
    assert sum(len(batch) for batch in sent) == len(uploaded)
    assert stats.payloads == len(queue.payloads)
    assert sum(stats.records.values()) == len(records)
    features = {r["feature"] for r in records if r["kind"] == "feature"}
    assert features == {"ipv"}
    assert {name for name, _, _ in sink.latest_of("phone")} == features

    queue.broken = True  # a failing outbox is counted; the records are still stored
    sink.handle(records[:5])
    assert stats.queue_errors == sum(1 for r in records[:5] if r["kind"] in config.upload.records)
    assert sum(1 for _ in store.records()) == len(records) + 5
    store.close()


def test_switcher_refuses_a_bad_file_and_switches_to_a_good_one(tmp_path: Path) -> None:
    config = parse_tasks(BASE, source="<test>")
    store = Store(tmp_path / "s.db")
    stats = AgentStats()
    switcher = ConfigSwitcher(store, config, stats, now_ms=lambda: T0, admission_seed=1)
    engine = switcher.restore()
    for ev in clicks(10):
        engine.process(event_from_obj(ev))

    assert switcher.parse(1, "[windows.x]\nassign = 'nonsense'\n", "downlink") is None
    assert stats.configs_refused == 1
    assert not switcher.wants(0, "downlink")
    assert switcher.wants(1, "downlink")

    changed = BASE.replace('[windows.clicks_1m]\nassign = "tumbling 1m"\n'
                           'filter = ["click"]\naggregate = { n = "count", items = "distinct item" }\n',
                           "")  # fmt: skip
    new = switcher.parse(1, changed, "downlink")
    assert new is not None
    new_engine, closed, report, old_encoder = switcher.switch(engine, new, 1)
    switcher.applied(1, "downlink", report)
    assert report.removed == {"windows": ["clicks_1m"]}
    assert closed
    assert all(r["final"] for r in closed if r["kind"] == "window")
    assert old_encoder is not switcher.encoder
    assert (switcher.version, stats.configs_applied, stats.config_version) == (1, 1, 1)
    assert new_engine.event_count("phone") == 10  # the event counter went on

    switcher.snapshot(new_engine, 10)
    history = [(row["version"], row["status"][:7]) for row in switcher.versions.rows()]
    assert history == [(0, "applied"), (1, "refused"), (1, "applied")]
    store.close()
