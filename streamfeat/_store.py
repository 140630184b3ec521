"""Moved to streamfeat.io._store; kept so old imports work."""

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
