"""Events of the tunnel protocol and its close codes.

Events are what :meth:`TunnelConnection.next_event` returns and what
:meth:`TunnelConnection.send` takes. They are frozen dataclasses named as nouns, like
``h11._events``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from streamfeat.errors import LocalProtocolError
from streamfeat.tunnel._frames import BATCH_ID_LEN, MAX_BATCH

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
    "Event",
    "HandshakeComplete",
    "Hello",
    "NeedData",
    "Refuse",
    "check_fields",
    "reason_of",
]


class CloseCode(IntEnum):
    """Why a connection closed. 1xxx mirror websocket codes; 4xxx are the tunnel's own.

    The endpoint counts each refusal under ``code.name.lower()`` in ``/metrics``.
    """

    NORMAL = 1000
    GOING_AWAY = 1001  # endpoint shutting down; the device reconnects later
    ABNORMAL = 1006  # the transport ended without a close message
    PROTOCOL_ERROR = 4000  # a record or message not allowed in this state, or malformed
    UNKNOWN_DEVICE = 4001
    REVOKED_DEVICE = 4002
    HANDSHAKE_FAILED = 4003  # message 1/2 did not decrypt: wrong endpoint key, or altered
    DECRYPT_FAILED = 4004  # a transport frame's tag did not verify: tampered
    REPLAYED_FRAME = 4005  # a frame counter we already saw
    REORDERED_FRAME = 4006  # a frame counter ahead of the next expected one
    TRUNCATED = 4007  # the stream ended inside a record
    REPLAYED_HANDSHAKE = 4008  # a first message (same ephemeral key) seen before
    TOO_LARGE = 4009
    INTERNAL_ERROR = 4010  # the endpoint could not store; the device retries later
    WINDOW_EXCEEDED = 4011  # more batches unacknowledged than the endpoint's window allows
    QUOTA_EXCEEDED = 4012  # the device's storage quota at the endpoint is used up

    @property
    def reason(self) -> str:
        """The metrics label of this code (``"unknown_device"``)."""
        return self.name.lower()


def reason_of(code: int) -> str:
    """The metrics label of any close code, known or not."""
    try:
        return CloseCode(code).reason
    except ValueError:
        return f"code_{code}"


class NeedData:
    """Sentinel type: :meth:`next_event` needs more bytes (or is paused awaiting a decision)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


@dataclass(frozen=True, slots=True)
class Hello:
    """Device: open the handshake, optionally carrying the first batch (0-RTT).

    Attributes:
        config_version: the version of the endpoint config the device holds (0 = none).
        first: the batch to carry in the first message, if any.
    """

    config_version: int = 0
    first: Batch | None = None


@dataclass(frozen=True, slots=True)
class DeviceHello:
    """Endpoint: a device's first message decrypted; answer with Accept or Refuse.

    Attributes:
        device_key: the device's static public key (authenticated by the handshake).
        ephemeral: the first message's ephemeral public key (replay-cache key).
        config_version: the config version the device holds.
        has_early_batch: the message carries a batch, delivered after Accept.
    """

    device_key: bytes
    ephemeral: bytes
    config_version: int
    has_early_batch: bool


@dataclass(frozen=True, slots=True)
class Accept:
    """Endpoint: accept the device named by the last DeviceHello."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Endpoint: refuse the device before the handshake completes (plaintext record)."""

    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """Both sides: keys are established.

    Attributes:
        peer_key: the peer's static public key.
        handshake_hash: the Noise handshake hash (channel binding).
    """

    peer_key: bytes
    handshake_hash: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """An opaque payload under a 16-byte id the endpoint deduplicates on.

    Attributes:
        early: True when it arrived inside the handshake's first message.
    """

    batch_id: bytes
    payload: bytes
    early: bool = False


@dataclass(frozen=True, slots=True)
class Ack:
    """Endpoint to device: the batch ``batch_id`` is stored."""

    batch_id: bytes


@dataclass(frozen=True, slots=True)
class Config:
    """Endpoint to device: configuration (a tasks file, model ids) with a version."""

    version: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Either side: close the connection with a code."""

    code: int = CloseCode.NORMAL
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is closed.

    Attributes:
        code: a :class:`CloseCode` value (or the peer's code).
        reason: text for humans.
        remote: True when the peer closed (or refused); False when we closed because the
            peer misbehaved or the stream ended.
    """

    code: int
    reason: str = ""
    remote: bool = False


Event = DeviceHello | HandshakeComplete | Batch | Ack | Config | Closed


def check_fields(event: object) -> None:
    """Refuse an event to send whose fields are out of the wire's range.

    Raises:
        LocalProtocolError: naming the field.
    """
    bad = None
    if isinstance(event, (Batch, Ack)) and len(event.batch_id) != BATCH_ID_LEN:
        bad = f"batch_id must be {BATCH_ID_LEN} bytes, not {len(event.batch_id)}"
    elif isinstance(event, Batch) and len(event.payload) > MAX_BATCH:
        bad = f"batch payload of {len(event.payload)} bytes exceeds {MAX_BATCH}"
    elif isinstance(event, Hello) and event.first is not None:
        check_fields(event.first)
    elif isinstance(event, Config) and (
        len(event.body) > MAX_BATCH or not 0 <= event.version < 2**32
    ):
        bad = f"config version {event.version} or body of {len(event.body)} bytes out of range"
    if bad is not None:
        raise LocalProtocolError(bad)
