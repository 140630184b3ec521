"""The idle rule of a replay (``[engine] idle``): the log's own time advances silent devices.

Each test replays a real JSON-lines file through :func:`run_replay` (the code path of
``streamfeat replay``) and reads OUT back. Device ``a`` goes quiet while device ``b`` keeps the
log's time moving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streamfeat import Event
from streamfeat.engine import build_engine
from streamfeat.errors import ConfigError
from streamfeat.replay._replay import ReplayOptions, run_replay
from streamfeat.tasks import parse_tasks

MIN = 60_000
BASE = """
[engine]
lateness = "2s"
{idle}

[windows.clicks]
assign = "tumbling 1m"
filter = ["click"]
aggregate = {{ n = "count" }}

[windows.session]
assign = "session 2m"
aggregate = {{ n = "count" }}
"""


def tasks(idle: str | None) -> str:
    return BASE.format(idle="" if idle is None else f'idle = "{idle}"')


def replay(tmp: Path, events: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    log, out = tmp / "events.jsonl", tmp / "out.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    run_replay(ReplayOptions(events=str(log), config=parse_tasks(text), out=str(out)))
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def ev(device: str, ts: int, etype: str = "click") -> dict[str, Any]:
    return {"device": device, "ts": ts, "type": etype}


def quiet_a() -> list[dict[str, Any]]:
    # a clicks twice in its first minute, then goes quiet; b clicks every 30 s for 10 minutes
    events = [ev("a", 1_000), ev("a", 20_000)]
    events += [ev("b", t) for t in range(0, 10 * MIN, 30_000)]
    return sorted(events, key=lambda e: e["ts"])


def index_of(records: list[dict[str, Any]], **match: Any) -> int:
    for i, r in enumerate(records):
        if all(r.get(k) == v for k, v in match.items()):
            return i
    msg = f"no record {match} in {records}"
    raise AssertionError(msg)


def test_a_silent_device_closes_when_the_log_time_passes_idle(tmp_path: Path) -> None:
    recs = replay(tmp_path, quiet_a(), tasks("3m"))
    a = [r for r in recs if r.get("device") == "a"]
    # both of a's windows closed by the log's time, complete (forced false), none at the end
    assert [(r["window"], r["values"]["n"], r["forced"], r["final"]) for r in a] == [
        ("clicks", 2, False, False),
        ("session", 2, False, False),
    ]
    # ... as soon as the log's time (the highest ts less idle) was idle past a's last event
    # (20 s): b's event at 6m30s is the first with 390_000 - 180_000 - 180_000 >= 20_000; the
    # sweep runs before that event's own records (b's window [5m, 6m) closing)
    first = index_of(recs, device="a", window="clicks")
    assert recs[first - 1]["device"] == "b"
    assert recs[first - 1]["end"] == 5 * MIN
    assert recs[first + 2]["device"] == "b"
    assert recs[first + 2]["end"] == 6 * MIN


def test_with_idle_off_the_silent_device_stays_open_to_the_end(tmp_path: Path) -> None:
    recs = replay(tmp_path, quiet_a(), tasks(None))
    a = [r for r in recs if r.get("device") == "a"]
    assert [(r["window"], r["forced"]) for r in a] == [("clicks", True), ("session", True)]
    assert recs.index(a[0]) > max(
        i for i, r in enumerate(recs) if r["device"] == "b" and not r["forced"]
    )


def test_a_device_back_after_idling_starts_fresh_windows_and_old_times_are_late(
    tmp_path: Path,
) -> None:
    events = quiet_a()
    # a comes back at 8 min (fresh windows), and then sends an event from 30 s: behind the
    # watermark (its own 8m05s less the lateness), so it is late
    events.insert(index_of(events, device="b", ts=8 * MIN) + 1, ev("a", 8 * MIN + 5_000))
    events.append(ev("a", 30_000))
    recs = replay(tmp_path, events, tasks("3m"))
    a = [r for r in recs if r.get("device") == "a"]
    assert [(r["kind"], r.get("window"), r.get("values", {}).get("n")) for r in a] == [
        ("window", "clicks", 2),
        ("window", "session", 2),
        ("late", "clicks", None),
        ("late", "session", None),
        ("window", "clicks", 1),  # the fresh windows of its return, closed at the end
        ("window", "session", 1),
    ]
    assert a[4]["start"] == 8 * MIN
    assert a[4]["forced"] is True


def test_idle_keeps_memory_to_the_devices_that_are_open() -> None:
    config = parse_tasks(tasks("3m"))
    engine = build_engine(config, idle=True)
    for d in range(200):  # 200 devices each send one click, a minute apart
        engine.process(Event(d * MIN, "click", f"d{d}"))
    # only the devices of the last two idle periods (the bound is idle too) are held
    assert engine.open_devices <= 8
    assert engine.idled >= 192
    # the agent's engine (idle not applied) holds them all
    agent = build_engine(config)
    for d in range(200):
        agent.process(Event(d * MIN, "click", f"d{d}"))
    assert agent.open_devices == 200


def test_a_snapshot_resumes_the_idle_rule_exactly() -> None:
    config = parse_tasks(tasks("3m"))
    events = [Event(e["ts"], e["type"], e["device"]) for e in quiet_a()]
    whole = build_engine(config, idle=True)
    want = [r for e in events for r in whole.process(e)] + whole.close()
    first = build_engine(config, idle=True)
    got = [r for e in events[:7] for r in first.process(e)]
    second = build_engine(config, idle=True)
    second.restore(first.snapshot())
    got += [r for e in events[7:] for r in second.process(e)] + second.close()
    assert got == want


@pytest.mark.parametrize("value", ["0s", "soon", 5])
def test_a_bad_idle_is_refused_naming_the_key(value: object) -> None:
    text = BASE.format(idle=f"idle = {orjson.dumps(value).decode()}")
    with pytest.raises(ConfigError) as info:
        parse_tasks(text)
    assert "engine.idle" in str(info.value)


def test_idle_is_off_unless_set() -> None:
    assert parse_tasks(tasks(None)).engine.idle is None
    assert parse_tasks(tasks("90s")).engine.idle == 90_000


SPILL = """
[engine]
idle = "3m"

[triggers]
detail = "page_enter@item_detail * page_exit@item_detail"

[windows.clicks]
assign = "tumbling 10m"
filter = ["click"]
aggregate = { n = "count" }

[features.ipv]
kind = "ipv"
"""


def visits() -> list[Event]:
    # a opens an item page, clicks, and goes quiet for 8 minutes with the visit open (its state
    # is kept as bytes meanwhile), then clicks again and leaves the page; b keeps the log going
    evs = [
        Event(1_000, "page_enter", "a", "item_detail", "i1"),
        Event(2_000, "click", "a", "item_detail", "i1"),
        Event(8 * MIN, "click", "a", "item_detail", "i1"),
        Event(8 * MIN + 1_000, "page_exit", "a", "item_detail", "i1"),
    ]
    evs += [Event(t, "click", "b") for t in range(0, 12 * MIN, 20_000)]
    return sorted(evs, key=lambda e: e.ts)


def test_a_device_kept_as_bytes_while_idle_comes_back_with_its_state() -> None:
    engine = build_engine(parse_tasks(SPILL), idle=True)
    spilled, out = 0, []
    for e in visits():
        out += engine.process(e)
        spilled = max(spilled, engine.spilled_devices)
    out += engine.close()
    assert spilled == 1  # a, while its visit stayed open and nothing was due
    ipv = [r for r in out if r["kind"] == "feature" and r["device"] == "a"]
    # one whole visit, entered before the quiet time: its state came back from the bytes
    assert [(v["values"]["enter_ts"], v["values"]["truncated"]) for v in ipv] == [(1_000, False)]
    # and the trigger's partial match too: it completed over all four events
    trig = [r for r in out if r["kind"] == "trigger" and r["device"] == "a"]
    assert [(r["trigger"], len(r["_events"]), r["first_ts"]) for r in trig] == [
        ("detail", 4, 1_000)
    ]
    clicks = [r for r in out if r.get("window") == "clicks" and r["device"] == "a"]
    # the window [0, 10m) ends after a's return: the click at 8m joined it
    assert [(r["values"]["n"], r["forced"]) for r in clicks] == [(2, True)]


@pytest.mark.parametrize("cut", range(1, 40, 3))
def test_a_snapshot_taken_while_a_device_is_kept_as_bytes_resumes_exactly(cut: int) -> None:
    config = parse_tasks(SPILL)
    events = visits()
    whole = build_engine(config, idle=True)
    want = [r for e in events for r in whole.process(e)] + whole.close()
    first = build_engine(config, idle=True)
    got = [r for e in events[:cut] for r in first.process(e)]
    second = build_engine(config, idle=True)
    second.restore(first.snapshot())
    assert second.spilled_devices == first.spilled_devices
    got += [r for e in events[cut:] for r in second.process(e)] + second.close()
    assert got == want
