"""The encrypted upload tunnel's protocol core (Noise IK), sans I/O.

Layers, bottom up: ``_crypto`` (Noise primitives) -> ``_handshake`` (IK) -> ``_frames``
(wire format) and ``_items`` (the body of a batch) -> ``_protocol`` (the sans-IO
:class:`TunnelConnection`). Nothing here imports asyncio, aiohttp, sqlite3, socket, a clock
or logging: bytes and randomness come in as arguments, bytes and events come out.

The asyncio shells around it live elsewhere: the device side (transport, uploader, outbox,
key files) in :mod:`streamfeat.upload`, the cloud side (server, storage, registry, metrics,
CLI) in :mod:`streamfeat.endpoint`.
"""

from __future__ import annotations

from typing import Any

from streamfeat.tunnel._crypto import KeyPair
from streamfeat.tunnel._events import (
    NEED_DATA,
    Accept,
    Ack,
    Batch,
    Close,
    CloseCode,
    Closed,
    Config,
    DeviceHello,
    HandshakeComplete,
    Hello,
    Refuse,
)
from streamfeat.tunnel._items import join_items, split_items
from streamfeat.tunnel._protocol import Role, State, TunnelConnection

__all__ = [
    "NEED_DATA",
    "Accept",
    "Ack",
    "Batch",
    "Close",
    "CloseCode",
    "Closed",
    "Config",
    "DeviceHello",
    "HandshakeComplete",
    "Hello",
    "KeyPair",
    "Refuse",
    "Role",
    "State",
    "TunnelConnection",
    "join_items",
    "split_items",
]

# Names this package exported before the shells moved out (issue 10). They are looked up on
# first use, so that importing the protocol core never loads the shells.
_MOVED = {
    "Backoff": "streamfeat.upload",
    "Uploader": "streamfeat.upload",
    "UploaderConfig": "streamfeat.upload",
    "UploaderStats": "streamfeat.upload",
    "load_device_file": "streamfeat.upload",
    "Outbox": "streamfeat.upload",
    "OutboxBatch": "streamfeat.upload",
    "OutboxConfig": "streamfeat.upload",
    "Decoder": "streamfeat.endpoint",
    "DeviceEntry": "streamfeat.endpoint",
    "Registry": "streamfeat.endpoint",
    "ReplayCache": "streamfeat.endpoint",
    "SQLiteStorage": "streamfeat.endpoint",
    "Storage": "streamfeat.endpoint",
    "StoredBatch": "streamfeat.endpoint",
    "TunnelMetrics": "streamfeat.endpoint",
    "TunnelServer": "streamfeat.endpoint",
}


def __getattr__(name: str) -> Any:
    """Resolve a name that moved to :mod:`streamfeat.upload` or :mod:`streamfeat.endpoint`."""
    module = _MOVED.get(name)
    if module is None:
        msg = f"module 'streamfeat.tunnel' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    return getattr(importlib.import_module(module), name)
