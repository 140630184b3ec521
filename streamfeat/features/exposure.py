"""The ``exposure`` feature: per item exposed in one feed visit (SPEC section 4).

Theory of operation
-------------------
A *feed visit* is a stay on one of the feed pages (``feed_pages``, default ``home_feed``); at
most one is open per device:

* ``page_enter`` on a feed page closes the open feed visit (if any) and opens one on that page;
* ``page_exit`` on the open visit's page, and ``app_background``, close it;
* an ``exposure`` with an ``item`` on a feed page other than the open visit's (or with no visit
  open) closes the open visit and opens one implicitly at its ts (logs that miss the
  ``page_enter`` still give features).

While a visit is open, events on its page (or with no ``page``) count for it:

* ``exposure`` with ``item``: one more exposure of the item; ``args.dur_ms`` (a number) adds to
  its exposure time and makes it exposed during ``[ts, ts + dur_ms]``; the first ``args.pos``
  seen is its first position;
* ``click`` with ``item``: the item was clicked; ``delete`` with ``item``: deleted, with the
  first ``args.reason`` given;
* ``scroll``: kept as ``[ts, args.speed]``; at the close, an item's ``scrolls`` are the scrolls
  whose ts falls in one of its exposure intervals, and ``max_scroll_speed`` the largest
  numeric speed among them (``null`` when none).

When the visit closes, one record per exposed item (items never exposed get none), in order of
first exposure, with ``ts`` = the closing ts. The partial limit and the end of a replay close
the visit the way they close ipv visits (:mod:`streamfeat.features.ipv`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Any, Final

from streamfeat._event import Event

if TYPE_CHECKING:
    from streamfeat.features._config import FeatureConfig

__all__ = ["ExposureFeature", "ExposureVisit"]

# item entry fields
_FIRST_SEQ: Final = 0
_POS: Final = 1
_N: Final = 2
_MS: Final = 3
_SPANS: Final = 4
_CLICKED: Final = 5
_DELETED: Final = 6
_REASON: Final = 7
_RAW: Final = 8
_NUMERIC: Final = (int, float)


def _union(spans: list[list[int]]) -> list[tuple[int, int]]:
    """Return the union of closed intervals ``[a, b]`` as disjoint sorted intervals."""
    if len(spans) == 1:  # an item exposed once (the common case): nothing to sort or join
        a, b = spans[0]
        return [(a, b)]
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


class ExposureVisit:
    """One open feed visit: its page, start ts, items (insertion-ordered) and scrolls."""

    __slots__ = ("items", "page", "scrolls", "start")

    def __init__(self, page: str, start: int) -> None:
        self.page = page
        self.start = start
        # item -> [first exposure seq or None, first pos, exposures, exposure ms,
        #          [[from, to], ...], clicked, deleted, delete reason, raw bytes]
        self.items: dict[str, list[Any]] = {}
        self.scrolls: list[list[Any]] = []  # [ts, speed, raw bytes]


class ExposureFeature:
    """The logic of one ``kind = "exposure"`` feature table; the state is an
    :class:`ExposureVisit` or None.

    Args:
        cfg: the feature's table (``feed_pages``).
        partial_limit: the engine's partial-match time limit, in ms.
        sizes: attach ``_raw_bytes`` to records.
    """

    def __init__(self, cfg: FeatureConfig, partial_limit: int, *, sizes: bool = False) -> None:
        self.name = cfg.name
        self.feed_pages = frozenset(cfg.feed_pages)
        self.partial_limit = partial_limit
        self.sizes = sizes

    def new_state(self) -> list[ExposureVisit | None]:
        return [None]  # a box, so the stage can keep one mutable state object

    def process(
        self,
        st: list[ExposureVisit | None],
        seq: int,
        event: Event,
        raw: int,
        device: str,
        out: list[dict[str, Any]],
    ) -> None:
        """Handle one event (``seq``: its arrival index; ``raw``: its size, 0 unless sizes)."""
        if st[0] is not None:
            self.expire(st, event.ts, device, out)
        etype, page = event.type, event.page
        if etype == "page_enter" and page in self.feed_pages:
            self._close(st, event.ts, device, out)
            st[0] = ExposureVisit(str(page), event.ts)
            return
        visit = st[0]
        implicit = etype == "exposure" and event.item is not None and page in self.feed_pages
        if implicit and (visit is None or visit.page != page):
            self._close(st, event.ts, device, out)
            visit = st[0] = ExposureVisit(page, event.ts)  # type: ignore[arg-type]
        if visit is None:
            return
        if etype in ("page_exit", "app_background"):
            if etype == "app_background" or page == visit.page:
                self._close(st, event.ts, device, out)
            return
        if page is not None and page != visit.page:
            return
        self._count(visit, seq, event, raw)

    def _count(self, visit: ExposureVisit, seq: int, event: Event, raw: int) -> None:
        etype, item = event.type, event.item
        if etype == "scroll":
            visit.scrolls.append([event.ts, event.args.get("speed"), raw])
            return
        if item is None or etype not in ("exposure", "click", "delete"):
            return
        entry = visit.items.get(item)
        if entry is None:
            entry = visit.items[item] = [None, None, 0, 0, [], False, False, None, 0]
        entry[_RAW] += raw
        args = event.args
        if etype == "exposure":
            if entry[_FIRST_SEQ] is None:
                entry[_FIRST_SEQ] = seq
            if entry[_POS] is None:
                entry[_POS] = args.get("pos")
            entry[_N] += 1
            raw_dur = args.get("dur_ms")
            dur: int | float = raw_dur if type(raw_dur) is int or type(raw_dur) is float else 0
            entry[_MS] += dur
            entry[_SPANS].append([event.ts, event.ts + dur])
        elif etype == "click":
            entry[_CLICKED] = True
        else:
            entry[_DELETED] = True
            if entry[_REASON] is None:
                reason = args.get("reason")
                entry[_REASON] = None if reason is None else str(reason)

    def expire(
        self, st: list[ExposureVisit | None], now_ms: int, device: str, out: list[dict[str, Any]]
    ) -> None:
        """Close the open visit (at ``start + partial_limit``) once it is past the limit."""
        visit = st[0]
        if visit is not None and now_ms - visit.start > self.partial_limit:
            self._close(st, visit.start + self.partial_limit, device, out)

    def close(
        self, st: list[ExposureVisit | None], last_ts: int, device: str, out: list[dict[str, Any]]
    ) -> None:
        """End of input: close the open visit at ``last_ts``."""
        self._close(st, last_ts, device, out)

    def _close(
        self, st: list[ExposureVisit | None], ts: int, device: str, out: list[dict[str, Any]]
    ) -> None:
        visit = st[0]
        if visit is None:
            return
        st[0] = None
        # items by first exposure, scrolls by ts (for bisection); both usually arrive in that
        # order already, and a sort (stable) is only run when they do not
        exposed: list[tuple[str, list[Any]]] = []
        last = -1
        in_order = True
        for k, e in visit.items.items():
            first = e[_FIRST_SEQ]
            if first is not None:
                if first < last:
                    in_order = False
                last = first
                exposed.append((k, e))
        if not in_order:
            exposed.sort(key=lambda kv: kv[1][_FIRST_SEQ])
        scrolls = visit.scrolls
        times = [x[0] for x in scrolls]
        for i in range(1, len(times)):
            if times[i] < times[i - 1]:
                scrolls = sorted(scrolls, key=lambda x: x[0])
                times = [x[0] for x in scrolls]
                break
        for item, e in exposed:
            out.append(self._record(visit, item, e, ts, device, scrolls, times))

    def _record(
        self,
        visit: ExposureVisit,
        item: str,
        e: list[Any],
        ts: int,
        device: str,
        scrolls: list[list[Any]],
        times: list[int],
    ) -> dict[str, Any]:
        n, top, raw = 0, None, e[_RAW]
        if scrolls:  # (a visit with no scroll: nothing to look up)
            for lo, hi in _union(e[_SPANS]):
                # each scroll counts once even if several exposure intervals hold it
                for _sts, speed, sraw in scrolls[bisect_left(times, lo) : bisect_right(times, hi)]:
                    n += 1
                    raw += sraw
                    if type(speed) in _NUMERIC and (top is None or speed > top):
                        top = speed
        values = {
            "item": item, "page": visit.page, "visit_start": visit.start, "first_pos": e[_POS],
            "exposures": e[_N], "exposure_ms": e[_MS], "scrolls": n, "max_scroll_speed": top,
            "clicked": e[_CLICKED], "deleted": e[_DELETED], "delete_reason": e[_REASON],
        }  # fmt: skip
        rec = {
            "kind": "feature",
            "feature": self.name,
            "device": device,
            "ts": ts,
            "values": values,
        }
        if self.sizes:
            rec["_raw_bytes"] = raw
        return rec

    def deadline(self, st: list[ExposureVisit | None]) -> int | None:
        """Return the smallest ``now_ms`` at which :meth:`expire` closes the visit (None: none)."""
        visit = st[0]
        return None if visit is None else visit.start + self.partial_limit + 1

    def is_open(self, st: list[ExposureVisit | None]) -> bool:
        return st[0] is not None

    def dump(self, st: list[ExposureVisit | None]) -> Any:
        v = st[0]
        if v is None:
            return None
        items = [
            [k, [*e[:_SPANS], [list(s) for s in e[_SPANS]], *e[_SPANS + 1 :]]]
            for k, e in v.items.items()
        ]
        return [v.page, v.start, items, [list(s) for s in v.scrolls]]

    def load(self, data: Any) -> list[ExposureVisit | None]:
        if data is None:
            return [None]
        page, start, items, scrolls = data
        v = ExposureVisit(page, start)
        v.items = {
            k: [*e[:_SPANS], [list(s) for s in e[_SPANS]], *e[_SPANS + 1 :]] for k, e in items
        }
        v.scrolls = [list(s) for s in scrolls]
        return [v]

    def open_view(self, st: list[ExposureVisit | None], now_ms: int) -> dict[str, Any]:
        """Return the open feed visit, if any, with the time since it opened."""
        v = st[0]
        if v is None:
            return {"open_visit": None}
        exposed = sum(1 for e in v.items.values() if e[_FIRST_SEQ] is not None)
        return {
            "open_visit": {
                "page": v.page, "visit_start": v.start, "since_start_ms": now_ms - v.start,
                "items_exposed": exposed, "scrolls": len(v.scrolls),
            }
        }  # fmt: skip
