"""Moved to streamfeat.io._store; kept so old imports work."""
# Deprecated old path, kept for one release (CHANGELOG.md): import from streamfeat.io instead.

from __future__ import annotations

from streamfeat.io._store import (
    SCHEMA_VERSION,
    Checkpoint,
    QuarantineEntry,
    Store,
)

__all__ = [
    "SCHEMA_VERSION",
    "Checkpoint",
    "QuarantineEntry",
    "Store",
]
