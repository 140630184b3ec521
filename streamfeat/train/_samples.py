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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat.endpoint._records import RecordQuery, RecordSource, iter_records
from streamfeat.ranking._inputs import decode_inputs

__all__ = ["Sample", "SampleStats", "label_index", "read_samples", "split_by_device"]

F32 = npt.NDArray[np.float32]
Visit = tuple[int, int, bool]  # visit_start, close ts, clicked


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
    """Index ``exposure`` feature records: ``(device, page, item)`` -> the visits
    ``(visit_start, ts, clicked)`` in which the item was exposed.

    ``rows`` are records-reader rows of kind ``feature``; records that are not exposure
    records (no ``clicked`` / ``visit_start``) are skipped.
    """
    out: dict[tuple[str, str, str], list[Visit]] = defaultdict(list)
    for row in rows:
        _add_label(out, row)
    return dict(out)


def _add_label(out: dict[tuple[str, str, str], list[Visit]], row: Mapping[str, Any]) -> None:
    rec = row.get("record")
    if not isinstance(rec, dict):
        return
    v = rec.get("values")
    if not isinstance(v, dict) or "visit_start" not in v or "clicked" not in v:
        return
    start, ts = v.get("visit_start"), rec.get("ts")
    if type(start) is not int or type(ts) is not int:
        return
    device = str(row.get("device", rec.get("device")))
    out[(device, str(v.get("page")), str(v.get("item")))].append(
        (start, ts, v.get("clicked") is True)
    )


def _outcome(index: Mapping[tuple[str, str, str], list[Visit]], key: tuple[str, str, str],
             t: int) -> int:  # fmt: skip
    """1: clicked in a visit holding ``t``; 0: exposed there, not clicked; -1: not exposed."""
    out = -1
    for start, end, clicked in index.get(key, ()):
        if start <= t <= end:
            if clicked:
                return 1
            out = 0
    return out


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


#: how many times ``max_samples`` re-ranks the single pass keeps before labels are known
OVERDRAW = 4


def read_samples(
    db: str | Path | RecordSource,
    *,
    task: str | None = None,
    max_samples: int | None = None,
    keep_no_click: bool = False,
    exposed_only: bool = False,
    seed: int = 0,
) -> tuple[list[Sample], SampleStats]:
    """Build the training samples of an endpoint database (see the module doc).

    One pass over the stored records: exposure records go into the label index, re-rank
    records with inputs are decoded at once into float32 arrays (a uniform, seeded reservoir
    of ``OVERDRAW * max_samples`` of them), and the labels are joined at the end. When more
    than ``max_samples`` have a click to come, a seeded uniform draw keeps ``max_samples``.

    Args:
        db: the endpoint's SQLite file, or a storage object with ``iter_records``.
        task: only the records of this re-rank task (default: every task record with inputs).
        max_samples: keep at most this many, drawn uniformly (seeded).
        keep_no_click: keep re-ranks none of whose candidates was clicked afterwards
            (dropped by default: they teach the order nothing).
        exposed_only: keep only the candidates the user saw afterwards in that visit (an
            exposure record says so): the model then learns the chance of a click once an
            item is seen, not whether the user scrolled that far.
        seed: the draw's seed.

    Raises:
        StorageError: no such database, or not an endpoint database.
    """
    stats = SampleStats()
    index: dict[tuple[str, str, str], list[Visit]] = defaultdict(list)
    rng = random.Random(seed)
    cap = None if max_samples is None else OVERDRAW * max_samples
    pool: list[tuple[str, str, int, list[str], dict[str, F32]]] = []
    seen = 0
    for row in iter_records(db, RecordQuery()):
        kind = row.get("kind")
        if kind == "feature":
            _add_label(index, row)
            continue
        if kind != "task" or (task is not None and row.get("name") != task):
            continue
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
        if not order:  # every candidate was seen already: nothing to order, nothing to learn
            stats.no_click += 1
            continue
        seen += 1
        j = len(pool) if cap is None or len(pool) < cap else rng.randrange(seen)
        if cap is not None and j >= cap:
            continue
        try:
            feeds = decode_inputs(values["inputs"])
        except ValueError:
            stats.malformed += 1
            continue
        if feeds["candidates"].shape[1] != len(order):
            stats.malformed += 1
            continue
        entry = (str(row["device"]), feed, ts, [str(i) for i in order], feeds)
        if j == len(pool):
            pool.append(entry)
        else:
            pool[j] = entry
    stats.exposure_records = sum(1 for v in index.values() for e in v if e[2])
    out: list[Sample] = []
    for device, feed, ts, order, feeds in pool:
        outcome = np.array([_outcome(index, (device, feed, i), ts) for i in order], np.int8)
        if exposed_only:  # rows the user never saw afterwards leave the sample
            keep = outcome >= 0
            if not keep.all():
                feeds = {**feeds, "candidates": feeds["candidates"][:, keep]}
                outcome = outcome[keep]
        labels = (outcome > 0).astype(np.float32)
        if not len(labels) or (not labels.any() and not keep_no_click):
            stats.no_click += 1
            continue
        out.append(Sample(device, feeds, labels))
    if max_samples is not None and len(out) > max_samples:
        out = [out[i] for i in sorted(rng.sample(range(len(out)), max_samples))]
    for smp in out:
        stats.devices.add(smp.device)
        stats.candidates += len(smp.labels)
        stats.clicked += int(smp.labels.sum())
    stats.kept = len(out)
    return out, stats
