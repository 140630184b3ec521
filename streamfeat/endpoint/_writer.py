"""Group commit: the endpoint's single writer of batches.

Every connection hands its batches to one :class:`GroupWriter`; one worker thread stores
whatever queued up since the last commit in one transaction, so 200 devices cost one fsync
per group rather than one per batch. A connection acknowledges a batch only once the future
:meth:`GroupWriter.submit` returned resolves (stored, or found a duplicate). A storage that
never blocks (``non_blocking = True``: in memory, or a non-blocking client) is written inline
in the event loop instead. A batch the decoder cannot read is stored raw and acknowledged
(counted in ``streamfeat_tunnel_decode_errors_total``): never lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from streamfeat._log import server_log
from streamfeat.clock import Clock
from streamfeat.endpoint._metrics import TunnelMetrics
from streamfeat.endpoint._storage import Storage, StoredBatch
from streamfeat.errors import StorageError
from streamfeat.tunnel._events import Batch
from streamfeat.tunnel._items import split_items

__all__ = ["Decoder", "GroupWriter", "PendingStore", "stored_batch"]

#: ``bytes -> records`` applied to every item of a batch (records stored beside the raw batch).
Decoder = Callable[[bytes], list[dict[str, Any]]]


def _stored_batch_maker() -> Callable[[str, bytes, bytes, float], StoredBatch]:
    """``StoredBatch(device, batch_id, payload, received)`` at less than half the cost: the
    slots set directly, where the frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` for each field (same object, equal and hashing alike). The class
    itself when its fields are not plain slots."""
    try:
        fields = StoredBatch.__dict__
        set_device, set_id, set_payload, set_received, set_records = (
            fields[f].__set__ for f in ("device", "batch_id", "payload", "received", "records")
        )
    except (KeyError, AttributeError):  # pragma: no cover - StoredBatch changed shape
        return StoredBatch
    new = object.__new__

    def make(device: str, batch_id: bytes, payload: bytes, received: float) -> StoredBatch:
        b = new(StoredBatch)
        set_device(b, device)
        set_id(b, batch_id)
        set_payload(b, payload)
        set_received(b, received)
        set_records(b, None)
        return b

    return make


#: a new :class:`StoredBatch` without records, as the hot path makes one per batch
stored_batch = _stored_batch_maker()


@dataclass
class PendingStore:
    """A batch waiting for its group's commit, and the future its connection acknowledges on."""

    batch: StoredBatch
    done: asyncio.Future[bool]


class GroupWriter:
    """Group commit: one worker thread stores whatever batches queued up since the last commit.

    Args:
        storage: where batches go (``store_batches`` returns, per batch, whether it was new).
        metrics: stored / duplicate / failure counters and the store-latency histogram.
        decoder: optional ``bytes -> records`` per item (a failure stores the batch raw).
        clock: stamps each stored batch's ``received``.

    ``last_error`` holds the latest storage failure until a store succeeds again (the
    server's health says degraded meanwhile).
    """

    def __init__(
        self, storage: Storage, metrics: TunnelMetrics, decoder: Decoder | None, clock: Clock
    ) -> None:
        self._storage, self._metrics, self._decoder, self._clock = storage, metrics, decoder, clock
        self._queue: asyncio.Queue[PendingStore | None] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="streamfeat-store")
        self._task: asyncio.Task[None] | None = None
        # a storage that never blocks (in memory, or a non-blocking client) runs in the loop
        self._inline = bool(getattr(storage, "non_blocking", False))
        self.last_error: str | None = None  # the last store failed (health says degraded)
        self._decode_logged = -60.0

    def _failed(self, exc: Exception) -> None:
        self._metrics.storage_failures.inc()
        if self.last_error is None:
            server_log.error("storage failed: %s", exc)  # once per failing spell: no log storm
        self.last_error = str(exc)[:300]

    def _succeeded(self) -> None:
        if self.last_error is not None:
            server_log.warning("storage works again")
        self.last_error = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def inline(self) -> bool:
        """The storage never blocks: :meth:`store_now` stores in the loop, no future needed."""
        return self._inline

    def store_now(self, device: str, batch: Batch, received: float) -> bool:
        """Store one batch now (inline storage only); True when it was new.

        Nothing to wait for and nothing to group, so no queue, no future and no task hop
        (no store-latency histogram either: it measures blocking commits).

        Raises:
            StorageError: not stored (counted; the caller closes without acknowledging).
        """
        decoded = stored_batch(device, batch.batch_id, batch.payload, received)
        if self._decoder is not None:
            decoded = self._decode(decoded)
        try:
            new = self._storage.store_batches([decoded])[0]
        except StorageError as exc:
            self._failed(exc)
            raise
        if self.last_error is not None:
            self._succeeded()
        m = self._metrics
        if new:
            m.stored_tally.value += 1
        else:
            m.duplicates_tally.value += 1
        if new and decoded.records:
            self._metrics.count_records(decoded.records)
        return new

    def submit(self, device: str, batch: Batch) -> asyncio.Future[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        now = self._clock.time()
        if self._inline:
            try:
                fut.set_result(self.store_now(device, batch, now))
            except StorageError as exc:
                fut.set_exception(exc)
            return fut
        self._queue.put_nowait(
            PendingStore(StoredBatch(device, batch.batch_id, batch.payload, now), fut)
        )
        return fut

    def _decode(self, b: StoredBatch) -> StoredBatch:
        if self._decoder is None:
            return b
        try:
            records = [r for item in split_items(b.payload) for r in self._decoder(item)]
        except Exception as exc:  # a bad batch is still stored raw and acknowledged: never lost
            self._metrics.decode_errors.inc()
            # one line, at most once a minute: a device sending garbage must not flood the log
            now = self._clock.monotonic()
            if now - self._decode_logged >= 60.0:
                self._decode_logged = now
                server_log.warning(
                    "decoder failed on batch %s of %s: %s (stored raw; counted in "
                    "streamfeat_tunnel_decode_errors_total, logged once a minute)",
                    b.batch_id.hex(),
                    b.device,
                    exc,
                )
            return b
        return StoredBatch(b.device, b.batch_id, b.payload, b.received, records)

    def _store(self, group: list[PendingStore]) -> list[bool]:
        batches = [self._decode(p.batch) for p in group]
        with self._metrics.store_seconds.time():
            results = self._storage.store_batches(batches)
        for b, new in zip(batches, results, strict=True):
            if new:
                self._metrics.count_records(b.records)
        return results

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            if first is None:
                return
            group, stop = [first], False
            while not self._queue.empty() and len(group) < 512:
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            try:
                results = await loop.run_in_executor(self._pool, self._store, group)
            except Exception as exc:  # any failure: nothing stored, nothing acked
                self._failed(exc)
                err = exc if isinstance(exc, StorageError) else StorageError(str(exc))
                for p in group:
                    if not p.done.done():
                        p.done.set_exception(err)
            else:
                self._succeeded()
                for p, new in zip(group, results, strict=True):
                    (self._metrics.stored if new else self._metrics.duplicates).inc()
                    if not p.done.done():
                        p.done.set_result(new)
            if stop:
                return

    async def aclose(self) -> None:
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task
        self._pool.shutdown(wait=True)
