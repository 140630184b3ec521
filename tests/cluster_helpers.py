"""Logs and reference runs for the partitioned-replay tests."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from streamfeat.data import default_tasks_text
from streamfeat.gen._generator import generate_events
from streamfeat.replay._replay import ReplayOptions, run_replay
from streamfeat.tasks import TasksConfig, parse_tasks

# lines a partitioned reader must route and quarantine exactly like the single-process reader
ODD_LINES = [
    b"not json at all",
    b"",
    b"   ",
    b"[1, 2, 3]",
    b'{"device": 17, "ts": 1767225600000, "type": "click"}',
    b'{"device":"dev000003","ts":"abc","type":"click"}',
    b'{"device":"","ts":1767225600000,"type":"click"}',
    b'{"ts":1767225600500,"type":"click","args":{"device":"dev000001"}}',
    b'{"device":"dev\\u0030\\u00300001","ts":1767225600600,"type":"click"}',
    b'{ "device" : "dev000002", "ts": 1767225600700, "type": "scroll", "args": {"speed": 3}}',
    b'{"device":"dev000004","ts":1767225600800,"type":"click","page":"a\\"b"}',
    b'{"type":"click","ts":1767225600900}',
    b'{"device":"dev000005","ts":1767225601000,"type":"click","bogus":1}',
    b'{"device":"dev\xff","ts":1767225601000,"type":"click"}',
    b'{"device":"dev000006","ts":1767225601100,"type":"page_enter","page":"item_detail","item":"i1"}',
    b'{"device":"dev000006","ts":1767225601200,"type":"page_exit","page":"item_detail","item":"i1"',
]


def default_config() -> TasksConfig:
    return parse_tasks(default_tasks_text(), source="<default tasks>")


def write_log(path: Path, devices: int, minutes: float, seed: int, odd_every: int = 0) -> int:
    """Write a generated log (with the odd lines sprinkled in when ``odd_every``); return lines."""
    rng = random.Random(seed)
    n = 0
    with path.open("wb") as fh:
        for ev in generate_events(devices, minutes, seed):
            fh.write(orjson.dumps(ev) + b"\n")
            n += 1
            if odd_every and rng.randrange(odd_every) == 0:
                fh.write(rng.choice(ODD_LINES) + b"\n")
                n += 1
    return n


def single_replay(events: Path, out: Path, config: TasksConfig | None = None) -> Any:
    return run_replay(
        ReplayOptions(events=str(events), config=config or default_config(), out=str(out))
    )


def per_device(path: Path) -> dict[str, list[bytes]]:
    """OUT's lines grouped by device, in file order; quarantine lines (no device: their order
    between partitions is free) sorted, under ``None``."""
    groups: dict[Any, list[bytes]] = {}
    for line in path.read_bytes().splitlines():
        groups.setdefault(orjson.loads(line).get("device"), []).append(line)
    if None in groups:
        groups[None].sort()
    return groups
