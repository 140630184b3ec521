"""The endpoint's side of a release: announce to a connected fleet, serve every device its pull.

Time to 50 / 90 / 100 % of the connected devices *announced* (the announcement received over
the tunnel) and *pulled* (the whole 1 MB bundle received over HTTP, authenticated by the device
key), from the moment ``release rollout --percent 100`` is written to the database, for one
``serve`` process on SQLite and ``serve --workers 2`` on PostgreSQL (started here, fsync on),
same fleet, same run. The devices are lightweight clients in this process (a tunnel handshake,
then wait for the announcement, then pull, honouring ``503`` + ``Retry-After``), so the figures
are the endpoint's (the database, the downlink poll, pull serving), without the agents' work of
verifying, unpacking and switching (``bench_release_workers`` runs real agents). The rollout is
written by this process, neither endpoint. Rows also give the endpoint's CPU (all its
processes) and the pull bandwidth. ``ctx.quick``: 100 devices, else 1,000
(``STREAMFEAT_BENCH_RELEASE_PUSH_DEVICES``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from _harness import Context, Row

GROUP = "release-push"
ROOT = Path(__file__).resolve().parents[1]


def _q(values: list[float], share: float, n: int) -> float | None:
    k = max(1, int(share * n + 0.999999))
    return sorted(values)[k - 1] if len(values) >= k else None


async def _fleet(
    ws_url: str, http_url: str, keys: list[Any], ep: bytes, db: str, bundle: bytes, names: list[str]
) -> tuple[list[float], list[float], float]:
    """Connect every device, roll out to 100 %, and time announcements and pulls."""
    from streamfeat.endpoint._releases import ReleaseBook
    from streamfeat.errors import TunnelClosed
    from streamfeat.release import HealthThresholds, authorization
    from streamfeat.tunnel import NEED_DATA, Config, HandshakeComplete, Hello, Role
    from streamfeat.tunnel import TunnelConnection as TC
    from streamfeat.upload._aiohttp import connect

    announced: list[float] = []
    pulled: list[float] = []
    connected = 0
    all_connected, go = asyncio.Event(), asyncio.Event()
    t0 = 0.0
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))

    async def device(key: Any) -> None:
        nonlocal connected
        for attempt in range(1000):  # a device reconnects until its handshake completes
            try:
                t = await connect(ws_url)
                conn = TC(Role.DEVICE, static=key, remote_static=ep)
                await t.send(conn.send(Hello(0, None)))

                async def until(kind: type, t: Any = t, conn: Any = conn) -> Any:
                    while True:
                        ev = conn.next_event()
                        if ev is NEED_DATA:
                            data = await t.receive()
                            if not data:
                                msg = "endpoint closed the connection"
                                raise RuntimeError(msg)
                            conn.receive_data(data)
                            continue
                        if isinstance(ev, kind):
                            return ev

                await until(HandshakeComplete)
                break
            except (OSError, RuntimeError, TunnelClosed):
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt) * random.random())
        connected += 1
        if connected == len(keys):
            all_connected.set()
        cfg = await until(Config)
        announced.append(time.perf_counter() - t0)
        doc = json.loads(cfg.body.split(b"\n", 1)[1])
        path = f"/v1/bundles/{doc['bundle']}"
        got = b""
        while len(got) < doc["size"]:
            hdr = {
                "Authorization": authorization(
                    key.private, key.public, ep, method="GET", path=path, start=len(got),
                    now=time.time(),
                )
            }  # fmt: skip
            if got:
                hdr["Range"] = f"bytes={len(got)}-"
            try:
                async with http.get(http_url + path, headers=hdr) as r:
                    if r.status == 503:
                        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                        continue
                    if r.status not in (200, 206):
                        msg = f"pull answered {r.status}"
                        raise RuntimeError(msg)
                    got += await r.read()
            except aiohttp.ClientError:
                await asyncio.sleep(0.5)  # cut: resume from what arrived
        pulled.append(time.perf_counter() - t0)
        await t.aclose()

    tasks = [asyncio.create_task(device(k)) for k in keys]
    try:
        await asyncio.wait_for(all_connected.wait(), 300)
        book = ReleaseBook(db)
        try:
            now = time.time()
            book.add_bundle(bundle, now=now)
            book.create("r-bench", 'default = "b"', thresholds=HealthThresholds(), now=now)
            t0 = time.perf_counter()
            await asyncio.to_thread(book.rollout, "r-bench", 100, names, now=now)
            written = time.perf_counter() - t0
        finally:
            book.close()
        go.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
    finally:
        for task in tasks:
            task.cancel()
        await http.close()
    return announced, pulled, written


def run(ctx: Context) -> list[Row]:
    sys.path.insert(0, str(ROOT))
    from bench_scale import _Server
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from streamfeat.endpoint._postgres import PostgresRegistry
    from streamfeat.endpoint._registry import Registry, endpoint_keypair
    from streamfeat.release import build_archive, sign_bundle
    from streamfeat.tunnel import KeyPair
    from tests.pg_helpers import PgServer, missing_reason

    why = missing_reason()
    if why is not None:
        return [Row(GROUP, "release push on PostgreSQL", 0, "-", note=f"not run: {why}")]
    n = int(os.environ.get("STREAMFEAT_BENCH_RELEASE_PUSH_DEVICES", 100 if ctx.quick else 1000))
    tmp = ctx.tmp / "release-push"
    tmp.mkdir(exist_ok=True)
    key = tmp / "endpoint.key"
    ep = endpoint_keypair(key)
    keys = [KeyPair.generate(os.urandom) for _ in range(n)]
    names = [f"dev{i}" for i in range(n)]
    files = {"tasks.toml": b'[triggers]\nclick = "click"\n', "model.npy": os.urandom(1_000_000)}
    release_key = Ed25519PrivateKey.from_private_bytes(os.urandom(32))
    bundle = sign_bundle(build_archive(files, name="b", version="1"), release_key, name="b", version="1")[1]  # fmt: skip
    sqlite_db = tmp / "ep.db"
    reg = Registry(sqlite_db)
    reg.add_many(list(zip(names, (k.public for k in keys), strict=True)))
    reg.close()
    caps = ["--max-unauthenticated-per-source", "8192", "--max-unauthenticated", "8192"]
    pg = PgServer(fsync=True).start()
    rows: list[Row] = []
    try:
        url = pg.create_database("bench")
        preg = PostgresRegistry(url)
        preg.add_many(list(zip(names, (k.public for k in keys), strict=True)))
        preg.close()
        serve = [sys.executable, "-m", "streamfeat", "serve", "--host", "127.0.0.1"]
        serve += ["--port", "0", "--key", str(key), *caps]
        setups = [
            ("SQLite, 1 process", str(sqlite_db), [*serve, "--db", str(sqlite_db)]),
            ("PostgreSQL, 2 workers", url, [*serve, "--db", url, "--workers", "2"]),
        ]
        for label, db, argv in setups:
            srv = _Server(argv)
            try:
                c0, w0 = srv.cpu_seconds(), time.perf_counter()
                announced, pulled, written = asyncio.run(
                    _fleet(
                        f"ws://127.0.0.1:{srv.port}/v1/tunnel",
                        f"http://127.0.0.1:{srv.port}",
                        keys, ep.public, db, bundle, names,
                    )
                )  # fmt: skip
                cpu, wall = srv.cpu_seconds() - c0, time.perf_counter() - w0
            finally:
                srv.close()
            last = max(pulled)
            for what, times in (("announced", announced), ("pulled", pulled)):
                for share in (0.5, 0.9, 1.0):
                    v = _q(times, share, n)
                    rows.append(
                        Row(
                            GROUP,
                            f"{label}: {n} devices, to {share:.0%} {what}",
                            -1 if v is None else v,
                            "s",
                            note=f"rollout written in {written:.2f} s"
                            if what == "announced"
                            else "",
                        )
                    )
            rows.append(
                Row(
                    GROUP,
                    f"{label}: pull bandwidth, {n} x {len(bundle):,} B",
                    n * len(bundle) / 1e6 / last,
                    "MB/s",
                    note=f"endpoint CPU {cpu:.1f} s over {wall:.1f} s (all its processes)",
                )
            )
    finally:
        pg.stop()
    print(json.dumps([r.__dict__ for r in rows], default=str), flush=True)
    return rows
