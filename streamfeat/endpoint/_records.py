"""Read what the endpoint stored: decoded records, filtered, newest first, streamed.

The endpoint decodes every batch with the schemas of the tasks files it was given and keeps
one JSON row per record (``batch_records``, beside the raw ``batches``). This module reads
them back for people: :func:`iter_records` yields one dict per record, newest stored first,
without loading the result into memory; :func:`records_table` gives the same rows as a pyarrow
Table (pyarrow is the optional extra ``streamfeat[parquet]``). ``streamfeat records`` is the
command line over both.

Both backends go through one reader: :class:`RecordQuery` writes its condition in the
database's :class:`Dialect` (SQLite's ``json_extract`` or PostgreSQL's ``->>`` on JSONB), and
:func:`iter_records` reads page after page on a read-only connection of its own. On
PostgreSQL a record's keys come back in JSONB's order (it does not keep the order they were
stored in); the values are the same.

A row::

    {"id": 812, "received": 1767225642.51, "device": "phone-17", "batch_id": "a1a1...",
     "kind": "feature", "name": "ipv", "time": 1767225642500, "record": {...decoded...}}

``time`` is the record's event time: ``ts`` (feature, late, task), ``end`` (window) or
``last_ts`` (trigger); ``None`` for a quarantine record. ``--since`` / ``--until`` filter on it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from streamfeat.errors import ConfigError, MissingExtraError, StorageError

__all__ = [
    "KINDS",
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "RecordQuery",
    "RecordSource",
    "count_records",
    "iter_records",
    "parse_time",
    "records_table",
]

KINDS = ("feature", "window", "trigger", "late", "task", "quarantine")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)\Z")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_NAME_KEYS = ("feature", "window", "trigger", "task")
_TIME_KEYS = ("ts", "end", "last_ts")
_PAGE = 500  # rows per round trip: the reader streams, page after page (keyset on id)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells the few things the record query needs.

    Attributes:
        param: the placeholder of a parameter.
        text: SQL of a record's JSON key as text (``{key}`` is the key).
        number: SQL of a record's JSON key as a number, NULL when it is not one.
    """

    param: str
    text: str
    number: str

    def first(self, template: str, keys: tuple[str, ...]) -> str:
        """SQL of the first of ``keys`` that ``template`` finds (not NULL)."""
        return "COALESCE(" + ", ".join(template.format(key=k) for k in keys) + ")"


SQLITE = Dialect(
    "?",
    "json_extract(r.record, '$.{key}')",
    "(CASE WHEN json_type(r.record, '$.{key}') IN ('integer', 'real') "
    "THEN json_extract(r.record, '$.{key}') END)",
)
POSTGRES = Dialect(
    "%s",
    "(r.record ->> '{key}')",
    "(CASE WHEN jsonb_typeof(r.record -> '{key}') = 'number' "
    "THEN (r.record ->> '{key}')::numeric END)",
)


def parse_time(text: str, *, now_ms: int, what: str = "time") -> int:
    """Read a time as epoch milliseconds.

    Accepts an ISO 8601 time with a zone (``2026-01-01T10:00:00Z``, ``...+08:00``), a date
    (``2026-01-01``, midnight UTC), epoch milliseconds (``1767225600000``), or a duration
    (``90s``, ``30m``, ``1h``, ``2d``) meaning that long before ``now_ms``.

    Raises:
        ConfigError: none of these (the message names ``what`` and the text).
    """
    t = text.strip()
    if t.isdigit():
        return int(t)
    m = _DURATION_RE.match(t)
    if m:
        return now_ms - round(float(m.group(1)) * _UNIT_MS[m.group(2)])
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        when = None
    if when is not None:
        if when.tzinfo is None:
            if len(t) == 10:  # a bare date: midnight UTC
                when = when.replace(tzinfo=UTC)
            else:
                msg = f"{what} {text!r} has no time zone: add Z for UTC or an offset such as +08:00"
                raise ConfigError(msg)
        return round(when.timestamp() * 1000)
    msg = (
        f"{what} {text!r} is not a time: give an ISO time such as 2026-01-01T10:00:00Z, a date, "
        "epoch milliseconds, or a duration such as 1h (that long ago)"
    )
    raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """Which records to read. Every filter is optional; they combine with AND.

    Raises:
        ConfigError: an unknown kind or a limit below 1.
    """

    device: str | None = None
    kind: str | None = None
    name: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            msg = f"unknown record kind {self.kind!r} (kinds: {', '.join(KINDS)})"
            raise ConfigError(msg)
        if self.limit is not None and self.limit < 1:
            msg = f"limit must be at least 1, got {self.limit}"
            raise ConfigError(msg)

    def where(self, dialect: Dialect = SQLITE) -> tuple[str, list[Any]]:
        """The SQL condition on ``batch_records r`` and its parameters, in ``dialect``."""
        p = dialect.param
        time_sql = dialect.first(dialect.number, _TIME_KEYS)
        cond: list[str] = ["1 = 1"]
        args: list[Any] = []
        if self.device is not None:
            cond.append(f"r.device = {p}")
            args.append(self.device)
        if self.kind is not None:
            cond.append(f"{dialect.text.format(key='kind')} = {p}")
            args.append(self.kind)
        if self.name is not None:
            cond.append(f"{dialect.first(dialect.text, _NAME_KEYS)} = {p}")
            args.append(self.name)
        if self.since_ms is not None:
            cond.append(f"{time_sql} >= {p}")
            args.append(self.since_ms)
        if self.until_ms is not None:
            cond.append(f"{time_sql} < {p}")
            args.append(self.until_ms)
        return " AND ".join(cond), args


class _Reader(Protocol):
    """A read-only connection to an endpoint database and the dialect it speaks."""

    dialect: Dialect

    def fetch(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class _SQLiteReader:
    dialect = SQLITE

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        if not p.is_file():
            msg = f"no endpoint database at {p}"
            raise StorageError(msg)
        self.where = str(p)
        try:
            self.conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10)
            self.conn.execute("PRAGMA busy_timeout=10000")
            tables = {
                r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.Error as exc:
            msg = f"can't read endpoint database {p}: {exc}"
            raise StorageError(msg) from exc
        if not {"batches", "batch_records"} <= tables:
            self.conn.close()
            msg = f"{p} is not an endpoint database (no batch_records table)"
            raise StorageError(msg)

    def fetch(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            msg = f"reading records from {self.where} failed: {exc}"
            raise StorageError(msg) from exc

    def close(self) -> None:
        self.conn.close()


class _PostgresReader:
    """A connection of its own (never the storage's: a long export does not hold its lock);
    reads only, and never creates or migrates the schema."""

    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        from streamfeat.endpoint._postgres import _psycopg, _redact, connect, schema_version

        self.where = _redact(url)
        self._error = _psycopg().Error
        self.conn = connect(url)  # StorageError: no driver, server unreachable
        try:
            found = schema_version(self.conn)
        except self._error as exc:
            self.conn.close()
            msg = f"can't read endpoint database {self.where}: {exc}"
            raise StorageError(msg) from exc
        if found < 1:
            self.conn.close()
            msg = f"{self.where} is not an endpoint database (no streamfeat schema)"
            raise StorageError(msg)

    def fetch(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return list(self.conn.execute(sql, args).fetchall())
        except self._error as exc:
            msg = f"reading records from {self.where} failed: {str(exc).strip()}"
            raise StorageError(msg) from exc

    def close(self) -> None:
        self.conn.close()


def _open(db: str | Path | Any) -> _Reader:
    """A reader on ``db``: an SQLite path, a ``postgresql://`` URL, or an open storage
    (``SQLiteStorage`` by its ``path``, ``PostgresStorage`` by its ``url``)."""
    if not isinstance(db, str | Path):
        url = getattr(db, "url", None)
        db = url if isinstance(url, str) else getattr(db, "path", None)
        if db is None:
            msg = "this storage has no database to read records from"
            raise StorageError(msg)
    if str(db).startswith(("postgresql://", "postgres://")):
        return _PostgresReader(str(db))
    return _SQLiteReader(db)


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    # SQLite keeps the record as JSON text; psycopg hands back JSONB's ::text the same way
    rec = orjson.loads(r[4])
    kind = rec.get("kind") if isinstance(rec, dict) else None
    name = next((rec[k] for k in _NAME_KEYS if k in rec), None) if isinstance(rec, dict) else None
    t = None
    if isinstance(rec, dict):
        for k in _TIME_KEYS:
            if type(rec.get(k)) is int:
                t = rec[k]
                break
    return {
        "id": r[0],
        "received": r[1],
        "device": r[2],
        "batch_id": bytes(r[3]).hex(),
        "kind": kind,
        "name": name,
        "time": t,
        "record": rec,
    }


class RecordSource(Protocol):
    """A storage that lists its decoded records itself (another database altogether)."""

    def iter_records(self, query: RecordQuery) -> Iterator[dict[str, Any]]:
        """Rows as :func:`iter_records` yields them, newest stored first."""
        ...


def iter_records(
    db: str | Path | Any, query: RecordQuery | None = None, **filters: Any
) -> Iterator[dict[str, Any]]:
    """Yield the stored records that match, newest stored first (streaming).

    One reader serves both backends: the query is built once, in the database's dialect, and
    read page after page (``id`` below the last one seen), so neither the result nor a
    long-open cursor is held.

    Args:
        db: the endpoint's SQLite file (opened read-only; the endpoint may be running), its
            ``postgresql://`` URL, an open ``SQLiteStorage`` / ``PostgresStorage`` (read
            through a connection of its own), or an object with its own
            ``iter_records(query)`` (:class:`RecordSource`).
        query: the filters, or pass them as keywords (``device=``, ``kind=``, ``name=``,
            ``since_ms=``, ``until_ms=``, ``limit=``).

    Raises:
        StorageError: no such file or database, not an endpoint database, or the read failed.
        ConfigError: a bad filter.
    """
    q = query or RecordQuery(**filters)
    own = getattr(db, "iter_records", None)
    if not isinstance(db, str | Path) and callable(own):
        yield from own(q)
        return
    reader = _open(db)
    try:
        yield from _pages(reader, q)
    finally:
        reader.close()


def _pages(reader: _Reader, q: RecordQuery) -> Iterator[dict[str, Any]]:
    d = reader.dialect
    where, args = q.where(d)
    record = "r.record::text" if d is POSTGRES else "r.record"
    head = (
        f"SELECT r.id, b.received, r.device, r.batch_id, {record} FROM batch_records r "
        "JOIN batches b ON b.device = r.device AND b.batch_id = r.batch_id "
        f"WHERE {where}"
    )
    left = q.limit
    last: int | None = None
    while left is None or left > 0:
        n = _PAGE if left is None else min(_PAGE, left)
        sql = head + ("" if last is None else f" AND r.id < {d.param}")
        sql += f" ORDER BY r.id DESC LIMIT {d.param}"
        rows = reader.fetch(sql, [*args, *([] if last is None else [last]), n])
        for r in rows:
            yield _row(r)
        if len(rows) < n:
            return
        last = int(rows[-1][0])
        if left is not None:
            left -= len(rows)


def count_records(db: str | Path | Any, query: RecordQuery | None = None) -> int:
    """How many records :func:`iter_records` would yield (for progress bars)."""
    q = query or RecordQuery()
    reader = _open(db)
    try:
        where, args = q.where(reader.dialect)
        rows = reader.fetch(f"SELECT COUNT(*) FROM batch_records r WHERE {where}", args)
    finally:
        reader.close()
    n = int(rows[0][0])
    return min(n, q.limit) if q.limit is not None else n


def _import_pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        msg = "parquet and pyarrow tables need pyarrow: pip install 'streamfeat[parquet]'"
        raise MissingExtraError(msg) from exc
    return pyarrow


def arrow_schema() -> Any:
    """The columns of :func:`records_table` and of ``--format parquet``."""
    pa = _import_pyarrow()
    return pa.schema([
        ("id", pa.int64()), ("received", pa.timestamp("ms", tz="UTC")), ("device", pa.string()),
        ("batch_id", pa.string()), ("kind", pa.string()), ("name", pa.string()),
        ("time", pa.int64()), ("values", pa.string()), ("record", pa.string()),
    ])  # fmt: skip


def arrow_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as the columns of :func:`arrow_schema` (values and record as JSON text)."""
    return {
        "id": [r["id"] for r in rows],
        "received": [round(r["received"] * 1000) for r in rows],
        "device": [r["device"] for r in rows],
        "batch_id": [r["batch_id"] for r in rows],
        "kind": [r["kind"] for r in rows],
        "name": [r["name"] for r in rows],
        "time": [r["time"] for r in rows],
        "values": [
            orjson.dumps(r["record"].get("values")).decode()
            if isinstance(r["record"], dict) and "values" in r["record"]
            else None
            for r in rows
        ],
        "record": [orjson.dumps(r["record"]).decode() for r in rows],
    }


def records_table(db: str | Path | Any, query: RecordQuery | None = None, **filters: Any) -> Any:
    """The matching records as a ``pyarrow.Table`` (columns: :func:`arrow_schema`).

    Raises:
        MissingExtraError: pyarrow is not installed.
    """
    pa = _import_pyarrow()
    schema = arrow_schema()
    rows = list(iter_records(db, query, **filters))
    return pa.Table.from_pydict(arrow_columns(rows), schema=schema)
