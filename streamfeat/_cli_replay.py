"""Moved to streamfeat.data; kept so old imports work."""

from __future__ import annotations

from streamfeat.data import (
    default_tasks_text,
)

__all__ = [
    "default_tasks_text",
]
