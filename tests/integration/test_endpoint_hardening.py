"""The endpoint under abuse, over real sockets on 127.0.0.1 (issue 11, items 7, 8, 9, 13).

Each test runs ``streamfeat serve`` as a subprocess and real device uploaders in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from streamfeat.endpoint import SQLiteStorage
from streamfeat.tunnel import Batch, Hello, Role, TunnelConnection
from streamfeat.tunnel._events import NEED_DATA, CloseCode, Closed, HandshakeComplete
from streamfeat.upload._client import load_device_file
from tests.integration.endpoint_proc import (
    ROOT,
    Serve,
    add_device,
    add_devices,
    run_until,
    uploader,
)

ATTACKER = "127.0.0.2"  # Linux routes all of 127/8 to loopback: a second source address


def _attacker_can_bind() -> bool:
    try:
        with socket.socket() as s:
            s.bind((ATTACKER, 0))
    except OSError:
        return False
    return True


def _open(port: int, kind: str) -> socket.socket | None:
    """One abusive connection from ATTACKER: idle, half a request, or an idle websocket."""
    s = socket.socket()
    s.settimeout(2)
    try:
        s.bind((ATTACKER, 0))
        s.connect(("127.0.0.1", port))
        if kind == "half":
            s.sendall(b"GET /v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webs")
        elif kind == "ws":
            s.sendall(
                b"GET /v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
    except OSError:
        s.close()
        return None
    return s


def _closed_by_server(s: socket.socket) -> bool:
    s.settimeout(0.2)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except TimeoutError:
        return False
    except OSError:
        return True  # reset


async def _upload(db: Path, name: str, url: str, tmp: Path, n: int) -> int:
    up = uploader(db.parent / f"{name}.device.json", tmp / f"{name}.store", url)
    task = asyncio.create_task(up.run())
    for i in range(n):
        up.enqueue(b"%s-%d" % (name.encode(), i))
    await up.wait_drained(10)
    await up.aclose()
    await task
    return up.stats.acks


@pytest.mark.skipif(not _attacker_can_bind(), reason="no second loopback address (127.0.0.2)")
def test_idle_and_half_sent_connections_are_capped_and_timed_out(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    add_device(db, "real")
    ep = Serve(
        db,
        "--handshake-timeout",
        "2",
        "--max-unauthenticated-per-source",
        "30",
        nofile=256,  # total unauthenticated cap: 256 // 4 = 64
    )
    held: list[socket.socket] = []
    try:
        t0 = time.monotonic()
        for i in range(600):  # from one source, under an open-file limit of 256
            s = _open(ep.port, ("idle", "half", "ws")[i % 3])
            if s is not None:
                held.append(s)
        # while they are held: health answers from another source, a real device uploads
        assert ep.get("/healthz", timeout=3) == (200, "ok\n")
        acks = asyncio.run(_upload(db, "real", ep.url, tmp_path, 20))
        assert acks >= 1
        assert ep.refusals("too_many_unauthenticated") >= 500
        # every abusive connection is closed by the server within the deadline (+ margin)
        assert time.monotonic() - t0 < 2.0 + 8.0
        deadline = time.monotonic() + 6
        open_ones = held
        while open_ones and time.monotonic() < deadline:
            open_ones = [s for s in open_ones if not _closed_by_server(s)]
        assert open_ones == []
        assert ep.refusals("handshake_timeout") >= 20
        assert ep.get("/healthz") == (200, "ok\n")
        assert ep.proc.poll() is None
    finally:
        for s in held:
            s.close()
        assert ep.stop() == 0
    log = ep.log.read_bytes()
    print(f"abuse: log {len(log)} bytes")
    assert len(log) < 20_000, log[-2000:]
    assert b"Traceback" not in log


def test_file_descriptor_exhaustion_does_not_storm_the_log(tmp_path: Path) -> None:
    """With almost no descriptors left, a crowd of real devices exhausts them: accept errors are
    counted and logged once per 10 s, the endpoint survives and serves again afterwards."""
    db = tmp_path / "ep.db"
    names = [f"d{i}" for i in range(60)]
    add_devices(db, names)
    ep = Serve(db, nofile=48)

    async def crowd() -> list[int]:
        ups = [
            uploader(db.parent / f"{n}.device.json", tmp_path / f"{n}.store", ep.url) for n in names
        ]
        tasks = [asyncio.create_task(u.run()) for u in ups]
        for u in ups:
            u.enqueue(b"x")
        await asyncio.sleep(6)
        await asyncio.gather(*(u.aclose() for u in ups))
        await asyncio.gather(*tasks)
        return [u.stats.acks for u in ups]

    try:
        acks = asyncio.run(crowd())
        assert sum(acks) >= 1
        assert ep.proc.poll() is None
        # the crowd is gone: descriptors are back, health answers
        assert ep.get("/healthz") == (200, "ok\n")
        accept_errors = ep.metric("streamfeat_tunnel_accept_errors_total")
    finally:
        assert ep.stop() == 0
    log = ep.log.read_bytes()
    print(f"fd exhaustion: {accept_errors:.0f} accept errors, log {len(log)} bytes")
    assert accept_errors >= 1, log[-2000:]
    assert len(log) < 20_000, log[-3000:]


def test_revoke_from_another_process_closes_the_open_connection(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    add_device(db, "phone")
    ep = Serve(db, "--revocation-poll", "0.2")

    async def scenario() -> tuple[float, int]:
        up = uploader(db.parent / "phone.device.json", tmp_path / "phone.store", ep.url)
        task = asyncio.create_task(up.run())
        stop = asyncio.Event()

        async def produce() -> None:
            i = 0
            while not stop.is_set():
                up.enqueue(b"p-%d" % i)
                i += 1
                await asyncio.sleep(0.01)

        producer = asyncio.create_task(produce())
        assert await run_until(lambda: up.stats.acks >= 5, 10)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamfeat", "device", "revoke", "phone", "--db", str(db),
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
        assert await proc.wait() == 0
        revoked_at = time.monotonic()
        assert await run_until(lambda: up.stats.closes.get("revoked_device", 0) >= 1, 5)
        took = time.monotonic() - revoked_at
        acks_then = up.stats.acks
        await asyncio.sleep(1.5)  # still producing: nothing more is accepted
        stop.set()
        await producer
        await up.aclose()
        await task
        assert up.stats.acks == acks_then
        return took, up.stats.handshakes

    try:
        took, handshakes = asyncio.run(scenario())
        print(f"revoke -> close: {took:.3f} s")  # the figure docs/reliability.md reports
        stored = len(SQLiteStorage(db, create=False).batches("phone"))
        time.sleep(0.5)
        assert len(SQLiteStorage(db, create=False).batches("phone")) == stored
        assert took < 2.0
        assert handshakes == 1  # refused at every reconnect
    finally:
        ep.stop()


async def _raw_session(
    url: str, device_file: Path
) -> tuple[aiohttp.ClientSession, object, TunnelConnection]:
    key, cfg = load_device_file(device_file)
    conn = TunnelConnection(Role.DEVICE, static=key, remote_static=cfg.endpoint_key)
    sess = aiohttp.ClientSession()
    ws = await sess.ws_connect(url, max_msg_size=1 << 22)
    await ws.send_bytes(conn.send(Hello(0, None)))
    while True:
        msg = await ws.receive(5)
        conn.receive_data(bytes(msg.data))
        ev = conn.next_event()
        if isinstance(ev, HandshakeComplete):
            return sess, ws, conn


def test_a_flooding_device_is_closed_at_the_window_and_a_real_device_is_not(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ep.db"
    flood_file = add_device(db, "flood")
    add_device(db, "polite")
    ep = Serve(db, "--window", "16")

    async def flood() -> tuple[int | None, int]:
        sess, ws, conn = await _raw_session(ep.url, flood_file)

        async def read() -> int | None:
            # the flooder reads (so that it sees the close) but never waits for an ack
            while True:
                msg = await ws.receive(10)  # type: ignore[attr-defined]
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    return None
                conn.receive_data(bytes(msg.data))
                while (ev := conn.next_event()) is not NEED_DATA:
                    if isinstance(ev, Closed):
                        return ev.code

        reader = asyncio.create_task(read())
        sent = 0
        try:
            with contextlib.suppress(Exception):
                for _ in range(2000):
                    if reader.done():
                        break
                    await ws.send_bytes(conn.send(Batch(os.urandom(16), os.urandom(1000))))  # type: ignore[attr-defined]
                    sent += 1
                    await asyncio.sleep(0)  # let the reader run: it sees the close
            return await asyncio.wait_for(reader, 10), sent
        finally:
            reader.cancel()
            await ws.close()  # type: ignore[attr-defined]
            await sess.close()

    try:
        code, sent = asyncio.run(flood())
        assert code == CloseCode.WINDOW_EXCEEDED
        assert sent < 2000
        assert ep.refusals("window_exceeded") == 1
        stored = len(SQLiteStorage(db, create=False).batches("flood"))
        print(f"flood: {sent} batches sent, {stored} stored, closed with {code}")
        assert stored <= 16
        # the device client keeps its window (32 by default, told 8 here) and is never closed
        acks = asyncio.run(_upload_window(db, ep.url, tmp_path, 8))
        assert acks >= 1
        assert ep.refusals("window_exceeded") == 1
    finally:
        ep.stop()


async def _upload_window(db: Path, url: str, tmp: Path, window: int) -> int:
    up = uploader(db.parent / "polite.device.json", tmp / "polite.store", url, window=window)
    up.outbox.config = type(up.outbox.config)(batch_max_bytes=200, batch_max_age=0.01)
    task = asyncio.create_task(up.run())
    for i in range(600):
        up.enqueue(b"%d" % i * 10)
    assert await up.wait_drained(20)
    await up.aclose()
    await task
    assert "window_exceeded" not in up.stats.closes
    return up.stats.acks


def test_window_exceeded_halves_the_device_window(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    add_device(db, "polite")
    ep = Serve(db, "--window", "4")
    try:

        async def scenario() -> tuple[int, int, int]:
            up = uploader(db.parent / "polite.device.json", tmp_path / "p.store", ep.url, window=32)
            up.outbox.config = type(up.outbox.config)(batch_max_bytes=100, batch_max_age=0.01)
            for i in range(400):
                up.enqueue(b"%05d" % i * 10)
            up.outbox.flush()
            task = asyncio.create_task(up.run())
            drained = await up.wait_drained(30)
            await up.aclose()
            await task
            return int(drained), up.window, up.stats.closes.get("window_exceeded", 0)

        drained, window, closes = asyncio.run(scenario())
        assert drained == 1
        assert window <= 4
        assert closes >= 1
    finally:
        ep.stop()


def test_quota_refuses_with_a_close_code_the_device_understands(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    add_device(db, "big")
    ep = Serve(db, "--quota-mb", "0.02")  # 20,000 bytes

    async def scenario() -> tuple[int, int, int]:
        up = uploader(db.parent / "big.device.json", tmp_path / "big.store", ep.url)
        for i in range(100):
            up.enqueue(os.urandom(500) + b"%d" % i)
        task = asyncio.create_task(up.run())
        await run_until(lambda: up.stats.closes.get("quota_exceeded", 0) >= 1, 10)
        await asyncio.sleep(1)
        await up.aclose()
        await task
        return up.stats.closes.get("quota_exceeded", 0), up.backoff.attempt, len(up.outbox)

    try:
        closes, attempt, left = asyncio.run(scenario())
        assert closes >= 1
        assert attempt >= 30  # backs off to its cap
        assert left > 0  # nothing lost: what was refused waits in the outbox
        stored = sum(len(p) for _, _, p in SQLiteStorage(db, create=False).batches("big"))
        assert 0 < stored <= 20_000
        assert ep.refusals("quota_exceeded") >= 1
    finally:
        ep.stop()
    # the quota is counted from storage after a restart too
    ep = Serve(db, "--quota-mb", "0.02")
    try:
        asyncio.run(_upload_some(db, "big", ep.url, tmp_path))
        assert ep.refusals("quota_exceeded") >= 1
        after = sum(len(p) for _, _, p in SQLiteStorage(db, create=False).batches("big"))
        assert after <= 20_000
    finally:
        ep.stop()


async def _upload_some(db: Path, name: str, url: str, tmp: Path) -> None:
    up = uploader(db.parent / f"{name}.device.json", tmp / f"{name}.store", url)
    task = asyncio.create_task(up.run())
    await run_until(lambda: up.stats.closes.get("quota_exceeded", 0) >= 1, 10)
    await up.aclose()
    await task


def test_an_oversized_websocket_message_is_closed_and_counted(tmp_path: Path) -> None:
    db = tmp_path / "ep.db"
    add_device(db, "x")
    ep = Serve(db)

    async def big() -> int | None:
        async with aiohttp.ClientSession() as s, s.ws_connect(ep.url) as ws:
            await ws.send_bytes(b"\x01" * (2 << 20))
            msg = await ws.receive(5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            return ws.close_code

    try:
        assert asyncio.run(big()) == 1009
        assert run_until_sync(lambda: ep.refusals("message_too_large") == 1, 3)
    finally:
        ep.stop()


def run_until_sync(pred: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _mount_tmpfs(path: Path) -> bool:
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return r.returncode == 0


def test_disk_full_is_counted_health_degrades_and_the_device_backs_off(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk):
        pytest.skip("mount -t tmpfs refused (needs root): can't make a real small full disk")
    try:
        db = disk / "ep.db"
        add_device(db, "d")
        ep = Serve(db)
        try:
            asyncio.run(_full_disk(ep, db, disk, tmp_path))
        finally:
            ep.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(path: Path) -> None:
    with open(path, "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


async def _full_disk(ep: Serve, db: Path, disk: Path, tmp: Path) -> None:
    up = uploader(
        db.parent / "d.device.json", tmp / "d.store", ep.url, backoff_base=0.1, backoff_cap=2.0
    )
    task = asyncio.create_task(up.run())
    up.enqueue(b"before")
    assert await up.wait_drained(10)
    assert ep.get("/healthz") == (200, "ok\n")
    # fill the disk
    filler = disk / "filler"
    _fill(filler)
    connects_before = up.stats.connects
    for i in range(20):
        up.enqueue(os.urandom(2000) + b"%d" % i)
    assert await run_until(lambda: ep.metric("streamfeat_tunnel_storage_failures_total") >= 1, 10)
    status, text = ep.get("/healthz")
    assert status == 503
    assert text.startswith("degraded")
    await asyncio.sleep(4)
    # backoff grows: a handshake that is then closed does not reset it (old code: ~8/s)
    reconnects = up.stats.connects - connects_before
    print(f"disk full: {reconnects} reconnects in 4 s")
    assert reconnects <= 15, reconnects
    assert up.stats.handshakes >= 2
    # space again: stored, acknowledged, healthy
    filler.unlink()
    assert await up.wait_drained(15)
    assert ep.get("/healthz") == (200, "ok\n")
    await up.aclose()
    await task
