"""Moved to streamfeat.gen._model; kept so old imports work."""

from __future__ import annotations

from streamfeat.gen._model import (
    CATEGORIES,
    Profile,
    SessionWriter,
    item_category,
    make_profile,
)

__all__ = [
    "CATEGORIES",
    "Profile",
    "SessionWriter",
    "item_category",
    "make_profile",
]
