"""Regenerate the wire-protocol test vectors in ``tests/vectors/protocol/`` from the code.

Run from the repository root::

    python tests/vectors/generate.py           # rewrite the JSON files
    python tests/vectors/generate.py --check   # exit 1 if the code no longer produces them

Everything random is fixed here and passed in (the tunnel core takes its randomness as a
parameter): static keys, both ephemeral keys, batch ids. The session is produced by two real
:class:`TunnelConnection` objects talking to each other, cross-checked against a second,
independent run of the bare Noise handshake; the batches by the real encoders and decoder.
``docs/protocol.md`` explains every field.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from streamfeat.encoders import (  # noqa: E402
    CountingBloomAdmission,
    decode_batch,
    encoder_for,
    index_schemas,
    schemas_for,
)
from streamfeat.tasks import parse_tasks  # noqa: E402
from streamfeat.tunnel import _frames as F  # noqa: E402
from streamfeat.tunnel._crypto import CipherState, KeyPair  # noqa: E402
from streamfeat.tunnel._events import (  # noqa: E402
    NEED_DATA,
    Accept,
    Ack,
    Batch,
    Close,
    Config,
    Hello,
    Refuse,
)
from streamfeat.tunnel._handshake import PROTOCOL_NAME, HandshakeState  # noqa: E402
from streamfeat.tunnel._items import join_items  # noqa: E402
from streamfeat.tunnel._protocol import PROLOGUE, Role, TunnelConnection  # noqa: E402

OUT_DIR = ROOT / "tests" / "vectors" / "protocol"
PROTOCOL_VERSION = 1

# A small tasks file that exercises every record type and field kind. Fixed here (not the
# embedded default), so a change to the default tasks file does not move the vectors.
TASKS_TOML = """\
[triggers]
no_click = "exposure * exposure * exposure without click"

[windows.clicks_10m]
assign = "tumbling 10m"
filter = ["click"]
aggregate = { n = "count", items = "distinct item", dwell = "mean args.dur_ms", top = "top 2 item" }

[windows.session]
assign = "session 5m"
aggregate = { n = "count", first = "first ts", page = "last page" }

[features.ipv]
kind = "ipv"
actions = ["add_cart", "purchase", "scroll"]

[features.exposure]
kind = "exposure"

[tasks.rerank]
on = ["no_click"]
run = "streamfeat.tasks.examples:rerank_no_click"
"""

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms

RECORDS: list[dict[str, Any]] = [
    {
        "kind": "feature", "feature": "ipv", "device": "phone-17", "ts": T0 + 42_500,
        "values": {"item": "2333346", "enter_ts": T0 + 30_000, "dwell_ms": 12_500,
                   "truncated": False, "add_cart": 1, "purchase": 0, "scroll": 4},
    },
    {
        "kind": "feature", "feature": "exposure", "device": "phone-17", "ts": T0 + 60_000,
        "values": {"item": "sku-9", "page": "home_feed", "visit_start": T0 + 50_000,
                   "first_pos": 3, "exposures": 2, "exposure_ms": 1234.56, "scrolls": 1,
                   "max_scroll_speed": 0.875, "clicked": False, "deleted": True,
                   "delete_reason": "not_interested"},
    },
    {
        "kind": "feature", "feature": "exposure", "device": "phone-17", "ts": T0 + 60_000,
        "values": {"item": "2333346", "page": "home_feed", "visit_start": T0 + 50_000,
                   "first_pos": None, "exposures": 0, "exposure_ms": 0, "scrolls": 0,
                   "max_scroll_speed": None, "clicked": True, "deleted": False,
                   "delete_reason": None},
    },
    {
        "kind": "window", "window": "clicks_10m", "device": "phone-17", "key": "phone-17",
        "start": T0, "end": T0 + 600_000,
        "values": {"n": 3, "items": 2, "dwell": 1500.25, "top": [["2333346", 2], ["sku-9", 1]]},
        "forced": False, "final": False,
    },
    {
        "kind": "window", "window": "session", "device": "phone-17", "key": "phone-17",
        "start": T0 + 30_000, "end": T0 + 360_000,
        "values": {"n": 7, "first": T0 + 30_000, "page": "item_detail"},
        "forced": True, "final": True,
    },
    {
        "kind": "late", "window": "clicks_10m", "device": "phone-17", "ts": T0 - 5_000,
        "event": {"device": "phone-17", "ts": T0 - 5_000, "type": "click", "page": "home_feed",
                  "item": "sku-9", "args": {"pos": 3}},
    },
    {
        "kind": "trigger", "trigger": "no_click", "device": "phone-17", "first": 10,
        "last": 14, "first_ts": T0 + 50_000, "last_ts": T0 + 59_000,
    },
    {
        "kind": "task", "task": "rerank", "device": "phone-17", "ts": T0 + 59_000,
        "values": {"order": ["sku-9", "2333346"], "score": 0.5, "ok": True},
    },
    {"kind": "quarantine", "line": 17, "reason": "`ts` must be an integer, got \"abc\""},
]  # fmt: skip


def _sha(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


DEVICE_STATIC = KeyPair.from_private(_sha("streamfeat vectors: device static"))
ENDPOINT_STATIC = KeyPair.from_private(_sha("streamfeat vectors: endpoint static"))
DEVICE_EPHEMERAL = _sha("streamfeat vectors: device ephemeral")
ENDPOINT_EPHEMERAL = _sha("streamfeat vectors: endpoint ephemeral")
STRANGER_STATIC = KeyPair.from_private(_sha("streamfeat vectors: unregistered device static"))
STRANGER_EPHEMERAL = _sha("streamfeat vectors: unregistered device ephemeral")
BATCH_IDS = [bytes([i]) * 16 for i in (0xA1, 0xA2, 0xA3)]


def fixed_random(*chunks: bytes) -> Callable[[int], bytes]:
    """A ``random_bytes`` that hands out ``chunks`` in order (and fails past them)."""
    it: Iterator[bytes] = iter(chunks)

    def random_bytes(n: int) -> bytes:
        out = next(it)
        assert len(out) == n, (len(out), n)
        return out

    return random_bytes


def _jsonable(v: Any) -> Any:
    return orjson.loads(orjson.dumps(v))


# ---- batches ------------------------------------------------------------------------------


def build_batches() -> dict[str, Any]:
    """The schema set of TASKS_TOML and RECORDS encoded by each codec."""
    schemas = schemas_for(parse_tasks(TASKS_TOML, source="<vectors>"))
    canon = orjson.dumps([schemas.version, [s.describe() for s in schemas.schemas]])
    digest = hashlib.sha256(canon).digest()
    assert int.from_bytes(digest[:4], "big") == schemas.id
    known = index_schemas(schemas)
    codecs: dict[str, Any] = {}
    for codec in ("json", "msgpack", "compact"):
        data = encoder_for(codec, schemas).encode_batch(RECORDS)
        entry: dict[str, Any] = {
            "batch_hex": data.hex(),
            "header_hex": data[:9].hex(),
            "body_hex": data[9:].hex(),
            "decoded": _jsonable(decode_batch(data, known)),
        }
        if codec == "compact":
            # each record's bytes: the batch state (dictionary, last ts, previous device) is
            # rebuilt the same way for every prefix, so prefix bodies give the boundaries
            enc = encoder_for(codec, schemas)
            ends = [len(enc.encode_batch(RECORDS[: k + 1])) for k in range(len(RECORDS))]
            starts = [9, *ends[:-1]]
            entry["records"] = [
                {"type_index": schemas.lookup(r)[0], "hex": data[s:e].hex()}
                for r, s, e in zip(RECORDS, starts, ends, strict=True)
            ]
        codecs[codec] = entry
    # a refused id goes as its bucket: an admission filter that admits an id at its 2nd sighting
    adm = CountingBloomAdmission(2, seed=0, cells=4096, buckets=4096)
    ipv = RECORDS[0]
    data = encoder_for("compact", schemas, admission=adm).encode_batch([ipv, ipv])
    admission = {
        "filter": "CountingBloomAdmission(2, seed=0, cells=4096, buckets=4096)",
        "records": [ipv, ipv],
        "batch_hex": data.hex(),
        "decoded": _jsonable(decode_batch(data, known)),
        "bucket": adm.bucket("2333346"),
    }
    return {
        "about": "docs/protocol.md, sections 'Batches' and 'Schema id'. Regenerate with "
        "python tests/vectors/generate.py",
        "tasks_toml": TASKS_TOML,
        "schema": {
            "version": schemas.version,
            "canonical_description": canon.decode(),
            "sha256": digest.hex(),
            "id": schemas.id,
            "id_hex": f"{schemas.id:08x}",
            "types": [
                {
                    "index": i + 1,
                    "kind": s.kind,
                    "name": s.name,
                    "fields": [f.describe() for f in s.fields],
                    "bitmap_bytes": s.nbytes,
                }
                for i, s in enumerate(schemas.schemas)
            ],
        },
        "records": RECORDS,
        "codecs": codecs,
        "admission": admission,
    }


# ---- session ------------------------------------------------------------------------------

_RECORD_NAMES = {F.HELLO: "HELLO", F.WELCOME: "WELCOME", F.DATA: "DATA", F.REFUSE: "REFUSE"}
_INNER_NAMES = {F.BATCH: "BATCH", F.ACK: "ACK", F.CONFIG: "CONFIG", F.CLOSE: "CLOSE"}


def _split_records(msg: bytes) -> list[tuple[int, bytes]]:
    buf = F.Buffer()
    buf.feed(msg)
    out = []
    while (rec := buf.next_record()) is not None:
        out.append(rec)
    assert not len(buf), "a websocket message holds whole records"
    return out


def _events(conn: TunnelConnection) -> list[dict[str, Any]]:
    out = []
    while (ev := conn.next_event()) is not NEED_DATA:
        d: dict[str, Any] = {"event": type(ev).__name__}
        for k in getattr(ev, "__slots__", ()):
            v = getattr(ev, k)
            d[k] = v.hex() if isinstance(v, bytes) else v
        out.append(d)
        if d["event"] == "Closed":
            break
    return out


def build_session() -> dict[str, Any]:
    """One connection: handshake carrying the first batch, acks, a config downlink, close."""
    schemas = schemas_for(parse_tasks(TASKS_TOML, source="<vectors>"))
    items = [
        encoder_for("compact", schemas).encode_batch(RECORDS[:3]),
        encoder_for("compact", schemas).encode_batch(RECORDS[3:6]),
        encoder_for("msgpack", schemas).encode_batch(RECORDS[6:8]),
    ]
    payloads = [join_items(items[:1]), join_items(items[1:]), join_items([])]
    config_body = TASKS_TOML.encode()

    dev = TunnelConnection(
        Role.DEVICE,
        static=DEVICE_STATIC,
        remote_static=ENDPOINT_STATIC.public,
        random_bytes=fixed_random(DEVICE_EPHEMERAL),
    )
    ep = TunnelConnection(
        Role.ENDPOINT, static=ENDPOINT_STATIC, random_bytes=fixed_random(ENDPOINT_EPHEMERAL)
    )

    # the same handshake by the bare Noise layer, for the transport keys and a cross-check
    hs_i = HandshakeState(
        initiator=True,
        s=DEVICE_STATIC,
        e=KeyPair.from_private(DEVICE_EPHEMERAL),
        rs=ENDPOINT_STATIC.public,
        prologue=PROLOGUE,
    )
    hs_r = HandshakeState(
        initiator=False,
        s=ENDPOINT_STATIC,
        e=KeyPair.from_private(ENDPOINT_EPHEMERAL),
        prologue=PROLOGUE,
    )

    steps: list[dict[str, Any]] = []
    nonces = {"device->endpoint": 0, "endpoint->device": 0}

    def step(direction: str, msg: bytes, receiver: TunnelConnection, meaning: str,
             plaintext: bytes | None = None) -> None:  # fmt: skip
        recs = []
        for rtype, body in _split_records(msg):
            r: dict[str, Any] = {
                "type": rtype,
                "type_name": _RECORD_NAMES[rtype],
                "length": len(body),
                "body_hex": body.hex(),
            }
            if rtype == F.DATA:
                r["nonce"] = nonces[direction]
                nonces[direction] += 1
                r["plaintext_hex"] = (plaintext or b"").hex()
                inner = F.decode_inner(plaintext or b"")
                r["inner"] = {"kind": inner.kind, "kind_name": _INNER_NAMES[inner.kind]}
            elif plaintext is not None:
                r["payload_plaintext_hex"] = plaintext.hex()
            recs.append(r)
        receiver.receive_data(msg)
        steps.append(
            {
                "step": len(steps) + 1,
                "direction": direction,
                "ws_message_hex": msg.hex(),
                "records": recs,
                "meaning": meaning,
                "receiver_events": _events(receiver),
            }
        )

    hello = Hello(config_version=1, first=Batch(BATCH_IDS[0], payloads[0]))
    hello_payload = F.encode_hello_payload(
        1, F.Inner(F.BATCH, batch_id=BATCH_IDS[0], payload=payloads[0])
    )
    m1 = dev.send(hello)
    assert m1 == F.encode_record(F.HELLO, hs_i.write_message_1(hello_payload))
    assert hs_r.read_message_1(m1[3:]) == hello_payload
    step(
        "device->endpoint", m1, ep,
        "Noise IK message 1 (-> e, es, s, ss) in a HELLO record. Payload: config version 1 "
        "(u32 BE) then the first batch as a BATCH inner message (0-RTT). The endpoint learns "
        "the device key and pauses until the registry says yes.",
        hello_payload,
    )  # fmt: skip
    m2 = ep.send(Accept())
    assert m2 == F.encode_record(F.WELCOME, hs_r.write_message_2(b""))
    hs_i.read_message_2(m2[3:])
    steps[-1]["receiver_events"] += _events(ep)  # HandshakeComplete + the early Batch
    step(
        "endpoint->device", m2, dev,
        "Noise IK message 2 (<- e, ee, se) in a WELCOME record, empty payload. Both sides "
        "split: device->endpoint key k1, endpoint->device key k2; nonces start at 0.",
        b"",
    )  # fmt: skip
    send_i, recv_i = hs_i.split()
    assert send_i.k is not None
    assert recv_i.k is not None

    def inner_pt(m: F.Inner) -> bytes:
        return F.encode_inner(m)

    m3 = ep.send(Ack(BATCH_IDS[0]))
    step("endpoint->device", m3, dev,
         "ACK 1: the first batch of this connection (the 0-RTT one) is stored.",
         inner_pt(F.Inner(F.ACK, version=1)))  # fmt: skip
    m4 = dev.send(Batch(BATCH_IDS[1], payloads[1]))
    step("device->endpoint", m4, ep,
         "BATCH: batch id a2*16 and a payload of two items (a compact and a msgpack batch).",
         inner_pt(F.Inner(F.BATCH, batch_id=BATCH_IDS[1], payload=payloads[1])))  # fmt: skip
    m5 = dev.send(Batch(BATCH_IDS[2], payloads[2]))
    step("device->endpoint", m5, ep,
         "BATCH: batch id a3*16, an empty payload (no items; legal, stored, acknowledged).",
         inner_pt(F.Inner(F.BATCH, batch_id=BATCH_IDS[2], payload=payloads[2])))  # fmt: skip
    m6 = ep.send(Ack(BATCH_IDS[2]))
    step("endpoint->device", m6, dev,
         "ACK 3 (cumulative): batches 1..3 of this connection are stored; the device deletes "
         "a2*16 and a3*16 from its outbox.",
         inner_pt(F.Inner(F.ACK, version=3)))  # fmt: skip
    m7 = ep.send(Config(2, config_body))
    step("endpoint->device", m7, dev,
         "CONFIG version 2: the body is a tasks file (UTF-8 TOML) the device switches to.",
         inner_pt(F.Inner(F.CONFIG, version=2, payload=config_body)))  # fmt: skip
    m8 = dev.send(Close(1000, "bye"))
    step("device->endpoint", m8, ep,
         "CLOSE 1000 (normal) with reason 'bye'; both sides are CLOSED after it.",
         inner_pt(F.Inner(F.CLOSE, code=1000, reason="bye")))  # fmt: skip

    # every DATA body opens with the split keys at its nonce (an independent check)
    ciphers = {"device->endpoint": CipherState(send_i.k), "endpoint->device": CipherState(recv_i.k)}
    for s in steps:
        for r in s["records"]:
            if r["type"] == F.DATA:
                pt = ciphers[s["direction"]].decrypt_at(
                    r["nonce"], b"", bytes.fromhex(r["body_hex"])
                )
                assert pt.hex() == r["plaintext_hex"]

    return {
        "about": "docs/protocol.md. One tunnel connection, every websocket message in order. "
        "Regenerate with python tests/vectors/generate.py",
        "protocol_version": PROTOCOL_VERSION,
        "noise_protocol": PROTOCOL_NAME.decode(),
        "prologue": PROLOGUE.decode(),
        "prologue_hex": PROLOGUE.hex(),
        "keys": {
            "device_static_private": DEVICE_STATIC.private.hex(),
            "device_static_public": DEVICE_STATIC.public.hex(),
            "endpoint_static_private": ENDPOINT_STATIC.private.hex(),
            "endpoint_static_public": ENDPOINT_STATIC.public.hex(),
            "device_ephemeral_private": DEVICE_EPHEMERAL.hex(),
            "device_ephemeral_public": KeyPair.from_private(DEVICE_EPHEMERAL).public.hex(),
            "endpoint_ephemeral_private": ENDPOINT_EPHEMERAL.hex(),
            "endpoint_ephemeral_public": KeyPair.from_private(ENDPOINT_EPHEMERAL).public.hex(),
        },
        "handshake_hash": hs_i.handshake_hash.hex(),
        "transport_keys": {
            "device_to_endpoint": send_i.k.hex(),
            "endpoint_to_device": recv_i.k.hex(),
        },
        "batch_ids": [b.hex() for b in BATCH_IDS],
        "items": [it.hex() for it in items],
        "payloads": [p.hex() for p in payloads],
        "config_body": TASKS_TOML,
        "messages": steps,
        "refusal": build_refusal(),
    }


def build_refusal() -> dict[str, Any]:
    """A device the endpoint does not know: message 1, then a plaintext REFUSE 4001."""
    dev = TunnelConnection(
        Role.DEVICE,
        static=STRANGER_STATIC,
        remote_static=ENDPOINT_STATIC.public,
        random_bytes=fixed_random(STRANGER_EPHEMERAL),
    )
    ep = TunnelConnection(Role.ENDPOINT, static=ENDPOINT_STATIC)
    m1 = dev.send(Hello(config_version=0))
    ep.receive_data(m1)
    ev = _events(ep)
    m2 = ep.send(Refuse(4001, "unknown_device"))
    dev.receive_data(m2)
    return {
        "meaning": "An unregistered device (config version 0, no early batch): the endpoint "
        "answers message 1 with a plaintext REFUSE record, code 4001 unknown_device.",
        "device_static_private": STRANGER_STATIC.private.hex(),
        "device_static_public": STRANGER_STATIC.public.hex(),
        "device_ephemeral_private": STRANGER_EPHEMERAL.hex(),
        "hello_hex": m1.hex(),
        "endpoint_events": ev,
        "refuse_hex": m2.hex(),
        "device_events": _events(dev),
    }


def build_all() -> dict[str, bytes]:
    """File name -> the exact bytes the vector file must hold."""
    out = {}
    for name, obj in (("session.json", build_session()), ("batches.json", build_batches())):
        out[name] = (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode()
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the vectors, or with ``--check`` report the files that drifted."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    drifted = []
    for name, data in build_all().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                drifted.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path}")
    for name in drifted:
        print(f"{name}: the code no longer produces these bytes", file=sys.stderr)
    return 1 if drifted else 0


if __name__ == "__main__":
    raise SystemExit(main())
