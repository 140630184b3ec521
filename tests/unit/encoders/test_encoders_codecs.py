"""Codecs and batches: examples of every record type, fallback, headers, errors."""

from __future__ import annotations

import math
from typing import Any

import pytest

from streamfeat._event import Event
from streamfeat._records import public
from streamfeat.encoders import (
    CODECS,
    CountingBloomAdmission,
    SchemaSet,
    decode_batch,
    encoder_for,
    index_schemas,
    read_header,
    schemas_for,
)
from streamfeat.encoders._batch import header
from streamfeat.errors import DecodeError, EncodeError, UnknownSchemaError
from streamfeat.tasks import parse_tasks
from tests.unit.encoders.conftest import exposure, ipv, sample_records

CODEC_NAMES = tuple(CODECS)


def roundtrip(
    codec: str, schemas: SchemaSet, records: list[dict[str, Any]], **kw: Any
) -> list[dict[str, Any]]:
    data = encoder_for(codec, schemas, **kw).encode_batch(records)
    return decode_batch(data, index_schemas(schemas))


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_every_record_type_round_trips(codec: str, schemas: SchemaSet) -> None:
    records = sample_records()
    assert roundtrip(codec, schemas, records) == records


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_empty_batch_round_trips(codec: str, schemas: SchemaSet) -> None:
    data = encoder_for(codec, schemas).encode_batch([])
    assert decode_batch(data, schemas) == []
    assert read_header(data).count == 0


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_attachments_are_not_encoded(codec: str, schemas: SchemaSet) -> None:
    rec = ipv()
    with_attachments = {**rec, "_raw_bytes": 21_200, "_events": (Event(1, "click"),)}
    assert roundtrip(codec, schemas, [with_attachments]) == [rec]


def test_compact_uses_every_schema_without_fallback(schemas: SchemaSet) -> None:
    enc = encoder_for("compact", schemas)
    enc.encode_batch(sample_records()[:-1])  # all but the quarantine record have a schema
    assert enc.stats["fallback"] == 0
    enc.encode_batch(sample_records()[-1:])
    assert enc.stats["fallback"] == 0  # no schema at all is not a misfit


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r["values"].update(extra=1),
        lambda r: r["values"].pop("scroll"),
        lambda r: r.update(device=None),
        lambda r: r["values"].update(dwell_ms=1.5),
        lambda r: r["values"].update(item=["not", "an", "id"]),
        lambda r: r["values"].update(truncated=1),
        lambda r: r.update(extra="x"),
        lambda r: r["values"].update(add_cart=-1),
        lambda r: r.update(values=None),
    ],
)
def test_a_record_off_its_schema_is_sent_self_described(schemas: SchemaSet, change: Any) -> None:
    rec = ipv()
    change(rec)
    enc = encoder_for("compact", schemas)
    data = enc.encode_batch([ipv(item="1"), rec, ipv(item="2")])
    assert enc.stats["fallback"] == 1
    assert decode_batch(data, schemas) == [ipv(item="1"), rec, ipv(item="2")]


def test_fallback_rolls_back_the_string_table(schemas: SchemaSet) -> None:
    # the misfit is found after the item was defined in the dictionary: the next record that
    # names the same item must define it again, or the decoder would not know it
    bad = ipv(item="A-new-item")
    bad["values"]["add_cart"] = "many"
    good = ipv(item="A-new-item")
    assert roundtrip("compact", schemas, [bad, good]) == [bad, good]


def test_ipv_record_is_a_few_bytes(schemas: SchemaSet) -> None:
    records = [
        ipv(item=str(1000 + i), enter=1_767_225_600_000 + 60_000 * i, scroll=i % 3)
        for i in range(50)
    ]
    compact = len(encoder_for("compact", schemas).encode_batch(records))
    packed = len(encoder_for("msgpack", schemas).encode_batch(records))
    assert compact / len(records) < 16
    assert compact * 3 <= packed


def test_num_fields_keep_ints_exact_and_floats_within_precision(schemas: SchemaSet) -> None:
    rec = exposure()
    rec["values"].update(max_scroll_speed=1 / 3, first_pos=7, exposure_ms=float("inf"))
    out = roundtrip("compact", schemas, [rec])[0]["values"]
    assert out["first_pos"] == 7
    assert type(out["first_pos"]) is int
    assert abs(out["max_scroll_speed"] - 1 / 3) <= 0.005
    assert out["exposure_ms"] == math.inf


def test_derived_fields_are_still_exact_when_the_prediction_fails(schemas: SchemaSet) -> None:
    rec = ipv()
    rec["ts"] += 1  # not enter_ts + dwell_ms
    win = sample_records()[2]
    win["end"] += 1  # not start + size
    win["key"] = "other"  # not the device
    assert roundtrip("compact", schemas, [rec, win]) == [rec, win]


def test_unencodable_values_raise_encode_error(schemas: SchemaSet) -> None:
    bad = {"kind": "task", "task": "rerank", "device": "d1", "ts": 1, "values": {"s": {1, 2}}}
    for codec in CODEC_NAMES:
        with pytest.raises(EncodeError):
            encoder_for(codec, schemas).encode_batch([bad])
    with pytest.raises(EncodeError):
        encoder_for("compact", schemas).encode_batch([{"kind": "x", "n": 2**64}])
    for codec in CODEC_NAMES:
        with pytest.raises(EncodeError):
            encoder_for(codec, schemas).encode_batch([ipv(), None])  # type: ignore[list-item]


def test_unknown_codec_is_refused(schemas: SchemaSet) -> None:
    with pytest.raises(EncodeError):
        encoder_for("protobuf", schemas)


def test_header_names_codec_schema_and_count(schemas: SchemaSet) -> None:
    for codec in CODEC_NAMES:
        info = read_header(encoder_for(codec, schemas).encode_batch(sample_records()))
        assert (info.codec, info.schema_id, info.schema_version, info.count) == (
            codec, schemas.id, schemas.version, len(sample_records()),
        )  # fmt: skip


def test_unknown_schema_id_or_version_is_refused(schemas: SchemaSet) -> None:
    other = schemas_for(parse_tasks('[features.ipv]\nkind = "ipv"'))
    data = encoder_for("compact", schemas).encode_batch([ipv()])
    with pytest.raises(UnknownSchemaError):
        decode_batch(data, index_schemas(other))
    forged = bytearray(header("compact", schemas, 1))
    forged[7] = schemas.version + 1
    with pytest.raises(UnknownSchemaError):
        decode_batch(bytes(forged) + data[len(forged) :], index_schemas(schemas))
    assert isinstance(UnknownSchemaError("x"), DecodeError)


def test_decoder_finds_the_right_set_among_several(schemas: SchemaSet) -> None:
    other = schemas_for(parse_tasks('[features.ipv]\nkind = "ipv"\nactions = ["add_cart"]'))
    rec = ipv()
    small = {
        **rec,
        "values": {
            k: rec["values"][k] for k in ("item", "enter_ts", "dwell_ms", "truncated", "add_cart")
        },
    }
    both = index_schemas(schemas, other)
    assert decode_batch(encoder_for("compact", other).encode_batch([small]), both) == [small]
    assert decode_batch(encoder_for("compact", schemas).encode_batch([rec]), both) == [rec]


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_admission_sends_rare_ids_as_buckets(codec: str, schemas: SchemaSet) -> None:
    adm = CountingBloomAdmission(2, seed=3, cells=1 << 12)
    enc = encoder_for(codec, schemas, admission=adm)
    first = decode_batch(enc.encode_batch([ipv(item="991"), exposure(item="992")]), schemas)
    bucket = f"#b:{adm.bucket('991')}"
    assert first[0]["values"]["item"] == bucket
    assert first[1]["values"]["item"] == f"#b:{adm.bucket('992')}"
    second = decode_batch(enc.encode_batch([ipv(item="991")]), schemas)
    assert second[0]["values"]["item"] == "991"  # second sighting: admitted


def test_admission_covers_top_lists_and_id_keys(schemas: SchemaSet) -> None:
    win = sample_records()[3]  # by_item: key is an item, "last" an item, "cats" categories
    outs = []
    for codec in CODEC_NAMES:
        adm = CountingBloomAdmission(5, cells=1 << 12)
        outs.append(
            decode_batch(encoder_for(codec, schemas, admission=adm).encode_batch([win]), schemas)[0]
        )
        assert outs[-1]["key"] == f"#b:{adm.bucket('2333346')}"
        assert outs[-1]["values"]["last"] == outs[-1]["key"]
        assert outs[-1]["values"]["cats"] == [[f"#b:{adm.bucket('160')}", 2]]
        assert outs[-1]["values"]["pages"] == [["item_detail", 2]]  # pages are not ids
    assert outs[0] == outs[1] == outs[2]


def test_admission_counts_each_id_once_per_record(schemas: SchemaSet) -> None:
    adm = CountingBloomAdmission(2, cells=1 << 12)
    win = sample_records()[3]  # names item 2333346 as key and as "last"
    out = decode_batch(encoder_for("compact", schemas, admission=adm).encode_batch([win]), schemas)[
        0
    ]
    assert out["key"].startswith("#b:")
    assert adm.estimate("2333346") == 1


def test_self_described_fallback_still_hides_refused_ids(schemas: SchemaSet) -> None:
    rec = ipv(item="31337")
    rec["values"]["extra"] = True
    adm = CountingBloomAdmission(3, cells=1 << 12)
    out = decode_batch(encoder_for("compact", schemas, admission=adm).encode_batch([rec]), schemas)[
        0
    ]
    assert out["values"]["item"] == f"#b:{adm.bucket('31337')}"


def test_public_records_are_what_decoders_return(schemas: SchemaSet) -> None:
    recs = [{**r, "_raw_bytes": 5} for r in sample_records()]
    assert roundtrip("msgpack", schemas, recs) == [public(r) for r in recs]
