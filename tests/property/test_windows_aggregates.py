"""Aggregates: incremental update equals recomputation, merge equals one window, dumps round-trip."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfeat._event import Event
from streamfeat.windows import AggregateSet, AggSpec

SPECS = (
    ("n", AggSpec("count")), ("sum", AggSpec("sum", "args.v")), ("min", AggSpec("min", "args.v")),
    ("max", AggSpec("max", "args.v")), ("mean", AggSpec("mean", "args.v")),
    ("first", AggSpec("first", "args.v")), ("last", AggSpec("last", "args.v")),
    ("distinct", AggSpec("distinct", "args.v")), ("top", AggSpec("top", "args.v", 3)),
)  # fmt: skip

# ints only for sum/mean exactness under merge; ties between True and 1, 1 and 1.0 on purpose
values = st.one_of(
    st.none(), st.integers(-3, 3), st.sampled_from([1.0, 2.0, True, False, "a", "b"])
)


def events_of(vals: list[Any]) -> list[Event]:
    return [Event(i, "e", args={} if v is None else {"v": v}) for i, v in enumerate(vals)]


def fold(aggs: AggregateSet, evs: list[tuple[int, Event]]) -> list[Any]:
    acc = aggs.new()
    for seq, e in evs:
        aggs.update(acc, e, seq)
    return acc


@given(st.lists(values, max_size=30), st.lists(st.booleans(), min_size=30, max_size=30))
def test_merge_of_two_interleaved_windows_equals_one_window(
    vals: list[Any], side: list[bool]
) -> None:
    """Sessions that merge hold interleaved arrivals: merge(A, B) must equal fold(A + B)."""
    aggs = AggregateSet(SPECS)
    evs = list(enumerate(events_of(vals)))
    a = [x for x in evs if side[x[0]]]
    b = [x for x in evs if not side[x[0]]]
    whole = aggs.values(fold(aggs, evs))
    merged = aggs.values(aggs.merge(fold(aggs, a), fold(aggs, b)))
    swapped = aggs.values(aggs.merge(fold(aggs, b), fold(aggs, a)))
    for got in (merged, swapped):
        for name in whole:
            assert got[name] == whole[name], name
            assert type(got[name]) is type(whole[name]), name


@given(st.lists(values, max_size=30))
def test_dump_load_round_trip_through_msgpack(vals: list[Any]) -> None:
    aggs = AggregateSet(SPECS, sizes=True)
    acc = fold(aggs, list(enumerate(events_of(vals))))
    blob = msgpack.packb(aggs.dump(acc), use_bin_type=True)
    back = aggs.load(msgpack.unpackb(blob, raw=False, strict_map_key=False))
    assert aggs.dump(back) == aggs.dump(acc)
    assert aggs.values(back) == aggs.values(acc)
    more = Event(99, "e", args={"v": 1})
    aggs.update(acc, more, 99)
    aggs.update(back, more, 99)
    assert aggs.values(back) == aggs.values(acc)


def test_empty_window_values_follow_the_null_rules() -> None:
    aggs = AggregateSet(SPECS)
    assert aggs.values(aggs.new()) == {
        "n": 0, "sum": None, "min": None, "max": None, "mean": None,
        "first": None, "last": None, "distinct": 0, "top": [],
    }  # fmt: skip


def test_missing_and_non_numeric_values_are_skipped_by_that_aggregate_only() -> None:
    aggs = AggregateSet(SPECS)
    acc = fold(aggs, list(enumerate(events_of([None, "a", 2, True, 3, None]))))
    v = aggs.values(acc)
    assert v["n"] == 6  # count counts events, not values
    assert v["sum"] == 5
    assert type(v["sum"]) is int
    assert v["mean"] == 2.5
    assert v["min"] is True  # numbers (True == 1) before strings
    assert v["max"] == "a"
    assert v["first"] == "a"
    assert v["last"] == 3
    assert v["distinct"] == 4


def test_top_k_breaks_ties_by_first_arrival() -> None:
    aggs = AggregateSet((("top", AggSpec("top", "args.v", 2)),))
    acc = fold(aggs, list(enumerate(events_of(["b", "a", "c", "a", "c", "b", "d"]))))
    assert aggs.values(acc)["top"] == [["b", 2], ["a", 2]]


@pytest.mark.parametrize(("vals", "want"), [([1, 1.0, True], 2), (["1", 1], 2), ([2.5, 2.5], 1)])
def test_distinct_counts_booleans_apart_and_equal_numbers_once(vals: list[Any], want: int) -> None:
    aggs = AggregateSet((("d", AggSpec("distinct", "args.v")),))
    assert aggs.values(fold(aggs, list(enumerate(events_of(vals)))))["d"] == want


def test_sum_keeps_int_and_mixes_to_float() -> None:
    aggs = AggregateSet((("s", AggSpec("sum", "args.v")),))
    assert aggs.values(fold(aggs, list(enumerate(events_of([1, 2])))))["s"] == 3
    mixed = aggs.values(fold(aggs, list(enumerate(events_of([1, 0.5])))))["s"]
    assert mixed == 1.5
    assert type(mixed) is float


@given(st.lists(values, max_size=40), st.lists(st.integers(0, 4), min_size=40, max_size=40))
def test_merge_all_equals_merging_one_by_one_and_leaves_its_inputs(
    vals: list[Any], pane: list[int]
) -> None:
    # a sliding window's panes: merge_all copies a set-valued accumulator once, not per merge
    aggs = AggregateSet(SPECS)
    evs = list(enumerate(events_of(vals)))
    accs = [fold(aggs, [(s, e) for s, e in evs if pane[s] == p]) for p in range(5)]
    before = [msgpack.packb(aggs.dump(a)) for a in accs]
    want = accs[0]
    for other in accs[1:]:
        want = aggs.merge(want, other)
    for n in range(1, 6):
        one_by_one = accs[0]
        for other in accs[1:n]:
            one_by_one = aggs.merge(one_by_one, other)
        assert aggs.values(aggs.merge_all(accs[:n])) == aggs.values(one_by_one)
    assert aggs.dump(aggs.merge_all(accs)) == aggs.dump(want)
    assert [msgpack.packb(aggs.dump(a)) for a in accs] == before


def top_reference(vals: list[Any], k: int) -> list[list[Any]]:
    """``top k`` written plainly: count each value (equal numbers as one, booleans apart), keep
    its first arrival, sort by count down then first arrival, take k."""
    seen: dict[Any, list[Any]] = {}
    for seq, v in enumerate(vals):
        if v is None:
            continue
        key = (v,) if type(v) is bool else v
        if key in seen:
            seen[key][1] += 1
        else:
            seen[key] = [v, 1, seq]
    ranked = sorted(seen.values(), key=lambda s: (-s[1], s[2]))
    return [[v, n] for v, n, _ in ranked[:k]]


@given(
    st.lists(st.one_of(st.none(), st.integers(0, 12), st.sampled_from([True, "a"])), max_size=60),
    st.lists(st.integers(0, 2), min_size=60, max_size=60),
    st.sampled_from([1, 2, 3, 5, 16, 17, 40]),
)
def test_top_k_matches_a_plain_sort_for_small_and_large_k(
    vals: list[Any], part: list[int], k: int
) -> None:
    """Small k ranks by insertion into the k best, large k by one sort: both must give the
    plain sort's answer, ties by first arrival included. The arrivals are folded into three
    panes and merged (as a sliding window's are), so the merged map's order is not the order
    of first arrival."""
    aggs = AggregateSet((("top", AggSpec("top", "args.v", k)),))
    evs = list(enumerate(events_of(vals)))
    panes = [fold(aggs, [x for x in evs if part[x[0]] == p]) for p in (2, 0, 1)]
    got = aggs.values(aggs.merge_all(panes))["top"]
    assert got == top_reference(vals, k)


PLAN_SPECS = (
    *SPECS,
    ("pages", AggSpec("distinct", "page")), ("top_item", AggSpec("top", "item", 2)),
    ("first_ts", AggSpec("first", "ts")), ("last_type", AggSpec("last", "type")),
    ("devices", AggSpec("distinct", "device")), ("sum_ts", AggSpec("sum", "ts")),
)  # fmt: skip

arg_values = st.one_of(st.integers(-3, 3), st.sampled_from([1.0, 2.5, True, False, "a", "b"]))


@st.composite
def plan_events(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(0, 25))
    return [
        Event(
            draw(st.integers(0, 50)),
            draw(st.sampled_from(["exposure", "click", "page_enter"])),
            draw(st.sampled_from(["d1", "d2"])),
            draw(st.one_of(st.none(), st.sampled_from(["home", "item"]))),
            draw(st.one_of(st.none(), st.sampled_from(["i1", "i2", "i3"]))),
            draw(st.dictionaries(st.sampled_from(["v", "w"]), arg_values, max_size=2)),
        )
        for _ in range(n)
    ]


@given(plan_events(), st.booleans())
def test_update_equals_the_updaters_one_after_the_other(evs: list[Event], sizes: bool) -> None:
    """``AggregateSet.update`` writes the common aggregates out in one loop; the updaters in
    ``steps`` are the reference. Every slot must be equal, and of the same type, after any
    events (fields absent, booleans, floats, strings; min, max and mean through their
    updaters; the raw size slot when ``sizes``)."""
    aggs = AggregateSet(PLAN_SPECS, sizes=sizes)
    got, want = aggs.new(), aggs.new()
    for seq, e in enumerate(evs):
        aggs.update(got, e, seq)
        for step in aggs.steps:
            step(want, e, seq)
    assert got == want
    assert [type(x) for x in got] == [type(x) for x in want]
    assert aggs.values(got) == aggs.values(want)
