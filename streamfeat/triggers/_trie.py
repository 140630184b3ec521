"""Compile all trigger patterns of an engine into one shared automaton.

Theory of operation
-------------------
**Alphabet.** Every event becomes one *symbol*: the interned ``TYPE@PAGE`` when some pattern
names that pair, else the interned ``TYPE`` when some pattern names the type, else 0 (an event
no pattern can match by name). A token ``TYPE@PAGE`` is then exactly one symbol, and a plain
``TYPE`` is the small class ``{TYPE} + {TYPE@P for every P a pattern names}``: its size grows
with the pages named for that type, never with the number of patterns.

**Segments.** A pattern, ``{N}`` expanded, is a list of positions (a class of symbols, or
``?``) cut by ``*`` into *segments*: runs of positions of fixed length. Equal segments of
different triggers are stored once. A leading or trailing ``*`` can only change a firing
through ``within`` (``s`` as large as possible otherwise makes it match nothing), so without
``within`` it is dropped.

**Keywords.** Each segment is found by an Aho-Corasick keyword: its trailing ``?`` s cut off
(the *tail*), the keyword is the run of single-symbol positions that ends at the last remaining
position, one keyword per symbol of that last position's class. All keywords go into one
``pyahocorasick`` automaton. When a keyword ends at index ``a``, the segment is checked against
the device's recent events for its positions before the keyword (the *lookback*), and it then
ends at ``a + tail``. A segment made only of ``?`` has no keyword and occurs at every event.

**Transition table.** The per-event driver walks a table taken from the automaton
(``Automaton.dump()``: nodes, edges, failure links), renumbered breadth first so that a
device's whole automaton state is one small integer. ``dump()`` gives edge labels as the low
byte of the symbol only; children are listed in insertion order, so the labels are recovered
by replaying the keywords' insertion order (and checked against the low bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ahocorasick

from streamfeat._event import Event
from streamfeat._tokens import Token
from streamfeat.triggers._pattern import Pattern

__all__ = ["Compiled", "Segment", "TriggerPlan", "compile_patterns"]

Position = frozenset[int] | None  # None: `?`


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of positions between ``*`` s, stored once for every trigger that has it."""

    positions: tuple[Position, ...]
    core: int  # positions before the trailing `?` s
    tail: int  # trailing `?` s
    lookback: int  # core positions before the keyword, checked against buffered symbols

    @property
    def length(self) -> int:
        return self.core + self.tail


@dataclass(frozen=True, slots=True)
class TriggerPlan:
    """One trigger, compiled: its segments (ids), clauses and the ``*`` s that matter."""

    tid: int
    name: str
    segments: tuple[int, ...]
    backs: tuple[int, ...]  # how far before its end event a segment may start (lookup horizon)
    lead: bool  # a leading `*` that matters (only with `within`)
    trail: bool  # a trailing `*` that matters (only with `within`)
    within: int | None
    without: tuple[Token, ...]


def _code(sym: int) -> str:
    # one character per symbol; skip the surrogate block, which str cannot hold alone
    return chr(sym if sym < 0xD800 else sym + 0x800)


class Compiled:
    """The shared automaton of a set of triggers plus everything the matcher reads per event.

    Built by :func:`compile_patterns`; immutable afterwards except for the memo of the
    transition function (filled as devices walk it, bounded by nodes x symbols).
    """

    def __init__(self, plans: dict[int, TriggerPlan], segments: list[Segment],
                 types: dict[str, tuple[int, dict[str, int]]], generation: int,
                 added: dict[int, int]) -> None:  # fmt: skip
        self.plans = plans
        self.by_name = {p.name: p.tid for p in plans.values()}
        self.segments = segments
        self.types = types
        self.generation = generation
        self.added = added  # tid -> generation it was added in
        fan: dict[int, list[tuple[int, int]]] = {}
        for plan in plans.values():
            for j, sid in enumerate(plan.segments):
                fan.setdefault(sid, []).append((plan.tid, j))
        self.fan = {sid: tuple(sorted(v)) for sid, v in fan.items()}
        self.every = tuple(
            sorted(sid for sid, s in enumerate(segments) if s.core == 0 and sid in self.fan)
        )
        self.lead = tuple(sorted(p.tid for p in plans.values() if p.lead))
        self.max_segment = max((s.length for s in segments), default=1)
        self.lookback = max((s.lookback for s in segments), default=0)
        self.lookback = max([self.lookback] + [segments[sid].tail - 1 for sid in self.every])
        wo: dict[str, set[Token]] = {}
        for plan in plans.values():
            for tok in plan.without:
                wo.setdefault(tok.type, set()).add(tok)
        self.without = {t: (Token(t) in toks, frozenset(toks)) for t, toks in wo.items()}
        self._build_automaton()

    # -- symbols ----------------------------------------------------------------------

    def symbol(self, event: Event) -> int:
        """Return the symbol of ``event`` (0 when no pattern names its type)."""
        entry = self.types.get(event.type)
        if entry is None:
            return 0
        page = event.page
        return entry[1].get(page, entry[0]) if page is not None else entry[0]

    def text(self, events: list[Event]) -> str:
        """Return the symbol string of ``events`` (one character per event), for the batch driver."""
        return "".join([_code(self.symbol(e)) for e in events])

    # -- automaton --------------------------------------------------------------------

    def _build_automaton(self) -> None:
        keywords: dict[str, list[int]] = {}
        for sid, seg in enumerate(self.segments):
            if seg.core == 0 or sid not in self.fan:
                continue
            run = seg.positions[seg.lookback : seg.core - 1]
            prefix = "".join(_code(next(iter(p))) for p in run)  # type: ignore[arg-type]
            last = seg.positions[seg.core - 1]
            assert last is not None
            for sym in sorted(last):
                keywords.setdefault(prefix + _code(sym), []).append(sid)
        self.keywords = {k: tuple(sorted(v)) for k, v in keywords.items()}
        self.automaton = ahocorasick.Automaton()
        for word, sids in self.keywords.items():
            self.automaton.add_word(word, sids)
        if self.keywords:
            self.automaton.make_automaton()
        self._table_from_dump()

    def _table_from_dump(self) -> None:
        """Renumber the automaton's nodes breadth first; fill goto, fail and outputs."""
        order: dict[str, list[str]] = {}
        for word in self.keywords:  # dict order = insertion order
            for i, ch in enumerate(word):
                seen = order.setdefault(word[:i], [])
                if ch not in seen:
                    seen.append(ch)
        self.goto: list[dict[int, int]] = [{}]
        self.fail: list[int] = [0]
        self.out: list[tuple[int, ...]] = [()]
        if not self.keywords:
            self.delta: list[dict[int, int]] = [{}]
            return
        nodes, edges, fails = self.automaton.dump()
        children: dict[int, list[tuple[bytes, int]]] = {}
        for parent, label, child in edges:
            children.setdefault(parent, []).append((label, child))
        child_ids = {c for _, _, c in edges}
        root = next(n for n, _ in nodes if n not in child_ids)
        ids = {root: 0}
        paths = [""]
        queue = [root]
        for raw in queue:
            path = paths[ids[raw]]
            labelled = children.get(raw, [])
            mine = order.get(path, [])
            if len(labelled) != len(mine):  # pragma: no cover - a pyahocorasick we do not know
                msg = "pyahocorasick's dump does not list the trie's children in insertion order"
                raise RuntimeError(msg)
            for (label, child), ch in zip(labelled, mine, strict=True):
                if label[0] != ord(ch) & 0xFF:
                    msg = "pyahocorasick's dump labels do not match the keywords' symbols"
                    raise RuntimeError(msg)
                ids[child] = len(paths)
                paths.append(path + ch)
                self.goto[ids[raw]][_sym(ch)] = ids[child]
                self.goto.append({})
                queue.append(child)
        fail_of = dict(fails)
        self.fail = [0] * len(paths)
        self.out = [()] * len(paths)
        for raw, nid in ids.items():  # breadth-first: a failure target is always shallower
            if nid == 0:
                continue
            f = ids.get(fail_of.get(raw, root), 0)
            self.fail[nid] = f
            own = self.keywords.get(paths[nid], ())
            self.out[nid] = tuple(sorted(set(own) | set(self.out[f]))) if own else self.out[f]
        self.delta = [dict(g) for g in self.goto]

    def step(self, node: int, sym: int) -> int:
        """Return the automaton state after ``sym`` from state ``node`` (memoised)."""
        d = self.delta[node]
        nxt = d.get(sym)
        if nxt is None:
            cur = node
            while True:
                nxt = self.goto[cur].get(sym)
                if nxt is not None or cur == 0:
                    break
                cur = self.fail[cur]
            nxt = nxt or 0
            d[sym] = nxt
        return nxt

    def hits_batch(self, text: str) -> dict[int, list[int]]:
        """Run pyahocorasick over a whole symbol string: keyword end index -> segment ids."""
        hits: dict[int, list[int]] = {}
        if not self.keywords:
            return hits
        for end, sids in self.automaton.iter(text):
            hits.setdefault(end, []).extend(sids)
        return {e: sorted(set(v)) for e, v in hits.items()}


def _sym(ch: str) -> int:
    c = ord(ch)
    return c if c < 0xD800 else c - 0x800


# -- compiling ----------------------------------------------------------------------------


def _split(pattern: Pattern) -> tuple[list[list[tuple[Token, ...] | None]], bool, bool]:
    """Return the segments (positions as token tuples / None) and the leading/trailing ``*``."""
    segs: list[list[tuple[Token, ...] | None]] = [[]]
    for step in pattern.steps:
        if step.kind == "star":
            segs.append([])
        elif step.kind == "any":
            segs[-1].append(None)
        else:
            segs[-1].extend([step.tokens] * step.count)
    lead = not segs[0]
    trail = not segs[-1]
    segs = [s for s in segs if s]
    if not segs:  # the pattern `*`: it matches exactly what `?` matches
        return [[None]], False, False
    keep = pattern.within is not None
    return segs, lead and keep, trail and keep


def compile_patterns(patterns: Mapping[int, tuple[str, Pattern]], *, generation: int = 0,
                     added: Mapping[int, int] | None = None) -> Compiled:  # fmt: skip
    """Compile triggers ``{tid: (name, pattern)}`` into one :class:`Compiled`.

    Args:
        patterns: the triggers, by a stable integer id.
        generation: a number that changes whenever the set changes (devices resync on it).
        added: the generation each trigger was added in (default: all in ``generation``).
    """
    split = {tid: _split(p) for tid, (_, p) in patterns.items()}
    types: dict[str, tuple[int, dict[str, int]]] = {}
    counter = [0]

    def intern_type(t: str) -> tuple[int, dict[str, int]]:
        if t not in types:
            counter[0] += 1
            types[t] = (counter[0], {})
        return types[t]

    for tid in sorted(split):
        for seg in split[tid][0]:
            for pos in seg:
                for tok in pos or ():
                    entry = intern_type(tok.type)
                    if tok.page is not None and tok.page not in entry[1]:
                        counter[0] += 1
                        entry[1][tok.page] = counter[0]

    def cls(pos: tuple[Token, ...] | None) -> Position:
        if pos is None:
            return None
        syms: set[int] = set()
        for tok in pos:
            tsym, pages = types[tok.type]
            if tok.page is None:
                syms.add(tsym)
                syms.update(pages.values())
            else:
                syms.add(pages[tok.page])
        return frozenset(syms)

    seg_ids: dict[tuple[Position, ...], int] = {}
    segments: list[Segment] = []
    plans: dict[int, TriggerPlan] = {}
    for tid in sorted(split):
        segs, lead, trail = split[tid]
        name, pattern = patterns[tid]
        ids = []
        for seg in segs:
            positions = tuple(cls(p) for p in seg)
            if positions not in seg_ids:
                seg_ids[positions] = len(segments)
                segments.append(_segment(positions))
            ids.append(seg_ids[positions])
        backs = tuple(segments[i].core or segments[i].tail for i in ids)
        plans[tid] = TriggerPlan(
            tid, name, tuple(ids), backs, lead, trail, pattern.within, pattern.without
        )
    added_map = dict(added) if added is not None else dict.fromkeys(plans, generation)
    return Compiled(plans, segments, types, generation, added_map)


def _segment(positions: tuple[Position, ...]) -> Segment:
    core = len(positions)
    while core and positions[core - 1] is None:
        core -= 1
    tail = len(positions) - core
    if core == 0:
        return Segment(positions, 0, tail, 0)
    start = core - 1  # the keyword: the single-symbol run ending just before the last position
    while start > 0 and positions[start - 1] is not None and len(positions[start - 1]) == 1:  # type: ignore[arg-type]
        start -= 1
    return Segment(positions, core, tail, start)
