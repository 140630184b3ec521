"""Training samples from what the endpoint stored: re-rank task records joined with clicks.

Theory of operation
-------------------
A re-rank task with ``record_inputs = true`` uploads, with each re-rank, the model inputs
it saw (:mod:`streamfeat.ranking._inputs`): the unseen candidates (row ``i`` is the item
``order[i]``), the exposure rows and the page-view rows. The label of a candidate is
whether the user **then clicked it on that feed**, read from the ``exposure`` feature
records the same device uploaded: one record per item exposed in a feed visit, with the
visit's ``page``, ``visit_start``, its close (``ts``) and ``clicked``. A candidate of a
re-rank at time ``T`` on feed ``F`` is a positive when an exposure record of the device for
that item on ``F`` has ``clicked`` and a visit that holds ``T`` (``visit_start <= T <=
ts``). Candidates never exposed have no exposure record: negatives.

Everything is read through the endpoint's records reader
(:func:`streamfeat.endpoint.iter_records`), never with SQL of its own.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat.endpoint._records import RecordQuery, RecordSource, iter_records
from streamfeat.ranking._inputs import decode_inputs

__all__ = ["Sample", "SampleStats", "label_index", "read_samples", "split_by_device"]

F32 = npt.NDArray[np.float32]
Visit = tuple[int, int]  # visit_start, close ts


@dataclass(frozen=True, slots=True)
class Sample:
    """One re-rank: the device, the model inputs (``[1, N, fields]`` each), a label per
    candidate (1.0 = clicked afterwards)."""

    device: str
    feeds: Mapping[str, F32]
    labels: F32


@dataclass(slots=True)
class SampleStats:
    """What extraction found (printed by ``streamfeat train``)."""

    task_records: int = 0
    with_inputs: int = 0
    malformed: int = 0
    no_click: int = 0
    kept: int = 0
    candidates: int = 0
    clicked: int = 0
    exposure_records: int = 0
    devices: set[str] = field(default_factory=set)


def label_index(
    rows: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str, str], list[Visit]]:
    """Index the clicked items of ``exposure`` feature records: ``(device, page, item)`` ->
    the visits ``(visit_start, ts)`` in which it was clicked.

    ``rows`` are records-reader rows of kind ``feature``; records that are not exposure
    records (no ``clicked`` / ``visit_start``) are skipped.
    """
    out: dict[tuple[str, str, str], list[Visit]] = defaultdict(list)
    for row in rows:
        rec = row.get("record")
        if not isinstance(rec, dict):
            continue
        v = rec.get("values")
        if not isinstance(v, dict) or "visit_start" not in v or "clicked" not in v:
            continue
        if v.get("clicked") is not True:
            continue
        start, ts = v.get("visit_start"), rec.get("ts")
        if type(start) is not int or type(ts) is not int:
            continue
        device = str(row.get("device", rec.get("device")))
        out[(device, str(v.get("page")), str(v.get("item")))].append((start, ts))
    return dict(out)


def _clicked(index: Mapping[tuple[str, str, str], list[Visit]], key: tuple[str, str, str],
             t: int) -> bool:  # fmt: skip
    return any(start <= t <= end for start, end in index.get(key, ()))


def held_out(device: str, holdout: float, seed: int) -> bool:
    """Whether ``device`` is in the held-out set (a hash of the seed and the device id)."""
    h = hashlib.sha256(f"{seed}:{device}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < holdout


def split_by_device(
    samples: Iterable[Sample], holdout: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Split by device: ``(train, held_out)``; about ``holdout`` of the devices are held out
    and no device has samples on both sides."""
    train: list[Sample] = []
    held: list[Sample] = []
    for s in samples:
        (held if held_out(s.device, holdout, seed) else train).append(s)
    return train, held


def _task_rows(db: str | Path | RecordSource, task: str | None) -> Iterator[dict[str, Any]]:
    yield from iter_records(db, RecordQuery(kind="task", name=task))


def read_samples(
    db: str | Path | RecordSource,
    *,
    task: str | None = None,
    max_samples: int | None = None,
    keep_no_click: bool = False,
    seed: int = 0,
) -> tuple[list[Sample], SampleStats]:
    """Build the training samples of an endpoint database (see the module doc).

    Args:
        db: the endpoint's SQLite file, or a storage object with ``iter_records``.
        task: only the records of this re-rank task (default: every task record with inputs).
        max_samples: keep at most this many, drawn uniformly (seeded) from all of them.
        keep_no_click: keep re-ranks none of whose candidates was clicked afterwards
            (dropped by default: they teach the order nothing).
        seed: the draw's seed.

    Raises:
        StorageError: no such database, or not an endpoint database.
    """
    stats = SampleStats()
    index = label_index(iter_records(db, RecordQuery(kind="feature")))
    stats.exposure_records = sum(len(v) for v in index.values())
    rng = random.Random(seed)
    kept: list[tuple[str, dict[str, Any], F32]] = []
    seen = 0
    for row in _task_rows(db, task):
        stats.task_records += 1
        rec = row["record"]
        values = rec.get("values") if isinstance(rec, dict) else None
        if not isinstance(values, dict) or "inputs" not in values:
            continue
        stats.with_inputs += 1
        order, feed, ts = values.get("order"), values.get("feed"), rec.get("ts")
        if not isinstance(order, list) or not isinstance(feed, str) or type(ts) is not int:
            stats.malformed += 1
            continue
        device = str(row["device"])
        labels = np.array([_clicked(index, (device, feed, str(i)), ts) for i in order], np.float32)
        if not labels.any() and not keep_no_click:
            stats.no_click += 1
            continue
        # reservoir sampling: a uniform draw of max_samples without holding every record
        seen += 1
        if max_samples is None or len(kept) < max_samples:
            kept.append((device, values["inputs"], labels))
        else:
            j = rng.randrange(seen)
            if j < max_samples:
                kept[j] = (device, values["inputs"], labels)
    out: list[Sample] = []
    for device, raw, labels in kept:
        try:
            feeds = decode_inputs(raw)
        except ValueError:
            stats.malformed += 1
            continue
        if feeds["candidates"].shape[1] != len(labels) or not len(labels):
            stats.malformed += 1
            continue
        out.append(Sample(device, feeds, labels))
        stats.devices.add(device)
        stats.candidates += len(labels)
        stats.clicked += int(labels.sum())
    stats.kept = len(out)
    return out, stats
