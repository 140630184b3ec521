"""Replay on a Dask cluster: one task per device partition, then the parts merged into OUT.

``run_cluster_replay`` connects to a cluster (``local:N`` starts a ``distributed.LocalCluster``
of N single-threaded worker processes on 127.0.0.1; ``tcp://HOST:PORT`` uses an existing
scheduler), submits one :func:`~streamfeat.replay._partition.run_partition` task per partition
and waits. Dask reschedules the task of a worker that dies on another worker; the task starts
its partition over (or, with ``db``, resumes it from its last checkpoint), so the output stays
exact. The parts and progress files live in a work directory beside OUT (``db``: inside it,
kept for resuming), which every worker must see: on a multi-machine cluster it is on a shared
filesystem, like the inputs.

OUT is then the concatenation of the parts (per device, the records and order of a
single-process replay; devices grouped by partition) or, with ``ordered``, their merge on the
input position (byte-identical to a single-process replay).
"""

from __future__ import annotations

import contextlib
import glob
import heapq
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from streamfeat.errors import ConfigError
from streamfeat.io._readers import detect_format
from streamfeat.replay._partition import PartitionJob, PartitionResult, run_partition
from streamfeat.replay._replay import ReplaySummary
from streamfeat.tasks import TasksConfig

__all__ = [
    "ClusterReplayOptions",
    "ClusterReplaySummary",
    "expand_inputs",
    "input_format",
    "parse_cluster",
    "run_cluster_replay",
]

_INSTALL = "--cluster needs Dask: pip install 'streamfeat[cluster]'"


@dataclass(frozen=True)
class ClusterReplayOptions:
    """A partitioned replay.

    Attributes:
        events: input files, replayed as if concatenated in this order (JSONL, ``.gz`` ok).
        config: the tasks file.
        out: OUT (a file; not ``-``).
        cluster: ``local:N`` or ``tcp://HOST:PORT``.
        partitions: device partitions (default: the number of workers).
        ordered: merge OUT on input position (byte-identical to a single-process replay).
        db: a directory for per-partition checkpoint stores (resume after a kill).
        checkpoint_every: input lines between checkpoints.
        restart: discard checkpoints of another replay.
        fmt: the input format, ``jsonl`` or ``msgpack`` (None: from the names, which must
            then agree).
    """

    events: tuple[str, ...]
    config: TasksConfig
    out: str
    cluster: str = "local:2"
    partitions: int | None = None
    ordered: bool = False
    db: str | None = None
    checkpoint_every: int = 50_000
    restart: bool = False
    fmt: str | None = None


@dataclass
class ClusterReplaySummary(ReplaySummary):
    """The replay summary over the whole cluster, plus how the work was split.

    ``stage_seconds`` are summed over partitions (engine time, not wall time); ``seconds`` is
    the wall time of the whole run (cluster start excluded when a client is passed in).
    """

    partitions: int = 0
    workers: int = 0
    partition_seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = super().as_dict()
        d["cluster"] = {
            "partitions": self.partitions,
            "workers": self.workers,
            "partition_seconds": [round(x, 3) for x in self.partition_seconds],
        }
        return d


def parse_cluster(spec: str) -> tuple[str, int | str]:
    """``local:N`` -> ("local", N); ``tcp://H:P`` -> ("tcp", spec).

    Raises:
        ValueError: anything else.
    """
    if spec.startswith("local:"):
        n = spec[6:]
        if not n.isdigit() or not 1 <= int(n) <= 256:
            msg = f"--cluster local:N needs N from 1 to 256, got {spec!r}"
            raise ValueError(msg)
        return "local", int(n)
    if spec.startswith("tcp://") and ":" in spec[6:]:
        return "tcp", spec
    msg = f"--cluster must be local:N or tcp://HOST:PORT, got {spec!r}"
    raise ValueError(msg)


def expand_inputs(patterns: list[str], fmt: str | None = None) -> tuple[str, ...]:
    """Expand globs (each sorted) in argument order; a name without glob characters is kept.

    Args:
        patterns: file names and globs.
        fmt: the input format every file is read in (None: each name's, and they must agree).

    Raises:
        ConfigError: a pattern matches nothing, a file is missing, or the names mix formats.
    """
    out: list[str] = []
    for pat in patterns:
        if pat == "-":
            msg = "--cluster reads files, not standard input"
            raise ConfigError(msg)
        if glob.has_magic(pat):
            found = sorted(glob.glob(pat))
            if not found:
                msg = f"EVENTS pattern {pat!r} matches no file"
                raise ConfigError(msg)
            out.extend(found)
        elif not Path(pat).is_file():
            msg = f"EVENTS {pat!r} is not a file"
            raise ConfigError(msg)
        else:
            out.append(pat)
    if fmt is None:
        found_fmts = {detect_format(name) for name in out}
        if len(found_fmts) > 1:
            msg = (
                "--cluster reads one format: the EVENTS mix JSON lines and msgpack "
                f"({', '.join(out)}); replay them separately, or pass --format"
            )
            raise ConfigError(msg)
    return tuple(str(Path(n).resolve()) for n in out)


def input_format(inputs: tuple[str, ...], fmt: str | None) -> str:
    """The format the partitions read ``inputs`` in: ``fmt``, or the names' own."""
    return fmt or (detect_format(inputs[0]) if inputs else "jsonl")


def _client(spec: str) -> tuple[Any, Any]:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(_INSTALL) from exc
    kind, arg = parse_cluster(spec)
    dist: Any = distributed  # untyped package: reached through Any
    if kind == "local":
        cluster = dist.LocalCluster(
            n_workers=int(arg),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
        return dist.Client(cluster), cluster
    return dist.Client(str(arg), timeout=30), None


def _work_dir(opts: ClusterReplayOptions) -> Path:
    if opts.db is not None:
        d = Path(opts.db)
    else:
        # OUT on standard output: the parts go to the current folder (seen by the workers of
        # a local cluster; a remote one needs it on a shared filesystem, as for a file OUT)
        base = f"streamfeat-replay-{uuid.uuid4().hex[:12]}" if opts.out == "-" else opts.out
        d = Path(f"{base}.parts").resolve()
        shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_cluster_replay(
    opts: ClusterReplayOptions,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    client: Any = None,
) -> ClusterReplaySummary:
    """Replay ``opts.events`` on a Dask cluster and return the whole cluster's summary.

    Args:
        opts: the replay.
        progress: called now and then with (input lines read by all partitions, total).
        client: an existing ``distributed.Client`` (``opts.cluster`` is then not used).

    Raises:
        ConfigError: Dask is missing, or the cluster spec or inputs are wrong.
        StorageError: a partition's store holds another replay's checkpoint.
    """
    own_cluster = None
    if client is None:
        client, own_cluster = _client(opts.cluster)
    t0 = time.perf_counter()
    try:
        parts = opts.partitions or max(1, len(client.scheduler_info()["workers"]))
        work = _work_dir(opts)
        jobs = [
            PartitionJob(
                inputs=opts.events,
                tasks_text=opts.config.text,
                tasks_source=opts.config.source or "<tasks>",
                partitions=parts,
                index=i,
                part_path=str(work / f"part-{i:04d}.jsonl"),
                ordered=opts.ordered,
                db=str(work / f"part-{i:04d}.sqlite") if opts.db else None,
                checkpoint_every=opts.checkpoint_every,
                restart=opts.restart,
                progress_path=str(work / f"part-{i:04d}.progress"),
                fmt=input_format(opts.events, opts.fmt),
            )
            for i in range(parts)
        ]
        results = _run(client, jobs, progress)
        _merge(jobs, opts.out, opts.ordered)
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()
    seconds = time.perf_counter() - t0
    for job in jobs:
        for path in (job.part_path, job.progress_path):
            if path is not None:
                Path(path).unlink(missing_ok=True)
    if opts.db is None:
        shutil.rmtree(work, ignore_errors=True)
    return _summary(results, opts, seconds)


def _run(
    client: Any, jobs: list[PartitionJob], progress: Callable[[int, int | None], None] | None
) -> list[PartitionResult]:
    import distributed

    wait: Any = distributed.wait
    run = uuid.uuid4().hex[:12]  # keys unique per run: two replays may share a cluster
    futures = [
        client.submit(run_partition, job, key=f"streamfeat-partition-{job.index}-{run}")
        for job in jobs
    ]
    if progress is None:
        return list(client.gather(futures))
    # a msgpack stream is counted by the partitions as they read (no total to show up front)
    total = _count_lines(jobs[0].inputs) * len(jobs) if jobs[0].fmt == "jsonl" else None
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            progress(_lines_read(jobs), total)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        wait(futures)
        results = list(client.gather(futures))
    finally:
        done.set()
        t.join()
    done_lines = _lines_read(jobs) if total is None else total
    progress(done_lines, total)
    return results


def _count_lines(inputs: tuple[str, ...]) -> int:
    from streamfeat.io._readers import InputFile

    n = 0
    for name in inputs:
        src = InputFile(name)
        try:
            while chunk := src.stream.read(1 << 20):
                n += chunk.count(b"\n")
        finally:
            src.close()
    return n


def _lines_read(jobs: list[PartitionJob]) -> int:
    n = 0
    for job in jobs:
        with contextlib.suppress(OSError, ValueError):
            n += int(Path(job.progress_path or "").read_text() or 0)
    return n


def _merge(jobs: list[PartitionJob], out: str, ordered: bool) -> None:
    if out == "-":
        import sys

        dst = sys.stdout.buffer
        _merge_into(jobs, dst, ordered)
        dst.flush()
        return
    tmp = f"{out}.tmp"
    with open(tmp, "wb", buffering=1 << 20) as dst:
        _merge_into(jobs, dst, ordered)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, out)


def _merge_into(jobs: list[PartitionJob], dst: BinaryIO, ordered: bool) -> None:
    if ordered:
        _merge_ordered([job.part_path for job in jobs], dst)
    else:
        for job in jobs:
            with open(job.part_path, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)


def _keyed(path: str) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb", buffering=1 << 20) as fh:
        for line in fh:
            tab = line.index(b"\t")
            yield int(line[:tab]), line[tab + 1 :]


def _merge_ordered(paths: list[str], dst: BinaryIO) -> None:
    # keys are unique to one partition and non-decreasing within each part: a stable merge on
    # the key is the single-process order
    write = dst.write
    for _, line in heapq.merge(*(_keyed(p) for p in paths), key=lambda kv: kv[0]):
        write(line)


def _summary(
    results: list[PartitionResult], opts: ClusterReplayOptions, seconds: float
) -> ClusterReplaySummary:
    s = ClusterReplaySummary()
    stages: dict[str, float] = {}
    for r in results:
        s.events += r.events
        s.quarantined += r.quarantined
        s.devices += r.devices
        s.records.update(r.records)
        s.bytes_records += r.bytes_records
        s.resumed_at = max(s.resumed_at, r.resumed_at)
        s.peak_rss_mb = max(s.peak_rss_mb, r.peak_rss_mb)
        for name, sec in r.stage_seconds.items():
            stages[name] = stages.get(name, 0.0) + sec
    s.stage_seconds = stages  # summed over partitions: engine time, not wall time
    s.bytes_raw = sum(_raw_size(n) for n in opts.events)
    s.seconds = seconds
    s.partitions = len(results)
    s.workers = len({r.pid for r in results})
    s.partition_seconds = [r.seconds for r in results]
    return s


def _raw_size(name: str) -> int:
    if name.endswith(".gz"):
        from streamfeat.io._readers import InputFile

        src = InputFile(name)
        try:
            n = 0
            while chunk := src.stream.read(1 << 20):
                n += len(chunk)
            return n
        finally:
            src.close()
    return os.path.getsize(name)
