"""The protocol vectors in tests/vectors/protocol/ are what the code produces, and they read
the way docs/protocol.md says (checked here with independent code: raw ChaCha20-Poly1305,
a hand-written record parser, hashlib for the schema id)."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.vectors import generate

H = bytes.fromhex


@pytest.fixture(scope="module")
def built() -> dict[str, bytes]:
    return generate.build_all()


@pytest.mark.parametrize("name", ["session.json", "batches.json"])
def test_vectors_do_not_drift(built: dict[str, bytes], name: str) -> None:
    on_disk = (generate.OUT_DIR / name).read_bytes()
    assert on_disk == built[name], (
        f"{name} drifted from the code: if the wire format changed on purpose, bump the "
        "protocol version, update docs/protocol.md and run python tests/vectors/generate.py"
    )


def test_check_mode_reports_drift(tmp_path: Any) -> None:
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert generate.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "session.json").write_text("{}")
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1


def _load(name: str) -> dict[str, Any]:
    return json.loads((generate.OUT_DIR / name).read_text())


def _records(msg: bytes) -> list[tuple[int, bytes]]:
    """Outer records per the doc: type u8 | length u16 big-endian | body; whole records only."""
    out, i = [], 0
    while i < len(msg):
        rtype, length = struct.unpack_from(">BH", msg, i)
        body = msg[i + 3 : i + 3 + length]
        assert len(body) == length
        out.append((rtype, body))
        i += 3 + length
    return out


def _uvarint(data: bytes) -> tuple[int, int]:
    n = shift = i = 0
    while True:
        b = data[i]
        n |= (b & 0x7F) << shift
        shift, i = shift + 7, i + 1
        if b < 0x80:
            return n, i


def test_session_reads_as_documented() -> None:
    s = _load("session.json")
    keys = {
        "device->endpoint": ChaCha20Poly1305(H(s["transport_keys"]["device_to_endpoint"])),
        "endpoint->device": ChaCha20Poly1305(H(s["transport_keys"]["endpoint_to_device"])),
    }
    counters = {"device->endpoint": 0, "endpoint->device": 0}
    kinds = []
    for m in s["messages"]:
        recs = _records(H(m["ws_message_hex"]))
        assert len(recs) == len(m["records"]) == 1
        rtype, body = recs[0]
        if rtype == 0x01:  # HELLO: e (32) | enc s (48) | enc payload (len + 16)
            assert body[:32] == H(s["keys"]["device_ephemeral_public"])
            payload = H(m["records"][0]["payload_plaintext_hex"])
            assert len(body) == 32 + 48 + len(payload) + 16
            (version,) = struct.unpack_from(">I", payload)
            assert version == 1
            assert payload[4] == 0x10
            assert payload[5:21] == H(s["batch_ids"][0])
            assert payload[21:] == H(s["payloads"][0])
            kinds.append("HELLO")
        elif rtype == 0x02:  # WELCOME: e (32) | enc empty payload (16)
            assert len(body) == 48
            assert body[:32] == H(s["keys"]["endpoint_ephemeral_public"])
            kinds.append("WELCOME")
        else:
            assert rtype == 0x03
            d = m["direction"]
            nonce = b"\x00" * 4 + counters[d].to_bytes(8, "little")
            counters[d] += 1
            pt = keys[d].decrypt(nonce, body, b"")
            assert pt.hex() == m["records"][0]["plaintext_hex"]
            kind = pt[0]
            if kind == 0x10:
                kinds.append(f"BATCH {pt[1:17].hex()[:2]}")
            elif kind == 0x11:
                n, end = _uvarint(pt[1:])
                assert end == len(pt) - 1
                kinds.append(f"ACK {n}")
            elif kind == 0x12:
                kinds.append(f"CONFIG {struct.unpack_from('>I', pt, 1)[0]}")
                assert pt[5:].decode() == s["config_body"]
            else:
                (code,) = struct.unpack_from(">H", pt, 1)
                kinds.append(f"CLOSE {code} {pt[3:].decode()}")
    assert kinds == [
        "HELLO", "WELCOME", "ACK 1", "BATCH a2", "BATCH a3", "ACK 3", "CONFIG 2", "CLOSE 1000 bye",
    ]  # fmt: skip


def test_items_are_length_prefixed_batches() -> None:
    s = _load("session.json")
    payload = H(s["payloads"][1])
    items, i = [], 0
    while i < len(payload):
        n, used = _uvarint(payload[i:])
        items.append(payload[i + used : i + used + n])
        i += used + n
    assert [it.hex() for it in items] == s["items"][1:]
    assert all(it[:2] == b"SF" for it in items)


def test_refusal_is_plaintext() -> None:
    r = _load("session.json")["refusal"]
    assert _records(H(r["refuse_hex"])) == [(0x04, struct.pack(">H", 4001) + b"unknown_device")]
    assert r["device_events"][-1]["code"] == 4001


def test_schema_id_is_sha256_of_the_canonical_description() -> None:
    b = _load("batches.json")["schema"]
    digest = hashlib.sha256(b["canonical_description"].encode()).digest()
    assert digest.hex() == b["sha256"]
    assert int.from_bytes(digest[:4], "big") == b["id"]
    assert " " not in b["canonical_description"].replace("`", "")  # compact JSON, no spaces


@pytest.mark.parametrize(("codec", "number"), [("json", 1), ("msgpack", 2), ("compact", 3)])
def test_batch_header(codec: str, number: int) -> None:
    b = _load("batches.json")
    data = H(b["codecs"][codec]["batch_hex"])
    assert data[:2] == b"SF"
    assert data[2] == 1 << 4 | number
    assert int.from_bytes(data[3:7], "big") == b["schema"]["id"]
    assert data[7] == b["schema"]["version"]
    assert data[8] == len(b["records"])


def test_compact_records_concatenate_to_the_body() -> None:
    c = _load("batches.json")["codecs"]["compact"]
    assert "".join(r["hex"] for r in c["records"]) == c["body_hex"]


def test_a_device_of_another_protocol_version_is_refused_handshake_failed() -> None:
    from streamfeat.tunnel._events import NEED_DATA, Closed, Hello
    from streamfeat.tunnel._protocol import Role, TunnelConnection

    dev = TunnelConnection(
        Role.DEVICE,
        static=generate.DEVICE_STATIC,
        remote_static=generate.ENDPOINT_STATIC.public,
        prologue=b"streamfeat-tunnel/2",
    )
    ep = TunnelConnection(Role.ENDPOINT, static=generate.ENDPOINT_STATIC)
    ep.receive_data(dev.send(Hello()))
    ev = ep.next_event()
    assert isinstance(ev, Closed)
    assert ev.code == 4003
    assert _records(ep.data_to_send()) == [(0x04, struct.pack(">H", 4003) + b"handshake_failed")]
    assert ep.next_event() is not NEED_DATA


def test_an_unknown_record_type_is_a_protocol_error() -> None:
    from streamfeat.tunnel._events import Closed
    from streamfeat.tunnel._protocol import Role, TunnelConnection

    ep = TunnelConnection(Role.ENDPOINT, static=generate.ENDPOINT_STATIC)
    ep.receive_data(b"\x05\x00\x00")
    ev = ep.next_event()
    assert isinstance(ev, Closed)
    assert ev.code == 4000
