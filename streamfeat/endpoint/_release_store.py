"""Where the release book keeps its tables: the endpoint's SQLite file or its PostgreSQL database.

The release book (:class:`~streamfeat.endpoint._releases.ReleaseBook`) is written once, in the
SQL both databases speak (``INSERT ... ON CONFLICT``, ``RETURNING``, ``CAST``, ``substr``), with
``?`` placeholders. A :class:`ReleaseStore` runs those statements on one backend:

* :class:`SQLiteReleaseStore`: the endpoint's SQLite file (the tables are created when
  missing, beside the batch storage's); a write transaction is ``BEGIN IMMEDIATE``, so a
  read-then-write never deadlocks with another process.
* :class:`PostgresReleaseStore`: the shared PostgreSQL database; the tables come with the
  endpoint schema (:func:`streamfeat.endpoint._postgres.migrate`, schema version 2), and
  ``?`` becomes ``%s``.

Both also hold the **downlink queue** (table ``announcements``): every config sent down to a
device, whether a release announcement or a live config push, is stored as the device's
config and appended there, and every endpoint process on the database polls the queue to
push what is new down its own connections (:mod:`streamfeat.endpoint._downlink`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from streamfeat.endpoint._postgres import is_postgres_url
from streamfeat.errors import StorageError

__all__ = [
    "SQLITE_SCHEMA",
    "PostgresReleaseStore",
    "ReleaseStore",
    "SQLiteReleaseStore",
    "open_release_store",
]

#: The release tables in an SQLite endpoint file (PostgreSQL's are in ``_postgres``).
SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS bundles (id TEXT PRIMARY KEY, name TEXT NOT NULL,
        version TEXT NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS releases (id TEXT PRIMARY KEY, created REAL NOT NULL,
        state TEXT NOT NULL, percent REAL NOT NULL, matrix TEXT NOT NULL,
        thresholds TEXT NOT NULL, bundles TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS release_history (release TEXT NOT NULL, at REAL NOT NULL,
        step TEXT NOT NULL, state TEXT NOT NULL, percent REAL NOT NULL, reason TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS release_devices (release TEXT NOT NULL, device TEXT NOT NULL,
        bundle TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, updated REAL NOT NULL,
        health TEXT, PRIMARY KEY (release, device))""",
    """CREATE TABLE IF NOT EXISTS device_grades (device TEXT PRIMARY KEY, model TEXT NOT NULL,
        p50 REAL NOT NULL, p99 REAL NOT NULL, runs INTEGER NOT NULL, updated REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS device_groups (device TEXT PRIMARY KEY, grp TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS announcements (seq INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL)""",
    # the batch storage creates it too; the release book writes configs on its own connection
    """CREATE TABLE IF NOT EXISTS device_configs (
        device TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL)""",
)


class ReleaseStore(Protocol):
    """What the release book needs from a database.

    Statements use ``?`` placeholders and the SQL common to SQLite and PostgreSQL.
    """

    #: the column that orders ``release_history`` rows by insertion
    history_order: str

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (``RETURNING`` rows for a write)."""
        ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement; return the number of rows it changed."""
        ...

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        """Run one write statement once per parameter row."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: everything inside commits together or not at all."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class SQLiteReleaseStore:
    """The release tables in the endpoint's SQLite file (created when missing).

    Args:
        path: the endpoint database file.
    """

    history_order = "rowid"

    def __init__(self, path: str | Path) -> None:
        from streamfeat.endpoint._storage import open_db

        self.path = Path(path)
        self._conn = open_db(self.path)  # autocommit: transactions are explicit below
        self._depth = 0
        for stmt in SQLITE_SCHEMA:
            self._conn.execute(stmt)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(sql, tuple(params)).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self._conn.execute(sql, tuple(params)).rowcount)

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, [tuple(p) for p in params])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._depth = 0

    def close(self) -> None:
        self._conn.close()


class PostgresReleaseStore:
    """The release tables in the shared PostgreSQL database (migrated with the endpoint schema).

    Args:
        url: ``postgresql://USER@HOST:PORT/DB``.

    Raises:
        StorageError: the driver is missing, the server unreachable, or the schema newer.
    """

    history_order = "seq"

    def __init__(self, url: str) -> None:
        from streamfeat.endpoint._postgres import _psycopg, open_migrated

        self.url = url
        self._conn = open_migrated(url)
        self._error = _psycopg().Error
        self._lock = threading.RLock()  # one statement or transaction at a time

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """A database error becomes a one-line StorageError (the book's callers catch that)."""
        try:
            yield
        except self._error as exc:
            msg = f"release store: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}"
            raise StorageError(msg) from exc

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._errors():
            cur = self._conn.execute(sql.replace("?", "%s"), tuple(params))
            return list(cur.fetchall()) if cur.description is not None else []

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock, self._errors():
            return int(self._conn.execute(sql.replace("?", "%s"), tuple(params)).rowcount)

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        with self._lock, self._errors(), self._conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), [tuple(p) for p in params])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock, self._errors(), self._conn.transaction():
            yield

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_release_store(db: str | Path) -> SQLiteReleaseStore | PostgresReleaseStore:
    """The release store of an endpoint database: an SQLite path or a ``postgresql://`` URL.

    Raises:
        StorageError: the database cannot be opened.
    """
    if is_postgres_url(str(db)):
        return PostgresReleaseStore(str(db))
    return SQLiteReleaseStore(db)
