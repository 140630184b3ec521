from __future__ import annotations

import asyncio
from typing import Any

from streamfeat import Engine, Event
from streamfeat.runtime import AsyncEngine

from .test_engine import Counting


async def test_events_flow_to_sinks_in_per_device_order() -> None:
    got: list[dict[str, Any]] = []
    shell = AsyncEngine(Engine([Counting()]), [got.extend], tick=0)
    await shell.start()
    for i in range(100):
        await shell.submit(Event(i, "x", f"d{i % 3}"))
    await shell.aclose()
    assert [r["index"] for r in got if r["device"] == "d0"] == list(range(34))
    assert shell.stats["processed"] == 100


async def test_full_queue_blocks_submit_and_refuses_nowait() -> None:
    shell = AsyncEngine(Engine([Counting()]), [], queue_size=2, tick=0)
    assert shell.submit_nowait(Event(1, "x"))
    assert shell.submit_nowait(Event(2, "x"))
    assert not shell.submit_nowait(Event(3, "x"))
    assert shell.stats["refused"] == 1
    blocked = asyncio.create_task(shell.submit(Event(4, "x")))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # backpressure: waits for room
    await shell.start()
    await asyncio.wait_for(blocked, 1)
    await shell.drain()
    assert shell.stats["processed"] == 3
    await shell.aclose()


async def test_a_failing_sink_is_counted_and_others_still_run() -> None:
    good: list[dict[str, Any]] = []

    def bad(records: list[dict[str, Any]]) -> None:
        msg = "sink down"
        raise RuntimeError(msg)

    async def slow(records: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0)
        good.extend(records)

    shell = AsyncEngine(Engine([Counting()]), [bad, slow], tick=0)
    await shell.start()
    await shell.submit(Event(1, "x"))
    await shell.aclose(close_windows=True)
    assert shell.stats["sink_errors"] == 2
    assert [r["kind"] for r in good] == ["seen", "closed"]


async def test_ticks_advance_idle_devices_on_the_injected_clock(manual_clock: Any) -> None:
    got: list[dict[str, Any]] = []
    shell = AsyncEngine(Engine([Counting()]), [got.extend], clock=manual_clock, tick=0.001)
    await shell.start()
    await shell.submit(Event(1, "x", "d"))
    await shell.drain()
    for _ in range(50):
        await asyncio.sleep(0.002)
        if any(r["kind"] == "advanced" for r in got):
            break
    await shell.aclose()
    adv = [r for r in got if r["kind"] == "advanced"]
    assert adv
    assert adv[0]["now"] == int(manual_clock.time() * 1000)
