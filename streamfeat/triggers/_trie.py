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

**Keywords.** Each segment is found by Aho-Corasick keywords (its *anchor*): the longest run
of positions of its *core* (the segment without its trailing ``?`` s, the *tail*) that at most
``KEYWORD_WORDS`` (64) keywords spell, one per choice of a symbol at each position (a plain
``TYPE`` with three pages named elsewhere is a class of four symbols; ``exposure{3}`` is then
64 words and needs no check). The run starts no later than the core's longest run of
single-symbol positions (or, without one, its smallest class), so that an anchor never reaches
further back than that one would (see ``lookback``); when every class up to there is larger,
the anchor is the smallest class, one keyword per symbol. All keywords go into one
``pyahocorasick`` automaton. When a keyword ends at index ``a``, the segment's core would end
``delay`` events later; there its other positions are checked against the device's buffered
symbols, and the segment then ends ``tail`` events after that. A segment made only of ``?``
has no keyword and occurs at every event.

**Transition table.** The per-event driver walks a table taken from the automaton
(``Automaton.dump()``: nodes, edges, failure links), renumbered breadth first so that a
device's whole automaton state is one small integer. ``dump()`` gives edge labels as the low
byte of the symbol only; children are listed in insertion order, so the labels are recovered
by replaying the keywords' insertion order (and checked against the low bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import blake2b
from itertools import product
from typing import Any

import ahocorasick

from streamfeat._event import Event
from streamfeat._tokens import Token
from streamfeat.triggers._nfa import NfaPlan, build_nfa
from streamfeat.triggers._pattern import CondToken, Pattern, PatternToken

__all__ = [
    "Compiled",
    "Segment",
    "TriggerPlan",
    "canonical_key",
    "compile_patterns",
    "fingerprint",
]

Position = frozenset[int] | None  # None: `?`
KEYWORD_WORDS = 64  # the most keywords one segment's anchor may take (see `_segment`)
SegKey = tuple[
    tuple[PatternToken, ...] | None, ...
]  # a segment by its tokens (stable across rebuilds)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of positions between ``*`` s, stored once for every trigger that has it."""

    positions: tuple[Position, ...]
    core: int  # positions before the trailing `?` s
    tail: int  # trailing `?` s
    kw_start: int  # the keyword covers positions kw_start..kw_end of the core
    kw_end: int
    verify: tuple[tuple[int, frozenset[int]], ...]  # (offset, class) checked at the core's end
    #: (offset, tokens) of the positions with a condition, checked at the core's end too
    conds: tuple[tuple[int, tuple[PatternToken, ...]], ...] = ()

    @property
    def delay(self) -> int:
        """Events from the keyword's end to the core's end."""
        return self.core - 1 - self.kw_end

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
    chain: int = 0  # k when the pattern is `A * A * ... * A` (k one-event segments, no within)


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
                 added: dict[int, int], nfas: dict[int, NfaPlan] | None = None) -> None:  # fmt: skip
        self.plans = plans
        #: triggers with `+` or optional steps: stepped by their own small NFA (:mod:`._nfa`)
        self.nfas = nfas or {}
        self.by_name = {p.name: p.tid for p in plans.values()}
        self.by_name.update((p.name, p.tid) for p in self.nfas.values())
        #: symbol -> NFA triggers a match may start with (an event of it starts a run)
        nfa_start: dict[int, list[int]] = {}
        for tid, nfa in sorted(self.nfas.items()):
            for sym in nfa.first:
                nfa_start.setdefault(sym, []).append(tid)
        self.nfa_start = {sym: tuple(v) for sym, v in nfa_start.items()}
        #: NFA triggers whose match may start with any event
        self.nfa_any_start = tuple(t for t, n in sorted(self.nfas.items()) if n.first_any)
        #: every symbol some NFA trigger names (its other events only move `*` and `?`)
        self.nfa_syms = frozenset(s for n in self.nfas.values() for s in n.alphabet)
        self.segments = segments
        self.types = types
        self.generation = generation
        self.added = added  # tid -> generation it was added in
        self.seg_keys: list[SegKey] = []
        self.sid_of_key: dict[SegKey, int] = {}
        #: what the triggers and their ids are (see :func:`fingerprint`): a snapshot taken under
        #: an equal fingerprint may use ids (segments, symbols, automaton nodes) directly
        self.fingerprint = b""
        #: segment id -> its key in msgpack-able form, filled as snapshots need them
        self.key_dumps: dict[int, Any] = {}
        self.out_live: list[tuple[int, ...]] = []
        self.out_wait: list[tuple[int, ...]] = []
        used: set[int] = set()
        direct: dict[int, list[tuple[int, int]]] = {}
        after: dict[int, list[tuple[int, int]]] = {}
        chains: dict[int, list[int]] = {}
        for plan in plans.values():
            used.update(plan.segments)
            s0 = plan.segments[0]
            if plan.chain:
                chains.setdefault(s0, []).append(plan.tid)
            elif len(plan.segments) == 1 or plan.lead:
                direct.setdefault(s0, []).append((plan.tid, 0))
            else:
                after.setdefault(s0, []).append((plan.tid, 1))
        #: segment -> the (trigger, 0) it completes or extends directly: single-segment triggers
        #: and triggers with a leading `*` (their start staircase is their own)
        self.direct = {sid: tuple(sorted(v)) for sid, v in direct.items()}
        #: first segments shared by triggers: their occurrences are kept once per device, and
        #: (trigger, 1) starts waiting for its second segment when the first has occurred
        self.after_first = {sid: tuple(sorted(v)) for sid, v in after.items()}
        #: one-event segment -> triggers `A * A * ... * A` on it: they keep their last k starts
        self.chains = {sid: tuple(sorted(v)) for sid, v in chains.items()}
        # a first segment of one event (a token or an alternative) is noted per *symbol*: an
        # event notes its symbol once, however many such segments it belongs to
        self.sym_first: dict[int, frozenset[int]] = {}  # segment -> its symbols
        sym_users: dict[int, set[tuple[int, int]]] = {}
        for sid, users in self.after_first.items():
            cls = segments[sid].positions[0]
            if segments[sid].length == 1 and cls is not None and not segments[sid].conds:
                self.sym_first[sid] = cls
                for sym in cls:
                    sym_users.setdefault(sym, set()).update(users)
        #: symbol -> (trigger, 1) of every trigger whose one-event first segment holds it
        self.sym_users = {sym: tuple(sorted(v)) for sym, v in sym_users.items()}
        later = {sid for p in plans.values() for sid in p.segments[1:]}
        #: segment -> (direct, chains, after_first) in one lookup, for the hot path
        self.roles = {
            sid: (
                self.direct.get(sid, ()),
                self.chains.get(sid, ()),
                () if sid in self.sym_first else self.after_first.get(sid, ()),
            )
            for sid in range(len(segments))
        }
        self.used = frozenset(used)
        #: segments whose every occurrence matters (the others only while a trigger waits on them)
        self.live = frozenset(sid for sid, r in self.roles.items() if any(r))
        #: segments the automaton must report (the rest are noted per symbol)
        self.reported = frozenset(sid for sid in used if any(self.roles[sid]) or sid in later)
        self.every = tuple(sorted(sid for sid in used if segments[sid].core == 0))
        self.lead = tuple(sorted(p.tid for p in plans.values() if p.lead))
        #: the layer runs at every event (segments of only `?`, leading `*` with `within`)
        self.always = bool(self.every or self.lead)
        self.max_segment = max((s.length for s in segments), default=1)
        self.max_back = max((s.core or s.tail for s in segments), default=1)
        # how far back a segment check may reach before the event that starts it: a device may
        # only be freed when this is 0
        self.lookback = max((s.kw_start for s in segments), default=0)
        self.lookback = max([self.lookback] + [segments[sid].tail - 1 for sid in self.every])
        wo: dict[str, set[Token]] = {}
        withouts = [p.without for p in plans.values()] + [p.without for p in self.nfas.values()]
        for without in withouts:
            for tok in without:
                wo.setdefault(tok.type, set()).add(tok)
        #: event type -> (its plain `without` token or None, page -> its `without` token)
        self.without = {
            t: (
                Token(t) if Token(t) in toks else None,
                {k.page: k for k in toks if k.page is not None},
            )
            for t, toks in wo.items()
        }
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
            if seg.core == 0 or sid not in self.reported:
                continue
            run = [sorted(p or ()) for p in seg.positions[seg.kw_start : seg.kw_end + 1]]
            for syms in product(*run):  # one word per spelling of the run (KEYWORD_WORDS at most)
                keywords.setdefault("".join(_code(sym) for sym in syms), []).append(sid)
        self.keywords = {k: tuple(sorted(v)) for k, v in keywords.items()}
        self.automaton = ahocorasick.Automaton()
        for word, sids in self.keywords.items():
            self.automaton.add_word(word, sids)
        if self.keywords:
            self.automaton.make_automaton()
        self._table_from_dump()

    def _table_from_dump(self) -> None:
        """Renumber the automaton's nodes breadth first; fill goto, fail and outputs."""
        order: dict[str, dict[str, None]] = {}  # prefix -> its next symbols, in insertion order
        for word in self.keywords:  # dict order = insertion order
            for i, ch in enumerate(word):
                order.setdefault(word[:i], {})[ch] = None
        self.goto: list[dict[int, int]] = [{}]
        self.fail: list[int] = [0]
        self.out: list[tuple[int, ...]] = [()]
        if not self.keywords:
            self.delta: list[dict[int, int]] = [{}]
            self.fresh = [True]
            self._split_outputs()
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
            mine = list(order.get(path, ()))
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
        self._split_outputs()
        # a node is *fresh* when stepping on from it is stepping on from the root: no suffix of
        # its path can still grow into a keyword (so a device there may be freed)
        self.fresh = [True] * len(paths)
        for nid in range(1, len(paths)):  # breadth-first ids: the failure target comes first
            self.fresh[nid] = not self.goto[nid] and self.fresh[self.fail[nid]]

    def _split_outputs(self) -> None:
        """Split each node's outputs: the segments whose every occurrence matters, and the
        others (an occurrence of those matters only while a trigger waits on the segment)."""
        live = self.live
        self.out_live = [tuple(s for s in o if s in live) for o in self.out]
        self.out_wait = [tuple(s for s in o if s not in live) for o in self.out]

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


def _split(pattern: Pattern) -> tuple[list[list[tuple[PatternToken, ...] | None]], bool, bool]:
    """Return the segments (positions as token tuples / None) and the leading/trailing ``*``."""
    segs: list[list[tuple[PatternToken, ...] | None]] = [[]]
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
    split = {tid: _split(p) for tid, (_, p) in patterns.items() if not p.variable}
    variable = {tid: p for tid, (_, p) in patterns.items() if p.variable}
    types: dict[str, tuple[int, dict[str, int]]] = {}
    counter = [0]

    def intern_type(t: str) -> tuple[int, dict[str, int]]:
        if t not in types:
            counter[0] += 1
            types[t] = (counter[0], {})
        return types[t]

    for tid in sorted(patterns):
        for step in patterns[tid][1].steps:
            for tok in step.tokens:
                entry = intern_type(tok.type)
                if tok.page is not None and tok.page not in entry[1]:
                    counter[0] += 1
                    entry[1][tok.page] = counter[0]

    def cls(pos: tuple[PatternToken, ...] | None) -> Position:
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

    seg_ids: dict[SegKey, int] = {}
    segments: list[Segment] = []
    keys: list[SegKey] = []
    key_ids: dict[SegKey, int] = {}
    plans: dict[int, TriggerPlan] = {}
    for tid in sorted(split):
        segs, lead, trail = split[tid]
        name, pattern = patterns[tid]
        ids = []
        for seg in segs:
            key = _key(seg)  # one key per segment: equal keys have equal classes and conditions
            if key not in seg_ids:
                seg_ids[key] = len(segments)
                conds = tuple(
                    (i, p) for i, p in enumerate(seg)
                    if p is not None and any(type(t) is CondToken for t in p)
                )  # fmt: skip
                segments.append(_segment(tuple(cls(p) for p in seg), conds))
                keys.append(key)
            sid = seg_ids[key]
            key_ids[key] = sid
            ids.append(sid)
        backs = tuple(segments[i].core or segments[i].tail for i in ids)
        chain = (
            len(ids) if len(ids) > 1 and len(set(ids)) == 1 and segments[ids[0]].length == 1 else 0
        )
        if pattern.within is not None or lead or trail:
            chain = 0
        plans[tid] = TriggerPlan(
            tid, name, tuple(ids), backs, lead, trail, pattern.within, pattern.without, chain
        )
    nfas = {
        tid: build_nfa(tid, patterns[tid][0], p, lambda toks: cls(toks) or frozenset())
        for tid, p in sorted(variable.items())
    }
    added_map = dict(added) if added is not None else dict.fromkeys([*plans, *nfas], generation)
    c = Compiled(plans, segments, types, generation, added_map, nfas)
    c.seg_keys = keys
    c.sid_of_key = key_ids
    c.fingerprint = fingerprint(patterns)
    return c


#: bump when compiling assigns ids differently (segments, symbols, automaton nodes)
_ID_RULES = "streamfeat-triggers-ids-2"


def fingerprint(patterns: Mapping[int, tuple[str, Pattern]]) -> bytes:
    """Return 8 bytes that identify a trigger set with its ids (and the rules giving ids).

    Compiling is deterministic: two sets with one fingerprint number their segments, symbols
    and automaton nodes alike, so a device's state can move between them by ids.
    """
    h = blake2b(_ID_RULES.encode(), digest_size=8)
    for tid in sorted(patterns):
        name, pattern = patterns[tid]
        h.update(f"\n{tid}\t{name}\t{pattern!r}".encode())
    return h.digest()


def _key(seg: list[tuple[PatternToken, ...] | None]) -> SegKey:
    return canonical_key(tuple(None if p is None else tuple(p) for p in seg))


def canonical_key(key: SegKey) -> SegKey:
    """Return the one key of a segment however its tokens are spelled.

    A token of type ``T`` (``T@P``, or with a condition) is left out of a position that also has
    plain ``T`` without a condition (it adds nothing to the position) and the tokens are sorted, so every spelling of one segment has one key, whichever trigger
    spelled it first, and the key survives that trigger's removal. Snapshots written before
    this rule hold keys as spelled; loading canonicalises them.

    >>> canonical_key(((Token("a"), Token("a", "y")), None))
    ((Token(type='a', page=None),), None)
    """
    out: list[tuple[PatternToken, ...] | None] = []
    for p in key:
        if p is None:
            out.append(None)
            continue
        plain = {t for t in p if type(t) is Token and t.page is None}
        kept = {t for t in p if t in plain or Token(t.type) not in plain}
        out.append(tuple(sorted(kept, key=str)))
    return tuple(out)


def _segment(
    positions: tuple[Position, ...], conds: tuple[tuple[int, tuple[PatternToken, ...]], ...] = ()
) -> Segment:
    core = len(positions)
    while core and positions[core - 1] is None:
        core -= 1
    tail = len(positions) - core
    if core == 0:
        return Segment(positions, 0, tail, 0, -1, ())
    # first the longest single-symbol run, the first on ties (else the smallest class): its
    # other positions are then checked later (when the core ends) rather than back before the
    # keyword, which keeps a device's state free of look-back (see `lookback`); and a pattern's
    # first step is, more often than its later ones, the specific event of a scenario
    first = None
    single = (0, 0)  # (length, start)
    for i in range(core + 1):
        one = i < core and positions[i] is not None and len(positions[i]) == 1  # type: ignore[arg-type]
        if one and first is None:
            first = i
        elif not one and first is not None:
            single = max(single, (i - first, -first))
            first = None
    if single[0]:
        latest = -single[1]
    else:
        latest = -min((len(p), -i) for i, p in enumerate(positions[:core]) if p is not None)[1]
    # then the longest run starting no later than that one that at most KEYWORD_WORDS keywords
    # spell (the product of its classes' sizes), the fewest keywords then the first on ties: a
    # plain TYPE is a class (its pages named elsewhere are symbols of their own), so a run over
    # classes is a few words rather than a short anchor whose every occurrence must be checked
    best = (0, 0, 0)  # (length, -words, -start)
    for i in range(latest + 1):
        words = 1
        for j in range(i, core):
            p = positions[j]
            if p is None:
                break
            words *= len(p)
            if words > KEYWORD_WORDS:
                break
            best = max(best, (j - i + 1, -words, -i))
    if best[0]:
        kw_start = -best[2]
        kw_end = kw_start + best[0] - 1
    else:  # every class up to there is larger: the smallest one, one keyword per symbol
        kw_start = kw_end = latest
    verify = tuple(
        (i, p) for i, p in enumerate(positions[:core])
        if p is not None and not kw_start <= i <= kw_end
    )  # fmt: skip
    return Segment(positions, core, tail, kw_start, kw_end, verify, conds)
