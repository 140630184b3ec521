"""The user model behind ``streamfeat generate``: who a user is and what one app session does.

Theory of operation. A user (:class:`Profile`) has an activity level (how long the app stays
closed between sessions), one to three interest groups (the categories it mostly sees and clicks),
and personal speeds (how long it dwells on a feed screen or a detail page, how fast it scrolls,
how readily it clicks, deletes, buys). :class:`SessionWriter` plays one session of that user in
*true* time (milliseconds from the start of the simulation) and appends the events, already in
the app's order, to two parallel lists: the true times and the event dicts (``ts`` left at 0;
the caller maps true time to the device clock, which may jump back).

One session: ``app_foreground``, one or more feed visits (``page_enter home_feed``, screens of
``exposure`` events, ``scroll``, long-press ``delete``, ``click`` into an ``item_detail`` visit,
``page_exit home_feed``), now and then a ``cart`` page, then ``app_background``. A detail visit
holds in-page actions (``scroll``, ``select_sku``, ``add_cart``, ``favorite``, ``purchase``,
``comment``, ``share``, ``click`` with ``args.control``), ``shop`` visits, and nested visits of a
recommended item (``click`` with ``control: recommend``, then the inner visit, exited first).
The app sometimes goes to the background with pages still open: those visits are never exited.

Distributions: session gaps are exponential; dwell on a screen and on a detail page, scroll
speed and session length are lognormal or geometric; item popularity within a category is
Zipf-like (a Pareto rank), so popular items recur across users.

Everything draws from the one ``random.Random`` it is given, so a device's events are a pure
function of its seed.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass
from typing import Any

__all__ = ["CATEGORIES", "Profile", "SessionWriter", "item_category", "make_profile"]

GROUPS = 12
CATEGORIES_PER_GROUP = 16
#: Category ids: ``100 + group * 16 + k``; a category's items are ``category * 100_000 + rank``.
CATEGORIES = tuple(100 + i for i in range(GROUPS * CATEGORIES_PER_GROUP))
_MAX_RANK = 20_000
DELETE_REASONS = ("not_interested", "seen_already", "low_quality", "offensive", "too_many_similar")
_REASON_CUM = (55, 75, 88, 93, 100)
_LEVELS = (
    # name, share of users (cumulative %), mean gap between sessions (ms), session visits scale
    ("light", 30, 30 * 60_000, 0.6),
    ("regular", 80, 9 * 60_000, 1.0),
    ("heavy", 100, 3 * 60_000, 1.5),
)
# Actions inside a detail visit: (name, weight). "purchase" is only drawn once the user selected
# a SKU or carted the item; "recommend" only while nesting stays shallow.
_DETAIL_ACTIONS = (
    ("scroll", 40),
    ("detail", 9),
    ("select_sku", 8),
    ("comment", 6),
    ("add_cart", 5),
    ("recommend", 5),
    ("favorite", 4),
    ("ask", 3),
    ("shop", 3),
    ("service", 2),
    ("share", 2),
    ("purchase", 3),
)
_ACTION_NAMES = tuple(a for a, _ in _DETAIL_ACTIONS)
_ACTION_CUM = tuple(sum(w for _, w in _DETAIL_ACTIONS[: i + 1]) for i in range(len(_DETAIL_ACTIONS)))
_CONTROLS = frozenset(("detail", "ask", "service"))
_MAX_DEPTH = 2  # a recommended item opened from a recommended item, no deeper


def item_category(item: str) -> int:
    """Return the category id of a generated item id."""
    return int(item) // 100_000


@dataclass(frozen=True, slots=True)
class Profile:
    """Who one simulated user is (drawn once per device from its seed).

    Attributes:
        level: ``light``, ``regular`` or ``heavy``.
        gap_mean_ms: mean time the app stays closed between sessions (exponential).
        interests: the categories the user mostly sees and clicks.
        explore: chance that a feed item comes from outside the interests.
        visits_scale: scales how many feed visits a session holds.
        screen_mu: log-median dwell on one feed screen (ms).
        speed_mu: log-median scroll speed (px/s).
        detail_mu: log-median dwell on a detail page (ms).
        click_p: chance a feed screen ends in a click (on an interesting item).
        delete_p: chance a feed screen ends in a long-press delete.
        buy_boost: multiplies the weight of cart, favourite and purchase actions.
    """

    level: str
    gap_mean_ms: float
    interests: tuple[int, ...]
    explore: float
    visits_scale: float
    screen_mu: float
    speed_mu: float
    detail_mu: float
    click_p: float
    delete_p: float
    buy_boost: float


def make_profile(rng: random.Random) -> Profile:
    """Draw a user: activity level, interest groups and personal speeds."""
    roll = rng.random() * 100
    level, _, gap, scale = next(lv for lv in _LEVELS if roll < lv[1])
    groups = rng.sample(range(GROUPS), 1 + min(2, int(rng.expovariate(1.2))))
    interests = tuple(
        100 + g * CATEGORIES_PER_GROUP + k
        for g in groups
        for k in rng.sample(range(CATEGORIES_PER_GROUP), rng.randint(2, 5))
    )
    return Profile(
        level=level,
        gap_mean_ms=gap * rng.lognormvariate(0.0, 0.3),
        interests=interests,
        explore=rng.uniform(0.15, 0.4),
        visits_scale=scale,
        screen_mu=math.log(1400) + rng.gauss(0.0, 0.3),
        speed_mu=math.log(900) + rng.gauss(0.0, 0.35),
        detail_mu=math.log(22_000) + rng.gauss(0.0, 0.4),
        click_p=min(0.3, 0.07 * rng.lognormvariate(0.0, 0.4)),
        delete_p=0.012 * rng.lognormvariate(0.0, 0.5),
        buy_boost=rng.lognormvariate(0.0, 0.5),
    )


class SessionWriter:
    """Plays sessions of one user, appending ``(true time, event)`` pairs in app order.

    Args:
        rng: the device's random source (shared with the caller).
        profile: the user.
        device: the device id written into every event.
    """

    __slots__ = ("_cats", "_interest", "device", "events", "profile", "rng", "t", "times")

    def __init__(self, rng: random.Random, profile: Profile, device: str) -> None:
        self.rng = rng
        self.profile = profile
        self.device = device
        self.t = 0.0
        self.times: list[int] = []
        self.events: list[dict[str, Any]] = []
        self._interest = frozenset(profile.interests)
        self._cats = profile.interests

    # --- low level ------------------------------------------------------------------------

    def _emit(self, etype: str, page: str | None = None, item: str | None = None,
              args: dict[str, Any] | None = None) -> None:
        ev: dict[str, Any] = {"device": self.device, "ts": 0, "type": etype}
        if page is not None:
            ev["page"] = page
        if item is not None:
            ev["item"] = item
        if args is not None:
            ev["args"] = args
        self.times.append(int(self.t))
        self.events.append(ev)

    def _pick_item(self) -> tuple[str, int]:
        rng = self.rng
        if rng.random() < self.profile.explore:
            cat = CATEGORIES[int(rng.random() * len(CATEGORIES))]
        else:
            cat = self._cats[int(rng.random() * len(self._cats))]
        rank = min(int(rng.paretovariate(1.05)), _MAX_RANK)
        return str(cat * 100_000 + rank), cat

    # --- a session ------------------------------------------------------------------------

    def session(self, start: float) -> None:
        """Play one session starting at true time ``start`` (ms); ``self.t`` ends after it."""
        rng = self.rng
        self.t = start
        self._emit("app_foreground")
        self.t += rng.uniform(300, 1500)
        visits = 1 + int(rng.expovariate(1.0) * self.profile.visits_scale)
        for _ in range(visits):
            if self._feed_visit():
                return  # the app went to the background with pages open
            if rng.random() < 0.12 and self._cart_visit():
                return
            self.t += rng.lognormvariate(math.log(4000), 0.8)
        self._emit("app_background")

    def _cart_visit(self) -> bool:
        rng = self.rng
        self._emit("page_enter", "cart")
        for _ in range(rng.randint(0, 4)):
            self.t += rng.lognormvariate(math.log(2500), 0.6)
            self._emit("scroll", "cart", args={"speed": int(rng.lognormvariate(self.profile.speed_mu, 0.5))})
        if rng.random() < 0.15 * self.profile.buy_boost:
            item, cat = self._pick_item()
            self.t += rng.lognormvariate(math.log(6000), 0.5)
            self._emit("purchase", "cart", item, {"category": cat, "qty": 1 + int(rng.expovariate(2.0))})
        self.t += rng.lognormvariate(math.log(3000), 0.6)
        if rng.random() < 0.03:
            self._emit("app_background")
            return True
        self._emit("page_exit", "cart")
        return False

    def _feed_visit(self) -> bool:
        """One visit of the feed; return True when it ended with the app in the background."""
        rng = self.rng
        prof = self.profile
        self._emit("page_enter", "home_feed")
        self.t += rng.uniform(200, 900)
        visible: list[tuple[str, int, int]] = []
        pos = 0
        new = 4
        leave_p = 1.0 / (8 + rng.expovariate(1 / 25) * prof.visits_scale)
        speed = 0
        while True:
            # a fast flick shows items only briefly
            dwell = rng.lognormvariate(prof.screen_mu, 0.7) * (0.25 if speed > 2500 else 1.0)
            for _ in range(new):
                item, cat = self._pick_item()
                pos += 1
                visible.append((item, cat, pos))
                self.t += rng.random() * 40
                self._emit("exposure", "home_feed", item,
                           {"pos": pos, "dur_ms": int(dwell * (0.6 + rng.random())), "category": cat})
            if len(visible) > 4:
                del visible[: len(visible) - 4]
            self.t += dwell
            u = rng.random()
            click_p = self._click_p(visible)
            if u < click_p:
                if self._click_from_feed(visible):
                    return True
                new, speed = 0, 0
            elif u < click_p + prof.delete_p:
                self._delete(visible)
                new, speed = 1, 0
            elif rng.random() < leave_p:
                return self._leave("home_feed", 0.08)
            else:
                speed = int(rng.lognormvariate(prof.speed_mu, 0.6))
                self._emit("scroll", "home_feed", args={"speed": speed})
                new = 1 + min(5, speed // 1200)

    def _click_p(self, visible: list[tuple[str, int, int]]) -> float:
        hits = sum(1 for _, cat, _ in visible if cat in self._interest)
        return self.profile.click_p * (0.3 + hits)

    def _click_from_feed(self, visible: list[tuple[str, int, int]]) -> bool:
        rng = self.rng
        liked = [v for v in visible if v[1] in self._interest] or visible
        item, cat, pos = liked[int(rng.random() * len(liked))]
        self._emit("click", "home_feed", item, {"pos": pos, "category": cat})
        self.t += rng.uniform(150, 600)
        cut = self._detail_visit(item, cat, 0, "feed")
        self.t += rng.uniform(200, 800)
        return cut

    def _delete(self, visible: list[tuple[str, int, int]]) -> None:
        rng = self.rng
        # people long-press what they do not like: prefer items outside their interests
        dull = [v for v in visible if v[1] not in self._interest] or visible
        victim = dull[int(rng.random() * len(dull))]
        visible.remove(victim)
        item, cat, pos = victim
        self.t += rng.uniform(400, 1200)  # the long press itself
        reason = DELETE_REASONS[bisect(_REASON_CUM, rng.random() * 100)]
        self._emit("delete", "home_feed", item, {"pos": pos, "reason": reason, "category": cat})
        self.t += rng.uniform(300, 900)

    def _leave(self, page: str, background_p: float) -> bool:
        """Leave ``page``: usually ``page_exit``, sometimes straight to the background."""
        if self.rng.random() < background_p:
            self._emit("app_background")
            return True
        self._emit("page_exit", page)
        return False

    # --- item detail ----------------------------------------------------------------------

    def _detail_visit(self, item: str, cat: int, depth: int, source: str) -> bool:
        """One visit of an item's detail page; return True when the app went to the background."""
        rng = self.rng
        prof = self.profile
        enter = self.t
        self._emit("page_enter", "item_detail", item, {"category": cat, "source": source})
        end = self.t + min(900_000.0, rng.lognormvariate(prof.detail_mu, 0.9))
        chosen = False
        while True:
            step = rng.expovariate(1 / 4500)
            if self.t + step >= end:
                break
            self.t += step
            if rng.random() < 0.006:
                self._emit("app_background")
                return True
            action = _ACTION_NAMES[bisect(_ACTION_CUM, rng.random() * _ACTION_CUM[-1])]
            if action == "recommend" and depth < _MAX_DEPTH:
                before = self.t
                if self._recommend(item, cat, depth):
                    return True
                end += self.t - before  # time spent in the inner visit does not count here
            elif action == "shop":
                if self._shop_visit():
                    return True
            else:
                chosen = self._detail_action(action, item, cat, chosen)
        self.t = end
        self._emit("page_exit", "item_detail", item, {"category": cat, "dur_ms": int(end - enter)})
        return False

    def _detail_action(self, action: str, item: str, cat: int, chosen: bool) -> bool:
        """Emit one in-page action; return whether a SKU is chosen or the item carted."""
        rng = self.rng
        boost = self.profile.buy_boost
        if action == "scroll" or action == "recommend":
            self._emit("scroll", "item_detail", item, {"speed": int(rng.lognormvariate(self.profile.speed_mu, 0.5))})
        elif action in _CONTROLS:
            self._emit("click", "item_detail", item, {"control": action})
        elif action == "purchase":
            if chosen and rng.random() < 0.5 * boost:
                self._emit("purchase", "item_detail", item, {"category": cat, "qty": 1 + int(rng.expovariate(2.0))})
            else:
                self._emit("select_sku", "item_detail", item, {"sku": 1 + int(rng.random() * 6)})
                return True
        elif action in ("add_cart", "favorite") and rng.random() > min(1.0, 0.6 * boost):
            self._emit("scroll", "item_detail", item, {"speed": int(rng.lognormvariate(self.profile.speed_mu, 0.5))})
        elif action == "select_sku":
            self._emit("select_sku", "item_detail", item, {"sku": 1 + int(rng.random() * 6)})
            return True
        else:
            self._emit(action, "item_detail", item, {"category": cat})
            return chosen or action == "add_cart"
        return chosen

    def _recommend(self, item: str, cat: int, depth: int) -> bool:
        rng = self.rng
        # recommendations stay close: usually the same category
        if rng.random() < 0.7:
            other = str(cat * 100_000 + min(int(rng.paretovariate(1.05)), _MAX_RANK))
            other_cat = cat
        else:
            other, other_cat = self._pick_item()
        if other == item:
            other = str(int(item) + 1)
        self._emit("click", "item_detail", item, {"control": "recommend", "target": other})
        self.t += rng.uniform(150, 600)
        cut = self._detail_visit(other, other_cat, depth + 1, "recommend")
        self.t += rng.uniform(200, 700)
        return cut

    def _shop_visit(self) -> bool:
        rng = self.rng
        shop = 1 + min(int(rng.paretovariate(1.2)), 50_000)
        self._emit("page_enter", "shop", args={"shop": shop})
        for _ in range(rng.randint(1, 5)):
            self.t += rng.lognormvariate(math.log(3000), 0.7)
            self._emit("scroll", "shop", args={"speed": int(rng.lognormvariate(self.profile.speed_mu, 0.5))})
        self.t += rng.lognormvariate(math.log(2000), 0.6)
        if rng.random() < 0.01:
            self._emit("app_background")
            return True
        self._emit("page_exit", "shop", args={"shop": shop})
        return False
