"""The size report: raw, JSON and per-codec bytes per record type."""

from __future__ import annotations

import orjson

from streamfeat._event import Event
from streamfeat._records import raw_size
from streamfeat.encoders import SchemaSet, SizeReport, decode_batch, encoder_for
from tests.unit.encoders.conftest import exposure, ipv, sample_records


def test_sizes_per_type_are_the_batches_the_codecs_write(schemas: SchemaSet) -> None:
    ipvs = [
        {**ipv(item=str(i), enter=1_767_225_600_000 + 1000 * i), "_raw_bytes": 900 + i}
        for i in range(10)
    ]
    exps = [{**exposure(item=str(i)), "_raw_bytes": 300} for i in range(5)]
    rep = SizeReport(schemas, batch_records=4, codecs=("json", "msgpack", "compact"))
    rep.add_many(ipvs + exps)
    d = rep.as_dict()
    row = d["types"]["feature:ipv"]
    assert row["records"] == 10
    assert row["raw_bytes"] == sum(900 + i for i in range(10))
    assert row["json_bytes"] == sum(
        len(orjson.dumps({k: v for k, v in r.items() if k[0] != "_"})) + 1 for r in ipvs
    )
    for codec in ("json", "msgpack", "compact"):
        enc = encoder_for(codec, schemas)
        want = sum(len(enc.encode_batch(ipvs[i : i + 4])) for i in range(0, 10, 4))
        assert row["codec_bytes"][codec] == want
        assert row["reduction_pct"][codec] == 100 * (1 - want / row["raw_bytes"])
        assert row["pct_of_raw"][codec] == 100 * want / row["raw_bytes"]
    assert d["types"]["feature:exposure"]["raw_bytes"] == 1500
    # a batch never mixes devices (each device uploads its own)
    rep2 = SizeReport(schemas, batch_records=4, codecs=("compact",))
    rep2.add_many([{**r, "device": f"d{i % 2}"} for i, r in enumerate(ipvs)])
    enc = encoder_for("compact", schemas)
    per_dev = [
        [{**r, "device": f"d{i % 2}"} for i, r in enumerate(ipvs) if i % 2 == d] for d in (0, 1)
    ]
    want = sum(
        len(enc.encode_batch(recs[i : i + 4])) for recs in per_dev for i in range(0, len(recs), 4)
    )
    assert rep2.as_dict()["types"]["feature:ipv"]["codec_bytes"]["compact"] == want
    assert d["total"]["records"] == 15
    assert (
        d["total"]["codec_bytes"]["compact"]
        == row["codec_bytes"]["compact"] + d["types"]["feature:exposure"]["codec_bytes"]["compact"]
    )


def test_trigger_raw_bytes_come_from_their_events(schemas: SchemaSet) -> None:
    events = (Event(1, "exposure", item="1"), Event(2, "exposure", item="2", args={"pos": 3}))
    trig = {**sample_records()[7], "_events": events}
    rep = SizeReport(schemas)
    rep.add(trig)
    assert rep.as_dict()["types"]["trigger:no_click"]["raw_bytes"] == sum(
        raw_size(e) for e in events
    )


def test_rows_and_table_cover_every_type_and_the_total(schemas: SchemaSet) -> None:
    rep = SizeReport(schemas, codecs=("msgpack", "compact"))
    rep.add_many(sample_records())
    rows = rep.rows()
    assert [r[0] for r in rows] == [*sorted({r[0] for r in rows[:-1]}), "total"]
    assert len(rows) == len(sample_records()) + 1  # one record of each type here
    assert all(len(r) == len(rep.columns()) for r in rows)
    assert rep.table().row_count == len(rows)
    assert rows[-1][1] == str(len(sample_records()))


def test_reduction_cells_show_the_share_saved(schemas: SchemaSet) -> None:
    rep = SizeReport(schemas, codecs=("compact",))
    rep.add({**ipv(), "_raw_bytes": 21_200})
    (row, _total) = rep.rows()
    compact = rep.as_dict()["types"]["feature:ipv"]["codec_bytes"]["compact"]
    assert row[4] == f"{compact:,} {-(100 * (1 - compact / 21_200)):+.1f}%"
    assert rep.rows(short=True)[0][2] == "21.2k"
    from streamfeat.encoders._sizes import _short

    assert [_short(n) for n in (999, 9_999, 14_596, 334_294, 1_137_865, 2**40)] == [
        "999", "9,999", "14.6k", "334k", "1.14M", "1,100G",
    ]  # fmt: skip
    assert row[2] == "21,200"


def test_report_can_go_on_after_a_flush(schemas: SchemaSet) -> None:
    rep = SizeReport(schemas, batch_records=100)
    rep.add(ipv(item="1"))
    first = rep.as_dict()["total"]["codec_bytes"]["compact"]
    rep.add(ipv(item="2"))
    assert rep.as_dict()["total"]["codec_bytes"]["compact"] > first


def test_report_encoders_decode(schemas: SchemaSet) -> None:
    rep = SizeReport(schemas)
    enc = rep.encoders["compact"]
    assert decode_batch(enc.encode_batch([ipv()]), schemas) == [ipv()]
