"""Release serving: how fast one endpoint process serves bundle pulls.

An endpoint process (the simulator's endpoint child: ``TunnelServer`` + the release routes,
SQLite) holds one signed 1 MB bundle; a client process pulls it over loopback, authenticated
by device keys, ``C`` pulls at a time (64 by default, the endpoint's pull limit), ``N`` pulls
in all (2,000; ``ctx.quick``: 200). Rows: pulls per second, MB/s served, the endpoint's CPU
seconds per GB served (from ``/proc``), and the projection that follows for a Walle-scale
release (7 million devices in 7 minutes, 1 MB each): endpoint processes needed if pull serving
is the bottleneck, at the measured CPU per GB (one process per core).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from _harness import Context, Row
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamfeat.endpoint._registry import Registry, endpoint_keypair
from streamfeat.endpoint._releases import ReleaseBook
from streamfeat.release import authorization, build_archive, sign_bundle
from streamfeat.tunnel._crypto import KeyPair

GROUP = "release"
ROOT = Path(__file__).resolve().parents[1]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _pull_all(url: str, bundle: str, keys: list[KeyPair], ep: bytes, n: int, c: int) -> int:
    sem = asyncio.Semaphore(c)
    path = f"/v1/bundles/{bundle}"
    got = 0

    async def one(i: int, http: aiohttp.ClientSession) -> None:
        nonlocal got
        kp = keys[i % len(keys)]
        async with sem:
            while True:
                hdr = {"Authorization": authorization(kp.private, kp.public, ep, method="GET",
                                                      path=path, now=time.time())}  # fmt: skip
                async with http.get(url + path, headers=hdr) as r:
                    if r.status == 503:
                        await asyncio.sleep(0.05)
                        continue
                    body = await r.read()
                    if r.status != 200:
                        msg = f"pull answered {r.status}: {body[:80]!r}"
                        raise RuntimeError(msg)
                    got += len(body)
                    return

    conn = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(connector=conn) as http:
        await asyncio.gather(*(one(i, http) for i in range(n)))
    return got


def run(ctx: Context) -> list[Row]:
    n, c = (200, 64) if ctx.quick else (2000, 64)
    work = ctx.tmp / "release-bench"
    work.mkdir(parents=True, exist_ok=True)
    db, key_path = work / "ep.sqlite", work / "endpoint.key"
    ep = endpoint_keypair(key_path)
    registry = Registry(db)
    keys = [KeyPair.from_private(os.urandom(32)) for _ in range(64)]
    registry.add_many([(f"d{i}", k.public) for i, k in enumerate(keys)])
    registry.close()
    files = {"tasks.toml": b'[triggers]\nclick = "click"\n', "model.npy": os.urandom(1_000_000)}
    release_key = Ed25519PrivateKey.from_private_bytes(os.urandom(32))
    _, data = sign_bundle(
        build_archive(files, name="b", version="1"), release_key, name="b", version="1"
    )
    book = ReleaseBook(db)
    bundle, _ = book.add_bundle(data, now=time.time())
    book.close()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamfeat.sim._endpoint", "--db", str(db), "--key", str(key_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["listening"]
        url = f"http://127.0.0.1:{port}"
        asyncio.run(_pull_all(url, bundle, keys, ep.public, 8, 8))  # warm-up
        cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
        got = asyncio.run(_pull_all(url, bundle, keys, ep.public, n, c))
        wall, cpu = time.perf_counter() - t0, _cpu_s(proc.pid) - cpu0
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)
    assert got == n * len(data), (got, n * len(data))
    mb = got / 1e6
    cpu_per_gb = cpu / (got / 1e9)
    # Walle: 7 million devices in 7 minutes; 1 MB each -> 7 TB in 420 s
    need_gb_s = 7e6 * len(data) / 1e9 / 420
    procs = need_gb_s * cpu_per_gb  # CPU seconds of serving per wall second = cores
    note = f"{n} pulls of {len(data):,} B, {c} at a time, one endpoint process, loopback"
    return [
        Row(GROUP, "bundle pulls served", n / wall, "pulls/s", note=note),
        Row(GROUP, "bundle bytes served", mb / wall, "MB/s", note="wall: shared 2-core machine"),
        Row(GROUP, "endpoint CPU per GB served", cpu_per_gb, "s/GB", note="from /proc, user+sys"),
        Row(
            GROUP,
            "Walle scale: processes for 7M x 1 MB in 7 min",
            procs,
            "processes",
            note=f"{need_gb_s:.1f} GB/s x CPU per GB; pull serving only",
        ),
    ]
