from __future__ import annotations

from streamfeat import Event
from streamfeat._records import dumps_record, public, raw_size


def test_public_strips_attachments_only() -> None:
    rec = {"kind": "trigger", "": 1, "_events": (), "device": "d"}
    assert public(rec) == {"kind": "trigger", "": 1, "device": "d"}
    plain = {"kind": "late"}
    assert public(plain) is plain


def test_dumps_record_is_one_json_line_without_attachments() -> None:
    assert dumps_record({"kind": "late", "_raw_bytes": 3}) == b'{"kind":"late"}\n'


def test_raw_size_is_the_json_line_length() -> None:
    ev = Event(1, "click", "d")
    assert raw_size(ev) == len(b'{"device":"d","ts":1,"type":"click"}\n')
