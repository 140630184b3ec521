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
the limits.

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
from streamfeat.triggers._frontier import Entry, Partial, insert
from streamfeat.triggers._pattern import Pattern
from streamfeat.triggers._snapshot import dump_state, load_state
from streamfeat.triggers._state import OCC_PRUNE, TRIM, DeviceState, Firing
from streamfeat.triggers._sync import resync
from streamfeat.triggers._trie import Compiled, TriggerPlan, compile_patterns

__all__ = ["DeviceState", "Firing", "Matcher"]


class Matcher:
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
        entry = c.types.get(event.type)
        if entry is None:
            sym = 0
        else:
            page = event.page
            sym = entry[0] if page is None else entry[1].get(page, entry[0])
        node = c.delta[st.node].get(sym)
        if node is None:
            node = c.step(st.node, sym)
        st.node = node
        if st.base < 0:
            st.base = index
        st.last = index
        events = st.events
        events.append(event)
        ts = event.ts
        if ts > st.maxts:
            st.maxts = ts
        st.clocks.append(st.maxts)
        if c.without:
            wo = c.without.get(event.type)
            if wo is not None:
                if wo[0] is not None:
                    st.without_seen[wo[0]] = index
                if event.page is not None and (tok := wo[1].get(event.page)) is not None:
                    st.without_seen[tok] = index
        if len(events) >= st.trim_at:
            self.gc(st)
        if sym in c.sym_users:
            starts = st.symbol_starts.get(sym)
            if starts is not None and len(starts) < OCC_PRUNE:
                starts.append(index)  # the common case of _note, inline
            else:
                self._note(st, sym, index)
        hits = c.out[node]
        if hits or st.pending or st.due or st.watch or c.every or c.lead:
            return self._layer(st, index, event, hits)
        return []

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
        static = set(hits)
        syms = [c.symbol(e) for e in events]
        static.update(i for i, sym in enumerate(syms) if sym in c.sym_users)
        if c.without:
            static.update(i for i, e in enumerate(events) if e.type in c.without)
        every = bool(c.every or c.lead)
        todo = sorted(static)
        out: list[Firing] = []
        pos, n, none = 0, len(events), ()
        e = -1
        while True:
            nxt = todo[pos] if pos < len(todo) else n
            if every or st.watch:
                nxt = min(nxt, e + 1)
            if st.due:
                nxt = min(nxt, min(st.due))
            if st.pending:
                nxt = min(nxt, min(st.pending))
            if nxt >= n:
                return out
            if nxt == (todo[pos] if pos < len(todo) else -1):
                pos += 1
            e = nxt
            event = events[e]
            st.last = e
            st.maxts = st.clocks[e]
            wo = c.without.get(event.type) if c.without else None
            if wo is not None:
                if wo[0] is not None:
                    st.without_seen[wo[0]] = e
                if event.page is not None and (tok := wo[1].get(event.page)) is not None:
                    st.without_seen[tok] = e
            if syms[e] in c.sym_users:
                self._note(st, syms[e], e)
            fired = self._layer(st, e, event, hits.get(e, none))
            if fired:
                out.extend(fired)

    def advance(self, st: DeviceState, now_ms: int) -> None:
        """Let wall time reach ``now_ms``: partial matches past the time limit are cut."""
        if now_ms > st.maxts:
            st.maxts = now_ms
            self.gc(st)

    # -- the layer ------------------------------------------------------------------------

    def _layer(self, st: DeviceState, e: int, event: Event, seg_hits: Any) -> list[Firing]:
        """Everything above the automaton at event ``e`` (its bookkeeping already done)."""
        c = self.c
        ts = event.ts
        for tid in c.lead:
            self._lead(st, tid, e, ts, st.maxts)
        segments = c.segments
        live, wait = c.live, st.waiting
        for sid in seg_hits:
            if sid not in live and sid not in wait:
                # nobody can use this occurrence: its users wait on starts already noted
                continue
            seg = segments[sid]
            b = e - seg.kw_end
            if b < st.base:
                continue
            if seg.kw_end + 1 < seg.core:  # the core ends later: check it then
                due_at = b + seg.core - 1
                pend = st.pending.get(due_at)
                if pend is None:
                    st.pending[due_at] = [(sid, b)]
                else:
                    pend.append((sid, b))
            elif not seg.verify or self._check(st, seg.verify, b):
                self._occur(st, sid, b, e + seg.tail, e)
        if st.pending:
            pend = st.pending.pop(e, None)
            if pend is not None:
                for sid, b in pend:
                    seg = segments[sid]
                    if self._check(st, seg.verify, b):
                        self._occur(st, sid, b, e + seg.tail, e)
        for sid in c.every:
            b = e - segments[sid].tail + 1
            if b >= st.base:
                self._occur(st, sid, b, e, e)
        if not st.due and not st.watch:
            return []
        check = st.due.pop(e, None)
        if st.watch:
            check = (check or set()) | st.watch
        if not check:
            return []
        fired: list[Firing] = []
        for tid in sorted(check):
            f = self._fire(st, tid, e, ts)
            if f is not None:
                fired.append(f)
        return fired

    def _occur(self, st: DeviceState, sid: int, b: int, end: int, now: int) -> None:
        """Segment ``sid`` occurs over ``[b..end]``: extend whatever uses it."""
        direct, chains, users = self.c.roles[sid]
        if direct:
            for tid, j in direct:
                self._extend(st, tid, j, b, end, now)
        if chains:
            for tid in chains:
                self._chain(st, tid, b, now)
        if users:
            occ = st.shared_starts.get(sid)
            if occ is None:
                st.shared_starts[sid] = [b]
                plans = self.c.plans
                for tid, j in users:
                    st.waiting.setdefault(plans[tid].segments[1], set()).add((tid, j))
            else:
                occ.append(b)
                if len(occ) > OCC_PRUNE:
                    occ[:] = self._occ_front(st, self.c.segments[sid].length, occ, -1, now)
        if st.waiting:
            waiting = st.waiting.get(sid)
            if waiting:
                for tid, j in list(waiting):
                    self._extend(st, tid, j, b, end, now)

    def _chain(self, st: DeviceState, tid: int, b: int, now: int) -> None:
        """`A * A * ... * A` (k times, A one event): the shortest match starts at the k-th last A."""
        plan = self.c.plans[tid]
        starts = st.chain_starts.get(tid)
        if starts is None:
            starts = st.chain_starts[tid] = []
        starts.append(b)
        if len(starts) > plan.chain:
            del starts[0]
        elif len(starts) < plan.chain:
            return
        s = starts[0]
        tr = st.partials.get(tid)
        lo = -1 if tr is None else tr.last_fired
        if plan.without:
            lo = max(lo, self._floor(st, plan))
        if s <= lo:
            return
        if tr is None:
            tr = st.partials[tid] = Partial(len(plan.segments))
        i = s - st.base
        tr.frontiers[-1] = [(s, st.events[i].ts, now, st.clocks[i])]
        due = st.due.get(now)
        if due is None:
            st.due[now] = {tid}
        else:
            due.add(tid)

    def _check(self, st: DeviceState, verify: Any, b: int) -> bool:
        """Check a segment's positions outside its keyword against the buffered events."""
        symbol = self.c.symbol
        events = st.events
        off = b - st.base
        for i, cls in verify:  # noqa: SIM110 - a plain loop is faster than all() on this path
            if symbol(events[off + i]) not in cls:
                return False
        return True

    def _floor(self, st: DeviceState, plan: TriggerPlan) -> int:
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

    def _lead(self, st: DeviceState, tid: int, e: int, ts: int, clock: int) -> None:
        """A leading `*` (with `within`): every event is a possible start; keep the staircase."""
        plan = self.c.plans[tid]
        entries = st.lead_frontier.setdefault(tid, [])
        insert(entries, (e, ts, e, clock), e - plan.backs[0] + 1, True)

    def _extend(self, st: DeviceState, tid: int, j: int, b: int, end: int, now: int) -> None:
        """Segment ``j`` of trigger ``tid`` occurs over ``[b..end]``: extend its partial matches."""
        plan = self.c.plans[tid]
        tr = st.partials.get(tid)
        lo = -1 if tr is None else tr.last_fired
        if plan.without:
            seen = st.without_seen
            for tok in plan.without:
                v = seen.get(tok, -1)
                if v > lo:
                    lo = v
        if j == 0:
            i = b - st.base
            # end -1: the start itself is always before the segment (only lead entries compare)
            src: list[Entry] = [(b, st.events[i].ts, -1, st.clocks[i])] if b > lo else []
            if plan.lead:
                src += st.lead_frontier.get(tid, ())
        else:
            if j == 1 and not plan.lead and plan.within is None:
                got = self._last_occ(st, plan.segments[0], b)
            elif j == 1 and not plan.lead:
                got = self._occ_entries(st, plan.segments[0], b)
            else:
                got = tr.frontiers[j - 1] if tr else None
            if not got:  # nothing to extend any more: stop waiting
                waiting = st.waiting.get(plan.segments[j])
                if waiting is not None:
                    waiting.discard((tid, j))
                return
            src = got
        limit_s = now - self.limit_events
        limit_clock = st.maxts - self.limit_ms
        if plan.within is None:  # only the largest start counts; starts grow with ends
            best = None
            for x in reversed(src):
                if x[2] < b:
                    best = x
                    break
            if best is None or best[0] <= lo or best[0] <= limit_s or best[3] < limit_clock:
                return
            cands = [best]
        else:
            cands = [
                x for x in src if x[2] < b and x[0] > lo and x[0] > limit_s and x[3] >= limit_clock
            ]
            if not cands:
                return
        k = len(plan.segments)
        if tr is None:
            tr = st.partials[tid] = Partial(k)
        # the next lookups: segment j + 1 starting no earlier than now - back + 1; or the firing
        # checks: at `end` exactly, or (trailing `*`) at every event from `end` on
        nxt = j + 1
        horizon = now - plan.backs[nxt] + 1 if nxt < k else now + 1
        use_ts = plan.within is not None
        exact = nxt == k and not plan.trail
        frontier = tr.frontiers[j]
        for x in cands:
            insert(frontier, (x[0], x[1], end, x[3]), horizon, use_ts, exact)
        if nxt < k:
            seg = plan.segments[nxt]
            waiting = st.waiting.get(seg)
            if waiting is None:
                st.waiting[seg] = {(tid, nxt)}
            else:
                waiting.add((tid, nxt))
        elif plan.trail:
            st.watch.add(tid)
        else:
            due = st.due.get(end)
            if due is None:
                st.due[end] = {tid}
            else:
                due.add(tid)

    def _note(self, st: DeviceState, sym: int, e: int) -> None:
        """Event ``e`` of symbol ``sym`` occurs every one-event first segment holding ``sym``."""
        starts = st.symbol_starts.get(sym)
        if starts is None:
            st.symbol_starts[sym] = [e]
            plans = self.c.plans
            for tid, j in self.c.sym_users[sym]:
                st.waiting.setdefault(plans[tid].segments[1], set()).add((tid, j))
        else:
            starts.append(e)
            if len(starts) > OCC_PRUNE:
                starts[:] = self._occ_front(st, 1, starts, -1, e)

    def _first_starts(self, st: DeviceState, sid: int) -> list[int] | None:
        """The starts of the noted occurrences of first segment ``sid``, in order."""
        cls = self.c.sym_first.get(sid)
        if cls is None:
            return st.shared_starts.get(sid)
        lists = [v for sym in cls if (v := st.symbol_starts.get(sym))]
        if len(lists) < 2:
            return lists[0] if lists else None
        return sorted(x for v in lists for x in v)

    def _last_occ(self, st: DeviceState, sid: int, b: int) -> list[Entry] | None:
        """The latest noted occurrence of first segment ``sid`` ending before ``b`` (as the one
        entry a trigger without ``within`` needs), a dead entry if none, None if none noted."""
        c = self.c
        length = c.segments[sid].length
        last_start = b - length  # an occurrence starting at x ends at x + length - 1 < b
        cls = c.sym_first.get(sid)
        lists = (
            (st.shared_starts.get(sid),)
            if cls is None
            else [st.symbol_starts.get(sym) for sym in cls]
        )
        best = -2
        for starts in lists:
            if starts:
                best = max(best, -1)
                for x in reversed(starts):
                    if x <= last_start:
                        best = max(best, x)
                        break
        if best == -2:
            return None
        if best < 0:
            return [(-1, 0, -1, 0)]  # a dead entry: keeps the caller waiting, matches nothing
        i = best - st.base
        return [(best, st.events[i].ts, best + length - 1, st.clocks[i])]

    def _occ_entries(self, st: DeviceState, sid: int, b: int) -> list[Entry] | None:
        """The shared occurrences of first segment ``sid`` that end before ``b``, as entries."""
        starts = self._first_starts(st, sid)
        if not starts:
            return None
        length = self.c.segments[sid].length
        events, clk, base = st.events, st.clocks, st.base
        out = []
        for x in starts:
            end = x + length - 1
            if end < b:
                out.append((x, events[x - base].ts, end, clk[x - base]))
        return out or [(-1, 0, -1, 0)]  # a dead entry: keeps the caller waiting, matches nothing

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

    def _fire(self, st: DeviceState, tid: int, e: int, ts_e: int) -> Firing | None:
        plan = self.c.plans.get(tid)
        tr = st.partials.get(tid)
        if plan is None or tr is None:
            st.watch.discard(tid)
            return None
        lo = tr.last_fired
        if plan.without:
            lo = max(lo, self._floor(st, plan))
        best = -1
        keep: list[Entry] = []
        for x in tr.frontiers[-1]:
            s, ts, end, clock = x
            if end > e:
                keep.append(x)
                continue
            if s <= lo or (end < e and not plan.trail):
                continue
            if self._cut(st, s, clock, e):
                self.stats["cuts"] += 1
                continue
            if plan.trail:
                keep.append(x)
            if (plan.within is None or ts_e - ts <= plan.within) and s > best:
                best = s
        if best < 0:
            tr.frontiers[-1] = keep
            if not keep:
                st.watch.discard(tid)
            return None
        tr.last_fired = e
        for f in tr.frontiers:
            f.clear()
        st.watch.discard(tid)
        if plan.chain:
            st.chain_starts.pop(tid, None)
        self.stats["firings"] += 1
        base = st.base
        evs = tuple(st.events[best - base : e - base + 1])
        return Firing(plan.name, best, e, evs[0].ts, ts_e, evs)

    # -- housekeeping ---------------------------------------------------------------------

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
        c = self.c
        low = e + 1
        for sid in list(st.shared_starts):
            users = c.after_first[sid]
            lo = min(self._lo(st, tid) for tid, _ in users)
            length = c.segments[sid].length
            starts = st.shared_starts[sid] = self._occ_front(
                st, length, st.shared_starts[sid], lo, e
            )
            if starts:
                low = min(low, starts[0])
            else:
                del st.shared_starts[sid]
        for sym in list(st.symbol_starts):
            lo = min(self._lo(st, tid) for tid, _ in c.sym_users[sym])
            starts = st.symbol_starts[sym] = self._occ_front(st, 1, st.symbol_starts[sym], lo, e)
            if starts:
                low = min(low, starts[0])
            else:
                del st.symbol_starts[sym]
        for tid in list(st.partials):
            tr = st.partials[tid]
            plan = c.plans[tid]
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
                occ = self._first_starts(st, plan.segments[0]) if not plan.lead else None
                if not occ or occ[0] > tr.last_fired:  # L still guards a shared occurrence
                    del st.partials[tid]
        for tid, starts in list(st.chain_starts.items()):
            lo = self._lo(st, tid)
            clk, base = st.clocks, st.base
            starts[:] = [x for x in starts if x > lo and not self._cut(st, x, clk[x - base], e)]
            if starts:
                low = min(low, starts[0])
            else:
                del st.chain_starts[tid]
        for tid, entries in list(st.lead_frontier.items()):
            entries[:] = self._live(st, entries, self._lo(st, tid), e)
            if entries:
                low = min(low, entries[0][0])
            else:
                del st.lead_frontier[tid]
        for sid in list(st.waiting):
            if not st.waiting[sid]:
                del st.waiting[sid]
        keep_from = min(low, e - c.max_segment + 1)
        cut = keep_from - st.base
        if cut > 0:
            del st.events[:cut]
            del st.clocks[:cut]
            st.base += cut
        st.trim_at = max(TRIM, 2 * len(st.events))

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

    def dump(self, st: DeviceState) -> dict[str, Any]:
        """Return a msgpack-able form of ``st`` (trigger names and segment tokens, not ids)."""
        return dump_state(self.c, st)

    def load(self, data: dict[str, Any]) -> DeviceState:
        """Rebuild a state from :meth:`dump` (triggers no longer registered are dropped)."""
        return load_state(self.c, data)
