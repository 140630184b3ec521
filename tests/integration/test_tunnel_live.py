"""The aiohttp shell on 127.0.0.1: transport conformance, refusals over real websockets,
and a Hypothesis fuzz of random frames at a live endpoint process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import hypothesis.strategies as st
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings

from streamfeat.cli import main
from streamfeat.testing import check_transport
from streamfeat.tunnel import Batch, Hello, KeyPair, Role, TunnelConnection
from streamfeat.tunnel import _frames as F
from streamfeat.upload._aiohttp import WebSocketTransport, connect
from streamfeat.upload._client import Uploader, load_device_file
from streamfeat.upload._outbox import Outbox, OutboxConfig
from tests.integration.tunnel_procs import Endpoint


async def test_aiohttp_transport_conforms() -> None:
    server_ends: asyncio.Queue[WebSocketTransport] = asyncio.Queue()
    done = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        # a short close timeout: check_transport closes this end while the client isn't reading
        ws = web.WebSocketResponse(max_msg_size=1 << 20, timeout=0.5)
        await ws.prepare(request)
        server_ends.put_nowait(WebSocketTransport(ws))
        await done.wait()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def make() -> tuple[WebSocketTransport, WebSocketTransport]:
        a = await connect(f"ws://127.0.0.1:{port}/ws")
        return a, await server_ends.get()

    try:
        await check_transport(make)  # type: ignore[arg-type]
    finally:
        done.set()
        await runner.cleanup()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Endpoint, Path]]:
    tmp = tmp_path_factory.mktemp("live")
    db = tmp / "ep.db"
    for name in ("good", "revoked"):
        assert (
            main(
                [
                    "device",
                    "add",
                    name,
                    "--init",
                    "--db",
                    str(db),
                    "--out",
                    str(tmp / f"{name}.device.json"),
                ]
            )
            == 0
        )
    assert main(["device", "revoke", "revoked", "--db", str(db)]) == 0
    assert (os.stat(tmp / "good.device.json").st_mode & 0o777) == 0o600
    assert (os.stat(tmp / "endpoint.key").st_mode & 0o777) == 0o600
    ep = Endpoint(db)
    yield ep, tmp
    assert ep.stop() == 0


def refusals(ep: Endpoint, reason: str) -> float:
    for line in ep.get("/metrics")[1].splitlines():
        if line.startswith(f'streamfeat_tunnel_refusals_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    raise AssertionError(reason)


async def upload(
    ep: Endpoint, device_file: Path, store: Path, n: int, wait: float = 3.0
) -> Uploader:
    key, cfg = load_device_file(device_file, url=ep.url, backoff_base=0.05, backoff_cap=0.2)
    up = Uploader(Outbox(store, OutboxConfig(batch_max_age=0.01)), key, cfg)
    task = asyncio.create_task(up.run())
    for i in range(n):
        up.enqueue(b"live-%d" % i)
    await up.wait_drained(wait)
    await up.aclose()
    await task
    return up


async def test_good_device_uploads_and_revoked_is_refused(
    live: tuple[Endpoint, Path], tmp_path: Path
) -> None:
    ep, tmp = live
    up = await upload(ep, tmp / "good.device.json", tmp_path / "g.db", 20)
    assert len(up.outbox) == 0
    assert up.stats.acks >= 1
    before = refusals(ep, "revoked_device")
    up = await upload(ep, tmp / "revoked.device.json", tmp_path / "r.db", 3, wait=1.0)
    assert len(up.outbox) == 1
    assert up.stats.handshakes == 0
    assert refusals(ep, "revoked_device") > before
    assert up.stats.closes.get("revoked_device", 0) >= 1


async def _send_raw(url: str, messages: list[bytes]) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        for m in messages:
            if ws.closed:
                break
            await ws.send_bytes(m)
        # the endpoint must close on us (or stay quiet waiting for more); never crash
        try:
            while (await asyncio.wait_for(ws.receive(), 2)).type is aiohttp.WSMsgType.BINARY:
                pass
        except TimeoutError:
            pass


def _valid_hello() -> bytes:
    d = TunnelConnection(
        Role.DEVICE, static=KeyPair.generate(os.urandom), remote_static=os.urandom(32)
    )
    return d.send(Hello(0, Batch(os.urandom(16), b"x" * 40)))


frames = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda t, b: F.encode_record(t, b),
        st.integers(0, 255).filter(lambda t: t in F.RECORD_TYPES),
        st.binary(max_size=300),
    ),
    st.builds(
        lambda i, x: (lambda h: h[:i] + bytes([h[i % len(h)] ^ x]) + h[i + 1 :])(_valid_hello()),
        st.integers(0, 150),
        st.integers(1, 255),
    ),
)


@settings(
    max_examples=int(os.environ.get("TUNNEL_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(frames, min_size=1, max_size=4))
def test_fuzz_random_frames_at_a_live_endpoint(
    live: tuple[Endpoint, Path], messages: list[bytes]
) -> None:
    ep, _ = live
    asyncio.run(_send_raw(ep.url, messages))
    assert ep.proc.poll() is None
    assert ep.get("/healthz") == (200, "ok\n")


def test_endpoint_still_serves_after_the_fuzz(live: tuple[Endpoint, Path], tmp_path: Path) -> None:
    ep, tmp = live
    up = asyncio.run(upload(ep, tmp / "good.device.json", tmp_path / "after.db", 5))
    assert len(up.outbox) == 0
    text = ep.get("/metrics")[1]
    assert "streamfeat_tunnel_store_seconds_count" in text
