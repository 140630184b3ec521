"""Moved to streamfeat.endpoint._storage; kept so old imports work.

A package rather than a module, so that git sees the old file renamed (edits made to it on
other branches follow it to the new path when merged).
"""

from __future__ import annotations

from streamfeat.endpoint._storage import (
    SQLiteStorage,
    Storage,
    StoredBatch,
    open_db,
)

__all__ = [
    "SQLiteStorage",
    "Storage",
    "StoredBatch",
    "open_db",
]
