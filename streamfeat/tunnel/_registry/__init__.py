"""Moved to streamfeat.endpoint._registry; kept so old imports work.

A package rather than a module, so that git sees the old file renamed (edits made to it on
other branches follow it to the new path when merged).
"""

from __future__ import annotations

from streamfeat.endpoint._registry import (
    DeviceEntry,
    Registry,
    endpoint_keypair,
    read_key_file,
    write_key_file,
)

__all__ = [
    "DeviceEntry",
    "Registry",
    "endpoint_keypair",
    "read_key_file",
    "write_key_file",
]
