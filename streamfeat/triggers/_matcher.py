"""Stepping all triggers over a device's events: the thin layer above the shared automaton.

Theory of operation
-------------------
The automaton (:mod:`streamfeat.triggers._trie`) reports, at each event ``e``, the segments
(runs between ``*`` s) that end there. For each trigger the matcher keeps, per segment ``j``, a
small *frontier* of partial matches ``(s, ts_s, end)``: the pattern up to segment ``j`` matched
the slice ``[s..end]``. An occurrence ``[b..e]`` of segment ``j + 1`` extends every entry of
frontier ``j`` that ends before ``b``; of segment 0, it starts the entry ``(b, ts_b)``. When the
last segment completes at ``e``, the trigger fires with the largest valid ``s``: ``s > L`` (the
last firing), ``s >`` the last event matching a ``without`` token (a *floor*: every event of a
match counts), ``ts_e - ts_s <= within``, and inside the engine's partial-match limits. Then
``L := e`` and every entry of the trigger dies (all have ``s <= e``).

Only Pareto-optimal entries are kept (a larger ``s`` with a ts at least as large, ending no
later, is better for every future use: later floor, shorter span, within); without ``within``
only the largest ``s`` counts, so a frontier is one entry in practice. With ``within`` and
timestamps going backwards, the frontier is a staircase (``s`` up, ``ts`` down), bounded by
the limits. When the last segment completes at the current event, only the entry the firing
check will choose joins the last frontier (:meth:`Layer._complete`); for ``A * B`` it is
looked up in the noted starts of ``A``, newest first, without building the others.

Limits (SPEC section 5): a partial match starting at ``s`` is *cut* once the slice would hold
more than ``partial_limit_events`` events, or once the device's clock has moved more than
``partial_limit`` past its clock at ``s`` (the clock is the largest ts seen so far, or the wall
time given to :meth:`Matcher.advance`; using the clock rather than ``ts_s`` keeps a later start
never worse than an earlier one, even when timestamps go backwards). Cuts are counted in
:attr:`Matcher.stats`.

The device keeps its events from the oldest live partial match on (a task receives the matched
slice) and at least the last ``max segment length`` events (for segment checks and for a
resync after the automaton is rebuilt). Its automaton state is one integer.

Two drivers feed the same layer: :meth:`Matcher.step` walks the transition table one event at a
time (live engine); :meth:`Matcher.run_batch` runs ``pyahocorasick`` over a device's whole
symbol string in one call (replay). They produce identical firings.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import accumulate
from typing import Any

from streamfeat._event import Event
from streamfeat.triggers._layer import Layer
from streamfeat.triggers._pattern import Pattern
from streamfeat.triggers._snapshot import dump_state, load_any
from streamfeat.triggers._state import OCC_PRUNE, DeviceState, Firing, trigger_record
from streamfeat.triggers._sync import resync
from streamfeat.triggers._trie import Compiled, compile_patterns

__all__ = ["DeviceState", "Firing", "Matcher"]


class Matcher(Layer):
    """All triggers of an engine compiled together, and the per-device stepping.

    Args:
        triggers: trigger name -> parsed pattern, in registration order (firings at one
            event are reported in this order).
        limit_ms: the partial-match time limit (``engine.partial_limit``).
        limit_events: the partial-match event limit (``engine.partial_limit_events``).
    """

    def __init__(self, triggers: dict[str, Pattern], *, limit_ms: int, limit_events: int) -> None:
        self.limit_ms = limit_ms
        self.limit_events = limit_events
        self.stats = {"firings": 0, "cuts": 0, "recompiles": 0}
        self._patterns: dict[int, tuple[str, Pattern]] = {}
        self._added: dict[int, int] = {}
        self._next_tid = 0
        self._gen = 0
        for name, pattern in triggers.items():
            self._patterns[self._next_tid] = (name, pattern)
            self._added[self._next_tid] = 0
            self._next_tid += 1
        self.c: Compiled = compile_patterns(self._patterns, generation=0, added=self._added)

    # -- hot update -----------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The trigger names, in registration order."""
        return [name for name, _ in self._patterns.values()]

    def add(self, name: str, pattern: Pattern) -> None:
        """Register a trigger; on each device it matches only events after its next event.

        Raises:
            ValueError: if a trigger of that name exists; nothing changes.
        """
        self.update({name: pattern}, ())

    def remove(self, name: str) -> None:
        """Unregister a trigger; its partial matches are dropped at each device's next event.

        Raises:
            KeyError: if there is no such trigger; nothing changes.
        """
        self.update({}, (name,))

    def update(self, added: dict[str, Pattern], removed: Iterable[str]) -> None:
        """Remove then add triggers with one rebuild of the automaton (a changed trigger is
        removed and added: it starts afresh).

        Raises:
            KeyError: if a removed trigger does not exist; nothing changes.
            ValueError: if an added trigger exists and is not removed; nothing changes.
        """
        gone = list(removed)
        for name in gone:
            if name not in self.c.by_name:
                raise KeyError(name)
        for name in added:
            if name in self.c.by_name and name not in gone:
                msg = f"trigger {name!r} already exists"
                raise ValueError(msg)
        self._gen += 1
        for name in gone:
            tid = self.c.by_name[name]
            del self._patterns[tid]
            del self._added[tid]
        for name, pattern in added.items():
            self._patterns[self._next_tid] = (name, pattern)
            self._added[self._next_tid] = self._gen
            self._next_tid += 1
        self._recompile()

    def _recompile(self) -> None:
        self.c = compile_patterns(self._patterns, generation=self._gen, added=self._added)
        self.stats["recompiles"] += 1

    # -- state ----------------------------------------------------------------------------

    def new_state(self) -> DeviceState:
        """Return the state of a device with no events yet."""
        return DeviceState(self.c)

    def idle(self, st: DeviceState) -> bool:
        """Return True when no partial match is alive and nothing is pending."""
        if (
            not self.c.fresh[st.node]
            or st.nfa
            or st.pending
            or st.due
            or st.watch
            or st.lead_frontier
            or st.shared_starts
            or st.symbol_starts
            or st.chain_starts
        ):
            return False
        if self.c.lookback:
            return False
        return not any(any(tr.frontiers) for tr in st.partials.values())

    # -- drivers --------------------------------------------------------------------------

    def step(self, st: DeviceState, index: int, event: Event) -> list[Firing]:
        """Handle event number ``index`` of a device (per-event driver)."""
        c = self.c
        if st.compiled is not c:
            resync(self.c, st)
        etype = event.type
        page = event.page
        entry = c.types.get(etype)  # c.symbol(event), inline on the hot path
        if entry is None:
            sym = 0
        elif page is None:
            sym = entry[0]
        else:
            sym = entry[1].get(page, entry[0])
        node = c.delta[st.node].get(sym)
        if node is None:
            node = c.step(st.node, sym)
        st.node = node
        # keep the event and the device's clock there
        if st.base < 0:
            st.base = index
        st.last = index
        events = st.events
        events.append(event)
        ts = event.ts
        if ts > st.maxts:
            st.maxts = ts
        st.clocks.append(st.maxts)
        wo = c.without.get(etype)  # the `without` tokens it matches: note it as their last
        if wo is not None:
            if wo[0] is not None:
                st.without_seen[wo[0]] = index
            if page is not None and (tok := wo[1].get(page)) is not None:
                st.without_seen[tok] = index
        if len(events) >= st.trim_at:
            self.gc(st)
        if sym in c.sym_users:
            starts = st.symbol_starts.get(sym)
            if starts is not None and len(starts) < OCC_PRUNE:
                starts.append(index)  # the common case of _note, inline
            else:
                self._note(st, sym, index)
        # the segments ending here that matter: every occurrence of a live one, of the others
        # only while a trigger waits on them
        hits = c.out_live[node]
        if st.waiting:
            other = c.out_wait[node]
            if other:
                wait = st.waiting
                extra = [sid for sid in other if wait.get(sid)]
                if extra:
                    hits = tuple(sorted((*hits, *extra))) if hits else tuple(extra)
        if hits or st.pending or st.due or st.watch or c.always:
            fired = self._layer(st, index, event, hits)
        else:
            fired = []
        if c.nfas:
            nfa_fired = self._nfa_layer(st, index, event, sym)
            if nfa_fired:
                fired = self._merge_firings(fired, nfa_fired)
        return fired

    def step_into(
        self, st: DeviceState, index: int, event: Event, out: list[dict[str, Any]]
    ) -> None:
        """:meth:`step`, each firing appended to ``out`` as its ``trigger`` record: the trigger
        stage's per-event call, made by the engine without a Python method around it."""
        fired = self.step(st, index, event)
        if fired:
            device = event.device
            for f in fired:
                out.append(trigger_record(f, device))

    def _merge_firings(self, a: list[Firing], b: list[Firing]) -> list[Firing]:
        """Firings of both kinds of triggers at one event, in registration order."""
        if not a:
            return b
        by_name = self.c.by_name
        return sorted(a + b, key=lambda f: by_name[f.trigger])

    def _see_without(self, st: DeviceState, event: Event, index: int) -> None:
        """Note ``index`` as the last event matching each ``without`` token ``event`` matches."""
        wo = self.c.without.get(event.type)
        if wo is not None:
            if wo[0] is not None:
                st.without_seen[wo[0]] = index
            if event.page is not None and (tok := wo[1].get(event.page)) is not None:
                st.without_seen[tok] = index

    def run_batch(self, events: list[Event]) -> list[Firing]:
        """Return the firings of a whole device's events, from index 0 (batch driver).

        pyahocorasick finds every keyword of the device's symbol string in one call; the layer
        then runs only at the events where something happens (a keyword ends, a check or a
        firing is due, a ``without`` token arrives), unless a trigger needs every event.
        """
        c = self.c
        st = self.new_state()
        st.events = events
        st.base = 0
        st.clocks = list(accumulate((e.ts for e in events), max))
        st.trim_at = len(events) + 1  # the whole log is at hand: never trim
        hits = c.hits_batch(c.text(events))
        syms = [c.symbol(e) for e in events]
        todo = self._batch_events(events, syms, hits)
        every = bool(c.every or c.lead or c.nfa_any_start)
        out: list[Firing] = []
        pos, n, none = 0, len(events), ()
        e = -1
        while True:
            live_every = c.nfas and any(c.nfas[t].every for t in st.nfa)
            nxt = self._next_batch_event(
                st, todo[pos] if pos < len(todo) else n, e, every or bool(live_every)
            )
            if nxt >= n:
                return out
            if pos < len(todo) and nxt == todo[pos]:
                pos += 1
            e = nxt
            event = events[e]
            st.last = e
            st.maxts = st.clocks[e]
            if c.without:
                self._see_without(st, event, e)
            if syms[e] in c.sym_users:
                self._note(st, syms[e], e)
            fired = self._layer(st, e, event, hits.get(e, none))
            if c.nfas:
                nfa_fired = self._nfa_layer(st, e, event, syms[e])
                if nfa_fired:
                    fired = self._merge_firings(fired, nfa_fired)
            if fired:
                out.extend(fired)

    def _batch_events(self, events: list[Event], syms: list[int], hits: Any) -> list[int]:
        """The events the batch driver must visit whatever the state: keyword ends, starts of
        one-event first segments, ``without`` tokens."""
        c = self.c
        static = set(hits)
        static.update(i for i, sym in enumerate(syms) if sym in c.sym_users)
        if c.nfas:  # events an NFA trigger names (the others only move `*`, applied lazily)
            static.update(i for i, sym in enumerate(syms) if sym in c.nfa_syms)
        if c.without:
            static.update(i for i, e in enumerate(events) if e.type in c.without)
        return sorted(static)

    @staticmethod
    def _next_batch_event(st: DeviceState, nxt: int, e: int, every: bool) -> int:
        """The next event to visit after ``e``: ``nxt`` unless a check or firing is due first."""
        if every or st.watch:
            nxt = min(nxt, e + 1)
        if st.due:
            nxt = min(nxt, min(st.due))
        if st.pending:
            nxt = min(nxt, min(st.pending))
        return nxt

    def advance(self, st: DeviceState, now_ms: int) -> None:
        """Let wall time reach ``now_ms``: partial matches past the time limit are cut."""
        if now_ms > st.maxts:
            st.maxts = now_ms
            self.gc(st)

    def dump(self, st: DeviceState) -> list[Any]:
        """Return a msgpack-able form of ``st`` (format 2, see :mod:`._snapshot`)."""
        return dump_state(self.c, st)

    def load(self, data: Any) -> DeviceState:
        """Rebuild a state from :meth:`dump`, or from a format-1 snapshot of an earlier release
        (triggers no longer registered are dropped).

        Raises:
            StorageError: the snapshot is of an unknown format or malformed.
        """
        return load_any(self.c, data)
