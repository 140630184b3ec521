"""The window and late records say what Flink and Bytewax users expect (issue 12, item 6).

A window closed by the watermark is complete (``forced: false``); one shut before that, at the
end of input, says so (``forced: true``); ``final`` repeats ``forced`` for one release. A
``late`` record carries the event, so it can be reprocessed. The compact codec carries both
fields, and the endpoint still decodes batches of devices on the previous schema rules.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamfeat._event import Event, event_from_obj
from streamfeat.data import default_tasks_text
from streamfeat.encoders import decode_batch, encoder_for, schemas_for
from streamfeat.endpoint._backend import decoder_for as _decoder
from streamfeat.tasks import parse_tasks
from streamfeat.windows import WindowStage

TOML = """
[windows.t]
assign = "tumbling 10s"
aggregate = { n = "count" }
[windows.s]
assign = "session 5s"
aggregate = { n = "count" }
[windows.c]
assign = "count 2"
aggregate = { n = "count" }
"""


def _run(events: list[Event]) -> list[dict[str, Any]]:
    stage = WindowStage(parse_tasks(TOML))
    state = stage.new_state("d")
    out: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        stage.process(state, i, e, out)
    stage.close(state, out)
    return out


def _event(ts: int, **args: Any) -> Event:
    return Event(ts, "click", "d", "home_feed", "42", args)


def test_watermark_closes_are_complete_and_end_of_input_closes_are_forced() -> None:
    out = _run([_event(1_000), _event(2_000), _event(30_000)])
    windows = [r for r in out if r["kind"] == "window"]
    by_kind = {(r["window"], r["start"]): r for r in windows}
    assert by_kind[("t", 0)]["forced"] is False  # closed by the watermark at 30s: complete
    assert by_kind[("s", 1_000)]["forced"] is False
    assert by_kind[("c", 1_000)]["forced"] is False  # count window closed on its 2nd event
    assert by_kind[("t", 30_000)]["forced"] is True  # shut at the end of input
    assert by_kind[("s", 30_000)]["forced"] is True
    assert by_kind[("c", 30_000)]["forced"] is True
    for r in windows:  # the deprecated name, kept for one release
        assert r["final"] is r["forced"]


def test_a_late_record_carries_the_event_for_reprocessing() -> None:
    late_event = _event(3_000, pos=7, dur_ms=250)
    out = _run([_event(1_000), _event(30_000), late_event])
    lates = [r for r in out if r["kind"] == "late"]
    assert {r["window"] for r in lates} == {"t", "s"}  # count windows are never late
    for r in lates:
        assert r["ts"] == 3_000
        assert event_from_obj(r["event"]) == late_event


@pytest.mark.parametrize("codec", ["compact", "msgpack", "json"])
def test_the_codecs_carry_forced_final_and_the_late_event(codec: str) -> None:
    cfg = parse_tasks(TOML)
    records = [r for r in _run([_event(1_000), _event(30_000), _event(3_000, pos=7)])]
    schemas = schemas_for(cfg)
    data = encoder_for(codec, schemas).encode_batch(records)
    assert decode_batch(data, schemas) == records


def test_the_endpoint_decodes_batches_of_devices_on_the_previous_rules() -> None:
    decode = _decoder(None)  # the endpoint's decoder for the embedded default tasks file
    cfg = parse_tasks(default_tasks_text())
    window = {
        "kind": "window", "window": "clicks_10m", "device": "d", "key": "d", "start": 0,
        "end": 600_000, "values": {"n": 2, "items": 1},
    }  # fmt: skip
    new = [
        {**window, "forced": True, "final": True},
        {"kind": "late", "window": "clicks_10m", "device": "d", "ts": 5,
         "event": {"device": "d", "ts": 5, "type": "click"}},
    ]  # fmt: skip
    old = [
        {**window, "final": True},
        {"kind": "late", "window": "clicks_10m", "device": "d", "ts": 5},
    ]
    for records, version in ((new, 2), (old, 1)):
        schemas = schemas_for(cfg, version)
        assert schemas.version == version
        data = encoder_for("compact", schemas).encode_batch(records)
        assert decode(data) == records
