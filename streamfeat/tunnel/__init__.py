"""Encrypted upload tunnel (Noise IK over websockets) and the cloud endpoint.

Layers, bottom up: ``_crypto`` (Noise primitives) -> ``_handshake`` (IK) -> ``_frames``
(wire format) -> ``_protocol`` (the sans-IO :class:`TunnelConnection`) -> the asyncio shell
(``_session``, ``_aiohttp``, ``_client``, ``_server``) and its storage (``_outbox``,
``_storage``, ``_registry``).
"""

from __future__ import annotations

from streamfeat.tunnel._client import (
    Backoff,
    Uploader,
    UploaderConfig,
    UploaderStats,
    load_device_file,
)
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
from streamfeat.tunnel._metrics import TunnelMetrics
from streamfeat.tunnel._outbox import Outbox, OutboxBatch, OutboxConfig, join_items, split_items
from streamfeat.tunnel._protocol import Role, State, TunnelConnection
from streamfeat.tunnel._registry import DeviceEntry, Registry
from streamfeat.tunnel._server import Decoder, ReplayCache, TunnelServer
from streamfeat.tunnel._storage import SQLiteStorage, Storage, StoredBatch

__all__ = [
    "NEED_DATA",
    "Accept",
    "Ack",
    "Backoff",
    "Batch",
    "Close",
    "CloseCode",
    "Closed",
    "Config",
    "Decoder",
    "DeviceEntry",
    "DeviceHello",
    "HandshakeComplete",
    "Hello",
    "KeyPair",
    "Outbox",
    "OutboxBatch",
    "OutboxConfig",
    "Refuse",
    "Registry",
    "ReplayCache",
    "Role",
    "SQLiteStorage",
    "State",
    "Storage",
    "StoredBatch",
    "TunnelConnection",
    "TunnelMetrics",
    "TunnelServer",
    "Uploader",
    "UploaderConfig",
    "UploaderStats",
    "join_items",
    "load_device_file",
    "split_items",
]
