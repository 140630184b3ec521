"""Read what the endpoint stored: decoded records, filtered, newest first, streamed.

The endpoint decodes every batch with the schemas of the tasks files it was given and keeps
one JSON row per record (``batch_records``, beside the raw ``batches``). This module reads
them back for people: :func:`iter_records` yields one dict per record, newest stored first,
without loading the result into memory; :func:`records_table` gives the same rows as a pyarrow
Table (pyarrow is the optional extra ``streamfeat[parquet]``). ``streamfeat records`` is the
command line over both.

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
    "RecordQuery",
    "RecordSource",
    "count_records",
    "iter_records",
    "parse_time",
    "records_table",
]

KINDS = ("feature", "window", "trigger", "late", "task", "quarantine")
_NAME_SQL = (
    "COALESCE(json_extract(r.record, '$.feature'), json_extract(r.record, '$.window'), "
    "json_extract(r.record, '$.trigger'), json_extract(r.record, '$.task'))"
)
_TIME_SQL = (
    "COALESCE(json_extract(r.record, '$.ts'), json_extract(r.record, '$.end'), "
    "json_extract(r.record, '$.last_ts'))"
)
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)\Z")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_NAME_KEYS = ("feature", "window", "trigger", "task")


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

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition and its parameters."""
        cond: list[str] = ["1"]
        args: list[Any] = []
        if self.device is not None:
            cond.append("r.device = ?")
            args.append(self.device)
        if self.kind is not None:
            cond.append("json_extract(r.record, '$.kind') = ?")
            args.append(self.kind)
        if self.name is not None:
            cond.append(f"{_NAME_SQL} = ?")
            args.append(self.name)
        if self.since_ms is not None:
            cond.append(f"{_TIME_SQL} >= ?")
            args.append(self.since_ms)
        if self.until_ms is not None:
            cond.append(f"{_TIME_SQL} < ?")
            args.append(self.until_ms)
        return " AND ".join(cond), args


def _connect(db: str | Path) -> sqlite3.Connection:
    if str(db).startswith(("postgresql://", "postgres://")):
        msg = (
            "reading records from a PostgreSQL endpoint is not supported yet: pass its storage "
            "object (with iter_records) from Python, or use the SQLite database"
        )
        raise StorageError(msg)
    p = Path(db)
    if not p.is_file():
        msg = f"no endpoint database at {p}"
        raise StorageError(msg)
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10)
        conn.execute("PRAGMA busy_timeout=10000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        msg = f"can't read endpoint database {p}: {exc}"
        raise StorageError(msg) from exc
    if not {"batches", "batch_records"} <= tables:
        conn.close()
        msg = f"{p} is not an endpoint database (no batch_records table)"
        raise StorageError(msg)
    return conn


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    rec = orjson.loads(r[4])
    kind = rec.get("kind") if isinstance(rec, dict) else None
    name = next((rec[k] for k in _NAME_KEYS if k in rec), None) if isinstance(rec, dict) else None
    t = None
    if isinstance(rec, dict):
        for k in ("ts", "end", "last_ts"):
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
    """A storage that can list its decoded records itself (another database than SQLite)."""

    def iter_records(self, query: RecordQuery) -> Iterator[dict[str, Any]]:
        """Rows as :func:`iter_records` yields them, newest stored first."""
        ...


def iter_records(
    db: str | Path | RecordSource, query: RecordQuery | None = None, **filters: Any
) -> Iterator[dict[str, Any]]:
    """Yield the stored records that match, newest stored first (streaming).

    Args:
        db: the endpoint's SQLite file (opened read-only; the endpoint may be running), or a
            storage object with its own ``iter_records(query)`` (:class:`RecordSource`).
        query: the filters, or pass them as keywords (``device=``, ``kind=``, ``name=``,
            ``since_ms=``, ``until_ms=``, ``limit=``).

    Raises:
        StorageError: no such file, or not an endpoint database.
        ConfigError: a bad filter.
    """
    q = query or RecordQuery(**filters)
    if not isinstance(db, str | Path):
        yield from db.iter_records(q)
        return
    where, args = q.where()
    sql = (
        "SELECT r.id, b.received, r.device, r.batch_id, r.record FROM batch_records r "
        "JOIN batches b ON b.device = r.device AND b.batch_id = r.batch_id "
        f"WHERE {where} ORDER BY r.id DESC"
    )
    if q.limit is not None:
        sql += " LIMIT ?"
        args.append(q.limit)
    conn = _connect(db)
    try:
        cur = conn.execute(sql, args)
        while rows := cur.fetchmany(500):
            for r in rows:
                yield _row(r)
    except sqlite3.Error as exc:
        msg = f"reading records from {db} failed: {exc}"
        raise StorageError(msg) from exc
    finally:
        conn.close()


def count_records(db: str | Path, query: RecordQuery | None = None) -> int:
    """How many records :func:`iter_records` would yield (for progress bars)."""
    q = query or RecordQuery()
    where, args = q.where()
    conn = _connect(db)
    try:
        (n,) = conn.execute(f"SELECT COUNT(*) FROM batch_records r WHERE {where}", args).fetchone()
    finally:
        conn.close()
    return min(int(n), q.limit) if q.limit is not None else int(n)


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


def records_table(db: str | Path, query: RecordQuery | None = None, **filters: Any) -> Any:
    """The matching records as a ``pyarrow.Table`` (columns: :func:`arrow_schema`).

    Raises:
        MissingExtraError: pyarrow is not installed.
    """
    pa = _import_pyarrow()
    schema = arrow_schema()
    rows = list(iter_records(db, query, **filters))
    return pa.Table.from_pydict(arrow_columns(rows), schema=schema)
