"""Moved to streamfeat.runtime._engine; kept so old imports work."""

from __future__ import annotations

from streamfeat.runtime._engine import AsyncEngine, Sink

__all__ = ["AsyncEngine", "Sink"]
