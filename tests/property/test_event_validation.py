"""``event_from_obj`` against a plain reference of SPEC section 1, on any decoded object.

The reference below checks the keys first (any key outside the six is refused), then each key
in the order ts, type, device, page, item, args, as the validator always has. Objects are drawn
with any subset of the six keys, each holding a valid value, null or a wrong one, and sometimes
an unknown key: the validator must give the same event, or the same error (key and message).
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from hypothesis import given
from hypothesis import strategies as st

from streamfeat._event import Event, _describe, event_from_obj
from streamfeat.errors import EventError

KNOWN = ("device", "ts", "type", "page", "item", "args")
TYPE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")


def fail(key: str | None, reason: str) -> NoReturn:
    raise EventError(key, reason)


def reference(obj: Any) -> Event:
    if type(obj) is not dict:
        fail(None, f"an event must be an object, got {type(obj).__name__}")
    for k in obj:
        if k not in KNOWN:
            fail(str(k), "is not an event key (device, ts, type, page, item, args)")
    ts = obj.get("ts")
    if ts is None:
        fail("ts", "is required")
    if type(ts) is not int:
        fail("ts", f"must be an integer, got {_describe(ts)}")
    if not 0 <= ts < 2**53:
        fail("ts", f"must be in [0, 2**53), got {ts}")
    etype = obj.get("type")
    if etype is None:
        fail("type", "is required")
    if type(etype) is not str or not TYPE_RE.match(etype):
        fail("type", f"must match [A-Za-z0-9_.-]{{1,64}}, got {_describe(etype)}")
    device = obj.get("device", "local")
    if type(device) is not str or not 0 < len(device) <= 128:
        fail("device", f"must be a string of 1-128 chars, got {_describe(device)}")
    page = obj.get("page")
    if page is not None and (type(page) is not str or len(page) > 128):
        fail("page", f"must be a string of up to 128 chars, got {_describe(page)}")
    item = obj.get("item")
    if item is not None:
        if type(item) is int:
            item = str(item)
        elif type(item) is not str:
            fail("item", f"must be a string or an integer, got {_describe(item)}")
        if len(item) > 128:
            fail("item", "must be at most 128 chars")
    args = obj.get("args", {})
    if type(args) is not dict:
        fail("args", f"must be an object, got {_describe(args)}")
    for k, v in args.items():
        if type(v) is float and v != v:
            fail(f"args.{k}", "must not be NaN")
        if type(v) not in (str, int, bool, float):
            fail(f"args.{k}", f"must be a string, integer, float or boolean, got {_describe(v)}")
    return Event(ts, etype, device, page, item, dict(args))


WRONG = st.one_of(st.none(), st.booleans(), st.floats(), st.lists(st.integers(), max_size=2))
VALUES = {
    "ts": st.one_of(st.integers(-5, 2**54), st.just(2**53 - 1), WRONG),
    "type": st.one_of(
        st.sampled_from(["click", "exposure", "a.b-c_1"]), st.text(max_size=70), WRONG
    ),
    "device": st.one_of(st.sampled_from(["d1", ""]), st.text(max_size=130), WRONG),
    "page": st.one_of(st.sampled_from(["home_feed"]), st.text(max_size=130), WRONG),
    "item": st.one_of(st.integers(), st.text(max_size=130), WRONG),
    "args": st.one_of(
        st.dictionaries(
            st.text(max_size=3), st.one_of(st.integers(), st.text(max_size=3), WRONG), max_size=3
        ),
        WRONG,
    ),
}


@st.composite
def objects(draw: st.DrawFn) -> Any:
    keys = draw(st.lists(st.sampled_from(KNOWN), unique=True))
    obj: dict[Any, Any] = {k: draw(VALUES[k]) for k in keys}
    if draw(st.integers(0, 4)) == 0:
        obj[draw(st.sampled_from(["extra", "Ts", 1]))] = draw(WRONG)
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from([[obj], "text", 3]))
    return obj


def outcome(f: Any, obj: Any) -> Any:
    try:
        return f(obj)
    except EventError as exc:
        return ("error", exc.key, str(exc))


@given(objects())
def test_the_validator_agrees_with_the_reference(obj: Any) -> None:
    assert outcome(event_from_obj, obj) == outcome(reference, obj)


def test_a_key_given_as_null_is_still_a_known_key() -> None:
    # the validator counts the keys with a value: a null one is checked the slow way
    assert event_from_obj({"ts": 1, "type": "click", "page": None}) == Event(1, "click")
    assert outcome(event_from_obj, {"ts": 1, "type": "click", "device": None})[1] == "device"
    assert outcome(event_from_obj, {"ts": 1, "type": "click", "args": None})[1] == "args"
    assert outcome(event_from_obj, {"ts": 1, "type": "click", "page": None, "x": 1})[1] == "x"
