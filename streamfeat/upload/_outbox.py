"""The device's durable upload outbox, in its SQLite store.

Payloads (opaque bytes, one encoded batch of records each) are *items*. ``enqueue`` writes an
item in one short transaction and returns; nothing waits on the network. Items are sealed into
*batches* (a random 16-byte id and the items joined with length prefixes) when their total
reaches ``batch_max_bytes`` or the oldest is ``batch_max_age`` seconds old. A batch stays in
the ``outbox`` table until the endpoint acknowledges its id, so it is sent again after a
reconnect or a restart; the endpoint deduplicates on the id.

Size bound: when sealed batches plus pending items exceed ``max_bytes``, the oldest sealed
batches are deleted first (then the oldest pending items), and every eviction is counted in
``outbox_counters`` (``evicted_batches``, ``evicted_items``, ``evicted_bytes``): never silent.

Tables (created if absent): ``outbox_items`` (pending items), ``outbox`` (sealed batches),
``outbox_counters`` and ``outbox_config`` (the last config the endpoint sent).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from streamfeat.clock import Clock, SystemClock
from streamfeat.errors import StorageError, TunnelError
from streamfeat.tunnel._events import CloseCode
from streamfeat.tunnel._frames import BATCH_ID_LEN, MAX_BATCH
from streamfeat.tunnel._items import join_items, split_items, uvarint

__all__ = ["AckedBatch", "Outbox", "OutboxBatch", "OutboxConfig", "join_items", "split_items"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, batch_id BLOB NOT NULL UNIQUE,
    payload BLOB NOT NULL, items INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_config (
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, body BLOB NOT NULL);
"""
COUNTERS = (
    "enqueued_items",
    "sealed_batches",
    "acked_batches",
    "evicted_batches",
    "evicted_items",
    "evicted_bytes",
)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """Batching and bounds (``[upload]`` of the tasks file gives the defaults).

    Attributes:
        batch_max_bytes: seal when pending items reach this many bytes.
        batch_max_age: seal when the oldest pending item is this old (seconds).
        max_bytes: bound on sealed plus pending bytes; beyond it the oldest are evicted.
    """

    batch_max_bytes: int = 3072
    batch_max_age: float = 1.0
    max_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_upload(cls, upload: Any) -> OutboxConfig:
        """From a ``streamfeat.tasks.UploadConfig`` (``batch_max_age`` in ms, ``outbox_max_mb``)."""
        return cls(
            batch_max_bytes=int(upload.batch_max_bytes),
            batch_max_age=upload.batch_max_age / 1000.0,
            max_bytes=int(upload.outbox_max_mb * 1024 * 1024),
        )


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """A sealed batch waiting for its acknowledgement."""

    seq: int
    batch_id: bytes
    payload: bytes
    items: int


@dataclass(frozen=True, slots=True)
class AckedBatch:
    """What :class:`Outbox` reports to ``on_ack`` for a batch the endpoint acknowledged.

    Attributes:
        batch_id: the batch's id.
        size: its body's length in bytes.
        created: clock time its oldest item was enqueued.
    """

    batch_id: bytes
    size: int
    created: float


def _connection(db: Any) -> sqlite3.Connection:
    """Accept a Store, a sqlite_utils Database, a sqlite3 connection or a path."""
    if isinstance(db, sqlite3.Connection):
        return db
    inner = getattr(db, "db", db)  # streamfeat.io.Store
    conn = getattr(inner, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        return conn
    if isinstance(db, str | os.PathLike):
        c = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        return c
    msg = f"can't use {type(db).__name__} as the outbox database"
    raise StorageError(msg)


class Outbox:
    """Durable, bounded outbox of upload batches.

    Args:
        db: the device store (``streamfeat.io.Store``), a ``sqlite_utils.Database``,
            a ``sqlite3.Connection`` or a file path.
        config: batching and size bound.
        clock: ``time()`` stamps items; sealing by age compares against it.
        random_bytes: source of batch ids.
        on_seal: called with a batch's id when it is sealed (inside the sealing transaction).
        on_ack: called with an :class:`AckedBatch` after an acknowledged batch was deleted.
    """

    def __init__(
        self,
        db: Any,
        config: OutboxConfig | None = None,
        *,
        clock: Clock | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        on_seal: Callable[[bytes], None] | None = None,
        on_ack: Callable[[AckedBatch], None] | None = None,
    ) -> None:
        self.config = config or OutboxConfig()
        self._conn = _connection(db)
        self._clock = clock or SystemClock()
        self._random = random_bytes
        self._on_seal = on_seal
        self._on_ack = on_ack
        # one connection, possibly used from the engine's thread (enqueue) and the
        # uploader's loop (ack): transactions must not interleave
        self._lock = threading.RLock()
        # sizes of what is sealed and pending, kept in memory (set from the tables below)
        self._sealed_bytes = 0
        self._pending_bytes = 0
        self._pending_count = 0
        self._pending_oldest: float | None = None
        with self._tx() as c:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            for name in COUNTERS:
                c.execute("INSERT OR IGNORE INTO outbox_counters VALUES (?, 0)", (name,))
        self._load_sizes()

    def reload(self) -> None:
        """Re-read the in-memory sizes from the tables (after a caller's transaction rolled back)."""
        with self._lock:
            self._load_sizes()

    def _load_sizes(self) -> None:
        c = self._conn
        self._sealed_bytes = c.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()[0]
        row = c.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0), MIN(created), COUNT(*) FROM outbox_items"
        ).fetchone()
        self._pending_bytes, self._pending_oldest, self._pending_count = row

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        c = self._conn
        with self._lock:
            yield from self._tx_locked(c)

    def _tx_locked(self, c: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        try:
            if c.in_transaction:  # join the caller's transaction (it commits or rolls back)
                yield c
            elif c.isolation_level is None:
                c.execute("BEGIN IMMEDIATE")
                try:
                    yield c
                except BaseException:
                    c.execute("ROLLBACK")
                    raise
                c.execute("COMMIT")
            else:
                with c:
                    yield c
        except sqlite3.Error as exc:
            msg = f"outbox write failed: {exc}"
            raise StorageError(msg) from exc

    # ---- producer side -----------------------------------------------------------------

    def enqueue(self, payload: bytes) -> None:
        """Add one payload durably; seal and evict as the config says. Fast, never waits.

        Raises:
            TunnelError: the payload alone exceeds the largest batch (``close_code`` TOO_LARGE).
            StorageError: SQLite failed; nothing was added.
        """
        size = len(payload) + len(uvarint(len(payload)))
        if size > MAX_BATCH:
            msg = f"payload of {len(payload)} bytes exceeds the largest batch ({MAX_BATCH})"
            raise TunnelError(msg, close_code=CloseCode.TOO_LARGE)
        now = self._clock.time()
        with self._tx() as c:
            if self._pending_count and self._pending_bytes + size > self.config.batch_max_bytes:
                self._seal(c)
            c.execute("INSERT INTO outbox_items (payload, created) VALUES (?, ?)", (payload, now))
            self._bump(c, "enqueued_items", 1)
            self._pending_bytes += size
            self._pending_count += 1
            if self._pending_oldest is None:
                self._pending_oldest = now
            if self._pending_bytes >= self.config.batch_max_bytes:
                self._seal(c)
            self._evict(c)

    def seal_due(self) -> bool:
        """Seal the pending items if the oldest reached ``batch_max_age``; True if sealed."""
        deadline = self.seal_deadline()
        if deadline is None or self._clock.time() < deadline:
            return False
        self.flush()
        return True

    def seal_deadline(self) -> float | None:
        """Clock time at which the pending items must be sealed, or None if there are none."""
        if not self._pending_count or self._pending_oldest is None:
            return None
        return float(self._pending_oldest) + self.config.batch_max_age

    def flush(self) -> None:
        """Seal all pending items now."""
        if self._pending_count:
            with self._tx() as c:
                self._seal(c)

    def _seal(self, c: sqlite3.Connection) -> None:
        rows = c.execute("SELECT seq, payload, created FROM outbox_items ORDER BY seq").fetchall()
        if not rows:
            return
        body = join_items([r[1] for r in rows])
        batch_id = self._random(BATCH_ID_LEN)
        c.execute(
            "INSERT INTO outbox (batch_id, payload, items, created) VALUES (?, ?, ?, ?)",
            (batch_id, body, len(rows), rows[0][2]),
        )
        c.execute("DELETE FROM outbox_items WHERE seq <= ?", (rows[-1][0],))
        self._bump(c, "sealed_batches", 1)
        if self._on_seal is not None:
            self._on_seal(batch_id)
        self._sealed_bytes += len(body)
        self._pending_bytes, self._pending_count, self._pending_oldest = 0, 0, None

    def _evict(self, c: sqlite3.Connection) -> None:
        while self._sealed_bytes + self._pending_bytes > self.config.max_bytes:
            row = c.execute(
                "SELECT seq, LENGTH(payload), items FROM outbox ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is not None:
                c.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
                self._sealed_bytes -= row[1]
                self._bump(c, "evicted_batches", 1)
                self._bump(c, "evicted_items", row[2])
                self._bump(c, "evicted_bytes", row[1])
                continue
            item = c.execute(
                "SELECT seq, LENGTH(payload) FROM outbox_items ORDER BY seq LIMIT 1"
            ).fetchone()
            if item is None:
                break
            c.execute("DELETE FROM outbox_items WHERE seq = ?", (item[0],))
            self._bump(c, "evicted_items", 1)
            self._bump(c, "evicted_bytes", item[1])
            self._load_sizes()

    @staticmethod
    def _bump(c: sqlite3.Connection, name: str, by: int) -> None:
        c.execute("UPDATE outbox_counters SET value = value + ? WHERE name = ?", (by, name))

    # ---- sender side -------------------------------------------------------------------

    def batches(self, *, after_seq: int = 0, limit: int = 64) -> list[OutboxBatch]:
        """Sealed, unacknowledged batches with ``seq > after_seq``, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, batch_id, payload, items FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxBatch(r[0], bytes(r[1]), bytes(r[2]), r[3]) for r in rows]

    def ack(self, batch_id: bytes) -> bool:
        """Delete an acknowledged batch; False if it was not there (evicted or acked before)."""
        return self.ack_many([batch_id]) == 1

    def ack_many(self, batch_ids: list[bytes]) -> int:
        """Delete acknowledged batches in one transaction (the acks of one message); returns
        how many were there (the others were evicted or acked before)."""
        done: list[AckedBatch] = []
        with self._tx() as c:
            for batch_id in batch_ids:
                row = c.execute(
                    "SELECT LENGTH(payload), created FROM outbox WHERE batch_id = ?", (batch_id,)
                ).fetchone()
                if row is None:
                    continue
                c.execute("DELETE FROM outbox WHERE batch_id = ?", (batch_id,))
                self._sealed_bytes -= row[0]
                done.append(AckedBatch(batch_id, int(row[0]), float(row[1])))
            if done:
                self._bump(c, "acked_batches", len(done))
        if self._on_ack is not None:
            for a in done:
                self._on_ack(a)
        return len(done)

    def __len__(self) -> int:
        """Number of sealed batches waiting for acknowledgement."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @property
    def pending_items(self) -> int:
        """Items not sealed into a batch yet."""
        return int(self._pending_count)

    def counters(self) -> dict[str, int]:
        """The persistent counters (enqueued, sealed, acked, evicted ...)."""
        with self._lock:
            return dict(self._conn.execute("SELECT name, value FROM outbox_counters").fetchall())

    # ---- downlink config ---------------------------------------------------------------

    def save_config(self, version: int, body: bytes) -> None:
        """Keep the last config the endpoint sent (its version is announced on connect)."""
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO outbox_config (id, version, body) VALUES (1, ?, ?)",
                (version, body),
            )

    def load_config(self) -> tuple[int, bytes] | None:
        """The last config received, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT version, body FROM outbox_config WHERE id = 1"
            ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None
