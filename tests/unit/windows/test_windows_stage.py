"""Hand-written window cases with known answers (SPEC section 3)."""

from __future__ import annotations

from typing import Any

from streamfeat import Engine
from streamfeat._event import Event
from streamfeat._records import raw_size
from streamfeat.tasks import parse_tasks
from streamfeat.windows import WindowStage


def stage_of(toml: str, **kw: Any) -> WindowStage:
    return WindowStage(parse_tasks(toml), **kw)


def run(stage: WindowStage, events: list[Event], *, close: bool = True) -> list[dict[str, Any]]:
    state = stage.new_state(events[0].device)
    out: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        stage.process(state, i, e, out)
    if close:
        stage.close(state, out)
    return out


def ev(ts: int, etype: str = "click", **kw: Any) -> Event:
    return Event(ts, etype, kw.pop("device", "d"), kw.pop("page", None), kw.pop("item", None), kw)


TUMBLING = """
[engine]
lateness = "5s"
[windows.t]
assign = "tumbling 10s"
aggregate = { n = "count", s = "sum args.v" }
"""


def test_tumbling_closes_on_the_watermark_and_reports_late_events() -> None:
    out = run(stage_of(TUMBLING), [
        ev(1_000, v=1), ev(9_000, v=2),
        ev(14_000, v=3),  # watermark 9s: [0,10s) still open
        ev(3_000, v=4),  # watermark 9s < 10s: still goes in
        ev(15_000, v=5),  # watermark 10s: closes [0,10s)
        ev(8_000, v=6),  # its window closed: late
    ])  # fmt: skip
    assert out == [
        {"kind": "window", "window": "t", "device": "d", "key": "d", "start": 0, "end": 10_000,
         "values": {"n": 3, "s": 7}, "forced": False, "final": False},
        {"kind": "late", "window": "t", "device": "d", "ts": 8_000,
         "event": {"device": "d", "ts": 8_000, "type": "click", "args": {"v": 6}}},
        {"kind": "window", "window": "t", "device": "d", "key": "d", "start": 10_000,
         "end": 20_000, "values": {"n": 2, "s": 8}, "forced": True, "final": True},
    ]  # fmt: skip


def test_a_window_lateness_overrides_the_engine_one() -> None:
    toml = TUMBLING + 'lateness = "0s"\n'
    out = run(stage_of(toml), [ev(1_000), ev(10_000), ev(9_999)])
    assert [r["kind"] for r in out] == ["window", "late", "window"]
    assert out[0]["final"] is False
    assert out[2]["final"] is True


def test_comma_keys_join_with_a_bar_and_events_without_the_key_stay_out() -> None:
    toml = """
[windows.w]
assign = "tumbling 1m"
key = "page,args.n"
filter = ["click", "view@feed"]
aggregate = { n = "count" }
"""
    out = run(stage_of(toml), [
        ev(1, page="feed", n=3), ev(2, page="feed"), ev(3, page="feed", n=3), ev(4, n=3),
        ev(5, "view", page="feed", n=True), ev(6, "view", page="other", n=1), ev(7, page="feed", n=1.5),
    ])  # fmt: skip
    assert [(r["key"], r["values"]["n"]) for r in out] == [
        ("feed|1.5", 1),
        ("feed|3", 2),
        ("feed|true", 1),
    ]


def test_sliding_windows_hold_every_event_they_span() -> None:
    toml = '[windows.w]\nassign = "sliding 10s every 5s"\naggregate = { n = "count" }\n'
    out = run(stage_of(toml), [ev(6_000), ev(12_000)])
    spans = [(r["start"], r["end"], r["values"]["n"], r["final"]) for r in out]
    assert spans == [(0, 10_000, 1, False), (5_000, 15_000, 2, True), (10_000, 20_000, 1, True)]


def test_an_out_of_order_event_bridges_two_sessions_into_one() -> None:
    toml = """
[engine]
lateness = "1m"
[windows.s]
assign = "session 30s"
key = "item"
aggregate = { n = "count", first = "first ts", items = "top 1 args.k" }
"""
    out = run(stage_of(toml), [
        ev(0, item="a", k="x"), ev(50_000, item="a", k="y"), ev(25_000, item="a", k="y"),
    ])  # fmt: skip
    assert out == [
        {"kind": "window", "window": "s", "device": "d", "key": "a", "start": 0, "end": 80_000,
         "values": {"n": 3, "first": 0, "items": [["y", 2]]}, "forced": True, "final": True},
    ]  # fmt: skip


def test_session_lateness_is_ts_plus_gap_against_the_watermark() -> None:
    toml = '[windows.s]\nassign = "session 10s"\naggregate = { n = "count" }\n'
    out = run(stage_of(toml), [ev(0), ev(5_000), ev(40_000), ev(30_001), ev(30_000)])
    assert out[0]["values"] == {"n": 2}
    assert (out[0]["start"], out[0]["end"]) == (0, 15_000)
    assert out[1] == {
        "kind": "late", "window": "s", "device": "d", "ts": 30_000,
        "event": {"device": "d", "ts": 30_000, "type": "click"},
    }  # fmt: skip
    assert (out[2]["start"], out[2]["end"], out[2]["values"]) == (30_001, 50_000, {"n": 2})


def test_count_windows_are_never_late_and_the_rest_is_final() -> None:
    toml = '[windows.c]\nassign = "count 2"\nkey = "item"\naggregate = { n = "count" }\n'
    out = run(
        stage_of(toml), [ev(100, item="a"), ev(5, item="a"), ev(1, item="b"), ev(2, item="a")]
    )
    assert [(r["key"], r["start"], r["end"], r["final"]) for r in out] == [
        ("a", 100, 5, False), ("b", 1, 1, True), ("a", 2, 2, True),
    ]  # fmt: skip


def test_records_within_one_event_come_by_end_then_start_then_key() -> None:
    toml = (
        '[windows.w]\nassign = "sliding 10s every 5s"\nkey = "item"\naggregate = { n = "count" }\n'
    )
    out = run(stage_of(toml), [ev(7_000, item="b"), ev(6_000, item="a"), ev(30_000)], close=False)
    assert [(r["end"], r["start"], r["key"]) for r in out] == [
        (10_000, 0, "a"), (10_000, 0, "b"), (15_000, 5_000, "a"), (15_000, 5_000, "b"),
    ]  # fmt: skip


def test_advance_moves_an_idle_device_watermark() -> None:
    stage = stage_of(TUMBLING)
    state = stage.new_state("d")
    out: list[dict[str, Any]] = []
    stage.process(state, 0, ev(1_000), out)
    stage.advance(state, 14_999, out)
    assert out == []
    stage.advance(state, 15_000, out)  # watermark 15s - 5s lateness reaches the end
    assert [r["final"] for r in out] == [False]
    assert stage.idle(state)
    stage.advance(state, 1, out)  # the clock going back never moves the watermark back
    assert state.maxts == 15_000


def test_sizes_attach_the_bytes_of_the_events_in_the_window() -> None:
    events = [ev(1, v=1), ev(2, v=22)]
    out = run(stage_of(TUMBLING, sizes=True), events)
    assert out[0]["_raw_bytes"] == sum(raw_size(e) for e in events)
    assert "_raw_bytes" not in run(stage_of(TUMBLING), events)[0]


def test_view_lists_open_windows_for_tasks() -> None:
    stage = stage_of(TUMBLING)
    state = stage.new_state("d")
    stage.process(state, 0, ev(12_000, v=2), [])
    assert stage.view(state, now_ms=13_000) == {
        "max_ts": 12_000,
        "windows": {"t": {"watermark": 7_000, "open": [
            {"key": "d", "start": 10_000, "end": 20_000, "values": {"n": 1, "s": 2}, "age_ms": 3_000},
        ]}},
    }  # fmt: skip


def test_the_engine_frees_a_device_with_no_open_window_and_restores_snapshots() -> None:
    config = parse_tasks(TUMBLING)
    engine = Engine([WindowStage(config)])
    engine.process(ev(1_000, device="x"))
    engine.process(ev(1_000, device="y"))
    assert engine.open_devices == 2
    closed = engine.process(ev(20_000, "app_background", device="x"))
    assert [r["end"] for r in closed] == [10_000]
    assert engine.open_devices == 2  # x has [20s, 30s) open now
    blob = engine.snapshot()
    again = Engine([WindowStage(config)])
    again.restore(blob)
    assert again.close() == engine.close()


def test_a_freed_device_keeps_its_watermark_and_reports_late_events() -> None:
    toml = '[windows.c]\nassign = "tumbling 10s"\nfilter = ["click"]\naggregate = { n = "count" }\n'
    engine = Engine([WindowStage(parse_tasks(toml))])
    engine.process(ev(1_000, device="x"))
    assert engine.open_devices == 1
    closed = engine.process(ev(30_000, "view", device="x"))  # closes [0, 10s), opens nothing
    assert [r["end"] for r in closed] == [10_000]
    assert engine.open_devices == 0  # memory bounded by open windows
    # SPEC: the watermark is the max ts over all the device's events, freed or not
    again = Engine([WindowStage(parse_tasks(toml))])
    again.restore(engine.snapshot())
    for eng in (engine, again):
        late = {"device": "x", "ts": 2_000, "type": "click"}
        assert eng.process(ev(2_000, device="x")) == [
            {"kind": "late", "window": "c", "device": "x", "ts": 2_000, "event": late}
        ]
        assert eng.process(ev(31_000, device="x")) == []  # [30s, 40s) opens
        assert [r["start"] for r in eng.close()] == [30_000]


def test_sliding_panes_never_revive_a_window_that_closed_while_nothing_was_open() -> None:
    toml = """
[windows.w]
assign = "sliding 10s every 5s"
filter = ["click"]
aggregate = { n = "count" }
"""
    out = run(stage_of(toml), [
        ev(12_000),  # windows [5s, 15s) and [10s, 20s)
        ev(20_000, "view"),  # closes both; nothing open
        ev(32_000, "view"),  # the watermark moves on with nothing open
        ev(27_000),  # [20s, 30s) closed at 30s: only [25s, 35s) takes it
    ])  # fmt: skip
    spans = [(r["start"], r["end"], r["values"]["n"], r["final"]) for r in out]
    assert spans == [
        (5_000, 15_000, 1, False),
        (10_000, 20_000, 1, False),
        (25_000, 35_000, 1, True),
    ]


def test_view_of_sliding_windows_merges_their_panes() -> None:
    toml = '[windows.w]\nassign = "sliding 10s every 5s"\naggregate = { n = "count", s = "sum args.v" }\n'
    stage = stage_of(toml)
    state = stage.new_state("d")
    for i, e in enumerate([ev(6_000, v=1), ev(11_000, v=2)]):
        stage.process(state, i, e, [])
    rows = stage.view(state, now_ms=12_000)["windows"]["w"]["open"]
    assert [(r["start"], r["end"], r["values"]) for r in rows] == [
        (5_000, 15_000, {"n": 2, "s": 3}), (10_000, 20_000, {"n": 1, "s": 2}),
    ]  # fmt: skip


def test_one_window_fast_path_equals_the_general_loop() -> None:
    # With one window the stage calls its one step directly (``_only``); the loop is what every
    # other shape runs. Both must give the same records on the same events.
    toml = TUMBLING
    events = [ev(ts, "click", v=ts % 7) for ts in (1_000, 12_000, 4_000, 25_000, 9_000, 41_000)]
    events += [ev(ts, "view") for ts in (30_000, 2_000, 55_000)]
    fast, slow = stage_of(toml), stage_of(toml)
    assert fast._only is not None  # the fast path is on
    slow._only = None  # and off: the general loop
    out_fast: list[dict[str, Any]] = []
    out_slow: list[dict[str, Any]] = []
    st_fast, st_slow = fast.new_state("d"), slow.new_state("d")
    for i, e in enumerate(events):
        fast.process(st_fast, i, e, out_fast)
        slow.process(st_slow, i, e, out_slow)
    fast.close(st_fast, out_fast)
    slow.close(st_slow, out_slow)
    assert out_fast == out_slow
    assert any(r["kind"] == "late" for r in out_fast)


def test_a_sliding_window_adds_its_panes_in_time_order_whatever_order_they_came_in() -> None:
    """Float sums depend on the order of the additions: a window's panes are merged by their
    time, so one event per pane gives the same sum in any arrival order."""
    stage = stage_of(
        '[engine]\nlateness = "10m"\n[windows.s]\nassign = "sliding 3m every 1m"\n'
        'aggregate = { s = "sum args.v" }\n'
    )
    # panes [0,1m), [1m,2m), [2m,3m); they arrive third, first, second
    out = run(stage, [ev(150_000, v=3.3), ev(30_000, v=0.1), ev(90_000, v=0.2)])
    whole = [r["values"]["s"] for r in out if (r["start"], r["end"]) == (0, 180_000)]
    assert whole == [(0.1 + 0.2) + 3.3]  # 3.5999999999999996; (3.3 + 0.1) + 0.2 is 3.6
