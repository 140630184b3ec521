"""Tumbling windows: ``[k*size, (k+1)*size)``, aligned to the epoch (SPEC section 3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamfeat._event import Event
from streamfeat.windows._base import TimedLogic, TimedState

if TYPE_CHECKING:
    from streamfeat.windows._config import WindowConfig

__all__ = ["TumblingLogic"]


class TumblingLogic(TimedLogic):
    """One tumbling window config: each event belongs to exactly one window.

    The event is late when its window has closed: ``end <= maxts - lateness``.
    """

    kind = "tumbling"

    def __init__(self, cfg: WindowConfig, lateness: int, *, sizes: bool = False) -> None:
        super().__init__(cfg, lateness, sizes=sizes)
        self.process = self._fast_process()  # type: ignore[method-assign,assignment]

    def process(
        self,
        st: TimedState,
        seq: int,
        event: Event,
        maxts: int,
        device: str,
        out: list[dict[str, Any]],
    ) -> None:
        """Handle one valid event of the device (see :mod:`streamfeat.windows._base`).

        Each instance replaces this method with the closure :meth:`_fast_process` builds; this
        body is the same logic, spelled plainly.
        """
        wm = maxts - self.lateness
        key = self.admit(event)
        if key is not None:
            end = event.ts - event.ts % self.size + self.size
            if end > wm:
                self.add(st, end, key, event, seq)
            else:
                out.append(self.late(device, event.ts))
        if st.next_end is not None and st.next_end <= wm:
            self._close_ends([e for e in st.ends if e <= wm], st, device, out, final=False)

    def _fast_process(
        self,
    ) -> Callable[[TimedState, int, Event, int, str, list[dict[str, Any]]], None]:
        # The hot path of the commonest window (the benchmark's): the config is bound into
        # closure cells and admit/add are inlined, which roughly halves the cost per event.
        size, lateness, key_of = self.size, self.lateness, self.key_of
        filtered, types, pairs = self.filter is not None, self.filter_types, self.filter_pairs
        by_device = self.key_fields == ("device",)
        steps, new, late, close = self.steps, self.aggs.new, self.late, self._close_ends

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
                    end = ts - ts % size + size
                    if end > wm:
                        ends = st.ends
                        bucket = ends.get(end)
                        if bucket is None:
                            bucket = ends[end] = {}
                            if st.next_end is None or end < st.next_end:
                                st.next_end = end
                        acc = bucket.get(key)
                        if acc is None:
                            acc = bucket[key] = new()
                        for step in steps:
                            step(acc, event, seq)
                    else:
                        out.append(late(device, ts))
            nxt = st.next_end
            if nxt is not None and nxt <= wm:
                close([e for e in st.ends if e <= wm], st, device, out, final=False)

        return process
