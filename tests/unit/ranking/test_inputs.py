"""The model inputs a re-rank task record carries: they decode to what the model saw (within
the 1e-4 quantisation), candidate rows follow the record's order, they go through the compact
codec exactly, and a malformed value is refused with the key named."""

from __future__ import annotations

import numpy as np
import pytest

from streamfeat.encoders import Encoder, decode_batch, index_schemas, schemas_for
from streamfeat.models.edgerec import input_specs
from streamfeat.ranking._catalogue import page_of
from streamfeat.ranking._context import build_inputs
from streamfeat.ranking._inputs import decode_inputs, encode_inputs
from streamfeat.ranking._page import FeedState
from streamfeat.tasks import parse_tasks

from .test_page import FEED, ev

ITEMS = [str((100 + i % 7) * 100_000 + i) for i in range(12)]
VIEWS = [{"category": 104.0, "dwell_ms": 5300.0, "add_cart": 1.0, "share": 0.0}]


def _state() -> FeedState:
    st = FeedState(page_of(FEED, "p1", ITEMS))
    for t, item in enumerate(ITEMS[:3]):
        st.observe(ev(t * 10, "exposure", item)._replace(args={"pos": t, "dur_ms": 733}))
    st.observe(ev(40, "click", ITEMS[1]))
    return st


def test_inputs_round_trip_within_the_quantisation() -> None:
    snap = _state().snapshot(50)
    order = [c.item for c in snap.unseen][::-1]  # a re-ranked order
    enc = encode_inputs(snap, VIEWS, order)
    dec = decode_inputs(enc)
    by_item = {c.item: c for c in snap.unseen}
    want = build_inputs(input_specs(), snap, VIEWS)
    ref_rows = np.array([[by_item[i].features[f] for f in ("category", "server_score",
                          "price_level", "age_h")] for i in order], np.float32)  # fmt: skip
    np.testing.assert_allclose(dec["candidates"][0], ref_rows, atol=5.1e-5)
    for name in ("exposures", "page_views"):
        np.testing.assert_allclose(dec[name], want[name], atol=5.1e-5)
    assert dec["exposures"].shape == (1, 4, 11)  # begin row + 3 exposed
    assert dec["page_views"].shape == (1, 2, 13)
    # integer columns are exact; the server score is kept to 4 decimals
    assert enc["candidates"]["q"] == [0, 4, 0, 0]


def test_inputs_go_through_the_compact_codec_exactly() -> None:
    snap = _state().snapshot(50)
    order = [c.item for c in snap.unseen]
    values = {"feed": FEED, "page_id": "p1", "reason": "click", "order": order,
              "inputs": encode_inputs(snap, VIEWS, order)}  # fmt: skip
    cfg = parse_tasks('[models.m]\nfile = "builtin:edgerec-small"\n'
                      '[tasks.rr]\nkind = "edgerec"\nmodel = "m"\n')  # fmt: skip
    schemas = schemas_for(cfg)
    rec = {"kind": "task", "task": "rr", "device": "d1", "ts": 1_767_225_600_000, "values": values}
    data = Encoder("compact", schemas).encode_batch([rec])
    (back,) = decode_batch(data, index_schemas(schemas))
    assert back == rec


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.pop("exposures"),
        lambda e: e["candidates"].update(rows=-1),
        lambda e: e["candidates"].update(q=[0, 4]),
        lambda e: e["page_views"].update(v=[1, 2, 3]),
        lambda e: e["exposures"].update(v=["x"] * len(e["exposures"]["v"])),
        lambda e: e["exposures"].update(rows=0, v=[]),
    ],
)
def test_malformed_inputs_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    snap = _state().snapshot(50)
    enc = encode_inputs(snap, VIEWS, [c.item for c in snap.unseen])
    mutate(enc)
    with pytest.raises(ValueError, match="inputs"):
        decode_inputs(enc)
    with pytest.raises(ValueError, match="inputs"):
        decode_inputs([1])
