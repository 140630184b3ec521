"""Moved to streamfeat.runtime._engine; kept so old imports work."""
# Deprecated old path, kept for one release (CHANGELOG.md): import from streamfeat.runtime instead.

from __future__ import annotations

from streamfeat.runtime._engine import AsyncEngine, Sink

__all__ = ["AsyncEngine", "Sink"]
