"""The endpoint's in-memory first-message replay cache (one process).

A captured handshake message 1 decrypts again (IK's first message is not fresh), so the
endpoint remembers each first message's ephemeral key and refuses a second use as
``replayed_handshake``. This cache is bounded (oldest forgotten first) and lives in one
process; several processes on one PostgreSQL database share
:class:`~streamfeat.endpoint._postgres.PostgresReplayCache` instead. Either way the storage's
``(device, batch_id)`` identity keeps a replayed 0-RTT batch from being stored twice.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["ReplayCache"]


class ReplayCache:
    """First-message ephemeral keys seen recently (bounded, oldest forgotten first)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._max = max_entries

    def seen(self, ephemeral: bytes) -> bool:
        """Record ``ephemeral``; True if it was already there."""
        if ephemeral in self._seen:
            return True
        self._seen[ephemeral] = None
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return False
