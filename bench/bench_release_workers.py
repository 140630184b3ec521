"""A release to a fleet through two endpoint processes on PostgreSQL: time to 100%.

A real PostgreSQL server (started here, fsync on), ``streamfeat serve --workers 2`` on it, and
``simulate --server ... --release 10@2,50@6,100@10`` with a 1 MB bundle (and, as the control in
the same run, the same fleet against the simulator's own single SQLite endpoint process): the fleet's agents
connect to whichever worker the kernel gives them, the ``release rollout`` steps are written to
the database by the simulator (neither worker receives them), every worker pushes the
announcements down its own connections (the downlink queue, polled every second) and serves
the pulls. Rows: per stage, the time from its announcement to 50 / 90 / 100 % of its devices
live, and bytes pulled per device. ``ctx.quick``: 40 devices for 2 simulated minutes, else 200
for 6 (at speed 10: 36 s of feeding, the time the stages have to finish);
``STREAMFEAT_BENCH_RELEASE_DEVICES`` / ``_MINUTES`` / ``_SPEC`` override. The simulator's
endpoint raises the caps on unauthenticated connections (every device connects from
127.0.0.1); the ``serve --workers 2`` endpoint here is given the same caps.
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


def _rows(label: str, devices: int, report: object) -> list[Row]:
    rel = getattr(report, "release", None) or {}
    lost, doubled = getattr(report, "lost", -1), getattr(report, "doubled", -1)
    print(
        json.dumps({"setup": label, "release": rel, "lost": lost, "doubled": doubled}), flush=True
    )
    rows = []
    for st in rel.get("stages", []):
        for share in ("50", "90", "100"):
            v = st.get(f"to_{share}_s")
            rows.append(
                Row(
                    GROUP,
                    f"{label}: {devices} devices, stage {st['percent']:g}%: to {share}% live",
                    -1 if v is None else v,
                    "s",
                    note=f"{st['live']}/{st['devices']} live"
                    + ("" if v is not None else "; not reached before the run ended"),
                )
            )
    rows.append(
        Row(
            GROUP,
            f"{label}: {devices} devices: bytes pulled per device",
            rel.get("pulled_bytes_per_device", 0),
            "bytes",
            note=f"bundle {rel.get('bundle_bytes', 0):,} B; release {rel.get('state')}; "
            f"audit lost {lost}, doubled {doubled}",
        )
    )
    return rows


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
    minutes = float(os.environ.get("STREAMFEAT_BENCH_RELEASE_MINUTES", 2 if ctx.quick else 6))
    spec = os.environ.get("STREAMFEAT_BENCH_RELEASE_SPEC", "10@2,50@6,100@10")

    def options(**server: object) -> SimOptions:
        return SimOptions(
            devices=devices,
            minutes=minutes,
            speed=10,
            seed=3,
            release=parse_release_spec(spec, bundle_mb=1.0),
            **server,  # type: ignore[arg-type]
        )

    # the control, same fleet: the simulator's own endpoint (one process, SQLite)
    rows = _rows("SQLite, 1 process", devices, simulate(options()))
    work = ctx.tmp / "release-workers"
    work.mkdir(exist_ok=True)
    key, pids = work / "endpoint.key", work / "ep.pids"
    endpoint_keypair(key)
    pg = PgServer(fsync=True).start()
    try:
        url = pg.create_database("bench")
        argv = [sys.executable, "-m", "streamfeat", "serve", "--init", "--host", "127.0.0.1"]
        argv += ["--port", "0", "--db", url, "--key", str(key), "--workers", "2"]
        argv += ["--pid-file", str(pids), "--max-unauthenticated-per-source", "8192"]
        argv += ["--max-unauthenticated", "8192"]
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
                options(server=f"ws://127.0.0.1:{port}/v1/tunnel", server_db=url, server_key=key)
            )
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(60)
            if srv.stdout is not None:
                srv.stdout.close()
    finally:
        pg.stop()
    return rows + _rows("PostgreSQL, 2 workers", devices, report)
