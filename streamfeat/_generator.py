"""Moved to streamfeat.gen._generator; kept so old imports work."""
# Deprecated old path, kept for one release (CHANGELOG.md): import from streamfeat.gen instead.

from __future__ import annotations

from streamfeat.gen._generator import (
    DEFAULT_DISORDER,
    DEFAULT_START_TS,
    device_id,
    device_stream,
    generate_batches,
    generate_events,
)

__all__ = [
    "DEFAULT_DISORDER",
    "DEFAULT_START_TS",
    "device_id",
    "device_stream",
    "generate_batches",
    "generate_events",
]
