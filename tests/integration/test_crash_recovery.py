"""Crash recovery: `streamfeat replay --db` killed with SIGKILL at random points, then restarted.

A real subprocess replays a generated log through every window assigner and both built-in
features into a real SQLite store, checkpointing every few events. It is killed (``kill -9``, no
clean stop) at random moments, at least 20 times, and restarted on the same input each time;
the OUT it finally leaves must equal an uninterrupted run's: the same lines (sorted), and within
each device the same order. Between kills the store's checkpoint position is read, to show the
restarts really resumed from checkpoints (rather than starting over).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from streamfeat.gen._generator import generate_events

ROOT = Path(__file__).resolve().parents[2]
TASKS = """
[engine]
lateness = "2s"

[triggers]
ipv_done = "page_enter@item_detail * page_exit@item_detail within 30m"
no_click = "exposure * exposure * exposure without click"
burst = "scroll{2} ? click"

[windows.clicks]
assign = "tumbling 1m"
filter = ["click"]
aggregate = { n = "count", items = "distinct item", top = "top 2 item" }

[windows.exposures]
assign = "sliding 2m every 30s"
filter = ["exposure"]
aggregate = { n = "count", dwell = "sum args.dur_ms", pos = "mean args.pos", last = "last item" }

[windows.session]
assign = "session 1m"
lateness = "10s"
aggregate = { n = "count", first = "first ts", types = "distinct type", hi = "max args.speed" }

[windows.categories]
assign = "count 7"
key = "args.category"
aggregate = { n = "count", lo = "min args.pos" }

[features.ipv]
kind = "ipv"

[features.exposure]
kind = "exposure"
"""


def _write_log(path: Path, devices: int, minutes: int, seed: int) -> int:
    n = 0
    with path.open("wb") as fh:
        for obj in generate_events(devices, minutes, seed, disorder=0.02):
            fh.write(orjson.dumps(obj) + b"\n")
            n += 1
    return n


def _cmd(events: Path, tasks: Path, out: Path, db: Path | None, every: int) -> list[str]:
    cmd = [sys.executable, "-m", "streamfeat", "replay", str(events), "--tasks", str(tasks),
           "--out", str(out), "--json", "--no-progress"]  # fmt: skip
    if db is not None:
        cmd += ["--db", str(db), "--checkpoint-every", str(every)]
    return cmd


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _checkpoint_position(db: Path) -> int | None:
    """Read the replay checkpoint's input position (read-only; None when there is none yet)."""
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT position FROM checkpoints WHERE name = 'replay'").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the store is still being created
        return None
    return None if row is None else int(row[0])


def _per_device(lines: list[bytes]) -> dict[str, list[bytes]]:
    per: dict[str, list[bytes]] = defaultdict(list)
    for line in lines:
        per[orjson.loads(line).get("device", "")].append(line)
    return dict(per)


def _crash_and_compare(
    tmp: Path,
    *,
    devices: int,
    minutes: int,
    kills: int,
    seed: int,
    every: int = 25,
    tasks_text: str = TASKS,
) -> None:
    events, tasks = tmp / "events.jsonl", tmp / "tasks.toml"
    n_events = _write_log(events, devices, minutes, seed)
    tasks.write_text(tasks_text)
    env = _env()
    one = tmp / "one.jsonl"
    one.write_bytes(events.read_bytes().split(b"\n", 1)[0] + b"\n")
    t0 = time.monotonic()
    subprocess.run(
        _cmd(one, tasks, tmp / "one.out", None, 0), check=True, env=env, capture_output=True
    )
    startup = time.monotonic() - t0  # interpreter and imports: kills before this do nothing
    ref = tmp / "ref.jsonl"
    subprocess.run(_cmd(events, tasks, ref, None, 0), check=True, env=env, capture_output=True)
    out, db = tmp / "out.jsonl", tmp / "store.sqlite"
    rnd = random.Random(seed)
    killed, positions, last = 0, [], None
    while killed < kills:
        proc = subprocess.Popen(
            _cmd(events, tasks, out, db, every), env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        # One kill in four lands anywhere in start-up, restore and the first events; the others
        # wait for a new checkpoint (so each restart makes progress on any machine speed) and
        # then land at a random point of the following checkpoint interval.
        early = rnd.random() < 0.25
        deadline = time.monotonic() + (startup * rnd.uniform(0.5, 1.5) if early else 120)
        while proc.poll() is None and time.monotonic() < deadline:
            pos = _checkpoint_position(db)
            if not early and pos is not None and pos != last:
                time.sleep(rnd.uniform(0, 0.1))
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
            last = _checkpoint_position(db)
            positions.append(last)
        else:  # it finished first: the next run starts over (a finished replay keeps no checkpoint)
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""
            last = None
        if proc.stderr is not None:
            proc.stderr.close()
    final = subprocess.run(
        _cmd(events, tasks, out, db, every), check=True, env=env, capture_output=True
    )
    resumed = orjson.loads(final.stdout)["resumed_at"]
    want, got = ref.read_bytes().splitlines(), out.read_bytes().splitlines()
    assert len(want) > 100  # the log makes windows, late records and features
    assert sorted(got) == sorted(want)
    assert _per_device(got) == _per_device(want)
    # the kills landed mid-replay, and restarts resumed from checkpoints at varied positions
    mid = [p for p in positions if p is not None and 0 < p < n_events]
    assert len(mid) >= kills // 3, positions
    assert len(set(mid)) >= 3, positions
    assert resumed == 0 or 0 < resumed < n_events


def test_sigkill_at_random_points_then_resume_gives_the_uninterrupted_output(
    tmp_path: Path,
) -> None:
    _crash_and_compare(tmp_path, devices=8, minutes=30, kills=20, seed=11)


def test_sigkill_with_idle_devices_resumes_the_log_time_exactly(tmp_path: Path) -> None:
    # [engine] idle: the log's time and each device's latest ts are in the snapshot, so a
    # resumed replay advances the same silent devices at the same events
    idle = TASKS.replace('lateness = "2s"', 'lateness = "2s"\nidle = "90s"', 1)
    assert idle != TASKS
    _crash_and_compare(tmp_path, devices=8, minutes=30, kills=10, seed=12, tasks_text=idle)


@pytest.mark.slow
def test_sigkill_soak(tmp_path: Path) -> None:
    _crash_and_compare(tmp_path, devices=60, minutes=120, kills=100, seed=5, every=200)
