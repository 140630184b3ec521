"""Endpoint processes over one PostgreSQL database: a replayed first message is refused by the
other process, batches are stored once whichever process gets them, and ``--workers`` runs
several processes on one port (SO_REUSEPORT), restarts a killed one and shuts down cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from streamfeat.endpoint._registry import endpoint_keypair
from streamfeat.tunnel import Batch, Hello, KeyPair, Role, TunnelConnection
from streamfeat.tunnel._frames import REFUSE, WELCOME
from streamfeat.tunnel._items import split_items
from streamfeat.upload._client import Uploader, UploaderConfig
from streamfeat.upload._outbox import Outbox, OutboxConfig

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


class Proc:
    """``python -m streamfeat.endpoint._workers`` (one endpoint, or a supervisor of N)."""

    def __init__(self, db: str, key: Path, *extra: str) -> None:
        args = [sys.executable, "-m", "streamfeat.endpoint._workers", "--host", "127.0.0.1"]
        args += ["--port", "0", "--db", db, "--key", str(key), *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=_env(), cwd=ROOT, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith(("listening on", "ready")), line
        self.port = int(line.rsplit(":", 1)[-1]) if ":" in line else int(line.split()[1])
        self.url = f"ws://127.0.0.1:{self.port}/v1/tunnel"

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def _register(db: str, name: str) -> KeyPair:
    from streamfeat.endpoint._postgres import PostgresRegistry

    kp = KeyPair.generate(os.urandom)
    reg = PostgresRegistry(db)
    try:
        reg.add(name, kp.public)
    finally:
        reg.close()
    return kp


async def _exchange(url: str, message: bytes) -> list[tuple[int, bytes]]:
    """Send one raw websocket message; return the records the endpoint answers with."""
    got: list[tuple[int, bytes]] = []
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await ws.send_bytes(message)
        try:
            while True:
                msg = await asyncio.wait_for(ws.receive(), 3)
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    break
                data = msg.data
                while data:  # records: type u8 | length u16 | body
                    n = int.from_bytes(data[1:3], "big")
                    got.append((data[0], data[3 : 3 + n]))
                    data = data[3 + n :]
        except TimeoutError:
            pass
    return got


def _refusals(p: Proc, reason: str) -> float:
    total = 0.0
    for line in p.get("/metrics")[1].splitlines():
        if line.startswith("streamfeat_tunnel_refusals_total{") and f'reason="{reason}"' in line:
            total += float(line.split()[-1])
    return total


def test_a_first_message_replayed_to_the_other_process_is_refused(
    pg_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "endpoint.key"
    ep_key = endpoint_keypair(key)
    device = _register(pg_url, "phone-1")
    a, b = Proc(pg_url, key), Proc(pg_url, key)
    try:
        conn = TunnelConnection(Role.DEVICE, static=device, remote_static=ep_key.public)
        hello = conn.send(Hello(0, Batch(b"B" * 16, b"zero-rtt payload")))
        first = asyncio.run(_exchange(a.url, hello))
        assert [t for t, _ in first][:1] == [WELCOME]
        replayed = asyncio.run(_exchange(b.url, hello))
        assert [t for t, _ in replayed] == [REFUSE]
        assert _refusals(b, "replayed_handshake") == 1
        from streamfeat.endpoint._postgres import PostgresStorage

        s = PostgresStorage(pg_url)
        try:
            assert [(d, p) for d, _, p in s.batches()] == [("phone-1", b"zero-rtt payload")]
        finally:
            s.close()
    finally:
        assert a.stop() == 0
        assert b.stop() == 0


async def _upload(url: str, device: KeyPair, ep_pub: bytes, store: Path, n: int) -> Uploader:
    cfg = UploaderConfig(url=url, endpoint_key=ep_pub, backoff_base=0.05, backoff_cap=0.3)
    up = Uploader(Outbox(store, OutboxConfig(batch_max_age=0.01)), device, cfg)
    task = asyncio.create_task(up.run())
    for i in range(n):
        up.enqueue(b"item-%d" % i)
        await asyncio.sleep(0.002)
    await up.wait_drained(30)
    await up.aclose()
    await task
    return up


def test_workers_share_one_port_restart_a_killed_one_and_stop_cleanly(
    pg_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "endpoint.key"
    ep_key = endpoint_keypair(key)
    pids_file = tmp_path / "pids.json"
    devices = {f"phone-{i}": _register(pg_url, f"phone-{i}") for i in range(6)}
    sup = Proc(pg_url, key, "--workers", "2", "--pid-file", str(pids_file))
    try:
        pids = json.loads(pids_file.read_text())["workers"]
        assert len(pids) == 2
        assert sup.get("/healthz") == (200, "ok\n")

        async def fleet(n: int, tag: str) -> list[Uploader]:
            return await asyncio.gather(
                *(
                    _upload(sup.url, kp, ep_key.public, tmp_path / f"{name}-{tag}.db", n)
                    for name, kp in devices.items()
                )
            )

        ups = asyncio.run(fleet(30, "a"))
        assert all(len(u.outbox) == 0 for u in ups)
        time.sleep(1.5)  # workers publish their metrics every second
        metrics = sup.get("/metrics")[1]
        assert 'worker="0"' in metrics
        assert 'worker="1"' in metrics
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = json.loads(pids_file.read_text())["workers"]
            if now[0] != pids[0]:
                break
            time.sleep(0.1)
        assert now[0] != pids[0]
        assert now[1] == pids[1]
        ups = asyncio.run(fleet(30, "b"))
        assert all(len(u.outbox) == 0 for u in ups)
    finally:
        assert sup.stop() == 0
    for pid in now:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    from streamfeat.endpoint._postgres import PostgresStorage

    s = PostgresStorage(pg_url)
    try:
        stored = s.batches()
    finally:
        s.close()
    items = sorted(item for _, _, p in stored for item in split_items(p))
    want = sorted(b"item-%d" % i for i in range(30) for _ in devices for _ in "ab")
    assert items == want  # every item of every device, once per run, none doubled


def _serve(pg_url: str, key: Path, *extra: str) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        "-m",
        "streamfeat",
        "serve",
        "--init",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    args += ["--db", pg_url, "--key", str(key), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, env=_env(), cwd=ROOT, text=True)


def test_fleet_against_two_endpoint_processes_with_one_killed_loses_and_doubles_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    from streamfeat.sim import SimOptions, simulate

    key = tmp_path / "endpoint.key"
    pids = tmp_path / "pids.json"
    proc = _serve(pg_url, key, "--workers", "2", "--pid-file", str(pids))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line
    port = int(line.rsplit(":", 1)[1])
    before = json.loads(pids.read_text())["workers"]
    try:
        report = simulate(
            SimOptions(
                devices=12,
                minutes=1.5,
                speed=10,
                processes=2,
                seed=5,
                chaos=True,
                server=f"ws://127.0.0.1:{port}/v1/tunnel",
                server_db=pg_url,
                server_key=key,
                server_pids=pids,
            )
        )
        after = json.loads(pids.read_text())["workers"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        proc.stdout.close()
    assert report.endpoint_restarts >= 1
    assert after != before  # the supervisor replaced what chaos killed
    assert (report.lost, report.doubled, report.undecodable, report.acked_not_stored) == (
        0,
        0,
        0,
        0,
    )
    assert report.stored == report.queued > 0


def test_serve_workers_on_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = _serve(str(tmp_path / "ep.db"), tmp_path / "endpoint.key", "--workers", "2")
    proc.stdout.close()  # type: ignore[union-attr]
    proc.wait(60)
    assert proc.returncode == 2


def test_serve_on_an_unreachable_postgres_says_so_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    args = [sys.executable, "-m", "streamfeat", "serve", "--init", "--port", "0", "--key"]
    args += [str(tmp_path / "k"), "--db", "postgresql://nobody:secret@127.0.0.1:1/none"]
    out = subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "127.0.0.1:1" in out.stderr
    assert "secret" not in out.stderr  # no credentials in a log line
