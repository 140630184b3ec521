"""Hot update of a matcher's triggers: examples the differential property test once found.

The expected firings come from the plain reference: the triggers that stay fire as if nothing
had changed, a removed one keeps only its firings before the update, an added one matches the
events from the update on.
"""

from __future__ import annotations

import msgpack
import pytest

from streamfeat._event import Event
from streamfeat.triggers import Matcher, Pattern, parse_pattern
from streamfeat.triggers._snapshot import dump_state_v1
from tests.unit.triggers.reference import reference_firings

BIG_MS = 10**12
BIG_EVENTS = 10**9


def _events(types: str) -> list[Event]:
    return [Event(1000, t, "dev", None, None, {}) for t in types.split()]


def _run(
    texts: dict[str, str],
    events: list[Event],
    k: int,
    added: dict[str, str],
    removed: list[str],
    snapshot: bool,
) -> list[tuple[str, int, int]]:
    trigs = {name: parse_pattern(t, name=name) for name, t in texts.items()}
    m = Matcher(trigs, limit_ms=BIG_MS, limit_events=BIG_EVENTS)
    state = m.new_state()
    got = []
    for i, ev in enumerate(events):
        if i == k:
            for name, text in added.items():
                m.add(name, parse_pattern(text, name=name))
            for name in removed:
                m.remove(name)
            if snapshot:
                data = msgpack.unpackb(msgpack.packb(m.dump(state)), strict_map_key=False)
                state = m.load(data)
        got += [(f.trigger, f.first, f.last) for f in m.step(state, i, ev)]
    return got


def _expected(
    texts: dict[str, str], events: list[Event], k: int, added: dict[str, str], removed: list[str]
) -> list[tuple[str, int, int]]:
    trigs: dict[str, Pattern] = {name: parse_pattern(t, name=name) for name, t in texts.items()}
    full = reference_firings(trigs, events, limit_ms=BIG_MS, limit_events=BIG_EVENTS)
    out = [f for f in full if f[0] not in removed or f[2] < k]
    new = {name: parse_pattern(t, name=name) for name, t in added.items()}
    suffix = reference_firings(new, events[k:], limit_ms=BIG_MS, limit_events=BIG_EVENTS)
    out += [(n, s + k, e + k) for n, s, e in suffix]
    order = {name: i for i, name in enumerate([*texts, *added])}
    return sorted(out, key=lambda f: (f[2], order[f[0]]))


@pytest.mark.parametrize("snapshot", [False, True], ids=["update", "update+dump/load"])
def test_a_check_pending_before_the_update_uses_the_new_anchoring(snapshot: bool) -> None:
    # t2 is one segment `(a@x|c) a`. With t0 naming a@y, its keyword is `(a@x|c)` and `a` is
    # checked one event later; without t0 the classes shrink and the keyword becomes `a`. The
    # check pending at event 5 (c at 4) was carried over under the new anchoring, which checks
    # position 0 only: a spurious firing ('t2', 4, 5) although event 5 is b.
    texts = {
        "t0": "(a|a@y) * (a|a@y) without a",
        "t1": "a * a without a",
        "t2": "(a@x|c) a without a",
    }
    events = _events("a a a a c b " + "a " * 15)
    added, removed = {"new": "a * a"}, ["t0"]
    expected = _expected(texts, events, 5, added, removed)
    assert ("t2", 4, 5) not in expected
    assert _run(texts, events, 5, added, removed, snapshot) == expected


@pytest.mark.parametrize("snapshot", [False, True], ids=["update", "update+dump/load"])
def test_a_keyword_passed_before_the_update_is_checked_after_it(snapshot: bool) -> None:
    # `(a@x|c) (a|b)`: with z naming c@y both classes have 3 symbols and the keyword is the
    # last one; without z the keyword is `(a@x|c)`, which the device passed before the update
    # (c at 1): the occurrence [1..2] must still be checked at event 2.
    texts = {"t": "(a@x|c) (a|b)", "z": "c@y"}
    events = _events("d c a d")
    expected = _expected(texts, events, 2, {}, ["z"])
    assert expected == [("t", 1, 2)]
    assert _run(texts, events, 2, {}, ["z"], snapshot) == expected


@pytest.mark.parametrize("snapshot", [False, True], ids=["update", "update+dump/load"])
def test_a_removed_trigger_due_to_fire_is_forgotten(snapshot: bool) -> None:
    # `a ?` occurs at event 0 and is due to fire at event 1; removed in between, it must
    # neither fire nor be left in the due index (the snapshot named it: KeyError).
    texts = {"t0": "a ?"}
    events = _events("a a")
    expected = _expected(texts, events, 1, {"new": "? * ?"}, ["t0"])
    assert _run(texts, events, 1, {"new": "? * ?"}, ["t0"], snapshot) == expected


@pytest.mark.parametrize("snapshot", [False, True], ids=["update", "update+dump/load"])
def test_a_shared_segment_outlives_the_trigger_that_spelled_it_first(snapshot: bool) -> None:
    # `(a|a@y) b` and `a b` are one segment; its occurrences were carried over by the tokens
    # of t0's spelling, which no trigger has once t0 is removed: t1's match was lost.
    texts = {"t0": "(a|a@y) b * c", "t1": "a b * c"}
    events = _events("a b c")
    expected = _expected(texts, events, 2, {}, ["t0"])
    assert expected == [("t1", 0, 2)]
    assert _run(texts, events, 2, {}, ["t0"], snapshot) == expected


def test_a_snapshot_naming_a_segment_by_another_spelling_still_loads() -> None:
    # Snapshots written before segment keys were canonical name a shared segment as its first
    # trigger spelled it (`(a|a@y) b`); the matcher that loads it may only spell it `a b`.
    texts = {"t0": "(a|a@y) b * c", "t1": "a b * c"}
    events = _events("a b c")
    m = Matcher(
        {n: parse_pattern(t, name=n) for n, t in texts.items()},
        limit_ms=BIG_MS,
        limit_events=BIG_EVENTS,
    )
    state = m.new_state()
    for i, ev in enumerate(events[:2]):
        assert m.step(state, i, ev) == []
    # a format-1 snapshot (the dict earlier releases wrote)
    data = msgpack.unpackb(msgpack.packb(dump_state_v1(m.c, state)), strict_map_key=False)
    assert data["occ"], "the shared first segment has an occurrence to carry"
    for key, _ in data["occ"]:  # respell as the old writer did: t0's tokens, as written
        key[0] = [["a", None], ["a", "y"]]
    data["trig"].pop("t0", None)
    only_t1 = Matcher({"t1": parse_pattern(texts["t1"], name="t1")}, limit_ms=BIG_MS,
                      limit_events=BIG_EVENTS)  # fmt: skip
    restored = only_t1.load(data)
    assert [(f.trigger, f.first, f.last) for f in only_t1.step(restored, 2, events[2])] == [
        ("t1", 0, 2)
    ]
