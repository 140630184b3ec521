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


# -- the collector is off in the replay's compiled loop: nothing for it to find ----------------

MORE_TASKS = """
[windows.last_three]
assign = "count 3"
aggregate = { n = "count", top = "top 2 item", mean = "mean args.dur_ms" }

[windows.hour_by_page]
assign = "tumbling 1h"
key = "page"
aggregate = { lo = "min ts", hi = "max ts" }
"""


class _Enabled(_Seen):
    """An observer that notes whether the collector is on while events are processed."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled: set[bool] = set()

    def event(self, ts: int) -> None:
        self.enabled.add(gc.isenabled())


def _generated(tmp: Path, bad_lines: bool = True) -> str:
    from streamfeat.gen import generate_events

    lines = [orjson.dumps(e) for e in generate_events(devices=12, minutes=20, seed=4)]
    if bad_lines:  # the quarantine path runs too
        lines[5:5] = [b"{not json", b'{"device": "x", "ts": "late"}']
    log = tmp / "gen.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    return str(log)


def _tasks() -> Any:
    from streamfeat.data import default_tasks_text

    return parse_tasks(default_tasks_text() + MORE_TASKS, load_models=False)


@pytest.mark.usefixtures("default_thresholds")
def test_the_stages_and_the_reader_leave_no_cyclic_garbage(tmp_path: Path) -> None:
    # The reason the compiled loop may run with the collector off: every window kind, both
    # features, the triggers and the reader (quarantine included) free what they drop by
    # reference counting alone. With the collector on and collecting often (the general loop,
    # which an observer selects), not one object may be found unreachable while a replay runs.
    log = _generated(tmp_path)
    found: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            found.append(info["collected"])

    gc.collect()
    gc.set_threshold(50, 2, 2)
    gc.callbacks.append(note)
    try:
        summary = run_replay(
            ReplayOptions(events=log, config=_tasks(), out=str(tmp_path / "o")), observer=_Seen()
        )
    finally:
        gc.callbacks.remove(note)
    assert summary.events > 1_000
    assert summary.quarantined == 2
    assert len(found) > 100  # it did collect, often
    assert sum(found) == 0


def test_a_cycle_made_while_the_collector_looks_is_found() -> None:
    # the check above can fail: the same callback sees a cycle dropped during collections
    found: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            found.append(info["collected"])

    gc.collect()
    gc.callbacks.append(note)
    try:
        a: list[Any] = []
        a.append(a)
        del a
        gc.collect()
    finally:
        gc.callbacks.remove(note)
    assert sum(found) >= 1


@pytest.mark.usefixtures("default_thresholds")
def test_the_compiled_loop_runs_with_the_collector_off_and_turns_it_back_on(
    tmp_path: Path,
) -> None:
    log = _generated(tmp_path, bad_lines=False)
    fast = run_replay(ReplayOptions(events=log, config=_tasks(), out=str(tmp_path / "a")))
    assert gc.isenabled()
    seen = _Enabled()
    slow = run_replay(
        ReplayOptions(events=log, config=_tasks(), out=str(tmp_path / "b")), observer=seen
    )
    assert seen.enabled == {True}  # the general loop keeps it on
    assert gc.isenabled()
    assert fast.records == slow.records
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    gc.disable()
    try:  # a caller that had it off finds it off
        run_replay(ReplayOptions(events=log, config=_tasks(), out=str(tmp_path / "c")))
        assert not gc.isenabled()
    finally:
        gc.enable()
