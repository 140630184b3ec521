"""Moved to streamfeat.upload._outbox; kept so old imports work."""

from __future__ import annotations

from streamfeat.upload._outbox import (
    Outbox,
    OutboxBatch,
    OutboxConfig,
    join_items,
    split_items,
)

__all__ = [
    "Outbox",
    "OutboxBatch",
    "OutboxConfig",
    "join_items",
    "split_items",
]
