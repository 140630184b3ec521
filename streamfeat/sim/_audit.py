"""The simulator's report: sums of the fleet processes' results, and the end-to-end audit.

The audit compares every device's ledger (a digest of each record its agent put in the outbox)
with the records the endpoint stored: each stored batch is split into items and decoded with
:func:`streamfeat.encoders.decode_batch`, with the schema sets of every tasks file of the run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from streamfeat.sim._options import SimReport

__all__ = ["audit", "percentile", "summarise"]


def percentile(values: list[float], q: float) -> float:
    """Return the nearest-rank ``q`` percentile (0-100) of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def _quantiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(values, q) * 1000, 1) for q in (50, 90, 99)} | {
        "n": len(values)
    }


def summarise(r: SimReport, results: list[dict[str, Any]], cuts: int) -> None:
    """Fill ``r`` with the sums of the fleet processes' results."""
    lat: list[float] = []
    steady: list[float] = []
    ages: list[float] = []
    versions: Counter[str] = Counter()
    records: Counter[str] = Counter()
    reranks: Counter[str] = Counter()
    rerank_ms: list[float] = []
    for res in results:
        r.cpu_s += res["cpu_s"]
        r.feed_cpu_s += res["feed_cpu_s"]
        r.max_rss_kb = max(r.max_rss_kb, res["max_rss_kb"])
        r.feed_late_ms = max(r.feed_late_ms, res["late_ms"])
        r.close_s = max(r.close_s, round(res["close_s"], 2))
        for d in res["devices"].values():
            r.events += d["events"]
            r.quarantined += d["quarantined"]
            records.update(d["records"])
            r.tasks_run += d["tasks"]
            r.payloads += d["payloads"]
            r.raw_bytes += d["raw_bytes"]
            r.json_bytes += d["json_bytes"]
            r.payload_bytes += d["payload_bytes"]
            r.waiting += d["waiting"]
            r.encode_errors += d["encode_errors"]
            r.reconnects += max(0, d["connects"] - 1)
            lat += d["latencies"]
            steady += d["latencies"][: d["steady"]]
            ages += d["ages"]
            versions[f"v{d['version']}"] += 1
            reranks.update(d.get("reranks", {}))
            rerank_ms += d.get("rerank_ms", [])
    r.records = dict(records)
    r.reranks = dict(reranks)
    r.rerank_ms = _quantiles([ms / 1000 for ms in rerank_ms])
    r.versions = dict(versions)
    r.latency_ms, r.steady_latency_ms, r.age_ms = (
        _quantiles(lat),
        _quantiles(steady),
        _quantiles(ages),
    )
    r.connections_cut = cuts
    r.cpu_s, r.feed_cpu_s = round(r.cpu_s, 2), round(r.feed_cpu_s, 2)


def audit(r: SimReport, results: list[dict[str, Any]], db: Path | str, texts: list[str]) -> None:
    """Compare every device's ledger with the records the endpoint stored (decoded)."""
    from streamfeat.encoders import decode_batch, index_schemas, schemas_for
    from streamfeat.endpoint._backend import open_storage
    from streamfeat.errors import DecodeError
    from streamfeat.sim._fleet import record_digest
    from streamfeat.tasks import parse_tasks
    from streamfeat.upload._outbox import split_items

    schemas = index_schemas(*(schemas_for(parse_tasks(t)) for t in texts))
    queued: dict[str, Counter[bytes]] = {}
    for res in results:
        for name, d in res["devices"].items():
            queued[name] = Counter({bytes(k): n for k, n in d["ledger"]})
    stored: dict[str, Counter[bytes]] = {name: Counter() for name in queued}
    acked: dict[str, set[bytes]] = {}
    for res in results:
        for name, d in res["devices"].items():
            acked[name] = {bytes(b) for b in d.get("acked_ids", ())}
    stored_ids: dict[str, set[bytes]] = {name: set() for name in queued}
    storage = open_storage(str(db))
    try:
        for batch in storage.iter_batches():
            if batch.device not in stored:
                continue  # another fleet's device on a shared server
            stored_ids[batch.device].add(batch.batch_id)
            r.batches_stored += 1
            r.stored_bytes += len(batch.payload)
            for item in split_items(batch.payload):
                try:
                    decoded = decode_batch(item, schemas)
                except DecodeError:
                    r.undecodable += 1
                    continue
                stored[batch.device].update(record_digest(x) for x in decoded)
    finally:
        storage.close()
    for name, ids in acked.items():
        r.acked_not_stored += len(ids - stored_ids[name])
    for name, want in queued.items():
        got = stored[name]
        r.queued += sum(want.values())
        r.stored += sum(got.values())
        lost = sum((want - got).values())
        r.lost += lost
        r.doubled += sum((got - want).values())
        if lost:
            r.missing[name] = lost
