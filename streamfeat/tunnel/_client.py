"""Moved to streamfeat.upload._client; kept so old imports work."""

from __future__ import annotations

from streamfeat.upload._client import (
    Backoff,
    Uploader,
    UploaderConfig,
    UploaderStats,
    load_device_file,
)

__all__ = [
    "Backoff",
    "Uploader",
    "UploaderConfig",
    "UploaderStats",
    "load_device_file",
]
