"""Snapshots of a device's matcher state: msgpack-able data naming triggers and segments by
their text (not by internal ids), so that a snapshot survives a restart with the same tasks file
and a trigger that no longer exists is simply dropped on load."""

from __future__ import annotations

from typing import Any

from streamfeat._event import event_from_obj, event_to_obj
from streamfeat._tokens import Token
from streamfeat.triggers._frontier import Partial, entry
from streamfeat.triggers._nfa import NfaRun
from streamfeat.triggers._state import TRIM, DeviceState, dump_key, load_key
from streamfeat.triggers._sync import by_symbol, repend, resync, rewait
from streamfeat.triggers._trie import Compiled, canonical_key

__all__ = ["dump_state", "load_state"]


def dump_state(c: Compiled, st: DeviceState) -> dict[str, Any]:
    """Return a msgpack-able form of ``st`` (trigger names and segment tokens, not ids).

    A state synced to an older compiled set is first brought onto ``c``.
    """
    if st.compiled is not c:
        resync(c, st)
    plans = c.plans
    keys = c.seg_keys
    return {
        "base": st.base,
        "last": st.last,
        "maxts": st.maxts,
        "events": [event_to_obj(ev) for ev in st.events],
        "clk": st.clocks,
        "seen": [[t.type, t.page, i] for t, i in st.without_seen.items()],
        "occ": [[dump_key(keys[sid]), list(v)] for sid, v in st.shared_starts.items()],
        "symocc": sorted({x for v in st.symbol_starts.values() for x in v}),
        "trig": {
            plans[t].name: [tr.last_fired, [[list(x) for x in f] for f in tr.frontiers]]
            for t, tr in st.partials.items()
        },
        "due": [[i, sorted(plans[t].name for t in ts)] for i, ts in st.due.items()],
        "watch": sorted(plans[t].name for t in st.watch),
        "lead": {plans[t].name: [list(x) for x in v] for t, v in st.lead_frontier.items()},
        "chain": {plans[t].name: list(v) for t, v in st.chain_starts.items()},
        "pend": [[at, [[dump_key(keys[sid]), b] for sid, b in v]] for at, v in st.pending.items()],
        "nfa": {
            c.nfas[t].name: [
                c.nfas[t].text,
                run.at,
                [[q, [list(x) for x in v]] for q, v in run.states.items()],
            ]
            for t, run in st.nfa.items()
        },
    }


def load_state(c: Compiled, data: dict[str, Any]) -> DeviceState:
    """Rebuild a state synced to ``c`` from :func:`dump_state` (triggers ``c`` does not have
    are dropped)."""
    st = DeviceState(c)
    st.base, st.last, st.maxts = data["base"], data["last"], data["maxts"]
    st.events = [event_from_obj(o) for o in data["events"]]
    st.clocks = list(data["clk"])
    st.without_seen = {Token(t, p): i for t, p, i in data["seen"]}
    for key, entries in data["occ"]:
        sid = c.sid_of_key.get(canonical_key(load_key(key)))  # older snapshots: as spelled
        if sid is not None and sid in c.after_first:
            st.shared_starts[sid] = list(entries)
    by_name = {n: t for n, t in c.by_name.items() if t in c.plans}  # segment triggers
    for name, (last, frontiers) in data["trig"].items():
        tid = by_name.get(name)
        if tid is not None and len(frontiers) == len(c.plans[tid].segments):
            tr = st.partials[tid] = Partial(0, last)
            tr.frontiers = [[entry(x) for x in f] for f in frontiers]
    for i, names in data["due"]:
        tids = {by_name[n] for n in names if n in by_name}
        if tids:
            st.due[i] = tids
    st.watch = {by_name[n] for n in data["watch"] if n in by_name}
    st.lead_frontier = {
        by_name[n]: [entry(x) for x in v] for n, v in data["lead"].items() if n in by_name
    }
    st.chain_starts = {by_name[n]: list(v) for n, v in data["chain"].items() if n in by_name}
    st.symbol_starts = by_symbol(c, st, data["symocc"])
    for name, (text, at, states) in data.get("nfa", {}).items():
        tid = c.by_name.get(name)
        if tid is not None and tid in c.nfas and c.nfas[tid].text == text:
            run = st.nfa[tid] = NfaRun(at)
            run.states = {q: [(x[0], x[1], x[2]) for x in v] for q, v in states}
    # not data["pend"]: which checks are pending depends on how this compiled set anchors
    # each segment; they are recomputed from the buffered events
    repend(c, st)
    rewait(c, st)
    st.trim_at = max(TRIM, 2 * len(st.events))
    return st
