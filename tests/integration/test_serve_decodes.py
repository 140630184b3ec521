"""`streamfeat serve` decodes uploaded batches with the tasks files' schemas and stores records."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson

from streamfeat.cli import main
from streamfeat.data import default_tasks_text
from streamfeat.encoders import encoder_for, schemas_for
from streamfeat.tasks import parse_tasks
from streamfeat.upload._client import Uploader, load_device_file
from streamfeat.upload._outbox import Outbox, OutboxConfig
from tests.integration.tunnel_procs import Endpoint

IPV = {
    "kind": "feature",
    "feature": "ipv",
    "device": "phone",
    "ts": 1_767_225_660_000,
    "values": {
        "item": "42",
        "enter_ts": 1_767_225_600_000,
        "dwell_ms": 60_000,
        "truncated": False,
        "add_cart": 1,
        "purchase": 0,
        "favorite": 0,
        "comment": 0,
        "select_sku": 2,
        "ask": 0,
        "service": 0,
        "detail": 0,
        "shop": 0,
        "recommend": 0,
        "share": 0,
        "scroll": 3,
    },
}


async def _upload(ep: Endpoint, device_file: Path, store: Path, payload: bytes) -> None:
    key, cfg = load_device_file(device_file, url=ep.url, backoff_base=0.05, backoff_cap=0.2)
    up = Uploader(Outbox(store, OutboxConfig(batch_max_age=0.01)), key, cfg)
    task = asyncio.create_task(up.run())
    up.enqueue(payload)
    assert await up.wait_drained(10)
    await up.aclose()
    await task


def test_serve_stores_decoded_records_of_the_default_tasks_file(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    device_file = tmp_path / "phone.device.json"
    assert (
        main(["device", "add", "phone", "--init", "--db", str(db), "--out", str(device_file)]) == 0
    )
    encoder = encoder_for("compact", schemas_for(parse_tasks(default_tasks_text())))
    payload = encoder.encode_batch([IPV, {**IPV, "ts": IPV["ts"] + 1}])
    ep = Endpoint(db)
    try:
        asyncio.run(_upload(ep, device_file, tmp_path / "phone.sqlite", payload))
    finally:
        assert ep.stop() == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT record FROM batch_records ORDER BY idx").fetchall()
    records = [orjson.loads(r[0]) for r in rows]
    assert records == [IPV, {**IPV, "ts": IPV["ts"] + 1}]
