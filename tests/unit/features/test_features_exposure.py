"""exposure: hand-written feed visits with known answers (SPEC section 4)."""

from __future__ import annotations

from typing import Any

from streamfeat._event import Event
from streamfeat._records import raw_size
from streamfeat.features import FeatureStage
from streamfeat.tasks import parse_tasks

EXPOSURE = '[features.exposure]\nkind = "exposure"\n'


def ev(
    ts: int, etype: str, page: str | None = "home_feed", item: str | None = None, **args: Any
) -> Event:
    return Event(ts, etype, "d", page, item, args)


def run(events: list[Event], toml: str = EXPOSURE, **kw: Any) -> list[dict[str, Any]]:
    stage = FeatureStage(parse_tasks(toml), **kw)
    state = stage.new_state("d")
    out: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        stage.process(state, i, e, out)
    stage.close(state, out)
    return out


VISIT = [
    ev(0, "page_enter"),
    ev(10, "exposure", item="a", pos=1, dur_ms=100),
    ev(20, "exposure", item="b", pos=2, dur_ms=500),
    ev(50, "scroll", speed=300),  # a and b exposed
    ev(200, "scroll", speed=900),  # only b
    ev(210, "exposure", item="a", pos=7, dur_ms=40),
    ev(230, "scroll", speed=50),  # a (second exposure) and b
    ev(240, "delete", item="b", reason="not_interested"),
    ev(250, "click", item="a"),
    ev(260, "page_enter", "item_detail", "a"),  # leaving for a detail page keeps the visit
    ev(270, "scroll", "item_detail", speed=9_999),  # not a feed scroll
    ev(280, "page_exit", "item_detail", "a"),
    ev(900, "page_exit"),
]


def test_one_feed_visit_gives_one_record_per_exposed_item() -> None:
    out = run(VISIT)
    assert [r["ts"] for r in out] == [900, 900]
    assert [r["values"] for r in out] == [
        {"item": "a", "page": "home_feed", "visit_start": 0, "first_pos": 1, "exposures": 2,
         "exposure_ms": 140, "scrolls": 2, "max_scroll_speed": 300, "clicked": True,
         "deleted": False, "delete_reason": None},
        {"item": "b", "page": "home_feed", "visit_start": 0, "first_pos": 2, "exposures": 1,
         "exposure_ms": 500, "scrolls": 3, "max_scroll_speed": 900, "clicked": False,
         "deleted": True, "delete_reason": "not_interested"},
    ]  # fmt: skip


def test_sizes_count_the_events_that_went_into_each_record() -> None:
    out = run(VISIT, sizes=True)
    a_events = [VISIT[i] for i in (1, 3, 5, 6, 8)]  # exposures, click, scrolls while exposed
    assert out[0]["_raw_bytes"] == sum(raw_size(e) for e in a_events)


def test_a_missing_page_enter_opens_a_visit_at_the_first_exposure() -> None:
    out = run([ev(5, "exposure", item="x"), ev(9, "app_background"), ev(20, "exposure", item="y")])
    assert [(r["values"]["item"], r["values"]["visit_start"], r["ts"]) for r in out] == [
        ("x", 5, 9), ("y", 20, 20),
    ]  # fmt: skip
    assert out[0]["values"]["exposure_ms"] == 0
    assert out[0]["values"]["first_pos"] is None


def test_entering_the_feed_again_starts_a_new_visit() -> None:
    out = run([ev(0, "page_enter"), ev(1, "exposure", item="x"), ev(5, "page_enter"),
               ev(6, "exposure", item="x"), ev(8, "click", item="x")])  # fmt: skip
    assert [(r["values"]["visit_start"], r["ts"], r["values"]["clicked"]) for r in out] == [
        (0, 5, False), (5, 8, True),
    ]  # fmt: skip


def test_other_feed_pages_are_configurable() -> None:
    toml = '[features.e]\nkind = "exposure"\nfeed_pages = ["discover"]\n'
    out = run([ev(0, "exposure", "home_feed", "x"), ev(1, "exposure", "discover", "y")], toml)
    assert [r["values"]["item"] for r in out] == ["y"]


def test_the_partial_limit_closes_a_forgotten_feed_visit() -> None:
    toml = '[engine]\npartial_limit = "1h"\n' + EXPOSURE
    out = run([ev(0, "page_enter"), ev(1, "exposure", item="x"), ev(3_600_001, "scroll")], toml)
    assert [r["ts"] for r in out] == [3_600_000]


def test_records_follow_first_exposure_when_an_item_was_clicked_before_it_was_exposed() -> None:
    """An item clicked (or deleted) before its first exposure enters the visit first but is
    ranked by its first exposure; scrolls that arrive out of time order still count by ts."""
    out = run(
        [
            ev(0, "page_enter"),
            ev(5, "click", item="a"),  # a's entry is made here, not yet exposed
            ev(10, "exposure", item="b", pos=1, dur_ms=100),
            ev(20, "exposure", item="a", pos=2, dur_ms=100),
            ev(60, "scroll", speed=7),
            ev(15, "scroll", speed=3),  # late: before a's exposure, within b's
            ev(900, "page_exit"),
        ]
    )
    assert [(r["values"]["item"], r["values"]["scrolls"]) for r in out] == [("b", 2), ("a", 1)]
    assert [r["values"]["max_scroll_speed"] for r in out] == [7, 7]
