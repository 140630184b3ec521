"""Moved to streamfeat.sim._demo; kept so old imports work."""

from __future__ import annotations

from streamfeat.sim._demo import (
    demo_update,
)

__all__ = [
    "demo_update",
]
