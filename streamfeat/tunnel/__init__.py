"""Encrypted upload tunnel (Noise IK over websockets) and the cloud endpoint.

Layers, bottom up: ``_crypto`` (Noise primitives) -> ``_handshake`` (IK) -> ``_frames``
(wire format) -> ``_protocol`` (the sans-IO :class:`TunnelConnection`) -> the asyncio shell
(``_session``, ``_aiohttp``, ``_client``, ``_server``) and its storage (``_outbox``,
``_storage``, ``_registry``).
"""

from __future__ import annotations

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
]
