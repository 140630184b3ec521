"""Two short cuts of the matcher, checked against the reference.

* Keywords over classes: a run of positions whose classes give at most ``KEYWORD_WORDS``
  spellings is one anchor of that many words, so its positions need no check.
* The last segment: when it completes at the current event, only the entry the firing check
  will choose joins the frontier; for ``A * B`` it is looked up in the noted starts of ``A``.
"""

from __future__ import annotations

import random

import msgpack
import pytest

from streamfeat._event import Event
from streamfeat.triggers import Matcher, parse_pattern
from streamfeat.triggers._trie import KEYWORD_WORDS, Segment
from tests.unit.triggers.reference import reference_firings

BIG_MS = 10**12


def _matcher(texts: list[str], limit_ms: int = BIG_MS, limit_events: int = 100_000) -> Matcher:
    return Matcher(
        {f"t{i}": parse_pattern(t, name=f"t{i}") for i, t in enumerate(texts)},
        limit_ms=limit_ms,
        limit_events=limit_events,
    )


def _segment(m: Matcher, name: str, j: int = 0) -> Segment:
    plan = m.c.plans[m.c.by_name[name]]
    return m.c.segments[plan.segments[j]]


def test_a_run_over_small_classes_is_one_anchor_with_nothing_to_check() -> None:
    # `exposure` is the class {exposure, exposure@feed, exposure@cart}: exposure{3} is 27 words
    m = _matcher(["exposure{3}", "exposure@feed", "exposure@cart"])
    seg = _segment(m, "t0")
    assert (seg.kw_start, seg.kw_end, seg.verify) == (0, 2, ())
    assert sum(1 for sids in m.c.keywords.values() if m.c.by_name["t0"] in sids) == 27


def test_an_anchor_never_starts_later_than_the_single_symbol_run() -> None:
    named = ["b@x", "b@y", "b@z", "c@x", "c@y", "c@z", "d@x", "d@y", "d@z", "e@x", "e@y"]
    # `b c d` is 64 words, longer than `a`, but starts later: the device would have to look back
    m = _matcher(["a ? b c d", "(e|f) a", *named])
    seg = _segment(m, "t0")
    assert (seg.kw_start, seg.kw_end) == (0, 0)
    assert m.c.lookback == 0
    # `(e|f) a`: the class (e, e@x, e@y, f) joins `a` in one anchor of 4 words from position 0,
    # where the single-symbol run alone (`a`) would have looked back one event
    seg2 = _segment(m, "t1")
    assert (seg2.kw_start, seg2.kw_end, seg2.verify) == (0, 1, ())


def test_a_run_past_the_word_limit_is_cut_and_the_rest_checked() -> None:
    pages = [f"p{k}" for k in range(KEYWORD_WORDS)]  # `a` becomes a class of 65 symbols
    m = _matcher(["a b a", "b", *(f"a@{p}" for p in pages)])
    seg = _segment(m, "t0")
    assert (seg.kw_start, seg.kw_end) == (1, 1)  # `b` alone: any run with an `a` is 65 words
    assert [i for i, _ in seg.verify] == [0, 2]
    m2 = _matcher(["a a", *(f"a@{p}" for p in pages)])
    seg2 = _segment(m2, "t0")
    assert (seg2.kw_start, seg2.kw_end) == (1, 1)  # every class too large: the last smallest
    events = [Event(i, "a", "d", "p3" if i % 2 else None, None, {}) for i in range(6)]
    st = m2.new_state()
    got = [
        (f.trigger, f.first, f.last)
        for i, e in enumerate(events)
        for f in m2.step(st, i, e)
        if f.trigger == "t0"  # (the others are the `a@pK` that name the pages)
    ]
    assert got == reference_firings({"t0": parse_pattern("a a", name="t0")}, events)
    assert got == [("t0", 0, 1), ("t0", 2, 3), ("t0", 4, 5)]


LAST_SEGMENT = [
    "a * b within 5s",
    "(a|c@x) * b@y within 2s",
    "a@x * (b|c) within 9s",
    "c b * a without b@x within 4s",
    "a * a within 3s",
    "b * c{2} within 6s",
    "a * b",
    "a@y * b * c within 8s",
    "b * a * c without a@x",
]


def _stream(rng: random.Random, n: int) -> list[Event]:
    events, ts = [], 1_000_000
    for _ in range(n):
        ts += rng.choice((-3000, -700, 0, 300, 800, 1500, 4000))  # timestamps go back now and then
        events.append(Event(ts, rng.choice("abc"), "d", rng.choice((None, "x", "y")), None, {}))
    return events


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("limit_ms", "limit_events"), [(BIG_MS, 100_000), (6_000, 9)])
def test_the_last_segment_chosen_at_once_equals_the_reference(
    seed: int, limit_ms: int, limit_events: int
) -> None:
    """Both drivers, and a run snapshotted and restored half-way, give the reference's firings
    for triggers whose last segment is the second or the third, with and without ``within``."""
    rng = random.Random(seed)
    events = _stream(rng, 400)
    patterns = {f"t{i}": parse_pattern(t, name=f"t{i}") for i, t in enumerate(LAST_SEGMENT)}
    want = reference_firings(patterns, events, limit_ms=limit_ms, limit_events=limit_events)
    m = _matcher(LAST_SEGMENT, limit_ms, limit_events)
    st = m.new_state()
    got = []
    for i, e in enumerate(events):
        if i == 200:
            st = m.load(msgpack.unpackb(msgpack.packb(m.dump(st)), strict_map_key=False))
        got += [(f.trigger, f.first, f.last) for f in m.step(st, i, e)]
    assert got == want
    batch = _matcher(LAST_SEGMENT, limit_ms, limit_events).run_batch(events)
    assert [(f.trigger, f.first, f.last) for f in batch] == want
    assert len({f[0] for f in want}) >= 7  # most triggers fire
    assert len(want) > 50
