"""Open what the endpoint keeps from a ``--db`` value: an SQLite path or a PostgreSQL URL.

Tools that work on an endpoint's database (the CLI's ``device`` commands, the fleet
simulator's registration and audit) go through these functions rather than through SQL, so
they work on either backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streamfeat.pgstore._postgres import is_postgres_url

__all__ = ["open_backend", "open_registry", "open_storage", "register_devices"]


def open_registry(db: str) -> Any:
    """The device registry in ``db``."""
    if is_postgres_url(db):
        from streamfeat.pgstore._postgres import PostgresRegistry

        return PostgresRegistry(db)
    from streamfeat.tunnel._registry import Registry

    return Registry(db)


def open_storage(db: str) -> Any:
    """The batch and config storage in ``db`` (with ``batches()`` for tools)."""
    if is_postgres_url(db):
        from streamfeat.pgstore._postgres import PostgresStorage

        return PostgresStorage(db)
    from streamfeat.tunnel._storage import SQLiteStorage

    return SQLiteStorage(db)


def open_backend(db: str) -> tuple[Any, Any, Any]:
    """Registry, storage and first-message replay cache for an endpoint process.

    The SQLite replay cache is in memory (one process); the PostgreSQL one is shared by every
    process on the database.

    Raises:
        StorageError: the database cannot be opened (driver missing, server down, ...).
    """
    if is_postgres_url(db):
        from streamfeat.pgstore._postgres import PostgresReplayCache

        return open_registry(db), open_storage(db), PostgresReplayCache(db)
    from streamfeat.tunnel._server import ReplayCache

    return open_registry(db), open_storage(db), ReplayCache()


def register_devices(db: str, devices: Iterable[tuple[str, bytes]], *, now: float) -> None:
    """Register many devices (name, public key) in one transaction where the backend allows."""
    rows = list(devices)
    if is_postgres_url(db):
        from streamfeat.pgstore._postgres import connect, migrate

        conn = connect(db)
        try:
            migrate(conn)
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO devices VALUES (%s, %s, %s, NULL)",
                    [(n, k, now) for n, k in rows],
                )
        finally:
            conn.close()
        return
    import sqlite3

    from streamfeat.tunnel._registry import Registry

    Registry(db).close()  # creates the table if absent
    conn2 = sqlite3.connect(db, timeout=30)
    try:
        with conn2:  # one transaction: one fsync for the whole fleet
            conn2.executemany(
                "INSERT INTO devices VALUES (?, ?, ?, NULL)", [(n, k, now) for n, k in rows]
            )
    finally:
        conn2.close()
