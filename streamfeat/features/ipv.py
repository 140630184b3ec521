"""The ``ipv`` feature: one record per visit to an item's detail page (SPEC section 4).

Theory of operation
-------------------
Open visits form a stack (a detail page opened from a detail page nests). Each event of the
device is *counted for* at most one visit:

* ``page_enter`` on the detail page with an ``item`` opens a visit and counts for it;
* ``page_exit`` on the detail page with an ``item`` counts for the innermost open visit of that
  item and closes it, after closing the visits opened inside it as truncated (innermost first,
  same ts); with no open visit of that item it counts for nothing and is tallied in
  ``ignored_exits``;
* ``app_background`` counts for the innermost open visit, then closes every open visit as
  truncated (innermost first);
* any other event counts for the innermost open visit, if there is one.

A counted event adds one to every action it is: its ``type`` is the action, or it is a
``click`` whose ``args.control`` is the action, or it is ``page_enter`` on page ``shop`` and the
action is ``shop`` (each action at most once per event).

A visit open longer than the engine's ``partial_limit`` (an event, or the agent's clock,
later than ``oldest enter_ts + partial_limit``) closes, with every other open visit, as
truncated at ``oldest enter_ts + partial_limit``. A visit open over more than
``partial_limit_events`` events of the device (the event numbered ``opened + limit`` arrives)
closes likewise, with every other open visit, as truncated at that event's ts, before that event
is handled. So the stack never holds more than ``partial_limit_events`` visits. The end of a
replay closes every open visit as truncated at the ts of the device's last event (in arrival
order).

Cost: every event is O(1) in the number of open visits (amortised). Each visit carries the
minimum ``enter_ts`` of itself and the visits below it (the limit check reads the top one), and
the state maps each item to the stack positions of its open visits (a ``page_exit`` finds the
innermost visit of its item without a scan). Converted logs with page entries and no exits
(Taobao's) used to cost a scan of every open visit per event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from streamfeat._event import Event

if TYPE_CHECKING:
    from streamfeat.features._config import FeatureConfig

__all__ = ["IpvFeature", "IpvState"]

_ITEM: Final = 0
_ENTER: Final = 1
_COUNTS: Final = 2
_RAW: Final = 3
_MIN_ENTER: Final = 4
_UNKNOWN: Final = -1  # the opening seq of a stack restored from a snapshot that did not record it


class IpvState:
    """One device's open visits, outermost first, and the number of ignored ``page_exit``
    events.

    A visit is ``[item, enter_ts, [count per action], raw bytes, min enter_ts of it and the
    visits below it]``; ``where`` maps an item to the stack positions of its open visits
    (ascending); ``opened`` is the seq of the event that opened the outermost open visit.
    """

    __slots__ = ("ignored_exits", "opened", "stack", "where")

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []
        self.ignored_exits = 0
        self.where: dict[str, list[int]] = {}
        self.opened = _UNKNOWN

    def push(self, visit: list[Any], seq: int) -> None:
        stack = self.stack
        below = stack[-1][_MIN_ENTER] if stack else visit[_ENTER]
        visit.append(min(below, visit[_ENTER]))
        if not stack:
            self.opened = seq
        self.where.setdefault(visit[_ITEM], []).append(len(stack))
        stack.append(visit)

    def pop(self) -> list[Any]:
        visit = self.stack.pop()
        positions = self.where[visit[_ITEM]]
        positions.pop()
        if not positions:
            del self.where[visit[_ITEM]]
        return visit


class IpvFeature:
    """The logic of one ``kind = "ipv"`` feature table (stateless; state is :class:`IpvState`).

    Args:
        cfg: the feature's table (``actions``, ``page``).
        partial_limit: the engine's partial-match time limit, in ms.
        sizes: attach ``_raw_bytes`` to records.
        partial_limit_events: the engine's partial-match limit in events.
    """

    def __init__(
        self,
        cfg: FeatureConfig,
        partial_limit: int,
        *,
        sizes: bool = False,
        partial_limit_events: int = 10_000,
    ) -> None:
        self.name = cfg.name
        self.sizes = sizes
        self.page = cfg.page
        self.actions = cfg.actions
        self.partial_limit = partial_limit
        self.partial_limit_events = partial_limit_events
        by_type: dict[str, list[int]] = {}
        for i, a in enumerate(cfg.actions):
            by_type.setdefault(a, []).append(i)
        self._by_type = by_type  # also the click controls: same names
        self._shop = tuple(i for i, a in enumerate(cfg.actions) if a == "shop")
        # a record's values start as a copy of this (its keys in order, the table sized once)
        self._values: dict[str, Any] = dict.fromkeys(
            ("item", "enter_ts", "dwell_ms", "truncated", *cfg.actions)
        )

    def new_state(self) -> IpvState:
        return IpvState()

    def actions_of(self, event: Event) -> set[int]:
        """Return the indexes of the actions ``event`` is."""
        hits = set(self._by_type.get(event.type, ()))
        if event.type == "click":
            control = event.args.get("control")
            if type(control) is str:
                hits.update(self._by_type.get(control, ()))
        elif event.type == "page_enter" and event.page == "shop":
            hits.update(self._shop)
        return hits

    def _count(self, visit: list[Any], event: Event, raw: int) -> None:
        counts = visit[_COUNTS]
        for i in self.actions_of(event):
            counts[i] += 1
        visit[_RAW] += raw

    def process(
        self, st: IpvState, seq: int, event: Event, raw: int, device: str, out: list[dict[str, Any]]
    ) -> None:
        """Handle one event (``seq``: its arrival index; ``raw``: its size, 0 unless sizes)."""
        stack = st.stack
        if stack:
            if st.opened == _UNKNOWN:
                st.opened = seq
            elif seq - st.opened >= self.partial_limit_events:
                self._close_all(st, event.ts, device, out)
            else:
                self.expire(st, event.ts, device, out)
        etype = event.type
        if etype == "page_enter" and event.page == self.page and event.item is not None:
            visit = [event.item, event.ts, [0] * len(self.actions), 0]
            st.push(visit, seq)
            self._count(visit, event, raw)
        elif etype == "page_exit" and event.page == self.page and event.item is not None:
            positions = st.where.get(event.item)
            if positions:
                i = positions[-1]  # the innermost open visit of the item
                self._count(stack[i], event, raw)
                while len(stack) > i + 1:
                    out.append(self._record(st.pop(), event.ts, True, device))
                out.append(self._record(st.pop(), event.ts, False, device))
            else:
                st.ignored_exits += 1
        elif stack:
            self._count(stack[-1], event, raw)
            if etype == "app_background":
                self._close_all(st, event.ts, device, out)

    def expire(self, st: IpvState, now_ms: int, device: str, out: list[dict[str, Any]]) -> None:
        """Close every open visit as truncated if the oldest is past the partial limit."""
        if not st.stack:
            return
        oldest = st.stack[-1][_MIN_ENTER]
        if now_ms - oldest > self.partial_limit:
            self._close_all(st, oldest + self.partial_limit, device, out)

    def close(self, st: IpvState, last_ts: int, device: str, out: list[dict[str, Any]]) -> None:
        """End of input: close every open visit as truncated at ``last_ts``."""
        self._close_all(st, last_ts, device, out)

    def _close_all(self, st: IpvState, ts: int, device: str, out: list[dict[str, Any]]) -> None:
        while st.stack:
            out.append(self._record(st.stack.pop(), ts, True, device))
        st.where.clear()
        st.opened = _UNKNOWN

    def _record(self, visit: list[Any], ts: int, truncated: bool, device: str) -> dict[str, Any]:
        values = self._values.copy()
        values["item"] = visit[_ITEM]
        values["enter_ts"] = visit[_ENTER]
        values["dwell_ms"] = ts - visit[_ENTER]
        values["truncated"] = truncated
        counts = visit[_COUNTS]
        for i, action in enumerate(self.actions):  # by index: no zip call (see FeatureStage)
            values[action] = counts[i]
        rec = {
            "kind": "feature",
            "feature": self.name,
            "device": device,
            "ts": ts,
            "values": values,
        }
        if self.sizes:
            rec["_raw_bytes"] = visit[_RAW]
        return rec

    def deadline(self, st: IpvState) -> int | None:
        """Return the smallest ``now_ms`` at which :meth:`expire` closes the visits (None: none)."""
        return st.stack[-1][_MIN_ENTER] + self.partial_limit + 1 if st.stack else None

    def is_open(self, st: IpvState) -> bool:
        return bool(st.stack)

    def dump(self, st: IpvState) -> Any:
        return [[[v[0], v[1], list(v[2]), v[3]] for v in st.stack], st.ignored_exits, st.opened]

    def load(self, data: Any) -> IpvState:
        st = IpvState()
        stack, st.ignored_exits = data[0], data[1]
        for v in stack:
            st.push([v[0], v[1], list(v[2]), v[3]], _UNKNOWN)
        # a snapshot from before the events limit: the limit counts from the next event
        st.opened = data[2] if len(data) > 2 else _UNKNOWN
        return st

    def open_view(self, st: IpvState, now_ms: int) -> dict[str, Any]:
        """Return the open visits (innermost last) with the time since they opened."""
        visits = [
            {"item": v[0], "enter_ts": v[1], "since_enter_ms": now_ms - v[1],
             **dict(zip(self.actions, v[2], strict=True))}
            for v in st.stack
        ]  # fmt: skip
        return {"open_visits": visits, "ignored_exits": st.ignored_exits}
