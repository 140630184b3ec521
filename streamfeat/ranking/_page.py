"""Candidate pages and the per-feed page state a device keeps.

Theory of operation
-------------------
A :class:`Page` is what the server sends: a page id, the feed it fills, and an ordered tuple of
:class:`Candidate` items, each with an id and a declared feature vector (at least
:data:`CANDIDATE_FIELDS`). On the device a :class:`FeedState` holds the current page of one
feed and what the user did with it, fed event by event (:meth:`FeedState.observe`):

* ``exposure`` of a candidate: it is *exposed* (seen): one more exposure, ``args.dur_ms``
  added to its exposure time and, with ``ts``, its last exposure interval; the first
  ``args.pos`` is kept;
* ``scroll``: counts for every exposed candidate whose last exposure interval holds its ts,
  with the largest numeric ``args.speed``;
* ``click`` of a candidate: clicked (and exposed);
* ``delete`` of a candidate: deleted. A deleted item leaves the order and never comes back,
  also in later pages of the same feed (the last :data:`DELETED_KEPT` deletions are kept).

Events of other pages are ignored (``page`` must be the feed, or absent). *Unseen* candidates
are those neither exposed nor deleted: only they may move. The displayed order is the seen
candidates, in their current order, then the unseen ones (:attr:`FeedState.order`).

Re-ranking is split in two so inference can run elsewhere: :meth:`FeedState.snapshot` copies
what a re-rank needs, and :meth:`FeedState.apply` installs a result computed from it, after
whatever happened meanwhile (an item exposed during inference stays where it was seen).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamfeat._event import Event
from streamfeat.errors import StreamfeatError
from streamfeat.models._fields import CANDIDATE_FIELDS

__all__ = ["DELETED_KEPT", "Candidate", "ExposureStats", "FeedState", "Page", "PageError"]

#: How many deleted items per feed are remembered across pages.
DELETED_KEPT = 1000
_MAX_CANDIDATES = 1000
_MAX_ID = 128


class PageError(StreamfeatError, ValueError):
    """Raised when a page breaks its contract (missing field, duplicate id, bad number)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate item: its id and its feature vector (name -> finite number)."""

    item: str
    features: Mapping[str, float]

    def get(self, name: str) -> float:
        """Return feature ``name`` (0.0 when the candidate does not carry it)."""
        return float(self.features.get(name, 0.0))


@dataclass(frozen=True, slots=True)
class Page:
    """A page of candidates for one feed, in the server's order."""

    feed: str
    page_id: str
    candidates: tuple[Candidate, ...]

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(c.item for c in self.candidates)

    @classmethod
    def from_dict(cls, obj: Any) -> Page:
        """Build a page from its JSON form.

        ``{"feed": "home_feed", "page_id": "p1", "candidates": [{"item": "42",
        "features": {"server_score": 0.3, "category": 117, "price_level": 2, "age_h": 5}}]}``

        Raises:
            PageError: naming the key and what was wrong.
        """
        if not isinstance(obj, Mapping):
            msg = f"a page must be an object, got {type(obj).__name__}"
            raise PageError(msg)
        feed, page_id, cands = obj.get("feed"), obj.get("page_id"), obj.get("candidates")
        for key, val in (("feed", feed), ("page_id", page_id)):
            if not isinstance(val, str) or not 0 < len(val) <= _MAX_ID:
                msg = f"page `{key}` must be a string of 1-{_MAX_ID} chars, got {val!r}"
                raise PageError(msg)
        if not isinstance(cands, list) or len(cands) > _MAX_CANDIDATES:
            msg = f"page `candidates` must be a list of at most {_MAX_CANDIDATES}"
            raise PageError(msg)
        out = []
        for i, c in enumerate(cands):
            if not isinstance(c, Mapping):
                msg = f"page `candidates[{i}]` must be an object"
                raise PageError(msg)
            out.append(_candidate(i, c.get("item"), c.get("features")))
        return cls.of(str(feed), str(page_id), out)

    @classmethod
    def of(cls, feed: str, page_id: str, candidates: Iterable[Candidate]) -> Page:
        """Build a page, checking ids are unique and every candidate has the required fields.

        Raises:
            PageError: naming the candidate and what was wrong.
        """
        cands = tuple(candidates)
        seen: set[str] = set()
        for i, c in enumerate(cands):
            if c.item in seen:
                msg = f"page `candidates[{i}].item` {c.item!r} appears twice"
                raise PageError(msg)
            seen.add(c.item)
            for name in CANDIDATE_FIELDS:
                if name not in c.features:
                    msg = f"page `candidates[{i}].features.{name}` is missing"
                    raise PageError(msg)
        return cls(feed, page_id, cands)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form read by :meth:`from_dict`."""
        return {
            "feed": self.feed,
            "page_id": self.page_id,
            "candidates": [{"item": c.item, "features": dict(c.features)} for c in self.candidates],
        }


def _candidate(i: int, item: Any, feats: Any) -> Candidate:
    if isinstance(item, int) and not isinstance(item, bool):
        item = str(item)
    if not isinstance(item, str) or not 0 < len(item) <= _MAX_ID:
        msg = f"page `candidates[{i}].item` must be a string of 1-{_MAX_ID} chars, got {item!r}"
        raise PageError(msg)
    if not isinstance(feats, Mapping):
        msg = f"page `candidates[{i}].features` must be an object"
        raise PageError(msg)
    clean: dict[str, float] = {}
    for k, v in feats.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            msg = f"page `candidates[{i}].features.{k}` must be a finite number, got {v!r}"
            raise PageError(msg)
        clean[str(k)] = float(v)
    return Candidate(item, clean)


@dataclass(slots=True)
class ExposureStats:
    """What the user did with one candidate of the current page (e1-e7)."""

    first_seq: int
    first_pos: float = -1.0
    exposures: int = 0
    exposure_ms: float = 0.0
    span: tuple[float, float] = (0.0, -1.0)  # the last exposure interval [ts, ts + dur]
    scrolls: int = 0
    max_scroll_speed: float = 0.0
    clicked: bool = False
    deleted: bool = False

    def row(self, cand: Candidate) -> dict[str, float]:
        """Return the exposure row's values: the item's features, then e1-e7."""
        out = dict(cand.features)
        out.update(
            exposure_ms=self.exposure_ms, exposures=float(self.exposures),
            max_scroll_speed=self.max_scroll_speed, scrolls=float(self.scrolls),
            clicked=float(self.clicked), deleted=float(self.deleted), first_pos=self.first_pos,
        )  # fmt: skip
        return out


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one re-rank needs, copied out of a :class:`FeedState` (safe to use elsewhere)."""

    feed: str
    page_id: str
    revision: int
    unseen: tuple[Candidate, ...]
    exposure_rows: tuple[Mapping[str, float], ...]


@dataclass
class FeedState:
    """The current page of one feed and what the user did with it.

    Args:
        page: the page.
        deleted: items deleted earlier in this feed (kept out of the order).
        history: exposure rows of earlier pages (most recent last), carried over.
        max_history: how many exposure rows are kept across pages.
    """

    page: Page
    deleted: OrderedDict[str, None] = field(default_factory=OrderedDict)
    history: deque[dict[str, float]] = field(default_factory=lambda: deque(maxlen=200))
    stats: dict[str, ExposureStats] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    revision: int = 0
    exposures_since_click: int = 0

    def __post_init__(self) -> None:
        self._by_id = {c.item: c for c in self.page.candidates}
        self.order = [c.item for c in self.page.candidates if c.item not in self.deleted]
        self._seq = 0

    @property
    def feed(self) -> str:
        return self.page.feed

    def candidate(self, item: str) -> Candidate | None:
        return self._by_id.get(item)

    def is_seen(self, item: str) -> bool:
        return item in self.stats

    def unseen(self) -> list[str]:
        """Return the unseen candidates in display order."""
        return [i for i in self.order if i not in self.stats]

    def next_page(self, page: Page) -> FeedState:
        """Return the state for a new page of this feed: exposure rows and deletions carry over."""
        hist = deque(self.history, maxlen=self.history.maxlen)
        hist.extend(s.row(self._by_id[i]) for i, s in self._exposed_in_order())
        return FeedState(page, deleted=OrderedDict(self.deleted), history=hist)

    def _exposed_in_order(self) -> list[tuple[str, ExposureStats]]:
        return sorted(self.stats.items(), key=lambda kv: kv[1].first_seq)

    def observe(self, event: Event) -> str | None:
        """Fold one event into the state.

        Returns:
            ``"exposure"``, ``"click"``, ``"delete"`` or ``"scroll"`` when the event concerned
            this page, else ``None``.
        """
        if event.page is not None and event.page != self.page.feed:
            return None
        etype = event.type
        if etype == "scroll":
            self._scroll(event)
            return "scroll"
        item = event.item
        if item is None or item not in self._by_id or etype not in ("exposure", "click", "delete"):
            return None
        st = self.stats.get(item)
        if st is None:
            st = self.stats[item] = ExposureStats(first_seq=self._seq)
            self._seq += 1
        self.revision += 1
        if etype == "exposure":
            pos, dur = event.args.get("pos"), event.args.get("dur_ms")
            if st.exposures == 0 and isinstance(pos, int | float) and not isinstance(pos, bool):
                st.first_pos = float(pos)
            d = float(dur) if isinstance(dur, int | float) and not isinstance(dur, bool) else 0.0
            st.exposures += 1
            st.exposure_ms += d
            st.span = (float(event.ts), event.ts + d)
            self.exposures_since_click += 1
        elif etype == "click":
            st.clicked = True
            self.exposures_since_click = 0
        else:
            st.deleted = True
            self.deleted[item] = None
            while len(self.deleted) > DELETED_KEPT:
                self.deleted.popitem(last=False)
            if item in self.order:
                self.order.remove(item)
        return etype

    def _scroll(self, event: Event) -> None:
        speed = event.args.get("speed")
        ok = isinstance(speed, int | float) and not isinstance(speed, bool)
        for st in self.stats.values():
            lo, hi = st.span
            if lo <= event.ts <= hi:
                st.scrolls += 1
                if ok and float(speed) > st.max_scroll_speed:  # type: ignore[arg-type]
                    st.max_scroll_speed = float(speed)  # type: ignore[arg-type]

    def snapshot(self, max_exposures: int) -> Snapshot:
        """Copy out what a re-rank needs: the unseen candidates and the last
        ``max_exposures`` exposure rows (earlier pages', then this page's, oldest first)."""
        rows: list[Mapping[str, float]] = list(self.history)
        rows.extend(s.row(self._by_id[i]) for i, s in self._exposed_in_order())
        unseen = tuple(self._by_id[i] for i in self.unseen())
        return Snapshot(self.feed, self.page.page_id, self.revision, unseen,
                        tuple(rows[-max_exposures:] if max_exposures else ()))  # fmt: skip

    def apply(self, page_id: str, new_unseen: Iterable[str]) -> bool:
        """Install a re-ranked order of the unseen candidates.

        Items of ``new_unseen`` exposed or deleted since the snapshot keep their place (or stay
        out); unseen items the result does not name keep their relative order after it.

        Returns:
            False (nothing changed) when the page is no longer ``page_id``.

        Raises:
            ValueError: if ``new_unseen`` names an item not on the page or names one twice; the
                state is unchanged.
        """
        if page_id != self.page.page_id:
            return False
        new = list(new_unseen)
        if len(set(new)) != len(new) or any(i not in self._by_id for i in new):
            msg = f"a re-ranked order must name distinct items of page {page_id!r}, got {new!r}"
            raise ValueError(msg)
        seen = [i for i in self.order if i in self.stats]
        unseen_now = set(self.unseen())
        head = [i for i in new if i in unseen_now]
        named = set(head)
        self.order = seen + head + [i for i in self.order if i in unseen_now and i not in named]
        return True
