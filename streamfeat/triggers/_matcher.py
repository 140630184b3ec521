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

from typing import Any, NamedTuple

from streamfeat._event import Event, event_from_obj, event_to_obj
from streamfeat._tokens import Token
from streamfeat.triggers._pattern import Pattern
from streamfeat.triggers._trie import Compiled, TriggerPlan, compile_patterns

__all__ = ["DeviceState", "Firing", "Matcher"]

Entry = tuple[int, int, int, int]  # (s, ts_s, end, device clock at s)


class Firing(NamedTuple):
    """One firing: the trigger, the slice's first/last index and ts, and its events."""

    trigger: str
    first: int
    last: int
    first_ts: int
    last_ts: int
    events: tuple[Event, ...]


class _Trig:
    __slots__ = ("F", "L")

    def __init__(self, k: int, last: int = -1) -> None:
        self.L = last
        self.F: list[list[Entry]] = [[] for _ in range(k)]


class DeviceState:
    """Per-device matcher state: automaton node, recent events, frontiers (see module doc)."""

    __slots__ = ("base", "clk", "due", "events", "gen", "last", "lead", "maxts", "node", "seen",
                 "syms", "trig", "trim_at", "watch")  # fmt: skip

    def __init__(self, gen: int) -> None:
        self.node = 0
        self.gen = gen
        self.base = -1  # index of events[0]; -1 until the first event
        self.last = -1  # index of the last event
        self.events: list[Event] = []
        self.syms: list[int] = []
        self.clk: list[int] = []  # the device's clock at each buffered event
        self.maxts = -1
        self.seen: dict[Token, int] = {}
        self.trig: dict[int, _Trig] = {}
        self.due: dict[int, set[int]] = {}
        self.watch: set[int] = set()
        self.lead: dict[int, list[Entry]] = {}
        self.trim_at = 64


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
        """Register a trigger; it sees only events after the device's next resync.

        Raises:
            ValueError: if a trigger of that name exists; nothing changes.
        """
        if name in self.c.by_name:
            msg = f"trigger {name!r} already exists"
            raise ValueError(msg)
        self._gen += 1
        self._patterns[self._next_tid] = (name, pattern)
        self._added[self._next_tid] = self._gen
        self._next_tid += 1
        self._recompile()

    def remove(self, name: str) -> None:
        """Unregister a trigger; its partial matches are dropped at each device's next event.

        Raises:
            KeyError: if there is no such trigger; nothing changes.
        """
        tid = self.c.by_name[name]
        self._gen += 1
        del self._patterns[tid]
        del self._added[tid]
        self._recompile()

    def _recompile(self) -> None:
        self.c = compile_patterns(self._patterns, generation=self._gen, added=self._added)
        self.stats["recompiles"] += 1

    def _resync(self, st: DeviceState) -> None:
        """Bring a device compiled for an older generation onto the current automaton."""
        c = self.c
        st.syms = [c.symbol(e) for e in st.events]
        st.node = 0
        for sym in st.syms[-c.max_segment :] if st.syms else ():
            st.node = c.step(st.node, sym)
        for tid in [t for t in st.trig if t not in c.plans]:
            del st.trig[tid]
        for tid in [t for t in st.lead if t not in c.plans]:
            del st.lead[tid]
        st.watch &= c.plans.keys()
        for tid, plan in c.plans.items():
            if c.added[tid] > st.gen:  # new since: no match may start before now
                st.trig[tid] = _Trig(len(plan.segments), st.last)
        st.gen = c.generation

    # -- state ----------------------------------------------------------------------------

    def new_state(self) -> DeviceState:
        """Return the state of a device with no events yet."""
        return DeviceState(self.c.generation)

    def idle(self, st: DeviceState) -> bool:
        """Return True when no partial match is alive and nothing is pending."""
        if st.node != 0 or st.due or st.watch or st.lead or self.c.lookback:
            return False
        return not any(any(tr.F) for tr in st.trig.values())

    # -- drivers --------------------------------------------------------------------------

    def step(self, st: DeviceState, index: int, event: Event) -> list[Firing]:
        """Handle event number ``index`` of a device (per-event driver)."""
        c = self.c
        if st.gen != c.generation:
            self._resync(st)
        sym = c.symbol(event)
        st.node = node = c.step(st.node, sym)
        return self._event(st, index, event, sym, c.out[node])

    def run_batch(self, events: list[Event]) -> list[Firing]:
        """Return the firings of a whole device's events, from index 0 (batch driver)."""
        c = self.c
        st = self.new_state()
        hits = c.hits_batch(c.text(events))
        out: list[Firing] = []
        symbol = c.symbol
        for index, event in enumerate(events):
            out.extend(self._event(st, index, event, symbol(event), hits.get(index, ())))
        return out

    def advance(self, st: DeviceState, now_ms: int) -> None:
        """Let wall time reach ``now_ms``: partial matches past the time limit are cut."""
        if now_ms > st.maxts:
            st.maxts = now_ms
            self.gc(st)

    # -- the layer ------------------------------------------------------------------------

    def _event(self, st: DeviceState, e: int, event: Event, sym: int,
               seg_hits: Any) -> list[Firing]:  # fmt: skip
        c = self.c
        if st.base < 0:
            st.base = e
        st.last = e
        st.events.append(event)
        st.syms.append(sym)
        if event.ts > st.maxts:
            st.maxts = event.ts
        st.clk.append(st.maxts)
        wo = c.without.get(event.type)
        if wo is not None:
            if wo[0]:
                st.seen[Token(event.type)] = e
            if event.page is not None and Token(event.type, event.page) in wo[1]:
                st.seen[Token(event.type, event.page)] = e
        for tid in c.lead:
            self._lead(st, tid, e, event.ts, st.maxts)
        for sid in seg_hits:
            seg = c.segments[sid]
            b = e - seg.core + 1
            if b < st.base or not self._check(st, seg.positions, b, seg.lookback):
                continue
            for tid, j in c.fan[sid]:
                self._extend(st, tid, j, b, e + seg.tail, e)
        for sid in c.every:
            seg = c.segments[sid]
            b = e - seg.tail + 1
            if b >= st.base:
                for tid, j in c.fan[sid]:
                    self._extend(st, tid, j, b, e, e)
        fired: list[Firing] = []
        check = st.due.pop(e, None)
        if st.watch:
            check = (check or set()) | st.watch
        if check:
            for tid in sorted(check):
                f = self._fire(st, tid, e, event.ts)
                if f is not None:
                    fired.append(f)
        if len(st.events) >= st.trim_at:
            self.gc(st)
        return fired

    def _check(self, st: DeviceState, positions: Any, b: int, upto: int) -> bool:
        syms = st.syms
        off = b - st.base
        for i in range(upto):
            cls = positions[i]
            if cls is not None and syms[off + i] not in cls:
                return False
        return True

    def _floor(self, st: DeviceState, plan: TriggerPlan) -> int:
        lo = -1
        seen = st.seen
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
        entries = st.lead.setdefault(tid, [])
        _insert(entries, (e, ts, e, clock), e - plan.backs[0] + 1, True)

    def _extend(self, st: DeviceState, tid: int, j: int, b: int, end: int, now: int) -> None:
        c = self.c
        plan = c.plans[tid]
        tr = st.trig.get(tid)
        if tr is None:
            tr = st.trig[tid] = _Trig(len(plan.segments))
        lo = tr.L
        if plan.without:
            lo = max(lo, self._floor(st, plan))
        if j == 0:
            i = b - st.base
            cands = [(b, st.events[i].ts, b, st.clk[i])] if b > lo else []
            if plan.lead:
                cands += [x for x in st.lead.get(tid, ()) if x[2] < b and x[0] > lo]
        else:
            cands = [x for x in tr.F[j - 1] if x[2] < b and x[0] > lo]
        cands = [x for x in cands if not self._cut(st, x[0], x[3], now)]
        if not cands:
            return
        k = len(plan.segments)
        # the next lookups: segment j + 1 starting no earlier than now - back + 1; or the firing
        # checks: at `end` exactly, or (trailing `*`) at every event from `end` on
        horizon = now - plan.backs[j + 1] + 1 if j + 1 < k else now + 1
        within = plan.within is not None
        if not within:
            cands = [max(cands)]
        frontier = tr.F[j]
        for s, ts, _, clock in cands:
            _insert(
                frontier, (s, ts, end, clock), horizon, within, exact=j + 1 == k and not plan.trail
            )
        if j == k - 1:
            if plan.trail:
                st.watch.add(tid)
            else:
                st.due.setdefault(end, set()).add(tid)

    def _fire(self, st: DeviceState, tid: int, e: int, ts_e: int) -> Firing | None:
        plan = self.c.plans.get(tid)
        tr = st.trig.get(tid)
        if plan is None or tr is None:
            st.watch.discard(tid)
            return None
        last = tr.F[-1]
        lo = tr.L
        if plan.without:
            lo = max(lo, self._floor(st, plan))
        best = -1
        keep: list[Entry] = []
        for x in last:
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
            tr.F[-1] = keep
            if not keep:
                st.watch.discard(tid)
            return None
        tr.L = e
        for f in tr.F:
            f.clear()
        st.watch.discard(tid)
        self.stats["firings"] += 1
        base = st.base
        evs = tuple(st.events[best - base : e - base + 1])
        return Firing(plan.name, best, e, evs[0].ts, ts_e, evs)

    # -- housekeeping ---------------------------------------------------------------------

    def gc(self, st: DeviceState) -> None:
        """Drop dead and cut partial matches, and events no live match or check needs."""
        e = st.last
        if e < 0:
            return
        c = self.c
        low = e + 1
        for tid in list(st.trig):
            tr = st.trig[tid]
            plan = c.plans.get(tid)
            if plan is None:
                del st.trig[tid]
                continue
            lo = tr.L
            if plan.without:
                lo = max(lo, self._floor(st, plan))
            for f in tr.F:
                f[:] = self._live(st, f, lo, e)
                for x in f:
                    low = min(low, x[0])
            if not any(tr.F) and e - tr.L > c.max_segment and tid not in st.lead:
                del st.trig[tid]
            if not tr.F[-1]:
                st.watch.discard(tid)
        for tid, entries in list(st.lead.items()):
            plan = c.plans.get(tid)
            owner = st.trig.get(tid)
            lo = max(owner.L if owner else -1, self._floor(st, plan) if plan else e)
            entries[:] = self._live(st, entries, lo, e)
            if entries:
                low = min(low, entries[0][0])
            else:
                del st.lead[tid]
        keep_from = min(low, e - c.max_segment + 1)
        cut = keep_from - st.base
        if cut > 0:
            del st.events[:cut]
            del st.syms[:cut]
            del st.clk[:cut]
            st.base += cut
        st.trim_at = max(64, 2 * len(st.events))

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
        """Return a msgpack-able form of ``st`` (trigger names, not internal ids)."""
        plans = self.c.plans
        if st.gen != self.c.generation:
            self._resync(st)
        return {
            "base": st.base,
            "last": st.last,
            "maxts": st.maxts,
            "events": [event_to_obj(ev) for ev in st.events],
            "clk": st.clk,
            "seen": [[t.type, t.page, i] for t, i in st.seen.items()],
            "trig": {
                plans[t].name: [tr.L, [[list(x) for x in f] for f in tr.F]]
                for t, tr in st.trig.items()
            },
            "due": [[i, sorted(plans[t].name for t in ts)] for i, ts in st.due.items()],
            "watch": sorted(plans[t].name for t in st.watch),
            "lead": {plans[t].name: [list(x) for x in v] for t, v in st.lead.items()},
        }

    def load(self, data: dict[str, Any]) -> DeviceState:
        """Rebuild a state from :meth:`dump` (triggers no longer registered are dropped)."""
        c = self.c
        st = DeviceState(c.generation)
        st.base, st.last, st.maxts = data["base"], data["last"], data["maxts"]
        st.events = [event_from_obj(o) for o in data["events"]]
        st.clk = list(data["clk"])
        st.seen = {Token(t, p): i for t, p, i in data["seen"]}
        by_name = c.by_name
        for name, (last, frontiers) in data["trig"].items():
            tid = by_name.get(name)
            if tid is not None and len(frontiers) == len(c.plans[tid].segments):
                tr = st.trig[tid] = _Trig(0, last)
                tr.F = [[_entry(x) for x in f] for f in frontiers]
        for i, names in data["due"]:
            tids = {by_name[n] for n in names if n in by_name}
            if tids:
                st.due[i] = tids
        st.watch = {by_name[n] for n in data["watch"] if n in by_name}
        st.lead = {
            by_name[n]: [_entry(x) for x in v] for n, v in data["lead"].items() if n in by_name
        }
        st.syms = [c.symbol(ev) for ev in st.events]
        for sym in st.syms[-c.max_segment :]:
            st.node = c.step(st.node, sym)
        st.trim_at = max(64, 2 * len(st.events))
        return st


def _entry(x: list[int]) -> Entry:
    return (x[0], x[1], x[2], x[3])


def _insert(
    entries: list[Entry], new: Entry, horizon: int, use_ts: bool, *, exact: bool = False
) -> None:
    """Add ``new`` to a frontier, keeping only entries no other entry beats for every future use.

    An entry P beats A when ``P.s >= A.s``, ``P.ts >= A.ts`` (when ``within`` matters) and P can
    serve every use A can: P ends no later than A, or P ends before ``horizon`` (every future
    lookup starts after it). With ``exact`` (the last segment, checked at its end only), only
    entries with the same end compare.
    """
    s, ts, end, _ = new

    def serves(p_end: int, a_end: int) -> bool:
        if exact:
            return p_end == a_end
        return p_end <= a_end or p_end < horizon

    for p in entries:
        if p[0] >= s and (not use_ts or p[1] >= ts) and serves(p[2], end):
            return
    entries[:] = [
        a for a in entries
        if not (s >= a[0] and (not use_ts or ts >= a[1]) and serves(end, a[2]))
    ]  # fmt: skip
    entries.append(new)
