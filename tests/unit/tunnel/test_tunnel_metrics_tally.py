"""The endpoint's per-batch metrics are plain numbers changed without prometheus_client's
locks (``Tally``, ``observe_ack``): what ``/metrics`` exposes must be what prometheus_client's
own Counter and Histogram give for the same updates (a reference in another registry). And
the writer's fast ``StoredBatch`` constructor makes the same object as the dataclass."""

from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
import pytest
from hypothesis import given
from prometheus_client import CollectorRegistry, Counter, Histogram

from streamfeat.endpoint._metrics import TunnelMetrics
from streamfeat.endpoint._storage import StoredBatch
from streamfeat.endpoint._writer import stored_batch

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
seconds = st.one_of(
    st.sampled_from([0.0, *BUCKETS]),  # on the bounds: le is inclusive
    st.floats(0.0, 50.0, allow_nan=False),
)


def _samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, str], float]:
    out = {}
    for fam in registry.collect():
        for s in fam.samples:
            if s.name.startswith(prefix) and not s.name.endswith("_created"):
                out[(s.name.removeprefix(prefix), str(sorted(s.labels.items())))] = s.value
    return out


@given(
    acks=st.lists(seconds, max_size=40),
    sizes=st.lists(st.integers(0, 65_000), max_size=40),
    new=st.lists(st.booleans(), max_size=40),
)
def test_tallied_metrics_expose_what_prometheus_would(
    acks: list[float], sizes: list[int], new: list[bool]
) -> None:
    m = TunnelMetrics()
    ref = CollectorRegistry()
    hist = Histogram("ack", "", buckets=BUCKETS, registry=ref)
    nbytes = Counter("bytes", "", registry=ref)
    batches = Counter("batches", "", ["result"], registry=ref)
    for result in ("stored", "duplicate"):  # the endpoint makes both children at its start
        batches.labels(result)
    for a in acks:
        m.observe_ack(a)
        hist.observe(a)
    for n in sizes:
        m.bytes_tally.value += n
        nbytes.inc(n)
    for i, is_new in enumerate(new):
        # the hot path and the general one (Counter.inc over the tally) both count
        if i % 2:
            (m.stored_tally if is_new else m.duplicates_tally).value += 1
        else:
            (m.stored if is_new else m.duplicates).inc()
        batches.labels("stored" if is_new else "duplicate").inc()
    got = _samples(m.registry, "streamfeat_tunnel_ack_seconds")
    want = _samples(ref, "ack")
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert abs(got[k] - v) <= 1e-9 * max(1.0, abs(v)), k
    assert _samples(m.registry, "streamfeat_tunnel_payload_bytes") == _samples(ref, "bytes")
    assert _samples(m.registry, "streamfeat_tunnel_batches") == _samples(ref, "batches")
    # the text exposition reads the same numbers
    text = m.render().decode()
    assert f"streamfeat_tunnel_ack_seconds_count {float(len(acks))}" in text
    assert f"streamfeat_tunnel_payload_bytes_total {float(sum(sizes))}" in text


@given(
    device=st.text(max_size=20),
    batch_id=st.binary(min_size=16, max_size=16),
    payload=st.binary(max_size=200),
    received=st.floats(allow_nan=False),
)
def test_the_fast_stored_batch_is_the_dataclass(
    device: str, batch_id: bytes, payload: bytes, received: float
) -> None:
    """The writer's per-batch ``stored_batch`` (slots set directly) makes the very object the
    frozen dataclass makes: equal, same hash and repr, still frozen."""
    fast = stored_batch(device, batch_id, payload, received)
    ref = StoredBatch(device, batch_id, payload, received)
    assert stored_batch is not StoredBatch
    assert type(fast) is StoredBatch
    assert fast == ref
    assert hash(fast) == hash(ref)
    assert repr(fast) == repr(ref)
    assert dataclasses.astuple(fast) == (device, batch_id, payload, received, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.payload = b""  # type: ignore[misc]
