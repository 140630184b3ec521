"""Pages and feed state: parsing, what observe() records, and re-rank semantics (only the
unseen move, a deleted item never comes back, the order is a permutation of the unseen)."""

from __future__ import annotations

import pytest

from streamfeat._event import Event
from streamfeat.ranking import FeedState, Page, PageError
from streamfeat.ranking._catalogue import item_features, page_of

FEED = "home_feed"


def ev(
    ts: int, etype: str, item: str | None = None, page: str | None = FEED, **args: object
) -> Event:
    return Event(ts=ts, type=etype, page=page, item=item, args=dict(args))  # type: ignore[arg-type]


def state(n: int = 6) -> FeedState:
    return FeedState(page_of(FEED, "p1", [str(11_700_000 + i) for i in range(n)]))


def test_page_from_dict_round_trip_and_errors() -> None:
    p = page_of(FEED, "p1", ["1", "2"])
    assert Page.from_dict(p.to_dict()) == p
    bad = p.to_dict()
    bad["candidates"][1]["item"] = "1"
    with pytest.raises(PageError, match="twice"):
        Page.from_dict(bad)
    bad = p.to_dict()
    del bad["candidates"][0]["features"]["age_h"]
    with pytest.raises(PageError, match="age_h"):
        Page.from_dict(bad)
    bad = p.to_dict()
    bad["candidates"][0]["features"]["price_level"] = float("nan")
    with pytest.raises(PageError, match="finite"):
        Page.from_dict(bad)
    with pytest.raises(PageError):
        Page.from_dict({"feed": "", "page_id": "x", "candidates": []})


def test_catalogue_is_deterministic_and_uses_generated_categories() -> None:
    assert item_features("11700042") == item_features("11700042")
    assert item_features("11700042")["category"] == 117.0
    assert 100 <= item_features("some-sku")["category"] < 292


def test_observe_records_exposure_scroll_click_delete() -> None:
    s = state()
    items = s.order[:]
    assert s.observe(ev(1000, "exposure", items[0], pos=1, dur_ms=500)) == "exposure"
    assert s.observe(ev(1200, "scroll", speed=900)) == "scroll"
    assert s.observe(ev(2000, "scroll", speed=5000)) == "scroll"  # after the exposure ended
    assert s.observe(ev(2100, "click", items[0])) == "click"
    assert s.observe(ev(2200, "delete", items[3], reason="x")) == "delete"
    assert s.observe(ev(2300, "exposure", items[1], page="item_detail")) is None
    assert s.observe(ev(2300, "exposure", "not-on-page")) is None
    st = s.stats[items[0]]
    assert (st.exposures, st.exposure_ms, st.first_pos, st.scrolls, st.max_scroll_speed) == (
        1, 500.0, 1.0, 1, 900.0)  # fmt: skip
    assert st.clicked
    assert items[3] not in s.order
    assert s.unseen() == [items[1], items[2], items[4], items[5]]


def test_apply_moves_only_unseen_and_deleted_never_returns() -> None:
    s = state(8)
    items = s.order[:]
    s.observe(ev(1, "exposure", items[0]))
    s.observe(ev(2, "exposure", items[1]))
    s.observe(ev(3, "delete", items[5]))
    new = list(reversed(s.unseen()))
    assert s.apply("p1", new)
    assert s.order[:2] == items[:2]
    assert s.order[2:] == new
    assert items[5] not in s.order
    # a result naming the deleted item (computed before the delete) cannot bring it back
    s.observe(ev(4, "delete", items[7]))
    assert s.apply("p1", [items[7], items[6], items[2]])
    assert items[7] not in s.order
    assert sorted(s.order) == sorted(i for i in items if i not in (items[5], items[7]))


def test_apply_keeps_items_exposed_during_inference_in_place() -> None:
    s = state(5)
    items = s.order[:]
    snap = s.snapshot(50)
    s.observe(ev(1, "exposure", items[0]))  # seen while the model ran
    assert s.apply(snap.page_id, [c.item for c in reversed(snap.unseen)])
    assert s.order == [items[0], items[4], items[3], items[2], items[1]]


def test_apply_refuses_foreign_items_and_ignores_old_pages() -> None:
    s = state(3)
    before = s.order[:]
    with pytest.raises(ValueError, match="distinct items"):
        s.apply("p1", ["zzz"])
    with pytest.raises(ValueError, match="distinct items"):
        s.apply("p1", [before[0], before[0]])
    assert s.order == before
    assert not s.apply("p0", list(reversed(before)))
    assert s.order == before


def test_next_page_carries_deletions_and_exposure_history() -> None:
    s = state(4)
    items = s.order[:]
    s.observe(ev(1, "exposure", items[0], dur_ms=10))
    s.observe(ev(2, "delete", items[1]))
    nxt = s.next_page(page_of(FEED, "p2", [items[1], "999"]))
    assert nxt.order == ["999"]  # the deleted item does not come back in a later page
    snap = nxt.snapshot(50)
    assert [r["exposure_ms"] for r in snap.exposure_rows] == [10.0, 0.0]
    assert [c.item for c in snap.unseen] == ["999"]
