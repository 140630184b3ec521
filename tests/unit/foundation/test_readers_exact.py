"""JSONL reader: exact reasons for integers beyond 64 bits, and duplicate keys (issue 11)."""

from __future__ import annotations

import io
import json

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from streamfeat import Event
from streamfeat.errors import EventError
from streamfeat.io import QuarantineEntry, read_jsonl, read_msgpack
from streamfeat.io._jsonl import exact_event as _exact_event


def _one(line: bytes) -> Event | QuarantineEntry:
    (item,) = read_jsonl(io.BytesIO(line + b"\n"))
    return item


def test_ts_beyond_64_bits_is_reported_as_an_integer_out_of_range() -> None:
    item = _one(b'{"ts": %d, "type": "click"}' % 2**70)
    assert isinstance(item, QuarantineEntry)
    assert item.reason == f"line 1: `ts` must be in [0, 2**53), got {2**70}"


def test_a_float_ts_is_still_reported_as_not_an_integer() -> None:
    item = _one(b'{"ts": 1e21, "type": "click"}')
    assert isinstance(item, QuarantineEntry)
    assert "must be an integer" in item.reason


def test_an_integer_item_beyond_64_bits_is_kept_exactly() -> None:
    assert _one(b'{"ts": 1, "type": "c", "item": %d}' % 2**70) == Event(1, "c", item=str(2**70))


def test_duplicate_keys_are_quarantined_in_jsonl_and_msgpack() -> None:
    for line, key in [
        (b'{"ts": 1, "type": "click", "ts": 2}', "ts"),
        (b'{"ts":1,"type":"a","type":"b"}', "type"),
        (b'{"ts": 1, "type": "c", "args": {"a": 1, "a": 2}}', "a"),
    ]:
        item = _one(line)
        assert isinstance(item, QuarantineEntry), line
        assert item.raw == line
        assert f"`{key}` appears twice" in item.reason
    raw = b"\x83\xa2ts\x01\xa4type\xa1c\xa2ts\x02"  # {"ts": 1, "type": "c", "ts": 2}
    first, second = read_msgpack(io.BytesIO(raw + msgpack.packb({"ts": 3, "type": "c"})))
    assert isinstance(first, QuarantineEntry)
    assert first.raw == raw
    assert "`ts` appears twice" in first.reason
    assert second == Event(3, "c")


keys = st.sampled_from(["ts", "type", "device", "page", "item"])
values = st.one_of(st.integers(0, 10), st.sampled_from(['"a"', '"b:c"', '"x"']))


@given(st.lists(st.tuples(keys, values), min_size=1, max_size=7))
def test_reader_equals_a_plain_oracle(pairs: list[tuple[str, object]]) -> None:
    line = ("{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}").encode()
    item = _one(line)
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        assert isinstance(item, QuarantineEntry)
        assert "appears twice" in item.reason
        return
    try:
        expected: Event | None = _exact_event(line)
    except EventError:
        expected = None
    assert (item if isinstance(item, Event) else None) == expected
    assert json.loads(line)  # the oracle parses what the reader parsed
