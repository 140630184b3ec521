"""The device side of the upload: transport, uploader, durable outbox and key files.

An asyncio shell over the sans-IO :mod:`streamfeat.tunnel` core. Layers, bottom up:
``_transport`` (the :class:`Transport` protocol), ``_keys`` (reading key files),
``_outbox`` (the durable outbox in the device store), ``_client`` (the :class:`Uploader`),
``_aiohttp`` (the websocket transport, loaded on first connect). Never imports
:mod:`streamfeat.endpoint`.
"""

from __future__ import annotations

from streamfeat.upload._client import (
    Backoff,
    Uploader,
    UploaderConfig,
    UploaderStats,
    load_device_file,
)
from streamfeat.upload._keys import read_key_file
from streamfeat.upload._outbox import AckedBatch, Outbox, OutboxBatch, OutboxConfig
from streamfeat.upload._transport import Transport

__all__ = [
    "AckedBatch",
    "Backoff",
    "Outbox",
    "OutboxBatch",
    "OutboxConfig",
    "Transport",
    "Uploader",
    "UploaderConfig",
    "UploaderStats",
    "load_device_file",
    "read_key_file",
]
