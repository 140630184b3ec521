from __future__ import annotations

import pytest

from streamfeat import Event, EventError, event_from_obj, event_to_obj


def test_minimal_event_gets_defaults() -> None:
    ev = event_from_obj({"ts": 5, "type": "click"})
    assert ev == Event(5, "click", "local", None, None, {})
    assert ev.device == "local"


def test_integer_item_is_kept_as_string() -> None:
    assert event_from_obj({"ts": 1, "type": "x", "item": 42}).item == "42"


def test_field_reads_event_keys_and_args() -> None:
    ev = event_from_obj({"ts": 1, "type": "x", "page": "p", "args": {"pos": 3}})
    assert ev.field("page") == "p"
    assert ev.field("args.pos") == 3
    assert ev.field("args.missing") is None
    assert ev.field("nonsense") is None


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        ({"type": "x"}, "ts"),
        ({"ts": "abc", "type": "x"}, "ts"),
        ({"ts": 1.5, "type": "x"}, "ts"),
        ({"ts": True, "type": "x"}, "ts"),
        ({"ts": -1, "type": "x"}, "ts"),
        ({"ts": 2**53, "type": "x"}, "ts"),
        ({"ts": 1}, "type"),
        ({"ts": 1, "type": ""}, "type"),
        ({"ts": 1, "type": "a b"}, "type"),
        ({"ts": 1, "type": "x" * 65}, "type"),
        ({"ts": 1, "type": []}, "type"),  # unhashable: once a TypeError that ended the replay
        ({"ts": 1, "type": {"a": 1}}, "type"),
        ({"ts": 1, "type": "x", "device": None}, "device"),
        ({"ts": 1, "type": "x", "device": ""}, "device"),
        ({"ts": 1, "type": "x", "device": "d" * 129}, "device"),
        ({"ts": 1, "type": "x", "device": 7}, "device"),
        ({"ts": 1, "type": "x", "page": 3}, "page"),
        ({"ts": 1, "type": "x", "page": "p" * 129}, "page"),
        ({"ts": 1, "type": "x", "item": 1.5}, "item"),
        ({"ts": 1, "type": "x", "item": "i" * 129}, "item"),
        ({"ts": 1, "type": "x", "args": []}, "args"),
        ({"ts": 1, "type": "x", "args": None}, "args"),
        ({"ts": 1, "type": "x", "args": {"a": [1]}}, "args.a"),
        ({"ts": 1, "type": "x", "args": {"a": None}}, "args.a"),
        ({"ts": 1, "type": "x", "args": {"a": float("nan")}}, "args.a"),
        ({"ts": 1, "type": "x", "extra": 1}, "extra"),
    ],
)
def test_invalid_events_name_the_key(obj: dict[str, object], key: str) -> None:
    with pytest.raises(EventError) as info:
        event_from_obj(obj)
    assert info.value.key == key
    assert key in str(info.value)


def test_non_object_is_refused_without_key() -> None:
    with pytest.raises(EventError) as info:
        event_from_obj([1, 2])
    assert info.value.key is None


def test_ts_message_quotes_the_bad_value() -> None:
    with pytest.raises(EventError, match='got "abc"'):
        event_from_obj({"ts": "abc", "type": "x"})


def test_to_obj_round_trips() -> None:
    obj = {"device": "d", "ts": 3, "type": "t", "page": "p", "item": "i", "args": {"k": 1.5}}
    assert event_to_obj(event_from_obj(obj)) == obj
