"""The agent's journal: every accepted event and every clock tick, durable, so that a restart
after a crash (``kill -9``) neither loses an accepted event nor uploads a record twice.

How the agent uses it (:class:`~streamfeat.agent.Agent`):

1. :meth:`Journal.append` stores an accepted event under its *index* (1, 2, ... in acceptance
   order, which is the order the engine processes them) in one transaction before the agent
   queues it: an event whose ``submit`` returned is on disk.
2. Each engine batch commits, in one transaction, its records, the outbox items carrying them
   and the running count of engine records committed (:meth:`Journal.set_emitted`). A clock
   tick (``engine.advance(now)``) commits its records with a tick row (:meth:`Journal.tick`:
   the events processed before it and ``now``) the same way.
3. At most every second, and at a switch or a clean stop, the engine snapshot commits with
   the record count it covers (the checkpoint's ``out_offset``) and the journal up to it is
   dropped (:meth:`Journal.trim`).

A restart restores the snapshot and processes the journal's events and ticks after it, in
their original order. The engine is deterministic, so it produces the same records in the same
order: the first ``emitted - out_offset`` were committed before the crash and are skipped, the
rest are new and committed. Every record is uploaded once; no accepted event is lost.
"""

from __future__ import annotations

from typing import Any

import msgpack

from streamfeat._event import Event
from streamfeat.io._store import Store

__all__ = ["Journal", "accepted_events"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS agent_journal (idx INTEGER PRIMARY KEY, event BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS agent_ticks ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, after INTEGER NOT NULL, now_ms INTEGER NOT NULL)",
)
EMITTED_KEY = "agent.emitted"


class Journal:
    """The ``agent_journal`` and ``agent_ticks`` tables of a device store (see the module)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        for statement in _SCHEMA:
            store.db.conn.execute(statement)

    def append(self, idx: int, event: Event) -> None:
        """Store ``event`` as accepted event ``idx`` (one transaction, or the caller's).

        Raises:
            sqlite3.Error: the store could not take it (a full disk): the event is not accepted.
        """
        body = msgpack.packb(tuple(event), use_bin_type=True)
        with self.store.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO agent_journal (idx, event) VALUES (?, ?)",
                         (idx, body))  # fmt: skip

    def tick(self, after: int, now_ms: int) -> None:
        """Record an ``engine.advance(now_ms)`` made after ``after`` events (caller's transaction)."""
        self.store.db.conn.execute(
            "INSERT INTO agent_ticks (after, now_ms) VALUES (?, ?)", (after, now_ms)
        )

    def since(self, idx: int) -> list[tuple[int, Event]]:
        """The events accepted after event ``idx``, in order."""
        rows = self.store.db.execute(
            "SELECT idx, event FROM agent_journal WHERE idx > ? ORDER BY idx", [idx]
        ).fetchall()
        return [(int(i), _event(bytes(body))) for i, body in rows]

    def ticks(self) -> list[tuple[int, int]]:
        """``(after, now_ms)`` of every tick since the last snapshot, in order."""
        rows = self.store.db.execute("SELECT after, now_ms FROM agent_ticks ORDER BY id")
        return [(int(a), int(n)) for a, n in rows.fetchall()]

    def trim(self, idx: int) -> None:
        """Forget the events up to ``idx`` and every tick (a snapshot now covers them)."""
        conn = self.store.db.conn
        conn.execute("DELETE FROM agent_journal WHERE idx <= ?", (idx,))
        conn.execute("DELETE FROM agent_ticks")

    def last(self) -> int:
        """The highest index journaled, or 0."""
        row = self.store.db.execute("SELECT MAX(idx) FROM agent_journal").fetchone()
        return int(row[0] or 0)

    def emitted(self) -> int | None:
        """How many engine records were committed in all, or None if never recorded."""
        raw = self.store.get_state(EMITTED_KEY)
        return None if raw is None else int(raw)

    def set_emitted(self, n: int) -> None:
        """Record that ``n`` engine records are committed (in the caller's transaction)."""
        self.store.put_state(EMITTED_KEY, str(n).encode())


def _event(body: bytes) -> Event:
    fields: list[Any] = msgpack.unpackb(body, raw=False)
    return Event(*fields)


def accepted_events(store_path: str) -> int:
    """How many valid events the agent on ``store_path`` accepted so far (0 for a new store).

    A producer that restarts the agent after a crash resumes its input after that many valid
    events: each of them is in the store (processed, or journaled and processed at restart).
    """
    from streamfeat.agent._switcher import CHECKPOINT

    store = Store(store_path)
    try:
        journal = Journal(store)
        cp = store.load_checkpoint(CHECKPOINT)
        return max(cp.events if cp is not None else 0, journal.last())
    finally:
        store.close()
