"""`streamfeat replay` end to end: output records, quarantine, summary, checkpoints and resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

import streamfeat.replay._replay as replay_mod
from streamfeat import Engine, Event
from streamfeat.cli import main
from streamfeat.clock import ManualClock
from streamfeat.errors import StorageError
from streamfeat.io._store import Store
from streamfeat.replay._replay import ReplayOptions, _Pacer, run_replay
from streamfeat.tasks import parse_tasks


def write_log(path: Path, n: int, *, bad_every: int = 0) -> list[bytes]:
    lines = []
    for i in range(n):
        if bad_every and i % bad_every == bad_every - 1:
            lines.append(b'{"ts": "late", "type": "click"}')
        else:
            lines.append(
                json.dumps({"device": f"d{i % 7}", "ts": 1000 * i, "type": "click"}).encode()
            )
    data = b"\n".join(lines) + b"\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return lines


def test_replay_writes_quarantine_records_and_json_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "ev.jsonl.gz"
    write_log(log, 50, bad_every=10)
    tasks = tmp_path / "t.toml"
    tasks.write_text("")
    out = tmp_path / "out.jsonl"
    db = tmp_path / "s.sqlite"
    assert (
        main(
            [
                "replay",
                str(log),
                "--tasks",
                str(tasks),
                "--out",
                str(out),
                "--db",
                str(db),
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == 45
    assert summary["quarantined"] == 5
    assert summary["devices"] == 7
    assert summary["records"] == {"quarantine": 5}
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["line"] for r in recs] == [10, 20, 30, 40, 50]
    assert all(r["kind"] == "quarantine" and "`ts` must be an integer" in r["reason"] for r in recs)
    assert [q.position for q in Store(db).quarantine()] == [10, 20, 30, 40, 50]


def test_replay_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["replay", str(tmp_path / "absent.jsonl"), "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[windows.w]\nassign = 'hopping'\n")
    log = tmp_path / "ev.jsonl"
    write_log(log, 3)
    assert main(["replay", str(log), "--tasks", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "windows.w.assign" in capsys.readouterr().err


class Exploding:
    """Emits one record per event; raises at event `boom` (a crash mid-replay)."""

    name = "explode"

    def __init__(self, boom: int | None) -> None:
        self.boom = boom
        self.seen = 0

    def new_state(self, device: str) -> Any:
        return [device, 0]

    def process(self, state: Any, index: int, event: Event, out: list[dict[str, Any]]) -> None:
        self.seen += 1
        if self.seen == self.boom:
            msg = "crash"
            raise RuntimeError(msg)
        state[1] += 1
        out.append({"kind": "n", "device": state[0], "index": index, "n": state[1], "ts": event.ts})

    def advance(self, state: Any, now_ms: int, out: list[dict[str, Any]]) -> None:
        pass

    def close(self, state: Any, out: list[dict[str, Any]]) -> None:
        out.append({"kind": "final", "device": state[0], "n": state[1]})

    def idle(self, state: Any) -> bool:
        return False

    def dump(self, state: Any) -> Any:
        return state

    def load(self, data: Any) -> Any:
        return list(data)


@pytest.mark.parametrize("boom", [1, 57, 100, 333, 480])
def test_resume_after_a_crash_produces_exactly_the_uninterrupted_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, boom: int
) -> None:
    log = tmp_path / "ev.jsonl"
    write_log(log, 500, bad_every=37)
    cfg = parse_tasks("")
    stage: list[Exploding] = []

    def engine_with(boom_at: int | None) -> Any:
        def build(config: Any, **kw: Any) -> Engine:
            stage.append(Exploding(boom_at))
            return Engine(stage[-1:])

        return build

    monkeypatch.setattr(replay_mod, "build_engine", engine_with(None))
    clean = tmp_path / "clean.jsonl"
    run_replay(ReplayOptions(str(log), cfg, str(clean)))

    out = tmp_path / "out.jsonl"
    db = tmp_path / "s.sqlite"
    opts = ReplayOptions(str(log), cfg, str(out), db=str(db), checkpoint_every=40)
    monkeypatch.setattr(replay_mod, "build_engine", engine_with(boom))
    with pytest.raises(RuntimeError):
        run_replay(opts)
    monkeypatch.setattr(replay_mod, "build_engine", engine_with(None))
    summary = run_replay(opts)
    assert out.read_bytes() == clean.read_bytes()
    # resumed from the last checkpoint before the crash: a multiple of 40 input lines
    assert summary.resumed_at % 40 == 0
    assert (summary.resumed_at > 0) == (boom > 40)
    quarantined = [q.position for q in Store(db).quarantine()]
    assert quarantined == list(range(37, 501, 37))  # each once, none twice
    assert Store(db).load_checkpoint("replay") is None


def test_a_checkpoint_of_another_replay_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "ev.jsonl"
    write_log(log, 100)
    db = tmp_path / "s.sqlite"
    monkeypatch.setattr(replay_mod, "build_engine", lambda c, **kw: Engine([Exploding(50)]))
    with pytest.raises(RuntimeError):
        run_replay(
            ReplayOptions(
                str(log), parse_tasks(""), str(tmp_path / "o"), db=str(db), checkpoint_every=10
            )
        )
    other = parse_tasks("[engine]\nlateness = '1s'\n")
    monkeypatch.setattr(replay_mod, "build_engine", lambda c, **kw: Engine([Exploding(None)]))
    with pytest.raises(StorageError, match="another replay"):
        run_replay(ReplayOptions(str(log), other, str(tmp_path / "o"), db=str(db)))
    run_replay(ReplayOptions(str(log), other, str(tmp_path / "o"), db=str(db), restart=True))


def test_pacer_runs_event_time_at_the_given_speed() -> None:
    clock = ManualClock(0.0)
    waits: list[float] = []

    def sleep(dt: float) -> None:
        waits.append(dt)
        clock.advance(dt)

    pacer = _Pacer(10.0, clock, sleep)
    for ts in (0, 1000, 3000, 2000, 5000):
        pacer.wait(ts)
    assert waits == pytest.approx([0.1, 0.2, 0.2])  # the backwards event is not waited for
