"""Device-key authentication for the endpoint's HTTP routes (bundle pulls, reports).

A device and the endpoint share a secret no one else can compute: the X25519 static-static
Diffie-Hellman of the device's key and the endpoint's key (both already pinned for the
tunnel). A request carries::

    Authorization: SF-Device device=HEX_PUBLIC_KEY,ts=UNIX_SECONDS,mac=HEX

where ``mac`` is HMAC-SHA256 keyed by ``blake2s(b"streamfeat http auth v1" + shared)`` over
``METHOD \\n PATH \\n RANGE_START \\n TS``. The endpoint looks the public key up in its
registry (unknown or revoked: refused), recomputes the MAC in constant time, and refuses a
``ts`` more than :data:`MAX_SKEW` seconds from its own clock. A replay inside that window
can only fetch the same bytes again. Pure: the clock and the keys come in as arguments.
"""

from __future__ import annotations

import hashlib
import hmac

from streamfeat.tunnel._crypto import dh

__all__ = ["MAX_SKEW", "SCHEME", "AuthError", "authorization", "parse_authorization", "verify"]

SCHEME = "SF-Device"
MAX_SKEW = 300.0
_CONTEXT = b"streamfeat http auth v1"


class AuthError(ValueError):
    """Raised when a request's device authentication is missing, malformed or wrong."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"device authentication refused: {reason}")


def _key(shared: bytes) -> bytes:
    return hashlib.blake2s(_CONTEXT + shared).digest()


def _mac(shared: bytes, method: str, path: str, start: int, ts: int) -> str:
    msg = f"{method.upper()}\n{path}\n{start}\n{ts}".encode()
    return hmac.new(_key(shared), msg, hashlib.sha256).hexdigest()


def authorization(
    device_private: bytes,
    device_public: bytes,
    endpoint_public: bytes,
    *,
    method: str,
    path: str,
    start: int = 0,
    now: float,
) -> str:
    """The ``Authorization`` header value a device sends."""
    ts = int(now)
    mac = _mac(dh(device_private, endpoint_public), method, path, start, ts)
    return f"{SCHEME} device={device_public.hex()},ts={ts},mac={mac}"


def parse_authorization(value: str | None) -> tuple[bytes, int, str]:
    """Split a header into (device public key, ts, mac).

    Raises:
        AuthError: missing or malformed.
    """
    if not value:
        raise AuthError("missing")
    scheme, _, rest = value.partition(" ")
    if scheme != SCHEME:
        raise AuthError("not the SF-Device scheme")
    try:
        parts = dict(p.split("=", 1) for p in rest.split(","))
        key = bytes.fromhex(parts["device"])
        ts = int(parts["ts"])
        mac = parts["mac"]
    except (ValueError, KeyError) as exc:
        raise AuthError("malformed") from exc
    if len(key) != 32:
        raise AuthError("malformed")
    return key, ts, mac


def verify(
    endpoint_private: bytes,
    device_public: bytes,
    ts: int,
    mac: str,
    *,
    method: str,
    path: str,
    start: int,
    now: float,
) -> None:
    """Check a parsed header (the device key already found active in the registry).

    Raises:
        AuthError: ``stale`` (ts too far from now) or ``bad mac``.
    """
    if abs(now - ts) > MAX_SKEW:
        raise AuthError("stale")
    want = _mac(dh(endpoint_private, device_public), method, path, start, ts)
    if not hmac.compare_digest(want, mac):
        raise AuthError("bad mac")
