"""The endpoint's storage, registry and first-message replay cache on PostgreSQL.

Same interfaces as the SQLite default (``Storage``, the registry, ``ReplayCache.seen``), for
deployments that run several endpoint processes (or machines) over one shared database.

Theory of operation
-------------------
* **Schema.** :func:`migrate` creates and upgrades the tables under a transaction-scoped
  advisory lock, so N processes starting together migrate once; the version reached is
  recorded in ``streamfeat_meta`` (``schema_version``). A database with a newer version than
  this code knows is refused, never written.
* **Exactly once across processes.** ``batches`` has ``PRIMARY KEY (device, batch_id)``;
  every insert is ``ON CONFLICT DO NOTHING``. Two processes inserting the same batch at once:
  the second waits on the first's row lock and, once the first committed, inserts nothing
  (reported as a duplicate); if the first rolled back, the second stores it. The database,
  not a process, decides which copy is new.
* **Shared replay cache.** A first message's ephemeral key is inserted into
  ``handshake_replay`` (primary key); a conflict means some process saw it before, so a
  replayed handshake is refused whichever process receives it. Entries older than
  ``replay_retention`` seconds are deleted now and then (the bound); the batch-id key above
  still stores a replayed 0-RTT batch at most once after that.
* **Threads.** The server stores from a writer thread and looks devices up on its event loop:
  each object below owns one connection guarded by a lock, so a transaction never interleaves
  with a statement from another thread.

``psycopg`` (v3) is an optional dependency: ``pip install 'streamfeat[postgres]'``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from streamfeat.endpoint._registry import DeviceEntry, already_registered, new_entries
from streamfeat.endpoint._storage import StoredBatch
from streamfeat.errors import StorageError

__all__ = [
    "SCHEMA_VERSION",
    "PostgresRegistry",
    "PostgresReplayCache",
    "PostgresStorage",
    "connect",
    "is_postgres_url",
    "migrate",
    "open_migrated",
    "schema_version",
]

SCHEMA_VERSION = 2
_LOCK_KEY = 0x5F5E_0017  # advisory lock id of the migration (any fixed 64-bit number)

# Each entry upgrades the schema from its index to index + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS devices (
            name TEXT PRIMARY KEY, public_key BYTEA NOT NULL UNIQUE,
            added DOUBLE PRECISION NOT NULL, revoked DOUBLE PRECISION)""",
        """CREATE TABLE IF NOT EXISTS batches (
            device TEXT NOT NULL, batch_id BYTEA NOT NULL, received DOUBLE PRECISION NOT NULL,
            items INTEGER NOT NULL, size INTEGER NOT NULL, payload BYTEA NOT NULL,
            seq BIGSERIAL, PRIMARY KEY (device, batch_id))""",
        """CREATE TABLE IF NOT EXISTS batch_records (
            id BIGSERIAL PRIMARY KEY, device TEXT NOT NULL, batch_id BYTEA NOT NULL,
            idx INTEGER NOT NULL, record JSONB NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS device_configs (
            device TEXT PRIMARY KEY, version INTEGER NOT NULL, body BYTEA NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS handshake_replay (
            ephemeral BYTEA PRIMARY KEY, seen DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS handshake_replay_seen ON handshake_replay (seen)",
    ),
    # 1 -> 2: the release book (bundles, releases, rollout state, groups, grades) and the
    # downlink queue every endpoint process polls (see _release_store)
    (
        """CREATE TABLE IF NOT EXISTS bundles (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL,
            size INTEGER NOT NULL, data BYTEA NOT NULL, created DOUBLE PRECISION NOT NULL)""",
        # stored uncompressed out of line: a pull reads 64 KB slices without decompressing
        # the whole bundle for each (bundles are signed archives of mostly compressed models)
        "ALTER TABLE bundles ALTER COLUMN data SET STORAGE EXTERNAL",
        "CREATE INDEX IF NOT EXISTS bundles_name ON bundles (name, created)",
        """CREATE TABLE IF NOT EXISTS releases (
            id TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,
            percent DOUBLE PRECISION NOT NULL, matrix TEXT NOT NULL, thresholds TEXT NOT NULL,
            bundles TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS release_history (
            seq BIGSERIAL PRIMARY KEY, release TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
            step TEXT NOT NULL, state TEXT NOT NULL, percent DOUBLE PRECISION NOT NULL,
            reason TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS release_history_release ON release_history (release)",
        """CREATE TABLE IF NOT EXISTS release_devices (
            release TEXT NOT NULL, device TEXT NOT NULL, bundle TEXT NOT NULL,
            status TEXT NOT NULL, reason TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL,
            health TEXT, PRIMARY KEY (release, device))""",
        """CREATE TABLE IF NOT EXISTS device_grades (
            device TEXT PRIMARY KEY, model TEXT NOT NULL, p50 DOUBLE PRECISION NOT NULL,
            p99 DOUBLE PRECISION NOT NULL, runs INTEGER NOT NULL,
            updated DOUBLE PRECISION NOT NULL)""",
        "CREATE TABLE IF NOT EXISTS device_groups (device TEXT PRIMARY KEY, grp TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS announcements (
            seq BIGSERIAL PRIMARY KEY, device TEXT NOT NULL, version INTEGER NOT NULL,
            body BYTEA NOT NULL)""",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


def is_postgres_url(db: str) -> bool:
    """True when ``db`` names a PostgreSQL database rather than an SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        msg = (
            "a postgresql:// database needs the PostgreSQL driver: "
            "pip install 'streamfeat[postgres]'"
        )
        raise StorageError(msg) from exc
    return psycopg


def _redact(url: str) -> str:
    # never log a password: keep the scheme and what follows the credentials
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def connect(url: str) -> Any:
    """Open an autocommit connection to ``url``.

    Raises:
        StorageError: the driver is missing or the server cannot be reached.
    """
    psycopg = _psycopg()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        msg = f"can't connect to {_redact(url)}: {str(exc).strip().splitlines()[0]}"
        raise StorageError(msg) from exc


def schema_version(conn: Any) -> int:
    """The schema version recorded in the database (0 for an empty database)."""
    row = conn.execute(
        "SELECT to_regclass('streamfeat_meta') IS NOT NULL",
    ).fetchone()
    if not row[0]:
        return 0
    row = conn.execute("SELECT value FROM streamfeat_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Any) -> int:
    """Create or upgrade the schema to :data:`SCHEMA_VERSION`; return the version found before.

    Raises:
        StorageError: the database has a newer schema than this code (nothing is changed).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS streamfeat_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        found = schema_version(conn)
        if found > SCHEMA_VERSION:
            msg = (
                f"the database has endpoint schema version {found}, newer than this "
                f"streamfeat's {SCHEMA_VERSION}: upgrade streamfeat"
            )
            raise StorageError(msg)
        for version in range(found, SCHEMA_VERSION):
            for stmt in _MIGRATIONS[version]:
                conn.execute(stmt)
        conn.execute(
            """INSERT INTO streamfeat_meta VALUES ('schema_version', %s)
               ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value""",
            (str(SCHEMA_VERSION),),
        )
    return found


def open_migrated(url: str) -> Any:
    """An autocommit connection to ``url`` with the endpoint schema created or upgraded.

    Raises:
        StorageError: the driver is missing, the server unreachable, or the schema newer.
    """
    conn = connect(url)
    try:
        migrate(conn)
    except _psycopg().Error as exc:
        conn.close()
        msg = f"can't prepare the endpoint schema in {_redact(url)}: {exc}"
        raise StorageError(msg) from exc
    except StorageError:
        conn.close()
        raise
    return conn


class _Conn:
    """One connection, one lock: what each public object below holds."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = open_migrated(url)
        self.lock = threading.Lock()
        self._error = _psycopg().Error

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class PostgresStorage:
    """Batches, decoded records and device configs in PostgreSQL (``Storage`` protocol).

    Args:
        url: ``postgresql://USER@HOST:PORT/DB`` (libpq URL; a password may come from
            ``PGPASSWORD`` or ``~/.pgpass`` rather than the URL).

    Raises:
        StorageError: the driver is missing, the server unreachable, or the schema newer.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._c = _Conn(url)

    def store_batches(self, batches: Sequence[StoredBatch]) -> list[bool]:
        c = self._c
        if not batches:
            return []
        cols: list[list[Any]] = [[], [], [], [], [], []]
        for b in batches:
            row = (
                b.device,
                b.batch_id,
                b.received,
                len(b.records or ()),
                len(b.payload),
                b.payload,
            )
            for col, v in zip(cols, row, strict=True):
                col.append(v)
        try:
            with c.lock, c.conn.transaction(), c.conn.cursor() as cur:
                # one statement for the whole group: the rows it returns are the new ones
                cur.execute(
                    """INSERT INTO batches (device, batch_id, received, items, size, payload)
                       SELECT * FROM unnest(%s::text[], %s::bytea[], %s::float8[], %s::int[],
                                            %s::int[], %s::bytea[])
                       ON CONFLICT DO NOTHING RETURNING device, batch_id""",
                    cols,
                )
                inserted = {(r[0], bytes(r[1])) for r in cur.fetchall()}
                out: list[bool] = []
                records = []
                for b in batches:
                    new = (b.device, b.batch_id) in inserted
                    inserted.discard((b.device, b.batch_id))  # a repeat in the group: duplicate
                    out.append(new)
                    if new and b.records:
                        records += [
                            (b.device, b.batch_id, i, orjson.dumps(r).decode())
                            for i, r in enumerate(b.records)
                        ]
                if records:
                    cur.executemany(
                        "INSERT INTO batch_records (device, batch_id, idx, record) "
                        "VALUES (%s, %s, %s, %s)",
                        records,
                    )
        except c._error as exc:
            msg = f"storing {len(batches)} batches failed: {exc}"
            raise StorageError(msg) from exc
        return out

    def get_config(self, device: str) -> tuple[int, bytes] | None:
        with self._c.lock:
            row = self._c.conn.execute(
                "SELECT version, body FROM device_configs WHERE device = %s", (device,)
            ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def set_config(self, device: str, version: int, body: bytes) -> None:
        with self._c.lock:
            self._c.conn.execute(
                """INSERT INTO device_configs VALUES (%s, %s, %s) ON CONFLICT (device)
                   DO UPDATE SET version = EXCLUDED.version, body = EXCLUDED.body""",
                (device, version, body),
            )

    def batches(self, device: str | None = None) -> list[tuple[str, bytes, bytes]]:
        """Stored ``(device, batch_id, payload)``, in insertion order (for tools and tests)."""
        sql = "SELECT device, batch_id, payload FROM batches"
        with self._c.lock:
            rows = self._c.conn.execute(
                sql + (" WHERE device = %s" if device else "") + " ORDER BY seq",
                (device,) if device else (),
            ).fetchall()
        return [(r[0], bytes(r[1]), bytes(r[2])) for r in rows]

    def iter_batches(self) -> Iterator[StoredBatch]:
        """Yield every stored batch, in insertion order (for audits), fetched in chunks.

        The batches come without decoded records (``records`` is None).
        """
        last = 0
        while True:
            with self._c.lock:
                rows = self._c.conn.execute(
                    "SELECT seq, device, batch_id, payload, received FROM batches "
                    "WHERE seq > %s ORDER BY seq LIMIT 1000",
                    (last,),
                ).fetchall()
            if not rows:
                return
            for seq, device, batch_id, payload, received in rows:
                last = seq
                yield StoredBatch(device, bytes(batch_id), bytes(payload), float(received))

    def records(self, device: str | None = None) -> list[dict[str, Any]]:
        """Decoded records stored with the batches, in insertion order."""
        sql = "SELECT record FROM batch_records"
        with self._c.lock:
            rows = self._c.conn.execute(
                sql + (" WHERE device = %s" if device else "") + " ORDER BY id",
                (device,) if device else (),
            ).fetchall()
        return [r[0] for r in rows]

    def size_bytes(self) -> int:
        """The database's size on the server (``pg_database_size``): every table of the
        endpoint, its indexes and what PostgreSQL keeps beside them."""
        with self._c.lock:
            row = self._c.conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._c.close()


class PostgresRegistry:
    """The device registry in PostgreSQL (table ``devices``), same API as the SQLite one."""

    def __init__(self, url: str) -> None:
        self._c = _Conn(url)

    def add(self, name: str, public_key: bytes, *, now: float | None = None) -> DeviceEntry:
        """Register a device.

        Raises:
            StorageError: the name or key is invalid or already registered.
        """
        return self.add_many([(name, public_key)], now=now)[0]

    def add_many(
        self, devices: Iterable[tuple[str, bytes]], *, now: float | None = None
    ) -> list[DeviceEntry]:
        """Register many devices in one transaction.

        Raises:
            StorageError: a name or key is invalid or already registered; then none of the
                devices is registered.
        """
        entries = new_entries(devices, now)  # the validation every registry shares
        psycopg = _psycopg()
        try:
            with self._c.lock, self._c.conn.transaction(), self._c.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO devices VALUES (%s, %s, %s, NULL)",
                    [(e.name, e.public_key, e.added) for e in entries],
                )
        except psycopg.errors.UniqueViolation as exc:
            raise already_registered(entries) from exc
        return entries

    def revoke(self, name: str, *, now: float | None = None) -> bool:
        """Revoke a device; False if there is no such active device."""
        at = time.time() if now is None else now
        with self._c.lock:
            cur = self._c.conn.execute(
                "UPDATE devices SET revoked = %s WHERE name = %s AND revoked IS NULL", (at, name)
            )
        return bool(cur.rowcount == 1)

    def revoked_among(self, names: Iterable[str]) -> list[str]:
        """The names in ``names`` that are revoked now (the endpoint's live check)."""
        wanted = list(names)
        if not wanted:
            return []
        with self._c.lock:
            rows = self._c.conn.execute(
                "SELECT name FROM devices WHERE revoked IS NOT NULL AND name = ANY(%s)",
                (wanted,),
            ).fetchall()
        return [r[0] for r in rows]

    def data_version(self) -> int:
        """A number that changes when a device is revoked, by any process: the endpoint polls
        it to close a revoked device's connections (SQLite's ``PRAGMA data_version`` there).
        A revocation is never undone, so the count of revoked devices only grows."""
        with self._c.lock:
            row = self._c.conn.execute(
                "SELECT count(*) FROM devices WHERE revoked IS NOT NULL"
            ).fetchone()
        return int(row[0])

    def get(self, name: str) -> DeviceEntry | None:
        """The device named ``name`` (active or revoked), or None."""
        with self._c.lock:
            row = self._c.conn.execute(
                "SELECT name, public_key, added, revoked FROM devices WHERE name = %s", (name,)
            ).fetchone()
        return DeviceEntry(row[0], bytes(row[1]), row[2], row[3]) if row else None

    def lookup(self, public_key: bytes) -> DeviceEntry | None:
        """The device with this key (active or revoked), or None."""
        with self._c.lock:
            row = self._c.conn.execute(
                "SELECT name, public_key, added, revoked FROM devices WHERE public_key = %s",
                (public_key,),
            ).fetchone()
        return DeviceEntry(row[0], bytes(row[1]), row[2], row[3]) if row else None

    def list(self) -> list[DeviceEntry]:
        """All devices, by name."""
        with self._c.lock:
            rows = self._c.conn.execute(
                "SELECT name, public_key, added, revoked FROM devices ORDER BY name"
            ).fetchall()
        return [DeviceEntry(r[0], bytes(r[1]), r[2], r[3]) for r in rows]

    def close(self) -> None:
        """Close the database connection."""
        self._c.close()


class PostgresReplayCache:
    """First-message ephemeral keys seen by any endpoint process on this database.

    Args:
        url: the shared database.
        retention: seconds an ephemeral key is remembered (the cache's bound).
        clock: ``() -> epoch seconds`` (injected for tests).
    """

    def __init__(self, url: str, *, retention: float = 7 * 86400.0, clock: Any = time.time) -> None:
        self._c = _Conn(url)
        self._retention = retention
        self._clock = clock
        self._inserts = 0

    def seen(self, ephemeral: bytes) -> bool:
        """Record ``ephemeral``; True if any process recorded it before."""
        now = float(self._clock())
        with self._c.lock:
            cur = self._c.conn.execute(
                "INSERT INTO handshake_replay VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (ephemeral, now),
            )
            self._inserts += 1
            if self._inserts % 1000 == 0:
                self._c.conn.execute(
                    "DELETE FROM handshake_replay WHERE seen < %s", (now - self._retention,)
                )
        return bool(cur.rowcount == 0)

    def close(self) -> None:
        self._c.close()
