"""Liveness of a tunnel connection over real websockets on 127.0.0.1 (upload/_aiohttp.py).

The transport counts what it receives and checks the count every ``heartbeat / 2`` seconds:
a PING after a silence of ``heartbeat``, a close when nothing answers. A stopped peer
(``SIGSTOP``: alive for TCP, silent for us) is noticed on both ends; an idle but live peer,
ours or one using aiohttp's own heartbeat, is not closed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from streamfeat.endpoint._registry import Registry, endpoint_keypair
from streamfeat.errors import TunnelTimeout
from streamfeat.tunnel import (
    NEED_DATA,
    Ack,
    Batch,
    HandshakeComplete,
    Hello,
    KeyPair,
    Role,
    TunnelConnection,
)
from streamfeat.upload._aiohttp import WebSocketTransport, connect
from tests.integration.tunnel_procs import ROOT, env

PROC = Path(__file__).with_name("tunnel_heartbeat_proc.py")
HEARTBEAT = 0.4


class _Proc:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PROC), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env(),
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline().strip()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    db = tmp_path / "ep.db"
    key = KeyPair.generate(os.urandom)
    (tmp_path / "device.key").write_text(key.private.hex())
    endpoint_keypair(tmp_path / "endpoint.key")
    reg = Registry(db)
    reg.add("dev", key.public)
    reg.close()
    return db


@pytest.fixture
def endpoint(db: Path) -> Iterator[_Proc]:
    p = _Proc("endpoint", str(db), str(HEARTBEAT))
    assert p.line.startswith("listening on "), p.line
    try:
        yield p
    finally:
        p.close()


def _url(p: _Proc) -> str:
    return "ws" + p.line.removeprefix("listening on http") + "/v1/tunnel"


def _connections(p: _Proc) -> float:
    with urllib.request.urlopen(p.line.removeprefix("listening on ") + "/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("streamfeat_tunnel_connections "):
                return float(line.split()[1])
    msg = "no connections gauge"
    raise AssertionError(msg)


async def _handshake(t: WebSocketTransport, db: Path) -> TunnelConnection:
    key = KeyPair.from_private(bytes.fromhex(db.with_name("device.key").read_text()))
    ep = endpoint_keypair(db.with_name("endpoint.key")).public
    conn = TunnelConnection(Role.DEVICE, static=key, remote_static=ep)
    await t.send(conn.send(Hello(0)))
    await _until(t, conn, HandshakeComplete)
    return conn


async def _until(t: WebSocketTransport, conn: TunnelConnection, kind: type) -> object:
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            data = await asyncio.wait_for(t.receive(), 10)
            assert data, f"connection ended: {t.error!r}"
            conn.receive_data(data)
        elif isinstance(ev, kind):
            return ev


async def test_device_notices_a_stopped_endpoint(endpoint: _Proc, db: Path) -> None:
    t = await connect(_url(endpoint), heartbeat=HEARTBEAT)
    try:
        await _handshake(t, db)
        endpoint.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        # nothing comes, no pong either: the transport ends the stream itself
        assert await asyncio.wait_for(t.receive(), 10) == b""
        waited = time.monotonic() - t0
        assert isinstance(t.error, TunnelTimeout), t.error
        # a PING after 2 quiet ticks, the close after a 3rd, then aiohttp's close wait (2 s)
        assert 2 * HEARTBEAT / 2 <= waited < 3 * HEARTBEAT / 2 + 2.0 + 2.0, waited
    finally:
        endpoint.signal(signal.SIGCONT)
        await t.aclose()


def test_endpoint_closes_a_stopped_device(endpoint: _Proc, db: Path) -> None:
    dev = _Proc("device", str(db), _url(endpoint))
    try:
        assert dev.line == "ready"
        assert _connections(endpoint) == 1
        dev.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        while _connections(endpoint) != 0:
            assert time.monotonic() - t0 < 10, "the endpoint kept a silent device's connection"
            time.sleep(0.05)
        assert time.monotonic() - t0 >= HEARTBEAT  # not before a silence of one heartbeat
    finally:
        dev.close()


@pytest.mark.parametrize("peer", ["ours", "aiohttp"])
async def test_an_idle_live_connection_stays_open(endpoint: _Proc, db: Path, peer: str) -> None:
    """Idle for many heartbeats on both ends: every PING is answered (by the endpoint's
    receive loop, its autoping being off), so neither end closes; then a batch is acked."""
    session = None
    if peer == "ours":
        t = await connect(_url(endpoint), heartbeat=HEARTBEAT)
    else:  # a device of an earlier release: aiohttp's own heartbeat, autoping on
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(_url(endpoint), heartbeat=HEARTBEAT, compress=0)
        t = WebSocketTransport(ws)
    try:
        conn = await _handshake(t, db)
        # a device always has a receive() waiting (the uploader's reader): PINGs and PONGs are
        # handled inside it and never come out as data
        rx = asyncio.create_task(t.receive())
        await asyncio.sleep(6 * HEARTBEAT)
        assert not rx.done()
        assert _connections(endpoint) == 1
        await t.send(conn.send(Batch(os.urandom(16), b"after the silence")))
        conn.receive_data(await asyncio.wait_for(rx, 10))
        assert isinstance(await _until(t, conn, Ack), Ack)
        assert t.error is None
    finally:
        await t.aclose()
        if session is not None:
            await session.close()
