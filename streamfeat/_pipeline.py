"""Moved to streamfeat.engine._build; kept so old imports work."""
# Deprecated old path, kept for one release (CHANGELOG.md): import from streamfeat.engine instead.

from __future__ import annotations

from streamfeat.engine._build import build_engine, build_stages

__all__ = ["build_engine", "build_stages"]
