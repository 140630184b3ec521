"""Releases at a real endpoint on 127.0.0.1, on SQLite and on PostgreSQL: authenticated,
resumable bundle pulls, the pull limit, device reports that roll a release back, and live
announcements to connected devices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamfeat.clock import ManualClock
from streamfeat.endpoint._backend import open_registry, open_storage
from streamfeat.endpoint._release_routes import ReleaseRoutes
from streamfeat.endpoint._releases import ANNOUNCE_MAGIC, ReleaseBook, queue_config
from streamfeat.endpoint._server import TunnelServer
from streamfeat.release import (
    HealthThresholds,
    authorization,
    build_archive,
    public_key_bytes,
    sign_bundle,
    verify_bundle,
)
from streamfeat.tunnel._crypto import KeyPair
from streamfeat.upload._client import Uploader, UploaderConfig
from streamfeat.upload._outbox import Outbox, OutboxConfig

NOW = 1_767_225_600.0
MATRIX = 'default = "base"\n[cells]\n"*/low" = "tiny"\n'


@dataclass
class Live:
    url: str
    routes: ReleaseRoutes
    endpoint: KeyPair
    device: KeyPair
    other: KeyPair
    bundle: bytes
    bundle_id: str
    db: str
    clock: ManualClock


def _bundle(key: Ed25519PrivateKey, name: str, payload: bytes) -> bytes:
    files = {"tasks.toml": b'[triggers]\nclick = "click"\n', "models/m.onnx": payload}
    return sign_bundle(build_archive(files, name=name, version="1"), key, name=name, version="1")[1]


@pytest.fixture
async def live(endpoint_db: str) -> AsyncIterator[Live]:
    db = endpoint_db
    ep, dev, other = (KeyPair.from_private(bytes([i]) * 32) for i in (1, 2, 3))
    registry = open_registry(db)
    registry.add("phone-1", dev.public)
    registry.add("phone-2", other.public)
    registry.revoke("phone-2")
    release_key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    big = _bundle(release_key, "base", bytes(range(256)) * 800)  # ~200 KB: several chunks
    book = ReleaseBook(db)
    bundle_id, _ = book.add_bundle(big, now=NOW)
    book.add_bundle(_bundle(release_key, "tiny", b"x"), now=NOW)
    book.close()
    clock = ManualClock(NOW)
    server = TunnelServer(key=ep, registry=registry, storage=open_storage(db), clock=clock)
    app = server.app()
    routes = ReleaseRoutes(server, db, max_pulls=4, poll=0.05, clock=clock)
    routes.install(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Live(f"http://127.0.0.1:{port}", routes, ep, dev, other, big, bundle_id, db, clock)
    finally:
        await runner.cleanup()


def _auth(
    lv: Live, kp: KeyPair, path: str, start: int = 0, method: str = "GET", now: float | None = None
) -> str:
    return authorization(
        kp.private,
        kp.public,
        lv.endpoint.public,
        method=method,
        path=path,
        start=start,
        now=NOW if now is None else now,
    )


async def test_an_authenticated_device_pulls_the_bundle_and_resumes_a_cut_pull(live: Live) -> None:
    path = f"/v1/bundles/{live.bundle_id}"
    async with aiohttp.ClientSession() as http:
        async with http.get(
            live.url + path, headers={"Authorization": _auth(live, live.device, path)}
        ) as r:
            assert r.status == 200
            first = await r.content.read(70_000)  # the connection is then dropped
        cut = len(first)
        hdr = {"Authorization": _auth(live, live.device, path, cut), "Range": f"bytes={cut}-"}
        async with http.get(live.url + path, headers=hdr) as r:
            assert r.status == 206
            assert (
                r.headers["Content-Range"]
                == f"bytes {cut}-{len(live.bundle) - 1}/{len(live.bundle)}"
            )
            rest = await r.read()
    assert first + rest == live.bundle
    key = public_key_bytes(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    assert verify_bundle(first + rest, key).id == live.bundle_id


async def test_a_bundle_too_large_for_the_cache_is_served_by_slices(live: Live) -> None:
    live.routes.cache_bytes = 0  # nothing is kept in memory: every chunk read from the database
    path = f"/v1/bundles/{live.bundle_id}"
    cut = 100_000
    hdr = {"Authorization": _auth(live, live.device, path, cut), "Range": f"bytes={cut}-"}
    async with aiohttp.ClientSession() as http, http.get(live.url + path, headers=hdr) as r:
        assert r.status == 206
        assert await r.read() == live.bundle[cut:]
    assert not live.routes._cached


@pytest.mark.parametrize("who", ["none", "revoked", "wrong-range", "stale", "unknown"])
async def test_pulls_without_valid_device_credentials_are_refused(live: Live, who: str) -> None:
    path = f"/v1/bundles/{live.bundle_id}"
    headers: dict[str, str] = {}
    if who == "revoked":
        headers["Authorization"] = _auth(live, live.other, path)
    elif who == "wrong-range":  # a MAC made for another range does not fit this request
        headers = {"Authorization": _auth(live, live.device, path, 0), "Range": "bytes=100-"}
    elif who == "stale":
        headers["Authorization"] = _auth(live, live.device, path, now=NOW - 3600)
    elif who == "unknown":
        headers["Authorization"] = _auth(live, KeyPair.from_private(bytes([9]) * 32), path)
    async with aiohttp.ClientSession() as http, http.get(live.url + path, headers=headers) as r:
        assert r.status == 401
        assert await r.read() != live.bundle
    assert sum(live.routes.refused.values()) == 1


async def test_beyond_the_pull_limit_the_endpoint_answers_busy_with_retry_after(live: Live) -> None:
    live.routes.max_pulls = 0
    path = f"/v1/bundles/{live.bundle_id}"
    hdr = {"Authorization": _auth(live, live.device, path)}
    async with aiohttp.ClientSession() as http, http.get(live.url + path, headers=hdr) as r:
        assert r.status == 503
        assert 1 <= int(r.headers["Retry-After"]) <= 5
    assert live.routes.refused["busy"] == 1


async def test_device_reports_roll_an_unhealthy_release_back_and_queue_announcements(
    live: Live,
) -> None:
    book = ReleaseBook(live.db)
    book.create(
        "r-1", MATRIX, thresholds=HealthThresholds(max_error_rate=0.1, min_reports=1), now=NOW
    )
    assert book.rollout("r-1", 100, ["phone-1"], now=NOW) == 1
    book.close()
    body = {"release": "r-1", "status": "live", "health": {"task_runs": 50, "task_errors": 40}}
    async with aiohttp.ClientSession() as http:
        hdr = {"Authorization": _auth(live, live.device, "/v1/report", method="POST")}
        async with http.post(live.url + "/v1/report", data=json.dumps(body), headers=hdr) as r:
            assert r.status == 200
            out = await r.json()
    assert "task error rate" in out["rolled_back"]
    book = ReleaseBook(live.db)
    st = book.status("r-1")
    queued = book.announcements_after(0)
    book.close()
    assert st.state == "rolled_back"
    assert st.by_status == {"rolled_back": 1}
    assert [json.loads(b[len(ANNOUNCE_MAGIC) :]).get("rollback") for _, _, _, b in queued] == [
        None,
        True,
    ]
    storage = open_storage(live.db)
    cfg = storage.get_config("phone-1")
    storage.close()
    assert cfg is not None
    assert cfg[0] == 2  # announced, then told to go back: each a newer config version


async def test_metrics_export_release_state_pulls_and_refusals(live: Live) -> None:
    book = ReleaseBook(live.db)
    book.create("r-9", MATRIX, thresholds=HealthThresholds(), now=NOW)
    book.rollout("r-9", 100, ["phone-1"], now=NOW)
    book.close()
    path = f"/v1/bundles/{live.bundle_id}"
    async with aiohttp.ClientSession() as http:
        async with http.get(
            live.url + path, headers={"Authorization": _auth(live, live.device, path)}
        ) as r:
            assert r.status == 200
            await r.read()
        async with http.get(live.url + path) as r:
            assert r.status == 401
        async with http.get(live.url + "/metrics") as r:
            text = await r.text()
    assert 'streamfeat_release_devices{release="r-9",status="announced"} 1.0' in text
    assert 'streamfeat_release_state{release="r-9",state="complete"} 100.0' in text
    assert f"streamfeat_release_pulled_bytes_total {float(len(live.bundle))}" in text
    assert 'streamfeat_release_refusals_total{reason="missing"} 1.0' in text


async def test_a_config_pushed_here_is_queued_for_the_other_processes_and_sent_once(
    live: Live, tmp_path: Path
) -> None:
    ws = live.url.replace("http://", "ws://") + "/v1/tunnel"
    cfg = UploaderConfig(url=ws, endpoint_key=live.endpoint.public, backoff_base=0.05)
    up = Uploader(Outbox(tmp_path / "dev.db", OutboxConfig()), live.device, cfg)
    task = asyncio.create_task(up.run())
    try:
        await asyncio.wait_for(up.connected.wait(), 10)
        tasks = b'[triggers]\nclick = "click"\n'
        assert live.routes.server.push_config("phone-1", 7, tasks) == 1
        assert (await asyncio.wait_for(up.configs.get(), 5)).version == 7
        book = live.routes.book
        # queued for the other processes; this one's poller does not send it again
        assert [(d, v) for _, d, v, _ in book.announcements_after(0)] == [("phone-1", 7)]
        # a push queued by another process (or `device config`) arrives through the poller
        queue_config(book.store, "phone-1", 8, tasks)
        assert (await asyncio.wait_for(up.configs.get(), 5)).version == 8
        await asyncio.sleep(0.3)  # several more polls
        assert up.stats.configs == 2
        assert live.routes.downlink.delivered == 1
    finally:
        await up.aclose()
        await asyncio.gather(task, return_exceptions=True)
