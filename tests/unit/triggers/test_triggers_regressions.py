"""Cases the differential property tests found, pinned (each failed before its fix)."""

from __future__ import annotations

import msgpack

from streamfeat._event import Event
from streamfeat.engine import Engine
from streamfeat.triggers import Matcher, MatchLimits, TriggerConfig, TriggerStage, parse_pattern
from tests.unit.triggers.reference import reference_firings


def ev(ts: int, etype: str) -> Event:
    return Event(ts, etype, "dev", None, None, {})


def test_a_freed_device_keeps_its_clock_for_the_time_limit() -> None:
    # 'b' leaves nothing open, so the engine frees the state; the clock (1000) must survive,
    # or the match starting at ts 999 looks 9 ms old at 1008 instead of 8 and is cut.
    events = [ev(1000, "b"), ev(999, "a"), ev(1008, "a"), ev(1008, "a"), ev(1008, "a")]
    stage = TriggerStage({"t0": TriggerConfig.parse("t0", "a * a")}, MatchLimits(8, 100_000))
    engine = Engine([stage])
    got = [(r["trigger"], r["first"], r["last"]) for e in events for r in engine.process(e)]
    pattern = {"t0": parse_pattern("a * a", name="t0")}
    assert got == reference_firings(pattern, events, limit_ms=8, limit_events=100_000)
    assert got == [("t0", 1, 2), ("t0", 3, 4)]


def test_a_pending_check_survives_a_rebuild_that_moves_the_keyword() -> None:
    # Removing t0 drops the symbol a@y, so '(a@x|c) a' gets its keyword on its second position
    # instead of its first: an occurrence found at 'c' must not be confirmed by 'b'.
    texts = ["(a|a@y) * (a|a@y) without a", "a * a without a", "(a@x|c) a without a"]
    trigs = {f"t{i}": parse_pattern(t, name=f"t{i}") for i, t in enumerate(texts)}
    events = [ev(1000, t) for t in ["a", "a", "a", "a", "c", "b"]] + [ev(1000, "a")] * 15
    big = 10**12
    m = Matcher(trigs, limit_ms=big, limit_events=100_000)
    state = m.new_state()
    got = []
    for i, e in enumerate(events):
        if i == 5:
            m.add("new", parse_pattern("a * a", name="new"))
            m.remove("t0")
            state = m.load(msgpack.unpackb(msgpack.packb(m.dump(state)), strict_map_key=False))
        got += [(f.trigger, f.first, f.last) for f in m.step(state, i, e)]
    assert ("t2", 4, 5) not in got
    kept = {n: p for n, p in trigs.items() if n != "t0"}
    full = reference_firings(kept, events, limit_ms=big, limit_events=100_000)
    assert [f for f in got if f[0] != "t0" and f[0] != "new"] == full
