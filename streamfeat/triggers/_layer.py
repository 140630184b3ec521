"""What happens above the automaton at one event: segments occur, partial matches extend,
triggers fire (see :mod:`streamfeat.triggers._matcher` for the theory of operation).

Both drivers of the matcher (per event and batch) call :meth:`Layer._layer` at the events
where something may happen; everything here is per device and synchronous.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamfeat._event import Event
from streamfeat.triggers._frontier import Entry, Partial, insert
from streamfeat.triggers._housekeeping import Housekeeping
from streamfeat.triggers._nfa import NfaPlan, NfaRun
from streamfeat.triggers._state import OCC_PRUNE, DeviceState, Firing
from streamfeat.triggers._trie import TriggerPlan

__all__ = ["Layer"]


class Layer(Housekeeping):
    """The per-event layer over :class:`DeviceState` (a base of the matcher)."""

    def _layer(
        self, st: DeviceState, e: int, event: Event, seg_hits: Sequence[int]
    ) -> list[Firing]:
        """Everything above the automaton at event ``e`` (its bookkeeping already done)."""
        c = self.c
        ts = event.ts
        for tid in c.lead:
            self._lead(st, tid, e, ts, st.maxts)
        if seg_hits:
            self._segment_hits(st, e, seg_hits)
        if st.pending:
            pend = st.pending.pop(e, None)
            if pend is not None:
                for sid, b in pend:
                    seg = c.segments[sid]
                    if self._check(st, seg.verify, b) and (
                        not seg.conds or self._check_conds(st, seg.conds, b)
                    ):
                        self._occur(st, sid, b, e + seg.tail, e)
        for sid in c.every:
            b = e - c.segments[sid].tail + 1
            if b >= st.base:
                self._occur(st, sid, b, e, e)
        if not st.due and not st.watch:
            return []
        return self._fire_due(st, e, ts)

    def _segment_hits(self, st: DeviceState, e: int, seg_hits: Sequence[int]) -> None:
        """The automaton's keywords ending at ``e``: verify each segment, now or when due."""
        segments, live, wait = self.c.segments, self.c.live, st.waiting
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
            elif (not seg.verify or self._check(st, seg.verify, b)) and (
                not seg.conds or self._check_conds(st, seg.conds, b)
            ):
                self._occur(st, sid, b, e + seg.tail, e)

    def _fire_due(self, st: DeviceState, e: int, ts: int) -> list[Firing]:
        """Fire the triggers whose last segment completes at ``e`` (and the watched ones)."""
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
        self._schedule(st, now, tid)

    @staticmethod
    def _schedule(st: DeviceState, at: int, tid: int) -> None:
        """Check trigger ``tid`` for a firing at event ``at``."""
        due = st.due.get(at)
        if due is None:
            st.due[at] = {tid}
        else:
            due.add(tid)

    @staticmethod
    def _stop_waiting(st: DeviceState, plan: TriggerPlan, tid: int, j: int) -> None:
        """Trigger ``tid`` has nothing left to extend with segment ``j``: stop waiting on it."""
        waiting = st.waiting.get(plan.segments[j])
        if waiting is not None:
            waiting.discard((tid, j))

    def _check(self, st: DeviceState, verify: Any, b: int) -> bool:
        """Check a segment's positions outside its keyword against the buffered events."""
        types = self.c.types
        events = st.events
        off = b - st.base
        for i, cls in verify:
            ev = events[off + i]
            entry = types.get(ev.type)  # the event's symbol (Compiled.symbol, inline)
            if entry is None:  # symbol 0: in no class
                return False
            page = ev.page
            if (entry[0] if page is None else entry[1].get(page, entry[0])) not in cls:
                return False
        return True

    @staticmethod
    def _check_conds(st: DeviceState, conds: Any, b: int) -> bool:
        """Check a segment's positions that have conditions (only on candidate occurrences)."""
        events = st.events
        off = b - st.base
        for i, toks in conds:
            ev = events[off + i]
            if not any(t.matches(ev) for t in toks):
                return False
        return True

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
            lo = max(lo, self._floor(st, plan))
        if end == now and j and j == len(plan.segments) - 1 and not plan.trail and not plan.lead:
            self._complete(st, plan, tr, tid, j, b, lo, now)
            return
        src = self._sources(st, plan, tr, tid, j, b, lo)
        if src:
            cands = self._candidates(st, plan, src, b, lo, now)
            if cands:
                self._advance(st, plan, tr, tid, j, cands, end, now)

    def _complete(
        self,
        st: DeviceState,
        plan: TriggerPlan,
        tr: Partial | None,
        tid: int,
        j: int,
        b: int,
        lo: int,
        e: int,
    ) -> None:
        """The last segment ``j`` occurs over ``[b..e]``, ``e`` the current event: of the
        entries it would extend, add to the last frontier only the one the firing check at
        ``e`` will choose, and schedule the check. The same as extending them all and letting
        :meth:`_fire` choose: the limits are the same at ``e``, and only the largest valid
        start can fire. For ``j == 1`` the entries are the noted starts of the first segment,
        read newest first up to the first valid one (no entry is built for the others)."""
        limit_s = e - self.limit_events
        limit_clock = st.maxts - self.limit_ms
        events, clocks, base = st.events, st.clocks, st.base
        within = plan.within
        ts_e = events[e - base].ts
        noted = usable = False
        best: Entry | None = None
        if j == 1:
            sid = plan.segments[0]
            last_start = b - self.c.segments[sid].length  # the occurrence must end before b
            top = lo
            for starts in self._start_lists(st, sid):
                if not starts:
                    continue
                noted = True
                for x in reversed(starts):  # newest first: the first valid one is the largest
                    if x > last_start:
                        continue
                    if x <= top or x <= limit_s:
                        break
                    clock = clocks[x - base]
                    if clock < limit_clock:  # clocks never fall: the earlier starts are cut too
                        break
                    usable = True
                    ts = events[x - base].ts
                    if within is None or ts_e - ts <= within:
                        best = (x, ts, e, clock)
                        top = x
                        break
        elif tr is not None and tr.frontiers[j - 1]:
            noted = True
            cands = self._candidates(st, plan, tr.frontiers[j - 1], b, lo, e)
            usable = bool(cands)
            for y in cands:
                if (within is None or ts_e - y[1] <= within) and (best is None or y[0] > best[0]):
                    best = (y[0], y[1], e, y[3])
        if not noted:  # nothing to extend any more: stop waiting
            self._stop_waiting(st, plan, tid, j)
            return
        if not usable:
            return
        if tr is None:
            tr = st.partials[tid] = Partial(len(plan.segments))
        if best is None:
            return
        tr.frontiers[j].append(best)
        self._schedule(st, e, tid)

    def _sources(
        self,
        st: DeviceState,
        plan: TriggerPlan,
        tr: Partial | None,
        tid: int,
        j: int,
        b: int,
        lo: int,
    ) -> list[Entry] | None:
        """The entries an occurrence of segment ``j`` at ``b`` may extend (None: none left, and
        the trigger stops waiting on that segment)."""
        if j == 0:
            i = b - st.base
            # end -1: the start itself is always before the segment (only lead entries compare)
            src: list[Entry] = [(b, st.events[i].ts, -1, st.clocks[i])] if b > lo else []
            if plan.lead:
                src += st.lead_frontier.get(tid, ())
            return src
        if j == 1 and not plan.lead and plan.within is None:
            got = self._last_occ(st, plan.segments[0], b)
        elif j == 1 and not plan.lead:
            got = self._occ_entries(st, plan.segments[0], b)
        else:
            got = tr.frontiers[j - 1] if tr else None
        if not got:  # nothing to extend any more: stop waiting
            self._stop_waiting(st, plan, tid, j)
            return None
        return got

    def _candidates(
        self, st: DeviceState, plan: TriggerPlan, src: list[Entry], b: int, lo: int, now: int
    ) -> list[Entry]:
        """The entries of ``src`` that end before ``b``, start after ``lo`` and are not cut;
        without ``within`` only the latest counts (starts grow with ends)."""
        limit_s = now - self.limit_events
        limit_clock = st.maxts - self.limit_ms
        if plan.within is not None:
            return [
                x for x in src if x[2] < b and x[0] > lo and x[0] > limit_s and x[3] >= limit_clock
            ]
        for x in reversed(src):
            if x[2] < b:
                if x[0] <= lo or x[0] <= limit_s or x[3] < limit_clock:
                    return []
                return [x]
        return []

    def _advance(
        self,
        st: DeviceState,
        plan: TriggerPlan,
        tr: Partial | None,
        tid: int,
        j: int,
        cands: list[Entry],
        end: int,
        now: int,
    ) -> None:
        """Add the extended ``cands`` (now ending at ``end``) to frontier ``j``; then wait for
        segment ``j + 1``, or schedule the firing check."""
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
            self._schedule(st, end, tid)

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

    def _last_occ(self, st: DeviceState, sid: int, b: int) -> list[Entry] | None:
        """The latest noted occurrence of first segment ``sid`` ending before ``b`` (as the one
        entry a trigger without ``within`` needs), a dead entry if none, None if none noted."""
        length = self.c.segments[sid].length
        last_start = b - length  # an occurrence starting at x ends at x + length - 1 < b
        best = -2
        for starts in self._start_lists(st, sid):
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

    # -- triggers with `+` or optional steps (their own NFA, see ._nfa) -----------------------

    def _nfa_layer(self, st: DeviceState, e: int, event: Event, sym: int) -> list[Firing]:
        """Step the NFA triggers event ``e`` concerns; return their firings."""
        c = self.c
        todo = [
            tid for tid, run in st.nfa.items() if run.at < e and (
                c.nfas[tid].every or sym in c.nfas[tid].alphabet
            )
        ]  # fmt: skip
        for tid in (*c.nfa_start.get(sym, ()), *c.nfa_any_start):
            if tid not in st.nfa:
                st.nfa[tid] = NfaRun(e - 1)
                todo.append(tid)
        if not todo:
            return []
        fired: list[Firing] = []
        ts, clock = event.ts, st.maxts
        for tid in sorted(set(todo)):
            plan = c.nfas[tid]
            run = st.nfa[tid]
            lo = self._floor(st, plan) if plan.without else -1
            plan.step(run, event, e, ts, clock, lo)
            f = self._nfa_fire(st, plan, run, e, ts, lo)
            if f is not None:
                fired.append(f)
            if f is not None or not run.states:
                del st.nfa[tid]
        return fired

    def _nfa_fire(
        self, st: DeviceState, plan: NfaPlan, run: NfaRun, e: int, ts_e: int, lo: int
    ) -> Firing | None:
        """Fire ``plan`` at ``e`` with the largest valid start in its accepting state."""
        best = -1
        for s, ts, clock in run.states.get(plan.accept, ()):
            if s <= lo or s <= best:
                continue
            if self._cut(st, s, clock, e):
                continue
            if plan.within is None or ts_e - ts <= plan.within:
                best = s
        if best < 0:
            return None
        self.stats["firings"] += 1
        base = st.base
        evs = tuple(st.events[best - base : e - base + 1])
        return Firing(plan.name, best, e, evs[0].ts, ts_e, evs)
