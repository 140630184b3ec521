"""Processes for the liveness tests: an endpoint with a chosen heartbeat, and a device that
completes its handshake and then waits (the test stops it with SIGSTOP).

    python tunnel_heartbeat_proc.py endpoint DB HEARTBEAT   # prints "listening on http://..."
    python tunnel_heartbeat_proc.py device DB URL           # prints "ready" once connected
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from streamfeat.endpoint._registry import Registry, endpoint_keypair
from streamfeat.endpoint._server import TunnelServer
from streamfeat.endpoint._storage import SQLiteStorage
from streamfeat.tunnel import NEED_DATA, HandshakeComplete, Hello, KeyPair, Role, TunnelConnection
from streamfeat.upload._aiohttp import connect


async def endpoint(db: Path, heartbeat: float) -> None:
    srv = TunnelServer(
        key=endpoint_keypair(db.with_name("endpoint.key")),
        registry=Registry(db),
        storage=SQLiteStorage(db.with_name("batches.db")),
        heartbeat=heartbeat,
    )
    runner = web.AppRunner(srv.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


async def device(db: Path, url: str) -> None:
    key = KeyPair.from_private(bytes.fromhex(db.with_name("device.key").read_text()))
    endpoint_key = endpoint_keypair(db.with_name("endpoint.key")).public
    # no liveness check of its own: the endpoint's is under test
    t = await connect(url, heartbeat=None)
    conn = TunnelConnection(Role.DEVICE, static=key, remote_static=endpoint_key)
    await t.send(conn.send(Hello(0)))
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            conn.receive_data(await t.receive())
        elif isinstance(ev, HandshakeComplete):
            break
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1] == "endpoint":
        asyncio.run(endpoint(Path(sys.argv[2]), float(sys.argv[3])))
    else:
        asyncio.run(device(Path(sys.argv[2]), sys.argv[3]))
