"""The IK handshake and transport ciphers against the published cacophony vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamfeat.tunnel._crypto import KeyPair
from streamfeat.tunnel._handshake import PROTOCOL_NAME, HandshakeState

VECTORS = json.loads(
    (Path(__file__).parents[2] / "data" / "noise" / "ik_chachapoly.json").read_text()
)["vectors"]


def test_the_suite_we_use_has_a_vector() -> None:
    assert PROTOCOL_NAME.decode() in {v["protocol_name"] for v in VECTORS}


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["protocol_name"])
def test_vector_byte_for_byte(v: dict) -> None:
    h = bytes.fromhex
    name = v["protocol_name"].encode()
    ini = HandshakeState(
        initiator=True,
        s=KeyPair.from_private(h(v["init_static"])),
        e=KeyPair.from_private(h(v["init_ephemeral"])),
        rs=h(v["init_remote_static"]),
        prologue=h(v["init_prologue"]),
        protocol_name=name,
    )
    res = HandshakeState(
        initiator=False,
        s=KeyPair.from_private(h(v["resp_static"])),
        e=KeyPair.from_private(h(v["resp_ephemeral"])),
        prologue=h(v["resp_prologue"]),
        protocol_name=name,
    )
    m = v["messages"]
    c1 = ini.write_message_1(h(m[0]["payload"]))
    assert c1.hex() == m[0]["ciphertext"]
    assert res.read_message_1(c1) == h(m[0]["payload"])
    assert res.rs == KeyPair.from_private(h(v["init_static"])).public
    c2 = res.write_message_2(h(m[1]["payload"]))
    assert c2.hex() == m[1]["ciphertext"]
    assert ini.read_message_2(c2) == h(m[1]["payload"])
    assert ini.handshake_hash.hex() == v["handshake_hash"] == res.handshake_hash.hex()
    i_send, i_recv = ini.split()
    r_send, r_recv = res.split()
    for k, msg in enumerate(m[2:]):
        send, recv = (i_send, r_recv) if k % 2 == 0 else (r_send, i_recv)
        ct = send.encrypt_with_ad(b"", h(msg["payload"]))
        assert ct.hex() == msg["ciphertext"]
        assert recv.decrypt_with_ad(b"", ct) == h(msg["payload"])
