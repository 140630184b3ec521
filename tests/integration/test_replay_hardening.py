"""`streamfeat replay` hardening (issue 11): input that used to stop, double or mislead a replay."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest

from streamfeat.cli import main


def _summary(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_msgpack_string_not_utf8_quarantines_one_message_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "ev.msgpack"
    bad = msgpack.packb({"ts": 5, "type": "click", "page": "\u00e9"}).replace(
        b"\xc3\xa9", b"\xff\xfe"
    )
    with events.open("wb") as fh:
        fh.write(msgpack.packb({"device": "a", "ts": 1, "type": "click"}))
        fh.write(bad)
        for i in range(20_000):
            fh.write(msgpack.packb({"device": "a", "ts": 10 + i, "type": "click"}))
    tasks = tmp_path / "t.toml"
    tasks.write_text('[windows.n]\nassign = "count 1000"\n')
    out = tmp_path / "out.jsonl"
    args = ["replay", str(events), "--tasks", str(tasks), "--out", str(out), "--json"]
    assert main(args) == 0
    summary = _summary(capsys)
    assert summary["events"] == 20_001
    assert summary["quarantined"] == 1
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    (q,) = [r for r in recs if r["kind"] == "quarantine"]
    assert q["line"] == 2
    assert "not valid UTF-8" in q["reason"]
    assert sum(r["values"]["n"] for r in recs if r["kind"] == "window") == 20_001
