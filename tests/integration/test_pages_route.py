"""GET /v1/pages on a real endpoint on 127.0.0.1: a registered device gets a signed page from
the catalogue source and the agent installs it; unknown, revoked, replayed and tampered
requests are refused and counted."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from streamfeat.agent import Agent
from streamfeat.clock import SystemClock
from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._server import TunnelServer
from streamfeat.endpoint._storage import SQLiteStorage
from streamfeat.errors import TunnelError
from streamfeat.tunnel._crypto import KeyPair
from streamfeat.tunnel._request_auth import request_key, sign_request
from streamfeat.upload._pages import fetch_page

TASKS = """
[models.ranker]
file = "builtin:edgerec-small"

[tasks.rerank]
kind = "edgerec"
model = "ranker"
"""


@pytest.fixture
async def endpoint(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = tmp_path / "ep.sqlite"
    server = TunnelServer(key=KeyPair.generate(os.urandom), registry=Registry(db),
                          storage=SQLiteStorage(db))  # fmt: skip
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield server, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_agent_fetches_a_signed_page(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, base = endpoint
    dev = KeyPair.generate(os.urandom)
    server.registry.add("d1", dev.public)
    agent = Agent(tasks=TASKS, store_path=tmp_path / "d.sqlite", device="d1",
                  endpoint_url=base.replace("http", "ws") + "/v1/tunnel",
                  endpoint_public_key=server.key.public, device_key=dev.private)  # fmt: skip
    await agent.start()
    try:
        page = await agent.fetch_page("home_feed", cursor=2)
        assert len(page.candidates) == 50
        assert page.page_id == "home_feed-2"
        assert agent.page("home_feed") == list(page.items)
        scores = [c.get("server_score") for c in page.candidates]
        assert scores == sorted(scores, reverse=True)  # the server's order
        again = await fetch_page(base + "/v1/pages", endpoint_key=server.key.public,
                                 device_key=dev, feed="home_feed", cursor=2, clock=SystemClock())  # fmt: skip
        assert again == page  # deterministic per device, feed and cursor
    finally:
        await agent.aclose()


async def test_refusals_are_counted(endpoint) -> None:  # type: ignore[no-untyped-def]
    server, base = endpoint
    known, revoked, stranger = (KeyPair.generate(os.urandom) for _ in range(3))
    server.registry.add("k", known.public)
    server.registry.add("r", revoked.public)
    server.registry.revoke("r")
    url = base + "/v1/pages"
    for kp, reason in ((stranger, "unknown_device"), (revoked, "revoked_device")):
        with pytest.raises(TunnelError, match=reason):
            await fetch_page(url, endpoint_key=server.key.public, device_key=kp, feed="f",
                             clock=SystemClock())  # fmt: skip
    # a tampered query, a replayed request, an unsigned one
    key = request_key(known.private, server.key.public)
    ts = int(SystemClock().time() * 1000)
    auth = sign_request(key, known.public, "GET", "/v1/pages", "cursor=0&feed=f", ts, b"\x01" * 16)
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "?cursor=1&feed=f", headers=auth.headers()) as r:
            assert (r.status, await r.text()) == (401, "bad_mac\n")
        async with s.get(url + "?cursor=0&feed=f", headers=auth.headers()) as r:
            assert r.status == 200
        async with s.get(url + "?cursor=0&feed=f", headers=auth.headers()) as r:
            assert (r.status, await r.text()) == (401, "replayed\n")
        async with s.get(url + "?cursor=0&feed=f") as r:
            assert r.status == 401
    for reason in ("unknown_device", "revoked_device", "bad_mac", "replayed", "unsigned"):
        assert server.metrics.refusal_count(f"pages_{reason}") == 1
