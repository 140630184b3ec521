"""A device process for the delivery tests: enqueue items 0..N-1 (resuming after a restart)
while the uploader drains the outbox, then wait until everything is acknowledged.

usage: tunnel_device_proc.py DEVICE_FILE STORE_DB N URL [DELAY]
"""

from __future__ import annotations

import asyncio
import sys

from streamfeat.upload._client import Uploader, load_device_file
from streamfeat.upload._outbox import Outbox, OutboxConfig


def item(device: str, i: int) -> bytes:
    return f"{device}:{i}:".encode() + bytes([i % 251]) * (i % 97)


async def main(device_file: str, store: str, n: int, url: str, delay: float) -> int:
    key, cfg = load_device_file(
        device_file, url=url, backoff_base=0.05, backoff_cap=0.5, ack_timeout=5.0
    )
    name = device_file.rsplit("/", 1)[-1].split(".")[0]
    outbox = Outbox(store, OutboxConfig(batch_max_bytes=600, batch_max_age=0.05))
    up = Uploader(outbox, key, cfg)
    task = asyncio.create_task(up.run())
    # enqueue commits the item and the counter together: a restart resumes exactly here
    for i in range(outbox.counters()["enqueued_items"], n):
        up.enqueue(item(name, i))
        await asyncio.sleep(delay)
    ok = await up.wait_drained(60)
    await up.aclose()
    await task
    print("drained" if ok else "not drained", up.stats, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    a = sys.argv
    sys.exit(asyncio.run(main(a[1], a[2], int(a[3]), a[4], float(a[5]) if len(a) > 5 else 0.003)))
