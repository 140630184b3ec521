"""Simulated users who respond to the order they are shown (the served feed).

Theory of operation
-------------------
A :class:`ServedUser` is a pure, seeded core: no I/O, no clock reads. Its app use is a
generator (:meth:`ServedUser.play`) that yields what the app does, one step at a time:

* an :class:`SetPage` (a feed visit begins: the server's page of candidates for it),
* an event dict (``app_foreground``, ``page_enter``, ``exposure``, ``click``, ``delete``,
  ``scroll``, the detail visit of a clicked item, ``page_exit``, ``app_background``),
* a :class:`Look` (the user is about to look at the next position of the feed): the driver
  sends back the order the device shows *now* (``agent.page(feed)``; with the ``server``
  ranking mode, :meth:`SetPage.server_order`), and the user looks at the first item of it they
  have not seen yet.

Every random draw is keyed by what it decides (device, session, visit, position, purpose)
rather than taken from one stream, so two runs of the same user under different orders draw the
same numbers at the same moment (*common random numbers*): the comparison of two ranking modes
is paired at the level of each look, and the difference comes from the order only.

The model (docs/loop.md gives every equation and default; :class:`UserParams` holds them):

* Long-term interests ``L[c]`` over the 192 categories (12 groups of 16): the user's groups and
  categories, known to the server.
* Session interests ``s[c]``, unknown to the server: each session starts with an intent
  (a category, raised with its group), then drifts with what the user does (a click or a long
  look raises the category and its group, a delete or a fast scroll lowers them) and decays
  toward 0 at every look. The *current* interest is ``u[c] = L[c] + s[c]``.
* Position bias ``exam(i) = (1 + i / tau) ** -beta`` and fatigue ``exp(-n / phi)`` (``n``:
  items looked at in the session) scale the chance to act on the item at position ``i``.
* ``P(click) = exam(i) * fatigue * sigmoid(a0 + a_u * u[c] + a_q * ln(q / q0))``, ``q`` the
  item's catalogue ``server_score``; ``P(delete)``, ``P(purchase | click)`` and the dwell on the
  detail page grow or fall with ``u[c]`` (see docs/loop.md).

The server's page (:func:`server_page`) draws 50 candidates from the long-term interests and
orders them by the server's best guess, the same click logit with ``u = L`` (and no position
term): exactly the gap on-device re-ranking exists to close is the session part.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from streamfeat.gen._model import CATEGORIES, CATEGORIES_PER_GROUP, GROUPS
from streamfeat.ranking._catalogue import item_features as _item_features

__all__ = [
    "FEED",
    "Look",
    "ServedStats",
    "ServedUser",
    "SetPage",
    "UserParams",
    "category_of",
    "group_of",
    "play_offline",
    "server_page",
]

FEED = "home_feed"


def category_of(item: str) -> int:
    """The catalogue category of ``item``."""
    return int(item_features(item)["category"])


@lru_cache(maxsize=65_536)
def item_features(item: str) -> dict[str, float]:
    """The catalogue's features of ``item`` (cached: a pure function of the id; read only)."""
    return _item_features(item)


@dataclass(frozen=True, slots=True)
class UserParams:
    """The user model's parameters (docs/loop.md: "The user model"); defaults shown there."""

    page_size: int = 50  # candidates per server page
    intent_p: float = 0.9  # chance a session has an intent
    intent_own_group_p: float = 0.7  # the intent's category is in one of the user's groups
    intent: float = 3.0  # s[c*] at the session start
    rho: float = 0.5  # share of a change that reaches the other categories of the group
    click_gain: float = 0.6  # s[c] += after a click
    dwell_gain: float = 0.2  # s[c] += after a long look (exposure > dwell_long_ms)
    delete_loss: float = 1.0  # s[c] -= after a delete
    skip_loss: float = 0.15  # s[c] -= after a fast scroll past (exposure < fast_ms)
    decay: float = 0.97  # s *= at every look
    tau: float = 4.0  # position bias: exam(i) = (1 + i / tau) ** -beta
    beta: float = 0.6
    phi: float = 200.0  # fatigue: exp(-n / phi), n = items looked at in the session
    a0: float = -4.0  # click logit: a0 + a_u * u[c] + a_q * ln(q / q0)
    a_u: float = 1.2
    a_q: float = 0.6
    q0: float = 0.05
    delete_p: float = 0.04  # P(delete) = exam(i) * delete_p * exp(-u[c])
    buy_p: float = 0.25  # P(purchase | click) = buy_p * sigmoid(2 (u[c] - 1.5))
    leave_p: float = 0.03  # P(leave the feed after a look) = leave_p + leave_n * n
    leave_n: float = 0.0004
    look_ms: float = 1100.0  # median exposure of a card: look_ms * exp(0.35 u[c] + 0.5 z)
    dwell_long_ms: float = 2500.0
    fast_ms: float = 450.0
    detail_ms: float = 12000.0  # median detail dwell after a click: detail_ms * exp(0.4 u[c])
    visits_mean: float = 2.0  # feed visits per session: 1 + geometric of this mean
    gap_ms: float = 240_000.0  # mean gap between sessions (exponential)


@dataclass(frozen=True, slots=True)
class SetPage:
    """A feed visit begins: install the server's page (``items`` in the server's order)."""

    feed: str
    page_id: str
    items: tuple[str, ...]
    deleted: frozenset[str] = frozenset()

    def server_order(self) -> list[str]:
        """The order a device that does not re-rank shows: the page less deleted items."""
        return [i for i in self.items if i not in self.deleted]


@dataclass(frozen=True, slots=True)
class Look:
    """The user looks at the next position of ``feed``: send back the order shown now."""

    feed: str
    position: int


@dataclass(slots=True)
class ServedStats:
    """What one user did (summed over the run)."""

    sessions: int = 0
    pages: int = 0
    exposures: int = 0
    clicks: int = 0
    purchases: int = 0
    deletes: int = 0
    by_position: dict[int, list[int]] = field(default_factory=dict)  # pos -> [exposures, clicks]

    def as_dict(self) -> dict[str, Any]:
        """A msgpack/JSON-ready form."""
        return {"sessions": self.sessions, "pages": self.pages, "exposures": self.exposures,
                "clicks": self.clicks, "purchases": self.purchases, "deletes": self.deletes,
                "by_position": {str(k): v for k, v in sorted(self.by_position.items())}}  # fmt: skip


def group_of(category: int) -> int:
    """The group (0-11) of a category id (100-291)."""
    return (category - CATEGORIES[0]) // CATEGORIES_PER_GROUP


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class _Draws:
    """Counter-based uniforms: ``u(*key)`` is a pure function of the seed and the key."""

    __slots__ = ("_prefix",)

    def __init__(self, seed: int, device: str) -> None:
        self._prefix = f"streamfeat.users:{seed}:{device}:".encode()

    def u(self, *key: object) -> float:
        h = hashlib.blake2b(self._prefix + repr(key).encode(), digest_size=8).digest()
        (word,) = struct.unpack("<Q", h)
        return float(word >> 11) / 9007199254740992.0

    def z(self, *key: object) -> float:
        """A standard normal draw (Box-Muller on two keyed uniforms)."""
        u1 = max(self.u(*key, "z1"), 1e-12)
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * self.u(*key, "z2"))


def long_term_interests(draws: _Draws) -> dict[int, float]:
    """The user's long-term interests: 1-3 groups, 2-5 categories in each, weight in [0.8, 1.6)."""
    n_groups = 1 + min(2, int(-math.log(1.0 - draws.u("groups")) / 1.2))
    groups: list[int] = []
    k = 0
    while len(groups) < n_groups:
        g = int(draws.u("group", k) * GROUPS)
        k += 1
        if g not in groups:
            groups.append(g)
    interests: dict[int, float] = {}
    for g in groups:
        n = 2 + int(draws.u("ncat", g) * 4)
        order = sorted(range(CATEGORIES_PER_GROUP), key=lambda j: draws.u("cat", g, j))
        for j in order[:n]:
            interests[CATEGORIES[g * CATEGORIES_PER_GROUP + j]] = 0.8 + 0.8 * draws.u("w", g, j)
    return interests


def server_logit(params: UserParams, interest: float, item: str) -> float:
    """The click logit without the position term: the server's score with ``interest = L[c]``."""
    q = item_features(item)["server_score"]
    return params.a0 + params.a_u * interest + params.a_q * math.log(max(q, 1e-6) / params.q0)


def server_page(
    params: UserParams, interests: dict[int, float], draws: _Draws, key: tuple[object, ...]
) -> list[str]:
    """The server's page for one visit: candidates drawn from the long-term interests (half),
    the user's groups (a fifth) and all categories (the rest), Zipf-like popularity within a
    category, ordered by :func:`server_logit` with the long-term interest (ties by item id)."""
    cats = sorted(interests)
    groups = sorted({group_of(c) for c in cats})
    items: list[str] = []
    j = 0
    while len(items) < params.page_size:
        u = draws.u(*key, "src", j)
        v = draws.u(*key, "pick", j)
        if u < 0.5 and cats:
            cat = cats[int(v * len(cats))]
        elif u < 0.7 and groups:
            g = groups[int(v * len(groups))]
            cat = CATEGORIES[g * CATEGORIES_PER_GROUP + int(draws.u(*key, "gc", j) * 16)]
        else:
            cat = CATEGORIES[int(v * len(CATEGORIES))]
        rank = 1 + min(int((draws.u(*key, "rank", j) + 1e-9) ** -0.95), 20_000) % 20_000
        j += 1
        item = str(cat * 100_000 + rank)
        if item not in items:
            items.append(item)
    scored = [(-server_logit(params, interests.get(int(i) // 100_000, 0.0), i), i) for i in items]
    return [i for _, i in sorted(scored)]


Step = SetPage | Look | dict[str, Any]


class ServedUser:
    """One simulated user of a served feed (see the module docstring).

    Args:
        device: the device id (written into every event).
        seed: the run's seed; the same key and seed give the same user and draws.
        params: the model's parameters.
        key: who the user is (default: the device id): part of every random key, so that a
            device keeps its user across runs whose device ids carry a prefix.
    """

    def __init__(
        self, device: str, seed: int, params: UserParams | None = None, *, key: str = ""
    ) -> None:
        self.device = device
        self.params = params or UserParams()
        self._d = _Draws(seed, key or device)
        self.interests = long_term_interests(self._d)
        self.session: dict[int, float] = {}  # s[c], the session part
        self.stats = ServedStats()
        self.deleted: set[str] = set()
        self.t = 0.0  # true time, ms from the start of the run

    # -- the interest state (pure) --------------------------------------------------------

    def interest(self, category: int) -> float:
        """The current interest ``u[c] = L[c] + s[c]``."""
        return self.interests.get(category, 0.0) + self.session.get(category, 0.0)

    def shift(self, category: int, amount: float) -> None:
        """Move ``s[c]`` by ``amount`` and the other categories of its group by ``rho`` of it."""
        g = group_of(category)
        side = amount * self.params.rho
        for k in range(CATEGORIES_PER_GROUP):
            c = CATEGORIES[g * CATEGORIES_PER_GROUP + k]
            self.session[c] = self.session.get(c, 0.0) + (amount if c == category else side)

    def start_session(self, index: int) -> None:
        """Reset the session part and draw the session's intent."""
        p, d = self.params, self._d
        self.session = {}
        if d.u("intent", index) < p.intent_p:
            own = sorted({group_of(c) for c in self.interests})
            if d.u("intent-own", index) < p.intent_own_group_p and own:
                g = own[int(d.u("intent-g", index) * len(own))]
                cat = CATEGORIES[g * CATEGORIES_PER_GROUP + int(d.u("intent-c", index) * 16)]
            else:
                cat = CATEGORIES[int(d.u("intent-c", index) * len(CATEGORIES))]
            self.shift(cat, p.intent)

    def exam(self, position: int) -> float:
        """Position bias: the chance to really look at position ``position`` (0-based)."""
        return float((1.0 + position / self.params.tau) ** -self.params.beta)

    def click_p(self, item: str, position: int, looked: int) -> float:
        """P(click) of ``item`` at ``position`` after ``looked`` items in the session."""
        p = self.params
        cat = category_of(item)
        logit = server_logit(p, self.interest(cat), item)
        return self.exam(position) * math.exp(-looked / p.phi) * _sigmoid(logit)

    def delete_p(self, item: str, position: int) -> float:
        """P(delete) of ``item`` at ``position``."""
        cat = category_of(item)
        return self.exam(position) * self.params.delete_p * math.exp(-self.interest(cat))

    # -- playing --------------------------------------------------------------------------

    def play(self, minutes: float, start_ts: int) -> Generator[Step, list[str] | None, None]:
        """Yield the app's steps for ``minutes`` of use (see the module docstring)."""
        p, d = self.params, self._d
        horizon = minutes * 60_000.0
        self.t = d.u("start") * p.gap_ms
        index = 0
        while self.t < horizon:
            self.start_session(index)
            self.stats.sessions += 1
            yield self._ev("app_foreground", start_ts)
            visits = 1 + int(-math.log(1.0 - d.u("visits", index)) * (p.visits_mean - 1.0))
            looked = 0
            for v in range(visits):
                if self.t >= horizon:
                    break
                looked = yield from self._visit(index, v, looked, start_ts)
                self.t += 1000 + 4000 * d.u("between", index, v)
            yield self._ev("app_background", start_ts)
            self.t += -math.log(1.0 - d.u("gap", index)) * p.gap_ms
            index += 1

    def _ev(self, etype: str, start_ts: int, item: str | None = None,
            page: str | None = None, args: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        ev: dict[str, Any] = {"device": self.device, "ts": start_ts + int(self.t), "type": etype}
        if page is not None:
            ev["page"] = page
        if item is not None:
            ev["item"] = item
        if args is not None:
            ev["args"] = args
        return ev

    def _visit(
        self, session: int, visit: int, looked: int, start_ts: int
    ) -> Generator[Step, list[str] | None, int]:
        p, d = self.params, self._d
        key = (session, visit)
        page = server_page(p, self.interests, d, ("page", *key))
        self.stats.pages += 1
        yield SetPage(
            FEED, f"{self.device}-{session}-{visit}", tuple(page), frozenset(self.deleted)
        )
        yield self._ev("page_enter", start_ts, page=FEED)
        self.t += 300 + 500 * d.u("enter", *key)
        seen: set[str] = set()
        pos = 0
        while True:
            order = yield Look(FEED, pos)
            item = next((i for i in order or () if i not in seen and i not in self.deleted), None)
            if item is None:
                break
            seen.add(item)
            looked = yield from self._look(item, pos, looked, key, start_ts)
            pos += 1
            if d.u("leave", *key, pos) < p.leave_p + p.leave_n * looked:
                break
        yield self._ev("page_exit", start_ts, page=FEED)
        return looked

    def _look(
        self, item: str, pos: int, looked: int, key: tuple[int, int], start_ts: int
    ) -> Generator[Step, list[str] | None, int]:
        p, d = self.params, self._d
        cat = category_of(item)
        u_c = self.interest(cat)
        at = (*key, pos)
        click_p = self.click_p(item, pos, looked)
        delete_p = self.delete_p(item, pos)
        dur = p.look_ms * math.exp(0.35 * u_c + 0.5 * d.z("dur", *at))
        stats = self.stats
        stats.exposures += 1
        row = stats.by_position.setdefault(pos, [0, 0])
        row[0] += 1
        yield self._ev("exposure", start_ts, item, FEED,
                       {"pos": pos, "dur_ms": int(dur), "category": cat})  # fmt: skip
        self.t += dur
        roll = d.u("act", *at)
        for c in list(self.session):
            self.session[c] *= p.decay
        if roll < click_p:
            stats.clicks += 1
            row[1] += 1
            yield self._ev("click", start_ts, item, FEED, {"pos": pos, "category": cat})
            self.shift(cat, p.click_gain)
            yield from self._detail(item, cat, u_c, at, start_ts)
        elif roll < click_p + delete_p:
            stats.deletes += 1
            self.t += 400 + 800 * d.u("press", *at)
            yield self._ev("delete", start_ts, item, FEED,
                           {"pos": pos, "reason": "not_interested", "category": cat})  # fmt: skip
            self.deleted.add(item)
            self.shift(cat, -p.delete_loss)
        else:
            if dur > p.dwell_long_ms:
                self.shift(cat, p.dwell_gain)
            elif dur < p.fast_ms:
                self.shift(cat, -p.skip_loss)
            speed = int(600 * math.exp(0.5 * d.z("speed", *at)) * (3.0 if dur < p.fast_ms else 1.0))
            yield self._ev("scroll", start_ts, page=FEED, args={"speed": speed})
            self.t += 50
        return looked + 1

    def _detail(
        self, item: str, cat: int, u_c: float, at: tuple[int, ...], start_ts: int
    ) -> Generator[Step, list[str] | None, None]:
        p, d = self.params, self._d
        self.t += 200 + 400 * d.u("open", *at)
        yield self._ev(
            "page_enter", start_ts, item, "item_detail", {"category": cat, "source": "feed"}
        )
        dwell = p.detail_ms * math.exp(0.4 * u_c + 0.6 * d.z("dwell", *at))
        enter = self.t
        if d.u("buy", *at) < p.buy_p * _sigmoid(2.0 * (u_c - 1.5)):
            self.t += dwell * 0.5
            yield self._ev("add_cart", start_ts, item, "item_detail", {"category": cat})
            self.t += dwell * 0.3
            yield self._ev("purchase", start_ts, item, "item_detail", {"category": cat, "qty": 1})
            self.stats.purchases += 1
        self.t = enter + dwell
        yield self._ev("page_exit", start_ts, item, "item_detail",
                       {"category": cat, "dur_ms": int(dwell)})  # fmt: skip
        self.t += 200 + 400 * d.u("back", *at)


def play_offline(
    user: ServedUser,
    minutes: float,
    start_ts: int,
    order: Callable[[Look, list[dict[str, Any]]], list[str]] | None = None,
) -> list[dict[str, Any]]:
    """Play ``user`` without a device: ``order(step, events)`` returns the order shown at each
    :class:`Look` (default: the server's order, as a device that does not re-rank shows).
    Returns the events. For tests and for the server mode's baseline."""
    events: list[dict[str, Any]] = []
    gen = user.play(minutes, start_ts)
    page: SetPage | None = None
    step: Step | None = next(gen, None)
    while step is not None:
        reply: list[str] | None = None
        if isinstance(step, SetPage):
            page = step
        elif isinstance(step, Look):
            assert page is not None
            reply = order(step, events) if order is not None else page.server_order()
        else:
            events.append(step)
        try:
            step = gen.send(reply)
        except StopIteration:
            step = None
    return events
