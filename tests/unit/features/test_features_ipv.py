"""ipv: hand-written visits with known answers (SPEC section 4)."""

from __future__ import annotations

from typing import Any

from streamfeat._event import Event
from streamfeat.features import FeatureStage
from streamfeat.tasks import parse_tasks

IPV = '[features.ipv]\nkind = "ipv"\n'
ZERO = dict.fromkeys(
    ("add_cart", "purchase", "favorite", "comment", "select_sku", "ask",
     "service", "detail", "shop", "recommend", "share", "scroll"), 0,
)  # fmt: skip


def ev(ts: int, etype: str, page: str | None = None, item: str | None = None, **args: Any) -> Event:
    return Event(ts, etype, "d", page, item, args)


def enter(ts: int, item: str) -> Event:
    return ev(ts, "page_enter", "item_detail", item)


def leave(ts: int, item: str) -> Event:
    return ev(ts, "page_exit", "item_detail", item)


def run(events: list[Event], toml: str = IPV, *, close: bool = True) -> list[dict[str, Any]]:
    stage = FeatureStage(parse_tasks(toml))
    state = stage.new_state("d")
    out: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        stage.process(state, i, e, out)
    if close:
        stage.close(state, out)
    return out


def values(item: str, enter_ts: int, dwell: int, truncated: bool, **counts: int) -> dict[str, Any]:
    return {"item": item, "enter_ts": enter_ts, "dwell_ms": dwell, "truncated": truncated,
            **ZERO, **counts}  # fmt: skip


def test_one_visit_counts_its_actions() -> None:
    out = run([
        ev(0, "app_foreground"), enter(100, "A"), ev(200, "scroll", "item_detail", "A"),
        ev(300, "click", "item_detail", "A", control="ask"), ev(400, "add_cart", "item_detail", "A"),
        ev(450, "page_enter", "shop"), ev(460, "page_exit", "shop"), leave(1_100, "A"),
        ev(1_200, "add_cart"),  # after the visit: counts for nothing
    ])  # fmt: skip
    assert out == [{"kind": "feature", "feature": "ipv", "device": "d", "ts": 1_100,
                    "values": values("A", 100, 1_000, False, scroll=1, ask=1, add_cart=1, shop=1)}]  # fmt: skip


def test_nested_visits_count_for_the_innermost_only() -> None:
    out = run([
        enter(0, "A"), ev(10, "click", "item_detail", "A", control="recommend"),
        enter(20, "B"), ev(30, "favorite", "item_detail", "B"), leave(40, "B"),
        ev(50, "share", "item_detail", "A"), leave(60, "A"),
    ])  # fmt: skip
    assert [r["values"] for r in out] == [
        values("B", 20, 20, False, favorite=1),
        values("A", 0, 60, False, recommend=1, share=1),
    ]


def test_leaving_an_outer_visit_truncates_the_ones_opened_inside_it() -> None:
    out = run([enter(0, "A"), enter(10, "B"), enter(20, "C"), ev(25, "purchase"), leave(30, "A")])
    assert [(r["values"]["item"], r["ts"], r["values"]["truncated"]) for r in out] == [
        ("C", 30, True), ("B", 30, True), ("A", 30, False),
    ]  # fmt: skip
    assert out[0]["values"]["purchase"] == 1


def test_an_exit_without_an_open_visit_is_ignored_and_counted() -> None:
    stage = FeatureStage(parse_tasks(IPV))
    state = stage.new_state("d")
    out: list[dict[str, Any]] = []
    for i, e in enumerate([enter(0, "A"), leave(5, "Z"), leave(10, "A")]):
        stage.process(state, i, e, out)
    assert len(out) == 1
    assert out[0]["values"]["dwell_ms"] == 10
    assert stage.view(state, 10)["features"]["ipv"]["ignored_exits"] == 1


def test_the_same_item_nested_closes_the_innermost_first() -> None:
    out = run([enter(0, "A"), enter(10, "A"), leave(20, "A"), leave(35, "A")])
    assert [(r["values"]["enter_ts"], r["values"]["dwell_ms"]) for r in out] == [(10, 10), (0, 35)]


def test_app_background_and_end_of_replay_truncate() -> None:
    out = run(
        [enter(0, "A"), enter(5, "B"), ev(9, "app_background"), enter(20, "C"), ev(70, "scroll")]
    )
    assert [(r["values"]["item"], r["ts"], r["values"]["truncated"]) for r in out] == [
        ("B", 9, True), ("A", 9, True), ("C", 70, True),
    ]  # fmt: skip
    assert out[2]["values"]["scroll"] == 1


def test_the_partial_limit_truncates_at_enter_plus_limit() -> None:
    toml = '[engine]\npartial_limit = "1m"\n' + IPV
    out = run([enter(0, "A"), enter(1_000, "B"), ev(60_001, "scroll")], toml, close=False)
    assert [(r["values"]["item"], r["ts"], r["values"]["truncated"]) for r in out] == [
        ("B", 60_000, True), ("A", 60_000, True),
    ]  # fmt: skip
    assert out[0]["values"]["scroll"] == 0  # the late event belongs to no visit


def test_the_agent_clock_applies_the_partial_limit_to_a_quiet_device() -> None:
    stage = FeatureStage(parse_tasks('[engine]\npartial_limit = "1m"\n' + IPV))
    state = stage.new_state("d")
    out: list[dict[str, Any]] = []
    stage.process(state, 0, enter(0, "A"), out)
    stage.advance(state, 60_000, out)
    assert out == []
    assert not stage.idle(state)
    stage.advance(state, 60_001, out)
    assert out[0]["values"]["dwell_ms"] == 60_000
    assert stage.idle(state)


def test_custom_actions_and_detail_page() -> None:
    toml = '[features.v]\nkind = "ipv"\npage = "pdp"\nactions = ["like", "click"]\n'
    out = run([ev(0, "page_enter", "pdp", "X"), ev(1, "like"), ev(2, "click", control="like"),
               ev(3, "page_exit", "pdp", "X")], toml)  # fmt: skip
    assert out[0]["values"] == {"item": "X", "enter_ts": 0, "dwell_ms": 3, "truncated": False,
                                "like": 2, "click": 1}  # fmt: skip


def test_view_gives_latest_records_and_decay_at_read_time() -> None:
    stage = FeatureStage(parse_tasks(IPV))
    state = stage.new_state("d")
    for i, e in enumerate([enter(0, "A"), leave(100, "A"), enter(200, "B")]):
        stage.process(state, i, e, [])
    view = stage.view(state, now_ms=1_000)["features"]["ipv"]
    assert view["ts"] == 100
    assert view["since_ms"] == 900
    assert view["records"][0]["item"] == "A"
    assert view["open_visits"][0]["since_enter_ms"] == 800
    assert stage.view(state, now_ms=2_000)["features"]["ipv"]["since_ms"] == 1_900
