"""Scale-out benchmark: replay on a Dask cluster, the endpoint on PostgreSQL with N processes.

Replay (one generated log of >= 2,000,000 events; ``--quick``: 20,000):

* single-process ``run_replay`` (the reference), then the partitioned replay on a
  ``distributed.LocalCluster`` of 1 and of 2 worker processes (cluster start-up timed apart),
  unordered and ``--ordered``; the speed-up of 2 workers over 1;
* the per-worker overhead of reading the whole input (each partition reads every line and
  keeps its own): a scan of the log through ``route`` alone, per line;
* the merge of the parts (``--ordered``) per output line;
* from those, a projection of 100 million events on 16 workers:
  ``scan(100M) + engine(100M) / 16 + merge(output of 100M)`` (start-up excluded), where the
  engine cost per event is what the 1-worker run spent beyond its scan.

Endpoint (same fleet, same run): 200 devices each keeping 4 batches of 512 B in flight for
10 s (``--quick``: 40 devices, 3 s) against ``streamfeat serve`` on SQLite (1 process), and on
PostgreSQL (a server started here, fsync on) with 1 and with 2 endpoint processes on one port;
batches/s acknowledged and send -> ack latency p50 / p99.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _harness import ROOT, Context, Row

sys.path.insert(0, str(ROOT))

G = "scale"


# ---- replay ------------------------------------------------------------------------------


def _scan_seconds(log: Path, parts: int) -> tuple[float, int]:
    from streamfeat.replay import route

    t0 = time.perf_counter()
    n = 0
    with log.open("rb") as fh:
        for line in fh:
            route(line, parts)
            n += 1
    return time.perf_counter() - t0, n


def _replay_rows(ctx: Context) -> list[Row]:
    import distributed

    from streamfeat.data import default_tasks_text
    from streamfeat.replay import ClusterReplayOptions, run_cluster_replay
    from streamfeat.replay._replay import ReplayOptions, run_replay
    from streamfeat.tasks import parse_tasks

    log = ctx.generated_log(20_000 if ctx.quick else 2_000_000)
    cfg = parse_tasks(default_tasks_text(), source="<default tasks>")
    out = ctx.tmp / "scale-out"
    out.mkdir(exist_ok=True)
    rows: list[Row] = []
    t0 = time.perf_counter()
    single = run_replay(ReplayOptions(events=str(log), config=cfg, out=str(out / "single.jsonl")))
    t_single = time.perf_counter() - t0
    n = single.events
    rows.append(
        Row(G, f"replay: 1 process ({n:,} events)", n / t_single, "events/s", note="reference")
    )
    scan, lines = _scan_seconds(log, 2)
    results: dict[tuple[int, bool], float] = {}
    for workers in (1, 2):
        c0 = time.perf_counter()
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
        client = distributed.Client(cluster)
        startup = time.perf_counter() - c0
        try:
            for ordered in (False, True):
                target = out / f"c{workers}-{ordered}.jsonl"
                t0 = time.perf_counter()
                run_cluster_replay(
                    ClusterReplayOptions((str(log),), cfg, str(target), ordered=ordered),
                    client=client,
                )
                results[(workers, ordered)] = time.perf_counter() - t0
                if ordered:
                    same = target.read_bytes() == (out / "single.jsonl").read_bytes()
                    assert same, "ordered cluster replay differs from the single process"
                target.unlink()
        finally:
            client.close()
            cluster.close()
        rows.append(Row(G, f"replay: LocalCluster start, {workers} workers", startup, "s"))
    for ordered in (False, True):
        tag = ", --ordered" if ordered else ""
        t1, t2 = results[(1, ordered)], results[(2, ordered)]
        rows.append(
            Row(
                G,
                f"replay: cluster 1 worker{tag}",
                n / t1,
                "events/s",
                t_single / t1,
                "1 process",
            )
        )
        rows.append(
            Row(G, f"replay: cluster 2 workers{tag}", n / t2, "events/s", t1 / t2, "1 worker")
        )
    # merge cost: the ordered run minus the unordered one, per output line
    out_lines = sum(single.records.values())
    merge_per_line = max(0.0, results[(1, True)] - results[(1, False)]) / max(1, out_lines)
    scan_per_line = scan / lines
    engine_per_event = max(0.0, results[(1, False)] - scan) / n
    rows += [
        Row(G, "replay: per-worker overhead (scan of every line)", scan_per_line * 1e6, "us/line"),
        Row(
            G,
            "replay: engine cost per event (1 worker, scan removed)",
            engine_per_event * 1e6,
            "us",
        ),
        Row(G, "replay: ordered merge per output line", merge_per_line * 1e6, "us"),
    ]
    big, w = 100_000_000, 16
    out_ratio = out_lines / n
    projected = big * scan_per_line * (lines / n) + big * engine_per_event / w
    projected_ordered = projected + big * out_ratio * merge_per_line
    rows += [
        Row(
            G,
            "replay: projected 100M events on 16 workers",
            projected / 60,
            "min",
            note=f"scan {big * scan_per_line * lines / n / 60:.1f} min + engine "
            f"{big * engine_per_event / w / 60:.1f} min; start-up excluded",
        ),
        Row(
            G,
            "replay: projected 100M events on 16 workers, --ordered",
            projected_ordered / 60,
            "min",
        ),
    ]
    return rows


# ---- endpoint ------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


class _Server:
    def __init__(self, argv: list[str]) -> None:
        self.p = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT, text=True
        )
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line.startswith("listening on"):
            self.close()
            msg = f"server did not start: {argv}"
            raise RuntimeError(msg)
        self.port = int(line.rsplit(":", 1)[1])

    def cpu_seconds(self) -> float:
        """CPU of the process and its children that have exited, plus live children."""
        total = 0.0
        for pid in [self.p.pid, *_children(self.p.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(40)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.p.stdout is not None:
            self.p.stdout.close()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


async def _fleet(
    url: str, keys: list[Any], endpoint: bytes, seconds: float, window: int
) -> tuple[int, list[float]]:
    """Every device connects, then keeps ``window`` 512 B batches in flight for ``seconds``.
    Returns (batches acknowledged within the time, send -> ack latencies in seconds)."""
    from streamfeat.tunnel import (
        NEED_DATA,
        Ack,
        Batch,
        Closed,
        HandshakeComplete,
        Hello,
        Role,
        TunnelConnection,
    )
    from streamfeat.upload._aiohttp import connect

    payload = os.urandom(512)
    lat: list[float] = []
    acked = connected = 0

    async def device(key: Any) -> None:
        nonlocal acked, connected
        t = await connect(url)
        conn = TunnelConnection(Role.DEVICE, static=key, remote_static=endpoint)
        await t.send(conn.send(Hello(0, None)))
        sent: dict[bytes, float] = {}
        n = 0

        async def until(kind: type) -> Any:
            while True:
                ev = conn.next_event()
                if ev is NEED_DATA:
                    data = await t.receive()
                    if not data:
                        msg = "endpoint closed the connection"
                        raise RuntimeError(msg)
                    conn.receive_data(data)
                    continue
                if isinstance(ev, Closed):
                    msg = f"closed: {ev}"
                    raise RuntimeError(msg)
                if isinstance(ev, kind):
                    return ev

        await until(HandshakeComplete)
        connected += 1
        if connected == len(keys):
            all_connected.set()
        await ready.wait()
        while time.perf_counter() < stop:
            while len(sent) < window:
                n += 1
                bid = n.to_bytes(8, "big") + os.urandom(8)
                sent[bid] = time.perf_counter()
                await t.send(conn.send(Batch(bid, payload)))
            ack = await until(Ack)
            t_sent = sent.pop(ack.batch_id)
            if time.perf_counter() < stop:
                acked += 1
                lat.append(time.perf_counter() - t_sent)
        await t.aclose()

    ready, all_connected = asyncio.Event(), asyncio.Event()
    stop = float("inf")
    tasks = [asyncio.create_task(device(k)) for k in keys]
    # the clock starts once every device has connected (handshakes are not what is measured)
    await asyncio.wait(
        [asyncio.create_task(all_connected.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED
    )
    stop = time.perf_counter() + seconds
    ready.set()
    await asyncio.gather(*tasks)
    return acked, lat


def _q(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _endpoint_rows(ctx: Context) -> list[Row]:
    from streamfeat.endpoint._postgres import PostgresRegistry
    from streamfeat.endpoint._registry import Registry, endpoint_keypair
    from streamfeat.tunnel import KeyPair
    from tests.pg_helpers import PgServer, missing_reason

    why = missing_reason()
    if why is not None:
        return [Row(G, "endpoint on PostgreSQL", 0, "-", note=f"not run: {why}")]
    tmp = ctx.tmp / "scale-endpoint"
    tmp.mkdir(exist_ok=True)
    key = tmp / "endpoint.key"
    ep = endpoint_keypair(key)
    n_dev = 40 if ctx.quick else 200
    seconds = 3.0 if ctx.quick else 10.0
    keys = [KeyPair.generate(os.urandom) for _ in range(n_dev)]
    sqlite_db = tmp / "ep.db"
    reg = Registry(sqlite_db)
    for i, k in enumerate(keys):
        reg.add(f"bench{i}", k.public)
    reg.close()
    pg = PgServer(fsync=True).start()
    rows: list[Row] = []
    try:
        url = pg.create_database("bench")
        preg = PostgresRegistry(url)
        for i, k in enumerate(keys):
            preg.add(f"bench{i}", k.public)
        preg.close()
        setups = [
            ("SQLite, 1 process", ["-m", "streamfeat", "serve", "--db", str(sqlite_db)]),
            (
                "PostgreSQL, 1 process",
                ["-m", "streamfeat.endpoint._workers", "--db", url, "--workers", "1"],
            ),
            (
                "PostgreSQL, 2 processes",
                ["-m", "streamfeat.endpoint._workers", "--db", url, "--workers", "2"],
            ),
        ]
        base = None
        for label, args in setups:
            argv = [sys.executable, *args, "--host", "127.0.0.1", "--port", "0", "--key", str(key)]
            srv = _Server(argv)
            try:
                c0, p0 = srv.cpu_seconds(), time.process_time()
                acked, lat = asyncio.run(
                    _fleet(f"ws://127.0.0.1:{srv.port}/v1/tunnel", keys, ep.public, seconds, 4)
                )
                cpu, client = srv.cpu_seconds() - c0, time.process_time() - p0
            finally:
                srv.close()
            rate = acked / seconds
            base = base or rate
            rows.append(
                Row(
                    G,
                    f"endpoint: {n_dev} devices -> {label}",
                    rate,
                    "batches/s",
                    rate / base,
                    "SQLite, 1 process",
                    note=f"ack p50 {_q(lat, 0.5) * 1e3:.1f} ms, p99 {_q(lat, 0.99) * 1e3:.1f} ms; "
                    f"endpoint CPU {cpu / seconds:.0%}, device side {client / seconds:.0%} of a core",
                )
            )
            rows.append(Row(G, f"endpoint: upload p99, {label}", _q(lat, 0.99) * 1e3, "ms"))
    finally:
        pg.stop()
    return rows


def run(ctx: Context) -> list[Row]:
    rows = _replay_rows(ctx)
    rows += _endpoint_rows(ctx)
    print(json.dumps([r.__dict__ for r in rows], default=str), flush=True)
    return rows
