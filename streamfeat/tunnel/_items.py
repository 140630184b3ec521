"""The body of a batch: payloads (items) joined with length prefixes.

The device's outbox joins the payloads it seals into one batch; the endpoint splits a batch
it received. Pure functions over bytes: part of the protocol, with no I/O.
"""

from __future__ import annotations

__all__ = ["join_items", "split_items", "uvarint"]


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def join_items(items: list[bytes]) -> bytes:
    """Join payloads into one batch body: ``uvarint(len) item`` repeated."""
    return b"".join(uvarint(len(it)) + it for it in items)


def split_items(body: bytes) -> list[bytes]:
    """Inverse of :func:`join_items`.

    Raises:
        ValueError: the body is not a sequence of length-prefixed items.
    """
    items, i, n = [], 0, len(body)
    while i < n:
        length = shift = 0
        while True:
            if i >= n or shift > 28:
                msg = f"bad item length prefix at byte {i}"
                raise ValueError(msg)
            b = body[i]
            i += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        if i + length > n:
            msg = f"item of {length} bytes at byte {i} runs past the batch end ({n})"
            raise ValueError(msg)
        items.append(body[i : i + length])
        i += length
    return items
