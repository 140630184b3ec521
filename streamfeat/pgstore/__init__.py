"""The endpoint on PostgreSQL: storage, registry and replay cache shared by several processes.

``pip install 'streamfeat[postgres]'`` for the driver (psycopg 3). Importing this package does
not import the driver; opening a database does, and says how to install it when it is missing.
"""

from __future__ import annotations

from streamfeat.pgstore._postgres import (
    SCHEMA_VERSION,
    PostgresRegistry,
    PostgresReplayCache,
    PostgresStorage,
    connect,
    is_postgres_url,
    migrate,
    schema_version,
)

__all__ = [
    "SCHEMA_VERSION",
    "PostgresRegistry",
    "PostgresReplayCache",
    "PostgresStorage",
    "connect",
    "is_postgres_url",
    "migrate",
    "schema_version",
]
