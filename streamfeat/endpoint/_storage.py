"""Endpoint storage: the interface the server writes through, and the SQLite default.

The server calls :meth:`Storage.store_batches` from one worker thread with every batch that
arrived since the last call (group commit), and acknowledges a batch only after the call
returned. Idempotency is the storage's job: a batch whose ``(device, batch_id)`` is already
stored is reported as a duplicate and stored nothing. A larger deployment implements the same
protocol on a shared database or a stream bus (the key must be unique there too).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from streamfeat.errors import StorageError

__all__ = ["MissingDatabase", "SQLiteStorage", "Storage", "StoredBatch"]


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch as the endpoint stores it.

    Attributes:
        device: the registered device name.
        batch_id: the device's 16-byte id (unique per device).
        payload: the batch body as received (length-prefixed items).
        received: endpoint time (epoch seconds).
        records: decoded records, when the server has a decoder.
    """

    device: str
    batch_id: bytes
    payload: bytes
    received: float
    records: list[dict[str, Any]] | None = field(default=None)


class Storage(Protocol):
    """Where the endpoint puts batches. Methods are synchronous; the server runs them in
    a worker thread."""

    def store_batches(self, batches: Sequence[StoredBatch]) -> list[bool]:
        """Store all batches atomically; return, per batch, True if new, False if a duplicate.

        Raises:
            StorageError: nothing was stored.
        """
        ...

    def get_config(self, device: str) -> tuple[int, bytes] | None:
        """The config to send down to ``device`` (version, body), or None."""
        ...

    def set_config(self, device: str, version: int, body: bytes) -> None:
        """Set the config for ``device``; sent on its next connection (or pushed live)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS batches (
        device TEXT NOT NULL, batch_id BLOB NOT NULL, received REAL NOT NULL,
        items INTEGER NOT NULL, size INTEGER NOT NULL, payload BLOB NOT NULL,
        PRIMARY KEY (device, batch_id))""",
    """CREATE TABLE IF NOT EXISTS batch_records (
        id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, batch_id BLOB NOT NULL,
        idx INTEGER NOT NULL, record TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS device_configs (
        device TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL)""",
)


# `.dump` of a damaged file ends with "ROLLBACK; -- due to errors": commit what was readable
RECOVER_HINT = (
    "stop the endpoint and rebuild it from what is readable: "
    "`sqlite3 {path} .dump | sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' "
    "| sqlite3 {path}.recovered` then `mv {path}.recovered {path}` "
    "(see docs/reliability.md, Endpoint)"
)


class MissingDatabase(StorageError):
    """Raised when an endpoint database does not exist and creating it was not asked for."""


def open_db(path: str | Path, *, create: bool = True, check: bool = True) -> sqlite3.Connection:
    """Open an endpoint SQLite file in WAL mode, autocommit.

    Args:
        path: the database file (``":memory:"`` for a throwaway one).
        create: create the file (mode 0600) and its folder when missing; the command line
            passes False except in its explicit init steps, so that a typo never creates a
            new, empty endpoint.
        check: run ``PRAGMA quick_check`` on an existing file and refuse a damaged one.

    Raises:
        MissingDatabase: the file is missing and ``create`` is False.
        StorageError: the file can't be opened, or ``quick_check`` found damage (the message
            names the recovery command).
    """
    p = Path(path)
    existed = str(p) == ":memory:" or p.exists()
    if not existed and not create:
        msg = f"endpoint database {p} does not exist"
        raise MissingDatabase(msg)
    if str(p) != ":memory:":
        p.parent.mkdir(parents=True, exist_ok=True)
        # Create the file 0600 before SQLite writes to it, but never open an existing one with
        # a plain descriptor: closing it would drop every POSIX lock this process holds on the
        # file, SQLite's WAL-mode "a connection is open" lock included; another process closing
        # its connection would then checkpoint and delete the WAL under our open connections,
        # and what we commit afterwards would be lost in a crash.
        if not p.exists():
            with contextlib.suppress(FileExistsError):
                os.close(
                    os.open(p, os.O_CREAT | os.O_EXCL | os.O_RDWR, stat.S_IRUSR | stat.S_IWUSR)
                )
    try:
        conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged batch survives a power cut, not only a process crash
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        problems = (
            [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
            if check and existed and str(p) != ":memory:"
            else ["ok"]
        )
    except sqlite3.Error as exc:
        msg = f"can't open endpoint database {path}: {exc}"
        if isinstance(exc, sqlite3.DatabaseError) and "malformed" in str(exc):
            msg += "; " + RECOVER_HINT.format(path=p)
        raise StorageError(msg) from exc
    if problems != ["ok"]:
        conn.close()
        msg = (
            f"endpoint database {p} is damaged ({'; '.join(str(x) for x in problems)[:200]}); "
            + RECOVER_HINT.format(path=p)
        )
        raise StorageError(msg)
    return conn


class SQLiteStorage:
    """The embedded default: batches, decoded records and device configs in one SQLite file."""

    def __init__(self, path: str | Path, *, create: bool = True, check: bool = True) -> None:
        self.path = Path(path)
        self._conn = open_db(path, create=create, check=check)
        for stmt in _SCHEMA:
            self._conn.execute(stmt)

    def store_batches(self, batches: Sequence[StoredBatch]) -> list[bool]:
        c = self._conn
        out: list[bool] = []
        try:
            c.execute("BEGIN IMMEDIATE")
            try:
                for b in batches:
                    cur = c.execute(
                        "INSERT OR IGNORE INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            b.device,
                            b.batch_id,
                            b.received,
                            len(b.records or ()),
                            len(b.payload),
                            b.payload,
                        ),
                    )
                    new = cur.rowcount == 1
                    out.append(new)
                    if new and b.records:
                        c.executemany(
                            "INSERT INTO batch_records (device, batch_id, idx, record) VALUES (?, ?, ?, ?)",
                            [
                                (b.device, b.batch_id, i, orjson.dumps(r).decode())
                                for i, r in enumerate(b.records)
                            ],
                        )
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            msg = f"storing {len(batches)} batches failed: {exc}"
            raise StorageError(msg) from exc
        return out

    def get_config(self, device: str) -> tuple[int, bytes] | None:
        row = self._conn.execute(
            "SELECT version, body FROM device_configs WHERE device = ?", (device,)
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def set_config(self, device: str, version: int, body: bytes) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO device_configs VALUES (?, ?, ?)", (device, version, body)
        )

    def device_bytes(self, device: str) -> int:
        """Payload bytes stored for ``device`` (the endpoint's per-device quota counts them)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM batches WHERE device = ?", (device,)
        ).fetchone()
        return int(row[0])

    def batches(self, device: str | None = None) -> list[tuple[str, bytes, bytes]]:
        """Stored ``(device, batch_id, payload)``, in insertion order (for tools and tests)."""
        sql = "SELECT device, batch_id, payload FROM batches"
        rows = self._conn.execute(
            sql + (" WHERE device = ?" if device else "") + " ORDER BY rowid",
            (device,) if device else (),
        ).fetchall()
        return [(r[0], bytes(r[1]), bytes(r[2])) for r in rows]

    def iter_batches(self) -> Iterator[StoredBatch]:
        """Yield every stored batch, in insertion order, one row at a time (for audits).

        The batches come without decoded records (``records`` is None); the payload is the
        body as received.
        """
        cur = self._conn.execute(
            "SELECT device, batch_id, payload, received FROM batches ORDER BY rowid"
        )
        for device, batch_id, payload, received in cur:
            yield StoredBatch(device, bytes(batch_id), bytes(payload), float(received))

    def size_bytes(self) -> int:
        """The database's size on disk: the file and its write-ahead log."""
        total = 0
        for p in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def close(self) -> None:
        self._conn.close()
