"""Where the 128 B tunnel round trip spends its CPU (docs/performance.md, the tunnel round trip).

Usage (from the repository root)::

    python bench/tunnel_profile.py loop              # the per-batch code in a loop, no sockets
    python bench/tunnel_profile.py profile [-n N]    # cProfile of the device and the endpoint
    python bench/tunnel_profile.py segments [-n N]   # where a round trip's wall time goes

``loop`` times, in one process without sockets, the protocol core's four steps of one 128 B
exchange (the device seals a batch; the endpoint reads it and seals the ack; the device reads
the ack) and the endpoint's whole per-batch code (``receive_data``, the session's ``_drain``
with its store and ack, taking the bytes to send), each the fastest of 7 runs.

``profile`` runs the benchmark's device (``bench_tunnel._Device``) against the memory-store
endpoint of ``bench_tunnel`` in its own process, both under ``cProfile`` on
``time.thread_time`` (the CPU of the thread, not the wall clock), for ``N`` exchanges after a
warm-up, and prints the functions with the most own time in each process. Profiling slows
Python code several times over; read the shares, not the times.

``segments`` times, with the clock, the parts of each exchange in place (no profiler): on the
device, sealing the batch, writing it, waiting for the answer and reading the ack; on the
endpoint, reading the batch (the session's ``_drain``, which opens it, stores it and seals
the ack) and writing the ack (``Outgoing.flush``), beside the time the echo with the same
options takes to write its answer, and each of the endpoint's AEAD calls (the connection's
AEAD objects wrapped in a timing proxy). The three ways (bare echo, echo with the same
options, tunnel) take turns, ``N / 4`` exchanges at a time. Medians, in microseconds. The
clocks and the proxy add a little to the tunnel's own figures.

``STREAMFEAT_PURE=1`` profiles the pure-Python build.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_tunnel as B
from _harness import ROOT

sys.path.insert(0, str(ROOT))

from streamfeat.endpoint._registry import Registry, endpoint_keypair
from streamfeat.tunnel import (
    NEED_DATA,
    Accept,
    Ack,
    Batch,
    HandshakeComplete,
    Hello,
    KeyPair,
    Role,
    TunnelConnection,
)
from streamfeat.upload._aiohttp import connect

PAYLOAD = 128

# the benchmark's memory-store endpoint, profiled from SIGUSR1 until SIGTERM
_PROFILED_SERVER = B._MEMSERVER.replace(
    "asyncio.run(main())",
    """
import cProfile, os, signal, time
prof = cProfile.Profile(time.thread_time)
def dump(*a):
    prof.disable(); prof.dump_stats(os.environ['STREAMFEAT_PROFILE_OUT']); os._exit(0)
signal.signal(signal.SIGTERM, dump)
signal.signal(signal.SIGUSR1, lambda *a: prof.enable())
asyncio.run(main())
""",
)


# the benchmark's memory-store endpoint with clocks around the session's reading and writing,
# and an echo with the tunnel's own transport at /same; medians written to a file on SIGTERM
_TIMED_SERVER = B._MEMSERVER.replace(
    "async def main():",
    """
import contextlib, json, os, signal, statistics, time
from streamfeat.endpoint import _session as S
from streamfeat.upload._aiohttp import HEARTBEAT, WebSocketTransport
pc = time.perf_counter_ns
T = {'read': [], 'write': [], 'echo write': [], 'decrypt': [], 'encrypt': []}
WRAPPED = set()
class _Timed:
    def __init__(self, aead, dec, enc): self.a, self.dec, self.enc = aead, dec, enc
    def encrypt(self, n, d, ad):
        t = pc(); r = self.a.encrypt(n, d, ad); self.enc.append(pc() - t); return r
    def decrypt(self, n, d, ad):
        t = pc(); r = self.a.decrypt(n, d, ad); self.dec.append(pc() - t); return r
_drain, _flush = S.Session._drain, S.Outgoing.flush
def drain(self):
    c = self.conn
    if c._open_with is not None and id(c) not in WRAPPED:
        WRAPPED.add(id(c))
        with contextlib.suppress(TypeError):  # a build whose attributes refuse the proxy
            c._open_with = _Timed(c._open_with, T['decrypt'], [])
            c._seal_with = _Timed(c._seal_with, [], T['encrypt'])
    t = pc(); r = _drain(self); T['read'].append(pc() - t); return r
async def flush(self):
    t = pc(); await _flush(self); T['write'].append(pc() - t)
S.Session._drain, S.Outgoing.flush = drain, flush
async def same(request):
    ws = web.WebSocketResponse(max_msg_size=1 << 20, compress=False, autoping=False, timeout=2.0)
    await ws.prepare(request)
    tr = WebSocketTransport(ws, heartbeat=HEARTBEAT)
    while data := await tr.receive():
        t = pc(); await tr.send(data); T['echo write'].append(pc() - t)
    return ws
def report(*_):
    out = {k: statistics.median(v[100:]) / 1000 for k, v in T.items() if len(v) > 100}
    with open(os.environ['STREAMFEAT_SEGMENTS_OUT'], 'w') as fh:
        json.dump(out, fh)
    os._exit(0)
async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, report)""",
).replace(
    "r = web.AppRunner(srv.app())",
    "app = srv.app(); app.router.add_get('/same', same); r = web.AppRunner(app)",
)


def _best(fn: Any, n: int, runs: int = 7) -> float:
    """The fastest of ``runs`` runs of ``n`` calls, in microseconds per call."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t0) / n * 1e6)
    return min(out)


def _core_steps(n: int) -> dict[str, float]:
    ek, dk = KeyPair.generate(os.urandom), KeyPair.generate(os.urandom)
    d = TunnelConnection(Role.DEVICE, static=dk, remote_static=ek.public)
    e = TunnelConnection(Role.ENDPOINT, static=ek)
    e.receive_data(d.send(Hello(0)))
    e.next_event()
    d.receive_data(e.send(Accept()))
    d.next_event()
    while e.next_event() is not NEED_DATA:
        pass
    payload, bid = os.urandom(PAYLOAD), os.urandom(16)
    times = {"device seals a batch": 0.0, "endpoint reads it": 0.0}
    times |= {"endpoint seals the ack": 0.0, "device reads the ack": 0.0}
    best = dict.fromkeys(times, float("inf"))
    pc = time.perf_counter
    for _ in range(7):
        times = dict.fromkeys(times, 0.0)
        for _ in range(n):
            t0 = pc()
            wire = d.send(Batch(bid, payload))
            t1 = pc()
            e.receive_data(wire)
            ev = e.next_event()
            e.next_event()
            t2 = pc()
            assert isinstance(ev, Batch)
            ack = e.send(Ack(ev.batch_id))
            t3 = pc()
            d.receive_data(ack)
            got = d.next_event()
            d.next_event()
            t4 = pc()
            assert isinstance(got, Ack)
            for k, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                times[k] += dt
        best = {k: min(best[k], v / n * 1e6) for k, v in times.items()}
    return best


class _MemStore:
    non_blocking = True

    def __init__(self) -> None:
        self.seen: set[tuple[str, bytes]] = set()

    def store_batches(self, batches: Any) -> list[bool]:
        out = []
        for b in batches:
            k = (b.device, b.batch_id)
            out.append(k not in self.seen)
            self.seen.add(k)
        return out

    def get_config(self, device: str) -> None:
        return None

    def set_config(self, device: str, version: int, body: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Sink:
    async def send(self, data: bytes) -> None:
        pass

    async def receive(self) -> bytes:
        return b""

    async def aclose(self) -> None:
        pass


async def _session_per_batch(n: int) -> float:
    from streamfeat.endpoint._server import TunnelServer
    from streamfeat.endpoint._session import Session

    ek, dk = KeyPair.generate(os.urandom), KeyPair.generate(os.urandom)
    reg = Registry(Path(tempfile.mkdtemp()) / "ep.db")
    reg.add("dev", dk.public)
    srv = TunnelServer(key=ek, registry=reg, storage=_MemStore())  # type: ignore[arg-type]
    srv._ensure_started()
    s = Session(srv, _Sink())  # type: ignore[arg-type]
    d = TunnelConnection(Role.DEVICE, static=dk, remote_static=ek.public)
    s.conn.receive_data(d.send(Hello(0)))
    s._drain()
    d.receive_data(s._out._take())
    while not isinstance(d.next_event(), HandshakeComplete):
        pass
    while s._out.queued:
        s._out._take()
    payload = os.urandom(PAYLOAD)
    records = iter([d.send(Batch(i.to_bytes(16, "big"), payload)) for i in range(8 * n + 1000)])

    def one() -> None:
        s.conn.receive_data(next(records))
        s._out.reader_active = True
        s._drain()
        s._out.reader_active = False
        s._out._take()

    for _ in range(1000):
        one()
    return _best(one, n)


def loop() -> None:
    from streamfeat._compiled import status

    print(f"{status()}; load average {os.getloadavg()[0]:.2f}")
    for k, v in _core_steps(5000).items():
        print(f"  core, {k}: {v:.2f} us")
    per = asyncio.run(_session_per_batch(1000))
    print(f"  endpoint, one batch (receive_data, _drain, the bytes to send): {per:.2f} us")


def _registered() -> tuple[Path, Path, KeyPair, KeyPair]:
    """A scratch folder with an endpoint key and a registry holding one device: (folder,
    registry path, endpoint key, device key)."""
    tmp = Path(tempfile.mkdtemp())
    db = tmp / "ep.db"
    ep = endpoint_keypair(tmp / "endpoint.key")
    key = KeyPair.generate(os.urandom)
    reg = Registry(db)
    reg.add("dev", key.public)
    reg.close()
    return tmp, db, ep, key


def profile(n: int, top: int) -> None:
    tmp, db, ep, key = _registered()
    os.environ["STREAMFEAT_PROFILE_OUT"] = str(tmp / "endpoint.prof")
    server = B._Proc([sys.executable, "-c", _PROFILED_SERVER, str(db)])
    dev = B._Device(key, ep.public)

    async def run() -> float:
        await dev.open(f"ws://127.0.0.1:{server.port}/v1/tunnel")
        payload = os.urandom(PAYLOAD)
        for _ in range(500):
            await dev.send_wait(payload)
        server.p.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.2)
        prof = cProfile.Profile(time.thread_time)
        c0 = time.thread_time()
        prof.enable()
        for _ in range(n):
            await dev.send_wait(payload)
        prof.disable()
        cpu = time.thread_time() - c0
        prof.dump_stats(str(tmp / "device.prof"))
        await dev.close()
        return cpu

    print(f"load average {os.getloadavg()[0]:.2f}")
    try:
        cpu = asyncio.run(run())
    finally:
        server.close()  # SIGTERM: the endpoint writes its profile
    print(f"device: {cpu / n * 1e6:.0f} us of thread CPU per exchange, profiled")
    for name in ("device", "endpoint"):
        print(f"\n==== {name}: functions by own time")
        pstats.Stats(str(tmp / f"{name}.prof")).sort_stats("tottime").print_stats(top)


async def _segments_device(
    url: str, n: int, key: KeyPair | None, ep: bytes
) -> list[tuple[int, ...]]:
    """Device-side parts of ``n`` exchanges after a warm-up: seal, write, wait, read the ack."""
    pc = time.perf_counter_ns
    payload = os.urandom(PAYLOAD)
    out: list[tuple[int, ...]] = []
    if key is None:  # an echo: nothing to seal or read
        # the bare echo with aiohttp's own client, as the benchmark's row; the other with
        # the tunnel's transport
        async with contextlib.AsyncExitStack() as stack:
            if url.endswith("/echo"):
                session = await stack.enter_async_context(aiohttp.ClientSession())
                ws = await stack.enter_async_context(session.ws_connect(url, compress=0))
                send, receive = ws.send_bytes, ws.receive
            else:
                t = await connect(url)
                stack.push_async_callback(t.aclose)
                send, receive = t.send, t.receive
            for i in range(n + 50):
                a = pc()
                await send(payload)
                b = pc()
                await receive()
                c = pc()
                if i >= 50:
                    out.append((0, b - a, c - b, 0))
        return out
    dev = B._Device(key, ep)
    await dev.open(url)
    conn, t = dev.conn, dev.t
    for i in range(n + 50):
        a = pc()
        data = conn.send(Batch(dev._id(), payload))
        b = pc()
        await t.send(data)
        c = pc()
        got = await t.receive()
        d = pc()
        conn.receive_data(got)
        ev = conn.next_event()
        e = pc()
        if type(ev) is not Ack:
            msg = f"expected an ack, got {ev!r}"
            raise RuntimeError(msg)
        if i >= 50:
            out.append((b - a, c - b, d - c, e - d))
    await dev.close()
    return out


def segments(n: int) -> None:
    from statistics import median

    from streamfeat._compiled import status

    tmp, db, ep, key = _registered()
    os.environ["STREAMFEAT_SEGMENTS_OUT"] = str(tmp / "endpoint.json")
    server = B._Proc([sys.executable, "-c", _TIMED_SERVER, str(db)])
    echo = B._Proc([sys.executable, "-c", B._ECHO])
    urls = {
        "bare echo": (f"ws://127.0.0.1:{echo.port}/echo", None),
        "echo, same options": (f"ws://127.0.0.1:{server.port}/same", None),
        "tunnel, memory store": (f"ws://127.0.0.1:{server.port}/v1/tunnel", key),
    }
    parts: dict[str, list[tuple[int, ...]]] = {k: [] for k in urls}

    async def run() -> None:
        for _ in range(4):
            for name, (url, k) in urls.items():
                parts[name] += await _segments_device(url, n // 4, k, ep.public)

    load0 = os.getloadavg()[0]
    try:
        asyncio.run(run())
    finally:
        echo.close()
        server.close()  # SIGTERM: the endpoint writes its medians
    print(f"{status()}; load average {load0:.2f} / {os.getloadavg()[0]:.2f}; {n} exchanges each")
    print("device side, median us: seal | write | wait for the answer | read the ack | total")
    for name, xs in parts.items():
        cols = [median(c) / 1000 for c in zip(*xs, strict=True)]
        total = median(sum(x) for x in xs) / 1000
        print(f"  {name:22s}" + "".join(f"{c:9.1f}" for c in cols) + f"{total:9.1f}")
    ends = json.loads((tmp / "endpoint.json").read_text())
    print("endpoint side, median us: " + ", ".join(f"{k} {v:.1f}" for k, v in ends.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("loop", help="the per-batch code in a loop, no sockets")
    p = sub.add_parser("profile", help="cProfile of both processes of the round trip")
    p.add_argument("-n", type=int, default=20_000, help="exchanges profiled (20,000)")
    p.add_argument("--top", type=int, default=25, help="functions shown per process (25)")
    p = sub.add_parser("segments", help="where a round trip's wall time goes, in place")
    p.add_argument("-n", type=int, default=8_000, help="exchanges of each way (8,000)")
    args = ap.parse_args(argv)
    if args.cmd == "loop":
        loop()
    elif args.cmd == "segments":
        segments(args.n)
    else:
        profile(args.n, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
