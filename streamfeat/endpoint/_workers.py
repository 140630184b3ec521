"""Several endpoint processes on one port (``streamfeat serve --workers N``).

Theory of operation
-------------------
A supervisor process reserves the port (a socket bound with ``SO_REUSEPORT`` that never
listens, so it takes no connections), then starts N worker processes. Each worker is a full
endpoint (:class:`~streamfeat.endpoint._server.TunnelServer` over aiohttp) with its own listening
socket on that port, also ``SO_REUSEPORT``: the kernel spreads incoming connections over the
listening workers, and a worker that dies simply stops getting any. The workers share nothing
but the database: PostgreSQL holds the registry, the batches (exactly once by primary key), the
configs and the first-message replay cache, so each worker takes any device. SQLite cannot
share the replay cache between processes: ``--workers`` above 1 needs a ``postgresql://``
database.

* **Limits.** ``serve``'s limit options (handshake deadline, caps on connections not yet
  authenticated, window, quota, revocation poll) go to every worker (``--limits`` JSON), and
  each worker listens through the same admission guard as a single ``serve`` process; the caps
  and the quota's in-memory count are per worker.
* **Restarts.** A worker that exits without being asked (a crash, ``kill -9``) is started
  again by the supervisor, on the same port; devices connected to it reconnect (to any worker)
  and send again what was not acknowledged. A worker that keeps dying within a second of its
  start five times in a row stops the supervisor (exit 1) rather than looping.
* **Health and metrics.** ``/healthz`` is answered by whichever worker takes the connection
  (200 while it serves). ``/metrics`` on any worker returns every worker's series, each with a
  ``worker`` label: workers write their own exposition to a shared directory every second (and
  the answering worker renders its own fresh), so the others' figures are at most a second old.
  A replaced worker's counters restart from 0 (a counter reset, which Prometheus handles).
* **Shutdown.** SIGTERM or SIGINT to the supervisor: SIGTERM to every worker, each shutting down
  gracefully (stores and acknowledges what it received, closes connections with 1001), then
  the supervisor exits; a worker still running after 30 seconds is killed.
* **Releases and config pushes.** Every worker serves the release routes (bundle pulls,
  device reports) from the shared database, so a device pulls from whichever worker takes its
  request, and every worker polls the database's downlink queue every second
  (:mod:`~streamfeat.endpoint._downlink`) and pushes new announcements and configs down the
  connections it holds: a ``release rollout`` or ``device config`` reaches the devices of every
  worker within about a second. The pull limit (``503`` + ``Retry-After`` beyond 64 pulls at
  once) is per worker.
* **Pid file.** With ``pid_file``, the supervisor keeps ``{"supervisor": PID, "workers": [PID,
  ...]}`` up to date (the fleet simulator's chaos reads it to kill one worker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamfeat._log import server_log
from streamfeat.endpoint._backend import decoder_for, open_backend
from streamfeat.endpoint._limits import Limits
from streamfeat.endpoint._metrics import CONTENT_TYPE_LATEST
from streamfeat.endpoint._postgres import is_postgres_url

__all__ = ["open_backend", "run_supervisor", "serve_worker"]

_METRICS_EVERY = 1.0


def merge_expositions(texts: dict[str, str]) -> bytes:
    """One Prometheus exposition from several workers' (``worker`` label added to each sample)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Metric] = {}
    for worker, text in sorted(texts.items()):
        for fam in text_string_to_metric_families(text):
            merged = families.get(fam.name)
            if merged is None:
                merged = families[fam.name] = Metric(fam.name, fam.documentation, fam.type)
            for s in fam.samples:
                merged.samples.append(s._replace(labels={**s.labels, "worker": worker}))

    class _Merged:
        def collect(self) -> list[Metric]:
            return list(families.values())

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Merged())
    return generate_latest(reg)


def _sibling_expositions(metrics_dir: Path, worker: str) -> dict[str, str]:
    texts = {}
    for f in metrics_dir.glob("*.prom"):
        name = f.name[: -len(".prom")]
        if name != worker:
            with contextlib.suppress(OSError):
                texts[name] = f.read_text()
    return texts


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def serve_worker(
    *,
    host: str,
    port: int,
    db: str,
    key_path: Path,
    decoder: Any = None,
    worker: str | None = None,
    metrics_dir: Path | None = None,
    reuse_port: bool = False,
    ready: Callable[[str, int], None] | None = None,
    admin_token: str | None = None,
    limits: Limits | None = None,
) -> None:
    """Run one endpoint until SIGINT/SIGTERM, then shut down gracefully.

    Args:
        host, port: where to listen (``reuse_port``: share the port with sibling workers).
        db: SQLite path or ``postgresql://`` URL.
        key_path: the endpoint key file (created 0600 if absent).
        decoder: ``bytes -> records`` for the stored batches' records (optional).
        worker: this worker's name (the ``worker`` label of its metrics), with ``metrics_dir``
            the directory the workers share their expositions through.
        ready: called with the bound host and port once listening.
        admin_token: the token the operator routes require (None: loopback clients only).
        limits: deadlines, caps, window and quota (``serve``'s limit options), enforced by
            the same admission guard as a single ``serve`` process.
    """
    from aiohttp import web

    from streamfeat.endpoint._guard import install_accept_error_handler
    from streamfeat.endpoint._registry import endpoint_keypair
    from streamfeat.endpoint._release_routes import ReleaseRoutes
    from streamfeat.endpoint._server import GuardedSite, TunnelServer

    registry, storage, cache = open_backend(db)

    class _Server(TunnelServer):
        async def _metrics(self, request: web.Request) -> web.Response:
            body = self.metrics.render()
            if worker is not None and metrics_dir is not None:
                # a few small local files: read inline rather than hop to a thread
                texts = _sibling_expositions(metrics_dir, worker)
                texts[worker] = body.decode()
                body = merge_expositions(texts)
            resp = web.Response(body=body)
            resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
            return resp

    server = _Server(
        key=endpoint_keypair(key_path),
        registry=registry,
        storage=storage,
        replay_cache=cache,
        decoder=decoder,
        admin_token=admin_token,
        limits=limits,
    )
    install_accept_error_handler(asyncio.get_running_loop(), server.metrics.accept_errors.inc)
    app = server.app()
    ReleaseRoutes(server, db).install(app)  # bundle pulls, reports, the downlink queue poller
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = GuardedSite(runner, host, port, server=server, reuse_port=reuse_port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    server_log.warning(
        "serving on http://%s:%d%s", host, bound, f" (worker {worker})" if worker else ""
    )
    if ready is not None:
        ready(host, bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    publisher = None
    if worker is not None and metrics_dir is not None:
        mine = metrics_dir / f"{worker}.prom"

        async def publish() -> None:
            while True:
                with contextlib.suppress(OSError):
                    _write_atomic(mine, server.metrics.render())
                await asyncio.sleep(_METRICS_EVERY)

        publisher = asyncio.create_task(publish())
    try:
        await stop.wait()
    finally:
        if publisher is not None:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
        await runner.cleanup()
        close = getattr(cache, "close", None)
        if close is not None:
            close()


# ---- the supervisor -----------------------------------------------------------------------


class _Child:
    def __init__(self, index: int, argv: list[str]) -> None:
        self.index = index
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.quick_deaths = 0

    def wait_ready(self, timeout: float) -> bool:
        assert self.proc.stdout is not None
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        t.daemon = True
        t.start()
        t.join(timeout)
        ok = bool(result) and result[0].startswith("ready")
        if ok:
            # keep draining: a worker must never block on a full stdout pipe
            threading.Thread(target=self._drain, daemon=True).start()
        return ok

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass


def _reserve_port(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    return s


def run_supervisor(
    *,
    workers: int,
    host: str,
    port: int,
    db: str,
    key_path: Path,
    tasks: Sequence[str] | None = None,
    pid_file: Path | None = None,
    ready: Callable[[str, int], None] | None = None,
    limits: Limits | None = None,
) -> int:
    """Run ``workers`` endpoint processes on one port until SIGTERM/SIGINT; return the exit code.

    ``limits`` (``serve``'s limit options) go to every worker.

    Raises:
        StorageError: ``db`` is SQLite (``workers > 1`` needs PostgreSQL) or cannot be opened.
    """
    from streamfeat.endpoint._postgres import PostgresStorage
    from streamfeat.endpoint._registry import endpoint_keypair
    from streamfeat.errors import StorageError

    if workers > 1 and not is_postgres_url(db):
        msg = (
            "--workers above 1 needs a shared postgresql:// --db (the replay cache and the "
            "batches must be shared by the processes); SQLite serves one process"
        )
        raise StorageError(msg)
    if is_postgres_url(db):
        PostgresStorage(db).close()  # fail here, once, if unreachable; migrate before forking
    endpoint_keypair(key_path)  # created once, before N processes could race to create it
    reserved = _reserve_port(host, port)
    bound = int(reserved.getsockname()[1])
    metrics_dir = Path(tempfile.mkdtemp(prefix="streamfeat-metrics-"))
    stop = threading.Event()
    children: dict[int, _Child] = {}

    def argv(k: int) -> list[str]:
        a = [sys.executable, "-m", "streamfeat.endpoint._workers", "--host", host]
        a += ["--port", str(bound), "--db", db, "--key", str(key_path), "--worker", str(k)]
        a += ["--metrics-dir", str(metrics_dir)]
        if limits is not None:
            a += ["--limits", json.dumps(dataclasses.asdict(limits))]
        for t in tasks or ():
            a += ["--tasks", t]
        return a

    def write_pids() -> None:
        if pid_file is not None:
            data = {"supervisor": os.getpid(), "port": bound}
            data["workers"] = [c.proc.pid for _, c in sorted(children.items())]  # type: ignore[assignment]
            _write_atomic(pid_file, json.dumps(data).encode())

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        for k in range(workers):
            children[k] = _Child(k, argv(k))
        for c in children.values():
            if not c.wait_ready(60):
                msg = f"endpoint worker {c.index} did not start (see its log output)"
                raise StorageError(msg)
        write_pids()
        if ready is not None:
            ready(host, bound)
        while not stop.wait(0.1):
            for k, c in list(children.items()):
                rc = c.proc.poll()
                if rc is None:
                    continue
                quick = time.monotonic() - c.started < 1.0
                deaths = c.quick_deaths + 1 if quick else 0
                if deaths >= 5:
                    server_log.error("endpoint worker %d keeps dying (exit %s): stopping", k, rc)
                    code = 1
                    stop.set()
                    break
                server_log.warning("endpoint worker %d exited (%s): starting it again", k, rc)
                fresh = _Child(k, argv(k))
                fresh.quick_deaths = deaths
                children[k] = fresh
                if fresh.wait_ready(60):
                    write_pids()
    finally:
        for c in children.values():
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for c in children.values():
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
        reserved.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
        for s, h in old.items():
            signal.signal(s, h)
    return code


def _limits_arg(text: str) -> Limits:
    try:
        limits = Limits(**json.loads(text))
        limits.check()
    except (ValueError, TypeError) as exc:
        msg = f"--limits: {exc}"
        raise argparse.ArgumentTypeError(msg) from exc
    return limits


def main(argv: Sequence[str] | None = None) -> int:
    """One worker process (started by the supervisor), or with ``--workers N`` a supervisor."""
    import logging

    p = argparse.ArgumentParser(prog="python -m streamfeat.endpoint._workers")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--worker")
    p.add_argument("--metrics-dir", type=Path)
    p.add_argument("--tasks", action="append")
    p.add_argument("--workers", type=int, help="run a supervisor of N workers")
    p.add_argument("--pid-file", type=Path)
    p.add_argument("--limits", type=_limits_arg, help="JSON of Limits fields (serve's options)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.workers:

        def listening(host: str, port: int) -> None:
            print(f"listening on http://{host}:{port}", flush=True)

        return run_supervisor(
            workers=args.workers,
            host=args.host,
            port=args.port,
            db=args.db,
            key_path=args.key,
            tasks=args.tasks,
            pid_file=args.pid_file,
            ready=listening,
            limits=args.limits,
        )

    def ready(host: str, port: int) -> None:
        print(f"ready {port}", flush=True)

    asyncio.run(
        serve_worker(
            host=args.host,
            port=args.port,
            db=args.db,
            key_path=args.key,
            decoder=decoder_for(args.tasks),  # same schemas as `serve --tasks`
            worker=args.worker,
            metrics_dir=args.metrics_dir,
            reuse_port=args.worker is not None,
            ready=ready,
            limits=args.limits,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
