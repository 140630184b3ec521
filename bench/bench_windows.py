"""Windows and features (issue: windows and features, "Performance").

* The tumbling job: a 60 s tumbling count + sum per key over 1,000,000 events with 10,000
  keys (``ctx.quick``: 30,000 events, 1,000 keys), spread evenly over 10 minutes of event time
  (ten windows per key, about ten events per window). Run three ways on the same pre-built input:
  streamfeat's window stage (``WindowStage.process``, one state per key, as the engine keeps
  per device), Bytewax 0.21.1 (``fold_window`` with an ``EventClock`` and a
  ``TumblingWindower``, ``TestingSource`` in batches of 1,000, run with ``run_main``), and a
  plain dict per (key, window). Every window's record is produced by streamfeat and Bytewax;
  the dict only accumulates (its windows are never emitted).
* The full default pipeline (``streamfeat/data/default.toml``: triggers, windows, ipv,
  exposure) over a generated log: parse + validate + engine, events/s, and its ratio to the
  parse floor (orjson over the lines) and to Bytewax's windows alone.
* ipv latency: p50 / p99 of the time from handing a visit's closing ``page_exit`` to the
  engine until its ``ipv`` record is in the output (the engine is synchronous: one
  ``process_into`` call).
* Peak memory: ``streamfeat replay`` of the Taobao log with the default tasks, in a
  subprocess (its VmHWM), against the same replay with no stages.

Times are CPU-process times (``time.process_time``), best of the harness' repeats, because the
benchmark machine is shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from _harness import Context, Row

from streamfeat._event import Event
from streamfeat.engine._build import build_engine
from streamfeat.io._readers import read_jsonl
from streamfeat.tasks import parse_tasks
from streamfeat.windows import WindowStage

GROUP = "windows"
KEYS = 10_000
JOB = '[windows.w]\nassign = "tumbling 60s"\naggregate = { n = "count", s = "sum args.v" }\n'
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _cpu(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _job_input(n: int, keys: int = KEYS) -> list[tuple[str, int, int]]:
    # a fixed LCG: the same keys and values every run, without the random module's cost
    x, rows = 12345, []
    step = 600_000 / n  # ten minutes of event time whatever n is: ten windows per key
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        rows.append((f"k{x % keys:05d}", int(1_767_225_600_000 + i * step), x % 100))
    return rows


def _streamfeat_job(events: list[Event]) -> int:
    stage = WindowStage(parse_tasks(JOB))
    states: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    process, new = stage.process, stage.new_state
    for i, e in enumerate(events):
        st = states.get(e.device)
        if st is None:
            st = states[e.device] = new(e.device)
        process(st, i, e, out)
    for st in states.values():
        stage.close(st, out)
    return len(out)


def _dict_job(rows: list[tuple[str, int, int]]) -> int:
    wins: dict[tuple[str, int], list[int]] = {}
    for key, ts, v in rows:
        k = (key, ts - ts % 60_000)
        acc = wins.get(k)
        if acc is None:
            wins[k] = [1, v]
        else:
            acc[0] += 1
            acc[1] += v
    return len(wins)


def _bytewax_job(items: list[tuple[str, tuple[datetime, int]]]) -> int:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.operators import windowing as win
    from bytewax.testing import TestingSink, TestingSource, run_main

    flow = Dataflow("tumbling")
    stream = op.input("in", flow, TestingSource(items, batch_size=1000))
    # a fixed "now": the watermark is max event ts, as in streamfeat (by default Bytewax also
    # moves it with the system clock, which on a slow replay closes windows early)
    clock = win.EventClock(
        lambda v: v[0], wait_for_system_duration=timedelta(0), now_getter=lambda: EPOCH
    )
    windower = win.TumblingWindower(length=timedelta(seconds=60), align_to=EPOCH)

    def fold(acc: list[int], v: tuple[datetime, int]) -> list[int]:
        acc[0] += 1
        acc[1] += v[1]
        return acc

    def merge(a: list[int], b: list[int]) -> list[int]:
        return [a[0] + b[0], a[1] + b[1]]

    out = win.fold_window("fold", stream, clock, windower, lambda: [0, 0], fold, merge)
    got: list[Any] = []
    op.output("out", out.down, TestingSink(got))
    run_main(flow)
    return len(got)


def _tumbling_rows(ctx: Context, repeat: int) -> tuple[list[Row], float]:
    n, keys = (30_000, 1_000) if ctx.quick else (1_000_000, KEYS)
    rows = _job_input(n, keys)
    events = [Event(ts, "click", key, None, None, {"v": v}) for key, ts, v in rows]
    items = [(key, (EPOCH + timedelta(milliseconds=ts), v)) for key, ts, v in rows]
    windows = _streamfeat_job(events)
    t0 = time.process_time()
    bw_windows = _bytewax_job(items)  # once: it is by far the slowest
    bw = n / (time.process_time() - t0)
    sf = n / _cpu(lambda: _streamfeat_job(events), repeat)
    dc = n / _cpu(lambda: _dict_job(rows), repeat)
    note = f"{n:,} events, {keys:,} keys, {windows:,} windows (bytewax {bw_windows:,})"
    return [
        Row(GROUP, "tumbling 60s count+sum: bytewax 0.21.1", bw, "events/s", note=note),
        Row(GROUP, "tumbling 60s count+sum: plain dict", dc, "events/s", dc / bw, "bytewax",
            "accumulates only, emits nothing"),
        Row(GROUP, "tumbling 60s count+sum: streamfeat window stage", sf, "events/s", sf / bw,
            "bytewax", f"{sf / dc:.2f}x the plain dict"),
    ], bw  # fmt: skip


def _load(path: Path) -> list[bytes]:
    with path.open("rb") as fh:
        return fh.readlines()


def _parse_floor(lines: list[bytes]) -> None:
    loads = orjson.loads
    for line in lines:
        loads(line)


def _default_config() -> Any:
    from importlib import resources

    text = resources.files("streamfeat").joinpath("data/default.toml").read_text(encoding="utf-8")
    return parse_tasks(text, source="<default tasks>")


def _pipeline(path: Path) -> None:
    engine = build_engine(_default_config())
    out: list[dict[str, Any]] = []
    process = engine.process_into
    with path.open("rb") as fh:
        for item in read_jsonl(fh):
            if type(item) is Event:
                process(item, out)
                out.clear()
    engine.close()


def _ipv_latency(path: Path) -> tuple[list[float], list[float]]:
    """Wall and CPU ms of each ``process_into`` call that emitted a closed (not truncated) ipv."""
    engine = build_engine(_default_config())
    out: list[dict[str, Any]] = []
    wall: list[float] = []
    cpu: list[float] = []
    clock, tclock = time.perf_counter_ns, time.thread_time_ns
    with path.open("rb") as fh:
        for item in read_jsonl(fh):
            if type(item) is not Event:
                continue
            t0, c0 = clock(), tclock()
            engine.process_into(item, out)
            t1, c1 = clock(), tclock()
            if item.type == "page_exit" and any(
                r["kind"] == "feature" and r["feature"] == "ipv" and not r["values"]["truncated"]
                for r in out
            ):
                wall.append((t1 - t0) / 1e6)
                cpu.append((c1 - c0) / 1e6)
            out.clear()
    return sorted(wall), sorted(cpu)


def _pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def _pipeline_rows(ctx: Context, bytewax: float, repeat: int) -> list[Row]:
    path = ctx.generated_log(20_000 if ctx.quick else 300_000)
    lines = _load(path)
    n = len(lines)
    floor = n / _cpu(lambda: _parse_floor(lines), repeat)
    full = n / _cpu(lambda: _pipeline(path), repeat)
    wall, cpu = _ipv_latency(path)
    visits = f"{len(wall):,} visits; wall clock, shared machine"
    note = f"generated log, {n:,} events"
    return [
        Row(GROUP, "parse floor (orjson per line)", floor, "events/s", note=note),
        Row(GROUP, "default pipeline (parse+validate+triggers+windows+ipv+exposure)", full,
            "events/s", full / floor, "parse floor", note),
        Row(GROUP, "default pipeline vs bytewax windows alone", full / bytewax, "x", None, "",
            "goal >= 3x"),
        Row(GROUP, "visit close -> ipv record, p50", _pct(wall, 0.5), "ms", note=visits),
        Row(GROUP, "visit close -> ipv record, p99", _pct(wall, 0.99), "ms", note=visits),
        Row(GROUP, "visit close -> ipv record, p99 CPU time", _pct(cpu, 0.99), "ms",
            note="thread CPU time: without the other processes' preemption"),
    ]  # fmt: skip


# Peak RSS read from /proc in the replaying process itself: ru_maxrss would carry over the
# benchmark process' own peak through fork + exec.
_DRIVER = (
    "import sys\n"
    "from streamfeat.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')][0].split()[1]\n"
    "print('VMHWM', hwm, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _replay_peak(path: Path, tasks: Path | None) -> tuple[float, dict[str, Any]]:
    cmd = [sys.executable, "-c", _DRIVER, "replay", str(path), "--out", os.devnull, "--json",
           "--no-progress"]  # fmt: skip
    if tasks is not None:
        cmd += ["--tasks", str(tasks)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    hwm = next(x for x in done.stderr.splitlines() if x.startswith("VMHWM"))
    return int(hwm.split()[1]) / 1024.0, json.loads(done.stdout)


def _memory_rows(ctx: Context) -> list[Row]:
    path = ctx.taobao_log()
    if path is None:
        return []
    if ctx.quick:  # the first 50,000 lines: enough to see the shape in seconds
        small = ctx.tmp / "taobao-head.jsonl"
        with path.open("rb") as src, small.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= 50_000:
                    break
                dst.write(line)
        path = small
    empty = ctx.tmp / "empty.toml"
    empty.write_text("")
    base, _ = _replay_peak(path, empty)
    peak, summary = _replay_peak(path, None)
    note = f"{summary['events']:,} events, {summary['devices']:,} devices"
    return [
        Row(GROUP, "taobao replay peak RSS, no stages", base, "MB", note=note),
        Row(GROUP, "taobao replay peak RSS, default tasks", peak, "MB", peak / base,
            "no stages", note),
    ]  # fmt: skip


def run(ctx: Context) -> list[Row]:
    repeat = 1 if ctx.quick else 3
    memory = _memory_rows(ctx)
    rows, bytewax = _tumbling_rows(ctx, repeat)
    rows += _pipeline_rows(ctx, bytewax, repeat)
    return rows + memory
