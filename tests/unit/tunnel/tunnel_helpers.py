"""Helpers for the tunnel tests: deterministic keys and an in-memory connection pair."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from streamfeat.tunnel import (
    NEED_DATA,
    Accept,
    Batch,
    Closed,
    DeviceHello,
    Hello,
    KeyPair,
    Role,
    TunnelConnection,
)


def det_random(seed: str) -> Callable[[int], bytes]:
    """Deterministic randomness: a counter hashed with ``seed``."""
    n = [0]

    def rnd(k: int) -> bytes:
        out = b""
        while len(out) < k:
            out += hashlib.sha256(f"{seed}/{n[0]}".encode()).digest()
            n[0] += 1
        return out[:k]

    return rnd


def key(name: str) -> KeyPair:
    """A fixed key pair derived from ``name``."""
    return KeyPair.from_private(hashlib.sha256(name.encode()).digest())


ENDPOINT = key("endpoint")
DEVICE = key("device")


def bid(i: int) -> bytes:
    """A 16-byte batch id."""
    return i.to_bytes(16, "big")


def drain(conn: TunnelConnection) -> list[object]:
    """All events available now (stops after a Closed)."""
    out: list[object] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return out
        out.append(ev)
        if isinstance(ev, Closed):
            return out


class TunnelPair:
    """A device and an endpoint connection joined in memory (like h11's ConnectionPair)."""

    def __init__(self, seed: str = "pair", *, endpoint_key: bytes | None = None) -> None:
        self.device = TunnelConnection(
            Role.DEVICE,
            static=DEVICE,
            remote_static=endpoint_key or ENDPOINT.public,
            random_bytes=det_random(seed + "/d"),
        )
        self.endpoint = TunnelConnection(
            Role.ENDPOINT, static=ENDPOINT, random_bytes=det_random(seed + "/e")
        )

    def hello(self, first: Batch | None = None, version: int = 0) -> bytes:
        return self.device.send(Hello(version, first))

    def open(
        self, first: Batch | None = None, version: int = 0
    ) -> tuple[list[object], list[object]]:
        """Run the whole handshake; returns (endpoint events, device events)."""
        self.endpoint.receive_data(self.hello(first, version))
        ev_e = drain(self.endpoint)
        assert isinstance(ev_e[0], DeviceHello)
        welcome = self.endpoint.send(Accept())
        ev_e += drain(self.endpoint)
        self.device.receive_data(welcome)
        return ev_e, drain(self.device)

    def to_endpoint(self, data: bytes) -> list[object]:
        self.endpoint.receive_data(data)
        return drain(self.endpoint)

    def to_device(self, data: bytes) -> list[object]:
        self.device.receive_data(data)
        return drain(self.device)
