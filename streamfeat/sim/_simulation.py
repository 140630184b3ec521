"""The fleet simulator: an endpoint and N agents, with faults, and an end-to-end audit.

Theory of operation
-------------------
:class:`Simulation` prepares a work directory (a temporary one by default): the endpoint's key
and SQLite file, and one key pair per device, written owner-only (0600) and registered in the
endpoint's registry. It starts the endpoint (``python -m streamfeat.sim._endpoint`` on
127.0.0.1, port 0) unless a server is given, and ``processes`` fleet processes
(``python -m streamfeat.sim._fleet``), each running its share of the devices as
:class:`~streamfeat.agent.Agent` objects on one loop, fed by the behaviour generator in
accelerated event time (``speed`` times real time; 0: as fast as possible).

With ``chaos`` the devices reach the endpoint through a :class:`~streamfeat.sim._chaos.ChaosProxy`
that resets random connections every one to two seconds, and the endpoint process is killed
(SIGKILL, no goodbye) and restarted on the same port every few seconds; with ``server`` and
``server_pids`` (an endpoint run as ``serve --workers N --pid-file``), one of its worker
processes is killed instead, its supervisor restarts it and the others serve meanwhile
(``server_db`` may then be a ``postgresql://`` URL). A fleet process (all its agents at once)
is killed with SIGKILL at random moments too and started again on the same device stores,
resuming each device's events after the last one its agent accepted. Faults stop once every
event has been fed; then the agents close (their last windows are uploaded) and wait for the
acknowledgements.

The audit: every agent keeps a digest of each record it put in its outbox (its *ledger*); after
the endpoint has stopped, every batch it stored is split into items and decoded with
:func:`streamfeat.encoders.decode_batch` (with the schema sets of every tasks file the run
used), and the digests are counted per device. ``lost`` counts records queued but not stored,
``doubled`` records stored more often than queued; both must be 0.

Live reconfiguration: ``reconfigure`` lists ``(minute, tasks text)``; when every fleet process's
clock has passed that simulated minute, the tasks file is pushed to every device through the
endpoint (tunnel downlink), as version 1, 2, ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from streamfeat._log import agent_log
from streamfeat.gen._generator import device_id
from streamfeat.sim._audit import percentile
from streamfeat.sim._options import Progress, SimOptions, SimReport
from streamfeat.sim._procs import ChildProcess, spawn

__all__ = ["SimOptions", "SimReport", "Simulation", "percentile", "simulate"]


def _stores_fit(shm: Path, devices: int, bundle_mb: float) -> bool:
    """Whether N device stores fit in memory-backed ``shm`` with room to spare: a device's
    store with its write-ahead log takes up to ~4 MB, and a released bundle twice its size
    (kept in the store and unpacked beside it). /dev/shm is RAM that the fleet processes
    need too, so at most a quarter of the memory available is used."""
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return False
    need = devices * (4.0 + 2.0 * bundle_mb) * 2**20
    try:
        st = os.statvfs(shm)
        free = st.f_bavail * st.f_frsize
        with open("/proc/meminfo", encoding="ascii") as f:
            avail = next(int(x.split()[1]) * 1024 for x in f if x.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return False
    return need <= min(free, avail) / 4


class Simulation:
    """One run of the fleet simulator (see the module docstring).

    Args:
        options: what to simulate.
        on_progress: called about twice a second with the fleet's summed counters and the
            run's state (``phase``, ``elapsed``, ``restarts``, ``cuts``, ``pushed``).
    """

    def __init__(
        self, options: SimOptions, on_progress: Callable[[Progress], None] | None = None
    ) -> None:
        if options.devices < 1 or options.minutes <= 0 or options.speed < 0:
            msg = f"need devices >= 1, minutes > 0 and speed >= 0, got {options.devices}, {options.minutes}, {options.speed}"
            raise ValueError(msg)
        if options.server is not None and options.server_db is None:
            msg = "a --server needs its --server-db (the registry the devices are added to)"
            raise ValueError(msg)
        if options.ranking:
            from dataclasses import replace

            from streamfeat.sim._served import parse_mode, served_tasks_text

            if options.chaos or options.reconfigure or options.release is not None:
                msg = "--ranking runs without --chaos, --reconfigure and --release"
                raise ValueError(msg)
            text = served_tasks_text(parse_mode(options.ranking), options.rerank_policy)
            options = replace(options, tasks_text=text)
        if not options.tasks_text:
            from dataclasses import replace

            from streamfeat.data import default_tasks_text

            options = replace(options, tasks_text=default_tasks_text())
        self.options = options
        self.on_progress = on_progress
        self.rng = random.Random(f"streamfeat.simulate:{options.seed}")
        self.report = SimReport(
            devices=options.devices, minutes=options.minutes, speed=options.speed
        )
        self.phase = "setup"
        self._endpoint: ChildProcess | None = None
        self._endpoint_port = 0
        self._proxy: Any = None
        self._progress: dict[int, Progress] = {}
        self._t0 = 0.0
        self._configs: list[str] = []
        self._restarting: asyncio.Future[None] | None = None
        self._workers: list[ChildProcess] = []
        self._shares: list[list[tuple[str, str]]] = []
        self._respawning: dict[int, asyncio.Future[None]] = {}
        self._fed: set[int] = set()
        self._url = ""
        self._killing: asyncio.Future[None] | None = None
        self._progressed = asyncio.Event()
        self._pushes: list[tuple[int, str]] = []
        self._release: Any = None  # a ReleaseRun with --release
        self._release_key = ""

    # -- setup ----------------------------------------------------------------------------

    def _prepare(self, work: Path) -> list[tuple[str, str]]:
        """Create the endpoint key and the device keys (0600) and register the devices."""
        from streamfeat.endpoint._registry import endpoint_keypair, write_key_file
        from streamfeat.tunnel._crypto import KeyPair

        o = self.options
        keys = work / "keys"
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        from streamfeat.endpoint._backend import open_registry
        from streamfeat.endpoint._postgres import is_postgres_url

        db = str(o.server_db) if o.server_db else str(work / "endpoint.sqlite")
        self.db = db
        if o.server_key:
            self.key_path = Path(o.server_key)
        elif is_postgres_url(db):
            msg = "a postgresql:// --server-db needs --server-key (the endpoint's key file)"
            raise ValueError(msg)
        else:
            self.key_path = Path(db).with_name("endpoint.key")
        self.endpoint_key = endpoint_keypair(self.key_path, create=o.server is None)
        prefix = "" if o.server is None else f"sim{os.getpid()}-{int(time.time())}-"
        devices, rows = [], []
        now = time.time()
        for i in range(o.devices):
            name = prefix + device_id(i)
            kp = KeyPair.generate(os.urandom)
            path = keys / f"{name}.key"
            write_key_file(path, {"kind": "streamfeat-device", "device": name, "private_key": kp.private.hex(),
                                  "public_key": kp.public.hex(), "endpoint_public_key": self.endpoint_key.public.hex()})  # fmt: skip
            devices.append((name, str(path)))
            rows.append((name, kp.public))
        registry = open_registry(self.db)
        try:  # one transaction for the whole fleet, not one fsync per device
            registry.add_many(rows, now=now)
        finally:
            registry.close()
        return devices

    async def _start_endpoint(self, work: Path, port: int) -> None:
        args = [
            "-m",
            "streamfeat.sim._endpoint",
            "--db",
            str(self.db),
            "--key",
            str(self.key_path),
            "--port",
            str(port),
        ]
        for attempt in range(50):
            proc = await spawn(args, "endpoint", work / "endpoint.log")
            try:
                msg = await proc.expect("listening", 20)
            except RuntimeError:
                if attempt == 49 or port == 0:
                    raise
                await asyncio.sleep(0.1)  # the old process's port is not free yet
                continue
            self._endpoint, self._endpoint_port = proc, int(msg["listening"])
            for version, text in self._pushes:  # a push it may have missed while down
                await self._send_push(version, text)
            return

    async def _stop_endpoint(self) -> None:
        proc = self._endpoint
        if proc is None:
            return
        self.report.endpoint_cpu_s = round(self.report.endpoint_cpu_s + _cpu_s(proc.proc.pid), 2)
        self._endpoint = None
        with contextlib.suppress(Exception):
            assert proc.proc.stdin is not None
            proc.proc.stdin.close()
        try:
            await asyncio.wait_for(proc.proc.wait(), 20)
        except TimeoutError:
            proc.proc.kill()
            await proc.proc.wait()

    async def _start_workers(
        self, work: Path, devices: list[tuple[str, str]]
    ) -> list[ChildProcess]:
        o = self.options
        n = max(1, min(o.processes or os.cpu_count() or 1, len(devices)))
        self.report.processes = n
        self._shares = [devices[w::n] for w in range(n)]
        self._workers = [await self._spawn_worker(work, w) for w in range(n)]
        return self._workers

    async def _spawn_worker(self, work: Path, w: int, *, resume: bool = False) -> ChildProcess:
        o = self.options
        store_dir = self._stores_root / f"p{w}"
        store_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "worker": w, "devices": self._shares[w], "tasks": o.tasks_text,
            "endpoint_key": self.endpoint_key.public.hex(), "minutes": o.minutes, "seed": o.seed,
            "speed": o.speed, "start_ts": o.start_ts, "store_dir": str(store_dir), "tick": o.tick,
            "result_path": str(work / f"result-p{w}.msgpack"), "drain_timeout": o.drain_timeout,
            "resume": resume, "release_key": self._release_key or None,
            "ranking": o.ranking or None,
        }  # fmt: skip
        spec_path = work / f"spec-p{w}.json"
        fd = os.open(spec_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(spec, fh)
        return await spawn(
            ["-m", "streamfeat.sim._fleet", str(spec_path)],
            f"fleet process {w}",
            work / f"fleet-p{w}.log",
        )

    def _dirs(self) -> tuple[Path, Path | None, Path | None]:
        """Return the work dir, and the temporary dirs to delete at the end."""
        o = self.options
        tmp = None if o.workdir is not None else Path(tempfile.mkdtemp(prefix="streamfeat-sim-"))
        work = Path(o.workdir) if o.workdir is not None else tmp
        assert work is not None
        work.mkdir(parents=True, exist_ok=True)
        self.report.workdir = str(work) if o.workdir else ""
        # The device stores stand for N phones' own flash, not one shared disk: in a temporary
        # run they go to memory (/dev/shm) when it is there and they fit, so that N devices'
        # fsyncs do not queue on one disk; the endpoint's database stays on disk, its fsyncs
        # are real.
        shm = Path("/dev/shm")
        stores_tmp = None
        bundle_mb = float(getattr(o.release, "bundle_mb", 0.0) or 0.0)
        if o.workdir is None and _stores_fit(shm, o.devices, bundle_mb):
            stores_tmp = Path(tempfile.mkdtemp(prefix="streamfeat-sim-stores-", dir=shm))
        self._stores_root = stores_tmp or work / "stores"
        return work, tmp, stores_tmp

    # -- running --------------------------------------------------------------------------

    async def run(self) -> SimReport:
        """Run the whole simulation and return its report.

        Raises:
            RuntimeError: a child process died before finishing its part.
        """
        o = self.options
        started = time.time()
        work, tmp, stores_tmp = await asyncio.to_thread(self._dirs)
        self._configs = [o.tasks_text] + [text for _, text in o.reconfigure]
        workers: list[ChildProcess] = []
        try:
            if (
                o.ranking
            ):  # the tasks file the devices ran: `streamfeat train --tasks` decodes with it
                (work / "tasks.toml").write_text(o.tasks_text, encoding="utf-8")
            devices = self._prepare(work)
            self.device_names = [d for d, _ in devices]
            if o.release is not None:
                from streamfeat.sim._release import ReleaseRun

                self._release = ReleaseRun(o.release, self.db, work / "keys", o.tasks_text, o.seed)
                self._release_key = self._release.prepare()
                self._configs.append(self._release.bundle_text)  # the audit decodes its records
            workers = await self._start_workers(
                work, devices
            )  # they import while the endpoint starts
            url = self._url = await self._endpoint_url(work)
            for w in workers:
                await w.send(f"url {url}")
            await asyncio.gather(*(w.expect("ready", 120 + o.devices / 10) for w in workers))
            self.report.setup_s = round(time.time() - started, 2)
            results = await self._drive(work, self._workers)
            await self._stop_endpoint()
            from streamfeat.sim._audit import audit, summarise

            summarise(self.report, results, self._proxy.cuts if self._proxy is not None else 0)
            audit(self.report, results, self.db, self._configs)
            if o.ranking:
                from streamfeat.sim._served import fill_ranking

                fill_ranking(self.report, results, o)
            if self._release is not None:
                pulled = sum(
                    d.get("pulled_bytes", 0) for r in results for d in r["devices"].values()
                )
                self.report.release = self._release.report(pulled, o.devices)
        finally:
            for w in self._workers:
                if w.proc.returncode is None:
                    w.proc.kill()
                    await w.proc.wait()
            if self._proxy is not None:
                await self._proxy.aclose()
            await self._stop_endpoint()
            for path in (tmp, stores_tmp):
                if path is not None:
                    shutil.rmtree(path, ignore_errors=True)
        self.report.wall_s = round(time.time() - started, 2)
        return self.report

    async def _endpoint_url(self, work: Path) -> str:
        o = self.options
        if o.server is not None:
            host, port = _host_port(o.server)
        else:
            await self._start_endpoint(work, 0)
            host, port = "127.0.0.1", self._endpoint_port
        if o.chaos:
            from streamfeat.sim._chaos import ChaosProxy

            self._proxy = ChaosProxy(host, port, rng=random.Random(self.rng.random()))
            await self._proxy.start()
            host, port = "127.0.0.1", self._proxy.port
        return f"ws://{host}:{port}/v1/tunnel"

    async def _drive(self, work: Path, workers: list[ChildProcess]) -> list[dict[str, Any]]:
        self._t0 = time.time() + 0.3
        for w in workers:
            await w.send(f"go {self._t0!r}")
        self.phase = "feeding"
        fed = [asyncio.create_task(self._follow(i)) for i in range(len(workers))]
        side = [asyncio.create_task(self._reconfigure_loop())]
        if self._release is not None:
            side.append(asyncio.create_task(self._release.run(self.device_names, self._t0)))
        if self.options.chaos:
            side.append(asyncio.create_task(self._chaos_loop(work)))
        ticker = asyncio.create_task(self._tick_progress())
        try:
            await asyncio.gather(*fed)
            self.report.feed_wall_s = round(time.time() - self._t0, 2)
            # a fleet process restarted after a kill may feed its rest at once: pushes whose
            # minute every process has now passed still go out before the drain
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(side[0]), 10)
            for t in side:
                t.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            if self._restarting is not None:
                await self._restarting  # a restart cut short by the end of feeding completes first
            if self._killing is not None:
                await self._killing
            if self.options.server is None and self._endpoint is None:
                await self._start_endpoint(work, self._endpoint_port)  # chaos had it down
            self.phase = "draining"
            # a push the endpoint got while a device was offline reaches it at its next
            # handshake, maybe after this: the devices wait for it before they close
            last = (
                max((v for v, _ in self._pushes), default=0) if self.options.server is None else 0
            )
            for w in self._workers:
                await w.send(f"drain {last}" if last else "drain")
            done = await asyncio.gather(
                *(w.expect("done", self.options.drain_timeout + 120) for w in self._workers)
            )
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self.phase = "audit"
        self._emit_progress()
        blobs = [await asyncio.to_thread(Path(d["done"]).read_bytes) for d in done]
        return [msgpack.unpackb(b, raw=False) for b in blobs]

    async def _follow(self, index: int) -> None:
        """Take a fleet process's progress messages until it has fed every event (following
        the process that replaces it after a chaos kill)."""
        while True:
            try:
                msg = await self._workers[index].expect("p", 3600)
            except RuntimeError:  # it exited: killed by chaos (else the error stands)
                respawn = self._respawning.get(index)
                if respawn is None:
                    raise
                await respawn
                continue
            self._progress[index] = msg["p"]
            self._progressed.set()
            if "fed" in msg:
                self._fed.add(index)
                return

    async def _tick_progress(self) -> None:
        while True:
            self._emit_progress()
            await asyncio.sleep(0.5)

    def _emit_progress(self) -> None:
        if self.on_progress is None:
            return
        total: Counter[str] = Counter()
        for p in self._progress.values():
            total.update({k: v for k, v in p.items() if isinstance(v, int) and k != "sim_ms"})
        sims = [p.get("sim_ms", self.options.start_ts) for p in self._progress.values()]
        snapshot = dict(total) | {
            "phase": self.phase, "elapsed": time.time() - self._t0 if self._t0 else 0.0,
            "sim_minutes": (min(sims) - self.options.start_ts) / 60_000 if sims else 0.0,
            "restarts": self.report.endpoint_restarts, "cuts": self._proxy.cuts if self._proxy else 0,
            "pushed": self.report.configs_pushed, "devices": self.options.devices,
            "minutes": self.options.minutes,
        }  # fmt: skip
        self.on_progress(snapshot)

    async def _reconfigure_loop(self) -> None:
        for version, (minute, text) in enumerate(self.options.reconfigure, start=1):
            target = self.options.start_ts + minute * 60_000
            while (
                len(self._progress) < self.report.processes
                or min(p["sim_ms"] for p in self._progress.values()) < target
            ):
                self._progressed.clear()
                await self._progressed.wait()
            await self.push_config(version, text)

    async def push_config(self, version: int, text: str) -> None:
        """Send tasks file ``text`` as ``version`` to every device.

        Our endpoint stores it (for devices not connected) and sends it down the open
        connections at once; if chaos has it down, or kills it before it read the request, the
        request is sent again when it is back (idempotent: a device keeps the highest version).
        The simulator never writes the endpoint's database itself while the endpoint runs.
        With ``server``, the config is written to ``server_db`` and goes out on each device's
        next connection.
        """
        self._pushes.append((version, text))
        if self.options.server is not None:
            await asyncio.to_thread(self._store_config, version, text)
        elif self._endpoint is not None:
            await self._send_push(version, text)
        self.report.configs_pushed += 1

    async def _send_push(self, version: int, text: str) -> None:
        assert self._endpoint is not None
        with contextlib.suppress(
            OSError, RuntimeError
        ):  # killed meanwhile: sent again after the restart
            await self._endpoint.send(
                json.dumps(
                    {"push": {"devices": self.device_names, "version": version, "body": text}}
                )
            )

    def _store_config(self, version: int, text: str) -> None:
        from streamfeat.endpoint._backend import open_storage

        storage = open_storage(self.db)
        try:
            for d in self.device_names:
                storage.set_config(d, version, text.encode())
        finally:
            storage.close()

    async def _chaos_loop(self, work: Path) -> None:
        """Reset 5% of the connections every 1-3 s; kill and restart the endpoint every quarter
        to two fifths of the expected run (at least every 3-6 s)."""
        o, rng = self.options, self.rng
        expected = o.minutes * 60 / o.speed if o.speed > 0 else 10.0
        now = time.time()
        next_cut = now + rng.uniform(0.5, 1.5)
        next_restart = now + max(1.0, expected * 0.25)
        next_kill = now + max(1.5, expected * 0.15)
        while True:
            now = time.time()
            if now >= next_kill and o.kill_agents:
                self._killing = asyncio.ensure_future(self._kill_fleet_process(work))
                await asyncio.shield(self._killing)
                next_kill = time.time() + rng.uniform(
                    max(2.0, expected * 0.2), max(4.0, expected * 0.35)
                )
            if now >= next_cut:
                self._proxy.cut(0.05)
                next_cut = now + rng.uniform(1.0, 3.0)
            if now >= next_restart and (o.server is None or o.server_pids is not None):
                if o.server is None:
                    self._restarting = asyncio.ensure_future(self._restart(work))
                    await asyncio.shield(self._restarting)
                else:
                    self._kill_server_worker()
                next_restart = time.time() + rng.uniform(
                    max(3.0, expected * 0.25), max(6.0, expected * 0.4)
                )
            await asyncio.sleep(0.05)

    def _kill_server_worker(self) -> None:
        """SIGKILL one worker process of a ``--server`` run with ``serve --workers N``; its
        supervisor starts it again while the other workers serve."""
        assert self.options.server_pids is not None
        try:
            pids = json.loads(Path(self.options.server_pids).read_text())["workers"]
        except (OSError, ValueError, KeyError) as exc:
            agent_log.warning("chaos: no endpoint worker to kill (%s)", exc)
            return
        if not pids:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.rng.choice(pids), signal.SIGKILL)
            self.report.endpoint_restarts += 1

    async def _kill_fleet_process(self, work: Path) -> None:
        """SIGKILL one fleet process still feeding (every agent in it at once), then start it
        again on the same stores; it resumes each device after its last accepted event."""
        feeding = [i for i in range(len(self._workers)) if i not in self._fed]
        if not feeding:
            return
        i = self.rng.choice(feeding)
        self._respawning[i] = asyncio.get_running_loop().create_future()
        try:
            old = self._workers[i]
            old.proc.kill()
            await old.proc.wait()
            self.report.agent_kills += 1
            new = await self._spawn_worker(work, i, resume=True)
            self._workers[i] = new
            await new.send(f"url {self._url}")
            await new.expect("ready", 120 + self.options.devices / 10)
            await new.send(f"go {self._t0!r}")
        finally:
            self._respawning.pop(i).set_result(None)

    async def _restart(self, work: Path) -> None:
        proc, self._endpoint = self._endpoint, None
        if proc is not None:
            self.report.endpoint_cpu_s += _cpu_s(proc.proc.pid)
            proc.proc.kill()  # SIGKILL: no shutdown, no goodbye to the devices
            await proc.proc.wait()
        self.report.endpoint_restarts += 1
        await asyncio.sleep(self.rng.uniform(0.2, 0.8))
        await self._start_endpoint(work, self._endpoint_port)

    # -- the report -----------------------------------------------------------------------


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a running process (Linux /proc; 0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        msg = f"server URL must be ws://HOST:PORT/v1/tunnel, got {url!r}"
        raise ValueError(msg)
    return parts.hostname, parts.port


def simulate(
    options: SimOptions, on_progress: Callable[[Progress], None] | None = None
) -> SimReport:
    """Run a simulation to the end (see :class:`Simulation`) and return its report."""
    return asyncio.run(Simulation(options, on_progress).run())
