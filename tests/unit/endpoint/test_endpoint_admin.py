"""Who may see the operator routes: loopback only without a token, the token with one."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from streamfeat.endpoint._admin import AdminGuard, is_loopback, load_admin_token
from streamfeat.errors import ConfigError

TOKEN = "s3cret-admin-token-0123456789"


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _app(guard: AdminGuard) -> web.Application:
    app = web.Application(middlewares=[guard.middleware])
    for path in (
        "/healthz",
        "/v1/tunnel",
        "/v1/pages",
        "/metrics",
        "/dashboard",
        "/dashboard/api/state",
    ):
        app.router.add_get(path, _ok)
    return app


def _request(path: str, remote: str, headers: dict[str, str] | None = None) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda k, d=None: (
        (remote, 4242) if k == "peername" else d
    )
    return make_mocked_request("GET", path, headers=headers or {}, transport=transport)


@pytest.mark.parametrize(
    ("remote", "loop"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("192.0.2.7", False), ("10.0.0.1", False), ("::ffff:192.0.2.7", False), ("", False), (None, False)],
)  # fmt: skip
def test_is_loopback(remote: str | None, loop: bool) -> None:
    assert is_loopback(remote) is loop


@pytest.mark.parametrize("path", ["/metrics", "/dashboard", "/dashboard/api/state", "/v1x", "/"])
async def test_without_a_token_only_loopback_gets_in(path: str) -> None:
    guard = AdminGuard(None)
    resp = await guard.middleware(_request(path, "192.0.2.7"), _ok)
    assert resp.status == 403
    resp = await guard.middleware(_request(path, "127.0.0.1"), _ok)
    assert resp.status == 200
    # the health check and the device API (which authenticates devices itself) stay open
    for open_path in ("/v1/tunnel", "/v1/pages", "/v1/bundles/x", "/v1/report", "/healthz"):
        assert (await guard.middleware(_request(open_path, "192.0.2.7"), _ok)).status == 200


async def test_with_a_token_even_loopback_needs_it() -> None:
    guard = AdminGuard(TOKEN)
    assert (await guard.middleware(_request("/dashboard", "127.0.0.1"), _ok)).status == 401
    bad = {"Authorization": "Bearer " + TOKEN[:-1] + "x"}
    assert (await guard.middleware(_request("/metrics", "127.0.0.1", bad), _ok)).status == 401
    good = {"Authorization": "Bearer " + TOKEN}
    assert (await guard.middleware(_request("/metrics", "192.0.2.7", good), _ok)).status == 200
    assert guard.refused["unauthorized"] == 2


async def test_browser_login_trades_the_token_for_a_cookie() -> None:
    guard = AdminGuard(TOKEN)
    async with TestClient(TestServer(_app(guard), host="127.0.0.1")) as client:
        r = await client.get("/dashboard/api/state")
        assert r.status == 401
        r = await client.get("/dashboard?token=wrong", allow_redirects=False)
        assert r.status == 401
        r = await client.get(f"/dashboard?token={TOKEN}", allow_redirects=False)
        assert r.status == 302
        assert r.headers["Location"] == "/dashboard"
        cookie = r.cookies["sf_admin"]
        assert TOKEN not in cookie.value  # a digest, never the token
        assert cookie["httponly"]
        r = await client.get("/dashboard/api/state")  # the client kept the cookie
        assert r.status == 200


def test_token_file_must_be_owner_only(tmp_path: Path) -> None:
    p = tmp_path / "admin.token"
    p.write_text(TOKEN + "\n")
    os.chmod(p, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_admin_token(p)
    os.chmod(p, 0o600)
    assert load_admin_token(p) == TOKEN
    p.write_text("short")
    with pytest.raises(ConfigError):
        load_admin_token(p)
    with pytest.raises(ConfigError):
        load_admin_token(tmp_path / "missing")
