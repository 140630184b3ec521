"""Fixtures of the encoders tests: a tasks file with every record type, and records of it."""

from __future__ import annotations

from typing import Any

import pytest

from streamfeat.encoders import SchemaSet, schemas_for
from streamfeat.tasks import TasksConfig, parse_tasks

TASKS_TOML = """
[triggers]
ipv_done = "page_enter@item_detail * page_exit@item_detail within 30m"
no_click = "exposure * exposure * exposure * exposure * exposure without click"

[windows.clicks_10m]
assign = "tumbling 10m"
filter = ["click"]
aggregate = { n = "count", items = "distinct item", top = "top 3 item", dwell = "sum args.dur_ms" }

[windows.by_item]
assign = "sliding 1h every 10m"
key = "item"
aggregate = { n = "count", mean_pos = "mean args.pos", first = "first ts", last = "last item", lo = "min args.pos", hi = "max page", cats = "top 2 args.category", pages = "top 2 page", times = "top 2 ts", tsum = "sum ts" }

[windows.session]
assign = "session 5m"
key = "device,page"
aggregate = { n = "count", first = "first ts", last = "last ts" }

[windows.every50]
assign = "count 50"
aggregate = { n = "count", cat = "last args.category" }

[features.ipv]
kind = "ipv"

[features.exposure]
kind = "exposure"

[tasks.rerank]
on = ["no_click"]
run = "tests.unit.encoders.conftest:task"

[upload]
records = ["feature", "window"]
encoding = "compact"
"""

ACTIONS = (
    "add_cart", "purchase", "favorite", "comment", "select_sku", "ask",
    "service", "detail", "shop", "recommend", "share", "scroll",
)  # fmt: skip


@pytest.fixture(scope="session")
def config() -> TasksConfig:
    """A tasks file producing every record type the encoders know."""
    return parse_tasks(TASKS_TOML, source="encoders-test.toml")


@pytest.fixture(scope="session")
def schemas(config: TasksConfig) -> SchemaSet:
    """The schema set of :func:`config`."""
    return schemas_for(config)


def ipv(
    device: str = "d1",
    item: str = "2333346",
    enter: int = 1_767_225_600_000,
    dwell: int = 31_250,
    **counts: int,
) -> dict[str, Any]:
    """Return an ipv feature record."""
    values: dict[str, Any] = {
        "item": item,
        "enter_ts": enter,
        "dwell_ms": dwell,
        "truncated": False,
    }
    values.update({a: counts.get(a, 0) for a in ACTIONS})
    return {
        "kind": "feature",
        "feature": "ipv",
        "device": device,
        "ts": enter + dwell,
        "values": values,
    }


def exposure(
    device: str = "d1", item: str = "16000007", ts: int = 1_767_225_611_515
) -> dict[str, Any]:
    """Return an exposure feature record."""
    return {
        "kind": "feature", "feature": "exposure", "device": device, "ts": ts + 6000,
        "values": {
            "item": item, "page": "home_feed", "visit_start": ts - 900, "first_pos": 3,
            "exposures": 2, "exposure_ms": 5983, "scrolls": 2, "max_scroll_speed": 812.25,
            "clicked": True, "deleted": False, "delete_reason": None,
        },
    }  # fmt: skip


def sample_records() -> list[dict[str, Any]]:
    """Return one record of every type of :data:`TASKS_TOML`, plus a quarantine record."""
    t0 = 1_767_225_600_000
    return [
        ipv(add_cart=1, scroll=4),
        exposure(),
        {"kind": "window", "window": "clicks_10m", "device": "d1", "key": "d1", "start": t0,
         "end": t0 + 600_000, "values": {"n": 4, "items": 3, "top": [["2333346", 2], ["77", 1]],
         "dwell": 1234}, "forced": False, "final": False},
        {"kind": "window", "window": "by_item", "device": "d1", "key": "2333346", "start": t0,
         "end": t0 + 3_600_000, "values": {"n": 2, "mean_pos": 2.5, "first": t0 + 5, "last": "2333346",
         "lo": 1, "hi": "item_detail", "cats": [[160, 2]], "pages": [["item_detail", 2]],
         "times": [[t0 + 5, 1], [t0 + 9, 1]], "tsum": 2 * t0 + 14}, "forced": True, "final": True},
        {"kind": "window", "window": "session", "device": "d1", "key": "d1|home_feed", "start": t0,
         "end": t0 + 400_000, "values": {"n": 9, "first": t0, "last": t0 + 100_000}, "forced": False, "final": False},
        {"kind": "window", "window": "every50", "device": "d1", "key": "d1", "start": t0,
         "end": t0 + 77, "values": {"n": 50, "cat": None}, "forced": True, "final": True},
        {"kind": "late", "window": "clicks_10m", "device": "d1", "ts": t0 - 5,
         "event": {"device": "d1", "ts": t0 - 5, "type": "click", "page": "home_feed",
                   "item": "77", "args": {"pos": 3}}},
        {"kind": "trigger", "trigger": "no_click", "device": "d1", "first": 10, "last": 14,
         "first_ts": t0, "last_ts": t0 + 9000},
        {"kind": "task", "task": "rerank", "device": "d1", "ts": t0 + 9001,
         "values": {"items": ["1", "2"], "score": 0.25, "nested": {"ok": True, "n": None}}},
        {"kind": "quarantine", "line": 17, "reason": "`ts` must be an integer, got \"abc\""},
    ]  # fmt: skip
