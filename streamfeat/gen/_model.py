"""The user model behind ``streamfeat generate``: who a user is and what one app session does.

Theory of operation. A user (:class:`Profile`) has an activity level (how long the app stays
closed between sessions), one to three interest groups (the categories it mostly sees and clicks),
and personal speeds (how long it dwells on a feed screen or a detail page, how fast it scrolls,
how readily it clicks, deletes, buys). :meth:`SessionWriter.session` plays one session of that
user in *true* time (milliseconds from the start of the simulation) as a generator of event
dicts in the app's order, each with its true time (integer ms) in ``ts``: the caller maps
true time to the device clock, which may jump back. Events are made
just in time, so a fleet of suspended sessions costs a few frames per device, and each event is
still in the CPU cache when it is written out.

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
function of its seed. Speed matters (benchmarks need logs of millions of events): the hot draws
use 4,096-step quantile tables of the normal and exponential laws indexed by ``getrandbits(12)``
(about seven times cheaper than ``lognormvariate``), and the feed and detail loops build their
event dicts inline.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Generator
from dataclasses import dataclass
from statistics import NormalDist
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
_ACTION_CUM = tuple(
    sum(w for _, w in _DETAIL_ACTIONS[: i + 1]) for i in range(len(_DETAIL_ACTIONS))
)
_CONTROLS = frozenset(("detail", "ask", "service"))
_BITS = 12
_STEPS = 1 << _BITS
#: Quantiles of the standard normal and of the unit exponential at (k + 0.5) / 4096.
_Z = tuple(NormalDist().inv_cdf((k + 0.5) / _STEPS) for k in range(_STEPS))
_E = tuple(-math.log1p(-(k + 0.5) / _STEPS) for k in range(_STEPS))
_LN = math.log
#: Pareto(1.05) popularity ranks at (k + 0.5) / 65536: a few items of each category are seen
#: by many users, most by few.
_RANK = tuple(min(int(((k + 0.5) / 65536) ** -0.95), _MAX_RANK) for k in range(65536))
_CACHED_RANKS = 64  # item id strings of the most popular ranks are built once
_ITEM_IDS = tuple(tuple(str(c * 100_000 + r) for r in range(_CACHED_RANKS)) for c in CATEGORIES)
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
        detail_mu=math.log(15_000) + rng.gauss(0.0, 0.4),
        click_p=min(0.2, 0.03 * rng.lognormvariate(0.0, 0.4)),
        delete_p=0.012 * rng.lognormvariate(0.0, 0.5),
        buy_boost=rng.lognormvariate(0.0, 0.5),
    )


_Events = Generator[dict[str, Any], None, bool]  # yields events; returns True when backgrounded


class SessionWriter:
    """Plays sessions of one user as generators of events in app order.

    Args:
        rng: the device's random source (shared with the caller).
        profile: the user.
        device: the device id written into every event.

    Attributes:
        t: the user's true time (ms, float), synced at every call between methods; each
            event carries its own true time in ``ts``.
    """

    __slots__ = ("_bits", "_cats", "_interest", "_rand", "device", "profile", "rng", "t")

    def __init__(self, rng: random.Random, profile: Profile, device: str) -> None:
        self.rng = rng
        self.profile = profile
        self.device = device
        self.t = 0.0
        self._interest = frozenset(profile.interests)
        self._cats = profile.interests
        self._bits = rng.getrandbits
        self._rand = rng.random

    # --- low level ------------------------------------------------------------------------

    def _ev(
        self,
        etype: str,
        page: str | None = None,
        item: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        ev: dict[str, Any] = {"device": self.device, "ts": int(self.t), "type": etype}
        if page is not None:
            ev["page"] = page
        if item is not None:
            ev["item"] = item
        if args is not None:
            ev["args"] = args
        return ev

    def _lognormal(self, mu: float, sigma: float) -> float:
        return math.exp(mu + sigma * _Z[self._bits(_BITS)])

    def _pick_item(self) -> tuple[str, int]:
        """Draw a feed item: a category (mostly an interest) and a Zipf-like popularity rank."""
        u = self._rand()
        explore = self.profile.explore
        if u < explore:
            cat = CATEGORIES[int(u / explore * len(CATEGORIES))]
        else:
            cat = self._cats[int((u - explore) / (1.0 - explore) * len(self._cats))]
        rank = _RANK[self._bits(16)]
        if rank < _CACHED_RANKS:
            return _ITEM_IDS[cat - CATEGORIES[0]][rank], cat
        return str(cat * 100_000 + rank), cat

    # --- a session ------------------------------------------------------------------------

    def session(self, start: float) -> _Events:
        """Play one session from true time ``start`` (ms); ``self.t`` ends after its last event.

        Returns (as the generator's value) True when the app went to the background with
        pages still open.
        """
        rand = self._rand
        self.t = start
        yield self._ev("app_foreground")
        self.t += 300 + 1200 * rand()
        visits = 1 + int(_E[self._bits(_BITS)] * self.profile.visits_scale)
        for _ in range(visits):
            if (yield from self._feed_visit()):
                return True
            if rand() < 0.12 and (yield from self._cart_visit()):
                return True
            self.t += self._lognormal(_LN(4000), 0.8)
        yield self._ev("app_background")
        return False

    def _cart_visit(self) -> _Events:
        rand = self._rand
        yield self._ev("page_enter", "cart")
        for _ in range(int(rand() * 5)):
            self.t += self._lognormal(_LN(2500), 0.6)
            yield self._ev(
                "scroll", "cart", args={"speed": int(self._lognormal(self.profile.speed_mu, 0.5))}
            )
        if rand() < 0.15 * self.profile.buy_boost:
            item, cat = self._pick_item()
            self.t += self._lognormal(_LN(6000), 0.5)
            yield self._ev(
                "purchase",
                "cart",
                item,
                {"category": cat, "qty": 1 + int(_E[self._bits(_BITS)] / 2)},
            )
        self.t += self._lognormal(_LN(3000), 0.6)
        return (yield from self._leave("cart", 0.03))

    def _leave(self, page: str, background_p: float) -> _Events:
        """Leave ``page``: usually ``page_exit``, sometimes straight to the background."""
        if self._rand() < background_p:
            yield self._ev("app_background")
            return True
        yield self._ev("page_exit", page)
        return False

    def _feed_visit(self) -> _Events:
        """One visit of the feed (the hot loop: exposures and scrolls are built inline)."""
        bits, rand, exp = self._bits, self._rand, math.exp
        prof = self.profile
        device, interest = self.device, self._interest
        explore, cats, ids, first = prof.explore, self._cats, _ITEM_IDS, CATEGORIES[0]
        all_scale = len(CATEGORIES) / explore
        cats_scale = len(cats) / (1.0 - explore)
        yield self._ev("page_enter", "home_feed")
        t = self.t + 200 + 700 * rand()
        visible: list[tuple[str, int, int]] = []
        pos = speed = 0
        new = 4
        leave_p = 1.0 / (8 + 25 * _E[bits(_BITS)] * prof.visits_scale)
        while True:
            # a fast flick shows items only briefly
            dwell = exp(prof.screen_mu + 0.7 * _Z[bits(_BITS)]) * (0.25 if speed > 2500 else 1.0)
            for _ in range(new):
                # self._pick_item() inlined: this is the hottest line of the generator
                u = rand()
                if u < explore:
                    cat = CATEGORIES[int(u * all_scale)]
                else:
                    cat = cats[int((u - explore) * cats_scale)]
                rank = _RANK[bits(16)]
                item = ids[cat - first][rank] if rank < _CACHED_RANKS else str(cat * 100_000 + rank)
                pos += 1
                visible.append((item, cat, pos))
                t += 40 * rand()
                yield {
                    "device": device,
                    "ts": int(t),
                    "type": "exposure",
                    "page": "home_feed",
                    "item": item,
                    "args": {"pos": pos, "dur_ms": int(dwell * (0.6 + rand())), "category": cat},
                }
            if len(visible) > 4:
                del visible[:-4]
            # self.t is the user's time for the other methods: synced whenever one is called
            self.t = t = t + dwell
            u = rand()
            click_p = prof.click_p * (0.3 + sum([v[1] in interest for v in visible]))
            if u < click_p:
                if (yield from self._click_from_feed(visible)):
                    return True
                new = speed = 0
            elif u < click_p + prof.delete_p:
                yield from self._delete(visible)
                new, speed = 1, 0
            elif rand() < leave_p:
                return (yield from self._leave("home_feed", 0.08))
            else:
                speed = int(exp(prof.speed_mu + 0.6 * _Z[bits(_BITS)]))
                yield {
                    "device": device,
                    "ts": int(t),
                    "type": "scroll",
                    "page": "home_feed",
                    "args": {"speed": speed},
                }
                new = 1 + min(5, speed // 700)
                continue
            t = self.t

    def _click_from_feed(self, visible: list[tuple[str, int, int]]) -> _Events:
        rand = self._rand
        liked = [v for v in visible if v[1] in self._interest] or visible
        item, cat, pos = liked[int(rand() * len(liked))]
        yield self._ev("click", "home_feed", item, {"pos": pos, "category": cat})
        self.t += 150 + 450 * rand()
        cut = yield from self._detail_visit(item, cat, 0, "feed")
        self.t += 200 + 600 * rand()
        return cut

    def _delete(self, visible: list[tuple[str, int, int]]) -> _Events:
        rand = self._rand
        # people long-press what they do not like: prefer items outside their interests
        dull = [v for v in visible if v[1] not in self._interest] or visible
        victim = dull[int(rand() * len(dull))]
        visible.remove(victim)
        item, cat, pos = victim
        self.t += 400 + 800 * rand()  # the long press itself
        reason = DELETE_REASONS[bisect(_REASON_CUM, rand() * 100)]
        yield self._ev("delete", "home_feed", item, {"pos": pos, "reason": reason, "category": cat})
        self.t += 300 + 600 * rand()
        return False

    # --- item detail ----------------------------------------------------------------------

    def _detail_visit(self, item: str, cat: int, depth: int, source: str) -> _Events:
        """One visit of an item's detail page, nested visits and shop visits included."""
        bits, rand = self._bits, self._rand
        enter = self.t
        yield self._ev("page_enter", "item_detail", item, {"category": cat, "source": source})
        end = self.t + min(900_000.0, self._lognormal(self.profile.detail_mu, 0.9))
        chosen = False
        while True:
            step = 4500 * _E[bits(_BITS)]
            if self.t + step >= end:
                break
            self.t += step
            if rand() < 0.006:
                yield self._ev("app_background")
                return True
            action = _ACTION_NAMES[bisect(_ACTION_CUM, rand() * _ACTION_CUM[-1])]
            if action == "recommend" and depth < _MAX_DEPTH:
                before = self.t
                if (yield from self._recommend(item, cat, depth)):
                    return True
                end += self.t - before  # time spent in the inner visit does not count here
            elif action == "shop":
                before = self.t
                if (yield from self._shop_visit()):
                    return True
                end += self.t - before
            else:
                ev, chosen = self._detail_action(action, item, cat, chosen)
                yield ev
        self.t = max(end, self.t)  # true time never goes back within a device
        yield self._ev(
            "page_exit", "item_detail", item, {"category": cat, "dur_ms": int(end - enter)}
        )
        return False

    def _detail_action(
        self, action: str, item: str, cat: int, chosen: bool
    ) -> tuple[dict[str, Any], bool]:
        """Return one in-page action and whether a SKU is now chosen or the item carted."""
        rand = self._rand
        boost = self.profile.buy_boost
        if action in ("scroll", "recommend") or (
            action in ("add_cart", "favorite") and rand() > 0.6 * boost
        ):
            speed = int(self._lognormal(self.profile.speed_mu, 0.5))
            return self._ev("scroll", "item_detail", item, {"speed": speed}), chosen
        if action in _CONTROLS:
            return self._ev("click", "item_detail", item, {"control": action}), chosen
        if action == "select_sku" or (
            action == "purchase" and not (chosen and rand() < 0.5 * boost)
        ):
            return self._ev("select_sku", "item_detail", item, {"sku": 1 + int(rand() * 6)}), True
        if action == "purchase":
            qty = 1 + int(_E[self._bits(_BITS)] / 2)
            return self._ev("purchase", "item_detail", item, {"category": cat, "qty": qty}), chosen
        return self._ev(
            action, "item_detail", item, {"category": cat}
        ), chosen or action == "add_cart"

    def _recommend(self, item: str, cat: int, depth: int) -> _Events:
        rand = self._rand
        # recommendations stay close: usually the same category
        if rand() < 0.7:
            other, other_cat = str(cat * 100_000 + _RANK[self._bits(16)]), cat
        else:
            other, other_cat = self._pick_item()
        if other == item:
            other = str(int(item) + 1)
        yield self._ev("click", "item_detail", item, {"control": "recommend", "target": other})
        self.t += 150 + 450 * rand()
        cut = yield from self._detail_visit(other, other_cat, depth + 1, "recommend")
        self.t += 200 + 500 * rand()
        return cut

    def _shop_visit(self) -> _Events:
        rand = self._rand
        shop = 1 + min(int((1.0 - rand()) ** -0.83), 50_000)
        yield self._ev("page_enter", "shop", args={"shop": shop})
        for _ in range(1 + int(rand() * 5)):
            self.t += self._lognormal(_LN(3000), 0.7)
            yield self._ev(
                "scroll", "shop", args={"speed": int(self._lognormal(self.profile.speed_mu, 0.5))}
            )
        self.t += self._lognormal(_LN(2000), 0.6)
        if rand() < 0.01:
            yield self._ev("app_background")
            return True
        yield self._ev("page_exit", "shop", args={"shop": shop})
        return False
