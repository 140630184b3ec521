"""Endpoint memory under flooding devices: RSS before and after 30 connections that each send up
to 2,000 batches of 1,000 bytes without waiting for an acknowledgement.

Run from the repository root: ``.venv/bin/python bench/endpoint_flood.py``. Prints the endpoint
process's RSS (``/proc/PID/status``) before and after, the batches sent, and the close codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from streamfeat.tunnel import Batch
from streamfeat.tunnel._events import NEED_DATA, Closed
from tests.integration.endpoint_proc import Serve, add_device
from tests.integration.test_endpoint_hardening import _raw_session


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def flood_once(url: str, device_file: Path) -> tuple[int, int | None]:
    sess, ws, conn = await _raw_session(url, device_file)

    async def read() -> int | None:
        while True:
            msg = await ws.receive(10)  # type: ignore[attr-defined]
            if msg.type is not aiohttp.WSMsgType.BINARY:
                return None
            conn.receive_data(bytes(msg.data))
            while (ev := conn.next_event()) is not NEED_DATA:
                if isinstance(ev, Closed):
                    return ev.code

    reader = asyncio.create_task(read())
    sent = 0
    with contextlib.suppress(Exception):
        for _ in range(2000):
            if reader.done():
                break
            await ws.send_bytes(conn.send(Batch(os.urandom(16), os.urandom(1000))))  # type: ignore[attr-defined]
            sent += 1
            await asyncio.sleep(0)
    code = None
    with contextlib.suppress(Exception):
        code = await asyncio.wait_for(reader, 10)
    await ws.close()  # type: ignore[attr-defined]
    await sess.close()
    return sent, code


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    db = tmp / "ep.db"
    device_file = add_device(db, "flood")
    ep = Serve(db)
    try:
        time.sleep(1)
        before = rss_mb(ep.proc.pid)

        async def run() -> list[tuple[int, int | None]]:
            return [await flood_once(ep.url, device_file) for _ in range(30)]

        results = asyncio.run(run())
        time.sleep(1)
        after = rss_mb(ep.proc.pid)
    finally:
        ep.stop()
    print(
        f"batches sent: {sum(s for s, _ in results)}; close codes: {sorted({c or 0 for _, c in results})}"
    )
    print(f"endpoint RSS: {before:.0f} MB before, {after:.0f} MB after 30 flooding connections")


if __name__ == "__main__":
    main()
