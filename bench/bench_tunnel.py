"""Tunnel benchmark: upload latency, connection set-up, MQTT QoS 1 over TLS, fleet throughput.

Everything on 127.0.0.1, servers in their own processes, measured in one run:

* send -> ack latency (p50 / p99) of 128 B and 3 KB batches over one tunnel connection to
  ``streamfeat serve`` (SQLite, fsync before ack), to the same endpoint with in-memory storage
  (the protocol's own cost), and a bare aiohttp websocket echo (no crypto, no storage);
* connection set-up: full handshake then first batch, versus the first batch inside the first
  handshake message (0-RTT): client flights before the first ack, wall time and CPU time;
* MQTT QoS 1 over TLS (mosquitto from Debian, paho-mqtt, a self-signed certificate made here):
  latency to PUBACK and bytes on the wire per payload, counted by a TCP relay, beside the
  tunnel's bytes counted the same way;
* batches/s one endpoint process stores from 200 concurrent devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _harness import ROOT, Context, Row

sys.path.insert(0, str(ROOT))

import aiohttp

from streamfeat._compiled import status
from streamfeat.endpoint._registry import Registry, endpoint_keypair
from streamfeat.tunnel import (
    NEED_DATA,
    Accept,
    Ack,
    Batch,
    Closed,
    HandshakeComplete,
    Hello,
    KeyPair,
    Role,
    TunnelConnection,
)
from streamfeat.upload._aiohttp import connect

G = "tunnel"

# The bare websocket: /echo with aiohttp's defaults (no heartbeat), /same with the endpoint's
# own websocket and transport (its liveness check every 15 s with autoping off, close timeout
# 2 s, 1 MiB messages: WebSocketTransport on both ends), and /sqlite, which stores each
# message with the endpoint's SQLiteStorage (WAL, synchronous=FULL: one fsync per commit) in a
# worker thread, as the tunnel's group writer does, before echoing.
_ECHO = r"""
import asyncio, os, sys
from concurrent.futures import ThreadPoolExecutor
from aiohttp import web
from streamfeat.endpoint._storage import SQLiteStorage, StoredBatch
from streamfeat.upload._aiohttp import HEARTBEAT, WebSocketTransport
store = SQLiteStorage(sys.argv[1], check=False) if len(sys.argv) > 1 else None
pool = ThreadPoolExecutor(1)
def opts(request):
    if request.path == '/same':
        return dict(max_msg_size=1 << 20, compress=False, autoping=False, timeout=2.0)
    return dict(max_msg_size=1 << 20, compress=False)
async def h(request):
    ws = web.WebSocketResponse(**opts(request))
    await ws.prepare(request)
    if request.path == '/same':
        t = WebSocketTransport(ws, heartbeat=HEARTBEAT)
        while data := await t.receive():
            await t.send(data)
        return ws
    loop = asyncio.get_running_loop()
    async for m in ws:
        if request.path == '/sqlite':
            b = StoredBatch('echo', os.urandom(16), m.data, 0.0)
            await loop.run_in_executor(pool, store.store_batches, [b])
        await ws.send_bytes(m.data)
    return ws
async def main():
    app = web.Application()
    for path in ('/echo', '/same', '/sqlite'):
        app.router.add_get(path, h)
    r = web.AppRunner(app); await r.setup(); s = web.TCPSite(r, '127.0.0.1', 0); await s.start()
    print('listening on http://127.0.0.1:%d' % s._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

_MEMSERVER = r"""
import asyncio, sys
from pathlib import Path
from aiohttp import web
from streamfeat.endpoint._server import TunnelServer
from streamfeat.endpoint._registry import Registry, endpoint_keypair
class Mem:
    non_blocking = True
    def __init__(self): self.seen = set()
    def store_batches(self, bs):
        out = []
        for b in bs:
            k = (b.device, b.batch_id); out.append(k not in self.seen); self.seen.add(k)
        return out
    def get_config(self, d): return None
    def set_config(self, d, v, b): pass
    def close(self): pass
async def main():
    db = Path(sys.argv[1])
    srv = TunnelServer(key=endpoint_keypair(db.with_name('endpoint.key')), registry=Registry(db), storage=Mem())
    r = web.AppRunner(srv.app()); await r.setup(); s = web.TCPSite(r, '127.0.0.1', 0); await s.start()
    print('listening on http://127.0.0.1:%d' % s._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


class _Proc:
    """A server subprocess that prints ``listening on http://127.0.0.1:PORT``."""

    def __init__(self, argv: list[str]) -> None:
        self.p = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT, text=True
        )
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line.startswith("listening on"):
            self.close()
            msg = f"server did not start: {argv}"
            raise RuntimeError(msg)
        self.port = int(line.rsplit(":", 1)[1])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.p.stdout is not None:
            self.p.stdout.close()


class _Relay:
    """A TCP relay on 127.0.0.1 that counts the bytes in both directions (its own thread)."""

    def __init__(self, upstream_port: int) -> None:
        self.up = upstream_port
        self.bytes = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    self.bytes += len(data)
                    w.write(data)
                    await w.drain()
            with contextlib.suppress(Exception):
                w.close()

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.up)
            await asyncio.gather(pipe(r, uw), pipe(ur, w))

        async def start() -> None:
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


# ---- tunnel client --------------------------------------------------------------------


class _Device:
    """A raw tunnel client (no outbox): one connection, batches sent one at a time."""

    def __init__(self, key: KeyPair, endpoint: bytes) -> None:
        self.key, self.endpoint = key, endpoint
        self.n = 0

    async def open(self, url: str, first: bytes | None = None) -> tuple[Any, TunnelConnection, int]:
        """Connect and handshake; returns (transport, conn, flights sent before the first ack)."""
        self.t = await connect(url)
        self.conn = TunnelConnection(Role.DEVICE, static=self.key, remote_static=self.endpoint)
        batch = Batch(self._id(), first) if first is not None else None
        await self.t.send(self.conn.send(Hello(0, batch)))
        flights = 1
        await self._until(HandshakeComplete)
        if batch is not None:
            await self._until(Ack)
        return self.t, self.conn, flights

    def _id(self) -> bytes:
        self.n += 1
        return self.n.to_bytes(8, "big") + os.urandom(8)

    async def _until(self, kind: type) -> Any:
        while True:
            ev = self.conn.next_event()
            if ev is NEED_DATA:
                data = await self.t.receive()
                if not data:
                    msg = "endpoint closed the connection"
                    raise RuntimeError(msg)
                self.conn.receive_data(data)
                continue
            if isinstance(ev, Closed):
                msg = f"closed: {ev}"
                raise RuntimeError(msg)
            if isinstance(ev, kind):
                return ev

    async def send_wait(self, payload: bytes) -> None:
        await self.t.send(self.conn.send(Batch(self._id(), payload)))
        await self._until(Ack)

    async def close(self) -> None:
        await self.t.aclose()


async def _tunnel_latencies(url: str, dev: _Device, size: int, n: int) -> list[float]:
    await dev.open(url)
    payload = os.urandom(size)
    for _ in range(20):
        await dev.send_wait(payload)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await dev.send_wait(payload)
        lat.append(time.perf_counter() - t0)
    await dev.close()
    return lat


async def _echo_latencies(url: str, size: int, n: int) -> list[float]:
    payload = os.urandom(size)
    if not url.endswith("/echo"):
        # the tunnel device's own websocket transport: the same on both ends
        t = await connect(url)
        for _ in range(20):
            await t.send(payload)
            await t.receive()
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            await t.send(payload)
            await t.receive()
            lat.append(time.perf_counter() - t0)
        await t.aclose()
        return lat
    async with aiohttp.ClientSession() as s, s.ws_connect(url, compress=0) as ws:
        for _ in range(20):
            await ws.send_bytes(payload)
            await ws.receive()
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            await ws.send_bytes(payload)
            await ws.receive()
            lat.append(time.perf_counter() - t0)
    return lat


async def _bytes_per_payload_tunnel(port: int, dev: _Device, size: int, n: int) -> float:
    relay = _Relay(port)
    try:
        await dev.open(f"ws://127.0.0.1:{relay.port}/v1/tunnel")
        payload = os.urandom(size)
        await dev.send_wait(payload)
        start = relay.bytes
        for _ in range(n):
            await dev.send_wait(payload)
        await asyncio.sleep(0.05)
        total = relay.bytes - start
        await dev.close()
    finally:
        relay.close()
    return total / n


# ---- the device's own loop ---------------------------------------------------------------


async def _uploader_drain(
    url: str, key: KeyPair, endpoint: bytes, tmp: Path, n: int, window: int
) -> tuple[float, float]:
    """The real device loop: ``n`` batches sealed in an outbox (SQLite), drained by the
    ``Uploader`` over one connection with ``window`` batches in flight, each deleted from the
    outbox when its ack arrives. Returns (wall seconds, device CPU seconds) per batch."""
    import random

    from streamfeat.upload._client import Uploader, UploaderConfig
    from streamfeat.upload._outbox import Outbox, OutboxConfig

    db = tmp / f"outbox-{window}-{os.getpid()}-{time.monotonic_ns()}.db"
    done, acked = asyncio.Event(), [0]

    def on_ack(_batch: object) -> None:
        acked[0] += 1
        if acked[0] == n:
            done.set()

    ob = Outbox(db, OutboxConfig(batch_max_bytes=100, batch_max_age=3600), on_ack=on_ack)
    for _ in range(n):
        ob.enqueue(os.urandom(128))  # over batch_max_bytes: each item is a sealed batch
    up = Uploader(
        ob, key, UploaderConfig(url=url, endpoint_key=endpoint, window=window), rng=random.Random(0)
    )
    t0, c0 = time.perf_counter(), time.process_time()
    task = asyncio.create_task(up.run())
    await asyncio.wait_for(done.wait(), 300)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await up.aclose()
    await task
    return wall / n, cpu / n


async def _uploader_rows(port: int, key: KeyPair, endpoint: bytes, tmp: Path, n: int) -> list[Row]:
    rows = []
    url = f"ws://127.0.0.1:{port}/v1/tunnel"
    for window in (1, 32):
        runs = [await _uploader_drain(url, key, endpoint, tmp, n, window) for _ in range(3)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rows.append(
            Row(
                G,
                f"uploader, outbox -> memory-store endpoint, window {window}: wall per batch",
                wall * 1e6,
                "us",
                note=f"device CPU {cpu * 1e6:.0f} us per batch (medians of 3 runs of {n}); "
                "128 B items, one batch each, deleted from the SQLite outbox on ack",
            )
        )
    return rows


# ---- MQTT ------------------------------------------------------------------------------


def _self_signed(dir_: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cp, kp = dir_ / "mqtt-cert.pem", dir_ / "mqtt-key.pem"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(kp, 0o600)
    return cp, kp


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Mosquitto:
    def __init__(self, tmp: Path) -> None:
        cert, key = _self_signed(tmp)
        self.port = _free_port()
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
            "allow_anonymous true\npersistence false\nlog_dest none\n"
            # as root, mosquitto drops to user "mosquitto", which could not read our key file
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.cert = cert
        self.p = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import socket

        for _ in range(100):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                break
            time.sleep(0.05)

    def close(self) -> None:
        self.p.terminate()
        self.p.wait(10)


def _mqtt_run(port: int, cert: Path, size: int, n: int) -> list[float]:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}-{size}")
    c.tls_set(ca_certs=str(cert))
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    connected.wait(10)
    payload = os.urandom(size)
    try:
        for _ in range(20):
            c.publish("streamfeat/bench", payload, qos=1).wait_for_publish(5)
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            c.publish("streamfeat/bench", payload, qos=1).wait_for_publish(5)
            lat.append(time.perf_counter() - t0)
    finally:
        c.disconnect()
        c.loop_stop()
    return lat


def _mqtt_bytes(port: int, cert: Path, size: int, n: int) -> float:
    relay = _Relay(port)
    try:
        import paho.mqtt.client as mqtt

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bytes-{size}")
        c.tls_set(ca_certs=str(cert))
        connected = threading.Event()
        c.on_connect = lambda *a: connected.set()
        c.connect("127.0.0.1", relay.port)
        c.loop_start()
        connected.wait(10)
        payload = os.urandom(size)
        c.publish("streamfeat/bench", payload, qos=1).wait_for_publish(5)
        time.sleep(0.05)
        start = relay.bytes
        for _ in range(n):
            c.publish("streamfeat/bench", payload, qos=1).wait_for_publish(5)
        time.sleep(0.05)
        total = relay.bytes - start
        c.disconnect()
        c.loop_stop()
    finally:
        relay.close()
    return total / n


# ---- set-up cost -----------------------------------------------------------------------


async def _setup_costs(url: str, dev: _Device, k: int) -> dict[str, float]:
    out: dict[str, list[float]] = {"full_wall": [], "zero_wall": [], "full_cpu": [], "zero_cpu": []}
    payload = os.urandom(128)
    flights = {"full": 0, "zero": 0}
    for i in range(k):
        for mode in ("full", "zero") if i % 2 == 0 else ("zero", "full"):
            d = _Device(dev.key, dev.endpoint)
            d.t = await connect(url)  # the websocket itself is the same for both: not timed
            d.conn = TunnelConnection(Role.DEVICE, static=d.key, remote_static=d.endpoint)
            c0, t0 = time.process_time(), time.perf_counter()
            if mode == "full":
                await d.t.send(d.conn.send(Hello(0)))
                await d._until(HandshakeComplete)
                await d.t.send(d.conn.send(Batch(d._id(), payload)))
                flights["full"] = 2
            else:
                await d.t.send(d.conn.send(Hello(0, Batch(d._id(), payload))))
                flights["zero"] = 1
            await d._until(Ack)
            out[f"{mode}_wall"].append(time.perf_counter() - t0)
            out[f"{mode}_cpu"].append(time.process_time() - c0)
            await d.close()
    res = {key: statistics.median(v) for key, v in out.items()}
    res.update({f"{m}_flights": float(f) for m, f in flights.items()})
    return res


def _core_handshake_cpu(n: int) -> tuple[float, float]:
    """CPU seconds of the protocol core alone (both ends, no I/O) per connection to first ack."""
    ek, dk = KeyPair.generate(os.urandom), KeyPair.generate(os.urandom)

    def one(zero: bool) -> None:
        d = TunnelConnection(Role.DEVICE, static=dk, remote_static=ek.public)
        e = TunnelConnection(Role.ENDPOINT, static=ek)
        b = Batch(os.urandom(16), b"x" * 128)
        e.receive_data(d.send(Hello(0, b if zero else None)))
        e.next_event()
        d.receive_data(e.send(Accept()))
        d.next_event()
        if not zero:
            e.receive_data(d.send(b))
        while e.next_event() is not NEED_DATA:
            pass
        d.receive_data(e.send(Ack(b.batch_id)))
        d.next_event()

    res = []
    for zero in (False, True):
        c0 = time.process_time()
        for _ in range(n):
            one(zero)
        res.append((time.process_time() - c0) / n)
    return res[0], res[1]


# ---- fleet -----------------------------------------------------------------------------


async def _fleet(
    url: str, keys: list[KeyPair], endpoint: bytes, seconds: float, window: int
) -> tuple[int, float]:
    """All devices connect first; then each keeps ``window`` batches in flight for
    ``seconds``. Returns (batches acknowledged in the window, client CPU seconds)."""
    payload = os.urandom(512)
    devices = [_Device(k, endpoint) for k in keys]
    await asyncio.gather(*(d.open(url) for d in devices))
    acked = 0
    stop = time.perf_counter() + seconds
    cpu0 = time.process_time()

    async def device(d: _Device) -> None:
        nonlocal acked
        inflight = 0
        while time.perf_counter() < stop:
            while inflight < window:
                await d.t.send(d.conn.send(Batch(d._id(), payload)))
                inflight += 1
            await d._until(Ack)
            inflight -= 1
            if time.perf_counter() < stop:
                acked += 1

    await asyncio.gather(*(device(d) for d in devices))
    cpu = time.process_time() - cpu0
    await asyncio.gather(*(d.close() for d in devices))
    return acked, cpu


# ---- the benchmark ---------------------------------------------------------------------


def run(ctx: Context) -> list[Row]:
    tmp = ctx.tmp / "tunnel"
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "ep.db"
    ep_key = endpoint_keypair(tmp / "endpoint.key")
    n_dev = 200
    keys = [KeyPair.generate(os.urandom) for _ in range(n_dev + 1)]
    reg = Registry(db)
    for i, k in enumerate(keys):
        reg.add(f"bench{i}", k.public)
    reg.close()
    dev = _Device(keys[-1], ep_key.public)
    n = 300 if ctx.quick else 2000
    rows: list[Row] = []
    servers = {
        "sqlite": _Proc(
            # the fleet opens 200 connections from 127.0.0.1 at once: above the default cap
            # of unauthenticated connections per source address (64), which would refuse them
            [
                sys.executable,
                "-m",
                "streamfeat",
                "serve",
                "--port",
                "0",
                "--db",
                str(db),
                "--max-unauthenticated-per-source",
                str(2 * n_dev),
            ]
        ),
        "memory": _Proc([sys.executable, "-c", _MEMSERVER, str(db)]),
        "echo": _Proc([sys.executable, "-c", _ECHO, str(tmp / "echo.db")]),
    }
    try:
        rows += asyncio.run(_latency_rows(servers, dev, n))
        rows += asyncio.run(
            _uploader_rows(servers["memory"].port, keys[-1], ep_key.public, tmp, n // 2)
        )
        rows += _mqtt_rows(tmp, servers, dev, n, rows)
        setup = asyncio.run(
            _setup_costs(
                f"ws://127.0.0.1:{servers['memory'].port}/v1/tunnel", dev, 20 if ctx.quick else 100
            )
        )
        core_full, core_zero = _core_handshake_cpu(100 if ctx.quick else 500)
        rows += [
            Row(G, "set-up: full handshake, flights to 1st ack", setup["full_flights"], "RTT"),
            Row(G, "set-up: 0-RTT first batch, flights to 1st ack", setup["zero_flights"], "RTT"),
            Row(G, "set-up: full handshake to 1st ack (wall p50)", setup["full_wall"] * 1e3, "ms"),
            Row(
                G,
                "set-up: 0-RTT to 1st ack (wall p50)",
                setup["zero_wall"] * 1e3,
                "ms",
                setup["zero_wall"] / setup["full_wall"],
                "full handshake",
            ),
            Row(G, "set-up: full, device CPU (p50)", setup["full_cpu"] * 1e3, "ms"),
            Row(
                G,
                "set-up: 0-RTT, device CPU (p50)",
                setup["zero_cpu"] * 1e3,
                "ms",
                setup["zero_cpu"] / setup["full_cpu"] if setup["full_cpu"] else None,
                "full",
            ),
            Row(G, "set-up: core CPU both ends, full", core_full * 1e3, "ms"),
            Row(
                G,
                "set-up: core CPU both ends, 0-RTT",
                core_zero * 1e3,
                "ms",
                core_zero / core_full,
                "full",
            ),
        ]
        seconds = 3.0 if ctx.quick else 10.0
        sq = servers["sqlite"]
        c0 = sq.cpu_seconds()
        try:
            acked, client_cpu = asyncio.run(
                _fleet(
                    f"ws://127.0.0.1:{sq.port}/v1/tunnel", keys[:n_dev], ep_key.public, seconds, 4
                )
            )
        except Exception as exc:  # a loaded machine must not cost the rows above
            rows.append(
                Row(
                    G,
                    f"fleet: {n_dev} devices -> 1 endpoint (SQLite)",
                    0,
                    "",
                    note=f"failed: {exc}",
                )
            )
            return rows
        cpu = sq.cpu_seconds() - c0
        rows += [
            Row(
                G,
                f"fleet: {n_dev} devices -> 1 endpoint (SQLite), 512 B batches",
                acked / seconds,
                "batches/s",
                note=f"endpoint CPU {cpu / seconds:.0%}, device-side CPU {client_cpu / seconds:.0%} "
                "of one core; window 4; fsync per group commit",
            ),
        ]
    finally:
        for s in servers.values():
            s.close()
    return rows


_ROUNDS = 4  # each variant runs n/_ROUNDS exchanges per round, the variants taking turns


async def _latency_rows(servers: dict[str, _Proc], dev: _Device, n: int) -> list[Row]:
    rows = []
    echo_port, mem_port = servers["echo"].port, servers["memory"].port
    for size, label in ((128, "128 B"), (3072, "3 KB")):
        # (url, server) of each variant; they take turns so that a change in the machine's
        # load falls on all of them alike
        variants: dict[str, tuple[str, _Proc]] = {
            "echo": (f"ws://127.0.0.1:{echo_port}/echo", servers["echo"]),
            "same": (f"ws://127.0.0.1:{echo_port}/same", servers["echo"]),
            "tunnel": (f"ws://127.0.0.1:{mem_port}/v1/tunnel", servers["memory"]),
            "echo_sqlite": (f"ws://127.0.0.1:{echo_port}/sqlite", servers["echo"]),
            "sqlite": (f"ws://127.0.0.1:{servers['sqlite'].port}/v1/tunnel", servers["sqlite"]),
        }
        lat: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [0.0, 0.0] for k in variants}
        for _ in range(_ROUNDS):
            for key, (url, proc) in variants.items():
                c0, s0 = time.process_time(), proc.cpu_seconds()
                if key in ("tunnel", "sqlite"):
                    lat[key] += await _tunnel_latencies(url, dev, size, n // _ROUNDS)
                else:
                    lat[key] += await _echo_latencies(url, size, n // _ROUNDS)
                cpu[key][0] += time.process_time() - c0
                cpu[key][1] += proc.cpu_seconds() - s0
        # CPU per exchange does not depend on how busy the machine is, unlike wall latency
        per = {
            k: (c / (n + 20 * _ROUNDS) * 1e6, sv / (n + 20 * _ROUNDS) * 1e6)
            for k, (c, sv) in cpu.items()
        }
        rows.append(
            Row(
                G,
                f"bare websocket echo {label}: CPU per exchange, client+server",
                per["echo"][0] + per["echo"][1],
                "us",
                note=f"client {per['echo'][0]:.0f} us, server {per['echo'][1]:.0f} us",
            )
        )
        rows.append(
            Row(
                G,
                f"tunnel {label}, memory store: CPU per exchange, device+endpoint",
                per["tunnel"][0] + per["tunnel"][1],
                "us",
                (per["tunnel"][0] + per["tunnel"][1]) / (per["echo"][0] + per["echo"][1]),
                "echo CPU",
                note=f"device {per['tunnel'][0]:.0f} us, endpoint {per['tunnel'][1]:.0f} us "
                "(includes the handshake, server CPU at 10 ms clock ticks)",
            )
        )
        p50 = {k: _pct(xs, 0.5) for k, xs in lat.items()}
        notes = {
            "echo": status(),
            "same": "the tunnel's websocket transport on both ends (its liveness check)",
            "tunnel": f"{p50['tunnel'] / p50['same']:.2f}x the echo with the same options; "
            "stores nothing durably, like the echo",
            "echo_sqlite": "each message stored by SQLiteStorage (fsync) in a worker thread",
            "sqlite": f"{p50['sqlite'] / p50['echo_sqlite']:.2f}x the websocket + SQLite store; "
            "acked only once committed",
        }
        names = {
            "echo": f"bare websocket echo {label}",
            "same": f"bare websocket echo, same options {label}",
            "tunnel": f"tunnel {label}, memory store",
            "echo_sqlite": f"bare websocket + SQLite store {label}",
            "sqlite": f"tunnel {label}, SQLite fsync",
        }
        for key, name in names.items():
            base = key in ("echo", "same", "echo_sqlite")
            rows.append(
                Row(
                    G,
                    f"{name} p50",
                    p50[key] * 1e3,
                    "ms",
                    None if base else p50[key] / p50["echo"],
                    "" if base else f"echo {label} p50",
                    note=notes[key],
                )
            )
            rows.append(Row(G, f"{name} p99", _pct(lat[key], 0.99) * 1e3, "ms"))
        b = await _bytes_per_payload_tunnel(mem_port, dev, size, 200)
        rows.append(
            Row(
                G,
                f"tunnel {label}: bytes on the wire per payload",
                b,
                "bytes",
                b / size,
                "payload",
                "both directions, batch + ack, websocket + tunnel framing + AEAD",
            )
        )
    return rows


def _mqtt_rows(
    tmp: Path, servers: dict[str, _Proc], dev: _Device, n: int, rows: list[Row]
) -> list[Row]:
    if shutil.which("mosquitto") is None:
        print(
            "bench_tunnel: mosquitto is not installed (bench/setup_mqtt.sh installs it); no MQTT rows",
            file=sys.stderr,
        )
        return []
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        print("bench_tunnel: paho-mqtt is not installed; no MQTT rows", file=sys.stderr)
        return []
    out = []
    broker = _Mosquitto(tmp)
    try:
        for size, label in ((128, "128 B"), (3072, "3 KB")):
            lat = _mqtt_run(broker.port, broker.cert, size, n)
            tun = next(r for r in rows if r.name == f"tunnel {label}, memory store p50")
            tun_sql = next(r for r in rows if r.name == f"tunnel {label}, SQLite fsync p50")
            m50 = _pct(lat, 0.5) * 1e3
            out.append(
                Row(
                    G,
                    f"MQTT QoS1 TLS {label} p50",
                    m50,
                    "ms",
                    None,
                    "",
                    f"tunnel memory/MQTT {tun.value / m50:.2f}x, tunnel SQLite/MQTT {tun_sql.value / m50:.2f}x",
                )
            )
            out.append(Row(G, f"MQTT QoS1 TLS {label} p99", _pct(lat, 0.99) * 1e3, "ms"))
            b = _mqtt_bytes(broker.port, broker.cert, size, 200)
            tb = next(r for r in rows if r.name == f"tunnel {label}: bytes on the wire per payload")
            out.append(
                Row(
                    G,
                    f"MQTT QoS1 TLS {label}: bytes on the wire per payload",
                    b,
                    "bytes",
                    tb.value / b,
                    "tunnel bytes / MQTT bytes",
                    "PUBLISH + PUBACK in TLS 1.3 records",
                )
            )
    finally:
        broker.close()
    return out
