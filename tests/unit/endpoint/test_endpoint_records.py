"""Reading what the endpoint stored: filters, order, formats, errors (real SQLite storage, and
the same assertions on a real PostgreSQL server)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from streamfeat.cli import main
from streamfeat.endpoint import SQLiteStorage, StoredBatch
from streamfeat.endpoint._records import RecordQuery, count_records, iter_records, parse_time
from streamfeat.errors import ConfigError, StorageError

T0 = 1_767_225_600_000


def _ipv(device: str, ts: int) -> dict:
    return {"kind": "feature", "feature": "ipv", "device": device, "ts": ts,
            "values": {"item": "42", "enter_ts": ts - 1000, "dwell_ms": 1000, "truncated": False}}  # fmt: skip


def _window(device: str, end: int) -> dict:
    return {"kind": "window", "window": "clicks_10m", "device": device, "key": device,
            "start": end - 600_000, "end": end, "values": {"n": 3}, "final": False}  # fmt: skip


def _trigger(device: str, last_ts: int) -> dict:
    return {"kind": "trigger", "trigger": "no_click", "device": device, "first": 0, "last": 4,
            "first_ts": last_ts - 10, "last_ts": last_ts}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The same stored batches in an SQLite file or a PostgreSQL database (a real server from
    the ``pg_server`` fixture; skipped without one unless STREAMFEAT_REQUIRE_PG=1)."""
    path: Path | str
    if request.param == "sqlite":
        path = tmp_path / "ep.db"
        st: Any = SQLiteStorage(path)
    else:
        from streamfeat.endpoint._postgres import PostgresStorage

        path = request.getfixturevalue("pg_url")
        st = PostgresStorage(path)
    batches = []
    for i, dev in enumerate(["a", "b", "a"]):
        recs = [
            _ipv(dev, T0 + i * 60_000),
            _window(dev, T0 + i * 60_000 + 1),
            _trigger(dev, T0 + i * 60_000 + 2),
        ]
        batches.append(StoredBatch(dev, bytes([i]) * 16, b"x", 1000.0 + i, recs))
    batches.append(
        StoredBatch("c", b"\x09" * 16, b"raw only", 2000.0, None)
    )  # undecoded: no records
    st.store_batches(batches)
    st.close()
    return path


def test_newest_first_and_every_record_once(db: Path | str) -> None:
    rows = list(iter_records(db))
    assert len(rows) == 9
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert rows[0]["record"] == _trigger("a", T0 + 120_002)
    assert rows[0]["received"] == 1002.0
    assert rows[0]["time"] == T0 + 120_002
    assert {r["batch_id"] for r in rows} == {bytes([i]).hex() * 16 for i in range(3)}


@pytest.mark.parametrize(
    ("query", "want"),
    [
        (RecordQuery(device="a"), 6),
        (RecordQuery(kind="window"), 3),
        (RecordQuery(name="no_click"), 3),
        (RecordQuery(device="b", kind="feature", name="ipv"), 1),
        (RecordQuery(since_ms=T0 + 60_000), 6),
        (RecordQuery(until_ms=T0 + 60_000), 3),
        (RecordQuery(since_ms=T0 + 60_001, until_ms=T0 + 60_002), 1),  # a window's time is its end
        (RecordQuery(limit=4), 4),
        (RecordQuery(device="nobody"), 0),
    ],
)
def test_filters(db: Path | str, query: RecordQuery, want: int) -> None:
    rows = list(iter_records(db, query))
    assert len(rows) == want
    assert count_records(db, query) == want
    for r in rows:
        rec = r["record"]
        assert query.device in (None, rec["device"])
        assert query.kind in (None, rec["kind"])


def test_bad_filters_and_files(tmp_path: Path, db: Path | str) -> None:
    with pytest.raises(ConfigError):
        RecordQuery(kind="features")
    with pytest.raises(StorageError):
        list(iter_records(tmp_path / "missing.db"))
    pytest.importorskip("psycopg", reason="pip install 'streamfeat[postgres]'")
    # a PostgreSQL URL is read by the same reader; no server there: one line, no password
    with pytest.raises(StorageError, match=r"can't connect to postgresql://\*\*\*@127.0.0.1:9/"):
        list(iter_records("postgresql://u:secret@127.0.0.1:9/sf"))
    (tmp_path / "other.db").write_bytes(b"")
    with pytest.raises(StorageError):
        list(iter_records(tmp_path / "other.db"))


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01T08:00:00+08:00", T0),
        ("2026-01-01", T0),
        (str(T0), T0),
        ("1h", T0 - 3_600_000),
        ("90s", T0 - 90_000),
    ],
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text, now_ms=T0) == ms


@pytest.mark.parametrize("text", ["yesterday", "2026-01-01T00:00:00", "1 hour", ""])
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_time(text, now_ms=T0)


def test_cli_jsonl_csv_and_table(
    db: Path | str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["records", "--db", str(db), "--device", "b", "--format", "jsonl"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["record"]["kind"] for x in lines] == ["trigger", "window", "feature"]
    out = tmp_path / "r.csv"
    assert (
        main(
            ["records", "--db", str(db), "--kind", "feature", "--format", "csv", "--out", str(out)]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 3
    assert json.loads(rows[0]["values"])["item"] == "42"
    assert json.loads(rows[0]["record"]) == _ipv("a", T0 + 120_000)
    assert main(["records", "--db", str(db), "--format", "table", "--limit", "2"]) == 0
    text = capsys.readouterr().out
    assert "no_click" in text
    assert "clicks_10m" in text


def test_cli_parquet_round_trip(db: Path | str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pip install 'streamfeat[parquet]'")
    out = tmp_path / "r.parquet"
    assert main(["records", "--db", str(db), "--format", "parquet", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 9
    assert table.column("kind").to_pylist()[:3] == ["trigger", "window", "feature"]
    from streamfeat.endpoint._records import records_table

    assert records_table(db, device="a").num_rows == 6


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a time"),
        (["--kind", "widget"], "unknown record kind 'widget'"),
        (["--format", "parquet"], "--format parquet needs --out"),
    ],
)
def test_cli_usage_errors_are_one_line(
    db: Path | str, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["records", "--db", str(db), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


def test_cli_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["records", "--db", str(tmp_path / "nope.db"), "--format", "jsonl"]) == 1
    err = capsys.readouterr().err
    assert "no endpoint database" in err
    assert len(err.strip().splitlines()) == 1


def test_another_storage_can_answer_itself() -> None:
    class Store:
        def __init__(self) -> None:
            self.asked: list[RecordQuery] = []

        def iter_records(self, query: RecordQuery):  # type: ignore[no-untyped-def]
            self.asked.append(query)
            yield {"id": 1, "record": {"kind": "late"}}

    s = Store()
    assert list(iter_records(s, kind="late", limit=5)) == [{"id": 1, "record": {"kind": "late"}}]
    assert s.asked == [RecordQuery(kind="late", limit=5)]


@pytest.fixture(params=["sqlite", "postgres"])
def big_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """1,234 records over two devices: more than two pages of the reader (500 rows a page)."""
    path: Path | str
    if request.param == "sqlite":
        path = tmp_path / "big.db"
        st: Any = SQLiteStorage(path)
    else:
        from streamfeat.endpoint._postgres import PostgresStorage

        path = request.getfixturevalue("pg_url")
        st = PostgresStorage(path)
    batches = []
    for b in range(12):
        dev = "even" if b % 2 == 0 else "odd"
        n = 103 if b < 11 else 101  # 11 x 103 + 101 = 1,234
        recs = [_ipv(dev, T0 + b * 1000 + i) for i in range(n)]
        batches.append(StoredBatch(dev, bytes([b]) * 16, b"x", 1000.0 + b, recs))
    st.store_batches(batches)
    st.close()
    return path


def test_pages_stream_every_record_once_in_order(big_db: Path | str) -> None:
    from streamfeat.endpoint._records import _PAGE

    every = list(iter_records(big_db))
    assert len(every) == 1234 > 2 * _PAGE
    ids = [r["id"] for r in every]
    assert ids == sorted(set(ids), reverse=True)  # newest first, each once, across pages
    for limit in (1, _PAGE, _PAGE + 1, 700, 5000):
        assert [r["id"] for r in iter_records(big_db, limit=limit)] == ids[:limit]
    odd = [r for r in every if r["device"] == "odd"]
    assert [r["id"] for r in iter_records(big_db, device="odd")] == [r["id"] for r in odd]
    assert [r["id"] for r in iter_records(big_db, device="odd", limit=600)] == [
        r["id"] for r in odd[:600]
    ]
    assert count_records(big_db, RecordQuery(device="odd")) == len(odd) == 616
    since = T0 + 5000
    late = [r for r in every if r["time"] >= since]
    assert [r["id"] for r in iter_records(big_db, since_ms=since)] == [r["id"] for r in late]


def test_a_time_that_is_not_a_number_is_skipped_alike_on_both_backends(
    big_db: Path | str,
) -> None:
    # SQLite's json_extract would return the text; both dialects take the next key instead
    from streamfeat.endpoint._backend import open_storage

    odd = {"kind": "window", "window": "w", "device": "x", "ts": "soon", "end": T0 + 99_999}
    st = open_storage(str(big_db))
    try:
        st.store_batches([StoredBatch("x", b"\xee" * 16, b"x", 5000.0, [odd])])
    finally:
        st.close()
    got = list(iter_records(big_db, device="x", since_ms=T0 + 99_999))
    assert [r["record"]["ts"] for r in got] == ["soon"]
    assert list(iter_records(big_db, device="x", until_ms=T0 + 99_999)) == []
    # its time is its end: after it, nothing (SQLite would have ranked the text above any number)
    assert list(iter_records(big_db, device="x", since_ms=T0 + 100_000)) == []
