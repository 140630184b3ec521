"""Moved to streamfeat.endpoint._metrics; kept so old imports work."""

from __future__ import annotations

from streamfeat.endpoint._metrics import (
    CONTENT_TYPE_LATEST,
    NOT_REFUSALS,
    TunnelMetrics,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "NOT_REFUSALS",
    "TunnelMetrics",
]
