"""The agent's event journal: every accepted event, durable before ``submit`` returns.

Effectively-once across crashes rests on two writes:

1. :meth:`Journal.append` stores an accepted event under its *index* (1, 2, ... in acceptance
   order, which is the order the engine processes them) in one transaction, before the agent
   queues it; an event whose ``submit`` returned is on disk.
2. After each engine batch the agent commits, in one transaction, the batch's records, the
   outbox items that carry them, the engine snapshot (whose ``events`` count is the index of
   the last event processed) and :meth:`Journal.trim` of the events that snapshot covers.

So at any instant the store holds a snapshot S, every record produced up to S (stored and in
the outbox, once), and the journal of the events accepted after S. A restart restores S and
processes the journal again (:meth:`Journal.since`): the records of those events were never
committed, so nothing is produced twice and no accepted event is lost.
"""

from __future__ import annotations

from typing import Any

import msgpack

from streamfeat._event import Event
from streamfeat.io._store import Store

__all__ = ["Journal", "accepted_events"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS agent_journal (idx INTEGER PRIMARY KEY, event BLOB NOT NULL)"


class Journal:
    """The ``agent_journal`` table of a device store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.db.conn.execute(_SCHEMA)

    def append(self, idx: int, event: Event) -> None:
        """Store ``event`` as accepted event ``idx`` (one transaction, or the caller's).

        Raises:
            sqlite3.Error: the store could not take it (a full disk): the event is not accepted.
        """
        body = msgpack.packb(tuple(event), use_bin_type=True)
        with self.store.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO agent_journal (idx, event) VALUES (?, ?)",
                         (idx, body))  # fmt: skip

    def since(self, idx: int) -> list[tuple[int, Event]]:
        """The events accepted after event ``idx``, in order."""
        rows = self.store.db.execute(
            "SELECT idx, event FROM agent_journal WHERE idx > ? ORDER BY idx", [idx]
        ).fetchall()
        return [(int(i), _event(bytes(body))) for i, body in rows]

    def trim(self, idx: int) -> None:
        """Forget the events up to ``idx`` (a committed snapshot covers them)."""
        self.store.db.conn.execute("DELETE FROM agent_journal WHERE idx <= ?", (idx,))

    def last(self) -> int:
        """The highest index journaled, or 0."""
        row = self.store.db.execute("SELECT MAX(idx) FROM agent_journal").fetchone()
        return int(row[0] or 0)


def _event(body: bytes) -> Event:
    fields: list[Any] = msgpack.unpackb(body, raw=False)
    return Event(*fields)


def accepted_events(store_path: str) -> int:
    """How many valid events the agent on ``store_path`` accepted so far (0 for a new store).

    A producer that restarts the agent after a crash resumes its input after that many
    events: each of them is in the store (processed, or journaled and processed at restart).
    """
    from streamfeat.agent._switcher import CHECKPOINT

    store = Store(store_path)
    try:
        Journal(store)
        cp = store.load_checkpoint(CHECKPOINT)
        return max(cp.events if cp is not None else 0, Journal(store).last())
    finally:
        store.close()
