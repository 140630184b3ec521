"""Tumbling windows: ``[k*size, (k+1)*size)``, aligned to the epoch (SPEC section 3)."""

from __future__ import annotations

from typing import Any

from streamfeat._event import Event
from streamfeat.windows._base import TimedLogic, TimedState

__all__ = ["TumblingLogic"]


class TumblingLogic(TimedLogic):
    """One tumbling window config: each event belongs to exactly one window.

    The event is late when its window has closed: ``end <= maxts - lateness``.
    """

    kind = "tumbling"

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
            ts = event.ts
            end = ts - ts % self.size + self.size
            if end > wm:
                self.add(st, end, key, event, seq)
            else:
                out.append(self.late(device, ts))
        if st.next_end is not None and st.next_end <= wm:
            self._close_ends([e for e in st.ends if e <= wm], st, device, out, final=False)
