"""A trigger snapshot written by an earlier release (format 1, the dict) still loads.

``data/snapshot_format1.msgpack`` was written by the trigger stage before format 2 existed
(commit 3266abf's parent), from the first half of the events below; this release must load it
and go on exactly as a run that never stopped.
"""

from __future__ import annotations

from pathlib import Path

import msgpack

from streamfeat._event import Event
from streamfeat.triggers import TriggerStage

TRIGGERS = {
    "ipv_done": "page_enter@item_detail * page_exit@item_detail within 30m",
    "no_click": "exposure * exposure * exposure * exposure * exposure without click",
    "cart_then_buy": "add_cart * purchase within 1h",
    "quick_bounce": "page_enter@item_detail ? page_exit@item_detail within 3s",
    "three_exposures": "exposure{3}",
    "visit_scrolls": "page_enter@item_detail scroll+ page_exit@item_detail",
    "pair": "(click@home_feed|click@shop) ? page_enter@item_detail * purchase within 1h",
}
KINDS = [("page_enter", "item_detail"), ("scroll", "item_detail"), ("exposure", "home_feed"),
         ("click", "home_feed"), ("page_exit", "item_detail"), ("add_cart", None),
         ("exposure", None), ("purchase", None), ("click", "shop"), ("page_enter", "item_detail")]  # fmt: skip
FIXTURE = Path(__file__).parent / "data" / "snapshot_format1.msgpack"


def _events() -> list[Event]:
    out = []
    for d in range(3):
        for i in range(40):
            t, p = KINDS[(i * (d + 3) + i // 7) % len(KINDS)]
            out.append(Event(1_000_000 + 700 * i + 13 * d, t, f"dev{d}", p, str(i % 5), {"pos": i % 4}))  # fmt: skip
    return out


def _run(stage: TriggerStage, events: list[Event], states: dict, counts: dict) -> list[tuple]:  # type: ignore[type-arg]
    got = []
    for ev in events:
        st = states.get(ev.device)
        if st is None:
            st = states[ev.device] = stage.new_state(ev.device)
        i = counts.get(ev.device, 0)
        counts[ev.device] = i + 1
        out: list = []  # type: ignore[type-arg]
        stage.process(st, i, ev, out)
        got += [(r["device"], r["trigger"], r["first"], r["last"]) for r in out]
    return got


def test_a_format_1_snapshot_loads_and_goes_on_as_if_never_stopped() -> None:
    events = _events()
    half = len(events) // 2
    stage = TriggerStage(TRIGGERS)
    states: dict = {}  # type: ignore[type-arg]
    counts: dict = {}  # type: ignore[type-arg]
    _run(stage, events[:half], states, counts)
    at_half = dict(counts)
    expected = _run(stage, events[half:], states, counts)  # a run that never stopped
    saved = msgpack.unpackb(FIXTURE.read_bytes(), raw=False, strict_map_key=False)
    assert all(isinstance(dumped, dict) for _, dumped in saved.values())  # format 1
    fresh = TriggerStage(TRIGGERS)
    states = {d: fresh.load(dumped) for d, (_, dumped) in saved.items()}
    counts = {d: n for d, (n, _) in saved.items()}
    assert counts == at_half
    assert _run(fresh, events[half:], states, counts) == expected
    assert expected, "the second half fires"
    # and it is written back as format 2
    assert all(fresh.dump(st)[0] == 2 for st in states.values())
