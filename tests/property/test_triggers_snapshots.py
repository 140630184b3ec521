"""Snapshots of the trigger matcher's per-device state (format 2 and the format-1 dict).

Against the plain reference (``tests/unit/triggers/reference.py``): a state written and read
back (through msgpack) before any event must change no firing; a format-2 snapshot loaded under
another trigger set (no ids in common) must behave exactly as the format-1 snapshot of the same
state, which earlier releases wrote and which still loads.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfeat._event import Event
from streamfeat.errors import StorageError
from streamfeat.triggers import Matcher, Pattern, parse_pattern
from streamfeat.triggers._snapshot import FORMAT, dump_state_v1
from tests.property.test_triggers_differential import (
    BIG_EVENTS,
    BIG_MS,
    event_streams,
    limits,
    pattern_texts,
    triggers,
)
from tests.unit.triggers.reference import reference_firings


def _wire(data: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(data, use_bin_type=True), raw=False, strict_map_key=False)


@given(triggers, event_streams(), limits, st.data())
def test_a_snapshot_before_any_event_changes_no_firing(
    trigs: dict[str, Pattern], events: list[Event], lim: tuple[int, int], data: st.DataObject
) -> None:
    n_lim, ms_lim = lim
    m = Matcher(trigs, limit_ms=ms_lim, limit_events=n_lim)
    when = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    state = m.new_state()
    got = []
    for i, ev in enumerate(events):
        if when[i]:
            dumped = _wire(m.dump(state))
            assert dumped[0] == FORMAT
            state = m.load(dumped)
        got += [(f.trigger, f.first, f.last) for f in m.step(state, i, ev)]
    assert got == reference_firings(trigs, events, limit_ms=ms_lim, limit_events=n_lim)


@given(triggers, pattern_texts(), event_streams(max_size=25), st.data())
def test_format_2_under_another_trigger_set_loads_as_format_1_does(
    trigs: dict[str, Pattern], added_text: str, events: list[Event], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(events)))
    m = Matcher(trigs, limit_ms=BIG_MS, limit_events=BIG_EVENTS)
    state = m.new_state()
    for i, ev in enumerate(events[:cut]):
        m.step(state, i, ev)
    v2, v1 = _wire(m.dump(state)), _wire(dump_state_v1(m.c, state))
    # a restart with an edited tasks file: one trigger gone, one new (other ids everywhere)
    other = dict(list(trigs.items())[1:])
    other["new"] = parse_pattern(added_text, name="new")
    runs = []
    for dumped in (v2, v1):
        m2 = Matcher(other, limit_ms=BIG_MS, limit_events=BIG_EVENTS)
        assert m2.c.fingerprint != m.c.fingerprint
        st2 = m2.load(dumped)
        runs.append(
            [(f.trigger, f.first, f.last) for i, ev in enumerate(events[cut:], cut)
             for f in m2.step(st2, i, ev)]
        )  # fmt: skip
    assert runs[0] == runs[1]


def _matcher() -> Matcher:
    pats = {"t": parse_pattern("a * b within 1s", name="t")}
    return Matcher(pats, limit_ms=BIG_MS, limit_events=BIG_EVENTS)


def test_a_snapshot_of_an_unknown_format_is_refused_naming_it() -> None:
    m = _matcher()
    state = m.new_state()
    m.step(state, 0, Event(1000, "a", "dev"))
    dumped = _wire(m.dump(state))
    dumped[0] = 9  # written by a later release
    with pytest.raises(StorageError, match="format 9"):
        m.load(dumped)
    with pytest.raises(StorageError):
        m.load("junk")
    with pytest.raises(StorageError, match="malformed"):
        m.load([FORMAT, m.c.fingerprint, "dev"])


def test_format_2_keeps_the_device_once_and_only_the_parts_in_use() -> None:
    m = _matcher()
    state = m.new_state()
    m.step(state, 0, Event(1000, "a", "dev", "p", "7", {"k": 1}))
    m.step(state, 1, Event(1001, "c", "dev"))
    dumped = _wire(m.dump(state))
    fmt, _fp, device, base, last, maxts, _node, events, clocks, rest = dumped
    assert (fmt, device, base, last, maxts) == (2, "dev", 0, 1, 1001)
    assert events == [[1000, "a", "p", "7", {"k": 1}], [1001, "c", None, None, None]]
    assert clocks == [1000, 1001]
    assert set(rest) == {"sym"}  # the start `a` waits for a `b`; nothing else is kept
    restored = m.load(dumped)
    assert restored.events == state.events
    assert [(f.first, f.last) for f in m.step(restored, 2, Event(1002, "b", "dev"))] == [(0, 2)]
