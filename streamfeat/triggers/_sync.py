"""Keeping a device's matcher state in step with the compiled trigger set.

A hot add or remove of a trigger rebuilds the automaton; each device moves onto the new one at
its next event (:func:`resync`). A snapshot is loaded the same way. Both recompute the automaton
state and the pending segment checks from the buffered events (:func:`repend`), and rebuild the
waiting index (:func:`rewait`) and the per-symbol start lists (:func:`by_symbol`).
"""

from __future__ import annotations

from collections.abc import Iterable

from streamfeat.triggers._frontier import Partial
from streamfeat.triggers._state import DeviceState
from streamfeat.triggers._trie import Compiled

__all__ = ["by_symbol", "repend", "resync", "rewait"]


def resync(c: Compiled, st: DeviceState) -> None:
    """Bring a device synced to an older compiled set onto the current one.

    Symbols, the automaton state and the pending segment checks are recomputed from the
    buffered events (:func:`repend`); shared first-segment occurrences are carried over by
    their tokens; the frontiers of the triggers that stay are kept as they are; removed
    triggers leave every index (partials, due, watch, lead, chains).
    """
    old = st.compiled
    repend(c, st)
    occ: dict[int, list[int]] = {}
    starts = {x for v in st.symbol_starts.values() for x in v}
    for sid, entries in st.shared_starts.items():
        new = c.sid_of_key.get(old.seg_keys[sid])
        if new is not None and new in c.sym_first:
            starts.update(entries)
        elif new is not None and new in c.after_first:
            occ[new] = entries
    st.shared_starts = occ
    st.symbol_starts = by_symbol(c, st, starts)
    for tid in [t for t in st.partials if t not in c.plans]:
        del st.partials[tid]
    for tid in [t for t in st.lead_frontier if t not in c.plans]:
        del st.lead_frontier[tid]
    for tid in [t for t in st.chain_starts if t not in c.plans]:
        del st.chain_starts[tid]
    st.watch &= c.plans.keys()
    for tid in [t for t in st.nfa if t not in c.nfas]:
        del st.nfa[tid]
    due = {at: tids & c.plans.keys() for at, tids in st.due.items()}
    st.due = {at: tids for at, tids in due.items() if tids}
    for tid, plan in c.plans.items():
        if c.added[tid] > old.generation:  # new since: no match may start before now
            st.partials[tid] = Partial(len(plan.segments), st.last)
    st.compiled = c
    rewait(c, st)


def rewait(c: Compiled, st: DeviceState) -> None:
    """Rebuild the waiting index from the occurrences and frontiers."""
    st.waiting = {}
    for sid in st.shared_starts:
        for tid, j in c.after_first[sid]:
            st.waiting.setdefault(c.plans[tid].segments[1], set()).add((tid, j))
    for sym in st.symbol_starts:
        for tid, j in c.sym_users[sym]:
            st.waiting.setdefault(c.plans[tid].segments[1], set()).add((tid, j))
    for tid, tr in st.partials.items():
        segs = c.plans[tid].segments
        for j in range(1, len(segs)):
            if tr.frontiers[j - 1]:
                st.waiting.setdefault(segs[j], set()).add((tid, j))


def by_symbol(c: Compiled, st: DeviceState, starts: Iterable[int]) -> dict[int, list[int]]:
    """Sort event indices into the per-symbol lists of the current compiled set."""
    out: dict[int, list[int]] = {}
    for x in sorted(starts):
        if x >= st.base:
            sym = c.symbol(st.events[x - st.base])
            if sym in c.sym_users:
                out.setdefault(sym, []).append(x)
    return out


def repend(c: Compiled, st: DeviceState) -> None:
    """Recompute the automaton state and the pending segment checks from the buffered events.

    Which checks are pending depends on where the compiled set anchors each segment (the
    keyword is the longest single-symbol run, or the smallest class, and class sizes depend on
    the pages every pattern names), so checks made under another set cannot be carried over by
    segment: re-walking the last ``max_segment`` events finds every keyword occurrence whose
    segment core ends after the last event. Its check is pending there; an occurrence whose
    keyword is still to come is found by the automaton as the device steps on.
    """
    st.node = 0
    st.pending = {}
    recent = st.events[-c.max_segment :]
    for i, ev in enumerate(recent, st.last - len(recent) + 1):
        st.node = c.step(st.node, c.symbol(ev))
        for sid in c.out[st.node]:
            seg = c.segments[sid]
            b = i - seg.kw_end
            due_at = b + seg.core - 1
            if due_at > st.last and b >= st.base:
                st.pending.setdefault(due_at, []).append((sid, b))
