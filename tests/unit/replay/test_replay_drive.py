"""The replay's compiled loop (`drive`) gives what its general loop gives, record for record.

A replay without pacing, tasks, observer or size report runs its input through
:func:`streamfeat.replay._drive.drive`; with an observer it takes the general loop. The two must
write the same bytes, count the same and commit the same quarantine rows at the same
checkpoints.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from streamfeat._event import event_from_obj
from streamfeat.io._store import QuarantineEntry, Store
from streamfeat.replay._drive import drive, write_records
from streamfeat.replay._replay import ReplayOptions, run_replay
from streamfeat.tasks import parse_tasks

TASKS = """
[triggers]
two_clicks = "click * click within 1m"

[windows.session]
assign = "session 2m"
aggregate = { n = "count", pages = "distinct page" }

[windows.minute]
assign = "tumbling 1m"
aggregate = { n = "count" }
"""


class _Quiet:
    """An observer that looks at nothing: its presence alone sends a replay down the general
    loop."""

    def event(self, ts: int) -> None:
        pass

    def records(self, records: list[dict[str, Any]]) -> None:
        pass

    def progress(self, wall_seconds: float, events: int) -> None:
        pass


def _log(tmp: Path, n: int = 400, seed: int = 3) -> str:
    rng = random.Random(seed)
    lines: list[bytes] = []
    ts = 0
    for i in range(n):
        ts += rng.randrange(0, 20_000)
        if i % 37 == 5:
            lines.append(b'{"device": "d1", "ts": "soon"}')  # invalid: quarantined
        elif i % 53 == 9:
            lines.append(b"{not json")
        else:
            ev = {
                "device": f"d{rng.randrange(6)}",
                "ts": ts - rng.randrange(0, 5_000),  # some out of order, some late
                "type": rng.choice(("click", "exposure", "page_enter")),
                "page": rng.choice(("home", "item")),
            }
            lines.append(orjson.dumps(ev))
    log = tmp / "events.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    return str(log)


def _comparable(summary: Any) -> dict[str, Any]:
    d = dict(summary.as_dict())
    for k in ("seconds", "events_per_s", "stages", "peak_rss_mb"):
        d.pop(k)
    return d


def test_drive_writes_what_the_general_loop_writes(tmp_path: Path) -> None:
    log = _log(tmp_path)
    cfg = parse_tasks(TASKS)
    fast = run_replay(ReplayOptions(events=log, config=cfg, out=str(tmp_path / "fast.jsonl")))
    slow = run_replay(
        ReplayOptions(events=log, config=cfg, out=str(tmp_path / "slow.jsonl")), observer=_Quiet()
    )
    out = (tmp_path / "fast.jsonl").read_bytes()
    assert out == (tmp_path / "slow.jsonl").read_bytes()
    assert _comparable(fast) == _comparable(slow)
    assert fast.quarantined == out.count(b'"kind":"quarantine"') > 0
    assert fast.bytes_records == len(out)
    assert fast.records["window"] > 0
    assert fast.records["trigger"] > 0


def test_drive_checkpoints_at_the_same_lines_with_the_same_quarantine(tmp_path: Path) -> None:
    log = _log(tmp_path, n=300, seed=5)
    cfg = parse_tasks(TASKS)
    results = []
    for name, observer in (("fast", None), ("slow", _Quiet())):
        db = tmp_path / f"{name}.sqlite"
        opts = ReplayOptions(
            events=log, config=cfg, out=str(tmp_path / f"{name}.jsonl"), db=str(db),
            checkpoint_every=7,
        )  # fmt: skip
        summary = run_replay(opts, observer=observer)
        store = Store(str(db))
        try:
            rows = [(q.position, q.reason) for q in store.quarantine()]
        finally:
            store.close()
        results.append((_comparable(summary), rows, (tmp_path / f"{name}.jsonl").read_bytes()))
    assert results[0] == results[1]
    assert len(results[0][1]) == results[0][0]["quarantined"] > 0


def test_drive_takes_at_most_limit_items_and_says_when_the_input_ends() -> None:
    events = [event_from_obj({"device": "a", "ts": 1_000 * i, "type": "click"}) for i in range(4)]
    bad = QuarantineEntry(source="x", position=3, raw=b"{", reason="not JSON")
    items = iter([events[0], events[1], bad, events[2], events[3]])
    seen: list[Any] = []
    lines: list[bytes] = []
    kinds: dict[str, int] = {}
    quarantine: list[Any] = []

    def process(ev: Any, out: list[dict[str, Any]]) -> None:
        seen.append(ev)
        out.append({"kind": "probe", "ts": ev.ts})

    first = drive(items, process, lines.append, kinds, quarantine, 3)
    assert first == (3, 2, 1, sum(len(x) for x in lines))
    assert quarantine == [bad]
    second = drive(items, process, lines.append, kinds, quarantine, 3)
    assert second[:3] == (2, 2, 0)  # fewer than the limit: the input has ended
    assert drive(items, process, lines.append, kinds, quarantine, 3) == (0, 0, 0, 0)
    assert seen == events
    assert kinds == {"probe": 4, "quarantine": 1}
    assert [orjson.loads(x)["kind"] for x in lines] == ["probe"] * 2 + ["quarantine"] + [
        "probe"
    ] * 2
    assert orjson.loads(lines[2]) == {"kind": "quarantine", "line": 3, "reason": "not JSON"}


def test_write_records_strips_attachments_and_counts_bytes() -> None:
    lines: list[bytes] = []
    kinds: dict[str, int] = {"window": 2}
    records = [{"kind": "window", "n": 1}, {"kind": "trigger", "_events": [1, 2], "t": "x"}]
    n = write_records(lines.append, records, kinds)
    assert n == sum(len(x) for x in lines)
    assert [orjson.loads(x) for x in lines] == [
        {"kind": "window", "n": 1},
        {"kind": "trigger", "t": "x"},
    ]
    assert all(x.endswith(b"\n") for x in lines)
    assert kinds == {"window": 3, "trigger": 1}
