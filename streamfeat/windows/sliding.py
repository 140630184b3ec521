"""Sliding windows: ``[j*slide, j*slide + size)`` for every ``j`` holding the event (SPEC 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamfeat._event import Event
from streamfeat.windows._base import TimedLogic, TimedState

if TYPE_CHECKING:
    from streamfeat.tasks import WindowConfig

__all__ = ["SlidingLogic"]


class SlidingLogic(TimedLogic):
    """One sliding window config: an event belongs to every window whose span holds its ts.

    It goes into those of them still open (``end > maxts - lateness``) and is late when
    none is.
    """

    kind = "sliding"

    def __init__(self, cfg: WindowConfig, lateness: int, *, sizes: bool = False) -> None:
        super().__init__(cfg, lateness, sizes=sizes)
        self.slide = cfg.assign.slide

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
        wm = maxts - self.lateness
        key = self.admit(event)
        if key is not None:
            ts, size, slide = event.ts, self.size, self.slide
            # windows holding ts: j*slide <= ts < j*slide + size
            last_start = ts - ts % slide
            end = last_start + size
            if end > wm:
                low = ts - size  # start must be > ts - size
                start = last_start
                ends, new, steps = st.ends, self.aggs.new, self.steps
                while start > low and start + size > wm:
                    end = start + size
                    bucket = ends.get(end)
                    if bucket is None:  # a new window end (self.add, inlined: the hot loop)
                        bucket = ends[end] = {}
                        if st.next_end is None or end < st.next_end:
                            st.next_end = end
                    acc = bucket.get(key)
                    if acc is None:
                        acc = bucket[key] = new()
                    for step in steps:
                        step(acc, event, seq)
                    start -= slide
            else:
                out.append(self.late(device, ts))
        if st.next_end is not None and st.next_end <= wm:
            self._close_ends([e for e in st.ends if e <= wm], st, device, out, final=False)
