"""Authenticating plain HTTP requests with the tunnel's keys (the endpoint's page route).

Sans-IO: bytes, keys and "now" come in as parameters.

The device and the endpoint already share a secret without any message: the X25519 result of
the device's static key and the endpoint's static key (the endpoint knows every device's
public key from its registry). ``request_key`` derives an HMAC-SHA256 key from it with HKDF
(info ``streamfeat request v1``). A request carries the device's public key, its time (ms),
a fresh 16-byte nonce and the HMAC of ``METHOD\\nPATH\\nQUERY\\nTIME\\nNONCE``; the endpoint
looks the key up (unknown or revoked: refused), checks the time is within ``max_skew_ms`` of
its own and the nonce was not seen in that span (replays refused), and compares the HMAC. The
response body carries an HMAC of ``response\\nNONCE\\nBODY`` under the same key, so the device
knows the page came from its endpoint, unchanged. This authenticates both sides and binds the
response to the request; it does not encrypt (pages are not secret: put TLS in front when
they are), and the static-static key has no forward secrecy, unlike the tunnel.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamfeat.tunnel._crypto import dh

__all__ = [
    "HEADER_AUTH",
    "HEADER_DEVICE",
    "HEADER_NONCE",
    "HEADER_TIME",
    "NonceCache",
    "RequestAuth",
    "request_key",
    "response_mac",
    "sign_request",
    "verify_request",
]

HEADER_DEVICE = "X-Streamfeat-Device"
HEADER_TIME = "X-Streamfeat-Time"
HEADER_NONCE = "X-Streamfeat-Nonce"
HEADER_AUTH = "X-Streamfeat-Auth"
_INFO = b"streamfeat request v1"


def request_key(private: bytes, peer_public: bytes) -> bytes:
    """Return the HMAC key the two static keys share (either side computes the same)."""
    hk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return hk.derive(dh(private, peer_public))


def _message(method: str, path: str, query: str, ts_ms: int, nonce: str) -> bytes:
    return f"{method.upper()}\n{path}\n{query}\n{ts_ms}\n{nonce}".encode()


@dataclass(frozen=True, slots=True)
class RequestAuth:
    """The four header values of a signed request."""

    device: str  # the device's public key, hex
    ts_ms: int
    nonce: str  # 32 hex digits
    mac: str  # hex

    def headers(self) -> dict[str, str]:
        return {HEADER_DEVICE: self.device, HEADER_TIME: str(self.ts_ms),
                HEADER_NONCE: self.nonce, HEADER_AUTH: self.mac}  # fmt: skip


def sign_request(key: bytes, device_public: bytes, method: str, path: str, query: str,
                 ts_ms: int, nonce: bytes) -> RequestAuth:  # fmt: skip
    """Return the headers authenticating one request."""
    n = nonce.hex()
    mac = hmac.new(key, _message(method, path, query, ts_ms, n), hashlib.sha256).hexdigest()
    return RequestAuth(device_public.hex(), ts_ms, n, mac)


class NonceCache:
    """Nonces seen within the accepted time span (bounded: oldest forgotten first)."""

    def __init__(self, max_items: int = 100_000) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._max = max_items

    def add(self, nonce: str, ts_ms: int, now_ms: int, span_ms: int) -> bool:
        """Remember ``nonce``; False if it was already seen (a replay)."""
        while self._seen and next(iter(self._seen.values())) < now_ms - 2 * span_ms:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = ts_ms
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True


def verify_request(key: bytes, auth: RequestAuth, method: str, path: str, query: str, *,
                   now_ms: int, nonces: NonceCache, max_skew_ms: int = 120_000) -> str | None:  # fmt: skip
    """Check one request; return None when it is authentic, else the refusal reason
    (``stale``, ``bad_nonce``, ``replayed``, ``bad_mac``)."""
    if abs(now_ms - auth.ts_ms) > max_skew_ms:
        return "stale"
    if len(auth.nonce) != 32 or any(c not in "0123456789abcdef" for c in auth.nonce):
        return "bad_nonce"
    want = hmac.new(key, _message(method, path, query, auth.ts_ms, auth.nonce), hashlib.sha256)
    if not hmac.compare_digest(want.hexdigest(), auth.mac):
        return "bad_mac"
    if not nonces.add(auth.nonce, auth.ts_ms, now_ms, max_skew_ms):
        return "replayed"
    return None


def response_mac(key: bytes, nonce: str, body: bytes) -> str:
    """Return the HMAC (hex) the endpoint attaches to a response body."""
    return hmac.new(key, b"response\n" + nonce.encode() + b"\n" + body, hashlib.sha256).hexdigest()
