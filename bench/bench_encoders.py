"""Encoders: bytes per record type and codec, and encode/decode speed (issue: encoders).

Records come from the real pipeline: a generated log (``ctx.generated_log``) replayed through
``streamfeat.engine.build_engine(default tasks, sizes=True)``, so every window and feature
record carries ``_raw_bytes``, the JSON-line bytes of the raw events that made it. When the
trigger stage cannot be built the engine runs without it (the schemas still come from the whole
default tasks file) and the rows say so.

* sizes: per record type (ipv, exposure), bytes per record of the raw events, the records as
  JSON lines, and the json / msgpack / compact batches (up to 64 records of one type and one
  device a batch, as a device uploads them: ``SizeReport``), each
  with its share of the raw bytes; compact against msgpack for all records; compact ipv with a
  counting-Bloom admission (n = 2) in front of item ids.
* speed: records/s (CPU time) encoding and decoding the same batches, compact and json beside
  msgpack; the compact body by its generated writer against its reference walk.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from pathlib import Path
from typing import Any

import orjson
from _harness import Context, Row

from streamfeat._compiled import compiled, status
from streamfeat._event import event_from_obj
from streamfeat.encoders import (
    CountingBloomAdmission,
    SizeReport,
    decode_batch,
    encoder_for,
    index_schemas,
    schemas_for,
)
from streamfeat.encoders._compact import _MISSING, CompactEncoder, _Misfit, walk_for
from streamfeat.encoders._compact_writers import writer_for
from streamfeat.engine._build import build_engine
from streamfeat.errors import EventError
from streamfeat.tasks import TasksConfig, load_tasks

DEFAULT_TASKS = Path(__file__).resolve().parents[1] / "streamfeat" / "data" / "default.toml"
BATCH = 64
GROUP = "encoders"


def _records(path: Path, config: TasksConfig) -> tuple[list[dict[str, Any]], str]:
    source = "pipeline"
    try:
        engine = build_engine(config, sizes=True)
    except ImportError:
        engine = build_engine(dataclasses.replace(config, triggers={}, tasks={}), sizes=True)
        source = "pipeline without triggers (TriggerStage missing)"
    out: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        for line in fh:
            try:
                event = event_from_obj(orjson.loads(line))
            except (EventError, orjson.JSONDecodeError):
                continue
            engine.process_into(event, out)
    out += engine.close()
    return out, source


def _size_rows(records: list[dict[str, Any]], config: TasksConfig, note: str) -> list[Row]:
    schemas = schemas_for(config)
    report = SizeReport(schemas, batch_records=BATCH, codecs=("json", "msgpack", "compact"))
    report.add_many(records)
    sizes = report.as_dict()
    rows: list[Row] = []
    for label in ("feature:ipv", "feature:exposure"):
        t = sizes["types"].get(label)
        if t is None or not t["records"]:
            continue
        n, raw = t["records"], t["raw_bytes"]
        rows.append(
            Row(GROUP, f"{label} raw events", raw / n, "B/record", note=f"{n} records; {note}")
        )
        rows.append(
            Row(
                GROUP,
                f"{label} records as JSON",
                t["json_bytes"] / n,
                "B/record",
                t["json_bytes"] / raw,
                "raw events",
            )
        )
        for codec in ("json", "msgpack", "compact"):
            b = t["codec_bytes"][codec]
            goal = " (goal <= 0.006)" if label == "feature:ipv" and codec == "compact" else ""
            rows.append(
                Row(
                    GROUP,
                    f"{label} {codec} batches",
                    b / n,
                    "B/record",
                    b / raw,
                    "raw events",
                    f"share of raw{goal}",
                )
            )
        c, m = t["codec_bytes"]["compact"], t["codec_bytes"]["msgpack"]
        rows.append(
            Row(
                GROUP,
                f"{label} compact vs msgpack",
                c / n,
                "B/record",
                c / m,
                "msgpack",
                "goal <= 0.333",
            )
        )
    total = sizes["total"]["codec_bytes"]
    rows.append(
        Row(GROUP, "all records compact vs msgpack", total["compact"] / sizes["total"]["records"], "B/record",
            total["compact"] / total["msgpack"], "msgpack", f"{sizes['total']['records']} records, goal <= 0.333")
    )  # fmt: skip
    ipv = [r for r in records if r.get("feature") == "ipv"]
    if ipv:
        admitted = SizeReport(schemas, codecs=("compact",), batch_records=BATCH,
                              admission=lambda: CountingBloomAdmission(2, seed=1))  # fmt: skip
        admitted.add_many(ipv)
        nbytes = admitted.as_dict()["types"]["feature:ipv"]["codec_bytes"]["compact"]
        plain = sizes["types"]["feature:ipv"]["codec_bytes"]["compact"]
        rows.append(Row(GROUP, "feature:ipv compact + bloom(n=2) admission", nbytes / len(ipv), "B/record",
                        nbytes / plain, "compact, ids verbatim", "ids seen once sent as buckets"))  # fmt: skip
    return rows


def _speed_rows(ctx: Context, records: list[dict[str, Any]], config: TasksConfig) -> list[Row]:
    # batches of 64 records in replay order (all types and devices mixed): the speed of the
    # codecs, not of the batching
    schemas = schemas_for(config)
    by_id = index_schemas(schemas)
    records = records[: 8_000 if ctx.quick else 30_000]
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    n = len(records)
    rows: list[Row] = []
    codecs = ("msgpack", "compact", "json")
    encoders = {c: encoder_for(c, schemas) for c in codecs}
    blobs = {c: [encoders[c].encode_batch(b) for b in batches] for c in codecs}
    best: dict[tuple[str, str], float] = {}
    # interleaved rounds, best of each: the machine's load drifts during a run, and a codec
    # timed alone in a quiet (or busy) moment would not be side by side with the others.
    # CPU time of this process, not wall time: on a shared machine wall time also counts the
    # time spent waiting for a core, which lands on whichever codec is running then. Both
    # codecs do the same job: the same records, the same 64-record batches, one
    # Encoder.encode_batch call each, attachments left out (msgpack copies each record
    # without them, compact skips them), the same batch header.
    for _ in range(2 if ctx.quick else 5):
        for codec in codecs:
            enc, data = encoders[codec], blobs[codec]
            for op, fn in (
                ("encode", lambda enc=enc: [enc.encode_batch(b) for b in batches]),
                ("decode", lambda data=data: [decode_batch(d, by_id) for d in data]),
            ):
                gc.collect()
                t0 = time.process_time()
                fn()
                dt = time.process_time() - t0
                best[codec, op] = min(best.get((codec, op), dt), dt)
    rates = {k: n / v for k, v in best.items()}
    for op in ("encode", "decode"):
        base = rates["msgpack", op]
        rows.append(
            Row(
                GROUP,
                f"{op} msgpack",
                base,
                "records/s",
                note=f"{n} records, {BATCH} a batch, CPU time, best of rounds; {status()}",
            )
        )
        for codec in ("compact", "json"):
            rows.append(
                Row(
                    GROUP,
                    f"{op} {codec}",
                    rates[codec, op],
                    "records/s",
                    rates[codec, op] / base,
                    f"{op} msgpack",
                )
            )
    return rows


def run(ctx: Context) -> list[Row]:
    """Measure sizes and speeds on records of a generated log through the real pipeline."""
    config = load_tasks(DEFAULT_TASKS)
    path = ctx.generated_log(15_000 if ctx.quick else 150_000)
    t0 = time.perf_counter()
    records, source = _records(path, config)
    note = f"{source}, {time.perf_counter() - t0:.1f}s"
    return (
        _size_rows(records, config, note)
        + _speed_rows(ctx, records, config)
        + _writer_rows(ctx, records, config)
    )


def _compact_body(schemas: Any, batch: list[dict[str, Any]], mode: str) -> bytes:
    enc = CompactEncoder(schemas, None, {})
    # reference: CompactEncoder._record; writer: the generated Python (the pure default);
    # walk: _compact_walk (the compiled core's default)
    enc.writer = writer_for(schemas, _Misfit, _MISSING) if mode == "writer" else None
    enc.walk = walk_for(schemas) if mode == "walk" else None
    enc.add_many(batch)
    return bytes(enc.buf)


def _writer_rows(ctx: Context, records: list[dict[str, Any]], config: TasksConfig) -> list[Row]:
    """The compact codec's three writers side by side (same bytes): CPU time per record."""
    schemas = schemas_for(config)
    records = records[: 8_000 if ctx.quick else 30_000]
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    modes = ("reference", "writer", "walk")
    best: dict[str, float] = {}
    for _ in range(2 if ctx.quick else 5):
        for mode in modes:
            gc.collect()
            t0 = time.process_time()
            for b in batches:
                _compact_body(schemas, b, mode)
            dt = time.process_time() - t0
            best[mode] = min(best.get(mode, dt), dt)
    n = len(records)
    note = f"CPU time, best of rounds; {'compiled' if compiled() else 'pure Python'}"
    labels = {
        "reference": "compact body, reference walk",
        "writer": "compact body, generated writer",
        "walk": "compact body, typed-plan walk",
    }
    rows = [Row(GROUP, labels["reference"], n / best["reference"], "records/s", note=note)]
    for mode in modes[1:]:
        rows.append(
            Row(
                GROUP,
                labels[mode],
                n / best[mode],
                "records/s",
                best["reference"] / best[mode],
                "reference walk",
            )
        )
    return rows
