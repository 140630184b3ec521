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
        self.proc = subprocess.Popen([sys.executable, "-m", "streamfeat", "serve", "--init", "--port", "0", "--db", str(self.db)],
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
            n = rng.randint(1, 10)
            proc.stdin.write(b"".join(lines[i : i + n]))
            proc.stdin.flush()
            i += n
            time.sleep(rng.uniform(0.0, 0.03))
    except (BrokenPipeError, ValueError, OSError):
        pass


def stored_records(
    store: Path, more_than: int = -1, within: float = 0.0, feeding: threading.Thread | None = None
) -> int:
    """Rows in the device store's records table; waits up to ``within`` s for more than given
    (while ``feeding`` is alive)."""
    end = time.monotonic() + within
    while True:
        n = 0
        if store.exists():
            conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
            try:
                n = conn.execute("SELECT count(*) FROM records").fetchone()[0]
            except sqlite3.Error:
                n = 0
            finally:
                conn.close()
        done = feeding is not None and not feeding.is_alive()
        if n > more_than or time.monotonic() > end or done:
            return int(n)
        time.sleep(0.05)


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
            stored_records(store, more_than=stored_records(store), within=30, feeding=writer)
            time.sleep(rng.uniform(0.0, 1.2))  # a random moment after the agent stored records
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
    print(f"kills that hit a running agent: {hit}/{kills}; records stored: {len(chaos)} "
          f"(uninterrupted: {len(clean)}); doubled: {doubled}")  # fmt: skip
    assert doubled == 0
    assert Counter(chaos) == Counter(clean)  # nothing doubled, nothing lost


def test_agent_killed_3_times_uploads_every_record_once(tmp_path: Path, endpoint: Endpoint) -> None:
    check_kills(tmp_path, endpoint, kills=3, n_events=150, seed=11)


@pytest.mark.slow
def test_agent_killed_20_times_uploads_every_record_once(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    check_kills(tmp_path, endpoint, kills=20, n_events=1000, seed=12)


def test_a_slow_producer_gets_records_line_by_line(tmp_path: Path, endpoint: Endpoint) -> None:
    text = tasks_text()
    (tmp_path / "tasks.toml").write_text(text)
    endpoint.add("slow")
    lines = [orjson.dumps(e) + b"\n" for e in device_stream("phone", 30, 5)][:200]
    store = tmp_path / "slow.sqlite"
    proc = agent(tmp_path, "slow", final=False)
    assert proc.stdin is not None
    sent = 0
    try:
        for line in lines:  # fewer lines than the reader's old 256-line chunk
            proc.stdin.write(line)
            proc.stdin.flush()
            sent += 1
            time.sleep(0.05)
            if stored_records(store) > 0:
                break
        accepted = accepted_events(str(store))
        assert stored_records(store) > 0, f"no record after {sent} lines sent one by one"
        assert accepted >= sent - 1  # each line is taken as it arrives
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs (needs root: skipped with a message otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"can't mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_stops_the_agent_with_one_line_and_a_restart_loses_nothing(
    tmp_path: Path, endpoint: Endpoint, small_disk: Path
) -> None:
    text = tasks_text()
    (tmp_path / "tasks.toml").write_text(text)
    endpoint.add("clean")
    endpoint.add("full")
    lines = [orjson.dumps(e) + b"\n" for e in device_stream("phone", 1500, 13)]
    store = small_disk / "full.sqlite"
    args = ["agent", "--store", str(store), "--device-key", "full.device.json", "--tasks",
            str(tmp_path / "tasks.toml"), "--tick", "0", "--connect-wait", "0", "--drain", "10"]  # fmt: skip
    clean_args = [a.replace(str(store), str(tmp_path / "clean.sqlite")).replace("full.", "clean.")
                  for a in args]  # fmt: skip
    subprocess.run([sys.executable, "-m", "streamfeat", *clean_args, "--final", "--drain", "30"],
                   input=b"".join(lines), capture_output=True, cwd=tmp_path, env=ENV, timeout=300,
                   check=True)  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "streamfeat", *args], input=b"".join(lines),
                          capture_output=True, cwd=tmp_path, env=ENV, timeout=300, check=False)  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("streamfeat agent: the store "), last
    assert "intake stopped" in last
    summary = orjson.loads(done.stdout)
    accepted = summary["accepted"]
    assert 0 < accepted < len(lines)
    # room again: the same store on the same disk, the input resumed after what was accepted
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert accepted_events(str(store)) == accepted
    final = subprocess.run([sys.executable, "-m", "streamfeat", *args, "--final", "--drain", "30"],
                           input=b"".join(lines[accepted:]), capture_output=True, cwd=tmp_path,
                           env=ENV, timeout=300, check=False)  # fmt: skip
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert orjson.loads(final.stdout)["outbox_waiting"] == 0
    clean = endpoint.records("clean", text)
    full = endpoint.records("full", text)
    assert Counter(full) == Counter(clean)  # nothing lost, nothing doubled
