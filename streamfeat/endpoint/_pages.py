"""Candidate pages served to devices: ``GET /v1/pages?feed=FEED&cursor=N``.

The endpoint answers a device's page request from a :class:`CandidateSource`; the default,
:class:`CatalogueSource`, draws the page from the catalogue the simulator shares
(:func:`streamfeat.ranking._catalogue.catalogue_page`), in the server's order. A deployment
plugs its own recommender in by passing ``candidates=`` to the endpoint.

Requests are authenticated with the device's tunnel key (:mod:`streamfeat.tunnel._request_auth`):
an unknown or revoked device, a stale time, a replayed nonce or a bad MAC gets 401 with the
reason, counted in ``/metrics`` as a refusal (``pages_<reason>``). The response is the page as
JSON (docs/ranking.md) with an HMAC header the device checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import orjson
from aiohttp import web

from streamfeat.ranking import Page
from streamfeat.ranking._catalogue import catalogue_page
from streamfeat.tunnel._request_auth import (
    HEADER_AUTH,
    HEADER_DEVICE,
    HEADER_NONCE,
    HEADER_TIME,
    NonceCache,
    RequestAuth,
    request_key,
    response_mac,
    verify_request,
)

if TYPE_CHECKING:
    from streamfeat.endpoint._server import TunnelServer

__all__ = ["PAGES_PATH", "CandidateSource", "CatalogueSource", "PagesRoute"]

PAGES_PATH = "/v1/pages"


class CandidateSource(Protocol):
    """Where the endpoint's pages come from."""

    def page(self, device: str, feed: str, cursor: int) -> Page:
        """Return page ``cursor`` (0, 1, ...) of ``feed`` for ``device``, in server order."""
        ...


class CatalogueSource:
    """The default source: ``size`` catalogue items per page, deterministic per device,
    feed and cursor, in descending server score."""

    def __init__(self, size: int = 50) -> None:
        self.size = size

    def page(self, device: str, feed: str, cursor: int) -> Page:
        pid = f"{feed}-{cursor}"
        return catalogue_page(feed, pid, f"{device}/{feed}/{cursor}", self.size)


class PagesRoute:
    """The aiohttp handler of :data:`PAGES_PATH` for one endpoint."""

    def __init__(self, server: TunnelServer, source: CandidateSource) -> None:
        self.server = server
        self.source = source
        self.nonces = NonceCache()

    def _refuse(self, reason: str) -> web.Response:
        self.server.metrics.refused(f"pages_{reason}")
        return web.Response(status=401, text=f"{reason}\n")

    async def handle(self, request: web.Request) -> web.Response:
        h = request.headers
        try:
            public = bytes.fromhex(h[HEADER_DEVICE])
            auth = RequestAuth(
                h[HEADER_DEVICE], int(h[HEADER_TIME]), h[HEADER_NONCE], h[HEADER_AUTH]
            )
        except (KeyError, ValueError):
            return self._refuse("unsigned")
        entry = self.server.registry.lookup(public) if len(public) == 32 else None
        if entry is None:
            return self._refuse("unknown_device")
        if not entry.active:
            return self._refuse("revoked_device")
        key = request_key(self.server.key.private, public)
        now_ms = int(self.server.clock.time() * 1000)
        why = verify_request(key, auth, request.method, request.path, request.query_string,
                             now_ms=now_ms, nonces=self.nonces)  # fmt: skip
        if why is not None:
            return self._refuse(why)
        feed = request.query.get("feed", "home_feed")
        try:
            cursor = int(request.query.get("cursor", "0"))
        except ValueError:
            return web.Response(status=400, text="cursor must be an integer\n")
        if not 0 < len(feed) <= 128 or cursor < 0:
            return web.Response(status=400, text="bad feed or cursor\n")
        body = orjson.dumps(self.source.page(entry.name, feed, cursor).to_dict())
        resp = web.Response(body=body, content_type="application/json")
        resp.headers[HEADER_AUTH] = response_mac(key, auth.nonce, body)
        return resp
