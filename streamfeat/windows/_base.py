"""What every window assigner shares: admission (filter, key), records, time-bucketed state.

An *assigner logic* is built once per ``[windows.NAME]`` table and is stateless; the per-device
state of that window is a separate object it creates (``new_state``) and is handed back on every
call, so a device's state can be dumped, freed and rebuilt without touching the logic. Every
logic has the same methods:

* ``process(st, seq, event, maxts, device, out)``: one valid event of the device (``maxts`` is
  the device's max ts, this event included);
* ``advance(st, maxts, device, out)``: the watermark moved without an event (agent clock);
* ``close(st, device, out)``: end of input: emit everything open with ``forced: true``;
* ``empty(st)``, ``dump(st)``, ``load(data)``, ``open_windows(st)``.

Within one call, closed windows are emitted by ``(end, start, key)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from streamfeat._event import Event, event_to_obj
from streamfeat.windows._aggregates import AggregateSet, field_getter

if TYPE_CHECKING:
    from streamfeat.windows._config import WindowConfig

__all__ = [
    "KeyFunction",
    "ProcessFn",
    "TimedState",
    "WindowLogic",
    "format_key_part",
    "key_function",
]

KeyFunction = Callable[[Event], "str | None"]
# process(state, seq, event, maxts, device, out): one logic's per-event step
ProcessFn = Callable[[Any, int, Event, int, str, list[dict[str, Any]]], None]
NO_TS: Final = -1  # max ts of a device with no event yet (valid ts are >= 0)
NO_DEADLINE: Final = 1 << 62  # the deadline of a window with nothing that time can close


def format_key_part(value: Any) -> str:
    """Return the text of one key part: strings as they are, JSON spelling for the rest."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t is bool:
        return "true" if value else "false"
    if t is float:
        return repr(value)
    return str(value)


def key_function(fields: tuple[str, ...]) -> KeyFunction:
    """Return ``event -> key text`` for a key of ``fields`` (``None`` when a part is missing).

    A comma key joins its parts with ``|`` (SPEC section 6).
    """
    if fields == ("device",):
        return _device_key
    getters = tuple(field_getter(f) for f in fields)
    if len(getters) == 1:
        get = getters[0]

        def single(event: Event) -> str | None:
            v = get(event)
            return None if v is None else v if type(v) is str else format_key_part(v)

        return single

    def joined(event: Event) -> str | None:
        parts = []
        for get in getters:
            v = get(event)
            if v is None:
                return None
            parts.append(format_key_part(v))
        return "|".join(parts)

    return joined


def _device_key(event: Event) -> str:
    return event.device


class WindowLogic:
    """The parts of a window that do not depend on its assigner.

    Args:
        cfg: the window's table.
        lateness: the engine's lateness (ms), used unless the window sets its own.
        sizes: attach ``_raw_bytes`` to records.
    """

    kind = ""

    def __init__(self, cfg: WindowConfig, lateness: int, *, sizes: bool = False) -> None:
        self.name = cfg.name
        self.size = cfg.assign.size
        self.aggs = AggregateSet(cfg.aggregates, sizes=sizes)
        self.steps = self.aggs.steps
        self.lateness = lateness if cfg.lateness is None else cfg.lateness
        self.filter = cfg.filter
        # the filter as two set lookups: bare types, and (type, page) pairs
        self.filter_types = frozenset(t.type for t in cfg.filter or () if t.page is None)
        self.filter_pairs = frozenset(
            (t.type, t.page) for t in cfg.filter or () if t.page is not None
        )
        self.key_fields = cfg.key
        self.key_of = key_function(cfg.key)
        self.sizes = sizes

    def step_function(self) -> ProcessFn:
        """Return the per-event step ``process(st, seq, event, maxts, device, out)``.

        The bound ``process`` method here; an assigner that builds a specialised function
        for its config returns that instead (the stage looks it up once).
        """
        return self.process  # type: ignore[attr-defined,no-any-return]

    def admit(self, event: Event) -> str | None:
        """Return the window key of ``event``, or ``None`` when it does not enter this window."""
        if self.filter is not None and not (
            event.type in self.filter_types or (event.type, event.page) in self.filter_pairs
        ):
            return None
        return self.key_of(event)

    def record(
        self, device: str, key: str, start: int, end: int, acc: list[Any], forced: bool
    ) -> dict[str, Any]:
        """Return the ``window`` record of one closed window.

        ``forced`` is False for a window closed by the watermark (it is complete: no event
        that is not late can still enter it) and True for one shut before that (end of a
        replay, a window removed by a config switch). ``final`` repeats ``forced`` under its
        old name for one release (deprecated: it read as "complete" to Flink and Bytewax
        users, and meant the opposite).
        """
        rec = {
            "kind": "window", "window": self.name, "device": device, "key": key,
            "start": start, "end": end, "values": self.aggs.values(acc), "forced": forced,
            "final": forced,
        }  # fmt: skip
        if self.sizes:
            rec["_raw_bytes"] = acc[0]
        return rec

    def late(self, device: str, event: Event) -> dict[str, Any]:
        """Return the ``late`` record of an event whose windows have all closed.

        The record carries the event itself (as in the input format), so it can be
        reprocessed, like Flink's late side output or Bytewax's late stream.
        """
        return {
            "kind": "late", "window": self.name, "device": device, "ts": event.ts,
            "event": event_to_obj(event),
        }  # fmt: skip


class TimedState:
    """Open windows of a time-aligned assigner (tumbling, sliding) for one device.

    ``ends`` maps a window's end to ``{key: accumulator}``; the start is ``end - size``.
    ``next_end`` is the smallest open end (or None), so the watermark check is one compare.
    """

    __slots__ = ("closed", "ends", "next_end")

    def __init__(self) -> None:
        self.ends: dict[int, dict[str, list[Any]]] = {}
        self.next_end: int | None = None
        self.closed: int | None = None  # sliding: watermark up to which windows were emitted


class TimedLogic(WindowLogic):
    """Closing, dumping and viewing for assigners whose windows are ``[end - size, end)``."""

    def new_state(self) -> TimedState:
        return TimedState()

    def deadline(self, st: TimedState) -> int:
        """Return the smallest max ts at which a window of ``st`` closes (see WindowStage)."""
        nxt = st.next_end
        return NO_DEADLINE if nxt is None else nxt + self.lateness

    def advance(self, st: TimedState, maxts: int, device: str, out: list[dict[str, Any]]) -> None:
        """Close (``forced: false``) every window with ``end <= maxts - lateness``."""
        wm = maxts - self.lateness
        if st.next_end is not None and st.next_end <= wm:
            self._close_ends([e for e in st.ends if e <= wm], st, device, out, forced=False)

    def close(self, st: TimedState, device: str, out: list[dict[str, Any]]) -> None:
        """Close every open window with ``forced: true``."""
        self._close_ends(list(st.ends), st, device, out, forced=True)

    def _close_ends(
        self,
        ends: list[int],
        st: TimedState,
        device: str,
        out: list[dict[str, Any]],
        *,
        forced: bool,
    ) -> None:
        size = self.size
        for end in sorted(ends):
            bucket = st.ends.pop(end)
            for key in sorted(bucket):
                out.append(self.record(device, key, end - size, end, bucket[key], forced))
        st.next_end = min(st.ends) if st.ends else None

    def empty(self, st: TimedState) -> bool:
        return not st.ends

    def dump(self, st: TimedState) -> Any:
        dump = self.aggs.dump
        return [
            [end, [[k, dump(acc)] for k, acc in bucket.items()]] for end, bucket in st.ends.items()
        ]

    def load(self, data: Any) -> TimedState:
        st = TimedState()
        load = self.aggs.load
        st.ends = {end: {k: load(acc) for k, acc in keys} for end, keys in data}
        st.next_end = min(st.ends) if st.ends else None
        return st

    def open_windows(self, st: TimedState) -> list[dict[str, Any]]:
        size = self.size
        return [
            {"key": k, "start": end - size, "end": end, "values": self.aggs.values(acc)}
            for end in sorted(st.ends)
            for k, acc in sorted(st.ends[end].items())
        ]
