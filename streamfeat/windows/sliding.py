"""Sliding windows: ``[j*slide, j*slide + size)`` for every ``j`` holding the event (SPEC 3).

Theory of operation
-------------------
An event belongs to ``size / slide`` overlapping windows. Rather than folding it into each of
them, the state keeps *panes*: the time axis cut at every multiple of ``g = gcd(size,
slide)``, so every window is a union of whole panes. An event updates the one accumulator of
its pane and key; a window's values are the merge of its panes' accumulators
(:meth:`~streamfeat.windows._aggregates.AggregateSet.merge`) when it closes.

This is exact: an event enters its pane only when one of its windows is still open
(``end > watermark``); every window that closes later was open when the event arrived, so
the event belongs to it. ``closed`` is the watermark up to which windows have been emitted;
windows ending at or before it are never emitted again, and it moves up to the watermark
whenever the state is empty, so an event arriving into an empty state cannot revive a window
that closed while nothing was open. A pane is dropped once the last window holding it
(``q - q % slide + size`` for a pane starting at ``q``) has closed.
"""

from __future__ import annotations

from math import gcd
from typing import TYPE_CHECKING, Any

from streamfeat._event import Event
from streamfeat.windows._base import ProcessFn, TimedLogic, TimedState

if TYPE_CHECKING:
    from streamfeat.windows._config import WindowConfig

__all__ = ["SlidingLogic"]


class SlidingLogic(TimedLogic):
    """One sliding window config. ``TimedState.ends`` maps a *pane* end to ``{key: acc}``;
    ``next_end`` is the next window end after ``closed`` while any pane is held."""

    kind = "sliding"

    def __init__(self, cfg: WindowConfig, lateness: int, *, sizes: bool = False) -> None:
        super().__init__(cfg, lateness, sizes=sizes)
        self.slide = cfg.assign.slide
        self.pane = gcd(self.size, self.slide)
        self._step: ProcessFn = self._build_process()

    def step_function(self) -> ProcessFn:
        """Return the per-event step as a plain function (the stage's hot path)."""
        return self._step

    def _build_process(self) -> ProcessFn:
        """Return ``process(st, seq, event, maxts, device, out)`` for this config: the steps
        of :meth:`process_reference` with the config in closure cells and admission inlined
        (as for tumbling windows)."""
        size, slide, pane, lateness = self.size, self.slide, self.pane, self.lateness
        key_of, by_device = self.key_of, self.key_fields == ("device",)
        filtered, types, pairs = self.filter is not None, self.filter_types, self.filter_pairs
        aggs, late = self.aggs, self.late
        next_end, emit = self._next_end, self._emit

        def process(
            st: TimedState,
            seq: int,
            event: Event,
            maxts: int,
            device: str,
            out: list[dict[str, Any]],
        ) -> None:
            wm = maxts - lateness
            if not filtered or event.type in types or (event.type, event.page) in pairs:
                key = device if by_device else key_of(event)
                if key is not None:
                    ts = event.ts
                    if ts - ts % slide + size > wm:  # its last window is still open
                        ends = st.ends
                        if not ends:
                            closed = st.closed
                            st.closed = closed = wm if closed is None or wm > closed else closed
                            st.next_end = next_end(closed)
                        pane_end = ts - ts % pane + pane
                        bucket = ends.get(pane_end)
                        if bucket is None:
                            bucket = ends[pane_end] = {}
                        acc = bucket.get(key)
                        if acc is None:
                            acc = bucket[key] = aggs.new()
                        aggs.update(acc, event, seq)
                    else:
                        out.append(late(device, event))
            nxt = st.next_end
            if nxt is not None and nxt <= wm:
                emit(st, wm, device, out)

        return process

    def _next_end(self, closed: int) -> int:
        # window ends are the numbers congruent to size modulo slide
        return closed - (closed - self.size) % self.slide + self.slide

    def process(
        self,
        st: TimedState,
        seq: int,
        event: Event,
        maxts: int,
        device: str,
        out: list[dict[str, Any]],
    ) -> None:
        """Handle one valid event of the device (see :mod:`streamfeat.windows._base`)."""
        self._step(st, seq, event, maxts, device, out)

    def process_reference(
        self,
        st: TimedState,
        seq: int,
        event: Event,
        maxts: int,
        device: str,
        out: list[dict[str, Any]],
    ) -> None:
        """:meth:`process` step by step (the reference of the built step; tests compare them)."""
        wm = maxts - self.lateness
        key = self.admit(event)
        if key is not None:
            ts = event.ts
            if ts - ts % self.slide + self.size > wm:  # its last window is still open
                ends = st.ends
                if not ends:
                    st.closed = wm if st.closed is None or wm > st.closed else st.closed
                    st.next_end = self._next_end(st.closed)
                pane_end = ts - ts % self.pane + self.pane
                bucket = ends.get(pane_end)
                if bucket is None:
                    bucket = ends[pane_end] = {}
                acc = bucket.get(key)
                if acc is None:
                    acc = bucket[key] = self.aggs.new()
                for step in self.steps:
                    step(acc, event, seq)
            else:
                out.append(self.late(device, event))
        if st.next_end is not None and st.next_end <= wm:
            self._emit(st, wm, device, out)

    def advance(self, st: TimedState, maxts: int, device: str, out: list[dict[str, Any]]) -> None:
        """Close (``forced: false``) every window with ``end <= maxts - lateness``."""
        wm = maxts - self.lateness
        if st.next_end is not None and st.next_end <= wm:
            self._emit(st, wm, device, out)

    def close(self, st: TimedState, device: str, out: list[dict[str, Any]]) -> None:
        """Close every window still holding events with ``forced: true``."""
        if st.ends:
            self._emit(st, None, device, out)

    def _windows(self, st: TimedState, hi: int | None) -> dict[tuple[int, str], list[Any]]:
        """Group pane accumulators by (window end, key) for windows ending in (closed, hi]."""
        lo, size, slide, g = st.closed, self.size, self.slide, self.pane
        groups: dict[tuple[int, str], list[tuple[int, list[Any]]]] = {}
        for pane_end, bucket in st.ends.items():
            q = pane_end - g
            # only the windows ending in (lo, hi]: an emit walks each pane once, not once per
            # window holding it (size / step of them)
            top = q if hi is None else min(q, hi - size)
            start = top - top % slide
            bottom = q - size if lo is None else max(q - size, lo - size)
            while start > bottom:
                end = start + size
                if (lo is None or end > lo) and (hi is None or end <= hi):
                    for key, acc in bucket.items():
                        groups.setdefault((end, key), []).append((pane_end, acc))
                start -= slide
        merge_all = self.aggs.merge_all
        merged = {}
        for wkey, panes in groups.items():
            # by pane end (the map's order, unless an event came back in time): sums of floats
            # must add up in one order
            for i in range(1, len(panes)):
                if panes[i][0] < panes[i - 1][0]:
                    panes.sort(key=lambda p: p[0])
                    break
            merged[wkey] = merge_all([acc for _, acc in panes])
        return merged

    def _emit(self, st: TimedState, hi: int | None, device: str, out: list[dict[str, Any]]) -> None:
        size = self.size
        windows = self._windows(st, hi)
        for end, key in sorted(windows):
            out.append(self.record(device, key, end - size, end, windows[(end, key)], hi is None))
        if hi is None:
            st.ends.clear()
        else:
            slide, g = self.slide, self.pane
            for pane_end in [p for p in st.ends if (p - g) - (p - g) % slide + size <= hi]:
                del st.ends[pane_end]
            st.closed = hi
        st.next_end = self._next_end(st.closed) if st.ends and st.closed is not None else None

    def dump(self, st: TimedState) -> Any:
        return [super().dump(st), st.closed, st.next_end]

    def load(self, data: Any) -> TimedState:
        panes, closed, next_end = data
        st = super().load(panes)
        st.closed, st.next_end = closed, next_end
        return st

    def open_windows(self, st: TimedState) -> list[dict[str, Any]]:
        size = self.size
        windows = self._windows(st, None)
        return [
            {
                "key": k,
                "start": end - size,
                "end": end,
                "values": self.aggs.values(windows[(end, k)]),
            }
            for end, k in sorted(windows)
        ]
