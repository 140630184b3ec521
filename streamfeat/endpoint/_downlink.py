"""Configs down to devices from any endpoint process: the downlink queue and its poller.

A config for a device (a live tasks-file push, or a release announcement) is written once to
the database: as the device's stored config (sent when it next connects) and as an entry of
the downlink queue (table ``announcements``). Every endpoint process runs a :class:`Downlink`
that polls the queue every ``poll`` seconds (1 s by default) and pushes each new entry down
the open connections *it* holds for that device. So with ``--workers N`` a push or a release
reaches the devices of every worker, whichever process (a worker, the ``release`` or
``device config`` command) wrote it; the latency is at most one poll period plus a query.

A process that already sent a version on a connection (the process that took the push sends
it at once; a device that connects gets its stored config) does not send it again: a
connection only gets versions newer than what it was sent or said it holds.

Queue positions (``seq``) are handed out when a row is inserted but become visible when its
transaction commits, so two processes writing at once may commit 7 before 6. The poller keeps
a :class:`SeqWatermark`: it asks for everything above the lowest position it has not seen and
skips what it already handled, waiting up to ``gap_wait`` seconds for a missing position to
appear (a transaction that rolled back leaves a hole that never fills).

The queue is bounded: every ``prune_every`` polls (10 minutes at the default period) a process
deletes the entries more than ``keep`` (100,000) positions below what it has handled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

from streamfeat._log import server_log
from streamfeat.endpoint._release_store import ReleaseStore
from streamfeat.endpoint._releases import queue_config, queued_after

__all__ = ["Downlink", "SeqWatermark"]


class SeqWatermark:
    """Which queue positions were handled, when positions may become visible out of order.

    Args:
        start: every position up to ``start`` counts as handled.
        gap_wait: seconds to wait for a missing position before giving up on it.
    """

    def __init__(self, start: int, *, gap_wait: float = 30.0) -> None:
        self.low = start  # every position <= low is handled (or given up)
        self._seen: set[int] = set()  # handled positions above low
        self._gap_since: float | None = None  # when low + 1 was first found missing
        self._gap_wait = gap_wait

    def since(self) -> int:
        """Ask the queue for the positions above this one."""
        return self.low

    def take(self, seqs: Iterable[int], now: float) -> list[int]:
        """Mark ``seqs`` (what the queue returned) handled; return those not handled before."""
        new = [s for s in seqs if s > self.low and s not in self._seen]
        self._seen.update(new)
        while self._seen:
            if self.low + 1 in self._seen:
                self.low += 1
                self._seen.discard(self.low)
                self._gap_since = None
                continue
            # a hole below positions already seen: wait for it, but not for ever
            if self._gap_since is None:
                self._gap_since = now
            if now - self._gap_since < self._gap_wait:
                break
            self.low += 1
            self._gap_since = None
        return new


class _Pushable(Protocol):
    def push_if_newer(self, version: int, body: bytes) -> bool: ...


class Downlink:
    """This process's share of the downlink: queue configs, and push what others queued.

    Args:
        store: the endpoint database's release store (holds the queue).
        sessions: ``device -> its open connections in this process``.
        poll: seconds between looks at the queue.
        clock: ``() -> seconds`` for the gap wait (monotonic).
        keep: queue entries kept below what this process has handled; older ones are deleted
            every ``prune_every`` polls (each device's config stays in its stored config, so
            only a process lagging that far behind could miss one live, and it goes at the
            device's next connection).
    """

    def __init__(
        self,
        store: ReleaseStore,
        sessions: Callable[[str], Iterable[_Pushable]],
        *,
        poll: float = 1.0,
        clock: Callable[[], float],
        gap_wait: float = 30.0,
        keep: int = 100_000,
        prune_every: int = 600,
    ) -> None:
        self.store = store
        self.poll = poll
        self._sessions = sessions
        self._clock = clock
        rows = store.rows("SELECT max(seq) FROM announcements")
        # what was queued before this process started reaches devices as their stored config
        self.watermark = SeqWatermark(int(rows[0][0] or 0), gap_wait=gap_wait)
        self.delivered = 0  # configs sent on a connection by this poller
        self._keep, self._prune_every, self._polls = keep, prune_every, 0

    def queue(self, device: str, version: int, body: bytes) -> None:
        """Store ``device``'s config and queue it for every endpoint process on the database."""
        queue_config(self.store, device, version, body)

    def deliver(self) -> int:
        """Push queue entries not seen yet down this process's connections; return how many
        sends that made."""
        items = queued_after(self.store, self.watermark.since())
        fresh = set(self.watermark.take([s for s, _, _, _ in items], self._clock()))
        sent = 0
        for seq, device, version, body in items:
            if seq not in fresh:
                continue
            for session in list(self._sessions(device)):
                sent += bool(session.push_if_newer(version, body))
        self.delivered += sent
        self._polls += 1
        if self._polls % self._prune_every == 0:
            self.prune()
        return sent

    def prune(self) -> int:
        """Delete queue entries more than ``keep`` below what this process handled."""
        return self.store.run(
            "DELETE FROM announcements WHERE seq <= ?", (self.watermark.low - self._keep,)
        )

    async def run(self) -> None:
        """Poll until cancelled (a failing look is logged and retried at the next period)."""
        while True:
            await asyncio.sleep(self.poll)
            try:
                self.deliver()
            except Exception:  # a database hiccup must not end the poller
                server_log.warning("downlink queue poll failed", exc_info=True)
