"""The agent's record sink: store, encode, enqueue; synchronous, no event loop needed.

Every list of records the engine (or a task) produces goes through :meth:`RecordSink.handle`:

1. counts them by kind and keeps each device's latest feature values (they outlive the
   engine freeing an idle device);
2. stores them in the device store (one transaction; a failing disk is counted and logged,
   and the uploads go on);
3. encodes the kinds of ``[upload] records`` with the current encoder, at most
   ``MAX_PAYLOAD_RECORDS`` per payload (a payload too large for one batch is halved), and
   hands each payload to the upload queue (the uploader, or the outbox while offline).

Nothing here waits on the network: enqueueing is one SQLite insert. The agent's asyncio
shell calls the sink between engine batches, which is what makes its periodic snapshot
consistent without a lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import orjson

from streamfeat._log import agent_log
from streamfeat._records import public
from streamfeat.agent._support import AgentStats
from streamfeat.encoders import Encoder, decode_batch
from streamfeat.engine._engine import Record
from streamfeat.errors import StorageError, StreamfeatError, TunnelError
from streamfeat.io._store import QuarantineEntry

__all__ = ["MAX_PAYLOAD_RECORDS", "PayloadQueue", "RecordSink", "RecordStore"]

MAX_PAYLOAD_RECORDS = 200  # records per payload: keeps each well under the tunnel's batch limit


class RecordStore(Protocol):
    """The part of the device store (:class:`streamfeat.io.Store`) the sink writes to."""

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """One atomic write."""
        ...

    def add_records(self, records: Iterable[dict[str, Any]]) -> int:
        """Append records."""
        ...

    def add_quarantine(self, entries: Iterable[QuarantineEntry]) -> int:
        """Keep input that could not be read, with its reason."""
        ...

    def incr(self, name: str, by: int = 1) -> None:
        """Bump a persistent counter."""
        ...


class PayloadQueue(Protocol):
    """Where encoded payloads go: the uploader (which wakes its sender) or the outbox."""

    def enqueue(self, payload: bytes) -> None:
        """Add one payload durably; never waits on the network.

        Raises:
            TunnelError: the payload is too large for one batch.
            StorageError: the outbox could not take it.
        """
        ...


class RecordSink:
    """Store, encode and enqueue the records the engine produces (see the module docstring).

    Args:
        store: the device store.
        queue: where payloads go (replaceable: :attr:`queue`).
        encoder: the codec of the current tasks file (replaceable: :attr:`encoder`).
        upload_kinds: the record kinds ``[upload] records`` names.
        stats: the agent's counters, updated in place.
        on_upload: called with each list of records put in the queue (for audits).
        strict: let a store or outbox failure propagate (the caller's transaction then rolls
            back everything, see :mod:`streamfeat.agent._journal`) instead of counting it.

    Attributes:
        latest: ``{(device, feature): [ts, [values]]}``, the latest feature record of each.
    """

    def __init__(
        self,
        store: RecordStore,
        queue: PayloadQueue,
        encoder: Encoder,
        upload_kinds: Iterable[str],
        stats: AgentStats,
        *,
        on_upload: Callable[[list[Record]], None] | None = None,
        strict: bool = False,
    ) -> None:
        self.strict = strict
        self.store = store
        self.queue = queue
        self.encoder = encoder
        self.upload_kinds = frozenset(upload_kinds)
        self.stats = stats
        self.on_upload = on_upload
        self.latest: dict[tuple[str, str], list[Any]] = {}

    def use(self, encoder: Encoder, upload_kinds: Iterable[str]) -> None:
        """Encode and select with a new tasks file's codec and ``[upload] records`` from now on."""
        self.encoder = encoder
        self.upload_kinds = frozenset(upload_kinds)

    def latest_of(self, device: str) -> Iterator[tuple[str, int, list[Any]]]:
        """``(feature, ts, [values])`` of each feature record kept for ``device``."""
        for (dev, name), (ts, vals) in self.latest.items():
            if dev == device:
                yield name, ts, vals

    def quarantine(self, raw: bytes, reason: str, source: str, position: int) -> None:
        """Keep an input that is not a valid event, with its reason (counted)."""
        self.stats.quarantined += 1
        with self.store.transaction():
            self.store.add_quarantine([QuarantineEntry(source, position, raw, reason)])

    def handle(self, records: list[Record], encoder: Encoder | None = None) -> None:
        """Count, store, encode and enqueue ``records`` (with ``encoder``, default the current).

        Never raises for a store or outbox failure unless :attr:`strict`: those are counted
        in :attr:`stats`.
        """
        counts = self.stats.records
        for r in records:
            kind = r["kind"]
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "feature":
                self.latest[(r["device"], r["feature"])] = [r["ts"], [r["values"]]]
        try:
            with self.store.transaction():
                self.store.add_records(records)
        except (StorageError, sqlite3.Error):  # a full or broken disk must not stop the uploads
            if self.strict:
                raise
            self.stats.store_errors += len(records)
            agent_log.exception("could not store %d records", len(records))
        enc = self.encoder if encoder is None else encoder
        upload = [public(r) for r in records if r["kind"] in self.upload_kinds]
        for i in range(0, len(upload), MAX_PAYLOAD_RECORDS):
            self._enqueue(upload[i : i + MAX_PAYLOAD_RECORDS], enc)

    def send(self, records: list[Record]) -> None:
        """Store and enqueue the agent's own report records, whatever ``[upload] records`` says
        (a kind no schema describes goes in the codec's self-describing form)."""
        self.store.add_records(records)
        self._enqueue([public(r) for r in records], self.encoder)

    def _enqueue(self, records: list[Record], encoder: Encoder) -> None:
        try:
            payload = encoder.encode_batch(records)
            self.queue.enqueue(payload)  # durable on return
        except TunnelError:  # too large for one batch: halve (a single record never is)
            if len(records) > 1:
                half = len(records) // 2
                self._enqueue(records[:half], encoder)
                self._enqueue(records[half:], encoder)
                return
            self._encode_failed(records)
            return
        except StorageError:
            if self.strict:
                raise
            self.stats.queue_errors += len(records)
            agent_log.exception("could not queue %d records in the outbox", len(records))
            return
        except StreamfeatError:
            self._encode_failed(records)
            return
        self.stats.payloads += 1
        self.stats.payload_bytes += len(payload)
        self.stats.uploaded_records += len(records)
        self.stats.uploaded_json_bytes += sum(len(orjson.dumps(r)) + 1 for r in records)
        if self.on_upload is not None:
            # with an admission filter the ids sent are not the ids produced: report what was sent
            sent = records if encoder.admission is None else decode_batch(payload, encoder.schemas)
            self.on_upload(sent)

    def _encode_failed(self, records: list[Record]) -> None:
        self.stats.encode_errors += len(records)
        with contextlib.suppress(StorageError, sqlite3.Error):
            self.store.incr("agent.encode_errors", len(records))
        agent_log.warning("could not encode %d records; they stay in the store only", len(records))
