"""Re-rank logic: when to re-rank (EdgeRec, Kuaishou) and how (model scores, then an order).

Theory of operation
-------------------
* :class:`EdgeRecPolicy` fires, for the feed's current page, on a click of a candidate, a
  delete of a candidate, and on ``k`` exposures without a click (counted since the last click
  or firing). :class:`KuaishouPolicy` fires on every item finished: an ``exposure`` of a
  candidate (one item per screen; the app writes the exposure, with its duration, when the
  user swipes past it). Both are pure: ``should_fire(state, change)`` after
  :meth:`FeedState.observe`.
* :class:`Reranker` scores the unseen candidates of a page snapshot with a model, orders them
  (``greedy`` or ``beam``) and returns a :class:`RerankResult` with the new order of the
  unseen candidates, their scores, the model version and the latency, measured on the
  injected clock. It never mutates the feed state: the caller applies the result
  (:meth:`FeedState.apply`), or keeps the previous order when the re-rank failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from streamfeat.clock import Clock
from streamfeat.models import InputSpec, ModelSpec
from streamfeat.ranking._context import build_inputs
from streamfeat.ranking._order import ListValue, beam_search, greedy
from streamfeat.ranking._page import FeedState, Snapshot

__all__ = ["EdgeRecPolicy", "KuaishouPolicy", "RerankResult", "Reranker", "Scorer"]

STRATEGIES = ("greedy", "beam")


class Scorer(Protocol):
    """What a re-ranker scores with: a loaded :class:`streamfeat.models.Model` or a stand-in."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def version(self) -> str: ...

    def run(self, feeds: Mapping[str, npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One re-rank.

    Attributes:
        feed, page_id: the page re-ranked.
        reason: what fired it (``click``, ``delete``, ``exposures``, ``finished``, ...).
        order: the unseen candidates in their new order.
        scores: the model's score of each of them.
        model_version: the model's version.
        latency_ms: time from the snapshot to the order, on the re-ranker's clock.
    """

    feed: str
    page_id: str
    reason: str
    order: tuple[str, ...]
    scores: Mapping[str, float]
    model_version: str
    latency_ms: float

    def values(self) -> dict[str, object]:
        """Return the values of the ``task`` record that reports this re-rank."""
        return {
            "feed": self.feed, "page_id": self.page_id, "reason": self.reason,
            "order": list(self.order), "scores": [round(self.scores[i], 6) for i in self.order],
            "model_version": self.model_version, "latency_ms": round(self.latency_ms, 3),
        }  # fmt: skip


@dataclass
class EdgeRecPolicy:
    """Fire on click, on delete, and on ``k`` exposures without a click."""

    k: int = 5

    def should_fire(self, state: FeedState, change: str | None) -> str | None:
        """Return the reason to re-rank after ``change`` (from :meth:`FeedState.observe`)."""
        if change in ("click", "delete"):
            state.exposures_since_click = 0
            return change
        if change == "exposure" and state.exposures_since_click >= self.k:
            state.exposures_since_click = 0
            return "exposures"
        return None


@dataclass
class KuaishouPolicy:
    """Fire on every item finished (an exposure of a candidate), to fill the next position."""

    def should_fire(self, state: FeedState, change: str | None) -> str | None:
        """Return ``"finished"`` after an exposure of a candidate with unseen ones left."""
        return "finished" if change == "exposure" and state.unseen() else None


class Reranker:
    """Scores and orders the unseen candidates of a page.

    Args:
        model: the model (a :class:`streamfeat.models.Model`).
        clock: where latency is read (``monotonic()``).
        strategy: ``greedy`` (by score) or ``beam`` (:func:`beam_search` with ``value``).
        width, depth: the beam's width and how many positions it searches.
        value: how a list is valued by the beam (category repeats, position discount).
        max_exposures, max_page_views: how long the context sequences are at most.

    Raises:
        ValueError: on an unknown strategy or a width below 1.
    """

    def __init__(self, model: Scorer, *, clock: Clock, strategy: str = "greedy", width: int = 8,
                 depth: int | None = None, value: ListValue | None = None,
                 max_exposures: int = 50, max_page_views: int = 20) -> None:  # fmt: skip
        if strategy not in STRATEGIES:
            msg = f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
            raise ValueError(msg)
        if width < 1:
            msg = f"beam width must be >= 1, got {width}"
            raise ValueError(msg)
        self.model = model
        self.clock = clock
        self.strategy = strategy
        self.width = width
        self.depth = depth
        self.value = value or ListValue()
        self.max_exposures = max_exposures
        self.max_page_views = max_page_views
        self._specs: Sequence[InputSpec] = model.spec.inputs

    def rerank(self, snapshot: Snapshot, page_views: Sequence[Mapping[str, float]],
               reason: str) -> RerankResult:  # fmt: skip
        """Score and order the snapshot's unseen candidates (no state is changed).

        Raises:
            ValueError: if the model refuses its inputs or returns the wrong number of scores.
        """
        t0 = self.clock.monotonic()
        unseen = snapshot.unseen
        if not unseen:
            order: list[int] = []
            scores: list[float] = []
        else:
            feeds = build_inputs(self._specs, snapshot, page_views[-self.max_page_views :])
            out = self.model.run(feeds)
            if out.shape[0] != len(unseen):
                msg = f"model returned {out.shape[0]} scores for {len(unseen)} candidates"
                raise ValueError(msg)
            scores = [float(x) for x in out]
            if self.strategy == "greedy":
                order = greedy(scores)
            else:
                cats = [c.get("category") for c in unseen]
                order = beam_search(scores, cats, self.value, width=self.width, depth=self.depth)
        latency = (self.clock.monotonic() - t0) * 1000.0
        return RerankResult(
            feed=snapshot.feed,
            page_id=snapshot.page_id,
            reason=reason,
            order=tuple(unseen[i].item for i in order),
            scores={unseen[i].item: scores[i] for i in range(len(unseen))},
            model_version=self.model.version,
            latency_ms=latency,
        )
