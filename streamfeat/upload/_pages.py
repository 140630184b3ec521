"""The device side of ``GET /v1/pages``: fetch a page of candidates from the endpoint.

The request is signed with the device's tunnel key and the response's HMAC is checked
(:mod:`streamfeat.tunnel._request_auth`), so a page that did not come from the endpoint the
device pins is refused.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import orjson

from streamfeat.clock import Clock
from streamfeat.errors import TunnelError
from streamfeat.ranking import Page
from streamfeat.tunnel._crypto import KeyPair
from streamfeat.tunnel._request_auth import HEADER_AUTH, request_key, response_mac, sign_request

__all__ = ["PAGES_PATH", "fetch_page", "pages_url"]

PAGES_PATH = "/v1/pages"


def pages_url(endpoint_url: str) -> str:
    """Return the pages route of the endpoint whose tunnel is ``endpoint_url`` (ws[s]://...)."""
    u = urlsplit(endpoint_url)
    scheme = {"ws": "http", "wss": "https"}.get(u.scheme, u.scheme)
    return urlunsplit((scheme, u.netloc, PAGES_PATH, "", ""))


async def fetch_page(url: str, *, endpoint_key: bytes, device_key: KeyPair, feed: str,
                     cursor: int = 0, clock: Clock, within: float = 5.0,
                     random_bytes: Callable[[int], bytes] = os.urandom) -> Page:  # fmt: skip
    """Fetch page ``cursor`` of ``feed`` from the pages route ``url`` (``within`` seconds).

    Raises:
        TunnelError: the endpoint refused the request (its reason), answered with a page whose
            MAC does not check, or could not be reached.
        PageError: the page it sent breaks the page contract.
    """
    key = request_key(device_key.private, endpoint_key)
    query = urlencode({"cursor": str(cursor), "feed": feed})
    auth = sign_request(key, device_key.public, "GET", urlsplit(url).path, query,
                        int(clock.time() * 1000), random_bytes(16))  # fmt: skip
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as s,
            s.get(f"{url}?{query}", headers=auth.headers()) as resp,
        ):
            body = await resp.read()
            status, mac = resp.status, resp.headers.get(HEADER_AUTH, "")
    except (aiohttp.ClientError, TimeoutError) as exc:
        msg = f"can't fetch a page from {url}: {type(exc).__name__}: {exc}"
        raise TunnelError(msg) from exc
    if status != 200:
        msg = f"the endpoint refused the page request ({status}: {body.decode(errors='replace').strip()})"
        raise TunnelError(msg)
    if not hmac.compare_digest(response_mac(key, auth.nonce, body), mac):
        msg = "the page's MAC does not check: not from the pinned endpoint, or changed on the way"
        raise TunnelError(msg)
    return Page.from_dict(orjson.loads(body))
