"""``streamfeat agent`` killed with ``kill -9`` at random moments and restarted, against a real
``streamfeat serve``: every record is stored once at the endpoint and no accepted event is lost
(the records equal those of an uninterrupted agent fed the same events)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streamfeat.agent import accepted_events
from streamfeat.data import default_tasks_text
from streamfeat.encoders import decode_batch, schemas_for
from streamfeat.gen._generator import device_stream
from streamfeat.tasks import parse_tasks
from streamfeat.tunnel import split_items

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def tasks_text() -> str:
    """The default tasks file without its tasks (their records depend on wall time)."""
    text = default_tasks_text()
    head, _, rest = text.partition("[tasks.rerank]")
    upload = rest[rest.index("[upload]") :]
    return head + upload.replace('["feature", "window", "task"]', '["feature", "window"]')


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "streamfeat", *args], capture_output=True,
                          cwd=cwd, env=ENV, timeout=120, check=True)  # fmt: skip


class Endpoint:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "endpoint.sqlite"
        self.proc = subprocess.Popen([sys.executable, "-m", "streamfeat", "serve", "--port", "0", "--db", str(self.db)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp, env=ENV, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        self.url = f"ws://127.0.0.1:{line.rsplit(':', 1)[1].strip()}/v1/tunnel"

    def add(self, name: str) -> Path:
        out = self.tmp / f"{name}.device.json"
        cli("device", "add", name, "--db", str(self.db), "--url", self.url, "--out", str(out),
            cwd=self.tmp)  # fmt: skip
        return out

    def records(self, device: str, tasks: str) -> list[bytes]:
        schemas = schemas_for(parse_tasks(tasks))
        conn = sqlite3.connect(self.db)
        rows = conn.execute("SELECT payload FROM batches WHERE device = ?", (device,)).fetchall()
        conn.close()
        return [
            orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
            for (p,) in rows
            for item in split_items(bytes(p))
            for r in decode_batch(item, schemas)
        ]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Endpoint]:
    ep = Endpoint(tmp_path)
    yield ep
    ep.close()


def agent(tmp: Path, name: str, *, final: bool) -> subprocess.Popen[bytes]:
    args = ["agent", "--store", str(tmp / f"{name}.sqlite"), "--device-key", f"{name}.device.json",
            "--tasks", str(tmp / "tasks.toml"), "--tick", "0", "--connect-wait", "0",
            "--drain", "30"] + (["--final"] if final else [])  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "streamfeat", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp, env=ENV)  # fmt: skip


def feed(proc: subprocess.Popen[bytes], lines: list[bytes], rng: random.Random) -> None:
    """Write ``lines`` in small random bursts (a live producer); stop quietly at a dead pipe."""
    assert proc.stdin is not None
    i = 0
    try:
        while i < len(lines):
            n = rng.randint(1, 40)
            proc.stdin.write(b"".join(lines[i : i + n]))
            proc.stdin.flush()
            i += n
            time.sleep(rng.uniform(0.0, 0.01))
    except (BrokenPipeError, ValueError, OSError):
        pass


def run_with_kills(tmp: Path, name: str, lines: list[bytes], kills: int, seed: int) -> int:
    """Feed ``lines`` to an agent killed ``kills`` times; return how many kills hit it."""
    rng = random.Random(seed)
    store = tmp / f"{name}.sqlite"
    hit = 0
    for k in range(kills + 1):
        start = accepted_events(str(store)) if store.exists() else 0
        final = k == kills
        proc = agent(tmp, name, final=final)
        writer = threading.Thread(target=feed, args=(proc, lines[start:], rng), daemon=True)
        writer.start()
        if not final:
            time.sleep(rng.uniform(0.3, 1.5))  # python start-up included: some kills hit early
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                hit += 1
            proc.wait(30)
            writer.join(30)
            proc.communicate()
            continue
        writer.join(120)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.stdin = None  # closed: communicate must not flush it
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        summary = orjson.loads(out)
        assert summary["outbox_waiting"] == 0
    return hit


def check_kills(tmp: Path, endpoint: Endpoint, kills: int, n_events: int, seed: int) -> None:
    text = tasks_text()
    (tmp / "tasks.toml").write_text(text)
    lines = [orjson.dumps(e) + b"\n" for e in device_stream("phone", n_events, seed)]
    endpoint.add("clean")
    endpoint.add("chaos")
    run_with_kills(tmp, "clean", lines, 0, seed)
    hit = run_with_kills(tmp, "chaos", lines, kills, seed)
    assert hit >= kills // 2  # most kills hit a running agent
    clean = endpoint.records("clean", text)
    chaos = endpoint.records("chaos", text)
    assert clean
    doubled = sum(n - 1 for n in Counter(chaos).values() if n > 1)
    assert doubled == 0
    assert Counter(chaos) == Counter(clean)  # nothing doubled, nothing lost


def test_agent_killed_3_times_uploads_every_record_once(tmp_path: Path, endpoint: Endpoint) -> None:
    check_kills(tmp_path, endpoint, kills=3, n_events=1500, seed=11)


@pytest.mark.slow
def test_agent_killed_20_times_uploads_every_record_once(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    check_kills(tmp_path, endpoint, kills=20, n_events=6000, seed=12)
