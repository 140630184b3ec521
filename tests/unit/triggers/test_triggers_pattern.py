"""The pattern parser: the SPEC's examples, the text form, and errors that name the word."""

from __future__ import annotations

import pytest

from streamfeat._tokens import Token
from streamfeat.errors import ConfigError, TriggerSpecError
from streamfeat.tasks import parse_tasks
from streamfeat.triggers import MAX_POSITIONS, Pattern, Step, parse_pattern


def test_spec_examples_parse() -> None:
    p = parse_pattern("page_enter@item_detail * page_exit@item_detail within 30m")
    assert p.steps == (
        Step("atom", (Token("page_enter", "item_detail"),)),
        Step("star"),
        Step("atom", (Token("page_exit", "item_detail"),)),
    )
    assert p.within == 30 * 60_000
    alt = parse_pattern("(click@home_feed|delete@home_feed)")
    assert alt.steps == (Step("atom", (Token("click", "home_feed"), Token("delete", "home_feed"))),)
    k5 = parse_pattern("exposure * exposure * exposure * exposure * exposure without click")
    assert k5.positions == 5
    assert k5.without == (Token("click"),)
    assert parse_pattern("pv * cart * buy within 1h").within == 3_600_000
    assert parse_pattern("exposure{3}").steps == (Step("atom", (Token("exposure"),), 3),)
    assert parse_pattern("click").steps == (Step("atom", (Token("click"),)),)


def test_spacing_and_merging() -> None:
    assert parse_pattern("( a | b ) {2}").steps == parse_pattern("(a|b){2}").steps
    assert parse_pattern("a * * b").steps == parse_pattern("a * b").steps
    p = parse_pattern("a ? b without x, y without z within 5s")
    assert p.without == (Token("x"), Token("y"), Token("z"))
    assert p.within == 5000
    assert (
        str(parse_pattern("(a|b@p){2} ? * c within 1s without d"))
        == "(a|b@p){2} ? * c within 1000ms without d"
    )


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("a b {0}", 3),
        ("exposure{65}", 1),
        ("(click|delete)@home_feed", 1),
        ("within 3s", 1),
        ("a within", 2),
        ("a within 3x", 3),
        ("a without", 2),
        ("(a|b", 1),
        ("a ( b", 3),
        ("* {3}", 2),
        ("a within 1s b", 4),
        ("a$b", 1),
        ("a within 1s within 2s", 4),
        ("a{x}", 1),
        ("(a,b)", 1),
        ("a | b", 2),
        ("a without within", 3),
    ],
)
def test_errors_name_the_word(text: str, word: int) -> None:
    with pytest.raises(TriggerSpecError) as info:
        parse_pattern(text, name="ipv_done")
    assert info.value.word == word
    assert isinstance(info.value, ValueError)
    assert f"pattern 'ipv_done', word {word}: " in str(info.value)


def test_error_message_shape() -> None:
    with pytest.raises(TriggerSpecError) as info:
        parse_pattern("page_enter * page_exit{0}", name="ipv_done")
    assert str(info.value) == "pattern 'ipv_done', word 3: `{0}` must be 1..64"


def test_empty_and_too_long() -> None:
    with pytest.raises(TriggerSpecError) as info:
        parse_pattern("   ")
    assert info.value.word is None
    with pytest.raises(TriggerSpecError):
        parse_pattern(" ".join(["a{64}"] * (MAX_POSITIONS // 64 + 1)))


def test_tasks_file_refuses_a_bad_trigger_with_file_key_and_word() -> None:
    text = '[triggers]\nok = "a * b"\nbad = "a * b{0}"\n'
    with pytest.raises(TriggerSpecError) as info:
        parse_tasks(text, source="tasks.toml")
    err = info.value
    assert (err.file, err.key, err.word) == ("tasks.toml", "triggers.bad", 3)
    assert isinstance(err, ConfigError)
    cfg = parse_tasks('[triggers]\nok = "a * b"\n')
    trigger = cfg.triggers["ok"]  # parsed once, at load: the pattern is kept
    assert isinstance(trigger.pattern, Pattern)
    assert trigger.text == "a * b"
    assert trigger.pattern == parse_pattern("a * b", name="ok")
