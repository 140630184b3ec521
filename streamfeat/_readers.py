"""Moved to streamfeat.io._readers; kept so old imports work."""

from __future__ import annotations

from streamfeat.io._readers import (
    InputFile,
    detect_format,
    read_events,
    read_jsonl,
    read_msgpack,
)

__all__ = [
    "InputFile",
    "detect_format",
    "read_events",
    "read_jsonl",
    "read_msgpack",
]
