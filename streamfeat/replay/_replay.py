"""Replay a recorded event log through an engine (SPEC section 6), crash-safely.

Theory of operation
-------------------
Events are read in file order and each goes through one :class:`~streamfeat.Engine`, which keys
all state by device, so every device is replayed as its own stream. Records are written to OUT as
JSON lines (attachments stripped); invalid input becomes a ``quarantine`` record in OUT and a row
in the store's quarantine table.

With a store (``--db``), every ``checkpoint_every`` events the replay flushes and fsyncs OUT, then
commits in ONE transaction: the engine snapshot, the number of input units consumed, OUT's byte
length, and the quarantine entries seen since the last checkpoint. A replay that finds a
checkpoint of the same input and tasks file resumes from it: OUT is truncated to the recorded
length, the input is skipped to the recorded position, the engine restored. Whatever happened
after the checkpoint (records written, quarantine rows) is therefore produced again exactly
once: nothing lost, nothing twice, even after ``kill -9``. The last quarantine entries are
committed in the same transaction that deletes the checkpoint at the end, so a kill at the very
end can't add them twice. A finished replay deletes its checkpoint, so running it again starts
over and rewrites the same output; a replay that starts over first deletes the quarantine rows
of its input (the same EVENTS name), so the rows are never doubled by a rerun either.

Each checkpoint also records the input's identity (size, modification time, and a hash of its
first 64 KiB). A resume whose input no longer matches (another file put in its place under the
same name) is refused: resuming it at the old line number would silently mix two inputs.

After each checkpoint the store's retention (``[store] retention`` and ``max_mb``) runs, evicting
old quarantine rows (and records) with every eviction counted; the summary reports them.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import resource
import sqlite3
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

from streamfeat._event import Event
from streamfeat.clock import Clock, SystemClock
from streamfeat.engine._build import build_engine
from streamfeat.errors import InputError, OutputError, StorageError, StreamfeatError
from streamfeat.io._readers import InputFile, read_events
from streamfeat.io._store import Checkpoint, QuarantineEntry, Store
from streamfeat.replay._collector import collector_off
from streamfeat.replay._drive import drive, write_records
from streamfeat.replay._tasks import ReplayTasks
from streamfeat.tasks import TasksConfig

__all__ = ["ReplayObserver", "ReplayOptions", "ReplaySummary", "run_replay"]

_CHECKPOINT = "replay"
_INPUT_KEY = "replay.input"  # the identity of the input a checkpoint covers (kv state)
_IDENTITY_BLOCK = 1 << 16  # bytes of the input hashed into its identity
_OBSERVE_EVERY = 1000  # events between progress samples given to an observer
_FULL_GC_EVERY = 1000  # young collections between full ones during a replay (see _run_replay)


class ReplayObserver(Protocol):
    """What a replay tells an observer (the ``--report`` collector)."""

    def event(self, ts: int) -> None:
        """A valid event with event time ``ts`` was processed."""

    def records(self, records: list[dict[str, Any]]) -> None:
        """These records were written to OUT."""

    def progress(self, wall_seconds: float, events: int) -> None:
        """``events`` events were done ``wall_seconds`` after the replay started."""


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and where to."""

    events: str
    config: TasksConfig
    out: str
    db: str | None = None
    speed: float | None = None
    sizes: bool = False
    checkpoint_every: int = 50_000
    fmt: str | None = None
    restart: bool = False
    run_tasks: bool = False  # run [tasks] code on the trigger records (replay/_tasks.py)


@dataclass
class ReplaySummary:
    """What a replay did; ``as_dict()`` is the ``--json`` output."""

    events: int = 0
    quarantined: int = 0
    devices: int = 0
    records: Counter[str] = field(default_factory=Counter)
    bytes_raw: int = 0
    bytes_records: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    resumed_at: int = 0
    evicted: Counter[str] = field(default_factory=Counter)
    input_error: str | None = None  # EVENTS could not be read to its end (its tail quarantined)
    sizes: dict[str, Any] | None = None
    size_table: Any = None  # a rich renderable of the size report, with --sizes
    tasks: dict[str, dict[str, int]] | None = None  # per task counters, with --run-tasks
    idled: int | None = None  # devices advanced by [engine] idle (None: idle off)

    def as_dict(self) -> dict[str, Any]:
        rate = self.events / self.seconds if self.seconds else 0.0
        return {
            "events": self.events,
            "quarantined": self.quarantined,
            "devices": self.devices,
            "records": dict(sorted(self.records.items())),
            "bytes": {"raw": self.bytes_raw, "records": self.bytes_records},
            "seconds": round(self.seconds, 3),
            "events_per_s": round(rate),
            "stages": {
                name: {
                    "seconds": round(s, 3),
                    "events_per_s": round(self.events / s) if s else None,
                }
                for name, s in self.stage_seconds.items()
            },
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "resumed_at": self.resumed_at,
            "evicted": dict(sorted(self.evicted.items())),
            "input_error": self.input_error,
            "sizes": self.sizes,
            **({"tasks": self.tasks} if self.tasks is not None else {}),
            **({"idled": self.idled} if self.idled is not None else {}),
        }


def _fingerprint(opts: ReplayOptions) -> str:
    h = hashlib.sha256()
    h.update(str(Path(opts.events).resolve() if opts.events != "-" else "-").encode())
    h.update(b"\0" + opts.config.text.encode())
    if opts.run_tasks:  # OUT holds task records too: not the same output
        h.update(b"\0run-tasks")
    return h.hexdigest()


def _input_identity(events: str) -> bytes | None:
    """Size, modification time and a hash of the first block of the input file (None: stdin)."""
    if events == "-":
        return None
    path = Path(events)
    st = path.stat()
    with path.open("rb") as fh:
        head = hashlib.sha256(fh.read(_IDENTITY_BLOCK)).hexdigest()
    ident = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": head}
    return orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)


def _check_identity(store: Store, events: str, current: bytes | None) -> None:
    saved = store.get_state(_INPUT_KEY)
    if saved is None or current is None or saved == current:
        return  # a checkpoint written before identities were recorded can't be checked
    old, new = orjson.loads(saved), orjson.loads(current)
    what = [k for k in ("size", "mtime_ns", "head_sha256") if old.get(k) != new.get(k)]
    msg = (
        f"the input {events} is not the file the checkpoint in {store.path} was taken from "
        f"({', '.join(what)} changed); pass --restart to replay it from the start"
    )
    raise StorageError(msg)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Output:
    """OUT as a file we can fsync and truncate back to a checkpoint."""

    def __init__(self, path: str, resume_offset: int | None) -> None:
        self.path = path
        if path == "-":
            self.fh: BinaryIO = os.fdopen(os.dup(1), "wb", buffering=1 << 20)
            return
        try:
            if resume_offset is None:
                self.fh = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
            else:
                self.fh = open(path, "r+b", buffering=1 << 20)  # noqa: SIM115
                self.fh.truncate(resume_offset)
                self.fh.seek(resume_offset)
        except OSError as exc:
            msg = f"can't write OUT {path}: {_strerror(exc)}"
            raise OutputError(msg) from exc

    def durable_offset(self) -> int:
        """Flush OUT to disk and return its length (0 for a pipe, which can't be resumed)."""
        self.fh.flush()
        if not stat.S_ISREG(os.fstat(self.fh.fileno()).st_mode):
            return 0
        os.fsync(self.fh.fileno())
        return self.fh.tell()

    def close(self) -> None:
        # fails only after a write already failed (a full disk): that error is the one raised
        with contextlib.suppress(OSError):
            self.fh.close()


def _strerror(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def run_replay(
    opts: ReplayOptions,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    observer: ReplayObserver | None = None,
) -> ReplaySummary:
    """Replay ``opts.events`` and return the summary.

    Args:
        opts: the replay's inputs and outputs.
        progress: called now and then with (input bytes consumed, input size or None).
        clock: the clock for ``--speed`` pacing (the system clock by default).
        sleep: how to wait when pacing (injected for tests).
        observer: sees every event's ts, every record written, and the progress every
            1,000 events (``streamfeat.report.ReportCollector`` for ``--report``).

    Raises:
        StorageError: if the store holds a checkpoint of a different replay or of an input that
            changed since (use ``restart``), or the store can't be written (a full disk).
        ConfigError: if a stage refuses the tasks file.
        InputError: if EVENTS can't be opened (a missing file, a closed standard input).
        OutputError: if OUT can't be created or written (a missing folder, a full disk). The
            store's last checkpoint is intact: run again to resume from it.
    """
    try:
        return _run_replay(opts, progress, clock, sleep, observer)
    except StreamfeatError:
        raise
    except sqlite3.Error as exc:
        msg = f"the store {opts.db}: {exc}; run again to resume from the last checkpoint"
        raise StorageError(msg) from exc
    except OSError as exc:
        msg = f"can't write OUT {opts.out}: {_strerror(exc)}"
        if opts.db:
            msg += "; run again to resume from the last checkpoint"
        raise OutputError(msg) from exc


def _run_replay(
    opts: ReplayOptions,
    progress: Callable[[int, int | None], None] | None,
    clock: Clock | None,
    sleep: Callable[[float], None],
    observer: ReplayObserver | None = None,
) -> ReplaySummary:
    clock = clock or SystemClock()
    # no task reads the stages' views unless --run-tasks: the features keep no latest records
    engine = build_engine(opts.config, sizes=opts.sizes, idle=True, views=opts.run_tasks)
    summary = ReplaySummary()
    source = InputFile(opts.events)  # first: a missing input leaves the store and OUT untouched
    store: Store | None = None
    try:
        if opts.db:
            store = Store(opts.db, now_ms=lambda: int(clock.time() * 1000))
        resume = _prepare_store(store, opts, engine, summary) if store is not None else None
        out = _Output(opts.out, resume.out_offset if resume else None)
    except BaseException:
        source.close()
        if store is not None:
            store.close()
        raise
    sizes = _size_report(opts) if opts.sizes else None
    tasks: ReplayTasks | None = None
    # The compiled trigger tables are large and live for the whole replay: moving them out of the
    # collector's generations keeps every full collection from walking them again. Undone at the
    # end, so that replays run one after another in one process (tests, benchmarks) don't pile up.
    gc.freeze()
    # A replay keeps the state of every open device live, millions of objects that grow as it
    # runs; the collector's default compares each full collection against the last one's heap
    # and so walks all of them again each time the heap grows by a quarter (16 full collections,
    # most of the collector's 15 s, in a replay of the Taobao sample). A full collection after
    # every 1,000 young-generation collections (about 7 million net new containers) bounds any
    # cyclic garbage just the same; the young generations keep their thresholds. Undone at the end.
    threshold = gc.get_threshold()
    gc.set_threshold(threshold[0], threshold[1], max(threshold[2], _FULL_GC_EVERY))
    try:
        # inside the try: task code that does not import still closes OUT, EVENTS and the store
        tasks = ReplayTasks(opts.config, engine) if opts.run_tasks else None
        pending_q = _loop(
            opts, engine, tasks, store, source, out, summary, resume, progress, clock, sleep, sizes,
            observer,
        )  # fmt: skip
        if tasks is None:  # a few devices at a time: all their records are never held at once
            for final in engine.close_batches():
                _write(out, final, summary, sizes, observer)
        else:
            final = engine.close()
            final += tasks.run(final)
            _write(out, final, summary, sizes, observer)
        out.durable_offset()
        if store is not None:
            with store.transaction():  # one commit: a kill before it resumes, after it is done
                store.add_quarantine(pending_q)
                store.delete_checkpoint(_CHECKPOINT)
                store.incr("replay.completed")
            _retention(store, opts, summary)
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        if tasks is not None:
            tasks.close()
            summary.tasks = tasks.stats
        out.close()
        source.close()
        if store is not None:
            store.close()
    summary.devices = engine.devices
    summary.idled = engine.idled if engine.idle_ms is not None else None
    summary.stage_seconds = engine.stage_seconds()
    summary.peak_rss_mb = _peak_rss_mb()
    if sizes is not None:
        sizes.flush()
        summary.sizes = sizes.as_dict()
        summary.size_table = sizes.table()
    return summary


def _prepare_store(
    store: Store, opts: ReplayOptions, engine: Any, summary: ReplaySummary
) -> Checkpoint | None:
    """Resume from the store's checkpoint (its input checked), or start over; return it."""
    try:
        identity = _input_identity(opts.events)
    except OSError as exc:
        msg = f"can't read {opts.events}: {_strerror(exc)}"
        raise InputError(msg) from exc
    resume = _resume_point(store, _fingerprint(opts), opts.restart)
    if resume is not None:
        _check_identity(store, opts.events, identity)
        engine.restore(resume.snapshot)
        summary.resumed_at = resume.position
        return resume
    with store.transaction():  # starting over: this input's quarantine rows are written again
        store.db.conn.execute("DELETE FROM quarantine WHERE source = ?", (opts.events,))
        store.put_state(_INPUT_KEY, identity or b"")
    return None


def _resume_point(store: Store, fingerprint: str, restart: bool) -> Checkpoint | None:
    cp = store.load_checkpoint(_CHECKPOINT)
    owner = store.get_state("replay.fingerprint")
    if cp is not None and not restart and owner != fingerprint.encode():
        msg = (
            f"the store {store.path} holds a checkpoint of another replay (other input or tasks "
            "file); pass --restart to discard it, or use another --db"
        )
        raise StorageError(msg)
    if cp is not None and restart:
        store.delete_checkpoint(_CHECKPOINT)
        cp = None
    store.put_state("replay.fingerprint", fingerprint.encode())
    return cp


def _write(
    out: _Output,
    records: list[dict[str, Any]],
    summary: ReplaySummary,
    sizes: Any,
    observer: ReplayObserver | None = None,
) -> None:
    summary.bytes_records += write_records(out.fh.write, records, summary.records)
    if sizes is not None:
        sizes.add_many(r for r in records if r["kind"] != "quarantine")
    if observer is not None:
        observer.records(records)


def _loop(
    opts: ReplayOptions,
    engine: Any,
    tasks: ReplayTasks | None,
    store: Store | None,
    source: InputFile,
    out: _Output,
    summary: ReplaySummary,
    resume: Checkpoint | None,
    progress: Callable[[int, int | None], None] | None,
    clock: Clock,
    sleep: Callable[[float], None],
    sizes: Any,
    observer: ReplayObserver | None = None,
) -> list[QuarantineEntry]:
    """Run the input through the engine; return the quarantine entries not yet committed."""
    position = resume.position if resume else 0
    start_raw = _uncompressed_pos(source)
    pending_q: list[QuarantineEntry] = []
    records: list[dict[str, Any]] = []
    process = engine.process_into
    pace = _Pacer(opts.speed, clock, sleep) if opts.speed else None
    every = max(1, opts.checkpoint_every)
    since_cp = 0
    t0 = time.perf_counter()
    items = read_events(source, fmt=opts.fmt, skip=position)
    checkpoint = partial(_at_checkpoint, opts, engine, store, source, out, summary, pending_q,
                         progress)  # fmt: skip
    if pace is None and tasks is None and observer is None and sizes is None:
        # nothing else sees each event: the compiled loop
        _drive_loop(items, process, out, summary, pending_q, every, position, checkpoint)
        return _loop_end(source, summary, start_raw, progress, observer, t0, pending_q)
    if observer is not None:
        observer.progress(0.0, 0)
    for item in items:
        position += 1
        if type(item) is Event:
            if pace is not None:
                pace.wait(item.ts)
            process(item, records)
            if tasks is not None and records:
                records += tasks.run(records)
            summary.events += 1
            if observer is not None:
                observer.event(item.ts)
                if summary.events % _OBSERVE_EVERY == 0:
                    observer.progress(time.perf_counter() - t0, summary.events)
        else:
            assert isinstance(item, QuarantineEntry)
            pending_q.append(item)
            summary.quarantined += 1
            records.append({"kind": "quarantine", "line": item.position, "reason": item.reason})
        if records:
            _write(out, records, summary, sizes, observer)
            records.clear()
        since_cp += 1
        if since_cp >= every:
            since_cp = 0
            checkpoint(position)
    return _loop_end(source, summary, start_raw, progress, observer, t0, pending_q)


def _drive_loop(
    items: Iterator[Event | QuarantineEntry],
    process: Callable[[Event, list[dict[str, Any]]], None],
    out: _Output,
    summary: ReplaySummary,
    pending_q: list[QuarantineEntry],
    every: int,
    position: int,
    checkpoint: Callable[[int], None],
) -> None:
    """The replay's loop when nothing but the engine sees each event: :func:`drive`, compiled,
    a checkpoint interval at a time, with the collector off (:mod:`._collector`)."""
    since_cp = 0
    write = out.fh.write
    kinds: dict[str, int] = {}  # records by kind: a plain dict is cheaper to count in
    with collector_off():
        while True:
            limit = every - since_cp
            taken, events, quarantined, written = drive(
                items, process, write, kinds, pending_q, limit
            )
            summary.records.update(kinds)
            kinds.clear()
            position += taken
            summary.events += events
            summary.quarantined += quarantined
            summary.bytes_records += written
            since_cp += taken
            if since_cp >= every:
                since_cp = 0
                checkpoint(position)
            if taken < limit:
                return


def _at_checkpoint(
    opts: ReplayOptions,
    engine: Any,
    store: Store | None,
    source: InputFile,
    out: _Output,
    summary: ReplaySummary,
    pending_q: list[QuarantineEntry],
    progress: Callable[[int, int | None], None] | None,
    position: int,
) -> None:
    """Every ``checkpoint_every`` input units: the progress bar, and with a store a checkpoint
    and the store's retention."""
    if progress is not None:
        progress(source.consumed(), source.size)
    if store is not None:
        _checkpoint(store, engine, out, position, pending_q)
        _retention(store, opts, summary)


def _loop_end(
    source: InputFile,
    summary: ReplaySummary,
    start_raw: int,
    progress: Callable[[int, int | None], None] | None,
    observer: ReplayObserver | None,
    t0: float,
    pending_q: list[QuarantineEntry],
) -> list[QuarantineEntry]:
    summary.seconds = time.perf_counter() - t0
    if observer is not None:
        observer.progress(summary.seconds, summary.events)
    summary.input_error = source.read_error
    summary.bytes_raw = _uncompressed_pos(source) - start_raw
    if progress is not None:
        progress(source.consumed(), source.size)
    return pending_q


def _checkpoint(
    store: Store, engine: Any, out: _Output, position: int, pending_q: list[QuarantineEntry]
) -> None:
    offset = out.durable_offset()
    snap = engine.snapshot()
    with store.transaction():
        store.add_quarantine(pending_q)
        store.save_checkpoint(Checkpoint(_CHECKPOINT, snap, position, offset, engine.events))
    pending_q.clear()


def _retention(store: Store, opts: ReplayOptions, summary: ReplaySummary) -> None:
    """Apply the tasks file's ``[store]`` retention; every eviction is counted in the store's
    counters (by :meth:`Store.apply_retention`) and in the summary."""
    cfg = opts.config.store
    if cfg.retention or cfg.max_mb:
        summary.evicted.update(store.apply_retention(max_age_ms=cfg.retention, max_mb=cfg.max_mb))


def _uncompressed_pos(source: InputFile) -> int:
    try:
        return source.stream.tell()
    except (OSError, ValueError):
        return 0


def _size_report(opts: ReplayOptions) -> Any:
    from streamfeat.encoders import SizeReport, schemas_for

    return SizeReport(schemas_for(opts.config))


class _Pacer:
    """Sleeps so that event time runs at ``speed`` times real time (``--speed``)."""

    def __init__(self, speed: float, clock: Clock, sleep: Callable[[float], None]) -> None:
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self.origin: tuple[int, float] | None = None

    def wait(self, ts: int) -> None:
        if self.origin is None:
            self.origin = (ts, self.clock.monotonic())
            return
        ts0, wall0 = self.origin
        # event time may go backwards (SPEC section 1): such an event is simply not waited for
        due = wall0 + (ts - ts0) / 1000.0 / self.speed
        delay = due - self.clock.monotonic()
        if delay > 0:
            self.sleep(delay)
