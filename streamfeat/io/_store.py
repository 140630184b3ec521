"""The on-device store: one SQLite file through ``sqlite-utils``.

WAL journal, owner-only permissions (0600 on the file and its ``-wal``/``-shm`` companions), a
schema version in ``meta``, and the tables every subsystem shares:

* ``quarantine``: events that broke the contract, with raw bytes, source, position and reason;
* ``records``: records the engine emitted (JSON), with device, kind, name, ts and insert time;
* ``checkpoints``: engine snapshots with the input position and output offset they cover;
* ``counters``: named monotonic counters (evictions, quarantined, ...);
* ``kv``: small subsystem state (admission filters, versions) as bytes.

Retention (:meth:`Store.apply_retention`) drops quarantine entries and records older than the
retention age, then the oldest until the file is under the size bound, counting every eviction
in ``counters`` (``evicted.age.<table>``, ``evicted.size.<table>``). Nothing is evicted silently.
Subsystems with tables of their own (the upload outbox) create them through :attr:`Store.db`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streamfeat._records import public
from streamfeat.errors import StorageError

__all__ = ["SCHEMA_VERSION", "Checkpoint", "QuarantineEntry", "Store"]

SCHEMA_VERSION = 1
_OWNER_ONLY = stat.S_IRUSR | stat.S_IWUSR


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """An input that was not processed: where it came from, its raw bytes, and why."""

    source: str
    position: int  # line number (JSONL, 1-based) or message number (msgpack, 1-based)
    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A committed engine snapshot and the input / output positions it covers."""

    name: str
    snapshot: bytes
    position: int  # input lines (or messages) consumed
    out_offset: int  # bytes of the output file written
    events: int


def _touch_owner_only(path: Path) -> None:
    """Create ``path`` with mode 0600 before SQLite opens it, or tighten an existing file's mode.

    An existing database file is never opened here: closing any descriptor of a file drops
    every POSIX lock this process holds on it, SQLite's included, and another process could
    then delete the WAL under a live connection of ours.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _OWNER_ONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    os.chmod(path, _OWNER_ONLY)


class Store:
    """The device's SQLite store.

    Args:
        path: the database file; created (mode 0600) with its parent directory if absent.
        now_ms: the clock for ``inserted`` times and retention, as ms since the epoch; the
            shell passes ``lambda: int(clock.time() * 1000)``.

    Raises:
        StorageError: if the file cannot be opened or has a newer schema version.
    """

    def __init__(self, path: str | Path, *, now_ms: Any = None) -> None:
        self.path = Path(path)
        self._now_ms = now_ms or (lambda: 0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _touch_owner_only(self.path)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # imported here: sqlite_utils imports numpy when it can (for its column types), and a
            # replay without --db should not (tests/unit/models/test_models_lazy.py)
            import sqlite_utils

            self.db = sqlite_utils.Database(conn)
            # auto_vacuum only takes on a new file, so it must come before anything is written
            self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self._check()
            self._migrate()
            for suffix in ("-wal", "-shm"):
                side = Path(f"{self.path}{suffix}")
                if side.exists():
                    os.chmod(side, _OWNER_ONLY)
        except (OSError, sqlite3.Error) as exc:
            msg = f"can't open the store {self.path}: {exc}"
            if isinstance(exc, sqlite3.DatabaseError) and any(
                w in str(exc) for w in ("malformed", "not a database", "corrupt")
            ):
                msg = self._damaged(str(exc))
            with contextlib.suppress(Exception):
                self.db.conn.close()
            raise StorageError(msg) from exc

    # -- schema ---------------------------------------------------------------------------

    def _check(self) -> None:
        """Refuse a damaged file (``PRAGMA quick_check``) rather than use it."""
        rows = self.db.execute("PRAGMA quick_check(5)").fetchall()
        if [tuple(r) for r in rows] != [("ok",)]:
            raise StorageError(self._damaged(str(rows[0][0]) if rows else "no answer"))

    def _damaged(self, why: str) -> str:
        """The one-line refusal of a damaged file, with the recovery command."""
        why = " ".join(why.split())
        return (
            f"the store {self.path} is damaged ({why}); nothing was changed. Copy what is "
            f"readable into a new file with `sqlite3 {self.path} .dump | sed "
            f"'s/^ROLLBACK; -- due to errors$/COMMIT;/' | sqlite3 NEW.sqlite` and use NEW.sqlite "
            "(see docs/reliability.md)"
        )

    def _migrate(self) -> None:
        db = self.db
        if "meta" not in db.table_names():
            db.table("meta").create({"key": str, "value": str}, pk="key")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            msg = f"store schema version {version} is newer than this streamfeat ({SCHEMA_VERSION})"
            raise StorageError(msg)
        if version < 1:
            with self.transaction():
                db.table("quarantine").create(
                    {
                        "id": int,
                        "source": str,
                        "position": int,
                        "raw": bytes,
                        "reason": str,
                        "inserted": int,
                    },
                    pk="id",
                    if_not_exists=True,
                )
                db.table("records").create(
                    {
                        "id": int,
                        "device": str,
                        "kind": str,
                        "name": str,
                        "ts": int,
                        "body": str,
                        "inserted": int,
                    },
                    pk="id",
                    if_not_exists=True,
                )
                db.table("records").create_index(["inserted"], if_not_exists=True)
                db.table("quarantine").create_index(["inserted"], if_not_exists=True)
                db.table("checkpoints").create(
                    {
                        "name": str,
                        "snapshot": bytes,
                        "position": int,
                        "out_offset": int,
                        "events": int,
                    },
                    pk="name",
                    if_not_exists=True,
                )
                db.table("counters").create(
                    {"name": str, "value": int}, pk="name", if_not_exists=True
                )
                db.table("kv").create({"key": str, "value": bytes}, pk="key", if_not_exists=True)
                db.table("meta").upsert(
                    {"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key"
                )

    @property
    def schema_version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    # -- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the ``with`` body as one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``).

        Nested use joins the outer transaction. On an exception the transaction is rolled back
        and the exception propagates; the store is unchanged.
        """
        conn = self.db.conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def add_quarantine(self, entries: Iterable[QuarantineEntry]) -> int:
        """Insert quarantine entries; return how many."""
        now = self._now_ms()
        rows = [(e.source, e.position, e.raw, e.reason, now) for e in entries]
        if rows:
            self.db.conn.executemany(
                "INSERT INTO quarantine (source, position, raw, reason, inserted) VALUES (?,?,?,?,?)",
                rows,
            )
            self.incr("quarantined", len(rows))
        return len(rows)

    def add_records(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert records (attachments stripped); return how many."""
        now = self._now_ms()
        rows = []
        for r in records:
            pub = public(r)
            name = (
                pub.get("trigger")
                or pub.get("window")
                or pub.get("feature")
                or pub.get("task")
                or ""
            )
            ts = pub.get("ts", pub.get("end", pub.get("last_ts", 0)))
            rows.append(
                (pub.get("device", ""), pub["kind"], name, ts, orjson.dumps(pub).decode(), now)
            )
        if rows:
            self.db.conn.executemany(
                "INSERT INTO records (device, kind, name, ts, body, inserted) VALUES (?,?,?,?,?,?)",
                rows,
            )
        return len(rows)

    def incr(self, name: str, by: int = 1) -> None:
        """Add ``by`` to counter ``name``."""
        self.db.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def counters(self) -> dict[str, int]:
        """Return every counter."""
        return dict(self.db.execute("SELECT name, value FROM counters ORDER BY name").fetchall())

    def put_state(self, key: str, value: bytes) -> None:
        """Store a small piece of subsystem state under ``key``."""
        self.db.conn.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_state(self, key: str) -> bytes | None:
        """Return the state stored under ``key``, or None."""
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
        return None if row is None else bytes(row[0])

    # -- audit ledger ---------------------------------------------------------------------

    def add_ledger(self, digests: Iterable[bytes]) -> None:
        """Append record digests to the ``ledger`` table (audits: the simulator keeps there
        what each agent put in its outbox, inside the agent's own transaction)."""
        conn = self.db.conn
        conn.execute("CREATE TABLE IF NOT EXISTS ledger (digest BLOB NOT NULL)")
        conn.executemany("INSERT INTO ledger (digest) VALUES (?)", [(d,) for d in digests])

    def ledger(self) -> dict[bytes, int]:
        """``{digest: count}`` of the ``ledger`` table (empty if there is none)."""
        if "ledger" not in self.db.table_names():
            return {}
        rows = self.db.execute("SELECT digest, count(*) FROM ledger GROUP BY digest")
        return {bytes(d): int(n) for d, n in rows.fetchall()}

    # -- checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self, cp: Checkpoint) -> None:
        """Commit ``cp`` atomically (replacing the previous checkpoint of that name)."""
        with self.transaction():
            self.db.conn.execute(
                "INSERT OR REPLACE INTO checkpoints (name, snapshot, position, out_offset, events) "
                "VALUES (?,?,?,?,?)",
                (cp.name, cp.snapshot, cp.position, cp.out_offset, cp.events),
            )

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        """Return the checkpoint called ``name``, or None."""
        row = self.db.execute(
            "SELECT name, snapshot, position, out_offset, events FROM checkpoints WHERE name = ?",
            [name],
        ).fetchone()
        return None if row is None else Checkpoint(row[0], bytes(row[1]), row[2], row[3], row[4])

    def delete_checkpoint(self, name: str) -> None:
        self.db.conn.execute("DELETE FROM checkpoints WHERE name = ?", (name,))

    # -- reading --------------------------------------------------------------------------

    def quarantine(self) -> Iterator[QuarantineEntry]:
        """Yield the quarantine entries, oldest first."""
        for source, position, raw, reason in self.db.execute(
            "SELECT source, position, raw, reason FROM quarantine ORDER BY id"
        ):
            yield QuarantineEntry(source, position, bytes(raw), reason)

    def records(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield stored records (optionally of one kind), oldest first."""
        sql, params = "SELECT body FROM records ORDER BY id", []
        if kind is not None:
            sql, params = "SELECT body FROM records WHERE kind = ? ORDER BY id", [kind]
        for (body,) in self.db.execute(sql, params):
            yield orjson.loads(body)

    # -- retention ------------------------------------------------------------------------

    def size_bytes(self) -> int:
        """Return the database size in bytes (pages in use)."""
        count = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self.db.execute("PRAGMA page_size").fetchone()[0]
        return int((count - free) * size)

    def apply_retention(self, *, max_age_ms: int, max_mb: float) -> dict[str, int]:
        """Evict by age, then oldest-first by size; return what was evicted, per counter name.

        ``max_age_ms`` or ``max_mb`` of 0 turns that bound off.
        """
        evicted: dict[str, int] = {}
        tables = ("records", "quarantine")
        with self.transaction():
            if max_age_ms:
                cutoff = self._now_ms() - max_age_ms
                for t in tables:
                    n = self.db.conn.execute(
                        f"DELETE FROM {t} WHERE inserted < ?", (cutoff,)
                    ).rowcount
                    if n:
                        evicted[f"evicted.age.{t}"] = n
            if max_mb:
                limit = int(max_mb * 1024 * 1024)
                while self.size_bytes() > limit:
                    removed = 0
                    for t in tables:
                        total = self.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                        batch = max(1, total // 10)
                        n = self.db.conn.execute(
                            f"DELETE FROM {t} WHERE id IN (SELECT id FROM {t} ORDER BY id LIMIT ?)",
                            (batch,),
                        ).rowcount
                        if n:
                            evicted[f"evicted.size.{t}"] = evicted.get(f"evicted.size.{t}", 0) + n
                            removed += n
                    if not removed:
                        break
            for name, n in evicted.items():
                self.incr(name, n)
        if evicted:
            self.reclaim()
        return evicted

    def reclaim(self) -> None:
        """Give the pages of deleted or emptied rows back to the filesystem (the store runs
        with ``auto_vacuum=INCREMENTAL``), e.g. after a large partial download is dropped.
        The pragma frees one page per step of its statement, and ``execute`` steps a
        statement without result columns once: ``executescript`` runs it to the end (it
        commits first, so this is a no-op inside an open transaction)."""
        if not self.db.conn.in_transaction:
            self.db.conn.executescript("PRAGMA incremental_vacuum;")

    def close(self) -> None:
        """Close the database."""
        self.db.conn.close()
