"""The message transport the upload shell and the endpoint talk through.

One websocket in production (:mod:`streamfeat.upload._aiohttp`), an in-memory twin in tests
(:class:`streamfeat.testing.MemoryTransportPair`), both checked by
:func:`streamfeat.testing.check_transport`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Transport"]


@runtime_checkable
class Transport(Protocol):
    """A reliable, ordered, message-preserving byte transport (a websocket)."""

    async def send(self, data: bytes) -> None:
        """Send one message.

        Raises:
            TunnelClosed: the transport was closed (by either side).
        """

    async def receive(self) -> bytes:
        """Return the next message, or ``b""`` once the peer closed (and ever after)."""

    async def aclose(self) -> None:
        """Close; the peer's ``receive`` then returns ``b""``. Idempotent."""
