"""The fleet simulator end to end: a real endpoint process, fleet processes, loopback, audit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from streamfeat.encoders import decode_batch, index_schemas, schemas_for
from streamfeat.gen import DEFAULT_START_TS
from streamfeat.sim import SimOptions, simulate
from streamfeat.tasks import parse_tasks
from streamfeat.upload._outbox import split_items

TASKS = """
[engine]
lateness = "2s"

[triggers]
no_click = "exposure * exposure * exposure without click"
bounce = "page_enter@item_detail ? page_exit@item_detail within 3s"

[windows.all_1m]
assign = "tumbling 1m"
aggregate = { n = "count" }

[windows.clicks_1m]
assign = "tumbling 1m"
filter = ["click"]
aggregate = { n = "count", items = "distinct item" }

[features.ipv]
kind = "ipv"

[upload]
records = ["feature", "window", "trigger", "late"]
batch_max_age = "200ms"
"""

PUSHED = (
    TASKS.replace('bounce = "', 'carted = "add_cart"\nbounce = "')
    + """
[windows.scrolls_1m]
assign = "tumbling 1m"
filter = ["scroll"]
aggregate = { n = "count" }
"""
)


def counted(stored: list[dict]) -> int:
    """Events the all_1m window took in, plus the ones it reported late (clock jumps back)."""
    n = sum(r["values"]["n"] for r in stored if r["kind"] == "window" and r["window"] == "all_1m")
    return n + sum(1 for r in stored if r["kind"] == "late" and r["window"] == "all_1m")


def endpoint_records(db: Path, texts: list[str]) -> list[dict]:
    schemas = index_schemas(*(schemas_for(parse_tasks(t)) for t in texts))
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT payload FROM batches").fetchall()
    finally:
        conn.close()
    return [
        r for (p,) in rows for item in split_items(bytes(p)) for r in decode_batch(item, schemas)
    ]


def test_small_fleet_every_queued_record_is_stored_exactly_once(tmp_path: Path) -> None:
    report = simulate(SimOptions(devices=10, minutes=1.5, speed=30, processes=2, seed=3, tasks_text=TASKS,
                                 workdir=tmp_path))  # fmt: skip
    assert report.processes == 2
    assert report.events > 50
    assert report.records["trigger"] > 0
    assert report.queued > 0
    assert (report.lost, report.doubled, report.undecodable, report.acked_not_stored) == (
        0,
        0,
        0,
        0,
    )
    assert report.stored == report.queued
    assert report.batches_stored > 0
    assert report.latency_ms["n"] > 0
    assert report.raw_bytes > report.payload_bytes > 0
    # independent of the audit: every event is in exactly one all_1m window, or reported late
    stored = endpoint_records(tmp_path / "endpoint.sqlite", [TASKS])
    assert counted(stored) == report.events


def test_fleet_under_chaos_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    # a push during the faults too: it must reach every device without touching stored batches
    report = simulate(SimOptions(devices=12, minutes=1.5, speed=10, processes=2, seed=4, chaos=True,
                                 tasks_text=TASKS, reconfigure=((0.7, PUSHED),), workdir=tmp_path,
                                 kill_agents=True))  # fmt: skip
    assert report.endpoint_restarts >= 1
    assert report.agent_kills >= 1
    assert report.versions == {"v1": 12}
    assert report.connections_cut + report.reconnects >= 1
    assert (report.lost, report.doubled, report.undecodable, report.acked_not_stored) == (
        0,
        0,
        0,
        0,
    )
    assert report.stored == report.queued > 0
    stored = endpoint_records(tmp_path / "endpoint.sqlite", [TASKS, PUSHED])
    assert counted(stored) == report.events


def test_fleet_with_agents_killed_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    # fleet processes (every agent in one) are killed with SIGKILL and restarted on their stores
    report = simulate(SimOptions(devices=12, minutes=1.5, speed=10, processes=2, seed=5, chaos=True,
                                 tasks_text=TASKS, workdir=tmp_path))  # fmt: skip
    assert report.agent_kills >= 1
    assert (report.lost, report.doubled, report.undecodable, report.acked_not_stored) == (
        0,
        0,
        0,
        0,
    )
    assert report.stored == report.queued > 0
    stored = endpoint_records(tmp_path / "endpoint.sqlite", [TASKS])
    assert counted(stored) == report.events  # every accepted event counted once in the windows


def test_tasks_file_pushed_from_the_endpoint_changes_what_devices_emit(tmp_path: Path) -> None:
    push_minute = 0.8
    report = simulate(SimOptions(devices=8, minutes=2, speed=24, processes=2, seed=5, tasks_text=TASKS,
                                 reconfigure=((push_minute, PUSHED),), workdir=tmp_path))  # fmt: skip
    assert report.configs_pushed == 1
    assert report.versions == {"v1": 8}
    assert (report.lost, report.doubled, report.undecodable) == (0, 0, 0)
    stored = endpoint_records(tmp_path / "endpoint.sqlite", [TASKS, PUSHED])
    # no event lost across the switch: the kept window still counts every event once
    assert counted(stored) == report.events
    scrolls = [r for r in stored if r["kind"] == "window" and r["window"] == "scrolls_1m"]
    assert scrolls, "the pushed window must be emitted"
    assert min(r["end"] for r in scrolls) > DEFAULT_START_TS + push_minute * 60_000
    carted = [r for r in stored if r.get("trigger") == "carted"]
    assert all(r["first_ts"] >= DEFAULT_START_TS + push_minute * 60_000 for r in carted)


@pytest.mark.slow
def test_soak_hundred_devices_under_chaos(tmp_path: Path) -> None:
    report = simulate(
        SimOptions(devices=150, minutes=8, speed=8, chaos=True, seed=6, workdir=tmp_path)
    )
    assert report.endpoint_restarts >= 2
    assert report.agent_kills >= 2
    assert (report.lost, report.doubled, report.undecodable, report.acked_not_stored) == (
        0,
        0,
        0,
        0,
    )
    assert report.stored == report.queued > 0
