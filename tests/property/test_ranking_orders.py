"""Orderings against a plain reference: beam search equals brute force over every ordering
on pages of up to 7 items, never scores below greedy, and re-ranks permute the unseen set."""

from __future__ import annotations

import math
from itertools import permutations

from hypothesis import given
from hypothesis import strategies as st

from streamfeat._event import Event
from streamfeat.ranking import FeedState, ListValue, beam_search, brute_force, greedy
from streamfeat.ranking._catalogue import page_of

scores_st = st.lists(st.floats(0, 1, allow_nan=False), min_size=0, max_size=7)
values_st = st.builds(
    ListValue,
    penalty=st.floats(0, 1),
    window=st.integers(0, 3),
    discount=st.floats(0.5, 1.0),
)


def _reference_best(scores: list[float], cats: list[int], v: ListValue) -> float:
    # the plain reference: the value of every ordering, written out again here
    def value(order: tuple[int, ...]) -> float:
        total = 0.0
        for n, i in enumerate(order):
            recent = order[max(0, n - v.window) : n] if v.window else ()
            total += v.discount**n * (
                scores[i] - v.penalty * sum(cats[j] == cats[i] for j in recent)
            )
        return total

    return max((value(p) for p in permutations(range(len(scores)))), default=0.0)


@given(data=st.data(), scores=scores_st, v=values_st)
def test_wide_beam_equals_brute_force(
    data: st.DataObject, scores: list[float], v: ListValue
) -> None:
    cats = data.draw(st.lists(st.integers(0, 3), min_size=len(scores), max_size=len(scores)))
    best = _reference_best(scores, cats, v)
    bf = brute_force(scores, cats, v)
    assert math.isclose(v.value(scores, cats, bf), best, rel_tol=1e-9, abs_tol=1e-9)
    beam = beam_search(scores, cats, v, width=math.factorial(max(len(scores), 1)))
    assert sorted(beam) == list(range(len(scores)))
    assert math.isclose(v.value(scores, cats, beam), best, rel_tol=1e-9, abs_tol=1e-9)


@given(data=st.data(), scores=scores_st, v=values_st, width=st.integers(1, 6),
       depth=st.none() | st.integers(1, 7))  # fmt: skip
def test_beam_never_below_greedy(data: st.DataObject, scores: list[float], v: ListValue,
                                 width: int, depth: int | None) -> None:  # fmt: skip
    cats = data.draw(st.lists(st.integers(0, 3), min_size=len(scores), max_size=len(scores)))
    beam = beam_search(scores, cats, v, width=width, depth=depth)
    assert sorted(beam) == list(range(len(scores)))
    g = greedy(scores)
    assert v.value(scores, cats, beam) >= v.value(scores, cats, g) - 1e-12
    assert v.value(scores, cats, beam) <= _reference_best(scores, cats, v) + 1e-9


@given(scores=scores_st)
def test_greedy_sorts_by_score(scores: list[float]) -> None:
    g = greedy(scores)
    assert sorted(g) == list(range(len(scores)))
    assert [scores[i] for i in g] == sorted(scores, reverse=True)


actions_st = st.lists(
    st.tuples(
        st.sampled_from(["exposure", "click", "delete", "scroll", "rerank"]),
        st.integers(0, 9),
        st.randoms(use_true_random=False),
    ),
    max_size=40,
)


@given(actions=actions_st)
def test_reranks_move_only_unseen_and_never_revive_deleted(actions: list) -> None:  # type: ignore[type-arg]
    items = [str(11_000_000 + i) for i in range(10)]
    s = FeedState(page_of("home_feed", "p", items))
    deleted: set[str] = set()
    for t, (kind, k, rnd) in enumerate(actions):
        if kind == "rerank":
            seen_before = [i for i in s.order if s.is_seen(i)]
            unseen = s.unseen()
            new = unseen[:]
            rnd.shuffle(new)
            s.apply("p", new)
            assert [i for i in s.order if s.is_seen(i)] == seen_before  # the seen do not move
            assert s.order[len(seen_before) :] == new  # a permutation of the unseen set
        else:
            s.observe(Event(ts=t, type=kind, page="home_feed", item=items[k] if kind != "scroll" else None,
                            args={"speed": 100} if kind == "scroll" else {}))  # fmt: skip
            if kind == "delete":
                deleted.add(items[k])
        assert not deleted & set(s.order)
        assert len(set(s.order)) == len(s.order)
        assert set(s.order) | deleted == set(items)
