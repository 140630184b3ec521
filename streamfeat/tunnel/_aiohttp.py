"""Moved to streamfeat.upload._aiohttp; kept so old imports work."""

from __future__ import annotations

from streamfeat.upload._aiohttp import (
    MAX_MESSAGE,
    WebSocketTransport,
    connect,
)

__all__ = [
    "MAX_MESSAGE",
    "WebSocketTransport",
    "connect",
]
