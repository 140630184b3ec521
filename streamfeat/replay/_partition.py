"""One partition of a partitioned replay: its devices, its engine, its part of OUT.

Theory of operation
-------------------
Devices are independent (SPEC section 6: every device is replayed as its own stream), so a
replay splits by device: partition ``p`` of ``P`` owns the devices with
``crc32(device as UTF-8) % P == p`` (a stable hash: the same on every machine and Python).

Every partition reads the **whole input in order** (the files one after another, as if
concatenated) and keeps only its lines; the line numbers it reports are the global ones, so
its records equal, line for line, what a single-process replay writes for those devices. A
line's owner is a function of its bytes alone (:func:`route`): the device of a valid event, or
partition 0 for a line that is not an object with a string ``device`` (quarantined there). So
every input line is handled by exactly one partition.

Skipping the other partitions' lines is the per-partition overhead of this design: the usual
line (``{"device":"...",`` first, no backslash) is routed from its bytes without parsing it;
any other line is parsed. The alternative, a first pass re-partitioning the input into
per-partition files, parses every line twice and writes the input once more; docs/scale.md
gives the measured figures that chose this one.

Output: the partition writes its records to its own part file. With ``ordered``, each line is
prefixed with a merge key and a tab: the input position of the line that produced it, or for
the records ``close()`` emits at the end, ``FINAL_BASE`` + the position of the device's first
event (a single-process engine closes devices in first-seen order). Merging the parts on the
key gives the single-process OUT byte for byte.

Checkpoints (``db``): every ``checkpoint_every`` input lines, the part file is flushed and
fsynced and one store transaction records the engine snapshot (with the devices' first
positions and the partition's counters), the input lines consumed and the part file's length.
A partition that finds its checkpoint (same inputs, tasks file, partitioning) truncates its
part to the recorded length, skips the consumed lines and goes on: a killed worker's partition,
run again anywhere, ends with exactly the output of an uninterrupted run.
"""

from __future__ import annotations

import gc
import hashlib
import os
import resource
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import orjson

from streamfeat._event import Event
from streamfeat._records import public
from streamfeat.engine._build import build_engine
from streamfeat.errors import StorageError
from streamfeat.io._jsonl import parse_jsonl_line
from streamfeat.io._readers import InputFile
from streamfeat.io._store import Checkpoint, QuarantineEntry, Store
from streamfeat.replay._collector import collector_off
from streamfeat.tasks import parse_tasks

__all__ = ["FINAL_BASE", "PartitionJob", "PartitionResult", "route", "run_partition"]

FINAL_BASE = 1 << 62  # merge keys of end-of-replay records sort after every input position
_PREFIX = b'{"device":"'
_CHECKPOINT = "cluster-replay"


def route(line: bytes, partitions: int) -> int:
    """The partition that owns an input line (see the module docstring).

    Args:
        line: one JSONL line, newline included or not.
        partitions: the number of partitions ``P``.
    """
    if partitions == 1:
        return 0
    # fast path: the device is the first key and nothing in the line is escaped, so the bytes
    # between the quotes are the device's UTF-8 and the only "device" key is this one
    if line.startswith(_PREFIX) and b"\\" not in line and line.count(b'"device"') == 1:
        end = line.find(b'"', 11)
        if end > 11:
            return zlib.crc32(line[11:end]) % partitions
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return 0
    if type(obj) is not dict:
        return 0
    device = obj.get("device", "local")
    if type(device) is not str:
        return 0
    return zlib.crc32(device.encode("utf-8", "surrogatepass")) % partitions


def parse_line(line: bytes, line_no: int, source: str) -> Event | QuarantineEntry:
    """One JSONL line to an Event or a QuarantineEntry, exactly as the single-process reader
    does it, reasons included (:func:`streamfeat.io._jsonl.parse_jsonl_line`)."""
    return parse_jsonl_line(line, line_no, source)


@dataclass(frozen=True)
class PartitionJob:
    """Everything a worker needs to run one partition (picklable)."""

    inputs: tuple[str, ...]
    tasks_text: str
    tasks_source: str
    partitions: int
    index: int
    part_path: str
    ordered: bool = False
    db: str | None = None
    checkpoint_every: int = 50_000
    restart: bool = False
    progress_path: str | None = None
    fmt: str = "jsonl"  # or "msgpack" (:mod:`streamfeat.replay._cluster_input`)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for name in self.inputs:
            h.update(str(Path(name).resolve()).encode() + b"\0")
        h.update(self.tasks_text.encode())
        h.update(f"\0{self.partitions}\0{self.index}\0{self.ordered}".encode())
        if self.fmt != "jsonl":
            h.update(f"\0{self.fmt}".encode())
        return h.hexdigest()


@dataclass
class PartitionResult:
    """What a partition did (its share of the replay summary)."""

    index: int
    events: int = 0
    quarantined: int = 0
    devices: int = 0
    records: Counter[str] = field(default_factory=Counter)
    bytes_records: int = 0
    lines: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    resumed_at: int = 0
    pid: int = 0


def iter_lines(inputs: tuple[str, ...]) -> Iterator[tuple[bytes, str]]:
    """Every line of the inputs, in order, with the name of the file it came from."""
    for name in inputs:
        source = InputFile(name)
        try:
            for line in source.stream:
                yield line, source.name
        finally:
            source.close()


class _Part:
    """The part file, with merge keys when ordered."""

    def __init__(self, path: str, resume_offset: int | None, ordered: bool) -> None:
        self.ordered = ordered
        if resume_offset is None:
            self.fh = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
        else:
            self.fh = open(path, "r+b", buffering=1 << 20)  # noqa: SIM115
            self.fh.truncate(resume_offset)
            self.fh.seek(resume_offset)

    def write(self, key: int, records: list[dict[str, Any]], res: PartitionResult) -> None:
        dumps, nl, write = orjson.dumps, orjson.OPT_APPEND_NEWLINE, self.fh.write
        prefix = b"%d\t" % key if self.ordered else b""
        for r in records:
            line = dumps(public(r), option=nl)
            write(prefix + line if prefix else line)
            res.bytes_records += len(line)
            res.records[r["kind"]] += 1

    def durable_offset(self) -> int:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        return self.fh.tell()

    def close(self) -> None:
        self.fh.close()


def _snapshot(engine: Any, first: dict[str, int], res: PartitionResult) -> bytes:
    body = {
        "engine": engine.snapshot(),
        "first": first,
        "quarantined": res.quarantined,
        "records": dict(res.records),
        "bytes_records": res.bytes_records,
    }
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def _restore(data: bytes, engine: Any, res: PartitionResult) -> dict[str, int]:
    body = msgpack.unpackb(data, raw=False, strict_map_key=False)
    engine.restore(body["engine"])
    res.quarantined = int(body["quarantined"])
    res.records = Counter(body["records"])
    res.bytes_records = int(body["bytes_records"])
    return dict(body["first"])


def _open_store(job: PartitionJob) -> tuple[Store | None, Checkpoint | None]:
    if job.db is None:
        return None, None
    store = Store(job.db)
    cp = store.load_checkpoint(_CHECKPOINT)
    owner = store.get_state("cluster.fingerprint")
    fp = job.fingerprint().encode()
    if cp is not None and not job.restart and owner != fp:
        store.close()
        msg = (
            f"the store {job.db} holds a checkpoint of another replay (other inputs, tasks file "
            "or partitioning); pass --restart to discard it, or use another --db"
        )
        raise StorageError(msg)
    if cp is not None and job.restart:
        store.delete_checkpoint(_CHECKPOINT)
        cp = None
    store.put_state("cluster.fingerprint", fp)
    return store, cp


def _report(path: str | None, lines: int) -> None:
    if path is None:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(str(lines))
    os.replace(tmp, path)


def run_partition(job: PartitionJob) -> PartitionResult:
    """Replay the devices of partition ``job.index`` and write its part file.

    Raises:
        StorageError: the store holds a checkpoint of another replay (``restart`` discards it).
        ConfigError: the tasks file is refused.
    """
    config = parse_tasks(job.tasks_text, source=job.tasks_source)
    engine = build_engine(config)
    res = PartitionResult(job.index, pid=os.getpid())
    store, cp = _open_store(job)
    first: dict[str, int] = {}
    if cp is not None:
        first = _restore(cp.snapshot, engine, res)
        res.resumed_at = cp.position
    part = _Part(job.part_path, cp.out_offset if cp else None, job.ordered)
    # as in the single-process replay: the compiled trigger tables live all along; keep the
    # collector from walking them again and again
    gc.freeze()
    t0 = time.perf_counter()
    try:
        with collector_off():  # only streamfeat's stages run in this loop (._collector)
            _loop(job, engine, store, part, res, first, cp.position if cp else 0)
        final = engine.close()
        by_device: dict[str, list[dict[str, Any]]] = {}
        for r in final:
            by_device.setdefault(r["device"], []).append(r)
        for device, recs in by_device.items():
            part.write(FINAL_BASE + first[device], recs, res)
        part.durable_offset()
        if store is not None:
            with store.transaction():
                store.delete_checkpoint(_CHECKPOINT)
                store.incr("replay.completed")
    finally:
        gc.unfreeze()
        part.close()
        if store is not None:
            store.close()
    res.seconds = time.perf_counter() - t0
    res.events = engine.events
    res.devices = engine.devices
    res.stage_seconds = engine.stage_seconds()
    res.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return res


def _reader(job: PartitionJob) -> tuple[Iterator[tuple[Any, str]], Any, Any]:
    """The input units of ``job``, how to route one, how to parse one (JSONL: lines)."""
    if job.fmt == "msgpack":
        from streamfeat.replay._cluster_input import msgpack_units, parsed_unit, route_unit

        return msgpack_units(job.inputs), route_unit, parsed_unit
    return iter_lines(job.inputs), route, parse_line


def _loop(
    job: PartitionJob,
    engine: Any,
    store: Store | None,
    part: _Part,
    res: PartitionResult,
    first: dict[str, int],
    skip: int,
) -> None:
    me, parts = job.index, job.partitions
    process = engine.process_into
    records: list[dict[str, Any]] = []
    pending_q: list[QuarantineEntry] = []
    every = max(1, job.checkpoint_every)
    report_every = min(every, 1 << 15)
    position = 0
    units, route_unit, parse_unit = _reader(job)
    for line, source in units:
        position += 1
        if position <= skip:
            continue
        if route_unit(line, parts) == me:
            item = parse_unit(line, position, source)
            if type(item) is Event:
                if item[2] not in first:
                    first[item[2]] = position
                process(item, records)
            else:
                assert isinstance(item, QuarantineEntry)
                pending_q.append(item)
                res.quarantined += 1
                records.append({"kind": "quarantine", "line": item.position, "reason": item.reason})
            if records:
                part.write(position, records, res)
                records.clear()
        if position % report_every == 0:
            _report(job.progress_path, position)
        if store is not None and position % every == 0:
            offset = part.durable_offset()
            with store.transaction():
                store.add_quarantine(pending_q)
                store.save_checkpoint(
                    Checkpoint(
                        _CHECKPOINT, _snapshot(engine, first, res), position, offset, engine.events
                    )
                )
            pending_q.clear()
    if store is not None and pending_q:
        with store.transaction():
            store.add_quarantine(pending_q)
    res.lines = position
    _report(job.progress_path, position)
