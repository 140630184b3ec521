"""Moved to streamfeat.endpoint._cli; kept so old imports work."""

from __future__ import annotations

from streamfeat.endpoint._cli import (
    add_parsers,
)

__all__ = [
    "add_parsers",
]
