"""The agent's outbox: the tunnel's durable :class:`~streamfeat.upload._outbox.Outbox`, timed.

It measures **upload latency** per batch: from the moment the batch is sealed (ready to send)
to the moment its acknowledgement arrives, that is the time the endpoint took to receive, store
and acknowledge it, queueing behind other batches included. It also measures the **record
age** at acknowledgement (from the oldest item's enqueue to the ack), which adds the batching
delay (``upload.batch_max_age``). Batches sealed before a restart have no seal time in memory;
their acks are counted as ``unmeasured``.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from streamfeat.clock import Clock, SystemClock
from streamfeat.upload._outbox import Outbox, OutboxConfig

__all__ = ["TimedOutbox"]


class TimedOutbox(Outbox):
    """An :class:`Outbox` that keeps the latency of every acknowledged batch.

    Args:
        db: the device store.
        config: batching and size bound.
        clock: wall time for item stamps and latencies.
        keep: how many recent latencies to keep.

    Attributes:
        latencies: seal-to-ack seconds of recent batches.
        ages: enqueue-to-ack seconds (oldest item of the batch) of recent batches.
        unmeasured: acks of batches sealed before this process started.
    """

    def __init__(self, db: Any, config: OutboxConfig | None = None, *, clock: Clock | None = None,
                 keep: int = 100_000) -> None:  # fmt: skip
        self._timer = clock or SystemClock()
        self._sealed_at: dict[bytes, float] = {}
        self.latencies: deque[float] = deque(maxlen=keep)
        self.ages: deque[float] = deque(maxlen=keep)
        self.unmeasured = 0
        self.acked_payload_bytes = 0
        self.acked_ids: list[bytes] = []  # for audits: which batches the endpoint acknowledged
        super().__init__(db, config, clock=self._timer, random_bytes=self._batch_id)

    def _batch_id(self, n: int) -> bytes:
        # the Outbox draws random bytes only for a new batch's id, at the moment it seals it
        batch_id = os.urandom(n)
        self._sealed_at[batch_id] = self._timer.monotonic()
        return batch_id

    def ack(self, batch_id: bytes) -> bool:
        """Delete an acknowledged batch and record its latency (see the module docstring)."""
        row = self._conn.execute(
            "SELECT created, LENGTH(payload) FROM outbox WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        done = super().ack(batch_id)
        sealed = self._sealed_at.pop(batch_id, None)
        if done and row is not None:
            self.acked_ids.append(batch_id)
            self.acked_payload_bytes += int(row[1])
            if sealed is None:
                self.unmeasured += 1
            else:
                self.latencies.append(max(0.0, self._timer.monotonic() - sealed))
                self.ages.append(max(0.0, self._timer.time() - float(row[0])))
        return done
