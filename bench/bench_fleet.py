"""Fleet: the whole pipeline, device to cloud, at scale (issue: agent, simulator and demo).

* parse floor: orjson over every line of a generated log, in this process;
* whole pipeline as fast as possible: ``streamfeat simulate --speed 0`` (2 fleet processes and
  the endpoint on this machine): events/s over the feeding phase, as a ratio to the parse floor,
  and the fleet processes' CPU time per 1,000 events;
* the largest fleet at real-time speed: 500, 1,000, 2,000, 4,000, 8,000 devices (stopping at the first
  that fails) each for ``REALTIME_S`` seconds of real time; a fleet is sustained when the upload
  latency p99 (batch sealed -> acknowledged, while feeding) is under 250 ms, nothing is lost or
  doubled, and no event is submitted more than 1 s after its due time;
* memory per device: the slope of the fleet processes' peak RSS between two fleet sizes.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from _harness import Context, Row

from streamfeat.sim._simulation import SimOptions, SimReport, simulate

REALTIME_S = 45.0
P99_MS = 250.0
LATE_MS = 1000.0


def _parse_floor(path: Path) -> tuple[float, int]:
    loads = orjson.loads
    t0 = time.perf_counter()
    n = 0
    with path.open("rb") as fh:
        for line in fh:
            loads(line)
            n += 1
    return n / (time.perf_counter() - t0), n


def _sustained(r: SimReport) -> bool:
    return (
        r.ok
        and r.steady_latency_ms.get("n", 0) > 0
        and r.steady_latency_ms["p99"] < P99_MS
        and r.feed_late_ms < LATE_MS
    )


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    floor, _ = _parse_floor(ctx.generated_log(20_000 if ctx.quick else 200_000))
    rows.append(Row("fleet", "parse floor (orjson, one process)", floor, "events/s"))

    fast = simulate(
        SimOptions(
            devices=20 if ctx.quick else 100, minutes=3 if ctx.quick else 30, speed=0, seed=11
        )
    )
    rate = fast.events / max(fast.feed_wall_s, 1e-9)
    rows.append(Row("fleet", f"whole pipeline, {fast.devices} devices as fast as possible", rate, "events/s",
                    rate / floor, "parse floor",
                    f"{fast.events:,} events, {fast.processes} fleet processes + endpoint, audit lost {fast.lost}"))  # fmt: skip
    rows.append(Row("fleet", "fleet CPU per 1,000 events (as fast as possible)", fast.feed_cpu_s / max(fast.events, 1) * 1e6,
                    "ms", note="engine, store, tasks, encoding, outbox and uploads; endpoint excluded"))  # fmt: skip

    sizes = [40] if ctx.quick else [500, 1000, 2000, 4000, 8000]
    seconds = 10.0 if ctx.quick else REALTIME_S
    best = 0
    runs: list[SimReport] = []
    for n in sizes:
        r = simulate(
            SimOptions(devices=n, minutes=seconds / 60, speed=1, seed=12, drain_timeout=120)
        )
        runs.append(r)
        q = r.steady_latency_ms
        ok = _sustained(r)
        rows.append(Row("fleet", f"real time, {n} devices: upload p99", q.get("p99", 0.0), "ms",
                        note=f"p50 {q.get('p50', 0):.0f} p90 {q.get('p90', 0):.0f} ms over {q.get('n', 0)} batches; "
                             f"lost {r.lost} doubled {r.doubled}; feed late {r.feed_late_ms:.0f} ms; "
                             f"setup {r.setup_s:.0f} s; {'sustained' if ok else 'NOT sustained'}"))  # fmt: skip
        rows.append(Row("fleet", f"real time, {n} devices: fleet CPU per 1,000 events", r.feed_cpu_s / max(r.events, 1) * 1e6,
                        "ms", note=f"{r.events:,} events in {r.feed_wall_s:.0f} s; idle ticks and connections included"))  # fmt: skip
        if not ok:
            break
        best = n
    rows.append(Row("fleet", f"largest fleet at real time (p99 < {P99_MS:.0f} ms, no loss)", best, "devices",
                    note=f"tried {', '.join(str(r.devices) for r in runs)}"))  # fmt: skip
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        per_proc = (
            (b.max_rss_kb - a.max_rss_kb)
            / 1024
            / max(1, (b.devices - a.devices) / max(b.processes, 1))
        )
        rows.append(Row("fleet", "memory per device (RSS slope)", per_proc, "MB",
                        note=f"peak RSS of a fleet process: {a.max_rss_kb / 1024:.0f} MB at {a.devices} devices, "
                             f"{b.max_rss_kb / 1024:.0f} MB at {b.devices}"))  # fmt: skip
    else:
        r = runs[0]
        rows.append(Row("fleet", "memory per device (upper bound: peak RSS / devices)",
                        r.max_rss_kb / 1024 / max(1, r.devices / max(r.processes, 1)), "MB"))  # fmt: skip
    return rows
