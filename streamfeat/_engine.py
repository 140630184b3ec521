"""Moved to streamfeat.engine; kept so old imports work."""

from __future__ import annotations

from streamfeat.engine._engine import Engine, Record, Stage

__all__ = ["Engine", "Record", "Stage"]
