"""A tasks file pushed around a kill reaches every device before the fleet closes.

The race the fleet chaos test hit with agent kills on: a fleet process is killed with SIGKILL
and restarted on its stores, which delays the simulator's push (it waits for every fleet
clock); the push then lands while the endpoint is down too, is stored by the endpoint, and
reaches each device only at its next handshake. The simulator used to send ``drain`` at once:
the agents closed before they reconnected, so the config was saved in some devices' outboxes
but never applied, and idle devices never got it at all (the audit saw ``{"v0": N}``).

Here every step is forced in that order with real processes on 127.0.0.1: a real endpoint, a
real fleet process killed with SIGKILL and restarted, the push stored while the endpoint is
down, ``drain`` sent before the endpoint is back.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgpack

from streamfeat.sim import SimOptions
from streamfeat.sim._simulation import Simulation

TASKS = """
[windows.all_1m]
assign = "tumbling 1m"
aggregate = { n = "count" }

[upload]
records = ["window"]
batch_max_age = "200ms"
"""

PUSHED = (
    TASKS
    + """
[windows.clicks_1m]
assign = "tumbling 1m"
filter = ["click"]
aggregate = { n = "count" }
"""
)


async def _scenario(work: Path) -> dict[str, dict]:
    sim = Simulation(SimOptions(devices=3, minutes=0.3, speed=0, processes=1, seed=11,
                                tasks_text=TASKS, workdir=work))  # fmt: skip
    sim._dirs()
    devices = sim._prepare(work)
    sim.device_names = [d for d, _ in devices]
    try:
        [first] = await sim._start_workers(work, devices)
        url = await sim._endpoint_url(work)
        await first.send(f"url {url}")
        await first.expect("ready", 120)
        await first.send(f"go {time.time()!r}")
        await first.expect("fed", 120)
        # kill -9 the fleet process (every agent in it) and start it again on its stores
        first.proc.kill()
        await first.proc.wait()
        again = await sim._spawn_worker(work, 0, resume=True)
        sim._workers[0] = again
        await again.send(f"url {url}")
        await again.expect("ready", 120)
        await again.send(f"go {time.time()!r}")
        await again.expect("fed", 120)
        # the endpoint goes down; the push is stored for every device meanwhile
        assert sim._endpoint is not None
        sim._endpoint.proc.kill()
        await sim._endpoint.proc.wait()
        sim._endpoint = None
        await asyncio.to_thread(sim._store_config, 1, PUSHED)
        # drain before the endpoint is back: the devices must wait for the push
        await again.send("drain 1")
        await asyncio.sleep(0.5)
        await sim._start_endpoint(work, sim._endpoint_port)
        done = await again.expect("done", 180)
        blob = await asyncio.to_thread(Path(done["done"]).read_bytes)
        result = msgpack.unpackb(blob, raw=False)
    finally:
        for w in sim._workers:
            if w.proc.returncode is None:
                w.proc.kill()
                await w.proc.wait()
        await sim._stop_endpoint()
    return dict(result["devices"])


def test_push_stored_while_devices_are_offline_is_applied_before_they_close(
    tmp_path: Path,
) -> None:
    devices = asyncio.run(_scenario(tmp_path))
    assert sorted(devices) == ["dev000000", "dev000001", "dev000002"]
    assert {name: d["version"] for name, d in devices.items()} == dict.fromkeys(devices, 1)
    assert all(d["configs"] == 1 for d in devices.values())
