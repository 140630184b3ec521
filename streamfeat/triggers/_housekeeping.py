"""The partial-match limits and housekeeping of a device's matcher state.

A partial match starting at ``s`` is *cut* once its slice would hold more than
``partial_limit_events`` events or the device's clock has moved more than ``partial_limit``
past its clock at ``s`` (SPEC section 5; see :mod:`streamfeat.triggers._matcher`). Every
``trim_at`` events, :meth:`Housekeeping.gc` drops what is dead or cut and the events no live
match needs.
"""

from __future__ import annotations

from streamfeat.triggers._frontier import Entry
from streamfeat.triggers._nfa import NfaPlan
from streamfeat.triggers._state import TRIM, DeviceState
from streamfeat.triggers._trie import Compiled, TriggerPlan

__all__ = ["Housekeeping"]


class Housekeeping:
    """Limits, floors and garbage collection over :class:`DeviceState` (a base of the matcher).

    Attributes:
        c: the compiled trigger set.
        limit_ms: the partial-match time limit.
        limit_events: the partial-match event limit.
        stats: counters; ``cuts`` counts the partial matches the limits cut.
    """

    c: Compiled
    limit_ms: int
    limit_events: int
    stats: dict[str, int]

    def _floor(self, st: DeviceState, plan: TriggerPlan | NfaPlan) -> int:
        lo = -1
        seen = st.without_seen
        for tok in plan.without:
            v = seen.get(tok, -1)
            if v > lo:
                lo = v
        return lo

    def _cut(self, st: DeviceState, s: int, clock: int, e: int) -> bool:
        """Return True when a match starting at ``s`` (device clock then: ``clock``) is past
        the limits at event ``e``."""
        return e - s >= self.limit_events or st.maxts - clock > self.limit_ms

    def _start_lists(self, st: DeviceState, sid: int) -> list[list[int] | None]:
        """The noted occurrences of first segment ``sid``: one list of starts, in order, per
        symbol of a one-event segment, else the segment's own list (None: none noted)."""
        cls = self.c.sym_first.get(sid)
        if cls is None:
            return [st.shared_starts.get(sid)]
        return [st.symbol_starts.get(sym) for sym in cls]

    def _first_starts(self, st: DeviceState, sid: int) -> list[int] | None:
        """The starts of the noted occurrences of first segment ``sid``, in order."""
        lists = [v for v in self._start_lists(st, sid) if v]
        if len(lists) < 2:
            return lists[0] if lists else None
        return sorted(x for v in lists for x in v)

    def _occ_front(
        self, st: DeviceState, length: int, starts: list[int], lo: int, now: int
    ) -> list[int]:
        """Keep the occurrence starts (of a segment ``length`` long) that may still begin a
        match: above ``lo``, inside the limits, and Pareto-optimal (later start, larger ts) once
        every future lookup sees them."""
        horizon = now - self.c.max_back + 1
        events, clk, base = st.events, st.clocks, st.base
        limit_s, limit_clock = now - self.limit_events, st.maxts - self.limit_ms
        settled: list[int] = []
        rest: list[int] = []
        for x in starts:
            if x <= lo:
                continue
            if x <= limit_s or clk[x - base] < limit_clock:
                self.stats["cuts"] += 1
                continue
            (settled if x + length - 1 < horizon else rest).append(x)
        front: list[int] = []
        top = None
        for x in reversed(settled):  # later starts first: keep those with a larger ts
            ts = events[x - base].ts
            if top is None or ts > top:
                front.append(x)
                top = ts
        front.reverse()
        return front + rest

    def _lo(self, st: DeviceState, tid: int) -> int:
        """The largest index a new match of ``tid`` may not start at (last firing, floor)."""
        tr = st.partials.get(tid)
        lo = -1 if tr is None else tr.last_fired
        plan = self.c.plans[tid]
        return max(lo, self._floor(st, plan)) if plan.without else lo

    def gc(self, st: DeviceState) -> None:
        """Drop dead and cut partial matches, and events no live match or check needs."""
        e = st.last
        if e < 0:
            return
        # in this order: dropping a trigger's partials resets the floor the later passes use
        low = min(
            self._gc_shared(st, e),
            self._gc_symbols(st, e),
            self._gc_partials(st, e),
            self._gc_chains(st, e),
            self._gc_leads(st, e),
            self._gc_nfa(st, e),
        )
        for sid in [sid for sid, users in st.waiting.items() if not users]:
            del st.waiting[sid]
        cut = min(low, e - self.c.max_segment + 1) - st.base
        if cut > 0:
            del st.events[:cut]
            del st.clocks[:cut]
            st.base += cut
        st.trim_at = max(TRIM, 2 * len(st.events))

    def _gc_shared(self, st: DeviceState, e: int) -> int:
        """Prune the shared first-segment occurrences; return the oldest start still kept."""
        c, low = self.c, e + 1
        for sid in list(st.shared_starts):
            lo = min(self._lo(st, tid) for tid, _ in c.after_first[sid])
            length = c.segments[sid].length
            starts = self._occ_front(st, length, st.shared_starts[sid], lo, e)
            st.shared_starts[sid] = starts
            if starts:
                low = min(low, starts[0])
            else:
                del st.shared_starts[sid]
        return low

    def _gc_symbols(self, st: DeviceState, e: int) -> int:
        """Prune the one-event first segments' starts; return the oldest start still kept."""
        low = e + 1
        for sym in list(st.symbol_starts):
            lo = min(self._lo(st, tid) for tid, _ in self.c.sym_users[sym])
            starts = self._occ_front(st, 1, st.symbol_starts[sym], lo, e)
            st.symbol_starts[sym] = starts
            if starts:
                low = min(low, starts[0])
            else:
                del st.symbol_starts[sym]
        return low

    def _gc_partials(self, st: DeviceState, e: int) -> int:
        """Prune every trigger's frontiers; forget a trigger with nothing left to guard."""
        c, low = self.c, e + 1
        for tid in list(st.partials):
            tr = st.partials[tid]
            lo = self._lo(st, tid)
            for f in tr.frontiers:
                f[:] = self._live(st, f, lo, e)
                for x in f:
                    low = min(low, x[0])
            if not tr.frontiers[-1]:
                st.watch.discard(tid)
            if (
                not any(tr.frontiers)
                and e - tr.last_fired > c.max_segment
                and tid not in st.lead_frontier
            ):
                plan = c.plans[tid]
                occ = self._first_starts(st, plan.segments[0]) if not plan.lead else None
                if not occ or occ[0] > tr.last_fired:  # last_fired still guards an occurrence
                    del st.partials[tid]
        return low

    def _gc_chains(self, st: DeviceState, e: int) -> int:
        """Prune the starts of ``A * A * ... * A`` triggers."""
        low = e + 1
        clocks, base = st.clocks, st.base
        for tid, starts in list(st.chain_starts.items()):
            lo = self._lo(st, tid)
            starts[:] = [x for x in starts if x > lo and not self._cut(st, x, clocks[x - base], e)]
            if starts:
                low = min(low, starts[0])
            else:
                del st.chain_starts[tid]
        return low

    def _gc_leads(self, st: DeviceState, e: int) -> int:
        """Prune the start staircases of leading-``*`` triggers."""
        low = e + 1
        for tid, entries in list(st.lead_frontier.items()):
            entries[:] = self._live(st, entries, self._lo(st, tid), e)
            if entries:
                low = min(low, entries[0][0])
            else:
                del st.lead_frontier[tid]
        return low

    def _gc_nfa(self, st: DeviceState, e: int) -> int:
        """Prune the starts of the NFA triggers' runs; forget an empty run."""
        low = e + 1
        for tid, run in list(st.nfa.items()):
            plan = self.c.nfas[tid]
            lo = self._floor(st, plan) if plan.without else -1
            states = {}
            for q, entries in run.states.items():
                live = [
                    x for x in entries
                    if x[0] > lo and not self._cut(st, x[0], x[2], e)
                ]  # fmt: skip
                if live:
                    states[q] = live
                    low = min(low, min(x[0] for x in live))
            run.states = states
            if not states:
                del st.nfa[tid]
        return low

    def _live(self, st: DeviceState, entries: list[Entry], lo: int, e: int) -> list[Entry]:
        """Return the entries still usable at ``e``; count the ones the limits cut."""
        live = []
        for x in entries:
            if x[0] <= lo:
                continue
            if self._cut(st, x[0], x[3], e):
                self.stats["cuts"] += 1
                continue
            live.append(x)
        return live
