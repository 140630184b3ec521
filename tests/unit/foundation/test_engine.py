from __future__ import annotations

from typing import Any

import pytest

from streamfeat import Engine, Event, StorageError
from streamfeat.engine import Stage


class Counting:
    """A stage that counts events per device and keeps them open until a `close` event."""

    def __init__(self, name: str = "count") -> None:
        self.name = name

    def new_state(self, device: str) -> Any:
        return {"device": device, "n": 0, "open": False}

    def process(self, state: Any, index: int, event: Event, out: list[dict[str, Any]]) -> None:
        state["n"] += 1
        state["open"] = event.type != "close"
        out.append(
            {
                "kind": "seen",
                "stage": self.name,
                "device": state["device"],
                "index": index,
                "n": state["n"],
            }
        )

    def advance(self, state: Any, now_ms: int, out: list[dict[str, Any]]) -> None:
        out.append({"kind": "advanced", "device": state["device"], "now": now_ms})

    def close(self, state: Any, out: list[dict[str, Any]]) -> None:
        out.append({"kind": "closed", "device": state["device"], "final": True})

    def idle(self, state: Any) -> bool:
        return not state["open"]

    def dump(self, state: Any) -> Any:
        return state

    def load(self, data: Any) -> Any:
        return dict(data)


def ev(device: str, ts: int, type_: str = "x") -> Event:
    return Event(ts, type_, device)


def test_counting_stage_is_a_stage() -> None:
    assert isinstance(Counting(), Stage)


def test_indexes_are_per_device_and_stages_run_in_order() -> None:
    eng = Engine([Counting("a"), Counting("b")])
    out = eng.process(ev("d1", 1)) + eng.process(ev("d2", 2)) + eng.process(ev("d1", 3))
    assert [(r["stage"], r["device"], r["index"]) for r in out] == [
        ("a", "d1", 0),
        ("b", "d1", 0),
        ("a", "d2", 0),
        ("b", "d2", 0),
        ("a", "d1", 1),
        ("b", "d1", 1),
    ]
    assert eng.event_count("d1") == 2
    assert eng.devices == 2


def test_idle_devices_are_freed_but_keep_their_index() -> None:
    eng = Engine([Counting()])
    eng.process(ev("d", 1))
    assert eng.open_devices == 1
    eng.process(ev("d", 2, "close"))
    assert eng.open_devices == 0
    assert eng.state_of("d", "count") is None
    (rec,) = eng.process(ev("d", 3))
    assert rec["index"] == 2
    assert rec["n"] == 1


def test_close_and_advance_reach_open_devices_only() -> None:
    eng = Engine([Counting()])
    eng.process(ev("open", 1))
    eng.process(ev("shut", 1, "close"))
    assert eng.advance(99) == [{"kind": "advanced", "device": "open", "now": 99}]
    assert eng.close() == [{"kind": "closed", "device": "open", "final": True}]
    assert eng.open_devices == 0


def test_snapshot_restore_continues_identically() -> None:
    events = [ev(f"d{i % 3}", i, "close" if i % 5 == 0 else "x") for i in range(40)]
    whole = Engine([Counting()])
    expected = [r for e in events for r in whole.process(e)]
    first = Engine([Counting()])
    got = [r for e in events[:17] for r in first.process(e)]
    second = Engine([Counting()])
    second.restore(first.snapshot())
    got += [r for e in events[17:] for r in second.process(e)]
    assert got == expected
    assert second.events == 40


def test_restore_refuses_other_stages_and_garbage() -> None:
    snap = Engine([Counting("a")]).snapshot()
    with pytest.raises(StorageError):
        Engine([Counting("b")]).restore(snap)
    with pytest.raises(StorageError):
        Engine([Counting("a")]).restore(b"\xc1not msgpack")


def test_duplicate_stage_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Engine([Counting(), Counting()])


def test_stage_timing_is_sampled() -> None:
    eng = Engine([Counting()], sample_every=2)
    for i in range(10):
        eng.process(ev("d", i))
    assert eng.stage_seconds()["count"] > 0
    with pytest.raises(ValueError, match="power of two"):
        Engine([], sample_every=3)


class Remembering(Counting):
    """Counting, with the number of events seen surviving a freeing as its residue."""

    def new_state(self, device: str, residue: int | None = None) -> Any:
        state = super().new_state(device)
        state["n"] = residue or 0
        return state

    def residue(self, state: Any) -> int:
        return int(state["n"])


def test_residue_outlives_a_freeing_and_a_snapshot() -> None:
    eng = Engine([Remembering(), Counting("plain")])
    eng.process(ev("d", 1))
    eng.process(ev("d", 2, "close"))
    assert eng.open_devices == 0
    copy = Engine([Remembering(), Counting("plain")])
    copy.restore(eng.snapshot())
    for e in (eng, copy):
        recs = e.process(ev("d", 3))
        assert [(r["stage"], r["n"]) for r in recs] == [("count", 3), ("plain", 1)]
