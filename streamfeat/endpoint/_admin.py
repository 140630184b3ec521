"""Who may see the endpoint's operator routes (the dashboard, its API, ``/metrics``).

Open to anyone who can reach the port: ``/healthz`` and the device API, every route under
``/v1/`` (the tunnel, candidate pages, bundle pulls, reports), each of which authenticates the
device itself. Every other route is an operator route and needs either

* an **admin token**, when ``serve --admin-token-file FILE`` gave one: ``Authorization: Bearer
  TOKEN``, or the dashboard's session cookie (set by opening ``/dashboard?token=TOKEN`` once).
  The file must be owner-only (mode 0600, checked at start); tokens and cookies are compared in
  constant time (``hmac.compare_digest``). A request without it gets 401.
* or, with no token configured, a **loopback** client (127.0.0.0/8, ::1). Anyone else gets 403.
  A reverse proxy on the same host makes every client look local: configure a token then.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from streamfeat.errors import ConfigError

__all__ = ["AdminGuard", "is_loopback", "is_open", "load_admin_token"]

DEVICE_API = "/v1/"  # routes under it authenticate devices themselves
COOKIE = "sf_admin"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_admin_token(path: str | Path) -> str:
    """Read the admin token from an owner-only file.

    Raises:
        ConfigError: the file is missing, readable or writable by others, or empty.
    """
    p = Path(path)
    try:
        st = os.stat(p)
        text = p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        msg = f"can't read the admin token file {p}: {exc.strerror}"
        raise ConfigError(msg) from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        msg = f"the admin token file {p} is open to others (mode {stat.S_IMODE(st.st_mode):o}): chmod 600 {p}"
        raise ConfigError(msg)
    if len(text) < 16:
        msg = f"the admin token in {p} is shorter than 16 characters"
        raise ConfigError(msg)
    return text


def is_open(path: str) -> bool:
    """True for the routes anyone may reach: ``/healthz`` and the device API."""
    return path == "/healthz" or path.startswith(DEVICE_API)


def is_loopback(remote: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped forms."""
    if not remote:
        return False
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class AdminGuard:
    """The aiohttp middleware that enforces the rules above.

    Args:
        token: the admin token, or None (loopback only).
        metrics: where refusals are counted (``admin_refusals``), if given.
    """

    def __init__(self, token: str | None, metrics: Any = None) -> None:
        self.token = token
        self._metrics = metrics
        self.refused: dict[str, int] = {"unauthorized": 0, "forbidden": 0}
        # the cookie holds a digest of the token, never the token itself
        self._cookie = (
            hmac.new(token.encode(), b"streamfeat dashboard session", hashlib.sha256).hexdigest()
            if token
            else None
        )

    def decide(self, remote: str | None, authorization: str | None, cookie: str | None) -> int:
        """200 (allowed), 401 (a token is needed) or 403 (not loopback)."""
        if self.token is None:
            return 200 if is_loopback(remote) else 403
        if authorization and authorization.startswith("Bearer "):
            given = authorization[7:].strip().encode()
            if hmac.compare_digest(given, self.token.encode()):
                return 200
        if cookie and self._cookie and hmac.compare_digest(cookie.encode(), self._cookie.encode()):
            return 200
        return 401

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if is_open(request.path):
            return await handler(request)
        query_token = request.query.get("token")
        # a browser's way in: trade the token for a session cookie, then drop it from the URL
        if (
            query_token is not None
            and self.token is not None
            and request.path == "/dashboard"
            and hmac.compare_digest(query_token.encode(), self.token.encode())
        ):
            resp = web.Response(status=302, headers={"Location": "/dashboard"})
            assert self._cookie is not None
            resp.set_cookie(COOKIE, self._cookie, httponly=True, samesite="Strict", path="/")
            return resp
        status = self.decide(
            request.remote, request.headers.get("Authorization"), request.cookies.get(COOKIE)
        )
        if status == 200:
            return await handler(request)
        reason = "unauthorized" if status == 401 else "forbidden"
        self.refused[reason] += 1
        if self._metrics is not None:
            self._metrics.admin_refusals.labels(reason).inc()
        if status == 401:
            return web.Response(
                status=401,
                text="admin token required (Authorization: Bearer TOKEN, or /dashboard?token=TOKEN)\n",
                headers={"WWW-Authenticate": 'Bearer realm="streamfeat"'},
            )
        return web.Response(
            status=403,
            text="only loopback clients may see this; start serve with --admin-token-file to allow others\n",
        )
