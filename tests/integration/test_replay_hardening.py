"""`streamfeat replay` hardening (issue 11): input that used to stop, double or mislead a replay."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from streamfeat.cli import main


def _summary(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_msgpack_string_not_utf8_quarantines_one_message_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "ev.msgpack"
    bad = msgpack.packb({"ts": 5, "type": "click", "page": "\u00e9"}).replace(
        b"\xc3\xa9", b"\xff\xfe"
    )
    with events.open("wb") as fh:
        fh.write(msgpack.packb({"device": "a", "ts": 1, "type": "click"}))
        fh.write(bad)
        for i in range(20_000):
            fh.write(msgpack.packb({"device": "a", "ts": 10 + i, "type": "click"}))
    tasks = tmp_path / "t.toml"
    tasks.write_text('[windows.n]\nassign = "count 1000"\n')
    out = tmp_path / "out.jsonl"
    args = ["replay", str(events), "--tasks", str(tasks), "--out", str(out), "--json"]
    assert main(args) == 0
    summary = _summary(capsys)
    assert summary["events"] == 20_001
    assert summary["quarantined"] == 1
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    (q,) = [r for r in recs if r["kind"] == "quarantine"]
    assert q["line"] == 2
    assert "not valid UTF-8" in q["reason"]
    assert sum(r["values"]["n"] for r in recs if r["kind"] == "window") == 20_001


@pytest.mark.parametrize("etype", ["[]", '{"a": 1}'])
def test_a_type_given_as_a_list_or_map_quarantines_its_line_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], etype: str
) -> None:
    # an unhashable type once raised a TypeError out of the validator and ended the replay
    events = tmp_path / "ev.jsonl"
    events.write_text(
        '{"device": "a", "ts": 1, "type": "click"}\n'
        f'{{"device": "a", "ts": 2, "type": {etype}}}\n'
        '{"device": "a", "ts": 3, "type": "click"}\n'
    )
    out = tmp_path / "out.jsonl"
    assert main(["replay", str(events), "--out", str(out), "--json", "--no-progress"]) == 0
    summary = _summary(capsys)
    assert (summary["events"], summary["quarantined"]) == (2, 1)
    (q,) = [r for r in map(json.loads, out.read_text().splitlines()) if r["kind"] == "quarantine"]
    assert q["line"] == 2
    assert "`type` must match" in q["reason"]


# -- quarantine rows once, input identity (item 6) ------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _log(path: Path, n: int, *, bad_every: int = 10, device: str = "d") -> None:
    lines = []
    for i in range(n):
        if i % bad_every == bad_every - 1:
            lines.append(b'{"ts": "bad", "type": "click"}')
        else:
            lines.append(json.dumps({"device": device, "ts": 1000 * i, "type": "click"}).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")


def _replay_cmd(events: Path, out: Path, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "streamfeat", "replay", str(events), "--out", str(out),
            "--db", str(db), "--json", "--no-progress", *extra]  # fmt: skip


def _quarantine_positions(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT position FROM quarantine ORDER BY position").fetchall()
    return [r[0] for r in rows]


# Runs the replay CLI with Store.delete_checkpoint replaced by a SIGKILL of the process itself:
# a real kill -9 at the very end of a replay, after the last records are durable and before the
# checkpoint is gone, where the last quarantine rows used to be committed on their own.
_KILL_AT_END = """
import os, signal, sys
from streamfeat.io._store import Store
from streamfeat.cli import main
def die(self, name):
    os.kill(os.getpid(), signal.SIGKILL)
Store.delete_checkpoint = die
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_at_the_very_end_then_resume_stores_each_quarantine_row_once(
    tmp_path: Path,
) -> None:
    events, out, db = tmp_path / "ev.jsonl", tmp_path / "out.jsonl", tmp_path / "s.sqlite"
    _log(events, 1_000)  # 100 bad lines: 10, 20, ..., 1000
    args = _replay_cmd(events, out, db, "--checkpoint-every", "300")[3:]
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_AT_END, *args], cwd=ROOT, capture_output=True, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    done = subprocess.run(_replay_cmd(events, out, db, "--checkpoint-every", "300"), cwd=ROOT,
                          capture_output=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resumed_at"] == 900
    assert _quarantine_positions(db) == list(range(10, 1_001, 10))


def test_kill_9_at_random_moments_leaves_each_quarantine_row_once(tmp_path: Path) -> None:
    events, out, db = tmp_path / "ev.jsonl", tmp_path / "out.jsonl", tmp_path / "s.sqlite"
    _log(events, 30_000, bad_every=7)
    cmd = _replay_cmd(events, out, db, "--checkpoint-every", "997")
    # how long a whole run takes here (a separate output and store), so that the kills fall
    # inside a run however fast the machine and the replay are
    t0 = time.monotonic()
    subprocess.run(_replay_cmd(events, tmp_path / "o0.jsonl", tmp_path / "s0.sqlite"), cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    whole = time.monotonic() - t0
    rng = random.Random(11)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, 0.8) * whole)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if proc.returncode == 0:
            break
    assert kills >= 1, "every run finished before its kill: nothing was tested"
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert _quarantine_positions(db) == list(range(7, 30_001, 7))
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["line"] for r in recs if r["kind"] == "quarantine"] == list(range(7, 30_001, 7))


def test_a_finished_replay_run_again_on_the_same_db_keeps_one_copy(tmp_path: Path) -> None:
    events, out, db = tmp_path / "ev.jsonl", tmp_path / "out.jsonl", tmp_path / "s.sqlite"
    _log(events, 500)
    other = tmp_path / "other.jsonl"
    _log(other, 100, bad_every=50)
    tasks = tmp_path / "t.toml"
    tasks.write_text("")
    assert (
        main(["replay", str(other), "--tasks", str(tasks), "--out", str(out), "--db", str(db)]) == 0
    )
    for _ in range(3):
        argv = ["replay", str(events), "--tasks", str(tasks), "--out", str(out), "--db", str(db)]
        assert main(argv) == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT source, position FROM quarantine ORDER BY id").fetchall()
    # the other input's rows stay; this input's are there once, however often it is replayed
    assert sorted(rows) == sorted(
        [(str(other), 50), (str(other), 100)] + [(str(events), p) for p in range(10, 501, 10)]
    )


def test_resume_after_the_input_was_replaced_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    events, out, db = tmp_path / "ev.jsonl", tmp_path / "out.jsonl", tmp_path / "s.sqlite"
    _log(events, 5_000)
    args = _replay_cmd(events, out, db, "--checkpoint-every", "1000")[3:]
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_AT_END, *args], cwd=ROOT, capture_output=True, check=False
    )
    assert killed.returncode == -signal.SIGKILL  # a checkpoint at line 5,000 is left behind
    replacement = tmp_path / "new.jsonl"
    _log(replacement, 5_000, device="another")  # same size, other bytes
    os.replace(replacement, events)
    refused = subprocess.run(_replay_cmd(events, out, db), cwd=ROOT, capture_output=True,
                             text=True, check=False)  # fmt: skip
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "is not the file the checkpoint" in lines[0]
    assert "head_sha256" in lines[0]
    assert "--restart" in lines[0]
    again = subprocess.run(_replay_cmd(events, out, db, "--restart"), cwd=ROOT,
                           capture_output=True, check=False)  # fmt: skip
    assert again.returncode == 0
    assert json.loads(again.stdout)["resumed_at"] == 0


# -- the store's retention at checkpoints (item 3, replay part) -------------------------------


def test_retention_runs_at_checkpoints_and_counts_evictions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, out, db = tmp_path / "ev.jsonl", tmp_path / "out.jsonl", tmp_path / "s.sqlite"
    # large quarantined lines: 4,000 of ~1 KiB each would hold the store near 4 MB
    pad = "x" * 1000
    lines = [json.dumps({"ts": "bad", "type": "click", "page": pad}).encode()] * 4_000
    events.write_bytes(b"\n".join(lines) + b"\n")
    tasks = tmp_path / "t.toml"
    tasks.write_text('[store]\nmax_mb = 1\nretention = "7d"\n')
    argv = ["replay", str(events), "--tasks", str(tasks), "--out", str(out), "--db", str(db),
            "--checkpoint-every", "500", "--json"]  # fmt: skip
    assert main(argv) == 0
    summary = _summary(capsys)
    evicted = summary["evicted"]
    assert isinstance(evicted, dict)
    assert evicted["evicted.size.quarantine"] > 0
    with sqlite3.connect(db) as conn:
        kept = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        counted = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    assert kept + evicted["evicted.size.quarantine"] == 4_000
    assert counted["evicted.size.quarantine"] == evicted["evicted.size.quarantine"]
    assert os.path.getsize(db) < 3 * 1024 * 1024
