"""The behaviour generator: validity, determinism, bracketing, clocks, distributions, memory."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from itertools import islice, pairwise

import orjson
import pytest

from streamfeat._event import event_from_obj
from streamfeat.gen._generator import (
    DEFAULT_START_TS,
    device_id,
    device_stream,
    generate_events,
)
from streamfeat.gen._model import item_category
from tests.unit.data.checks import backward_steps, by_device, max_detail_depth, visit_problems


@pytest.fixture(scope="module")
def fleet_log() -> list[dict]:
    """40 devices for 60 minutes with the default disorder (about 35,000 events)."""
    return list(generate_events(40, 60, 11))


def _bytes(devices: int, minutes: float, seed: int, **kw: object) -> bytes:
    return b"".join(
        orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE)
        for e in generate_events(devices, minutes, seed, **kw)
    )  # type: ignore[arg-type]


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    a = _bytes(12, 15, 5)
    assert a == _bytes(12, 15, 5)
    assert a != _bytes(12, 15, 6)
    assert len(a) > 10_000


def test_every_event_is_valid(fleet_log: list[dict]) -> None:
    for obj in fleet_log:
        event = event_from_obj(obj)
        assert event.device.startswith("dev")
        assert set(obj) <= {"device", "ts", "type", "page", "item", "args"}


def test_visits_are_well_bracketed(fleet_log: list[dict]) -> None:
    for device, events in by_device(fleet_log).items():
        assert visit_problems(events) == [], device


def test_bracket_checker_catches_a_crossed_exit() -> None:
    bad = [
        {"type": "page_enter", "page": "item_detail", "item": "1"},
        {"type": "page_enter", "page": "item_detail", "item": "2"},
        {"type": "page_exit", "page": "item_detail", "item": "1"},
    ]
    assert visit_problems(bad)


def test_the_log_exercises_every_behaviour(fleet_log: list[dict]) -> None:
    types = Counter(e["type"] for e in fleet_log)
    for name in (
        "page_enter",
        "page_exit",
        "exposure",
        "click",
        "scroll",
        "add_cart",
        "favorite",
        "purchase",
        "select_sku",
        "comment",
        "share",
        "delete",
        "app_background",
        "app_foreground",
    ):
        assert types[name] > 0, name
    controls = Counter(
        e["args"]["control"]
        for e in fleet_log
        if e["type"] == "click" and e.get("page") == "item_detail"
    )
    assert set(controls) == {"detail", "ask", "service", "recommend"}
    pages = Counter(e.get("page") for e in fleet_log if e["type"] == "page_enter")
    assert {"home_feed", "item_detail", "shop", "cart"} <= set(pages)
    reasons = {e["args"]["reason"] for e in fleet_log if e["type"] == "delete"}
    assert len(reasons) >= 3
    devices = by_device(fleet_log)
    assert max(max_detail_depth(ev) for ev in devices.values()) >= 2  # nested visits


def test_backgrounding_sometimes_leaves_visits_open(fleet_log: list[dict]) -> None:
    cut = 0
    for events in by_device(fleet_log).values():
        open_pages = 0
        for ev in events:
            if ev["type"] == "page_enter":
                open_pages += 1
            elif ev["type"] == "page_exit":
                open_pages -= 1
            elif ev["type"] == "app_background":
                cut += open_pages > 0
                open_pages = 0
    assert cut > 0


def test_event_arguments(fleet_log: list[dict]) -> None:
    for ev in fleet_log:
        args = ev.get("args", {})
        if ev["type"] == "exposure":
            assert ev["page"] == "home_feed"
            assert args["pos"] >= 1
            assert args["dur_ms"] >= 0
        if ev["type"] == "scroll":
            assert args["speed"] > 0
        if ev["type"] == "delete":
            assert ev["page"] == "home_feed"
            assert ev["item"]
            assert args["reason"]
        if "category" in args:
            assert item_category(ev["item"]) == args["category"]


def test_click_on_the_feed_opens_the_clicked_item(fleet_log: list[dict]) -> None:
    for events in by_device(fleet_log).values():
        for a, b in pairwise(events):
            if a["type"] == "click" and a["page"] == "home_feed":
                assert (b["type"], b["page"], b["item"]) == ("page_enter", "item_detail", a["item"])


def test_a_feed_click_follows_an_exposure_of_that_item(fleet_log: list[dict]) -> None:
    for events in by_device(fleet_log).values():
        exposed: set[str] = set()
        for ev in events:
            if ev["type"] == "page_enter" and ev["page"] == "home_feed":
                exposed = set()
            elif ev["type"] == "exposure":
                exposed.add(ev["item"])
            elif ev["type"] in ("click", "delete") and ev["page"] == "home_feed":
                assert ev["item"] in exposed


def test_rough_distributions(fleet_log: list[dict]) -> None:
    n = len(fleet_log)
    per_device_minute = n / (40 * 60)
    assert 8 <= per_device_minute <= 25
    types = Counter(e["type"] for e in fleet_log)
    assert 0.3 < types["exposure"] / n < 0.7
    assert types["exposure"] > types["scroll"] > types["click"]
    assert types["purchase"] < types["add_cart"] + types["select_sku"]
    assert types["delete"] < types["click"]
    devices = by_device(fleet_log)
    counts = sorted(len(v) for v in devices.values())
    assert counts[-1] > 3 * counts[len(counts) // 4]  # activity levels differ
    # users differ in interests: their most clicked categories are not all the same
    top = {
        Counter(
            e["args"]["category"] for e in v if e["type"] == "click" and e["page"] == "home_feed"
        ).most_common(1)[0][0]
        for v in devices.values()
        if any(e["type"] == "click" and e["page"] == "home_feed" for e in v)
    }
    assert len(top) > 10
    dwell = sorted(
        e["args"]["dur_ms"]
        for e in fleet_log
        if e["type"] == "page_exit" and e["page"] == "item_detail"
    )
    median = dwell[len(dwell) // 2]
    assert 5_000 < median < 60_000
    assert dwell[-1] > 4 * median


def test_default_disorder_is_small_and_every_step_back_is_a_clock_change(
    fleet_log: list[dict],
) -> None:
    steps = 0
    back: list[int] = []
    for events in by_device(fleet_log).values():
        steps += len(events) - 1
        back += backward_steps(events)
    assert 0 < len(back) < 0.006 * steps
    assert all(1_000 <= b <= 120_000 for b in back)


def test_disorder_fraction_follows_the_option() -> None:
    events = list(generate_events(20, 60, 3, disorder=0.02))
    devices = by_device(events)
    steps = sum(len(v) - 1 for v in devices.values())
    back = sum(len(backward_steps(v)) for v in devices.values())
    assert 0.012 < back / steps < 0.03


def test_no_disorder_means_time_ordered_log() -> None:
    events = list(generate_events(15, 30, 4, disorder=0.0))
    ts = [e["ts"] for e in events]
    assert ts == sorted(ts)
    assert ts[0] >= DEFAULT_START_TS
    assert ts[-1] < DEFAULT_START_TS + 30 * 60_000


def test_start_ts_shifts_every_timestamp() -> None:
    a = list(generate_events(3, 10, 9, disorder=0.0))
    b = list(generate_events(3, 10, 9, disorder=0.0, start_ts=0))
    assert [x["ts"] - DEFAULT_START_TS for x in a] == [y["ts"] for y in b]


def test_device_stream_is_the_merged_log_of_that_device(fleet_log: list[dict]) -> None:
    merged = by_device(fleet_log)
    for i in (0, 7, 39):
        alone = list(device_stream(device_id(i), 60, 11))
        assert alone == merged[device_id(i)]


def test_devices_do_not_change_each_other() -> None:
    few = by_device(generate_events(3, 20, 8))
    many = by_device(generate_events(9, 20, 8))
    for dev, events in few.items():
        assert many[dev] == events


def test_device_stream_accepts_any_id() -> None:
    events = list(device_stream("phone-A", 30, 1))
    assert events
    assert {e["device"] for e in events} == {"phone-A"}
    assert visit_problems(events) == []


def test_key_draws_the_user_and_device_names_the_events(fleet_log: list[dict]) -> None:
    merged = by_device(fleet_log)[device_id(7)]
    renamed = list(device_stream("sim42-1700000000-dev000007", 60, 11, key=device_id(7)))
    assert [{**e, "device": device_id(7)} for e in renamed] == merged
    assert {e["device"] for e in renamed} == {"sim42-1700000000-dev000007"}
    # without the key the name draws the user: another behaviour
    other = list(device_stream("sim42-1700000000-dev000007", 60, 11))
    assert [{**e, "device": device_id(7)} for e in other] != merged


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0, 10, 1), {}),
        ((5, 0, 1), {}),
        ((5, -1, 1), {}),
        ((5, 10, 1), {"disorder": -0.1}),
        ((5, 10, 1), {"disorder": 0.9}),
        ((5, 10, 1), {"start_ts": -1}),
        ((5, 10, 1), {"start_ts": 2**53}),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"devices|minutes|disorder|start_ts"):
        generate_events(*args, **kwargs)


def test_bad_device_id_is_refused() -> None:
    with pytest.raises(ValueError, match="device"):
        device_stream("", 10, 1)


def test_memory_grows_with_devices_not_with_events() -> None:
    def peak(minutes: float) -> tuple[int, int]:
        tracemalloc.start()
        try:
            n = sum(1 for _ in generate_events(30, minutes, 2))
            return n, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    n_short, short = peak(3)
    n_long, long_ = peak(40)
    assert n_long > 8 * n_short
    assert long_ < 2 * short + 1_000_000


def test_the_merge_is_lazy() -> None:
    first = list(islice(generate_events(2_000, 600, 1), 10))
    assert len(first) == 10


def test_a_device_stream_never_goes_back_in_true_time() -> None:
    for i in range(30):
        ts = [e["ts"] for e in device_stream(device_id(i), 60, 21, disorder=0.0)]
        assert ts == sorted(ts), i
