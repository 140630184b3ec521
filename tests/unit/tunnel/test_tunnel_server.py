"""Endpoint and uploader over the in-memory transport: delivery, refusals, configs."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._server import TunnelServer
from streamfeat.endpoint._storage import SQLiteStorage
from streamfeat.testing import MemoryTransportPair, check_transport
from streamfeat.tunnel import (
    Ack,
    Batch,
    CloseCode,
    Closed,
    Config,
    Hello,
    Role,
    TunnelConnection,
    split_items,
)
from streamfeat.upload._client import Uploader, UploaderConfig
from streamfeat.upload._outbox import Outbox, OutboxConfig

from .tunnel_helpers import DEVICE, ENDPOINT, bid, det_random, drain, key


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.registry = Registry(tmp / "ep.db")
        self.registry.add("dev", DEVICE.public, now=1.0)
        self.registry.add("gone", key("gone").public, now=1.0)
        self.registry.revoke("gone", now=2.0)
        self.storage = SQLiteStorage(tmp / "ep.db")
        self.server = TunnelServer(key=ENDPOINT, registry=self.registry, storage=self.storage)
        self.tasks: list[asyncio.Task[None]] = []

    def connect_pair(self) -> MemoryTransportPair:
        pair = MemoryTransportPair()
        self.tasks.append(asyncio.create_task(self.server.handle_transport(pair.b)))
        return pair

    async def connect(self) -> object:
        return self.connect_pair().a

    def refusals(self, reason: str) -> float:
        return self.server.metrics.refusal_count(reason)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await asyncio.gather(*r.tasks, return_exceptions=True)
    await r.server.aclose()


async def talk(rig: Rig, conn: TunnelConnection, *frames: bytes) -> list[object]:
    """Send frames from a raw device connection; collect what comes back until closed."""
    pair = rig.connect_pair()
    for f in frames:
        await pair.a.send(f)
    events: list[object] = []
    while True:
        try:
            data = await asyncio.wait_for(pair.a.receive(), 0.3)
        except TimeoutError:  # still open and quiet: done
            await pair.a.aclose()
            return events
        conn.receive_data(data)
        events += drain(conn)
        if not data or (events and isinstance(events[-1], Closed)):
            await pair.a.aclose()
            return events


def device(k=DEVICE, endpoint=ENDPOINT.public, seed="d") -> TunnelConnection:  # type: ignore[no-untyped-def]
    return TunnelConnection(
        Role.DEVICE, static=k, remote_static=endpoint, random_bytes=det_random(seed)
    )


async def test_memory_transport_conforms() -> None:
    async def make() -> tuple[object, object]:
        p = MemoryTransportPair()
        return p.a, p.b

    await check_transport(make)  # type: ignore[arg-type]


async def test_uploader_delivers_everything_once_and_gets_config(rig: Rig, tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "dev.db", OutboxConfig(batch_max_bytes=120, batch_max_age=0.01))
    got: list[Config] = []
    up = Uploader(
        ob,
        DEVICE,
        UploaderConfig(url="memory", endpoint_key=ENDPOINT.public, window=4),
        connect=rig.connect,
        rng=random.Random(0),
        on_config=got.append,
    )  # type: ignore[arg-type]
    task = asyncio.create_task(up.run())
    sent = [b"rec-%d" % i for i in range(200)]
    for s in sent:
        up.enqueue(s)
    assert await up.wait_drained(10)
    assert rig.server.push_config("dev", 5, b"[upload]") == 1
    cfg = await asyncio.wait_for(up.configs.get(), 5)
    assert cfg == Config(5, b"[upload]")
    assert got == [cfg]
    assert ob.load_config() == (5, b"[upload]")
    await up.aclose()
    await task
    stored = [it for _, _, p in rig.storage.batches() for it in split_items(p)]
    assert stored == sent
    assert up.stats.early_batches >= 1


async def test_config_is_sent_on_connect_only_when_newer(rig: Rig) -> None:
    rig.storage.set_config("dev", 3, b"v3")
    d = device()
    ev = await talk(rig, d, d.send(Hello(0)))
    assert Config(3, b"v3") in ev
    d = device(seed="other")
    ev = await talk(rig, d, d.send(Hello(3)))
    assert not any(isinstance(e, Config) for e in ev)


@pytest.mark.parametrize(
    ("who", "code"),
    [(key("stranger"), CloseCode.UNKNOWN_DEVICE), (key("gone"), CloseCode.REVOKED_DEVICE)],
)
async def test_unknown_and_revoked_devices_are_refused_and_counted(rig: Rig, who, code) -> None:  # type: ignore[no-untyped-def]
    d = device(who)
    ev = await talk(rig, d, d.send(Hello(0, Batch(bid(1), b"x"))))
    assert ev[-1] == Closed(code, code.reason, remote=True)
    assert rig.refusals(code.reason) == 1
    assert rig.storage.batches() == []
    await still_serving(rig)


async def still_serving(rig: Rig) -> None:
    d = device(seed=f"fresh{len(rig.tasks)}")
    d_hello = d.send(Hello(0))
    pair = rig.connect_pair()
    await pair.a.send(d_hello)
    d.receive_data(await asyncio.wait_for(pair.a.receive(), 5))
    drain(d)
    await pair.a.send(d.send(Batch(bid(77 + len(rig.tasks)), b"ok")))
    d.receive_data(await asyncio.wait_for(pair.a.receive(), 5))
    assert any(isinstance(e, Ack) for e in drain(d))
    await pair.a.aclose()


async def test_wrong_endpoint_key_is_refused_and_counted(rig: Rig) -> None:
    d = device(endpoint=key("not-the-endpoint").public)
    ev = await talk(rig, d, d.send(Hello(0, Batch(bid(1), b"x"))))
    assert ev[-1].code == CloseCode.HANDSHAKE_FAILED
    assert rig.refusals("handshake_failed") == 1
    await still_serving(rig)


def observer() -> TunnelConnection:
    """A device connection in HELLO_SENT that reads what the endpoint answers to a replay."""
    obs = device(seed="observer")
    obs.send(Hello(0))
    return obs


async def test_replayed_first_message_stores_nothing_twice(rig: Rig) -> None:
    d = device()
    hello = d.send(Hello(0, Batch(bid(5), b"early")))
    await talk(rig, d, hello)  # the real one: stored
    await asyncio.sleep(0.05)
    ev = await talk(rig, observer(), hello)  # the replay
    assert ev[-1].code == CloseCode.REPLAYED_HANDSHAKE
    assert rig.refusals("replayed_handshake") == 1
    # even without the replay cache (an endpoint restart), the batch id keeps it single
    rig.server.replay_cache._seen.clear()
    await talk(rig, observer(), hello)
    await asyncio.sleep(0.05)
    assert [b[1] for b in rig.storage.batches()] == [bid(5)]
    assert (
        rig.server.metrics.registry.get_sample_value(
            "streamfeat_tunnel_batches_total", {"result": "duplicate"}
        )
        == 1
    )
    await still_serving(rig)


async def _open_raw(rig: Rig) -> tuple[TunnelConnection, MemoryTransportPair]:
    d = device(seed="raw")
    pair = rig.connect_pair()
    await pair.a.send(d.send(Hello(0)))
    d.receive_data(await asyncio.wait_for(pair.a.receive(), 5))
    drain(d)
    return d, pair


@pytest.mark.parametrize("attack", ["tampered", "truncated", "replayed", "reordered"])
async def test_bad_frames_are_refused_counted_and_the_server_survives(
    rig: Rig, attack: str
) -> None:
    d, pair = await _open_raw(rig)
    f1 = d.send(Batch(bid(1), b"one" * 10))
    f2 = d.send(Batch(bid(2), b"two" * 10))
    if attack == "tampered":
        frames = [f1[:-1] + bytes([f1[-1] ^ 1])]
    elif attack == "truncated":
        frames = [f1[:-4]]
    elif attack == "replayed":
        frames = [f1, f1]
    else:
        frames = [f2]
    for f in frames:
        await pair.a.send(f)
    reason = {
        "tampered": "decrypt_failed",
        "truncated": "truncated",
        "replayed": "replayed_frame",
        "reordered": "reordered_frame",
    }[attack]
    while await asyncio.wait_for(pair.a.receive(), 5):
        pass
    assert rig.refusals(reason) == 1
    await still_serving(rig)


async def test_decoder_records_are_stored_and_a_failing_decoder_still_stores(
    tmp_path: Path,
) -> None:
    import json
    import sqlite3

    def decoder(item: bytes) -> list[dict[str, object]]:
        if item == b"bad":
            msg = "undecodable"
            raise ValueError(msg)
        return [{"v": item.decode()}]

    registry = Registry(tmp_path / "d.db")
    registry.add("dev", DEVICE.public)
    storage = SQLiteStorage(tmp_path / "d.db")
    server = TunnelServer(key=ENDPOINT, registry=registry, storage=storage, decoder=decoder)
    ob = Outbox(tmp_path / "dev.db", OutboxConfig(batch_max_bytes=10_000, batch_max_age=0.0))
    tasks: list[asyncio.Task[None]] = []

    async def conn() -> object:
        pair = MemoryTransportPair()
        tasks.append(asyncio.create_task(server.handle_transport(pair.b)))
        return pair.a

    up = Uploader(ob, DEVICE, UploaderConfig(url="m", endpoint_key=ENDPOINT.public), connect=conn)  # type: ignore[arg-type]
    task = asyncio.create_task(up.run())
    up.enqueue(b"a")
    up.enqueue(b"b")
    assert await up.wait_drained(5)
    up.enqueue(b"bad")
    assert await up.wait_drained(5)
    await up.aclose()
    await task
    db = sqlite3.connect(tmp_path / "d.db")
    records = [json.loads(r[0]) for r in db.execute("SELECT record FROM batch_records ORDER BY id")]
    assert records == [{"v": "a"}, {"v": "b"}]
    assert db.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 2
    assert server.metrics.registry.get_sample_value("streamfeat_tunnel_decode_errors_total") == 1
    await server.aclose()


async def test_uploader_backs_off_with_seeded_jitter_and_an_injected_sleep(tmp_path: Path) -> None:
    from streamfeat.errors import TunnelClosed

    slept: list[float] = []
    attempts = 0
    up: Uploader

    async def failing_connect() -> object:
        nonlocal attempts
        attempts += 1
        msg = "refused"
        raise TunnelClosed(msg)

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        if len(slept) == 6:
            await up.aclose()

    up = Uploader(
        Outbox(tmp_path / "b.db"),
        DEVICE,
        UploaderConfig(url="m", endpoint_key=ENDPOINT.public, backoff_base=0.1, backoff_cap=1.0),
        connect=failing_connect,
        rng=random.Random(42),
        sleep=fake_sleep,  # type: ignore[arg-type]
    )
    up.enqueue(b"waits")
    await asyncio.wait_for(up.run(), 5)
    ref = random.Random(42)
    assert slept == [ref.uniform(0, min(1.0, 0.1 * 2**i)) for i in range(6)]
    assert attempts == 6
    assert up.stats.failures == 6
    assert up.outbox.pending_items + len(up.outbox) == 1  # nothing lost while offline


def test_cli_keys_and_devices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from streamfeat.cli import main

    db = str(tmp_path / "ep.db")
    assert main(["keys", "--db", db]) == 0  # the explicit init step: key and database
    pub = capsys.readouterr().out.split()[-1]
    assert main(["device", "add", "a", "--db", db, "--out", str(tmp_path / "a.json")]) == 0
    assert main(["device", "add", "b", "--db", db, "--out", str(tmp_path / "b.json")]) == 0
    assert main(["device", "revoke", "b", "--db", db]) == 0
    assert main(["device", "revoke", "b", "--db", db]) == 1
    capsys.readouterr()
    assert main(["device", "list", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[:2] for ln in lines] == [["a", "active"], ["b", "revoked"]]
    from streamfeat.upload import load_device_file

    key, cfg = load_device_file(tmp_path / "a.json")
    assert cfg.endpoint_key.hex() == pub
    assert Registry(db).lookup(key.public) is not None
    assert os.stat(tmp_path / "a.json").st_mode & 0o777 == 0o600
    (tmp_path / "t.toml").write_text("[upload]\n")
    assert (
        main(["device", "config", "a", str(tmp_path / "t.toml"), "--version", "2", "--db", db]) == 0
    )
    assert SQLiteStorage(db).get_config("a") == (2, b"[upload]\n")
    # already registered: one line, exit status 2
    assert main(["device", "add", "a", "--db", db, "--out", str(tmp_path / "a2.json")]) == 2


async def test_revoke_closes_the_open_connection_in_process(rig: Rig, tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "dev.db", OutboxConfig(batch_max_age=0.01))
    up = Uploader(
        ob,
        DEVICE,
        UploaderConfig(url="memory", endpoint_key=ENDPOINT.public, backoff_base=0.01),
        connect=rig.connect,
        rng=random.Random(0),
    )  # type: ignore[arg-type]
    task = asyncio.create_task(up.run())
    up.enqueue(b"before")
    assert await up.wait_drained(5)
    assert rig.registry.revoke("dev")
    assert rig.server.revoke("dev") == 1
    for _ in range(100):
        if up.stats.closes.get("revoked_device"):
            break
        await asyncio.sleep(0.01)
    assert up.stats.closes.get("revoked_device", 0) >= 1
    up.enqueue(b"after")
    await asyncio.sleep(0.2)  # reconnects are refused at the handshake
    await up.aclose()
    await task
    stored = [it for _, _, p in rig.storage.batches() for it in split_items(p)]
    assert stored == [b"before"]
    assert up.stats.handshakes == 1


async def test_the_poll_notices_a_revocation_by_another_connection(
    rig: Rig, tmp_path: Path
) -> None:
    ob = Outbox(tmp_path / "dev.db", OutboxConfig(batch_max_age=0.01))
    up = Uploader(
        ob, DEVICE, UploaderConfig(url="memory", endpoint_key=ENDPOINT.public), connect=rig.connect
    )  # type: ignore[arg-type]
    task = asyncio.create_task(up.run())
    up.enqueue(b"x")
    assert await up.wait_drained(5)
    other = Registry(tmp_path / "ep.db")  # another connection, as `device revoke` would be
    version = rig.registry.data_version()
    assert other.revoke("dev")
    other.close()
    assert rig.registry.data_version() != version
    assert rig.server.check_revocations() == 1
    await up.aclose()
    await task
