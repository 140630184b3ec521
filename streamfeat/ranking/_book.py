"""The device side's pages and re-rank tasks, in one synchronous object (no I/O, no threads).

Theory of operation
-------------------
A :class:`PageBook` holds, per ``(device, feed)``, the current :class:`FeedState`, per device
the page-view sequence, and the re-rank tasks of a tasks file (:class:`RerankTask`: config,
policy, re-ranker). The shell (the agent) calls it on its loop thread:

* :meth:`set_page` installs a page (a later page of the same feed carries deletions and the
  exposure history over);
* :meth:`observe` folds an event into the device's feed states and returns the
  :class:`Firing` of every task whose policy fired: each carries a snapshot and a copy of the
  page views, so the re-rank itself (:meth:`Firing.run`) can run on another thread;
* :meth:`add_page_view` takes the values of an ``ipv`` record;
* :meth:`apply` installs a finished re-rank, unless the page changed meanwhile;
* :meth:`order` is the order the app shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamfeat._event import Event
from streamfeat.clock import Clock
from streamfeat.ranking._catalogue import item_features
from streamfeat.ranking._config import RerankTaskConfig
from streamfeat.ranking._context import PageViews
from streamfeat.ranking._inputs import encode_inputs
from streamfeat.ranking._order import ListValue
from streamfeat.ranking._page import FeedState, Page, Snapshot
from streamfeat.ranking._rerank import (
    EdgeRecPolicy,
    KuaishouPolicy,
    Reranker,
    RerankResult,
    Scorer,
)

__all__ = ["Firing", "PageBook", "RerankTask"]

_MAX_PAGE_VIEWS = 200


@dataclass
class RerankTask:
    """One re-rank task: its config, when it fires and how it re-ranks."""

    config: RerankTaskConfig
    policy: EdgeRecPolicy | KuaishouPolicy
    reranker: Reranker

    @classmethod
    def build(cls, config: RerankTaskConfig, model: Scorer, clock: Clock) -> RerankTask:
        policy: EdgeRecPolicy | KuaishouPolicy = (
            EdgeRecPolicy(k=config.k) if config.kind == "edgerec" else KuaishouPolicy()
        )
        value = ListValue(config.penalty, config.window, config.discount)
        rr = Reranker(model, clock=clock, strategy=config.strategy, width=config.width,
                      depth=config.depth, value=value, max_exposures=config.max_exposures,
                      max_page_views=config.max_page_views)  # fmt: skip
        return cls(config, policy, rr)


@dataclass(frozen=True, slots=True)
class Firing:
    """A re-rank to run: the task, where, why, and a copy of its inputs."""

    task: RerankTask
    device: str
    reason: str
    ts: int
    snapshot: Snapshot
    page_views: tuple[Mapping[str, float], ...]

    def run(self) -> RerankResult:
        """Run the re-rank (model inference); safe on any thread, changes no state."""
        return self.task.reranker.rerank(self.snapshot, self.page_views, self.reason)

    def record_values(self, result: RerankResult) -> dict[str, Any]:
        """Return the ``values`` of the ``task`` record reporting ``result``: the result's
        values, ``applied: false`` for a shadow task (``apply = false``), and the model
        inputs (:func:`~streamfeat.ranking._inputs.encode_inputs`) when the task records
        them."""
        values: dict[str, Any] = result.values()
        if not self.task.config.apply:
            values["applied"] = False
        if self.task.config.record_inputs:
            values["inputs"] = encode_inputs(self.snapshot, self.page_views, result.order)
        return values


@dataclass
class PageBook:
    """Pages, page state and re-rank tasks of the devices an agent serves.

    Args:
        tasks: the re-rank tasks.
        category_of: an item's category when no page of the device has it (default: the
            shared catalogue's).
    """

    tasks: Sequence[RerankTask] = ()
    category_of: Callable[[str], float | None] = field(
        default=lambda item: item_features(item)["category"]
    )
    feeds: dict[str, dict[str, FeedState]] = field(default_factory=dict)  # device -> feed -> state
    views: dict[str, PageViews] = field(default_factory=dict)

    def set_page(self, device: str, page: Page) -> None:
        """Install ``page`` as the current page of its feed on ``device``."""
        mine = self.feeds.setdefault(device, {})
        old = mine.get(page.feed)
        mine[page.feed] = FeedState(page) if old is None else old.next_page(page)

    def order(self, device: str, feed: str) -> list[str] | None:
        """Return the order the app shows for ``feed`` (None without a page)."""
        st = self.state(device, feed)
        return None if st is None else list(st.order)

    def state(self, device: str, feed: str) -> FeedState | None:
        return self.feeds.get(device, {}).get(feed)

    def _views(self, device: str) -> PageViews:
        v = self.views.get(device)
        if v is None:
            v = self.views[device] = PageViews(_MAX_PAGE_VIEWS, self._category)
        return v

    def _category(self, item: str) -> float | None:
        for mine in self.feeds.values():
            for st in mine.values():
                c = st.candidate(item)
                if c is not None:
                    return c.get("category")
        return self.category_of(item)

    def add_page_view(self, device: str, values: Mapping[str, Any]) -> None:
        """Add one item-page visit (an ``ipv`` record's values) to the device's sequence."""
        self._views(device).add(values)

    def observe(self, event: Event) -> list[Firing]:
        """Fold ``event`` into its device's feed states; return the re-ranks to run."""
        out: list[Firing] = []
        mine = self.feeds.get(event.device)
        if not mine:
            return out
        changes = {feed: st.observe(event) for feed, st in mine.items()}
        for task in self.tasks:
            feed = task.config.feed
            if feed not in changes:
                continue
            st = mine[feed]
            reason = task.policy.should_fire(st, changes[feed])
            if reason is None:
                continue
            snap = st.snapshot(task.config.max_exposures)
            views = tuple(self._views(event.device).last(task.config.max_page_views))
            out.append(Firing(task, event.device, reason, event.ts, snap, views))
        return out

    def apply(self, firing: Firing, result: RerankResult) -> bool:
        """Install a finished re-rank; False when its page was replaced meanwhile."""
        st = self.state(firing.device, firing.snapshot.feed)
        return st is not None and st.apply(result.page_id, result.order)

    def devices(self) -> Iterable[str]:
        return list(self.feeds)
