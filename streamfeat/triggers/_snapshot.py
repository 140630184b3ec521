"""Snapshots of a device's matcher state.

Two formats, both msgpack-able:

* **Format 2** (written since issue 16): a flat list ``[2, fingerprint, device, base, last,
  maxts, node, events, clocks, rest]``. Events are ``[ts, type, page, item, args]`` (the device
  once for all); ``rest`` is None or a dict holding only the parts that are not empty. Triggers
  are named by their names and segments carry their tokens, as in format 1, so a snapshot loads
  under another tasks file; in addition it carries ids (automaton node, symbols, segment ids,
  pending checks) that are used as they are when the compiled set has the same *fingerprint*
  (:func:`streamfeat.triggers._trie.fingerprint`: same triggers, same ids), which is the case of
  a replay's idle devices and of an agent restarted with its tasks file. Loading then does no
  re-stepping, no re-validation of events and no symbol lookups.
* **Format 1** (earlier releases, still read): a dict naming triggers and segments by their
  text (:func:`dump_state_v1`); everything id-like is recomputed at load.

Anything else (a list with another format number, a malformed list) is refused with a
:class:`~streamfeat.errors.StorageError` naming what was found.
"""

from __future__ import annotations

from typing import Any

from streamfeat._event import Event, event_from_obj, event_to_obj
from streamfeat._tokens import Token
from streamfeat.errors import StorageError
from streamfeat.triggers._frontier import Partial, entry
from streamfeat.triggers._nfa import NfaRun
from streamfeat.triggers._state import TRIM, DeviceState, dump_key, load_key
from streamfeat.triggers._sync import by_symbol, repend, resync, rewait
from streamfeat.triggers._trie import Compiled, canonical_key

__all__ = ["FORMAT", "dump_state", "dump_state_v1", "load_any", "load_state"]

FORMAT = 2  # the format :func:`dump_state` writes; :func:`load_any` reads 1 and 2
_EMPTY_ARGS: dict[str, Any] = Event._field_defaults["args"]  # the one shared empty args
_new = tuple.__new__


def _seg_key(c: Compiled, sid: int) -> Any:
    key = c.key_dumps.get(sid)
    if key is None:
        key = c.key_dumps[sid] = dump_key(c.seg_keys[sid])
    return key


def dump_state(c: Compiled, st: DeviceState) -> list[Any]:
    """Return the format-2 snapshot of ``st`` (see the module doc).

    A state synced to an older compiled set is first brought onto ``c``.
    """
    if st.compiled is not c:
        resync(c, st)
    evs = st.events
    rest: dict[str, Any] = {}
    if st.without_seen:
        rest["seen"] = [[t.type, t.page, i] for t, i in st.without_seen.items()]
    if st.shared_starts:
        rest["occ"] = [[sid, _seg_key(c, sid), list(v)] for sid, v in st.shared_starts.items()]
    if st.symbol_starts:
        rest["sym"] = [[sym, list(v)] for sym, v in st.symbol_starts.items()]
    if st.partials:
        plans = c.plans
        rest["trig"] = [
            [plans[t].name, tr.last_fired, [list(f) for f in tr.frontiers]]
            for t, tr in st.partials.items()
        ]
    if st.due:
        rest["due"] = [[i, [c.plans[t].name for t in ts]] for i, ts in st.due.items()]
    if st.watch:
        rest["watch"] = [c.plans[t].name for t in st.watch]
    if st.lead_frontier:
        rest["lead"] = [[c.plans[t].name, list(v)] for t, v in st.lead_frontier.items()]
    if st.chain_starts:
        rest["chain"] = [[c.plans[t].name, list(v)] for t, v in st.chain_starts.items()]
    if st.pending:
        rest["pend"] = [[at, list(v)] for at, v in st.pending.items()]
    if st.nfa:
        rest["nfa"] = [
            [c.nfas[t].name, c.nfas[t].text, run.at, [[q, list(v)] for q, v in run.states.items()]]
            for t, run in st.nfa.items()
        ]
    return [
        FORMAT,
        c.fingerprint,
        evs[0].device if evs else None,
        st.base,
        st.last,
        st.maxts,
        st.node,
        [[e.ts, e.type, e.page, e.item, e.args or None] for e in evs],
        list(st.clocks),
        rest or None,
    ]


def load_any(c: Compiled, data: Any) -> DeviceState:
    """Rebuild a state synced to ``c`` from a snapshot of format 1 or 2.

    Raises:
        StorageError: the snapshot is of an unknown format or malformed; nothing is loaded.
    """
    if isinstance(data, dict):
        try:
            return load_state(c, data)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            msg = f"trigger state snapshot (format 1) is malformed: {exc!r}"
            raise StorageError(msg) from exc
    if not isinstance(data, list) or not data or type(data[0]) is not int:
        msg = f"trigger state snapshot is not a known format (a {type(data).__name__})"
        raise StorageError(msg)
    if data[0] != FORMAT:
        msg = (
            f"trigger state snapshot has format {data[0]}; this version of streamfeat reads "
            f"formats 1 and {FORMAT}"
        )
        raise StorageError(msg)
    try:
        if data[1] == c.fingerprint:
            return _load_same(c, data)
        return load_state(c, _as_v1(data))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        msg = f"trigger state snapshot (format {FORMAT}) is malformed: {exc!r}"
        raise StorageError(msg) from exc


def _events(device: str | None, rows: list[Any]) -> list[Event]:
    # written by dump_state from valid events: built as they are, not validated again
    return [
        _new(Event, (ts, typ, device, page, item, args or _EMPTY_ARGS))
        for ts, typ, page, item, args in rows
    ]


def _load_same(c: Compiled, data: list[Any]) -> DeviceState:
    """Format 2 under the compiled set it was taken with: ids are used as they are."""
    _, _, device, base, last, maxts, node, rows, clocks, rest = data
    st = DeviceState(c)
    st.base, st.last, st.maxts, st.node = base, last, maxts, node
    if rows and type(device) is not str:
        msg = f"device must be a string, got {device!r}"
        raise TypeError(msg)
    st.events = _events(device, rows)
    st.clocks = list(clocks)
    if len(st.clocks) != len(st.events) or not 0 <= node < len(c.out):
        msg = "clocks, events and automaton node disagree"
        raise ValueError(msg)
    if rest:
        _load_rest(c, st, rest)
    st.trim_at = max(TRIM, 2 * len(st.events))
    return st


def _load_rest(c: Compiled, st: DeviceState, rest: dict[str, Any]) -> None:
    """The parts of a format-2 snapshot that are not empty (ids used as they are)."""
    by_name = c.by_name
    for key, value in rest.items():
        if key == "sym":
            st.symbol_starts = {sym: list(v) for sym, v in value}
        elif key == "trig":
            for name, fired, frontiers in value:
                tr = st.partials[by_name[name]] = Partial(0, fired)
                tr.frontiers = [[entry(x) for x in f] for f in frontiers]
        elif key == "occ":
            st.shared_starts = {sid: list(v) for sid, _, v in value}
        elif key == "seen":
            st.without_seen = {Token(t, p): i for t, p, i in value}
        elif key == "due":
            st.due = {i: {by_name[n] for n in names} for i, names in value}
        elif key == "watch":
            st.watch = {by_name[n] for n in value}
        elif key == "lead":
            st.lead_frontier = {by_name[n]: [entry(x) for x in v] for n, v in value}
        elif key == "chain":
            st.chain_starts = {by_name[n]: list(v) for n, v in value}
        elif key == "pend":
            st.pending = {at: [(sid, b) for sid, b in v] for at, v in value}
        elif key == "nfa":
            for name, _text, at, states in value:
                run = st.nfa[by_name[name]] = NfaRun(at)
                run.states = {q: [(x[0], x[1], x[2]) for x in v] for q, v in states}
        else:
            msg = f"unknown part {key!r}"
            raise ValueError(msg)
    if st.shared_starts or st.symbol_starts or st.partials:
        rewait(c, st)


def _as_v1(data: list[Any]) -> dict[str, Any]:
    """Format 2 under another compiled set: translate to format 1, loaded by names."""
    _, _, device, base, last, maxts, _node, rows, clocks, rest = data
    rest = rest or {}
    events = [event_to_obj(ev) for ev in _events(device, rows)]
    return {
        "base": base,
        "last": last,
        "maxts": maxts,
        "events": events,
        "clk": clocks,
        "seen": rest.get("seen", []),
        "occ": [[key, v] for _, key, v in rest.get("occ", ())],
        "symocc": sorted({x for _, v in rest.get("sym", ()) for x in v}),
        "trig": {name: [fired, frontiers] for name, fired, frontiers in rest.get("trig", ())},
        "due": rest.get("due", []),
        "watch": rest.get("watch", []),
        "lead": dict(rest.get("lead", ())),
        "chain": dict(rest.get("chain", ())),
        "nfa": {name: [text, at, states] for name, text, at, states in rest.get("nfa", ())},
    }


def dump_state_v1(c: Compiled, st: DeviceState) -> dict[str, Any]:
    """Return the format-1 snapshot of ``st`` (the dict earlier releases wrote; kept so that
    their snapshots can be tested against, and read by :func:`load_state`)."""
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
    """Rebuild a state synced to ``c`` from a format-1 snapshot (triggers ``c`` does not have
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
