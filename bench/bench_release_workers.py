"""A release to a fleet through two endpoint processes on PostgreSQL: time to 100%.

A real PostgreSQL server (started here, fsync on), ``streamfeat serve --workers 2`` on it, and
``simulate --server ... --release 10@2,50@6,100@10`` with a 1 MB bundle: the fleet's agents
connect to whichever worker the kernel gives them, the ``release rollout`` steps are written to
the database by the simulator (neither worker receives them), every worker pushes the
announcements down its own connections (the downlink queue, polled every second) and serves
the pulls. Rows: per stage, the time from its announcement to 50 / 90 / 100 % of its devices
live, and bytes pulled per device. ``ctx.quick``: 40 devices, else 200 (at most the
simulator's defaults for one machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from _harness import Context, Row

GROUP = "release-workers"
ROOT = Path(__file__).resolve().parents[1]


def run(ctx: Context) -> list[Row]:
    sys.path.insert(0, str(ROOT))
    from streamfeat.endpoint._registry import endpoint_keypair
    from streamfeat.sim import SimOptions, simulate
    from streamfeat.sim._release import parse_release_spec
    from tests.pg_helpers import PgServer, missing_reason

    why = missing_reason()
    if why is not None:
        return [Row(GROUP, "release on PostgreSQL, 2 workers", 0, "-", note=f"not run: {why}")]
    devices = int(os.environ.get("STREAMFEAT_BENCH_RELEASE_DEVICES", 40 if ctx.quick else 200))
    spec = os.environ.get("STREAMFEAT_BENCH_RELEASE_SPEC", "10@2,50@6,100@10")
    work = ctx.tmp / "release-workers"
    work.mkdir(exist_ok=True)
    key, pids = work / "endpoint.key", work / "ep.pids"
    endpoint_keypair(key)
    pg = PgServer(fsync=True).start()
    rows: list[Row] = []
    try:
        url = pg.create_database("bench")
        argv = [sys.executable, "-m", "streamfeat", "serve", "--init", "--host", "127.0.0.1"]
        argv += ["--port", "0", "--db", url, "--key", str(key), "--workers", "2"]
        argv += ["--pid-file", str(pids)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        srv = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        try:
            assert srv.stdout is not None
            line = srv.stdout.readline()
            if not line.startswith("listening on http://"):
                msg = f"serve --workers 2 did not start: {line!r}"
                raise RuntimeError(msg)
            port = int(line.rsplit(":", 1)[1])
            report = simulate(
                SimOptions(
                    devices=devices,
                    minutes=3.0,
                    speed=10,
                    seed=3,
                    server=f"ws://127.0.0.1:{port}/v1/tunnel",
                    server_db=url,
                    server_key=key,
                    release=parse_release_spec(spec, bundle_mb=1.0),
                )
            )
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(60)
            if srv.stdout is not None:
                srv.stdout.close()
    finally:
        pg.stop()
    rel = report.release or {}
    print(json.dumps({"release": rel, "lost": report.lost, "doubled": report.doubled}), flush=True)
    for st in rel.get("stages", []):
        for share in ("50", "90", "100"):
            v = st.get(f"to_{share}_s")
            rows.append(
                Row(
                    GROUP,
                    f"{devices} devices, stage {st['percent']:g}%: to {share}% live",
                    -1 if v is None else v,
                    "s",
                    note=f"{st['live']}/{st['devices']} live; 2 workers on PostgreSQL"
                    + ("" if v is not None else "; not reached"),
                )
            )
    rows.append(
        Row(
            GROUP,
            f"{devices} devices: bytes pulled per device",
            rel.get("pulled_bytes_per_device", 0),
            "bytes",
            note=f"bundle {rel.get('bundle_bytes', 0):,} B; release {rel.get('state')}; "
            f"audit lost {report.lost}, doubled {report.doubled}",
        )
    )
    return rows
