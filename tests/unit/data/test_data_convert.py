"""The Taobao converter and the converter registry (core and file shell)."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streamfeat._event import event_from_obj
from streamfeat.gen.convert import (
    CONVERTERS,
    Converter,
    Reject,
    convert_file,
    get_converter,
    register,
)
from streamfeat.gen.convert.taobao import TAOBAO, convert_taobao

GOOD = b"543462,1715,1464116,pv,1511658000\n"
# line: what is wrong
BAD_ROWS = {
    2: b"1,2,3,pv\n",  # 4 fields
    3: b"abc,2,3,pv,1511658000\n",  # user not an integer
    4: b"1,2,3,click,1511658000\n",  # unknown behaviour
    5: b"1,-2,3,cart,1511658000\n",  # negative item
    6: b"\n",  # empty row
    7: b"1,2,3,buy,99999999999999\n",  # ts beyond 2**53 ms
    8: b"1," + b"9" * 129 + b",3,fav,1\n",  # item id too long
    9: b"1,2,x3,fav,1511658000\n",  # category not an integer
    10: b"user_id,item_id,category_id,behavior_type,timestamp\n",  # a header
    11: b"1,2,3,pv,1.5\n",  # fractional seconds
    12: b"1,2,3,pv,1511658000,extra\n",  # 6 fields
}


def _mixed_csv() -> bytes:
    rows = (
        [GOOD]
        + [BAD_ROWS[n] for n in sorted(BAD_ROWS)]
        + [b"7,8,9,cart,1511658001\r\n", b"7,8,9,buy,0"]
    )
    return b"".join(rows)


def _run(data: bytes, tmp_path: Path, name: str = "in.csv", gz: bool = False):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if gz else data)
    out, rejects, err = io.BytesIO(), io.BytesIO(), io.StringIO()
    summary = convert_file(TAOBAO, str(path), out, rejects=rejects, err=err)
    lines = [orjson.loads(x) for x in out.getvalue().splitlines()]
    return summary, lines, rejects.getvalue(), err.getvalue()


def test_mapping_of_one_row() -> None:
    (obj,) = list(convert_taobao([GOOD]))
    assert obj == {
        "device": "543462",
        "ts": 1_511_658_000_000,
        "type": "page_enter",
        "page": "item_detail",
        "item": "1715",
        "args": {"category": 1464116},
    }
    assert event_from_obj(obj).item == "1715"


@pytest.mark.parametrize(
    ("behavior", "etype"),
    [("pv", "page_enter"), ("cart", "add_cart"), ("fav", "favorite"), ("buy", "purchase")],
)
def test_behaviour_types(behavior: str, etype: str) -> None:
    (obj,) = list(convert_taobao([f"1,2,3,{behavior},4".encode()]))
    assert (obj["type"], obj["page"], obj["ts"]) == (etype, "item_detail", 4000)


def test_one_output_per_line_with_line_numbers_and_reasons() -> None:
    out = list(convert_taobao(_mixed_csv().splitlines(keepends=True)))
    assert len(out) == 1 + len(BAD_ROWS) + 2
    rejects = [o for o in out if isinstance(o, Reject)]
    assert [r.line for r in rejects] == sorted(BAD_ROWS)
    for r in rejects:
        assert r.raw == BAD_ROWS[r.line].rstrip(b"\n")
    reasons = {r.line: r.reason for r in rejects}
    assert "5 comma-separated fields, got 4" in reasons[2]
    assert "`user_id`" in reasons[3]
    assert "`behavior_type`" in reasons[4]
    assert '"click"' in reasons[4]
    assert "`item_id`" in reasons[5]
    assert reasons[6] == "empty row"
    assert "`timestamp`" in reasons[7]
    assert "`item_id`" in reasons[8]
    assert "128" in reasons[8]
    assert "`category_id`" in reasons[9]
    assert "`user_id`" in reasons[10]
    assert "`timestamp`" in reasons[11]
    assert "got 6" in reasons[12]
    events = [o for o in out if isinstance(o, dict)]
    assert [e["ts"] for e in events] == [1_511_658_000_000, 1_511_658_001_000, 0]  # CRLF is fine


def test_file_shell_reports_counts_rejects_and_stderr(tmp_path: Path) -> None:
    summary, lines, rejects, err = _run(_mixed_csv(), tmp_path)
    assert (summary.rows, summary.events, summary.rejects, summary.error) == (14, 3, 11, None)
    assert summary.ok
    assert len(lines) == 3
    assert rejects == b"".join(BAD_ROWS[n].rstrip(b"\n") + b"\n" for n in sorted(BAD_ROWS))
    reported = err.splitlines()
    assert len(reported) == len(BAD_ROWS)
    assert reported[0].startswith("taobao: line 2: ")


def test_gzip_and_plain_give_the_same_events(tmp_path: Path) -> None:
    plain = _run(_mixed_csv(), tmp_path, "a.csv")
    gz = _run(_mixed_csv(), tmp_path, "a.csv.gz", gz=True)
    assert plain == gz


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    summary, lines, _, _ = _run(GOOD, tmp_path, "data.bin", gz=True)
    assert summary.events == 1
    assert lines[0]["device"] == "543462"


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    summary = convert_file(TAOBAO, str(tmp_path / "nope.csv"), io.BytesIO())
    assert summary.error
    assert not summary.ok
    assert summary.rows == 0


def test_truncated_gzip_keeps_what_was_read_and_reports(tmp_path: Path) -> None:
    data = b"".join(f"{i},2,3,pv,{1000 + i}\n".encode() for i in range(20_000))
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(data)[:-5000])
    out, err = io.BytesIO(), io.StringIO()
    summary = convert_file(TAOBAO, str(path), out, err=err)
    assert summary.error is not None
    assert not summary.ok
    assert 0 < summary.events < 20_000
    assert out.getvalue().count(b"\n") == summary.events
    assert "compressed file ended" in summary.error
    assert err.getvalue() == ""  # the summary line carries it: one line on stderr


def test_all_rows_bad_is_not_ok(tmp_path: Path) -> None:
    summary, lines, _, _ = _run(b"x\ny\n", tmp_path)
    assert (summary.rows, summary.events, summary.rejects) == (2, 0, 2)
    assert not summary.ok
    assert lines == []


def test_empty_file_is_ok(tmp_path: Path) -> None:
    summary, lines, _, _ = _run(b"", tmp_path)
    assert summary.ok
    assert summary.rows == 0
    assert lines == []


def test_shared_taobao_log(taobao_csv: Path) -> None:
    out = io.BytesIO()
    summary = convert_file(TAOBAO, str(taobao_csv), out, err=io.StringIO())
    assert (summary.rows, summary.events, summary.rejects, summary.error) == (
        110_300,
        110_300,
        0,
        None,
    )
    types: Counter[str] = Counter()
    devices = set()
    last_ts = 0
    for line in out.getvalue().splitlines():
        event = event_from_obj(orjson.loads(line))
        types[event.type] += 1
        devices.add(event.device)
        assert event.page == "item_detail"
        assert event.ts % 1000 == 0
        assert event.ts >= last_ts  # the source is sorted by time
        last_ts = event.ts
    assert types == {"page_enter": 98_361, "add_cart": 6_063, "favorite": 3_383, "purchase": 2_493}
    assert len(devices) == 66_454
    assert last_ts == 1_511_665_811_000


def test_registry() -> None:
    assert CONVERTERS["taobao"] is TAOBAO is get_converter("taobao")
    with pytest.raises(KeyError, match="taobao"):
        get_converter("nope")
    with pytest.raises(ValueError, match="already registered"):
        register(TAOBAO)


def test_a_new_converter_plugs_in(tmp_path: Path) -> None:
    def convert(lines):
        for n, line in enumerate(lines, 1):
            word = line.strip().decode()
            yield {"ts": n, "type": word} if word else Reject(n, b"", "blank")

    conv = Converter("words", "one event per word", convert)
    register(conv)
    try:
        path = tmp_path / "w.txt"
        path.write_bytes(b"a\n\nb\n")
        out = io.BytesIO()
        summary = convert_file(get_converter("words"), str(path), out)
        assert (summary.events, summary.rejects) == (2, 1)
        assert out.getvalue() == b'{"ts":1,"type":"a"}\n{"ts":3,"type":"b"}\n'
    finally:
        del CONVERTERS["words"]
