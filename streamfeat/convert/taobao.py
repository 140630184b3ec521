"""Moved to streamfeat.gen.convert.taobao; kept so old imports work."""

from __future__ import annotations

from streamfeat.gen.convert.taobao import (
    BEHAVIOR_TYPES,
    TAOBAO,
    convert_taobao,
)

__all__ = [
    "BEHAVIOR_TYPES",
    "TAOBAO",
    "convert_taobao",
]
