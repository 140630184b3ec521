"""Conditions, ``+`` and optional steps (issue 12, item 7): parsing, meaning, and one test per
mistake, checking the error's fields (the pattern, the word, the reason), not its text."""

from __future__ import annotations

import msgpack
import pytest

from streamfeat._event import Event
from streamfeat._tokens import Token
from streamfeat.errors import TriggerSpecError
from streamfeat.tasks import parse_tasks
from streamfeat.triggers import Matcher, Step, parse_pattern
from streamfeat.triggers._condition import parse_condition
from streamfeat.triggers._pattern import CondToken
from tests.unit.triggers.reference import reference_firings


def ev(etype: str, item: str | None = None, page: str | None = None, **args: object) -> Event:
    return Event(1_000, etype, "d", page, item, args)  # type: ignore[arg-type]


def test_the_issue_examples_parse_into_conditioned_tokens() -> None:
    p = parse_pattern("exposure[args.dur_ms < 300] * click[item = 42]")
    first, _, last = p.steps
    assert first.tokens == (CondToken("exposure", None, parse_condition("args.dur_ms < 300")),)
    assert last.tokens == (CondToken("click", None, parse_condition("item = 42")),)
    assert str(p) == "exposure[args.dur_ms < 300] * click[item = 42]"
    # spaces inside brackets do not split the word; the same pattern written tightly
    assert parse_pattern("exposure[args.dur_ms<300] * click[item=42]").steps == p.steps


def test_plus_and_a_glued_question_mark_are_step_suffixes() -> None:
    p = parse_pattern("a+ (b|c@x)? d{2}+? ? e")
    assert p.steps == (
        Step("atom", (Token("a"),), 1, plus=True),
        Step("atom", (Token("b"), Token("c", "x")), 1, optional=True),
        Step("atom", (Token("d"),), 2, plus=True, optional=True),
        Step("any"),
        Step("atom", (Token("e"),)),
    )
    assert p.variable
    assert not parse_pattern("a ? b").variable  # a standalone `?` is still one event of any kind
    assert str(p) == "a+ (b|c@x)? d{2}+? ? e"


@pytest.mark.parametrize(
    ("cond", "event", "expected"),
    [
        ("args.dur_ms < 300", ev("x", dur_ms=120), True),
        ("args.dur_ms < 300", ev("x", dur_ms=300), False),
        ("args.dur_ms < 300", ev("x"), False),  # a missing field is false ...
        ("args.dur_ms != 300", ev("x"), False),  # ... whatever the operator
        ("item = 42", ev("x", item="42"), True),  # a number literal reads a string as a number
        ("item = 42", ev("x", item="042x"), False),
        ("item != 42", ev("x", item="abc"), True),
        ("item > 40", ev("x", item="abc"), False),  # not a number: not ordered against one
        ("item = abc", ev("x", item="abc"), True),  # a bare word is a string
        ('page = "item detail"', ev("x", page="item detail"), True),
        ("args.ok = true", ev("x", ok=True), True),
        ("args.ok = true", ev("x", ok=1), False),  # booleans only equal booleans
        ("args.v >= 1.5", ev("x", v=2), True),  # int and float alike
        ("args.v = 1", ev("x", v="1"), True),
        ('args.v = "1"', ev("x", v=1), False),  # a string literal only equals strings
        ("args.a = 1 or args.b = 1 and args.c = 1", ev("x", a=1), True),  # and binds tighter
        ("(args.a = 1 or args.b = 1) and args.c = 1", ev("x", a=1), False),
        ("type = x and ts >= 1000", ev("x"), True),
    ],
)
def test_condition_semantics(cond: str, event: Event, expected: bool) -> None:
    assert parse_condition(cond)(event) is expected


def _firings(texts: dict[str, str], events: list[Event]) -> list[tuple[str, int, int]]:
    trigs = {n: parse_pattern(t, name=n) for n, t in texts.items()}
    m = Matcher(trigs, limit_ms=10**12, limit_events=10**9)
    st = m.new_state()
    got = [(f.trigger, f.first, f.last) for i, e in enumerate(events) for f in m.step(st, i, e)]
    assert got == reference_firings(trigs, events, limit_ms=10**12, limit_events=10**9)
    return got


def test_short_exposures_then_a_click_on_item_42() -> None:
    events = [
        ev("exposure", dur_ms=500), ev("exposure", dur_ms=120), ev("scroll"),
        ev("click", item="7"), ev("click", item="42"),
    ]  # fmt: skip
    assert _firings({"t": "exposure[args.dur_ms < 300] * click[item = 42]"}, events) == [
        ("t", 1, 4)
    ]


def test_one_or_more_and_optional_steps_match_like_a_regular_expression() -> None:
    events = [ev(t) for t in ["a", "b", "b", "b", "c", "a", "c", "a", "x", "c"]]
    got = _firings({"plus": "a b+ c", "opt": "a b? c"}, events)
    assert got == [("plus", 0, 4), ("opt", 5, 6)]  # `a x c` matches neither


def test_the_shortest_match_of_a_plus_run_starts_as_late_as_possible() -> None:
    events = [ev(t) for t in ["a", "a", "a", "b"]]
    assert _firings({"t": "a+ b"}, events) == [("t", 2, 3)]


@pytest.mark.parametrize(
    ("text", "word", "why"),
    [
        ("a[item = 1", 1, "not closed"),
        ("a[]", 1, "empty"),
        ("a[foo = 1]", 1, "not a field"),
        ("a[item 1]", 1, "expected a comparison"),
        ("a[item =]", 1, "needs a value"),
        ("a[item = 1 and]", 1, "`and` needs a comparison"),
        ("a[(item = 1]", 1, "`(` in the condition is not closed"),
        ('a[item = "x]', 1, "string"),
        ("a[args.ok < true]", 1, "booleans compare"),
        ("a[item = 1 2]", 1, "not expected here"),
        ("a[item ! 1]", 1, "not allowed"),
        ("b (a|c)[item = 1]", 2, "belongs to each token"),
        ("b a [item = 1]", 3, "must be glued"),
        ("a ]", 2, "without a `[`"),
        ("+ a", 1, "can only follow a token"),
        ("a * +", 3, "can only follow a token"),
        ("a ++", 2, "given twice"),
        ("a?+", 1, "before `?`"),
        ("a without b[item = 1]", 3, "without conditions"),
    ],
)
def test_each_mistake_names_the_pattern_the_word_and_the_reason(
    text: str, word: int, why: str
) -> None:
    with pytest.raises(TriggerSpecError) as info:
        parse_pattern(text, name="t")
    err = info.value
    assert (err.pattern, err.word) == ("t", word)
    assert why in err.detail
    assert err.detail in str(err)


def test_a_tasks_file_error_keeps_the_fields() -> None:
    with pytest.raises(TriggerSpecError) as info:
        parse_tasks('[triggers]\nshort = "exposure[args.dur_ms <] * click"\n')
    err = info.value
    assert (err.key, err.pattern, err.word) == ("triggers.short", "short", 1)
    assert "needs a value" in err.detail


def test_partial_matches_survive_a_snapshot_and_a_hot_update() -> None:
    texts = {"plus": "a b+ c", "cond": "x[item = 1] * y", "gone": "a? b c"}
    events = [ev("x", item="1"), ev("a"), ev("b"), ev("b"), ev("c"), ev("y")]
    trigs = {n: parse_pattern(t, name=n) for n, t in texts.items()}
    m = Matcher(trigs, limit_ms=10**12, limit_events=10**9)
    st = m.new_state()
    got = []
    for i, e in enumerate(events):
        if i == 3:  # mid-run: `plus` holds `a b`, `cond` holds `x`, `gone` holds `a b`, `b`
            m.update({"new": parse_pattern("b+ c", name="new")}, ["gone"])
            data = msgpack.unpackb(msgpack.packb(m.dump(st)), strict_map_key=False)
            st = m.load(data)
        got += [(f.trigger, f.first, f.last) for f in m.step(st, i, e)]
    assert got == [("plus", 1, 4), ("new", 3, 4), ("cond", 0, 5)]
    full = reference_firings(trigs, events, limit_ms=10**12, limit_events=10**9)
    assert ("gone", 3, 4) in full  # removed before it could fire
    assert [f for f in full if f[0] != "gone"] == [("plus", 1, 4), ("cond", 0, 5)]
