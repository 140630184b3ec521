"""The endpoint's admission guard and limits, without sockets (the socket tests are in
tests/integration/test_endpoint_hardening.py)."""

from __future__ import annotations

import asyncio

import pytest

from streamfeat.endpoint._guard import ConnectionGuard
from streamfeat.endpoint._server import Limits
from streamfeat.errors import ConfigError


class FakeTransport(asyncio.BaseTransport):
    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host
        self.aborted = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.host, 1234) if name == "peername" else default

    def abort(self) -> None:
        self.aborted = True


async def test_caps_per_source_and_total_and_the_deadline() -> None:
    refused: list[str] = []
    g = ConnectionGuard(timeout=0.05, max_total=3, max_per_source=2, on_refuse=refused.append)
    a1, a2, a3, b1, c1 = (FakeTransport(h) for h in ("a", "a", "a", "b", "c"))
    assert g.admit(a1)
    assert g.admit(a2)
    assert not g.admit(a3)  # per source
    assert g.admit(b1)
    assert not g.admit(c1)  # total
    assert refused == ["too_many_unauthenticated"] * 2
    g.authenticated(a1)  # leaves the pool: never timed out
    assert g.unauthenticated == 2
    await asyncio.sleep(0.1)
    assert not a1.aborted
    assert a2.aborted
    assert b1.aborted
    assert refused.count("handshake_timeout") == 2
    assert g.unauthenticated == 0
    assert g.admit(a3)  # slots are back
    g.closed(a3)
    assert g.unauthenticated == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("handshake_timeout", 0.0),
        ("handshake_timeout", float("nan")),
        ("revocation_poll", -1.0),
        ("window", 0),
        ("max_unauthenticated", 0),
        ("max_unauthenticated_per_source", 0),
        ("quota_bytes", -1),
    ],
)
def test_limits_refuse_values_that_make_no_sense(field: str, value: float) -> None:
    with pytest.raises(ConfigError) as info:
        Limits(**{field: value}).check()  # type: ignore[arg-type]
    assert info.value.key is not None


def test_default_limits_are_valid() -> None:
    Limits().check()


async def test_an_answered_http_connection_is_closed_at_the_deadline_but_not_counted() -> None:
    refused: list[str] = []
    g = ConnectionGuard(timeout=0.05, max_total=8, max_per_source=8, on_refuse=refused.append)
    t = FakeTransport("a")
    assert g.admit(t)
    g.served(t)
    await asyncio.sleep(0.1)
    assert t.aborted
    assert refused == []
