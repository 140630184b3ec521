"""Moved to streamfeat.replay._replay; kept so old imports work."""

from __future__ import annotations

from streamfeat.replay._replay import (
    ReplayOptions,
    ReplaySummary,
    run_replay,
)

__all__ = [
    "ReplayOptions",
    "ReplaySummary",
    "run_replay",
]
