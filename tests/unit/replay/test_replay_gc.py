"""A replay runs with rarer full collections and gives the collector back as it found it."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamfeat.replay._replay import ReplayOptions, run_replay
from streamfeat.tasks import parse_tasks

TASKS = """
[windows.session]
assign = "session 2m"
aggregate = { n = "count" }
"""


class _Seen:
    """An observer that notes the collector's thresholds while events are processed."""

    def __init__(self) -> None:
        self.thresholds: set[tuple[int, int, int]] = set()

    def event(self, ts: int) -> None:
        self.thresholds.add(gc.get_threshold())

    def records(self, records: list[dict[str, Any]]) -> None:
        pass

    def progress(self, wall_seconds: float, events: int) -> None:
        pass


def _log(tmp: Path) -> str:
    log = tmp / "events.jsonl"
    lines = [{"device": f"d{i % 7}", "ts": 1_000 * i, "type": "click"} for i in range(50)]
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    return str(log)


@pytest.fixture
def default_thresholds() -> Any:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("default_thresholds")
def test_full_collections_are_rarer_during_a_replay_and_restored_after(tmp_path: Path) -> None:
    seen = _Seen()
    opts = ReplayOptions(events=_log(tmp_path), config=parse_tasks(TASKS), out=str(tmp_path / "o"))
    summary = run_replay(opts, observer=seen)
    assert summary.events == 50
    assert seen.thresholds == {(700, 10, 1000)}  # the young generations keep theirs
    assert gc.get_threshold() == (700, 10, 10)


class _Boom(_Seen):
    def event(self, ts: int) -> None:
        msg = "observer failed"
        raise RuntimeError(msg)


@pytest.mark.usefixtures("default_thresholds")
def test_the_collector_is_restored_when_a_replay_fails(tmp_path: Path) -> None:
    opts = ReplayOptions(events=_log(tmp_path), config=parse_tasks(TASKS), out=str(tmp_path / "o"))
    with pytest.raises(RuntimeError):
        run_replay(opts, observer=_Boom())
    assert gc.get_threshold() == (700, 10, 10)
