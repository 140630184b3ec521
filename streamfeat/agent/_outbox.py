"""The agent's outbox: the durable :class:`~streamfeat.upload.Outbox`, timed.

It measures **upload latency** per batch: from the moment the batch is sealed (ready to send)
to the moment its acknowledgement arrives, that is the time the endpoint took to receive, store
and acknowledge it, queueing behind other batches included. It also measures the **record
age** at acknowledgement (from the oldest item's enqueue to the ack), which adds the batching
delay (``upload.batch_max_age``). Batches sealed before a restart have no seal time in memory;
their acks are counted as ``unmeasured``. The outbox reports seals and acks through its
``on_seal`` / ``on_ack`` callbacks; :class:`UploadTimes` listens.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from streamfeat.clock import Clock, SystemClock
from streamfeat.upload._outbox import AckedBatch, Outbox, OutboxConfig

__all__ = ["TimedOutbox", "UploadTimes"]


class UploadTimes:
    """Seal-to-ack latencies and ack ages of the batches of one outbox.

    Args:
        clock: the outbox's clock (``monotonic()`` for latencies, ``time()`` for ages).
        keep: how many recent values to keep.

    Attributes:
        latencies: seal-to-ack seconds of recent batches.
        ages: enqueue-to-ack seconds (oldest item of the batch) of recent batches.
        unmeasured: acks of batches sealed before this process started.
        acked_payload_bytes: body bytes of the batches acknowledged.
        acked_ids: which batches the endpoint acknowledged (for audits).
    """

    def __init__(self, clock: Clock, keep: int = 100_000) -> None:
        self._clock = clock
        self._sealed_at: dict[bytes, float] = {}
        self.latencies: deque[float] = deque(maxlen=keep)
        self.ages: deque[float] = deque(maxlen=keep)
        self.unmeasured = 0
        self.acked_payload_bytes = 0
        self.acked_ids: list[bytes] = []

    def sealed(self, batch_id: bytes) -> None:
        """``on_seal``: remember when the batch became ready to send."""
        self._sealed_at[batch_id] = self._clock.monotonic()

    def acked(self, batch: AckedBatch) -> None:
        """``on_ack``: record the batch's latency and age (see the module docstring)."""
        sealed = self._sealed_at.pop(batch.batch_id, None)
        self.acked_ids.append(batch.batch_id)
        self.acked_payload_bytes += batch.size
        if sealed is None:
            self.unmeasured += 1
        else:
            self.latencies.append(max(0.0, self._clock.monotonic() - sealed))
            self.ages.append(max(0.0, self._clock.time() - batch.created))


class TimedOutbox(Outbox):
    """An :class:`Outbox` wired to an :class:`UploadTimes` (kept as :attr:`times`).

    Args:
        db: the device store.
        config: batching and size bound.
        clock: wall time for item stamps and latencies.
        keep: how many recent latencies to keep.
    """

    def __init__(self, db: Any, config: OutboxConfig | None = None, *, clock: Clock | None = None,
                 keep: int = 100_000) -> None:  # fmt: skip
        timer = clock or SystemClock()
        self.times = UploadTimes(timer, keep)
        super().__init__(db, config, clock=timer, on_seal=self.times.sealed,
                         on_ack=self.times.acked)  # fmt: skip

    @property
    def latencies(self) -> deque[float]:
        """Seal-to-ack seconds of recent batches."""
        return self.times.latencies

    @property
    def ages(self) -> deque[float]:
        """Enqueue-to-ack seconds (oldest item of the batch) of recent batches."""
        return self.times.ages

    @property
    def unmeasured(self) -> int:
        """Acks of batches sealed before this process started."""
        return self.times.unmeasured

    @property
    def acked_payload_bytes(self) -> int:
        """Body bytes of the batches acknowledged."""
        return self.times.acked_payload_bytes

    @property
    def acked_ids(self) -> list[bytes]:
        """Which batches the endpoint acknowledged (for audits)."""
        return self.times.acked_ids
