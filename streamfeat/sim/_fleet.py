"""One process of a simulated fleet: ``python -m streamfeat.sim._fleet SPEC.json``.

The simulator (``streamfeat simulate``) starts one of these per core. Each runs many
:class:`~streamfeat.agent.Agent` objects on one asyncio loop, every one with its own store and
its own tunnel connection, fed by :func:`~streamfeat.gen._generator.device_stream` in accelerated
event time.

Time: one :class:`~streamfeat.clock.ManualClock` per process is the devices' event-side clock,
set on every round to ``start_ts + (wall elapsed) * speed``. A device's event is released when
that clock reaches the largest ``ts`` the device has produced so far (an event whose ``ts`` went
back is released at once, as the app would emit it). Events wait in a heap by release time, so
a round costs only the due events, never a sleep per event. With ``speed`` 0 every event is
released at once (as fast as the pipeline goes). Uploads run on wall time.

Protocol with the simulator: standard input first carries ``url URL`` (the endpoint to use: the
simulator starts it while this process imports). Standard output carries JSON lines
``{"ready": n}`` once every agent is started and connected, then
``{"p": progress}`` every ``progress_every`` seconds, ``{"fed": n}`` when every event was
submitted, ``{"done": RESULT_PATH}`` at the end. Standard input carries ``go T0`` (the wall time
the fleet's clock starts) and ``drain [VERSION]`` (the endpoint is stable: wait until every device
received tasks file ``VERSION``, the last one pushed, then close the agents, uploading the final
windows, and wait for the acknowledgements).

The result (msgpack) holds per device the counts of what its agent did, and the *ledger*: a
digest of every record it put in its outbox, for the end-to-end audit. The ledger is kept in
the device's own store (table ``ledger``, ``Store.add_ledger``), written in the very transaction that puts the
records in the outbox, so it survives the simulator's ``--chaos`` killing this process with
``kill -9``: a process started again with ``"resume": true`` in its spec restarts each agent on
its store and feeds each device's stream from the event after the last one its agent accepted
(:func:`streamfeat.agent.accepted_events`); the counts in the result are then those of the last
process, the ledger is the whole run's.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import heapq
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import orjson

from streamfeat.clock import ManualClock, SystemClock
from streamfeat.gen._generator import device_stream
from streamfeat.sim._options import fleet_key

__all__ = ["main", "record_digest"]

_FAST_CHUNK = 256  # events a device gets in one turn when feeding as fast as possible


def _strip_floats(value: Any) -> Any:
    # a codec may quantise floats (compact: decimals); identity must not depend on them
    if isinstance(value, float):
        return "f"
    if isinstance(value, dict):
        return {k: _strip_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_floats(v) for v in value]
    return value


def record_digest(record: dict[str, Any]) -> bytes:
    """Return the 8-byte identity of a record for the audit (floats ignored, keys sorted)."""
    body = orjson.dumps(_strip_floats(record), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=8).digest()


def _say(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class _Device:
    __slots__ = ("agent", "events", "fed", "ledger", "maxts", "name", "steady", "user")

    def __init__(self, name: str, agent: Any, events: Any) -> None:
        self.name = name
        self.agent = agent
        self.events = events
        self.ledger: Counter[bytes] = Counter()
        self.maxts = 0
        self.fed = 0
        self.steady = 0  # latencies measured while the fleet was being fed
        self.user: Any = None  # a ServedUser with --ranking (the served feed)


class Worker:
    """The agents of one process (see the module docstring)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.speed = float(spec["speed"])
        self.start_ts = int(spec["start_ts"])
        self.clock = ManualClock(self.start_ts / 1000)
        self.devices: list[_Device] = []
        self.late_ms = 0.0  # worst delay between an event's release time and its submission
        self.submitted = 0

    async def setup(self) -> None:
        from streamfeat.agent import Agent
        from streamfeat.tasks import parse_tasks

        spec = self.spec
        store_dir = Path(spec["store_dir"])
        config = parse_tasks(spec["tasks"], source="<fleet tasks>")  # once for all the agents
        options = {
            "backoff_base": 0.2,
            "backoff_cap": 3.0,
            "ack_timeout": 10.0,
            "connect_timeout": 5.0,
        }
        from streamfeat.endpoint._registry import read_key_file

        # a live release's health reports: every 2 s so that a short run sees a broken bundle
        # rolled back, but at most ~50 a second from one process, so that a large fleet's
        # reports do not crowd out its uploads and pulls (status reports are sent at once)
        health_every = max(2.0, len(spec["devices"]) / 50)
        for name, key_file in spec["devices"]:
            private_hex = read_key_file(key_file)["private_key"]
            dev = _Device(
                name,
                None,
                device_stream(
                    name, spec["minutes"], spec["seed"], start_ts=self.start_ts, key=fleet_key(name)
                ),
            )
            if spec.get("ranking"):  # the served feed: a user who responds to the order shown
                from streamfeat.sim._users import ServedUser

                dev.user = ServedUser(name, spec["seed"], key=fleet_key(name))
                dev.events = iter(())
            elif spec.get("resume"):  # before pages: skipping must not hand out pages
                self._skip_accepted(dev, store_dir / f"{name}.sqlite")
            if (
                config.reranks and dev.user is None
            ):  # the device's app gets a page of candidates per feed visit
                dev.events = with_pages(dev, dev.events, {t.feed for t in config.reranks.values()})
            dev.agent = Agent(
                tasks=config, store_path=store_dir / f"{name}.sqlite", endpoint_url=spec["url"],
                endpoint_public_key=spec["endpoint_key"], device_key=private_hex, clock=self.clock,
                upload_clock=SystemClock(), device=name, tick=spec["tick"] if self.speed > 0 else 0,
                uploader_options=options, queue_size=2048, on_upload=self._ledger(dev),
                release_key=spec.get("release_key"),
            )  # fmt: skip
            dev.agent.release_health_every = health_every
            await dev.agent.start()
            self.devices.append(dev)
        # ready means connected: the first connection also pays one-off imports and handshakes,
        # which must not eat into the fed time
        waits = [
            d.agent.uploader.connected.wait() for d in self.devices if d.agent.uploader is not None
        ]
        if waits:
            tasks = [asyncio.ensure_future(w) for w in waits]
            await asyncio.wait(tasks, timeout=30)
            for t in tasks:
                t.cancel()

    @staticmethod
    def _ledger(dev: _Device) -> Any:
        def add(records: list[dict[str, Any]]) -> None:
            # called inside the agent's commit: the ledger rows commit with the outbox items
            digests = [record_digest(r) for r in records]
            dev.ledger.update(digests)
            dev.agent.store.add_ledger(digests)

        return add

    @staticmethod
    def _skip_accepted(dev: _Device, store: Path) -> None:
        """Move ``dev``'s stream past the events its agent accepted before a kill."""
        from streamfeat._event import event_from_obj
        from streamfeat.agent import accepted_events
        from streamfeat.errors import EventError

        if not store.exists():
            return
        left = accepted_events(str(store))
        while left > 0:
            ev = next(dev.events, None)
            if ev is None:
                return
            ts = ev.get("ts")
            if type(ts) is int and ts > dev.maxts:
                dev.maxts = ts
            try:
                event_from_obj(ev)
            except EventError:
                continue  # quarantined before the kill, not counted as accepted
            left -= 1

    @staticmethod
    def stored_ledger(path: Path) -> list[list[Any]]:
        """``[digest, count]`` of every record the device's agents put in the outbox."""
        from streamfeat.io._store import Store

        store = Store(path)
        try:
            return [[d, n] for d, n in store.ledger().items()]
        finally:
            store.close()

    async def feed(self, t0: float, progress_every: float) -> None:
        """Submit every device's events at their release times; report progress."""
        if self.spec.get("ranking"):
            await self._feed_served(t0, progress_every)
        elif self.speed <= 0:
            await self._feed_fast(progress_every)
        else:
            await self._feed_timed(t0, progress_every)
        # a process restarted after a kill may have had nothing left to feed: its clock still
        # moves on to where the fleet's is (the simulator's pushes wait for every clock)
        latest = max((d.maxts for d in self.devices), default=0) / 1000
        if self.speed > 0:
            latest = max(latest, (self.start_ts + (time.time() - t0) * 1000 * self.speed) / 1000)
        if latest > self.clock.time():
            self.clock.set(latest)
        for dev in self.devices:
            await dev.agent.drain()
            dev.steady = len(dev.agent.outbox.latencies)

    async def _feed_fast(self, progress_every: float) -> None:
        """As fast as possible: each device in turn gets a chunk of its events, so that its
        engine works in batches (one store transaction and one payload per batch)."""
        active = list(self.devices)
        last_progress = 0.0
        while active:
            still = []
            for dev in active:
                for _ in range(_FAST_CHUNK):
                    ev = next(dev.events, None)
                    if ev is None:
                        break
                    ts = ev.get("ts")
                    if type(ts) is int and ts > dev.maxts:
                        dev.maxts = ts
                        if ts / 1000 > self.clock.time():
                            self.clock.set(ts / 1000)
                    await dev.agent.submit(ev)
                    dev.fed += 1
                    self.submitted += 1
                else:
                    still.append(dev)
                await asyncio.sleep(0)  # let the engines and uploaders run
            active = still
            if time.time() - last_progress >= progress_every:
                last_progress = time.time()
                _say({"p": self.progress()})

    async def _feed_timed(self, t0: float, progress_every: float) -> None:
        heap: list[tuple[int, int, dict[str, Any]]] = []
        for i, dev in enumerate(self.devices):
            self._push(heap, i, dev)
        last_progress = 0.0
        while heap:
            now = time.time()
            sim_now = self.start_ts + (now - t0) * 1000 * self.speed
            if sim_now / 1000 > self.clock.time():
                self.clock.set(sim_now / 1000)
            while heap and heap[0][0] <= sim_now:
                release, i, ev = heapq.heappop(heap)
                dev = self.devices[i]
                self.late_ms = max(self.late_ms, (sim_now - release) / self.speed)
                await dev.agent.submit(ev)
                dev.fed += 1
                self.submitted += 1
                self._push(heap, i, dev)
            if now - last_progress >= progress_every:
                last_progress = now
                _say({"p": self.progress()})
            if heap:
                wait = (heap[0][0] - sim_now) / 1000 / self.speed
                await asyncio.sleep(min(max(wait, 0.005), progress_every))

    async def _feed_served(self, t0: float, progress_every: float) -> None:
        """Each device's served user plays against its agent (:func:`streamfeat.sim._served.drive`)."""
        from streamfeat.sim._served import drive, parse_mode

        mode = parse_mode(self.spec["ranking"])

        def counter(dev: _Device) -> Any:
            def on_event(ev: dict[str, Any]) -> None:
                dev.fed += 1
                self.submitted += 1
                dev.maxts = max(dev.maxts, ev["ts"])

            return on_event

        minutes, start = float(self.spec["minutes"]), self.start_ts
        tasks = [asyncio.ensure_future(drive(d.agent, d.user, mode, minutes=minutes, start_ts=start,
                                             clock=self.clock, speed=self.speed, t0=t0,
                                             on_event=counter(d))) for d in self.devices]  # fmt: skip
        pending = set(tasks)
        while pending:
            _done, pending = await asyncio.wait(pending, timeout=progress_every)
            _say({"p": self.progress()})
        for t in tasks:
            t.result()  # a driver's error stops the run here

    def _push(self, heap: list[tuple[int, int, dict[str, Any]]], i: int, dev: _Device) -> None:
        ev = next(dev.events, None)
        if ev is None:
            return
        ts = ev.get("ts")
        if type(ts) is int and ts > dev.maxts:
            dev.maxts = ts
        heapq.heappush(heap, (dev.maxts, i, ev))

    def progress(self) -> dict[str, Any]:
        """Counters summed over this process's agents."""
        p: Counter[str] = Counter()
        for dev in self.devices:
            a = dev.agent
            s = a.stats
            p["events"] += s.submitted
            p["records"] += sum(s.records.values())
            p["triggers"] += s.records.get("trigger", 0)
            p["features"] += s.records.get("feature", 0)
            p["windows"] += s.records.get("window", 0)
            p["tasks"] += s.tasks_started
            p["payloads"] += s.payloads
            p["acked"] += len(a.outbox.latencies) + a.outbox.unmeasured
            if a.uploader is not None:
                p["connected"] += a.uploader.connected.is_set()
                p["reconnects"] += max(0, a.uploader.stats.connects - 1)
            p[f"v{a.version}"] += 1
            if a.ranking is not None:
                p["reranks"] += a.ranking.counts["applied"]
        out: dict[str, Any] = dict(p)
        out["sim_ms"] = int(self.clock.time() * 1000)
        out["late_ms"] = round(self.late_ms, 1)
        return out

    async def await_config(self, version: int, within: float) -> bool:
        """Wait up to ``within`` seconds until every device received tasks file ``version`` (or
        a later one) from the endpoint; False if some did not.

        A push the endpoint stores while a device is offline (the endpoint or the device was
        down, e.g. killed by the chaos) reaches the device at its next handshake; closing the
        agents before that would leave the device on the old file until its next start.
        """
        end = time.monotonic() + within
        while time.monotonic() < end:
            if all(_received(d.agent) >= version for d in self.devices):
                return True
            await asyncio.sleep(0.05)
        return False

    async def close(self, drain_timeout: float) -> None:
        """Close every agent (final windows uploaded), waiting for acknowledgements."""
        await asyncio.gather(
            *(d.agent.aclose(close_windows=True, drain_timeout=drain_timeout) for d in self.devices)
        )

    def result(self, cpu_s: float, wall_s: float) -> dict[str, Any]:
        devices = {}
        for d in self.devices:
            a = d.agent
            s = a.stats
            devices[d.name] = {
                "events": a.accepted, "quarantined": s.quarantined, "records": s.records,
                "tasks": s.tasks_started, "payloads": s.payloads, "payload_bytes": s.payload_bytes,
                "raw_bytes": s.events_raw_bytes, "json_bytes": s.uploaded_json_bytes,
                "uploaded_records": s.uploaded_records, "encode_errors": s.encode_errors,
                "latencies": list(a.outbox.latencies), "steady": d.steady, "ages": list(a.outbox.ages),
                "waiting": a.outbox_waiting, "version": a.version, "configs": s.configs_applied,
                "connects": a.uploader.stats.connects if a.uploader else 0,
                "failures": a.uploader.stats.failures if a.uploader else 0,
                "ledger": self.stored_ledger(a.store_path), "acked_ids": a.outbox.acked_ids,
                "reranks": dict(a.ranking.counts) if a.ranking is not None else {},
                "rerank_ms": list(a.ranking.latencies) if a.ranking is not None else [],
                "pulled_bytes": a.bundles.pulled_bytes if a.bundles is not None else 0,
                "served": d.user.stats.as_dict() if d.user is not None else None,
            }  # fmt: skip
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"devices": devices, "cpu_s": cpu_s, "wall_s": wall_s, "max_rss_kb": rss_kb,
                "late_ms": self.late_ms}  # fmt: skip


def _received(agent: Any) -> int:
    """The latest tasks-file version the agent runs or received (applied at its close)."""
    saved: tuple[int, bytes] | None = agent.outbox.load_config()
    return max(int(agent.version), saved[0] if saved is not None else 0)


def with_pages(
    dev: _Device, events: Iterator[dict[str, Any]], feeds: set[str]
) -> Iterator[dict[str, Any]]:
    """Yield the device's events; at each ``page_enter`` of a re-ranked feed, first hand the
    agent the page of that visit (the app fetching its candidates).

    The page holds the items the generated user will be shown in the visit (read ahead up to
    the next ``page_enter`` of a feed or ``app_background``), in that order, with their
    catalogue features (:mod:`streamfeat.ranking._catalogue`): the generated user does not
    react to the order the device shows (the served feed of ``--ranking`` does:
    :mod:`streamfeat.sim._users`), so the page is what the user sees and the re-rank reorders
    its unseen part.
    """
    from streamfeat.ranking._catalogue import page_of

    ahead: list[dict[str, Any]] = []
    visits = 0
    while True:
        ev = ahead.pop(0) if ahead else next(events, None)
        if ev is None:
            return
        feed = ev.get("page")
        if ev.get("type") == "page_enter" and feed in feeds:
            items: list[str] = []
            for nxt in events:
                ahead.append(nxt)
                t = nxt.get("type")
                if t == "app_background" or (t == "page_enter" and nxt.get("page") in feeds):
                    break
                item = str(nxt.get("item"))
                seen = item in items or len(items) >= 100
                if t == "exposure" and nxt.get("page") == feed and "item" in nxt and not seen:
                    items.append(item)
            visits += 1
            dev.agent.set_page(page_of(str(feed), f"{dev.name}-{visits}", items))
        yield ev


async def _lines(loop: asyncio.AbstractEventLoop) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run(spec: dict[str, Any]) -> None:
    """Set up, wait for ``go``, feed, wait for ``drain``, close, write the result."""
    cpu0, wall0 = time.process_time(), time.time()
    loop = asyncio.get_running_loop()
    stdin = await _lines(loop)
    url = (await stdin.readline()).split()  # the simulator starts its endpoint meanwhile
    if len(url) != 2 or url[0] != b"url":
        return
    spec["url"] = url[1].decode()
    worker = Worker(spec)
    await worker.setup()
    # thousands of agents are long-lived objects: keep them out of the collector's full passes,
    # whose pauses would otherwise delay every device's events at once
    gc.collect()
    gc.freeze()
    _say({"ready": len(worker.devices), "setup_s": round(time.time() - wall0, 2)})
    go = (await stdin.readline()).split()
    if not go or go[0] != b"go":
        return
    t0 = float(go[1])
    await asyncio.sleep(max(0.0, t0 - time.time()))
    cpu_feed, wall_feed = time.process_time(), time.time()
    await worker.feed(t0, float(spec.get("progress_every", 0.5)))
    _say({"fed": worker.submitted, "p": worker.progress()})
    feed_cpu, feed_wall = time.process_time() - cpu_feed, time.time() - wall_feed
    drain = (await stdin.readline()).split()  # "drain [VERSION]"
    if len(drain) == 2:  # the tasks file last pushed: every device takes it before closing
        await worker.await_config(int(drain[1]), float(spec.get("drain_timeout", 60)))
    t_close = time.time()
    await worker.close(float(spec.get("drain_timeout", 60)))
    close_s = time.time() - t_close
    result = worker.result(time.process_time() - cpu0, time.time() - wall0)
    result["feed_cpu_s"], result["feed_wall_s"], result["close_s"] = feed_cpu, feed_wall, close_s
    path = Path(spec["result_path"])
    await asyncio.to_thread(path.write_bytes, msgpack.packb(result, use_bin_type=True))
    _say({"done": str(path)})


def main(argv: list[str] | None = None) -> int:
    """Run one fleet process from the JSON spec file named on the command line."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    asyncio.run(run(spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
