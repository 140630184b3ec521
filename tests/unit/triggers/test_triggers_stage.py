"""The trigger stage: SPEC section 2's examples, records as SPEC section 6 shows, the engine's
limits, snapshots, freeing, and hot add/remove."""

from __future__ import annotations

import msgpack
import pytest

from streamfeat._event import Event
from streamfeat._records import public
from streamfeat.engine import Engine, Stage
from streamfeat.errors import TriggerSpecError
from streamfeat.tasks import EngineConfig, TasksConfig
from streamfeat.triggers import TriggerStage


def cfg(
    triggers: dict[str, str], *, limit_ms: int = 24 * 3_600_000, limit_events: int = 10_000
) -> TasksConfig:
    return TasksConfig(
        engine=EngineConfig(partial_limit=limit_ms, partial_limit_events=limit_events),
        triggers=triggers,
    )


def stream(*specs: str, start: int = 1_000, step: int = 1_000, device: str = "d") -> list[Event]:
    """Events from "type" or "type@page" strings, ts going up by ``step``."""
    out = []
    for i, spec in enumerate(specs):
        t, _, p = spec.partition("@")
        out.append(Event(start + i * step, t, device, p or None))
    return out


def fire(triggers: dict[str, str], events: list[Event], **kw: int) -> list[tuple[str, int, int]]:
    engine = Engine([TriggerStage(cfg(triggers, **kw))])
    out = []
    for ev in events:
        out += [(r["trigger"], r["first"], r["last"]) for r in engine.process(ev)]
    return out


def test_is_a_stage_and_emits_spec_records() -> None:
    stage = TriggerStage(cfg({"ab": "A * B"}))
    assert isinstance(stage, Stage)
    assert stage.name == "triggers"
    events = stream("A", "x", "B")
    engine = Engine([stage])
    records = [r for ev in events for r in engine.process(ev)]
    assert [public(r) for r in records] == [
        {"kind": "trigger", "trigger": "ab", "device": "d", "first": 0, "last": 2,
         "first_ts": 1_000, "last_ts": 3_000},
    ]  # fmt: skip
    assert records[0]["_events"] == tuple(events)


def test_shortest_match_and_no_overlap() -> None:
    # SPEC: `A * B` over `A A B B` fires once, with [A B] (the second A and the first B)
    assert fire({"t": "A * B"}, stream("A", "A", "B", "B")) == [("t", 1, 2)]


def test_click_fires_on_every_click() -> None:
    assert fire({"c": "click"}, stream("click", "scroll", "click@home")) == [
        ("c", 0, 0),
        ("c", 2, 2),
    ]


def test_item_visit_within_30m() -> None:
    pat = {"ipv": "page_enter@item_detail * page_exit@item_detail within 30m"}
    visit = stream("page_enter@item_detail", "scroll@item_detail", "page_exit@item_detail")
    assert fire(pat, visit) == [("ipv", 0, 2)]
    slow = stream("page_enter@item_detail", "scroll", "page_exit@item_detail", step=20 * 60_000)
    assert fire(pat, slow) == []  # 40 minutes
    other_page = stream("page_enter@shop", "page_exit@item_detail")
    assert fire(pat, other_page) == []


def test_alternatives_with_pages() -> None:
    pat = {"t": "(click@home_feed|delete@home_feed)"}
    evs = stream("click@home_feed", "click@item_detail", "delete@home_feed", "delete")
    assert fire(pat, evs) == [("t", 0, 0), ("t", 2, 2)]


def test_k_exposures_without_a_click() -> None:
    pat = {"k5": "exposure * exposure * exposure * exposure * exposure without click"}
    five = stream(*["exposure"] * 5)
    assert fire(pat, five) == [("k5", 0, 4)]
    broken = stream("exposure", "exposure", "click", *["exposure"] * 5, "scroll", "exposure")
    assert fire(pat, broken) == [("k5", 3, 7)]
    ten = stream(*["exposure"] * 10)
    assert fire(pat, ten) == [("k5", 0, 4), ("k5", 5, 9)]


def test_pv_cart_buy_within_1h() -> None:
    pat = {"t": "pv * cart * buy within 1h"}
    assert fire(pat, stream("pv", "cart", "x", "buy", step=10 * 60_000)) == [("t", 0, 3)]
    assert fire(pat, stream("pv", "cart", "buy", step=40 * 60_000)) == []


def test_repeat_means_in_a_row() -> None:
    pat = {"t": "exposure{3}"}
    assert fire(
        pat, stream("exposure", "exposure", "click", "exposure", "exposure", "exposure")
    ) == [("t", 3, 5)]
    assert fire(pat, stream(*["exposure"] * 7)) == [("t", 0, 2), ("t", 3, 5)]


def test_within_uses_first_and_last_ts_even_backwards() -> None:
    # ts: 1000, 5000, 900 -> last.ts - first.ts = -100 <= 0
    evs = [Event(1_000, "A", "d"), Event(5_000, "x", "d"), Event(900, "B", "d")]
    assert fire({"t": "A * B within 0ms"}, evs) == [("t", 0, 2)]


def test_question_mark_and_several_firings_per_event_in_order() -> None:
    pats = {"second": "A ? C", "first": "C", "third": "? C"}
    assert fire(pats, stream("A", "B", "C")) == [("second", 0, 2), ("first", 2, 2), ("third", 1, 2)]


def test_event_limit_cuts_and_counts() -> None:
    assert fire({"t": "A * B"}, stream("A", "x", "B"), limit_events=3) == [("t", 0, 2)]
    stage = TriggerStage(cfg({"t": "A * B"}, limit_events=3))
    engine = Engine([stage])
    out = [r for ev in stream("A", "x", "x", "B") for r in engine.process(ev)]
    assert out == []  # the match would hold 4 events
    state = engine.state_of("d", "triggers")
    stage.matcher.gc(state)  # housekeeping drops (and counts) the cut partial match
    assert stage.stats["cuts"] == 1
    assert stage.idle(state)


def test_time_limit_and_advance_cut_partial_matches() -> None:
    stage = TriggerStage(cfg({"t": "A * B"}, limit_ms=60_000))
    engine = Engine([stage])
    engine.process(Event(1_000, "A", "d"))
    assert not stage.idle(engine.state_of("d", "triggers"))
    engine.advance(1_000 + 61_000)  # wall time moves the device's clock past the limit
    assert stage.stats["cuts"] == 1
    assert engine.state_of("d", "triggers") is None or stage.idle(engine.state_of("d", "triggers"))
    assert engine.process(Event(62_500, "B", "d")) == []


def test_idle_states_are_freed() -> None:
    stage = TriggerStage(cfg({"t": "A B"}))
    engine = Engine([stage])
    engine.process(Event(1, "x", "d"))
    assert engine.open_devices == 0  # nothing open after an event no pattern starts with
    engine.process(Event(2, "A", "d"))
    assert engine.open_devices == 1  # the automaton is half-way through `A B`
    assert [r["first"] for r in engine.process(Event(3, "B", "d"))] == [1]


def test_dump_is_msgpackable_and_load_round_trips() -> None:
    stage = TriggerStage(cfg({"t": "A * B * C within 1h without Z", "k": "E * E * E"}))
    state = stage.new_state("d")
    evs = stream("A", "B", "E", "E")
    for i, ev in enumerate(evs):
        stage.process(state, i, ev, [])
    data = msgpack.unpackb(msgpack.packb(stage.dump(state)), strict_map_key=False)
    again = stage.load(data)
    assert stage.dump(again) == stage.dump(state)
    out: list[dict[str, object]] = []
    stage.process(again, 4, Event(5_000, "C", "d"), out)
    stage.process(again, 5, Event(6_000, "E", "d"), out)
    assert [(r["trigger"], r["first"], r["last"]) for r in out] == [("t", 0, 4), ("k", 2, 5)]


def test_hot_add_and_remove() -> None:
    stage = TriggerStage(cfg({"ab": "A * B", "cd": "C * D"}))
    engine = Engine([stage])
    out = []
    for ev in stream("A", "C"):
        out += engine.process(ev)
    stage.add("ef", "E * F")
    stage.remove("cd")
    assert stage.triggers == ["ab", "ef"]
    for ev in stream("E", "B", "D", "F", start=5_000):
        out += engine.process(ev)
    assert [(r["trigger"], r["first"], r["last"]) for r in out] == [("ab", 0, 3), ("ef", 2, 5)]
    assert stage.stats["recompiles"] == 2
    with pytest.raises(TriggerSpecError):
        stage.add("bad", "A{0}")
    with pytest.raises(ValueError, match="already exists"):
        stage.add("ab", "A")
    with pytest.raises(KeyError):
        stage.remove("nope")
    assert stage.triggers == ["ab", "ef"]


def test_a_new_trigger_does_not_see_earlier_events() -> None:
    stage = TriggerStage(cfg({"x": "X"}))
    engine = Engine([stage])
    engine.process(Event(1, "A", "d"))
    stage.add("ab", "A B")
    assert engine.process(Event(2, "B", "d")) == []
    out = engine.process(Event(3, "A", "d")) + engine.process(Event(4, "B", "d"))
    assert [(r["first"], r["last"]) for r in out] == [(2, 3)]


def test_run_batch_equals_process() -> None:
    pats = {"ipv": "page_enter@item_detail * page_exit@item_detail within 30m",
            "k3": "exposure * exposure * exposure without click", "r": "exposure{2} ? click"}  # fmt: skip
    evs = stream("exposure", "exposure", "scroll", "click", "page_enter@item_detail", "exposure",
                 "page_exit@item_detail", "exposure", "exposure", "exposure")  # fmt: skip
    stage = TriggerStage(cfg(pats))
    state = stage.new_state("d")
    one: list[dict[str, object]] = []
    for i, ev in enumerate(evs):
        stage.process(state, i, ev, one)
    assert stage.run_batch(evs) == one
    assert len(one) == 3


def test_update_changes_several_triggers_with_one_rebuild() -> None:
    stage = TriggerStage(cfg({"ab": "A * B", "cd": "C * D", "x": "X"}))
    engine = Engine([stage])
    out = []
    for ev in stream("A", "C"):
        out += engine.process(ev)
    stage.update({"cd": "C D", "ef": "E"}, ["cd", "x"])
    assert stage.stats["recompiles"] == 1
    assert stage.triggers == ["ab", "cd", "ef"]
    for ev in stream("D", "C", "D", "E", "B", "X", start=5_000):
        out += engine.process(ev)
    assert [(r["trigger"], r["first"], r["last"]) for r in out] == [
        ("cd", 3, 4),
        ("ef", 5, 5),
        ("ab", 0, 6),
    ]
    with pytest.raises(KeyError):
        stage.update({}, ["nope"])
    with pytest.raises(ValueError, match="already exists"):
        stage.update({"ab": "A"})
    assert stage.stats["recompiles"] == 1


def test_a_keyword_is_the_first_longest_run_so_the_default_triggers_can_go_idle() -> None:
    # `a ? b` is found by `a` (its `b` checked two events later), not by `b` with a check
    # reaching back: no look-back, so a device whose events no trigger uses can be freed.
    # The default tasks file's `quick_bounce` is such a pattern.
    stage = TriggerStage(cfg({"quick_bounce": "page_enter@item_detail ? page_exit@item_detail"}))
    assert stage.matcher.c.lookback == 0
    state = stage.new_state("d")
    out: list[dict[str, object]] = []
    for i, ev in enumerate(stream("click", "scroll", "click")):
        stage.process(state, i, ev, out)
    assert stage.idle(state)
    for i, ev in enumerate(stream("page_enter@item_detail", "x", "page_exit@item_detail"), 3):
        stage.process(state, i, ev, out)
    assert [(r["first"], r["last"]) for r in out] == [(3, 5)]


def test_the_engine_calls_the_matcher_directly_with_the_same_records_and_idleness() -> None:
    """``step_functions`` hands the engine the matcher's own methods: they must append the
    records ``process`` appends (attachments included) and answer ``idle`` as it does, also
    after a hot add (the matcher object stays the same)."""
    triggers = {"two": "click * click", "bounce": "page_enter@a ? page_exit@a within 3s"}
    slow, fast = TriggerStage(cfg(triggers)), TriggerStage(cfg(triggers))
    step, idle = fast.step_functions()
    evs = stream("click", "page_enter@a", "scroll", "page_exit@a", "scroll", "click", "click")
    s1, s2 = slow.new_state("d"), fast.new_state("d")
    want: list[dict[str, object]] = []
    got: list[dict[str, object]] = []
    for i, e in enumerate(evs):
        if i == 4:
            slow.add("late", "scroll * click")
            fast.add("late", "scroll * click")
        slow.process(s1, i, e, want)
        step(s2, i, e, got)
        assert got == want
        assert idle(s2) == slow.idle(s1)
    assert [(r["trigger"], r["first"], r["last"]) for r in got] == [
        ("bounce", 1, 3),
        ("two", 0, 5),
        ("late", 4, 5),
    ]
    assert got[-1]["_events"] == tuple(evs[4:6])
