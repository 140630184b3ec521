"""Count windows: every N events of a key, in arrival order (SPEC section 3).

``start``/``end`` are the ts of the window's first and last event in arrival order (so
``start > end`` is possible when ts went backwards). Count windows ignore the watermark: they
are never late and close on their N-th event, or with ``forced: true`` at the end of a replay.
"""

from __future__ import annotations

from typing import Any

from streamfeat._event import Event
from streamfeat.windows._base import NO_DEADLINE, WindowLogic

__all__ = ["CountLogic"]


class CountLogic(WindowLogic):
    """One count window config; the state maps a key to ``[first ts, last ts, n, accumulator]``."""

    kind = "count"

    def new_state(self) -> dict[str, list[Any]]:
        return {}

    def deadline(self, st: dict[str, list[Any]]) -> int:
        """Count windows never close with time."""
        return NO_DEADLINE

    def process(
        self,
        st: dict[str, list[Any]],
        seq: int,
        event: Event,
        maxts: int,
        device: str,
        out: list[dict[str, Any]],
    ) -> None:
        """Handle one valid event of the device (see :mod:`streamfeat.windows._base`)."""
        key = self.admit(event)
        if key is None:
            return
        ts = event.ts
        entry = st.get(key)
        if entry is None:
            entry = st[key] = [ts, ts, 0, self.aggs.new()]
        entry[1] = ts
        entry[2] += 1
        self.aggs.update(entry[3], event, seq)
        if entry[2] >= self.size:
            del st[key]
            out.append(self.record(device, key, entry[0], ts, entry[3], False))

    def advance(
        self, st: dict[str, list[Any]], maxts: int, device: str, out: list[dict[str, Any]]
    ) -> None:
        """Count windows do not move with time."""

    def close(self, st: dict[str, list[Any]], device: str, out: list[dict[str, Any]]) -> None:
        """Emit every partly filled window with ``forced: true``."""
        rest = sorted(st.items(), key=lambda kv: (kv[1][1], kv[1][0], kv[0]))
        st.clear()
        for key, (first, last, _n, acc) in rest:
            out.append(self.record(device, key, first, last, acc, True))

    def empty(self, st: dict[str, list[Any]]) -> bool:
        return not st

    def dump(self, st: dict[str, list[Any]]) -> Any:
        dump = self.aggs.dump
        return [[k, e[0], e[1], e[2], dump(e[3])] for k, e in st.items()]

    def load(self, data: Any) -> dict[str, list[Any]]:
        load = self.aggs.load
        return {k: [first, last, n, load(acc)] for k, first, last, n, acc in data}

    def open_windows(self, st: dict[str, list[Any]]) -> list[dict[str, Any]]:
        rows = [
            {"key": k, "start": e[0], "end": e[1], "events": e[2], "values": self.aggs.values(e[3])}
            for k, e in st.items()
        ]
        rows.sort(key=lambda r: (r["end"], r["start"], r["key"]))
        return rows
