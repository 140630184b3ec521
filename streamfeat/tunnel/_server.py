"""Moved to streamfeat.endpoint._server; kept so old imports work."""

from __future__ import annotations

from streamfeat.endpoint._server import (
    Decoder,
    ReplayCache,
    TunnelServer,
    serve,
)

__all__ = [
    "Decoder",
    "ReplayCache",
    "TunnelServer",
    "serve",
]
