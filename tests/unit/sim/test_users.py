"""The served feed's user model: seeded, position bias, session drift (pure, no device)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from streamfeat.sim._users import (
    FEED,
    Look,
    ServedUser,
    SetPage,
    UserParams,
    group_of,
    item_features,
    play_offline,
)

START = 1_767_225_600_000


def _ctr_by_position(users: list[ServedUser], buckets: list[range]) -> list[float]:
    out = []
    for b in buckets:
        n = sum(u.stats.by_position.get(p, [0, 0])[0] for u in users for p in b)
        c = sum(u.stats.by_position.get(p, [0, 0])[1] for u in users for p in b)
        out.append(c / n)
    return out


def test_same_seed_same_user_and_events() -> None:
    a = play_offline(ServedUser("dev000003", 7), 20, START)
    b = play_offline(ServedUser("dev000003", 7), 20, START)
    c = play_offline(ServedUser("dev000003", 8), 20, START)
    assert a == b
    assert a != c
    assert {e["type"] for e in a} >= {"app_foreground", "page_enter", "exposure", "app_background"}
    assert all(e["device"] == "dev000003" for e in a)
    ts = [e["ts"] for e in a]
    assert ts == sorted(ts)  # the user's true time never goes back


def test_key_names_the_user_not_the_device_id() -> None:
    a = ServedUser("dev000001", 1)
    b = ServedUser("sim99-1-dev000001", 1, key="dev000001")
    assert a.interests == b.interests
    ea = play_offline(a, 10, START)
    eb = play_offline(b, 10, START)
    assert [{**e, "device": ""} for e in ea] == [{**e, "device": ""} for e in eb]


def test_ctr_falls_with_position_in_the_server_order() -> None:
    users = [ServedUser(f"dev{i:06d}", 1) for i in range(150)]
    for u in users:
        play_offline(u, 20, START)
    ctr = _ctr_by_position(users, [range(0, 5), range(5, 10), range(10, 20), range(20, 50)])
    assert ctr[0] > ctr[1] > ctr[2] > ctr[3]


def test_ctr_falls_with_position_in_a_random_order_too() -> None:
    """Position bias on its own: the same items shuffled at random still draw fewer clicks
    lower down (the server's sorting is not what makes CTR fall)."""

    users = []
    for i in range(150):
        u = ServedUser(f"dev{i:06d}", 1)
        rng = random.Random(i)
        gen = u.play(20, START)
        step: Any = next(gen, None)
        order: list[str] = []
        while step is not None:
            reply = None
            if isinstance(step, SetPage):
                order = step.server_order()
                rng.shuffle(order)
            elif isinstance(step, Look):
                reply = [x for x in order if x not in u.deleted]
            try:
                step = gen.send(reply)
            except StopIteration:
                step = None
        users.append(u)
    ctr = _ctr_by_position(users, [range(0, 5), range(5, 15), range(15, 50)])
    assert ctr[0] > ctr[1] > ctr[2]


def test_a_click_raises_its_category_and_group_only() -> None:
    u = ServedUser("dev000001", 1)
    u.start_session(0)
    cat = next(c for c in range(100, 292) if u.interest(c) == 0.0)
    same_group = next(c for c in range(100, 292) if group_of(c) == group_of(cat) and c != cat)
    other = next(
        c for c in range(100, 292) if group_of(c) != group_of(cat) and u.interest(c) == 0.0
    )
    before = (u.interest(cat), u.interest(same_group), u.interest(other))
    item = str(cat * 100_000 + 7)
    p_before = u.click_p(item, 3, 10)
    u.shift(cat, u.params.click_gain)
    assert u.interest(cat) == before[0] + u.params.click_gain
    assert u.interest(same_group) == before[1] + u.params.click_gain * u.params.rho
    assert u.interest(other) == before[2]
    assert u.click_p(item, 3, 10) > p_before
    d_before = u.delete_p(item, 3)
    u.shift(cat, -u.params.delete_loss)
    assert u.interest(cat) < before[0] + u.params.click_gain
    assert u.delete_p(item, 3) > d_before  # what the user just deleted, they delete more


def _after_click_lift(params: UserParams, n: int) -> tuple[float, float]:
    """Clicks per exposure on items of category c, exposed after a click on c in the same
    session vs before any click on c in it (positions >= 3, where both occur)."""
    counts = {"before": [0, 0], "after": [0, 0]}
    for i in range(n):
        u = ServedUser(f"dev{i:06d}", 3, params)
        clicked: set[int] = set()
        for e in play_offline(u, 30, START):
            if e["type"] == "app_foreground":
                clicked = set()
            if e.get("page") != FEED or e["type"] not in ("exposure", "click"):
                continue
            cat = int(item_features(e["item"])["category"])
            if e["args"]["pos"] >= 3:
                counts["after" if cat in clicked else "before"][e["type"] == "click"] += 1
            if e["type"] == "click":
                clicked.add(cat)
    return counts["after"][1] / counts["after"][0], counts["before"][1] / counts["before"][0]


def test_drift_is_real_clicks_on_c_follow_a_click_on_c() -> None:
    """After a click in category c the next items of c draw more clicks than items of c did
    before it; with the drift switched off (the control) the gap shrinks: what remains is
    the users' fixed taste for c, the rest is the drift."""
    on = UserParams()
    off = replace(on, click_gain=0.0, dwell_gain=0.0, delete_loss=0.0, skip_loss=0.0)
    after_on, before_on = _after_click_lift(on, 120)
    after_off, before_off = _after_click_lift(off, 120)
    assert after_on > before_on
    assert after_on / before_on > 1.2 * (after_off / before_off)


def _first_page(params: UserParams) -> tuple[str, ...]:
    gen = ServedUser("dev000002", 1, params).play(30, START)
    step = next(gen)
    while not isinstance(step, SetPage):
        step = next(gen)
    return step.items


def test_server_page_knows_only_long_term_interests() -> None:
    """The session's intent (unknown to the server) does not change the page it serves."""
    with_intent = _first_page(UserParams())
    without = _first_page(UserParams(intent_p=0.0))
    assert with_intent == without
    assert len(with_intent) == UserParams().page_size == len(set(with_intent))
