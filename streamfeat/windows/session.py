"""Session windows: per key, events closer than the gap form one session (SPEC section 3).

An event joins a session ``[first, last]`` when ``first - gap < ts < last + gap``; when it
joins several (an out-of-order event bridging them) they merge, accumulators included
(:meth:`~streamfeat.windows._aggregates.AggregateSet.merge`). A session's window is
``[first, last + gap)`` and closes when ``maxts - lateness >= last + gap``. An event is late
when ``ts + gap <= maxts - lateness``, even if an open session would otherwise have taken it
(the SPEC's rule, kept literally so lateness does not depend on other events' sessions).

Invariant: a key's sessions are sorted by ``first`` and any two of them are at least ``gap``
apart (``next.first - prev.last >= gap``), so a new event can only merge neighbours it joins.
"""

from __future__ import annotations

from bisect import insort
from typing import TYPE_CHECKING, Any

from streamfeat._event import Event
from streamfeat.windows._base import NO_DEADLINE, ProcessFn, WindowLogic

if TYPE_CHECKING:
    from streamfeat.windows._config import WindowConfig

__all__ = ["SessionLogic", "SessionState"]


class SessionState:
    """Open sessions of one session window for one device.

    ``keys`` maps a key to its sessions ``[first, last, accumulator]`` (sorted by ``first``);
    ``next_close`` is a lower bound of the smallest ``last + gap`` (None when nothing is open).
    """

    __slots__ = ("keys", "next_close")

    def __init__(self) -> None:
        self.keys: dict[str, list[list[Any]]] = {}
        self.next_close: int | None = None


class SessionLogic(WindowLogic):
    """One session window config.

    The per-event step is built once per instance (:meth:`_build_process`, as for tumbling
    windows) and handed to the stage by :meth:`step_function`; :meth:`process` calls it.
    """

    kind = "session"

    def __init__(self, cfg: WindowConfig, lateness: int, *, sizes: bool = False) -> None:
        super().__init__(cfg, lateness, sizes=sizes)
        self._step: ProcessFn = self._build_process()

    def step_function(self) -> ProcessFn:
        """Return the per-event step as a plain function (the stage's hot path)."""
        return self._step

    def _build_process(self) -> ProcessFn:
        """Return ``process(st, seq, event, maxts, device, out)`` for this config.

        The same steps as :meth:`process_reference`, with the config in closure cells,
        admission inlined, and the two common cases first: a key with no open session (a new
        one, nothing to merge) and an event that extends the key's latest session.
        """
        gap, lateness, key_of = self.size, self.lateness, self.key_of
        filtered, types, pairs = self.filter is not None, self.filter_types, self.filter_pairs
        by_device = self.key_fields == ("device",)
        aggs, late = self.aggs, self.late
        join, close_until = self._join, self._close_until

        def process(
            st: SessionState,
            seq: int,
            event: Event,
            maxts: int,
            device: str,
            out: list[dict[str, Any]],
        ) -> None:
            wm = maxts - lateness
            if not filtered or event.type in types or (event.type, event.page) in pairs:
                key = device if by_device else key_of(event)
                if key is not None:
                    ts = event.ts
                    if ts + gap <= wm:
                        out.append(late(device, event))
                    else:
                        sessions = st.keys.get(key)
                        if sessions is None:  # a new session, alone under its key
                            acc = aggs.new()
                            aggs.update(acc, event, seq)
                            t: Any = ts  # one int object for both bounds
                            st.keys[key] = [[t, t, acc]]
                            end = ts + gap
                        else:
                            latest = sessions[-1]
                            # its bounds read as ints once (the compiled build compares them
                            # natively, not as objects with ts boxed for each comparison)
                            first: int = latest[0]
                            last: int = latest[1]
                            if first <= ts < last + gap:  # extends the latest one
                                if ts > last:
                                    latest[1] = last = ts
                                aggs.update(latest[2], event, seq)
                                end = last + gap
                            else:
                                end = join(st, key, ts, event, seq)
                        nxt = st.next_close
                        if nxt is None or end < nxt:
                            st.next_close = end
            nxt = st.next_close
            if nxt is not None and nxt <= wm:
                close_until(st, wm, device, out)

        return process

    def new_state(self) -> SessionState:
        return SessionState()

    def deadline(self, st: SessionState) -> int:
        """Return a max ts before which no session of ``st`` closes (see WindowStage)."""
        nxt = st.next_close
        return NO_DEADLINE if nxt is None else nxt + self.lateness

    def process(
        self,
        st: SessionState,
        seq: int,
        event: Event,
        maxts: int,
        device: str,
        out: list[dict[str, Any]],
    ) -> None:
        """Handle one valid event of the device (see :mod:`streamfeat.windows._base`)."""
        self._step(st, seq, event, maxts, device, out)

    def process_reference(
        self,
        st: SessionState,
        seq: int,
        event: Event,
        maxts: int,
        device: str,
        out: list[dict[str, Any]],
    ) -> None:
        """:meth:`process` step by step (the reference of the built step; tests compare them)."""
        wm = maxts - self.lateness
        key = self.admit(event)
        if key is not None:
            ts, gap = event.ts, self.size
            if ts + gap <= wm:
                out.append(self.late(device, event))
            else:
                end = self._join(st, key, ts, event, seq)
                if st.next_close is None or end < st.next_close:
                    st.next_close = end
        if st.next_close is not None and st.next_close <= wm:
            self._close_until(st, wm, device, out)

    def _join(self, st: SessionState, key: str, ts: int, event: Event, seq: int) -> int:
        # returns the end (last + gap) of the session the event went into
        gap, aggs = self.size, self.aggs
        sessions = st.keys.get(key)
        if sessions is None:
            sessions = st.keys[key] = []
        elif sessions[-1][0] <= ts < sessions[-1][1] + gap:
            # the common case: the event extends the latest session; by the invariant no
            # earlier session is within the gap of a ts at or after that session's first
            last = sessions[-1]
            if ts > last[1]:
                last[1] = ts
            aggs.update(last[2], event, seq)
            return int(last[1]) + gap
        hits = [s for s in sessions if s[0] - gap < ts < s[1] + gap]
        if not hits:
            s: list[Any] = [ts, ts, aggs.new()]
            insort(sessions, s, key=lambda x: x[0])
        else:
            s = hits[0]
            for other in hits[1:]:
                s[1] = max(s[1], other[1])
                s[2] = aggs.merge(s[2], other[2])
                sessions.remove(other)
            if ts < s[0]:
                s[0] = ts
            if ts > s[1]:
                s[1] = ts
        aggs.update(s[2], event, seq)
        return int(s[1]) + gap

    def advance(self, st: SessionState, maxts: int, device: str, out: list[dict[str, Any]]) -> None:
        """Close (``forced: false``) every session with ``last + gap <= maxts - lateness``."""
        wm = maxts - self.lateness
        if st.next_close is not None and st.next_close <= wm:
            self._close_until(st, wm, device, out)

    def close(self, st: SessionState, device: str, out: list[dict[str, Any]]) -> None:
        """Close every open session with ``forced: true``."""
        self._close_until(st, None, device, out)

    def _close_until(
        self, st: SessionState, wm: int | None, device: str, out: list[dict[str, Any]]
    ) -> None:
        gap = self.size
        closed: list[tuple[int, int, str, list[Any]]] = []
        nxt: int | None = None
        for key in list(st.keys):
            keep = []
            for s in st.keys[key]:
                end = s[1] + gap
                if wm is None or end <= wm:
                    closed.append((end, s[0], key, s[2]))
                else:
                    keep.append(s)
                    nxt = end if nxt is None or end < nxt else nxt
            if keep:
                st.keys[key] = keep
            else:
                del st.keys[key]
        st.next_close = nxt
        closed.sort(key=lambda c: c[:3])
        forced = wm is None
        for end, start, key, acc in closed:
            out.append(self.record(device, key, start, end, acc, forced))

    def empty(self, st: SessionState) -> bool:
        return not st.keys

    def dump(self, st: SessionState) -> Any:
        dump = self.aggs.dump
        keys = [[k, [[s[0], s[1], dump(s[2])] for s in ss]] for k, ss in st.keys.items()]
        return [keys, st.next_close]

    def load(self, data: Any) -> SessionState:
        st = SessionState()
        load = self.aggs.load
        keys, st.next_close = data
        st.keys = {k: [[f, last, load(acc)] for f, last, acc in ss] for k, ss in keys}
        return st

    def open_windows(self, st: SessionState) -> list[dict[str, Any]]:
        gap = self.size
        rows = [
            {"key": k, "start": s[0], "end": s[1] + gap, "values": self.aggs.values(s[2])}
            for k, ss in st.keys.items()
            for s in ss
        ]
        rows.sort(key=lambda r: (r["end"], r["start"], r["key"]))
        return rows
