"""Open what the endpoint keeps from a ``--db`` value: an SQLite path or a PostgreSQL URL.

Tools that work on an endpoint's database (the CLI's ``device`` commands, the fleet
simulator's registration and audit) go through these functions rather than through SQL, so
they work on either backend.
"""

from __future__ import annotations

from typing import Any

from streamfeat.endpoint._postgres import is_postgres_url

__all__ = ["decoder_for", "open_backend", "open_registry", "open_storage"]


def decoder_for(paths: list[str] | None) -> Any:
    """Return ``bytes -> records`` for the schemas of the given tasks files (or the default).

    Raises:
        ConfigError: a tasks file is refused.
    """
    import functools

    from streamfeat.data import default_tasks_text
    from streamfeat.encoders import decode_batch, index_schemas, schemas_for
    from streamfeat.tasks import load_tasks, parse_tasks

    configs = [load_tasks(p) for p in paths] if paths else [parse_tasks(default_tasks_text())]
    # and the previous derivation rules (version 1), so devices not yet upgraded keep uploading
    schemas = index_schemas(*(s for c in configs for s in (schemas_for(c), schemas_for(c, 1))))
    return functools.partial(decode_batch, schemas_by_id=schemas)


def open_registry(db: str) -> Any:
    """The device registry in ``db``."""
    if is_postgres_url(db):
        from streamfeat.endpoint._postgres import PostgresRegistry

        return PostgresRegistry(db)
    from streamfeat.endpoint._registry import Registry

    return Registry(db)


def open_storage(db: str) -> Any:
    """The batch and config storage in ``db`` (with ``batches()`` for tools)."""
    if is_postgres_url(db):
        from streamfeat.endpoint._postgres import PostgresStorage

        return PostgresStorage(db)
    from streamfeat.endpoint._storage import SQLiteStorage

    return SQLiteStorage(db)


def open_backend(db: str) -> tuple[Any, Any, Any]:
    """Registry, storage and first-message replay cache for an endpoint process.

    The SQLite replay cache is in memory (one process); the PostgreSQL one is shared by every
    process on the database.

    Raises:
        StorageError: the database cannot be opened (driver missing, server down, ...).
    """
    if is_postgres_url(db):
        from streamfeat.endpoint._postgres import PostgresReplayCache

        return open_registry(db), open_storage(db), PostgresReplayCache(db)
    from streamfeat.endpoint._replay_cache import ReplayCache

    return open_registry(db), open_storage(db), ReplayCache()
