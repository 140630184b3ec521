"""Wire format of the tunnel: outer records and the inner messages they carry.

Outer record (what travels; one or more per websocket message)::

    type u8 | length u16 big-endian | body[length]

    HELLO   0x01  Noise IK message 1 (device -> endpoint)
    WELCOME 0x02  Noise IK message 2 (endpoint -> device)
    DATA    0x03  ChaChaPoly ciphertext of one inner message (Noise transport message)
    REFUSE  0x04  code u16 | reason utf-8      (plaintext; only before keys exist)

DATA frames use Noise's implicit nonces: the n-th frame in a direction is encrypted with
nonce n, so a replayed, reordered, dropped or altered frame fails authentication. To refuse
each under its own reason, a frame that fails at the expected nonce is tried at the few
nonces around it: it opens at an earlier one (a replay) or a later one (a reorder), or not
at all (tampered). This costs nothing on the wire and only a few trials on the error path.

Inner messages (plaintext of DATA, and of the handshake payloads)::

    BATCH  0x10  batch_id[16] | payload           (device -> endpoint)
    ACK    0x11  uvarint(n)                       (endpoint -> device)
    CONFIG 0x12  version u32 | body               (endpoint -> device)
    CLOSE  0x13  code u16 | reason utf-8          (either way)

An ACK is cumulative: the first ``n`` batches sent on this connection (the 0-RTT batch is
the first) are stored. Both connection objects map ``n`` to batch ids, so the API speaks in
batch ids while the wire carries one or two bytes.

Handshake message 1's payload is ``config_version u32`` then, optionally, one BATCH
message (the 0-RTT first batch). Message 2's payload is empty.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from streamfeat.errors import RemoteProtocolError

__all__ = [
    "ACK",
    "BATCH",
    "BATCH_ID_LEN",
    "CLOSE",
    "CONFIG",
    "DATA",
    "HELLO",
    "MAX_BATCH",
    "MAX_BODY",
    "REFUSE",
    "WELCOME",
    "Buffer",
    "Inner",
    "decode_hello_payload",
    "decode_inner",
    "encode_hello_payload",
    "encode_inner",
    "encode_record",
]

HELLO, WELCOME, DATA, REFUSE = 0x01, 0x02, 0x03, 0x04
BATCH, ACK, CONFIG, CLOSE = 0x10, 0x11, 0x12, 0x13
RECORD_TYPES = frozenset({HELLO, WELCOME, DATA, REFUSE})
BATCH_ID_LEN = 16
MAX_BODY = 0xFFFF
# DATA body = 17 inner header + payload + 16 tag must fit MAX_BODY
MAX_BATCH = 65_000

_HDR = struct.Struct(">BH")


def uvarint(n: int) -> bytes:
    """Unsigned LEB128."""
    if n < 0x4000 and n >= 0:  # one or two bytes: every ack count below 16,384
        return bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(data: bytes, i: int) -> tuple[int, int]:
    """Read an unsigned LEB128 at ``i``; returns (value, index after it).

    Raises:
        RemoteProtocolError: truncated or longer than 63 bits.
    """
    n = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            msg = f"bad varint at byte {i}"
            raise RemoteProtocolError(msg)
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def ack_count(plain: bytes) -> int:
    """The count of a well-formed ACK message (``ACK uvarint``, checked by the caller), or -1
    (the general decoder then refuses it)."""
    if len(plain) == 2 and plain[1] < 0x80:
        return plain[1]
    if not 2 <= len(plain) <= 10:
        return -1
    try:
        n, end = read_uvarint(plain, 1)
    except RemoteProtocolError:
        return -1
    return n if end == len(plain) else -1


def encode_record(rtype: int, body: bytes) -> bytes:
    """Frame ``body`` as one outer record."""
    if len(body) > MAX_BODY:
        msg = f"record body of {len(body)} bytes exceeds {MAX_BODY}"
        raise ValueError(msg)
    return _HDR.pack(rtype, len(body)) + body


class Buffer:
    """Received bytes not yet parsed; records are taken out whole or not at all.

    The usual case, a websocket message of whole records fed while nothing else waits, is
    parsed in place: the message is kept as it came (``_head``, read from offset ``_pos``),
    with no copy into the bytearray and no shifting of it. Bytes that wait when more come
    (a record cut across messages) go to the bytearray ``_buf``; at most one of the two holds
    bytes at any time.
    """

    __slots__ = ("_buf", "_head", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._head = b""
        self._pos = 0

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes (a bytearray is copied: the caller may reuse it)."""
        if not self._head and not self._buf:  # nothing waits: parse this message in place
            self._head = data if type(data) is bytes else bytes(data)
            self._pos = 0
            return
        if self._head:  # what is left of the last message goes first
            self._buf += memoryview(self._head)[self._pos :]
            self._head, self._pos = b"", 0
        self._buf += data

    def __len__(self) -> int:
        return len(self._head) - self._pos + len(self._buf)

    def next_record(self) -> tuple[int, bytes] | None:
        """Take the next whole record, or return None (nothing consumed) when incomplete.

        Raises:
            RemoteProtocolError: the type byte is unknown (nothing consumed).
        """
        head = self._head
        if head:
            pos = self._pos
            if len(head) - pos < _HDR.size:
                return None
            rtype, length = _HDR.unpack_from(head, pos)
            if rtype not in RECORD_TYPES:
                msg = f"unknown record type 0x{rtype:02x}"
                raise RemoteProtocolError(msg)
            end = pos + _HDR.size + length
            if len(head) < end:
                return None
            if end == len(head):
                self._head, self._pos = b"", 0
            else:
                self._pos = end
            return rtype, head[pos + _HDR.size : end]
        if len(self._buf) < _HDR.size:
            return None
        rtype, length = _HDR.unpack_from(self._buf)
        if rtype not in RECORD_TYPES:
            msg = f"unknown record type 0x{rtype:02x}"
            raise RemoteProtocolError(msg)
        end = _HDR.size + length
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[_HDR.size : end])
        del self._buf[:end]
        return rtype, body


@dataclass(frozen=True, slots=True)
class Inner:
    """A decoded inner message: ``kind`` plus the fields that kind uses."""

    kind: int
    batch_id: bytes = b""
    payload: bytes = b""
    version: int = 0  # CONFIG: version; ACK: the cumulative batch count
    code: int = 0
    reason: str = ""


def encode_inner(m: Inner) -> bytes:
    """Encode an inner message."""
    if m.kind == BATCH:
        return bytes((BATCH,)) + m.batch_id + m.payload
    if m.kind == ACK:
        return bytes((ACK,)) + uvarint(m.version)
    if m.kind == CONFIG:
        return struct.pack(">BI", CONFIG, m.version) + m.payload
    if m.kind == CLOSE:
        return struct.pack(">BH", CLOSE, m.code) + m.reason.encode()[:1024]
    msg = f"unknown inner kind 0x{m.kind:02x}"
    raise ValueError(msg)


def decode_inner(data: bytes) -> Inner:
    """Decode an inner message.

    Raises:
        RemoteProtocolError: unknown kind or wrong length.
    """
    if not data:
        msg = "empty inner message"
        raise RemoteProtocolError(msg)
    kind = data[0]
    if kind == BATCH and len(data) >= 1 + BATCH_ID_LEN:
        return Inner(BATCH, batch_id=data[1:17], payload=data[17:])
    if kind == ACK and 2 <= len(data) <= 10:
        n, end = read_uvarint(data, 1)
        if end == len(data):
            return Inner(ACK, version=n)
    if kind == CONFIG and len(data) >= 5:
        return Inner(CONFIG, version=struct.unpack_from(">I", data, 1)[0], payload=data[5:])
    if kind == CLOSE and len(data) >= 3:
        return Inner(
            CLOSE,
            code=struct.unpack_from(">H", data, 1)[0],
            reason=data[3:].decode(errors="replace"),
        )
    msg = f"bad inner message 0x{kind:02x} of {len(data)} bytes"
    raise RemoteProtocolError(msg)


def encode_hello_payload(config_version: int, first: Inner | None) -> bytes:
    """An ACK is cumulative: the first ``n`` batches sent on this connection (the 0-RTT batch is
    the first) are stored. Both connection objects map ``n`` to batch ids, so the API speaks in
    batch ids while the wire carries one or two bytes.

    Handshake message 1's payload: our config version and an optional first batch."""
    head = struct.pack(">I", config_version)
    return head + encode_inner(first) if first is not None else head


def decode_hello_payload(data: bytes) -> tuple[int, Inner | None]:
    """Inverse of :func:`encode_hello_payload`.

    Raises:
        RemoteProtocolError: too short, or the rest is not one BATCH message.
    """
    if len(data) < 4:
        msg = f"hello payload of {len(data)} bytes, too short"
        raise RemoteProtocolError(msg)
    version = struct.unpack_from(">I", data)[0]
    if len(data) == 4:
        return version, None
    first = decode_inner(data[4:])
    if first.kind != BATCH:
        msg = f"hello payload carries inner kind 0x{first.kind:02x}, only a batch may"
        raise RemoteProtocolError(msg)
    return version, first


def encode_refuse(code: int, reason: str) -> bytes:
    """Body of a plaintext REFUSE record."""
    return struct.pack(">H", code) + reason.encode()[:1024]


def decode_refuse(body: bytes) -> tuple[int, str]:
    """Inverse of :func:`encode_refuse`.

    Raises:
        RemoteProtocolError: too short.
    """
    if len(body) < 2:
        msg = "refuse record too short"
        raise RemoteProtocolError(msg)
    return struct.unpack_from(">H", body)[0], body[2:].decode(errors="replace")
