"""An endpoint process the simulator can drive: ``python -m streamfeat.sim._endpoint``.

It is ``streamfeat serve`` (the tunnel's :class:`~streamfeat.endpoint._server.TunnelServer` over
aiohttp, SQLite storage and registry) plus a control channel on standard input, one JSON object
per line, so that the simulator can push tasks files to devices live:

* ``{"push": {"devices": [NAME, ...], "version": V, "body": TEXT}}``: store the config for each
  device and send it down the open connections now (the others get it when they connect);
  answers ``{"pushed": V, "live": N}`` on standard output.
* end of input: graceful shutdown (batches handed to storage are stored and acknowledged).

The first line written is ``{"listening": PORT}``. A SIGKILL (the simulator's chaos) loses
nothing acknowledged: storage commits before every ack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["main"]


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


def _say(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _serve(db: Path, key_path: Path, host: str, port: int) -> None:
    from streamfeat.endpoint._registry import Registry, endpoint_keypair
    from streamfeat.endpoint._server import Limits, TunnelServer
    from streamfeat.endpoint._storage import SQLiteStorage

    # every simulated device connects from 127.0.0.1: the per-source cap on connections not
    # yet authenticated (meant for one abusive client) would throttle the whole fleet's
    # reconnects after a restart, so here it is as high as the total cap
    limits = Limits(max_unauthenticated=8192, max_unauthenticated_per_source=8192)
    server = TunnelServer(
        key=endpoint_keypair(key_path), registry=Registry(db), storage=SQLiteStorage(db),
        limits=limits,
    )  # fmt: skip
    from streamfeat.endpoint._release_routes import ReleaseRoutes

    app = server.app()
    ReleaseRoutes(server, db, poll=0.2).install(app)  # releases: pulls, reports, announcements
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=4096)
    await site.start()
    server_obj: Any = site._server  # aiohttp keeps the asyncio server here; the bound port is on it
    sockets = server_obj.sockets if server_obj is not None else []
    _say({"listening": sockets[0].getsockname()[1] if sockets else port})
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_stdin_lines, args=(loop, queue), daemon=True).start()
    try:
        while (line := await queue.get()) is not None:
            cmd = json.loads(line)
            if "push" in cmd:
                p = cmd["push"]
                body = p["body"].encode()
                live = sum(server.push_config(d, int(p["version"]), body) for d in p["devices"])
                _say({"pushed": p["version"], "live": live})
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Run the endpoint until standard input ends."""
    p = argparse.ArgumentParser(prog="python -m streamfeat.sim._endpoint")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    asyncio.run(_serve(args.db, args.key, args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
